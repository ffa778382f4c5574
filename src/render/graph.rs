//! The module graph as Graphviz DOT and as Mermaid, for pasting into other tools.
//!
//! Both show the in-scope edges lifted as the cycles see them (`a::x -> b::y` as `a -> b`), with
//! their weights as labels, modules grouped by crate, edges inside a cycle in red and edges of the
//! cut list dashed. At crate level they show the crate graph instead.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use analyzer::report::{Edge, Report};

use super::text::Level;

/// One drawn edge, shared by both formats.
struct GraphEdge<'r> {
    from: &'r str,
    to: &'r str,
    weight: u32,
    in_cycle: bool,
    cut: bool,
}

/// Nodes grouped by crate, and edges.
struct Picture<'r> {
    groups: BTreeMap<&'r str, BTreeSet<&'r str>>,
    edges: Vec<GraphEdge<'r>>,
}

fn picture<'r>(report: &'r Report, lifted: &'r [Edge], level: Level) -> Picture<'r> {
    let mut groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut edges = Vec::new();
    match level {
        Level::Module => {
            let mut component: BTreeMap<&str, usize> = BTreeMap::new();
            for (idx, cycle) in report.cycles.iter().enumerate() {
                for member in &cycle.members {
                    component.insert(member, idx);
                }
            }
            let cut: BTreeSet<(&str, &str)> = report
                .cut
                .iter()
                .map(|edge| (edge.from.as_str(), edge.to.as_str()))
                .collect();
            for module in &report.modules {
                groups
                    .entry(module.krate.as_str())
                    .or_default()
                    .insert(&module.id);
            }
            for edge in lifted.iter().filter(|edge| edge.from != edge.to) {
                edges.push(GraphEdge {
                    from: &edge.from,
                    to: &edge.to,
                    weight: edge.weight,
                    in_cycle: matches!(
                        (component.get(edge.from.as_str()), component.get(edge.to.as_str())),
                        (Some(a), Some(b)) if a == b
                    ),
                    cut: cut.contains(&(edge.from.as_str(), edge.to.as_str())),
                });
            }
        }
        Level::Crate => {
            let in_cycle: BTreeSet<&str> = report
                .crate_cycles
                .iter()
                .flat_map(|cycle| cycle.members.iter().map(String::as_str))
                .collect();
            for krate in &report.crates {
                groups.entry("").or_default().insert(&krate.name);
            }
            for edge in &report.crate_edges {
                edges.push(GraphEdge {
                    from: &edge.from,
                    to: &edge.to,
                    weight: edge.weight,
                    in_cycle: in_cycle.contains(edge.from.as_str())
                        && in_cycle.contains(edge.to.as_str()),
                    cut: false,
                });
            }
        }
    }
    Picture { groups, edges }
}

fn dot_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz DOT.
pub fn dot(report: &Report, level: Level) -> String {
    let lifted = analyzer::check::lifted_edges(report);
    let picture = picture(report, &lifted, level);
    let mut out = String::new();
    out.push_str("digraph modules {\n");
    out.push_str("  rankdir=TB;\n");
    out.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f8fafc\", fontname=\"monospace\", fontsize=10];\n");
    out.push_str("  edge [fontname=\"monospace\", fontsize=9, color=\"#64748b\"];\n");
    for (cluster_idx, (krate, members)) in picture.groups.iter().enumerate() {
        let indent = if krate.is_empty() {
            "  "
        } else {
            let _ = writeln!(out, "  subgraph cluster_{cluster_idx} {{");
            let _ = writeln!(out, "    label={};", dot_quote(krate));
            out.push_str("    style=rounded; color=\"#94a3b8\";\n");
            "    "
        };
        for member in members {
            let _ = writeln!(out, "{indent}{};", dot_quote(member));
        }
        if !krate.is_empty() {
            out.push_str("  }\n");
        }
    }
    for edge in &picture.edges {
        let mut attributes = vec![format!("label=\"{}\"", edge.weight)];
        if edge.in_cycle || edge.cut {
            attributes.push("color=\"#dc2626\"".to_owned());
            attributes.push("fontcolor=\"#dc2626\"".to_owned());
            attributes.push("penwidth=2".to_owned());
        }
        if edge.cut {
            attributes.push("style=dashed".to_owned());
        }
        let _ = writeln!(
            out,
            "  {} -> {} [{}];",
            dot_quote(edge.from),
            dot_quote(edge.to),
            attributes.join(", ")
        );
    }
    out.push_str("}\n");
    out
}

/// Mermaid `flowchart`.
pub fn mermaid(report: &Report, level: Level) -> String {
    let lifted = analyzer::check::lifted_edges(report);
    let picture = picture(report, &lifted, level);
    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    let mut out = String::from("flowchart TD\n");
    for (krate, members) in &picture.groups {
        let indent = if krate.is_empty() {
            "  "
        } else {
            let _ = writeln!(out, "  subgraph {}", mermaid_group(krate));
            "    "
        };
        for member in members {
            let id = format!("n{}", ids.len());
            let _ = writeln!(out, "{indent}{id}[\"{}\"]", member.replace('"', "#quot;"));
            ids.insert(member, id);
        }
        if !krate.is_empty() {
            out.push_str("  end\n");
        }
    }
    // Mermaid numbers links in the order they are written; `linkStyle` refers to those numbers.
    let mut red = Vec::new();
    let mut n_links = 0usize;
    for edge in &picture.edges {
        let (Some(from), Some(to)) = (ids.get(edge.from), ids.get(edge.to)) else {
            continue;
        };
        let arrow = if edge.cut { "-.->" } else { "-->" };
        let _ = writeln!(out, "  {from} {arrow}|{}| {to}", edge.weight);
        if edge.in_cycle || edge.cut {
            red.push(n_links.to_string());
        }
        n_links += 1;
    }
    if !red.is_empty() {
        let _ = writeln!(
            out,
            "  linkStyle {} stroke:#dc2626,stroke-width:2px,color:#dc2626",
            red.join(",")
        );
    }
    out
}

/// A subgraph id and title: `shop["shop"]`.
fn mermaid_group(krate: &str) -> String {
    format!("crate_{krate}[\"{krate}\"]")
}
