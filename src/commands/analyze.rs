//! `fig analyze`.

use std::process::ExitCode;

/// Arguments of `fig analyze`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `fig analyze`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fig analyze` is not implemented yet")
}
