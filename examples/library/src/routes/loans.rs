use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::catalog::BookId;
use crate::loans::Loans;
use crate::members::MemberId;
use crate::state::Library;

#[derive(Deserialize)]
struct NewLoan {
    book: u64,
    member: u64,
}

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::post().to(lend))
        .route("/{id}", web::get().to(get_loan))
        .route("/{id}/return", web::post().to(give_back));
}

async fn lend(library: web::Data<Library>, body: web::Json<NewLoan>) -> HttpResponse {
    let mut catalog = library.catalog.lock().unwrap();
    let members = library.members.lock().unwrap();
    let mut loans = library.loans.lock().unwrap();
    match Loans::lend(&mut loans, &mut catalog, &members, BookId(body.book), MemberId(body.member)) {
        Some(loan) => HttpResponse::Created().json(loan),
        None => HttpResponse::Conflict().finish(),
    }
}

async fn get_loan(library: web::Data<Library>, id: web::Path<u64>) -> HttpResponse {
    match Loans::find(&library.loans.lock().unwrap(), *id) {
        Some(loan) => HttpResponse::Ok().json(loan),
        None => HttpResponse::NotFound().finish(),
    }
}

async fn give_back(library: web::Data<Library>, id: web::Path<u64>) -> HttpResponse {
    let mut catalog = library.catalog.lock().unwrap();
    match Loans::give_back(&mut library.loans.lock().unwrap(), &mut catalog, *id) {
        Some(loan) => HttpResponse::Ok().json(loan),
        None => HttpResponse::NotFound().finish(),
    }
}
