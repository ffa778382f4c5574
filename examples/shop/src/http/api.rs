//! Handlers of the domain routes. Each builds the service it needs from the shared [`Shop`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiError;
use crate::coupon::{Coupon, CouponCode};
use crate::display::{HomePage, home_page};
use crate::member::MemberId;
use crate::member::profile::{Profile, profile, usable_coupons};
use crate::order::{NewOrder, Order, OrderId, OrderService, OrderStatus};
use crate::payment::{Payment, PaymentId, PaymentService, PaymentStatus};
use crate::state::Shop;

/// Numeric ids in paths: anything else names no entity, hence 404 rather than 400.
fn parse_id(kind: &str, raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("unknown {kind} `{raw}`")))
}

/// Parses a JSON request body; any syntax or shape error is a 400 naming the problem.
fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("invalid JSON body: {err}")))
}

pub(super) async fn list_orders(State(shop): State<Shop>) -> Json<Vec<Order>> {
    Json(shop.orders.all())
}

pub(super) async fn get_order(
    State(shop): State<Shop>,
    Path(raw): Path<String>,
) -> Result<Json<Order>, ApiError> {
    let id = OrderId(parse_id("order", &raw)?);
    shop.orders
        .find(id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown order {}", id.0)))
}

pub(super) async fn place_order(
    State(shop): State<Shop>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: NewOrder = parse_json(&body)?;
    let payments = PaymentService::new(shop.payments.clone(), shop.orders.clone());
    let mut service = OrderService::new(shop.orders.clone(), shop.members.clone(), payments);
    let placed = service.place(new)?;
    let status = match placed.payment.status {
        PaymentStatus::Captured => StatusCode::CREATED,
        PaymentStatus::Declined | PaymentStatus::Refunded => StatusCode::PAYMENT_REQUIRED,
    };
    tracing::info!(order = placed.order.id.0, payment = placed.payment.id.0, %status, "order placed");
    Ok((status, Json(placed)).into_response())
}

pub(super) async fn get_payment(
    State(shop): State<Shop>,
    Path(raw): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    let id = PaymentId(parse_id("payment", &raw)?);
    shop.payments
        .find(id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown payment {}", id.0)))
}

pub(super) async fn refund_payment(
    State(shop): State<Shop>,
    Path(raw): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    let id = PaymentId(parse_id("payment", &raw)?);
    let mut service = PaymentService::new(shop.payments.clone(), shop.orders.clone());
    let payment = service.refund(id)?;
    // Payment only reads orders; moving the order along is the caller's job.
    shop.orders
        .set_status(payment.order_id, OrderStatus::Refunded);
    Ok(Json(payment))
}

pub(super) async fn get_member(
    State(shop): State<Shop>,
    Path(raw): Path<String>,
) -> Result<Json<Profile>, ApiError> {
    let id = MemberId(parse_id("member", &raw)?);
    profile(&shop.members, &shop.coupons, id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown member {}", id.0)))
}

pub(super) async fn member_coupons(
    State(shop): State<Shop>,
    Path(raw): Path<String>,
) -> Result<Json<Vec<Coupon>>, ApiError> {
    let id = MemberId(parse_id("member", &raw)?);
    let member = shop
        .members
        .find(id)
        .ok_or_else(|| ApiError::not_found(format!("unknown member {}", id.0)))?;
    Ok(Json(usable_coupons(&shop.coupons, &member)))
}

pub(super) async fn get_coupon(
    State(shop): State<Shop>,
    Path(code): Path<String>,
) -> Result<Json<Coupon>, ApiError> {
    let code = CouponCode(code);
    shop.coupons
        .find(&code)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown coupon `{}`", code.0)))
}

#[derive(Debug, Deserialize)]
struct Redeem {
    member_id: MemberId,
}

pub(super) async fn redeem_coupon(
    State(shop): State<Shop>,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<Json<Coupon>, ApiError> {
    let redeem: Redeem = parse_json(&body)?;
    let coupon = shop
        .coupons
        .redeem(&CouponCode(code), &shop.members, redeem.member_id)?;
    Ok(Json(coupon))
}

pub(super) async fn home(State(shop): State<Shop>) -> Json<HomePage> {
    Json(home_page(&shop.orders))
}
