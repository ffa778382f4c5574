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

/// Renders the report; the result holds ANSI styles.
pub fn render(report: &Report, level: Level) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, report, level);
    out
}

fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
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

fn write_report(out: &mut String, report: &Report, level: Level) -> std::fmt::Result {
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
    let rows: Vec<(&str, String)> = vec![
        ("crates", report.crates.len().to_string()),
        ("modules", report.modules.len().to_string()),
        (
            "module edges",
            format!("{} ({n_in_scope} in scope)", report.edges.len()),
        ),
        (
            "cycles",
            paint(count_style(report.cycles.len()), report.cycles.len()),
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
    ];
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
        writeln!(out, "  Crate edges (from module references):")?;
        for edge in &report.crate_edges {
            writeln!(out, "    {} → {}  {}", edge.from, edge.to, edge.weight)?;
        }
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
        write_cycles(out, report)?;
        write_suggestions(out, report)?;
        heading(out, "Metrics (modules)")?;
        write_metrics(out, &report.metrics.modules)?;
    }
    heading(out, "Metrics (crates)")?;
    write_metrics(out, &report.metrics.crates)?;

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
            writeln!(out, "  Edges that would become network calls:")?;
            for edge in &report.service_edges {
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

fn write_cycles(out: &mut String, report: &Report) -> std::fmt::Result {
    heading(out, "Cycles")?;
    if report.cycles.is_empty() {
        writeln!(
            out,
            "  {}",
            paint(GOOD, "none: the module graph is acyclic")
        )?;
    }
    for (idx, cycle) in report.cycles.iter().enumerate() {
        writeln!(
            out,
            "  {}. {}  {}",
            idx + 1,
            paint(BAD, cycle.members.join(", ")),
            paint(DIM, format!("(weight {})", cycle.weight))
        )?;
    }
    if !report.elementary_cycles.is_empty() {
        writeln!(out, "  Elementary cycles:")?;
        for cycle in &report.elementary_cycles {
            let mut path = cycle.join(" → ");
            if let Some(first) = cycle.first() {
                write!(path, " → {first}")?;
            }
            writeln!(out, "    {path}")?;
        }
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
    }
    for pair in &report.bidirectional {
        writeln!(out, "  {} ⇄ {}", paint(BAD, &pair.a), paint(BAD, &pair.b))?;
        writeln!(
            out,
            "    → {}  {}",
            pair.a_to_b_weight,
            list(&pair.a_to_b_items)
        )?;
        writeln!(
            out,
            "    ← {}  {}",
            pair.b_to_a_weight,
            list(&pair.b_to_a_items)
        )?;
    }

    heading(out, "Cut list")?;
    if report.cut.is_empty() {
        writeln!(out, "  nothing to cut")?;
    } else {
        writeln!(
            out,
            "  {}",
            paint(DIM, "Invert or remove these edges and no cycle is left:")
        )?;
        let width = report
            .cut
            .iter()
            .map(|edge| edge.from.len() + edge.to.len() + 3)
            .max()
            .unwrap_or(0);
        for edge in &report.cut {
            let arrow = format!("{} → {}", edge.from, edge.to);
            writeln!(
                out,
                "  {arrow:<width$}  weight {}",
                edge.weight,
                width = width
            )?;
        }
    }
    Ok(())
}

fn write_suggestions(out: &mut String, report: &Report) -> std::fmt::Result {
    heading(out, "Suggestions")?;
    if report.suggestions.is_empty() {
        writeln!(out, "  none")?;
    }
    for (idx, suggestion) in report.suggestions.iter().enumerate() {
        writeln!(
            out,
            "  {}. {} → {}: extract trait {}",
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
    Ok(())
}

fn write_metrics(out: &mut String, units: &[UnitMetrics]) -> std::fmt::Result {
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
    for unit in sorted {
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
    Ok(())
}
