//! Automatic rollback on an SLO: a real `fig proxy` in front of the example monolith and a
//! faulty service, and `fig route`, `fig flags` and `/metrics` to see what happened.
//!
//! The service is a `Faulty` server (tests/support/faulty.rs) that a test switches between
//! healthy, failing (500) and slow; the monolith is the example shop; `x-served-by` says who
//! answered.
//!
//! Unleash: `turn_off_flag` on a real server needs `UNLEASH_URL`, `UNLEASH_CLIENT_TOKEN` and
//! `UNLEASH_ADMIN_TOKEN`; it is `#[ignore]`d (run it with `--ignored`), and fails without them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::faulty::{Faulty, Mode};
use crate::support::fig;
use crate::support::procs::Proc;
use crate::support::unleash::{DeleteOnDrop, unique_name, unleash_env};
use crate::support::upstreams::Upstreams;

const TOKEN: &str = "slo-admin-token";
const FLAG: &str = "payments-service";
/// How long a breach may take to be acted on: the checker looks every 250 ms, and a debug build
/// on a loaded machine gets some slack.
const ACT: Duration = Duration::from_secs(5);

// ---- the proxy ------------------------------------------------------------------------------

/// A temporary directory with a proxy config whose routes go to a [`Faulty`] service.
struct Setup {
    dir: tempfile::TempDir,
    upstreams: Upstreams,
    faulty: Faulty,
}

impl Setup {
    /// `routes` are `[[routes]]` tables; `flags` is the `[flags]` table. The service has no
    /// circuit breaker.
    fn new(routes: &str, flags: &str) -> Setup {
        Setup::with_breaker(routes, flags, "circuit_breaker = { enabled = false }")
    }

    /// As [`Setup::new`], with `breaker` as the service's circuit-breaker line (empty: the
    /// default breaker).
    fn with_breaker(routes: &str, flags: &str, breaker: &str) -> Setup {
        let setup = Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            upstreams: Upstreams::start(),
            faulty: Faulty::start("faulty", Mode::Healthy),
        };
        std::fs::write(setup.path("admin.token"), format!("{TOKEN}\n")).expect("write the token");
        let config = format!(
            r#"[server]
listen = "127.0.0.1:0"

[upstreams.monolith]
addresses = ["http://{monolith}"]

[upstreams.payment-service]
addresses = ["http://{faulty}"]
# Most tests look at the SLO alone: no circuit breaker and no retry on the fallback (routes say
# `retry = {{ enabled = false }}`); one test has both (see tests/resilience.rs for them alone).
{breaker}

{routes}

{flags}

[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"
"#,
            monolith = setup.upstreams.monolith,
            faulty = setup.faulty.addr,
        );
        std::fs::write(setup.path("fig-proxy.toml"), config).expect("write the config");
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
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
            "fig flags {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[track_caller]
    fn start(&self, envs: &[(&str, &str)]) -> Proxy {
        let mut command = fig();
        command
            .arg("proxy")
            .arg("--config")
            .arg(self.path("fig-proxy.toml"))
            .env_remove("FIG_UNLEASH_ADMIN_TOKEN")
            .env_remove("UNLEASH_ADMIN_TOKEN");
        for (key, value) in envs {
            command.env(key, value);
        }
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

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

impl Proxy {
    /// `GET path` through the proxy: status and who answered (`x-served-by`).
    #[track_caller]
    fn get(&self, path: &str) -> (u16, String) {
        let response = client()
            .get(format!("http://{}{path}", self.addr))
            .send()
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let served_by = response
            .headers()
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (response.status().as_u16(), served_by)
    }

    /// Sends `GET path` until the monolith answers, for at most `limit`; returns how many
    /// requests the service answered before that, and how long it took.
    #[track_caller]
    fn until_rolled_back(&self, path: &str, limit: Duration) -> (u64, Duration) {
        let start = Instant::now();
        let mut to_service = 0;
        loop {
            let (_, served_by) = self.get(path);
            if served_by == "shop" {
                return (to_service, start.elapsed());
            }
            to_service += 1;
            assert!(
                start.elapsed() < limit,
                "GET {path}: still answered by the service after {limit:?} ({to_service} requests); proxy stderr:\n{}",
                self.proc.stderr()
            );
        }
    }

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

    #[track_caller]
    fn route_ok(&self, args: &[&str]) -> String {
        let output = self.route(args);
        assert!(
            output.status.success(),
            "fig route {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The route named `name` in `fig route list --format json`.
    #[track_caller]
    fn route_json(&self, name: &str) -> Value {
        let list: Value =
            serde_json::from_str(&self.route_ok(&["list", "--format", "json"])).expect("JSON");
        list["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|route| route["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no route {name} in {list}"))
    }

    fn metrics(&self) -> String {
        client()
            .get(format!("http://{}/metrics", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .and_then(reqwest::blocking::Response::text)
            .expect("GET /metrics")
    }

    #[track_caller]
    fn stop(mut self) {
        self.proc.signal("TERM");
        assert!(self.proc.wait(Duration::from_secs(30)).success());
    }
}

/// The `[[routes]]` table of `payments` with flag `payments-service` and this `slo`.
fn payments(slo: &str) -> String {
    format!(
        r#"[[routes]]
name = "payments"
match = {{ pattern = "/payments/**" }}
service = "payment-service"
retry = {{ enabled = false }}
flag = "{FLAG}"
fallback = "monolith"
slo = {{ {slo} }}"#
    )
}

const FILE_FLAGS: &str = "[flags]\nfile = \"flags.json\"";

/// Creates and enables the flag, starts the proxy and waits until it sends `/payments/7` to the
/// service.
#[track_caller]
fn started_on_the_service(setup: &Setup) -> Proxy {
    setup.flags(&["create", FLAG]);
    setup.flags(&["enable", FLAG]);
    let proxy = setup.start(&[]);
    assert_eq!(proxy.get("/payments/7"), (200, "faulty".to_owned()));
    proxy
}

// ---- tests ----------------------------------------------------------------------------------

/// A service answering 500s is rolled back within its window; the pin, with its reason,
/// survives a restart; `fig route restore` brings the traffic back.
#[test]
fn a_failing_service_is_rolled_back_and_stays_so_until_restored() {
    let setup = Setup::new(
        &payments(r#"max_error_rate = "5%", window = "30s", min_requests = 20"#),
        FILE_FLAGS,
    );
    let proxy = started_on_the_service(&setup);

    setup.faulty.set(Mode::Error);
    let (failed, took) = proxy.until_rolled_back("/payments/7", ACT);
    // Not before the minimum count: 20 failures, one of them the healthy request above.
    assert!(failed >= 19, "rolled back after {failed} requests");
    eprintln!("rolled back after {failed} failed requests, {took:?}");
    // Every request now goes to the monolith.
    for _ in 0..5 {
        assert_eq!(proxy.get("/payments/7"), (200, "shop".to_owned()));
    }

    let status = proxy.route_ok(&["status"]);
    assert!(status.contains("(rolled back: payments)"), "{status}");
    assert!(
        status
            .lines()
            .any(|line| line.starts_with("  payments ") && line.contains(" by slo at ")),
        "fig route status says who rolled it back:\n{status}"
    );
    assert!(
        status.contains(": slo: 5xx rate ") && status.contains("> 5% over 30s ("),
        "{status}"
    );
    let list = proxy.route_ok(&["list"]);
    assert!(list.contains("ROLLED BACK (slo)"), "{list}");
    assert!(list.contains("payments rolled back: by slo at "), "{list}");
    let route = proxy.route_json("payments");
    assert_eq!(route["state"], "pinned-to-monolith");
    assert_eq!(route["pin"]["by"], "slo");
    assert_eq!(route["slo"]["max_error_rate"], 0.05);
    let metrics = proxy.metrics();
    assert!(
        metrics.contains("fig_proxy_auto_rollbacks_total{route=\"payments\",slo=\"error-rate\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("fig_proxy_routes_pinned{cause=\"slo\"} 1"));
    assert!(metrics.contains("fig_proxy_route_pinned{route=\"payments\"} 1"));
    assert!(
        proxy
            .proc
            .stderr()
            .contains("route rolled back to its fallback")
    );
    let reason = route["pin"]["reason"]
        .as_str()
        .expect("a reason")
        .to_owned();

    // A restart keeps the pin and its reason.
    proxy.stop();
    let proxy = setup.start(&[]);
    assert_eq!(proxy.get("/payments/7"), (200, "shop".to_owned()));
    let route = proxy.route_json("payments");
    assert_eq!(
        (&route["pin"]["by"], route["pin"]["reason"].as_str()),
        (&Value::from("slo"), Some(reason.as_str()))
    );

    // Nothing restores it by itself: the service is healthy again, and the route stays back.
    setup.faulty.set(Mode::Healthy);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(proxy.get("/payments/7"), (200, "shop".to_owned()));

    // A person does.
    let out = proxy.route_ok(&["restore", "payments"]);
    assert!(out.starts_with("restored route `payments`"), "{out}");
    assert_eq!(proxy.get("/payments/7"), (200, "faulty".to_owned()));
    // The window starts afresh: the old failures do not roll it back again.
    for _ in 0..30 {
        assert_eq!(proxy.get("/payments/7"), (200, "faulty".to_owned()));
    }
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(proxy.route_json("payments")["state"], "flag");
}

/// A slow service breaks a p99 objective.
#[test]
fn a_slow_service_breaks_its_p99_objective() {
    let setup = Setup::new(
        &payments(r#"max_p99 = "200ms", window = "30s", min_requests = 5"#),
        FILE_FLAGS,
    );
    let proxy = started_on_the_service(&setup);
    setup.faulty.set(Mode::Slow(Duration::from_millis(400)));
    let (slow, _) = proxy.until_rolled_back("/payments/7", ACT + Duration::from_secs(5));
    assert!(slow >= 4, "rolled back after {slow} slow requests");
    let route = proxy.route_json("payments");
    let reason = route["pin"]["reason"].as_str().expect("a reason");
    assert!(
        reason.starts_with("slo: p99 latency ") && reason.contains(" > 200ms over 30s ("),
        "{reason}"
    );
    assert!(
        proxy
            .metrics()
            .contains("fig_proxy_auto_rollbacks_total{route=\"payments\",slo=\"latency\"} 1")
    );
}

/// Few requests (below `min_requests`) and healthy traffic (under the objectives) leave the
/// routes alone, and so does a service that fails while the flag sends nothing to it.
#[test]
fn healthy_traffic_and_few_requests_do_not_roll_back() {
    let routes = r#"[[routes]]
name = "few"
match = { prefix = "/few" }
service = "payment-service"
retry = { enabled = false }
slo = { max_error_rate = "5%", min_requests = 20 }

[[routes]]
name = "flaky"
match = { prefix = "/flaky" }
service = "payment-service"
retry = { enabled = false }
slo = { max_error_rate = "5%", max_p99 = "300ms", min_requests = 20 }

[[routes]]
name = "payments"
match = { pattern = "/payments/**" }
service = "payment-service"
retry = { enabled = false }
flag = "payments-service"
slo = { max_error_rate = "5%", min_requests = 5 }"#;
    let setup = Setup::new(routes, FILE_FLAGS);
    setup.flags(&["create", FLAG]);
    let proxy = setup.start(&[]);

    setup.faulty.set(Mode::Error);
    // 10 failures on an unflagged route, below the minimum of 20.
    for _ in 0..10 {
        assert_eq!(proxy.get("/few/1"), (500, "faulty".to_owned()));
    }
    // The flag is off: the failing service gets nothing, and nothing is judged.
    for _ in 0..20 {
        assert_eq!(proxy.get("/payments/7").1, "shop");
    }
    // 200 requests, 2% failing (the last ones, so the rate never passes 5% on the way), all
    // fast: under both objectives.
    setup.faulty.set(Mode::Healthy);
    for _ in 0..196 {
        assert_eq!(proxy.get("/flaky/1"), (200, "faulty".to_owned()));
    }
    setup.faulty.set(Mode::Error);
    for _ in 0..4 {
        assert_eq!(proxy.get("/flaky/1"), (500, "faulty".to_owned()));
    }
    // Give the checker several looks.
    std::thread::sleep(Duration::from_millis(1000));
    for name in ["few", "flaky", "payments"] {
        let route = proxy.route_json(name);
        assert_eq!(route["state"], "flag", "{name}: {route}");
        assert_eq!(route["pin"], Value::Null);
    }
    assert_eq!(proxy.route_json("flaky")["slo"]["requests"], 200);
    assert_eq!(proxy.route_json("few")["slo"]["requests"], 10);
    let metrics = proxy.metrics();
    assert!(
        !metrics.contains("fig_proxy_auto_rollbacks_total{"),
        "{metrics}"
    );
    assert!(metrics.contains("fig_proxy_slo_window_requests{route=\"flaky\"} 200"));
    assert!(metrics.contains("fig_proxy_routes_pinned{cause=\"slo\"} 0"));
}

/// With `turn_off_flag`, the SLO rollback also turns the flag off in the file store, audited as
/// the proxy's; after a restore the flag still decides (off) until a person turns it on.
#[test]
fn turn_off_flag_turns_the_flag_off_in_the_file_store() {
    let setup = Setup::new(
        &payments(r#"max_error_rate = 0.05, min_requests = 20, turn_off_flag = true"#),
        FILE_FLAGS,
    );
    let proxy = started_on_the_service(&setup);
    setup.faulty.set(Mode::Error);
    proxy.until_rolled_back("/payments/7", ACT);

    let start = Instant::now();
    let flag_off = loop {
        let route = proxy.route_json("payments");
        if route["pin"]["flag_off"].is_object() {
            break route["pin"]["flag_off"].clone();
        }
        assert!(
            start.elapsed() < ACT,
            "the flag was not turned off: {route}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(flag_off["done"], true, "{flag_off}");
    let eval: Value = serde_json::from_str(&setup.flags(&["eval", FLAG, "--format", "json"]))
        .expect("JSON from fig flags eval");
    assert_eq!(eval["enabled"], false);
    let audit = std::fs::read_to_string(setup.path("flags.json.audit.jsonl")).expect("audit log");
    let last: Value = serde_json::from_str(audit.lines().last().expect("an entry")).expect("JSON");
    assert_eq!(
        (&last["actor"], &last["action"], &last["flag"]),
        (
            &Value::from("fig proxy (slo rollback of route payments)"),
            &Value::from("disable"),
            &Value::from(FLAG)
        )
    );
    let status = proxy.route_ok(&["status"]);
    assert!(
        status.contains(&format!("flag `{FLAG}` turned off in ")),
        "{status}"
    );
    assert!(
        proxy
            .metrics()
            .contains("fig_proxy_slo_flag_turn_offs_total{route=\"payments\",result=\"ok\"} 1")
    );

    // Restoring lifts the pin; the flag, off, still sends the route to the monolith.
    setup.faulty.set(Mode::Healthy);
    let out = proxy.route_ok(&["restore", "payments"]);
    assert!(
        out.contains(&format!(
            "note: the SLO rollback turned flag `{FLAG}` off; it stays off until you turn it on again"
        )),
        "{out}"
    );
    // The proxy follows the file within its poll interval (the issue: within a second).
    let start = Instant::now();
    while proxy.get("/payments/7").1 != "shop" {
        assert!(start.elapsed() < ACT, "the flag turned off is not followed");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..5 {
        assert_eq!(proxy.get("/payments/7"), (200, "shop".to_owned()));
    }
    setup.flags(&["enable", FLAG]);
    let start = Instant::now();
    while proxy.get("/payments/7").1 != "faulty" {
        assert!(start.elapsed() < ACT, "the flag turned on is not followed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A flag that cannot be turned off (the flag store is unwritable) is reported, and the
/// rollback holds.
#[test]
fn a_flag_that_cannot_be_turned_off_leaves_the_rollback_in_force() {
    let setup = Setup::new(
        &payments(r#"max_error_rate = 0.05, min_requests = 20, turn_off_flag = true"#),
        FILE_FLAGS,
    );
    let mut proxy = started_on_the_service(&setup);
    // The writer's lock file cannot be created: a directory stands in its place.
    std::fs::remove_file(setup.path("flags.json.lock")).expect("remove the lock file");
    std::fs::create_dir(setup.path("flags.json.lock")).expect("block the lock file");
    setup.faulty.set(Mode::Error);
    proxy.until_rolled_back("/payments/7", ACT);
    let start = Instant::now();
    let flag_off = loop {
        let route = proxy.route_json("payments");
        if route["pin"]["flag_off"].is_object() {
            break route["pin"]["flag_off"].clone();
        }
        assert!(start.elapsed() < ACT, "no word on the flag: {route}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(flag_off["done"], false);
    assert!(
        flag_off["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("turning flag `{FLAG}` off failed: "))),
        "{flag_off}"
    );
    assert!(proxy.proc.is_running());
    assert_eq!(proxy.get("/payments/7"), (200, "shop".to_owned()));
    assert!(
        proxy
            .metrics()
            .contains("fig_proxy_slo_flag_turn_offs_total{route=\"payments\",result=\"error\"} 1")
    );
}

/// With the fallback retry and the circuit breaker at their defaults, every client of a failing
/// service is answered by the monolith (a retry, then the open circuit), yet the SLO sees the
/// service fail and rolls the route back for good.
#[test]
fn the_slo_sees_through_the_fallback_retry_and_the_breaker() {
    let routes = payments(r#"max_error_rate = "5%", min_requests = 20"#)
        .replace("retry = { enabled = false }\n", "");
    let setup = Setup::with_breaker(&routes, FILE_FLAGS, "");
    let proxy = started_on_the_service(&setup);
    setup.faulty.set(Mode::Error);
    let start = Instant::now();
    let mut sent = 0;
    loop {
        assert_eq!(proxy.get("/payments/7"), (200, "shop".to_owned()));
        sent += 1;
        if sent % 10 == 0 && proxy.route_json("payments")["state"] == "pinned-to-monolith" {
            break;
        }
        assert!(
            start.elapsed() < ACT,
            "not rolled back after {sent} requests; stderr:\n{}",
            proxy.proc.stderr()
        );
    }
    // The next request is the pin's, not the breaker's.
    assert_eq!(proxy.get("/payments/7"), (200, "shop".to_owned()));
    let route = proxy.route_json("payments");
    assert_eq!(route["pin"]["by"], "slo");
    assert!(
        route["pin"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.starts_with("slo: 5xx rate ")),
        "{route}"
    );
    assert_eq!(route["last_decision"], "pinned");
}

// ---- Unleash --------------------------------------------------------------------------------

/// With Unleash, `turn_off_flag` turns the flag off on the server through its Admin API (the
/// admin token from the environment), so every replica follows.
#[test]
#[ignore = "needs a real Unleash server: UNLEASH_URL, UNLEASH_CLIENT_TOKEN, UNLEASH_ADMIN_TOKEN; run with --ignored"]
fn turn_off_flag_turns_the_flag_off_in_unleash() {
    let env = unleash_env("turn_off_flag_turns_the_flag_off_in_unleash");
    let name = unique_name("fig-slo");
    let _cleanup = DeleteOnDrop {
        env: &env,
        name: name.clone(),
    };
    env.flags_ok(&["create", &name]);
    env.flags_ok(&["enable", &name]);

    let api = format!("{}/api", env.url.trim_end_matches('/'));
    let flags = format!(
        "[flags]\nunleash = {{ url = \"{api}\", token = \"{}\", refresh = \"1s\" }}\n\n[context]\napp_name = \"{name}\"",
        env.client_token
    );
    let routes = payments(r#"max_error_rate = 0.05, min_requests = 20, turn_off_flag = true"#)
        .replace(FLAG, &name);
    let setup = Setup::new(&routes, &flags);
    let proxy = setup.start(&[("FIG_UNLEASH_ADMIN_TOKEN", &env.admin_token)]);
    let start = Instant::now();
    while proxy.get("/payments/7").1 != "faulty" {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the proxy never sent the route to the service; stderr:\n{}",
            proxy.proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    setup.faulty.set(Mode::Error);
    proxy.until_rolled_back("/payments/7", ACT);

    let start = Instant::now();
    let flag_off = loop {
        let route = proxy.route_json("payments");
        if route["pin"]["flag_off"].is_object() {
            break route["pin"]["flag_off"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no word on the flag: {route}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(flag_off["done"], true, "{flag_off}");
    // Unleash's client API caches for about a second: wait for it to serve the change.
    let start = Instant::now();
    loop {
        let eval: Value = serde_json::from_str(&env.flags_ok(&["eval", &name, "--format", "json"]))
            .expect("JSON from fig flags eval");
        if eval["enabled"] == false {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the flag is still on on the server: {eval}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
