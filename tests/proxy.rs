//! `fig proxy` and `fig route` in front of the example monolith and payment service.
//!
//! Each test writes a config into a temporary directory, starts the real `fig proxy` binary on
//! it (proxy and admin API on port 0; the addresses are read from its first stdout lines), runs
//! the example servers in-process (tests/support/upstreams.rs) and talks HTTP over loopback. Flags
//! are flipped with the real `fig flags` binary on the embedded file store, and routes are rolled
//! back with the real `fig route`. Every loop that waits for something is bounded in time.
//!
//! The route under test is the one `fig demo` sets up: `payments` matches `/payments/**` and goes
//! to `payment-service` when flag `payments-service` is on for the request, else to `monolith`.
//! The user id of the flag context comes from the `x-user-id` header.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fig;
use crate::support::procs::Proc;
use crate::support::upstreams::{Upstreams, closed_port};

const FLAG: &str = "payments-service";
const TOKEN: &str = "test-admin-token";
/// How soon a flag flipped in the file store must be in force (the issue: "within a second").
const FLIP: Duration = Duration::from_secs(1);

/// A temporary directory with a proxy config, a flag store and an admin token, and the example
/// servers the config points at.
struct Setup {
    dir: tempfile::TempDir,
    upstreams: Upstreams,
    /// Where the config sends `payment-service`; the real service unless a test says otherwise.
    service: SocketAddr,
}

impl Setup {
    fn new() -> Setup {
        let upstreams = Upstreams::start();
        let service = upstreams.service;
        Setup::with_service(upstreams, service)
    }

    fn with_service(upstreams: Upstreams, service: SocketAddr) -> Setup {
        let setup = Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            upstreams,
            service,
        };
        std::fs::write(setup.path("admin.token"), format!("{TOKEN}\n")).expect("write the token");
        setup.flags(&[
            "create",
            FLAG,
            "--description",
            "payments go to the new service",
        ]);
        setup.write_config(&setup.config());
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config_path(&self) -> PathBuf {
        self.path("fig-proxy.toml")
    }

    /// The config `fig demo` writes, on ports 0.
    fn config(&self) -> String {
        format!(
            r#"[server]
listen = "127.0.0.1:0"

[upstreams.monolith]
addresses = ["http://{monolith}"]

[upstreams.payment-service]
addresses = ["http://{service}"]

[[routes]]
name = "payments"
match = {{ pattern = "/payments/**" }}
service = "payment-service"
flag = "{FLAG}"
fallback = "monolith"

[context]
user_id = ["header:x-user-id"]

[flags]
file = "flags.json"

[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"
"#,
            monolith = self.upstreams.monolith,
            service = self.service,
        )
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write the config");
    }

    /// Runs `fig flags --store DIR/flags.json ARGS...`, which must succeed.
    #[track_caller]
    fn flags(&self, args: &[&str]) -> String {
        let output = fig()
            .arg("flags")
            .arg("--store")
            .arg(self.path("flags.json"))
            .args(args)
            .output()
            .expect("fig flags runs");
        assert!(
            output.status.success(),
            "fig flags {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Whether `fig flags eval` says the flag is on for `user`.
    #[track_caller]
    fn eval(&self, user: &str) -> bool {
        let text = self.flags(&["eval", FLAG, "--user", user, "--format", "json"]);
        let eval: Value = serde_json::from_str(&text).expect("JSON from fig flags eval");
        eval["enabled"] == true
    }

    /// Starts `fig proxy --config DIR/fig-proxy.toml` and waits for its addresses.
    #[track_caller]
    fn start(&self) -> Proxy {
        let mut command = fig();
        command.arg("proxy").arg("--config").arg(self.config_path());
        let mut proc = Proc::spawn("fig proxy", command);
        let addr = proc.address("listening on http://");
        let admin = proc.address("admin on http://");
        Proxy {
            proc,
            addr,
            admin,
            token_file: self.path("admin.token"),
        }
    }
}

/// A running `fig proxy`, killed on drop.
struct Proxy {
    proc: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
    token_file: PathBuf,
}

/// What a test looks at in a response.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// `x-fig-upstream`: who the proxy says answered.
    upstream: String,
    /// `x-served-by`: who really answered.
    served_by: String,
    body: String,
}

fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client")
    })
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
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    #[track_caller]
    fn get(&self, path: &str) -> Answer {
        self.get_as(path, None)
    }

    #[track_caller]
    fn get_as(&self, path: &str, user: Option<&str>) -> Answer {
        let mut request = client().get(self.url(path));
        if let Some(user) = user {
            request = request.header("x-user-id", user);
        }
        let response = request
            .send()
            .unwrap_or_else(|err| panic!("GET {path} through the proxy: {err}"));
        Answer {
            status: response.status().as_u16(),
            upstream: header(&response, "x-fig-upstream"),
            served_by: header(&response, "x-served-by"),
            body: response.text().expect("a response body"),
        }
    }

    /// Runs `fig route --admin URL --token-file F ARGS...`.
    fn route(&self, args: &[&str]) -> Output {
        fig()
            .arg("route")
            .arg("--admin")
            .arg(format!("http://{}", self.admin))
            .arg("--token-file")
            .arg(&self.token_file)
            .args(args)
            .env_remove("FIG_ADMIN_TOKEN")
            .env_remove("FIG_ADMIN_URL")
            .output()
            .expect("fig route runs")
    }

    /// Runs `fig route ARGS...`, which must succeed, and returns its stdout.
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

    /// `fig route list --format json`, the route named `payments`.
    #[track_caller]
    fn payments_route(&self) -> Value {
        let list: Value =
            serde_json::from_str(&self.route_ok(&["list", "--format", "json"])).expect("JSON");
        list["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|route| route["name"] == "payments")
            .cloned()
            .expect("a route named payments")
    }

    /// SIGTERM, then the exit status (within 30 s).
    #[track_caller]
    fn stop(mut self) -> std::process::ExitStatus {
        self.proc.signal("TERM");
        self.proc.wait(Duration::from_secs(30))
    }
}

/// Sends `GET path` until `done` holds for the answer, for at most `limit`; returns that answer
/// and how long it took. Fails the test with the last answer otherwise.
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

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

#[test]
fn route_follows_the_flag_flipped_with_fig_flags() {
    let setup = Setup::new();
    let proxy = setup.start();

    let before = proxy.get("/payments/7");
    assert_eq!(
        (
            before.status,
            before.upstream.as_str(),
            before.served_by.as_str()
        ),
        (200, "monolith", "shop")
    );

    setup.flags(&["enable", FLAG]);
    let after = poll(&proxy, "/payments/7", FLIP, |answer| {
        answer.served_by == "payment-service"
    });
    assert_eq!(
        (after.status, after.upstream.as_str()),
        (200, "payment-service")
    );
    // The extracted service answers with the same document as the monolith did.
    assert_eq!(json(&after.body), json(&before.body));
    // Only the route's paths moved.
    assert_eq!(proxy.get("/orders/7").served_by, "shop");
    assert_eq!(proxy.get("/payments").served_by, "payment-service");

    setup.flags(&["disable", FLAG]);
    poll(&proxy, "/payments/7", FLIP, |answer| {
        answer.served_by == "shop"
    });
}

#[test]
fn gradual_rollout_keeps_each_user_on_one_side_and_splits_10000_users() {
    let setup = Setup::new();
    setup.flags(&["rollout", FLAG, "30"]);
    setup.flags(&["enable", FLAG]);
    let proxy = setup.start();

    // The CLI evaluates with the same engine: find one user on each side and wait until the
    // proxy has loaded the file.
    let users: Vec<String> = (0..40).map(|n| format!("user-{n}")).collect();
    let inside = users
        .iter()
        .find(|user| setup.eval(user))
        .expect("a user inside 30%");
    let outside = users
        .iter()
        .find(|user| !setup.eval(user))
        .expect("a user outside 30%");
    let start = Instant::now();
    while proxy.get_as("/payments/1", Some(inside)).served_by != "payment-service" {
        assert!(
            start.elapsed() < FLIP,
            "the rollout is not in force after {FLIP:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..20 {
        assert_eq!(
            proxy.get_as("/payments/1", Some(inside)).served_by,
            "payment-service"
        );
        assert_eq!(proxy.get_as("/payments/1", Some(outside)).served_by, "shop");
    }

    // 10,000 distinct users, four clients at once; then the first 1,000 again.
    let decide = |range: std::ops::Range<usize>| -> Vec<bool> {
        let chunks: Vec<std::ops::Range<usize>> = (0..4)
            .map(|part| {
                let len = range.len().div_ceil(4);
                let begin = range.start + part * len;
                begin..(begin + len).min(range.end)
            })
            .collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let proxy = &proxy;
                    scope.spawn(move || {
                        chunk
                            .map(|n| {
                                let answer =
                                    proxy.get_as("/payments/1", Some(&format!("customer-{n}")));
                                assert_eq!(answer.status, 200, "{answer:?}");
                                answer.served_by == "payment-service"
                            })
                            .collect::<Vec<bool>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().expect("a client thread"))
                .collect()
        })
    };
    let first = decide(0..10_000);
    let to_service = first.iter().filter(|&&on| on).count();
    let percent = to_service as f64 / 100.0;
    assert!(
        (28.0..=32.0).contains(&percent),
        "{percent}% of 10,000 users went to the service, expected 30 ± 2"
    );
    let again = decide(0..1_000);
    assert_eq!(
        again,
        first[..1_000],
        "a user changed sides between two requests"
    );
    // And the proxy agrees with `fig flags eval` user by user.
    for n in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] {
        assert_eq!(
            first[n],
            setup.eval(&format!("customer-{n}")),
            "customer-{n}"
        );
    }
}

#[test]
fn rollback_is_in_force_at_once_and_survives_a_restart() {
    let setup = Setup::new();
    setup.flags(&["enable", FLAG]);
    let proxy = setup.start();
    poll(&proxy, "/payments/7", FLIP, |answer| {
        answer.served_by == "payment-service"
    });

    let out = proxy.route_ok(&["rollback", "payments"]);
    assert_eq!(
        out,
        "rolled back route `payments`: every request now goes to its fallback `monolith`; undo with `fig route restore payments`\n"
    );
    // The very next request, no waiting.
    let next = proxy.get("/payments/7");
    assert_eq!(
        (next.upstream.as_str(), next.served_by.as_str()),
        ("monolith", "shop")
    );
    assert_eq!(proxy.payments_route()["state"], "pinned-to-monolith");
    assert!(
        proxy
            .route_ok(&["status"])
            .contains("(rolled back: payments)")
    );
    assert_eq!(
        proxy.route_ok(&["rollback", "payments"]),
        "route `payments` was already rolled back\n"
    );

    // A restart reads the rollback back from the state file.
    assert!(proxy.stop().success());
    let proxy = setup.start();
    assert_eq!(proxy.get("/payments/7").served_by, "shop");
    assert_eq!(proxy.payments_route()["state"], "pinned-to-monolith");

    let out = proxy.route_ok(&["restore", "payments"]);
    assert_eq!(
        out,
        "restored route `payments`: flag `payments-service` decides again between `payment-service` and `monolith`\n"
    );
    assert_eq!(proxy.get("/payments/7").served_by, "payment-service");
    let restored: Value =
        serde_json::from_str(&proxy.route_ok(&["--format", "json", "restore", "payments"]))
            .expect("JSON");
    assert_eq!(
        (&restored["changed"], &restored["state"]),
        (&Value::Bool(false), &Value::from("flag"))
    );

    // And the restore survives a restart too.
    assert!(proxy.stop().success());
    let proxy = setup.start();
    assert_eq!(proxy.get("/payments/7").served_by, "payment-service");
    assert_eq!(proxy.payments_route()["state"], "flag");
}

#[test]
fn fig_route_list_and_status_for_a_person() {
    let setup = Setup::new();
    let proxy = setup.start();
    for _ in 0..3 {
        proxy.get("/payments/7");
    }
    let admin = proxy.admin.to_string();
    let state_file = setup.path("fig-proxy.state.json").display().to_string();
    let filters = [
        (admin.as_str(), "[ADMIN]"),
        (state_file.as_str(), "[STATE_FILE]"),
    ];
    let text = |args: &[&str]| {
        let mut out = proxy.route_ok(args);
        for (from, to) in filters {
            out = out.replace(from, to);
        }
        out
    };
    insta::assert_snapshot!(text(&["list"]), @r"
    ROUTE     MATCH         FLAG                    SERVICE          FALLBACK  STATE    REQUESTS  ERRORS
    payments  /payments/**  payments-service (off)  payment-service  monolith  by flag  3         0
    flag: on or off for everyone, or `varies` when its strategies decide per user (a gradual rollout, a user list)
    requests no route matches go to `monolith`; flags loaded
    ");
    insta::assert_snapshot!(text(&["status"]), @r"
    admin             http://[ADMIN]
    health            ok
    ready             ready
    flags             loaded
    routes            1 (none rolled back)
    default upstream  monolith
    state file        [STATE_FILE]
    circuit           payments: service `payment-service` circuit closed
    ");
    let status: Value =
        serde_json::from_str(&proxy.route_ok(&["status", "--format", "json"])).expect("JSON");
    assert_eq!(status["healthy"], true);
    assert_eq!(status["ready"], true);
    assert_eq!(status["rolled_back"], Value::Array(vec![]));
    let route = proxy.payments_route();
    assert_eq!(route["requests"]["monolith"], 3);
    assert_eq!(route["match"]["pattern"], "/payments/**");
}

#[test]
fn fig_route_errors_are_one_line_and_exit_2() {
    let setup = Setup::new();
    let proxy = setup.start();
    let admin = format!("http://{}", proxy.admin);
    let closed = format!("http://{}", closed_port());
    let listener = format!("http://{}", proxy.addr);

    let run = |admin: &str, token: Option<&str>, args: &[&str]| -> String {
        let mut command = fig();
        command
            .arg("route")
            .arg("--admin")
            .arg(admin)
            .args(args)
            .env_remove("FIG_ADMIN_TOKEN")
            .env_remove("FIG_ADMIN_URL");
        if let Some(token) = token {
            command.arg("--token").arg(token);
        }
        let output = command.output().expect("fig route runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(2),
            "fig route {args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "nothing on stdout for {args:?}");
        assert_eq!(stderr.lines().count(), 1, "one line for {args:?}: {stderr}");
        stderr
            .replace(&proxy.admin.to_string(), "[ADMIN]")
            .replace(&proxy.addr.to_string(), "[PROXY]")
            .replace(closed.trim_start_matches("http://"), "[CLOSED]")
    };
    insta::assert_snapshot!(run(&admin, Some(TOKEN), &["rollback", "paymnts"]), @"error: no route named `paymnts`; the routes are: payments");
    insta::assert_snapshot!(run(&admin, Some("wrong"), &["list"]), @"error: the admin API at http://[ADMIN] answered 401: the token was refused; pass --token, --token-file or set FIG_ADMIN_TOKEN");
    insta::assert_snapshot!(run(&admin, None, &["rollback", "payments"]), @"error: the admin API at http://[ADMIN] answered 401: it needs a token; pass --token, --token-file or set FIG_ADMIN_TOKEN");
    insta::assert_snapshot!(run(&closed, Some(TOKEN), &["status"]), @"error: cannot reach the admin API at http://[CLOSED] (Connection refused (os error 111)); is the proxy running, and is --admin its admin address?");
    insta::assert_snapshot!(run(&listener, Some(TOKEN), &["list"]), @"error: http://[PROXY] is the proxy's listener, not its admin API; give --admin the admin address (`admin on http://...` in the proxy's output)");
    // A refused rollback changed nothing.
    assert_eq!(proxy.get("/payments/7").served_by, "shop");
    assert_eq!(proxy.payments_route()["state"], "flag");

    // The token from the environment, as in the issue.
    let output = fig()
        .args(["route", "--admin", &admin, "list"])
        .env("FIG_ADMIN_TOKEN", TOKEN)
        .env_remove("FIG_ADMIN_URL")
        .output()
        .expect("fig route runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn reload_with_a_bad_config_is_refused_and_the_old_one_keeps_serving() {
    let setup = Setup::new();
    let mut proxy = setup.start();
    assert_eq!(proxy.get("/payments/7").served_by, "shop");

    let good = setup.config();
    let bad = good.replace(r#"service = "payment-service""#, r#"service = "billing""#);
    let line = bad
        .lines()
        .position(|line| line.contains(r#""billing""#))
        .expect("the bad line")
        + 1;
    setup.write_config(&bad);
    let output = proxy.route(&["reload"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let place = format!("{}:{line}:", setup.config_path().display());
    assert!(
        stderr.contains(&place) && stderr.contains("no upstream named `billing`"),
        "the error names the file, line and reason: {stderr}"
    );
    assert!(
        stderr
            .starts_with("error: the proxy refused the new config and keeps serving the old one: ")
    );
    // Still serving, with the old config.
    assert_eq!(proxy.get("/payments/7").served_by, "shop");
    assert_eq!(proxy.get("/orders/1").status, 200);
    assert!(proxy.proc.is_running());

    // A good config goes in: the route loses its flag, so it always goes to the service.
    setup.write_config(&good.replace(&format!("flag = \"{FLAG}\"\n"), ""));
    assert_eq!(proxy.route_ok(&["reload"]), "config reloaded\n");
    assert_eq!(proxy.get("/payments/7").served_by, "payment-service");
}

#[test]
fn an_upstream_that_is_down_is_replaced_by_the_monolith_and_the_proxy_lives_on() {
    // Since issue 5 an idempotent request the service fails is answered by the route's fallback,
    // and the service's circuit opens; tests/resilience.rs covers this in depth, and the 502
    // itself (with the retry off) is covered in strangler-proxy's own tests.
    let setup = Setup::with_service(Upstreams::start(), closed_port());
    setup.flags(&["enable", FLAG]);
    let mut proxy = setup.start();

    let start = Instant::now();
    loop {
        let answer = proxy.get("/payments/7");
        assert_eq!(
            (answer.status, answer.served_by.as_str()),
            (200, "shop"),
            "{answer:?}"
        );
        if proxy.payments_route()["last_decision"] == "service-failed" {
            break;
        }
        assert!(
            start.elapsed() < FLIP * 5,
            "the flag never sent a request to the service"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..10 {
        let answer = proxy.get("/payments/8");
        assert_eq!(
            (answer.status, answer.upstream.as_str()),
            (200, "monolith"),
            "{answer:?}"
        );
    }
    let route = proxy.payments_route();
    assert_eq!(route["circuit"]["state"], "open");
    assert!(route["errors"].as_u64().unwrap_or(0) >= 1, "{route}");
    // The rest of the site is fine, and so is the proxy.
    let orders = proxy.get("/orders/1");
    assert_eq!((orders.status, orders.served_by.as_str()), (200, "shop"));
    assert!(proxy.proc.is_running());
}

/// A request body of `len` bytes, byte `i` being `i % 251`, made frame by frame as the
/// connection takes them.
struct PatternBody {
    position: u64,
    len: u64,
}

impl http_body::Body for PatternBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let n = (self.len - self.position).min(64 << 10);
        if n == 0 {
            return std::task::Poll::Ready(None);
        }
        let start = self.position;
        let chunk: Vec<u8> = (start..start + n).map(|at| (at % 251) as u8).collect();
        self.position += n;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from(chunk)))))
    }
}

/// Reads a response body to the end, checking that byte `i` is `i % 251`; returns the count.
async fn check_pattern(mut response: reqwest::Response) -> u64 {
    let mut position = 0u64;
    while let Some(chunk) = response.chunk().await.expect("read the body") {
        for (idx, byte) in chunk.iter().enumerate() {
            let at = position + idx as u64;
            assert_eq!(u64::from(*byte), at % 251, "byte {at}");
        }
        position += chunk.len() as u64;
    }
    position
}

#[test]
fn large_upload_and_download_stream_through_with_bounded_memory() {
    const SIZE: u64 = 100_000_000;
    const MEMORY_LIMIT: u64 = 64 << 20;
    let setup = Setup::new();
    let proxy = setup.start();
    // The async client: it reads the echo while the upload is still being sent.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        // Upload: chunked, made on the fly, echoed back as it arrives, checked as it comes back.
        let body = reqwest::Body::wrap(PatternBody {
            position: 0,
            len: SIZE,
        });
        let response = client
            .post(proxy.url("/echo"))
            .body(body)
            .send()
            .await
            .expect("POST /echo through the proxy");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-served-by"], "shop");
        assert_eq!(check_pattern(response).await, SIZE);

        // Download.
        let response = client
            .get(proxy.url(&format!("/bytes?n={SIZE}")))
            .send()
            .await
            .expect("GET /bytes through the proxy");
        assert_eq!(response.status(), 200);
        assert_eq!(check_pattern(response).await, SIZE);
    });

    let peak = proxy.proc.peak_rss();
    eprintln!("peak RSS of fig proxy after 2 x 100 MB: {} KiB", peak >> 10);
    assert!(
        peak < MEMORY_LIMIT,
        "the proxy's peak RSS is {} MiB, over {} MiB: bodies are being buffered",
        peak >> 20,
        MEMORY_LIMIT >> 20
    );
}

#[test]
fn websocket_echo_through_the_proxy() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    let setup = Setup::new();
    let proxy = setup.start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let url = format!("ws://{}/ws", proxy.addr);
        let (mut socket, response) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        .expect("the handshake in time")
        .expect("the WebSocket handshake through the proxy");
        assert_eq!(response.status(), 101);
        assert_eq!(
            response
                .headers()
                .get("x-fig-upstream")
                .map(|v| v.as_bytes()),
            Some(&b"monolith"[..])
        );
        let messages = [
            Message::text("hello through the proxy"),
            Message::binary((0..=255u8).collect::<Vec<u8>>()),
            Message::text("x".repeat(100_000)),
        ];
        for message in messages {
            socket.send(message.clone()).await.expect("send");
            let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .expect("an echo in time")
                .expect("the socket stays open")
                .expect("a message");
            assert_eq!(echoed, message);
        }
        socket.close(None).await.expect("close");
    });
}

#[test]
fn sigterm_drains_an_in_flight_slow_request() {
    let setup = Setup::new();
    let mut proxy = setup.start();
    let url = proxy.url("/slow?ms=1500");
    let slow = std::thread::spawn(move || {
        let response = client()
            .get(url)
            .send()
            .expect("the slow request is answered");
        (
            response.status().as_u16(),
            response.text().expect("its whole body"),
        )
    });
    // Let the request reach the monolith, which holds it for 1.5 s.
    std::thread::sleep(Duration::from_millis(400));
    proxy.proc.signal("TERM");

    // New connections are refused while the slow request drains.
    let start = Instant::now();
    loop {
        if std::net::TcpStream::connect(proxy.addr).is_err() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_millis(800),
            "the proxy still accepts connections after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, body) = slow.join().expect("the client thread");
    assert_eq!(
        (status, json(&body)),
        (200, serde_json::json!({"slept_ms": 1500}))
    );
    let exit = proxy.proc.wait(Duration::from_secs(30));
    assert_eq!(exit.code(), Some(0), "stderr: {}", proxy.proc.stderr());
}
