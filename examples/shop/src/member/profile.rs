//! A member's profile page: who they are, their grade badge and their usable coupons.

use serde::Serialize;

use super::{Grade, Member, MemberId, MemberRepository};
use crate::coupon::{Coupon, CouponRepository};
use crate::display::Badge as ProfileBadge;
use crate::display::{Card, Tone};

/// What the profile page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// The member.
    pub member: Member,
    /// Their grade, drawn as a badge.
    pub badge: ProfileBadge,
    /// Coupons they can still redeem.
    pub coupons: Vec<Coupon>,
}

/// The profile of `id`, or `None` if no such member exists.
pub fn profile(
    members: &MemberRepository,
    coupons: &CouponRepository,
    id: MemberId,
) -> Option<Profile> {
    let member = members.find(id)?;
    let coupons = usable_coupons(coupons, &member);
    Some(Profile {
        badge: grade_badge(member.grade),
        member,
        coupons,
    })
}

/// The coupons `member` owns or may use, not yet redeemed.
pub fn usable_coupons(coupons: &CouponRepository, member: &Member) -> Vec<Coupon> {
    coupons
        .for_member(member.id)
        .into_iter()
        .filter(|coupon| !coupon.redeemed && member.grade.at_least(coupon.min_grade))
        .collect()
}

fn grade_badge(grade: Grade) -> ProfileBadge {
    let tone = match grade {
        Grade::Bronze | Grade::Silver => Tone::Neutral,
        Grade::Gold | Grade::Vip => Tone::Highlight,
    };
    ProfileBadge::new(grade.label(), tone)
}

impl crate::display::Render for Profile {
    fn card(&self) -> Card {
        let coupons = match self.coupons.len() {
            0 => "no coupons".to_owned(),
            1 => "1 coupon".to_owned(),
            n => format!("{n} coupons"),
        };
        let mut badges = vec![self.badge.clone()];
        if self.member.suspended {
            badges.push(ProfileBadge::new("suspended", Tone::Warning));
        }
        Card {
            title: self.member.name.clone(),
            subtitle: coupons,
            badges,
        }
    }
}
