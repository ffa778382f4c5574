//! How fast flags evaluate and how soon a change is visible.
//!
//! - `evaluate/*`: one flag of a 1,000-flag snapshot, each a 50% `flexibleRollout` with one
//!   constraint, the shape the proxy evaluates per request; plus a `default`-strategy flag with
//!   the same constraint, which needs no hashing; plus a 100% `flexibleRollout` with no
//!   constraint ("on for everyone", the proxy's usual flag), which a snapshot answers as a
//!   constant without the engine. Before measuring, each case counts heap allocations per
//!   evaluation with a counting global allocator and prints them.
//! - `change_visible/file`: a `FileStore` write until a watching [`Flags`] sees it (woken by the
//!   operating system's notification); `change_visible/file-poll`: the same with polling alone
//!   (`FileConfig::notify = false`, the 200 ms poll), measured in the same run.
//! - `change_visible/unleash`: an Admin API change until a [`Flags`] polling every second sees
//!   it; needs `UNLEASH_URL`, `UNLEASH_CLIENT_TOKEN`, `UNLEASH_ADMIN_TOKEN` and is skipped,
//!   loudly, without them.

use std::alloc::System;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use feature_flags::{
    ClientFeatures, Context, ContextRef, FileConfig, FileStore, Flags, StoreConfig, UnleashAdmin,
    UnleashConfig,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const N_FLAGS: usize = 1_000;

/// 1,000 flags; flag `i` is a `rollout`% rollout (or `default` strategy), with
/// `country IN [NO, SE]` when `constrained`.
fn snapshot(strategy: &str, rollout: u32, constrained: bool) -> ClientFeatures {
    let constraints = if constrained {
        serde_json::json!([{"contextName": "country", "operator": "IN", "values": ["NO", "SE"]}])
    } else {
        serde_json::json!([])
    };
    let features: Vec<serde_json::Value> = (0..N_FLAGS)
        .map(|idx| {
            serde_json::json!({
                "name": format!("flag-{idx}"),
                "enabled": true,
                "strategies": [{
                    "name": strategy,
                    "parameters": {"rollout": rollout.to_string(), "stickiness": "default", "groupId": format!("flag-{idx}")},
                    "constraints": constraints
                }]
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({"version": 2, "features": features}))
        .expect("valid snapshot")
}

fn allocations_per_call(n_calls: u64, mut f: impl FnMut()) -> f64 {
    let region = Region::new(GLOBAL);
    for _ in 0..n_calls {
        f();
    }
    region.change().allocations as f64 / n_calls as f64
}

fn evaluate(c: &mut Criterion) {
    let properties = HashMap::from([("country".to_owned(), "NO".to_owned())]);
    let ctx = Context {
        user_id: Some("user-57".to_owned()),
        properties,
        ..Context::default()
    };
    let mut group = c.benchmark_group("evaluate");
    for (label, strategy, rollout, constrained) in [
        ("flexible_rollout_50", "flexibleRollout", 50, true),
        ("default_strategy", "default", 50, true),
        (
            "flexible_rollout_100_unconstrained",
            "flexibleRollout",
            100,
            false,
        ),
    ] {
        let flags = Flags::from_features(snapshot(strategy, rollout, constrained));
        let borrowed = ContextRef::from(&ctx);
        assert!(flags.list().len() == N_FLAGS);
        let allocs = allocations_per_call(10_000, || {
            black_box(flags.is_enabled(black_box("flag-500"), borrowed));
        });
        println!(
            "evaluate/{label}: {allocs:.2} heap allocations per is_enabled (1,000-flag snapshot)"
        );
        let allocs = allocations_per_call(10_000, || {
            black_box(flags.variant(black_box("flag-500"), borrowed));
        });
        println!("evaluate/{label}: {allocs:.2} heap allocations per variant");
        group.bench_function(format!("{label}/is_enabled"), |b| {
            b.iter(|| flags.is_enabled(black_box("flag-500"), borrowed))
        });
        group.bench_function(format!("{label}/variant"), |b| {
            b.iter(|| flags.variant(black_box("flag-500"), borrowed))
        });
        group.bench_function(format!("{label}/evaluate"), |b| {
            b.iter(|| flags.evaluate(black_box("flag-500"), borrowed))
        });
    }
    group.finish();
}

/// Polls every millisecond (at most 10 s) until `cond` holds; returns the time it took.
fn wait_until(mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    start.elapsed()
}

fn change_visible(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("change_visible");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));

    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = Context::default();
    for (name, notify) in [("file", true), ("file-poll", false)] {
        let dir = tempfile::tempdir_in(dir.path()).expect("tempdir");
        let path = dir.path().join("flags.json");
        let store = FileStore::new(&path, "bench");
        store.create("checkout", None).expect("create");
        let mut config = FileConfig::new(&path);
        config.notify = notify;
        let flags = runtime
            .block_on(Flags::open(StoreConfig::File(config)))
            .expect("open");
        let mut on = false;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    on = !on;
                    let start = Instant::now();
                    if on {
                        store.enable("checkout")
                    } else {
                        store.disable("checkout")
                    }
                    .expect("write");
                    wait_until(|| flags.is_enabled("checkout", &ctx) == on);
                    total += start.elapsed();
                }
                total
            })
        });
    }

    let var = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    match (
        var("UNLEASH_URL"),
        var("UNLEASH_CLIENT_TOKEN"),
        var("UNLEASH_ADMIN_TOKEN"),
    ) {
        (Some(url), Some(client_token), Some(admin_token)) => {
            let admin = UnleashAdmin::new(&url, &admin_token, None, None).expect("admin");
            // Unique across runs: archived names stay taken on the server.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let name = format!("fig-bench-{nanos}");
            runtime
                .block_on(admin.create(&name, Some("benchmark")))
                .expect("create");
            let mut config = UnleashConfig::new(url, client_token);
            config.refresh_interval = Duration::from_secs(1);
            config.backup_path = Some(dir.path().join("backup.json"));
            let flags = runtime
                .block_on(Flags::open(StoreConfig::Unleash(config)))
                .expect("open");
            let mut on = false;
            group.measurement_time(Duration::from_secs(20));
            group.bench_function("unleash_refresh_1s", |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        on = !on;
                        let start = Instant::now();
                        let change = if on {
                            runtime.block_on(admin.enable(&name))
                        } else {
                            runtime.block_on(admin.disable(&name))
                        };
                        change.expect("admin change");
                        wait_until(|| flags.is_enabled(&name, &ctx) == on);
                        total += start.elapsed();
                    }
                    total
                })
            });
            let _ = runtime.block_on(admin.delete(&name));
        }
        _ => eprintln!(
            "\n*** SKIPPED change_visible/unleash: set UNLEASH_URL, UNLEASH_CLIENT_TOKEN and UNLEASH_ADMIN_TOKEN ***\n"
        ),
    }
    group.finish();
}

criterion_group!(benches, evaluate, change_visible);
criterion_main!(benches);
