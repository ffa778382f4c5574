//! Comparing two captured responses: status, chosen headers, and bodies.
//!
//! Bodies that both parse as JSON are compared as values: object key order does not matter,
//! numbers are compared as numbers, and paths matching an ignore pattern are skipped. Any other
//! bodies are compared byte for byte, reporting both sizes and the first differing offset.
//!
//! A key design decision is a small recursive diff instead of a JSON Patch crate: RFC 6902
//! patches carry only the new value (the report wants both sides), treat `1` and `1.0` as
//! different numbers, and know nothing of ignored paths, so their output would need as much
//! code to filter and explain as this file needs to produce it directly.
//!
//! Paths are JSON Pointers (RFC 6901: `/items/0/id`, `~1` for `/`, `~0` for `~`); the status is
//! reported at path `status`, a header at `header:NAME`, a non-JSON body at `body`.
//!
//! Numbers: JSON has one number type (RFC 8259, section 6), so `1` and `1.0` are equal. Two
//! integers are compared exactly (no precision lost above 2^53); when either side has a fraction
//! or exponent, both are compared as `f64`.

use http::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// At most this many differences are kept per comparison; the rest are only counted.
pub const MAX_DIFFERENCES: usize = 20;
/// Values in a difference are cut to this many characters.
const MAX_VALUE_CHARS: usize = 160;

/// One response, as far as the comparison needs it.
#[derive(Debug, Clone)]
pub struct Captured<'a> {
    /// The status code.
    pub status: u16,
    /// The response headers (only the configured ones are looked at).
    pub headers: &'a HeaderMap,
    /// The whole body.
    pub body: &'a [u8],
}

/// What a comparison looks at besides status and body.
#[derive(Debug, Clone, Default)]
pub struct CompareConfig {
    /// Headers whose values must be equal.
    pub headers: Vec<HeaderName>,
    /// JSON paths left out of the body comparison.
    pub ignore: Vec<IgnorePattern>,
}

// A JSON path to ignore is configured with the route's shadow table; its matching is here.
pub use crate::config::IgnorePattern;

/// Which part of the response differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffKind {
    /// The status code.
    Status,
    /// A compared header.
    Header,
    /// The body (a JSON value or the bytes).
    Body,
}

impl DiffKind {
    /// A stable name, used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Status => "status",
            DiffKind::Header => "header",
            DiffKind::Body => "body",
        }
    }
}

/// One difference between the primary's and the shadow's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// What differs.
    pub kind: DiffKind,
    /// Where: `status`, `header:NAME`, `body`, or a JSON Pointer into the body.
    pub path: String,
    /// The primary's value (JSON text for JSON values); `None` when absent.
    pub primary: Option<String>,
    /// The shadow's value; `None` when absent.
    pub shadow: Option<String>,
    /// More about it, such as the first differing byte of a non-JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The result of [`compare`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// The first [`MAX_DIFFERENCES`] differences, in path order.
    pub differences: Vec<Difference>,
    /// How many differences there were in all.
    pub total: usize,
}

impl Comparison {
    /// Whether the responses are equal.
    pub fn is_equal(&self) -> bool {
        self.total == 0
    }

    fn push(&mut self, difference: Difference) {
        self.total += 1;
        if self.differences.len() < MAX_DIFFERENCES {
            self.differences.push(difference);
        }
    }
}

impl IgnorePattern {
    /// Whether this pattern matches `path` (unescaped segments) or one of its ancestors.
    fn covers(&self, path: &[String]) -> bool {
        self.segments.len() <= path.len()
            && self
                .segments
                .iter()
                .zip(path)
                .all(|(want, got)| want == "*" || want == got)
    }
}

/// Compares the shadow's response with the primary's.
pub fn compare(
    primary: &Captured<'_>,
    shadow: &Captured<'_>,
    config: &CompareConfig,
) -> Comparison {
    let mut out = Comparison::default();
    if primary.status != shadow.status {
        out.push(Difference {
            kind: DiffKind::Status,
            path: "status".to_owned(),
            primary: Some(primary.status.to_string()),
            shadow: Some(shadow.status.to_string()),
            detail: None,
        });
    }
    for name in &config.headers {
        let value = |headers: &HeaderMap| {
            let values: Vec<String> = headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        let (left, right) = (value(primary.headers), value(shadow.headers));
        if left != right {
            out.push(Difference {
                kind: DiffKind::Header,
                path: format!("header:{name}"),
                primary: left,
                shadow: right,
                detail: None,
            });
        }
    }
    compare_bodies(primary.body, shadow.body, config, &mut out);
    out
}

fn compare_bodies(primary: &[u8], shadow: &[u8], config: &CompareConfig, out: &mut Comparison) {
    if primary == shadow {
        return;
    }
    if let (Some(left), Some(right)) = (parse_json(primary), parse_json(shadow)) {
        let mut path = Vec::new();
        diff_values(&left, &right, &mut path, &config.ignore, out);
        return;
    }
    let offset = primary
        .iter()
        .zip(shadow)
        .position(|(a, b)| a != b)
        .unwrap_or(primary.len().min(shadow.len()));
    out.push(Difference {
        kind: DiffKind::Body,
        path: "body".to_owned(),
        primary: Some(format!("{} bytes", primary.len())),
        shadow: Some(format!("{} bytes", shadow.len())),
        detail: Some(format!("first difference at byte {offset}")),
    });
}

/// A body parsed as JSON, if it is JSON (an empty body is not).
fn parse_json(body: &[u8]) -> Option<Value> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    // Only documents that are objects or arrays: `"text"` or `12` bodies compare as bytes.
    if *first != b'{' && *first != b'[' {
        return None;
    }
    serde_json::from_slice(body).ok()
}

fn diff_values(
    left: &Value,
    right: &Value,
    path: &mut Vec<String>,
    ignore: &[IgnorePattern],
    out: &mut Comparison,
) {
    if ignore.iter().any(|pattern| pattern.covers(path)) {
        return;
    }
    match (left, right) {
        (Value::Object(left), Value::Object(right)) => {
            let mut keys: Vec<&String> = left.keys().chain(right.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                path.push(key.clone());
                match (left.get(key), right.get(key)) {
                    (Some(a), Some(b)) => diff_values(a, b, path, ignore, out),
                    (a, b) => absent(a, b, path, ignore, out),
                }
                path.pop();
            }
        }
        (Value::Array(left), Value::Array(right)) => {
            for idx in 0..left.len().max(right.len()) {
                path.push(idx.to_string());
                match (left.get(idx), right.get(idx)) {
                    (Some(a), Some(b)) => diff_values(a, b, path, ignore, out),
                    (a, b) => absent(a, b, path, ignore, out),
                }
                path.pop();
            }
        }
        (Value::Number(a), Value::Number(b)) if numbers_equal(a, b) => {}
        (a, b) if a == b => {}
        (a, b) => out.push(Difference {
            kind: DiffKind::Body,
            path: pointer(path),
            primary: Some(short(a)),
            shadow: Some(short(b)),
            detail: None,
        }),
    }
}

/// A key or index present on one side only.
fn absent(
    left: Option<&Value>,
    right: Option<&Value>,
    path: &[String],
    ignore: &[IgnorePattern],
    out: &mut Comparison,
) {
    if ignore.iter().any(|pattern| pattern.covers(path)) {
        return;
    }
    out.push(Difference {
        kind: DiffKind::Body,
        path: pointer(path),
        primary: left.map(short),
        shadow: right.map(short),
        detail: None,
    });
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a == b;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A JSON Pointer (RFC 6901) for unescaped segments; the root is `/`.
fn pointer(path: &[String]) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::new();
    for segment in path {
        out.push('/');
        out.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// The JSON text of a value, cut to [`MAX_VALUE_CHARS`] characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
    cut.push('…');
    cut
}
