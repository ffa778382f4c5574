//! Flags whose answer does not depend on the context, found once per snapshot.
//!
//! The proxy asks one flag per request, and the usual flag is "on for everyone": a
//! `flexibleRollout` at 100% with no constraint. yggdrasil still evaluates it in full each time
//! (it formats `"{groupId}:{userId}"` and hashes it with murmur3, about 2,000 instructions), though
//! a 100% rollout can only answer true. [`constant_answer`] reads a flag's definition when a
//! snapshot is built and says when the answer is the same for every context, so that
//! `Snapshot::is_enabled` answers without the engine.
//!
//! A key design decision is to fold only what yggdrasil's source (0.21.7) makes certain, and to
//! leave everything else to the engine. The rules, each with where yggdrasil decides it:
//!
//! - **Disabled flag: false.** `EngineState::enabled` is `toggle.enabled && deps && rule`, and
//!   `&&` stops at `enabled == false` whatever the dependencies and strategies are.
//! - **Dependencies: never folded.** A parent's answer depends on the context (and a parent with
//!   its own parents is refused), so any non-empty `dependencies` goes to the engine.
//! - **Enabled, no strategies: true.** `strategy_upgrade::upgrade` turns an empty list into the
//!   rule `true`.
//! - **Enabled, one unconditional strategy: true,** if the whole rule compiles. The strategies
//!   are joined with `or`, so one strategy that is always true makes the flag true; but when any
//!   strategy fails to compile (an unknown segment, a bad constraint value, a `"` in a group id)
//!   yggdrasil replaces the whole flag by `false`, so the rule is compiled here exactly as
//!   yggdrasil compiles it, and a failure means no folding. Unconditional strategies, with no
//!   constraints and no segments (empty lists count as none):
//!   - `default`: the rule `true`.
//!   - `flexibleRollout` with `rollout` 100 and stickiness `default`, `random` or none: the rule
//!     `100% sticky on user_id | session_id | random[10000]`; the last fallback always gives a
//!     value, its bucket is in 1..=100, and `bucket <= 100` holds. Any other stickiness
//!     (`userId`, a custom field) is false when the context lacks that field, so it is not folded.
//!   - `gradualRolloutRandom` with `percentage` 100: the rule `random < 100`, and `random` draws
//!     from `1..100`.
//!   - Not `gradualRolloutUserId` or `gradualRolloutSessionId`, even at 100: their rules are sticky
//!     on `user_id` (or `session_id`) alone, so a context without one is off.
//!
//!   Percentages are read as yggdrasil reads them (`str::parse::<usize>`); anything but exactly
//!   100 is left to the engine (above 100 the rule does not even compile).
//!
//! Strategies marked `"disabled": true` (the Admin API's field) need no rule: unleash-types'
//! `Strategy` has no such field, so it is dropped when the JSON is read and yggdrasil evaluates
//! the strategy like any other. This module sees the same parsed strategy, so it agrees.
//!
//! Only `is_enabled` uses the constant; `variant` and `evaluate` still run the engine, which by
//! the rules above gives the same enabled answer.

use std::collections::HashMap;

use unleash_types::client_features::{ClientFeature, Segment, Strategy};
use unleash_yggdrasil::strategy_parsing::compile_rule;
use unleash_yggdrasil::strategy_upgrade::upgrade;

/// The answer `feature` gives to every context, or `None` when it may depend on the context.
pub(crate) fn constant_answer(
    feature: &ClientFeature,
    segment_map: &HashMap<i32, Segment>,
) -> Option<bool> {
    if !feature.enabled {
        return Some(false);
    }
    if feature.dependencies.as_ref().is_some_and(|d| !d.is_empty()) {
        return None;
    }
    let strategies = feature.strategies.as_deref().unwrap_or_default();
    if strategies.is_empty() {
        return Some(true);
    }
    if !strategies.iter().any(is_unconditional) {
        return None;
    }
    let compiles = upgrade(strategies, segment_map)
        .ok()
        .is_some_and(|rule| compile_rule(&rule).is_ok());
    compiles.then_some(true)
}

/// Whether `strategy` is true for every context (given that the flag's rule compiles).
fn is_unconditional(strategy: &Strategy) -> bool {
    let unconstrained = strategy.constraints.as_ref().is_none_or(Vec::is_empty)
        && strategy.segments.as_ref().is_none_or(Vec::is_empty);
    if !unconstrained {
        return false;
    }
    let param = |key: &str| {
        strategy
            .parameters
            .as_ref()
            .and_then(|params| params.get(key))
    };
    let is_100 = |key: &str| param(key).and_then(|value| value.parse::<usize>().ok()) == Some(100);
    match strategy.name.as_str() {
        "default" => true,
        "flexibleRollout" => {
            is_100("rollout")
                && matches!(
                    param("stickiness").map(String::as_str),
                    None | Some("default" | "random")
                )
        }
        "gradualRolloutRandom" => is_100("percentage"),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
