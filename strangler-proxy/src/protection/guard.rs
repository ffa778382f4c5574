//! The counters of request-path protection and the registry of circuit breakers: per route
//! ([`RouteCounters`]: fallbacks by [`Cause`], rate-limited requests) and per upstream
//! ([`UpstreamGuard`]: its breaker and [`UpstreamCounters`]), held in [`GuardMetrics`] inside
//! `decision::series::Metrics`, keyed by name so that they survive reloads: a reload that leaves
//! an upstream's breaker settings as they were keeps its breaker, open or not.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::CircuitBreakerConfig;
use crate::protection::breaker::{Breaker, State, Transition};

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
    pub(crate) fn transition(&self, upstream: &str, transition: Transition) {
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
