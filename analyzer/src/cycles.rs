//! Cycles in the module graph: strongly connected components, two-way pairs, elementary cycles and
//! the cut list (a minimum-weight feedback arc set).
//!
//! Everything here is value in, value out, and deterministic: nodes are numbered in the sorted order
//! of their ids, and every loop walks them in that order, so the same graph always yields the same
//! report.
//!
//! A module's references to itself are not dependencies: self-edges are ignored everywhere here.
//!
//! The cut list is solved one strongly connected component at a time (an edge between two
//! components is never on a cycle), as a linear order of the component's nodes: the cut is the set
//! of edges running backward. In turn:
//!
//! 1. up to 12 nodes, a dynamic programme over subsets of the nodes gives the optimum;
//! 2. otherwise, a lower bound from packing cycles, then the Eades–Lin–Smyth order improved by
//!    moving single nodes to their best place, putting back every cut edge whose return closes no
//!    cycle, and a few rounds of random kicks (fixed seed) followed by the same local search; an
//!    answer that meets the bound is proven optimal;
//! 3. up to 128 nodes, an exact search over the same states as the subset programme, pruned by the
//!    heuristic's weight, proves the answer optimal or finds a better one, within a work cap;
//! 4. up to 22 nodes, the subset programme settles what the search could not.
//!
//! Whatever is left keeps the heuristic answer and makes `cut_exact` false. Every search is capped
//! in steps in proportion to the size of the component, so the whole analysis stays near-linear.

use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use petgraph::graph::{DiGraph, NodeIndex};
use rustc_hash::FxHashMap;

use crate::report::{Bidirectional, CrateEdge, CutEdge, Cycle, Edge, Module, ModuleId};

/// Largest component solved exactly by the subset dynamic programme: `2^n * n` steps and `2^n`
/// words of memory (32 MiB at 22 nodes).
const EXACT_MAX_NODES: usize = 22;
/// Rounds of iterated local search: at most this many, and at most this budget over the number
/// of edges (so a huge component gets none).
const KICK_MAX_ROUNDS: u64 = 200;
const KICK_EDGE_BUDGET: u64 = 50_000;
/// Random node moves per round of iterated local search.
const KICKS: usize = 2;
/// Largest component tried with the bounded exact search (node sets are 128-bit masks).
const BOUNDED_MAX_NODES: usize = 128;
/// Most two- and three-cycles the bounded exact search packs for its bound.
const MAX_SHORT_CYCLES: usize = 4_096;
/// Steps of the bounded exact search allowed per edge of the component.
const BOUNDED_WORK_PER_EDGE: u64 = 10_000;
/// Steps of search allowed for listing elementary cycles, over the whole graph.
const ELEMENTARY_WORK_CAP: u64 = 4_000_000;
/// Passes of the node-moving improvement over one component.
const SIFT_MAX_PASSES: usize = 16;
/// Steps of search allowed for putting cut edges back, per component, per edge of the component.
const READD_WORK_PER_EDGE: u64 = 300;
/// Least search work allowed for a component, however small, in the steps below.
const MIN_WORK: u64 = 100_000;
/// Steps of search allowed for putting back one cut edge.
const READD_SEARCH_CAP: u64 = 5_000;
/// Steps of search allowed for the cycle-packing lower bound, per component, per edge.
const BOUND_WORK_PER_EDGE: u64 = 40;

/// The cycle-related part of a report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CycleAnalysis {
    /// Non-trivial strongly connected components, members sorted, components sorted.
    pub cycles: Vec<Cycle>,
    /// Elementary cycles, shortest first, each starting at its smallest id.
    pub elementary: Vec<Vec<ModuleId>>,
    /// True when more elementary cycles may exist than were listed (the cap or the work bound hit).
    pub elementary_truncated: bool,
    /// Pairs of modules that depend on each other directly, sorted by `(a, b)`.
    pub bidirectional: Vec<Bidirectional>,
    /// A minimum-weight (or, for huge components, small) set of edges whose removal leaves the
    /// graph acyclic, sorted by `(from, to)`.
    pub cut: Vec<CutEdge>,
    /// True when every component's cut is proven minimal.
    pub cut_exact: bool,
}

/// Analyses the cycles of the in-scope module graph.
///
/// `edges` may name modules missing from `modules`; they become nodes too. Parallel edges are
/// merged (weights added).
pub fn analyze(modules: &[Module], edges: &[&Edge], elementary_cap: usize) -> CycleAnalysis {
    let _span =
        tracing::info_span!("cycles", modules = modules.len(), edges = edges.len()).entered();
    let graph = Digraph::new(
        modules.iter().map(|module| module.id.as_str()),
        edges
            .iter()
            .map(|edge| (edge.from.as_str(), edge.to.as_str(), u64::from(edge.weight))),
    );
    let components = graph.components();
    let cycles = component_cycles(&graph, &components);
    let (elementary, elementary_truncated) = {
        let _span = tracing::info_span!("elementary_cycles").entered();
        elementary_cycles(&graph, &components, elementary_cap, ELEMENTARY_WORK_CAP)
    };
    let (cut, cut_exact) = {
        let _span = tracing::info_span!("cut").entered();
        feedback_arc_set(&graph, &components)
    };
    CycleAnalysis {
        cycles,
        elementary: elementary
            .into_iter()
            .map(|cycle| {
                cycle
                    .into_iter()
                    .map(|node| graph.ids[node].to_owned())
                    .collect()
            })
            .collect(),
        elementary_truncated,
        bidirectional: bidirectional(edges),
        cut: cut
            .into_iter()
            .map(|(from, to, weight)| CutEdge {
                from: graph.ids[from].to_owned(),
                to: graph.ids[to].to_owned(),
                weight: saturate(weight),
            })
            .collect(),
        cut_exact,
    }
}

/// Non-trivial strongly connected components of the crate graph.
pub fn crate_cycles(crate_edges: &[CrateEdge]) -> Vec<Cycle> {
    let graph = Digraph::new(
        std::iter::empty(),
        crate_edges
            .iter()
            .map(|edge| (edge.from.as_str(), edge.to.as_str(), u64::from(edge.weight))),
    );
    let components = graph.components();
    component_cycles(&graph, &components)
}

/// A directed graph with nodes numbered in sorted id order and merged, self-loop-free edges.
#[derive(Debug, Clone)]
pub(crate) struct Digraph<'a> {
    /// Node ids, sorted, distinct.
    pub(crate) ids: Vec<&'a str>,
    /// Out-edges of each node as `(target, weight)`, sorted by target.
    pub(crate) out: Vec<Vec<(usize, u64)>>,
}

/// Strongly connected components: which component each node is in, and the members of each.
#[derive(Debug, Clone)]
pub(crate) struct Components {
    pub(crate) of_node: Vec<usize>,
    /// Members of each component, sorted ascending.
    pub(crate) members: Vec<Vec<usize>>,
}

impl<'a> Digraph<'a> {
    pub(crate) fn new(
        nodes: impl Iterator<Item = &'a str>,
        edges: impl Iterator<Item = (&'a str, &'a str, u64)> + Clone,
    ) -> Digraph<'a> {
        let mut ids: Vec<&'a str> = nodes.collect();
        ids.extend(edges.clone().flat_map(|(from, to, _)| [from, to]));
        ids.sort_unstable();
        ids.dedup();
        let index: FxHashMap<&str, usize> =
            ids.iter().enumerate().map(|(idx, id)| (*id, idx)).collect();
        let mut out: Vec<Vec<(usize, u64)>> = vec![Vec::new(); ids.len()];
        for (from, to, weight) in edges {
            let (from, to) = (index[from], index[to]);
            if from != to {
                out[from].push((to, weight));
            }
        }
        for targets in &mut out {
            targets.sort_unstable_by_key(|(to, _)| *to);
            targets.dedup_by(|later, earlier| {
                let same = later.0 == earlier.0;
                if same {
                    earlier.1 += later.1;
                }
                same
            });
        }
        Digraph { ids, out }
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn components(&self) -> Components {
        let mut graph = DiGraph::<(), ()>::with_capacity(self.len(), 0);
        for _ in 0..self.len() {
            graph.add_node(());
        }
        for (from, targets) in self.out.iter().enumerate() {
            for &(to, _) in targets {
                graph.add_edge(NodeIndex::new(from), NodeIndex::new(to), ());
            }
        }
        let mut members: Vec<Vec<usize>> = petgraph::algo::tarjan_scc(&graph)
            .into_iter()
            .map(|component| {
                let mut nodes: Vec<usize> = component.into_iter().map(NodeIndex::index).collect();
                nodes.sort_unstable();
                nodes
            })
            .collect();
        members.sort_unstable();
        let mut of_node = vec![0; self.len()];
        for (component, nodes) in members.iter().enumerate() {
            for &node in nodes {
                of_node[node] = component;
            }
        }
        Components { of_node, members }
    }
}

fn saturate(weight: u64) -> u32 {
    u32::try_from(weight).unwrap_or(u32::MAX)
}

fn component_cycles(graph: &Digraph<'_>, components: &Components) -> Vec<Cycle> {
    let mut weights = vec![0u64; components.members.len()];
    for (from, targets) in graph.out.iter().enumerate() {
        for &(to, weight) in targets {
            if components.of_node[from] == components.of_node[to] {
                weights[components.of_node[from]] += weight;
            }
        }
    }
    // Members are sorted node numbers, so node order is id order and the components are already
    // sorted by their member lists.
    components
        .members
        .iter()
        .zip(weights)
        .filter(|(members, _)| members.len() > 1)
        .map(|(members, weight)| Cycle {
            members: members
                .iter()
                .map(|&node| graph.ids[node].to_owned())
                .collect(),
            weight: saturate(weight),
        })
        .collect()
}

fn bidirectional(edges: &[&Edge]) -> Vec<Bidirectional> {
    let mut merged: BTreeMap<(&str, &str), (u64, Vec<&str>)> = BTreeMap::new();
    for edge in edges {
        if edge.from == edge.to {
            continue;
        }
        let entry = merged
            .entry((edge.from.as_str(), edge.to.as_str()))
            .or_default();
        entry.0 += u64::from(edge.weight);
        entry.1.extend(edge.items.iter().map(String::as_str));
    }
    let items = |list: &[&str]| {
        let mut list: Vec<String> = list.iter().map(|item| (*item).to_owned()).collect();
        list.sort_unstable();
        list.dedup();
        list
    };
    merged
        .iter()
        .filter(|((from, to), _)| from < to)
        .filter_map(|(&(a, b), (a_to_b_weight, a_to_b_items))| {
            let (b_to_a_weight, b_to_a_items) = merged.get(&(b, a))?;
            Some(Bidirectional {
                a: a.to_owned(),
                b: b.to_owned(),
                a_to_b_weight: saturate(*a_to_b_weight),
                b_to_a_weight: saturate(*b_to_a_weight),
                a_to_b_items: items(a_to_b_items),
                b_to_a_items: items(b_to_a_items),
            })
        })
        .collect()
}

/// Lists elementary cycles shortest first, then in id order, each starting at its smallest node.
///
/// Lengths are tried in increasing order; for each length and each start node `s`, a depth-first
/// search walks only nodes greater than `s` in the same component, pruned by the distance back to
/// `s`. Work is bounded by `work_cap` steps; the second value is true when the listing stopped early
/// (cap or work bound), so more cycles may exist.
pub(crate) fn elementary_cycles(
    graph: &Digraph<'_>,
    components: &Components,
    cap: usize,
    work_cap: u64,
) -> (Vec<Vec<usize>>, bool) {
    let n = graph.len();
    let starts: Vec<usize> = (0..n)
        .filter(|&node| components.members[components.of_node[node]].len() > 1)
        .collect();
    if starts.is_empty() {
        return (Vec::new(), false);
    }
    if cap == 0 {
        return (Vec::new(), true);
    }
    let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (from, targets) in graph.out.iter().enumerate() {
        for &(to, _) in targets {
            reverse[to].push(from);
        }
    }
    let max_len = starts
        .iter()
        .map(|&node| components.members[components.of_node[node]].len())
        .max()
        .unwrap_or(0);
    let mut found: Vec<Vec<usize>> = Vec::new();
    let mut work = 0u64;
    // `dist[x]` is valid when `dist_stamp[x] == stamp`.
    let mut dist = vec![0usize; n];
    let mut dist_stamp = vec![0u64; n];
    let mut stamp = 0u64;
    let mut on_path = vec![false; n];
    let mut queue = VecDeque::new();
    for len in 2..=max_len {
        for &start in &starts {
            let component = components.of_node[start];
            if components.members[component].len() < len {
                continue;
            }
            let allowed = |node: usize| node > start && components.of_node[node] == component;
            // Backward breadth-first search: distance from each allowed node to `start`.
            stamp += 1;
            queue.clear();
            for &pred in &reverse[start] {
                if allowed(pred) && dist_stamp[pred] != stamp {
                    dist_stamp[pred] = stamp;
                    dist[pred] = 1;
                    queue.push_back(pred);
                }
            }
            while let Some(node) = queue.pop_front() {
                work += 1;
                if dist[node] + 1 >= len {
                    continue;
                }
                for &pred in &reverse[node] {
                    work += 1;
                    if allowed(pred) && dist_stamp[pred] != stamp {
                        dist_stamp[pred] = stamp;
                        dist[pred] = dist[node] + 1;
                        queue.push_back(pred);
                    }
                }
            }
            // Depth-first search for paths of exactly `len` edges back to `start`.
            let mut path = vec![start];
            let mut cursor = vec![0usize];
            while let Some(&node) = path.last() {
                if work > work_cap {
                    return (found, true);
                }
                let depth = path.len() - 1;
                let next_idx = cursor[depth];
                let Some(&(next, _)) = graph.out[node].get(next_idx) else {
                    path.pop();
                    cursor.pop();
                    on_path[node] = false;
                    continue;
                };
                cursor[depth] += 1;
                work += 1;
                if next == start {
                    if depth + 1 == len {
                        found.push(path.clone());
                        if found.len() > cap {
                            found.truncate(cap);
                            return (found, true);
                        }
                    }
                } else if allowed(next)
                    && !on_path[next]
                    && dist_stamp[next] == stamp
                    && depth + 1 + dist[next] <= len
                {
                    on_path[next] = true;
                    path.push(next);
                    cursor.push(0);
                }
            }
            on_path[start] = false;
        }
    }
    (found, false)
}

/// A feedback arc set of the whole graph: the cut edges as `(from, to, weight)` sorted by node
/// number, and whether every component was solved exactly.
pub(crate) fn feedback_arc_set(
    graph: &Digraph<'_>,
    components: &Components,
) -> (Vec<(usize, usize, u64)>, bool) {
    let mut cut = Vec::new();
    let mut exact = true;
    for members in &components.members {
        if members.len() < 2 {
            continue;
        }
        let local: FxHashMap<usize, usize> = members
            .iter()
            .enumerate()
            .map(|(idx, &node)| (node, idx))
            .collect();
        let mut edges = Vec::new();
        for (local_from, &from) in members.iter().enumerate() {
            for &(to, weight) in &graph.out[from] {
                if let Some(&local_to) = local.get(&to) {
                    edges.push((local_from, local_to, weight));
                }
            }
        }
        let solution = solve_component(members.len(), &edges);
        exact &= solution.exact;
        cut.extend(
            edges
                .iter()
                .zip(&solution.cut)
                .filter(|(_, is_cut)| **is_cut)
                .map(|(&(from, to, weight), _)| (members[from], members[to], weight)),
        );
    }
    cut.sort_unstable();
    (cut, exact)
}

/// The answer for one component.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ComponentCut {
    /// One flag per input edge: whether it is cut.
    pub(crate) cut: Vec<bool>,
    /// Whether the cut is proven minimal.
    pub(crate) exact: bool,
}

/// Finds a small-weight feedback arc set of a graph with nodes `0..n` and the given edges (no
/// self-loops, no parallel edges). Exact when small enough, otherwise heuristic.
pub(crate) fn solve_component(n: usize, edges: &[(usize, usize, u64)]) -> ComponentCut {
    // Below this size the exact programme is cheaper than anything else.
    const TINY: usize = 12;
    if n <= TINY {
        return exact_component(n, edges);
    }
    let work_cap = BOUND_WORK_PER_EDGE
        .saturating_mul(edges.len() as u64)
        .max(MIN_WORK);
    let lower_bound = cycle_packing_bound(n, edges, work_cap);
    let cut = heuristic_cut(n, edges, lower_bound);
    let weight: u64 = edges
        .iter()
        .zip(&cut)
        .filter(|(_, is_cut)| **is_cut)
        .map(|(edge, _)| edge.2)
        .sum();
    if weight <= lower_bound {
        tracing::debug!(
            nodes = n,
            edges = edges.len(),
            weight,
            "component cut proven by the packing bound"
        );
        return ComponentCut { cut, exact: true };
    }
    if n <= BOUNDED_MAX_NODES {
        let work_cap = BOUNDED_WORK_PER_EDGE
            .saturating_mul(edges.len() as u64)
            .max(MIN_WORK);
        match bounded_search(n, edges, weight, work_cap) {
            Search::Optimal(None) => {
                tracing::debug!(
                    nodes = n,
                    edges = edges.len(),
                    weight,
                    "component cut proven by bounded search"
                );
                return ComponentCut { cut, exact: true };
            }
            Search::Optimal(Some(order)) => {
                tracing::debug!(
                    nodes = n,
                    edges = edges.len(),
                    heuristic = weight,
                    "component cut improved by bounded search"
                );
                return ComponentCut {
                    cut: backward_edges(&order, edges),
                    exact: true,
                };
            }
            Search::GaveUp => {}
        }
    }
    if n <= EXACT_MAX_NODES {
        return exact_component(n, edges);
    }
    tracing::debug!(
        nodes = n,
        edges = edges.len(),
        weight,
        lower_bound,
        "component cut by heuristic"
    );
    ComponentCut { cut, exact: false }
}

/// What [`bounded_search`] found.
#[derive(Debug, Clone, PartialEq)]
enum Search {
    /// The search finished: an order cheaper than the bound, or `None` when the bound is optimal.
    Optimal(Option<Vec<usize>>),
    /// The work cap was reached first.
    GaveUp,
}

/// Exact search for an order whose backward weight is below `upper`, over the same states as the
/// subset programme (which nodes come first), but only those that can still beat `upper`.
///
/// Placing the set `S` first fixes the cost of every edge inside `S` and of every edge from the
/// rest `T` into `S` (all backward); adding `v` next adds the edges from `T - v` into `v`. A state
/// is dropped when its fixed cost plus a lower bound for `T` (a packing of the two- and
/// three-cycles inside `T`) reaches `upper`. When `T` has a source, only the smallest source is tried:
/// moving a node with no edge from the rest to the front of the rest never costs more; likewise
/// sinks of `T` are left for the end.
fn bounded_search(n: usize, edges: &[(usize, usize, u64)], upper: u64, work_cap: u64) -> Search {
    debug_assert!(n <= 128);
    let mut into: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (idx, &(from, to, weight)) in edges.iter().enumerate() {
        into[to].push((from, weight));
        out[from].push(to);
        out_edges[from].push(idx);
    }
    // Two- and three-cycles, as `(node mask, edge indices)`: packing those that lie inside the
    // rest bounds what the rest will cost.
    let index_of: FxHashMap<(usize, usize), usize> = edges
        .iter()
        .enumerate()
        .map(|(idx, &(from, to, _))| ((from, to), idx))
        .collect();
    let mut short_cycles: Vec<(u128, Vec<usize>)> = Vec::new();
    for (idx, &(from, to, _)) in edges.iter().enumerate() {
        if from < to
            && let Some(&back) = index_of.get(&(to, from))
        {
            short_cycles.push(((1u128 << from) | (1u128 << to), vec![idx, back]));
        }
    }
    'triangles: for (first, &(a, b, _)) in edges.iter().enumerate() {
        if b < a {
            continue;
        }
        for &second in &out_edges[b] {
            let c = edges[second].1;
            if c <= a {
                continue;
            }
            if let Some(&third) = index_of.get(&(c, a)) {
                if short_cycles.len() >= MAX_SHORT_CYCLES {
                    break 'triangles;
                }
                let mask = (1u128 << a) | (1u128 << b) | (1u128 << c);
                short_cycles.push((mask, vec![first, second, third]));
            }
        }
    }
    let full: u128 = if n == 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    };
    let mut residual: Vec<u64> = Vec::with_capacity(edges.len());
    let mut lower_bound = |rest: u128, work: &mut u64| -> u64 {
        residual.clear();
        residual.extend(edges.iter().map(|edge| edge.2));
        *work += (edges.len() + short_cycles.len()) as u64;
        let mut bound = 0;
        for (mask, cycle) in &short_cycles {
            if rest & mask == *mask {
                let take = cycle.iter().map(|&edge| residual[edge]).min().unwrap_or(0);
                for &edge in cycle {
                    residual[edge] -= take;
                }
                bound += take;
            }
        }
        bound
    };
    let mut work = 0u64;
    // `levels[k]` maps each kept set of `k` nodes to its fixed cost and the node added last.
    let mut levels: Vec<FxHashMap<u128, (u64, u8)>> = Vec::with_capacity(n + 1);
    let mut first = FxHashMap::default();
    first.insert(0u128, (0u64, 0u8));
    levels.push(first);
    for _size in 0..n {
        let mut next: FxHashMap<u128, (u64, u8)> = FxHashMap::default();
        let mut states: Vec<(u128, u64)> = levels[levels.len() - 1]
            .iter()
            .map(|(set, (cost, _))| (*set, *cost))
            .collect();
        states.sort_unstable();
        for (set, cost) in states {
            let rest = full & !set;
            // Weight of the edges from the rest into each candidate. A sink of the rest is never
            // tried: moving it to the very end never costs more.
            let mut candidates: Vec<(usize, u64)> = Vec::new();
            let mut source = None;
            for (node, (node_into, node_out)) in into.iter().zip(&out).enumerate() {
                if rest & (1u128 << node) == 0 {
                    continue;
                }
                let weight: u64 = node_into
                    .iter()
                    .filter(|(from, _)| rest & (1u128 << from) != 0)
                    .map(|(_, weight)| weight)
                    .sum();
                work += 1 + node_into.len() as u64;
                if weight == 0 {
                    source = Some(node);
                    break;
                }
                work += node_out.len() as u64;
                if node_out.iter().any(|to| rest & (1u128 << to) != 0) {
                    candidates.push((node, weight));
                }
            }
            if let Some(node) = source {
                candidates = vec![(node, 0)];
            }
            for (node, weight) in candidates {
                let next_set = set | (1u128 << node);
                let next_cost = cost + weight;
                if next_cost + lower_bound(full & !next_set, &mut work) >= upper {
                    continue;
                }
                let entry = next.entry(next_set).or_insert((u64::MAX, 0));
                if next_cost < entry.0 {
                    *entry = (next_cost, node as u8);
                }
            }
            if work > work_cap {
                return Search::GaveUp;
            }
        }
        if next.is_empty() {
            return Search::Optimal(None);
        }
        levels.push(next);
    }
    // Walk back from the full set along the nodes added last.
    let mut order = Vec::with_capacity(n);
    let mut set = full;
    for level in levels.iter().rev() {
        if set == 0 {
            break;
        }
        let Some(&(_, last)) = level.get(&set) else {
            return Search::GaveUp;
        };
        order.push(usize::from(last));
        set &= !(1u128 << last);
    }
    order.reverse();
    Search::Optimal(Some(order))
}

fn exact_component(n: usize, edges: &[(usize, usize, u64)]) -> ComponentCut {
    let order = exact_order(n, edges);
    ComponentCut {
        cut: backward_edges(&order, edges),
        exact: true,
    }
}

/// Flags the edges that run backward in `order` (a permutation of the nodes).
fn backward_edges(order: &[usize], edges: &[(usize, usize, u64)]) -> Vec<bool> {
    let mut position = vec![0usize; order.len()];
    for (idx, &node) in order.iter().enumerate() {
        position[node] = idx;
    }
    edges
        .iter()
        .map(|&(from, to, _)| position[from] > position[to])
        .collect()
}

/// The linear order of the nodes with the least total weight of backward edges, by dynamic
/// programming over the sets of nodes placed first: `best[S]` is the least backward weight of an
/// order of `S`, and appending `v` after `S` adds the weight of `v`'s edges into `S`.
pub(crate) fn exact_order(n: usize, edges: &[(usize, usize, u64)]) -> Vec<usize> {
    // `into(v, S)`, the weight of `v`'s edges into `S`, is read from two tables per node, one for
    // the low half of the bits of `S` and one for the high half, so each step of the programme
    // costs two lookups whatever the degree.
    let low_bits = n / 2;
    let low_mask = (1usize << low_bits) - 1;
    let mut low_table = vec![0u64; n << low_bits];
    let mut high_table = vec![0u64; n << (n - low_bits)];
    for &(from, to, weight) in edges {
        if to < low_bits {
            let table = &mut low_table[from << low_bits..(from + 1) << low_bits];
            for (set, entry) in table.iter_mut().enumerate() {
                if set & (1 << to) != 0 {
                    *entry += weight;
                }
            }
        } else {
            let bit = to - low_bits;
            let table = &mut high_table[from << (n - low_bits)..(from + 1) << (n - low_bits)];
            for (set, entry) in table.iter_mut().enumerate() {
                if set & (1 << bit) != 0 {
                    *entry += weight;
                }
            }
        }
    }
    let into = |node: usize, set: usize| -> u64 {
        low_table[(node << low_bits) | (set & low_mask)]
            + high_table[(node << (n - low_bits)) | (set >> low_bits)]
    };
    let full = (1usize << n) - 1;
    let mut best = vec![u64::MAX; full + 1];
    best[0] = 0;
    for set in 0..full {
        let base = best[set];
        if base == u64::MAX {
            continue;
        }
        for node in 0..n {
            if set & (1 << node) == 0 {
                let cost = base + into(node, set);
                let next = set | (1 << node);
                if cost < best[next] {
                    best[next] = cost;
                }
            }
        }
    }
    // Walk back from the full set, taking the largest node that can come last, so that among
    // equally good orders the one closest to id order wins.
    let mut order = Vec::with_capacity(n);
    let mut set = full;
    while set != 0 {
        let last = (0..n)
            .rev()
            .find(|&node| {
                let rest = set & !(1 << node);
                set & (1 << node) != 0
                    && best[rest] != u64::MAX
                    && best[rest] + into(node, rest) == best[set]
            })
            .unwrap_or_else(|| (usize::BITS - 1 - set.leading_zeros()) as usize);
        order.push(last);
        set &= !(1 << last);
    }
    order.reverse();
    order
}

/// Eades–Lin–Smyth with weights, then node moves, then putting back redundant cut edges.
pub(crate) fn heuristic_cut(n: usize, edges: &[(usize, usize, u64)], target: u64) -> Vec<bool> {
    let order = eades_lin_smyth(n, edges);
    let mut keys = spaced_keys(&order);
    local_search(n, edges, &mut keys);
    kick_and_search(n, edges, &mut keys, target);
    edges
        .iter()
        .map(|&(from, to, _)| keys[from] > keys[to])
        .collect()
}

/// Keys for nodes in the given order, spaced [`KEY_SPACING`] apart.
fn spaced_keys(order: &[usize]) -> Vec<u64> {
    let mut keys = vec![0u64; order.len()];
    for (idx, &node) in order.iter().enumerate() {
        keys[node] = (idx as u64 + 1) * KEY_SPACING;
    }
    keys
}

/// Weight of the edges running backward in the key order.
fn backward_weight(edges: &[(usize, usize, u64)], keys: &[u64]) -> u64 {
    edges
        .iter()
        .filter(|&&(from, to, _)| keys[from] > keys[to])
        .map(|edge| edge.2)
        .sum()
}

/// Node moves, then putting back cut edges whose return closes no cycle, then node moves again.
fn local_search(n: usize, edges: &[(usize, usize, u64)], keys: &mut [u64]) {
    sift(n, edges, keys);
    let mut cut: Vec<bool> = edges
        .iter()
        .map(|&(from, to, _)| keys[from] > keys[to])
        .collect();
    let work_cap = READD_WORK_PER_EDGE
        .saturating_mul(edges.len() as u64)
        .max(MIN_WORK);
    // Putting edges back reorders nodes, which can turn other cut edges forward: callers take the
    // backward edges of the final order, a subset of the edges still cut.
    readd_redundant(n, edges, keys, &mut cut, READD_SEARCH_CAP, work_cap);
    // The new order often lets a few more nodes move.
    sift(n, edges, keys);
}

/// Iterated local search: from the best order so far, move a few random nodes to random places,
/// search locally again, and keep the result when it is no worse. The generator has a fixed seed,
/// and the number of rounds depends only on the size, so the answer is deterministic. Stops early
/// at `target` (a proven lower bound).
fn kick_and_search(n: usize, edges: &[(usize, usize, u64)], keys: &mut Vec<u64>, target: u64) {
    let rounds = (KICK_EDGE_BUDGET / edges.len().max(1) as u64).min(KICK_MAX_ROUNDS);
    if n < 3 || rounds < 2 {
        return;
    }
    let mut best = backward_weight(edges, keys);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut random = |bound: usize| -> usize {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound as u64) as usize
    };
    let mut order: Vec<usize> = (0..n).collect();
    for _round in 0..rounds {
        if best <= target {
            break;
        }
        order.sort_unstable_by_key(|&node| keys[node]);
        for _kick in 0..KICKS {
            let node = order.remove(random(n));
            order.insert(random(n), node);
        }
        let mut candidate = spaced_keys(&order);
        local_search(n, edges, &mut candidate);
        let weight = backward_weight(edges, &candidate);
        if weight <= best {
            best = weight;
            *keys = candidate;
        }
    }
}

pub(crate) const KEY_SPACING: u64 = 1 << 32;

/// The Eades–Lin–Smyth order: sinks go to the back, sources to the front, otherwise the node with
/// the largest out-weight minus in-weight goes to the front.
pub(crate) fn eades_lin_smyth(n: usize, edges: &[(usize, usize, u64)]) -> Vec<usize> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut into: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut out_count = vec![0usize; n];
    let mut in_count = vec![0usize; n];
    let mut out_weight = vec![0i128; n];
    let mut in_weight = vec![0i128; n];
    for (idx, &(from, to, weight)) in edges.iter().enumerate() {
        out[from].push(idx);
        into[to].push(idx);
        out_count[from] += 1;
        in_count[to] += 1;
        out_weight[from] += i128::from(weight);
        in_weight[to] += i128::from(weight);
    }
    let mut removed = vec![false; n];
    let mut front = Vec::new();
    let mut back = Vec::new();
    let mut sinks: Vec<usize> = (0..n).rev().filter(|&node| out_count[node] == 0).collect();
    let mut sources: Vec<usize> = (0..n)
        .rev()
        .filter(|&node| in_count[node] == 0 && out_count[node] != 0)
        .collect();
    let mut heap: BinaryHeap<(i128, std::cmp::Reverse<usize>)> = (0..n)
        .map(|node| (out_weight[node] - in_weight[node], std::cmp::Reverse(node)))
        .collect();
    let mut remaining = n;
    while remaining > 0 {
        let node = if let Some(node) = sinks.pop() {
            if removed[node] {
                continue;
            }
            back.push(node);
            node
        } else if let Some(node) = sources.pop() {
            if removed[node] {
                continue;
            }
            front.push(node);
            node
        } else {
            let Some((delta, std::cmp::Reverse(node))) = heap.pop() else {
                break;
            };
            if removed[node] || delta != out_weight[node] - in_weight[node] {
                continue;
            }
            front.push(node);
            node
        };
        removed[node] = true;
        remaining -= 1;
        for &edge in &out[node] {
            let (_, to, weight) = edges[edge];
            if !removed[to] {
                in_count[to] -= 1;
                in_weight[to] -= i128::from(weight);
                heap.push((out_weight[to] - in_weight[to], std::cmp::Reverse(to)));
                if in_count[to] == 0 {
                    sources.push(to);
                }
            }
        }
        for &edge in &into[node] {
            let (from, _, weight) = edges[edge];
            if !removed[from] {
                out_count[from] -= 1;
                out_weight[from] -= i128::from(weight);
                heap.push((out_weight[from] - in_weight[from], std::cmp::Reverse(from)));
                if out_count[from] == 0 {
                    sinks.push(from);
                }
            }
        }
    }
    back.reverse();
    front.extend(back);
    front
}

/// Moves single nodes to the place in the order that minimises the weight of their backward edges,
/// until no move helps (or a pass cap). `keys` give the order; they are spaced so that a node can
/// be put between two others without renumbering most of the time.
pub(crate) fn sift(n: usize, edges: &[(usize, usize, u64)], keys: &mut [u64]) {
    // Neighbours of each node as `(neighbour, weight of node -> neighbour, weight of neighbour -> node)`.
    let mut neighbours: Vec<Vec<(usize, u64, u64)>> = vec![Vec::new(); n];
    for &(from, to, weight) in edges {
        neighbours[from].push((to, weight, 0));
        neighbours[to].push((from, 0, weight));
    }
    for list in &mut neighbours {
        list.sort_unstable_by_key(|entry| entry.0);
        list.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 += later.1;
                earlier.2 += later.2;
            }
            same
        });
    }
    let mut order: BTreeMap<u64, usize> = keys
        .iter()
        .enumerate()
        .map(|(node, &key)| (key, node))
        .collect();
    // `(key, neighbour, weight of node -> neighbour, weight of neighbour -> node)`.
    let mut sorted: Vec<(u64, usize, u64, u64)> = Vec::new();
    for _pass in 0..SIFT_MAX_PASSES {
        let mut moved = false;
        for node in 0..n {
            if neighbours[node].is_empty() {
                continue;
            }
            sorted.clear();
            sorted.extend(
                neighbours[node]
                    .iter()
                    .map(|&(other, out_w, in_w)| (keys[other], other, out_w, in_w)),
            );
            sorted.sort_unstable_by_key(|entry| entry.0);
            // Cost of placing the node after the first `gap` neighbours: its edges into earlier
            // neighbours and the edges from later neighbours run backward.
            let mut cost: i128 = sorted.iter().map(|entry| i128::from(entry.3)).sum();
            let current_gap = sorted.partition_point(|entry| entry.0 < keys[node]);
            let mut current_cost = cost;
            let mut best = (cost, 0usize);
            for (idx, &(_, _, out_w, in_w)) in sorted.iter().enumerate() {
                cost += i128::from(out_w) - i128::from(in_w);
                let gap = idx + 1;
                if gap == current_gap {
                    current_cost = cost;
                }
                if cost < best.0 {
                    best = (cost, gap);
                }
            }
            if best.0 >= current_cost {
                continue;
            }
            moved = true;
            order.remove(&keys[node]);
            // Put the node just before the neighbour that starts the best gap, or just after the
            // last neighbour.
            let anchor = if best.1 < sorted.len() {
                (sorted[best.1].1, true)
            } else {
                (sorted[sorted.len() - 1].1, false)
            };
            let key = match key_next_to(&order, keys[anchor.0], anchor.1) {
                Some(key) => key,
                None => {
                    renumber(&mut order, keys);
                    // After renumbering every gap is `KEY_SPACING` wide.
                    key_next_to(&order, keys[anchor.0], anchor.1).unwrap_or(keys[anchor.0] - 1)
                }
            };
            keys[node] = key;
            order.insert(key, node);
        }
        if !moved {
            break;
        }
    }
}

/// A free key just before (`before`) or just after `anchor`, if there is room.
fn key_next_to(order: &BTreeMap<u64, usize>, anchor: u64, before: bool) -> Option<u64> {
    if before {
        let below = order.range(..anchor).next_back().map_or(0, |(key, _)| *key);
        (anchor - below >= 2).then(|| below + (anchor - below) / 2)
    } else {
        match order.range(anchor + 1..).next() {
            Some((&above, _)) => (above - anchor >= 2).then(|| anchor + (above - anchor) / 2),
            None => anchor.checked_add(KEY_SPACING),
        }
    }
}

/// Spreads the keys out again, keeping the order.
fn renumber(order: &mut BTreeMap<u64, usize>, keys: &mut [u64]) {
    let nodes: Vec<usize> = order.values().copied().collect();
    order.clear();
    for (idx, node) in nodes.into_iter().enumerate() {
        let key = (idx as u64 + 1) * KEY_SPACING;
        keys[node] = key;
        order.insert(key, node);
    }
}

/// Puts back cut edges, heaviest first, whenever that closes no cycle, keeping `keys` a
/// topological order of the kept edges (Pearce–Kelly). Search work is bounded by `work_cap`.
pub(crate) fn readd_redundant(
    n: usize,
    edges: &[(usize, usize, u64)],
    keys: &mut [u64],
    cut: &mut [bool],
    search_cap: u64,
    work_cap: u64,
) {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut into: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (idx, &(from, to, _)) in edges.iter().enumerate() {
        out[from].push(idx);
        into[to].push(idx);
    }
    // Searching the successor with the largest key first heads straight for `from`, the largest
    // key of the window; the keys move a little as edges come back, so this is only a guide.
    for list in &mut out {
        list.sort_unstable_by_key(|&edge| keys[edges[edge].1]);
    }
    let mut candidates: Vec<usize> = (0..edges.len()).filter(|&idx| cut[idx]).collect();
    candidates.sort_by_key(|&idx| (std::cmp::Reverse(edges[idx].2), edges[idx].0, edges[idx].1));
    let mut work = 0u64;
    let mut seen = vec![0u64; n];
    let mut stamp = 0u64;
    let mut stack = Vec::new();
    for idx in candidates {
        let (from, to, _) = edges[idx];
        // Kept edges all run forward in key order, so a path `to ~> from` stays within
        // `keys[to]..=keys[from]`.
        stamp += 1;
        let mut forward = Vec::new();
        let mut cycle = false;
        stack.clear();
        stack.push(to);
        seen[to] = stamp;
        let search_start = work;
        while let Some(node) = stack.pop() {
            forward.push(node);
            for &edge in &out[node] {
                work += 1;
                let next = edges[edge].1;
                if cut[edge] || seen[next] == stamp || keys[next] > keys[from] {
                    continue;
                }
                if next == from {
                    cycle = true;
                    break;
                }
                seen[next] = stamp;
                stack.push(next);
            }
            if cycle || work > work_cap || work - search_start > search_cap {
                break;
            }
        }
        if work > work_cap {
            return;
        }
        // A search that found a cycle, or ran too long to tell, leaves the edge cut.
        if cycle || work - search_start > search_cap {
            continue;
        }
        stamp += 1;
        let mut backward = Vec::new();
        stack.clear();
        stack.push(from);
        seen[from] = stamp;
        while let Some(node) = stack.pop() {
            backward.push(node);
            for &edge in &into[node] {
                work += 1;
                let prev = edges[edge].0;
                if cut[edge] || seen[prev] == stamp || keys[prev] < keys[to] {
                    continue;
                }
                seen[prev] = stamp;
                stack.push(prev);
            }
        }
        // Give the smallest of the freed keys to the nodes that reach `from`, the rest to the nodes
        // reachable from `to`, each group keeping its order.
        forward.sort_unstable_by_key(|&node| keys[node]);
        backward.sort_unstable_by_key(|&node| keys[node]);
        let mut freed: Vec<u64> = forward
            .iter()
            .chain(&backward)
            .map(|&node| keys[node])
            .collect();
        freed.sort_unstable();
        for (node, key) in backward.iter().chain(&forward).zip(freed) {
            keys[*node] = key;
        }
        cut[idx] = false;
    }
}

/// A lower bound on the weight of any feedback arc set: cycles are packed greedily (a shortest
/// cycle through each edge in turn), each taking the least remaining weight along it from all its
/// edges; any cut must pay at least what was packed. Edges whose ends fall in different strongly
/// connected components of the remaining graph are skipped: they are on no cycle any more.
pub(crate) fn cycle_packing_bound(n: usize, edges: &[(usize, usize, u64)], work_cap: u64) -> u64 {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (idx, &(from, _, _)) in edges.iter().enumerate() {
        out[from].push(idx);
    }
    let mut residual: Vec<u64> = edges.iter().map(|edge| edge.2).collect();
    let mut bound = 0u64;
    let mut work = 0u64;
    let mut component = residual_components(&out, edges, &residual, &mut work);
    let mut via = vec![usize::MAX; n];
    let mut depth = vec![0usize; n];
    let mut seen = vec![0u64; n];
    let mut stamp = 0u64;
    let mut queue = VecDeque::new();
    // Light edges first: they are the likeliest to be cut, so their cycles are packed first.
    let mut order: Vec<usize> = (0..edges.len()).collect();
    order.sort_by_key(|&idx| (edges[idx].2, edges[idx].0, edges[idx].1));
    // Short cycles first, over all edges, then longer ones: a short cycle uses up less weight
    // that other cycles could have used.
    for max_len in [2, 3, 4, usize::MAX] {
        for &idx in &order {
            let (from, to, _) = edges[idx];
            while residual[idx] > 0 && component[from] == component[to] {
                // Shortest path `to ~> from` of at most `max_len - 1` edges with weight left,
                // inside the component.
                stamp += 1;
                queue.clear();
                queue.push_back(to);
                seen[to] = stamp;
                depth[to] = 0;
                let mut reached = false;
                while let Some(node) = queue.pop_front() {
                    if depth[node] + 2 > max_len {
                        continue;
                    }
                    for &edge in &out[node] {
                        work += 1;
                        let next = edges[edge].1;
                        if residual[edge] == 0
                            || seen[next] == stamp
                            || component[next] != component[to]
                        {
                            continue;
                        }
                        seen[next] = stamp;
                        via[next] = edge;
                        depth[next] = depth[node] + 1;
                        if next == from {
                            reached = true;
                            break;
                        }
                        queue.push_back(next);
                    }
                    if reached {
                        break;
                    }
                }
                if work > work_cap {
                    return bound;
                }
                if !reached {
                    if max_len == usize::MAX {
                        // The components are out of date: weight has run out along some of
                        // their cycles.
                        component = residual_components(&out, edges, &residual, &mut work);
                    }
                    break;
                }
                let mut cycle = vec![idx];
                let mut node = from;
                while node != to {
                    let edge = via[node];
                    cycle.push(edge);
                    node = edges[edge].0;
                }
                let take = cycle.iter().map(|&edge| residual[edge]).min().unwrap_or(0);
                for &edge in &cycle {
                    residual[edge] -= take;
                }
                bound += take;
            }
        }
    }
    bound
}

/// Strongly connected components over the edges with weight left (iterative Tarjan): a label per
/// node. Adds the steps taken to `work`.
fn residual_components(
    out: &[Vec<usize>],
    edges: &[(usize, usize, u64)],
    residual: &[u64],
    work: &mut u64,
) -> Vec<usize> {
    let n = out.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut label = vec![usize::MAX; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next_index = 0;
    let mut next_label = 0;
    // Frames of the depth-first search: `(node, position in its out-list)`.
    let mut frames: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        frames.push((root, 0));
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (node, ref mut position)) = frames.last_mut() {
            if let Some(&edge) = out[node].get(*position) {
                *position += 1;
                *work += 1;
                if residual[edge] == 0 {
                    continue;
                }
                let next = edges[edge].1;
                if index[next] == usize::MAX {
                    index[next] = next_index;
                    low[next] = next_index;
                    next_index += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    frames.push((next, 0));
                } else if on_stack[next] {
                    low[node] = low[node].min(index[next]);
                }
                continue;
            }
            frames.pop();
            if let Some(&(parent, _)) = frames.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    label[member] = next_label;
                    if member == node {
                        break;
                    }
                }
                next_label += 1;
            }
        }
    }
    label
}

#[cfg(test)]
mod tests;
