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
