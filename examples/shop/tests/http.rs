//! End-to-end tests of the `shop` binary: each starts it on port 0 and talks HTTP to it.

mod support;

use futures_util::{SinkExt as _, StreamExt as _};
use hyper::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use support::{RawEcho, Server, get, run_until_exit, send};

fn start() -> Server {
    Server::start(env!("CARGO_BIN_EXE_shop"))
}

#[tokio::test]
async fn seeded_payment_is_served_as_json() {
    let server = start();

    let reply = get(&server.url("/payments/7")).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-served-by"), Some("shop"));
    // Order 7 is two dishes of 8.00 + 7 * 0.37 EUR plus 3.00 EUR delivery; 7 % 3 == 1 is a wallet.
    assert_eq!(
        reply.json(),
        json!({"id": 7, "order_id": 7, "amount": {"cents": 2418, "currency": "EUR"},
               "status": "captured", "method": "wallet"})
    );
    let text = String::from_utf8_lossy(&reply.body);
    assert!(
        text.starts_with(r#"{"id":7,"order_id":7,"amount":{"cents""#),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_ids_and_paths_are_json_404s() {
    let server = start();

    for path in [
        "/payments/101",
        "/payments/abc",
        "/orders/999",
        "/members/11",
        "/coupons/NOPE",
        "/no/such/route",
    ] {
        let reply = get(&server.url(path)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.header("x-served-by"), Some("shop"), "{path}");
        assert!(reply.json()["error"].is_string(), "{path}");
    }
}

#[tokio::test]
async fn placing_an_order_charges_it() {
    let server = start();
    let new_order = json!({
        "member_id": 1, "restaurant": "Pho Saigon", "method": "card",
        "lines": [{"item": "Pho bo", "quantity": 2, "unit_price": {"cents": 1150, "currency": "EUR"}}]
    });

    let placed = send(Method::POST, &server.url("/orders"), new_order.to_string()).await;

    assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.body);
    let placed = placed.json();
    assert_eq!(placed["order"]["status"], "paid");
    assert_eq!(placed["order"]["total"]["cents"], 2 * 1150 + 300);
    assert_eq!(placed["payment"]["status"], "captured");
    assert_eq!(placed["payment"]["amount"], placed["order"]["total"]);
    let order_id = placed["order"]["id"].as_u64().expect("numeric order id");
    let payment_id = placed["payment"]["id"]
        .as_u64()
        .expect("numeric payment id");
    assert_eq!(placed["order"]["payment_id"], payment_id);

    let order = get(&server.url(&format!("/orders/{order_id}")))
        .await
        .json();
    assert_eq!(order, placed["order"]);
    let payment = get(&server.url(&format!("/payments/{payment_id}")))
        .await
        .json();
    assert_eq!(payment, placed["payment"]);
    let home = get(&server.url("/display/home")).await.json();
    assert_eq!(home["order_count"], 101);
    assert_eq!(
        home["recent_orders"][0]["title"],
        "Pho Saigon for Ada Lovelace"
    );
}

#[tokio::test]
async fn orders_are_validated() {
    let server = start();

    let bad_json = send(Method::POST, &server.url("/orders"), "{not json").await;
    let unknown_member = send(
        Method::POST,
        &server.url("/orders"),
        json!({"member_id": 99, "restaurant": "X", "method": "card",
               "lines": [{"item": "Y", "quantity": 1, "unit_price": {"cents": 100, "currency": "EUR"}}]})
        .to_string(),
    )
    .await;
    let too_expensive = send(
        Method::POST,
        &server.url("/orders"),
        json!({"member_id": 2, "restaurant": "X", "method": "card",
               "lines": [{"item": "Caviar", "quantity": 1, "unit_price": {"cents": 50_000, "currency": "EUR"}}]})
        .to_string(),
    )
    .await;

    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    assert!(
        bad_json.json()["error"]
            .as_str()
            .is_some_and(|error| error.contains("invalid JSON"))
    );
    assert_eq!(unknown_member.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown_member.json()["error"], "unknown member 99");
    assert_eq!(too_expensive.status, StatusCode::PAYMENT_REQUIRED);
    let declined = too_expensive.json();
    assert_eq!(declined["payment"]["status"], "declined");
    assert_eq!(declined["order"]["status"], "cancelled");
}

#[tokio::test]
async fn a_payment_is_refunded_once() {
    let server = start();

    let first = send(Method::POST, &server.url("/payments/3/refund"), "").await;
    let second = send(Method::POST, &server.url("/payments/3/refund"), "").await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["status"], "refunded");
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(
        second.json()["error"],
        "payment 3 is refunded, only captured payments can be refunded"
    );
    assert_eq!(
        get(&server.url("/orders/3")).await.json()["status"],
        "refunded"
    );
}

#[tokio::test]
async fn member_profile_lists_usable_coupons() {
    let server = start();

    // Member 2 is silver: the gold and VIP coupons are not theirs to use.
    let profile = get(&server.url("/members/2")).await.json();
    let coupons = get(&server.url("/members/2/coupons")).await.json();
    let vip = get(&server.url("/coupons/VIP20")).await.json();

    assert_eq!(profile["member"]["name"], "Grace Hopper");
    assert_eq!(
        profile["badge"],
        json!({"label": "Silver", "tone": "neutral"})
    );
    let codes: Vec<&str> = coupons
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|coupon| coupon["code"].as_str())
        .collect();
    assert_eq!(codes, ["FREESHIP", "WELCOME-2"]);
    assert_eq!(profile["coupons"], coupons);
    assert_eq!(vip["min_grade"], "vip");
}

#[tokio::test]
async fn bytes_streams_the_pattern_chunked() {
    let server = start();
    let n = 1_000_003;

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
    let too_many = get(&server.url("/bytes?n=200000001")).await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn echo_returns_the_body() {
    let server = start();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();

    let reply = send(Method::POST, &server.url("/echo"), body.clone()).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), body.len());
    assert!(reply.body == body);
}

#[tokio::test]
async fn echo_streams_before_the_body_ends() {
    let server = start();
    let mut echo = RawEcho::start(&server.addr).await;

    echo.send_chunk("first-chunk").await;
    // The first chunk comes back while the request body is still open.
    let so_far = echo.read_until("first-chunk").await;
    echo.send_chunk("second-chunk").await;
    echo.finish().await;
    let all = echo.read_until("\r\n0\r\n\r\n").await;

    assert!(so_far.starts_with("HTTP/1.1 200 OK"), "{so_far}");
    assert!(all.contains("second-chunk"), "{all}");
}

#[tokio::test]
async fn slow_waits_and_caps() {
    let server = start();

    let reply = get(&server.url("/slow?ms=50")).await;
    let bad = get(&server.url("/slow?ms=soon")).await;

    assert_eq!(reply.json(), json!({"slept_ms": 50}));
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn websocket_echoes_messages() {
    let server = start();

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .expect("websocket handshake");
    socket.send(Message::text("hello")).await.expect("sent");
    let text = socket.next().await.expect("a reply").expect("readable");
    socket
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("sent");
    let binary = socket.next().await.expect("a reply").expect("readable");
    socket.close(None).await.expect("closed");

    assert_eq!(text, Message::text("hello"));
    assert_eq!(binary, Message::binary(vec![1u8, 2, 3]));
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

    assert_eq!(reply.json(), json!({"status": "ok", "service": "shop"}));
}

#[test]
fn an_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("bound address").to_string();

    let (status, stderr) = run_until_exit(env!("CARGO_BIN_EXE_shop"), &addr);

    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot listen on {addr}")),
        "{stderr}"
    );
}
