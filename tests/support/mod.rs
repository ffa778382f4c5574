//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;
use std::process::Command;

/// The `fig` binary under test.
pub fn fig() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fig"))
}

/// The workspace root (where the root `Cargo.toml` is).
#[allow(dead_code)]
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
