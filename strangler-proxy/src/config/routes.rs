//! `[[routes]]`: what each route matches, where it sends requests, and what guards it (the
//! fallback retry, the rate limit, the SLO, the upgrades it allows). Its `shadow` table is in
//! `shadow.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use toml::Spanned;

use super::ctx::{Ctx, UnvalidatedConfig};
use super::shadow::{RawShadow, ShadowConfig};

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
    pub slo: Option<SloConfig>,
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

/// One `[[routes]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
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

impl RawRoute {
    /// Where the route's `slo.turn_off_flag = true` is, if it has one and a flag to turn off
    /// (without a flag, `validate` reports it).
    pub(super) fn turn_off_flag(&self) -> Option<std::ops::Range<usize>> {
        let on = self.slo.as_ref()?.get_ref().turn_off_flag.as_ref()?;
        (*on.get_ref() && self.flag.is_some()).then(|| on.span())
    }
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    max_error_rate: Option<Spanned<toml::Value>>,
    max_p99: Option<Spanned<String>>,
    window: Option<Spanned<String>>,
    min_requests: Option<Spanned<i64>>,
    turn_off_flag: Option<Spanned<bool>>,
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

impl UnvalidatedConfig for Vec<RawRoute> {
    type ValidCfg = Vec<RouteConfig>;

    fn validate(self, ctx: &mut Ctx<'_>) -> Vec<RouteConfig> {
        let mut routes: Vec<RouteConfig> = Vec::with_capacity(self.len());
        for route in self {
            ctx.check_name(&route.name, "route");
            if routes.iter().any(|r| &r.name == route.name.get_ref()) {
                ctx.report(
                    route.name.span(),
                    format!(
                        "a route named `{}` is already defined",
                        route.name.get_ref()
                    ),
                );
            }
            routes.push(route.validate(ctx));
        }
        routes
    }
}

impl UnvalidatedConfig for RawRoute {
    type ValidCfg = RouteConfig;

    fn validate(self, ctx: &mut Ctx<'_>) -> RouteConfig {
        let matcher = validate_match(ctx, &self.matcher);
        for target in [Some(&self.service), self.fallback.as_ref()]
            .into_iter()
            .flatten()
        {
            if !ctx.upstream_exists(target.get_ref()) {
                ctx.report(
                    target.span(),
                    format!("no upstream named `{}`", target.get_ref()),
                );
            }
        }
        if let Some(flag) = &self.flag
            && flag.get_ref().trim().is_empty()
        {
            ctx.report(
                flag.span(),
                "`flag` is empty; remove it to route without a flag",
            );
        }
        let slo = self
            .slo
            .as_ref()
            .map(|slo| validate_slo(ctx, slo, self.flag.is_some()));
        let retry = validate_retry(ctx, self.retry.as_ref());
        let rate_limit = self
            .rate_limit
            .as_ref()
            .map(|limit| validate_rate_limit(ctx, limit));
        let upgrades = validate_upgrades(ctx, self.upgrades.as_deref());
        RouteConfig {
            name: self.name.into_inner(),
            matcher,
            service: self.service.into_inner(),
            flag: self.flag.map(Spanned::into_inner),
            fallback: self
                .fallback
                .map_or_else(|| ctx.default_upstream.clone(), Spanned::into_inner),
            slo,
            shadow: self.shadow.map(|raw| raw.into_inner().validate(ctx)),
            retry,
            rate_limit,
            upgrades,
        }
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

fn validate_match(ctx: &mut Ctx<'_>, matcher: &Spanned<RawMatch>) -> MatchConfig {
    let raw = matcher.get_ref();
    let mark = ctx.mark();
    let path = match (&raw.prefix, &raw.exact, &raw.pattern) {
        (Some(prefix), None, None) => {
            if !prefix.get_ref().starts_with('/') {
                ctx.report(prefix.span(), "`prefix` must start with `/`");
            }
            PathMatch::Prefix(prefix.get_ref().clone())
        }
        (None, Some(exact), None) => {
            if !exact.get_ref().starts_with('/') {
                ctx.report(exact.span(), "`exact` must start with `/`");
            }
            PathMatch::Exact(exact.get_ref().clone())
        }
        (None, None, Some(pattern)) => {
            ctx.check(pattern.span(), validate_pattern(pattern.get_ref()));
            PathMatch::Pattern(pattern.get_ref().clone())
        }
        _ => {
            ctx.report(
                matcher.span(),
                "`match` needs exactly one of `prefix`, `exact` or `pattern`",
            );
            PathMatch::Prefix("/".to_owned())
        }
    };
    // Requests are matched with their path in normal form (target.rs): a path that is not never
    // matches.
    let (PathMatch::Exact(written) | PathMatch::Prefix(written) | PathMatch::Pattern(written)) =
        &path;
    if !ctx.reported_since(mark)
        && let Some(reason) = crate::target::route_path_problem(written)
    {
        let span = [&raw.prefix, &raw.exact, &raw.pattern]
            .into_iter()
            .flatten()
            .next()
            .map_or_else(|| matcher.span(), Spanned::span);
        ctx.report(span, reason);
    }
    let methods = ctx.methods(&raw.methods);
    let host = raw
        .host
        .as_ref()
        .map(|host| host.get_ref().to_ascii_lowercase());
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let Ok(header) = HeaderName::try_from(name.get_ref().as_str()) else {
            ctx.report(
                name.span(),
                format!("invalid header name `{}`", name.get_ref()),
            );
            continue;
        };
        let value = if value.get_ref() == "*" {
            None
        } else {
            match HeaderValue::try_from(value.get_ref().as_str()) {
                Ok(value) => Some(value),
                Err(_) => {
                    ctx.report(
                        value.span(),
                        format!("invalid header value `{}`", value.get_ref()),
                    );
                    continue;
                }
            }
        };
        headers.push((header, value));
    }
    MatchConfig {
        path,
        methods,
        host,
        headers,
    }
}

/// Validates a route's `slo` table; `has_flag` says whether the route has a flag to turn off.
fn validate_slo(ctx: &mut Ctx<'_>, slo: &Spanned<RawSlo>, has_flag: bool) -> SloConfig {
    let raw = slo.get_ref();
    let max_error_rate = raw.max_error_rate.as_ref().and_then(|value| {
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
        let rate = rate.filter(|rate| (0.0..1.0).contains(rate));
        if rate.is_none() {
            ctx.report(
                value.span(),
                "invalid `max_error_rate`; write a fraction below 1 like 0.05, or a percentage like \"5%\"",
            );
        }
        rate
    });
    let max_p99 = raw.max_p99.as_ref().and_then(|value| {
        let mark = ctx.mark();
        let max = ctx.duration(Some(value), Duration::ZERO);
        if max.is_zero() && !ctx.reported_since(mark) {
            ctx.report(value.span(), "`max_p99` must be more than 0");
        }
        (!max.is_zero()).then_some(max)
    });
    // What is written, not what is valid: a wrong value was reported already.
    if raw.max_error_rate.is_none() && raw.max_p99.is_none() {
        ctx.report(
            slo.span(),
            "`slo` needs `max_error_rate`, `max_p99` or both",
        );
    }
    let mark = ctx.mark();
    let window = ctx.duration(raw.window.as_ref(), DEFAULT_WINDOW);
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&window)
        && !ctx.reported_since(mark)
    {
        let span = raw.window.as_ref().map_or(0..0, Spanned::span);
        ctx.report(span, "`window` must be between 1s and 1h");
    }
    let min_requests = match &raw.min_requests {
        None => DEFAULT_MIN_REQUESTS,
        Some(n) => match u64::try_from(*n.get_ref()).ok().filter(|n| *n >= 1) {
            Some(n) => n,
            None => {
                ctx.report(n.span(), "`min_requests` must be at least 1");
                DEFAULT_MIN_REQUESTS
            }
        },
    };
    let turn_off_flag = raw.turn_off_flag.as_ref().is_some_and(|on| *on.get_ref());
    if turn_off_flag && !has_flag {
        let span = raw.turn_off_flag.as_ref().map_or(0..0, Spanned::span);
        ctx.report(span, "`turn_off_flag` needs the route to have a `flag`");
    }
    SloConfig {
        max_error_rate,
        max_p99,
        window,
        min_requests,
        turn_off_flag,
    }
}

fn validate_retry(ctx: &mut Ctx<'_>, raw: Option<&RawRetry>) -> RetryConfig {
    const DEFAULT_MAX_BODY: u64 = 64 << 10;
    let default_retry = RawRetry::default();
    let raw = raw.unwrap_or(&default_retry);
    let methods = match &raw.methods {
        None => vec![Method::GET, Method::HEAD, Method::OPTIONS],
        // Trimmed, and never CONNECT: its request is a tunnel, not one to send twice.
        Some(list) => list
            .iter()
            .filter_map(|method| {
                let upper = method.get_ref().trim().to_ascii_uppercase();
                let parsed = Method::from_bytes(upper.as_bytes())
                    .ok()
                    .filter(|m| *m != Method::CONNECT);
                if parsed.is_none() {
                    ctx.report(
                        method.span(),
                        format!("invalid method `{}`", method.get_ref()),
                    );
                }
                parsed
            })
            .collect(),
    };
    let max_body = match &raw.max_body {
        None => DEFAULT_MAX_BODY,
        Some(value) => match ctx.size(value) {
            Some(size) if size > 16 << 20 => {
                ctx.report(value.span(), "`max_body` must be at most 16MiB");
                DEFAULT_MAX_BODY
            }
            Some(size) => size,
            None => DEFAULT_MAX_BODY,
        },
    };
    let per_try_timeout = raw
        .per_try_timeout
        .as_ref()
        .map(|value| ctx.positive_duration(Some(value), Duration::from_secs(1), "per_try_timeout"));
    RetryConfig {
        enabled: raw.enabled.unwrap_or(true),
        methods,
        max_body,
        per_try_timeout,
    }
}

/// A route's `upgrades`: protocol names (tokens, without version), never an HTTP one.
fn validate_upgrades(ctx: &mut Ctx<'_>, raw: Option<&[Spanned<String>]>) -> Vec<String> {
    let Some(raw) = raw else {
        return crate::target::DEFAULT_UPGRADES
            .iter()
            .map(|name| (*name).to_owned())
            .collect();
    };
    let mut upgrades: Vec<String> = Vec::with_capacity(raw.len());
    for name in raw {
        let text = name.get_ref().trim();
        let is_token = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !is_token {
            ctx.report(
                name.span(),
                format!(
                    "invalid upgrade protocol `{}`; write a protocol name such as \"websocket\", without version",
                    name.get_ref()
                ),
            );
            continue;
        }
        if crate::target::is_forbidden_upgrade(text) {
            ctx.report(
                name.span(),
                format!(
                    "upgrades to `{text}` are never forwarded: past a 101 the proxy copies bytes, so a tunnel to an HTTP connection would carry requests its routes never see"
                ),
            );
            continue;
        }
        let lower = text.to_ascii_lowercase();
        if !upgrades.contains(&lower) {
            upgrades.push(lower);
        }
    }
    upgrades
}

fn validate_rate_limit(ctx: &mut Ctx<'_>, raw: &Spanned<RawRateLimit>) -> RateLimitConfig {
    let limit = raw.get_ref();
    let mark = ctx.mark();
    let rate = ctx.count(Some(&limit.rate), 1, 1..=1_000_000_000, "rate");
    let per = ctx.positive_duration(limit.per.as_ref(), Duration::from_secs(1), "per");
    let burst = ctx.count(limit.burst.as_ref(), rate, 1..=1_000_000_000, "burst");
    if per / rate < Duration::from_nanos(1) && !ctx.reported_since(mark) {
        ctx.report(
            raw.span(),
            "`rate` per `per` is more than one per nanosecond",
        );
    }
    RateLimitConfig {
        rate,
        per,
        burst,
        key: limit.key.unwrap_or(RateKey::User),
    }
}

/// The default SLO window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);
/// The default least number of requests in the window before the SLO is judged.
pub const DEFAULT_MIN_REQUESTS: u64 = 20;

/// A route's SLO, as validated from its `slo` table.
#[derive(Debug, Clone, PartialEq)]
pub struct SloConfig {
    /// Largest share of 5xx answers and failed requests (0.05 = 5%); above it is a breach.
    pub max_error_rate: Option<f64>,
    /// Largest p99 latency to the response head; above it is a breach.
    pub max_p99: Option<Duration>,
    /// The window the rates are measured over.
    pub window: Duration,
    /// The SLO is judged only once the window holds at least this many requests.
    pub min_requests: u64,
    /// On a breach, also turn the route's flag off in the flag store.
    pub turn_off_flag: bool,
}
