//! The analyzer's one error type.
//!
//! Only a workspace that cannot be loaded at all is an error. Broken input inside a workspace
//! (a file syn cannot parse, a module file that is missing) is data: it ends up in
//! [`crate::report::Report::skipped_files`] and the run goes on.

use std::path::PathBuf;

/// Why [`crate::analyze`] could not produce a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path is not a Cargo workspace or package, or `cargo metadata` rejected it.
    #[error("`{}` is not a Cargo workspace or package: {reason}", path.display())]
    NotAWorkspace {
        /// The path that was given.
        path: PathBuf,
        /// What went wrong, e.g. no `Cargo.toml`, or cargo's own message.
        reason: String,
    },
}
