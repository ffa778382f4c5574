//! The service's own payment model: what `shop::payment` was, minus the order internals.
//!
//! An extraction starts with a copy of the types, so the JSON stays identical. The one visible
//! difference is the key order of the JSON, which no client may rely on.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use thiserror::Error;

/// Number of payments a fresh service starts with: payment `n` pays the shop's order `n`.
pub const SEEDED_PAYMENTS: u64 = 100;

/// Flat delivery fee the shop adds to each order, part of every seeded amount.
const DELIVERY_FEE_CENTS: u64 = 300;

/// Identifier of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PaymentId(pub u64);

/// Identifier of an order in the shop. The service only stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct OrderId(pub u64);

/// An amount in euro cents. Keys in the JSON: `currency`, then `cents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Money {
    /// Always `EUR` for now.
    pub currency: &'static str,
    /// Amount in cents.
    pub cents: u64,
}

impl Money {
    /// An amount in euro cents.
    pub const fn eur(cents: u64) -> Money {
        Money {
            currency: "EUR",
            cents,
        }
    }
}

/// Outcome of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Money taken.
    Captured,
    /// The provider said no.
    Declined,
    /// Money given back.
    Refunded,
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PaymentStatus::Captured => "captured",
            PaymentStatus::Declined => "declined",
            PaymentStatus::Refunded => "refunded",
        })
    }
}

/// How a member paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Credit or debit card.
    Card,
    /// A mobile wallet.
    Wallet,
    /// Bank transfer.
    BankTransfer,
}

/// A payment. The field order is the JSON key order, deliberately not the shop's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// How it was paid.
    pub method: PaymentMethod,
    /// Outcome.
    pub status: PaymentStatus,
    /// How much.
    pub amount: Money,
    /// The shop order it pays for.
    pub order_id: OrderId,
    /// Its id.
    pub id: PaymentId,
}

/// Why a refund was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RefundError {
    /// No payment has this id.
    #[error("unknown payment {}", .0.0)]
    UnknownPayment(PaymentId),
    /// Only captured payments can be refunded.
    #[error("payment {} is {status}, only captured payments can be refunded", .id.0)]
    NotRefundable {
        /// The payment.
        id: PaymentId,
        /// Its state.
        status: PaymentStatus,
    },
}

/// All payments, shared between clones.
#[derive(Debug, Clone, Default)]
pub struct PaymentBook {
    payments: Arc<RwLock<BTreeMap<PaymentId, Payment>>>,
}

impl PaymentBook {
    /// The book a fresh service starts with, equal to the shop's seeded payments.
    pub fn seeded() -> PaymentBook {
        let book = PaymentBook::default();
        {
            let mut payments = book
                .payments
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for n in 1..=SEEDED_PAYMENTS {
                payments.insert(PaymentId(n), seeded_payment(n));
            }
        }
        book
    }

    /// The payment with this id.
    pub fn find(&self, id: PaymentId) -> Option<Payment> {
        // Every write is one map operation, so a poisoned lock still guards consistent data.
        let payments = self.payments.read().unwrap_or_else(PoisonError::into_inner);
        payments.get(&id).cloned()
    }

    /// Marks a captured payment refunded and returns it.
    pub fn refund(&self, id: PaymentId) -> Result<Payment, RefundError> {
        let mut payments = self
            .payments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let payment = payments
            .get_mut(&id)
            .ok_or(RefundError::UnknownPayment(id))?;
        if payment.status != PaymentStatus::Captured {
            return Err(RefundError::NotRefundable {
                id,
                status: payment.status,
            });
        }
        payment.status = PaymentStatus::Refunded;
        Ok(payment.clone())
    }
}

/// Payment `n` as the shop seeds it: its order's one dish of `800 + (n * 37) % 1700` cents,
/// `1 + n % 3` times, plus delivery.
fn seeded_payment(n: u64) -> Payment {
    let unit_cents = 800 + (n * 37) % 1700;
    let quantity = 1 + n % 3;
    Payment {
        method: match n % 3 {
            0 => PaymentMethod::Card,
            1 => PaymentMethod::Wallet,
            _ => PaymentMethod::BankTransfer,
        },
        status: PaymentStatus::Captured,
        amount: Money::eur(unit_cents * quantity + DELIVERY_FEE_CENTS),
        order_id: OrderId(n),
        id: PaymentId(n),
    }
}
