use actix_web::{HttpResponse, get, web};

use crate::catalog::BookId;
use crate::state::Library;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(list_books).service(get_book);
}

#[get("/books")]
async fn list_books(library: web::Data<Library>) -> HttpResponse {
    let books = library.catalog.lock().unwrap().all();
    HttpResponse::Ok().json(books)
}

#[get("/books/{id}")]
async fn get_book(library: web::Data<Library>, id: web::Path<u64>) -> HttpResponse {
    match library.catalog.lock().unwrap().find(BookId(*id)) {
        Some(book) => HttpResponse::Ok().json(book),
        None => HttpResponse::NotFound().finish(),
    }
}
