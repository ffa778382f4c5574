//! `shop`: a small food-delivery platform written as one crate, the way monoliths grow.
//!
//! It is the sample that Fig analyzes and strangles. The domain modules are [`order`],
//! [`payment`], [`member`], [`coupon`] and [`display`]. They share [`money`] and [`store`], which
//! depend on no domain. [`state`] and [`http`] wire everything together; no domain module depends
//! on them.
//!
//! The domain modules depend on each other in cycles on purpose, the kind Fig reports:
//! `order <-> payment`, `member <-> coupon`, and `display -> order -> member -> display`.
//! `examples/README.md` lists every such dependency and the items it goes through.

#![warn(missing_docs, unreachable_pub)]

pub mod coupon;
pub mod display;
pub mod http;
pub mod member;
pub mod money;
pub mod order;
pub mod payment;
pub mod state;
pub mod store;

// The facade most callers use, so they need not know the module layout.
pub use coupon::{Coupon, CouponCode};
pub use member::{Member, MemberId};
pub use money::Money;
pub use order::{Order, OrderId, OrderService};
pub use payment::{Payment, PaymentId, PaymentService};
pub use state::Shop;
