//! Coupons: discount codes, who may use them, and redeeming them.
//!
//! A coupon may be reserved to one member and to a minimum grade, so redeeming one reads the
//! member (`crate::member`) in [`eligibility`].

pub mod eligibility;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::member::{Grade, MemberId};
use crate::money::Money;
use crate::store::Table;

/// A coupon's code, as typed at checkout.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CouponCode(pub String);

/// How much a coupon takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discount {
    /// A share of the total, in per cent.
    Percent(u8),
    /// A fixed amount.
    Fixed(Money),
}

/// A discount code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coupon {
    /// The code.
    pub code: CouponCode,
    /// The only member who may use it, or `None` for everyone.
    pub owner: Option<MemberId>,
    /// What it takes off.
    pub discount: Discount,
    /// Lowest grade allowed to use it.
    pub min_grade: Grade,
    /// Whether it has been used.
    pub redeemed: bool,
}

impl Coupon {
    /// An unused coupon.
    pub fn new(
        code: CouponCode,
        owner: Option<MemberId>,
        discount: Discount,
        min_grade: Grade,
    ) -> Coupon {
        Coupon {
            code,
            owner,
            discount,
            min_grade,
            redeemed: false,
        }
    }

    /// `total` after the discount, never below zero.
    pub fn apply(&self, total: Money) -> Money {
        match self.discount {
            Discount::Percent(percent) => total.saturating_sub(total.percent(percent.min(100))),
            Discount::Fixed(amount) => total.saturating_sub(amount),
        }
    }
}

/// Why a coupon cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CouponError {
    /// No coupon has this code.
    #[error("unknown coupon `{}`", .0.0)]
    Unknown(CouponCode),
    /// Already used.
    #[error("coupon `{}` was already redeemed", .0.0)]
    AlreadyRedeemed(CouponCode),
    /// Reserved to another member.
    #[error("coupon `{}` belongs to another member", .0.0)]
    NotOwner(CouponCode),
    /// The member's grade is too low.
    #[error("coupon `{}` needs grade {needed} or better, member has {actual}", .code.0)]
    GradeTooLow {
        /// The coupon.
        code: CouponCode,
        /// Its minimum grade.
        needed: Grade,
        /// The member's grade.
        actual: Grade,
    },
    /// No member has this id.
    #[error("unknown member {}", .0.0)]
    UnknownMember(MemberId),
}

/// All coupons.
#[derive(Debug, Clone, Default)]
pub struct CouponRepository {
    table: Table<CouponCode, Coupon>,
}

impl CouponRepository {
    /// The coupon with this code.
    pub fn find(&self, code: &CouponCode) -> Option<Coupon> {
        self.table.get(code)
    }

    /// Stores `coupon`, replacing any coupon with the same code.
    pub fn insert(&self, coupon: Coupon) {
        self.table.insert(coupon.code.clone(), coupon);
    }

    /// Coupons reserved to `member` plus the public ones, by code.
    pub fn for_member(&self, member: MemberId) -> Vec<Coupon> {
        self.table
            .filter(|coupon| coupon.owner.is_none() || coupon.owner == Some(member))
    }

    /// Marks the coupon used if `member` may use it, and returns it.
    pub fn redeem(
        &self,
        code: &CouponCode,
        members: &crate::member::MemberRepository,
        member: MemberId,
    ) -> Result<Coupon, CouponError> {
        let member = members
            .find(member)
            .ok_or(CouponError::UnknownMember(member))?;
        let (coupon, checked) = self
            .table
            .update(code, |coupon| {
                eligibility::check(coupon, &member)?;
                coupon.redeemed = true;
                Ok(())
            })
            .ok_or_else(|| CouponError::Unknown(code.clone()))?;
        checked.map(|()| coupon)
    }
}
