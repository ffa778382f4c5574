//! `fig suggest`: the interfaces to extract so that each edge of the cut list runs one way, and
//! with `--emit DIR` the generated trait code (one crate per suggestion, which compiles) and a
//! step-by-step `PLAN.md`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use analyzer::report::{Access, Report};

use crate::commands::analyze::{self, ReportArgs};
use crate::output;

/// Arguments of `fig suggest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub report: ReportArgs,

    /// Output format of the suggestions.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Write the suggestions to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write the generated code and PLAN.md into this directory (created if missing):
    /// a Cargo workspace with one crate per suggested trait.
    #[arg(long, value_name = "DIR")]
    pub emit: Option<PathBuf>,
}

/// Output formats of `fig suggest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The suggestions for a person.
    Text,
    /// `{schema_version, workspace_root, suggestions}`, as in `docs/report-schema.md`.
    Json,
}

/// Runs `fig suggest`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = analyze::load(&args.report)?;
    let text = match args.format {
        Format::Text => text(&report),
        Format::Json => analyze::json(&output::SuggestionsJson {
            schema_version: output::SCHEMA_VERSION,
            workspace_root: report.workspace_root.display().to_string(),
            suggestions: report.suggestions.iter().map(output::suggestion).collect(),
        })?,
    };
    analyze::emit(&text, args.output.as_deref())?;
    if let Some(dir) = &args.emit {
        let tool = analyze::meta().tool;
        let files = templates::emit(&report, &tool).context("generating the trait code")?;
        for file in &files {
            let path = dir.join(&file.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating `{}`", parent.display()))?;
            }
            std::fs::write(&path, &file.contents)
                .with_context(|| format!("writing `{}`", path.display()))?;
        }
        eprintln!(
            "wrote {} to {} (see {})",
            crate::render::text::count(files.len(), "file", "files"),
            dir.display(),
            dir.join("PLAN.md").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn text(report: &Report) -> String {
    let mut out = String::new();
    if report.suggestions.is_empty() {
        out.push_str("No suggestion: the module graph has no cycle to cut.\n");
        return out;
    }
    for (idx, suggestion) in report.suggestions.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. {} → {}: extract trait {}",
            idx + 1,
            suggestion.from,
            suggestion.to,
            suggestion.trait_name
        );
        let _ = writeln!(
            out,
            "   put it in {}; {} implements it, {} calls it",
            suggestion.trait_home, suggestion.implemented_by, suggestion.from
        );
        for method in &suggestion.methods {
            let class = match method.class {
                Access::Query => "query  ",
                Access::Command => "command",
            };
            let _ = writeln!(out, "   {class} {}", method.signature);
            if let Some(event) = &method.event {
                let _ = writeln!(
                    out,
                    "           or publish event {event} instead of calling"
                );
            }
        }
        if !suggestion.moved_items.is_empty() {
            let _ = writeln!(
                out,
                "   move or re-export: {}",
                suggestion.moved_items.join(", ")
            );
        }
        for (step_idx, step) in suggestion.steps.iter().enumerate() {
            let _ = writeln!(out, "   {}. {step}", step_idx + 1);
        }
        out.push('\n');
    }
    out
}
