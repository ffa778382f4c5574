//! One module per `fig` subcommand, each with `Args` (clap) and `run(Args) -> Result<ExitCode>`.
//!
//! `flags`, `proxy` and `route`, and `demo` are compiled only with the cargo features of the same
//! names (`proxy` brings `route`); see `Cargo.toml`.

pub mod analyze;
pub mod check;
pub mod completions;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "flags")]
pub mod flags;
pub mod man;
pub mod plan;
#[cfg(feature = "proxy")]
pub mod proxy;
#[cfg(feature = "proxy")]
pub mod route;
pub mod suggest;

/// The arguments of a subcommand this build left out: anything, so that the stub can say what
/// is missing whatever was typed after it.
#[derive(Debug, clap::Args)]
pub struct Missing {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<std::ffi::OsString>,
}

/// The error of a subcommand this build left out.
#[cfg_attr(
    all(
        feature = "flags",
        feature = "proxy",
        feature = "demo",
        feature = "serve"
    ),
    expect(dead_code, reason = "every command is built")
)]
pub(crate) fn missing(command: &str, feature: &str) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!(
        "`fig {command}` is not in this build of fig, which was built without the `{feature}` \
         feature (`--no-default-features`); `cargo install --locked --path .` from the \
         repository root installs the fig with every command"
    )
}
