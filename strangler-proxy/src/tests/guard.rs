//! The circuit breaker, outlier ejection and rate-limit buckets on a clock the tests move.

use std::time::Duration;

use governor::clock::FakeRelativeClock;

use crate::config::{CircuitBreakerConfig, OutlierConfig, RateKey, RateLimitConfig};
use crate::protection::breaker::{Breaker, Nanos, Outlier, State};
use crate::protection::limit::{Key, RateLimit};

const MS: Nanos = 1_000_000;

fn config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        enabled: true,
        consecutive_failures: 3,
        error_rate: 0.5,
        min_requests: 10,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(5),
        half_open_requests: 2,
    }
}

/// Sends one request through `breaker` at `now`: `None` when refused, else whether it was let
/// through, with the state after recording `failed`.
fn send(breaker: &Breaker, now: Nanos, failed: bool) -> Option<State> {
    let (permit, _) = breaker.try_acquire(now);
    let permit = permit.ok()?;
    breaker.record(permit, now, failed);
    Some(breaker.state(now))
}

#[test]
fn consecutive_failures_open_the_circuit() {
    let breaker = Breaker::new(config());
    assert_eq!(send(&breaker, 0, true), Some(State::Closed));
    assert_eq!(send(&breaker, MS, true), Some(State::Closed));
    // A success in between starts the count again.
    assert_eq!(send(&breaker, 2 * MS, false), Some(State::Closed));
    assert_eq!(send(&breaker, 3 * MS, true), Some(State::Closed));
    assert_eq!(send(&breaker, 4 * MS, true), Some(State::Closed));
    assert_eq!(send(&breaker, 5 * MS, true), Some(State::Open));
    assert_eq!(send(&breaker, 6 * MS, false), None, "open refuses");
    let (refused, _) = breaker.try_acquire(1000 * MS);
    assert_eq!(
        refused.err(),
        Some(Duration::from_nanos(5000 * MS - 995 * MS)),
        "refused with the time left"
    );
}

#[test]
fn error_rate_over_the_window_opens_the_circuit_only_past_min_requests() {
    let breaker = Breaker::new(CircuitBreakerConfig {
        consecutive_failures: 0,
        ..config()
    });
    // Alternating: 50% failures, never two in a row.
    for i in 0..9 {
        assert_eq!(
            send(&breaker, i * 100 * MS, i % 2 == 0),
            Some(State::Closed)
        );
    }
    // The tenth request makes 10 requests with 5 failures: 50%.
    assert_eq!(send(&breaker, 900 * MS, true), Some(State::Open));
}

#[test]
fn old_requests_slide_out_of_the_window() {
    let breaker = Breaker::new(CircuitBreakerConfig {
        consecutive_failures: 0,
        ..config()
    });
    for i in 0..9 {
        send(&breaker, i * MS, true);
    }
    assert_eq!(breaker.window(9 * MS), (9, 9));
    // Eleven seconds later those nine are out of the window: one more failure is 1 of 1.
    assert_eq!(send(&breaker, 11_000 * MS, true), Some(State::Closed));
    assert_eq!(breaker.window(11_000 * MS), (1, 1));
}

#[test]
fn half_open_lets_a_bounded_number_of_trials_through_and_successes_close() {
    let breaker = Breaker::new(config());
    for i in 0..3 {
        send(&breaker, i * MS, true);
    }
    assert_eq!(breaker.state(10 * MS), State::Open);
    let later = 5_010 * MS;
    assert_eq!(breaker.state(later), State::HalfOpen);
    let (first, transition) = breaker.try_acquire(later);
    assert_eq!(transition.map(|t| t.to), Some(State::HalfOpen));
    let first = first.expect("a first trial");
    let second = breaker.try_acquire(later).0.expect("a second trial");
    assert!(
        breaker.try_acquire(later).0.is_err(),
        "only two trials at once"
    );
    assert_eq!(breaker.record(first, later, false), None);
    assert_eq!(breaker.state(later), State::HalfOpen);
    let closed = breaker.record(second, later, false);
    assert_eq!(
        closed.map(|t| (t.from, t.to)),
        Some((State::HalfOpen, State::Closed))
    );
    // Closed with a clean slate: the failures before do not count.
    assert_eq!(send(&breaker, later + MS, true), Some(State::Closed));
    assert_eq!(breaker.window(later + MS), (1, 1));
}

#[test]
fn a_failed_trial_opens_the_circuit_again() {
    let breaker = Breaker::new(config());
    for i in 0..3 {
        send(&breaker, i * MS, true);
    }
    let later = 6_000 * MS;
    assert_eq!(send(&breaker, later, true), Some(State::Open));
    assert!(breaker.try_acquire(later + 4_000 * MS).0.is_err());
    assert!(breaker.try_acquire(later + 5_000 * MS).0.is_ok());
}

#[test]
fn a_dropped_trial_frees_its_slot() {
    let breaker = Breaker::new(CircuitBreakerConfig {
        half_open_requests: 1,
        ..config()
    });
    for i in 0..3 {
        send(&breaker, i * MS, true);
    }
    let later = 6_000 * MS;
    let trial = breaker.try_acquire(later).0.expect("a trial");
    assert!(breaker.try_acquire(later).0.is_err());
    drop(trial);
    assert!(
        breaker.try_acquire(later).0.is_ok(),
        "the slot is free again"
    );
}

#[test]
fn a_late_outcome_from_before_the_circuit_opened_is_ignored() {
    let breaker = Breaker::new(config());
    let slow = breaker.try_acquire(0).0.expect("closed lets through");
    for i in 1..4 {
        send(&breaker, i * MS, true);
    }
    assert_eq!(breaker.state(5 * MS), State::Open);
    assert_eq!(breaker.record(slow, 5 * MS, false), None);
    assert_eq!(breaker.state(5 * MS), State::Open);
}

#[test]
fn a_disabled_breaker_never_opens() {
    let breaker = Breaker::new(CircuitBreakerConfig {
        enabled: false,
        ..config()
    });
    for i in 0..100 {
        assert!(breaker.try_acquire(i * MS).0.is_ok());
        let permit = breaker.try_acquire(i * MS).0.expect("permit");
        breaker.record(permit, i * MS, true);
    }
    assert_eq!(breaker.state(100 * MS), State::Closed);
}

fn outlier_config() -> OutlierConfig {
    OutlierConfig {
        enabled: true,
        consecutive_failures: 2,
        base_ejection_time: Duration::from_secs(30),
        max_ejection_time: Duration::from_secs(90),
        max_ejection_percent: 50,
    }
}

#[test]
fn outliers_are_ejected_for_longer_each_time_up_to_the_maximum() {
    let config = outlier_config();
    let outlier = Outlier::default();
    let second = 1_000 * MS;
    let eject = |now| outlier.record(&config, now, true, || 0, 4);
    assert_eq!(eject(0), None);
    assert_eq!(eject(1), Some(Duration::from_secs(30)));
    assert!(outlier.is_ejected(29 * second));
    assert!(!outlier.is_ejected(30 * second + 1));
    assert_eq!(eject(31 * second), None);
    assert_eq!(eject(32 * second), Some(Duration::from_secs(60)));
    eject(100 * second);
    assert_eq!(eject(101 * second), Some(Duration::from_secs(90)), "capped");
    eject(200 * second);
    assert_eq!(eject(201 * second), Some(Duration::from_secs(90)));
}

#[test]
fn ejection_respects_max_ejection_percent_but_always_allows_one() {
    let config = outlier_config();
    let outlier = Outlier::default();
    // 50% of 4 addresses: two may be out; two already are.
    outlier.record(&config, 0, true, || 2, 4);
    assert_eq!(outlier.record(&config, 1, true, || 2, 4), None);
    assert!(!outlier.is_ejected(2));
    // 10% of 2 addresses is less than one: one is allowed anyway.
    let config = OutlierConfig {
        max_ejection_percent: 10,
        ..config
    };
    let outlier = Outlier::default();
    outlier.record(&config, 0, true, || 0, 2);
    assert!(outlier.record(&config, 1, true, || 0, 2).is_some());
}

#[test]
fn a_success_resets_the_count_of_failures() {
    let config = outlier_config();
    let outlier = Outlier::default();
    outlier.record(&config, 0, true, || 0, 2);
    outlier.record(&config, 1, false, || 0, 2);
    assert_eq!(outlier.record(&config, 2, true, || 0, 2), None);
}

fn limit(rate: u32, burst: u32) -> (RateLimit<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let config = RateLimitConfig {
        rate,
        per: Duration::from_secs(1),
        burst,
        key: RateKey::User,
    };
    (RateLimit::with_clock(config, clock.clone()), clock)
}

#[test]
fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
    let (limit, clock) = limit(2, 3);
    for _ in 0..3 {
        assert_eq!(limit.check(Key::User("alice")), Ok(()));
    }
    assert_eq!(
        limit.check(Key::User("alice")),
        Err(Duration::from_millis(500)),
        "one token every 500ms"
    );
    clock.advance(Duration::from_millis(499));
    assert!(limit.check(Key::User("alice")).is_err());
    clock.advance(Duration::from_millis(1));
    assert_eq!(limit.check(Key::User("alice")), Ok(()));
    assert!(limit.check(Key::User("alice")).is_err());
}

#[test]
fn each_key_has_its_own_bucket() {
    let (limit, _clock) = limit(1, 1);
    assert_eq!(limit.check(Key::User("alice")), Ok(()));
    assert!(limit.check(Key::User("alice")).is_err());
    assert_eq!(limit.check(Key::User("bob")), Ok(()));
    assert_eq!(limit.check(Key::Ip([127, 0, 0, 1].into())), Ok(()));
    assert!(limit.check(Key::Global).is_ok());
    assert!(limit.check(Key::Global).is_err());
}

#[test]
fn idle_keys_are_evicted_once_their_bucket_is_full() {
    let (limit, clock) = limit(10, 10);
    for user in 0..1000 {
        assert_eq!(limit.check(Key::User(&format!("user-{user}"))), Ok(()));
    }
    assert_eq!(limit.keys(), 1000);
    // A second later every bucket has refilled; the next check evicts them.
    clock.advance(Duration::from_secs(1));
    assert_eq!(limit.check(Key::User("late")), Ok(()));
    assert_eq!(limit.keys(), 1);
}

// ---- config ---------------------------------------------------------------------------------

const UPSTREAMS: &str = "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:8080\"]\n\
    [upstreams.svc]\naddresses = [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9002\"]\n";

fn parse(text: &str) -> Result<crate::Config, String> {
    crate::Config::parse(
        text,
        Some(std::path::Path::new("fig-proxy.toml")),
        &crate::Overrides::default(),
    )
    .map_err(|err| err.to_string())
}

#[track_caller]
fn check_error(text: &str, expected: &str) {
    match parse(text) {
        Ok(_) => panic!("config was accepted, expected: {expected}"),
        Err(err) => assert_eq!(err, expected),
    }
}

#[test]
fn defaults_turn_the_breaker_on_only_where_there_is_a_fallback() {
    let config = parse(&format!(
        "{UPSTREAMS}[[routes]]\nname = \"a\"\nmatch = {{ prefix = \"/a\" }}\nservice = \"svc\"\n"
    ))
    .expect("valid");
    let svc = config.upstream("svc").expect("svc");
    let monolith = config.upstream("monolith").expect("monolith");
    assert!(svc.circuit_breaker.enabled);
    assert!(!monolith.circuit_breaker.enabled);
    assert_eq!(svc.circuit_breaker.consecutive_failures, 5);
    assert_eq!(svc.circuit_breaker.open_for, Duration::from_secs(10));
    assert!(svc.failure_statuses.contains(503) && !svc.failure_statuses.contains(404));
    assert_eq!(svc.outlier_detection.max_ejection_percent, 10);
    assert_eq!(svc.max_in_flight, None);
    let route = &config.routes[0];
    assert!(route.retry.enabled);
    assert_eq!(route.retry.max_body, 64 << 10);
    assert_eq!(route.rate_limit, None);
}

#[test]
fn protection_keys_are_read() {
    let config = parse(&format!(
        "{UPSTREAMS}[upstreams.monolith.circuit_breaker]\nenabled = true\nerror_rate = \"25%\"\n\
         [[routes]]\nname = \"a\"\nmatch = {{ prefix = \"/a\" }}\nservice = \"svc\"\n\
         retry = {{ methods = [\"get\", \"PUT\"], max_body = \"1KiB\", per_try_timeout = \"2s\" }}\n\
         rate_limit = {{ rate = 10, per = \"1m\", key = \"ip\" }}\n"
    ))
    .expect("valid");
    let monolith = config.upstream("monolith").expect("monolith");
    assert!(monolith.circuit_breaker.enabled);
    assert!((monolith.circuit_breaker.error_rate - 0.25).abs() < 1e-9);
    let route = &config.routes[0];
    assert_eq!(route.retry.methods, [http::Method::GET, http::Method::PUT]);
    assert_eq!(route.retry.max_body, 1024);
    assert_eq!(route.retry.per_try_timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        route.rate_limit,
        Some(RateLimitConfig {
            rate: 10,
            per: Duration::from_secs(60),
            burst: 10,
            key: RateKey::Ip
        })
    );
}

#[test]
fn bad_protection_values_name_their_place() {
    check_error(
        &format!("{UPSTREAMS}failure_statuses = [\"6xx\"]\n"),
        "fig-proxy.toml:5:21: a failure status is a code from 100 to 599 or a class like \"5xx\"",
    );
    check_error(
        &format!("{UPSTREAMS}circuit_breaker = {{ error_rate = 1.5 }}\n"),
        "fig-proxy.toml:5:34: `error_rate` must be a fraction from 0 to 1 (0.5) or a percentage (\"50%\"); 0 turns it off",
    );
    check_error(
        &format!("{UPSTREAMS}circuit_breaker = {{ open_for = \"0s\" }}\n"),
        "fig-proxy.toml:5:32: `open_for` must be longer than 0",
    );
    check_error(
        &format!("{UPSTREAMS}outlier_detection = {{ max_ejection_percent = 101 }}\n"),
        "fig-proxy.toml:5:46: `max_ejection_percent` must be between 0 and 100",
    );
    check_error(
        &format!("{UPSTREAMS}max_in_flight = 0\n"),
        "fig-proxy.toml:5:17: `max_in_flight` must be between 1 and 1000000",
    );
    check_error(
        &format!(
            "{UPSTREAMS}[[routes]]\nname = \"a\"\nmatch = {{ prefix = \"/a\" }}\nservice = \"svc\"\nrate_limit = {{ rate = 0 }}\n"
        ),
        "fig-proxy.toml:9:23: `rate` must be between 1 and 1000000000",
    );
    check_error(
        &format!(
            "{UPSTREAMS}[[routes]]\nname = \"a\"\nmatch = {{ prefix = \"/a\" }}\nservice = \"svc\"\nrate_limit = {{ rate = 1, key = \"tenant\" }}\n"
        ),
        "fig-proxy.toml:9:32: unknown variant `tenant`, expected one of `user`, `ip`, `global`",
    );
    check_error(
        &format!(
            "{UPSTREAMS}[[routes]]\nname = \"a\"\nmatch = {{ prefix = \"/a\" }}\nservice = \"svc\"\nretry = {{ methods = [\"G T\"] }}\n"
        ),
        "fig-proxy.toml:9:22: invalid method `G T`",
    );
}

// ---- breakers across reloads, in-flight caps ------------------------------------------------

#[test]
fn a_reload_with_the_same_breaker_settings_keeps_the_breaker() {
    let registry = crate::protection::guard::GuardMetrics::default();
    let first = registry.upstream("svc", &config());
    for i in 0..3 {
        send(&first.breaker, i * MS, true);
    }
    let same = registry.upstream("svc", &config());
    assert!(std::sync::Arc::ptr_eq(&first, &same));
    assert_eq!(same.breaker.state(5 * MS), State::Open);
    let changed = registry.upstream(
        "svc",
        &CircuitBreakerConfig {
            open_for: Duration::from_secs(1),
            ..config()
        },
    );
    assert_eq!(changed.breaker.state(5 * MS), State::Closed);
    assert!(std::sync::Arc::ptr_eq(&first.counters, &changed.counters));
}

#[tokio::test]
async fn the_in_flight_cap_waits_up_to_its_queue_timeout_then_sheds() {
    let cap = crate::protection::limit::Concurrency::new(1, Duration::from_millis(100));
    let held = cap.acquire().await.expect("a first slot");
    assert_eq!(cap.in_flight(), 1);
    assert!(cap.acquire().await.is_none(), "shed after the wait");
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
    });
    assert!(
        cap.acquire().await.is_some(),
        "a slot freed within the wait"
    );
    release.await.expect("the releasing task");
    let no_wait = crate::protection::limit::Concurrency::new(1, Duration::ZERO);
    let _held = no_wait.acquire().await;
    assert!(no_wait.acquire().await.is_none());
}
