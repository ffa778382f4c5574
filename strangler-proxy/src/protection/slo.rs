//! Automatic rollback on a service-level objective (SLO).
//!
//! A route may declare an SLO on what it sends to its *service* (never on the fallback, and not
//! on what the client finally sees): a largest 5xx rate and/or a largest p99 latency over a
//! window, judged only once the window holds `min_requests` requests. When the service breaks
//! it, the route is pinned to its fallback exactly as `POST /routes/{name}/rollback` would, with
//! the reason kept in the state file; optionally its flag is turned off in the flag store too, so
//! every replica follows. Restoring stays a human decision: nothing here ever lifts a pin.
//!
//! A key design decision is how the request path records an outcome: one [`Window`] per route is
//! a ring of time slots, each a handful of atomic counters (requests, errors, requests slower
//! than `max_p99`, and a log-scale latency histogram). [`Window::record`] is a few relaxed atomic
//! adds, no lock and no allocation; the slot of a new time period is claimed by whoever records
//! first in it (a compare-and-swap on its period number) and cleared. The cost is a little
//! imprecision: an add racing with that clear can be lost. The decision itself is exact for
//! latency: "p99 above `max_p99`" is "more than 1% of requests slower than `max_p99`", counted
//! per request, so the histogram only serves to report an estimate of the p99.
//!
//! A background task (`ops::slo_watch::run`) reads every window each [`CHECK_INTERVAL`] and acts on a breach,
//! so a breach is in force within about a second. [`decide`] is the pure decision, tested with a
//! controlled clock (all functions take `now` as an argument).
//!
//! Names: a *slot* is one of the ring's time periods, a *tick* is the number of a period since
//! the window's origin.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{ErrorSource, ProxyErrorKind};

/// How often the windows are checked for a breach.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);
// The SLO as configured lives with its table (the config reads no layer).
pub use crate::config::SloConfig;

/// Time slots the window is cut into; the window holds the last `SLOTS` of them (the current
/// one included), so it covers between 90% and 100% of its length.
const SLOTS: u64 = 10;
/// Slots in the ring: the window's, plus one being claimed for the next period.
const RING: usize = SLOTS as usize + 1;
/// Latency histogram buckets: under 128µs, then four per power of two up to ~268 s.
const LATENCY_BUCKETS: usize = 85;

/// The outcomes of requests sent to one route's service over a sliding window.
#[derive(Debug)]
pub struct Window {
    config: SloConfig,
    origin: Instant,
    slot_nanos: u64,
    slots: Box<[Slot]>,
}

#[derive(Debug)]
struct Slot {
    /// The tick this slot holds, plus one; 0 for a slot never used.
    epoch: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    /// Requests slower than `max_p99`.
    slow: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS],
}

/// What a window holds at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Requests in the window.
    pub requests: u64,
    /// Of which 5xx answers or failed requests.
    pub errors: u64,
    /// Of which slower than `max_p99` (0 without `max_p99`).
    pub slow: u64,
    /// The p99 latency, rounded up to its histogram bucket; `None` without requests.
    pub p99: Option<Duration>,
}

/// A broken SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// What was broken.
    pub kind: BreachKind,
    /// The window it was measured over.
    pub window: Duration,
    /// Requests in the window.
    pub requests: u64,
}

/// Which objective was broken.
#[derive(Debug, Clone, PartialEq)]
pub enum BreachKind {
    /// Too many 5xx answers or failed requests.
    ErrorRate {
        /// The measured rate.
        rate: f64,
        /// The objective.
        max: f64,
    },
    /// Too slow.
    Latency {
        /// The measured p99 (rounded up to its histogram bucket).
        p99: Duration,
        /// The objective.
        max: Duration,
    },
}

impl BreachKind {
    /// A stable name, used as a metrics label: `error-rate` or `latency`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BreachKind::ErrorRate { .. } => "error-rate",
            BreachKind::Latency { .. } => "latency",
        }
    }
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BreachKind::ErrorRate { rate, max } => {
                write!(f, "slo: 5xx rate {} > {}", percent(*rate), percent(*max))?
            }
            BreachKind::Latency { p99, max } => write!(
                f,
                "slo: p99 latency {} > {}",
                short_duration(*p99),
                short_duration(*max)
            )?,
        }
        write!(
            f,
            " over {} ({} requests)",
            short_duration(self.window),
            self.requests
        )
    }
}

impl Window {
    /// An empty window for `config`, whose clock starts at `origin`.
    pub fn new(config: SloConfig, origin: Instant) -> Window {
        let slot_nanos = u64::try_from(config.window.as_nanos() / u128::from(SLOTS))
            .unwrap_or(u64::MAX)
            .max(1);
        Window {
            config,
            origin,
            slot_nanos,
            slots: (0..RING).map(|_| Slot::new()).collect(),
        }
    }

    /// The SLO this window measures.
    pub fn config(&self) -> &SloConfig {
        &self.config
    }

    /// Records one request to the service that ended at `now` after `latency`; `error` when it
    /// was answered 5xx or failed on the service's side. A few relaxed atomic adds.
    pub fn record(&self, now: Instant, latency: Duration, error: bool) {
        let Some(slot) = self.slot(now) else {
            return;
        };
        slot.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
        if self.config.max_p99.is_some_and(|max| latency > max) {
            slot.slow.fetch_add(1, Ordering::Relaxed);
        }
        slot.latency[latency_bucket(latency)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one request meant for the service that its open circuit breaker sent elsewhere:
    /// the breaker judged the service failing, so it counts as a failed request (with no
    /// latency). Without this, a breaker that opens within a few failures would keep the window
    /// below `min_requests` for as long as the service is down.
    pub fn record_refused(&self, now: Instant) {
        if let Some(slot) = self.slot(now) {
            slot.requests.fetch_add(1, Ordering::Relaxed);
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The slot of the period of `now`, claimed if it still holds an older one; `None` for a
    /// record so late that its slot already holds a newer period (outside the window).
    fn slot(&self, now: Instant) -> Option<&Slot> {
        let tick = self.tick(now);
        let slot = &self.slots[(tick % RING as u64) as usize];
        let want = tick + 1;
        let mut seen = slot.epoch.load(Ordering::Acquire);
        while seen < want {
            // The first to record in a new period claims its slot and clears what the period
            // `RING` slots ago left there.
            match slot
                .epoch
                .compare_exchange(seen, want, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    slot.clear();
                    seen = want;
                }
                Err(now_seen) => seen = now_seen,
            }
        }
        (seen == want).then_some(slot)
    }

    /// Records the outcome of one attempt on the service: its status, or why it failed. A
    /// failure the client caused (a body over the limit, a request that cannot be forwarded)
    /// says nothing about the service and is not recorded.
    pub fn observe(
        &self,
        now: Instant,
        latency: Duration,
        outcome: Result<http::StatusCode, ProxyErrorKind>,
    ) {
        match outcome {
            Ok(status) => self.record(now, latency, status.is_server_error()),
            Err(kind) if kind.source() == ErrorSource::Upstream => {
                self.record(now, latency, true);
            }
            Err(_) => {}
        }
    }

    /// What the window holds at `now`.
    pub fn stats(&self, now: Instant) -> Stats {
        let tick = self.tick(now);
        let oldest = (tick + 1).saturating_sub(SLOTS - 1);
        let mut stats = Stats::default();
        let mut latency = [0u64; LATENCY_BUCKETS];
        for slot in self.slots.iter() {
            let epoch = slot.epoch.load(Ordering::Acquire);
            if epoch == 0 || epoch < oldest || epoch > tick + 1 {
                continue;
            }
            stats.requests += slot.requests.load(Ordering::Relaxed);
            stats.errors += slot.errors.load(Ordering::Relaxed);
            stats.slow += slot.slow.load(Ordering::Relaxed);
            for (acc, bucket) in latency.iter_mut().zip(&slot.latency) {
                *acc += bucket.load(Ordering::Relaxed);
            }
        }
        stats.p99 = quantile(&latency, 0.99);
        stats
    }

    /// Forgets everything: after a rollback or a restore, the next verdict is on new requests.
    pub fn reset(&self) {
        for slot in self.slots.iter() {
            slot.epoch.store(0, Ordering::Release);
            slot.clear();
        }
    }

    fn tick(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos / u128::from(self.slot_nanos)).unwrap_or(u64::MAX - 1)
    }
}

impl Slot {
    fn new() -> Slot {
        Slot {
            epoch: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn clear(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
        for bucket in &self.latency {
            bucket.store(0, Ordering::Relaxed);
        }
    }
}

/// Whether `stats` break `config`; the error rate is looked at first. Nothing is decided below
/// `min_requests`. Both objectives are strict: a 5% rate does not break `max_error_rate = 5%`,
/// and the p99 is above `max_p99` only when more than 1% of requests are slower than it.
pub fn decide(config: &SloConfig, stats: &Stats) -> Option<Breach> {
    if stats.requests == 0 || stats.requests < config.min_requests {
        return None;
    }
    let breach = |kind| Breach {
        kind,
        window: config.window,
        requests: stats.requests,
    };
    if let Some(max) = config.max_error_rate {
        let rate = stats.errors as f64 / stats.requests as f64;
        if rate > max {
            return Some(breach(BreachKind::ErrorRate { rate, max }));
        }
    }
    if let Some(max) = config.max_p99
        && stats.slow.saturating_mul(100) > stats.requests
    {
        // The bucket's upper bound is at least the true p99, which is above `max`.
        let p99 = stats.p99.unwrap_or(max).max(max);
        return Some(breach(BreachKind::Latency { p99, max }));
    }
    None
}

/// The histogram bucket of a latency: 0 under 128µs, then four buckets per power of two.
pub(crate) fn latency_bucket(latency: Duration) -> usize {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    if micros < 128 {
        return 0;
    }
    let msb = 63 - micros.leading_zeros() as usize;
    let sub = ((micros >> (msb - 2)) & 3) as usize;
    (1 + (msb - 7) * 4 + sub).min(LATENCY_BUCKETS - 1)
}

/// The upper bound of a histogram bucket.
pub(crate) fn bucket_upper(idx: usize) -> Duration {
    if idx == 0 {
        return Duration::from_micros(128);
    }
    let msb = 7 + (idx - 1) / 4;
    let sub = ((idx - 1) % 4) as u64;
    Duration::from_micros((5 + sub) << (msb - 2))
}

/// The nearest-rank quantile `q` of a histogram, as its bucket's upper bound.
fn quantile(buckets: &[u64; LATENCY_BUCKETS], q: f64) -> Option<Duration> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (idx, count) in buckets.iter().enumerate() {
        acc += count;
        if acc >= rank {
            return Some(bucket_upper(idx));
        }
    }
    Some(bucket_upper(LATENCY_BUCKETS - 1))
}

fn percent(rate: f64) -> String {
    let value = rate * 100.0;
    if (value - value.round()).abs() < 0.05 {
        format!("{}%", value.round())
    } else {
        format!("{value:.1}%")
    }
}

/// `500ms`, `1.25s`, `30s`, `2m`.
fn short_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let secs = duration.as_secs_f64();
    if millis.is_multiple_of(60_000) {
        format!("{}m", millis / 60_000)
    } else if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{}s", (secs * 100.0).round() / 100.0)
    }
}

// ---------------------------------------------------------------------------------------------
// The registry: windows by route name (kept across reloads), and counters.

/// The windows of every route with an SLO, and the counters of what the SLO checker did. Held
/// by [`crate::ops::metrics::Metrics`], so it lives as long as the proxy and survives reloads.
#[derive(Debug, Default)]
pub struct Registry {
    windows: Mutex<HashMap<String, Arc<Window>>>,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    /// (route, breach kind) → automatic rollbacks.
    rollbacks: BTreeMap<(String, &'static str), u64>,
    /// (route, result) → flag turn-offs.
    flag_offs: BTreeMap<(String, &'static str), u64>,
}

impl Registry {
    /// The window of route `name`: the one it had if its SLO did not change, else a new one.
    pub fn window(&self, name: &str, config: &SloConfig) -> Arc<Window> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        match windows.get(name) {
            Some(window) if window.config() == config => window.clone(),
            _ => {
                let window = Arc::new(Window::new(config.clone(), Instant::now()));
                windows.insert(name.to_owned(), window.clone());
                window
            }
        }
    }

    /// Forgets what route `name`'s window holds (on a rollback or restore).
    pub fn reset(&self, name: &str) {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(window) = windows.get(name) {
            window.reset();
        }
    }

    pub(crate) fn count_rollback(&self, route: &str, kind: &'static str) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        *counters
            .rollbacks
            .entry((route.to_owned(), kind))
            .or_default() += 1;
    }

    pub(crate) fn count_flag_off(&self, route: &str, ok: bool) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let result = if ok { "ok" } else { "error" };
        *counters
            .flag_offs
            .entry((route.to_owned(), result))
            .or_default() += 1;
    }

    /// Appends this module's metrics in the Prometheus text format. `pinned` is (route, cause)
    /// of every pinned route, `windows` is (route, stats) of every route with an SLO.
    pub fn render(&self, out: &mut String, pinned: &[(String, &str)], windows: &[(String, Stats)]) {
        use std::fmt::Write as _;
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        out.push_str("# HELP fig_proxy_auto_rollbacks_total Routes rolled back because their service broke its SLO, by objective.\n");
        out.push_str("# TYPE fig_proxy_auto_rollbacks_total counter\n");
        for ((route, slo), count) in &counters.rollbacks {
            let _ = writeln!(
                out,
                "fig_proxy_auto_rollbacks_total{{route=\"{}\",slo=\"{slo}\"}} {count}",
                escape(route)
            );
        }
        out.push_str("# HELP fig_proxy_slo_flag_turn_offs_total Flags turned off after an SLO rollback, by result.\n");
        out.push_str("# TYPE fig_proxy_slo_flag_turn_offs_total counter\n");
        for ((route, result), count) in &counters.flag_offs {
            let _ = writeln!(
                out,
                "fig_proxy_slo_flag_turn_offs_total{{route=\"{}\",result=\"{result}\"}} {count}",
                escape(route)
            );
        }
        drop(counters);
        out.push_str(
            "# HELP fig_proxy_routes_pinned Rolled-back routes, by who rolled them back.\n",
        );
        out.push_str("# TYPE fig_proxy_routes_pinned gauge\n");
        for cause in ["admin", "slo"] {
            let count = pinned.iter().filter(|(_, by)| *by == cause).count();
            let _ = writeln!(out, "fig_proxy_routes_pinned{{cause=\"{cause}\"}} {count}");
        }
        out.push_str(
            "# HELP fig_proxy_slo_window_requests Requests to the service in the SLO window.\n",
        );
        out.push_str("# TYPE fig_proxy_slo_window_requests gauge\n");
        for (route, stats) in windows {
            let _ = writeln!(
                out,
                "fig_proxy_slo_window_requests{{route=\"{}\"}} {}",
                escape(route),
                stats.requests
            );
        }
        out.push_str("# HELP fig_proxy_slo_window_error_ratio Share of 5xx answers and failures in the SLO window.\n");
        out.push_str("# TYPE fig_proxy_slo_window_error_ratio gauge\n");
        for (route, stats) in windows {
            let ratio = if stats.requests == 0 {
                0.0
            } else {
                stats.errors as f64 / stats.requests as f64
            };
            let _ = writeln!(
                out,
                "fig_proxy_slo_window_error_ratio{{route=\"{}\"}} {ratio}",
                escape(route)
            );
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `slo` object of a route in `GET /routes`: the objectives and what the window holds now.
pub fn describe(window: &Window, now: Instant) -> Value {
    let config = window.config();
    let stats = window.stats(now);
    json!({
        "max_error_rate": config.max_error_rate,
        "max_p99_ms": config.max_p99.map(|d| d.as_secs_f64() * 1000.0),
        "window_secs": config.window.as_secs_f64(),
        "min_requests": config.min_requests,
        "turn_off_flag": config.turn_off_flag,
        "requests": stats.requests,
        "errors": stats.errors,
        "error_rate": (stats.requests > 0).then(|| stats.errors as f64 / stats.requests as f64),
        "p99_ms": stats.p99.map(|d| d.as_secs_f64() * 1000.0),
    })
}
