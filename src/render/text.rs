//! The text report: what `fig analyze` prints for a person.
//!
//! Styles are ANSI escapes from anstyle; the caller strips them when the output is not a colour
//! terminal (anstream does that for stdout, honouring `NO_COLOR` and `CLICOLOR`).

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use analyzer::in_scope;
use analyzer::report::{Access, Report, UnitMetrics};

use crate::output::relative;

const HEADING: Style = Style::new().bold().underline();
const BAD: Style = AnsiColor::Red.on_default().bold();
const WARN: Style = AnsiColor::Yellow.on_default();
const GOOD: Style = AnsiColor::Green.on_default();
const DIM: Style = Style::new().dimmed();
const NAME: Style = AnsiColor::Cyan.on_default();

/// At what level to describe the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Module,
    Crate,
}

/// How much of each long list to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The first [`DEFAULT_LIST_LENGTH`] entries of each ranked list, then "and N more (--all)".
    Default,
    /// Everything (`--all`).
    All,
}

/// How many entries of a long list the text report prints by default.
pub const DEFAULT_LIST_LENGTH: usize = 10;

impl Limit {
    fn take(self) -> usize {
        match self {
            Limit::Default => DEFAULT_LIST_LENGTH,
            Limit::All => usize::MAX,
        }
    }
}

/// Renders the report; the result holds ANSI styles.
pub fn render(report: &Report, level: Level, limit: Limit) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, report, level, limit);
    out
}

/// Writes "and N more (--all)" under a list cut at its default length.
fn more(out: &mut String, indent: &str, n_more: usize) -> std::fmt::Result {
    if n_more == 0 {
        return Ok(());
    }
    writeln!(
        out,
        "{indent}{}",
        paint(DIM, format!("… and {n_more} more (--all)"))
    )
}

/// The subsystem a set of modules sits in: the parent module of their tangle (everything before
/// the last `::` of the first), or the crate.
fn subsystem(id: &str) -> &str {
    id.rsplit_once("::").map_or(id, |(parent, _)| parent)
}

fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// `1 crate`, `2 crates`: a count and its noun, singular for one.
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn heading(out: &mut String, title: &str) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "{}", paint(HEADING, title))
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

fn write_report(out: &mut String, report: &Report, level: Level, limit: Limit) -> std::fmt::Result {
    let n_in_scope = report
        .edges
        .iter()
        .filter(|edge| in_scope(edge, report.scope))
        .count();
    writeln!(
        out,
        "{} {}",
        paint(Style::new().bold(), "Workspace"),
        report.workspace_root.display()
    )?;
    let scope = match (
        report.scope.include_hierarchical,
        report.scope.include_test_only,
    ) {
        (false, false) => "edges across module subtrees, outside tests",
        (true, false) => "all edges outside tests, parent-child ones included",
        (false, true) => "edges across module subtrees, tests included",
        (true, true) => "every edge",
    };
    writeln!(
        out,
        "{}",
        paint(
            DIM,
            format!("Cycles, pairs, the cut list and suggestions count {scope}.")
        )
    )?;

    heading(out, "Summary")?;
    let count_style = |n: usize| if n == 0 { GOOD } else { BAD };
    let mut rows: Vec<(&str, String)> = vec![
        ("crates", report.crates.len().to_string()),
        ("modules", report.modules.len().to_string()),
        (
            "module edges",
            format!("{} ({n_in_scope} in scope)", report.edges.len()),
        ),
    ];
    if !report.uncertain_edges.is_empty() {
        rows.push((
            "uncertain edges",
            format!(
                "{} (method calls matched by name only, not counted; --include-uncertain counts them)",
                report.uncertain_edges.len()
            ),
        ));
    }
    rows.extend([
        (
            "cycles (SCCs)",
            paint(count_style(report.cycles.len()), report.cycles.len()),
        ),
        (
            "elementary cycles",
            format!(
                "{}{}",
                paint(
                    count_style(report.elementary_cycles.len()),
                    report.elementary_cycles.len()
                ),
                if report.elementary_cycles_truncated {
                    " (capped)"
                } else {
                    ""
                }
            ),
        ),
        (
            "crate cycles",
            paint(
                count_style(report.crate_cycles.len()),
                report.crate_cycles.len(),
            ),
        ),
        (
            "two-way pairs",
            paint(
                count_style(report.bidirectional.len()),
                report.bidirectional.len(),
            ),
        ),
        (
            "edges to cut",
            format!(
                "{}{}",
                report.cut.len(),
                if report.cut.is_empty() {
                    ""
                } else if report.cut_exact {
                    " (smallest possible weight)"
                } else {
                    " (heuristic)"
                }
            ),
        ),
        ("suggestions", report.suggestions.len().to_string()),
        ("candidate services", report.services.len().to_string()),
        (
            "skipped files",
            if report.skipped_files.is_empty() {
                "0".to_owned()
            } else {
                paint(WARN, report.skipped_files.len())
            },
        ),
    ]);
    for (name, value) in rows {
        writeln!(out, "  {name:<20} {value}")?;
    }

    heading(out, "Crates")?;
    for krate in &report.crates {
        let targets: Vec<String> = krate
            .targets
            .iter()
            .map(|target| format!("{} {}", target.kind, target.name))
            .collect();
        writeln!(
            out,
            "  {} {}  {}",
            paint(NAME, &krate.name),
            krate.version,
            paint(DIM, format!("[{}]", targets.join(", ")))
        )?;
        if !krate.depends_on.is_empty() {
            writeln!(out, "    depends on {}", krate.depends_on.join(", "))?;
        }
    }
    if !report.crate_edges.is_empty() {
        writeln!(
            out,
            "  Crate edges (from module references), heaviest first:"
        )?;
        let mut edges: Vec<_> = report.crate_edges.iter().collect();
        edges.sort_by_key(|edge| std::cmp::Reverse(edge.weight));
        for edge in edges.iter().take(limit.take()) {
            writeln!(out, "    {} → {}  {}", edge.from, edge.to, edge.weight)?;
        }
        more(out, "    ", edges.len().saturating_sub(limit.take()))?;
    }
    for cycle in &report.crate_cycles {
        writeln!(
            out,
            "  {} {}",
            paint(BAD, "crate cycle:"),
            cycle.members.join(", ")
        )?;
    }

    if level == Level::Module {
        write_cycles(out, report, limit)?;
        write_suggestions(out, report, limit)?;
        heading(out, "Metrics (modules)")?;
        write_metrics(out, &report.metrics.modules, limit)?;
    }
    heading(out, "Metrics (crates)")?;
    write_metrics(out, &report.metrics.crates, Limit::All)?;

    if level == Level::Module {
        heading(out, "Candidate services")?;
        if report.services.is_empty() {
            writeln!(out, "  none")?;
        }
        for service in &report.services {
            writeln!(
                out,
                "  {}  {}",
                paint(NAME, &service.name),
                paint(
                    DIM,
                    format!(
                        "(weight inside {}, across {})",
                        service.internal_weight, service.external_weight
                    )
                )
            )?;
            writeln!(out, "    {}", service.modules.join(", "))?;
            if !service.endpoints.is_empty() {
                writeln!(out, "    endpoints: {}", service.endpoints.join(", "))?;
            }
        }
        if !report.service_edges.is_empty() {
            writeln!(
                out,
                "  Edges that would become network calls, heaviest first:"
            )?;
            let mut edges: Vec<_> = report.service_edges.iter().collect();
            edges.sort_by_key(|edge| std::cmp::Reverse(edge.weight));
            for edge in edges.iter().take(limit.take()) {
                writeln!(
                    out,
                    "    {} → {}: {} → {}  {} ({})",
                    edge.from_service,
                    edge.to_service,
                    edge.from,
                    edge.to,
                    edge.weight,
                    list(&edge.items)
                )?;
            }
            more(out, "    ", edges.len().saturating_sub(limit.take()))?;
        }
    }

    if !report.endpoints.is_empty() {
        heading(out, "Endpoints")?;
        for endpoint in &report.endpoints {
            let owner = match (&endpoint.owner, endpoint.needs.len()) {
                (Some(owner), _) => paint(NAME, owner),
                (None, 0) => paint(DIM, "no domain"),
                (None, _) => paint(WARN, format!("shared: {}", endpoint.needs.join(", "))),
            };
            writeln!(
                out,
                "  {:<7} {:<36} {owner}  {} {}",
                endpoint.method,
                endpoint.path,
                endpoint.handler,
                paint(
                    DIM,
                    format!(
                        "({}:{})",
                        relative(&report.workspace_root, &endpoint.location.file),
                        endpoint.location.line
                    )
                )
            )?;
        }
    }

    if !report.skipped_files.is_empty() {
        heading(out, "Skipped files")?;
        for file in &report.skipped_files {
            let position = match (file.line, file.column) {
                (Some(line), Some(column)) => format!(":{line}:{column}"),
                (Some(line), None) => format!(":{line}"),
                _ => String::new(),
            };
            writeln!(
                out,
                "  {}{position}: {}",
                relative(&report.workspace_root, &file.path),
                paint(WARN, &file.error)
            )?;
        }
    }
    Ok(())
}

fn write_cycles(out: &mut String, report: &Report, limit: Limit) -> std::fmt::Result {
    heading(out, "Cycles")?;
    if report.cycles.is_empty() {
        writeln!(
            out,
            "  {}",
            paint(GOOD, "none: the module graph is acyclic")
        )?;
    } else {
        writeln!(
            out,
            "  {}",
            paint(
                DIM,
                format!(
                    "{} strongly connected {} (tangles), heaviest first, by subsystem; {} elementary {}{} inside them.",
                    report.cycles.len(),
                    if report.cycles.len() == 1 {
                        "component"
                    } else {
                        "components"
                    },
                    report.elementary_cycles.len(),
                    if report.elementary_cycles.len() == 1 {
                        "cycle"
                    } else {
                        "cycles"
                    },
                    if report.elementary_cycles_truncated {
                        " (capped)"
                    } else {
                        ""
                    },
                )
            )
        )?;
    }
    // Ranked by weight; each one under the subsystem its members are in.
    let mut cycles: Vec<(usize, &analyzer::report::Cycle)> =
        report.cycles.iter().enumerate().collect();
    cycles.sort_by(|left, right| {
        right
            .1
            .weight
            .cmp(&left.1.weight)
            .then(left.0.cmp(&right.0))
    });
    let shown = &cycles[..cycles.len().min(limit.take())];
    let mut groups: Vec<(&str, Vec<&(usize, &analyzer::report::Cycle)>)> = Vec::new();
    for entry in shown {
        let group = entry.1.members.first().map_or("", |id| subsystem(id));
        match groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, list)) => list.push(entry),
            None => groups.push((group, vec![entry])),
        }
    }
    for (group, list) in groups {
        writeln!(out, "  in {}:", paint(NAME, group))?;
        for (idx, cycle) in list {
            writeln!(
                out,
                "    {}. {}  {}",
                idx + 1,
                paint(BAD, cycle.members.join(", ")),
                paint(DIM, format!("(weight {})", cycle.weight))
            )?;
        }
    }
    more(out, "  ", cycles.len() - shown.len())?;
    if !report.elementary_cycles.is_empty() {
        writeln!(out, "  Elementary cycles, shortest first:")?;
        let mut paths: Vec<&Vec<String>> = report.elementary_cycles.iter().collect();
        paths.sort_by_key(|path| path.len());
        for cycle in paths.iter().take(limit.take()) {
            let mut path = cycle.join(" → ");
            if let Some(first) = cycle.first() {
                write!(path, " → {first}")?;
            }
            writeln!(out, "    {path}")?;
        }
        more(out, "    ", paths.len().saturating_sub(limit.take()))?;
        if report.elementary_cycles_truncated {
            writeln!(
                out,
                "    {}",
                paint(DIM, "(more exist; the list is capped)")
            )?;
        }
    }

    heading(out, "Two-way pairs")?;
    if report.bidirectional.is_empty() {
        writeln!(out, "  none")?;
    } else {
        writeln!(
            out,
            "  {}",
            paint(DIM, "Heaviest first (weight both ways), by subsystem:")
        )?;
    }
    let mut pairs: Vec<&analyzer::report::Bidirectional> = report.bidirectional.iter().collect();
    pairs.sort_by(|left, right| {
        (right.a_to_b_weight + right.b_to_a_weight)
            .cmp(&(left.a_to_b_weight + left.b_to_a_weight))
            .then_with(|| left.a.cmp(&right.a))
    });
    let shown_pairs = &pairs[..pairs.len().min(limit.take())];
    let mut pair_groups: Vec<(&str, Vec<&analyzer::report::Bidirectional>)> = Vec::new();
    for pair in shown_pairs {
        let group = subsystem(&pair.a);
        match pair_groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, list)) => list.push(pair),
            None => pair_groups.push((group, vec![pair])),
        }
    }
    for (group, list) in pair_groups {
        writeln!(out, "  in {}:", paint(NAME, group))?;
        for pair in list {
            writeln!(out, "    {} ⇄ {}", paint(BAD, &pair.a), paint(BAD, &pair.b))?;
            writeln!(
                out,
                "      → {}  {}",
                pair.a_to_b_weight,
                list_items(&pair.a_to_b_items)
            )?;
            writeln!(
                out,
                "      ← {}  {}",
                pair.b_to_a_weight,
                list_items(&pair.b_to_a_items)
            )?;
        }
    }
    more(out, "  ", pairs.len() - shown_pairs.len())?;

    heading(out, "Cut list")?;
    if report.cut.is_empty() {
        writeln!(out, "  nothing to cut")?;
    } else {
        writeln!(
            out,
            "  {}",
            paint(
                DIM,
                "Invert or remove these edges and no cycle is left; heaviest first:"
            )
        )?;
        let mut cut: Vec<_> = report.cut.iter().collect();
        cut.sort_by_key(|edge| std::cmp::Reverse(edge.weight));
        let shown_cut = &cut[..cut.len().min(limit.take())];
        let width = shown_cut
            .iter()
            .map(|edge| edge.from.len() + edge.to.len() + 3)
            .max()
            .unwrap_or(0);
        for edge in shown_cut {
            let arrow = format!("{} → {}", edge.from, edge.to);
            writeln!(
                out,
                "  {arrow:<width$}  weight {}",
                edge.weight,
                width = width
            )?;
        }
        more(out, "  ", cut.len() - shown_cut.len())?;
    }
    Ok(())
}

/// Items of an edge, at most a dozen.
fn list_items(items: &[String]) -> String {
    if items.len() > 12 {
        format!("{} and {} more", items[..12].join(", "), items.len() - 12)
    } else {
        list(items)
    }
}

fn write_suggestions(out: &mut String, report: &Report, limit: Limit) -> std::fmt::Result {
    heading(out, "Suggestions")?;
    if report.suggestions.is_empty() {
        writeln!(out, "  none")?;
    }
    // In the order to apply them: a suggestion that names types another one moves comes after
    // it, and its steps say "Do this after suggestion N" by this number. Each shows the weight of
    // the cycle edge it removes.
    let weight_of = |from: &str, to: &str| {
        report
            .cut
            .iter()
            .find(|edge| edge.from == from && edge.to == to)
            .map_or(0, |edge| edge.weight)
    };
    for (idx, suggestion) in report.suggestions.iter().enumerate().take(limit.take()) {
        let weight = weight_of(&suggestion.from, &suggestion.to);
        if suggestion.trait_name.is_empty() {
            writeln!(
                out,
                "  {}. {} → {}: {}  (weight {weight})",
                idx + 1,
                suggestion.from,
                suggestion.to,
                paint(NAME.bold(), "move these types")
            )?;
            writeln!(
                out,
                "     put them in {}; no trait: {} calls nothing of {}",
                suggestion.trait_home, suggestion.from, suggestion.to
            )?;
        } else {
            writeln!(
                out,
                "  {}. {} → {}: extract trait {}  (weight {weight})",
                idx + 1,
                suggestion.from,
                suggestion.to,
                paint(NAME.bold(), &suggestion.trait_name)
            )?;
            writeln!(
                out,
                "     put it in {}; {} implements it",
                suggestion.trait_home, suggestion.implemented_by
            )?;
        }
        for method in &suggestion.methods {
            let class = match method.class {
                Access::Query => paint(GOOD, "query  "),
                Access::Command => paint(WARN, "command"),
            };
            writeln!(out, "     {class} {}", method.signature)?;
            if let Some(event) = &method.event {
                writeln!(
                    out,
                    "             {}",
                    paint(DIM, format!("or publish event {event} instead of calling"))
                )?;
            }
        }
        if !suggestion.moved_items.is_empty() {
            writeln!(
                out,
                "     move or re-export: {}",
                suggestion.moved_items.join(", ")
            )?;
        }
        for (step_idx, step) in suggestion.steps.iter().enumerate() {
            writeln!(out, "     {}. {step}", step_idx + 1)?;
        }
    }
    more(
        out,
        "  ",
        report.suggestions.len().saturating_sub(limit.take()),
    )?;
    Ok(())
}

fn write_metrics(out: &mut String, units: &[UnitMetrics], limit: Limit) -> std::fmt::Result {
    if units.is_empty() {
        return writeln!(out, "  none");
    }
    let width = units
        .iter()
        .map(|unit| unit.id.len())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "  {}",
        paint(
            DIM,
            format!(
                "{:<width$}  {:>6} {:>7} {:>5} {:>5} {:>5} {:>6}",
                "unit", "fan-in", "fan-out", "I", "A", "D", "lines"
            )
        )
    )?;
    // Sorting by distance from the main sequence puts the modules most worth a look first.
    let mut sorted: Vec<&UnitMetrics> = units.iter().collect();
    sorted.sort_by(|left, right| {
        right
            .distance
            .total_cmp(&left.distance)
            .then_with(|| left.id.cmp(&right.id))
    });
    let n_more = sorted.len().saturating_sub(limit.take());
    for unit in sorted.into_iter().take(limit.take()) {
        writeln!(
            out,
            "  {:<width$}  {:>6} {:>7} {:>5.2} {:>5.2} {:>5.2} {:>6}",
            unit.id,
            unit.fan_in,
            unit.fan_out,
            unit.instability,
            unit.abstractness,
            unit.distance,
            unit.lines_of_code
        )?;
    }
    more(out, "  ", n_more)
}
