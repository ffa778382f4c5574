//! `fig check`.

use std::process::ExitCode;

/// Arguments of `fig check`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `fig check`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fig check` is not implemented yet")
}
