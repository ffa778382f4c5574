//! The counters the compiled route table holds: one [`Series`] per (route, upstream), and
//! [`Metrics`], the registry of every counter of the proxy, by name, so that they survive
//! reloads. Recording is a few relaxed atomic adds; `ops::metrics` renders them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::ProxyErrorKind;

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "_unmatched";

/// Counters of one (route, upstream) pair.
#[derive(Debug, Default)]
pub struct Series {
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub by_class: [AtomicU64; 5],
    /// Failures by [`ProxyErrorKind`] (index in `ProxyErrorKind::ALL`).
    pub errors: [AtomicU64; 6],
    /// Latency to response headers, non-cumulative buckets, then +Inf.
    pub buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of latencies in nanoseconds.
    pub sum_nanos: AtomicU64,
}

impl Series {
    /// Records one response.
    pub fn record(&self, status: u16, latency: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records one failure (the error response itself is recorded with [`Series::record`]).
    pub fn record_error(&self, kind: ProxyErrorKind) {
        let idx = ProxyErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.errors[idx].fetch_add(1, Ordering::Relaxed);
    }

    /// All responses.
    pub fn requests(&self) -> u64 {
        self.by_class
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// All failures.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// All series, by (route, upstream), plus process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) series: Mutex<BTreeMap<(String, String), Arc<Series>>>,
    /// Successful config reloads.
    pub(crate) reloads_ok: AtomicU64,
    /// Refused config reloads.
    pub(crate) reloads_failed: AtomicU64,
    /// SLO windows and what the SLO checker did (`slo.rs`).
    pub(crate) slo: crate::protection::slo::Registry,
    /// Shadow traffic counters and samples, by route.
    pub(crate) shadow: crate::shadow::Registry,
    /// Circuit breakers and the counters of request-path protection (`attempt.rs`).
    pub(crate) guard: crate::protection::guard::GuardMetrics,
    /// Client connections: open, the cap, refusals, deadlines (`connections.rs`).
    pub(crate) connections: crate::http::connections::ConnectionMetrics,
}

impl Metrics {
    /// The series of (route, upstream), created on first use.
    pub fn series(&self, route: &str, upstream: &str) -> Arc<Series> {
        let mut map = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry((route.to_owned(), upstream.to_owned()))
            .or_default()
            .clone()
    }

    /// Every series of `route`, by upstream.
    pub fn route_series(&self, route: &str) -> Vec<(String, Arc<Series>)> {
        let map = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .filter(|((r, _), _)| r == route)
            .map(|((_, upstream), series)| (upstream.clone(), series.clone()))
            .collect()
    }
}
