//! Members: the people who order, their grade, and signing up.
//!
//! Signing up issues a welcome coupon (`crate::coupon`), and a member's profile lists their
//! coupons and is drawn with `crate::display` badges; see [`profile`].

pub mod grade;
pub mod profile;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::coupon::{CouponCode, CouponRepository, Discount};
use crate::store::Table;

pub use grade::Grade;

/// Identifier of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub u64);

/// A registered member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Its id.
    pub id: MemberId,
    /// Display name.
    pub name: String,
    /// Contact address.
    pub email: String,
    /// Loyalty grade, which unlocks coupons.
    pub grade: Grade,
    /// Suspended members cannot order.
    pub suspended: bool,
}

/// Why a member could not sign up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MemberError {
    /// The e-mail address is not plausible.
    #[error("invalid e-mail address `{0}`")]
    InvalidEmail(String),
    /// Somebody already uses this address.
    #[error("e-mail address `{0}` is already registered")]
    DuplicateEmail(String),
}

/// All members.
#[derive(Debug, Clone, Default)]
pub struct MemberRepository {
    table: Table<MemberId, Member>,
}

impl MemberRepository {
    /// The member with this id.
    pub fn find(&self, id: MemberId) -> Option<Member> {
        self.table.get(&id)
    }

    /// Stores `member`, replacing any member with the same id.
    pub fn insert(&self, member: Member) {
        self.table.reserve_id(member.id.0);
        self.table.insert(member.id, member);
    }

    /// The member registered with `email`, compared case-insensitively.
    pub fn find_by_email(&self, email: &str) -> Option<Member> {
        self.table
            .filter(|member| member.email.eq_ignore_ascii_case(email))
            .into_iter()
            .next()
    }

    /// All members, by id.
    pub fn all(&self) -> Vec<Member> {
        self.table.filter(|_| true)
    }
}

/// Signs members up.
#[derive(Debug)]
pub struct MemberService {
    members: MemberRepository,
    coupons: CouponRepository,
}

impl MemberService {
    /// A service over these repositories.
    pub fn new(members: MemberRepository, coupons: CouponRepository) -> MemberService {
        MemberService { members, coupons }
    }

    /// Registers a new bronze member and gives them a 10% welcome coupon.
    pub fn register(&mut self, name: &str, email: &str) -> Result<Member, MemberError> {
        if !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
            return Err(MemberError::InvalidEmail(email.to_owned()));
        }
        if self.members.find_by_email(email).is_some() {
            return Err(MemberError::DuplicateEmail(email.to_owned()));
        }
        let member = Member {
            id: MemberId(self.members.table.next_id()),
            name: name.to_owned(),
            email: email.to_owned(),
            grade: Grade::Bronze,
            suspended: false,
        };
        self.members.insert(member.clone());

        let code = CouponCode(format!("WELCOME-{}", member.id.0));
        let welcome =
            crate::coupon::Coupon::new(code, Some(member.id), Discount::Percent(10), Grade::Bronze);
        self.coupons.insert(welcome);
        Ok(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> (MemberService, CouponRepository) {
        let coupons = CouponRepository::default();
        (
            MemberService::new(MemberRepository::default(), coupons.clone()),
            coupons,
        )
    }

    #[test]
    fn register_gives_a_welcome_coupon() {
        let (mut members, coupons) = service();

        let member = members
            .register("Ada", "ada@example.com")
            .expect("registered");

        let welcome = coupons
            .find(&CouponCode(format!("WELCOME-{}", member.id.0)))
            .expect("welcome coupon issued");
        assert_eq!(member.grade, Grade::Bronze);
        assert_eq!(welcome.owner, Some(member.id));
        assert_eq!(welcome.discount, Discount::Percent(10));
    }

    #[test]
    fn register_refuses_bad_and_taken_addresses() {
        let (mut members, _) = service();
        members
            .register("Ada", "ada@example.com")
            .expect("registered");

        let taken = members.register("Another Ada", "ADA@example.com");
        let invalid = members.register("Nobody", "nobody");

        assert!(matches!(taken, Err(MemberError::DuplicateEmail(_))));
        assert!(matches!(invalid, Err(MemberError::InvalidEmail(_))));
    }
}
