//! Architecture rules over a [`Report`], for CI (`fig check`).
//!
//! Everything here is a pure function of a report, the rules and an optional baseline: reading
//! `fig.toml` and the baseline file is the CLI's job. Each problem found is a [`Finding`] with a
//! stable kebab-case [`Code`] and the source locations of the references that cause it.
//!
//! A key design decision: the baseline is keyed on *structure*, never on line numbers. It records
//! which module pairs take part in cycles and two-way dependencies, and the names of the items
//! used across them. Moving code around inside a file does not change it, so it does not churn in
//! review; a new pair of modules in a cycle, or a new item used across a cyclic edge, does.
//!
//! Module patterns match module ids segment by segment: `*` stands for one segment (or part of
//! one, as in `*_repo`), `**` for any number of segments, including none. So `shop::display::**`
//! matches `shop::display` itself and everything below it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use crate::in_scope;
use crate::report::{Edge, Location, ModuleId, Report};

/// The rules to check, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Dependencies that must not exist.
    pub forbid: Vec<DependencyRule>,
    /// Modules matching `from` may depend only on modules matching one of `to` (or on modules
    /// that also match `from`).
    pub allow_only: Vec<AllowRule>,
    /// Layers from top (callers) to bottom; a module may depend only on its own layer or lower.
    pub layers: Vec<Layer>,
    /// At most this many module cycles (strongly connected components).
    pub max_cycles: Option<usize>,
    /// At most this many two-way module pairs.
    pub max_bidirectional: Option<usize>,
    /// Compare cycles with the baseline.
    pub no_new_cycles: bool,
    /// Compare two-way pairs with the baseline.
    pub no_new_bidirectional: bool,
}

/// `from` must not depend on `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyRule {
    pub from: Pattern,
    pub to: Pattern,
    /// Why, shown with each violation.
    pub reason: Option<String>,
}

/// `from` may depend only on `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowRule {
    pub from: Pattern,
    pub to: Vec<Pattern>,
    pub reason: Option<String>,
}

/// A named layer: the modules matching any of its patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: String,
    pub modules: Vec<Pattern>,
}

/// A module id pattern (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`
    Any,
    /// A segment, possibly with `*` wildcards.
    Glob(String),
}

/// Why a pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub pattern: String,
    pub reason: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid module pattern `{}`: {}",
            self.pattern, self.reason
        )
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    /// Parses `crate::path::*::**`.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let error = |reason| PatternError {
            pattern: text.to_owned(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(error("the pattern is empty"));
        }
        let mut segments = Vec::new();
        for segment in text.split("::") {
            if segment.is_empty() {
                return Err(error("a segment is empty (stray `::`?)"));
            }
            if segment == "**" {
                segments.push(Segment::Any);
                continue;
            }
            if segment.contains("**") {
                return Err(error("`**` must be a whole segment"));
            }
            if !segment
                .chars()
                .all(|ch| ch == '*' || ch == '_' || ch.is_alphanumeric())
            {
                return Err(error(
                    "segments hold letters, digits, `_` and `*` only (module ids use `::`)",
                ));
            }
            segments.push(Segment::Glob(segment.to_owned()));
        }
        Ok(Pattern {
            text: text.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `module` (a module id) matches.
    pub fn matches(&self, module: &str) -> bool {
        let parts: Vec<&str> = module.split("::").collect();
        match_segments(&self.segments, &parts)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn match_segments(pattern: &[Segment], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((Segment::Any, rest)) => {
            (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..]))
        }
        Some((Segment::Glob(glob), rest)) => match parts.split_first() {
            Some((part, parts_rest)) => glob_match(glob, part) && match_segments(rest, parts_rest),
            None => false,
        },
    }
}

/// `*` matches any run of characters inside one segment.
fn glob_match(glob: &str, text: &str) -> bool {
    let pieces: Vec<&str> = glob.split('*').collect();
    if pieces.len() == 1 {
        return glob == text;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Stable identifiers of findings, one entry each in `docs/finding-codes.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Code {
    /// A dependency a `forbid` rule names.
    ForbiddenDependency,
    /// A dependency outside what an `allow` rule permits.
    DependencyNotAllowed,
    /// A dependency from a lower layer up to a higher one.
    LayerViolation,
    /// A rule pattern that matches no module: probably a typo.
    UnmatchedPattern,
    /// More cycles than `max_cycles`.
    CycleLimit,
    /// One module cycle, listed when the cycle limit is exceeded.
    ModuleCycle,
    /// More two-way pairs than `max_bidirectional`.
    BidirectionalLimit,
    /// One two-way pair, listed when the limit is exceeded.
    BidirectionalDependency,
    /// A module pair in a cycle that the baseline does not have.
    NewCycle,
    /// A baselined cyclic edge that now uses more items.
    CycleGrew,
    /// A two-way pair that the baseline does not have.
    NewBidirectionalDependency,
}

impl Code {
    /// Every code, in documentation order.
    pub const ALL: &[Code] = &[
        Code::ForbiddenDependency,
        Code::DependencyNotAllowed,
        Code::LayerViolation,
        Code::UnmatchedPattern,
        Code::CycleLimit,
        Code::ModuleCycle,
        Code::BidirectionalLimit,
        Code::BidirectionalDependency,
        Code::NewCycle,
        Code::CycleGrew,
        Code::NewBidirectionalDependency,
    ];

    /// The kebab-case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ForbiddenDependency => "forbidden-dependency",
            Code::DependencyNotAllowed => "dependency-not-allowed",
            Code::LayerViolation => "layer-violation",
            Code::UnmatchedPattern => "unmatched-pattern",
            Code::CycleLimit => "cycle-limit",
            Code::ModuleCycle => "module-cycle",
            Code::BidirectionalLimit => "bidirectional-limit",
            Code::BidirectionalDependency => "bidirectional-dependency",
            Code::NewCycle => "new-cycle",
            Code::CycleGrew => "cycle-grew",
            Code::NewBidirectionalDependency => "new-bidirectional-dependency",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One violated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub code: Code,
    /// One sentence, no trailing period.
    pub message: String,
    /// The modules it is about.
    pub modules: Vec<ModuleId>,
    /// The references that cause it, sorted.
    pub locations: Vec<Location>,
}

/// The structure a later check compares against (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Baseline {
    /// Every in-scope edge inside a cycle, with the items it uses; sorted by (from, to).
    pub cycle_edges: Vec<BaselineEdge>,
    /// Every two-way pair, `a < b`; sorted.
    pub bidirectional: Vec<BaselinePair>,
    /// Every in-scope (lifted) edge, `(from, to)`, sorted: what tells a new dependency that
    /// closes a cycle from the old ones it pulls into it. `None` in a baseline written before
    /// the list existed; then every edge new to a cycle is reported.
    pub edges: Option<Vec<(ModuleId, ModuleId)>>,
}

/// A module edge as the baseline knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BaselineEdge {
    pub from: ModuleId,
    pub to: ModuleId,
    pub items: Vec<String>,
}

/// A two-way pair as the baseline knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BaselinePair {
    pub a: ModuleId,
    pub b: ModuleId,
    pub a_to_b_items: Vec<String>,
    pub b_to_a_items: Vec<String>,
}

/// The in-scope edges lifted to the level where the paths of their two ends part
/// (`a::x -> b::y` counts as `a -> b`), as cycles, two-way pairs, the cut list and suggestions
/// see them; each keeps the items and locations of the edges it stands for.
pub fn lifted_edges(report: &Report) -> Vec<Edge> {
    let scoped: Vec<&Edge> = report
        .edges
        .iter()
        .filter(|edge| in_scope(edge, report.scope))
        .collect();
    crate::lift(&report.modules, &scoped)
}

/// The baseline of a report: what [`check`] will accept later without a `new-*` finding.
pub fn baseline(report: &Report) -> Baseline {
    let mut cycle_edges: Vec<BaselineEdge> = cycle_edges(report)
        .into_iter()
        .map(|edge| BaselineEdge {
            from: edge.from.clone(),
            to: edge.to.clone(),
            items: edge.items.clone(),
        })
        .collect();
    cycle_edges.sort();
    let mut bidirectional: Vec<BaselinePair> = report
        .bidirectional
        .iter()
        .map(|pair| BaselinePair {
            a: pair.a.clone(),
            b: pair.b.clone(),
            a_to_b_items: pair.a_to_b_items.clone(),
            b_to_a_items: pair.b_to_a_items.clone(),
        })
        .collect();
    bidirectional.sort();
    let mut edges: Vec<(ModuleId, ModuleId)> = lifted_edges(report)
        .into_iter()
        .filter(|edge| edge.from != edge.to)
        .map(|edge| (edge.from, edge.to))
        .collect();
    edges.sort();
    edges.dedup();
    Baseline {
        cycle_edges,
        bidirectional,
        edges: Some(edges),
    }
}

/// Checks `rules` against `report`; `baseline` is needed for the `no_new_*` rules (without one
/// they are not checked; the caller decides whether that is an error).
///
/// Findings come in rule order: dependency rules, limits, then baseline comparisons.
pub fn check(report: &Report, rules: &Rules, baseline: Option<&Baseline>) -> Vec<Finding> {
    let mut acc = Vec::new();
    // Dependency rules look at every dependency outside tests (unless tests are in scope),
    // parent-child ones included: a facade re-export is still a dependency.
    let dependencies: Vec<&Edge> = report
        .edges
        .iter()
        .filter(|edge| edge.from != edge.to && (report.scope.include_test_only || !edge.test_only))
        .collect();
    check_patterns(report, rules, &mut acc);
    for rule in &rules.forbid {
        for edge in &dependencies {
            if rule.from.matches(&edge.from) && rule.to.matches(&edge.to) {
                acc.push(Finding {
                    code: Code::ForbiddenDependency,
                    message: format!(
                        "`{}` depends on `{}` ({}): forbidden by `{}` -> `{}`{}",
                        edge.from,
                        edge.to,
                        items(&edge.items),
                        rule.from,
                        rule.to,
                        reason(rule.reason.as_deref())
                    ),
                    modules: vec![edge.from.clone(), edge.to.clone()],
                    locations: edge.locations.clone(),
                });
            }
        }
    }
    for rule in &rules.allow_only {
        for edge in &dependencies {
            if rule.from.matches(&edge.from)
                && !rule.from.matches(&edge.to)
                && !rule.to.iter().any(|pattern| pattern.matches(&edge.to))
            {
                let allowed: Vec<&str> = rule.to.iter().map(Pattern::as_str).collect();
                acc.push(Finding {
                    code: Code::DependencyNotAllowed,
                    message: format!(
                        "`{}` depends on `{}` ({}), but `{}` may depend only on {}{}",
                        edge.from,
                        edge.to,
                        items(&edge.items),
                        rule.from,
                        if allowed.is_empty() {
                            "itself".to_owned()
                        } else {
                            format!("`{}`", allowed.join("`, `"))
                        },
                        reason(rule.reason.as_deref())
                    ),
                    modules: vec![edge.from.clone(), edge.to.clone()],
                    locations: edge.locations.clone(),
                });
            }
        }
    }
    if !rules.layers.is_empty() {
        let layer_of = |module: &str| {
            rules
                .layers
                .iter()
                .position(|layer| layer.modules.iter().any(|pattern| pattern.matches(module)))
        };
        for edge in &dependencies {
            if let (Some(from_layer), Some(to_layer)) = (layer_of(&edge.from), layer_of(&edge.to))
                && to_layer < from_layer
            {
                acc.push(Finding {
                    code: Code::LayerViolation,
                    message: format!(
                        "`{}` (layer `{}`) depends on `{}` (layer `{}`, above it): {}",
                        edge.from,
                        rules.layers[from_layer].name,
                        edge.to,
                        rules.layers[to_layer].name,
                        items(&edge.items)
                    ),
                    modules: vec![edge.from.clone(), edge.to.clone()],
                    locations: edge.locations.clone(),
                });
            }
        }
    }
    check_limits(report, rules, &mut acc);
    if let Some(baseline) = baseline {
        check_baseline(report, rules, baseline, &mut acc);
    }
    for finding in &mut acc {
        finding.locations.sort();
        finding.locations.dedup();
    }
    acc
}

fn items(items: &[String]) -> String {
    if items.is_empty() {
        "no named items".to_owned()
    } else {
        format!("`{}`", items.join("`, `"))
    }
}

fn reason(reason: Option<&str>) -> String {
    reason.map(|text| format!(": {text}")).unwrap_or_default()
}

/// A rule whose pattern matches no module never fires: say so rather than pass silently.
fn check_patterns(report: &Report, rules: &Rules, acc: &mut Vec<Finding>) {
    let mut patterns: Vec<&Pattern> = Vec::new();
    for rule in &rules.forbid {
        patterns.extend([&rule.from, &rule.to]);
    }
    for rule in &rules.allow_only {
        patterns.push(&rule.from);
        patterns.extend(&rule.to);
    }
    for layer in &rules.layers {
        patterns.extend(&layer.modules);
    }
    let mut seen = BTreeSet::new();
    for pattern in patterns {
        if !seen.insert(pattern.as_str()) {
            continue;
        }
        if !report
            .modules
            .iter()
            .any(|module| pattern.matches(&module.id))
        {
            acc.push(Finding {
                code: Code::UnmatchedPattern,
                message: format!("the pattern `{pattern}` matches no module of the workspace"),
                modules: Vec::new(),
                locations: Vec::new(),
            });
        }
    }
}

/// Lifted edges whose two ends are in the same cycle.
fn cycle_edges(report: &Report) -> Vec<Edge> {
    let mut component: BTreeMap<&str, usize> = BTreeMap::new();
    for (idx, cycle) in report.cycles.iter().enumerate() {
        for member in &cycle.members {
            component.insert(member, idx);
        }
    }
    lifted_edges(report)
        .into_iter()
        .filter(|edge| {
            edge.from != edge.to
                && matches!(
                    (component.get(edge.from.as_str()), component.get(edge.to.as_str())),
                    (Some(a), Some(b)) if a == b
                )
        })
        .collect()
}

/// The references of both directions of a two-way pair (pairs are found on lifted edges).
fn pair_locations(lifted: &[Edge], a: &str, b: &str) -> Vec<Location> {
    lifted
        .iter()
        .filter(|edge| (edge.from == a && edge.to == b) || (edge.from == b && edge.to == a))
        .flat_map(|edge| edge.locations.iter().cloned())
        .collect()
}

fn check_limits(report: &Report, rules: &Rules, acc: &mut Vec<Finding>) {
    if let Some(max) = rules.max_cycles
        && report.cycles.len() > max
    {
        acc.push(Finding {
            code: Code::CycleLimit,
            message: format!(
                "{}, at most {max} allowed",
                crate::count(report.cycles.len(), "module cycle", "module cycles")
            ),
            modules: Vec::new(),
            locations: Vec::new(),
        });
        let edges = cycle_edges(report);
        // Point at the references of the cut list first: they are the cheapest to change.
        let cut: BTreeSet<(&str, &str)> = report
            .cut
            .iter()
            .map(|edge| (edge.from.as_str(), edge.to.as_str()))
            .collect();
        for cycle in &report.cycles {
            let inside = |edge: &&Edge| cycle.members.contains(&edge.from);
            let mut locations: Vec<Location> = edges
                .iter()
                .filter(inside)
                .filter(|edge| cut.contains(&(edge.from.as_str(), edge.to.as_str())))
                .flat_map(|edge| edge.locations.iter().cloned())
                .collect();
            if locations.is_empty() {
                locations = edges
                    .iter()
                    .filter(inside)
                    .flat_map(|edge| edge.locations.iter().cloned())
                    .collect();
            }
            acc.push(Finding {
                code: Code::ModuleCycle,
                message: format!(
                    "cycle through `{}` (weight {}); the locations are the references to cut",
                    cycle.members.join("`, `"),
                    cycle.weight
                ),
                modules: cycle.members.clone(),
                locations,
            });
        }
    }
    if let Some(max) = rules.max_bidirectional
        && report.bidirectional.len() > max
    {
        acc.push(Finding {
            code: Code::BidirectionalLimit,
            message: format!(
                "{}, at most {max} allowed",
                crate::count(
                    report.bidirectional.len(),
                    "two-way module pair",
                    "two-way module pairs"
                )
            ),
            modules: Vec::new(),
            locations: Vec::new(),
        });
        let lifted = lifted_edges(report);
        for pair in &report.bidirectional {
            acc.push(Finding {
                code: Code::BidirectionalDependency,
                message: format!(
                    "`{}` and `{}` depend on each other: {} one way, {} the other",
                    pair.a,
                    pair.b,
                    items(&pair.a_to_b_items),
                    items(&pair.b_to_a_items)
                ),
                modules: vec![pair.a.clone(), pair.b.clone()],
                locations: pair_locations(&lifted, &pair.a, &pair.b),
            });
        }
    }
}

/// The `new-cycle` findings of one cycle whose edges `new` the baseline does not have in a cycle.
///
/// One added line can pull dozens of modules into a cycle, and every old edge between them is
/// then new *to a cycle*: listing all their references buries the line that did it (issue 17,
/// item 6: 290 annotations over a dozen untouched files for one line in regex-automata). So the
/// cause is told apart: an edge the baseline did not have at all is a new dependency, and each
/// one is a finding at its own references, with the path by which it closes the cycle and the
/// cycle's members, once. The old edges it pulled in are only counted. A baseline written before
/// it listed every edge cannot tell the two apart; then each new edge is a finding.
fn new_cycle_findings(
    baseline: &Baseline,
    cycle: &crate::report::Cycle,
    inside: &[&Edge],
    new: &[&Edge],
    acc: &mut Vec<Finding>,
) {
    if new.is_empty() {
        return;
    }
    let added: Vec<&Edge> = match &baseline.edges {
        Some(all) => {
            let all: BTreeSet<(&str, &str)> = all
                .iter()
                .map(|(from, to)| (from.as_str(), to.as_str()))
                .collect();
            new.iter()
                .copied()
                .filter(|edge| !all.contains(&(edge.from.as_str(), edge.to.as_str())))
                .collect()
        }
        None => Vec::new(),
    };
    // Without a new dependency (an old baseline, or one written with another scope), every edge
    // new to the cycle is a possible cause.
    let causes: &[&Edge] = if added.is_empty() { new } else { &added };
    let pulled_in = new.len() - added.len();
    for edge in causes {
        let path = cycle_path(inside, edge);
        let what = if added.is_empty() {
            "edge new to a cycle"
        } else {
            "new dependency"
        };
        let mut message = format!(
            "{what} `{}` -> `{}` closes the cycle `{}`",
            edge.from,
            edge.to,
            path.join("` -> `")
        );
        let _ = write!(
            message,
            "; the cycle has {}: `{}`",
            crate::count(cycle.members.len(), "module", "modules"),
            cycle.members.join("`, `")
        );
        if !added.is_empty() && pulled_in > 0 {
            let _ = write!(
                message,
                "; it pulls {} into the cycle",
                crate::count(pulled_in, "existing dependency", "existing dependencies")
            );
        }
        if baseline.edges.is_none() {
            message.push_str(
                "; the baseline does not list every edge (written by an older fig), so each edge \
                 new to the cycle is reported: write it again to see only new dependencies",
            );
        }
        acc.push(Finding {
            code: Code::NewCycle,
            message,
            modules: cycle.members.clone(),
            locations: edge.locations.clone(),
        });
    }
}

/// The cycle `edge` closes: `edge.from`, `edge.to`, then the shortest way back to `edge.from`
/// along the cycle's other edges (breadth first, neighbours in id order, so it is deterministic).
fn cycle_path(inside: &[&Edge], edge: &Edge) -> Vec<ModuleId> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for other in inside {
        if (other.from.as_str(), other.to.as_str()) != (edge.from.as_str(), edge.to.as_str()) {
            next.entry(other.from.as_str())
                .or_default()
                .push(other.to.as_str());
        }
    }
    for targets in next.values_mut() {
        targets.sort_unstable();
    }
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([edge.to.as_str()]);
    let mut found = edge.to == edge.from;
    while let Some(node) = queue.pop_front() {
        if node == edge.from {
            found = true;
            break;
        }
        for &target in next.get(node).map(Vec::as_slice).unwrap_or_default() {
            if target != edge.to && !came_from.contains_key(target) {
                came_from.insert(target, node);
                queue.push_back(target);
            }
        }
    }
    let mut back = vec![edge.from.clone()];
    if found {
        let mut node = edge.from.as_str();
        while node != edge.to {
            node = came_from[node];
            back.push(node.to_owned());
        }
    } else {
        back.push(edge.to.clone());
    }
    back.reverse();
    // `to ... from`, then closed by the edge itself: from -> to -> ... -> from.
    let mut path = vec![edge.from.clone()];
    path.extend(back);
    path
}

fn check_baseline(report: &Report, rules: &Rules, baseline: &Baseline, acc: &mut Vec<Finding>) {
    if rules.no_new_cycles {
        let known: BTreeMap<(&str, &str), &BaselineEdge> = baseline
            .cycle_edges
            .iter()
            .map(|edge| ((edge.from.as_str(), edge.to.as_str()), edge))
            .collect();
        let edges = cycle_edges(report);
        for cycle in &report.cycles {
            let inside: Vec<&Edge> = edges
                .iter()
                .filter(|edge| cycle.members.contains(&edge.from))
                .collect();
            let new: Vec<&Edge> = inside
                .iter()
                .copied()
                .filter(|edge| !known.contains_key(&(edge.from.as_str(), edge.to.as_str())))
                .collect();
            new_cycle_findings(baseline, cycle, &inside, &new, acc);
            for edge in inside {
                let Some(known_edge) = known.get(&(edge.from.as_str(), edge.to.as_str())) else {
                    continue;
                };
                let grown: Vec<String> = edge
                    .items
                    .iter()
                    .filter(|item| !known_edge.items.contains(item))
                    .cloned()
                    .collect();
                if !grown.is_empty() {
                    acc.push(Finding {
                        code: Code::CycleGrew,
                        message: format!(
                            "`{}` -> `{}` is part of a cycle in the baseline and now also uses {}",
                            edge.from,
                            edge.to,
                            items(&grown)
                        ),
                        modules: vec![edge.from.clone(), edge.to.clone()],
                        locations: edge.locations.clone(),
                    });
                }
            }
        }
    }
    if rules.no_new_bidirectional {
        let known: BTreeSet<(&str, &str)> = baseline
            .bidirectional
            .iter()
            .map(|pair| (pair.a.as_str(), pair.b.as_str()))
            .collect();
        let lifted = lifted_edges(report);
        let old_edges: Option<BTreeSet<(&str, &str)>> = baseline.edges.as_ref().map(|edges| {
            edges
                .iter()
                .map(|(from, to)| (from.as_str(), to.as_str()))
                .collect()
        });
        for pair in &report.bidirectional {
            if known.contains(&(pair.a.as_str(), pair.b.as_str())) {
                continue;
            }
            // When one direction is old, the other is what changed: point at it alone, as a
            // new cycle points at the new dependency (issue 17, item 6).
            let old_direction = old_edges.as_ref().and_then(|edges| {
                match (
                    edges.contains(&(pair.a.as_str(), pair.b.as_str())),
                    edges.contains(&(pair.b.as_str(), pair.a.as_str())),
                ) {
                    (true, false) => {
                        Some((&pair.b, &pair.a, &pair.b_to_a_items, &pair.a_to_b_items))
                    }
                    (false, true) => {
                        Some((&pair.a, &pair.b, &pair.a_to_b_items, &pair.b_to_a_items))
                    }
                    _ => None,
                }
            });
            if let Some((from, to, new_items, old_items)) = old_direction {
                acc.push(Finding {
                    code: Code::NewBidirectionalDependency,
                    message: format!(
                        "new dependency `{from}` -> `{to}` ({}) makes a two-way pair: `{to}` already depends on `{from}` ({})",
                        items(new_items),
                        crate::count(old_items.len(), "item", "items")
                    ),
                    modules: vec![pair.a.clone(), pair.b.clone()],
                    locations: lifted
                        .iter()
                        .filter(|edge| &edge.from == from && &edge.to == to)
                        .flat_map(|edge| edge.locations.iter().cloned())
                        .collect(),
                });
                continue;
            }
            {
                acc.push(Finding {
                    code: Code::NewBidirectionalDependency,
                    message: format!(
                        "`{}` and `{}` now depend on each other ({} one way, {} the other), which the baseline does not have",
                        pair.a,
                        pair.b,
                        items(&pair.a_to_b_items),
                        items(&pair.b_to_a_items)
                    ),
                    modules: vec![pair.a.clone(), pair.b.clone()],
                    locations: pair_locations(&lifted, &pair.a, &pair.b),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_match(pattern: &str, module: &str, expected: bool) {
        let pattern = Pattern::parse(pattern).expect("valid pattern");
        assert_eq!(pattern.matches(module), expected, "{pattern} vs {module}");
    }

    #[test]
    fn patterns() {
        check_match("shop::display::**", "shop::display", true);
        check_match("shop::display::**", "shop::display::page::cart", true);
        check_match("shop::display::**", "shop::displays", false);
        check_match("shop::*", "shop::order", true);
        check_match("shop::*", "shop", false);
        check_match("shop::*", "shop::order::repo", false);
        check_match("**::repo", "shop::order::repo", true);
        check_match("shop::*_repo", "shop::order_repo", true);
        check_match("shop::*_repo", "shop::order", false);
        check_match("shop::**::api", "shop::api", true);
        check_match("shop::**::api", "shop::a::b::api", true);
        check_match("shop", "shop", true);
        check_match("shop", "shop::order", false);
    }

    #[test]
    fn bad_patterns() {
        for bad in ["", "shop::", "shop::::x", "shop/order", "shop::a**"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn codes_are_kebab_case_and_unique() {
        let codes: BTreeSet<&str> = Code::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(codes.len(), Code::ALL.len());
        for code in codes {
            assert!(
                code.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'),
                "{code}"
            );
        }
    }

    use std::path::PathBuf;

    use crate::report::{Bidirectional, Cycle, EdgeScope, Hierarchy, Metrics, Module, Usage};

    /// A report over `edges` (`from`, `to`, items), with the given cycles; two-way pairs are
    /// derived from the edges. Every module named gets a `Module`.
    fn report(edges: &[(&str, &str, &[&str])], cycles: &[&[&str]]) -> Report {
        let mut ids: BTreeSet<&str> = BTreeSet::new();
        for (from, to, _) in edges {
            ids.extend([*from, *to]);
        }
        let edge_list: Vec<Edge> = edges
            .iter()
            .enumerate()
            .map(|(idx, (from, to, items))| Edge {
                from: (*from).to_owned(),
                to: (*to).to_owned(),
                weight: items.len() as u32,
                items: items.iter().map(|item| (*item).to_owned()).collect(),
                hierarchy: Hierarchy::Cross,
                usage: Usage::Code,
                test_only: false,
                locations: vec![Location {
                    file: PathBuf::from("src/lib.rs"),
                    line: idx as u32 + 1,
                    column: 1,
                }],
                resolutions: Vec::new(),
            })
            .collect();
        let mut bidirectional = Vec::new();
        for a in &edge_list {
            if a.from < a.to
                && let Some(b) = edge_list.iter().find(|b| b.from == a.to && b.to == a.from)
            {
                bidirectional.push(Bidirectional {
                    a: a.from.clone(),
                    b: a.to.clone(),
                    a_to_b_weight: a.weight,
                    b_to_a_weight: b.weight,
                    a_to_b_items: a.items.clone(),
                    b_to_a_items: b.items.clone(),
                });
            }
        }
        Report {
            workspace_root: PathBuf::from("/w"),
            scope: EdgeScope {
                include_hierarchical: false,
                include_test_only: false,
            },
            crates: Vec::new(),
            modules: ids
                .iter()
                .map(|id| Module {
                    id: (*id).to_owned(),
                    krate: "w".to_owned(),
                    parent: None,
                    file: PathBuf::from("src/lib.rs"),
                    line: 1,
                    lines_of_code: 1,
                    inline: false,
                    cfg: None,
                    test_only: false,
                    in_macro: false,
                    n_traits: 0,
                    n_types: 0,
                })
                .collect(),
            edges: edge_list,
            uncertain_edges: Vec::new(),
            crate_edges: Vec::new(),
            cycles: cycles
                .iter()
                .map(|members| Cycle {
                    members: members.iter().map(|member| (*member).to_owned()).collect(),
                    weight: 1,
                })
                .collect(),
            crate_cycles: Vec::new(),
            elementary_cycles: Vec::new(),
            elementary_cycles_truncated: false,
            bidirectional,
            cut: Vec::new(),
            cut_exact: true,
            suggestions: Vec::new(),
            metrics: Metrics::default(),
            services: Vec::new(),
            service_edges: Vec::new(),
            skipped_files: Vec::new(),
            endpoints: Vec::new(),
            domains: Vec::new(),
        }
    }

    fn rules() -> Rules {
        Rules {
            forbid: Vec::new(),
            allow_only: Vec::new(),
            layers: Vec::new(),
            max_cycles: None,
            max_bidirectional: None,
            no_new_cycles: true,
            no_new_bidirectional: true,
        }
    }

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text).expect("valid pattern")
    }

    /// The codes found, and the lines of their locations.
    #[track_caller]
    fn check_codes(
        report: &Report,
        rules: &Rules,
        baseline: Option<&Baseline>,
        expected: &[(&str, &[u32])],
    ) {
        let found: Vec<(&str, Vec<u32>)> = check(report, rules, baseline)
            .iter()
            .map(|finding| {
                (
                    finding.code.as_str(),
                    finding
                        .locations
                        .iter()
                        .map(|location| location.line)
                        .collect(),
                )
            })
            .collect();
        let expected: Vec<(&str, Vec<u32>)> = expected
            .iter()
            .map(|(code, lines)| (*code, lines.to_vec()))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn allow_only_permits_listed_targets_and_itself() {
        let report = report(
            &[
                ("w::money", "w::money::fmt", &["fmt"]),
                ("w::money", "w::store", &["Table"]),
                ("w::money", "w::units", &["Unit"]),
            ],
            &[],
        );
        let mut rules = rules();
        rules.allow_only.push(AllowRule {
            from: pattern("w::money::**"),
            to: vec![pattern("w::units")],
            reason: None,
        });
        check_codes(&report, &rules, None, &[("dependency-not-allowed", &[2])]);
    }

    #[test]
    fn unmatched_patterns_are_findings() {
        let report = report(&[("w::a", "w::b", &["B"])], &[]);
        let mut rules = rules();
        rules.forbid.push(DependencyRule {
            from: pattern("w::a"),
            to: pattern("w::typo::**"),
            reason: None,
        });
        check_codes(&report, &rules, None, &[("unmatched-pattern", &[])]);
    }

    #[test]
    fn limits_list_each_cycle_and_pair() {
        let report = report(
            &[("w::a", "w::b", &["B"]), ("w::b", "w::a", &["A"])],
            &[&["w::a", "w::b"]],
        );
        let mut rules = rules();
        rules.max_cycles = Some(1);
        rules.max_bidirectional = Some(1);
        check_codes(&report, &rules, None, &[]);
        rules.max_cycles = Some(0);
        rules.max_bidirectional = Some(0);
        check_codes(
            &report,
            &rules,
            None,
            &[
                ("cycle-limit", &[]),
                ("module-cycle", &[1, 2]),
                ("bidirectional-limit", &[]),
                ("bidirectional-dependency", &[1, 2]),
            ],
        );
    }

    #[test]
    fn baseline_accepts_the_same_structure_and_flags_growth() {
        let before = report(
            &[("w::a", "w::b", &["B"]), ("w::b", "w::a", &["A"])],
            &[&["w::a", "w::b"]],
        );
        let known = baseline(&before);
        check_codes(&before, &rules(), Some(&known), &[]);
        // The same cycle now uses one more item: it grew.
        let grown = report(
            &[("w::a", "w::b", &["B"]), ("w::b", "w::a", &["A", "A::new"])],
            &[&["w::a", "w::b"]],
        );
        check_codes(&grown, &rules(), Some(&known), &[("cycle-grew", &[2])]);
        // A third module joins the cycle: the new edges are a new cycle.
        let joined = report(
            &[
                ("w::a", "w::b", &["B"]),
                ("w::b", "w::a", &["A"]),
                ("w::b", "w::c", &["C"]),
                ("w::c", "w::a", &["A"]),
            ],
            &[&["w::a", "w::b", "w::c"]],
        );
        // Two new dependencies close it: each is a finding at its own reference.
        check_codes(
            &joined,
            &rules(),
            Some(&known),
            &[("new-cycle", &[3]), ("new-cycle", &[4])],
        );
        // Both comparisons can be turned off.
        let mut lenient = rules();
        lenient.no_new_cycles = false;
        lenient.no_new_bidirectional = false;
        check_codes(&joined, &lenient, Some(&known), &[]);
    }

    /// Issue 17, item 6: one new dependency that pulls a chain of old ones into a cycle is one
    /// finding, at its own reference, naming the path it closes and the cycle's members; the old
    /// edges are counted, not listed.
    #[test]
    fn a_new_cycle_is_reported_at_the_edge_that_closes_it() {
        let chain: &[(&str, &str, &[&str])] = &[
            ("w::a", "w::b", &["B"]),
            ("w::b", "w::c", &["C"]),
            ("w::c", "w::d", &["D"]),
        ];
        let before = report(chain, &[]);
        let known = baseline(&before);
        let mut edges = chain.to_vec();
        edges.push(("w::d", "w::a", &["A"]));
        let after = report(&edges, &[&["w::a", "w::b", "w::c", "w::d"]]);
        check_codes(&after, &rules(), Some(&known), &[("new-cycle", &[4])]);
        let findings = check(&after, &rules(), Some(&known));
        assert_eq!(
            findings[0].message,
            "new dependency `w::d` -> `w::a` closes the cycle `w::d` -> `w::a` -> `w::b` -> \
             `w::c` -> `w::d`; the cycle has 4 modules: `w::a`, `w::b`, `w::c`, `w::d`; it pulls 3 \
             existing dependencies into the cycle"
        );
        // A baseline from before the edge list cannot tell the new dependency from the old ones.
        let old = Baseline {
            edges: None,
            ..known
        };
        check_codes(
            &after,
            &rules(),
            Some(&old),
            &[
                ("new-cycle", &[1]),
                ("new-cycle", &[2]),
                ("new-cycle", &[3]),
                ("new-cycle", &[4]),
            ],
        );
    }
}
