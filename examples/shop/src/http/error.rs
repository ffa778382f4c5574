//! Errors as JSON responses: `{"error": "<message>"}` with a status code chosen by cause.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::coupon::CouponError;
use crate::order::OrderError;
use crate::payment::PaymentError;

/// An error a handler answers with.
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

    /// 409 with `message`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<PaymentError> for ApiError {
    fn from(err: PaymentError) -> ApiError {
        match err {
            PaymentError::UnknownOrder(_) | PaymentError::UnknownPayment(_) => {
                ApiError::not_found(err.to_string())
            }
            _ => ApiError::conflict(err.to_string()),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(err: OrderError) -> ApiError {
        match err {
            OrderError::Payment(err) => err.into(),
            OrderError::MemberSuspended(_) => ApiError::conflict(err.to_string()),
            _ => ApiError::bad_request(err.to_string()),
        }
    }
}

impl From<CouponError> for ApiError {
    fn from(err: CouponError) -> ApiError {
        match err {
            CouponError::Unknown(_) => ApiError::not_found(err.to_string()),
            CouponError::UnknownMember(_) => ApiError::bad_request(err.to_string()),
            _ => ApiError::conflict(err.to_string()),
        }
    }
}
