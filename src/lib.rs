//! The `fig` command-line interface.
//!
//! This crate is the only place that knows about clap, exit codes, colours and the JSON output
//! schema. Each subcommand lives in `commands/<name>.rs` with its own `Args` and `run`; the crates
//! below (`analyzer`, `feature-flags`, `strangler-proxy`, `templates`) do the work.
//!
//! Exit codes: 0 success, 1 findings that fail a check, 2 usage or input error.
//!
//! The commands past the analyzer are cargo features of this package (`flags`, `proxy`, `demo`,
//! all on by default; see `Cargo.toml`), so that `cargo run --release --no-default-features --
//! analyze` builds no async runtime, HTTP stack or example app. A build without one keeps its
//! subcommand as a hidden stub that says how to get it, rather than clap's "unrecognized
//! subcommand".

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod commands;
pub mod exit;
// "Did you mean ...?" for `fig.toml`: the same file as `feature_flags::hint`, compiled in here
// too so that the analyzer-only build (`--no-default-features`) needs no flag store.
#[path = "../feature-flags/src/hint.rs"]
mod hint;
pub mod output;
pub mod render;

/// Strangler-fig toolkit: split a Rust monolith into services step by step.
#[derive(Debug, Parser)]
#[command(
    name = "fig",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_long_help = "Exit status: 0 success; 1 findings that fail a check (`fig check`); 2 usage or \
                       input error (a bad path, a config with a mistake, an unreachable server)."
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Every `fig` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report module and crate dependencies, cycles, cut list and suggestions of a workspace.
    Analyze(commands::analyze::Args),
    /// Suggest interfaces to extract so that two-way dependencies run one way.
    Suggest(commands::suggest::Args),
    /// Check architecture rules for CI (layers, cycle caps, no new cycles against a baseline).
    Check(commands::check::Args),
    /// Plan the extraction of one module: its endpoints, the edges to cut, the proxy routes.
    Plan(commands::plan::Args),
    /// Read and flip feature flags, in the embedded file store or on an Unleash server.
    #[cfg(feature = "flags")]
    Flags(commands::flags::Args),
    /// Run the strangler reverse proxy.
    #[cfg(feature = "proxy")]
    Proxy(commands::proxy::Args),
    /// Inspect routes of a running proxy and roll them back or restore them.
    #[cfg(feature = "proxy")]
    Route(commands::route::Args),
    /// Start the example monolith, the payment service and proxy replicas in front of them.
    #[cfg(feature = "demo")]
    Demo(commands::demo::Args),
    /// Print a shell completion script for bash, zsh, fish, PowerShell or elvish.
    Completions(commands::completions::Args),
    /// Print fig's man page (roff), or write one page per subcommand into a directory.
    Man(commands::man::Args),
    #[cfg(not(feature = "flags"))]
    #[command(hide = true, disable_help_flag = true)]
    Flags(commands::Missing),
    #[cfg(not(feature = "proxy"))]
    #[command(hide = true, disable_help_flag = true)]
    Proxy(commands::Missing),
    #[cfg(not(feature = "proxy"))]
    #[command(hide = true, disable_help_flag = true)]
    Route(commands::Missing),
    #[cfg(not(feature = "demo"))]
    #[command(hide = true, disable_help_flag = true)]
    Demo(commands::Missing),
}

/// Runs `fig` with the given arguments and returns its exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout with exit 0, usage errors to stderr with 2.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(exit::ERROR)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.verbose);
    let res = match cli.command {
        Command::Analyze(args) => commands::analyze::run(args),
        Command::Suggest(args) => commands::suggest::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Plan(args) => commands::plan::run(args),
        #[cfg(feature = "flags")]
        Command::Flags(args) => commands::flags::run(args),
        #[cfg(feature = "proxy")]
        Command::Proxy(args) => commands::proxy::run(args),
        #[cfg(feature = "proxy")]
        Command::Route(args) => commands::route::run(args),
        #[cfg(feature = "demo")]
        Command::Demo(args) => commands::demo::run(args),
        Command::Completions(args) => commands::completions::run(&args),
        Command::Man(args) => commands::man::run(&args),
        #[cfg(not(feature = "flags"))]
        Command::Flags(_) => commands::missing("flags", "flags"),
        #[cfg(not(feature = "proxy"))]
        Command::Proxy(_) => commands::missing("proxy", "proxy"),
        #[cfg(not(feature = "proxy"))]
        Command::Route(_) => commands::missing("route", "proxy"),
        #[cfg(not(feature = "demo"))]
        Command::Demo(_) => commands::missing("demo", "demo"),
    };
    match res {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a person at a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}
