//! Every table of the library, shared by the handlers.

use std::sync::Mutex;

use crate::catalog::Catalog;
use crate::loans::Loans;
use crate::members::Members;

/// The library's tables.
pub struct Library {
    pub catalog: Mutex<Catalog>,
    pub members: Mutex<Members>,
    pub loans: Mutex<Loans>,
}

impl Library {
    pub fn seeded() -> Library {
        Library {
            catalog: Mutex::new(Catalog::seeded()),
            members: Mutex::new(Members::seeded()),
            loans: Mutex::new(Loans::default()),
        }
    }
}
