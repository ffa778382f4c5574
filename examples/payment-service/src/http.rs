//! The JSON HTTP API: the payment routes the shop used to serve, same paths, same documents.

use std::future::Future;

use axum::extract::{Path, State};
use axum::http::header::HeaderName;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::diagnostics;
use crate::faults::{self, Faults};
use crate::model::{Payment, PaymentBook, PaymentId, RefundError};

/// Name of the header that tells which program answered.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");

/// The router with every route, answering from `book`. The payment routes obey the faults set
/// with `PUT /_faults` ([`faults`]).
pub fn app(book: PaymentBook) -> Router {
    let faults = Faults::default();
    let payments = Router::new()
        .route("/payments/{id}", get(get_payment))
        .route("/payments/{id}/refund", post(refund_payment))
        .with_state(book)
        .layer(axum::middleware::from_fn_with_state(
            faults.clone(),
            faults::inject,
        ));
    let fault_control = Router::new()
        .route(
            "/_faults",
            put(faults::put).get(faults::show).delete(faults::clear),
        )
        .with_state(faults);
    Router::new()
        .merge(payments)
        .merge(fault_control)
        .route("/healthz", get(diagnostics::healthz))
        .route("/slow", get(diagnostics::slow))
        .route("/echo", post(diagnostics::echo))
        .route("/bytes", get(diagnostics::bytes))
        .fallback(diagnostics::not_found)
        .layer(axum::middleware::map_response(served_by))
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    book: PaymentBook,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(book))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn served_by(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(SERVED_BY, HeaderValue::from_static("payment-service"));
    response
}

/// An error answered as `{"error": "<message>"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<RefundError> for ApiError {
    fn from(err: RefundError) -> ApiError {
        let status = match err {
            RefundError::UnknownPayment(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        };
        ApiError {
            status,
            message: err.to_string(),
        }
    }
}

/// Numeric ids in paths: anything else names no payment, hence 404 rather than 400.
fn parse_id(raw: &str) -> Result<PaymentId, ApiError> {
    raw.parse()
        .map(PaymentId)
        .map_err(|_| ApiError::not_found(format!("unknown payment `{raw}`")))
}

async fn get_payment(
    State(book): State<PaymentBook>,
    Path(raw): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    let id = parse_id(&raw)?;
    book.find(id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown payment {}", id.0)))
}

async fn refund_payment(
    State(book): State<PaymentBook>,
    Path(raw): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    let id = parse_id(&raw)?;
    // The shop marks its order refunded itself; telling it is the job of the proxy migration,
    // not of this service.
    Ok(Json(book.refund(id)?))
}
