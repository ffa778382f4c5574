//! Loyalty grades, from new members to the platform's best customers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A member's loyalty grade. Grades are ordered: `Bronze < Silver < Gold < Vip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    /// New members.
    Bronze,
    /// A few orders a month.
    Silver,
    /// Regulars.
    Gold,
    /// The best customers.
    Vip,
}

impl Grade {
    /// Whether this grade is `minimum` or better.
    pub fn at_least(self, minimum: Grade) -> bool {
        self >= minimum
    }

    /// Human-readable name.
    pub fn label(self) -> &'static str {
        match self {
            Grade::Bronze => "Bronze",
            Grade::Silver => "Silver",
            Grade::Gold => "Gold",
            Grade::Vip => "VIP",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}
