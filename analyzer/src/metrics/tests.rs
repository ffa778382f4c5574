//! Tests of the package metrics on a hand-built workspace.

use std::path::PathBuf;

use super::*;
use crate::report::{Hierarchy, Usage};

fn module(id: &str, n_traits: u32, n_types: u32, lines_of_code: u32) -> Module {
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
        n_traits,
        n_types,
    }
}

fn edge(from: &str, to: &str, weight: u32) -> Edge {
    Edge {
        from: from.to_owned(),
        to: to.to_owned(),
        weight,
        items: Vec::new(),
        hierarchy: Hierarchy::Cross,
        usage: Usage::Code,
        test_only: false,
        locations: Vec::new(),
        resolutions: Vec::new(),
    }
}

fn krate(name: &str) -> CrateInfo {
    CrateInfo {
        name: name.to_owned(),
        package: name.replace('_', "-"),
        version: "0.1.0".to_owned(),
        manifest_path: PathBuf::from(format!("{name}/Cargo.toml")),
        targets: Vec::new(),
        depends_on: Vec::new(),
    }
}

/// Renders each unit as `id in/out I=.. A=.. D=.. loc`.
#[track_caller]
fn check(
    modules: &[Module],
    crates: &[CrateInfo],
    edges: &[Edge],
    crate_edges: &[CrateEdge],
    expect: &str,
) {
    let refs: Vec<&Edge> = edges.iter().collect();
    let metrics = compute(modules, crates, &refs, crate_edges);
    let mut res = String::new();
    for unit in metrics.modules.iter().chain(&metrics.crates) {
        res += &format!(
            "{} {}/{} I={:.2} A={:.2} D={:.2} {}\n",
            unit.id,
            unit.fan_in,
            unit.fan_out,
            unit.instability,
            unit.abstractness,
            unit.distance,
            unit.lines_of_code
        );
    }
    assert_eq!(res.trim(), expect.trim());
}

#[test]
fn martin_metrics_of_modules_and_crates() {
    let modules = vec![
        module("core", 0, 0, 5),
        module("core::ports", 3, 4, 40),
        module("core::model", 0, 6, 100),
        module("app", 0, 1, 20),
        module("app::web", 0, 2, 60),
    ];
    // Two edges from app::web to core::model count once; a self-reference does not count.
    let edges = vec![
        edge("app::web", "core::model", 3),
        edge("app::web", "core::model", 1),
        edge("app::web", "core::ports", 2),
        edge("core::model", "core::ports", 1),
        edge("app", "app::web", 1),
        edge("core::ports", "core::ports", 7),
    ];
    let crate_edges = vec![CrateEdge {
        from: "app".to_owned(),
        to: "core".to_owned(),
        weight: 6,
    }];
    check(
        &modules,
        &[krate("app"), krate("core"), krate("unused")],
        &edges,
        &crate_edges,
        "app 0/1 I=1.00 A=0.00 D=0.00 20
app::web 1/2 I=0.67 A=0.00 D=0.33 60
core 0/0 I=0.00 A=0.00 D=1.00 5
core::model 1/1 I=0.50 A=0.00 D=0.50 100
core::ports 2/0 I=0.00 A=0.75 D=0.25 40
app 0/1 I=1.00 A=0.00 D=0.00 80
core 1/0 I=0.00 A=0.30 D=0.70 145
unused 0/0 I=0.00 A=0.00 D=1.00 0",
    );
}
