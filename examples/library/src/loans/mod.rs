//! Who has which book: lending needs the catalog and the members.

use serde::Serialize;

use crate::catalog::{BookId, Catalog};
use crate::members::{MemberId, Members};

#[derive(Debug, Clone, Serialize)]
pub struct Loan {
    pub id: u64,
    pub book: BookId,
    pub member: MemberId,
    pub returned: bool,
}

#[derive(Debug, Default)]
pub struct Loans {
    loans: Vec<Loan>,
}

impl Loans {
    pub fn count_for(&self, member: MemberId) -> usize {
        self.loans
            .iter()
            .filter(|loan| loan.member == member && !loan.returned)
            .count()
    }

    pub fn find(&self, id: u64) -> Option<Loan> {
        self.loans.iter().find(|loan| loan.id == id).cloned()
    }

    pub fn lend(
        &mut self,
        catalog: &mut Catalog,
        members: &Members,
        book: BookId,
        member: MemberId,
    ) -> Option<Loan> {
        if !members.may_borrow(member, self) || !catalog.take(book) {
            return None;
        }
        let loan = Loan {
            id: self.loans.len() as u64 + 1,
            book,
            member,
            returned: false,
        };
        self.loans.push(loan.clone());
        Some(loan)
    }

    pub fn give_back(&mut self, catalog: &mut Catalog, id: u64) -> Option<Loan> {
        let loan = self.loans.iter_mut().find(|loan| loan.id == id && !loan.returned)?;
        loan.returned = true;
        catalog.put_back(loan.book);
        Some(loan.clone())
    }
}
