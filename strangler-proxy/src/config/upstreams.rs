//! `[upstreams.NAME]`: each upstream's addresses and balancing, its health check, and what
//! protects requests to it (failure statuses, circuit breaker, outlier ejection, in-flight cap),
//! and how the proxy speaks to it: `protocol` (HTTP/1.1 or HTTP/2) and, for `https://` addresses,
//! `[upstreams.NAME.tls]` (CA file, SNI name, client certificate, `insecure_skip_verify`).

use std::collections::BTreeMap;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use toml::Spanned;

use super::RouteConfig;
use super::ctx::{Ctx, UnvalidatedConfig};
pub use crate::http::upstream_tls::UpstreamTls;
use crate::http::upstream_tls::{self, Setting, TlsSettings};

/// One upstream: a named pool of addresses.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Its name, used by routes and in the response header.
    pub name: String,
    /// Base URIs (`http://host:port`), at least one.
    pub addresses: Vec<Uri>,
    /// How requests are spread over the addresses.
    pub balance: Balance,
    /// Active health checking, if configured.
    pub health_check: Option<HealthCheck>,
    /// Response statuses that count as a failure of this upstream (circuit breaker, outlier
    /// ejection, fallback retry); connect errors and timeouts always do.
    pub failure_statuses: StatusSet,
    /// The circuit breaker.
    pub circuit_breaker: CircuitBreakerConfig,
    /// Ejection of misbehaving addresses.
    pub outlier_detection: OutlierConfig,
    /// Most requests in flight to this upstream; more are shed with 503. `None` is no cap.
    pub max_in_flight: Option<u32>,
    /// How long a request over `max_in_flight` may wait for a slot before it is shed.
    pub queue_timeout: Duration,
    /// The HTTP version spoken to it.
    pub protocol: Protocol,
    /// TLS to its addresses, when they are `https://`.
    pub tls: Option<UpstreamTls>,
}

/// The HTTP version the proxy speaks to an upstream (Envoy's `http2_protocol_options`, NGINX's
/// `grpc_pass`): gRPC needs `h2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// HTTP/1.1 (the default).
    #[serde(rename = "http1")]
    Http1,
    /// HTTP/2: negotiated over ALPN for `https://`, with prior knowledge (h2c) for `http://`.
    #[serde(rename = "h2")]
    H2,
}

/// A set of HTTP status codes (100..=599).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusSet([u64; 10]);

impl StatusSet {
    /// Every 5xx status.
    pub const SERVER_ERRORS: StatusSet = {
        let mut set = StatusSet([0; 10]);
        let mut code = 500;
        while code < 600 {
            set.0[code / 64] |= 1 << (code % 64);
            code += 1;
        }
        set
    };

    /// No status.
    pub const EMPTY: StatusSet = StatusSet([0; 10]);

    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        let code = usize::from(status);
        code < 640 && self.0[code / 64] & (1 << (code % 64)) != 0
    }

    /// Adds `status`.
    pub fn insert(&mut self, status: u16) {
        let code = usize::from(status);
        if code < 640 {
            self.0[code / 64] |= 1 << (code % 64);
        }
    }
}

/// The circuit breaker of an upstream (see `breaker.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitBreakerConfig {
    /// Whether the breaker is on.
    pub enabled: bool,
    /// Consecutive failures that open the circuit; 0 turns this trigger off.
    pub consecutive_failures: u32,
    /// Failure ratio (0..=1) over `window` that opens the circuit; 0 turns this trigger off.
    pub error_rate: f64,
    /// Requests `window` must hold before `error_rate` is judged.
    pub min_requests: u32,
    /// Length of the sliding window of `error_rate`.
    pub window: Duration,
    /// How long the circuit stays open before trial requests go through.
    pub open_for: Duration,
    /// Trial requests let through when half-open; that many successes close the circuit.
    pub half_open_requests: u32,
}

/// Outlier ejection of an upstream's addresses, as Envoy's outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Whether addresses are ejected.
    pub enabled: bool,
    /// Consecutive failures of one address that eject it.
    pub consecutive_failures: u32,
    /// Ejection time, multiplied by the number of times the address was ejected.
    pub base_ejection_time: Duration,
    /// Longest ejection.
    pub max_ejection_time: Duration,
    /// Most addresses ejected at once, in percent (at least one is always allowed).
    pub max_ejection_percent: u32,
}

/// Load balancing over an upstream's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Each address in turn.
    RoundRobin,
    /// The address with the fewest requests in flight.
    LeastConnections,
}

/// An active health check.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// Path requested with GET; any 2xx or 3xx is healthy.
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Time a check may take.
    pub timeout: Duration,
}

/// Envoy's outlier-detection defaults (`consecutive_5xx`, `base_ejection_time`,
/// `max_ejection_time`, `max_ejection_percent`).
const OUTLIER_DEFAULTS: OutlierConfig = OutlierConfig {
    enabled: true,
    consecutive_failures: 5,
    base_ejection_time: Duration::from_secs(30),
    max_ejection_time: Duration::from_secs(300),
    max_ejection_percent: 10,
};

/// Parses `http://host:port` or `https://host:port` (an optional trailing `/` is allowed) into a
/// base URI.
pub fn parse_upstream_address(text: &str) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|err| format!("invalid upstream address `{text}`: {err}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "upstream address `{text}` has scheme `{other}`; use http:// or https://"
            ));
        }
        None => {
            return Err(format!(
                "upstream address `{text}` needs a scheme, e.g. http://{text}"
            ));
        }
    }
    if uri.authority().is_none() {
        return Err(format!("upstream address `{text}` has no host"));
    }
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err(format!(
            "upstream address `{text}` has a path; give only scheme, host and port"
        ));
    }
    Ok(uri)
}

/// `[upstreams.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    addresses: Spanned<Vec<Spanned<String>>>,
    balance: Option<Balance>,
    health_check: Option<RawHealthCheck>,
    failure_statuses: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    circuit_breaker: Option<RawCircuitBreaker>,
    outlier_detection: Option<RawOutlier>,
    max_in_flight: Option<Spanned<i64>>,
    queue_timeout: Option<Spanned<String>>,
    protocol: Option<Protocol>,
    tls: Option<Spanned<RawTls>>,
}

/// `[upstreams.NAME.tls]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: Option<Spanned<String>>,
    server_name: Option<Spanned<String>>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
    insecure_skip_verify: Option<Spanned<bool>>,
}

impl RawUpstream {
    /// The upstream `--monolith URL` makes (no place in the file).
    pub(super) fn from_address(address: &str) -> RawUpstream {
        RawUpstream {
            addresses: Spanned::new(0..0, vec![Spanned::new(0..0, address.to_owned())]),
            balance: None,
            health_check: None,
            failure_statuses: None,
            circuit_breaker: None,
            outlier_detection: None,
            max_in_flight: None,
            queue_timeout: None,
            protocol: None,
            tls: None,
        }
    }

    /// Replaces the addresses (`--monolith URL` over `[upstreams.monolith]`).
    pub(super) fn set_address(&mut self, address: &str) {
        self.addresses = Spanned::new(0..0, vec![Spanned::new(0..0, address.to_owned())]);
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    path: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCircuitBreaker {
    enabled: Option<bool>,
    consecutive_failures: Option<Spanned<i64>>,
    error_rate: Option<Spanned<toml::Value>>,
    min_requests: Option<Spanned<i64>>,
    window: Option<Spanned<String>>,
    open_for: Option<Spanned<String>>,
    half_open_requests: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutlier {
    enabled: Option<bool>,
    consecutive_failures: Option<Spanned<i64>>,
    base_ejection_time: Option<Spanned<String>>,
    max_ejection_time: Option<Spanned<String>>,
    max_ejection_percent: Option<Spanned<i64>>,
}

/// The upstreams validated; whether each breaker is on waits for the routes
/// ([`Upstreams::with_breakers`]).
pub(super) struct Upstreams {
    list: Vec<UpstreamConfig>,
    /// `circuit_breaker.enabled` as written, per upstream of `list`.
    breaker_enabled: Vec<Option<bool>>,
}

impl Upstreams {
    /// The upstreams, sorted by name. A breaker left at its default is on only where it has
    /// somewhere to send requests: an upstream that is some route's service with another
    /// upstream as fallback.
    pub(super) fn with_breakers(self, routes: &[RouteConfig]) -> Vec<UpstreamConfig> {
        let mut list = self.list;
        for (upstream, explicit) in list.iter_mut().zip(self.breaker_enabled) {
            upstream.circuit_breaker.enabled = explicit.unwrap_or_else(|| {
                routes
                    .iter()
                    .any(|route| route.service == upstream.name && route.fallback != upstream.name)
            });
        }
        list
    }
}

impl UnvalidatedConfig for BTreeMap<Spanned<String>, RawUpstream> {
    type ValidCfg = Upstreams;

    fn validate(self, ctx: &mut Ctx<'_>) -> Upstreams {
        let mut list = Vec::with_capacity(self.len());
        let mut breaker_enabled = Vec::with_capacity(self.len());
        for (name, upstream) in self {
            ctx.check_name(&name, "upstream");
            breaker_enabled.push(
                upstream
                    .circuit_breaker
                    .as_ref()
                    .and_then(|breaker| breaker.enabled),
            );
            list.push(validate_upstream(ctx, name.into_inner(), upstream));
        }
        Upstreams {
            list,
            breaker_enabled,
        }
    }
}

fn validate_upstream(ctx: &mut Ctx<'_>, name: String, upstream: RawUpstream) -> UpstreamConfig {
    if upstream.addresses.get_ref().is_empty() {
        ctx.report(
            upstream.addresses.span(),
            format!("upstream `{name}` has no addresses"),
        );
    }
    let addresses: Vec<Uri> = upstream
        .addresses
        .get_ref()
        .iter()
        .filter_map(|address| ctx.check(address.span(), parse_upstream_address(address.get_ref())))
        .collect();
    let protocol = upstream.protocol.unwrap_or(Protocol::Http1);
    let tls = tls(ctx, &name, &upstream, &addresses, protocol);
    let health_check = upstream.health_check.as_ref().map(|check| {
        let path = check
            .path
            .as_ref()
            .map_or_else(|| "/".to_owned(), |p| p.get_ref().clone());
        if !path.starts_with('/') {
            let span = check.path.as_ref().map_or(0..0, Spanned::span);
            ctx.report(span, "health check `path` must start with `/`");
        }
        HealthCheck {
            path,
            interval: ctx.duration(check.interval.as_ref(), Duration::from_secs(5)),
            timeout: ctx.duration(check.timeout.as_ref(), Duration::from_secs(2)),
        }
    });
    UpstreamConfig {
        name,
        addresses,
        balance: upstream.balance.unwrap_or(Balance::RoundRobin),
        health_check,
        failure_statuses: failure_statuses(ctx, upstream.failure_statuses.as_ref()),
        circuit_breaker: circuit_breaker(ctx, upstream.circuit_breaker.as_ref()),
        outlier_detection: upstream
            .outlier_detection
            .as_ref()
            .map_or(OUTLIER_DEFAULTS, |outlier| outlier_detection(ctx, outlier)),
        max_in_flight: upstream
            .max_in_flight
            .as_ref()
            .map(|value| ctx.count(Some(value), 1, 1..=1_000_000, "max_in_flight")),
        queue_timeout: ctx.duration(upstream.queue_timeout.as_ref(), Duration::ZERO),
        protocol,
        tls,
    }
}

/// The TLS settings of an upstream whose addresses are `https://`, built (files read, keys
/// checked) now, so that a mistake in them is a mistake of the file; `None` for `http://`.
fn tls(
    ctx: &mut Ctx<'_>,
    name: &str,
    upstream: &RawUpstream,
    addresses: &[Uri],
    protocol: Protocol,
) -> Option<UpstreamTls> {
    let https = addresses
        .iter()
        .filter(|uri| uri.scheme_str() == Some("https"))
        .count();
    if https > 0 && https < addresses.len() {
        ctx.report(
            upstream.addresses.span(),
            format!(
                "upstream `{name}` mixes http:// and https:// addresses; give each its own upstream"
            ),
        );
        return None;
    }
    let raw = upstream.tls.as_ref();
    if https == 0 {
        if let Some(raw) = raw {
            ctx.report(
                raw.span(),
                format!("upstream `{name}` has a [tls] table but no https:// address"),
            );
        }
        return None;
    }
    let raw = raw.map(Spanned::get_ref);
    let field = |pick: fn(&RawTls) -> Option<&Spanned<String>>| raw.and_then(pick);
    let insecure = raw
        .and_then(|raw| raw.insecure_skip_verify.as_ref())
        .is_some_and(|value| *value.get_ref());
    let ca_value = field(|raw| raw.ca.as_ref());
    if insecure && let Some(ca) = ca_value {
        ctx.report(
            ca.span(),
            "`ca` and `insecure_skip_verify = true` contradict each other; keep one",
        );
    }
    let ca = match ca_value {
        Some(ca) => Some(ctx.path(ca.get_ref())),
        None => ctx.overrides.upstream_ca.clone(),
    };
    let cert = field(|raw| raw.client_cert.as_ref());
    let key = field(|raw| raw.client_key.as_ref());
    let cert_paths = match (cert, key) {
        (Some(cert), Some(key)) => Some((ctx.path(cert.get_ref()), ctx.path(key.get_ref()))),
        (Some(only), None) | (None, Some(only)) => {
            ctx.report(
                only.span(),
                "`client_cert` and `client_key` go together; give both",
            );
            None
        }
        (None, None) => None,
    };
    let server_name = field(|raw| raw.server_name.as_ref());
    let settings = TlsSettings {
        ca: ca.as_deref(),
        server_name: server_name.map(|name| name.get_ref().as_str()),
        client_cert: cert_paths
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path())),
        insecure_skip_verify: insecure,
        h2: protocol == Protocol::H2,
    };
    match upstream_tls::build(&settings) {
        Ok(tls) => Some(tls),
        Err(mistakes) => {
            for (setting, reason) in mistakes {
                let value = match setting {
                    Setting::Ca => ca_value,
                    Setting::ServerName => server_name,
                    Setting::ClientCert => cert,
                    Setting::ClientKey => key,
                    Setting::Roots => None,
                };
                match value {
                    Some(value) => ctx.report(value.span(), reason),
                    // `--upstream-ca`, or the system's roots: no place in the file.
                    None if setting == Setting::Ca => {
                        ctx.report_command_line(format!("--upstream-ca: {reason}"));
                    }
                    None => ctx.report(
                        upstream.addresses.span(),
                        format!("upstream `{name}`: {reason}"),
                    ),
                }
            }
            None
        }
    }
}

/// A warning for each upstream whose certificate is not verified, said at every start.
pub fn insecure_upstream_warnings(upstreams: &[UpstreamConfig]) -> Vec<String> {
    upstreams
        .iter()
        .filter(|upstream| upstream.tls.as_ref().is_some_and(|tls| tls.insecure))
        .map(|upstream| {
            format!(
                "upstream `{}` has `insecure_skip_verify = true`: its certificate is not verified, so anyone on the path can pose as it",
                upstream.name
            )
        })
        .collect()
}

fn failure_statuses(
    ctx: &mut Ctx<'_>,
    list: Option<&Spanned<Vec<Spanned<toml::Value>>>>,
) -> StatusSet {
    let Some(list) = list else {
        return StatusSet::SERVER_ERRORS;
    };
    let mut set = StatusSet::EMPTY;
    for item in list.get_ref() {
        let codes = match item.get_ref() {
            toml::Value::Integer(code) => u16::try_from(*code)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(|code| code..code + 1),
            toml::Value::String(class) => match class.trim().to_ascii_lowercase().as_bytes() {
                [d @ b'1'..=b'5', b'x', b'x'] => {
                    let digit = u16::from(d - b'0');
                    Some(digit * 100..digit * 100 + 100)
                }
                _ => None,
            },
            _ => None,
        };
        match codes {
            Some(codes) => codes.for_each(|code| set.insert(code)),
            None => ctx.report(
                item.span(),
                "a failure status is a code from 100 to 599 or a class like \"5xx\"",
            ),
        }
    }
    set
}

fn circuit_breaker(ctx: &mut Ctx<'_>, raw: Option<&RawCircuitBreaker>) -> CircuitBreakerConfig {
    let default_breaker = RawCircuitBreaker::default();
    let breaker = raw.unwrap_or(&default_breaker);
    let error_rate = match &breaker.error_rate {
        None => 0.5,
        Some(value) => {
            let rate = match value.get_ref() {
                toml::Value::Float(rate) => Some(*rate),
                toml::Value::Integer(0) => Some(0.0),
                toml::Value::Integer(1) => Some(1.0),
                toml::Value::String(text) => text
                    .trim()
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .map(|percent| percent / 100.0),
                _ => None,
            };
            match rate.filter(|r| (0.0..=1.0).contains(r)) {
                Some(rate) => rate,
                None => {
                    ctx.report(
                        value.span(),
                        "`error_rate` must be a fraction from 0 to 1 (0.5) or a percentage (\"50%\"); 0 turns it off",
                    );
                    0.5
                }
            }
        }
    };
    CircuitBreakerConfig {
        // Decided once the routes are known (`Upstreams::with_breakers`).
        enabled: breaker.enabled.unwrap_or(false),
        consecutive_failures: ctx.count(
            breaker.consecutive_failures.as_ref(),
            5,
            0..=1_000_000,
            "consecutive_failures",
        ),
        error_rate,
        min_requests: ctx.count(
            breaker.min_requests.as_ref(),
            20,
            1..=1_000_000,
            "min_requests",
        ),
        window: ctx.positive_duration(breaker.window.as_ref(), Duration::from_secs(10), "window"),
        open_for: ctx.positive_duration(
            breaker.open_for.as_ref(),
            Duration::from_secs(10),
            "open_for",
        ),
        half_open_requests: ctx.count(
            breaker.half_open_requests.as_ref(),
            3,
            1..=10_000,
            "half_open_requests",
        ),
    }
}

fn outlier_detection(ctx: &mut Ctx<'_>, outlier: &RawOutlier) -> OutlierConfig {
    let mark = ctx.mark();
    let base_ejection_time = ctx.positive_duration(
        outlier.base_ejection_time.as_ref(),
        OUTLIER_DEFAULTS.base_ejection_time,
        "base_ejection_time",
    );
    let max_ejection_time = ctx.duration(
        outlier.max_ejection_time.as_ref(),
        OUTLIER_DEFAULTS.max_ejection_time.max(base_ejection_time),
    );
    if max_ejection_time < base_ejection_time && !ctx.reported_since(mark) {
        let span = outlier
            .max_ejection_time
            .as_ref()
            .map_or(0..0, Spanned::span);
        ctx.report(
            span,
            "`max_ejection_time` must not be shorter than `base_ejection_time`",
        );
    }
    OutlierConfig {
        enabled: outlier.enabled.unwrap_or(true),
        consecutive_failures: ctx.count(
            outlier.consecutive_failures.as_ref(),
            OUTLIER_DEFAULTS.consecutive_failures,
            1..=1_000_000,
            "consecutive_failures",
        ),
        base_ejection_time,
        max_ejection_time,
        max_ejection_percent: ctx.count(
            outlier.max_ejection_percent.as_ref(),
            OUTLIER_DEFAULTS.max_ejection_percent,
            0..=100,
            "max_ejection_percent",
        ),
    }
}
