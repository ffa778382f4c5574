//! Askama templates: the HTML report and generated interface code.
//!
//! The templates live in `report/` (the HTML report and the shadow-traffic diff page) and `codegen/` (trait code, manifests, the
//! extraction plan); `askama.toml` points askama at both. The Rust side holds view structs that
//! reshape a [`analyzer::report::Report`] for a template, the crate graph's SVG layout, and the
//! report's map (`report/map.js`, `report/map.css`), inlined into the page.
//!
//! **Invariant:** no analysis here. Cycles, weights, suggestions and metrics come from the
//! analyzer; this crate decides only how they look.

pub mod codegen;
pub mod diff;
pub mod layout;
pub mod report;

pub use codegen::{EmittedFile, emit};
pub use diff::{DiffReport, DiffSample, FieldDiff, render_diff_html};
pub use report::{Meta, render_html};
