//! A compiled, immutable set of flags and the evaluation over it.
//!
//! A [`Snapshot`] is built once per change (file reload, server fetch) and then only read. It
//! holds yggdrasil's `EngineState` for the evaluation itself, plus what yggdrasil does not keep:
//! each strategy compiled on its own (to say which one decided) and per-flag usage counters that
//! are plain atomics, so counting costs no allocation on the request path. Flags whose answer
//! is the same for every context (see `constant.rs`) are answered by `is_enabled` without the
//! engine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use rustc_hash::FxHashMap;
use serde::Serialize;
use unleash_types::client_features::{ClientFeature, ClientFeatures, Segment, Strategy};
use unleash_types::client_metrics::ToggleStats;
use unleash_yggdrasil::state::{EnrichedContext, PropertiesRef};
use unleash_yggdrasil::strategy_parsing::{RuleFragment, compile_rule};
use unleash_yggdrasil::strategy_upgrade::upgrade;
use unleash_yggdrasil::{EngineState, EvalWarning};

use crate::constant::constant_answer;
use crate::context::ContextRef;

/// The variant a context gets, as Unleash's `getVariant` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Variant {
    /// The variant's name; `"disabled"` when the flag is off or has no variants.
    pub name: String,
    /// Whether a real variant was chosen (false for `"disabled"`).
    pub enabled: bool,
    /// Whether the flag itself is on for this context.
    pub feature_enabled: bool,
    /// The variant's payload, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
}

/// A variant's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Payload {
    /// `string`, `json`, `csv` or `number`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The payload as text.
    pub value: String,
}

/// The full answer for one flag and context: on or off, the variant, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// Whether the flag is on for this context.
    pub enabled: bool,
    /// The variant this context gets.
    pub variant: Variant,
    /// What decided.
    pub reason: Reason,
}

/// What decided an [`Evaluation`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// No flag of that name in the store: off.
    NotFound,
    /// The flag is switched off.
    Disabled,
    /// The flag depends on a parent flag whose state does not match.
    Dependency,
    /// The flag is on and has no strategies, so it is on for everyone.
    NoStrategies,
    /// The strategy at this position (0-based) was the first to match.
    Strategy {
        /// Position in the flag's strategy list.
        index: usize,
        /// The strategy's name, such as `flexibleRollout`.
        name: String,
    },
    /// The flag is on but none of its strategies matches this context.
    NoStrategyMatched,
}

/// One line of [`crate::Flags::list`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlagSummary {
    /// The flag's name.
    pub name: String,
    /// Whether it is switched on (in the store's environment).
    pub enabled: bool,
    /// Its description, if any.
    pub description: Option<String>,
    /// Its Unleash project (`default` in a file store unless set).
    pub project: String,
    /// Its strategies' names, in order.
    pub strategies: Vec<String>,
    /// Its feature variants' names.
    pub variants: Vec<String>,
}

/// Compiled flags, read by every evaluation until the next change replaces them.
pub(crate) struct Snapshot {
    engine: EngineState,
    /// Keyed with FxHash: flag names come from the operator, not from requests, so a fast
    /// non-keyed hash is safe here and saves a few nanoseconds per evaluation.
    flags: FxHashMap<String, FlagExtra>,
    features: ClientFeatures,
    /// How many `is_enabled` calls reached the engine, so tests can see the constant path.
    #[cfg(test)]
    pub(crate) engine_calls: std::sync::atomic::AtomicU64,
}

struct FlagExtra {
    /// Position of the flag in `Snapshot::features.features`.
    index: usize,
    strategies: Vec<(String, Option<RuleFragment>)>,
    /// The answer for every context, when it does not depend on the context.
    constant: Option<bool>,
    yes: AtomicU32,
    no: AtomicU32,
    /// Every variant name this flag can produce, plus `disabled`, each with its count.
    variants: Vec<(String, AtomicU32)>,
}

impl Snapshot {
    /// An empty snapshot: every flag is off.
    pub(crate) fn empty() -> Snapshot {
        Snapshot::compile(ClientFeatures {
            version: 2,
            features: Vec::new(),
            segments: None,
            query: None,
            meta: None,
        })
        .0
    }

    /// Compiles `features`; warnings name flags whose rules yggdrasil could not compile (those
    /// flags evaluate to off, as in every Unleash SDK).
    pub(crate) fn compile(features: ClientFeatures) -> (Snapshot, Vec<EvalWarning>) {
        let segment_map: HashMap<i32, Segment> = features
            .segments
            .iter()
            .flatten()
            .map(|segment| (segment.id, segment.clone()))
            .collect();
        let flags = features
            .features
            .iter()
            .enumerate()
            .map(|(index, feature)| {
                (
                    feature.name.clone(),
                    compile_extra(index, feature, &segment_map),
                )
            })
            .collect();
        let engine = EngineState::default();
        let warnings = engine
            .apply_client_features(features.clone())
            .unwrap_or_default();
        (
            Snapshot {
                engine,
                flags,
                features,
                #[cfg(test)]
                engine_calls: Default::default(),
            },
            warnings,
        )
    }

    /// The flags as loaded (client API format).
    pub(crate) fn features(&self) -> &ClientFeatures {
        &self.features
    }

    pub(crate) fn is_enabled(&self, name: &str, ctx: &ContextRef<'_>, defaults: &Defaults) -> bool {
        // The engine knows exactly the flags in `self.flags`, and an unknown flag is off.
        let Some(extra) = self.flags.get(name) else {
            return false;
        };
        let enabled = match extra.constant {
            Some(enabled) => enabled,
            None => {
                #[cfg(test)]
                self.engine_calls.fetch_add(1, Ordering::Relaxed);
                let enriched = enrich(name, ctx, defaults);
                self.engine.check_enabled(&enriched).unwrap_or(false)
            }
        };
        let counter = if enabled { &extra.yes } else { &extra.no };
        counter.fetch_add(1, Ordering::Relaxed);
        enabled
    }

    /// Whether `name` is on, when the answer is the same for every context (counted like an
    /// evaluation); `None` when the context decides. An unknown flag is off for everyone.
    pub(crate) fn is_enabled_for_everyone(&self, name: &str) -> Option<bool> {
        let Some(extra) = self.flags.get(name) else {
            return Some(false);
        };
        let enabled = extra.constant?;
        let counter = if enabled { &extra.yes } else { &extra.no };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(enabled)
    }

    /// The answer `name` gives every context, if it does not depend on the context.
    #[cfg(test)]
    pub(crate) fn constant(&self, name: &str) -> Option<bool> {
        self.flags.get(name)?.constant
    }

    pub(crate) fn variant(&self, name: &str, ctx: &ContextRef<'_>, defaults: &Defaults) -> Variant {
        let enriched = enrich(name, ctx, defaults);
        let def = self.engine.check_variant(&enriched).unwrap_or_default();
        // A chosen variant implies the flag is on; only "disabled" needs the second look.
        let feature_enabled = def.enabled || self.engine.check_enabled(&enriched).unwrap_or(false);
        if let Some(extra) = self.flags.get(name) {
            let counter = if feature_enabled {
                &extra.yes
            } else {
                &extra.no
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if let Some((_, count)) = extra.variants.iter().find(|(n, _)| *n == def.name) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        Variant {
            name: def.name,
            enabled: def.enabled,
            feature_enabled,
            payload: def.payload.map(|payload| Payload {
                kind: payload.payload_type,
                value: payload.value,
            }),
        }
    }

    pub(crate) fn evaluate(
        &self,
        name: &str,
        ctx: &ContextRef<'_>,
        defaults: &Defaults,
    ) -> Evaluation {
        let variant = self.variant(name, ctx, defaults);
        let enabled = variant.feature_enabled;
        let reason = match (self.feature(name), self.flags.get(name)) {
            (None, _) | (_, None) => Reason::NotFound,
            (Some(feature), _) if !feature.enabled => Reason::Disabled,
            (Some(_), Some(extra)) => {
                let enriched = enrich(name, ctx, defaults);
                let matched = extra
                    .strategies
                    .iter()
                    .enumerate()
                    .find(|(_, (_, rule))| rule.as_ref().is_some_and(|rule| rule(&enriched)));
                match matched {
                    _ if extra.strategies.is_empty() && enabled => Reason::NoStrategies,
                    Some((index, (strategy, _))) if enabled => Reason::Strategy {
                        index,
                        name: strategy.clone(),
                    },
                    Some(_) => Reason::Dependency,
                    None if extra.strategies.is_empty() => Reason::Dependency,
                    None => Reason::NoStrategyMatched,
                }
            }
        };
        Evaluation {
            enabled,
            variant,
            reason,
        }
    }

    pub(crate) fn feature(&self, name: &str) -> Option<&ClientFeature> {
        let extra = self.flags.get(name)?;
        self.features.features.get(extra.index)
    }

    pub(crate) fn list(&self) -> Vec<FlagSummary> {
        let mut res: Vec<FlagSummary> = self.features.features.iter().map(summarize).collect();
        res.sort_by(|a, b| a.name.cmp(&b.name));
        res
    }

    /// Takes the usage counts since the last call (for Unleash metrics), resetting them.
    pub(crate) fn take_counts(&self) -> HashMap<String, ToggleStats> {
        let mut res = HashMap::new();
        for (name, extra) in &self.flags {
            let yes = extra.yes.swap(0, Ordering::Relaxed);
            let no = extra.no.swap(0, Ordering::Relaxed);
            let variants: HashMap<String, u32> = extra
                .variants
                .iter()
                .map(|(variant, count)| (variant.clone(), count.swap(0, Ordering::Relaxed)))
                .filter(|(_, count)| *count > 0)
                .collect();
            if yes > 0 || no > 0 || !variants.is_empty() {
                res.insert(name.clone(), ToggleStats { yes, no, variants });
            }
        }
        res
    }
}

/// Context fields the store fills in when the caller leaves them out.
#[derive(Clone, Debug, Default)]
pub(crate) struct Defaults {
    pub(crate) app_name: Option<String>,
    pub(crate) environment: Option<String>,
}

/// A one-line summary of a flag.
pub(crate) fn summarize(feature: &ClientFeature) -> FlagSummary {
    FlagSummary {
        name: feature.name.clone(),
        enabled: feature.enabled,
        description: feature.description.clone().filter(|d| !d.is_empty()),
        project: feature
            .project
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        strategies: feature
            .strategies
            .iter()
            .flatten()
            .map(|strategy| strategy.name.clone())
            .collect(),
        variants: feature
            .variants
            .iter()
            .flatten()
            .map(|variant| variant.name.clone())
            .collect(),
    }
}

pub(crate) fn enrich<'a>(
    name: &'a str,
    ctx: &ContextRef<'a>,
    defaults: &'a Defaults,
) -> EnrichedContext<'a> {
    EnrichedContext {
        user_id: ctx.user_id,
        session_id: ctx.session_id,
        environment: ctx.environment.or(defaults.environment.as_deref()),
        app_name: ctx.app_name.or(defaults.app_name.as_deref()),
        current_time: ctx.current_time,
        remote_address: ctx.remote_address,
        properties: ctx.properties.map(PropertiesRef::Strings),
        external_results: None,
        toggle_name: name,
        runtime_hostname: None,
    }
}

fn compile_extra(
    index: usize,
    feature: &ClientFeature,
    segment_map: &HashMap<i32, Segment>,
) -> FlagExtra {
    let strategies = feature
        .strategies
        .iter()
        .flatten()
        .map(|strategy| (strategy.name.clone(), compile_one(strategy, segment_map)))
        .collect();
    let mut variant_names: Vec<String> = feature
        .variants
        .iter()
        .flatten()
        .map(|variant| variant.name.clone())
        .chain(
            feature
                .strategies
                .iter()
                .flatten()
                .flat_map(|strategy| strategy.variants.iter().flatten())
                .map(|variant| variant.name.clone()),
        )
        .collect();
    variant_names.push("disabled".to_owned());
    variant_names.sort();
    variant_names.dedup();
    FlagExtra {
        index,
        strategies,
        constant: constant_answer(feature, segment_map),
        yes: AtomicU32::new(0),
        no: AtomicU32::new(0),
        variants: variant_names
            .into_iter()
            .map(|name| (name, AtomicU32::new(0)))
            .collect(),
    }
}

fn compile_one(strategy: &Strategy, segment_map: &HashMap<i32, Segment>) -> Option<RuleFragment> {
    let rule = upgrade(std::slice::from_ref(strategy), segment_map).ok()?;
    compile_rule(&rule).ok()
}
