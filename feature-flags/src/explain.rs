//! Unleash's engine's compile warnings in words a person can act on.
//!
//! yggdrasil reports a flag it cannot compile as `Failed to compile toggle, this will always be
//! off StrategyParseError("Failed to parse rule (true and (context[\"n\"] == abc)): ...")`: its
//! own rule language and a parser trace. [`explain`] names the strategy and constraint at fault
//! instead (found by compiling each one alone) and what the operator needs.

use unleash_types::client_features::{ClientFeature, ClientFeatures, Constraint, Operator};

use crate::snapshot::Snapshot;

/// The engine's warnings of a snapshot just applied to `flags`, as `(flag, reason in words)`.
pub(crate) fn explain_warnings(
    flags: &crate::Flags,
    warnings: Vec<unleash_yggdrasil::EvalWarning>,
) -> Vec<(String, String)> {
    if warnings.is_empty() {
        return Vec::new();
    }
    let features = flags.features();
    warnings
        .into_iter()
        .map(|warning| {
            let reason = features
                .features
                .iter()
                .find(|feature| feature.name == warning.toggle_name)
                .map_or_else(
                    || warning.message.clone(),
                    |feature| explain(&features, feature, &warning.message),
                );
            (warning.toggle_name, reason)
        })
        .collect()
}

/// Why `feature` (one of `features`) does not compile, given the engine's `message`.
pub(crate) fn explain(features: &ClientFeatures, feature: &ClientFeature, message: &str) -> String {
    let strategies: Vec<_> = feature.strategies.iter().flatten().collect();
    for (idx, strategy) in strategies.iter().enumerate() {
        let known: Vec<i32> = features
            .segments
            .iter()
            .flatten()
            .map(|segment| segment.id)
            .collect();
        if let Some(missing) = strategy
            .segments
            .iter()
            .flatten()
            .find(|id| !known.contains(id))
        {
            return format!(
                "strategy {idx} ({}) uses segment {missing}, which is not defined in `segments`",
                strategy.name
            );
        }
        for constraint in strategy.constraints.iter().flatten() {
            let mut alone = (*strategy).clone();
            alone.constraints = Some(vec![constraint.clone()]);
            alone.segments = None;
            let single = ClientFeatures {
                version: 2,
                features: vec![ClientFeature {
                    name: feature.name.clone(),
                    enabled: true,
                    strategies: Some(vec![alone]),
                    ..ClientFeature::default()
                }],
                segments: None,
                query: None,
                meta: None,
            };
            if !Snapshot::compile(single).1.is_empty() {
                return format!(
                    "strategy {idx} ({}): constraint `{}` cannot be compiled: {}",
                    strategy.name,
                    describe_constraint(constraint),
                    operator_needs(constraint)
                );
            }
        }
    }
    let inner = message
        .split_once("StrategyParseError(\"")
        .map_or(message, |(_, rest)| rest.trim_end_matches("\")"));
    let inner = inner.split(":  -->").next().unwrap_or(inner);
    format!(
        "Unleash's engine cannot compile its strategies ({inner}); the flag would always be off"
    )
}

fn describe_constraint(constraint: &Constraint) -> String {
    let operator = operator_name(constraint);
    let value = match (&constraint.value, &constraint.values) {
        (Some(value), _) => value.clone(),
        (None, Some(values)) => format!("[{}]", values.join(", ")),
        (None, None) => String::new(),
    };
    format!("{} {operator} {value}", constraint.context_name)
        .trim_end()
        .to_owned()
}

/// The operator as written in the file, also when Unleash does not know it.
fn operator_name(constraint: &Constraint) -> String {
    match &constraint.operator {
        Operator::Unknown(name) => name.clone(),
        operator => serde_json::to_value(operator)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{operator:?}")),
    }
}

fn operator_needs(constraint: &Constraint) -> &'static str {
    match operator_name(constraint).as_str() {
        op if op.starts_with("NUM_") => "the operator needs a number as `value`",
        op if op.starts_with("DATE_") => {
            "the operator needs an RFC 3339 date as `value`, such as 2026-01-31T00:00:00Z"
        }
        op if op.starts_with("SEMVER_") => "the operator needs a version as `value`, such as 1.2.3",
        "IN" | "NOT_IN" | "STR_CONTAINS" | "STR_STARTS_WITH" | "STR_ENDS_WITH" => {
            "the operator needs a list of strings as `values`"
        }
        _ => {
            "the operator is not one Unleash knows (IN, NOT_IN, STR_CONTAINS, STR_STARTS_WITH, STR_ENDS_WITH, NUM_EQ, NUM_GT, NUM_GTE, NUM_LT, NUM_LTE, DATE_AFTER, DATE_BEFORE, SEMVER_EQ, SEMVER_GT, SEMVER_LT)"
        }
    }
}

/// The keys each object of a flags file may have: the client API's, as `unleash-types` reads
/// them, plus the ones an Unleash server adds to its answer that the engine does not need.
/// `query` and `meta` are the server's bookkeeping and are not checked.
const TOP_KEYS: &[&str] = &["version", "features", "segments", "query", "meta"];
const FEATURE_KEYS: &[&str] = &[
    "name",
    "type",
    "description",
    "createdAt",
    "lastSeenAt",
    "enabled",
    "stale",
    "impressionData",
    "project",
    "strategies",
    "variants",
    "dependencies",
];
const STRATEGY_KEYS: &[&str] = &[
    "name",
    "sortOrder",
    "segments",
    "constraints",
    "parameters",
    "variants",
    "id",
    "title",
    "disabled",
];
const CONSTRAINT_KEYS: &[&str] = &[
    "contextName",
    "operator",
    "caseInsensitive",
    "inverted",
    "values",
    "value",
];
const VARIANT_KEYS: &[&str] = &[
    "name",
    "weight",
    "weightType",
    "stickiness",
    "payload",
    "overrides",
];
const SEGMENT_KEYS: &[&str] = &["id", "constraints", "name", "description"];
const DEPENDENCY_KEYS: &[&str] = &["feature", "enabled", "variants"];

/// The first key of a flags file that the format does not have, as `(where, key, nearest
/// valid name)`: serde would skip it, so a typo such as `"enable": true` would silently leave a
/// flag off.
pub(crate) fn unknown_key(
    value: &serde_json::Value,
) -> Option<(String, String, Option<&'static str>)> {
    fn check(
        object: &serde_json::Value,
        known: &'static [&'static str],
        place: &dyn Fn() -> String,
    ) -> Option<(String, String, Option<&'static str>)> {
        let map = object.as_object()?;
        map.keys()
            .find(|key| !known.contains(&key.as_str()))
            .map(|key| {
                (
                    place(),
                    key.clone(),
                    crate::hint::nearest_name(key, known.iter().copied()),
                )
            })
    }
    let items = |value: &serde_json::Value, key: &str| -> Vec<serde_json::Value> {
        value
            .get(key)
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if let Some(found) = check(value, TOP_KEYS, &|| "the file".to_owned()) {
        return Some(found);
    }
    for (idx, segment) in items(value, "segments").iter().enumerate() {
        let place = || format!("segment {idx}");
        if let Some(found) = check(segment, SEGMENT_KEYS, &place) {
            return Some(found);
        }
        for (c_idx, constraint) in items(segment, "constraints").iter().enumerate() {
            let place = || format!("segment {idx}, constraint {c_idx}");
            if let Some(found) = check(constraint, CONSTRAINT_KEYS, &place) {
                return Some(found);
            }
        }
    }
    for (f_idx, feature) in items(value, "features").iter().enumerate() {
        let name = feature
            .get("name")
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| format!("#{f_idx}"), |name| format!("`{name}`"));
        let place = || format!("flag {name}");
        if let Some(found) = check(feature, FEATURE_KEYS, &place) {
            return Some(found);
        }
        for (v_idx, variant) in items(feature, "variants").iter().enumerate() {
            let place = || format!("flag {name}, variant {v_idx}");
            if let Some(found) = check(variant, VARIANT_KEYS, &place) {
                return Some(found);
            }
        }
        for (d_idx, dependency) in items(feature, "dependencies").iter().enumerate() {
            let place = || format!("flag {name}, dependency {d_idx}");
            if let Some(found) = check(dependency, DEPENDENCY_KEYS, &place) {
                return Some(found);
            }
        }
        for (s_idx, strategy) in items(feature, "strategies").iter().enumerate() {
            let place = || format!("flag {name}, strategy {s_idx}");
            if let Some(found) = check(strategy, STRATEGY_KEYS, &place) {
                return Some(found);
            }
            for (c_idx, constraint) in items(strategy, "constraints").iter().enumerate() {
                let place = || format!("flag {name}, strategy {s_idx}, constraint {c_idx}");
                if let Some(found) = check(constraint, CONSTRAINT_KEYS, &place) {
                    return Some(found);
                }
            }
            for (v_idx, variant) in items(strategy, "variants").iter().enumerate() {
                let place = || format!("flag {name}, strategy {s_idx}, variant {v_idx}");
                if let Some(found) = check(variant, VARIANT_KEYS, &place) {
                    return Some(found);
                }
            }
        }
    }
    None
}
