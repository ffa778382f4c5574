//! Tests of candidate services on hand-built module graphs.

use std::path::PathBuf;

use super::*;
use crate::report::{Hierarchy, Usage};

fn module(id: &str, lines_of_code: u32) -> Module {
    Module {
        id: id.to_owned(),
        krate: id.split("::").next().unwrap_or(id).to_owned(),
        parent: id.rsplit_once("::").map(|(parent, _)| parent.to_owned()),
        file: PathBuf::from("src/lib.rs"),
        line: 1,
        lines_of_code,
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
        items: vec!["Item".to_owned()],
        hierarchy: Hierarchy::Cross,
        usage: Usage::Code,
        test_only: false,
        locations: Vec::new(),
        resolutions: Vec::new(),
    }
}

/// Runs `candidates` and renders each service as `name: modules (internal/external)` and each
/// service edge as `from_service -> to_service: from -> to weight`.
#[track_caller]
fn check(modules: &[Module], edges: &[Edge], expect: &str) {
    let refs: Vec<&Edge> = edges.iter().collect();
    let (services, service_edges) = candidates(modules, &refs);
    let mut res = String::new();
    for service in &services {
        res += &format!(
            "{}: {} ({}/{})\n",
            service.name,
            service.modules.join(" "),
            service.internal_weight,
            service.external_weight
        );
    }
    for edge in &service_edges {
        res += &format!(
            "{} -> {}: {} -> {} {}\n",
            edge.from_service, edge.to_service, edge.from, edge.to, edge.weight
        );
    }
    assert_eq!(res.trim(), expect.trim());
}

/// Every ordered pair of distinct ids, with the given weight.
fn clique(ids: &[&str], weight: u32) -> Vec<Edge> {
    let mut edges = Vec::new();
    for from in ids {
        for to in ids {
            if from != to {
                edges.push(edge(from, to, weight));
            }
        }
    }
    edges
}

#[test]
fn two_cliques_joined_by_a_light_edge_are_two_services() {
    let orders = [
        "shop::order",
        "shop::order_line",
        "shop::cart",
        "shop::checkout",
    ];
    let payments = [
        "shop::payment",
        "shop::refund",
        "shop::ledger",
        "shop::invoice",
    ];
    let mut modules: Vec<Module> = orders
        .iter()
        .chain(&payments)
        .map(|id| module(id, 10))
        .collect();
    modules.push(module("shop", 5));
    // The heaviest module names the group: `order` and `payment` get extra weight.
    let mut edges = clique(&orders, 3);
    edges.extend(clique(&payments, 3));
    edges.push(edge("shop::order", "shop::order_line", 2));
    edges.push(edge("shop::payment", "shop::ledger", 2));
    edges.push(edge("shop::checkout", "shop::payment", 1));
    check(
        &modules,
        &edges,
        "order: shop::cart shop::checkout shop::order shop::order_line (38/1)
payment: shop::invoice shop::ledger shop::payment shop::refund (38/1)
order -> payment: shop::checkout -> shop::payment 1",
    );
}

#[test]
fn a_ring_of_cliques_is_one_service_per_clique() {
    // Six cliques of four, each joined to the next by one light edge: the textbook case where
    // Louvain must keep the cliques apart.
    let groups: Vec<Vec<String>> = (0..6)
        .map(|group| {
            (0..4)
                .map(|member| format!("ring::g{group}::m{member}"))
                .collect()
        })
        .collect();
    let modules: Vec<Module> = groups.iter().flatten().map(|id| module(id, 10)).collect();
    let mut edges = Vec::new();
    for (group, members) in groups.iter().enumerate() {
        let ids: Vec<&str> = members.iter().map(String::as_str).collect();
        edges.extend(clique(&ids, 2));
        // The first member is the heaviest, so it names the group.
        edges.push(edge(&members[0], &members[1], 1));
        edges.push(edge(&members[3], &groups[(group + 1) % 6][0], 1));
    }
    let refs: Vec<&Edge> = edges.iter().collect();
    let (services, service_edges) = candidates(&modules, &refs);
    let found: Vec<&Vec<String>> = services.iter().map(|service| &service.modules).collect();
    let expected: Vec<&Vec<String>> = groups.iter().collect();
    assert_eq!(found, expected);
    assert_eq!(service_edges.len(), 6);
}

#[test]
fn isolated_modules_join_their_nearest_grouped_ancestor() {
    let modules: Vec<Module> = [
        "app",
        "app::billing",
        "app::billing::tax",
        "app::billing::tax::rates",
        "app::crm",
        "app::util",
    ]
    .iter()
    .map(|id| module(id, 10))
    .collect();
    // `app::billing::tax::rates` has no edge: it joins `app::billing`'s group. `app::util` has no
    // edge, and its parent is the crate root: it is left out even though the root has an edge.
    let edges = vec![
        edge("app::billing", "app::crm", 4),
        edge("app::crm", "app::billing", 1),
        edge("app", "app::billing", 1),
    ];
    check(
        &modules,
        &edges,
        "billing: app app::billing app::billing::tax app::billing::tax::rates app::crm (6/0)",
    );
}

#[test]
fn groups_with_the_same_short_name_use_full_ids() {
    let modules: Vec<Module> = ["a::api", "a::db", "b::api", "b::db"]
        .iter()
        .map(|id| module(id, 10))
        .collect();
    let edges = vec![
        edge("a::api", "a::db", 5),
        edge("b::api", "b::db", 5),
        edge("a::api", "b::api", 1),
    ];
    check(
        &modules,
        &edges,
        "a::api: a::api a::db (5/1)
b::api: b::api b::db (5/1)
a::api -> b::api: a::api -> b::api 1",
    );
}

#[test]
fn a_graph_without_edges_has_no_services() {
    let modules = vec![module("a", 1), module("a::b", 1)];
    check(&modules, &[], "");
}

proptest::proptest! {
    #[test]
    fn services_partition_the_connected_modules(
        raw in proptest::collection::vec((0..30usize, 0..30usize, 1..10u32), 0..80)
    ) {
        let ids: Vec<String> = (0..30).map(|idx| format!("app::m{idx:02}")).collect();
        let mut modules: Vec<Module> = ids.iter().map(|id| module(id, 10)).collect();
        modules.push(module("app", 1));
        let edges: Vec<Edge> = raw
            .iter()
            .filter(|(from, to, _)| from != to)
            .map(|&(from, to, weight)| edge(&ids[from], &ids[to], weight))
            .collect();
        let refs: Vec<&Edge> = edges.iter().collect();
        let (services, service_edges) = candidates(&modules, &refs);

        // Every module with an edge is in exactly one service; the others (all children of the
        // crate root here) are in none.
        let mut service_of: HashMap<&str, &str> = HashMap::default();
        for service in &services {
            proptest::prop_assert!(!service.modules.is_empty());
            for id in &service.modules {
                proptest::prop_assert!(service_of.insert(id, &service.name).is_none());
            }
        }
        for id in &ids {
            let connected = edges.iter().any(|edge| &edge.from == id || &edge.to == id);
            proptest::prop_assert_eq!(service_of.contains_key(id.as_str()), connected);
        }
        // Service edges are exactly the edges between two services, and the weights add up.
        let crossing: Vec<(&str, &str)> = edges
            .iter()
            .filter(|edge| service_of[edge.from.as_str()] != service_of[edge.to.as_str()])
            .map(|edge| (edge.from.as_str(), edge.to.as_str()))
            .collect();
        let mut listed: Vec<(&str, &str)> =
            service_edges.iter().map(|edge| (edge.from.as_str(), edge.to.as_str())).collect();
        let mut expected = crossing.clone();
        listed.sort_unstable();
        expected.sort_unstable();
        proptest::prop_assert_eq!(listed, expected);
        for edge in &service_edges {
            proptest::prop_assert_eq!(service_of[edge.from.as_str()], edge.from_service.as_str());
            proptest::prop_assert_eq!(service_of[edge.to.as_str()], edge.to_service.as_str());
        }
        let total: u32 = edges.iter().map(|edge| edge.weight).sum();
        let internal: u32 = services.iter().map(|service| service.internal_weight).sum();
        let external: u32 = services.iter().map(|service| service.external_weight).sum();
        let crossing_weight: u32 = service_edges.iter().map(|edge| edge.weight).sum();
        proptest::prop_assert_eq!(internal + crossing_weight, total);
        proptest::prop_assert_eq!(external, 2 * crossing_weight);
    }
}
