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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coupon::{CouponCode, Discount};
    use crate::member::MemberId;

    fn member(id: u64, grade: Grade) -> Member {
        Member {
            id: MemberId(id),
            name: "Test Member".to_owned(),
            email: "test@example.com".to_owned(),
            grade,
            suspended: false,
        }
    }

    fn coupon(owner: Option<u64>, min_grade: Grade) -> Coupon {
        Coupon::new(
            CouponCode("TEST".to_owned()),
            owner.map(MemberId),
            Discount::Percent(10),
            min_grade,
        )
    }

    #[test]
    fn grade_must_reach_the_minimum() {
        let gold_coupon = coupon(None, Grade::Gold);

        assert_eq!(check(&gold_coupon, &member(1, Grade::Gold)), Ok(()));
        assert_eq!(
            check(&gold_coupon, &member(1, Grade::Silver)),
            Err(CouponError::GradeTooLow {
                code: CouponCode("TEST".to_owned()),
                needed: Grade::Gold,
                actual: Grade::Silver,
            })
        );
    }

    #[test]
    fn vip_may_use_any_grade() {
        assert_eq!(
            check(&coupon(None, Grade::Vip), &member(1, Grade::Vip)),
            Ok(())
        );
        assert_eq!(
            check(&coupon(None, Grade::Gold), &member(1, Grade::Vip)),
            Ok(())
        );
    }

    #[test]
    fn reserved_coupons_belong_to_their_owner() {
        let reserved = coupon(Some(1), Grade::Bronze);

        assert_eq!(check(&reserved, &member(1, Grade::Bronze)), Ok(()));
        assert_eq!(
            check(&reserved, &member(2, Grade::Vip)),
            Err(CouponError::NotOwner(CouponCode("TEST".to_owned())))
        );
    }

    #[test]
    fn a_redeemed_coupon_is_spent() {
        let mut spent = coupon(None, Grade::Bronze);
        spent.redeemed = true;

        assert_eq!(
            check(&spent, &member(1, Grade::Gold)),
            Err(CouponError::AlreadyRedeemed(CouponCode("TEST".to_owned())))
        );
    }
}
