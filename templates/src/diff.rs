//! The shadow-traffic diff page: one self-contained HTML page (inline CSS, no script) showing how
//! a route's shadow responses compare with the primary's.
//!
//! The CLI (`fig route diff NAME --format html`) fills a [`DiffReport`] from the proxy's admin
//! API; this module only lays it out. Every value is escaped by askama.

use askama::Template;

use crate::report::Meta;

/// What the page shows: counters, the most common differing paths, and samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffReport {
    /// The route's name.
    pub route: String,
    /// One line on how the route is shadowed, or why it is not.
    pub setup: String,
    /// Labelled counters, in display order (mirrored, equal, different, ...).
    pub counts: Vec<(String, u64)>,
    /// Share of compared responses that differed, e.g. `23.5%`.
    pub different_percent: String,
    /// Differing paths with how many responses differed there, most common first.
    pub top_paths: Vec<(String, u64)>,
    /// The newest samples first.
    pub samples: Vec<DiffSample>,
}

/// One recorded request whose shadow response differed or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffSample {
    /// When it was compared.
    pub time: String,
    /// `METHOD /path?query`.
    pub request: String,
    /// `upstream status`, e.g. `monolith 200`.
    pub primary: String,
    /// `upstream status`, or the upstream and `failed`.
    pub shadow: String,
    /// Why the shadow has no answer.
    pub error: Option<String>,
    /// The field-level differences kept.
    pub differences: Vec<FieldDiff>,
    /// Differences beyond those kept.
    pub more: usize,
}

/// One field-level difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    /// `status`, `header:NAME`, `body` or a JSON Pointer.
    pub path: String,
    /// The primary's value, or `(absent)`.
    pub primary: String,
    /// The shadow's value, or `(absent)`.
    pub shadow: String,
    /// More about it, such as the first differing byte.
    pub detail: String,
}

/// Renders the diff page.
pub fn render_diff_html(report: &DiffReport, meta: &Meta) -> Result<String, askama::Error> {
    DiffPage {
        report,
        tool: &meta.tool,
    }
    .render()
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffPage<'a> {
    report: &'a DiffReport,
    tool: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_values_and_lists_differences() {
        let report = DiffReport {
            route: "items".to_owned(),
            setup: "100% of GET to the upstream that did not answer".to_owned(),
            counts: vec![("mirrored".to_owned(), 3), ("different".to_owned(), 1)],
            different_percent: "33.3%".to_owned(),
            top_paths: vec![("/total".to_owned(), 1)],
            samples: vec![DiffSample {
                time: "2026-11-22T07:00:00Z".to_owned(),
                request: "GET /items/1?q=<b>".to_owned(),
                primary: "monolith 200".to_owned(),
                shadow: "svc 200".to_owned(),
                error: None,
                differences: vec![FieldDiff {
                    path: "/total".to_owned(),
                    primary: "10".to_owned(),
                    shadow: "\"<script>\"".to_owned(),
                    detail: String::new(),
                }],
                more: 0,
            }],
        };
        let html = render_diff_html(
            &report,
            &Meta {
                tool: "fig 0.0.0".to_owned(),
                live: None,
            },
        )
        .unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<code>/total</code>"));
        assert!(html.contains("GET /items/1?q=&#60;b&#62;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("33.3%"));
    }
}
