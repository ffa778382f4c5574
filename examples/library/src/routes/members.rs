use actix_web::{HttpResponse, web};

use crate::members::MemberId;
use crate::state::Library;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/members/{id}").route(web::get().to(get_member)));
}

async fn get_member(library: web::Data<Library>, id: web::Path<u64>) -> HttpResponse {
    match library.members.lock().unwrap().find(MemberId(*id)) {
        Some(member) => HttpResponse::Ok().json(member),
        None => HttpResponse::NotFound().finish(),
    }
}
