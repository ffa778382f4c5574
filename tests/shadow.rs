//! Shadow traffic through the real `fig proxy`: requests copied to the other upstream, responses
//! compared, differences visible in `/metrics` and `fig route diff`.
//!
//! Each test starts two small JSON servers (axum, on 127.0.0.1:0, in a runtime of their own)
//! that record every request they get, writes a config whose routes have a flag but no flag
//! store (so every flag is off: the monolith answers and the service gets the copy), starts the
//! `fig proxy` binary on port 0, and talks HTTP over loopback. Every wait is bounded in time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::support::fig;
use crate::support::procs::Proc;
use crate::support::upstreams::closed_port;

const TOKEN: &str = "shadow-test-token";
/// How long the shadow's results may take to show up; generous for a debug build on a busy box.
const SETTLE: Duration = Duration::from_secs(15);

/// One request a test server got.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    path: String,
    user: Option<String>,
    shadow: bool,
    body: String,
}

#[derive(Clone)]
struct ServerState {
    name: &'static str,
    delay: Duration,
    hits: Arc<Mutex<Vec<Hit>>>,
}

/// The monolith and the service, answering JSON, until dropped.
struct Servers {
    monolith: SocketAddr,
    service: SocketAddr,
    monolith_hits: Arc<Mutex<Vec<Hit>>>,
    service_hits: Arc<Mutex<Vec<Hit>>>,
    stop: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// The body each server gives for a path. `/items/diff` differs in `total`; `/items/same` is
/// the same document with keys in another order, `1.0` for `1` and an ignored timestamp.
fn answer(name: &str, path: &str, body: &str) -> String {
    match (name, path) {
        ("monolith", "/items/diff") => r#"{"id": 1, "total": 10, "name": "a"}"#.to_owned(),
        (_, "/items/diff") => r#"{"name": "a", "total": 12, "id": 1}"#.to_owned(),
        ("monolith", "/items/same") => {
            r#"{"id": 1, "name": "a", "tags": ["x", "y"], "price": 1, "generated_at": "2026-01-01T00:00:00Z"}"#.to_owned()
        }
        (_, "/items/same") => {
            r#"{"generated_at": "2026-11-22T08:00:00Z", "price": 1.0, "tags": ["x", "y"], "name": "a", "id": 1}"#.to_owned()
        }
        (_, path) => serde_json::json!({"path": path, "body": body}).to_string(),
    }
}

async fn handle(
    State(state): State<ServerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    state
        .hits
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Hit {
            method: method.to_string(),
            path: uri.path().to_owned(),
            user: header("x-user-id"),
            shadow: header("x-fig-shadow").is_some(),
            body: body.clone(),
        });
    tokio::time::sleep(state.delay).await;
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        answer(state.name, uri.path(), &body),
    )
}

impl Servers {
    /// Starts both servers; the service waits `service_delay` before each answer.
    fn start(service_delay: Duration) -> Servers {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the test servers");
        let (stop, stopped) = watch::channel(false);
        let monolith_hits = Arc::new(Mutex::new(Vec::new()));
        let service_hits = Arc::new(Mutex::new(Vec::new()));
        let (monolith, service) = runtime.block_on(async {
            let mut addrs = Vec::new();
            for (name, delay, hits) in [
                ("monolith", Duration::ZERO, monolith_hits.clone()),
                ("service", service_delay, service_hits.clone()),
            ] {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addrs.push(listener.local_addr().expect("address"));
                let app = axum::Router::new()
                    .fallback(handle)
                    .with_state(ServerState { name, delay, hits });
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        })
                        .await;
                });
            }
            (addrs[0], addrs[1])
        });
        Servers {
            monolith,
            service,
            monolith_hits,
            service_hits,
            stop,
            runtime: Some(runtime),
        }
    }

    fn service_hits(&self) -> Vec<Hit> {
        self.service_hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn monolith_hits(&self) -> Vec<Hit> {
        self.monolith_hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A running `fig proxy` with two shadowed routes, killed on drop.
struct Proxy {
    _proc: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
}

/// Starts `fig proxy` in front of `monolith` and `service`. Route `items` (`/items/**`) mirrors
/// `percent` of users' GET, HEAD and OPTIONS requests and ignores `/generated_at`; route
/// `orders` (`/orders/**`) opts in to mirroring POST, with bodies up to 64 bytes. At most
/// `max_concurrent` copies are in flight.
fn start_proxy_with(
    monolith: SocketAddr,
    service: SocketAddr,
    percent: u8,
    max_concurrent: usize,
) -> Proxy {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("admin.token"), TOKEN).expect("write the token");
    let config = format!(
        r#"[server]
listen = "127.0.0.1:0"

[upstreams.monolith]
addresses = ["http://{monolith}"]

[upstreams.service]
addresses = ["http://{service}"]

[[routes]]
name = "items"
match = {{ prefix = "/items" }}
service = "service"
flag = "items-service"
shadow = {{ percent = {percent}, ignore = ["/generated_at"], timeout = "10s" }}

[[routes]]
name = "orders"
match = {{ prefix = "/orders" }}
service = "service"
flag = "orders-service"
shadow = {{ methods = ["GET", "POST"], max_request_body = 64 }}

[context]
user_id = ["header:x-user-id"]

[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"

[shadow]
dir = "shadow"
max_concurrent = {max_concurrent}

[reload]
watch = false
"#
    );
    let path = dir.path().join("fig-proxy.toml");
    std::fs::write(&path, config).expect("write the config");
    let mut command = fig();
    command.arg("proxy").arg("--config").arg(&path);
    let mut proc = Proc::spawn("fig proxy", command);
    let addr = proc.address("listening on http://");
    let admin = proc.address("admin on http://");
    Proxy {
        _proc: proc,
        addr,
        admin,
        dir,
    }
}

fn start_proxy(monolith: SocketAddr, service: SocketAddr, percent: u8) -> Proxy {
    start_proxy_with(monolith, service, percent, 64)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

impl Proxy {
    /// Sends `method path` as `user` with `body`; returns status, body and how long it took.
    #[track_caller]
    fn send(&self, method: &str, path: &str, user: &str, body: &str) -> (u16, Value, Duration) {
        let start = Instant::now();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let response = client()
            .request(method, format!("http://{}{path}", self.addr))
            .header("x-user-id", user)
            .body(body.to_owned())
            .send()
            .unwrap_or_else(|err| panic!("{path} through the proxy: {err}"));
        let status = response.status().as_u16();
        let text = response.text().expect("a body");
        let elapsed = start.elapsed();
        let json =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"));
        (status, json, elapsed)
    }

    #[track_caller]
    fn get(&self, path: &str, user: &str) -> Value {
        let (status, body, _) = self.send("GET", path, user, "");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The value of one sample line of `/metrics`, such as
    /// `fig_proxy_shadow_results_total{route="items",result="equal"}`; 0 when absent.
    fn metric(&self, series: &str) -> u64 {
        let text = client()
            .get(format!("http://{}/metrics", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .and_then(reqwest::blocking::Response::text)
            .expect("GET /metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until `metric(series)` is `want`, for at most [`SETTLE`].
    #[track_caller]
    fn wait_metric(&self, series: &str, want: u64) {
        let start = Instant::now();
        loop {
            let got = self.metric(series);
            if got == want {
                return;
            }
            assert!(
                start.elapsed() < SETTLE,
                "{series} is {got}, not {want}, after {SETTLE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `fig route --admin URL --token T ARGS...`.
    fn route(&self, args: &[&str]) -> Output {
        fig()
            .arg("route")
            .arg("--admin")
            .arg(format!("http://{}", self.admin))
            .arg("--token")
            .arg(TOKEN)
            .args(args)
            .env_remove("FIG_ADMIN_TOKEN")
            .env_remove("FIG_ADMIN_URL")
            .output()
            .expect("fig route runs")
    }

    #[track_caller]
    fn route_ok(&self, args: &[&str]) -> String {
        let output = self.route(args);
        assert!(
            output.status.success(),
            "fig route {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn samples_file(&self, route: &str) -> PathBuf {
        self.dir.path().join("shadow").join(format!("{route}.json"))
    }
}

fn result(route: &str, result: &str) -> String {
    format!("fig_proxy_shadow_results_total{{route=\"{route}\",result=\"{result}\"}}")
}

#[test]
fn a_different_response_shows_in_metrics_and_fig_route_diff() {
    let servers = Servers::start(Duration::ZERO);
    let proxy = start_proxy(servers.monolith, servers.service, 100);
    for user in ["u1", "u2", "u3", "u4"] {
        // The client always gets the monolith's document.
        assert_eq!(proxy.get("/items/diff", user)["total"], 10);
    }
    proxy.wait_metric(&result("items", "different"), 4);
    assert_eq!(proxy.metric(&result("items", "equal")), 0);
    assert_eq!(
        proxy.metric("fig_proxy_shadow_differences_total{route=\"items\",kind=\"body\"}"),
        4
    );
    assert_eq!(
        proxy.metric("fig_proxy_shadow_mirrored_total{route=\"items\"}"),
        4
    );
    // The copies carry the marker header and the user's headers.
    let copies = servers.service_hits();
    assert_eq!(copies.len(), 4);
    assert!(
        copies
            .iter()
            .all(|hit| hit.shadow && hit.path == "/items/diff")
    );

    let text = proxy.route_ok(&["diff", "items"]);
    assert!(text.contains("4 (100.0%)"), "{text}");
    assert!(
        text.contains("most common differing paths:\n       4  /total"),
        "{text}"
    );
    assert!(text.contains("GET /items/diff"), "{text}");
    assert!(
        text.contains("primary monolith 200, shadow service 200"),
        "{text}"
    );
    assert!(text.contains("/total: 10 -> 12"), "{text}");

    let doc: Value = serde_json::from_str(
        &proxy.route_ok(&["diff", "items", "--limit", "2", "--format", "json"]),
    )
    .expect("JSON from fig route diff");
    assert_eq!(doc["counts"]["different"], 4);
    assert_eq!(doc["counts"]["different_by_kind"]["body"], 4);
    assert_eq!(doc["top_paths"][0]["path"], "/total");
    assert_eq!(doc["samples"].as_array().map(Vec::len), Some(2));
    let difference = &doc["samples"][0]["differences"][0];
    assert_eq!(
        (
            &difference["path"],
            &difference["primary"],
            &difference["shadow"]
        ),
        (
            &Value::from("/total"),
            &Value::from("10"),
            &Value::from("12")
        )
    );

    let html = proxy.route_ok(&["diff", "items", "--format", "html"]);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<code>/total</code>"), "{html}");
    assert!(html.contains("GET /items/diff"), "{html}");

    // Samples reach the disk within a second or so, whole.
    let file = proxy.samples_file("items");
    let start = Instant::now();
    while !file.exists() && start.elapsed() < SETTLE {
        std::thread::sleep(Duration::from_millis(50));
    }
    let samples: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("the samples file")).expect("JSON");
    assert_eq!(samples[0]["differences"][0]["path"], "/total");
}

#[test]
fn equal_json_in_another_key_order_is_not_a_difference() {
    let servers = Servers::start(Duration::ZERO);
    let proxy = start_proxy(servers.monolith, servers.service, 100);
    for user in ["u1", "u2", "u3"] {
        proxy.get("/items/same", user);
    }
    proxy.wait_metric(&result("items", "equal"), 3);
    assert_eq!(proxy.metric(&result("items", "different")), 0);
    let doc: Value = serde_json::from_str(&proxy.route_ok(&["diff", "items", "--format", "json"]))
        .expect("JSON");
    assert_eq!(doc["counts"]["equal"], 3);
    assert_eq!(doc["samples"], Value::Array(Vec::new()));
    let text = proxy.route_ok(&["diff", "items"]);
    assert!(text.contains("no differences recorded"), "{text}");
}

#[test]
fn a_slow_shadow_does_not_delay_the_client() {
    let delay = Duration::from_secs(3);
    let servers = Servers::start(delay);
    let proxy = start_proxy(servers.monolith, servers.service, 100);
    let (status, body, elapsed) = proxy.send("GET", "/items/diff", "u1", "");
    assert_eq!((status, &body["total"]), (200, &Value::from(10)));
    // The monolith answers at once; the service takes 3 s. Generous for a busy debug build.
    assert!(
        elapsed < delay / 2,
        "the client waited {elapsed:?} with a shadow that takes {delay:?}"
    );
    // The comparison still happens once the slow shadow answers.
    proxy.wait_metric(&result("items", "different"), 1);
}

#[test]
fn a_shadow_that_is_down_is_counted_and_the_client_is_served() {
    let servers = Servers::start(Duration::ZERO);
    let proxy = start_proxy(servers.monolith, closed_port(), 100);
    for user in ["u1", "u2"] {
        assert_eq!(proxy.get("/items/diff", user)["total"], 10);
    }
    proxy.wait_metric(&result("items", "error"), 2);
    let text = proxy.route_ok(&["diff", "items"]);
    assert!(text.contains("shadow service failed"), "{text}");
    assert!(text.contains("shadow failed: "), "{text}");
}

#[test]
fn a_user_is_always_shadowed_or_never() {
    let servers = Servers::start(Duration::ZERO);
    let proxy = start_proxy(servers.monolith, servers.service, 50);
    let users: Vec<String> = (0..40).map(|n| format!("user-{n}")).collect();
    for round in 0..3 {
        for user in &users {
            proxy.get(&format!("/items/same?round={round}"), user);
        }
    }
    let expected: std::collections::BTreeSet<&String> = users
        .iter()
        .filter(|user| strangler_proxy::shadow::bucket("items", user) <= 50)
        .collect();
    let mirrored = u64::try_from(expected.len() * 3).expect("small");
    proxy.wait_metric(&result("items", "equal"), mirrored);
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    for hit in servers.service_hits() {
        *per_user.entry(hit.user.unwrap_or_default()).or_default() += 1;
    }
    // Every request of a shadowed user was copied, and no request of the others.
    assert!(per_user.values().all(|n| *n == 3), "{per_user:?}");
    assert_eq!(
        per_user.keys().collect::<std::collections::BTreeSet<_>>(),
        expected
    );
    assert!(
        (5..=35).contains(&expected.len()),
        "{} of 40 users shadowed at 50%",
        expected.len()
    );
}

#[test]
fn non_idempotent_requests_are_mirrored_only_when_the_route_opts_in() {
    let servers = Servers::start(Duration::ZERO);
    let proxy = start_proxy(servers.monolith, servers.service, 100);

    // `items` mirrors GET, HEAD and OPTIONS only.
    let (status, body, _) = proxy.send("POST", "/items/buy", "u1", "one item");
    assert_eq!((status, &body["body"]), (200, &Value::from("one item")));
    // `orders` lists POST: the copy carries the same body.
    let (status, body, _) = proxy.send("POST", "/orders/new", "u1", "an order");
    assert_eq!((status, &body["body"]), (200, &Value::from("an order")));
    proxy.wait_metric(&result("orders", "equal"), 1);

    let copies = servers.service_hits();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(
        (
            copies[0].method.as_str(),
            copies[0].path.as_str(),
            copies[0].body.as_str()
        ),
        ("POST", "/orders/new", "an order")
    );
    assert_eq!(
        proxy.metric("fig_proxy_shadow_mirrored_total{route=\"items\"}"),
        0
    );
    assert_eq!(servers.monolith_hits().len(), 2);
}

#[test]
fn copies_beyond_the_concurrency_bound_are_dropped_and_counted() {
    let servers = Servers::start(Duration::from_secs(3));
    let proxy = start_proxy_with(servers.monolith, servers.service, 100, 1);
    let start = Instant::now();
    for user in ["u1", "u2", "u3"] {
        assert_eq!(proxy.get("/items/diff", user)["total"], 10);
    }
    // The one slot is busy with the first (slow) copy: the next two are dropped, not queued,
    // and the clients did not wait for any of them.
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        proxy.metric("fig_proxy_shadow_dropped_total{route=\"items\",reason=\"saturated\"}"),
        2
    );
    proxy.wait_metric(&result("items", "different"), 1);
}

#[test]
fn a_request_body_over_the_cap_is_not_mirrored() {
    let servers = Servers::start(Duration::ZERO);
    let proxy = start_proxy(servers.monolith, servers.service, 100);
    let big = "x".repeat(1000);
    let (status, body, _) = proxy.send("POST", "/orders/new", "u1", &big);
    assert_eq!(
        (status, body["body"].as_str().map(str::len)),
        (200, Some(1000))
    );
    assert_eq!(
        proxy.metric(
            "fig_proxy_shadow_dropped_total{route=\"orders\",reason=\"request-body-too-large\"}"
        ),
        1
    );
    assert_eq!(
        proxy.metric("fig_proxy_shadow_mirrored_total{route=\"orders\"}"),
        0
    );
    assert!(servers.service_hits().is_empty());
}
