//! The admin API: route state, rollback and restore, reload, health, metrics.
//!
//! It listens on its own address (loopback by default). Every endpoint but `/healthz` and
//! `/readyz` needs `Authorization: Bearer <token>` when a token is configured (`fig proxy`
//! generates one at first start when none is). Answers are JSON, except `/metrics` (Prometheus
//! text) and the health endpoints and refusals (plain text).
//!
//! **Architecture Invariant:** a browser cannot be made to call the admin API. Before anything
//! else, every request is refused with 403 when its `Host` is not the listener's own address or a
//! loopback name on the listener's port (DNS rebinding: a page on `evil.example` whose name now
//! resolves to 127.0.0.1), when its `Origin` is another site's, or when it says
//! `Sec-Fetch-Site: cross-site`; `admin.allowed_hosts` lets more hosts in. This is what
//! Jupyter's `allow_remote_access` and Prometheus' and Consul's loopback defaults guard against,
//! and it holds with or without a token.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/healthz` | 200 `ok` while the process serves |
//! | GET | `/readyz` | 200 `ready` once flags are loaded, else 503 |
//! | GET | `/routes` | every route with its state, flag and counters |
//! | POST | `/routes/{name}/rollback` | pins the route to its fallback |
//! | POST | `/routes/{name}/restore` | lets its flag decide again |
//! | POST | `/reload` | re-reads the config file; 422 with the error if it is refused |
//! | GET | `/routes/{name}/diff?limit=N` | shadow-traffic counters and the newest N samples of differences |
//! | GET | `/metrics` | Prometheus text |

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::PathMatch;
use crate::decision::flags::ContextRef;
use crate::decision::route::Reason;
use crate::ops::metrics::Extra;
use crate::ops::runtime::Proxy;
use api::{
    CertificateDoc, CircuitDoc, MatchDoc, PathDoc, PinAnswer, ReloadAnswer, RouteDoc, RouteState,
    RoutesDoc,
};

pub mod api;

/// Version of the JSON shapes of this API.
pub const SCHEMA_VERSION: u32 = 1;

pub(crate) async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(err) => {
            tracing::error!(error = %err, "the admin listener has no address; the admin API is off");
            return;
        }
    };
    loop {
        let (stream, _) = tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let proxy = proxy.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(handle(&proxy, local, req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(conn).await;
        });
    }
}

/// Answers one admin request that came to the listener on `local`. The body of POST requests is
/// ignored.
pub(crate) fn handle(
    proxy: &Proxy,
    local: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if let Err(reason) = check_site(
        req.headers(),
        req.uri(),
        local,
        &proxy.config().admin.allowed_hosts,
    ) {
        let mut response = text_owned(StatusCode::FORBIDDEN, format!("forbidden: {reason}\n"));
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let path = req.uri().path();
    let method = req.method();
    if method == Method::GET && path == "/healthz" {
        return text(StatusCode::OK, "ok\n");
    }
    if method == Method::GET && path == "/readyz" {
        return readyz(proxy.shared.flags.as_ref());
    }
    if !authorized(proxy, &req) {
        let mut response = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "missing or wrong bearer token"}),
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["routes"]) => json_response(StatusCode::OK, &routes(proxy)),
        (Method::GET, ["metrics"]) => {
            let mut response = Response::new(Full::new(Bytes::from(metrics(proxy))));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        (Method::POST, ["routes", name, action @ ("rollback" | "restore")]) => {
            let result = if *action == "rollback" {
                proxy.rollback(name)
            } else {
                proxy.restore(name)
            };
            match result {
                Ok(changed) => json_response(
                    StatusCode::OK,
                    &PinAnswer {
                        route: (*name).to_owned(),
                        state: RouteState::of(proxy.shared.pins.is_pinned(name)),
                        changed,
                    },
                ),
                Err(crate::Error::UnknownRoute(name)) => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": format!("no route named `{name}`")}),
                ),
                Err(err) => json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"error": format!("the route is {} in memory, but: {err}", RouteState::of(proxy.shared.pins.is_pinned(name)).as_str())}),
                ),
            }
        }
        (Method::GET, ["routes", name, "diff"]) => diff(proxy, name, req.uri().query()),
        (Method::POST, ["reload"]) => match proxy.reload() {
            Ok(()) => json_response(
                StatusCode::OK,
                &ReloadAnswer {
                    reloaded: true,
                    error: None,
                },
            ),
            Err(err) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &ReloadAnswer {
                    reloaded: false,
                    error: Some(err.to_string()),
                },
            ),
        },
        (
            _,
            ["routes"] | ["metrics"] | ["reload"] | ["routes", _, "rollback" | "restore" | "diff"],
        ) => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": format!("{method} is not allowed on {path}")}),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no admin endpoint {path}")}),
        ),
    }
}

fn authorized(proxy: &Proxy, req: &Request<Incoming>) -> bool {
    let config = proxy.config();
    let Some(token) = &config.admin.token else {
        return true;
    };
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

/// Refuses what a browser sends on behalf of another site (see the module docs): a `Host` that is
/// not `local`'s own address or a loopback name on its port, a foreign `Origin`, and
/// `Sec-Fetch-Site: cross-site`. `allowed` holds `admin.allowed_hosts`. The error is the reason,
/// for a person.
pub(crate) fn check_site(
    headers: &HeaderMap,
    uri: &Uri,
    local: SocketAddr,
    allowed: &[String],
) -> Result<(), String> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return Err("the request has more than one Host field".to_owned());
    }
    let host = match (uri.authority(), first) {
        (Some(authority), _) => authority.as_str().to_owned(),
        (None, Some(value)) => value
            .to_str()
            .map_err(|_| "the Host field is not text".to_owned())?
            .trim()
            .to_owned(),
        (None, None) => return Err("the request has no Host field".to_owned()),
    };
    let authority = http::uri::Authority::try_from(host.as_str())
        .map_err(|_| format!("invalid Host `{host}`"))?;
    if !is_own_host(&authority, 80, local, allowed) {
        return Err(format!(
            "Host `{host}` is neither this admin API's address ({local}) nor a loopback name on its port; list it in `admin.allowed_hosts` to allow it"
        ));
    }
    for origin in headers.get_all(header::ORIGIN) {
        let text = origin.to_str().unwrap_or("").trim();
        let uri = text.parse::<Uri>().ok();
        let default_port = match uri.as_ref().and_then(Uri::scheme_str) {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        };
        let own = match (uri.as_ref().and_then(Uri::authority), default_port) {
            (Some(authority), Some(port)) => is_own_host(authority, port, local, allowed),
            _ => false,
        };
        if !own {
            return Err(format!(
                "a page on `{text}` may not call the admin API (Origin); list its host in `admin.allowed_hosts` to allow it"
            ));
        }
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(
            "a browser sent this request for another site (Sec-Fetch-Site: cross-site)".to_owned(),
        );
    }
    Ok(())
}

/// Whether `authority` (its port `default_port` when it names none) is the admin listener on
/// `local`: an entry of `allowed`, or, on `local`'s port, `localhost`, a loopback address,
/// `local`'s own address, or any address when `local` is unspecified (`0.0.0.0`, `[::]`). An
/// address cannot be a rebound name, so it is only ever another way to reach this listener.
fn is_own_host(
    authority: &http::uri::Authority,
    default_port: u16,
    local: SocketAddr,
    allowed: &[String],
) -> bool {
    let host = authority.host().to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(default_port);
    let listed = allowed.iter().any(|entry| {
        if entry == "*" {
            return true;
        }
        let Ok(entry) = http::uri::Authority::try_from(entry.as_str()) else {
            return false;
        };
        entry.host().eq_ignore_ascii_case(&host) && entry.port_u16().is_none_or(|p| p == port)
    });
    if listed {
        return true;
    }
    if port != local.port() {
        return false;
    }
    if host == "localhost" {
        return true;
    }
    let address = host.trim_start_matches('[').trim_end_matches(']');
    match address.parse::<IpAddr>() {
        Ok(ip) => {
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                IpAddr::V4(_) => ip,
            };
            ip.is_loopback() || ip == local.ip() || local.ip().is_unspecified()
        }
        Err(_) => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `/readyz`: 200 once flags are loaded, else 503. A store error shows in the body either way;
/// while flags are loaded it stays 200, since the last good flags keep serving and taking every
/// replica out of its load balancer for one bad file would be an outage.
fn readyz(flags: &dyn crate::decision::flags::FlagSource) -> Response<Full<Bytes>> {
    let error = flags.last_error();
    match (flags.is_ready(), error) {
        (true, None) => text(StatusCode::OK, "ready\n"),
        (true, Some(error)) => text_owned(
            StatusCode::OK,
            format!(
                "ready, on flags last confirmed {} ago; flag store error: {error}\n",
                describe_age(flags.staleness())
            ),
        ),
        (false, None) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: flags are not loaded yet\n",
        ),
        (false, Some(error)) => text_owned(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: flags are not loaded yet; flag store error: {error}\n"),
        ),
    }
}

/// `1.2s`, `3m 4s`; `an unknown time` without one.
fn describe_age(age: Option<std::time::Duration>) -> String {
    match age {
        None => "an unknown time".to_owned(),
        Some(age) if age.as_secs() < 60 => format!("{:.1}s", age.as_secs_f64()),
        Some(age) => format!("{}m {}s", age.as_secs() / 60, age.as_secs() % 60),
    }
}

fn routes(proxy: &Proxy) -> RoutesDoc {
    let shared = &proxy.shared;
    let active = shared.active.load();
    let flags_ready = shared.flags.is_ready();
    let now = std::time::Instant::now();
    let routes = active
        .config
        .routes
        .iter()
        .zip(active.routes.routes())
        .map(|(config, compiled)| {
            let pinned = compiled.pin.load(Ordering::SeqCst);
            let mut requests = std::collections::BTreeMap::new();
            let mut errors = 0;
            let mut responses_5xx = 0;
            for (upstream, series) in shared.metrics.route_series(&config.name) {
                requests.insert(upstream, series.requests());
                errors += series.error_count();
                responses_5xx += series.by_class[4].load(Ordering::Relaxed);
            }
            let path = match &config.matcher.path {
                PathMatch::Exact(p) => PathDoc::Exact(p.clone()),
                PathMatch::Prefix(p) => PathDoc::Prefix(p.clone()),
                PathMatch::Pattern(p) => PathDoc::Pattern(p.clone()),
            };
            let headers = config
                .matcher
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = value.as_ref().map_or_else(
                        || "*".to_owned(),
                        |value| String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    );
                    (name.as_str().to_owned(), value)
                })
                .collect();
            let flag_enabled = config
                .flag
                .as_ref()
                .map(|flag| flags_ready && shared.flags.is_enabled(flag, ContextRef::default()));
            RouteDoc {
                name: config.name.clone(),
                state: RouteState::of(pinned),
                matcher: MatchDoc {
                    path,
                    methods: config
                        .matcher
                        .methods
                        .iter()
                        .map(|m| m.as_str().to_owned())
                        .collect(),
                    host: config.matcher.host.clone(),
                    headers,
                },
                service: config.service.clone(),
                fallback: config.fallback.clone(),
                flag: config.flag.clone(),
                flag_enabled,
                flag_state: config.flag.as_ref().map(|flag| {
                    let for_everyone = if flags_ready {
                        shared.flags.is_enabled_for_everyone(flag)
                    } else {
                        Some(false)
                    };
                    match for_everyone {
                        Some(true) => "on",
                        Some(false) => "off",
                        None => "varies",
                    }
                    .to_owned()
                }),
                last_decision: Reason::from_u8(compiled.last_reason.load(Ordering::Relaxed))
                    .map(|reason| reason.as_str().to_owned()),
                requests,
                errors,
                responses_5xx,
                pin: pinned.then(|| shared.pins.info(&config.name)).flatten(),
                slo: compiled
                    .slo
                    .as_ref()
                    .map(|window| crate::protection::slo::describe(window, now)),
                circuit: circuit_doc(
                    &active.upstreams[compiled.service],
                    crate::protection::breaker::nanos(now),
                ),
                fallbacks: crate::protection::guard::Cause::ALL
                    .iter()
                    .filter_map(|cause| {
                        let count =
                            compiled.guard.fallbacks[*cause as usize].load(Ordering::Relaxed);
                        (count > 0).then(|| (cause.as_str().to_owned(), count))
                    })
                    .collect(),
                rate_limited: compiled.guard.rate_limited.load(Ordering::Relaxed),
            }
        })
        .collect();
    RoutesDoc {
        schema_version: SCHEMA_VERSION,
        default_upstream: active.config.default_upstream.clone(),
        flags_ready,
        flags_error: shared.flags.last_error(),
        flags_staleness_seconds: shared.flags.staleness().map(|age| age.as_secs_f64()),
        state_file: shared.pins.file().map(|p| p.display().to_string()),
        routes,
        certificates: certificates(&active.config),
    }
}

/// The TLS certificates in force, for `GET /routes`.
fn certificates(config: &crate::config::Config) -> Vec<CertificateDoc> {
    let now = crate::ops::metrics::unix_now();
    let Some(tls) = &config.tls else {
        return Vec::new();
    };
    tls.certificates
        .iter()
        .map(|cert| {
            let not_after = u64::try_from(cert.not_after).map_or_else(
                |_| "before 1970".to_owned(),
                |secs| {
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                    )
                    .to_string()
                },
            );
            CertificateDoc {
                file: cert.cert.display().to_string(),
                subject: cert.subject.clone(),
                names: cert.names.clone(),
                default: cert.default,
                not_after,
                expires_in_seconds: cert.not_after.saturating_sub(now),
            }
        })
        .collect()
}

fn metrics(proxy: &Proxy) -> String {
    let shared = &proxy.shared;
    let active = shared.active.load();
    let extra = Extra {
        rollbacks: shared.pins.rollbacks(),
        pinned: active
            .routes
            .routes()
            .iter()
            .map(|route| (route.name.to_string(), route.pin.load(Ordering::Relaxed)))
            .collect(),
        health: active
            .upstreams
            .iter()
            .flat_map(|up| {
                up.addresses.iter().map(|address| {
                    (
                        up.name.to_string(),
                        address.authority.to_string(),
                        address.healthy.load(Ordering::Relaxed),
                    )
                })
            })
            .collect(),
        flags_ready: shared.flags.is_ready(),
        flags_staleness: shared.flags.staleness(),
        flags_error: shared.flags.last_error().is_some(),
        circuits: circuits(&active),
    };
    let mut out = shared.metrics.render(&extra);
    let now = std::time::Instant::now();
    let pinned: Vec<(String, &str)> = active
        .routes
        .routes()
        .iter()
        .filter(|route| route.pin.load(Ordering::Relaxed))
        .map(|route| {
            let by = shared
                .pins
                .info(&route.name)
                .map_or("admin", |info| info.by.as_str());
            (route.name.to_string(), by)
        })
        .collect();
    let windows: Vec<(String, crate::protection::slo::Stats)> = active
        .routes
        .routes()
        .iter()
        .filter_map(|route| Some((route.name.to_string(), route.slo.as_ref()?.stats(now))))
        .collect();
    shared.metrics.slo.render(&mut out, &pinned, &windows);
    if let Some(tls) = &active.config.tls {
        crate::ops::metrics::render_tls(&mut out, tls);
    }
    crate::shadow::render_metrics(&shared.metrics.shadow, &mut out);
    out
}

/// `GET /routes/{name}/diff`: the route's shadow-traffic summary and samples.
fn diff(proxy: &Proxy, name: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let active = proxy.shared.active.load();
    let Some(route) = active.config.routes.iter().find(|route| route.name == name) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no route named `{name}`")}),
        );
    };
    let limit = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("limit="))
        .map(str::parse::<usize>);
    let limit = match limit {
        None => 10,
        Some(Ok(limit)) => limit,
        Some(Err(_)) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "`limit` must be a number"}),
            );
        }
    };
    let state = proxy.shared.metrics.shadow.get(name);
    json_response(
        StatusCode::OK,
        &crate::shadow::summary(
            SCHEMA_VERSION,
            name,
            state.as_deref(),
            route.shadow.as_ref(),
            limit,
        ),
    )
}

/// The circuit of a route's service: its state, or `None` when its breaker is off.
fn circuit_doc(
    upstream: &crate::protection::upstream::Upstream,
    now: crate::protection::breaker::Nanos,
) -> Option<CircuitDoc> {
    let breaker = &upstream.guard.breaker;
    if !breaker.enabled() {
        return None;
    }
    let (requests, failures) = breaker.window(now);
    Some(CircuitDoc {
        upstream: upstream.name.to_string(),
        state: breaker.state(now).as_str().to_owned(),
        window_requests: requests,
        window_failures: failures,
        ejected_addresses: u64::try_from(upstream.ejected(now)).unwrap_or(u64::MAX),
    })
}

/// The circuit state of every upstream whose breaker is on.
fn circuits(
    active: &crate::ops::runtime::Active,
) -> Vec<(String, crate::protection::breaker::State)> {
    let now = crate::protection::breaker::nanos(std::time::Instant::now());
    active
        .upstreams
        .iter()
        .filter(|up| up.guard.breaker.enabled())
        .map(|up| (up.name.to_string(), up.guard.breaker.state(now)))
        .collect()
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn text_owned(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
