//! `fig check`: architecture rules for CI, read from the `[check]` table of `fig.toml`.
//!
//! The configuration is parsed into raw types that keep their spans, then validated into
//! `analyzer::check::Rules`; every problem is reported as `file:line:column: reason` and exits 2.
//! A table or key `fig.toml` does not have is such a problem, with the nearest valid name, so a
//! typo cannot turn the gate off; a file that sets no rule is a note (an error with `--strict`).
//! The rules themselves are pure functions in `analyzer::check`. Exit 1 when a rule is
//! violated, 0 when the workspace passes.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;
use toml::Spanned;

use analyzer::check::{self, AllowRule, Baseline, DependencyRule, Finding, Layer, Pattern, Rules};
use analyzer::report::Report;

use crate::commands::analyze::{self, ReportArgs};
use crate::exit;
use crate::output::{self, BaselineJson};
use crate::render::text::count;

/// Arguments of `fig check`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when every rule passes, 1 when a rule is violated, 2 when the path, \
                  the configuration or the baseline is wrong. Finding codes: docs/finding-codes.md."
)]
pub struct Args {
    #[command(flatten)]
    pub report: ReportArgs,

    /// The rules; default: `fig.toml` in the workspace directory, if there is one.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Compare cycles and two-way pairs with this baseline (written by `--write-baseline`).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Write the current cycles and two-way pairs to this baseline file, then check against it.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,

    /// Output format of the findings.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Fail (exit 2) when there is nothing to check: no fig.toml, or one that sets no rule and
    /// no baseline. Without it, that is a note on stderr and the check passes.
    #[arg(long)]
    pub strict: bool,

    /// Write the findings to this file instead of stdout (the exit code is the same).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Output formats of `fig check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One block per finding, with the source locations that cause it.
    Text,
    /// `{schema_version, workspace_root, passed, findings}`, as in `docs/report-schema.md`.
    Json,
    /// GitHub Actions workflow commands: one `::error` annotation per location, so findings show
    /// on the pull request's diff (paths are relative to the workspace root).
    Github,
}

/// Runs `fig check`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Read the configuration before the (longer) analysis, so a typo fails fast.
    let config_path = match &args.config {
        Some(path) => Some(path.clone()),
        None => {
            let dir = if args.report.path.is_file() {
                args.report
                    .path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            } else {
                args.report.path.clone()
            };
            let candidate = dir.join("fig.toml");
            candidate.is_file().then_some(candidate)
        }
    };
    let config = match &config_path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading `{}`", path.display()))?;
            match parse_config(&text) {
                Ok(config) => config,
                Err(errors) => {
                    for error in errors {
                        eprintln!(
                            "error: {}:{}:{}: {}",
                            path.display(),
                            error.line,
                            error.column,
                            error.message
                        );
                    }
                    return Ok(ExitCode::from(exit::ERROR));
                }
            }
        }
        None => Config::empty(),
    };
    let with_baseline = args.baseline.is_some() || args.write_baseline.is_some();
    if !config.sets_a_rule() && !with_baseline {
        let what = match &config_path {
            None => "no fig.toml found and no --config given".to_owned(),
            Some(path) => format!("{} sets no rule and no baseline", path.display()),
        };
        if args.strict {
            eprintln!(
                "error: {what}: there is nothing to check (--strict); see docs/guide/architect.md"
            );
            return Ok(ExitCode::from(exit::ERROR));
        }
        eprintln!("note: {what}: there is nothing to check (see docs/guide/architect.md)");
    } else if config_path.is_none() {
        eprintln!(
            "note: no fig.toml found and no --config given: only the baseline comparison runs (see docs/guide/architect.md)"
        );
    }
    let baseline_path = args.baseline.clone().or_else(|| {
        let (relative, dir) = (config.baseline.as_ref()?, config_path.as_ref()?.parent()?);
        Some(dir.join(relative))
    });
    if config.explicit_baseline_rule && baseline_path.is_none() && args.write_baseline.is_none() {
        let path = config_path.as_deref().unwrap_or(Path::new("fig.toml"));
        eprintln!(
            "error: {}:{}: `no_new_cycles`/`no_new_bidirectional` need a baseline: pass --baseline FILE or set `baseline` in [check]",
            path.display(),
            config.explicit_baseline_line
        );
        return Ok(ExitCode::from(exit::ERROR));
    }

    let report = analyze::load(&args.report)?;
    let baseline = match (&args.write_baseline, &baseline_path) {
        (Some(path), _) => {
            let baseline = check::baseline(&report);
            let text = analyze::json(&output::baseline(&baseline))?;
            std::fs::write(path, text).with_context(|| format!("writing `{}`", path.display()))?;
            eprintln!(
                "wrote baseline {}: {}, {}",
                path.display(),
                count(baseline.cycle_edges.len(), "cycle edge", "cycle edges"),
                count(
                    baseline.bidirectional.len(),
                    "two-way pair",
                    "two-way pairs"
                )
            );
            Some(baseline)
        }
        (None, Some(path)) => Some(read_baseline(path)?),
        (None, None) => None,
    };
    let findings = check::check(&report, &config.rules, baseline.as_ref());
    let text = match args.format {
        Format::Text => text(&report, &findings),
        Format::Github => github(&report, &findings),
        Format::Json => analyze::json(&output::CheckJson {
            schema_version: output::SCHEMA_VERSION,
            workspace_root: report.workspace_root.display().to_string(),
            passed: findings.is_empty(),
            findings: findings
                .iter()
                .map(|finding| output::FindingJson {
                    code: finding.code.as_str(),
                    message: finding.message.clone(),
                    modules: finding.modules.clone(),
                    locations: finding
                        .locations
                        .iter()
                        .map(|location| output::location(&report.workspace_root, location))
                        .collect(),
                })
                .collect(),
        })?,
    };
    analyze::emit(&text, args.output.as_deref())?;
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FINDINGS)
    })
}

fn read_baseline(path: &Path) -> anyhow::Result<Baseline> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading baseline `{}` (write one with `fig check --write-baseline {}`)",
            path.display(),
            path.display()
        )
    })?;
    if text.trim().is_empty() {
        anyhow::bail!(
            "baseline `{}` is empty; write one with `fig check --write-baseline {}`",
            path.display(),
            path.display()
        );
    }
    let json: BaselineJson = serde_json::from_str(&text).map_err(|err| {
        let full = err.to_string();
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        anyhow::anyhow!(
            "{}:{}:{}: not a fig baseline: {}",
            path.display(),
            err.line(),
            err.column(),
            crate::hint::did_you_mean(full.strip_suffix(&suffix).unwrap_or(&full))
        )
    })?;
    if json.schema_version != output::SCHEMA_VERSION {
        anyhow::bail!(
            "`{}` has baseline schema version {}, this fig reads version {}",
            path.display(),
            json.schema_version,
            output::SCHEMA_VERSION
        );
    }
    Ok(output::baseline_from_json(json))
}

const ERROR: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();

/// `::error file=F,line=L,col=C,title=CODE::MESSAGE`, escaped as GitHub's workflow commands
/// require; a finding without a location is one annotation without a file.
fn github(report: &Report, findings: &[Finding]) -> String {
    fn escape_data(text: &str) -> String {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn escape_property(text: &str) -> String {
        escape_data(text).replace(':', "%3A").replace(',', "%2C")
    }
    let mut out = String::new();
    for finding in findings {
        let title = escape_property(finding.code.as_str());
        let message = escape_data(&finding.message);
        if finding.locations.is_empty() {
            let _ = writeln!(out, "::error title={title}::{message}");
        }
        for location in &finding.locations {
            let location = output::location(&report.workspace_root, location);
            let _ = writeln!(
                out,
                "::error file={},line={},col={},title={title}::{message}",
                escape_property(&location.file),
                location.line,
                location.column
            );
        }
    }
    out
}

fn text(report: &Report, findings: &[Finding]) -> String {
    let mut out = String::new();
    for finding in findings {
        let _ = writeln!(
            out,
            "{ERROR}error[{}]{ERROR:#}: {}",
            finding.code, finding.message
        );
        for location in &finding.locations {
            let location = output::location(&report.workspace_root, location);
            let _ = writeln!(
                out,
                "  --> {}:{}:{}",
                location.file, location.line, location.column
            );
        }
    }
    if findings.is_empty() {
        out.push_str("fig check: passed\n");
    } else {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for finding in findings {
            *counts.entry(finding.code.as_str()).or_default() += 1;
        }
        let counts: Vec<String> = counts
            .iter()
            .map(|(code, n)| format!("{n} {code}"))
            .collect();
        let _ = writeln!(
            out,
            "fig check: failed with {} finding{} ({})",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" },
            counts.join(", ")
        );
    }
    out
}

/// A validated `[check]` table.
#[derive(Debug)]
pub struct Config {
    pub rules: Rules,
    /// `baseline = "..."`, relative to the config file.
    pub baseline: Option<PathBuf>,
    /// `no_new_cycles` or `no_new_bidirectional` set to `true` explicitly.
    explicit_baseline_rule: bool,
    explicit_baseline_line: usize,
}

impl Config {
    /// Whether the file asks for any check: a rule, a limit or a baseline.
    fn sets_a_rule(&self) -> bool {
        let rules = &self.rules;
        !rules.forbid.is_empty()
            || !rules.allow_only.is_empty()
            || !rules.layers.is_empty()
            || rules.max_cycles.is_some()
            || rules.max_bidirectional.is_some()
            || self.baseline.is_some()
            || self.explicit_baseline_rule
    }

    fn empty() -> Config {
        Config {
            rules: Rules {
                forbid: Vec::new(),
                allow_only: Vec::new(),
                layers: Vec::new(),
                max_cycles: None,
                max_bidirectional: None,
                no_new_cycles: true,
                no_new_bidirectional: true,
            },
            baseline: None,
            explicit_baseline_rule: false,
            explicit_baseline_line: 0,
        }
    }
}

/// A problem in the configuration, at a line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The file as written: `[check]` is its only table (`parse_config` refuses any other key
/// before serde reads it, so a misspelled table cannot turn the rules off).
#[derive(Debug, Deserialize)]
struct RawFile {
    check: Option<RawCheck>,
}

/// The keys of `[check]`, for "belongs in the [check] table".
const CHECK_KEYS: [&str; 8] = [
    "max_cycles",
    "max_bidirectional",
    "no_new_cycles",
    "no_new_bidirectional",
    "baseline",
    "forbid",
    "allow",
    "layer",
];

/// `[check]`, documented option by option in `docs/guide/architect.md`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    /// Fail when there are more module cycles than this.
    max_cycles: Option<Spanned<i64>>,
    /// Fail when there are more two-way module pairs than this.
    max_bidirectional: Option<Spanned<i64>>,
    /// Fail on a cycle the baseline does not have (default true when a baseline is given).
    no_new_cycles: Option<Spanned<bool>>,
    /// Fail on a two-way pair the baseline does not have (default true when a baseline is given).
    no_new_bidirectional: Option<Spanned<bool>>,
    /// Baseline file, relative to this file; `--baseline` overrides it.
    baseline: Option<Spanned<String>>,
    /// `[[check.forbid]] from = "a::**" to = "b::**" reason = "..."`.
    #[serde(default)]
    forbid: Vec<RawForbid>,
    /// `[[check.allow]] from = "a::**" to = ["b::**", "c"] reason = "..."`.
    #[serde(default)]
    allow: Vec<RawAllow>,
    /// `[[check.layer]] name = "web" modules = ["shop::http::**"]`, top layer first.
    #[serde(default)]
    layer: Vec<RawLayer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForbid {
    from: Spanned<String>,
    to: Spanned<String>,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    from: Spanned<String>,
    to: Vec<Spanned<String>>,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    name: Spanned<String>,
    modules: Vec<Spanned<String>>,
}

/// Parses and validates `fig.toml`; on failure, every problem found with its line and column.
///
/// Unknown keys are mistakes, with the nearest valid name: a table other than `[check]`
/// (`[checks]`), a key of `[check]` at the top level, a misspelled key inside `[check]`.
pub fn parse_config(text: &str) -> Result<Config, Vec<ConfigError>> {
    let position = |span: Range<usize>| {
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |idx| idx + 1);
        (
            text[..start].matches('\n').count() + 1,
            text[line_start..start].chars().count() + 1,
        )
    };
    let error_at = |span: Range<usize>, message: String| {
        let (line, column) = position(span);
        ConfigError {
            line,
            column,
            message,
        }
    };
    let line_of = |span: Range<usize>| position(span).0;
    let mut errors = Vec::new();
    let document = toml::de::DeTable::parse(text).map_err(|err| {
        vec![error_at(
            err.span().unwrap_or(0..0),
            err.message().trim().to_owned(),
        )]
    })?;
    for (key, _) in document.get_ref().iter() {
        let name: &str = key.get_ref();
        if name == "check" {
            continue;
        }
        let message = if CHECK_KEYS.contains(&name) {
            format!("`{name}` belongs in the [check] table")
        } else {
            let hint = crate::hint::nearest_name(name, ["check"])
                .map(|near| format!("; did you mean `{near}`?"))
                .unwrap_or_default();
            format!("unknown table or key `{name}`: fig.toml has one table, [check]{hint}")
        };
        errors.push(error_at(key.span(), message));
    }
    if !errors.is_empty() {
        errors.sort_by_key(|error| (error.line, error.column));
        return Err(errors);
    }
    let raw: RawFile = toml::from_str(text).map_err(|err| {
        vec![error_at(
            err.span().unwrap_or(0..0),
            crate::hint::did_you_mean(err.message()),
        )]
    })?;
    let mut config = Config::empty();
    let Some(check) = raw.check else {
        return if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        };
    };
    let pattern = |spanned: &Spanned<String>, errors: &mut Vec<ConfigError>| {
        Pattern::parse(spanned.get_ref())
            .map_err(|err| errors.push(error_at(spanned.span(), err.to_string())))
            .ok()
    };
    for rule in &check.forbid {
        if let (Some(from), Some(to)) = (
            pattern(&rule.from, &mut errors),
            pattern(&rule.to, &mut errors),
        ) {
            config.rules.forbid.push(DependencyRule {
                from,
                to,
                reason: rule.reason.clone(),
            });
        }
    }
    for rule in &check.allow {
        let from = pattern(&rule.from, &mut errors);
        let to: Vec<Option<Pattern>> = rule.to.iter().map(|to| pattern(to, &mut errors)).collect();
        if let Some(from) = from
            && to.iter().all(Option::is_some)
        {
            config.rules.allow_only.push(AllowRule {
                from,
                to: to.into_iter().flatten().collect(),
                reason: rule.reason.clone(),
            });
        }
    }
    let mut layer_names = std::collections::BTreeSet::new();
    for layer in &check.layer {
        if !layer_names.insert(layer.name.get_ref().clone()) {
            errors.push(error_at(
                layer.name.span(),
                format!("layer `{}` is declared twice", layer.name.get_ref()),
            ));
        }
        if layer.modules.is_empty() {
            errors.push(error_at(
                layer.name.span(),
                format!("layer `{}` has no module patterns", layer.name.get_ref()),
            ));
        }
        let modules: Vec<Option<Pattern>> = layer
            .modules
            .iter()
            .map(|module| pattern(module, &mut errors))
            .collect();
        config.rules.layers.push(Layer {
            name: layer.name.get_ref().clone(),
            modules: modules.into_iter().flatten().collect(),
        });
    }
    for (key, value, slot) in [
        (
            "max_cycles",
            &check.max_cycles,
            &mut config.rules.max_cycles,
        ),
        (
            "max_bidirectional",
            &check.max_bidirectional,
            &mut config.rules.max_bidirectional,
        ),
    ] {
        if let Some(value) = value {
            match usize::try_from(*value.get_ref()) {
                Ok(max) => *slot = Some(max),
                Err(_) => errors.push(error_at(
                    value.span(),
                    format!("`{key}` must be 0 or more, not {}", value.get_ref()),
                )),
            }
        }
    }
    for (value, slot) in [
        (&check.no_new_cycles, &mut config.rules.no_new_cycles),
        (
            &check.no_new_bidirectional,
            &mut config.rules.no_new_bidirectional,
        ),
    ] {
        if let Some(value) = value {
            *slot = *value.get_ref();
            if *value.get_ref() && !config.explicit_baseline_rule {
                config.explicit_baseline_rule = true;
                config.explicit_baseline_line = line_of(value.span());
            }
        }
    }
    config.baseline = check.baseline.map(|path| PathBuf::from(path.into_inner()));
    if errors.is_empty() {
        Ok(config)
    } else {
        errors.sort_by_key(|error| (error.line, error.column));
        Err(errors)
    }
}
