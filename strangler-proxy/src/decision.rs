//! Layer 4, the decision: which route a request matches, its flag context, the rollbacks that pin
//! a route to its fallback (`state`), and where it goes; the compiled route table holds every
//! per-route counter (`series`), which `ops::metrics` renders.
//!
//! It imports the layers below (shadow, protection, HTTP), `config` and `error`.

pub mod context;
pub mod flags;
pub mod route;
pub mod series;
pub mod state;
