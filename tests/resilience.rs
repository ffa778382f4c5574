//! Request-path protection of `fig proxy` against misbehaving services (issue 5, "Migration
//! safety"): fallback retry, circuit breaker, outlier ejection, rate limits, in-flight caps.
//!
//! Each test starts faulty upstreams (tests/support/faulty.rs) and the real `fig proxy` binary on
//! port 0 with a config written for the test. Route `api` (`/api/**`) has no flag, so every
//! request is meant for `service`; its fallback is `monolith`, a healthy server. The tests look at
//! what a user sees (status, `x-fig-upstream`, `x-served-by`, `Retry-After`) and at what the
//! operator sees (`GET /routes`, `/metrics`, `fig route status`). Every wait is bounded in time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::faulty::{Faulty, Mode};
use crate::support::fig;
use crate::support::procs::Proc;
use crate::support::upstreams::closed_port;

/// A running `fig proxy` and its temporary directory.
struct Proxy {
    _dir: tempfile::TempDir,
    proc: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
}

/// What a test looks at in a response.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// `x-fig-upstream`: who the proxy says answered.
    upstream: String,
    /// `x-served-by`: who really answered.
    served_by: String,
    retry_after: String,
    body: String,
}

/// Starts `fig proxy` with `monolith` and `service` upstreams at these URLs, route `api` from
/// `/api/**` to `service` with fallback `monolith`, and `extra_service` / `extra_route` appended
/// to the service's upstream table and to the route.
fn start(monolith: &str, service: &[String], extra_service: &str, extra_route: &str) -> Proxy {
    let dir = tempfile::tempdir().expect("tempdir");
    let addresses = service
        .iter()
        .map(|url| format!("\"{url}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let config = format!(
        r#"[server]
listen = "127.0.0.1:0"

[timeouts]
connect = "500ms"

[upstreams.monolith]
addresses = ["{monolith}"]

[upstreams.service]
addresses = [{addresses}]
{extra_service}

[[routes]]
name = "api"
match = {{ pattern = "/api/**" }}
service = "service"
fallback = "monolith"
{extra_route}

[admin]
listen = "127.0.0.1:0"
# No token on loopback, as before tokens were generated at first start (tests/admin.rs).
generate_token = false
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
        _dir: dir,
        proc,
        addr,
        admin,
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

fn header(response: &reqwest::blocking::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

impl Proxy {
    #[track_caller]
    fn send(&self, method: &str, path: &str, user: Option<&str>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = client().request(method.clone(), format!("http://{}{path}", self.addr));
        if let Some(user) = user {
            request = request.header("x-user-id", user);
        }
        if method == reqwest::Method::POST {
            request = request.body("{\"amount\": 1}");
        }
        let response = request.send().unwrap_or_else(|err| {
            panic!(
                "{method} {path} through the proxy: {err}; proxy stderr:\n{}",
                self.proc.stderr()
            )
        });
        Answer {
            status: response.status().as_u16(),
            upstream: header(&response, "x-fig-upstream"),
            served_by: header(&response, "x-served-by"),
            retry_after: header(&response, "retry-after"),
            body: response.text().expect("a response body"),
        }
    }

    #[track_caller]
    fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None)
    }

    fn admin_text(&self, path: &str) -> String {
        client()
            .get(format!("http://{}{path}", self.admin))
            .send()
            .and_then(reqwest::blocking::Response::text)
            .unwrap_or_else(|err| panic!("GET {path} on the admin API: {err}"))
    }

    /// The `api` route in `GET /routes`.
    fn api_route(&self) -> Value {
        let routes: Value = serde_json::from_str(&self.admin_text("/routes")).expect("JSON");
        routes["routes"][0].clone()
    }

    /// The value of one metric line (`name{labels}`), 0 when absent.
    fn metric(&self, series: &str) -> f64 {
        self.admin_text("/metrics")
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// Sends `GET path` until `done` holds, for at most `limit`; returns that answer.
#[track_caller]
fn poll(proxy: &Proxy, path: &str, limit: Duration, done: impl Fn(&Answer) -> bool) -> Answer {
    let start = Instant::now();
    loop {
        let answer = proxy.get(path);
        if done(&answer) {
            return answer;
        }
        assert!(
            start.elapsed() < limit,
            "GET {path}: still {answer:?} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[track_caller]
fn assert_from_monolith(answers: &[Answer]) {
    for answer in answers {
        assert_eq!(
            (
                answer.status,
                answer.upstream.as_str(),
                answer.served_by.as_str()
            ),
            (200, "monolith", "monolith"),
            "{answer:?}"
        );
    }
}

#[test]
fn gets_see_no_error_while_the_service_answers_500() {
    let monolith = Faulty::start("monolith", Mode::Healthy);
    let service = Faulty::start("service", Mode::Error);
    let proxy = start(&monolith.url(), &[service.url()], "", "");

    let answers: Vec<Answer> = (0..30)
        .map(|i| proxy.get(&format!("/api/orders/{i}")))
        .collect();
    assert_from_monolith(&answers);
    assert_eq!(answers[0].body, "monolith GET /api/orders/0");
    // The first requests were tried on the service and retried; then its circuit opened.
    let retried = proxy.metric("fig_proxy_fallbacks_total{route=\"api\",cause=\"status\"}");
    let short_circuited =
        proxy.metric("fig_proxy_fallbacks_total{route=\"api\",cause=\"circuit-open\"}");
    assert_eq!(retried, 5.0, "five failures open the circuit by default");
    assert_eq!(retried + short_circuited, 30.0);
    assert_eq!(service.hits(), 5);
    assert_eq!(proxy.api_route()["circuit"]["state"], "open");
}

#[test]
fn gets_see_no_error_while_the_service_is_too_slow() {
    let monolith = Faulty::start("monolith", Mode::Healthy);
    let service = Faulty::start("service", Mode::Slow(Duration::from_secs(5)));
    let proxy = start(
        &monolith.url(),
        &[service.url()],
        "",
        "retry = { per_try_timeout = \"300ms\" }",
    );

    let started = Instant::now();
    let answers: Vec<Answer> = (0..3).map(|_| proxy.get("/api/slow")).collect();
    assert_from_monolith(&answers);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "three requests took {:?}; each should wait 300ms for the service",
        started.elapsed()
    );
    assert_eq!(
        proxy.metric("fig_proxy_fallbacks_total{route=\"api\",cause=\"timeout\"}"),
        3.0
    );
}

#[test]
fn gets_see_no_error_while_the_service_is_down() {
    let monolith = Faulty::start("monolith", Mode::Healthy);
    let dead = format!("http://{}", closed_port());
    let proxy = start(&monolith.url(), &[dead], "", "");

    let answers: Vec<Answer> = (0..10).map(|_| proxy.get("/api/x")).collect();
    assert_from_monolith(&answers);
    assert!(proxy.metric("fig_proxy_fallbacks_total{route=\"api\",cause=\"connect\"}") >= 1.0);
    // HEAD and OPTIONS are idempotent too.
    for method in ["HEAD", "OPTIONS"] {
        let answer = proxy.send(method, "/api/x", None);
        assert_eq!((answer.status, answer.upstream.as_str()), (200, "monolith"));
    }
}

#[test]
fn a_post_is_not_retried_on_the_monolith() {
    let monolith = Faulty::start("monolith", Mode::Healthy);
    let service = Faulty::start("service", Mode::Error);
    let proxy = start(&monolith.url(), &[service.url()], "", "");

    let answer = proxy.send("POST", "/api/payments", None);
    assert_eq!(
        (
            answer.status,
            answer.upstream.as_str(),
            answer.served_by.as_str()
        ),
        (500, "service", "service")
    );
    assert_eq!(monolith.hits_of("POST"), 0);
    assert_eq!(service.hits_of("POST"), 1);

    // A method the route declares safe is retried, body and all.
    let monolith = Faulty::start("monolith", Mode::Healthy);
    let proxy = start(
        &monolith.url(),
        &[service.url()],
        "",
        "retry = { methods = [\"GET\", \"POST\"] }",
    );
    let answer = proxy.send("POST", "/api/payments", None);
    assert_eq!(
        (answer.status, answer.served_by.as_str()),
        (200, "monolith")
    );
    assert_eq!(monolith.hits_of("POST"), 1);
}

#[test]
fn the_circuit_opens_after_the_threshold_and_half_open_recovers() {
    let monolith = Faulty::start("monolith", Mode::Healthy);
    let service = Faulty::start("service", Mode::Error);
    let proxy = start(
        &monolith.url(),
        &[service.url()],
        "circuit_breaker = { consecutive_failures = 3, open_for = \"500ms\", half_open_requests = 2 }",
        "",
    );
    assert_eq!(proxy.api_route()["circuit"]["state"], "closed");

    let answers: Vec<Answer> = (0..10).map(|_| proxy.get("/api/a")).collect();
    assert_from_monolith(&answers);
    assert_eq!(service.hits(), 3, "the circuit opens after three failures");
    assert_eq!(proxy.api_route()["circuit"]["state"], "open");
    assert_eq!(proxy.api_route()["last_decision"], "circuit-open");
    assert_eq!(
        proxy.metric("fig_proxy_circuit_state{upstream=\"service\"}"),
        1.0
    );
    let status = fig()
        .args(["route", "status", "--admin"])
        .arg(format!("http://{}", proxy.admin))
        .output()
        .expect("fig route status runs");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("api: service `service` circuit open"),
        "fig route status says:\n{text}"
    );

    // Still failing when the circuit half-opens: one trial, and it opens again.
    std::thread::sleep(Duration::from_millis(600));
    assert_from_monolith(&[proxy.get("/api/b")]);
    assert_eq!(service.hits(), 4);
    assert_eq!(proxy.api_route()["circuit"]["state"], "open");

    // Healthy again: after `open_for`, two trial successes close the circuit.
    service.set(Mode::Healthy);
    let answer = poll(&proxy, "/api/c", Duration::from_secs(5), |answer| {
        answer.served_by == "service"
    });
    assert_eq!((answer.status, answer.upstream.as_str()), (200, "service"));
    poll(&proxy, "/api/d", Duration::from_secs(5), |answer| {
        answer.served_by == "service"
    });
    assert_eq!(proxy.api_route()["circuit"]["state"], "closed");
    assert_eq!(
        proxy.metric("fig_proxy_circuit_state{upstream=\"service\"}"),
        0.0
    );
    assert_eq!(
        proxy.metric("fig_proxy_circuit_transitions_total{upstream=\"service\",to=\"open\"}"),
        2.0
    );
    assert_eq!(
        proxy.metric("fig_proxy_circuit_transitions_total{upstream=\"service\",to=\"closed\"}"),
        1.0
    );
}

#[test]
fn outlier_ejection_takes_the_bad_address_out() {
    let monolith = Faulty::start("monolith", Mode::Healthy);
    let good = Faulty::start("good", Mode::Healthy);
    let bad = Faulty::start("bad", Mode::Error);
    let proxy = start(
        &monolith.url(),
        &[good.url(), bad.url()],
        "circuit_breaker = { enabled = false }\noutlier_detection = { consecutive_failures = 2, base_ejection_time = \"1m\" }",
        "retry = { enabled = false }",
    );

    let answers: Vec<Answer> = (0..20).map(|_| proxy.get("/api/x")).collect();
    assert_eq!(bad.hits(), 2, "two failures in a row eject the address");
    assert_eq!(answers.iter().filter(|a| a.status == 500).count(), 2);
    for answer in &answers[4..] {
        assert_eq!((answer.status, answer.served_by.as_str()), (200, "good"));
    }
    assert_eq!(
        proxy.metric("fig_proxy_outlier_ejections_total{upstream=\"service\"}"),
        1.0
    );
}

#[test]
fn rate_limit_answers_429_with_retry_after_and_recovers() {
    let monolith = Faulty::start("monolith", Mode::Healthy);
    let service = Faulty::start("service", Mode::Healthy);
    let proxy = start(
        &monolith.url(),
        &[service.url()],
        "",
        "rate_limit = { rate = 2, per = \"1s\", burst = 3, key = \"user\" }",
    );

    let first: Vec<Answer> = (0..3)
        .map(|_| proxy.send("GET", "/api/x", Some("alice")))
        .collect();
    for answer in &first {
        assert_eq!((answer.status, answer.served_by.as_str()), (200, "service"));
    }
    let limited = proxy.send("GET", "/api/x", Some("alice"));
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.retry_after, "1");
    assert!(
        limited.body.contains("rate limit of route `api`"),
        "{limited:?}"
    );
    // Another user has a bucket of their own.
    assert_eq!(proxy.send("GET", "/api/x", Some("bob")).status, 200);
    assert_eq!(
        service.hits(),
        4,
        "a limited request does not reach the service"
    );
    assert_eq!(
        proxy.metric("fig_proxy_rate_limited_total{route=\"api\"}"),
        1.0
    );

    // Two tokens a second: alice gets through again within a second.
    let start = Instant::now();
    loop {
        let answer = proxy.send("GET", "/api/x", Some("alice"));
        if answer.status == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "still {answer:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_in_flight_cap_sheds_with_503() {
    let monolith = Faulty::start("monolith", Mode::Healthy);
    let service = Faulty::start("service", Mode::Slow(Duration::from_millis(1500)));
    let proxy = start(
        &monolith.url(),
        &[service.url()],
        "max_in_flight = 1",
        "retry = { enabled = false }",
    );

    std::thread::scope(|scope| {
        let slow = scope.spawn(|| proxy.get("/api/slow"));
        let start = Instant::now();
        while service.hits() == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the first request never arrived"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let shed = proxy.get("/api/other");
        assert_eq!((shed.status, shed.upstream.as_str()), (503, "service"));
        assert_eq!(shed.retry_after, "1");
        assert!(
            shed.body.contains("too many requests in flight"),
            "{shed:?}"
        );
        let first = slow.join().expect("the slow request");
        assert_eq!((first.status, first.served_by.as_str()), (200, "service"));
    });
    assert_eq!(service.hits(), 1);
    assert_eq!(
        proxy.metric("fig_proxy_shed_total{upstream=\"service\",reason=\"max-in-flight\"}"),
        1.0
    );
    // The slot is free again once the response is done.
    service.set(Mode::Healthy);
    assert_eq!(proxy.get("/api/again").status, 200);
}
