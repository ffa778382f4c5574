//! SLO windows and the breach decision, on a clock the test moves (no sleeps); the `slo` table
//! of the config; pins with their reason in the state file.

use std::time::{Duration, Instant};

use crate::config::{Config, Overrides};
use crate::decision::state::{FlagOff, PinInfo, PinnedBy, Pins};
use crate::protection::slo::{SloConfig, Window, bucket_upper, decide, latency_bucket};

fn slo(max_error_rate: Option<f64>, max_p99_ms: Option<u64>, min_requests: u64) -> SloConfig {
    SloConfig {
        max_error_rate,
        max_p99: max_p99_ms.map(Duration::from_millis),
        window: Duration::from_secs(30),
        min_requests,
        turn_off_flag: false,
    }
}

/// One request: when it ended (seconds after the window's origin), its latency in
/// milliseconds, and whether it failed.
type Request = (f64, u64, bool);

/// Records `requests` in a fresh window and returns the verdict at `at` seconds, as the reason
/// a person reads, or `ok (N requests)` when the SLO holds.
#[track_caller]
fn check(config: SloConfig, requests: &[Request], at: f64) -> String {
    let origin = Instant::now();
    let window = Window::new(config, origin);
    for &(when, latency_ms, error) in requests {
        window.record(
            origin + Duration::from_secs_f64(when),
            Duration::from_millis(latency_ms),
            error,
        );
    }
    let stats = window.stats(origin + Duration::from_secs_f64(at));
    match decide(window.config(), &stats) {
        Some(breach) => breach.to_string(),
        None => format!("ok ({} requests)", stats.requests),
    }
}

/// `n` requests spread over `[from, from + 1s)`, `errors` of them failed, each `latency_ms`.
fn burst(from: f64, n: usize, errors: usize, latency_ms: u64) -> Vec<Request> {
    (0..n)
        .map(|idx| (from + idx as f64 / n as f64, latency_ms, idx < errors))
        .collect()
}

#[test]
fn a_high_error_rate_is_a_breach() {
    assert_eq!(
        check(slo(Some(0.05), None, 20), &burst(1.0, 124, 77, 5), 2.0),
        "slo: 5xx rate 62.1% > 5% over 30s (124 requests)"
    );
}

#[test]
fn below_the_minimum_count_nothing_is_decided() {
    // Two requests, both failed: 100% errors, but too few to judge.
    assert_eq!(
        check(slo(Some(0.05), None, 20), &burst(1.0, 2, 2, 5), 2.0),
        "ok (2 requests)"
    );
    assert_eq!(
        check(slo(Some(0.05), None, 20), &burst(1.0, 19, 19, 5), 2.0),
        "ok (19 requests)"
    );
    assert_eq!(
        check(slo(Some(0.05), None, 20), &burst(1.0, 20, 20, 5), 2.0),
        "slo: 5xx rate 100% > 5% over 30s (20 requests)"
    );
}

#[test]
fn the_error_objective_is_strict() {
    // Exactly 5% is within a 5% objective; one more error is not.
    assert_eq!(
        check(slo(Some(0.05), None, 20), &burst(1.0, 100, 5, 5), 2.0),
        "ok (100 requests)"
    );
    assert_eq!(
        check(slo(Some(0.05), None, 20), &burst(1.0, 100, 6, 5), 2.0),
        "slo: 5xx rate 6% > 5% over 30s (100 requests)"
    );
}

#[test]
fn a_slow_service_breaks_a_p99_objective() {
    let mut requests = burst(1.0, 95, 0, 20);
    requests.extend(burst(2.0, 5, 0, 800));
    assert_eq!(
        check(slo(None, Some(500), 20), &requests, 3.0),
        "slo: p99 latency 917ms > 500ms over 30s (100 requests)"
    );
}

#[test]
fn the_p99_objective_allows_one_percent_slower() {
    let mut requests = burst(1.0, 99, 0, 20);
    requests.push((2.0, 3000, false));
    assert_eq!(
        check(slo(None, Some(500), 20), &requests, 3.0),
        "ok (100 requests)"
    );
    requests.push((2.5, 3000, false));
    assert_eq!(
        check(slo(None, Some(500), 20), &requests, 3.0),
        "slo: p99 latency 3.15s > 500ms over 30s (101 requests)"
    );
}

#[test]
fn healthy_traffic_holds_both_objectives() {
    let mut requests = Vec::new();
    for second in 0..30 {
        requests.extend(burst(f64::from(second), 50, 1, 40));
    }
    assert_eq!(
        check(slo(Some(0.05), Some(500), 20), &requests, 29.5),
        "ok (1500 requests)"
    );
}

#[test]
fn old_requests_leave_the_window() {
    let failures = burst(1.0, 100, 100, 5);
    // 30 s window in 3 s slots: what ended in [0, 3) is in the window until 30 s have passed,
    // and gone once the window has moved past its slot.
    assert_eq!(
        check(slo(Some(0.05), None, 20), &failures, 29.0),
        "slo: 5xx rate 100% > 5% over 30s (100 requests)"
    );
    assert_eq!(
        check(slo(Some(0.05), None, 20), &failures, 30.5),
        "ok (0 requests)"
    );
    // Old failures, then healthy traffic: the rate is over the window only.
    let mut requests = failures.clone();
    requests.extend(burst(31.0, 100, 0, 5));
    assert_eq!(
        check(slo(Some(0.05), None, 20), &requests, 32.0),
        "ok (100 requests)"
    );
}

#[test]
fn a_slot_reused_a_ring_later_starts_empty() {
    // 3 s slots in a ring of 11: the slot of second 1 comes round again at second 34.
    let mut requests = burst(1.0, 50, 50, 5);
    requests.extend(burst(34.0, 50, 0, 5));
    assert_eq!(
        check(slo(Some(0.05), None, 20), &requests, 34.9),
        "ok (50 requests)"
    );
}

#[test]
fn reset_forgets_everything() {
    let origin = Instant::now();
    let window = Window::new(slo(Some(0.05), None, 1), origin);
    let at = origin + Duration::from_secs(2);
    for _ in 0..10 {
        window.record(at, Duration::from_millis(5), true);
    }
    assert!(decide(window.config(), &window.stats(at)).is_some());
    window.reset();
    assert_eq!(window.stats(at).requests, 0);
    window.record(at, Duration::from_millis(5), false);
    assert_eq!(window.stats(at).requests, 1);
    assert!(decide(window.config(), &window.stats(at)).is_none());
}

#[test]
fn failures_the_client_caused_are_not_the_service_s() {
    use crate::error::ProxyErrorKind;
    use http::StatusCode;
    let origin = Instant::now();
    let window = Window::new(slo(Some(0.05), None, 1), origin);
    let latency = Duration::from_millis(1);
    window.observe(origin, latency, Ok(StatusCode::OK));
    window.observe(origin, latency, Ok(StatusCode::NOT_FOUND));
    window.observe(origin, latency, Ok(StatusCode::SERVICE_UNAVAILABLE));
    window.observe(origin, latency, Err(ProxyErrorKind::Connect));
    window.observe(origin, latency, Err(ProxyErrorKind::Timeout));
    window.observe(origin, latency, Err(ProxyErrorKind::BodyTooLarge));
    window.observe(origin, latency, Err(ProxyErrorKind::BadRequest));
    let stats = window.stats(origin);
    assert_eq!((stats.requests, stats.errors), (5, 3));
}

#[test]
fn requests_an_open_circuit_kept_from_the_service_are_failures() {
    let origin = Instant::now();
    let window = Window::new(slo(Some(0.05), Some(500), 20), origin);
    for _ in 0..5 {
        window.record(origin, Duration::from_millis(2), true);
    }
    for _ in 0..15 {
        window.record_refused(origin);
    }
    let stats = window.stats(origin);
    assert_eq!((stats.requests, stats.errors, stats.slow), (20, 20, 0));
    // Only the answered requests have a latency.
    assert_eq!(stats.p99, Some(Duration::from_micros(2048)));
    assert_eq!(
        decide(window.config(), &stats).map(|breach| breach.to_string()),
        Some("slo: 5xx rate 100% > 5% over 30s (20 requests)".to_owned())
    );
}

#[test]
fn a_reload_keeps_the_window_unless_the_slo_changed() {
    let registry = crate::protection::slo::Registry::default();
    let config = slo(Some(0.05), None, 20);
    let first = registry.window("payments", &config);
    first.record(Instant::now(), Duration::from_millis(1), true);
    let same = registry.window("payments", &config);
    assert!(std::sync::Arc::ptr_eq(&first, &same));
    let changed = registry.window("payments", &slo(Some(0.01), None, 20));
    assert!(!std::sync::Arc::ptr_eq(&first, &changed));
    assert_eq!(changed.stats(Instant::now()).requests, 0);
    registry.reset("payments");
    assert_eq!(
        first.stats(Instant::now()).requests,
        1,
        "only the current window is reset"
    );
}

#[test]
fn latency_buckets_are_ordered_and_bound_their_values() {
    let mut last = Duration::ZERO;
    for idx in 0..85 {
        let upper = bucket_upper(idx);
        assert!(upper > last, "bucket {idx}");
        last = upper;
    }
    for micros in [
        0, 127, 128, 129, 500, 999, 1000, 20_000, 499_999, 500_000, 3_000_000,
    ] {
        let latency = Duration::from_micros(micros);
        let idx = latency_bucket(latency);
        assert!(latency < bucket_upper(idx), "{micros}µs in bucket {idx}");
        if idx > 0 {
            assert!(
                latency >= bucket_upper(idx - 1),
                "{micros}µs in bucket {idx}"
            );
        }
    }
    // Resolution: a bucket is at most 25% wide.
    for idx in 2..85 {
        let (lower, upper) = (bucket_upper(idx - 1), bucket_upper(idx));
        assert!(upper.as_secs_f64() <= lower.as_secs_f64() * 1.25 + 1e-9);
    }
    // Beyond the last bucket: counted in it.
    assert_eq!(latency_bucket(Duration::from_secs(100_000)), 84);
}

// ---- config ---------------------------------------------------------------------------------

const ROUTE: &str = r#"[upstreams.monolith]
addresses = ["http://127.0.0.1:8080"]
[upstreams.svc]
addresses = ["http://127.0.0.1:9000"]
[flags]
file = "flags.json"
[[routes]]
name = "payments"
match = { prefix = "/payments" }
service = "svc"
flag = "payments-service"
"#;

#[track_caller]
fn parse(slo: &str) -> Result<Option<SloConfig>, String> {
    let text = format!("{ROUTE}{slo}\n");
    Config::parse(
        &text,
        Some(std::path::Path::new("fig-proxy.toml")),
        &Overrides::default(),
    )
    .map(|config| config.routes[0].slo.clone())
    .map_err(|err| err.to_string())
}

#[test]
fn slo_table_with_defaults() {
    assert_eq!(
        parse("slo = { max_error_rate = \"5%\" }"),
        Ok(Some(SloConfig {
            max_error_rate: Some(0.05),
            max_p99: None,
            window: Duration::from_secs(30),
            min_requests: 20,
            turn_off_flag: false,
        }))
    );
    assert_eq!(
        parse(
            "[routes.slo]\nmax_error_rate = 0.01\nmax_p99 = \"250ms\"\nwindow = \"1m\"\nmin_requests = 100\nturn_off_flag = true"
        ),
        Ok(Some(SloConfig {
            max_error_rate: Some(0.01),
            max_p99: Some(Duration::from_millis(250)),
            window: Duration::from_secs(60),
            min_requests: 100,
            turn_off_flag: true,
        }))
    );
    assert_eq!(parse(""), Ok(None));
}

#[test]
fn slo_mistakes_say_where() {
    let err = |slo: &str| parse(slo).expect_err("refused");
    assert_eq!(
        err("slo = { window = \"10s\" }"),
        "fig-proxy.toml:12:7: `slo` needs `max_error_rate`, `max_p99` or both"
    );
    assert_eq!(
        err("slo = { max_error_rate = \"120%\" }"),
        "fig-proxy.toml:12:26: invalid `max_error_rate`; write a fraction below 1 like 0.05, or a percentage like \"5%\""
    );
    assert_eq!(
        err("slo = { max_error_rate = 5 }"),
        "fig-proxy.toml:12:26: invalid `max_error_rate`; write a fraction below 1 like 0.05, or a percentage like \"5%\""
    );
    assert_eq!(
        err("slo = { max_p99 = \"fast\" }"),
        "fig-proxy.toml:12:19: invalid duration `fast` (expected number at 0); write e.g. \"500ms\", \"5s\", \"2m\""
    );
    assert_eq!(
        err("slo = { max_p99 = \"1s\", window = \"500ms\" }"),
        "fig-proxy.toml:12:34: `window` must be between 1s and 1h"
    );
    assert_eq!(
        err("slo = { max_p99 = \"1s\", min_requests = 0 }"),
        "fig-proxy.toml:12:40: `min_requests` must be at least 1"
    );
    assert_eq!(
        err("slo = { max_p99 = \"1s\", max_latency = \"1s\" }"),
        "fig-proxy.toml:12:25: unknown field `max_latency`, expected one of `max_error_rate`, `max_p99`, `window`, `min_requests`, `turn_off_flag`"
    );
}

#[test]
fn turn_off_flag_needs_a_flag_and_a_writable_store() {
    let unflagged = ROUTE.replace("flag = \"payments-service\"\n", "");
    let text = format!("{unflagged}slo = {{ max_p99 = \"1s\", turn_off_flag = true }}\n");
    let err = Config::parse(&text, None, &Overrides::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<config>:11:41: `turn_off_flag` needs the route to have a `flag`"
    );

    let no_store = ROUTE.replace("[flags]\nfile = \"flags.json\"\n", "");
    let text = format!("{no_store}slo = {{ max_p99 = \"1s\", turn_off_flag = true }}\n");
    let err = Config::parse(&text, None, &Overrides::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<config>:10:41: `turn_off_flag` needs a flag store: add [flags] or pass --flags FILE"
    );

    let unleash = ROUTE.replace(
        "file = \"flags.json\"",
        "unleash = { url = \"http://127.0.0.1:4242/api\", token = \"t\" }",
    );
    let text = format!("{unleash}slo = {{ max_p99 = \"1s\", turn_off_flag = true }}\n");
    let err = Config::parse(&text, None, &Overrides::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<config>:12:41: `turn_off_flag` with Unleash needs an admin token: set `admin_token_file` in `flags.unleash` or $FIG_UNLEASH_ADMIN_TOKEN"
    );
    // The token from the environment (the CLI passes it as an override) is enough.
    let overrides = Overrides {
        unleash_admin_token: Some("admin-token".to_owned()),
        ..Overrides::default()
    };
    let config = Config::parse(&text, None, &overrides).expect("valid with a token");
    let admin = config.unleash_admin.expect("an admin config");
    assert_eq!(
        (admin.token.as_str(), admin.project, admin.environment),
        ("admin-token", None, None)
    );
    // And from the file, with project and environment.
    let unleash = ROUTE.replace(
        "file = \"flags.json\"",
        "unleash = { url = \"http://127.0.0.1:4242/api\", token = \"t\", admin_token = \"a\", project = \"shop\", environment = \"production\" }",
    );
    let text = format!("{unleash}slo = {{ max_p99 = \"1s\", turn_off_flag = true }}\n");
    let config = Config::parse(&text, None, &overrides).expect("valid");
    let admin = config.unleash_admin.expect("an admin config");
    assert_eq!(
        (
            admin.token.as_str(),
            admin.project.as_deref(),
            admin.environment.as_deref()
        ),
        ("a", Some("shop"), Some("production"))
    );
}

// ---- state ----------------------------------------------------------------------------------

#[test]
fn pins_keep_who_and_why_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    let pins = Pins::open(Some(file.clone())).unwrap();
    let reason = "slo: 5xx rate 62% > 5% over 30s (124 requests)".to_owned();
    assert!(pins.pin("payments", PinInfo::slo(reason.clone())).unwrap());
    // A second pin keeps the first reason.
    assert!(!pins.set("payments", true).unwrap());
    pins.note_flag_off(
        "payments",
        FlagOff {
            flag: "payments-service".to_owned(),
            done: true,
            message: "flag `payments-service` turned off".to_owned(),
        },
    )
    .unwrap();
    assert!(pins.set("orders", true).unwrap());

    let reopened = Pins::open(Some(file.clone())).unwrap();
    assert!(
        reopened
            .flag("payments")
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    let info = reopened.info("payments").expect("pinned");
    assert_eq!(info.by, PinnedBy::Slo);
    assert_eq!(info.reason.as_deref(), Some(reason.as_str()));
    assert!(info.at.is_some());
    assert_eq!(info.flag_off.expect("noted").flag, "payments-service");
    assert_eq!(reopened.info("orders").expect("pinned").by, PinnedBy::Admin);

    // Restoring forgets the reason, in the file too.
    assert!(reopened.set("payments", false).unwrap());
    assert_eq!(reopened.info("payments"), None);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("slo:"), "{text}");
}

#[test]
fn a_state_file_without_details_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    std::fs::write(&file, r#"{"schema_version": 1, "pinned": ["payments"]}"#).unwrap();
    let pins = Pins::open(Some(file)).unwrap();
    assert_eq!(pins.pinned(), ["payments"]);
    let info = pins.info("payments").expect("pinned");
    assert_eq!(
        (info.by, info.reason, info.at),
        (PinnedBy::Admin, None, None)
    );
}
