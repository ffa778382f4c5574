//! `library`: a lending library served by actix-web. The domains are [`catalog`] (books),
//! [`members`] (who may borrow) and [`loans`] (who has which book), which needs the other two;
//! [`routes`] is the HTTP wiring.

mod catalog;
mod loans;
mod members;
mod routes;
mod state;

use actix_web::{App, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let state = web::Data::new(state::Library::seeded());
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(routes::healthz)
            .service(
                web::scope("/api")
                    .configure(routes::catalog::config)
                    .configure(routes::members::config)
                    .service(web::scope("/loans").configure(routes::loans::config)),
            )
    })
    .bind(("127.0.0.1", 8090))?
    .run()
    .await
}
