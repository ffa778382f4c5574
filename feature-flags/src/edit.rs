//! Changes to a set of flags, as pure functions on [`ClientFeatures`].
//!
//! The file store applies them under its lock; the strategies they write are the ones Unleash's
//! own UI writes (a `flexibleRollout` whose `groupId` is the flag's name, `userWithId` with a
//! comma-separated `userIds`, `remoteAddress` with `IPs`), so a file and a server agree.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;
use unleash_types::client_features::{
    ClientFeature, ClientFeatures, Constraint, Operator, Strategy,
};

use crate::error::{Error, Result};

/// Which context field keeps a user in the same bucket of a gradual rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stickiness {
    /// `userId`, else `sessionId`, else random (Unleash's default).
    Default,
    /// `userId` only (no user id: not in the rollout).
    UserId,
    /// `sessionId` only.
    SessionId,
    /// A fresh random draw on every evaluation.
    Random,
}

impl Stickiness {
    /// The `stickiness` parameter value Unleash uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Stickiness::Default => "default",
            Stickiness::UserId => "userId",
            Stickiness::SessionId => "sessionId",
            Stickiness::Random => "random",
        }
    }
}

/// One applied change: the flag before and after (`None` when it did not or no longer exists).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// The flag changed.
    pub flag: String,
    /// `create`, `enable`, `disable`, `rollout`, `users`, `ips`, `delete` or `import`.
    pub action: String,
    /// The flag before.
    pub old: Option<ClientFeature>,
    /// The flag after.
    pub new: Option<ClientFeature>,
}

impl Change {
    /// `old → new` in words, e.g. `off → on; flexibleRollout 100% (default)`.
    pub fn summary(&self) -> String {
        let side = |feature: &Option<ClientFeature>| match feature {
            Some(feature) => describe(feature),
            None => "(none)".to_owned(),
        };
        format!("{} → {}", side(&self.old), side(&self.new))
    }
}

/// A flag in words: `on` or `off`, then its strategies.
pub fn describe(feature: &ClientFeature) -> String {
    let mut res = if feature.enabled { "on" } else { "off" }.to_owned();
    for strategy in feature.strategies.iter().flatten() {
        res.push_str("; ");
        res.push_str(&describe_strategy(strategy));
    }
    res
}

/// A strategy in words, e.g. `flexibleRollout 37% (userId)` or `userWithId [alice, bob]`.
pub fn describe_strategy(strategy: &Strategy) -> String {
    let param = |key: &str| {
        strategy
            .parameters
            .as_ref()
            .and_then(|params| params.get(key))
            .map(String::as_str)
            .unwrap_or("")
    };
    let list = |key: &str| {
        param(key)
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if is_users_strategy(strategy) {
        let ids = strategy
            .constraints
            .iter()
            .flatten()
            .flat_map(|c| c.values.iter().flatten());
        return format!("users [{}]", ids.cloned().collect::<Vec<_>>().join(", "));
    }
    let mut res = match strategy.name.as_str() {
        "flexibleRollout" => format!("flexibleRollout {}% ({})", param("rollout"), {
            let stickiness = param("stickiness");
            if stickiness.is_empty() {
                "default"
            } else {
                stickiness
            }
        }),
        "userWithId" => format!("userWithId [{}]", list("userIds")),
        "remoteAddress" => format!("remoteAddress [{}]", list("IPs")),
        "gradualRolloutUserId" | "gradualRolloutSessionId" | "gradualRolloutRandom" => {
            format!("{} {}%", strategy.name, param("percentage"))
        }
        other => other.to_owned(),
    };
    let n_constraints = strategy.constraints.as_ref().map_or(0, Vec::len);
    let n_segments = strategy.segments.as_ref().map_or(0, Vec::len);
    if n_constraints > 0 {
        res.push_str(&format!(" +{n_constraints} constraint(s)"));
    }
    if n_segments > 0 {
        res.push_str(&format!(" +{n_segments} segment(s)"));
    }
    res
}

/// Checks a flag name as Unleash does: 1..=100 URL-safe characters.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_owned()))
    }
}

/// Checks a rollout percentage.
pub(crate) fn validate_percent(percent: u32) -> Result<()> {
    if percent <= 100 {
        Ok(())
    } else {
        Err(Error::InvalidPercent(percent))
    }
}

/// Checks an IP address or CIDR block, as the `remoteAddress` strategy reads them.
pub(crate) fn validate_cidr(cidr: &str) -> Result<()> {
    let bad = || Error::InvalidCidr(cidr.to_owned());
    let (addr, prefix) = match cidr.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (cidr, None),
    };
    let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    if let Some(prefix) = prefix {
        let prefix: u8 = prefix.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
    }
    Ok(())
}

pub(crate) fn create(
    features: &mut ClientFeatures,
    name: &str,
    description: Option<&str>,
) -> Result<Change> {
    validate_name(name)?;
    if find(features, name).is_some() {
        return Err(Error::FlagExists(name.to_owned()));
    }
    let feature = ClientFeature {
        name: name.to_owned(),
        feature_type: Some("release".to_owned()),
        description: description.map(str::to_owned),
        enabled: false,
        project: Some("default".to_owned()),
        strategies: Some(Vec::new()),
        variants: Some(Vec::new()),
        ..ClientFeature::default()
    };
    features.features.push(feature.clone());
    Ok(Change {
        flag: name.to_owned(),
        action: "create".to_owned(),
        old: None,
        new: Some(feature),
    })
}

/// Switches a flag on or off. Switching on a flag without strategies adds a 100% rollout, as
/// Unleash does when an environment is enabled with no strategy.
pub(crate) fn set_enabled(features: &mut ClientFeatures, name: &str, on: bool) -> Result<Change> {
    modify(
        features,
        name,
        if on { "enable" } else { "disable" },
        |feature| {
            feature.enabled = on;
            let strategies = feature.strategies.get_or_insert_with(Vec::new);
            if on && strategies.is_empty() {
                strategies.push(flexible_rollout(name, 100, Stickiness::Default.as_str()));
            }
            Ok(())
        },
    )
}

/// Sets the flag's gradual rollout (its unconstrained `flexibleRollout`, added if missing).
/// Without `stickiness`, the rollout keeps the stickiness it has (`default` for a new one).
pub(crate) fn rollout(
    features: &mut ClientFeatures,
    name: &str,
    percent: u32,
    stickiness: Option<Stickiness>,
) -> Result<Change> {
    validate_percent(percent)?;
    modify(features, name, "rollout", |feature| {
        let strategies = feature.strategies.get_or_insert_with(Vec::new);
        let current = strategies.iter().find(|s| is_plain(s, "flexibleRollout"));
        let stickiness = rollout_stickiness(stickiness, current);
        let wanted = flexible_rollout(name, percent, &stickiness);
        match strategies
            .iter_mut()
            .find(|s| is_plain(s, "flexibleRollout"))
        {
            Some(existing) => existing.parameters = wanted.parameters,
            None => strategies.push(wanted),
        }
        Ok(())
    })
}

/// Sets the user ids the flag is on for: a 100% `flexibleRollout` constrained to `userId IN
/// [ids]`. Unleash 7 and later no longer offer the old `userWithId` strategy type and suggest
/// exactly this instead; it evaluates the same in every SDK, and files that still use
/// `userWithId` keep working.
pub(crate) fn users(features: &mut ClientFeatures, name: &str, ids: &[String]) -> Result<Change> {
    let ids = validate_users(ids)?;
    modify(features, name, "users", |feature| {
        let strategies = feature.strategies.get_or_insert_with(Vec::new);
        let wanted = users_strategy(name, &ids);
        match strategies.iter_mut().find(|s| is_users_strategy(s)) {
            Some(existing) => existing.constraints = wanted.constraints,
            None => strategies.push(wanted),
        }
        Ok(())
    })
}

pub(crate) fn validate_users(ids: &[String]) -> Result<Vec<String>> {
    if ids.is_empty() || ids.iter().any(|id| id.trim().is_empty()) {
        return Err(Error::InvalidArgument(
            "user ids must not be empty".to_owned(),
        ));
    }
    Ok(ids.iter().map(|id| id.trim().to_owned()).collect())
}

/// The strategy `users` writes.
pub(crate) fn users_strategy(name: &str, ids: &[String]) -> Strategy {
    let mut res = flexible_rollout(name, 100, Stickiness::Default.as_str());
    res.constraints = Some(vec![Constraint {
        context_name: "userId".to_owned(),
        operator: Operator::In,
        case_insensitive: false,
        inverted: false,
        values: Some(ids.to_vec()),
        value: None,
    }]);
    res
}

/// A strategy `users` wrote: a flexibleRollout whose only constraint is `userId IN`.
pub(crate) fn is_users_strategy(strategy: &Strategy) -> bool {
    strategy.name == "flexibleRollout"
        && strategy.segments.as_ref().is_none_or(Vec::is_empty)
        && matches!(strategy.constraints.as_deref(), Some([c])
            if c.context_name == "userId" && c.operator == Operator::In && !c.inverted)
}

/// Sets the flag's `remoteAddress` list.
pub(crate) fn ips(features: &mut ClientFeatures, name: &str, cidrs: &[String]) -> Result<Change> {
    if cidrs.is_empty() {
        return Err(Error::InvalidArgument(
            "give at least one address".to_owned(),
        ));
    }
    for cidr in cidrs {
        validate_cidr(cidr)?;
    }
    let value = cidrs.join(",");
    modify(features, name, "ips", |feature| {
        set_list_strategy(feature, "remoteAddress", "IPs", value);
        Ok(())
    })
}

pub(crate) fn delete(features: &mut ClientFeatures, name: &str) -> Result<Change> {
    let idx = features
        .features
        .iter()
        .position(|feature| feature.name == name)
        .ok_or_else(|| Error::UnknownFlag(name.to_owned()))?;
    let old = features.features.remove(idx);
    Ok(Change {
        flag: name.to_owned(),
        action: "delete".to_owned(),
        old: Some(old),
        new: None,
    })
}

/// The stickiness a rollout gets: the one asked for, else the one it has, else `default`.
pub(crate) fn rollout_stickiness(asked: Option<Stickiness>, current: Option<&Strategy>) -> String {
    asked
        .map(|s| s.as_str().to_owned())
        .or_else(|| {
            current
                .and_then(|s| s.parameters.as_ref())
                .and_then(|params| params.get("stickiness"))
                .filter(|s| !s.is_empty())
                .cloned()
        })
        .unwrap_or_else(|| Stickiness::Default.as_str().to_owned())
}

/// The strategy Unleash's UI writes for a gradual rollout.
pub(crate) fn flexible_rollout(name: &str, percent: u32, stickiness: &str) -> Strategy {
    let parameters = HashMap::from([
        ("rollout".to_owned(), percent.to_string()),
        ("stickiness".to_owned(), stickiness.to_owned()),
        ("groupId".to_owned(), name.to_owned()),
    ]);
    strategy("flexibleRollout", parameters)
}

pub(crate) fn strategy(name: &str, parameters: HashMap<String, String>) -> Strategy {
    Strategy {
        name: name.to_owned(),
        sort_order: None,
        segments: None,
        constraints: Some(Vec::new()),
        parameters: Some(parameters),
        variants: Some(Vec::new()),
    }
}

/// A strategy of this name without constraints or segments: the one our commands own.
pub(crate) fn is_plain(strategy: &Strategy, name: &str) -> bool {
    strategy.name == name
        && strategy.constraints.as_ref().is_none_or(Vec::is_empty)
        && strategy.segments.as_ref().is_none_or(Vec::is_empty)
}

fn set_list_strategy(feature: &mut ClientFeature, strategy_name: &str, key: &str, value: String) {
    let strategies = feature.strategies.get_or_insert_with(Vec::new);
    let params = HashMap::from([(key.to_owned(), value)]);
    match strategies.iter_mut().find(|s| is_plain(s, strategy_name)) {
        Some(existing) => existing.parameters = Some(params),
        None => strategies.push(strategy(strategy_name, params)),
    }
}

fn find<'a>(features: &'a ClientFeatures, name: &str) -> Option<&'a ClientFeature> {
    features
        .features
        .iter()
        .find(|feature| feature.name == name)
}

fn modify(
    features: &mut ClientFeatures,
    name: &str,
    action: &str,
    f: impl FnOnce(&mut ClientFeature) -> Result<()>,
) -> Result<Change> {
    let feature = features
        .features
        .iter_mut()
        .find(|feature| feature.name == name)
        .ok_or_else(|| Error::UnknownFlag(name.to_owned()))?;
    let old = feature.clone();
    f(feature)?;
    Ok(Change {
        flag: name.to_owned(),
        action: action.to_owned(),
        old: Some(old),
        new: Some(feature.clone()),
    })
}
