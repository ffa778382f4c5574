//! Money as an integer number of cents in one currency.
//!
//! Every domain module prices things with [`Money`]; it depends on nothing else in the crate, so
//! it is shared kernel rather than a domain of its own.

use std::fmt;
use std::ops::{Add, Mul};

use serde::{Deserialize, Serialize};

/// The currencies the platform settles in. Only euros today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Currency {
    /// Euro.
    #[serde(rename = "EUR")]
    Eur,
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Currency::Eur => f.write_str("EUR"),
        }
    }
}

/// An amount of money in minor units (cents), never fractional, never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in cents.
    pub cents: u64,
    /// Currency of the amount.
    pub currency: Currency,
}

impl Money {
    /// Zero euros.
    pub const ZERO: Money = Money::eur(0);

    /// An amount in euro cents.
    pub const fn eur(cents: u64) -> Money {
        Money {
            cents,
            currency: Currency::Eur,
        }
    }

    /// Subtracts `other`, stopping at zero: a discount never makes an order pay out.
    pub fn saturating_sub(self, other: Money) -> Money {
        Money {
            cents: self.cents.saturating_sub(other.cents),
            currency: self.currency,
        }
    }

    /// `percent` per cent of this amount, rounded down to the cent.
    pub fn percent(self, percent: u8) -> Money {
        Money {
            cents: self.cents * u64::from(percent) / 100,
            currency: self.currency,
        }
    }
}

impl Add for Money {
    type Output = Money;

    fn add(self, other: Money) -> Money {
        Money {
            cents: self.cents + other.cents,
            currency: self.currency,
        }
    }
}

impl Mul<u32> for Money {
    type Output = Money;

    fn mul(self, quantity: u32) -> Money {
        Money {
            cents: self.cents * u64::from(quantity),
            currency: self.currency,
        }
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:02} {}",
            self.cents / 100,
            self.cents % 100,
            self.currency
        )
    }
}
