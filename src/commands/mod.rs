//! One module per `fig` subcommand, each with `Args` (clap) and `run(Args) -> Result<ExitCode>`.

pub mod analyze;
pub mod check;
pub mod demo;
pub mod flags;
pub mod plan;
pub mod proxy;
pub mod route;
pub mod suggest;
