//! Module graph analysis of Cargo workspaces.
//!
//! Entry point: [`analyze`] (to be written) loads a workspace, builds the module tree and the module
//! edges of every member crate, and computes cycles, the cut list, suggestions, metrics and
//! candidate services into a [`report::Report`].

pub mod report;
