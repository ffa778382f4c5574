//! The constant answers against yggdrasil's own: per rule, over generated flags, and live.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use unleash_types::client_features::ClientFeatures;
use unleash_yggdrasil::EngineState;

use crate::context::ContextRef;
use crate::snapshot::{Defaults, Snapshot, enrich};
use crate::{FileConfig, FileStore, Flags, StoreConfig};

/// Segment 1 constrains `country IN [NO]`, segment 2 has no constraints; 99 does not exist.
fn segments() -> Value {
    json!([
        {"id": 1, "constraints": [{"contextName": "country", "operator": "IN", "values": ["NO"]}]},
        {"id": 2, "constraints": []}
    ])
}

fn features(flags: Vec<Value>) -> ClientFeatures {
    serde_json::from_value(json!({"version": 2, "features": flags, "segments": segments()}))
        .expect("valid client features")
}

/// The constant the snapshot computes for flag `f` with these fields (merged into the flag).
#[track_caller]
fn check(flag: Value, expected: Option<bool>) {
    let mut feature = json!({"name": "f", "enabled": true});
    for (key, value) in flag.as_object().expect("an object") {
        feature[key] = value.clone();
    }
    let (snapshot, _) = Snapshot::compile(features(vec![feature.clone()]));
    assert_eq!(snapshot.constant("f"), expected, "{feature}");
}

fn rollout(percent: &str, stickiness: Option<&str>) -> Value {
    let mut parameters = json!({"rollout": percent, "groupId": "f"});
    if let Some(stickiness) = stickiness {
        parameters["stickiness"] = json!(stickiness);
    }
    json!({"name": "flexibleRollout", "parameters": parameters})
}

#[test]
fn disabled_is_false_whatever_else() {
    check(json!({"enabled": false}), Some(false));
    let deps = json!([{"feature": "parent"}]);
    check(
        json!({"enabled": false, "dependencies": deps, "strategies": [{"name": "default"}]}),
        Some(false),
    );
}

#[test]
fn no_strategies_is_true() {
    check(json!({"strategies": []}), Some(true));
    check(json!({}), Some(true));
    check(json!({"strategies": [], "dependencies": []}), Some(true));
}

#[test]
fn dependencies_go_to_the_engine() {
    let deps = json!([{"feature": "parent"}]);
    check(json!({"strategies": [], "dependencies": deps}), None);
    check(
        json!({"strategies": [{"name": "default"}], "dependencies": deps}),
        None,
    );
}

#[test]
fn unconditional_strategies_are_true() {
    check(json!({"strategies": [{"name": "default"}]}), Some(true));
    check(json!({"strategies": [rollout("100", None)]}), Some(true));
    check(
        json!({"strategies": [rollout("100", Some("default"))]}),
        Some(true),
    );
    check(
        json!({"strategies": [rollout("100", Some("random"))]}),
        Some(true),
    );
    let random = json!({"name": "gradualRolloutRandom", "parameters": {"percentage": "100"}});
    check(json!({"strategies": [random]}), Some(true));
    let empty = json!({"name": "default", "constraints": [], "segments": []});
    check(json!({"strategies": [empty]}), Some(true));
}

#[test]
fn context_dependent_strategies_go_to_the_engine() {
    for percent in ["99", "0", "150", " 100", "100.0", "abc"] {
        check(json!({"strategies": [rollout(percent, None)]}), None);
    }
    // Sticky on one field: off for a context without it, even at 100%.
    for stickiness in ["userId", "sessionId", "tenant"] {
        check(
            json!({"strategies": [rollout("100", Some(stickiness))]}),
            None,
        );
    }
    for name in ["gradualRolloutUserId", "gradualRolloutSessionId"] {
        let strategy = json!({"name": name, "parameters": {"percentage": "100", "groupId": "f"}});
        check(json!({"strategies": [strategy]}), None);
    }
    let users = json!({"name": "userWithId", "parameters": {"userIds": "1,2"}});
    check(json!({"strategies": [users]}), None);
    check(json!({"strategies": [{"name": "myCustom"}]}), None);
}

#[test]
fn constraints_and_segments_go_to_the_engine() {
    let constraint = json!([{"contextName": "country", "operator": "IN", "values": ["NO"]}]);
    check(
        json!({"strategies": [{"name": "default", "constraints": constraint}]}),
        None,
    );
    // A segment without constraints is still left alone: only empty lists count as none.
    check(
        json!({"strategies": [{"name": "default", "segments": [2]}]}),
        None,
    );
}

#[test]
fn a_strategy_marked_disabled_counts_as_yggdrasil_sees_it() {
    // The client API never sends disabled strategies; in a hand-written file the field is
    // dropped by unleash-types, so yggdrasil evaluates the strategy like any other.
    let marked = json!({"name": "default", "disabled": true});
    check(json!({"strategies": [marked]}), Some(true));
}

#[test]
fn one_unconditional_strategy_among_others_is_true() {
    let users = json!({"name": "userWithId", "parameters": {"userIds": "1,2"}});
    check(
        json!({"strategies": [users, rollout("100", None), {"name": "myCustom"}]}),
        Some(true),
    );
}

#[test]
fn a_rule_yggdrasil_cannot_compile_is_not_folded() {
    // yggdrasil turns the whole flag off when one strategy fails to compile.
    let missing_segment = json!({"name": "default", "constraints": [], "segments": [99]});
    check(
        json!({"strategies": [{"name": "default"}, missing_segment]}),
        None,
    );
    let bad_number = json!({"name": "default",
        "constraints": [{"contextName": "n", "operator": "NUM_GT", "value": "abc"}]});
    check(
        json!({"strategies": [{"name": "default"}, bad_number]}),
        None,
    );
    let quote =
        json!({"name": "flexibleRollout", "parameters": {"rollout": "100", "groupId": "a\"b"}});
    check(json!({"strategies": [quote]}), None);
}

/// Every strategy shape the rules distinguish. Rollouts that can fall back to a random
/// stickiness use only 0 and 100, so that every answer is deterministic.
fn strategy_shapes() -> Vec<Value> {
    let mut res = vec![json!({"name": "default"})];
    for stickiness in [None, Some("default"), Some("random")] {
        for percent in ["0", "100"] {
            res.push(rollout(percent, stickiness));
        }
    }
    for stickiness in ["userId", "sessionId", "tenant"] {
        for percent in ["0", "99", "100"] {
            res.push(rollout(percent, Some(stickiness)));
        }
    }
    for percent in ["150", " 100", "abc"] {
        res.push(rollout(percent, None));
    }
    res.push(json!({"name": "flexibleRollout", "parameters": {"rollout": "100"}}));
    for name in ["gradualRolloutUserId", "gradualRolloutSessionId"] {
        for percent in ["0", "99", "100"] {
            res.push(json!({"name": name, "parameters": {"percentage": percent, "groupId": "g"}}));
        }
        res.push(json!({"name": name, "parameters": {"percentage": "100"}}));
    }
    for percent in ["0", "100"] {
        res.push(json!({"name": "gradualRolloutRandom", "parameters": {"percentage": percent}}));
    }
    res.push(json!({"name": "userWithId", "parameters": {"userIds": "u1, 42"}}));
    res.push(json!({"name": "remoteAddress", "parameters": {"IPs": "10.0.0.0/8"}}));
    res.push(json!({"name": "myCustom", "parameters": {}}));
    res
}

/// The ways a strategy can be narrowed: nothing, empty lists, a constraint, segments
/// (matching, empty, missing), a constraint yggdrasil cannot compile, and the Admin API's
/// `disabled` (which unleash-types drops, so yggdrasil evaluates the strategy anyway).
fn narrowed(strategy: &Value) -> Vec<Value> {
    let country = json!([{"contextName": "country", "operator": "IN", "values": ["NO"]}]);
    let bad = json!([{"contextName": "n", "operator": "NUM_GT", "value": "abc"}]);
    let mut res = vec![strategy.clone()];
    for (key, value) in [
        ("constraints", json!([])),
        ("segments", json!([])),
        ("constraints", country),
        ("segments", json!([1])),
        ("segments", json!([2])),
        ("segments", json!([99])),
        ("constraints", bad),
        ("disabled", json!(true)),
    ] {
        let mut narrowed = strategy.clone();
        narrowed[key] = value;
        res.push(narrowed);
    }
    res
}

/// Flags of every shape: each narrowed strategy alone, on and off, with and without
/// dependencies; pairs of strategies; no strategies; plus the parents.
fn generated_flags() -> Vec<Value> {
    let mut strategy_lists: Vec<Value> = vec![json!([]), Value::Null];
    let shapes = strategy_shapes();
    for shape in &shapes {
        for strategy in narrowed(shape) {
            strategy_lists.push(json!([strategy]));
        }
    }
    let country = json!([{"contextName": "country", "operator": "IN", "values": ["NO"]}]);
    let mut constrained_default = json!({"name": "default"});
    constrained_default["constraints"] = country;
    let mixers = [
        json!({"name": "userWithId", "parameters": {"userIds": "u1"}}),
        constrained_default,
        json!({"name": "default", "segments": [99]}),
        rollout("0", None),
    ];
    for shape in &shapes {
        for mixer in &mixers {
            strategy_lists.push(json!([mixer, shape]));
            strategy_lists.push(json!([shape, mixer]));
        }
    }
    let dependencies = [
        Value::Null,
        json!([]),
        json!([{"feature": "parent-on"}]),
        json!([{"feature": "parent-off", "enabled": false}]),
        json!([{"feature": "parent-users"}]),
        json!([{"feature": "missing-parent"}]),
    ];
    let mut res = vec![
        json!({"name": "parent-on", "enabled": true, "strategies": []}),
        json!({"name": "parent-off", "enabled": false, "strategies": []}),
        json!({"name": "parent-users", "enabled": true,
               "strategies": [{"name": "userWithId", "parameters": {"userIds": "u1"}}]}),
    ];
    for (list_idx, strategies) in strategy_lists.iter().enumerate() {
        for enabled in [true, false] {
            for (dep_idx, deps) in dependencies.iter().enumerate() {
                // Pairs only need the plain case; singles get every combination.
                if list_idx >= 2 + shapes.len() * 9 && (!enabled || dep_idx > 1) {
                    continue;
                }
                let mut flag = json!({
                    "name": format!("flag-{list_idx}-{enabled}-{dep_idx}"),
                    "enabled": enabled,
                });
                if !strategies.is_null() {
                    flag["strategies"] = strategies.clone();
                }
                if !deps.is_null() {
                    flag["dependencies"] = deps.clone();
                }
                res.push(flag);
            }
        }
    }
    res
}

/// 48 contexts: with and without each of user id, session id, address, app name, properties.
fn contexts(properties: &HashMap<String, String>) -> Vec<ContextRef<'_>> {
    let mut res = Vec::new();
    for user_id in [None, Some("u1"), Some("user-57")] {
        for session_id in [None, Some("s1")] {
            for remote_address in [None, Some("10.1.2.3")] {
                for app_name in [None, Some("shop")] {
                    for properties in [None, Some(properties)] {
                        res.push(ContextRef {
                            user_id,
                            session_id,
                            remote_address,
                            app_name,
                            properties,
                            ..ContextRef::default()
                        });
                    }
                }
            }
        }
    }
    res
}

#[test]
fn constant_answers_match_yggdrasil_for_generated_flags_and_contexts() {
    let features = features(generated_flags());
    let (snapshot, _) = Snapshot::compile(features.clone());
    let engine = EngineState::default();
    let _ = engine.apply_client_features(features.clone());
    let defaults = Defaults {
        app_name: Some("fig".to_owned()),
        environment: Some("production".to_owned()),
    };
    let properties = HashMap::from([
        ("country".to_owned(), "NO".to_owned()),
        ("tenant".to_owned(), "acme".to_owned()),
    ]);
    let (mut n_true, mut n_false, mut n_checked) = (0, 0, 0);
    let mut mismatches = Vec::new();
    for feature in &features.features {
        let name = feature.name.as_str();
        let constant = snapshot.constant(name);
        match constant {
            Some(true) => n_true += 1,
            Some(false) => n_false += 1,
            None => {}
        }
        for ctx in contexts(&properties) {
            // Random stickiness is only used at 0 and 100, but ask a few times to be sure.
            for _ in 0..3 {
                let got = snapshot.is_enabled(name, &ctx, &defaults);
                let expected = engine
                    .check_enabled(&enrich(name, &ctx, &defaults))
                    .unwrap_or(false);
                n_checked += 1;
                if got != expected || constant.is_some_and(|c| c != expected) {
                    mismatches.push(format!(
                        "{}: constant {constant:?}, got {got}, yggdrasil {expected}, {ctx:?}",
                        serde_json::to_string(feature).unwrap_or_default()
                    ));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {n_checked} answers differ, first: {}",
        mismatches.len(),
        mismatches[..mismatches.len().min(5)].join("\n")
    );
    println!(
        "{n_checked} answers agree; {n_true} flags constant true, {n_false} constant false, of {}",
        features.features.len()
    );
    // The comparison is only worth something if many flags took the constant path.
    assert!(
        n_true > 100 && n_false > 1_000,
        "{n_true} true, {n_false} false"
    );
    assert!(n_checked > 400_000, "{n_checked}");
}

#[test]
fn a_constant_flag_does_not_reach_the_engine() {
    let (snapshot, _) = Snapshot::compile(features(vec![
        json!({"name": "on", "enabled": true, "strategies": [rollout("100", None)]}),
        json!({"name": "half", "enabled": true, "strategies": [rollout("50", None)]}),
        json!({"name": "off", "enabled": false, "strategies": [rollout("100", None)]}),
    ]));
    let defaults = Defaults::default();
    let user_ids: Vec<String> = (0..100).map(|idx| format!("user-{idx}")).collect();
    for user_id in &user_ids {
        let ctx = ContextRef {
            user_id: Some(user_id),
            ..ContextRef::default()
        };
        assert!(snapshot.is_enabled("on", &ctx, &defaults));
        assert!(!snapshot.is_enabled("off", &ctx, &defaults));
    }
    assert!(!snapshot.is_enabled("unknown", &ContextRef::default(), &defaults));
    assert_eq!(snapshot.engine_calls.load(Ordering::Relaxed), 0);
    let n_on = user_ids
        .iter()
        .filter(|user_id| {
            let ctx = ContextRef {
                user_id: Some(user_id),
                ..ContextRef::default()
            };
            snapshot.is_enabled("half", &ctx, &defaults)
        })
        .count();
    assert_eq!(snapshot.engine_calls.load(Ordering::Relaxed), 100);
    assert!((20..80).contains(&n_on), "{n_on} of 100 at 50%");
    // The usage counts sent to Unleash still see every call.
    let counts = snapshot.take_counts();
    assert_eq!((counts["on"].yes, counts["on"].no), (100, 0));
    assert_eq!((counts["off"].yes, counts["off"].no), (0, 100));
    assert_eq!(counts["half"].yes + counts["half"].no, 100);
    assert!(!counts.contains_key("unknown"));
}

#[test]
fn the_answer_for_everyone_is_given_only_for_constant_flags_and_counted() {
    let (snapshot, _) = Snapshot::compile(features(vec![
        json!({"name": "on", "enabled": true, "strategies": [rollout("100", None)]}),
        json!({"name": "half", "enabled": true, "strategies": [rollout("50", None)]}),
        json!({"name": "off", "enabled": false, "strategies": [rollout("100", None)]}),
    ]));
    assert_eq!(snapshot.is_enabled_for_everyone("on"), Some(true));
    assert_eq!(snapshot.is_enabled_for_everyone("off"), Some(false));
    assert_eq!(snapshot.is_enabled_for_everyone("unknown"), Some(false));
    // A 50% rollout depends on who asks: the caller must build a context.
    assert_eq!(snapshot.is_enabled_for_everyone("half"), None);
    let counts = snapshot.take_counts();
    assert_eq!((counts["on"].yes, counts["on"].no), (1, 0));
    assert_eq!((counts["off"].yes, counts["off"].no), (0, 1));
    assert!(
        !counts.contains_key("half"),
        "a question not answered is not counted"
    );
}

/// Polls `cond` every 20 ms for at most 5 s; true if it held.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[tokio::test]
async fn a_file_change_recomputes_the_constant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flags.json");
    let store = FileStore::new(&path, "test");
    store.create("checkout", None).expect("create");
    store.rollout("checkout", 100, None).expect("rollout");
    store.enable("checkout").expect("enable");
    let flags = Flags::open(StoreConfig::File(FileConfig::new(&path)))
        .await
        .expect("open");
    let constant = |flags: &Flags| flags.inner.snapshot.load().constant("checkout");
    let user_ids: Vec<String> = (0..100).map(|idx| format!("user-{idx}")).collect();
    let n_on = |flags: &Flags| {
        user_ids
            .iter()
            .filter(|user_id| {
                let ctx = ContextRef {
                    user_id: Some(user_id),
                    ..ContextRef::default()
                };
                flags.is_enabled("checkout", ctx)
            })
            .count()
    };
    assert_eq!(constant(&flags), Some(true));
    assert_eq!(n_on(&flags), 100);
    assert_eq!(
        flags
            .inner
            .snapshot
            .load()
            .engine_calls
            .load(Ordering::Relaxed),
        0
    );

    store.rollout("checkout", 50, None).expect("rollout 50");
    assert!(
        eventually(|| constant(&flags).is_none()).await,
        "50% not applied"
    );
    let at_50 = n_on(&flags);
    assert!((20..80).contains(&at_50), "{at_50} of 100 at 50%");

    // Back to 100%, now constrained by hand: the constraint decides, for everyone.
    let mut features = store.read().expect("read");
    let feature = &mut features.features[0];
    let strategy = &mut feature.strategies.as_mut().expect("strategies")[0];
    strategy
        .parameters
        .as_mut()
        .expect("parameters")
        .insert("rollout".into(), "100".into());
    strategy.constraints = Some(vec![
        serde_json::from_value(json!(
            {"contextName": "country", "operator": "IN", "values": ["NO"]}
        ))
        .expect("constraint"),
    ]);
    std::fs::write(&path, crate::to_json(&features)).expect("write");
    let revision = flags.revision();
    assert!(
        eventually(|| flags.revision() > revision).await,
        "hand edit not applied"
    );
    assert_eq!(constant(&flags), None);
    assert_eq!(n_on(&flags), 0, "no context has country NO");
}

/// The client specification's `tests` cases whose flag folds to a constant: the constant must be
/// the expected answer. `tests/spec.rs` runs all cases through `Flags`; this shows how many of
/// them take the constant path.
#[test]
fn spec_cases_answered_by_a_constant_are_right() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/unleash-client-spec");
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(name)).expect("spec file");
        serde_json::from_str(&text).expect("spec json")
    };
    let index: Vec<String> = serde_json::from_value(read("index.json")).expect("index");
    let (mut n_constant, mut n_cases) = (0, 0);
    for file_name in &index {
        let spec = read(file_name);
        let state = spec["state"].clone();
        let features: ClientFeatures = if state.get("events").is_some() {
            let delta = serde_json::from_value(state).expect("delta body");
            ClientFeatures::create_from_delta(&delta)
        } else {
            serde_json::from_value(state).expect("client features body")
        };
        let (snapshot, _) = Snapshot::compile(features);
        for case in spec["tests"].as_array().into_iter().flatten() {
            n_cases += 1;
            let name = case["toggleName"].as_str().expect("toggleName");
            if let Some(constant) = snapshot.constant(name) {
                n_constant += 1;
                assert_eq!(
                    Some(constant),
                    case["expectedResult"].as_bool(),
                    "{file_name}: {}",
                    case["description"]
                );
            }
        }
    }
    println!("{n_constant} of {n_cases} spec cases answered by a constant");
    assert_eq!(n_cases, 227);
    assert!(n_constant >= 20, "{n_constant}");
}
