//! Routes that exist for operating and testing the server rather than for payments:
//! health, a slow answer, streaming echo and a streamed byte source.
//!
//! The strangler proxy's tests use them to check timeouts and that large bodies stream through
//! without being buffered. `shop` has the same routes, plus a WebSocket echo.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use serde_json::{Value, json};

use crate::http::ApiError;

/// Longest wait `/slow` accepts, in milliseconds; larger values are capped.
pub const MAX_SLOW_MS: u64 = 30_000;

/// Largest body `/bytes` sends.
pub const MAX_BYTES: u64 = 200_000_000;

/// `/bytes` sends byte `i` as `i % 251`: a prime period makes shifted or dropped chunks visible.
const PATTERN_PERIOD: usize = 251;

/// One chunk: a whole number of periods, so every chunk can start at offset 0 of the pattern.
const CHUNK_LEN: usize = PATTERN_PERIOD * 256;

static CHUNK: LazyLock<Bytes> = LazyLock::new(|| {
    (0..CHUNK_LEN)
        .map(|offset| (offset % PATTERN_PERIOD) as u8)
        .collect::<Vec<u8>>()
        .into()
});

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok", "service": "payment-service" }))
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

fn number_param(params: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    let raw = params
        .get(name)
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter `{name}`")))?;
    raw.parse().map_err(|_| {
        ApiError::bad_request(format!("query parameter `{name}` is not a number: `{raw}`"))
    })
}

/// `GET /slow?ms=N`: answers after N milliseconds, at most [`MAX_SLOW_MS`].
pub(crate) async fn slow(
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let ms = number_param(&params, "ms")?.min(MAX_SLOW_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(Json(json!({ "slept_ms": ms })))
}

/// `POST /echo`: the request body, streamed back frame by frame as it arrives.
pub(crate) async fn echo(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// `GET /bytes?n=N`: N pattern bytes, generated chunk by chunk without holding N in memory.
pub(crate) async fn bytes(
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let n = number_param(&params, "n")?;
    if n > MAX_BYTES {
        return Err(ApiError::bad_request(format!(
            "n = {n} is above the limit of {MAX_BYTES} bytes"
        )));
    }
    let mut response = Response::new(Body::new(PatternBody { remaining: n }));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// A body of `remaining` pattern bytes. Its size hint stays open so the response is chunked.
struct PatternBody {
    remaining: u64,
}

impl http_body::Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len =
            usize::try_from(self.remaining).map_or(CHUNK_LEN, |remaining| remaining.min(CHUNK_LEN));
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(CHUNK.slice(..len)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        // Deliberately inexact: an exact hint would turn into content-length.
        SizeHint::new()
    }
}
