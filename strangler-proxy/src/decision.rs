//! Layer 4, the decision: which route a request matches, its flag context, and where it goes.
//!
//! It imports the layers below (shadow, protection, HTTP), `config` and `error`.

pub mod context;
pub mod flags;
pub mod route;
