//! Fault injection for demos and tests: `PUT /_faults` makes the payment routes fail or slow
//! down on purpose, `GET /_faults` shows the faults in force, `DELETE /_faults` clears them.
//!
//! It lets a newcomer watch the strangler proxy protect users from a misbehaving new service
//! (fallback to the monolith, circuit breaker, automatic rollback on an SLO) without writing a
//! faulty server. The body of `PUT` is JSON, every field optional:
//! `{"error_rate": 1.0, "status": 500, "delay_ms": 0}`. Errors are spread evenly rather than
//! drawn at random, so a rate of 0.25 fails exactly every fourth request. Only `/payments/**`
//! is affected; `/healthz` keeps answering, as a real service whose database broke would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::ApiError;

/// Longest injected delay, in milliseconds; larger values are refused.
pub const MAX_DELAY_MS: u64 = 60_000;

/// The faults in force, shared by the routes of one server.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    settings: RwLock<Settings>,
    /// Requests seen since the settings last changed, to spread errors evenly.
    seen: AtomicU64,
}

/// What `PUT /_faults` sets and `GET /_faults` shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Share of requests answered with `status`, from 0 to 1.
    pub error_rate: f64,
    /// The status of an injected error: 4xx or 5xx.
    pub status: u16,
    /// Delay before every answer, in milliseconds.
    pub delay_ms: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            error_rate: 0.0,
            status: 500,
            delay_ms: 0,
        }
    }
}

impl Settings {
    fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "`error_rate` must be from 0 to 1, not {}",
                self.error_rate
            ));
        }
        if !(400..=599).contains(&self.status) {
            return Err(format!(
                "`status` must be an error status (400 to 599), not {}",
                self.status
            ));
        }
        if self.delay_ms > MAX_DELAY_MS {
            return Err(format!(
                "`delay_ms` must be at most {MAX_DELAY_MS}, not {}",
                self.delay_ms
            ));
        }
        Ok(())
    }
}

impl Faults {
    /// The faults in force.
    pub fn settings(&self) -> Settings {
        *self
            .inner
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the faults in force; the error spreading starts over.
    pub fn set(&self, settings: Settings) {
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings;
        self.inner.seen.store(0, Ordering::Relaxed);
    }

    /// Whether request number `n` (from 0) since the last change fails at `rate`: exactly when
    /// `floor((n + 1) * rate)` passes an integer, which fails `rate` of any run of requests.
    fn fails(n: u64, rate: f64) -> bool {
        ((n + 1) as f64 * rate).floor() > (n as f64 * rate).floor()
    }
}

/// Middleware of the payment routes: delays and fails requests as set.
pub async fn inject(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let settings = faults.settings();
    if settings.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(settings.delay_ms)).await;
    }
    if settings.error_rate > 0.0 {
        let n = faults.inner.seen.fetch_add(1, Ordering::Relaxed);
        if Faults::fails(n, settings.error_rate) {
            let status =
                StatusCode::from_u16(settings.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (
                status,
                Json(json!({ "error": "fault injected by PUT /_faults" })),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// `GET /_faults`.
pub async fn show(State(faults): State<Faults>) -> Json<Settings> {
    Json(faults.settings())
}

/// `PUT /_faults`.
pub async fn put(
    State(faults): State<Faults>,
    body: axum::body::Bytes,
) -> Result<Json<Settings>, ApiError> {
    let settings: Settings = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad_request(format!("invalid faults: {err}")))?;
    settings.check().map_err(ApiError::bad_request)?;
    faults.set(settings);
    Ok(Json(settings))
}

/// `DELETE /_faults`.
pub async fn clear(State(faults): State<Faults>) -> Json<Settings> {
    faults.set(Settings::default());
    Json(Settings::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_spread_evenly_at_the_rate() {
        for (rate, expected) in [(0.0, 0), (0.25, 25), (0.5, 50), (1.0, 100), (0.05, 5)] {
            let failed = (0..100).filter(|&n| Faults::fails(n, rate)).count();
            assert_eq!(failed, expected, "rate {rate}");
        }
        // A quarter fails every fourth request, not four in a row.
        let pattern: Vec<bool> = (0..8).map(|n| Faults::fails(n, 0.25)).collect();
        assert_eq!(
            pattern,
            [false, false, false, true, false, false, false, true]
        );
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let bad = [
            Settings {
                error_rate: 1.5,
                ..Settings::default()
            },
            Settings {
                status: 200,
                ..Settings::default()
            },
            Settings {
                delay_ms: MAX_DELAY_MS + 1,
                ..Settings::default()
            },
        ];
        for settings in bad {
            assert!(settings.check().is_err(), "{settings:?}");
        }
        assert!(Settings::default().check().is_ok());
    }
}
