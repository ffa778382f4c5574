//! Books and how many copies are on the shelf.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BookId(pub u64);

#[derive(Debug, Clone, Serialize)]
pub struct Book {
    pub id: BookId,
    pub title: String,
    pub on_shelf: u32,
}

#[derive(Debug, Default)]
pub struct Catalog {
    books: Vec<Book>,
}

impl Catalog {
    pub fn seeded() -> Catalog {
        let books = ["Dune", "Emma", "Ulysses"]
            .iter()
            .enumerate()
            .map(|(index, title)| Book {
                id: BookId(index as u64 + 1),
                title: (*title).to_owned(),
                on_shelf: 2,
            })
            .collect();
        Catalog { books }
    }

    pub fn all(&self) -> Vec<Book> {
        self.books.clone()
    }

    pub fn find(&self, id: BookId) -> Option<Book> {
        self.books.iter().find(|book| book.id == id).cloned()
    }

    /// Takes a copy off the shelf; `false` when none is left.
    pub fn take(&mut self, id: BookId) -> bool {
        match self.books.iter_mut().find(|book| book.id == id) {
            Some(book) if book.on_shelf > 0 => {
                book.on_shelf -= 1;
                true
            }
            _ => false,
        }
    }

    pub fn put_back(&mut self, id: BookId) {
        if let Some(book) = self.books.iter_mut().find(|book| book.id == id) {
            book.on_shelf += 1;
        }
    }
}
