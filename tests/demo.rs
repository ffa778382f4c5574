//! `fig demo`: the example system started as a newcomer would, and the walk its banner suggests.
//!
//! The demo runs with a temporary state directory and ports 0; the test reads the addresses from
//! its first stdout lines, flips the flag with `fig flags`, rolls the route back with `fig route`
//! (both the real binary, with the very arguments the banner prints), and stops it with SIGTERM.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::fig;
use crate::support::procs::{Proc, STARTUP};

/// Who answered `GET path`: the `x-served-by` and `x-fig-upstream` headers.
#[track_caller]
fn served_by(base: &str, path: &str) -> (String, String) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let response = client
        .get(format!("{base}{path}"))
        .send()
        .unwrap_or_else(|err| panic!("GET {path} through the demo: {err}"));
    assert_eq!(response.status(), 200, "GET {path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    (header("x-served-by"), header("x-fig-upstream"))
}

/// Runs a command line of the banner (`fig ...`), which must succeed, and returns its stdout.
#[track_caller]
fn run_banner_line(line: &str) -> String {
    let words = shell_words(line);
    assert_eq!(
        words.first().map(String::as_str),
        Some("fig"),
        "not a fig command: {line}"
    );
    let output = fig()
        .args(&words[1..])
        .env_remove("FIG_ADMIN_TOKEN")
        .output()
        .expect("fig runs");
    assert!(
        output.status.success(),
        "`{line}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Splits a command line as a POSIX shell does for what the banner uses: words separated by
/// spaces, single quotes keeping a word with spaces together, `#` starting a comment.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in line.trim().chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            // A comment after the command, as the banner aligns them.
            '#' if !quoted && !in_word => break,
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn demo_walk_flag_on_then_rollback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("demo state");
    let mut command = fig();
    command
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(&state_dir);
    let mut demo = Proc::spawn("fig demo", command);
    let proxy = format!("http://{}", demo.address("listening on http://"));
    let admin = format!("http://{}", demo.address("admin on http://"));
    demo.line_after("Ctrl-C stops everything.", STARTUP);
    let banner = demo.stdout_seen().join("\n");

    // The files a real deployment has.
    let state_dir = std::fs::canonicalize(&state_dir).expect("the state dir exists");
    for file in ["fig-proxy.toml", "flags.json", "admin.token"] {
        assert!(state_dir.join(file).is_file(), "{file} is written");
    }
    check_token_file(&state_dir.join("admin.token"));

    // The banner names what was started and the commands to try, with this run's addresses.
    let monolith = banner_value(&banner, "  monolith (shop)");
    let service = banner_value(&banner, "  payment-service");
    let state_dir_text = state_dir.display().to_string();
    let filtered = banner
        .replace(&proxy, "[PROXY]")
        .replace(&admin, "[ADMIN]")
        .replace(&monolith, "[MONOLITH]")
        .replace(&service, "[SERVICE]")
        .replace(&format!("'{state_dir_text}"), "'[STATE_DIR]")
        .replace(&state_dir_text, "[STATE_DIR]");
    insta::assert_snapshot!(filtered);

    // Flag off: the monolith answers.
    assert_eq!(
        served_by(&proxy, "/payments/7"),
        ("shop".to_owned(), "monolith".to_owned())
    );

    // The banner's own `fig flags ... enable` line, then the service within a second.
    let enable = banner_line(&banner, "fig flags --store");
    run_banner_line(&enable);
    let start = Instant::now();
    while served_by(&proxy, "/payments/7").0 != "payment-service" {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the payment service does not answer a second after `{enable}`"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        served_by(&proxy, "/payments/7"),
        ("payment-service".to_owned(), "payment-service".to_owned())
    );
    assert_eq!(served_by(&proxy, "/orders/7").0, "shop");

    // The banner's `fig route ... rollback payments`: the monolith again, at once.
    let rollback = banner_line(&banner, " rollback payments");
    let out = run_banner_line(&rollback);
    assert!(out.starts_with("rolled back route `payments`"), "{out}");
    assert_eq!(served_by(&proxy, "/payments/7").0, "shop");

    // And back.
    run_banner_line(&banner_line(&banner, " restore payments"));
    assert_eq!(served_by(&proxy, "/payments/7").0, "payment-service");

    demo.signal("TERM");
    let status = demo.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "stderr: {}", demo.stderr());
}

/// The admin API's JSON at `path`, with the demo's token.
#[track_caller]
fn admin_json(admin: &str, token_file: &Path, path: &str) -> serde_json::Value {
    let token = std::fs::read_to_string(token_file).expect("the admin token");
    let response = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
        .get(format!("{admin}{path}"))
        .bearer_auth(token.trim())
        .send()
        .unwrap_or_else(|err| panic!("GET {path} on the admin API: {err}"));
    assert_eq!(response.status(), 200, "GET {path}");
    let body = response.text().expect("the admin API's answer");
    serde_json::from_str(&body).expect("JSON from the admin API")
}

/// Polls `check` every 50 ms until it holds, for at most `limit`.
#[track_caller]
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The banner's second half: shadow traffic shows where the service differs, and a service that
/// fails is hidden from users by the fallback, then rolled back by its SLO, flag and all.
#[test]
fn demo_walk_shadow_diff_then_a_failing_service_is_rolled_back_by_its_slo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = fig();
    command
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(dir.path());
    let mut demo = Proc::spawn("fig demo", command);
    let proxy = format!("http://{}", demo.address("listening on http://"));
    let admin = format!("http://{}", demo.address("admin on http://"));
    demo.line_after("Ctrl-C stops everything.", STARTUP);
    let banner = demo.stdout_seen().join("\n");
    let service = banner_value(&banner, "  payment-service");
    let token = dir.path().join("admin.token");
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let diff = || {
        let line = banner_line(&banner, " diff payments");
        let out = run_banner_line(&line.replace(" diff payments", " --format json diff payments"));
        serde_json::from_str::<serde_json::Value>(&out).expect("fig route diff --format json")
    };

    // Flag off: the monolith answers and the service shadows it, with the same answers.
    assert_eq!(served_by(&proxy, "/payments/7").0, "shop");
    wait_for(
        "the shadow comparison of /payments/7",
        Duration::from_secs(10),
        || diff()["counts"]["equal"].as_u64() >= Some(1),
    );
    assert_eq!(diff()["counts"]["different"], 0, "{}", diff());

    // The monolith refunds payment 5 (a POST is not mirrored): the shadow now tells.
    let refund = client
        .post(format!("{proxy}/payments/5/refund"))
        .send()
        .expect("refund through the demo");
    assert_eq!(refund.status(), 200);
    assert_eq!(served_by(&proxy, "/payments/5").0, "shop");
    wait_for(
        "a difference on /payments/5",
        Duration::from_secs(10),
        || diff()["counts"]["different"].as_u64() >= Some(1),
    );
    let doc = diff();
    let sample = doc["samples"]
        .as_array()
        .and_then(|samples| samples.iter().find(|s| s["uri"] == "/payments/5"))
        .unwrap_or_else(|| panic!("a sample of /payments/5: {doc}"));
    let status = sample["differences"]
        .as_array()
        .and_then(|diffs| diffs.iter().find(|d| d["path"] == "/status"))
        .unwrap_or_else(|| panic!("the status differs: {sample}"));
    // Field values are given as JSON text.
    assert_eq!(
        (&status["primary"], &status["shadow"]),
        (
            &serde_json::json!("\"refunded\""),
            &serde_json::json!("\"captured\"")
        )
    );
    // The text summary the banner suggests names the path too.
    let text = run_banner_line(&banner_line(&banner, " diff payments"));
    assert!(text.contains("/status"), "{text}");

    // The service answers once the flag is on...
    run_banner_line(&banner_line(&banner, "fig flags --store"));
    wait_for(
        "the payment service answering",
        Duration::from_secs(2),
        || served_by(&proxy, "/payments/7").0 == "payment-service",
    );

    // ...then fails every payment: users still get 200s, from the monolith.
    let faults = client
        .put(format!("{service}/_faults"))
        .body(r#"{"error_rate": 1}"#)
        .send()
        .expect("PUT /_faults");
    assert_eq!(faults.status(), 200);
    for _ in 0..10 {
        assert_eq!(served_by(&proxy, "/payments/7").0, "shop");
    }

    // The SLO rolled the route back and turned the flag off, and says why.
    wait_for("the SLO rollback", Duration::from_secs(5), || {
        admin_json(&admin, &token, "/routes")["routes"]
            .as_array()
            .and_then(|routes| routes.iter().find(|r| r["name"] == "payments"))
            .is_some_and(|route| route["pin"]["by"] == "slo")
    });
    let status = run_banner_line(&banner_line(&banner, " status"));
    assert!(status.contains("slo"), "{status}");
    // The pin is in force at once; the flag is turned off right after it, by a separate write.
    let flag_enabled = || {
        let flags = std::fs::read_to_string(dir.path().join("flags.json")).expect("flags.json");
        let flags: serde_json::Value = serde_json::from_str(&flags).expect("the flag store");
        flags["features"]
            .as_array()
            .and_then(|features| features.iter().find(|f| f["name"] == "payments-service"))
            .unwrap_or_else(|| panic!("the flag in {flags}"))["enabled"]
            .clone()
    };
    wait_for(
        "the SLO turning the flag off",
        Duration::from_secs(5),
        || flag_enabled() == false,
    );

    // Repaired, the service answers again once a person restores the route and the flag.
    let cleared = client
        .delete(format!("{service}/_faults"))
        .send()
        .expect("DELETE /_faults");
    assert_eq!(cleared.status(), 200);
    assert_eq!(served_by(&proxy, "/payments/7").0, "shop");

    demo.signal("TERM");
    let status = demo.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "stderr: {}", demo.stderr());
}

#[test]
fn demo_refuses_a_taken_address_with_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let output = fig()
        .args([
            "demo",
            "--listen",
            &addr,
            "--admin",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("fig demo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot listen on {addr} for the proxy")),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

/// The value after a label in the banner's list of what was started.
#[track_caller]
fn banner_value(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in the banner:\n{banner}"))
        .trim()
        .to_owned()
}

/// The banner line (a command to try) that contains `needle`.
#[track_caller]
fn banner_line(banner: &str, needle: &str) -> String {
    banner
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in the banner:\n{banner}"))
        .trim()
        .to_owned()
}

#[cfg(unix)]
fn check_token_file(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .expect("token metadata")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "admin.token is readable by its owner only"
    );
    let token = std::fs::read_to_string(path).expect("read the token");
    assert!(token.trim().len() >= 32, "a long random token: {token:?}");
}

#[cfg(not(unix))]
fn check_token_file(path: &Path) {
    assert!(
        !std::fs::read_to_string(path)
            .expect("read the token")
            .trim()
            .is_empty()
    );
}
