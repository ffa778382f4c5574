//! Counters and histograms, rendered in the Prometheus text format. The counters belong to the
//! layers that bump them (`decision::series`, `protection::attempt`, `protection::slo`, `shadow`,
//! `http::connections`); this module only reads them.
//!
//! Every series the request path touches is created when a route table is compiled and held by
//! an `Arc` in it, so recording is a few relaxed atomic adds: no map lookup, no lock. The
//! registry (a mutex-guarded map) is only touched at compile time and when `/metrics` renders.
//! Series are keyed by name, so they survive reloads.

use std::fmt::Write as _;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(crate) use crate::decision::series::{BUCKETS, Metrics};
use crate::error::ProxyErrorKind;

impl Metrics {
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
        out.push_str("# HELP fig_proxy_flags_error Whether the flag store's last reload or poll failed (the last good flags keep serving; /readyz says why).\n");
        out.push_str("# TYPE fig_proxy_flags_error gauge\n");
        let _ = writeln!(out, "fig_proxy_flags_error {}", u8::from(extra.flags_error));
        out.push_str("# HELP fig_proxy_flags_staleness_seconds Seconds since the flags served were last confirmed current: Unleash answered, or the watcher found the flags file good.\n");
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
    /// How old the flags served are (see `FlagSource::staleness`).
    pub flags_staleness: Option<Duration>,
    /// Whether the flag store's last reload or poll failed.
    pub flags_error: bool,
    /// (upstream, circuit state) of every upstream whose breaker is on.
    pub circuits: Vec<(String, crate::protection::breaker::State)>,
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// Appends the expiry of every TLS certificate in force: its `notAfter` as a Unix time, as the
/// Prometheus blackbox exporter's `probe_ssl_earliest_cert_expiry`, so that an alert reads
/// `fig_tls_certificate_expiry_seconds - time() < 14 * 86400`.
pub(crate) fn render_tls(out: &mut String, tls: &crate::config::TlsConfig) {
    out.push_str("# HELP fig_tls_certificate_expiry_seconds When each TLS certificate served expires (notAfter), in seconds since the Unix epoch; `name` is its file.\n");
    out.push_str("# TYPE fig_tls_certificate_expiry_seconds gauge\n");
    for cert in &tls.certificates {
        let _ = writeln!(
            out,
            "fig_tls_certificate_expiry_seconds{{name=\"{}\",subject=\"{}\"}} {}",
            escape(&cert.cert.display().to_string()),
            escape(&cert.subject),
            cert.not_after
        );
    }
}

/// Escapes a Prometheus label value.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
