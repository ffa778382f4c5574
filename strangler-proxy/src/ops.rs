//! Layer 5, operations: the proxy's state in force and its control (reload, rollback), the
//! admin API, the metrics page and the SLO watcher.
//!
//! It imports only the layers below it; the handler (`proxy`) and `serve` are above it.

pub mod admin;
pub mod metrics;
pub mod runtime;
pub(crate) mod slo_watch;
