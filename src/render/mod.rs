//! Renderers of an analysis report for people and other tools: text, DOT, Mermaid.
//!
//! JSON is in `output.rs` and HTML in the `templates` crate.

pub mod graph;
pub mod text;

pub use text::Level;
