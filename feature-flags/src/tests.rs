//! Unit tests of evaluation, editing and the file format.

use std::path::Path;

use crate::{Context, Flags, Reason, file};

#[track_caller]
fn flags(json: &str) -> Flags {
    let features = file::parse_features(Path::new("test.json"), json).expect("valid flags");
    Flags::from_features(features)
}

#[test]
fn unknown_flag_is_off() {
    let flags = flags(r#"{"version":2,"features":[]}"#);
    let eval = flags.evaluate("nope", &Context::default());
    assert!(!eval.enabled);
    assert_eq!(eval.reason, Reason::NotFound);
    assert_eq!(eval.variant.name, "disabled");
}

#[test]
fn reason_names_the_deciding_strategy() {
    let flags = flags(
        r#"{"version":2,"features":[{"name":"f","enabled":true,"strategies":[
            {"name":"flexibleRollout","parameters":{"rollout":"0","stickiness":"default","groupId":"f"}},
            {"name":"remoteAddress","parameters":{"IPs":"10.0.0.0/8"}}]}]}"#,
    );
    let inside = Context {
        remote_address: Some("10.1.2.3".into()),
        ..Context::default()
    };
    assert_eq!(
        flags.evaluate("f", &inside).reason,
        Reason::Strategy {
            index: 1,
            name: "remoteAddress".into()
        }
    );
    let outside = Context {
        remote_address: Some("192.168.1.1".into()),
        ..Context::default()
    };
    assert_eq!(
        flags.evaluate("f", &outside).reason,
        Reason::NoStrategyMatched
    );
}

#[test]
fn parse_error_has_line_and_column() {
    let err = file::parse_features(
        Path::new("flags.json"),
        "{\n  \"version\": 2,\n  \"features\": [,]\n}",
    )
    .expect_err("bad json");
    let msg = err.to_string();
    assert!(msg.starts_with("flags.json:3:16: expected value"), "{msg}");
}

#[test]
fn uncompilable_constraint_is_refused() {
    let err = file::parse_features(
        Path::new("flags.json"),
        r#"{"version":2,"features":[{"name":"f","enabled":true,"strategies":[{"name":"default",
           "constraints":[{"contextName":"userId","operator":"NUM_GT","value":"abc"}]}]}]}"#,
    )
    .expect_err("bad number");
    assert!(err.to_string().contains("flag `f`"), "{err}");
}
