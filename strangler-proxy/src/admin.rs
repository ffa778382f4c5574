//! The admin API: route state, rollback and restore, reload, health, metrics.
//!
//! It listens on its own address (loopback by default). Every endpoint but `/healthz` and
//! `/readyz` needs `Authorization: Bearer <token>` when a token is configured. Answers are JSON,
//! except `/metrics` (Prometheus text) and the health endpoints (plain text).
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
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::PathMatch;
use crate::flags::ContextRef;
use crate::metrics::Extra;
use crate::route::Reason;
use crate::serve::Proxy;

/// Version of the JSON shapes of this API.
pub const SCHEMA_VERSION: u32 = 1;

pub(crate) async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
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
                async move { Ok::<_, Infallible>(handle(&proxy, req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(conn).await;
        });
    }
}

/// Answers one admin request. The body of POST requests is ignored.
pub(crate) fn handle(proxy: &Proxy, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let method = req.method();
    if method == Method::GET && path == "/healthz" {
        return text(StatusCode::OK, "ok\n");
    }
    if method == Method::GET && path == "/readyz" {
        return if proxy.shared.flags.is_ready() {
            text(StatusCode::OK, "ready\n")
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: flags are not loaded yet\n",
            )
        };
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
                    &json!({"route": name, "state": state_name(proxy.shared.pins.is_pinned(name)), "changed": changed}),
                ),
                Err(crate::Error::UnknownRoute(name)) => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": format!("no route named `{name}`")}),
                ),
                Err(err) => json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"error": format!("the route is {} in memory, but: {err}", state_name(proxy.shared.pins.is_pinned(name)))}),
                ),
            }
        }
        (Method::GET, ["routes", name, "diff"]) => diff(proxy, name, req.uri().query()),
        (Method::POST, ["reload"]) => match proxy.reload() {
            Ok(()) => json_response(StatusCode::OK, &json!({"reloaded": true})),
            Err(err) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"reloaded": false, "error": err.to_string()}),
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn state_name(pinned: bool) -> &'static str {
    if pinned { "pinned-to-monolith" } else { "flag" }
}

fn routes(proxy: &Proxy) -> Value {
    let shared = &proxy.shared;
    let active = shared.active.load();
    let flags_ready = shared.flags.is_ready();
    let now = std::time::Instant::now();
    let routes: Vec<Value> = active
        .config
        .routes
        .iter()
        .zip(active.routes.routes())
        .map(|(config, compiled)| {
            let pinned = compiled.pin.load(Ordering::SeqCst);
            let mut requests = serde_json::Map::new();
            let mut errors = 0;
            for (upstream, series) in shared.metrics.route_series(&config.name) {
                requests.insert(upstream, json!(series.requests()));
                errors += series.error_count();
            }
            let (match_kind, match_value) = match &config.matcher.path {
                PathMatch::Exact(p) => ("exact", p),
                PathMatch::Prefix(p) => ("prefix", p),
                PathMatch::Pattern(p) => ("pattern", p),
            };
            let flag_enabled = config
                .flag
                .as_ref()
                .map(|flag| flags_ready && shared.flags.is_enabled(flag, ContextRef::default()));
            json!({
                "name": config.name,
                "state": state_name(pinned),
                "match": {
                    match_kind: match_value,
                    "methods": config.matcher.methods.iter().map(Method::as_str).collect::<Vec<_>>(),
                    "host": config.matcher.host,
                },
                "service": config.service,
                "fallback": config.fallback,
                "flag": config.flag,
                "flag_enabled": flag_enabled,
                "last_decision": Reason::from_u8(compiled.last_reason.load(Ordering::Relaxed)).map(Reason::as_str),
                "requests": requests,
                "errors": errors,
                "pin": pinned.then(|| shared.pins.info(&config.name)).flatten(),
                "slo": compiled.slo.as_ref().map(|window| crate::slo::describe(window, now)),
                "circuit": circuit_json(&active.upstreams[compiled.service], crate::breaker::nanos(now)),
                "fallbacks": crate::attempt::Cause::ALL
                    .iter()
                    .filter_map(|cause| {
                        let count = compiled.guard.fallbacks[*cause as usize].load(Ordering::Relaxed);
                        (count > 0).then(|| (cause.as_str().to_owned(), json!(count)))
                    })
                    .collect::<serde_json::Map<_, _>>(),
                "rate_limited": compiled.guard.rate_limited.load(Ordering::Relaxed),
            })
        })
        .collect();
    json!({
        "schema_version": SCHEMA_VERSION,
        "default_upstream": active.config.default_upstream,
        "flags_ready": flags_ready,
        "state_file": shared.pins.file().map(|p| p.display().to_string()),
        "routes": routes,
    })
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
    let windows: Vec<(String, crate::slo::Stats)> = active
        .routes
        .routes()
        .iter()
        .filter_map(|route| Some((route.name.to_string(), route.slo.as_ref()?.stats(now))))
        .collect();
    shared.metrics.slo.render(&mut out, &pinned, &windows);
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
        &crate::shadow::summary(name, state.as_deref(), route.shadow.as_ref(), limit),
    )
}

/// The circuit of a route's service: its state, or null when its breaker is off.
fn circuit_json(upstream: &crate::upstream::Upstream, now: crate::breaker::Nanos) -> Value {
    let breaker = &upstream.guard.breaker;
    if !breaker.enabled() {
        return Value::Null;
    }
    let (requests, failures) = breaker.window(now);
    json!({
        "upstream": &*upstream.name,
        "state": breaker.state(now).as_str(),
        "window_requests": requests,
        "window_failures": failures,
        "ejected_addresses": upstream.ejected(now),
    })
}

/// The circuit state of every upstream whose breaker is on.
fn circuits(active: &crate::serve::Active) -> Vec<(String, crate::breaker::State)> {
    let now = crate::breaker::nanos(std::time::Instant::now());
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

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
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
