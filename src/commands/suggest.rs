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
    /// a Cargo workspace with one crate per suggestion, which names std and dependency types by
    /// their paths (plus the workspace's Cargo.lock when the crates resolve offline with it).
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
        let context = emit_context(&report);
        let files = templates::codegen::emit_with(&report, &tool, &context)
            .context("generating the trait code")?;
        for file in &files {
            let path = dir.join(&file.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating `{}`", parent.display()))?;
            }
            std::fs::write(&path, &file.contents)
                .with_context(|| format!("writing `{}`", path.display()))?;
        }
        let locked = copy_lockfile(&report.workspace_root, dir);
        eprintln!(
            "wrote {} to {}{} (see {})",
            crate::render::text::count(files.len() + usize::from(locked), "file", "files"),
            dir.display(),
            if locked {
                ", with the workspace's Cargo.lock"
            } else {
                ""
            },
            dir.join("PLAN.md").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies the workspace's `Cargo.lock` next to the generated crates, so that they use the versions
/// the workspace builds with, when the generated workspace then resolves offline (`cargo metadata
/// --offline`): a lock that names versions never downloaded here (a published crate's own lock,
/// say) is removed again, and cargo picks among the downloaded versions by itself.
fn copy_lockfile(workspace_root: &std::path::Path, dir: &std::path::Path) -> bool {
    let Ok(lock) = std::fs::read(workspace_root.join("Cargo.lock")) else {
        return false;
    };
    let target = dir.join("Cargo.lock");
    if std::fs::write(&target, lock).is_err() {
        return false;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let resolves = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--offline",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !resolves {
        tracing::info!("the workspace's Cargo.lock does not resolve offline here; not copied");
        let _ = std::fs::remove_file(&target);
    }
    resolves
}

/// How the analysed crates depend on other crates, read from their manifests: the generated
/// crates name a dependency's type by its real path and depend on it as the analysed crate does.
/// A manifest that cannot be read leaves its crate without dependencies (its types become
/// placeholders).
fn emit_context(report: &Report) -> templates::codegen::EmitContext {
    let root_manifest = read_manifest(&report.workspace_root.join("Cargo.toml"));
    let workspace_dependencies = root_manifest
        .as_ref()
        .and_then(|manifest| manifest.get("workspace"))
        .and_then(|workspace| workspace.get("dependencies"))
        .and_then(toml::Value::as_table);
    let mut dependencies = std::collections::BTreeMap::new();
    for krate in &report.crates {
        let Some(manifest) = read_manifest(&krate.manifest_path) else {
            continue;
        };
        let dir = krate
            .manifest_path
            .parent()
            .unwrap_or(&report.workspace_root);
        let mut tables: Vec<&toml::Table> = Vec::new();
        if let Some(table) = manifest.get("dependencies").and_then(toml::Value::as_table) {
            tables.push(table);
        }
        if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
            tables.extend(
                targets
                    .values()
                    .filter_map(|target| target.get("dependencies"))
                    .filter_map(toml::Value::as_table),
            );
        }
        let mut specs = std::collections::BTreeMap::new();
        for table in tables {
            for (key, value) in table {
                if let Some(spec) = dependency_spec(
                    key,
                    value,
                    dir,
                    workspace_dependencies.map(|table| (table, report.workspace_root.as_path())),
                ) {
                    specs.entry(key.replace('-', "_")).or_insert(spec);
                }
            }
        }
        dependencies.insert(krate.name.clone(), specs);
    }
    templates::codegen::EmitContext { dependencies }
}

fn read_manifest(path: &std::path::Path) -> Option<toml::Table> {
    let text = std::fs::read_to_string(path).ok()?;
    match text.parse::<toml::Table>() {
        Ok(table) => Some(table),
        Err(err) => {
            tracing::warn!(path = %path.display(), "manifest not read for --emit: {err}");
            None
        }
    }
}

/// One `[dependencies]` entry of a manifest in `dir`, as a generated crate's entry: the same
/// package, version, source and features, never optional, paths absolute; `workspace = true`
/// takes the workspace's entry (in `root`'s manifest).
fn dependency_spec(
    key: &str,
    value: &toml::Value,
    dir: &std::path::Path,
    workspace: Option<(&toml::Table, &std::path::Path)>,
) -> Option<String> {
    const KEPT: &[&str] = &[
        "version",
        "path",
        "git",
        "branch",
        "tag",
        "rev",
        "registry",
        "package",
        "features",
        "default-features",
        "default_features",
    ];
    let mut spec = toml::Table::new();
    let mut entries: Vec<(&toml::Value, &std::path::Path)> = Vec::new();
    let inherits = value
        .get("workspace")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    if inherits {
        let (table, root) = workspace?;
        entries.push((table.get(key)?, root));
    }
    entries.push((value, dir));
    for (entry, entry_dir) in entries {
        match entry {
            toml::Value::String(version) => {
                spec.insert("version".to_owned(), toml::Value::String(version.clone()));
            }
            toml::Value::Table(table) => {
                for (name, field) in table {
                    if !KEPT.contains(&name.as_str()) {
                        continue;
                    }
                    let field = match (name.as_str(), field) {
                        ("path", toml::Value::String(path)) => {
                            toml::Value::String(entry_dir.join(path).display().to_string())
                        }
                        ("features", toml::Value::Array(features)) => {
                            let mut all = spec
                                .get("features")
                                .and_then(toml::Value::as_array)
                                .cloned()
                                .unwrap_or_default();
                            all.extend(features.iter().cloned());
                            toml::Value::Array(all)
                        }
                        _ => field.clone(),
                    };
                    spec.insert(name.clone(), field);
                }
            }
            _ => return None,
        }
    }
    if !spec.contains_key("package") && key.contains('-') {
        spec.insert("package".to_owned(), toml::Value::String(key.to_owned()));
    }
    Some(toml::Value::Table(spec).to_string())
}

fn text(report: &Report) -> String {
    let mut out = String::new();
    if report.suggestions.is_empty() {
        out.push_str("No suggestion: the module graph has no cycle to cut.\n");
        return out;
    }
    for (idx, suggestion) in report.suggestions.iter().enumerate() {
        let from = std::iter::once(&suggestion.from)
            .chain(&suggestion.also_from)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if suggestion.trait_name.is_empty() {
            let _ = writeln!(
                out,
                "{}. {from} → {}: move types (no function is called)",
                idx + 1,
                suggestion.to,
            );
            let _ = writeln!(out, "   put them in {}", suggestion.trait_home);
        } else {
            let _ = writeln!(
                out,
                "{}. {from} → {}: extract trait {}",
                idx + 1,
                suggestion.to,
                suggestion.trait_name
            );
            let _ = writeln!(
                out,
                "   put it in {}; {} implements it, {from} {} it",
                suggestion.trait_home,
                suggestion.implemented_by,
                if suggestion.also_from.is_empty() {
                    "calls"
                } else {
                    "call"
                }
            );
        }
        if !suggestion.after.is_empty() {
            let _ = writeln!(
                out,
                "   after the suggestion into {}",
                suggestion.after.join(", ")
            );
        }
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
