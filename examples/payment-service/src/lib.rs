//! `payment-service`: the shop's `payment` module, extracted into its own service.
//!
//! It owns its model ([`model`]) instead of linking the monolith: a copy of the payment types,
//! seeded with the same payments as the shop, so `GET /payments/{id}` answers the same document
//! from either program. Unlike the shop's `payment` module it never reads orders; the amount is
//! stored with the payment.

#![warn(missing_docs, unreachable_pub)]

pub mod diagnostics;
pub mod faults;
pub mod http;
pub mod model;

pub use http::{app, serve};
pub use model::PaymentBook;
