//! The JSON HTTP API: one route group per domain, plus test helpers for the proxy's tests.
//!
//! This module is wiring. It may call into every domain module, and none of them calls into it.
//! [`app`] builds the router (handy for in-process tests), [`serve`] runs it on a listener until
//! the shutdown future resolves.

mod api;
pub mod diagnostics;
mod error;

use std::future::Future;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::HeaderName;
use axum::response::Response;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::state::Shop;

pub use error::ApiError;

/// Name of the header that tells which program answered.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");

/// The router with every route, answering from `shop`.
pub fn app(shop: Shop) -> Router {
    Router::new()
        .route("/healthz", get(diagnostics::healthz))
        .route("/orders", get(api::list_orders).post(api::place_order))
        .route("/orders/{id}", get(api::get_order))
        .route("/payments/{id}", get(api::get_payment))
        .route("/payments/{id}/refund", post(api::refund_payment))
        .route("/members/{id}", get(api::get_member))
        .route("/members/{id}/coupons", get(api::member_coupons))
        .route("/coupons/{code}", get(api::get_coupon))
        .route("/coupons/{code}/redeem", post(api::redeem_coupon))
        .route("/display/home", get(api::home))
        .route("/slow", get(diagnostics::slow))
        .route("/echo", post(diagnostics::echo))
        .route("/bytes", get(diagnostics::bytes))
        .route("/ws", get(diagnostics::websocket_echo))
        .fallback(diagnostics::not_found)
        .with_state(shop)
        .layer(axum::middleware::map_response(served_by))
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    shop: Shop,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(shop))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn served_by(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(SERVED_BY, HeaderValue::from_static("shop"));
    response
}
