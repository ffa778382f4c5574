//! Exit codes and the one place errors are printed.

use std::process::ExitCode;

/// Everything went fine.
pub const SUCCESS: u8 = 0;
/// The command ran, and found something that fails a check (`fig check`).
pub const FINDINGS: u8 = 1;
/// Usage or input error: bad arguments, unreadable input, unreachable server.
pub const ERROR: u8 = 2;

/// Prints an error chain on one line (`{:#}`) and returns exit code 2.
///
/// A broken pipe (`fig analyze | head`) is not an error.
pub fn report(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return ExitCode::SUCCESS;
        }
    }
    eprintln!("error: {err:#}");
    ExitCode::from(ERROR)
}
