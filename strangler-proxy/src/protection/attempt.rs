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
//! `guard::RouteCounters` and `guard::UpstreamCounters`.
//!
//! Those counters and the breakers are in `protection::guard`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::config::StatusSet;
use crate::error::{ErrorSource, ProxyErrorKind};
use crate::protection::breaker::{Nanos, Permit};
use crate::protection::guard::Cause;
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
