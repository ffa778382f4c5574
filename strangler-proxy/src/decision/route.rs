//! The routing decision: which upstream gets a request.
//!
//! [`RouteTable::compile`] turns the config's routes into matchers once per config load (no
//! regex, no allocation when matching). [`route`] is a pure function of the request head, the
//! table, the flags and the pins: it matches routes in order, and for the first match decides
//!
//! 1. pinned (rolled back) → the route's fallback,
//! 2. no flag → the route's service,
//! 3. flags not loaded yet → the fallback,
//! 4. flag on for this request's context → the service, else the fallback.
//!
//! A request no route matches goes to the default upstream. The flag context is built only when
//! step 4 needs it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use http::request::Parts;
use http::{HeaderName, HeaderValue, Method};

use crate::config::{Config, MatchConfig, PathMatch};
use crate::decision::context::RequestContext;
use crate::decision::flags::FlagSource;
use crate::decision::series::{Metrics, Series, UNMATCHED};
use crate::decision::state::Pins;

/// Compiled routes, in order, with the index of the default upstream.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
    default_upstream: usize,
    default_series: Arc<Series>,
}

/// One compiled route.
#[derive(Debug)]
pub struct CompiledRoute {
    /// The route's name.
    pub name: Arc<str>,
    matcher: Matcher,
    /// Index of the service upstream (in the config's sorted upstream list).
    pub service: usize,
    /// Index of the fallback upstream.
    pub fallback: usize,
    /// The flag, if any.
    pub flag: Option<Box<str>>,
    /// The rollback pin, shared across reloads.
    pub pin: Arc<AtomicBool>,
    /// The reason of the last decision (a [`Reason`] as `u8`), for the admin API.
    pub last_reason: Arc<AtomicU8>,
    /// Metrics of requests sent to the service.
    pub service_series: Arc<Series>,
    /// Metrics of requests sent to the fallback.
    pub fallback_series: Arc<Series>,
    /// The SLO window of requests sent to the service, if the route has an SLO.
    pub(crate) slo: Option<Arc<crate::protection::slo::Window>>,
    /// Shadow traffic, if the route has `shadow`.
    pub(crate) shadow: Option<Arc<crate::shadow::RouteShadow>>,
    /// Counters of fallbacks and rate-limited requests, kept across reloads.
    pub(crate) guard: Arc<crate::protection::guard::RouteCounters>,
    /// The route's rate limit, if any (its buckets start full after a reload).
    pub(crate) rate_limit: Option<crate::protection::limit::RateLimit>,
}

#[derive(Debug)]
struct Matcher {
    path: PathMatcher,
    methods: Vec<Method>,
    host: Option<HostMatcher>,
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
}

#[derive(Debug)]
enum PathMatcher {
    Exact(Box<str>),
    Prefix(Box<str>),
    Pattern(Vec<Segment>),
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    One,
    Any,
}

#[derive(Debug)]
enum HostMatcher {
    Exact(Box<str>),
    /// `*.example.com`: holds `.example.com`.
    Suffix(Box<str>),
}

/// Why a request went where it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// No route matched: the default upstream.
    NoRoute = 0,
    /// The route has no flag: its service.
    Unflagged = 1,
    /// The flag is on: the service.
    FlagOn = 2,
    /// The flag is off: the fallback.
    FlagOff = 3,
    /// The flags are not loaded yet: the fallback.
    FlagsNotReady = 4,
    /// The route is rolled back: the fallback.
    Pinned = 5,
    /// The service's circuit is open: the fallback.
    CircuitOpen = 6,
    /// The service failed an idempotent request, which was retried on the fallback.
    ServiceFailed = 7,
}

impl Reason {
    /// A stable kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoRoute => "no-route",
            Reason::Unflagged => "unflagged",
            Reason::FlagOn => "flag-on",
            Reason::FlagOff => "flag-off",
            Reason::FlagsNotReady => "flags-not-ready",
            Reason::Pinned => "pinned",
            Reason::CircuitOpen => "circuit-open",
            Reason::ServiceFailed => "service-failed",
        }
    }

    /// The reason stored as `u8`; `None` for a value no reason has (no decision yet).
    pub fn from_u8(value: u8) -> Option<Reason> {
        Some(match value {
            0 => Reason::NoRoute,
            1 => Reason::Unflagged,
            2 => Reason::FlagOn,
            3 => Reason::FlagOff,
            4 => Reason::FlagsNotReady,
            5 => Reason::Pinned,
            6 => Reason::CircuitOpen,
            7 => Reason::ServiceFailed,
            _ => return None,
        })
    }
}

/// The outcome of [`route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index of the matched route in the table, if any.
    pub route: Option<usize>,
    /// Index of the chosen upstream.
    pub upstream: usize,
    /// Why.
    pub reason: Reason,
}

/// No decision made yet, as stored in [`CompiledRoute::last_reason`].
pub const NO_DECISION: u8 = u8::MAX;

impl RouteTable {
    /// Compiles the routes of a validated config.
    pub fn compile(config: &Config, pins: &Pins, metrics: &Metrics) -> RouteTable {
        let index = |name: &str| {
            config
                .upstreams
                .iter()
                .position(|up| up.name == name)
                .unwrap_or_default()
        };
        let shadow_engine = config
            .routes
            .iter()
            .any(|route| route.shadow.is_some())
            .then(|| Arc::new(crate::shadow::Engine::new(config)));
        let routes = config
            .routes
            .iter()
            .map(|route| CompiledRoute {
                name: route.name.as_str().into(),
                matcher: Matcher::compile(&route.matcher),
                service: index(&route.service),
                fallback: index(&route.fallback),
                flag: route.flag.as_deref().map(Into::into),
                pin: pins.flag(&route.name),
                last_reason: Arc::new(AtomicU8::new(NO_DECISION)),
                service_series: metrics.series(&route.name, &route.service),
                fallback_series: metrics.series(&route.name, &route.fallback),
                slo: route
                    .slo
                    .as_ref()
                    .map(|slo| metrics.slo.window(&route.name, slo)),
                shadow: route.shadow.as_ref().zip(shadow_engine.as_ref()).map(
                    |(shadow, engine)| {
                        Arc::new(crate::shadow::RouteShadow::compile(
                            &route.name,
                            shadow,
                            (index(&route.service), index(&route.fallback)),
                            config,
                            engine,
                            &metrics.shadow,
                        ))
                    },
                ),
                guard: metrics.guard.route(&route.name),
                rate_limit: route
                    .rate_limit
                    .map(crate::protection::limit::RateLimit::new),
            })
            .collect();
        RouteTable {
            routes,
            default_upstream: index(&config.default_upstream),
            default_series: metrics.series(UNMATCHED, &config.default_upstream),
        }
    }

    /// The compiled routes, in order.
    pub fn routes(&self) -> &[CompiledRoute] {
        &self.routes
    }

    /// The metrics series of a decision.
    pub fn series(&self, decision: &Decision) -> &Arc<Series> {
        match decision.route.map(|idx| &self.routes[idx]) {
            None => &self.default_series,
            Some(route)
                if route.service == decision.upstream
                    && !route_went_to_fallback(decision.reason) =>
            {
                &route.service_series
            }
            Some(route) => &route.fallback_series,
        }
    }
}

fn route_went_to_fallback(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::FlagOff
            | Reason::FlagsNotReady
            | Reason::Pinned
            | Reason::CircuitOpen
            | Reason::ServiceFailed
    )
}

/// Decides where a request goes. `context` is called at most once, only if a flag is evaluated.
pub fn route<'a>(
    parts: &Parts,
    table: &RouteTable,
    flags: &dyn FlagSource,
    context: impl FnOnce() -> RequestContext<'a>,
) -> Decision {
    let Some((idx, route)) = table
        .routes
        .iter()
        .enumerate()
        .find(|(_, route)| route.matcher.matches(parts))
    else {
        return Decision {
            route: None,
            upstream: table.default_upstream,
            reason: Reason::NoRoute,
        };
    };
    let (upstream, reason) = if route.pin.load(Ordering::SeqCst) {
        (route.fallback, Reason::Pinned)
    } else {
        match &route.flag {
            None => (route.service, Reason::Unflagged),
            Some(_) if !flags.is_ready() => (route.fallback, Reason::FlagsNotReady),
            Some(flag)
                if flags
                    .is_enabled_for_everyone(flag)
                    .unwrap_or_else(|| flags.is_enabled(flag, context().as_ref())) =>
            {
                (route.service, Reason::FlagOn)
            }
            Some(_) => (route.fallback, Reason::FlagOff),
        }
    };
    route.last_reason.store(reason as u8, Ordering::Relaxed);
    Decision {
        route: Some(idx),
        upstream,
        reason,
    }
}

impl Matcher {
    fn compile(config: &MatchConfig) -> Matcher {
        let path = match &config.path {
            PathMatch::Exact(path) => PathMatcher::Exact(path.as_str().into()),
            PathMatch::Prefix(prefix) => PathMatcher::Prefix(prefix.as_str().into()),
            PathMatch::Pattern(pattern) => PathMatcher::Pattern(
                pattern[1..]
                    .split('/')
                    .map(|segment| match segment {
                        "*" => Segment::One,
                        "**" => Segment::Any,
                        literal => Segment::Literal(literal.into()),
                    })
                    .collect(),
            ),
        };
        let host = config
            .host
            .as_deref()
            .map(|host| match host.strip_prefix('*') {
                Some(suffix) => HostMatcher::Suffix(suffix.into()),
                None => HostMatcher::Exact(host.into()),
            });
        Matcher {
            path,
            methods: config.methods.clone(),
            host,
            headers: config.headers.clone(),
        }
    }

    fn matches(&self, parts: &Parts) -> bool {
        self.path.matches(parts.uri.path())
            && (self.methods.is_empty() || self.methods.contains(&parts.method))
            && self
                .host
                .as_ref()
                .is_none_or(|host| host.matches(request_host(parts)))
            && self
                .headers
                .iter()
                .all(|(name, want)| match (parts.headers.get(name), want) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(got), Some(want)) => got == want,
                })
    }
}

impl PathMatcher {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatcher::Exact(exact) => path == &**exact,
            PathMatcher::Prefix(prefix) => {
                path.starts_with(&**prefix)
                    && (prefix.ends_with('/')
                        || path.len() == prefix.len()
                        || path.as_bytes()[prefix.len()] == b'/')
            }
            PathMatcher::Pattern(segments) => {
                let Some(rest) = path.strip_prefix('/') else {
                    return false;
                };
                match_segments(segments, rest)
            }
        }
    }
}

/// Matches pattern segments against the path after its leading `/`.
fn match_segments(segments: &[Segment], path: &str) -> bool {
    let Some((first, rest_segments)) = segments.split_first() else {
        // Reached only with path left over (at least a trailing `/`); callers handle the end.
        return false;
    };
    let (head, tail) = match path.split_once('/') {
        Some((head, tail)) => (head, Some(tail)),
        None => (path, None),
    };
    match first {
        Segment::Any => {
            // Zero segments, or swallow one and try again.
            if match_segments(rest_segments, path) || rest_segments.is_empty() {
                return true;
            }
            match tail {
                Some(tail) => match_segments(segments, tail),
                None => false,
            }
        }
        Segment::One => {
            !head.is_empty()
                && match tail {
                    Some(tail) => match_segments(rest_segments, tail),
                    None => rest_segments.is_empty() || only_any(rest_segments),
                }
        }
        Segment::Literal(literal) => {
            head == &**literal
                && match tail {
                    Some(tail) => match_segments(rest_segments, tail),
                    None => rest_segments.is_empty() || only_any(rest_segments),
                }
        }
    }
}

fn only_any(segments: &[Segment]) -> bool {
    segments.iter().all(|s| *s == Segment::Any)
}

impl HostMatcher {
    fn matches(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return false;
        };
        match self {
            HostMatcher::Exact(want) => host.eq_ignore_ascii_case(want),
            HostMatcher::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

/// The request's host without port: the URI authority (HTTP/2, absolute form) or `Host`.
pub fn request_host(parts: &Parts) -> Option<&str> {
    let host = match parts.uri.host() {
        Some(host) => host,
        None => {
            let value = parts.headers.get(http::header::HOST)?.to_str().ok()?;
            if value.starts_with('[') {
                return value.split_once(']').map(|(h, _)| &h[1..]);
            }
            value.split_once(':').map_or(value, |(host, _)| host)
        }
    };
    Some(host)
}
