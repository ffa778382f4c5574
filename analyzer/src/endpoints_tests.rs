//! Endpoint discovery on inline fixtures, one per router form: each test lists the endpoints
//! found (method, path, handler, line, owner) and what they need.

use crate::tests::write_fixture;
use crate::{Options, analyze};

#[track_caller]
fn check(fixture: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    write_fixture(dir.path(), fixture);
    let report = analyze(dir.path(), &Options::new()).expect("analysis");
    let mut out = String::new();
    for endpoint in &report.endpoints {
        let file = endpoint
            .location
            .file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push_str(&format!(
            "{} {} -> {} [{} {file}:{}] needs={:?} owner={}\n",
            endpoint.method,
            endpoint.path,
            endpoint.handler,
            endpoint.framework,
            endpoint.location.line,
            endpoint.needs,
            endpoint.owner.as_deref().unwrap_or("-"),
        ));
    }
    out
}

/// A shop in three domains whose handlers the router fixtures below share: `payment` and
/// `order` call each other, `money` is the kernel both use.
const DOMAINS: &str = r#"
//- /payment.rs
use crate::money::Money;
use crate::order::OrderId;
pub struct PaymentService;
impl PaymentService {
    pub fn new() -> Self { PaymentService }
    pub fn refund(&self, id: u64) -> Money { let _ = OrderId(id); Money(0) }
}
pub struct PaymentId(pub u64);
//- /order.rs
use crate::money::Money;
use crate::payment::PaymentService;
pub struct OrderId(pub u64);
pub struct OrderService;
impl OrderService {
    pub fn new() -> Self { OrderService }
    pub fn place(&self) -> Money { PaymentService::new().refund(1) }
}
//- /money.rs
pub struct Money(pub u64);
pub fn zero() -> Money { Money(0) }
//- /coupon.rs
use crate::money::Money;
use crate::order::OrderId;
pub fn discount(_: OrderId) -> Money { crate::money::zero() }
"#;

#[test]
fn axum_routes_nest_merge_method_routers_and_params() {
    insta::assert_snapshot!(check(&format!(
        "{}{DOMAINS}",
        r#"
//- /lib.rs
mod api;
mod coupon;
mod money;
mod order;
mod payment;
use axum::Router;
use axum::routing::get;
pub fn app() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .nest("/api", api::router())
        .merge(admin())
        .merge(close_together())
        .nest_service("/assets", ServeDir::new("assets"))
}
fn close_together() -> Router {
    async fn handler() {}
    route("/close", get(handler).post_service(ServeDir::new("x")))
}
fn route(path: &str, method_router: MethodRouter) -> Router {
    Router::new().route(path, method_router)
}
#[cfg(test)]
mod tests {
    #[test]
    fn in_a_test_module() {
        let _ = axum::Router::new().route("/test-only", axum::routing::get(|| async {}));
    }
}
#[tokio::test]
async fn in_a_test_function() {
    let _ = Router::new().route("/test-fn", get(|| async {}));
}
fn admin() -> Router {
    Router::new().route("/admin/:name", axum::routing::delete(api::refund))
}
//- /api.rs
use axum::Router;
use axum::routing::{get, on, post, MethodFilter};
use crate::order::OrderService;
use crate::payment::{PaymentId, PaymentService};
pub fn router() -> Router {
    let payments = Router::new()
        .route("/{id}", get(get_payment).put(get_payment))
        .route("/{id}/refund", on(MethodFilter::POST, refund));
    Router::new()
        .nest("/payments", payments)
        .route("/orders", post(place_order))
        .route("/files/*path", get(files))
}
async fn get_payment() -> String { let _ = PaymentId(1); String::new() }
pub async fn refund() { PaymentService::new().refund(1); }
async fn place_order() { OrderService::new().place(); PaymentService::new(); }
async fn files() {}
"#
    )));
}

#[test]
fn actix_attributes_scopes_resources_and_configure() {
    insta::assert_snapshot!(check(&format!(
        "{}{DOMAINS}",
        r#"
//- /lib.rs
mod coupon;
mod handlers;
mod money;
mod order;
mod payment;
use actix_web::{web, App, HttpServer};
pub async fn run() {
    HttpServer::new(|| {
        App::new()
            .service(handlers::index)
            .service(
                web::scope("/api/v1")
                    .service(handlers::get_payment)
                    .service(web::resource("/orders").route(web::post().to(handlers::place)).route(web::get().to(handlers::list)))
                    .route("/coupons/{code:[A-Z]+}", web::get().to(handlers::coupon))
                    .configure(|cfg| handlers::config(cfg)),
            )
            .service(web::scope("/users").service(handlers::login).service(handlers::register))
            .service(actix_files::Files::new("/static", "./static"))
    });
}
//- /handlers.rs
use actix_web::{get, route, web, HttpResponse};
use crate::payment::{PaymentId, PaymentService};
#[get("/")]
pub async fn index() -> HttpResponse { HttpResponse::Ok().finish() }
#[actix_web::get("/payments/{id}")]
pub async fn get_payment() -> HttpResponse { let _ = PaymentId(1); HttpResponse::Ok().finish() }
#[route("/payments/{id}/refund", method = "POST", method = "PUT")]
pub async fn refund() -> HttpResponse { PaymentService::new().refund(1); HttpResponse::Ok().finish() }
pub async fn place() -> HttpResponse { crate::order::OrderService::new().place(); HttpResponse::Ok().finish() }
pub async fn list() -> HttpResponse { HttpResponse::Ok().finish() }
#[post("login")]
pub async fn login() -> HttpResponse { HttpResponse::Ok().finish() }
#[post("")]
pub async fn register() -> HttpResponse { HttpResponse::Ok().finish() }
pub async fn coupon() -> HttpResponse { crate::coupon::discount(crate::order::OrderId(1)); HttpResponse::Ok().finish() }
pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(refund);
    cfg.service(web::scope("/static").route("/{tail:.*}", web::get().to(list)));
}
"#
    )));
}

#[test]
fn rocket_attributes_routes_and_mount() {
    insta::assert_snapshot!(check(&format!(
        "{}{DOMAINS}",
        r#"
//- /lib.rs
mod coupon;
mod money;
mod order;
mod payment;
mod web;
#[rocket::launch]
fn rocket() -> _ {
    rocket::build()
        .mount("/", rocket::routes![web::index])
        .mount("/payments", routes![web::get_payment, web::refund])
}
//- /web.rs
use crate::payment::{PaymentId, PaymentService};
#[get("/")]
pub fn index() -> &'static str { "hi" }
#[get("/<id>?<verbose>")]
pub fn get_payment(id: u64, verbose: bool) -> String { let _ = PaymentId(id); String::new() }
#[route(POST, uri = "/<id>/refund")]
pub fn refund(id: u64) { PaymentService::new().refund(id); }
#[get("/files/<path..>")]
pub fn files(path: std::path::PathBuf) {}
"#
    )));
}

#[test]
fn normalizes_every_path_syntax() {
    use super::normalize_path;
    let cases = [
        ("/users/:id", "/users/{id}"),
        ("/files/*rest", "/files/{*rest}"),
        ("/a/<id>/<path..>", "/a/{id}/{*path}"),
        ("/c/{code:[A-Z]+}", "/c/{code}"),
        ("/s/{tail:.*}", "/s/{*tail}"),
        ("/q?<page>", "/q"),
        ("", "/"),
        ("/trailing/", "/trailing/"),
    ];
    for (written, normal) in cases {
        assert_eq!(normalize_path(written), normal, "{written}");
    }
}
