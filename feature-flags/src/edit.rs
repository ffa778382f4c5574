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

    /// For `users` and `ips`: the entries added, the entries removed, and the list now.
    pub fn list_change(&self) -> Option<(Vec<String>, Vec<String>, Vec<String>)> {
        let list: fn(&ClientFeature) -> Vec<String> = match self.action.as_str() {
            "users" => user_list,
            "ips" => ip_list,
            _ => return None,
        };
        let old = self.old.as_ref().map(list).unwrap_or_default();
        let new = self.new.as_ref().map(list).unwrap_or_default();
        let added = new.iter().filter(|e| !old.contains(e)).cloned().collect();
        let removed = old.iter().filter(|e| !new.contains(e)).cloned().collect();
        Some((added, removed, new))
    }

    /// What a person should know about the flag after this change, if anything: a `users` or
    /// `ips` list on a flag that is off does nothing until it is enabled, and one beside a
    /// strategy that already turns the flag on for everyone changes nobody's answer.
    pub fn note(&self) -> Option<String> {
        if !matches!(self.action.as_str(), "users" | "ips") {
            return None;
        }
        let new = self.new.as_ref()?;
        if !new.enabled {
            return Some(format!(
                "`{}` is off: the list takes effect once it is switched on (`fig flags enable {}`), which keeps it",
                self.flag, self.flag
            ));
        }
        let everyone = new.strategies.iter().flatten().any(|s| {
            is_plain(s, "flexibleRollout")
                && s.parameters
                    .as_ref()
                    .and_then(|params| params.get("rollout"))
                    .is_some_and(|rollout| rollout == "100")
        });
        everyone.then(|| {
            format!(
                "`{}` also has a 100% rollout, so it is on for everyone and the list changes nothing; `fig flags rollout {} 0` limits it to the list",
                self.flag, self.flag
            )
        })
    }
}

/// Whether `features` (what a reader gets) already show `change`: the flag is gone after a
/// delete, or present with the same state and the same strategies in words ([`describe_strategy`],
/// in any order) as the writer left it.
pub(crate) fn shows(features: &ClientFeatures, change: &Change) -> bool {
    let seen = features.features.iter().find(|f| f.name == change.flag);
    let words = |feature: &ClientFeature| {
        let mut strategies: Vec<String> = feature
            .strategies
            .iter()
            .flatten()
            .map(describe_strategy)
            .collect();
        strategies.sort_unstable();
        (feature.enabled, strategies)
    };
    match (&change.new, seen) {
        (None, seen) => seen.is_none(),
        (Some(_), None) => false,
        (Some(new), Some(seen)) => words(new) == words(seen),
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

/// How `users` and `ips` change a flag's list: replace it, or add and remove entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListEdit {
    /// The list becomes exactly these entries.
    Set(Vec<String>),
    /// These entries are added (those already there are kept once) and these removed.
    Change {
        /// Entries to add.
        add: Vec<String>,
        /// Entries to remove; each must be in the list.
        remove: Vec<String>,
    },
}

/// The list `edit` makes of `current`, in order: kept entries first, then added ones. Removing
/// an entry that is not there, or every entry, is an error (an empty list would turn nobody on,
/// and no list at all is a different strategy).
pub(crate) fn edit_list(current: &[String], edit: &ListEdit, what: &str) -> Result<Vec<String>> {
    let res = match edit {
        ListEdit::Set(entries) => {
            let mut res: Vec<String> = Vec::new();
            for entry in entries {
                if !res.contains(entry) {
                    res.push(entry.clone());
                }
            }
            res
        }
        ListEdit::Change { add, remove } => {
            for entry in remove {
                if !current.contains(entry) {
                    return Err(Error::InvalidArgument(format!(
                        "`{entry}` is not in the flag's {what} list ({})",
                        if current.is_empty() {
                            "it has none".to_owned()
                        } else {
                            current.join(", ")
                        }
                    )));
                }
            }
            let mut res: Vec<String> = current
                .iter()
                .filter(|entry| !remove.contains(entry))
                .cloned()
                .collect();
            for entry in add {
                if !res.contains(entry) {
                    res.push(entry.clone());
                }
            }
            res
        }
    };
    if res.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "that leaves the {what} list empty; keep at least one, or switch the flag off with `fig flags disable`"
        )));
    }
    Ok(res)
}

/// The user ids of the flag's `users` strategy (empty when it has none).
pub(crate) fn user_list(feature: &ClientFeature) -> Vec<String> {
    feature
        .strategies
        .iter()
        .flatten()
        .find(|s| is_users_strategy(s))
        .and_then(|s| s.constraints.as_ref())
        .and_then(|constraints| constraints.first())
        .and_then(|c| c.values.clone())
        .unwrap_or_default()
}

/// The addresses of the flag's `remoteAddress` strategy (empty when it has none).
pub(crate) fn ip_list(feature: &ClientFeature) -> Vec<String> {
    feature
        .strategies
        .iter()
        .flatten()
        .find(|s| is_plain(s, "remoteAddress"))
        .and_then(|s| s.parameters.as_ref())
        .and_then(|params| params.get("IPs"))
        .map(|ips| {
            ips.split(',')
                .map(str::trim)
                .filter(|ip| !ip.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Sets the user ids the flag is on for: a 100% `flexibleRollout` constrained to `userId IN
/// [ids]`. Unleash 7 and later no longer offer the old `userWithId` strategy type and suggest
/// exactly this instead; it evaluates the same in every SDK, and files that still use
/// `userWithId` keep working. Like every strategy it counts only while the flag is on, and it
/// adds to the others: a user gets the flag when any strategy says so.
pub(crate) fn users(features: &mut ClientFeatures, name: &str, edit: &ListEdit) -> Result<Change> {
    validate_user_edit(edit)?;
    modify(features, name, "users", |feature| {
        let ids = edit_list(&user_list(feature), &trimmed(edit), "user")?;
        let strategies = feature.strategies.get_or_insert_with(Vec::new);
        let wanted = users_strategy(name, &ids);
        match strategies.iter_mut().find(|s| is_users_strategy(s)) {
            Some(existing) => existing.constraints = wanted.constraints,
            None => strategies.push(wanted),
        }
        Ok(())
    })
}

/// Checks the user ids an edit names: none empty, and at least one.
pub(crate) fn validate_user_edit(edit: &ListEdit) -> Result<()> {
    match edit {
        ListEdit::Set(ids) => validate_users(ids).map(drop),
        ListEdit::Change { add, remove } => {
            let all: Vec<String> = add.iter().chain(remove).cloned().collect();
            validate_users(&all).map(drop)
        }
    }
}

/// `edit` with every entry trimmed.
pub(crate) fn trimmed(edit: &ListEdit) -> ListEdit {
    let trim = |entries: &[String]| entries.iter().map(|e| e.trim().to_owned()).collect();
    match edit {
        ListEdit::Set(entries) => ListEdit::Set(trim(entries)),
        ListEdit::Change { add, remove } => ListEdit::Change {
            add: trim(add),
            remove: trim(remove),
        },
    }
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

/// Sets or edits the flag's `remoteAddress` list.
pub(crate) fn ips(features: &mut ClientFeatures, name: &str, edit: &ListEdit) -> Result<Change> {
    validate_ips(edit)?;
    modify(features, name, "ips", |feature| {
        let cidrs = edit_list(&ip_list(feature), &trimmed(edit), "address")?;
        set_list_strategy(feature, "remoteAddress", "IPs", cidrs.join(","));
        Ok(())
    })
}

/// Checks the addresses an `ips` edit adds or sets.
pub(crate) fn validate_ips(edit: &ListEdit) -> Result<()> {
    let (ListEdit::Set(cidrs) | ListEdit::Change { add: cidrs, .. }) = edit;
    let n_named = match edit {
        ListEdit::Set(cidrs) => cidrs.len(),
        ListEdit::Change { add, remove } => add.len() + remove.len(),
    };
    if n_named == 0 {
        return Err(Error::InvalidArgument(
            "give at least one address".to_owned(),
        ));
    }
    for cidr in cidrs {
        validate_cidr(cidr.trim())?;
    }
    Ok(())
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
