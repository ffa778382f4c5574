//! Module graph analysis of Cargo workspaces.
//!
//! Entry point: [`analyze`] loads a workspace, builds the module tree and the module edges of
//! every member crate, and computes cycles, the cut list, suggestions, metrics and candidate
//! services into a [`report::Report`].
//!
//! The pipeline, one `tracing` span per phase:
//!
//! 1. `load` (`load.rs`, the only IO): `cargo metadata --no-deps --offline`, the member crates,
//!    their targets and their path dependencies on each other.
//! 2. `parse` (`modules.rs`): every file of every target's module tree, in parallel, reduced to
//!    plain facts per module (items, `use`s, paths, method calls).
//! 3. `resolve` (`resolve.rs`): names to modules, references to weighted edges; method calls by
//!    their receiver's type (`infer.rs`).
//! 4. the graph algorithms (`cycles.rs`, `metrics.rs`, `services.rs`) on the in-scope edges.
//! 5. `endpoints` (`endpoints.rs`): the HTTP routes declared in the code (axum, actix-web,
//!    Rocket; the files that declare routes are parsed again), what each handler reaches, the
//!    domain that owns it; then the candidate services (`services.rs`), with their endpoints.
//! 6. `suggest` (`suggest.rs`): an extracted interface per edge of the cut list.
//!
//! A key design decision is that resolution is purely syntactic: no macro expansion, no
//! dependency sources, and type inference only for method receivers, local to a function body
//! and over the syntax (`infer.rs`). That makes a 400k-line workspace take about as long as
//! parsing it, and it works offline on a workspace whose dependencies were never downloaded. The
//! price is a few heuristics, documented where they are made (`resolve.rs`, `infer.rs`). Every
//! item of an edge says how it was resolved ([`report::Resolution`]); a method call matched to a
//! workspace type by its name alone is uncertain and kept out of the edges unless
//! [`Options::include_uncertain`] asks for it.
//!
//! Cycles, two-way pairs, the cut list and suggestions run on edges *lifted* to the level where
//! the paths of their two ends part (`a::x -> b::y` counts as `a -> b`), so a tangle between the
//! subtrees of one parent shows even when no single modules form it (see `lift`).
//!
//! With [`Options::depth`], modules below that depth are merged into their ancestor before the
//! graph algorithms run, so that cycles between subsystems show even when they run through
//! submodules.
//!
//! **Invariant:** the report is deterministic: every list is sorted, whatever the thread count.
//!
//! **Invariant:** broken input is data: an unreadable or unparsable file is a
//! [`report::SkippedFile`] and the run goes on; only a workspace `cargo metadata` rejects is an
//! [`Error`].

pub mod check;
pub mod cycles;
pub mod endpoints;
mod error;
mod infer;
mod load;
pub mod metrics;
mod modules;
pub mod prelude;
pub mod report;
mod resolve;
pub mod services;
mod suggest;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashMap;

pub use crate::error::Error;
use crate::report::{CrateEdge, CrateInfo, Edge, EdgeScope, Hierarchy, Report};

/// The elementary cycle cap used unless the caller chooses another.
pub const DEFAULT_ELEMENTARY_CYCLE_CAP: usize = 100;

/// A phase of [`analyze`], reported to [`Options::progress`] when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Running `cargo metadata`.
    Load,
    /// Reading and parsing the source files.
    Parse,
    /// Resolving names into module edges.
    Resolve,
    /// Cycles, cut list, metrics.
    Graph,
    /// HTTP endpoints, what they reach, candidate services.
    Endpoints,
    /// Interface suggestions.
    Suggest,
}

/// Called when a phase starts.
pub type ProgressFn = Arc<dyn Fn(Phase) + Send + Sync>;

/// How to run [`analyze`].
#[derive(Clone)]
pub struct Options {
    /// Which edges the graph algorithms look at.
    pub scope: EdgeScope,
    /// Also analyse test and bench targets (`tests/*.rs`, `benches/*.rs`).
    pub include_tests: bool,
    /// Also analyse example targets (`examples/*.rs`).
    pub include_examples: bool,
    /// At most this many elementary cycles are listed.
    pub elementary_cycle_cap: usize,
    /// Told when each phase starts (the CLI shows it on a terminal).
    pub progress: Option<ProgressFn>,
    /// Collapse every module deeper than this into its ancestor at this depth (the crate root is
    /// depth 0, `shop::order` depth 1): the report is then about subsystems, and a cycle that
    /// runs through submodules (`display::home -> order -> member::profile -> display`) shows
    /// between their top-level modules. `None` keeps every module.
    pub depth: Option<usize>,
    /// Also count method calls matched to a workspace type by their name alone (the receiver's
    /// type unknown) as edges, for cycles, the cut list and suggestions too. Off by default: they
    /// are listed apart in [`Report::uncertain_edges`].
    pub include_uncertain: bool,
}

impl Options {
    /// The defaults of `fig analyze`: cross-subtree, non-test edges; libs and bins only; at most
    /// [`DEFAULT_ELEMENTARY_CYCLE_CAP`] elementary cycles; no progress callback.
    pub fn new() -> Self {
        Options {
            scope: EdgeScope {
                include_hierarchical: false,
                include_test_only: false,
            },
            include_tests: false,
            include_examples: false,
            elementary_cycle_cap: DEFAULT_ELEMENTARY_CYCLE_CAP,
            progress: None,
            depth: None,
            include_uncertain: false,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("scope", &self.scope)
            .field("include_tests", &self.include_tests)
            .field("include_examples", &self.include_examples)
            .field("elementary_cycle_cap", &self.elementary_cycle_cap)
            .field("progress", &self.progress.as_ref().map(|_| "Fn(Phase)"))
            .field("depth", &self.depth)
            .field("include_uncertain", &self.include_uncertain)
            .finish()
    }
}

/// `1 module cycle`, `2 module cycles`: a count and its noun, singular for one (messages only).
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Whether an edge counts for cycles, the cut list, suggestions, metrics and services.
pub fn in_scope(edge: &Edge, scope: EdgeScope) -> bool {
    (scope.include_hierarchical || edge.hierarchy == Hierarchy::Cross)
        && (scope.include_test_only || !edge.test_only)
}

/// Analyses the Cargo workspace or package at `path` (a directory or a `Cargo.toml`).
///
/// Fails only when the workspace cannot be loaded at all; files that cannot be read or parsed
/// are listed in [`Report::skipped_files`].
pub fn analyze(path: &Path, options: &Options) -> Result<Report, Error> {
    let _span = tracing::info_span!("analyze", path = %path.display()).entered();
    let progress = |phase: Phase| {
        if let Some(progress) = &options.progress {
            progress(phase);
        }
    };

    progress(Phase::Load);
    let selection = load::TargetSelection {
        tests: options.include_tests,
        examples: options.include_examples,
    };
    let workspace = load::load_workspace(path, selection)?;

    progress(Phase::Parse);
    let roots = target_roots(&workspace);
    let extracted = modules::extract(&roots, &load::read_source);

    progress(Phase::Resolve);
    let crate_scope = crate_scope(&workspace, &roots, &extracted);
    let mut resolver = resolve::Resolver::new(&extracted, &crate_scope);
    let resolve::Edges { edges, uncertain } =
        resolve::edges(&mut resolver, &extracted.files, options.include_uncertain);
    let modules: Vec<report::Module> = extracted
        .modules
        .iter()
        .map(|facts| facts.module.clone())
        .collect();
    let (modules, edges, uncertain_edges) = match options.depth {
        Some(depth) => {
            let (collapsed, edges) = collapse(&modules, &edges, depth);
            let (_, uncertain) = collapse(&modules, &uncertain, depth);
            (collapsed, edges, uncertain)
        }
        None => (modules, edges, uncertain),
    };

    progress(Phase::Graph);
    let crates: Vec<CrateInfo> = workspace
        .crates
        .iter()
        .map(|krate| {
            let mut depends_on: Vec<String> = krate
                .deps
                .iter()
                .filter(|dep| dep.normal)
                .map(|dep| dep.krate.clone())
                .collect();
            depends_on.sort();
            depends_on.dedup();
            CrateInfo {
                name: krate.name.clone(),
                package: krate.package.clone(),
                version: krate.version.clone(),
                manifest_path: krate.manifest_path.clone(),
                targets: krate.targets.clone(),
                depends_on,
            }
        })
        .collect();
    let scoped: Vec<&Edge> = edges
        .iter()
        .filter(|edge| in_scope(edge, options.scope))
        .collect();
    let crate_edges = crate_edges(&modules, &scoped);
    // Cycles, pairs, the cut list and suggestions are about tangles between sibling subtrees.
    let lifted = lift(&modules, &scoped);
    let lifted_refs: Vec<&Edge> = lifted.iter().collect();
    let cycle_analysis = cycles::analyze(&modules, &lifted_refs, options.elementary_cycle_cap);
    let crate_cycles = cycles::crate_cycles(&crate_edges);
    // Metrics and services describe the code that ships: test modules (`#[cfg(test)] mod
    // tests`, test and bench targets) would add their lines to a crate and join the group of
    // the module they test, unless tests are asked for.
    let test_code = test_code(&workspace, &extracted);
    let shipped: Vec<report::Module> = modules
        .iter()
        .filter(|module| options.scope.include_test_only || !test_code.contains(module.id.as_str()))
        .cloned()
        .collect();
    let shipped_ids: rustc_hash::FxHashSet<&str> =
        shipped.iter().map(|module| module.id.as_str()).collect();
    let shipped_edges: Vec<&Edge> = scoped
        .iter()
        .copied()
        .filter(|edge| {
            shipped_ids.contains(edge.from.as_str()) && shipped_ids.contains(edge.to.as_str())
        })
        .collect();
    let metrics = metrics::compute(&shipped, &crates, &shipped_edges, &crate_edges);
    // Endpoints are found on the uncollapsed module tree: handlers are functions.
    progress(Phase::Endpoints);
    let (endpoints, domains) =
        endpoints::discover(&extracted, &mut resolver, &scoped, &load::read_source);
    let (mut services, service_edges) = services::candidates(&shipped, &shipped_edges);
    services::assign_endpoints(&mut services, &endpoints);

    progress(Phase::Suggest);
    let suggestions = suggest::suggestions(&cycle_analysis.cut, &lifted, &mut resolver);

    Ok(Report {
        workspace_root: workspace.root,
        scope: options.scope,
        crates,
        modules,
        edges,
        uncertain_edges,
        crate_edges,
        cycles: cycle_analysis.cycles,
        crate_cycles,
        elementary_cycles: cycle_analysis.elementary,
        elementary_cycles_truncated: cycle_analysis.elementary_truncated,
        bidirectional: cycle_analysis.bidirectional,
        cut: cycle_analysis.cut,
        cut_exact: cycle_analysis.cut_exact,
        suggestions,
        metrics,
        services,
        service_edges,
        skipped_files: extracted.skipped,
        endpoints,
        domains,
    })
}

/// The ids of test code: modules that exist only under `#[cfg(test)]`, and every module of a
/// test or bench target (analysed with `--all-targets`).
fn test_code<'m>(
    workspace: &load::Workspace,
    extracted: &'m modules::Extracted,
) -> rustc_hash::FxHashSet<&'m str> {
    let target_kinds: Vec<&str> = workspace
        .crates
        .iter()
        .flat_map(|krate| krate.targets.iter().map(|target| target.kind.as_str()))
        .collect();
    extracted
        .modules
        .iter()
        .filter(|facts| {
            facts.module.test_only
                || matches!(target_kinds.get(facts.target), Some(&("test" | "bench")))
        })
        .map(|facts| facts.module.id.as_str())
        .collect()
}

/// The root module of every target: the lib is `crate_name`, a bin-only package's first bin is
/// `crate_name` too, any other target is `crate_name::<kind>::<target name>` (e.g.
/// `shop::bin::shop`, `shop::test::api`).
fn target_roots(workspace: &load::Workspace) -> Vec<modules::TargetRoot> {
    let mut res = Vec::new();
    for krate in &workspace.crates {
        let mut root_taken = false;
        for target in &krate.targets {
            let id = if !root_taken
                && (target.kind == "lib" || (target.kind == "bin" && !krate.has_lib))
            {
                root_taken = true;
                krate.name.clone()
            } else {
                format!(
                    "{}::{}::{}",
                    krate.name,
                    target.kind,
                    target.name.replace('-', "_")
                )
            };
            res.push(modules::TargetRoot {
                id,
                krate: krate.name.clone(),
                file: target.root.clone(),
            });
        }
    }
    res
}

/// Which workspace crates each target can name, and under which names.
fn crate_scope(
    workspace: &load::Workspace,
    roots: &[modules::TargetRoot],
    extracted: &modules::Extracted,
) -> resolve::CrateScope {
    let module_index: FxHashMap<&str, u32> = extracted
        .modules
        .iter()
        .enumerate()
        .map(|(index, facts)| (facts.module.id.as_str(), index as u32))
        .collect();
    // A crate's lib root module has the crate's name as id (when it has a lib).
    let lib_root = |krate: &str| -> Option<u32> {
        let loaded = workspace
            .crates
            .iter()
            .find(|loaded| loaded.name == krate)?;
        if !loaded.has_lib {
            return None;
        }
        module_index.get(krate).copied()
    };
    let mut scope = resolve::CrateScope::default();
    let mut extern_crates_by_target: Vec<Vec<(&str, &str)>> = vec![Vec::new(); roots.len()];
    for facts in &extracted.modules {
        for (name, alias) in &facts.extern_crates {
            if let Some(list) = extern_crates_by_target.get_mut(facts.target) {
                list.push((name.as_str(), alias.as_str()));
            }
        }
    }
    for (target_index, root) in roots.iter().enumerate() {
        let mut names: FxHashMap<String, u32> = FxHashMap::default();
        let krate = workspace
            .crates
            .iter()
            .find(|loaded| loaded.name == root.krate);
        let mut edition_2015 = false;
        if let Some(krate) = krate {
            edition_2015 = krate.edition_2015;
            for dep in &krate.deps {
                if let Some(root_module) = lib_root(&dep.krate) {
                    names.insert(dep.extern_name.clone(), root_module);
                }
            }
            // Bins, tests and examples use their own package's lib by its name.
            if root.id != krate.name
                && let Some(own) = lib_root(&krate.name)
            {
                names.insert(krate.name.clone(), own);
            }
        }
        let own_root = module_index.get(root.id.as_str()).copied();
        for &(name, alias) in &extern_crates_by_target[target_index] {
            let target_module = if name == "self" {
                own_root
            } else {
                names.get(name).copied()
            };
            if let Some(module) = target_module {
                names.insert(alias.to_owned(), module);
            }
        }
        scope.extern_names.push(names);
        scope.edition_2015.push(edition_2015);
    }
    scope
}

/// Rolls module edges up to crate edges (between two different crates), sorted by (from, to).
fn crate_edges(modules: &[report::Module], edges: &[&Edge]) -> Vec<CrateEdge> {
    let krate_of: FxHashMap<&str, &str> = modules
        .iter()
        .map(|module| (module.id.as_str(), module.krate.as_str()))
        .collect();
    let mut acc: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for edge in edges {
        let (Some(from), Some(to)) = (
            krate_of.get(edge.from.as_str()),
            krate_of.get(edge.to.as_str()),
        ) else {
            continue;
        };
        if from != to {
            let weight = acc.entry((from, to)).or_default();
            *weight = weight.saturating_add(edge.weight);
        }
    }
    acc.into_iter()
        .map(|((from, to), weight)| CrateEdge {
            from: from.to_owned(),
            to: to.to_owned(),
            weight,
        })
        .collect()
}

/// Merges every module deeper than `depth` into its ancestor at `depth`: lines and type counts
/// are added up, edges re-pointed and merged, edges inside one merged module dropped.
fn collapse(
    modules: &[report::Module],
    edges: &[Edge],
    depth: usize,
) -> (Vec<report::Module>, Vec<Edge>) {
    let _span = tracing::info_span!("collapse", depth).entered();
    let tree = Tree::new(modules);
    let representative = |id: &'_ str| -> String {
        let chain = tree.chain(id);
        // `chain` runs from the module up to its root: the ancestor at `depth` is counted from the end.
        let index = chain.len().saturating_sub(depth + 1);
        chain[index].to_owned()
    };
    let mut merged: BTreeMap<String, report::Module> = BTreeMap::new();
    let mut representatives: FxHashMap<&str, String> = FxHashMap::default();
    for module in modules {
        let rep = representative(&module.id);
        representatives.insert(module.id.as_str(), rep.clone());
        if rep == module.id {
            // Counts are added up below, from every module the representative stands for.
            merged.insert(
                rep,
                report::Module {
                    lines_of_code: 0,
                    n_traits: 0,
                    n_types: 0,
                    ..module.clone()
                },
            );
        }
    }
    for module in modules {
        if let Some(target) = merged.get_mut(&representatives[module.id.as_str()]) {
            target.lines_of_code = target.lines_of_code.saturating_add(module.lines_of_code);
            target.n_traits = target.n_traits.saturating_add(module.n_traits);
            target.n_types = target.n_types.saturating_add(module.n_types);
        }
    }
    let edges = merge_edges(
        edges.iter().filter_map(|edge| {
            let from = representatives.get(edge.from.as_str())?;
            let to = representatives.get(edge.to.as_str())?;
            Some((from.as_str(), to.as_str(), edge))
        }),
        &tree,
    );
    (merged.into_values().collect(), edges)
}

/// Lifts every edge to the level where the paths of its two ends part: `a::x::y -> b::z` becomes
/// `a -> b`, `a::x -> a::y` stays. Every lifted edge joins two siblings (or a module and its own
/// ancestor, for hierarchical edges), so a cycle found on the lifted graph is a tangle between
/// the subtrees of one parent, as Structure101 and Lattix report them: `display::home -> order`,
/// `order -> member` and `member::profile -> display` make the cycle `display -> order -> member`,
/// which an architect cutting the code into domains has to untangle even though no three single
/// modules form it. Edges between two crates are lifted to the crate roots.
pub(crate) fn lift(modules: &[report::Module], edges: &[&Edge]) -> Vec<Edge> {
    let _span = tracing::info_span!("lift").entered();
    let tree = Tree::new(modules);
    merge_edges(
        edges.iter().map(|edge| {
            let from_chain = tree.chain(&edge.from);
            let to_chain = tree.chain(&edge.to);
            // Walk both chains from their roots while they agree; the first place they differ is
            // the pair of siblings the edge runs between.
            let mut from_index = from_chain.len();
            let mut to_index = to_chain.len();
            while from_index > 0
                && to_index > 0
                && from_chain[from_index - 1] == to_chain[to_index - 1]
            {
                from_index -= 1;
                to_index -= 1;
            }
            // An index of 0 means one end is an ancestor of the other: that end stays itself.
            let from = from_chain[from_index.saturating_sub(1)];
            let to = to_chain[to_index.saturating_sub(1)];
            (from, to, *edge)
        }),
        &tree,
    )
}

/// The module tree, by id.
struct Tree<'a> {
    parent_of: FxHashMap<&'a str, &'a str>,
}

impl<'a> Tree<'a> {
    fn new(modules: &'a [report::Module]) -> Self {
        let parent_of = modules
            .iter()
            .filter_map(|module| Some((module.id.as_str(), module.parent.as_deref()?)))
            .collect();
        Tree { parent_of }
    }

    /// The module and its ancestors, up to its crate root.
    fn chain<'s>(&self, id: &'s str) -> Vec<&'s str>
    where
        'a: 's,
    {
        let mut chain = vec![id];
        let mut current = id;
        // Bounded: a malformed tree with a loop must not hang the run.
        while let Some(parent) = self.parent_of.get(current) {
            chain.push(parent);
            current = parent;
            if chain.len() > 1024 {
                break;
            }
        }
        chain
    }

    fn is_ancestor(&self, ancestor: &str, module: &str) -> bool {
        self.chain(module).iter().skip(1).any(|id| *id == ancestor)
    }
}

/// Merges edges re-pointed to new ends: weights added up, items, usage, test-only and locations
/// combined; an edge whose two new ends are the same module is dropped.
fn merge_edges<'e>(
    edges: impl Iterator<Item = (&'e str, &'e str, &'e Edge)>,
    tree: &Tree<'_>,
) -> Vec<Edge> {
    let mut merged_edges: BTreeMap<(&str, &str), Edge> = BTreeMap::new();
    for (from, to, edge) in edges {
        if from == to {
            continue;
        }
        let entry = merged_edges.entry((from, to)).or_insert_with(|| Edge {
            from: from.to_owned(),
            to: to.to_owned(),
            weight: 0,
            items: Vec::new(),
            hierarchy: if tree.is_ancestor(from, to) || tree.is_ancestor(to, from) {
                Hierarchy::Hierarchical
            } else {
                Hierarchy::Cross
            },
            usage: report::Usage::TypeOnly,
            test_only: true,
            locations: Vec::new(),
            resolutions: Vec::new(),
        });
        entry.weight = entry.weight.saturating_add(edge.weight);
        entry.items.extend(edge.items.iter().cloned());
        if edge.usage == report::Usage::Code {
            entry.usage = report::Usage::Code;
        }
        entry.test_only &= edge.test_only;
        entry.locations.extend(edge.locations.iter().cloned());
        entry.resolutions.extend(edge.resolutions.iter().cloned());
    }
    merged_edges
        .into_values()
        .map(|mut edge| {
            edge.items.sort();
            edge.items.dedup();
            edge.locations.sort();
            edge.locations.dedup();
            edge.locations.truncate(resolve::MAX_LOCATIONS);
            edge.resolutions.sort();
            edge.resolutions.dedup();
            edge
        })
        .collect()
}
