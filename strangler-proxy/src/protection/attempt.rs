//! The outcome of every upstream attempt, observed in one place: [`observe_attempt`].
//!
//! An *attempt* is one request sent to one address of one upstream: the first try, and the retry
//! on the route's fallback when there is one. Whatever happens to it (a response head with its
//! status, or a connect error, a timeout, a broken connection) goes through [`observe_attempt`]
//! exactly once, right when the response head (or the error) is known, before any retry is
//! decided. That function is **the hook point for everything that learns from outcomes**: the
//! SLO window of the route's service (`slo.rs`, automatic rollback), the upstream's circuit
//! breaker and the address's outlier ejection; shadow traffic comparison is meant to hook in here
//! too. Add a call to your module in [`observe_attempt`]; keep it cheap (atomics, no lock, no
//! allocation), since it runs on every request.
//!
//! Requests the proxy answers itself without an attempt (429 from a rate limit, 503 from an
//! in-flight cap or an open circuit with nowhere to go) are not attempts; they are counted in
//! [`RouteCounters`] and [`UpstreamCounters`].
//!
//! This module also holds the registry of those counters and of the breakers, inside
//! [`crate::ops::metrics::Metrics`], keyed by name so that they survive reloads: a reload that leaves
//! an upstream's breaker settings as they were keeps its breaker, open or not.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::protection::breaker::{Breaker, Nanos, Permit, State, Transition};
use crate::config::{CircuitBreakerConfig, StatusSet};
use crate::error::{ErrorSource, ProxyErrorKind};
use crate::protection::slo::Window;
use crate::protection::upstream::{Address, Upstream};

/// What came of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status (the head; the body may still fail).
    Status(StatusCode),
    /// No answer.
    Error(ProxyErrorKind),
}

impl Outcome {
    /// Whether this is a failure of the upstream: connect error, timeout, broken connection, or
    /// a status in `failure_statuses`. `None` when it says nothing about the upstream (the client
    /// sent too large a body, or the proxy failed).
    pub fn is_failure(self, failure_statuses: &StatusSet) -> Option<bool> {
        match self {
            Outcome::Status(status) => Some(failure_statuses.contains(status.as_u16())),
            Outcome::Error(kind) => (kind.source() == ErrorSource::Upstream).then_some(true),
        }
    }

    /// The `cause` label of a fallback after this outcome: `connect`, `timeout`, `protocol` or
    /// `status`.
    pub fn cause(self) -> Cause {
        match self {
            Outcome::Status(_) => Cause::Status,
            Outcome::Error(ProxyErrorKind::Connect) => Cause::Connect,
            Outcome::Error(ProxyErrorKind::Timeout) => Cause::Timeout,
            Outcome::Error(_) => Cause::Protocol,
        }
    }
}

/// One finished attempt, as [`observe_attempt`] sees it.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The SLO window of the route that matched, if it has one.
    pub slo: Option<&'a Window>,
    /// The upstream tried.
    pub upstream: &'a Upstream,
    /// The address tried.
    pub address: &'a Address,
    /// Whether this attempt is the route's decision to use its service (not a fallback, not
    /// the retry on the fallback, not an unmatched request).
    pub to_service: bool,
    /// What came of it.
    pub outcome: Outcome,
    /// From sending the request to the response head (or the error).
    pub latency: Duration,
    /// When the outcome was known.
    pub finished: Instant,
}

/// Feeds the outcome of one attempt to everything that learns from outcomes. Called exactly once
/// per attempt; `permit` is the one the upstream's breaker gave for it.
pub(crate) fn observe_attempt(attempt: &Attempt<'_>, permit: Permit<'_>) {
    let upstream = attempt.upstream;
    // 1. The SLO of the route's service judges what the service answered (slo.rs).
    if attempt.to_service
        && let Some(window) = attempt.slo
    {
        let outcome = match attempt.outcome {
            Outcome::Status(status) => Ok(status),
            Outcome::Error(kind) => Err(kind),
        };
        window.observe(attempt.finished, attempt.latency, outcome);
    }
    let at: Nanos = crate::protection::breaker::nanos(attempt.finished);
    let Some(failed) = attempt.outcome.is_failure(&upstream.failure_statuses) else {
        // Dropping the permit frees a trial slot without counting anything.
        return;
    };
    // 2. The upstream's circuit breaker.
    if let Some(transition) = upstream.guard.breaker.record(permit, at, failed) {
        upstream
            .guard
            .counters
            .transition(&upstream.name, transition);
    }
    // 3. Outlier ejection of the address.
    if upstream.addresses.len() > 1
        && let Some(ejection) = attempt.address.outlier.record(
            &upstream.outlier,
            at,
            failed,
            || upstream.ejected(at),
            upstream.addresses.len(),
        )
    {
        upstream
            .guard
            .counters
            .ejections
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            upstream = &*upstream.name,
            address = %attempt.address.authority,
            ?ejection,
            "address ejected after consecutive failures"
        );
    }
    // 4. Hooks of other features go here (shadow comparison).
}

/// Why a request of a route went to its fallback after being meant for its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Cause {
    /// The service could not be connected to.
    Connect = 0,
    /// The service did not answer in time.
    Timeout = 1,
    /// The service broke the connection or sent bad HTTP.
    Protocol = 2,
    /// The service answered with a failure status.
    Status = 3,
    /// The service's circuit was open; it was not tried.
    CircuitOpen = 4,
}

impl Cause {
    /// All causes, in counter order.
    pub const ALL: [Cause; 5] = [
        Cause::Connect,
        Cause::Timeout,
        Cause::Protocol,
        Cause::Status,
        Cause::CircuitOpen,
    ];

    /// The `cause` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Connect => "connect",
            Cause::Timeout => "timeout",
            Cause::Protocol => "protocol",
            Cause::Status => "status",
            Cause::CircuitOpen => "circuit-open",
        }
    }
}

/// Counters of one route.
#[derive(Debug, Default)]
pub struct RouteCounters {
    /// Requests meant for the service that went to the fallback, by [`Cause`].
    pub fallbacks: [AtomicU64; 5],
    /// Requests answered 429 by the route's rate limit.
    pub rate_limited: AtomicU64,
}

impl RouteCounters {
    /// Counts one fallback.
    pub fn fallback(&self, cause: Cause) {
        self.fallbacks[cause as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of one upstream.
#[derive(Debug, Default)]
pub struct UpstreamCounters {
    /// Transitions into closed, open, half-open (by `State as usize`).
    pub transitions: [AtomicU64; 3],
    /// Addresses ejected.
    pub ejections: AtomicU64,
    /// Requests shed by the in-flight cap.
    pub shed_in_flight: AtomicU64,
    /// Requests refused by an open circuit with no fallback to go to.
    pub shed_circuit_open: AtomicU64,
}

impl UpstreamCounters {
    fn transition(&self, upstream: &str, transition: Transition) {
        self.transitions[transition.to as usize].fetch_add(1, Ordering::Relaxed);
        match transition.to {
            State::Open => tracing::warn!(
                upstream,
                from = transition.from.as_str(),
                "circuit opened: requests go to the fallback"
            ),
            State::HalfOpen => {
                tracing::info!(upstream, "circuit half-open: sending trial requests");
            }
            State::Closed => tracing::info!(upstream, "circuit closed: the upstream recovered"),
        }
    }
}

/// The breaker of an upstream and its counters.
#[derive(Debug)]
pub struct UpstreamGuard {
    /// The circuit breaker.
    pub breaker: Breaker,
    /// The counters, kept even when the breaker is replaced.
    pub counters: Arc<UpstreamCounters>,
}

impl UpstreamGuard {
    /// A closed breaker of `config` with fresh counters.
    pub fn new(config: &CircuitBreakerConfig) -> UpstreamGuard {
        UpstreamGuard {
            breaker: Breaker::new(*config),
            counters: Arc::default(),
        }
    }

    /// Notes a transition made while acquiring a permit.
    pub fn note(&self, upstream: &str, transition: Option<Transition>) {
        if let Some(transition) = transition {
            self.counters.transition(upstream, transition);
        }
    }
}

/// Breakers and counters by upstream and route name, kept across reloads.
#[derive(Debug, Default)]
pub struct GuardMetrics {
    upstreams: Mutex<BTreeMap<String, (CircuitBreakerConfig, Arc<UpstreamGuard>)>>,
    routes: Mutex<BTreeMap<String, Arc<RouteCounters>>>,
}

impl GuardMetrics {
    /// The guard of upstream `name`: the one it had if its breaker settings are unchanged, else a
    /// new closed breaker with the old counters.
    pub fn upstream(&self, name: &str, config: &CircuitBreakerConfig) -> Arc<UpstreamGuard> {
        let mut map = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((old_config, guard)) = map.get(name)
            && old_config == config
        {
            return guard.clone();
        }
        let counters = map
            .get(name)
            .map(|(_, guard)| guard.counters.clone())
            .unwrap_or_default();
        let guard = Arc::new(UpstreamGuard {
            breaker: Breaker::new(*config),
            counters,
        });
        map.insert(name.to_owned(), (*config, guard.clone()));
        guard
    }

    /// The counters of route `name`.
    pub fn route(&self, name: &str) -> Arc<RouteCounters> {
        let mut map = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(name.to_owned()).or_default().clone()
    }

    /// Appends the Prometheus text of these counters; `circuits` is the state of every breaker
    /// in force.
    pub fn render(&self, out: &mut String, circuits: &[(String, State)]) {
        out.push_str("# HELP fig_proxy_circuit_state Circuit of an upstream: 0 closed, 1 open, 2 half-open.\n");
        out.push_str("# TYPE fig_proxy_circuit_state gauge\n");
        for (upstream, state) in circuits {
            let _ = writeln!(
                out,
                "fig_proxy_circuit_state{{upstream=\"{}\"}} {}",
                escape(upstream),
                state.gauge()
            );
        }
        let upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        out.push_str("# HELP fig_proxy_circuit_transitions_total Circuit state changes, by the state entered.\n");
        out.push_str("# TYPE fig_proxy_circuit_transitions_total counter\n");
        for (upstream, (_, guard)) in upstreams.iter() {
            for state in [State::Closed, State::Open, State::HalfOpen] {
                let count = guard.counters.transitions[state as usize].load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "fig_proxy_circuit_transitions_total{{upstream=\"{}\",to=\"{}\"}} {count}",
                        escape(upstream),
                        state.as_str()
                    );
                }
            }
        }
        out.push_str("# HELP fig_proxy_outlier_ejections_total Addresses ejected after consecutive failures.\n");
        out.push_str("# TYPE fig_proxy_outlier_ejections_total counter\n");
        for (upstream, (_, guard)) in upstreams.iter() {
            let count = guard.counters.ejections.load(Ordering::Relaxed);
            if count > 0 {
                let _ = writeln!(
                    out,
                    "fig_proxy_outlier_ejections_total{{upstream=\"{}\"}} {count}",
                    escape(upstream)
                );
            }
        }
        out.push_str(
            "# HELP fig_proxy_shed_total Requests answered 503 without being sent, by reason.\n",
        );
        out.push_str("# TYPE fig_proxy_shed_total counter\n");
        for (upstream, (_, guard)) in upstreams.iter() {
            for (reason, counter) in [
                ("max-in-flight", &guard.counters.shed_in_flight),
                ("circuit-open", &guard.counters.shed_circuit_open),
            ] {
                let count = counter.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "fig_proxy_shed_total{{upstream=\"{}\",reason=\"{reason}\"}} {count}",
                        escape(upstream)
                    );
                }
            }
        }
        drop(upstreams);
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        out.push_str("# HELP fig_proxy_fallbacks_total Requests meant for a route's service that its fallback answered, by cause.\n");
        out.push_str("# TYPE fig_proxy_fallbacks_total counter\n");
        for (route, counters) in routes.iter() {
            for cause in Cause::ALL {
                let count = counters.fallbacks[cause as usize].load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "fig_proxy_fallbacks_total{{route=\"{}\",cause=\"{}\"}} {count}",
                        escape(route),
                        cause.as_str()
                    );
                }
            }
        }
        out.push_str(
            "# HELP fig_proxy_rate_limited_total Requests answered 429 by a route's rate limit.\n",
        );
        out.push_str("# TYPE fig_proxy_rate_limited_total counter\n");
        for (route, counters) in routes.iter() {
            let count = counters.rate_limited.load(Ordering::Relaxed);
            if count > 0 {
                let _ = writeln!(
                    out,
                    "fig_proxy_rate_limited_total{{route=\"{}\"}} {count}",
                    escape(route)
                );
            }
        }
    }
}

/// A Prometheus label value, escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
