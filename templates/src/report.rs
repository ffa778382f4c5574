//! The HTML report: one self-contained page (inline CSS, inline SVG, no script) built from a
//! [`Report`].
//!
//! The view structs below only reshape the report for the template: which edges are drawn, in
//! which order the matrix lists modules, what colour a crate gets. Nothing here finds a cycle or
//! weighs an edge; that is the analyzer's work.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;

use analyzer::check::lifted_edges;
use analyzer::in_scope;
use analyzer::report::{Access, Edge, Report, UnitMetrics};

use crate::codegen;
use crate::layout::{self, EdgeIn, NodeIn};

/// The graph shows at most this many modules; beyond that it keeps cycle members and their
/// neighbours, and says so.
pub const MAX_GRAPH_NODES: usize = 150;
/// The dependency structure matrix shows at most this many modules.
pub const MAX_MATRIX_NODES: usize = 60;

/// What the page says about how it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// E.g. `fig 0.1.0`.
    pub tool: String,
}

/// Renders the whole report page.
pub fn render_html(report: &Report, meta: &Meta) -> Result<String, askama::Error> {
    let page = ReportPage::new(report, meta)?;
    page.render()
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    report: &'a Report,
    tool: &'a str,
    title: String,
    scope: String,
    counts: Vec<(&'static str, usize)>,
    graph: Graph,
    crate_graph: Option<Graph>,
    matrix: Matrix,
    cycles: Vec<CycleView>,
    elementary: Vec<String>,
    bidirectional: Vec<PairView>,
    suggestions: Vec<SuggestionView>,
    crate_edges: Vec<(String, String, u32)>,
    metric_tables: Vec<(&'static str, &'a [UnitMetrics])>,
}

struct Graph {
    width: String,
    height: String,
    nodes: Vec<SvgNode>,
    edges: Vec<SvgEdge>,
    note: Option<String>,
    legend: Vec<(String, &'static str)>,
}

struct SvgNode {
    x: String,
    y: String,
    width: String,
    height: String,
    text_x: String,
    text_y: String,
    label: String,
    title: String,
    fill: &'static str,
    class: &'static str,
}

struct SvgEdge {
    points: String,
    class: &'static str,
    marker: &'static str,
    label_x: String,
    label_y: String,
    weight: u32,
    title: String,
}

struct Matrix {
    headers: Vec<usize>,
    rows: Vec<MatrixRow>,
    note: Option<String>,
}

struct MatrixRow {
    number: usize,
    label: String,
    cells: Vec<MatrixCell>,
}

struct MatrixCell {
    text: String,
    class: &'static str,
    title: String,
}

struct CycleView {
    members: Vec<String>,
    weight: u32,
}

struct PairView {
    a: String,
    b: String,
    a_to_b: String,
    b_to_a: String,
}

struct SuggestionView {
    from: String,
    to: String,
    trait_name: String,
    trait_home: String,
    implemented_by: String,
    methods: Vec<(String, &'static str, String)>,
    moved_items: String,
    steps: Vec<String>,
    code: String,
}

/// Crate colours: light enough for black text, distinct enough side by side.
const PALETTE: &[&str] = &[
    "#dbeafe", "#dcfce7", "#fef3c7", "#f3e8ff", "#e0f2fe", "#fce7f3", "#ecfccb", "#ffedd5",
];

fn px(value: f64) -> String {
    format!("{value:.1}")
}

impl<'a> ReportPage<'a> {
    fn new(report: &'a Report, meta: &'a Meta) -> Result<ReportPage<'a>, askama::Error> {
        let root = report.workspace_root.display().to_string();
        let title = report
            .workspace_root
            .file_name()
            .map_or_else(|| root.clone(), |name| name.to_string_lossy().into_owned());
        let scope = match (
            report.scope.include_hierarchical,
            report.scope.include_test_only,
        ) {
            (false, false) => "edges across module subtrees, outside tests",
            (true, false) => "all edges outside tests, parent-child ones included",
            (false, true) => "edges across module subtrees, tests included",
            (true, true) => "every edge",
        }
        .to_owned();
        let in_scope_edges = report
            .edges
            .iter()
            .filter(|edge| in_scope(edge, report.scope))
            .count();
        let counts = vec![
            ("crates", report.crates.len()),
            ("modules", report.modules.len()),
            ("module edges", report.edges.len()),
            ("edges in scope", in_scope_edges),
            ("cycles", report.cycles.len()),
            ("two-way pairs", report.bidirectional.len()),
            ("edges to cut", report.cut.len()),
            ("suggestions", report.suggestions.len()),
            ("candidate services", report.services.len()),
            ("skipped files", report.skipped_files.len()),
        ];
        let (graph, order) = graph(report);
        let matrix = matrix(report, &order);
        let cycles = report
            .cycles
            .iter()
            .map(|cycle| CycleView {
                members: cycle.members.clone(),
                weight: cycle.weight,
            })
            .collect();
        let elementary = report
            .elementary_cycles
            .iter()
            .map(|cycle| {
                let mut path = cycle.join(" → ");
                if let Some(first) = cycle.first() {
                    path.push_str(" → ");
                    path.push_str(first);
                }
                path
            })
            .collect();
        let bidirectional = report
            .bidirectional
            .iter()
            .map(|pair| PairView {
                a: pair.a.clone(),
                b: pair.b.clone(),
                a_to_b: format!("{} ({})", pair.a_to_b_weight, pair.a_to_b_items.join(", ")),
                b_to_a: format!("{} ({})", pair.b_to_a_weight, pair.b_to_a_items.join(", ")),
            })
            .collect();
        let mut suggestions = Vec::new();
        for suggestion in &report.suggestions {
            let package = codegen::to_kebab(&suggestion.trait_name);
            let code = codegen::trait_code(suggestion, &package, &meta.tool)?;
            suggestions.push(SuggestionView {
                from: suggestion.from.clone(),
                to: suggestion.to.clone(),
                trait_name: suggestion.trait_name.clone(),
                trait_home: suggestion.trait_home.clone(),
                implemented_by: suggestion.implemented_by.clone(),
                methods: suggestion
                    .methods
                    .iter()
                    .map(|method| {
                        let class = match method.class {
                            Access::Query => "query",
                            Access::Command => "command",
                        };
                        let event = method
                            .event
                            .as_ref()
                            .map(|event| format!("or event {event}"))
                            .unwrap_or_default();
                        (method.signature.clone(), class, event)
                    })
                    .collect(),
                moved_items: suggestion.moved_items.join(", "),
                steps: suggestion.steps.clone(),
                code: code.source,
            });
        }
        let crate_edges = report
            .crate_edges
            .iter()
            .map(|edge| (edge.from.clone(), edge.to.clone(), edge.weight))
            .collect();
        Ok(ReportPage {
            report,
            tool: &meta.tool,
            title,
            scope,
            counts,
            graph,
            crate_graph: crate_graph(report),
            matrix,
            cycles,
            elementary,
            bidirectional,
            suggestions,
            crate_edges,
            metric_tables: vec![
                ("Crates", report.metrics.crates.as_slice()),
                ("Modules", report.metrics.modules.as_slice()),
            ],
        })
    }
}

/// Cycle membership: module id -> index of its cycle.
fn cycle_of(report: &Report) -> BTreeMap<&str, usize> {
    let mut res = BTreeMap::new();
    for (idx, cycle) in report.cycles.iter().enumerate() {
        for member in &cycle.members {
            res.insert(member.as_str(), idx);
        }
    }
    res
}

/// Lays out the in-scope module graph; returns the drawing and the module order (layer by layer).
fn graph(report: &Report) -> (Graph, Vec<String>) {
    let cycle_of = cycle_of(report);
    // The edges cycles and the cut list are computed on: lifted to where their ends part.
    let lifted = lifted_edges(report);
    let edges: Vec<&Edge> = lifted.iter().filter(|edge| edge.from != edge.to).collect();
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    for edge in &edges {
        ids.insert(&edge.from);
        ids.insert(&edge.to);
    }
    let n_connected = ids.len();
    let mut note = None;
    if ids.len() > MAX_GRAPH_NODES {
        // Keep what matters most: cycle members, then their direct neighbours.
        let mut keep: BTreeSet<&str> = cycle_of.keys().copied().collect();
        for edge in &edges {
            if keep.len() >= MAX_GRAPH_NODES {
                break;
            }
            if cycle_of.contains_key(edge.from.as_str()) || cycle_of.contains_key(edge.to.as_str())
            {
                keep.insert(&edge.from);
                keep.insert(&edge.to);
            }
        }
        // Then the most coupled modules, so an acyclic workspace still gets a picture.
        let mut coupling: BTreeMap<&str, u64> = BTreeMap::new();
        for edge in &edges {
            *coupling.entry(&edge.from).or_default() += u64::from(edge.weight);
            *coupling.entry(&edge.to).or_default() += u64::from(edge.weight);
        }
        let mut by_coupling: Vec<(&str, u64)> = coupling.into_iter().collect();
        by_coupling.sort_by(|left, right| right.1.cmp(&left.1).then(left.0.cmp(right.0)));
        for (id, _) in by_coupling {
            if keep.len() >= MAX_GRAPH_NODES {
                break;
            }
            keep.insert(id);
        }
        ids = keep.into_iter().take(MAX_GRAPH_NODES).collect();
        note = Some(format!(
            "{n_connected} modules have dependencies; the graph shows {}: those in or next to a cycle first, then the most coupled.",
            ids.len()
        ));
    }
    let ids: Vec<&str> = ids.into_iter().collect();
    let index: BTreeMap<&str, usize> = ids.iter().enumerate().map(|(idx, id)| (*id, idx)).collect();
    let crate_names: Vec<&str> = report
        .crates
        .iter()
        .map(|krate| krate.name.as_str())
        .collect();
    let group_of = |id: &str| {
        let krate = id.split("::").next().unwrap_or(id);
        crate_names
            .iter()
            .position(|name| *name == krate)
            .unwrap_or(0)
    };
    let cut: BTreeSet<(&str, &str)> = report
        .cut
        .iter()
        .map(|edge| (edge.from.as_str(), edge.to.as_str()))
        .collect();
    let nodes_in: Vec<NodeIn> = ids
        .iter()
        .map(|id| NodeIn {
            // The colour says which crate; the label keeps the path inside it, which keeps the
            // boxes narrow. The tooltip has the full id.
            label: id
                .split_once("::")
                .map_or_else(|| (*id).to_owned(), |(_, inside)| inside.to_owned()),
            group: group_of(id),
            highlight: cycle_of.contains_key(id),
        })
        .collect();
    let mut drawn: Vec<&Edge> = Vec::new();
    let mut edges_in: Vec<EdgeIn> = Vec::new();
    for edge in &edges {
        let (Some(&from), Some(&to)) = (index.get(edge.from.as_str()), index.get(edge.to.as_str()))
        else {
            continue;
        };
        let same_cycle = matches!(
            (cycle_of.get(edge.from.as_str()), cycle_of.get(edge.to.as_str())),
            (Some(a), Some(b)) if a == b
        );
        edges_in.push(EdgeIn {
            from,
            to,
            weight: edge.weight,
            highlight: same_cycle,
            reversed: cut.contains(&(edge.from.as_str(), edge.to.as_str())),
        });
        drawn.push(edge);
    }
    let node_titles: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    let edge_titles: Vec<String> = drawn
        .iter()
        .map(|edge| {
            format!(
                "{} → {}: {} ({})",
                edge.from,
                edge.to,
                edge.weight,
                edge.items.join(", ")
            )
        })
        .collect();
    let (graph, order) = draw(
        report,
        &nodes_in,
        &edges_in,
        &node_titles,
        &edge_titles,
        note,
    );
    let order = order.into_iter().map(|idx| ids[idx].to_owned()).collect();
    (graph, order)
}

/// The crate graph, when there is more than one crate to draw.
fn crate_graph(report: &Report) -> Option<Graph> {
    if report.crates.len() < 2 || report.crate_edges.is_empty() {
        return None;
    }
    let in_cycle = |name: &str| {
        report
            .crate_cycles
            .iter()
            .position(|cycle| cycle.members.iter().any(|member| member == name))
    };
    let nodes_in: Vec<NodeIn> = report
        .crates
        .iter()
        .enumerate()
        .map(|(idx, krate)| NodeIn {
            label: krate.name.clone(),
            group: idx,
            highlight: in_cycle(&krate.name).is_some(),
        })
        .collect();
    let index_of = |name: &str| report.crates.iter().position(|krate| krate.name == name);
    let mut edges_in = Vec::new();
    let mut edge_titles = Vec::new();
    for edge in &report.crate_edges {
        let (Some(from), Some(to)) = (index_of(&edge.from), index_of(&edge.to)) else {
            continue;
        };
        edges_in.push(EdgeIn {
            from,
            to,
            weight: edge.weight,
            highlight: in_cycle(&edge.from).is_some() && in_cycle(&edge.from) == in_cycle(&edge.to),
            reversed: false,
        });
        edge_titles.push(format!("{} → {}: {}", edge.from, edge.to, edge.weight));
    }
    let node_titles: Vec<String> = report
        .crates
        .iter()
        .map(|krate| krate.name.clone())
        .collect();
    Some(
        draw(
            report,
            &nodes_in,
            &edges_in,
            &node_titles,
            &edge_titles,
            None,
        )
        .0,
    )
}

/// Lays out and styles a graph; returns it with the node order (layer by layer).
fn draw(
    report: &Report,
    nodes_in: &[NodeIn],
    edges_in: &[EdgeIn],
    node_titles: &[String],
    edge_titles: &[String],
    note: Option<String>,
) -> (Graph, Vec<usize>) {
    let placed = layout::layout(nodes_in, edges_in);
    let nodes = placed
        .nodes
        .iter()
        .map(|node| {
            let input = &nodes_in[node.index];
            SvgNode {
                x: px(node.x),
                y: px(node.y),
                width: px(node.width),
                height: px(node.height),
                text_x: px(node.x + node.width / 2.0),
                text_y: px(node.y + node.height / 2.0 + 4.0),
                label: input.label.clone(),
                title: if input.highlight {
                    format!("{} (in a cycle)", node_titles[node.index])
                } else {
                    node_titles[node.index].clone()
                },
                fill: PALETTE[input.group % PALETTE.len()],
                class: if input.highlight { "node cyc" } else { "node" },
            }
        })
        .collect();
    let edges = placed
        .edges
        .iter()
        .map(|placed_edge| {
            let input = &edges_in[placed_edge.index];
            let (class, marker) = match (input.reversed, input.highlight) {
                (true, _) => ("edge cut", "arrow-red"),
                (false, true) => ("edge cyc", "arrow-red"),
                (false, false) => ("edge", "arrow"),
            };
            SvgEdge {
                points: placed_edge
                    .points
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                class,
                marker,
                label_x: px(placed_edge.label_at.0 + 4.0),
                label_y: px(placed_edge.label_at.1),
                weight: input.weight,
                title: edge_titles[placed_edge.index].clone(),
            }
        })
        .collect();
    let legend = report
        .crates
        .iter()
        .enumerate()
        .map(|(idx, krate)| (krate.name.clone(), PALETTE[idx % PALETTE.len()]))
        .collect();
    (
        Graph {
            width: px(placed.width),
            height: px(placed.height),
            nodes,
            edges,
            note,
            legend,
        },
        placed.order,
    )
}

/// The dependency structure matrix over `order` (dependents first).
fn matrix(report: &Report, order: &[String]) -> Matrix {
    let cycle_of = cycle_of(report);
    let shown: Vec<&String> = order.iter().take(MAX_MATRIX_NODES).collect();
    let note = (order.len() > shown.len()).then(|| {
        format!(
            "The matrix shows the first {} of {} modules in graph order.",
            shown.len(),
            order.len()
        )
    });
    let lifted = lifted_edges(report);
    let weights: BTreeMap<(&str, &str), u32> = lifted
        .iter()
        .map(|edge| ((edge.from.as_str(), edge.to.as_str()), edge.weight))
        .collect();
    let rows = shown
        .iter()
        .enumerate()
        .map(|(row_idx, row)| MatrixRow {
            number: row_idx + 1,
            label: (*row).clone(),
            cells: shown
                .iter()
                .enumerate()
                .map(|(col_idx, col)| {
                    if row_idx == col_idx {
                        return MatrixCell {
                            text: String::new(),
                            class: "diag",
                            title: (*row).clone(),
                        };
                    }
                    let weight = weights.get(&(row.as_str(), col.as_str()));
                    let same_cycle = matches!(
                        (cycle_of.get(row.as_str()), cycle_of.get(col.as_str())),
                        (Some(a), Some(b)) if a == b
                    );
                    MatrixCell {
                        text: weight.map(u32::to_string).unwrap_or_default(),
                        class: match (weight.is_some(), same_cycle) {
                            (true, true) => "dep cyc",
                            (true, false) => "dep",
                            (false, _) => "",
                        },
                        title: format!("{row} → {col}"),
                    }
                })
                .collect(),
        })
        .collect();
    Matrix {
        headers: (1..=shown.len()).collect(),
        rows,
        note,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use analyzer::report::{EdgeScope, Hierarchy, Metrics, Usage};

    use super::*;

    /// A chain `m0 -> m1 -> ... -> m(n-1)` in one crate, without a cycle.
    fn chain(n_modules: usize) -> Report {
        let id = |idx: usize| format!("big::m{idx:03}");
        Report {
            workspace_root: PathBuf::from("/big"),
            scope: EdgeScope {
                include_hierarchical: false,
                include_test_only: false,
            },
            crates: Vec::new(),
            modules: Vec::new(),
            edges: (1..n_modules)
                .map(|idx| Edge {
                    from: id(idx - 1),
                    to: id(idx),
                    weight: 1,
                    items: vec!["Item".to_owned()],
                    hierarchy: Hierarchy::Cross,
                    usage: Usage::Code,
                    test_only: false,
                    locations: Vec::new(),
                })
                .collect(),
            crate_edges: Vec::new(),
            cycles: Vec::new(),
            crate_cycles: Vec::new(),
            elementary_cycles: Vec::new(),
            elementary_cycles_truncated: false,
            bidirectional: Vec::new(),
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

    #[test]
    fn small_graphs_are_drawn_whole() {
        let (drawn, order) = graph(&chain(10));
        assert_eq!(drawn.nodes.len(), 10);
        assert_eq!(drawn.edges.len(), 9);
        assert!(drawn.note.is_none());
        assert_eq!(order.first().map(String::as_str), Some("big::m000"));
    }

    #[test]
    fn large_acyclic_graphs_are_capped_and_say_so() {
        let (drawn, order) = graph(&chain(400));
        assert_eq!(drawn.nodes.len(), MAX_GRAPH_NODES);
        assert_eq!(order.len(), MAX_GRAPH_NODES);
        let note = drawn.note.expect("a note says the graph is partial");
        assert!(note.starts_with("400 modules have dependencies"), "{note}");
        let matrix = matrix(&chain(400), &order);
        assert_eq!(matrix.rows.len(), MAX_MATRIX_NODES);
        assert!(matrix.note.is_some());
    }
}
