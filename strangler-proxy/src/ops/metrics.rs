//! Counters and histograms, rendered in the Prometheus text format.
//!
//! Every series the request path touches is created when a route table is compiled and held by
//! an `Arc` in it, so recording is a few relaxed atomic adds: no map lookup, no lock. The
//! registry (a mutex-guarded map) is only touched at compile time and when `/metrics` renders.
//! Series are keyed by name, so they survive reloads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
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
    series: Mutex<BTreeMap<(String, String), Arc<Series>>>,
    /// Successful config reloads.
    pub reloads_ok: AtomicU64,
    /// Refused config reloads.
    pub reloads_failed: AtomicU64,
    /// SLO windows and what the SLO checker did (`slo.rs`).
    pub slo: crate::protection::slo::Registry,
    /// Shadow traffic counters and samples, by route.
    pub shadow: crate::shadow::Registry,
    /// Circuit breakers and the counters of request-path protection (`attempt.rs`).
    pub guard: crate::protection::attempt::GuardMetrics,
    /// Client connections: open, the cap, refusals, deadlines (`connections.rs`).
    pub connections: crate::http::connections::ConnectionMetrics,
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

    /// Renders the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, extra: &Extra) -> String {
        let map = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP fig_proxy_requests_total Responses sent, by route, upstream and status class.\n");
        out.push_str("# TYPE fig_proxy_requests_total counter\n");
        for ((route, upstream), series) in map.iter() {
            for (idx, count) in series.by_class.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "fig_proxy_requests_total{{route=\"{}\",upstream=\"{}\",class=\"{}xx\"}} {count}",
                        escape(route),
                        escape(upstream),
                        idx + 1
                    );
                }
            }
        }
        out.push_str(
            "# HELP fig_proxy_request_duration_seconds Time to the upstream's response headers.\n",
        );
        out.push_str("# TYPE fig_proxy_request_duration_seconds histogram\n");
        for ((route, upstream), series) in map.iter() {
            let labels = format!(
                "route=\"{}\",upstream=\"{}\"",
                escape(route),
                escape(upstream)
            );
            let mut cumulative = 0;
            for (idx, le) in BUCKETS.iter().enumerate() {
                cumulative += series.buckets[idx].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "fig_proxy_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            cumulative += series.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "fig_proxy_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
            );
            let sum = series.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "fig_proxy_request_duration_seconds_sum{{{labels}}} {sum}"
            );
            let _ = writeln!(
                out,
                "fig_proxy_request_duration_seconds_count{{{labels}}} {cumulative}"
            );
        }
        out.push_str("# HELP fig_proxy_upstream_errors_total Failed upstream requests, by kind.\n");
        out.push_str("# TYPE fig_proxy_upstream_errors_total counter\n");
        for ((route, upstream), series) in map.iter() {
            for (idx, kind) in ProxyErrorKind::ALL.iter().enumerate() {
                let count = series.errors[idx].load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "fig_proxy_upstream_errors_total{{route=\"{}\",upstream=\"{}\",kind=\"{}\"}} {count}",
                        escape(route),
                        escape(upstream),
                        kind.as_str()
                    );
                }
            }
        }
        drop(map);
        out.push_str("# HELP fig_proxy_rollbacks_total Route rollbacks since start.\n");
        out.push_str("# TYPE fig_proxy_rollbacks_total counter\n");
        for (route, count) in &extra.rollbacks {
            let _ = writeln!(
                out,
                "fig_proxy_rollbacks_total{{route=\"{}\"}} {count}",
                escape(route)
            );
        }
        out.push_str(
            "# HELP fig_proxy_route_pinned Whether a route is rolled back to its fallback.\n",
        );
        out.push_str("# TYPE fig_proxy_route_pinned gauge\n");
        for (route, pinned) in &extra.pinned {
            let _ = writeln!(
                out,
                "fig_proxy_route_pinned{{route=\"{}\"}} {}",
                escape(route),
                u8::from(*pinned)
            );
        }
        out.push_str("# HELP fig_proxy_config_reloads_total Config reloads, by result.\n");
        out.push_str("# TYPE fig_proxy_config_reloads_total counter\n");
        let _ = writeln!(
            out,
            "fig_proxy_config_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "fig_proxy_config_reloads_total{{result=\"error\"}} {}",
            self.reloads_failed.load(Ordering::Relaxed)
        );
        out.push_str("# HELP fig_proxy_upstream_healthy Whether an upstream address passes its health check.\n");
        out.push_str("# TYPE fig_proxy_upstream_healthy gauge\n");
        for (upstream, address, healthy) in &extra.health {
            let _ = writeln!(
                out,
                "fig_proxy_upstream_healthy{{upstream=\"{}\",address=\"{}\"}} {}",
                escape(upstream),
                escape(address),
                u8::from(*healthy)
            );
        }
        out.push_str("# HELP fig_proxy_flags_ready Whether the flag store has loaded.\n");
        out.push_str("# TYPE fig_proxy_flags_ready gauge\n");
        let _ = writeln!(out, "fig_proxy_flags_ready {}", u8::from(extra.flags_ready));
        out.push_str("# HELP fig_proxy_flags_staleness_seconds Seconds since the flag server (Unleash) last answered; absent for a file store.\n");
        out.push_str("# TYPE fig_proxy_flags_staleness_seconds gauge\n");
        if let Some(staleness) = extra.flags_staleness {
            let _ = writeln!(
                out,
                "fig_proxy_flags_staleness_seconds {:.3}",
                staleness.as_secs_f64()
            );
        }
        self.guard.render(&mut out, &extra.circuits);
        self.connections.render(&mut out);
        out
    }
}

/// Values that live outside [`Metrics`] but are rendered with it.
#[derive(Debug, Default)]
pub struct Extra {
    /// Rollbacks per route.
    pub rollbacks: Vec<(String, u64)>,
    /// Pinned state per configured route.
    pub pinned: Vec<(String, bool)>,
    /// (upstream, address, healthy).
    pub health: Vec<(String, String, bool)>,
    /// Whether flags are loaded.
    pub flags_ready: bool,
    /// Time since the flag server last answered (Unleash only).
    pub flags_staleness: Option<Duration>,
    /// (upstream, circuit state) of every upstream whose breaker is on.
    pub circuits: Vec<(String, crate::protection::breaker::State)>,
}

/// Escapes a Prometheus label value.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
