//! Tests of the cycle analysis: hand-built graphs checked against hand-derived answers, and
//! property tests against brute force on small random graphs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::report::{Hierarchy, Usage};

fn module(id: &str) -> Module {
    Module {
        id: id.to_owned(),
        krate: id.split("::").next().unwrap_or(id).to_owned(),
        parent: id.rsplit_once("::").map(|(parent, _)| parent.to_owned()),
        file: PathBuf::from("src/lib.rs"),
        line: 1,
        lines_of_code: 10,
        inline: false,
        cfg: None,
        test_only: false,
        in_macro: false,
        n_traits: 0,
        n_types: 0,
    }
}

fn edge(from: &str, to: &str, weight: u32) -> Edge {
    Edge {
        from: from.to_owned(),
        to: to.to_owned(),
        weight,
        items: vec![format!("{to}_item")],
        hierarchy: Hierarchy::Cross,
        usage: Usage::Code,
        test_only: false,
        locations: Vec::new(),
        resolutions: Vec::new(),
    }
}

/// Runs the analysis on `edges` (`"a -> b: 3"`, one per line, blank lines ignored) and renders what
/// it found, one fact per line.
#[track_caller]
fn check(graph: &str, expect: &str) {
    let edges: Vec<Edge> = graph
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (pair, weight) = line.split_once(':').expect("test edge has a weight");
            let (from, to) = pair.split_once("->").expect("test edge has an arrow");
            edge(
                from.trim(),
                to.trim(),
                weight.trim().parse().expect("test weight is a number"),
            )
        })
        .collect();
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    for edge in &edges {
        ids.insert(&edge.from);
        ids.insert(&edge.to);
    }
    let modules: Vec<Module> = ids.iter().map(|id| module(id)).collect();
    let refs: Vec<&Edge> = edges.iter().collect();
    let analysis = analyze(&modules, &refs, 10);
    let mut res = String::new();
    for cycle in &analysis.cycles {
        res += &format!("scc {} weight {}\n", cycle.members.join(" "), cycle.weight);
    }
    for pair in &analysis.bidirectional {
        res += &format!(
            "pair {} {} {}/{}\n",
            pair.a, pair.b, pair.a_to_b_weight, pair.b_to_a_weight
        );
    }
    for cycle in &analysis.elementary {
        res += &format!("cycle {}\n", cycle.join(" "));
    }
    if analysis.elementary_truncated {
        res += "cycles truncated\n";
    }
    for cut in &analysis.cut {
        res += &format!("cut {} -> {} {}\n", cut.from, cut.to, cut.weight);
    }
    res += if analysis.cut_exact {
        "exact"
    } else {
        "heuristic"
    };
    assert_eq!(res.trim(), expect.trim(), "\ngraph:\n{graph}");
}

#[test]
fn two_cycle_cuts_the_lighter_edge() {
    check(
        "a -> b: 5
         b -> a: 2",
        "scc a b weight 7
pair a b 5/2
cycle a b
cut b -> a 2
exact",
    );
}

#[test]
fn three_cycle_cuts_its_lightest_edge() {
    check(
        "a -> b: 3
         b -> c: 1
         c -> a: 4",
        "scc a b c weight 8
cycle a b c
cut b -> c 1
exact",
    );
}

#[test]
fn two_components_and_a_bridge_between_them() {
    check(
        "a -> b: 1
         b -> a: 3
         b -> c: 7
         c -> d: 2
         d -> c: 2",
        "scc a b weight 4
scc c d weight 4
pair a b 1/3
pair c d 2/2
cycle a b
cycle c d
cut a -> b 1
cut d -> c 2
exact",
    );
}

#[test]
fn a_dag_has_no_cycles() {
    check(
        "a -> b: 1
         a -> c: 1
         b -> d: 1
         c -> d: 1
         a -> d: 9",
        "exact",
    );
}

#[test]
fn diamond_closed_by_one_back_edge() {
    // Both paths a -> {b, c} -> d return through d -> a: cutting d -> a (weight 3) beats cutting
    // one edge on each path (2 + 2).
    check(
        "a -> b: 2
         a -> c: 2
         b -> d: 5
         c -> d: 5
         d -> a: 3",
        "scc a b c d weight 17
cycle a b d
cycle a c d
cut d -> a 3
exact",
    );
}

#[test]
fn exact_cut_beats_the_greedy_lightest_edge() {
    // Three cycles share a -> b (3) and each has its own light edge b -> x (2): cutting the
    // lightest edge of each cycle costs 6, cutting the shared edge costs 3.
    check(
        "a -> b: 3
         b -> c: 2
         b -> d: 2
         b -> e: 2
         c -> a: 5
         d -> a: 5
         e -> a: 5",
        "scc a b c d e weight 24
cycle a b c
cycle a b d
cycle a b e
cut a -> b 3
exact",
    );
    let edges = [
        (0, 1, 3),
        (1, 2, 2),
        (1, 3, 2),
        (1, 4, 2),
        (2, 0, 5),
        (3, 0, 5),
        (4, 0, 5),
    ];
    let greedy = greedy_cut(5, &edges);
    assert_eq!(cut_weight(&edges, &greedy), 6);
}

#[test]
fn self_references_are_not_cycles() {
    check(
        "a -> a: 4
         a -> b: 1",
        "exact",
    );
}

#[test]
fn parallel_edges_are_merged() {
    check(
        "a -> b: 1
         a -> b: 2
         b -> a: 2",
        "scc a b weight 5
pair a b 3/2
cycle a b
cut b -> a 2
exact",
    );
}

#[test]
fn elementary_cycles_stop_at_the_cap() {
    // A complete graph on 5 nodes has 84 elementary cycles; the cap is 10.
    let names = ["a", "b", "c", "d", "e"];
    let mut graph = String::new();
    for from in names {
        for to in names {
            if from != to {
                graph += &format!("{from} -> {to}: 1\n");
            }
        }
    }
    check(
        &graph,
        "scc a b c d e weight 20
pair a b 1/1
pair a c 1/1
pair a d 1/1
pair a e 1/1
pair b c 1/1
pair b d 1/1
pair b e 1/1
pair c d 1/1
pair c e 1/1
pair d e 1/1
cycle a b
cycle a c
cycle a d
cycle a e
cycle b c
cycle b d
cycle b e
cycle c d
cycle c e
cycle d e
cycles truncated
cut b -> a 1
cut c -> a 1
cut c -> b 1
cut d -> a 1
cut d -> b 1
cut d -> c 1
cut e -> a 1
cut e -> b 1
cut e -> c 1
cut e -> d 1
exact",
    );
}

#[test]
fn crate_cycles_come_from_crate_edges() {
    let crate_edges = [
        ("app", "core", 4),
        ("core", "util", 2),
        ("util", "core", 1),
        ("app", "util", 1),
    ]
    .map(|(from, to, weight)| CrateEdge {
        from: from.to_owned(),
        to: to.to_owned(),
        weight,
    });
    let cycles = crate_cycles(&crate_edges);
    assert_eq!(
        cycles,
        vec![Cycle {
            members: vec!["core".to_owned(), "util".to_owned()],
            weight: 3
        }]
    );
}

#[test]
fn a_large_ring_is_cut_once_and_proven_minimal() {
    // 200 nodes are far too many for the exact solver; the cycle-packing bound still proves that
    // one edge, the lightest, is the best cut.
    let n = 200;
    let edges: Vec<(usize, usize, u64)> = (0..n)
        .map(|node| (node, (node + 1) % n, if node == 57 { 1 } else { 3 }))
        .collect();
    let solution = solve_component(n, &edges);
    let cut: Vec<usize> = (0..n).filter(|&idx| solution.cut[idx]).collect();
    assert_eq!(cut, vec![57]);
    assert!(solution.exact);
}

// Property tests.

/// Random graphs: `(n, edges)` with nodes `0..n`, no self-loops, no parallel edges.
fn graph_strategy(
    max_nodes: usize,
    max_edges: usize,
) -> impl Strategy<Value = (usize, Vec<(usize, usize, u64)>)> {
    (2..=max_nodes).prop_flat_map(move |n| {
        (
            Just(n),
            proptest::collection::vec((0..n, 0..n, 1..10u64), 0..=max_edges),
        )
            .prop_map(|(n, raw)| {
                let mut seen = BTreeSet::new();
                let edges = raw
                    .into_iter()
                    .filter(|&(from, to, _)| from != to && seen.insert((from, to)))
                    .collect::<Vec<_>>();
                (n, edges)
            })
    })
}

fn is_acyclic(n: usize, edges: &[(usize, usize, u64)], removed: &[bool]) -> bool {
    let mut in_degree = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (idx, &(from, to, _)) in edges.iter().enumerate() {
        if !removed[idx] {
            out[from].push(to);
            in_degree[to] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&node| in_degree[node] == 0).collect();
    let mut done = 0;
    while let Some(node) = ready.pop() {
        done += 1;
        for &to in &out[node] {
            in_degree[to] -= 1;
            if in_degree[to] == 0 {
                ready.push(to);
            }
        }
    }
    done == n
}

/// The naive answer: while a cycle is left, cut its lightest edge.
fn greedy_cut(n: usize, edges: &[(usize, usize, u64)]) -> Vec<bool> {
    let mut removed = vec![false; edges.len()];
    while let Some(cycle) = find_cycle(n, edges, &removed) {
        let lightest = cycle
            .into_iter()
            .min_by_key(|&idx| (edges[idx].2, idx))
            .expect("a cycle has edges");
        removed[lightest] = true;
    }
    removed
}

/// The edges of some cycle of the graph without the removed edges, if there is one.
fn find_cycle(n: usize, edges: &[(usize, usize, u64)], removed: &[bool]) -> Option<Vec<usize>> {
    for (idx, &(from, to, _)) in edges.iter().enumerate() {
        if removed[idx] {
            continue;
        }
        // Search a path to -> from; with the edge it closes a cycle.
        let mut via: Vec<Option<usize>> = vec![None; n];
        let mut stack = vec![to];
        let mut seen = vec![false; n];
        seen[to] = true;
        while let Some(node) = stack.pop() {
            if node == from {
                let mut cycle = vec![idx];
                let mut at = from;
                while let Some(edge) = via[at] {
                    cycle.push(edge);
                    at = edges[edge].0;
                }
                return Some(cycle);
            }
            for (next_idx, &(next_from, next_to, _)) in edges.iter().enumerate() {
                if !removed[next_idx] && next_from == node && !seen[next_to] {
                    seen[next_to] = true;
                    via[next_to] = Some(next_idx);
                    stack.push(next_to);
                }
            }
        }
    }
    None
}

fn cut_weight(edges: &[(usize, usize, u64)], removed: &[bool]) -> u64 {
    edges
        .iter()
        .zip(removed)
        .filter(|(_, removed)| **removed)
        .map(|(edge, _)| edge.2)
        .sum()
}

/// The least weight of a feedback arc set, trying every subset of edges.
fn brute_force_cut(n: usize, edges: &[(usize, usize, u64)]) -> u64 {
    let mut best = u64::MAX;
    for mask in 0u32..(1 << edges.len()) {
        let removed: Vec<bool> = (0..edges.len()).map(|idx| mask & (1 << idx) != 0).collect();
        let weight = cut_weight(edges, &removed);
        if weight < best && is_acyclic(n, edges, &removed) {
            best = weight;
        }
    }
    best
}

/// Every elementary cycle, as node lists starting at their smallest node, by trying every path.
fn brute_force_cycles(n: usize, edges: &[(usize, usize, u64)]) -> BTreeSet<Vec<usize>> {
    fn extend(path: &mut Vec<usize>, out: &[Vec<usize>], acc: &mut BTreeSet<Vec<usize>>) {
        let last = path[path.len() - 1];
        for &next in &out[last] {
            if next == path[0] {
                acc.insert(path.clone());
            } else if next > path[0] && !path.contains(&next) {
                path.push(next);
                extend(path, out, acc);
                path.pop();
            }
        }
    }
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(from, to, _) in edges {
        out[from].push(to);
    }
    let mut acc = BTreeSet::new();
    for start in 0..n {
        extend(&mut vec![start], &out, &mut acc);
    }
    acc
}

fn digraph_of(n: usize, edges: &[(usize, usize, u64)], names: &[String]) -> Digraph<'static> {
    let names: &'static [String] = Box::leak(names.to_vec().into_boxed_slice());
    Digraph::new(
        (0..n).map(|node| names[node].as_str()),
        edges
            .iter()
            .map(|&(from, to, weight)| (names[from].as_str(), names[to].as_str(), weight)),
    )
}

fn names(n: usize) -> Vec<String> {
    // Zero-padded so that id order is node order.
    (0..n).map(|node| format!("m{node:03}")).collect()
}

proptest! {
    #[test]
    fn exact_cut_matches_brute_force((n, edges) in graph_strategy(8, 14)) {
        let solution = solve_component(n, &edges);
        prop_assert!(solution.exact);
        prop_assert!(is_acyclic(n, &edges, &solution.cut));
        let weight = cut_weight(&edges, &solution.cut);
        prop_assert_eq!(weight, brute_force_cut(n, &edges));
        prop_assert!(weight <= cut_weight(&edges, &greedy_cut(n, &edges)));
    }

    #[test]
    fn heuristic_cut_is_acyclic_and_the_bound_holds((n, edges) in graph_strategy(8, 14)) {
        let cut = heuristic_cut(n, &edges, 0);
        prop_assert!(is_acyclic(n, &edges, &cut));
        prop_assert!(cycle_packing_bound(n, &edges, u64::MAX) <= brute_force_cut(n, &edges));
    }

    #[test]
    fn mid_sized_components_are_exact_whichever_way_they_are_solved((n, edges) in graph_strategy(16, 40)) {
        // Past 12 nodes the heuristic is tried first and kept when the packing bound proves it.
        let solution = solve_component(n, &edges);
        let exact = backward_edges(&exact_order(n, &edges), &edges);
        prop_assert!(solution.exact);
        prop_assert!(is_acyclic(n, &edges, &solution.cut));
        prop_assert_eq!(cut_weight(&edges, &solution.cut), cut_weight(&edges, &exact));
    }

    #[test]
    fn bounded_search_agrees_with_the_subset_programme((n, edges) in graph_strategy(10, 30)) {
        let optimum = cut_weight(&edges, &backward_edges(&exact_order(n, &edges), &edges));
        let heuristic = cut_weight(&edges, &heuristic_cut(n, &edges, 0));
        match bounded_search(n, &edges, heuristic, u64::MAX) {
            Search::Optimal(None) => prop_assert_eq!(heuristic, optimum),
            Search::Optimal(Some(order)) => {
                prop_assert!(optimum < heuristic);
                prop_assert_eq!(cut_weight(&edges, &backward_edges(&order, &edges)), optimum);
            }
            Search::GaveUp => prop_assert!(false, "no work cap was set"),
        }
    }


    #[test]
    fn analysis_is_consistent((n, edges) in graph_strategy(12, 40)) {
        let names = names(n);
        let graph = digraph_of(n, &edges, &names);
        let components = graph.components();
        let (found, truncated) = elementary_cycles(&graph, &components, usize::MAX, u64::MAX);
        let all = brute_force_cycles(n, &edges);
        prop_assert!(!truncated);
        // Every elementary cycle is found once, shortest first, and each is a real cycle.
        prop_assert_eq!(found.iter().cloned().collect::<BTreeSet<_>>(), all.clone());
        prop_assert_eq!(found.len(), all.len());
        prop_assert!(found.windows(2).all(|pair| (pair[0].len(), &pair[0]) < (pair[1].len(), &pair[1])));
        // Components partition the nodes, and a node is in a non-trivial one iff it is on a cycle.
        let on_cycle: BTreeSet<usize> = all.iter().flatten().copied().collect();
        let in_component: BTreeSet<usize> =
            components.members.iter().filter(|members| members.len() > 1).flatten().copied().collect();
        prop_assert_eq!(&on_cycle, &in_component);
        prop_assert_eq!(components.members.iter().map(Vec::len).sum::<usize>(), n);
        for cycle in &all {
            let component = components.of_node[cycle[0]];
            prop_assert!(cycle.iter().all(|&node| components.of_node[node] == component));
        }
        // Removing the cut leaves the graph acyclic.
        let (cut, _) = feedback_arc_set(&graph, &components);
        let cut_set: BTreeSet<(usize, usize)> = cut.iter().map(|&(from, to, _)| (from, to)).collect();
        let removed: Vec<bool> = edges.iter().map(|&(from, to, _)| cut_set.contains(&(from, to))).collect();
        prop_assert!(is_acyclic(n, &edges, &removed));
    }

    #[test]
    fn capped_listing_is_a_prefix_of_the_full_one((n, edges) in graph_strategy(9, 30), cap in 0usize..6) {
        let names = names(n);
        let graph = digraph_of(n, &edges, &names);
        let components = graph.components();
        let (all, _) = elementary_cycles(&graph, &components, usize::MAX, u64::MAX);
        let (capped, truncated) = elementary_cycles(&graph, &components, cap, u64::MAX);
        prop_assert_eq!(&capped[..], &all[..capped.len()]);
        prop_assert_eq!(truncated, all.len() > cap);
    }
}

proptest! {
    // Each case runs the full solver on up to 60 nodes; a few dozen cases are enough.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn cuts_of_larger_graphs_are_acyclic((n, edges) in graph_strategy(60, 300)) {
        let solution = solve_component(n, &edges);
        prop_assert!(is_acyclic(n, &edges, &solution.cut));
        let bound = cycle_packing_bound(n, &edges, u64::MAX);
        prop_assert!(cut_weight(&edges, &solution.cut) >= bound);
        // Up to the subset programme's size every answer is proven.
        prop_assert!(solution.exact || n > EXACT_MAX_NODES);
    }
}
