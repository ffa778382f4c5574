//! `fig flags`.

use std::process::ExitCode;

/// Arguments of `fig flags`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `fig flags`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fig flags` is not implemented yet")
}
