//! `fig demo`.

use std::process::ExitCode;

/// Arguments of `fig demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `fig demo`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fig demo` is not implemented yet")
}
