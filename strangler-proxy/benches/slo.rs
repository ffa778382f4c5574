//! What an SLO costs on the request path: recording one outcome in a route's window, and the
//! checker's look at a window (every 250 ms per route, off the request path).
//!
//! `cargo bench -p strangler-proxy --bench slo`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use strangler_proxy::slo::{SloConfig, Window, decide};

fn bench(c: &mut Criterion) {
    let config = SloConfig {
        max_error_rate: Some(0.05),
        max_p99: Some(Duration::from_millis(500)),
        window: Duration::from_secs(30),
        min_requests: 20,
        turn_off_flag: false,
    };
    let window = Window::new(config, Instant::now());
    let latency = Duration::from_micros(850);
    c.bench_function("slo/record", |b| {
        b.iter(|| window.record(black_box(Instant::now()), black_box(latency), false));
    });
    // The request path already has `now` (it timed the attempt): the record alone.
    let now = Instant::now();
    c.bench_function("slo/record-given-now", |b| {
        b.iter(|| window.record(black_box(now), black_box(latency), false));
    });
    c.bench_function("clock/instant-now", |b| b.iter(Instant::now));
    // Two threads recording into one window at once, as two runtime workers do.
    c.bench_function("slo/record-2-threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| {
                        for _ in 0..iters {
                            window.record(black_box(Instant::now()), black_box(latency), false);
                        }
                    });
                }
            });
            start.elapsed() / 2
        });
    });
    c.bench_function("slo/check", |b| {
        b.iter(|| decide(window.config(), &window.stats(black_box(Instant::now()))));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
