//! `fig route`.

use std::process::ExitCode;

/// Arguments of `fig route`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `fig route`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fig route` is not implemented yet")
}
