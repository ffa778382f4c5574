//! The request-path protection added per request: the circuit breaker, outlier ejection, the
//! rate-limit bucket, and the copy of a request head kept for the fallback retry.
//!
//! `cargo bench -p strangler-proxy --bench guard`. Each figure is the cost of one request's
//! worth of that step, on one thread (no contention).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use strangler_proxy::breaker::{Breaker, Outlier, nanos};
use strangler_proxy::config::{CircuitBreakerConfig, OutlierConfig, RateKey, RateLimitConfig};
use strangler_proxy::limit::{Key, RateLimit};

fn breaker_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        enabled: true,
        consecutive_failures: 5,
        error_rate: 0.5,
        min_requests: 20,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(10),
        half_open_requests: 3,
    }
}

fn bench(c: &mut Criterion) {
    let breaker = Breaker::new(breaker_config());
    c.bench_function("breaker acquire + record success (closed)", |b| {
        b.iter(|| {
            let now = nanos(Instant::now());
            let (permit, _) = breaker.try_acquire(black_box(now));
            if let Ok(permit) = permit {
                black_box(breaker.record(permit, now, false));
            }
        });
    });
    let off = Breaker::new(CircuitBreakerConfig {
        enabled: false,
        ..breaker_config()
    });
    c.bench_function("breaker acquire + record (off)", |b| {
        b.iter(|| {
            let (permit, _) = off.try_acquire(black_box(0));
            if let Ok(permit) = permit {
                black_box(off.record(permit, 0, false));
            }
        });
    });
    let outlier = Outlier::default();
    let outlier_config = OutlierConfig {
        enabled: true,
        consecutive_failures: 5,
        base_ejection_time: Duration::from_secs(30),
        max_ejection_time: Duration::from_secs(300),
        max_ejection_percent: 10,
    };
    c.bench_function("outlier record success", |b| {
        b.iter(|| black_box(outlier.record(&outlier_config, black_box(1), false, || 0, 2)));
    });
    let limit = |key| {
        RateLimit::new(RateLimitConfig {
            rate: 1_000_000_000,
            per: Duration::from_secs(1),
            burst: 1_000_000_000,
            key,
        })
    };
    let global = limit(RateKey::Global);
    c.bench_function("rate limit check (global)", |b| {
        b.iter(|| black_box(global.check(Key::Global)));
    });
    let users = limit(RateKey::User);
    let names: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let mut next = 0;
    c.bench_function("rate limit check (per user, 1000 users)", |b| {
        b.iter(|| {
            next = (next + 1) % names.len();
            black_box(users.check(Key::User(&names[next])))
        });
    });
    let mut request = http::Request::get("/payments/7?x=1")
        .header("host", "shop.example.com")
        .header("user-agent", "bench/1.0")
        .header("accept", "application/json")
        .header("x-user-id", "alice")
        .header("cookie", "session=abc; theme=dark")
        .body(())
        .expect("a request");
    request
        .headers_mut()
        .insert("x-forwarded-for", "10.0.0.1".parse().expect("value"));
    let (parts, ()) = request.into_parts();
    c.bench_function("request head copy for the retry (6 headers)", |b| {
        b.iter(|| {
            let mut copy = http::Request::new(());
            *copy.method_mut() = parts.method.clone();
            *copy.uri_mut() = parts.uri.clone();
            *copy.headers_mut() = parts.headers.clone();
            black_box(copy)
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
