//! `fig proxy`.

use std::process::ExitCode;

/// Arguments of `fig proxy`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `fig proxy`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fig proxy` is not implemented yet")
}
