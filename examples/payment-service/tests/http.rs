//! End-to-end tests of the `payment-service` binary, and its agreement with the shop's data.

// The same process harness as the shop's tests: one copy, so a fix to it reaches both.
#[path = "../../shop/tests/support/mod.rs"]
mod support;

use hyper::{Method, StatusCode};
use serde_json::json;

use support::{RawEcho, Server, get, run_until_exit, send};

fn start() -> Server {
    Server::start(env!("CARGO_BIN_EXE_payment-service"))
}

#[tokio::test]
async fn seeded_payment_is_the_shops_document_with_other_key_order() {
    let server = start();

    let reply = get(&server.url("/payments/7")).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-served-by"), Some("payment-service"));
    assert_eq!(
        reply.json(),
        json!({"id": 7, "order_id": 7, "amount": {"cents": 2418, "currency": "EUR"},
               "status": "captured", "method": "wallet"})
    );
    let text = String::from_utf8_lossy(&reply.body);
    assert_eq!(
        text,
        r#"{"method":"wallet","status":"captured","amount":{"currency":"EUR","cents":2418},"order_id":7,"id":7}"#
    );
}

/// The proxy may send `/payments/{id}` to either program: they must agree on every seeded payment.
#[test]
fn every_seeded_payment_matches_the_shop() {
    let shop = shop::Shop::seeded();
    let book = payment_service::PaymentBook::seeded();

    for id in 1..=payment_service::model::SEEDED_PAYMENTS {
        let in_shop = shop
            .payments
            .find(shop::PaymentId(id))
            .map(|payment| serde_json::to_value(payment).expect("serializable"));
        let in_service = book
            .find(payment_service::model::PaymentId(id))
            .map(|payment| serde_json::to_value(payment).expect("serializable"));
        assert!(in_shop.is_some(), "shop has payment {id}");
        assert_eq!(in_shop, in_service, "payment {id}");
    }
    assert_eq!(book.find(payment_service::model::PaymentId(101)), None);
}

#[tokio::test]
async fn unknown_ids_and_paths_are_json_404s() {
    let server = start();

    for path in [
        "/payments/101",
        "/payments/abc",
        "/orders/1",
        "/no/such/route",
    ] {
        let reply = get(&server.url(path)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            reply.header("x-served-by"),
            Some("payment-service"),
            "{path}"
        );
        assert!(reply.json()["error"].is_string(), "{path}");
    }
}

#[tokio::test]
async fn a_payment_is_refunded_once() {
    let server = start();

    let first = send(Method::POST, &server.url("/payments/3/refund"), "").await;
    let second = send(Method::POST, &server.url("/payments/3/refund"), "").await;
    let after = get(&server.url("/payments/3")).await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["status"], "refunded");
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(
        second.json()["error"],
        "payment 3 is refunded, only captured payments can be refunded"
    );
    assert_eq!(after.json()["status"], "refunded");
}

#[tokio::test]
async fn bytes_streams_the_pattern_chunked() {
    let server = start();
    let n = 300_007;

    let reply = get(&server.url(&format!("/bytes?n={n}"))).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
    assert_eq!(reply.body.len(), n);
    assert!(
        reply
            .body
            .iter()
            .enumerate()
            .all(|(offset, byte)| usize::from(*byte) == offset % 251)
    );
}

#[tokio::test]
async fn echo_returns_the_body() {
    let server = start();
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 % 256) as u8).collect();

    let reply = send(Method::POST, &server.url("/echo"), body.clone()).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == body);
}

#[tokio::test]
async fn slow_waits() {
    let server = start();

    let reply = get(&server.url("/slow?ms=20")).await;

    assert_eq!(reply.json(), json!({"slept_ms": 20}));
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    let mut server = start();
    let mut echo = RawEcho::start(&server.addr).await;
    echo.send_chunk("before").await;
    echo.read_until("before").await;

    server.terminate();
    echo.send_chunk("after").await;
    echo.finish().await;
    let all = echo.read_until("\r\n0\r\n\r\n").await;
    let status = server.wait();

    assert!(all.contains("after"), "{all}");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn healthz_answers() {
    let server = start();

    let reply = get(&server.url("/healthz")).await;

    assert_eq!(
        reply.json(),
        json!({"status": "ok", "service": "payment-service"})
    );
}

#[test]
fn an_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("bound address").to_string();

    let (status, stderr) = run_until_exit(env!("CARGO_BIN_EXE_payment-service"), &addr);

    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot listen on {addr}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn faults_fail_the_payment_routes_at_the_rate_set_until_cleared() {
    let server = start();

    let set = send(
        Method::PUT,
        &server.url("/_faults"),
        r#"{"error_rate": 0.5, "status": 503}"#,
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(
        get(&server.url("/_faults")).await.json(),
        json!({"error_rate": 0.5, "status": 503, "delay_ms": 0})
    );

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(get(&server.url("/payments/7")).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 503, 200, 503, 200, 503]);
    // Health and the other diagnostics are not affected.
    assert_eq!(get(&server.url("/healthz")).await.status, StatusCode::OK);

    let cleared = send(Method::DELETE, &server.url("/_faults"), "").await;
    assert_eq!(cleared.status, StatusCode::OK);
    for _ in 0..4 {
        assert_eq!(get(&server.url("/payments/7")).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn bad_faults_are_refused_and_change_nothing() {
    let server = start();

    for body in [
        r#"{"error_rate": 2}"#,
        r#"{"status": 200}"#,
        r#"{"eror_rate": 1}"#,
        "not json",
    ] {
        let reply = send(Method::PUT, &server.url("/_faults"), body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            reply.json()["error"]
                .as_str()
                .is_some_and(|message| message.contains("faults") || message.contains('`')),
            "{body}: {:?}",
            reply.json()
        );
    }
    assert_eq!(get(&server.url("/payments/7")).await.status, StatusCode::OK);
}
