//! Whether a member may redeem a coupon: ownership, prior use and grade.

use super::super::member::Member;
use super::{Coupon, CouponError};
use crate::member::grade::*;

/// `Ok` if `member` may redeem `coupon` now.
pub fn check(coupon: &Coupon, member: &Member) -> Result<(), CouponError> {
    if coupon.redeemed {
        return Err(CouponError::AlreadyRedeemed(coupon.code.clone()));
    }
    if coupon.owner.is_some_and(|owner| owner != member.id) {
        return Err(CouponError::NotOwner(coupon.code.clone()));
    }
    if !grade_allows(member.grade, coupon.min_grade) {
        return Err(CouponError::GradeTooLow {
            code: coupon.code.clone(),
            needed: coupon.min_grade,
            actual: member.grade,
        });
    }
    Ok(())
}

/// VIPs may use any coupon; everybody else needs the coupon's grade or better.
fn grade_allows(actual: Grade, needed: Grade) -> bool {
    match actual {
        Grade::Vip => true,
        Grade::Bronze | Grade::Silver | Grade::Gold => actual.at_least(needed),
    }
}
