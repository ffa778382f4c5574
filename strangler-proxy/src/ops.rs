//! Layer 5, operations: the proxy's state in force and its control (reload, rollback), the
//! admin API, the metrics page and the SLO watcher.
//!
//! It imports every layer below; only the handler (`proxy`) and `serve` are above it.

pub mod admin;
pub mod metrics;
pub mod runtime;
pub(crate) mod slo_watch;
