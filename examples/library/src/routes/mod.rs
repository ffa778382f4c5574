//! The HTTP wiring: one module of handlers per domain.

pub mod catalog;
pub mod loans;
pub mod members;

use actix_web::{HttpResponse, get};

#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}
