//! The HTML report: one self-contained page, the architect's map of a workspace.
//!
//! The page embeds the same document as `fig analyze --format json` in
//! `<script type="application/json" id="fig-report">`, and its script (`report/map.js`, plain
//! ES2020, inlined) draws the explorable map from it: the module tree collapsed to the level that
//! fits, the layered graph of what is visible with edges lifted to it, search and focus, one view
//! per tangle (strongly connected component), and the dependency matrix grouped by subtree. The
//! parts a reader needs without a script (summary, cycles, cut list, suggestions with their steps,
//! crate graph, services, skipped files) are rendered here, server-side, as plain HTML.
//!
//! The view structs below only reshape the report for the template. Nothing here finds a cycle or
//! weighs an edge; that is the analyzer's work.

use std::fmt::Write as _;

use askama::Template;

use analyzer::in_scope;
use analyzer::report::{Access, Report, UnitMetrics};

use crate::codegen;
use crate::layout::{self, EdgeIn, NodeIn};

/// The explorer's script, inlined into the page.
const MAP_JS: &str = include_str!("../report/map.js");
/// The explorer's styles, inlined into the page.
const MAP_CSS: &str = include_str!("../report/map.css");

/// What the page says about how it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// E.g. `fig 0.1.0`.
    pub tool: String,
    /// `Some(version)` when the page is served by `fig analyze --serve --watch` and shows that
    /// version of the analysis: it asks the server for a newer one and reloads when there is one,
    /// keeping what the reader had open.
    pub live: Option<u64>,
}

/// Up to this size the page embeds the JSON document as it is, in
/// `<script type="application/json" id="fig-report">`; above it, gzipped and base64-encoded in
/// `<script type="application/gzip" id="fig-report" data-encoding="gzip+base64">`, which the page
/// inflates with the browser's own `DecompressionStream`. Measured on rust-analyzer (1,306
/// modules, 9,992 edges, 86,737 reference locations): 10.5 MB of JSON, 1.1 MB gzipped.
pub const EMBED_PLAIN_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Renders the whole report page. `data` is the report as `fig analyze --format json` prints it;
/// the page embeds it and draws from it.
pub fn render_html(report: &Report, data: &str, meta: &Meta) -> Result<String, askama::Error> {
    let page = ReportPage::new(report, data, meta)?;
    page.render()
}

/// How the JSON document sits in the page: its text and, when it is compressed, the encoding.
fn embed(json: &str) -> (String, Option<&'static str>) {
    use std::io::Write as _;

    use base64::Engine as _;

    if json.len() <= EMBED_PLAIN_MAX_BYTES {
        return (script_safe_json(json), None);
    }
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 8),
        flate2::Compression::default(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(json.as_bytes());
    let gzipped = encoder.finish().unwrap_or_default();
    // Base64 has no `<`, so it cannot close the element.
    (
        base64::engine::general_purpose::STANDARD.encode(gzipped),
        Some("gzip+base64"),
    )
}

/// Makes JSON safe inside `<script>`: `</` and `<!--` cannot appear in it, so the element cannot
/// be closed early. Both escapes are valid JSON (`\/`, `\u0021`), so the text parses the same.
pub fn script_safe_json(json: &str) -> String {
    json.replace("</", "<\\/").replace("<!--", "<\\u0021--")
}

/// Renders a line of prose from the analyzer, where `code` is written between backticks, as HTML:
/// the text escaped, each backticked span in `<code>`.
pub fn inline_markup(text: &str) -> String {
    let mut res = String::with_capacity(text.len() + 16);
    // An odd last backtick stays a backtick rather than opening code that never ends.
    let n_ticks = text.matches('`').count();
    let paired = n_ticks - n_ticks % 2;
    let mut seen = 0;
    for c in text.chars() {
        if c == '`' && seen < paired {
            seen += 1;
            res.push_str(if seen % 2 == 1 { "<code>" } else { "</code>" });
        } else {
            escape_char(&mut res, c);
        }
    }
    res
}

fn escape_char(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    report: &'a Report,
    tool: &'a str,
    live: Option<u64>,
    title: String,
    scope: String,
    counts: Vec<Count>,
    crate_graph: Option<Graph>,
    cycles: Vec<CycleView>,
    elementary: Vec<String>,
    bidirectional: Vec<PairView>,
    suggestions: Vec<SuggestionView>,
    crate_edges: Vec<(String, String, u32)>,
    crate_metrics: &'a [UnitMetrics],
    /// The JSON document, made safe for a `<script>` element, or compressed (`encoding`).
    data: String,
    encoding: Option<&'static str>,
    css: &'static str,
    script: &'static str,
}

/// One number of the summary; `key` names it for the page's script and tests.
struct Count {
    key: &'static str,
    label: &'static str,
    value: usize,
    bad: bool,
}

struct Graph {
    width: String,
    height: String,
    nodes: Vec<SvgNode>,
    edges: Vec<SvgEdge>,
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

struct CycleView {
    index: usize,
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
    /// Each step as HTML: escaped, code in `<code>`.
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
    fn new(
        report: &'a Report,
        data: &str,
        meta: &'a Meta,
    ) -> Result<ReportPage<'a>, askama::Error> {
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
        let count = |key, label, value, bad| Count {
            key,
            label,
            value,
            bad,
        };
        let counts = vec![
            count("crates", "crates", report.crates.len(), false),
            count("modules", "modules", report.modules.len(), false),
            count("edges", "module edges", report.edges.len(), false),
            count("edges-in-scope", "edges in scope", in_scope_edges, false),
            count(
                "sccs",
                "cycles (strongly connected components)",
                report.cycles.len(),
                !report.cycles.is_empty(),
            ),
            count(
                "elementary-cycles",
                if report.elementary_cycles_truncated {
                    "elementary cycles (capped)"
                } else {
                    "elementary cycles"
                },
                report.elementary_cycles.len(),
                !report.elementary_cycles.is_empty(),
            ),
            count(
                "pairs",
                "two-way pairs",
                report.bidirectional.len(),
                !report.bidirectional.is_empty(),
            ),
            count("cut", "edges to cut", report.cut.len(), false),
            count(
                "suggestions",
                "suggestions",
                report.suggestions.len(),
                false,
            ),
            count(
                "services",
                "candidate services",
                report.services.len(),
                false,
            ),
            count(
                "skipped",
                "skipped files",
                report.skipped_files.len(),
                !report.skipped_files.is_empty(),
            ),
        ];
        let cycles = report
            .cycles
            .iter()
            .enumerate()
            .map(|(index, cycle)| CycleView {
                index,
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
                    let _ = write!(path, " → {first}");
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
                steps: suggestion
                    .steps
                    .iter()
                    .map(|step| inline_markup(step))
                    .collect(),
                code: code.source,
            });
        }
        let crate_edges = report
            .crate_edges
            .iter()
            .map(|edge| (edge.from.clone(), edge.to.clone(), edge.weight))
            .collect();
        let (data, encoding) = embed(data);
        Ok(ReportPage {
            report,
            tool: &meta.tool,
            live: meta.live,
            title,
            scope,
            counts,
            crate_graph: crate_graph(report),
            cycles,
            elementary,
            bidirectional,
            suggestions,
            crate_edges,
            crate_metrics: report.metrics.crates.as_slice(),
            data,
            encoding,
            css: MAP_CSS,
            script: MAP_JS,
        })
    }
}

/// The crate graph, when there is more than one crate to draw: small (one node per crate), so
/// it is laid out here and needs no script.
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
    let placed = layout::layout(&nodes_in, &edges_in);
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
                    format!("{} (in a crate cycle)", input.label)
                } else {
                    input.label.clone()
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
            let (class, marker) = if input.highlight {
                ("edge cyc", "arrow-red")
            } else {
                ("edge", "arrow")
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
    Some(Graph {
        width: px(placed.width),
        height: px(placed.height),
        nodes,
        edges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_become_code_and_text_is_escaped() {
        assert_eq!(
            inline_markup("Move `A<T>` to `b::c` & <i>re-export</i>"),
            "Move <code>A&lt;T&gt;</code> to <code>b::c</code> &amp; &lt;i&gt;re-export&lt;/i&gt;"
        );
        assert_eq!(inline_markup("odd ` tick"), "odd ` tick");
        assert_eq!(inline_markup("`a` and `"), "<code>a</code> and `");
    }

    #[test]
    fn a_large_document_is_embedded_gzipped_and_inflates_to_the_same_text() {
        use std::io::Read as _;

        use base64::Engine as _;

        let small = r#"{"a":1}"#;
        assert_eq!(embed(small), (small.to_owned(), None));
        let large = format!(
            "[{}]",
            vec![r#"{"file":"crates/a/src/b.rs","line":1}"#; 200_000].join(",")
        );
        assert!(large.len() > EMBED_PLAIN_MAX_BYTES);
        let (text, encoding) = embed(&large);
        assert_eq!(encoding, Some("gzip+base64"));
        assert!(text.len() < large.len() / 10, "{} bytes", text.len());
        let gzipped = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .expect("base64");
        let mut inflated = String::new();
        flate2::read::GzDecoder::new(gzipped.as_slice())
            .read_to_string(&mut inflated)
            .expect("gzip");
        assert_eq!(inflated, large);
    }

    #[test]
    fn embedded_json_cannot_close_its_script_element() {
        let json = r#"{"item":"</script><script>alert(1)</script>","c":"<!--"}"#;
        let safe = script_safe_json(json);
        assert!(!safe.contains("</") && !safe.contains("<!--"), "{safe}");
        // Still the same JSON (checked by hand: `\/` is `/`, `\u0021` is `!`).
        assert!(safe.contains(r"<\/script>") && safe.contains(r"<\u0021--"));
    }
}
