//! The per-request decision: route matching, flag context, flag evaluation.
//!
//! `cargo bench -p strangler-proxy --bench route`. The proxy's whole cost per request is measured
//! by the loopback load test in `../shared/bench/proxy/`; this isolates the part Fig adds.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use strangler_proxy::config::{Config, Overrides};
use strangler_proxy::context::ContextBuilder;
use strangler_proxy::metrics::Metrics;
use strangler_proxy::route::{RouteTable, route};
use strangler_proxy::state::Pins;

const CONFIG: &str = r#"
[upstreams.monolith]
addresses = ["http://127.0.0.1:1"]
[upstreams.svc]
addresses = ["http://127.0.0.1:2"]
[[routes]]
name = "orders"
match = { pattern = "/orders/*/items", methods = ["GET"] }
service = "svc"
[[routes]]
name = "members"
match = { prefix = "/members" }
service = "svc"
flag = "members"
[[routes]]
name = "payments"
match = { pattern = "/payments/**" }
service = "svc"
flag = "payments-service"
"#;

const FLAGS: &str = r#"{"version": 1, "features": [{"name": "payments-service", "enabled": true,
  "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "payments"}}]}]}"#;

fn bench(c: &mut Criterion) {
    let config = match Config::parse(CONFIG, None, &Overrides::default()) {
        Ok(config) => config,
        Err(err) => panic!("{err}"),
    };
    let pins = Pins::open(None).unwrap_or_else(|err| panic!("{err}"));
    let table = RouteTable::compile(&config, &pins, &Metrics::default());
    let context = ContextBuilder::new(config.context.clone());
    let features = feature_flags::parse_features(std::path::Path::new("flags.json"), FLAGS)
        .unwrap_or_else(|err| panic!("{err}"));
    let flags = feature_flags::Flags::from_features(features);
    let (flagged, ()) = Request::get("/payments/42/refund")
        .header("x-user-id", "user-1234")
        .body(())
        .unwrap_or_else(|err| panic!("{err}"))
        .into_parts();
    let (unmatched, ()) = Request::get("/catalog/7")
        .body(())
        .unwrap_or_else(|err| panic!("{err}"))
        .into_parts();
    c.bench_function("route/flagged-gradual-rollout", |b| {
        b.iter(|| {
            route(black_box(&flagged), &table, &flags, || {
                context.build(&flagged, [127, 0, 0, 1].into())
            })
        })
    });
    c.bench_function("route/unmatched", |b| {
        b.iter(|| {
            route(black_box(&unmatched), &table, &flags, || {
                context.build(&unmatched, [127, 0, 0, 1].into())
            })
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
