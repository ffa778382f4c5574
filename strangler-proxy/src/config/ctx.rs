//! The validation context: where the mistakes of one config file are collected, the facts the
//! tables share, and the value parsers every table uses.
//!
//! Each table's raw type implements [`UnvalidatedConfig`] (cargo-deny's shape): its `validate`
//! reports every mistake it finds to the [`Ctx`] and goes on with a placeholder (usually the
//! default), so that one run finds all the mistakes of a file. A check that depends on a value
//! that was itself wrong is skipped (see [`Ctx::mark`]), so a mistake is reported once, never
//! again as the consequence of its placeholder.

use std::collections::BTreeSet;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::Overrides;
use crate::error::{ConfigError, ConfigErrors};

/// A table as serde read it, validated into the type the proxy uses.
pub(super) trait UnvalidatedConfig {
    /// The validated type.
    type ValidCfg;

    /// Validates, reporting every mistake to `ctx`; a wrong value becomes a placeholder.
    fn validate(self, ctx: &mut Ctx<'_>) -> Self::ValidCfg;
}

/// Where mistakes go, and what the tables need to know of each other.
pub(super) struct Ctx<'a> {
    /// The file as named in messages (`<config>` for text without a file).
    pub file: &'a str,
    /// Its text, to turn spans into lines and columns.
    pub text: &'a str,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    /// The config file; `None` for text without a file or a config made of flags only.
    pub path: Option<&'a Path>,
    /// The command-line values that replace the file's.
    pub overrides: &'a Overrides,
    /// The names of the upstreams (the file's and `--monolith`), known before any table is
    /// validated so that routes can name them.
    pub upstreams: BTreeSet<String>,
    /// The upstream of requests no route takes and the fallback of routes without one
    /// (`server.default_upstream`, or `monolith`).
    pub default_upstream: String,
    /// The rollback state file (`--state-file`, `server.state_file`, or next to the config).
    pub state_file: Option<PathBuf>,
    /// The mistakes found so far.
    errors: Vec<ConfigError>,
}

impl<'a> Ctx<'a> {
    /// A context for `text`, read from `path` (which names the file and anchors relative paths).
    pub fn new(
        file: &'a str,
        text: &'a str,
        path: Option<&'a Path>,
        overrides: &'a Overrides,
    ) -> Ctx<'a> {
        Ctx {
            file,
            text,
            dir: path
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            path,
            overrides,
            upstreams: BTreeSet::new(),
            default_upstream: String::new(),
            state_file: None,
            errors: Vec::new(),
        }
    }

    /// A mistake at `span`. An empty span at 0 marks a mistake with no place in the file (a
    /// missing table).
    pub fn mistake(&self, span: Range<usize>, reason: impl Into<String>) -> ConfigError {
        let (line, column) = if self.text.is_empty() || span == (0..0) {
            (0, 0)
        } else {
            line_column(self.text, span.start)
        };
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            reason: reason.into(),
        }
    }

    /// Records a mistake at `span`.
    pub fn report(&mut self, span: Range<usize>, reason: impl Into<String>) {
        let mistake = self.mistake(span, reason);
        self.errors.push(mistake);
    }

    /// Records a mistake of the command line (no place in the file).
    pub fn report_command_line(&mut self, reason: impl Into<String>) {
        self.errors.push(ConfigError {
            file: "<command line>".to_owned(),
            line: 0,
            column: 0,
            reason: reason.into(),
        });
    }

    /// The value of `result`, or `None` after recording its mistake at `span`.
    pub fn check<T>(&mut self, span: Range<usize>, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(reason) => {
                self.report(span, reason);
                None
            }
        }
    }

    /// How many mistakes were found so far; with [`Ctx::reported_since`], whether a value was
    /// wrong, so that a check depending on it is skipped.
    pub fn mark(&self) -> usize {
        self.errors.len()
    }

    /// Whether a mistake was found since `mark`.
    pub fn reported_since(&self, mark: usize) -> bool {
        self.errors.len() > mark
    }

    /// `value` when no mistake was found, else every mistake, in file order.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors::new(self.errors))
        }
    }

    /// A path from the file, relative to the file's directory.
    pub fn path(&self, value: &str) -> PathBuf {
        let path = Path::new(value);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }

    /// A duration like `"500ms"`, or `default` when absent (or wrong).
    pub fn duration(&mut self, value: Option<&Spanned<String>>, default: Duration) -> Duration {
        let Some(value) = value else {
            return default;
        };
        match humantime::parse_duration(value.get_ref().trim()) {
            Ok(duration) => duration,
            Err(err) => {
                self.report(
                    value.span(),
                    format!(
                        "invalid duration `{}` ({err}); write e.g. \"500ms\", \"5s\", \"2m\"",
                        value.get_ref()
                    ),
                );
                default
            }
        }
    }

    /// A duration that must not be zero, or `default` when absent (or wrong).
    pub fn positive_duration(
        &mut self,
        value: Option<&Spanned<String>>,
        default: Duration,
        key: &str,
    ) -> Duration {
        let mark = self.mark();
        let duration = self.duration(value, default);
        match value {
            Some(value) if duration.is_zero() && !self.reported_since(mark) => {
                self.report(value.span(), format!("`{key}` must be longer than 0"));
                default
            }
            _ => duration,
        }
    }

    /// A size: a number of bytes or a string like `"64KiB"`; `None` when wrong.
    pub fn size(&mut self, value: &Spanned<toml::Value>) -> Option<u64> {
        let size = match value.get_ref() {
            toml::Value::Integer(n) => u64::try_from(*n).ok(),
            toml::Value::String(s) => parse_size(s),
            _ => None,
        };
        if size.is_none() {
            self.report(
                value.span(),
                "invalid size; write a number of bytes or a string like \"64KiB\", \"10MiB\", \"1GB\"",
            );
        }
        size
    }

    /// A whole number in `range`, or `default` when absent (or wrong).
    pub fn count(
        &mut self,
        value: Option<&Spanned<i64>>,
        default: u32,
        range: RangeInclusive<u32>,
        key: &str,
    ) -> u32 {
        let Some(value) = value else {
            return default;
        };
        match u32::try_from(*value.get_ref())
            .ok()
            .filter(|n| range.contains(n))
        {
            Some(n) => n,
            None => {
                self.report(
                    value.span(),
                    format!(
                        "`{key}` must be between {} and {}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    /// The trimmed content of the file a secret is in; `None` when it cannot be read.
    pub fn read_secret(&mut self, value: &Spanned<String>) -> Option<String> {
        let path = self.path(value.get_ref());
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(err) => {
                self.report(
                    value.span(),
                    format!("cannot read {}: {err}", path.display()),
                );
                None
            }
        }
    }

    /// Checks the name of an upstream or a route (`what`); `false` when it is wrong.
    pub fn check_name(&mut self, name: &Spanned<String>, what: &str) -> bool {
        let ok = !name.get_ref().is_empty()
            && !name.get_ref().starts_with('_')
            && name
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !ok {
            self.report(
                name.span(),
                format!(
                    "invalid {what} name `{}`; use letters, digits, `-`, `_` and `.`, not starting with `_`",
                    name.get_ref()
                ),
            );
        }
        ok
    }

    /// The methods of a list (any case); a wrong one is reported and left out.
    pub fn methods(&mut self, list: &[Spanned<String>]) -> Vec<http::Method> {
        list.iter()
            .filter_map(|method| {
                let upper = method.get_ref().to_ascii_uppercase();
                self.check(
                    method.span(),
                    http::Method::from_bytes(upper.as_bytes())
                        .map_err(|_| format!("invalid method `{}`", method.get_ref())),
                )
            })
            .collect()
    }

    /// Whether an upstream of this name exists.
    pub fn upstream_exists(&self, name: &str) -> bool {
        self.upstreams.contains(name)
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Parses `123`, `64KiB`, `10MiB`, `1GB`, `512 kb` (binary units `KiB/MiB/GiB`, decimal `KB/MB/GB`).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits_end].parse().ok()?;
    let unit = text[digits_end..].trim().to_ascii_lowercase();
    let factor: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}
