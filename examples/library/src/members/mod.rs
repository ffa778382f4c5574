//! Members and whether they may borrow.

use serde::Serialize;

use crate::loans::Loans;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemberId(pub u64);

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: MemberId,
    pub name: String,
}

#[derive(Debug, Default)]
pub struct Members {
    members: Vec<Member>,
}

impl Members {
    pub fn seeded() -> Members {
        let members = ["Ada", "Grace"]
            .iter()
            .enumerate()
            .map(|(index, name)| Member {
                id: MemberId(index as u64 + 1),
                name: (*name).to_owned(),
            })
            .collect();
        Members { members }
    }

    pub fn find(&self, id: MemberId) -> Option<Member> {
        self.members.iter().find(|member| member.id == id).cloned()
    }

    /// A member may hold at most three books (the two-way dependency on `loans`, on purpose).
    pub fn may_borrow(&self, id: MemberId, loans: &Loans) -> bool {
        self.find(id).is_some() && loans.count_for(id) < 3
    }
}
