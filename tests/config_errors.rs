//! Every mistake of a config file at once (issue 15, "Layers"): `fig proxy --check` prints one
//! `file:line:column: reason` line per mistake, in file order, and exits 2; a reload of such a
//! file is refused whole, its log names every mistake, and the old config keeps serving.
//!
//! Issue 17: an unknown table or key in `fig.toml` or the proxy's config is a mistake with its
//! place and the nearest valid name, never a silent pass; a `fig.toml` that sets no rule says so.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::fig;
use crate::support::procs::Proc;
use crate::support::upstreams::Upstreams;

/// A config with the four mistakes of the issue, in four tables: an unknown upstream in a
/// route, a bad pattern in another route, a bad address in an upstream, a bad duration in
/// `[timeouts]`. `{monolith}` is the monolith's address.
const SEVERAL_MISTAKES: &str = r#"[server]
listen = "127.0.0.1:0"

[[routes]]
name = "payments"
match = { prefix = "/payments" }
service = "payment"

[[routes]]
name = "orders"
match = { pattern = "/orders/id*" }
service = "monolith"

[upstreams.monolith]
addresses = ["http://{monolith}"]

[upstreams.payment-service]
addresses = ["127.0.0.1:9000"]

[timeouts]
connect = "5 parsecs"

[admin]
listen = "off"

[reload]
watch = false
"#;

/// The lines `fig` prints for [`SEVERAL_MISTAKES`] written to `path`, in file order.
fn expected_mistakes(path: &Path) -> Vec<String> {
    let file = path.display();
    vec![
        format!("{file}:7:11: no upstream named `payment`"),
        format!(
            "{file}:11:21: pattern `/orders/id*`: `*` and `**` must be a whole segment, found `id*`"
        ),
        format!(
            "{file}:18:14: upstream address `127.0.0.1:9000` needs a scheme, e.g. http://127.0.0.1:9000"
        ),
        format!(
            "{file}:21:11: invalid duration `5 parsecs` (unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write e.g. \"500ms\", \"5s\", \"2m\""
        ),
    ]
}

#[test]
fn check_prints_every_mistake_with_its_place_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fig-proxy.toml");
    std::fs::write(
        &path,
        SEVERAL_MISTAKES.replace("{monolith}", "127.0.0.1:8080"),
    )
    .expect("write the config");
    let output = fig()
        .arg("proxy")
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .expect("fig proxy --check runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout: {stderr}");
    let mut expected = expected_mistakes(&path);
    expected[0].insert_str(0, "error: ");
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected, "{stderr}");
}

#[test]
fn a_reload_with_several_mistakes_logs_them_all_and_keeps_the_last_good_config() {
    let upstreams = Upstreams::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fig-proxy.toml");
    let good = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[upstreams.monolith]\naddresses = [\"http://{monolith}\"]\n\n[upstreams.payment-service]\naddresses = [\"http://{service}\"]\n\n[[routes]]\nname = \"payments\"\nmatch = {{ prefix = \"/payments\" }}\nservice = \"payment-service\"\n\n[admin]\nlisten = \"off\"\n\n[reload]\nwatch = false\n",
        monolith = upstreams.monolith,
        service = upstreams.service,
    );
    std::fs::write(&path, good).expect("write the config");
    let mut command = fig();
    command
        .arg("-v")
        .arg("proxy")
        .arg("--config")
        .arg(&path)
        .env_remove("RUST_LOG");
    let mut proc = Proc::spawn("fig proxy", command);
    let addr = proc.address("listening on http://");
    assert_eq!(served_by(addr, "/payments/7"), "payment-service");

    let bad = SEVERAL_MISTAKES.replace("{monolith}", &upstreams.monolith.to_string());
    std::fs::write(&path, bad).expect("write the bad config");
    proc.signal("HUP");
    let refused = "config reload refused; the previous config keeps serving";
    let start = Instant::now();
    while !proc.stderr().contains(refused) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no refusal logged; stderr:\n{}",
            proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stderr = proc.stderr();
    for mistake in expected_mistakes(&path) {
        assert!(stderr.contains(&mistake), "{mistake} in the log:\n{stderr}");
    }
    // The last good config serves on: route `payments` still goes to the service.
    assert_eq!(served_by(addr, "/payments/7"), "payment-service");
    assert_eq!(served_by(addr, "/orders/1"), "monolith");
    assert!(proc.is_running());
}

/// `GET path` through the proxy; the upstream that answered (`x-fig-upstream`).
#[track_caller]
fn served_by(addr: SocketAddr, path: &str) -> String {
    let response = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
        .get(format!("http://{addr}{path}"))
        .send()
        .unwrap_or_else(|err| panic!("GET {path} through the proxy: {err}"));
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    response
        .headers()
        .get("x-fig-upstream")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `fig check examples/shop --config fig.toml` with `text` as the config: exit code and stderr,
/// with the file's path shown as `fig.toml`.
fn fig_check(text: &str, extra: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fig.toml");
    std::fs::write(&path, text).expect("write fig.toml");
    let output = fig()
        .arg("check")
        .arg(crate::support::workspace_root().join("examples/shop"))
        .arg("--config")
        .arg(&path)
        .args(extra)
        .output()
        .expect("fig check runs");
    let stderr =
        String::from_utf8_lossy(&output.stderr).replace(&path.display().to_string(), "fig.toml");
    (output.status.code(), stderr)
}

#[track_caller]
fn check_refused(text: &str, expected: &str) {
    let (code, stderr) = fig_check(text, &[]);
    assert_eq!(code, Some(2), "{text:?} must be refused; stderr: {stderr}");
    assert_eq!(stderr.trim_end(), expected, "for {text:?}");
}

// See issue 17, item 1: each of these passed with exit 0, the rules unread.
#[test]
fn a_misspelled_table_is_an_error_with_the_nearest_name() {
    check_refused(
        "[checks]\nmax_cycles = 0\n",
        "error: fig.toml:1:2: unknown table or key `checks`: fig.toml has one table, [check]; did you mean `check`?",
    );
}

#[test]
fn an_unrelated_table_is_an_error() {
    check_refused(
        "[check]\nmax_cycles = 0\n\n[lint]\nstrict = true\n",
        "error: fig.toml:4:2: unknown table or key `lint`: fig.toml has one table, [check]",
    );
}

#[test]
fn a_rule_outside_check_is_an_error() {
    check_refused(
        "max_cycles = 0\n",
        "error: fig.toml:1:1: `max_cycles` belongs in the [check] table",
    );
}

#[test]
fn a_misspelled_key_in_check_names_the_nearest_one() {
    check_refused(
        "[check]\n  max_cycle = 0\n",
        "error: fig.toml:2:3: unknown field `max_cycle`, expected one of `max_cycles`, `max_bidirectional`, `no_new_cycles`, `no_new_bidirectional`, `baseline`, `forbid`, `allow`, `layer`; did you mean `max_cycles`?",
    );
    check_refused(
        "[check]\n[[check.forbid]]\nfrom = \"shop::a\"\ntoo = \"shop::b\"\n",
        "error: fig.toml:4:1: unknown field `too`, expected one of `from`, `to`, `reason`; did you mean `to`?",
    );
}

#[test]
fn a_fig_toml_without_a_rule_says_so_and_strict_fails() {
    for text in ["", "[check]\n", "# rules to come\n"] {
        let (code, stderr) = fig_check(text, &[]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stderr
                .contains("note: fig.toml sets no rule and no baseline: there is nothing to check"),
            "{text:?}: {stderr}"
        );
        let (code, stderr) = fig_check(text, &["--strict"]);
        assert_eq!(code, Some(2), "--strict, {text:?}: {stderr}");
        assert!(
            stderr.starts_with("error: fig.toml sets no rule"),
            "{stderr}"
        );
    }
    // A file with a rule passes --strict (the shop has cycles, so a generous limit).
    let (code, stderr) = fig_check("[check]\nmax_cycles = 100\n", &["--strict"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("nothing to check"), "{stderr}");
}

#[test]
fn an_unknown_key_in_the_proxy_config_names_the_nearest_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fig-proxy.toml");
    std::fs::write(
        &path,
        "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:8080\"]\n\n[flag]\nfile = \"flags.json\"\n",
    )
    .expect("write the config");
    let output = fig()
        .args(["proxy", "--check", "--config"])
        .arg(&path)
        .output()
        .expect("fig proxy --check runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:2: unknown field `flag`", path.display()))
            && stderr.contains("did you mean `flags`?"),
        "{stderr}"
    );
}
