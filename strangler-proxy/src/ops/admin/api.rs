//! The JSON documents of the admin API, as types: the proxy writes them (`admin.rs`) and
//! `fig route` reads them (`src/commands/route.rs`), so the two cannot drift apart.
//!
//! Fields a newer proxy adds are ignored by an older `fig route`, and fields an older proxy lacks
//! read as their default (`#[serde(default)]`), so both ends may be a version apart. The shapes
//! are documented in docs/proxy-config.md ("Admin API"); `SCHEMA_VERSION` changes only when one
//! changes incompatibly. Shapes that only the proxy makes (the shadow-traffic summary, the SLO
//! window) stay JSON values here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decision::state::PinInfo;

/// `GET /routes`: every route with its state, flag and counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutesDoc {
    /// `SCHEMA_VERSION` of the proxy that answered.
    pub schema_version: u32,
    /// The upstream of requests no route takes.
    pub default_upstream: String,
    /// Whether the flag store has loaded.
    pub flags_ready: bool,
    /// Why the flag store's last reload or poll failed, while nothing has succeeded since.
    #[serde(default)]
    pub flags_error: Option<String>,
    /// How old the flags served are, in seconds (see `FlagSource::staleness`).
    #[serde(default)]
    pub flags_staleness_seconds: Option<f64>,
    /// Where rollbacks are kept; `None` when they are kept in memory only.
    #[serde(default)]
    pub state_file: Option<String>,
    /// The routes, in the order they are tried.
    #[serde(default)]
    pub routes: Vec<RouteDoc>,
    /// The TLS certificates served (`[tls]`), in the order written; empty without TLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateDoc>,
}

/// One TLS certificate of [`RoutesDoc`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateDoc {
    /// The certificate file, which also names it in `fig_tls_certificate_expiry_seconds`.
    pub file: String,
    /// Its subject.
    pub subject: String,
    /// The SNI names it is served for.
    #[serde(default)]
    pub names: Vec<String>,
    /// Served to clients naming no host or an unknown one.
    #[serde(default)]
    pub default: bool,
    /// Its `notAfter`, RFC 3339.
    pub not_after: String,
    /// Seconds from now to `notAfter` (negative once expired).
    pub expires_in_seconds: i64,
}

/// One route of [`RoutesDoc`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteDoc {
    /// Its name.
    pub name: String,
    /// Whether its flag decides or it is rolled back.
    pub state: RouteState,
    /// What it matches.
    #[serde(rename = "match")]
    pub matcher: MatchDoc,
    /// The upstream requests go to when the flag is on (or when there is no flag).
    pub service: String,
    /// The upstream requests go to when the flag is off or the route is rolled back.
    pub fallback: String,
    /// The flag deciding per request.
    #[serde(default)]
    pub flag: Option<String>,
    /// The flag evaluated for a request without user or session; `None` without a flag.
    #[serde(default)]
    pub flag_enabled: Option<bool>,
    /// The flag for every request: `on` (for everyone), `off` (for everyone, or not loaded) or
    /// `varies` (its strategies decide per user: a gradual rollout, a user list); `None`
    /// without a flag.
    #[serde(default)]
    pub flag_state: Option<String>,
    /// The reason of the last decision (`flag-on`, `pinned`, ...); `None` before the first.
    #[serde(default)]
    pub last_decision: Option<String>,
    /// Responses per upstream since start.
    #[serde(default)]
    pub requests: BTreeMap<String, u64>,
    /// Failed upstream attempts since start (refused, reset, timed out: no response).
    #[serde(default)]
    pub errors: u64,
    /// Responses with a 5xx status the route answered since start, whoever made them (the
    /// service, the fallback or the proxy): what its SLO counts as errors.
    #[serde(default)]
    pub responses_5xx: u64,
    /// Who rolled it back, when and why; `None` unless it is rolled back.
    #[serde(default)]
    pub pin: Option<PinInfo>,
    /// Its SLO and what the SLO window holds now; `None` without an SLO.
    #[serde(default)]
    pub slo: Option<Value>,
    /// The circuit of its service; `None` when that breaker is off.
    #[serde(default)]
    pub circuit: Option<CircuitDoc>,
    /// Requests meant for the service that the fallback answered, by cause.
    #[serde(default)]
    pub fallbacks: BTreeMap<String, u64>,
    /// Requests refused by its rate limit.
    #[serde(default)]
    pub rate_limited: u64,
}

/// Whether a route's flag decides (`flag`) or it is rolled back (`pinned-to-monolith`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteState {
    /// Its flag decides.
    #[serde(rename = "flag")]
    Flag,
    /// Rolled back: every request goes to its fallback.
    #[serde(rename = "pinned-to-monolith")]
    Pinned,
}

impl RouteState {
    /// `pinned` or not.
    pub(crate) fn of(pinned: bool) -> RouteState {
        if pinned {
            RouteState::Pinned
        } else {
            RouteState::Flag
        }
    }

    /// The name in the JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RouteState::Flag => "flag",
            RouteState::Pinned => "pinned-to-monolith",
        }
    }
}

/// What a route matches, as in its `match` table: `{"pattern": "/payments/**", "methods": [],
/// "host": null, "headers": {"x-beta": "1", "x-canary": "*"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchDoc {
    /// The path condition, one key of `exact`, `prefix` or `pattern`.
    #[serde(flatten)]
    pub path: PathDoc,
    /// Allowed methods; empty allows all.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Required host.
    #[serde(default)]
    pub host: Option<String>,
    /// Required headers and their values; `*` only requires presence.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A path condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathDoc {
    /// The path is exactly this.
    Exact(String),
    /// The path is this or continues below it.
    Prefix(String),
    /// Segments with `*` and `**`.
    Pattern(String),
}

/// The circuit of a route's service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CircuitDoc {
    /// The service.
    pub upstream: String,
    /// `closed`, `open` or `half-open`.
    pub state: String,
    /// Requests in the breaker's window.
    #[serde(default)]
    pub window_requests: u64,
    /// Failures in the breaker's window.
    #[serde(default)]
    pub window_failures: u64,
    /// Addresses ejected now.
    #[serde(default)]
    pub ejected_addresses: u64,
}

/// `POST /routes/{name}/rollback` and `/restore`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PinAnswer {
    /// The route.
    pub route: String,
    /// Its state now.
    pub state: RouteState,
    /// Whether the call changed it.
    pub changed: bool,
}

/// `POST /reload`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadAnswer {
    /// Whether the new config is in force.
    pub reloaded: bool,
    /// Why it was refused (`FILE:LINE:COLUMN: reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Any refusal with a JSON body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// What went wrong, in words.
    pub error: String,
}
