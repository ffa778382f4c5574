//! `fig suggest`.

use std::process::ExitCode;

/// Arguments of `fig suggest`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `fig suggest`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fig suggest` is not implemented yet")
}
