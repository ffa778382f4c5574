//! The proxy's configuration: a TOML file, command-line overrides, and validation.
//!
//! Parsing happens in two steps, as in cargo-deny: serde reads the file into `Raw*` types that keep
//! the span of every value (`toml::Spanned`), then [`validate`] turns them into [`Config`], the type
//! the proxy uses. Each mistake is reported once, as `file:line:column: reason`, pointing at the
//! value that is wrong. Every key, its default and an example are documented in
//! `docs/proxy-config.md`; keep the two in step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Uri};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{ConfigError, Error};

/// The upstream that gets every request no route takes, unless `server.default_upstream` says otherwise.
pub const MONOLITH: &str = "monolith";
/// The default response header naming the upstream that answered.
pub const DEFAULT_UPSTREAM_HEADER: &str = "x-fig-upstream";
/// The default admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";

/// A validated proxy configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; `None` for a config made of command-line flags only.
    pub path: Option<PathBuf>,
    /// Addresses the proxy listens on.
    pub listen: Vec<SocketAddr>,
    /// Runtime worker threads (`--workers`); `None` lets the CLI pick.
    pub workers: Option<usize>,
    /// Response header naming the upstream that answered; `None` turns it off.
    pub upstream_header: Option<HeaderName>,
    /// The upstream for requests no route matches, and the default fallback of routes.
    pub default_upstream: String,
    /// Forward the client's `Host` header (true) or the upstream address (false).
    pub preserve_host: bool,
    /// How long a shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Where route rollbacks are persisted; `None` keeps them in memory only.
    pub state_file: Option<PathBuf>,
    /// Where to write one line per request; `None` for no access log.
    pub access_log: Option<AccessLog>,
    /// Which server speaks HTTP/1 to clients.
    pub http1: Http1Server,
    /// Which client speaks HTTP/1 to upstreams.
    pub http1_client: Http1Server,
    /// Most client connections open at once on the proxy listeners; `None` derives it from the
    /// process's file limit (`connections::default_max_connections`).
    pub max_connections: Option<usize>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Size limits.
    pub limits: Limits,
    /// Upstreams, sorted by name.
    pub upstreams: Vec<UpstreamConfig>,
    /// Routes, in the order they are tried.
    pub routes: Vec<RouteConfig>,
    /// How the flag context of a request is built.
    pub context: ContextConfig,
    /// The flag store; `None` means no flags (every flagged route goes to its fallback).
    pub flags: Option<FlagStoreConfig>,
    /// How to change flags on Unleash (SLO rollbacks with `turn_off_flag`); `None` without an
    /// admin token.
    pub unleash_admin: Option<UnleashAdminConfig>,
    /// The admin API.
    pub admin: AdminConfig,
    /// Config-file watching.
    pub reload: ReloadConfig,
    /// Settings shared by every route's shadow traffic.
    pub shadow: ShadowSettings,
}

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// Timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting to an upstream.
    pub connect: Duration,
    /// Reading a client's request headers.
    pub header_read: Duration,
    /// Waiting for an upstream's response headers after the request was sent.
    pub request: Duration,
    /// The longest a body may go without progress once the response head is known: an upstream
    /// that sends nothing more of its response body, a client that reads nothing of it, or a
    /// request body that stops arriving.
    pub body_idle: Duration,
    /// From an HTTP/2 connection's start to the end of the client's first SETTINGS frame.
    pub h2_handshake: Duration,
    /// How long an HTTP/2 connection may have no stream open before it is shut down (GOAWAY).
    pub h2_idle: Duration,
    /// Time between keep-alive PINGs on an HTTP/2 connection.
    pub h2_ping_interval: Duration,
    /// How long a PING (or a graceful shutdown) may wait for the peer before the connection is
    /// closed.
    pub h2_ping_timeout: Duration,
}

/// Size limits on requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers) in bytes; larger gets 431.
    pub max_header_size: usize,
    /// Largest request body in bytes; larger gets 413. `None` is no limit.
    pub max_body_size: Option<u64>,
}

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

/// Which implementation speaks HTTP/1: to clients (`server.http1`), or to upstreams
/// (`server.http1_client`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Http1Server {
    /// The proxy's own, for what it speaks: as a server, plain requests (hyper's serves
    /// upgrades, streamed request bodies, `Expect`, h2c); as a client, requests whose body is
    /// all there and upgrades (hyper's sends streamed bodies).
    #[default]
    Fig,
    /// hyper's for everything (but upgrades to upstreams): the way back if the proxy's own
    /// misbehaves.
    Hyper,
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

/// One route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Its unique name.
    pub name: String,
    /// Which requests it takes.
    pub matcher: MatchConfig,
    /// The upstream requests go to when the flag is on (or when there is no flag).
    pub service: String,
    /// The flag deciding per request; `None` sends every matching request to `service`.
    pub flag: Option<String>,
    /// The upstream requests go to when the flag is off, or the route is rolled back.
    pub fallback: String,
    /// The service's SLO: when it is broken the route is rolled back (`slo.rs`).
    pub slo: Option<crate::slo::SloConfig>,
    /// Mirroring of a share of its requests to another upstream, with response comparison.
    pub shadow: Option<ShadowConfig>,
    /// Retrying failed idempotent requests of the service on the fallback.
    pub retry: RetryConfig,
    /// The route's rate limit, if any.
    pub rate_limit: Option<RateLimitConfig>,
    /// The protocols a request may upgrade to (`Upgrade`), lowercase; a request asking for
    /// another is forwarded as a plain one.
    pub upgrades: Vec<String>,
}

/// Retrying a request the service failed on the route's fallback, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Whether failed requests are retried on the fallback.
    pub enabled: bool,
    /// Methods safe to send twice.
    pub methods: Vec<Method>,
    /// Largest request body buffered so that it can be sent again.
    pub max_body: u64,
    /// Time the service gets before the request goes to the fallback; `None` is
    /// `timeouts.request`.
    pub per_try_timeout: Option<Duration>,
}

/// A token bucket per key: `burst` tokens, refilled at `rate` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Tokens added per `per`.
    pub rate: u32,
    /// The refill period of `rate`.
    pub per: Duration,
    /// Bucket size: requests allowed at once after an idle time.
    pub burst: u32,
    /// What each bucket belongs to.
    pub key: RateKey,
}

/// Whose bucket a request takes its token from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateKey {
    /// The user id of the flag context (`[context] user_id`); the client IP without one.
    User,
    /// The client IP (after `trusted_proxies`).
    Ip,
    /// One bucket for the whole route.
    Global,
}

/// What a route matches. All given conditions must hold.
#[derive(Debug, Clone)]
pub struct MatchConfig {
    /// The path condition.
    pub path: PathMatch,
    /// Allowed methods; empty allows all.
    pub methods: Vec<Method>,
    /// Required host (without port, lowercase); `*.example.com` matches any subdomain.
    pub host: Option<String>,
    /// Required headers with exact values; the value `*` only requires presence.
    pub headers: Vec<(HeaderName, Option<HeaderValue>)>,
}

/// A path condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The path is exactly this.
    Exact(String),
    /// The path is this or continues below it with `/` (segment-aware).
    Prefix(String),
    /// Segments: literals, `*` for exactly one segment, `**` for any number (also zero).
    Pattern(String),
}

/// How the flag context of a request is built.
#[derive(Debug, Clone)]
pub struct ContextConfig {
    /// Where the user id comes from; the first source with a value wins.
    pub user_id: Vec<ValueSource>,
    /// Where the session id comes from; the first source with a value wins.
    pub session_id: Vec<ValueSource>,
    /// Extra context properties, each from its source.
    pub properties: Vec<(String, ValueSource)>,
    /// The `environment` field of every context.
    pub environment: Option<String>,
    /// The `app_name` field of every context.
    pub app_name: Option<String>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Where a JWT comes from and how it is checked; needed by `jwt:` sources.
    pub jwt: Option<JwtConfig>,
}

/// Where a context value is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// A request header.
    Header(HeaderName),
    /// A request header set by a gateway in front: read only when the request's TCP peer is
    /// one of `trusted_proxies`, absent from anyone else (whom the gateway did not vouch for).
    TrustedHeader(HeaderName),
    /// A cookie.
    Cookie(String),
    /// A claim of the request's JWT (see [`JwtConfig`]).
    Jwt(String),
}

/// The request's JWT.
#[derive(Clone)]
pub struct JwtConfig {
    /// Where the token is: a header (with or without `Bearer `) or a cookie.
    pub from: TokenLocation,
    /// The key checking its signature; `None` reads claims without checking (logged as a warning).
    pub key: Option<(jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm)>,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Required `aud`, if any.
    pub audience: Option<String>,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("from", &self.from)
            .field("algorithm", &self.key.as_ref().map(|(_, alg)| *alg))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Where a JWT is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// A header; a `Bearer ` prefix is removed.
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
}

/// The flag store to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagStoreConfig {
    /// The embedded file store at this path.
    File(PathBuf),
    /// An Unleash server.
    Unleash {
        /// Base URL, e.g. `http://127.0.0.1:4242/api`.
        url: String,
        /// Client API token.
        token: String,
        /// Time between fetches.
        refresh: Duration,
        /// Where the last flags fetched are kept, to start from when the server is away;
        /// `None` uses the store's default (a file in the temporary directory).
        backup: Option<PathBuf>,
    },
}

/// Unleash's Admin API, used to turn a flag off after an SLO rollback.
#[derive(Clone, PartialEq, Eq)]
pub struct UnleashAdminConfig {
    /// The admin token.
    pub token: String,
    /// The project of the flags (default `default`).
    pub project: Option<String>,
    /// The environment whose flag is turned off (default `development`).
    pub environment: Option<String>,
}

impl std::fmt::Debug for UnleashAdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnleashAdminConfig")
            .field("project", &self.project)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// The admin API.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Its listener; `None` turns the admin API off.
    pub listen: Option<SocketAddr>,
    /// The bearer token; `None` means no token is asked (only allowed on loopback).
    pub token: Option<String>,
    /// Hosts the admin API answers besides its own address and the loopback names (`Host` and
    /// `Origin` are checked against them): lowercase `HOST` (any port) or `HOST:PORT`, or `*`
    /// for any host.
    pub allowed_hosts: Vec<String>,
    /// Where `fig proxy` keeps the token it generates at first start when no token is
    /// configured; `None` when `admin.generate_token = false` or there is no config file.
    pub generated_token_file: Option<PathBuf>,
}

/// Config-file watching.
#[derive(Debug, Clone, Copy)]
pub struct ReloadConfig {
    /// Poll the config file and reload it when it changes.
    pub watch: bool,
    /// Time between polls.
    pub poll_interval: Duration,
}

/// Values given on the command line; each replaces the one in the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`, one or more.
    pub listen: Vec<SocketAddr>,
    /// `--monolith URL`: the addresses of the `monolith` upstream.
    pub monolith: Option<String>,
    /// `--workers N`.
    pub workers: Option<usize>,
    /// `--admin ADDR`.
    pub admin: Option<SocketAddr>,
    /// `--admin-token-file F`.
    pub admin_token_file: Option<PathBuf>,
    /// `--flags FILE`: the embedded file store.
    pub flags_file: Option<PathBuf>,
    /// `--state-file F`.
    pub state_file: Option<PathBuf>,
    /// The Unleash admin token from the environment (`$FIG_UNLEASH_ADMIN_TOKEN`), used when
    /// `flags.unleash` has none.
    pub unleash_admin_token: Option<String>,
    /// The admin token `fig proxy` generated (`admin.generated_token_file`), used when the
    /// config names none, also on reload.
    pub generated_admin_token: Option<String>,
}

impl Config {
    /// Reads and validates a config file, then applies `overrides`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Config::parse(&text, Some(path), overrides)?)
    }

    /// Validates config text. `path` names the file in errors and anchors relative paths.
    pub fn parse(
        text: &str,
        path: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let file = path.map_or_else(|| "<config>".to_owned(), |p| p.display().to_string());
        let ctx = Ctx {
            file: &file,
            text,
            dir: path
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let span = err.span().unwrap_or(0..0);
            ctx.error(span, err.message().trim_end_matches('.').to_owned())
        })?;
        validate(raw, &ctx, path, overrides)
    }

    /// A config made of command-line flags only: everything goes to `--monolith`.
    pub fn from_overrides(overrides: &Overrides) -> Result<Config, ConfigError> {
        if overrides.monolith.is_none() {
            return Err(ConfigError {
                file: "<command line>".to_owned(),
                line: 0,
                column: 0,
                reason: "without --config, --monolith URL is required".to_owned(),
            });
        }
        let ctx = Ctx {
            file: "<command line>",
            text: "",
            dir: PathBuf::new(),
        };
        validate(RawConfig::default(), &ctx, None, overrides)
    }

    /// The upstream with this name.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|up| up.name == name)
    }

    /// The default place of the state file for a config file: `<dir>/<stem>.state.json`.
    pub fn default_state_file(config_path: &Path) -> PathBuf {
        let stem = config_path
            .file_stem()
            .map_or_else(|| "fig-proxy".into(), |s| s.to_string_lossy().into_owned());
        config_path.with_file_name(format!("{stem}.state.json"))
    }

    /// The default place of the generated admin token for a config file, next to the state
    /// file: `<dir>/<stem>.admin-token`.
    pub fn default_admin_token_file(config_path: &Path) -> PathBuf {
        let stem = config_path
            .file_stem()
            .map_or_else(|| "fig-proxy".into(), |s| s.to_string_lossy().into_owned());
        config_path.with_file_name(format!("{stem}.admin-token"))
    }
}

// ---------------------------------------------------------------------------------------------
// Raw types: what serde reads, with spans.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    upstreams: BTreeMap<Spanned<String>, RawUpstream>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    context: RawContext,
    flags: Option<RawFlags>,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    reload: RawReload,
    #[serde(default)]
    shadow: RawShadowSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<toml::Value>>,
    workers: Option<Spanned<i64>>,
    upstream_header: Option<Spanned<toml::Value>>,
    default_upstream: Option<Spanned<String>>,
    preserve_host: Option<bool>,
    drain_timeout: Option<Spanned<String>>,
    state_file: Option<Spanned<String>>,
    access_log: Option<Spanned<String>>,
    http1: Option<Http1Server>,
    http1_client: Option<Http1Server>,
    max_connections: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect: Option<Spanned<String>>,
    header_read: Option<Spanned<String>>,
    request: Option<Spanned<String>>,
    body_idle: Option<Spanned<String>>,
    h2_handshake: Option<Spanned<String>>,
    h2_idle: Option<Spanned<String>>,
    h2_ping_interval: Option<Spanned<String>>,
    h2_ping_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_header_size: Option<Spanned<toml::Value>>,
    max_body_size: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    addresses: Spanned<Vec<Spanned<String>>>,
    balance: Option<Balance>,
    health_check: Option<RawHealthCheck>,
    failure_statuses: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    circuit_breaker: Option<RawCircuitBreaker>,
    outlier_detection: Option<RawOutlier>,
    max_in_flight: Option<Spanned<i64>>,
    queue_timeout: Option<Spanned<String>>,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    enabled: Option<bool>,
    methods: Option<Vec<Spanned<String>>>,
    max_body: Option<Spanned<toml::Value>>,
    per_try_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    rate: Spanned<i64>,
    per: Option<Spanned<String>>,
    burst: Option<Spanned<i64>>,
    key: Option<RateKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    path: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Spanned<String>,
    #[serde(rename = "match")]
    matcher: Spanned<RawMatch>,
    service: Spanned<String>,
    flag: Option<Spanned<String>>,
    fallback: Option<Spanned<String>>,
    slo: Option<Spanned<RawSlo>>,
    shadow: Option<Spanned<RawShadow>>,
    retry: Option<RawRetry>,
    rate_limit: Option<Spanned<RawRateLimit>>,
    upgrades: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    max_error_rate: Option<Spanned<toml::Value>>,
    max_p99: Option<Spanned<String>>,
    window: Option<Spanned<String>>,
    min_requests: Option<Spanned<i64>>,
    turn_off_flag: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    prefix: Option<Spanned<String>>,
    exact: Option<Spanned<String>>,
    pattern: Option<Spanned<String>>,
    #[serde(default)]
    methods: Vec<Spanned<String>>,
    host: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContext {
    user_id: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    session_id: Vec<Spanned<String>>,
    #[serde(default)]
    properties: BTreeMap<Spanned<String>, Spanned<String>>,
    environment: Option<String>,
    app_name: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    jwt: Option<Spanned<RawJwt>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    from: Option<Spanned<String>>,
    algorithm: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    public_key_file: Option<Spanned<String>>,
    issuer: Option<String>,
    audience: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlags {
    file: Option<Spanned<String>>,
    unleash: Option<Spanned<RawUnleash>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnleash {
    url: Spanned<String>,
    token: Option<String>,
    token_file: Option<Spanned<String>>,
    refresh: Option<Spanned<String>>,
    backup_file: Option<Spanned<String>>,
    admin_token: Option<Spanned<String>>,
    admin_token_file: Option<Spanned<String>>,
    project: Option<String>,
    environment: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    #[serde(default)]
    allowed_hosts: Vec<Spanned<String>>,
    generate_token: Option<bool>,
    generated_token_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReload {
    watch: Option<bool>,
    poll_interval: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------
// Validation.

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    dir: PathBuf,
}

impl Ctx<'_> {
    fn error(&self, span: Range<usize>, reason: impl Into<String>) -> ConfigError {
        // An empty span at 0 marks a mistake with no place in the file (a missing table).
        let (line, column) = if self.text.is_empty() || span == (0..0) {
            (0, 0)
        } else {
            line_column(self.text, span.start)
        };
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            reason: reason.into(),
        }
    }

    fn path(&self, value: &str) -> PathBuf {
        let path = Path::new(value);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }

    fn duration(
        &self,
        value: Option<&Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        humantime::parse_duration(value.get_ref().trim()).map_err(|err| {
            self.error(
                value.span(),
                format!(
                    "invalid duration `{}` ({err}); write e.g. \"500ms\", \"5s\", \"2m\"",
                    value.get_ref()
                ),
            )
        })
    }

    fn size(&self, value: &Spanned<toml::Value>) -> Result<u64, ConfigError> {
        let bad = || {
            self.error(
                value.span(),
                "invalid size; write a number of bytes or a string like \"64KiB\", \"10MiB\", \"1GB\"",
            )
        };
        match value.get_ref() {
            toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| bad()),
            toml::Value::String(s) => parse_size(s).ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    fn read_secret(&self, value: &Spanned<String>) -> Result<String, ConfigError> {
        let path = self.path(value.get_ref());
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_owned())
            .map_err(|err| {
                self.error(
                    value.span(),
                    format!("cannot read {}: {err}", path.display()),
                )
            })
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Parses `123`, `64KiB`, `10MiB`, `1GB`, `512 kb` (binary units `KiB/MiB/GiB`, decimal `KB/MB/GB`).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits_end].parse().ok()?;
    let unit = text[digits_end..].trim().to_ascii_lowercase();
    let factor: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Parses `http://host:port` (an optional trailing `/` is allowed) into a base URI.
pub fn parse_upstream_address(text: &str) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|err| format!("invalid upstream address `{text}`: {err}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "upstream address `{text}` has scheme `{other}`; only http:// is supported"
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

fn parse_source(text: &str) -> Result<ValueSource, String> {
    let (kind, name) = text.split_once(':').ok_or_else(|| {
        format!(
            "invalid source `{text}`; write `header:NAME`, `trusted-header:NAME`, `cookie:NAME` or `jwt:CLAIM`"
        )
    })?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("source `{text}` has an empty name"));
    }
    match kind.trim() {
        "header" => HeaderName::try_from(name)
            .map(ValueSource::Header)
            .map_err(|_| format!("invalid header name `{name}`")),
        "trusted-header" => HeaderName::try_from(name)
            .map(ValueSource::TrustedHeader)
            .map_err(|_| format!("invalid header name `{name}`")),
        "cookie" => Ok(ValueSource::Cookie(name.to_owned())),
        "jwt" => Ok(ValueSource::Jwt(name.to_owned())),
        other => Err(format!(
            "unknown source kind `{other}`; use `header`, `trusted-header`, `cookie` or `jwt`"
        )),
    }
}

fn validate_pattern(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with('/') {
        return Err(format!("pattern `{pattern}` must start with `/`"));
    }
    for segment in pattern[1..].split('/') {
        if segment.contains('*') && segment != "*" && segment != "**" {
            return Err(format!(
                "pattern `{pattern}`: `*` and `**` must be a whole segment, found `{segment}`"
            ));
        }
    }
    Ok(())
}

fn validate(
    raw: RawConfig,
    ctx: &Ctx<'_>,
    path: Option<&Path>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let RawConfig {
        server,
        timeouts,
        limits,
        mut upstreams,
        routes: raw_routes,
        context,
        flags,
        admin,
        reload,
        shadow,
    } = raw;

    // Command-line overrides of upstreams go in before validation so routes can name them.
    if let Some(monolith) = &overrides.monolith {
        parse_upstream_address(monolith).map_err(|reason| ConfigError {
            file: "<command line>".to_owned(),
            line: 0,
            column: 0,
            reason: format!("--monolith: {reason}"),
        })?;
        let entry = upstreams
            .entry(Spanned::new(0..0, MONOLITH.to_owned()))
            .or_insert_with(|| RawUpstream {
                addresses: Spanned::new(0..0, Vec::new()),
                balance: None,
                health_check: None,
                failure_statuses: None,
                circuit_breaker: None,
                outlier_detection: None,
                max_in_flight: None,
                queue_timeout: None,
            });
        entry.addresses = Spanned::new(0..0, vec![Spanned::new(0..0, monolith.clone())]);
    }

    // [server]
    let mut listen = Vec::new();
    if let Some(value) = &server.listen {
        let items: Vec<&str> = match value.get_ref() {
            toml::Value::String(s) => vec![s.as_str()],
            toml::Value::Array(items) => items.iter().filter_map(toml::Value::as_str).collect(),
            _ => vec![],
        };
        if items.is_empty() {
            return Err(ctx.error(
                value.span(),
                "`listen` must be an address or a list of addresses like \"127.0.0.1:8000\"",
            ));
        }
        for item in items {
            listen.push(item.parse::<SocketAddr>().map_err(|_| {
                ctx.error(
                    value.span(),
                    format!("invalid listen address `{item}`; write IP:PORT, e.g. 0.0.0.0:8000"),
                )
            })?);
        }
    }
    if !overrides.listen.is_empty() {
        listen.clone_from(&overrides.listen);
    }
    if listen.is_empty() {
        listen.push(SocketAddr::from(([127, 0, 0, 1], 8000)));
    }
    let workers = match &server.workers {
        Some(n) if *n.get_ref() < 1 || *n.get_ref() > 1024 => {
            return Err(ctx.error(n.span(), "`workers` must be between 1 and 1024"));
        }
        Some(n) => Some(usize::try_from(*n.get_ref()).unwrap_or(1)),
        None => None,
    };
    let workers = overrides.workers.or(workers);
    let max_connections = match &server.max_connections {
        Some(n) => match usize::try_from(*n.get_ref()) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                return Err(ctx.error(
                    n.span(),
                    "`max_connections` must be at least 1; leave it out for a cap derived from the file limit",
                ));
            }
        },
        None => None,
    };
    let upstream_header = match &server.upstream_header {
        None => Some(HeaderName::from_static(DEFAULT_UPSTREAM_HEADER)),
        Some(value) => match value.get_ref() {
            toml::Value::Boolean(false) => None,
            toml::Value::Boolean(true) => Some(HeaderName::from_static(DEFAULT_UPSTREAM_HEADER)),
            toml::Value::String(name) => {
                Some(HeaderName::try_from(name.as_str()).map_err(|_| {
                    ctx.error(value.span(), format!("invalid header name `{name}`"))
                })?)
            }
            _ => {
                return Err(ctx.error(
                    value.span(),
                    "`upstream_header` must be a header name or false",
                ));
            }
        },
    };
    let drain_timeout = ctx.duration(server.drain_timeout.as_ref(), Duration::from_secs(30))?;
    let state_file = match (&overrides.state_file, &server.state_file) {
        (Some(file), _) => Some(file.clone()),
        (None, Some(file)) => Some(ctx.path(file.get_ref())),
        (None, None) => path.map(Config::default_state_file),
    };
    let access_log = server
        .access_log
        .as_ref()
        .map(|value| match value.get_ref().as_str() {
            "stdout" | "-" => AccessLog::Stdout,
            file => AccessLog::File(ctx.path(file)),
        });

    // [timeouts] and [limits]
    let timeouts = Timeouts {
        connect: ctx.duration(timeouts.connect.as_ref(), Duration::from_secs(5))?,
        header_read: ctx.duration(timeouts.header_read.as_ref(), Duration::from_secs(30))?,
        request: ctx.duration(timeouts.request.as_ref(), Duration::from_secs(60))?,
        body_idle: ctx.positive_duration(
            timeouts.body_idle.as_ref(),
            Duration::from_secs(60),
            "body_idle",
        )?,
        h2_handshake: ctx.positive_duration(
            timeouts.h2_handshake.as_ref(),
            Duration::from_secs(10),
            "h2_handshake",
        )?,
        h2_idle: ctx.positive_duration(
            timeouts.h2_idle.as_ref(),
            Duration::from_secs(60),
            "h2_idle",
        )?,
        h2_ping_interval: ctx.positive_duration(
            timeouts.h2_ping_interval.as_ref(),
            Duration::from_secs(60),
            "h2_ping_interval",
        )?,
        h2_ping_timeout: ctx.positive_duration(
            timeouts.h2_ping_timeout.as_ref(),
            Duration::from_secs(20),
            "h2_ping_timeout",
        )?,
    };
    let max_header_size = match &limits.max_header_size {
        Some(value) => {
            let size = ctx.size(value)?;
            if !(8192..=16 << 20).contains(&size) {
                return Err(ctx.error(
                    value.span(),
                    "`max_header_size` must be between 8KiB and 16MiB",
                ));
            }
            usize::try_from(size).unwrap_or(usize::MAX)
        }
        None => 64 << 10,
    };
    let max_body_size = limits
        .max_body_size
        .as_ref()
        .map(|value| ctx.size(value))
        .transpose()?;

    // [upstreams.NAME]
    let mut upstream_list = Vec::with_capacity(upstreams.len());
    for (name, upstream) in &upstreams {
        check_name(ctx, name, "upstream")?;
        if upstream.addresses.get_ref().is_empty() {
            return Err(ctx.error(
                upstream.addresses.span(),
                format!("upstream `{}` has no addresses", name.get_ref()),
            ));
        }
        let mut addresses = Vec::new();
        for address in upstream.addresses.get_ref() {
            addresses.push(
                parse_upstream_address(address.get_ref())
                    .map_err(|reason| ctx.error(address.span(), reason))?,
            );
        }
        let health_check = match &upstream.health_check {
            None => None,
            Some(check) => {
                let path = check
                    .path
                    .as_ref()
                    .map_or_else(|| "/".to_owned(), |p| p.get_ref().clone());
                if !path.starts_with('/') {
                    let span = check.path.as_ref().map_or(0..0, Spanned::span);
                    return Err(ctx.error(span, "health check `path` must start with `/`"));
                }
                Some(HealthCheck {
                    path,
                    interval: ctx.duration(check.interval.as_ref(), Duration::from_secs(5))?,
                    timeout: ctx.duration(check.timeout.as_ref(), Duration::from_secs(2))?,
                })
            }
        };
        let guard = validate_upstream_guard(ctx, upstream)?;
        upstream_list.push(UpstreamConfig {
            name: name.get_ref().clone(),
            addresses,
            balance: upstream.balance.unwrap_or(Balance::RoundRobin),
            health_check,
            failure_statuses: guard.failure_statuses,
            circuit_breaker: guard.circuit_breaker,
            outlier_detection: guard.outlier_detection,
            max_in_flight: guard.max_in_flight,
            queue_timeout: guard.queue_timeout,
        });
    }
    let upstream_exists = |name: &str| upstreams.keys().any(|key| key.get_ref() == name);

    let default_upstream = match &server.default_upstream {
        Some(name) if !upstream_exists(name.get_ref()) => {
            return Err(ctx.error(
                name.span(),
                format!("no upstream named `{}`", name.get_ref()),
            ));
        }
        Some(name) => name.get_ref().clone(),
        None => {
            if !upstream_exists(MONOLITH) {
                return Err(ctx.error(
                    0..0,
                    "no upstream named `monolith`: add [upstreams.monolith] with its addresses, pass --monolith URL, or set server.default_upstream",
                ));
            }
            MONOLITH.to_owned()
        }
    };

    // [[routes]]
    let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw_routes.len());
    // Where each `turn_off_flag = true` is, checked against `[flags]` below.
    let mut turn_off_flags = Vec::new();
    for route in raw_routes {
        check_name(ctx, &route.name, "route")?;
        if routes.iter().any(|r| &r.name == route.name.get_ref()) {
            return Err(ctx.error(
                route.name.span(),
                format!(
                    "a route named `{}` is already defined",
                    route.name.get_ref()
                ),
            ));
        }
        let matcher = validate_match(ctx, &route.matcher)?;
        for target in [Some(&route.service), route.fallback.as_ref()]
            .into_iter()
            .flatten()
        {
            if !upstream_exists(target.get_ref()) {
                return Err(ctx.error(
                    target.span(),
                    format!("no upstream named `{}`", target.get_ref()),
                ));
            }
        }
        if let Some(flag) = &route.flag
            && flag.get_ref().trim().is_empty()
        {
            return Err(ctx.error(
                flag.span(),
                "`flag` is empty; remove it to route without a flag",
            ));
        }
        let slo = route
            .slo
            .as_ref()
            .map(|slo| validate_slo(ctx, slo, route.flag.is_some()))
            .transpose()?;
        if let Some(on) = route
            .slo
            .as_ref()
            .and_then(|slo| slo.get_ref().turn_off_flag.as_ref())
            && *on.get_ref()
        {
            turn_off_flags.push(on.span());
        }
        let retry = validate_retry(ctx, route.retry.as_ref())?;
        let rate_limit = route
            .rate_limit
            .as_ref()
            .map(|limit| validate_rate_limit(ctx, limit))
            .transpose()?;
        routes.push(RouteConfig {
            name: route.name.get_ref().clone(),
            matcher,
            service: route.service.get_ref().clone(),
            flag: route.flag.map(Spanned::into_inner),
            fallback: route
                .fallback
                .map_or_else(|| default_upstream.clone(), Spanned::into_inner),
            slo,
            shadow: route
                .shadow
                .map(|raw| validate_shadow(ctx, raw, &upstream_exists))
                .transpose()?,
            retry,
            rate_limit,
            upgrades: validate_upgrades(ctx, route.upgrades.as_deref())?,
        });
    }
    // A breaker left at its default is on only where it has somewhere to send requests: an
    // upstream that is some route's service with another upstream as fallback.
    for upstream in &mut upstream_list {
        let explicit = upstreams
            .iter()
            .find(|(key, _)| key.get_ref() == &upstream.name)
            .and_then(|(_, raw)| raw.circuit_breaker.as_ref())
            .and_then(|breaker| breaker.enabled);
        upstream.circuit_breaker.enabled = explicit.unwrap_or_else(|| {
            routes
                .iter()
                .any(|route| route.service == upstream.name && route.fallback != upstream.name)
        });
    }

    let context = validate_context(ctx, context)?;

    // [flags]
    let mut unleash_admin = None;
    let mut flags = match flags {
        None => None,
        Some(RawFlags {
            file: Some(_),
            unleash: Some(unleash),
        }) => {
            return Err(ctx.error(
                unleash.span(),
                "give either `flags.file` or `flags.unleash`, not both",
            ));
        }
        Some(RawFlags {
            file: Some(file),
            unleash: None,
        }) => Some(FlagStoreConfig::File(ctx.path(file.get_ref()))),
        Some(RawFlags {
            file: None,
            unleash: Some(unleash),
        }) => {
            let span = unleash.span();
            let unleash = unleash.into_inner();
            let admin_token = match (&unleash.admin_token, &unleash.admin_token_file) {
                (Some(_), Some(file)) => {
                    return Err(ctx.error(
                        file.span(),
                        "give either `admin_token` or `admin_token_file`, not both",
                    ));
                }
                (Some(token), None) => Some(token.get_ref().trim().to_owned()),
                (None, Some(file)) => Some(ctx.read_secret(file)?),
                (None, None) => overrides.unleash_admin_token.clone(),
            };
            unleash_admin =
                admin_token
                    .filter(|token| !token.is_empty())
                    .map(|token| UnleashAdminConfig {
                        token,
                        project: unleash.project.clone(),
                        environment: unleash.environment.clone(),
                    });
            let token = match (unleash.token, &unleash.token_file) {
                (Some(token), None) => token,
                (None, Some(file)) => ctx.read_secret(file)?,
                _ => {
                    return Err(ctx.error(
                        span,
                        "`flags.unleash` needs exactly one of `token` or `token_file`",
                    ));
                }
            };
            Some(FlagStoreConfig::Unleash {
                url: unleash.url.into_inner(),
                token,
                refresh: ctx.duration(unleash.refresh.as_ref(), Duration::from_secs(15))?,
                backup: unleash
                    .backup_file
                    .as_ref()
                    .map(|file| ctx.path(file.get_ref())),
            })
        }
        Some(RawFlags {
            file: None,
            unleash: None,
        }) => None,
    };
    if let Some(file) = &overrides.flags_file {
        flags = Some(FlagStoreConfig::File(file.clone()));
        unleash_admin = None;
    }
    for span in turn_off_flags {
        match &flags {
            None => {
                return Err(ctx.error(
                    span,
                    "`turn_off_flag` needs a flag store: add [flags] or pass --flags FILE",
                ));
            }
            Some(FlagStoreConfig::Unleash { .. }) if unleash_admin.is_none() => {
                return Err(ctx.error(
                    span,
                    "`turn_off_flag` with Unleash needs an admin token: set `admin_token_file` in `flags.unleash` or $FIG_UNLEASH_ADMIN_TOKEN",
                ));
            }
            Some(_) => {}
        }
    }

    // [admin]
    let admin_listen = match &admin.listen {
        Some(value) if value.get_ref() == "off" => None,
        Some(value) => Some(value.get_ref().parse::<SocketAddr>().map_err(|_| {
            ctx.error(
                value.span(),
                format!(
                    "invalid admin address `{}`; write IP:PORT or \"off\"",
                    value.get_ref()
                ),
            )
        })?),
        None => DEFAULT_ADMIN_LISTEN.parse().ok(),
    };
    let admin_listen = overrides.admin.or(admin_listen);
    let mut admin_token = match (&admin.token, &admin.token_file) {
        (Some(_), Some(file)) => {
            return Err(ctx.error(
                file.span(),
                "give either `admin.token` or `admin.token_file`, not both",
            ));
        }
        (Some(token), None) => Some(token.get_ref().clone()),
        (None, Some(file)) => Some(ctx.read_secret(file)?),
        (None, None) => overrides.generated_admin_token.clone(),
    };
    if let Some(file) = &overrides.admin_token_file {
        let token = std::fs::read_to_string(file).map_err(|err| ConfigError {
            file: "<command line>".to_owned(),
            line: 0,
            column: 0,
            reason: format!("--admin-token-file: cannot read {}: {err}", file.display()),
        })?;
        admin_token = Some(token.trim().to_owned());
    }
    if let Some(token) = &admin_token
        && token.is_empty()
    {
        let span = admin
            .token_file
            .as_ref()
            .or(admin.token.as_ref())
            .map_or(0..0, Spanned::span);
        return Err(ctx.error(span, "the admin token is empty"));
    }
    if let Some(addr) = admin_listen
        && admin_token.is_none()
        && !addr.ip().is_loopback()
    {
        let span = admin.listen.as_ref().map_or(0..0, Spanned::span);
        return Err(ctx.error(span, format!("the admin API on non-loopback address {addr} needs `admin.token` or `admin.token_file`")));
    }
    let mut allowed_hosts = Vec::with_capacity(admin.allowed_hosts.len());
    for host in &admin.allowed_hosts {
        let text = host.get_ref().trim().to_ascii_lowercase();
        if text != "*" && http::uri::Authority::try_from(text.as_str()).is_err() {
            return Err(ctx.error(
                host.span(),
                format!(
                    "invalid host `{}` in `allowed_hosts`; write a name or address, with or without :PORT, or \"*\"",
                    host.get_ref()
                ),
            ));
        }
        allowed_hosts.push(text);
    }
    let generated_token_file = match (admin.generate_token, &admin.generated_token_file) {
        (Some(false), _) => None,
        (_, Some(file)) => Some(ctx.path(file.get_ref())),
        (_, None) => path.map(Config::default_admin_token_file),
    };

    let reload = ReloadConfig {
        watch: reload.watch.unwrap_or(true),
        poll_interval: ctx.duration(reload.poll_interval.as_ref(), Duration::from_secs(1))?,
    };

    let shadow = validate_shadow_settings(ctx, shadow, state_file.as_deref())?;
    Ok(Config {
        path: path.map(Path::to_path_buf),
        listen,
        workers,
        upstream_header,
        default_upstream,
        preserve_host: server.preserve_host.unwrap_or(true),
        drain_timeout,
        state_file,
        access_log,
        http1: server.http1.unwrap_or_default(),
        http1_client: server.http1_client.unwrap_or_default(),
        max_connections,
        timeouts,
        limits: Limits {
            max_header_size,
            max_body_size,
        },
        upstreams: upstream_list,
        routes,
        context,
        flags,
        unleash_admin,
        admin: AdminConfig {
            listen: admin_listen,
            token: admin_token,
            allowed_hosts,
            generated_token_file,
        },
        reload,
        shadow,
    })
}

fn check_name(ctx: &Ctx<'_>, name: &Spanned<String>, what: &str) -> Result<(), ConfigError> {
    let ok = !name.get_ref().is_empty()
        && !name.get_ref().starts_with('_')
        && name
            .get_ref()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ctx.error(
            name.span(),
            format!(
                "invalid {what} name `{}`; use letters, digits, `-`, `_` and `.`, not starting with `_`",
                name.get_ref()
            ),
        ))
    }
}

fn validate_match(ctx: &Ctx<'_>, matcher: &Spanned<RawMatch>) -> Result<MatchConfig, ConfigError> {
    let raw = matcher.get_ref();
    let path = match (&raw.prefix, &raw.exact, &raw.pattern) {
        (Some(prefix), None, None) => {
            if !prefix.get_ref().starts_with('/') {
                return Err(ctx.error(prefix.span(), "`prefix` must start with `/`"));
            }
            PathMatch::Prefix(prefix.get_ref().clone())
        }
        (None, Some(exact), None) => {
            if !exact.get_ref().starts_with('/') {
                return Err(ctx.error(exact.span(), "`exact` must start with `/`"));
            }
            PathMatch::Exact(exact.get_ref().clone())
        }
        (None, None, Some(pattern)) => {
            validate_pattern(pattern.get_ref())
                .map_err(|reason| ctx.error(pattern.span(), reason))?;
            PathMatch::Pattern(pattern.get_ref().clone())
        }
        _ => {
            return Err(ctx.error(
                matcher.span(),
                "`match` needs exactly one of `prefix`, `exact` or `pattern`",
            ));
        }
    };
    // Requests are matched with their path in normal form (target.rs): a path that is not never
    // matches.
    let (PathMatch::Exact(written) | PathMatch::Prefix(written) | PathMatch::Pattern(written)) =
        &path;
    if let Some(reason) = crate::target::route_path_problem(written) {
        let span = [&raw.prefix, &raw.exact, &raw.pattern]
            .into_iter()
            .flatten()
            .next()
            .map_or_else(|| matcher.span(), Spanned::span);
        return Err(ctx.error(span, reason));
    }
    let mut methods = Vec::new();
    for method in &raw.methods {
        let upper = method.get_ref().to_ascii_uppercase();
        methods.push(Method::from_bytes(upper.as_bytes()).map_err(|_| {
            ctx.error(
                method.span(),
                format!("invalid method `{}`", method.get_ref()),
            )
        })?);
    }
    let host = raw
        .host
        .as_ref()
        .map(|host| host.get_ref().to_ascii_lowercase());
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let header = HeaderName::try_from(name.get_ref().as_str()).map_err(|_| {
            ctx.error(
                name.span(),
                format!("invalid header name `{}`", name.get_ref()),
            )
        })?;
        let value = if value.get_ref() == "*" {
            None
        } else {
            Some(
                HeaderValue::try_from(value.get_ref().as_str()).map_err(|_| {
                    ctx.error(
                        value.span(),
                        format!("invalid header value `{}`", value.get_ref()),
                    )
                })?,
            )
        };
        headers.push((header, value));
    }
    Ok(MatchConfig {
        path,
        methods,
        host,
        headers,
    })
}

fn validate_context(ctx: &Ctx<'_>, raw: RawContext) -> Result<ContextConfig, ConfigError> {
    let sources = |list: &[Spanned<String>]| -> Result<Vec<ValueSource>, ConfigError> {
        list.iter()
            .map(|item| {
                parse_source(item.get_ref()).map_err(|reason| ctx.error(item.span(), reason))
            })
            .collect()
    };
    let user_id = match &raw.user_id {
        Some(list) => sources(list)?,
        None => vec![ValueSource::Header(HeaderName::from_static("x-user-id"))],
    };
    let session_id = sources(&raw.session_id)?;
    let mut properties = Vec::new();
    for (name, source) in &raw.properties {
        properties.push((
            name.get_ref().clone(),
            parse_source(source.get_ref()).map_err(|reason| ctx.error(source.span(), reason))?,
        ));
    }
    let mut trusted_proxies = Vec::new();
    for item in &raw.trusted_proxies {
        let text = item.get_ref().trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| ctx.error(item.span(), format!("invalid address or CIDR `{text}`")))?;
        trusted_proxies.push(net);
    }
    let uses_trusted_header = user_id
        .iter()
        .chain(&session_id)
        .chain(properties.iter().map(|(_, source)| source))
        .any(|source| matches!(source, ValueSource::TrustedHeader(_)));
    if uses_trusted_header && trusted_proxies.is_empty() {
        let span = raw
            .user_id
            .iter()
            .flatten()
            .chain(&raw.session_id)
            .chain(raw.properties.values())
            .find(|item| item.get_ref().trim_start().starts_with("trusted-header:"))
            .map_or(0..0, Spanned::span);
        return Err(ctx.error(
            span,
            "a `trusted-header:` source needs `trusted_proxies`: the peers whose header is believed",
        ));
    }
    let jwt = raw.jwt.map(|jwt| validate_jwt(ctx, jwt)).transpose()?;
    let uses_jwt = user_id
        .iter()
        .chain(&session_id)
        .chain(properties.iter().map(|(_, source)| source))
        .any(|source| matches!(source, ValueSource::Jwt(_)));
    if uses_jwt && jwt.is_none() {
        let span = raw
            .user_id
            .iter()
            .flatten()
            .chain(&raw.session_id)
            .find(|item| item.get_ref().starts_with("jwt:"))
            .map_or(0..0, Spanned::span);
        return Err(ctx.error(span, "a `jwt:` source needs a [context.jwt] table"));
    }
    Ok(ContextConfig {
        user_id,
        session_id,
        properties,
        environment: raw.environment,
        app_name: raw.app_name,
        trusted_proxies,
        jwt,
    })
}

fn validate_jwt(ctx: &Ctx<'_>, jwt: Spanned<RawJwt>) -> Result<JwtConfig, ConfigError> {
    use jsonwebtoken::{Algorithm, DecodingKey};
    let span = jwt.span();
    let jwt = jwt.into_inner();
    let from = match &jwt.from {
        None => TokenLocation::Header(http::header::AUTHORIZATION),
        Some(value) => match parse_source(value.get_ref()) {
            Ok(ValueSource::Header(name)) => TokenLocation::Header(name),
            Ok(ValueSource::Cookie(name)) => TokenLocation::Cookie(name),
            Ok(ValueSource::Jwt(_) | ValueSource::TrustedHeader(_)) => {
                return Err(ctx.error(
                    value.span(),
                    "`from` must be `header:NAME` or `cookie:NAME`",
                ));
            }
            Err(reason) => return Err(ctx.error(value.span(), reason)),
        },
    };
    let algorithm = match jwt
        .algorithm
        .as_ref()
        .map(|a| a.get_ref().to_ascii_uppercase())
    {
        None => None,
        Some(alg) if alg == "HS256" => Some(Algorithm::HS256),
        Some(alg) if alg == "RS256" => Some(Algorithm::RS256),
        Some(other) => {
            let span = jwt.algorithm.as_ref().map_or(span.clone(), Spanned::span);
            return Err(ctx.error(
                span,
                format!("unsupported algorithm `{other}`; use HS256 or RS256"),
            ));
        }
    };
    let secret = match (&jwt.secret, &jwt.secret_file) {
        (Some(_), Some(file)) => {
            return Err(ctx.error(
                file.span(),
                "give either `secret` or `secret_file`, not both",
            ));
        }
        (Some(secret), None) => Some(secret.get_ref().clone()),
        (None, Some(file)) => Some(ctx.read_secret(file)?),
        (None, None) => None,
    };
    let key = match (algorithm, secret, &jwt.public_key_file) {
        (None, None, None) => None,
        (Some(Algorithm::HS256) | None, Some(secret), None) => Some((
            DecodingKey::from_secret(secret.as_bytes()),
            Algorithm::HS256,
        )),
        (Some(Algorithm::RS256) | None, None, Some(file)) => {
            let path = ctx.path(file.get_ref());
            let pem = std::fs::read(&path).map_err(|err| {
                ctx.error(
                    file.span(),
                    format!("cannot read {}: {err}", path.display()),
                )
            })?;
            let key = DecodingKey::from_rsa_pem(&pem).map_err(|err| {
                ctx.error(
                    file.span(),
                    format!("{} is not an RSA public key in PEM: {err}", path.display()),
                )
            })?;
            Some((key, Algorithm::RS256))
        }
        (Some(Algorithm::HS256), _, _) => {
            return Err(ctx.error(
                span,
                "HS256 needs `secret` or `secret_file` (and no `public_key_file`)",
            ));
        }
        (Some(_), _, _) => {
            return Err(ctx.error(span, "RS256 needs `public_key_file` (and no `secret`)"));
        }
        (None, _, _) => {
            return Err(ctx.error(
                span,
                "give either a secret (HS256) or `public_key_file` (RS256), not both",
            ));
        }
    };
    Ok(JwtConfig {
        from,
        key,
        issuer: jwt.issuer,
        audience: jwt.audience,
    })
}

/// Validates a route's `slo` table; `has_flag` says whether the route has a flag to turn off.
fn validate_slo(
    ctx: &Ctx<'_>,
    slo: &Spanned<RawSlo>,
    has_flag: bool,
) -> Result<crate::slo::SloConfig, ConfigError> {
    let raw = slo.get_ref();
    let max_error_rate = match &raw.max_error_rate {
        None => None,
        Some(value) => {
            let rate = match value.get_ref() {
                toml::Value::Float(rate) => Some(*rate),
                toml::Value::Integer(0) => Some(0.0),
                toml::Value::String(text) => text
                    .trim()
                    .strip_suffix('%')
                    .and_then(|number| number.trim().parse::<f64>().ok())
                    .map(|percent| percent / 100.0),
                _ => None,
            };
            match rate {
                Some(rate) if (0.0..1.0).contains(&rate) => Some(rate),
                _ => {
                    return Err(ctx.error(
                        value.span(),
                        "invalid `max_error_rate`; write a fraction below 1 like 0.05, or a percentage like \"5%\"",
                    ));
                }
            }
        }
    };
    let max_p99 = match &raw.max_p99 {
        None => None,
        Some(value) => {
            let max = ctx.duration(Some(value), Duration::ZERO)?;
            if max.is_zero() {
                return Err(ctx.error(value.span(), "`max_p99` must be more than 0"));
            }
            Some(max)
        }
    };
    if max_error_rate.is_none() && max_p99.is_none() {
        return Err(ctx.error(
            slo.span(),
            "`slo` needs `max_error_rate`, `max_p99` or both",
        ));
    }
    let window = ctx.duration(raw.window.as_ref(), crate::slo::DEFAULT_WINDOW)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&window) {
        let span = raw.window.as_ref().map_or(0..0, Spanned::span);
        return Err(ctx.error(span, "`window` must be between 1s and 1h"));
    }
    let min_requests = match &raw.min_requests {
        None => crate::slo::DEFAULT_MIN_REQUESTS,
        Some(n) => u64::try_from(*n.get_ref())
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ctx.error(n.span(), "`min_requests` must be at least 1"))?,
    };
    let turn_off_flag = raw.turn_off_flag.as_ref().is_some_and(|on| *on.get_ref());
    if turn_off_flag && !has_flag {
        let span = raw.turn_off_flag.as_ref().map_or(0..0, Spanned::span);
        return Err(ctx.error(span, "`turn_off_flag` needs the route to have a `flag`"));
    }
    Ok(crate::slo::SloConfig {
        max_error_rate,
        max_p99,
        window,
        min_requests,
        turn_off_flag,
    })
}

// ---------------------------------------------------------------------------------------------
// Shadow traffic (`[[routes]] shadow = {...}` and `[shadow]`).

/// Mirroring of a share of a route's requests to another upstream.
#[derive(Debug, Clone)]
pub struct ShadowConfig {
    /// Share of users (0 to 100) whose requests are mirrored, sticky per user.
    pub percent: u8,
    /// Where copies go.
    pub target: ShadowTarget,
    /// Methods that are mirrored; methods other than GET, HEAD and OPTIONS are opt-in.
    pub methods: Vec<Method>,
    /// Response headers whose values are compared.
    pub compare_headers: Vec<HeaderName>,
    /// JSON paths left out of the body comparison, e.g. `/items/*/id`.
    pub ignore: Vec<crate::diff::IgnorePattern>,
    /// Largest request body copied for the shadow; a larger one is not mirrored.
    pub max_request_body: u64,
    /// Largest response body kept for the comparison, on each side.
    pub max_response_body: u64,
    /// Time the shadow upstream has to answer, body included.
    pub timeout: Duration,
    /// Differences kept as samples (newest first).
    pub samples: usize,
}

/// Where a route's shadow copies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShadowTarget {
    /// Whichever of `service` and `fallback` did not answer.
    Other,
    /// This upstream, always.
    Upstream(String),
}

/// Settings shared by every route's shadow traffic.
#[derive(Debug, Clone)]
pub struct ShadowSettings {
    /// Shadow requests in flight at most, over all routes; beyond it copies are dropped.
    pub max_concurrent: usize,
    /// Where samples of differences are kept; `None` keeps them in memory only.
    pub dir: Option<PathBuf>,
}

/// The methods mirrored when a route does not list its own: the safe ones (RFC 9110 9.2.1).
pub const SHADOW_SAFE_METHODS: [Method; 3] = [Method::GET, Method::HEAD, Method::OPTIONS];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShadow {
    percent: Option<Spanned<i64>>,
    target: Option<Spanned<String>>,
    methods: Option<Vec<Spanned<String>>>,
    compare_headers: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    max_request_body: Option<Spanned<toml::Value>>,
    max_response_body: Option<Spanned<toml::Value>>,
    timeout: Option<Spanned<String>>,
    samples: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShadowSettings {
    max_concurrent: Option<Spanned<i64>>,
    dir: Option<Spanned<String>>,
}

fn validate_shadow(
    ctx: &Ctx<'_>,
    raw: Spanned<RawShadow>,
    upstream_exists: &dyn Fn(&str) -> bool,
) -> Result<ShadowConfig, ConfigError> {
    let raw = raw.into_inner();
    let percent = match &raw.percent {
        None => 100,
        Some(value) => u8::try_from(*value.get_ref())
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| ctx.error(value.span(), "`percent` must be between 0 and 100"))?,
    };
    let target = match &raw.target {
        None => ShadowTarget::Other,
        Some(name) if name.get_ref() == "other" => ShadowTarget::Other,
        Some(name) if upstream_exists(name.get_ref()) => {
            ShadowTarget::Upstream(name.get_ref().clone())
        }
        Some(name) => {
            return Err(ctx.error(
                name.span(),
                format!(
                    "no upstream named `{}`; `target` is an upstream name or \"other\"",
                    name.get_ref()
                ),
            ));
        }
    };
    let methods = match &raw.methods {
        None => SHADOW_SAFE_METHODS.to_vec(),
        Some(list) => {
            let mut methods = Vec::with_capacity(list.len());
            for method in list {
                let upper = method.get_ref().to_ascii_uppercase();
                methods.push(Method::from_bytes(upper.as_bytes()).map_err(|_| {
                    ctx.error(
                        method.span(),
                        format!("invalid method `{}`", method.get_ref()),
                    )
                })?);
            }
            methods
        }
    };
    let compare_headers = match &raw.compare_headers {
        None => vec![http::header::CONTENT_TYPE],
        Some(list) => list
            .iter()
            .map(|name| {
                HeaderName::try_from(name.get_ref().as_str()).map_err(|_| {
                    ctx.error(
                        name.span(),
                        format!("invalid header name `{}`", name.get_ref()),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let ignore = raw
        .ignore
        .iter()
        .map(|path| {
            crate::diff::IgnorePattern::parse(path.get_ref())
                .map_err(|reason| ctx.error(path.span(), reason))
        })
        .collect::<Result<_, _>>()?;
    let size = |value: Option<&Spanned<toml::Value>>, default: u64| {
        value.map_or(Ok(default), |value| ctx.size(value))
    };
    let samples = match &raw.samples {
        None => 20,
        Some(value) => usize::try_from(*value.get_ref())
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ctx.error(value.span(), "`samples` must be between 1 and 1000"))?,
    };
    Ok(ShadowConfig {
        percent,
        target,
        methods,
        compare_headers,
        ignore,
        max_request_body: size(raw.max_request_body.as_ref(), 64 << 10)?,
        max_response_body: size(raw.max_response_body.as_ref(), 1 << 20)?,
        timeout: ctx.duration(raw.timeout.as_ref(), Duration::from_secs(5))?,
        samples,
    })
}

fn validate_shadow_settings(
    ctx: &Ctx<'_>,
    raw: RawShadowSettings,
    state_file: Option<&Path>,
) -> Result<ShadowSettings, ConfigError> {
    let max_concurrent = match &raw.max_concurrent {
        None => 64,
        Some(value) => usize::try_from(*value.get_ref())
            .ok()
            .filter(|n| (1..=65_536).contains(n))
            .ok_or_else(|| {
                ctx.error(value.span(), "`max_concurrent` must be between 1 and 65536")
            })?,
    };
    let dir = match &raw.dir {
        Some(dir) => Some(ctx.path(dir.get_ref())),
        // Next to the state file: `fig-proxy.state.json` -> `fig-proxy.shadow/`.
        None => state_file.map(|file| {
            let name = file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let stem = name
                .strip_suffix(".state.json")
                .or_else(|| name.strip_suffix(".json"))
                .unwrap_or(&name);
            file.with_file_name(format!("{stem}.shadow"))
        }),
    };
    Ok(ShadowSettings {
        max_concurrent,
        dir,
    })
}

// ---------------------------------------------------------------------------------------------
// Request-path protection: circuit breaker, outlier ejection, retry, rate limits, in-flight caps.

/// Envoy's outlier-detection defaults (`consecutive_5xx`, `base_ejection_time`,
/// `max_ejection_time`, `max_ejection_percent`).
const OUTLIER_DEFAULTS: OutlierConfig = OutlierConfig {
    enabled: true,
    consecutive_failures: 5,
    base_ejection_time: Duration::from_secs(30),
    max_ejection_time: Duration::from_secs(300),
    max_ejection_percent: 10,
};

struct UpstreamGuard {
    failure_statuses: StatusSet,
    circuit_breaker: CircuitBreakerConfig,
    outlier_detection: OutlierConfig,
    max_in_flight: Option<u32>,
    queue_timeout: Duration,
}

impl Ctx<'_> {
    /// A whole number in `range`, or `default` when absent.
    fn count(
        &self,
        value: Option<&Spanned<i64>>,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
        key: &str,
    ) -> Result<u32, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        u32::try_from(*value.get_ref())
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                self.error(
                    value.span(),
                    format!(
                        "`{key}` must be between {} and {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }

    /// A duration that must not be zero.
    fn positive_duration(
        &self,
        value: Option<&Spanned<String>>,
        default: Duration,
        key: &str,
    ) -> Result<Duration, ConfigError> {
        let duration = self.duration(value, default)?;
        match value {
            Some(value) if duration.is_zero() => {
                Err(self.error(value.span(), format!("`{key}` must be longer than 0")))
            }
            _ => Ok(duration),
        }
    }
}

fn validate_upstream_guard(ctx: &Ctx<'_>, raw: &RawUpstream) -> Result<UpstreamGuard, ConfigError> {
    let failure_statuses = match &raw.failure_statuses {
        None => StatusSet::SERVER_ERRORS,
        Some(list) => {
            let mut set = StatusSet::EMPTY;
            for item in list.get_ref() {
                let bad = || {
                    ctx.error(
                        item.span(),
                        "a failure status is a code from 100 to 599 or a class like \"5xx\"",
                    )
                };
                match item.get_ref() {
                    toml::Value::Integer(code) => {
                        let code = u16::try_from(*code)
                            .ok()
                            .filter(|c| (100..=599).contains(c))
                            .ok_or_else(bad)?;
                        set.insert(code);
                    }
                    toml::Value::String(class) => {
                        let class = class.trim().to_ascii_lowercase();
                        let digit = match class.as_bytes() {
                            [d @ b'1'..=b'5', b'x', b'x'] => u16::from(d - b'0'),
                            _ => return Err(bad()),
                        };
                        for code in digit * 100..digit * 100 + 100 {
                            set.insert(code);
                        }
                    }
                    _ => return Err(bad()),
                }
            }
            set
        }
    };
    let default_breaker = RawCircuitBreaker::default();
    let breaker = raw.circuit_breaker.as_ref().unwrap_or(&default_breaker);
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
            rate.filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| {
                ctx.error(
                    value.span(),
                    "`error_rate` must be a fraction from 0 to 1 (0.5) or a percentage (\"50%\"); 0 turns it off",
                )
            })?
        }
    };
    let circuit_breaker = CircuitBreakerConfig {
        // Decided once the routes are known (see `validate`).
        enabled: breaker.enabled.unwrap_or(false),
        consecutive_failures: ctx.count(
            breaker.consecutive_failures.as_ref(),
            5,
            0..=1_000_000,
            "consecutive_failures",
        )?,
        error_rate,
        min_requests: ctx.count(
            breaker.min_requests.as_ref(),
            20,
            1..=1_000_000,
            "min_requests",
        )?,
        window: ctx.positive_duration(
            breaker.window.as_ref(),
            Duration::from_secs(10),
            "window",
        )?,
        open_for: ctx.positive_duration(
            breaker.open_for.as_ref(),
            Duration::from_secs(10),
            "open_for",
        )?,
        half_open_requests: ctx.count(
            breaker.half_open_requests.as_ref(),
            3,
            1..=10_000,
            "half_open_requests",
        )?,
    };
    let outlier_detection = match &raw.outlier_detection {
        None => OUTLIER_DEFAULTS,
        Some(outlier) => {
            let base_ejection_time = ctx.positive_duration(
                outlier.base_ejection_time.as_ref(),
                OUTLIER_DEFAULTS.base_ejection_time,
                "base_ejection_time",
            )?;
            let max_ejection_time = ctx.duration(
                outlier.max_ejection_time.as_ref(),
                OUTLIER_DEFAULTS.max_ejection_time.max(base_ejection_time),
            )?;
            if max_ejection_time < base_ejection_time {
                let span = outlier
                    .max_ejection_time
                    .as_ref()
                    .map_or(0..0, Spanned::span);
                return Err(ctx.error(
                    span,
                    "`max_ejection_time` must not be shorter than `base_ejection_time`",
                ));
            }
            OutlierConfig {
                enabled: outlier.enabled.unwrap_or(true),
                consecutive_failures: ctx.count(
                    outlier.consecutive_failures.as_ref(),
                    OUTLIER_DEFAULTS.consecutive_failures,
                    1..=1_000_000,
                    "consecutive_failures",
                )?,
                base_ejection_time,
                max_ejection_time,
                max_ejection_percent: ctx.count(
                    outlier.max_ejection_percent.as_ref(),
                    OUTLIER_DEFAULTS.max_ejection_percent,
                    0..=100,
                    "max_ejection_percent",
                )?,
            }
        }
    };
    let max_in_flight = raw
        .max_in_flight
        .as_ref()
        .map(|value| ctx.count(Some(value), 0, 1..=1_000_000, "max_in_flight"))
        .transpose()?;
    Ok(UpstreamGuard {
        failure_statuses,
        circuit_breaker,
        outlier_detection,
        max_in_flight,
        queue_timeout: ctx.duration(raw.queue_timeout.as_ref(), Duration::ZERO)?,
    })
}

fn validate_retry(ctx: &Ctx<'_>, raw: Option<&RawRetry>) -> Result<RetryConfig, ConfigError> {
    let default_retry = RawRetry::default();
    let raw = raw.unwrap_or(&default_retry);
    let methods = match &raw.methods {
        None => vec![Method::GET, Method::HEAD, Method::OPTIONS],
        Some(list) => {
            let mut methods = Vec::with_capacity(list.len());
            for method in list {
                let upper = method.get_ref().trim().to_ascii_uppercase();
                let parsed = Method::from_bytes(upper.as_bytes())
                    .ok()
                    .filter(|m| *m != Method::CONNECT)
                    .ok_or_else(|| {
                        ctx.error(
                            method.span(),
                            format!("invalid method `{}`", method.get_ref()),
                        )
                    })?;
                methods.push(parsed);
            }
            methods
        }
    };
    let max_body = match &raw.max_body {
        None => 64 << 10,
        Some(value) => {
            let size = ctx.size(value)?;
            if size > 16 << 20 {
                return Err(ctx.error(value.span(), "`max_body` must be at most 16MiB"));
            }
            size
        }
    };
    let per_try_timeout = raw
        .per_try_timeout
        .as_ref()
        .map(|value| ctx.positive_duration(Some(value), Duration::ZERO, "per_try_timeout"))
        .transpose()?;
    Ok(RetryConfig {
        enabled: raw.enabled.unwrap_or(true),
        methods,
        max_body,
        per_try_timeout,
    })
}

/// A route's `upgrades`: protocol names (tokens, without version), never an HTTP one.
fn validate_upgrades(
    ctx: &Ctx<'_>,
    raw: Option<&[Spanned<String>]>,
) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(crate::target::DEFAULT_UPGRADES
            .iter()
            .map(|name| (*name).to_owned())
            .collect());
    };
    let mut upgrades: Vec<String> = Vec::with_capacity(raw.len());
    for name in raw {
        let text = name.get_ref().trim();
        let is_token = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !is_token {
            return Err(ctx.error(
                name.span(),
                format!(
                    "invalid upgrade protocol `{}`; write a protocol name such as \"websocket\", without version",
                    name.get_ref()
                ),
            ));
        }
        if crate::target::is_forbidden_upgrade(text) {
            return Err(ctx.error(
                name.span(),
                format!(
                    "upgrades to `{text}` are never forwarded: past a 101 the proxy copies bytes, so a tunnel to an HTTP connection would carry requests its routes never see"
                ),
            ));
        }
        let lower = text.to_ascii_lowercase();
        if !upgrades.contains(&lower) {
            upgrades.push(lower);
        }
    }
    Ok(upgrades)
}

fn validate_rate_limit(
    ctx: &Ctx<'_>,
    raw: &Spanned<RawRateLimit>,
) -> Result<RateLimitConfig, ConfigError> {
    let limit = raw.get_ref();
    let rate = ctx.count(Some(&limit.rate), 1, 1..=1_000_000_000, "rate")?;
    let per = ctx.positive_duration(limit.per.as_ref(), Duration::from_secs(1), "per")?;
    let burst = ctx.count(limit.burst.as_ref(), rate, 1..=1_000_000_000, "burst")?;
    if per / rate < Duration::from_nanos(1) {
        return Err(ctx.error(
            raw.span(),
            "`rate` per `per` is more than one per nanosecond",
        ));
    }
    Ok(RateLimitConfig {
        rate,
        per,
        burst,
        key: limit.key.unwrap_or(RateKey::User),
    })
}
