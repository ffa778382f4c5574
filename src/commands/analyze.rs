//! `fig analyze`: the dependency report of a workspace, as text, JSON, DOT, Mermaid or HTML,
//! or the HTML report served on a local port and kept up to date (`--serve`, `--watch`, in
//! `analyze/serve.rs`).
//!
//! [`ReportArgs`] (the path and which edges count) is shared with `fig suggest` and `fig check`,
//! which run the same analysis and show a different part of it.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use analyzer::report::{EdgeScope, Report};
use analyzer::{Options, Phase};

use crate::output;
use crate::render::{self, Level};

#[cfg(feature = "serve")]
mod serve;

/// Arguments of `fig analyze`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub report: ReportArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Write the report to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Describe modules, or only crates (text, dot and mermaid).
    #[arg(long, value_enum, default_value_t = LevelArg::Module)]
    pub level: LevelArg,

    /// List everything in the text report; by default each long list shows its heaviest
    /// entries and says how many more there are.
    #[arg(long)]
    pub all: bool,

    /// Serve the HTML report on this address (port 0 picks a free one; the address is printed)
    /// instead of writing a report. Only loopback addresses unless `--allow-remote`.
    #[arg(long, value_name = "ADDR", conflicts_with = "output")]
    pub serve: Option<SocketAddr>,

    /// With `--serve`: analyse again when a source file or manifest changes, and update the
    /// open page (it keeps what was open and in focus).
    #[arg(long, requires = "serve")]
    pub watch: bool,

    /// With `--serve`: allow an address that is not loopback. The report shows file paths and
    /// code of the workspace to whoever reaches the port.
    #[arg(long, requires = "serve")]
    pub allow_remote: bool,
}

/// What to analyse and which edges count; shared by `analyze`, `suggest` and `check`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The workspace or package: a directory or a `Cargo.toml`.
    #[arg(default_value = ".")]
    pub path: PathBuf,

    /// Count edges between a module and its own ancestor or descendant too (facade re-exports,
    /// `use super::*`).
    #[arg(long)]
    pub include_hierarchical: bool,

    /// Count test code too: edges that exist only under `#[cfg(test)]`, and test modules
    /// (`#[cfg(test)] mod tests`, test and bench targets) in metrics and candidate services.
    #[arg(long)]
    pub include_test_only: bool,

    /// Analyse test, bench and example targets too, not only libs and bins.
    #[arg(long)]
    pub all_targets: bool,

    /// Count method calls matched to a workspace type by their name alone (the receiver's type
    /// unknown) as edges too, for cycles, the cut list and suggestions. Without it they are
    /// listed apart as uncertain edges.
    #[arg(long)]
    pub include_uncertain: bool,

    /// Collapse every module deeper than N into its ancestor at depth N (the crate root is 0,
    /// `shop::order` is 1): the report is then about subsystems, and a cycle that runs through
    /// submodules shows between their top-level modules.
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,

    /// List at most this many elementary cycles.
    #[arg(long, value_name = "N", default_value_t = analyzer::DEFAULT_ELEMENTARY_CYCLE_CAP)]
    pub max_elementary_cycles: usize,
}

/// Output formats of `fig analyze`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A report for a person; coloured on a terminal.
    Text,
    /// The versioned JSON schema of `docs/report-schema.md`.
    Json,
    /// A Graphviz DOT graph of the modules, grouped by crate.
    Dot,
    /// A Mermaid flowchart of the modules, grouped by crate.
    Mermaid,
    /// One self-contained HTML page: graph, dependency matrix, cycles, suggestions, metrics.
    Html,
}

/// `--level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    /// Modules, grouped by crate.
    Module,
    /// Crates only.
    Crate,
}

/// Runs `fig analyze`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(addr) = args.serve {
        #[cfg(feature = "serve")]
        return serve::run(&args.report, addr, args.watch, args.allow_remote);
        #[cfg(not(feature = "serve"))]
        {
            let _ = addr;
            return crate::commands::missing("analyze --serve", "serve");
        }
    }
    let report = load(&args.report)?;
    let level = match args.level {
        LevelArg::Module => Level::Module,
        LevelArg::Crate => Level::Crate,
    };
    let text = match args.format {
        Format::Text => render::text::render(
            &report,
            level,
            if args.all {
                render::text::Limit::All
            } else {
                render::text::Limit::Default
            },
        ),
        Format::Json => json(&output::report(&report))?,
        Format::Dot => render::graph::dot(&report, level),
        Format::Mermaid => render::graph::mermaid(&report, level),
        Format::Html => html(&report, None)?,
    };
    emit(&text, args.output.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// The HTML report: the page embeds the JSON document (`--format json`) and draws from it.
/// `live` is the analysis version when `--serve --watch` serves the page.
pub fn html(report: &Report, live: Option<u64>) -> anyhow::Result<String> {
    let data = serde_json::to_string(&output::report(report)).context("serialising the report")?;
    let meta = templates::Meta { live, ..meta() };
    templates::render_html(report, &data, &meta).context("rendering the HTML report")
}

/// What the HTML page says made it.
pub fn meta() -> templates::Meta {
    templates::Meta {
        tool: format!("fig {}", env!("CARGO_PKG_VERSION")),
        live: None,
    }
}

/// Pretty JSON with a final newline.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value).context("serialising the report")?;
    text.push('\n');
    Ok(text)
}

/// Writes to `path`, or to stdout. Stdout keeps colour only on a colour terminal; a file never
/// gets any.
pub fn emit(text: &str, path: Option<&Path>) -> anyhow::Result<()> {
    match path {
        Some(path) => {
            let plain = anstream::adapter::strip_str(text).to_string();
            std::fs::write(path, plain).with_context(|| format!("writing `{}`", path.display()))?;
            if std::io::stderr().is_terminal() {
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            let mut stdout = anstream::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
            stdout.flush().context("writing to stdout")?;
        }
    }
    Ok(())
}

/// Runs the analysis, showing its phases on stderr when stderr is a terminal.
pub fn load(args: &ReportArgs) -> anyhow::Result<Report> {
    // An absolute path makes the report's paths and cargo's messages independent of the
    // current directory.
    let path = std::fs::canonicalize(&args.path).with_context(|| {
        format!(
            "`{}` is not a Cargo workspace or package",
            args.path.display()
        )
    })?;
    let mut options = Options::new();
    options.scope = EdgeScope {
        include_hierarchical: args.include_hierarchical,
        include_test_only: args.include_test_only,
    };
    options.include_tests = args.all_targets;
    options.include_examples = args.all_targets;
    options.elementary_cycle_cap = args.max_elementary_cycles;
    options.depth = args.depth;
    options.include_uncertain = args.include_uncertain;
    let interactive = std::io::stderr().is_terminal();
    let started = Instant::now();
    if interactive {
        options.progress = Some(Arc::new(move |phase: Phase| {
            let what = match phase {
                Phase::Load => "loading the workspace (cargo metadata)",
                Phase::Parse => "parsing source files",
                Phase::Resolve => "resolving names into module edges",
                Phase::Graph => "finding cycles, the cut list and metrics",
                Phase::Endpoints => "finding HTTP endpoints and candidate services",
                Phase::Suggest => "writing suggestions",
                _ => "working",
            };
            // `\r` and clearing the line keep the progress on one line of the terminal.
            eprint!("\r\x1b[2K{:>6.2}s {what}…", started.elapsed().as_secs_f64());
        }));
    }
    let res = analyzer::analyze(&path, &options);
    if interactive {
        eprint!("\r\x1b[2K");
    }
    let report = res?;
    if interactive {
        eprintln!(
            "analysed {} in {} in {:.2}s",
            render::text::count(report.modules.len(), "module", "modules"),
            render::text::count(report.crates.len(), "crate", "crates"),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(report)
}
