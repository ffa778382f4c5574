//! Route matching and the decision, as data.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::Request;

use crate::decision::flags::{FlagSource, NoFlags, StaticFlags};
use crate::decision::route::{Reason, RouteTable, route};
use crate::decision::state::Pins;
use crate::ops::metrics::Metrics;

use super::support::config;

/// Routes `method path` (with `headers`) through a table of one route matching `matcher`, whose
/// flag is on; returns whether the route took it.
#[track_caller]
fn check(matcher: &str, method: &str, uri: &str, headers: &[(&str, &str)], expected: bool) {
    let text = format!(
        "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:1\"]\n[upstreams.svc]\naddresses = [\"http://127.0.0.1:2\"]\n\
         [[routes]]\nname = \"r\"\nmatch = {matcher}\nservice = \"svc\"\n"
    );
    let config = config(&text);
    let table = RouteTable::compile(&config, &Pins::open(None).unwrap(), &Metrics::default());
    let mut builder = Request::builder().method(method).uri(uri);
    for (key, value) in headers {
        builder = builder.header(*key, *value);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    let decision = route(&parts, &table, &NoFlags, || {
        unreachable!("no flag, no context")
    });
    assert_eq!(
        decision.route.is_some(),
        expected,
        "{matcher} vs {method} {uri}"
    );
}

#[test]
fn prefix_is_segment_aware() {
    let m = r#"{ prefix = "/payments" }"#;
    check(m, "GET", "/payments", &[], true);
    check(m, "GET", "/payments/1", &[], true);
    check(m, "GET", "/payments?x=1", &[], true);
    check(m, "GET", "/paymentsx", &[], false);
    check(m, "GET", "/pay", &[], false);
    check(r#"{ prefix = "/" }"#, "GET", "/anything", &[], true);
}

#[test]
fn exact() {
    let m = r#"{ exact = "/healthz" }"#;
    check(m, "GET", "/healthz", &[], true);
    check(m, "GET", "/healthz/", &[], false);
    check(m, "GET", "/healthz?full=1", &[], true);
}

#[test]
fn patterns() {
    let any = r#"{ pattern = "/payments/**" }"#;
    check(any, "GET", "/payments", &[], true);
    check(any, "GET", "/payments/", &[], true);
    check(any, "GET", "/payments/42", &[], true);
    check(any, "GET", "/payments/42/refund", &[], true);
    check(any, "GET", "/paymentsx/1", &[], false);
    check(any, "GET", "/orders/1", &[], false);
    let one = r#"{ pattern = "/orders/*/items" }"#;
    check(one, "GET", "/orders/7/items", &[], true);
    check(one, "GET", "/orders/7/items/", &[], false);
    check(one, "GET", "/orders//items", &[], false);
    check(one, "GET", "/orders/7/8/items", &[], false);
    check(one, "GET", "/orders/7", &[], false);
    let middle = r#"{ pattern = "/a/**/z" }"#;
    check(middle, "GET", "/a/z", &[], true);
    check(middle, "GET", "/a/b/c/z", &[], true);
    check(middle, "GET", "/a/b/c", &[], false);
}

#[test]
fn methods_host_headers() {
    let m = r#"{ prefix = "/", methods = ["POST"] }"#;
    check(m, "POST", "/x", &[], true);
    check(m, "GET", "/x", &[], false);
    let m = r#"{ prefix = "/", host = "shop.example.com" }"#;
    check(m, "GET", "/x", &[("host", "shop.example.com:8080")], true);
    check(m, "GET", "/x", &[("host", "SHOP.example.com")], true);
    check(m, "GET", "/x", &[("host", "other.example.com")], false);
    check(m, "GET", "http://shop.example.com/x", &[], true);
    let m = r#"{ prefix = "/", host = "*.example.com" }"#;
    check(m, "GET", "/x", &[("host", "a.example.com")], true);
    check(m, "GET", "/x", &[("host", "example.com")], false);
    let m = r#"{ prefix = "/", headers = { "x-beta" = "1", "x-tenant" = "*" } }"#;
    check(
        m,
        "GET",
        "/x",
        &[("x-beta", "1"), ("x-tenant", "acme")],
        true,
    );
    check(
        m,
        "GET",
        "/x",
        &[("x-beta", "2"), ("x-tenant", "acme")],
        false,
    );
    check(m, "GET", "/x", &[("x-beta", "1")], false);
}

/// The decision for one request to `/p/1` with the given flags and pin.
fn decide(flags: &dyn FlagSource, pinned: bool) -> (String, Reason) {
    let config = config(
        "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:1\"]\n[upstreams.svc]\naddresses = [\"http://127.0.0.1:2\"]\n\
         [[routes]]\nname = \"p\"\nmatch = { prefix = \"/p\" }\nservice = \"svc\"\nflag = \"p-flag\"\n",
    );
    let pins = Pins::open(None).unwrap();
    pins.set("p", pinned).unwrap();
    let table = RouteTable::compile(&config, &pins, &Metrics::default());
    let (parts, ()) = Request::get("/p/1").body(()).unwrap().into_parts();
    let context = crate::decision::context::ContextBuilder::new(config.context.clone());
    let decision = route(&parts, &table, flags, || {
        context.build(&parts, [127, 0, 0, 1].into())
    });
    assert_eq!(
        table.routes()[0].last_reason.load(Ordering::Relaxed),
        decision.reason as u8
    );
    (
        config.upstreams[decision.upstream].name.clone(),
        decision.reason,
    )
}

struct NotReady;

impl FlagSource for NotReady {
    fn is_enabled(&self, _: &str, _: crate::decision::flags::ContextRef<'_>) -> bool {
        true
    }

    fn is_ready(&self) -> bool {
        false
    }
}

#[test]
fn decision() {
    let on = StaticFlags {
        enabled: vec!["p-flag".to_owned()],
    };
    assert_eq!(decide(&on, false), ("svc".to_owned(), Reason::FlagOn));
    assert_eq!(
        decide(&NoFlags, false),
        ("monolith".to_owned(), Reason::FlagOff)
    );
    assert_eq!(decide(&on, true), ("monolith".to_owned(), Reason::Pinned));
    assert_eq!(
        decide(&NotReady, false),
        ("monolith".to_owned(), Reason::FlagsNotReady)
    );
    let _: Arc<dyn FlagSource> = Arc::new(on);
}

#[test]
fn a_flag_that_is_the_same_for_everyone_needs_no_context() {
    let flags = feature_flags::Flags::from_features(
        serde_json::from_value(serde_json::json!({
            "version": 2,
            "features": [
                {"name": "all", "enabled": true, "strategies": [{"name": "default"}]},
                {"name": "half", "enabled": true, "strategies": [{
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "half"}
                }]}
            ]
        }))
        .unwrap(),
    );
    let config = config(
        "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:1\"]\n[upstreams.svc]\naddresses = [\"http://127.0.0.1:2\"]\n\
         [[routes]]\nname = \"all\"\nmatch = { prefix = \"/all\" }\nservice = \"svc\"\nflag = \"all\"\n\
         [[routes]]\nname = \"half\"\nmatch = { prefix = \"/half\" }\nservice = \"svc\"\nflag = \"half\"\n",
    );
    let table = RouteTable::compile(&config, &Pins::open(None).unwrap(), &Metrics::default());
    let context = crate::decision::context::ContextBuilder::new(config.context.clone());
    let (parts, ()) = Request::get("/all/1").body(()).unwrap().into_parts();
    let decision = route(&parts, &table, &flags, || {
        unreachable!("a flag on for everyone is decided without a context")
    });
    assert_eq!(decision.reason, Reason::FlagOn);
    let (parts, ()) = Request::get("/half/1")
        .header("x-user-id", "u1")
        .body(())
        .unwrap()
        .into_parts();
    let mut built = 0;
    let _ = route(&parts, &table, &flags, || {
        built += 1;
        context.build(&parts, [127, 0, 0, 1].into())
    });
    assert_eq!(
        built, 1,
        "a 50% rollout is decided on the request's context"
    );
}

#[test]
fn unmatched_goes_to_default() {
    let config = config("[upstreams.monolith]\naddresses = [\"http://127.0.0.1:1\"]\n");
    let table = RouteTable::compile(&config, &Pins::open(None).unwrap(), &Metrics::default());
    let (parts, ()) = Request::get("/x").body(()).unwrap().into_parts();
    let decision = route(&parts, &table, &NoFlags, || unreachable!());
    assert_eq!((decision.route, decision.reason), (None, Reason::NoRoute));
}
