//! `fig plan` (issue 20): from the analysis of examples/shop to a proxy route that moves the
//! first endpoint, run through the real proxy in front of the real example servers; the plan
//! weighed by a real access log of `fig proxy`; endpoint discovery on the actix-web example.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::procs::Proc;
use crate::support::upstreams::Upstreams;
use crate::support::{fig, workspace_root};

fn shop() -> PathBuf {
    workspace_root().join("examples/shop")
}

#[track_caller]
fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({:?}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `fig plan examples/shop --extract payment --emit DIR` pointed at the running examples, as JSON.
#[track_caller]
fn plan_into(dir: &Path, upstreams: &Upstreams, extra: &[&str]) -> Value {
    let output = fig()
        .arg("plan")
        .arg(shop())
        .args(["--extract", "payment", "--format", "json", "--emit"])
        .arg(dir)
        .arg("--monolith-url")
        .arg(format!("http://{}", upstreams.monolith))
        .arg("--service-url")
        .arg(format!("http://{}", upstreams.service))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(extra)
        .output()
        .expect("fig plan runs");
    serde_json::from_str(&ok(output, "fig plan")).expect("JSON from fig plan")
}

fn endpoints(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|endpoint| format!("{} {}", endpoint["method"], endpoint["path"]).replace('"', ""))
        .collect()
}

/// Creates the flag with the emitted `flags.sh` (with `fig` on its PATH), then runs
/// `fig flags ARGS` on the same store.
fn flags(dir: &Path, args: &[&str]) -> String {
    ok(
        fig()
            .arg("flags")
            .arg("--store")
            .arg(dir.join("flags.json"))
            .args(args)
            .output()
            .expect("fig flags runs"),
        "fig flags",
    )
}

fn start_proxy(dir: &Path) -> (Proc, std::net::SocketAddr) {
    let mut command = fig();
    command
        .arg("proxy")
        .arg("--config")
        .arg(dir.join("fig-proxy.toml"));
    let mut proc = Proc::spawn("fig proxy", command);
    let addr = proc.address("listening on http://");
    (proc, addr)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// (status, x-served-by) of a request through the proxy.
fn send(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let response = client()
        .request(method, format!("http://{addr}{path}"))
        .send()
        .unwrap_or_else(|err| panic!("{path} through the proxy: {err}"));
    let served_by = response
        .headers()
        .get("x-served-by")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (response.status().as_u16(), served_by)
}

/// The issue's example: the payment endpoints are owned, `POST /orders` needs `order` too with
/// the edge to cut, the emitted route is the demo's `/payments/**`, and the emitted config,
/// loaded by the real proxy with the flag on, sends a payment request to the payment service
/// and an order request to the monolith.
#[test]
fn plan_emits_a_config_the_proxy_routes_by() {
    let upstreams = Upstreams::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = plan_into(dir.path(), &upstreams, &[]);

    assert_eq!(plan["extract"], "shop::payment");
    assert_eq!(
        endpoints(&plan["owned"]),
        ["GET /payments/{id}", "POST /payments/{id}/refund"]
    );
    assert_eq!(endpoints(&plan["shared"]), ["POST /orders"]);
    let shared = &plan["shared"][0];
    assert_eq!(shared["also_needs"], serde_json::json!(["shop::order"]));
    let cut = shared["cut"].as_array().expect("cut edges");
    assert!(
        cut.iter()
            .any(|edge| edge["from"] == "shop::payment" && edge["to"] == "shop::order"),
        "the edge to cut first: {cut:?}"
    );
    assert_eq!(plan["owned"][0]["owner"], "shop::payment");
    assert_eq!(plan["owned"][0]["location"]["file"], "src/http/mod.rs");
    // The demo's route: `/payments/**`, every method.
    let routes = plan["routes"].as_array().expect("routes");
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["kind"], "pattern");
    assert_eq!(routes[0]["path"], "/payments/**");
    assert_eq!(routes[0]["methods"], serde_json::json!([]));
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let order = [
        "Cut these edges",
        "Emit the interfaces",
        "Deploy the service",
        "Shadow",
        "Roll out",
        "Enable",
        "Delete the code",
    ];
    let mut at = 0;
    for word in order {
        let found = steps[at..]
            .iter()
            .position(|step| step.starts_with(word))
            .unwrap_or_else(|| panic!("no step `{word}` after step {at}: {steps:#?}"));
        at += found + 1;
    }

    // The emitted files: the config passes --check once the flag exists.
    let script = dir.path().join("flags.sh");
    let fig_dir = PathBuf::from(env!("CARGO_BIN_EXE_fig"))
        .parent()
        .expect("fig's directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        fig_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    ok(
        std::process::Command::new("sh")
            .arg(&script)
            .env("PATH", path)
            .output()
            .expect("sh runs"),
        "flags.sh",
    );
    ok(
        fig()
            .arg("proxy")
            .arg("--config")
            .arg(dir.path().join("fig-proxy.toml"))
            .arg("--check")
            .output()
            .expect("fig proxy --check runs"),
        "fig proxy --check",
    );
    assert!(
        std::fs::read_to_string(dir.path().join("PLAN.md"))
            .expect("PLAN.md")
            .contains("POST /payments/{id}/refund")
    );

    // Flag off: everything to the monolith. Flag on: the payments to the service.
    let (_proxy, addr) = start_proxy(dir.path());
    assert_eq!(send(addr, "GET", "/payments/7"), (200, "shop".to_owned()));
    flags(dir.path(), &["enable", "payment-service"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while send(addr, "GET", "/payments/7").1 != "payment-service" {
        assert!(
            Instant::now() < deadline,
            "the proxy never sent /payments/7 to the service"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(send(addr, "GET", "/orders/1"), (200, "shop".to_owned()));
}

/// `--traffic` reads the access log a real `fig proxy` wrote: requests per endpoint of the code,
/// most first; the paths no endpoint declares and the endpoints no request reached.
#[test]
fn plan_weighs_endpoints_by_a_real_access_log() {
    let upstreams = Upstreams::start();
    let dir = tempfile::tempdir().expect("tempdir");
    plan_into(dir.path(), &upstreams, &[]);
    flags(dir.path(), &["create", "payment-service"]);
    let (proxy, addr) = start_proxy(dir.path());
    for _ in 0..3 {
        send(addr, "GET", "/payments/7");
    }
    for id in 1..=5 {
        send(addr, "GET", &format!("/orders/{id}"));
    }
    send(addr, "GET", "/nowhere/at/all");
    let log = dir.path().join("access.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count();
        if lines >= 9 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the access log has {lines} lines, not 9"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(proxy);

    let plan = plan_into(
        &dir.path().join("again"),
        &upstreams,
        &["--traffic", log.to_str().expect("a UTF-8 path")],
    );
    let traffic = &plan["traffic"];
    assert_eq!(traffic["by_load"][0]["endpoint"], "GET /orders/{id}");
    assert_eq!(traffic["by_load"][0]["requests"], 5);
    assert_eq!(traffic["by_load"][1]["endpoint"], "GET /payments/{id}");
    assert_eq!(traffic["by_load"][1]["requests"], 3);
    assert!(traffic["by_load"][0]["p99_ms"].as_f64().is_some());
    assert_eq!(traffic["not_in_code"][0]["endpoint"], "GET /nowhere/at/all");
    let unseen: Vec<&str> = traffic["not_in_traffic"]
        .as_array()
        .expect("not_in_traffic")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(unseen.contains(&"POST /payments/{id}/refund"), "{unseen:?}");
    assert!(!unseen.contains(&"GET /payments/{id}"), "{unseen:?}");
    // The owned endpoints carry their traffic, least first.
    assert_eq!(plan["owned"][0]["path"], "/payments/{id}/refund");
    assert_eq!(plan["owned"][0]["traffic"]["requests"], 0);
    assert_eq!(plan["owned"][1]["traffic"]["requests"], 3);
}

/// Endpoint discovery on the actix-web example (source only, no build): attribute handlers
/// under `configure`, a resource in a `ServiceConfig`, routes chained on it, nested scopes.
#[test]
fn endpoints_of_the_actix_example() {
    let output = fig()
        .arg("analyze")
        .arg(workspace_root().join("examples/library"))
        .args(["--format", "json"])
        .output()
        .expect("fig analyze runs");
    let report: Value = serde_json::from_str(&ok(output, "fig analyze")).expect("JSON");
    let found: Vec<String> = report["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|endpoint| {
            format!(
                "{} {} {} {}",
                endpoint["method"].as_str().unwrap_or(""),
                endpoint["path"].as_str().unwrap_or(""),
                endpoint["handler"].as_str().unwrap_or(""),
                endpoint["owner"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    insta::assert_snapshot!(found.join("\n"), @r"
    GET /api/books library::routes::catalog::list_books -
    GET /api/books/{id} library::routes::catalog::get_book library::catalog
    POST /api/loans library::routes::loans::lend library::loans
    GET /api/loans/{id} library::routes::loans::get_loan library::loans
    POST /api/loans/{id}/return library::routes::loans::give_back library::loans
    GET /api/members/{id} library::routes::members::get_member library::members
    GET /healthz library::routes::healthz -
    ");
    let frameworks: Vec<&str> = report["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(|endpoint| endpoint["framework"].as_str())
        .collect();
    assert!(frameworks.iter().all(|framework| *framework == "actix-web"));
}

/// A module that is not a top-level module of the workspace is a clear error naming the
/// domains; an access log that is not one names the line.
#[test]
fn plan_refuses_unknown_modules_and_unreadable_traffic() {
    let output = fig()
        .arg("plan")
        .arg(shop())
        .args(["--extract", "shipping"])
        .output()
        .expect("fig plan runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no top-level module `shipping`"),
        "{stderr}"
    );
    assert!(stderr.contains("shop::payment"), "{stderr}");

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    // More bad lines than the plan lists as warnings: still an error, naming the first.
    std::fs::write(&log, "not a log line\n".repeat(12)).expect("write");
    let output = fig()
        .arg("plan")
        .arg(shop())
        .args(["--extract", "payment", "--traffic"])
        .arg(&log)
        .output()
        .expect("fig plan runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("access.log"), "{stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");
}

/// `fig demo --plan` prints the plan that leads to the demo's own route: the two payment
/// endpoints, `/payments/**`, the demo's flag.
#[test]
fn demo_prints_the_plan_behind_its_route() {
    let output = fig()
        .args(["demo", "--plan"])
        .output()
        .expect("fig demo runs");
    let text = ok(output, "fig demo --plan");
    assert!(text.contains("behind flag `payments-service`"), "{text}");
    assert!(text.contains("GET     /payments/{id}"), "{text}");
    assert!(text.contains("POST    /payments/{id}/refund"), "{text}");
    assert!(text.contains(r#"pattern = "/payments/**""#), "{text}");
}

/// Routes are merged into `/prefix/**` only where every endpoint of the code below the prefix
/// moves: `order` keeps `POST /orders` (shared with `payment`) in the monolith, so `/orders` gets
/// a GET-only exact route; the actix-web example's loans move whole under `/api/loans/**`, not
/// `/api/**` (books and members stay).
#[test]
fn routes_merge_only_where_exact() {
    let routes_of = |path: PathBuf, module: &str| -> Vec<String> {
        let output = fig()
            .arg("plan")
            .arg(path)
            .args(["--extract", module, "--format", "json"])
            .output()
            .expect("fig plan runs");
        let plan: Value = serde_json::from_str(&ok(output, "fig plan")).expect("JSON");
        plan["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .map(|route| {
                format!(
                    "{} {} {}",
                    route["kind"].as_str().unwrap_or(""),
                    route["path"].as_str().unwrap_or(""),
                    route["methods"]
                )
            })
            .collect()
    };
    assert_eq!(
        routes_of(shop(), "order"),
        ["exact /orders [\"GET\"]", "pattern /orders/* []"]
    );
    assert_eq!(
        routes_of(workspace_root().join("examples/library"), "loans"),
        ["pattern /api/loans/** []"]
    );
}
