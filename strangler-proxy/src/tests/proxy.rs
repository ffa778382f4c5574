//! Proxying over real TCP: routing by flag, headers, errors, limits, streaming, upgrades, h2c,
//! drain.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::decision::flags::{NoFlags, StaticFlags};

use super::support::{Repeat, config, get, send, start, upstream};

fn two_upstreams(monolith: &str, service: &str, extra: &str) -> String {
    format!(
        "[upstreams.monolith]\naddresses = [\"{monolith}\"]\n[upstreams.payment-service]\naddresses = [\"{service}\"]\n\
         [[routes]]\nname = \"payments\"\nmatch = {{ pattern = \"/payments/**\" }}\nservice = \"payment-service\"\nflag = \"payments-service\"\n{extra}"
    )
}

#[tokio::test]
async fn everything_goes_to_the_monolith_without_routes() {
    let monolith = upstream("monolith").await;
    let proxy = start(
        config(&format!(
            "[upstreams.monolith]\naddresses = [\"{}\"]\n",
            monolith.url()
        )),
        Arc::new(NoFlags),
    )
    .await;
    let reply = get(&proxy.url("/orders/7?x=1"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.upstream(), "monolith");
    assert!(
        reply.body.starts_with("monolith\nGET /orders/7?x=1\n"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn route_follows_its_flag() {
    let monolith = upstream("monolith").await;
    let service = upstream("payment-service").await;
    let text = two_upstreams(&monolith.url(), &service.url(), "");
    let off = start(config(&text), Arc::new(NoFlags)).await;
    assert_eq!(
        get(&off.url("/payments/1"), &[]).await.upstream(),
        "monolith"
    );
    let on = start(
        config(&text),
        Arc::new(StaticFlags {
            enabled: vec!["payments-service".to_owned()],
        }),
    )
    .await;
    let reply = get(&on.url("/payments/1"), &[]).await;
    assert_eq!(reply.upstream(), "payment-service");
    assert!(reply.body.starts_with("payment-service\n"));
    assert_eq!(get(&on.url("/orders/1"), &[]).await.upstream(), "monolith");
}

#[tokio::test]
async fn sticky_rollout_by_user_with_real_flags() {
    let monolith = upstream("monolith").await;
    let service = upstream("payment-service").await;
    let features = r#"{"version": 1, "features": [{"name": "payments-service", "enabled": true,
        "strategies": [{"name": "userWithId", "parameters": {"userIds": "alice,bob"}}]}]}"#;
    let features =
        feature_flags::parse_features(std::path::Path::new("flags.json"), features).unwrap();
    let flags = feature_flags::Flags::from_features(features);
    let proxy = start(
        config(&two_upstreams(&monolith.url(), &service.url(), "")),
        Arc::new(flags),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            get(&proxy.url("/payments/1"), &[("x-user-id", "alice")])
                .await
                .upstream(),
            "payment-service"
        );
        assert_eq!(
            get(&proxy.url("/payments/1"), &[("x-user-id", "carol")])
                .await
                .upstream(),
            "monolith"
        );
        assert_eq!(
            get(&proxy.url("/payments/1"), &[]).await.upstream(),
            "monolith"
        );
    }
}

#[tokio::test]
async fn forwarding_headers() {
    let monolith = upstream("monolith").await;
    let proxy = start(
        config(&format!(
            "[upstreams.monolith]\naddresses = [\"{}\"]\n",
            monolith.url()
        )),
        Arc::new(NoFlags),
    )
    .await;
    let reply = get(
        &proxy.url("/h"),
        &[
            ("host", "shop.example.com"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example.com"),
            ("connection", "x-secret, keep-alive"),
            ("x-secret", "hop"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic abc"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    assert_eq!(reply.seen("host"), Some("shop.example.com"));
    assert_eq!(
        reply.seen("x-forwarded-for"),
        Some("127.0.0.1"),
        "a client's own X-Forwarded-For is not believed"
    );
    assert_eq!(reply.seen("x-forwarded-proto"), Some("http"));
    assert_eq!(reply.seen("x-forwarded-host"), Some("shop.example.com"));
    assert_eq!(reply.seen("via"), Some("1.1 fig"));
    for name in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "via",
        "host",
    ] {
        let lines = reply
            .body
            .lines()
            .filter(|line| line.starts_with(&format!("{name}:")))
            .count();
        assert_eq!(lines, 1, "{name} sent {lines} times: {}", reply.body);
    }
    assert_eq!(reply.seen("x-end-to-end"), Some("kept"));
    for hop in ["x-secret", "keep-alive", "proxy-authorization"] {
        assert_eq!(reply.seen(hop), None, "{hop} must not be forwarded");
    }
    assert_eq!(reply.headers.get("via").unwrap(), "1.1 fig");
}

#[tokio::test]
async fn trusted_proxy_chain_is_extended() {
    let monolith = upstream("monolith").await;
    let text = format!(
        "[upstreams.monolith]\naddresses = [\"{}\"]\n[context]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        monolith.url()
    );
    let proxy = start(config(&text), Arc::new(NoFlags)).await;
    let reply = get(
        &proxy.url("/h"),
        &[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(reply.seen("x-forwarded-for"), Some("1.2.3.4, 127.0.0.1"));
    assert_eq!(reply.seen("x-forwarded-proto"), Some("https"));
}

#[tokio::test]
async fn upstream_header_name_and_off() {
    let monolith = upstream("monolith").await;
    let named = format!(
        "[server]\nupstream_header = \"x-served-by\"\n[upstreams.monolith]\naddresses = [\"{}\"]\n",
        monolith.url()
    );
    let proxy = start(config(&named), Arc::new(NoFlags)).await;
    let reply = get(&proxy.url("/"), &[]).await;
    assert_eq!(reply.headers.get("x-served-by").unwrap(), "monolith");
    assert!(reply.headers.get("x-fig-upstream").is_none());
    let off = format!(
        "[server]\nupstream_header = false\n[upstreams.monolith]\naddresses = [\"{}\"]\n",
        monolith.url()
    );
    let proxy = start(config(&off), Arc::new(NoFlags)).await;
    let reply = get(&proxy.url("/"), &[]).await;
    assert!(reply.headers.get("x-fig-upstream").is_none());
}

#[tokio::test]
async fn upstream_down_is_502_and_the_proxy_lives_on() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let monolith = upstream("monolith").await;
    let proxy = start(
        // Without the retry on the fallback, which would hide the failure (see tests/resilience.rs).
        config(&two_upstreams(
            &monolith.url(),
            &dead,
            "retry = { enabled = false }\n",
        )),
        Arc::new(StaticFlags {
            enabled: vec!["payments-service".to_owned()],
        }),
    )
    .await;
    let reply = get(&proxy.url("/payments/1"), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        reply.body,
        "502 Bad Gateway: cannot connect to upstream `payment-service`\n"
    );
    assert_eq!(reply.upstream(), "payment-service");
    assert_eq!(get(&proxy.url("/orders"), &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let monolith = upstream("monolith").await;
    let text = format!(
        "[timeouts]\nrequest = \"200ms\"\n[upstreams.monolith]\naddresses = [\"{}\"]\n",
        monolith.url()
    );
    let proxy = start(config(&text), Arc::new(NoFlags)).await;
    let reply = get(&proxy.url("/slow"), &[]).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        reply.body,
        "504 Gateway Timeout: upstream `monolith` did not answer in time\n"
    );
}

#[tokio::test]
async fn body_limit_is_413() {
    let monolith = upstream("monolith").await;
    let text = format!(
        "[limits]\nmax_body_size = \"1KiB\"\n[upstreams.monolith]\naddresses = [\"{}\"]\n",
        monolith.url()
    );
    let proxy = start(config(&text), Arc::new(NoFlags)).await;
    let small = send(
        Request::post(proxy.url("/echo"))
            .body(Full::from(vec![b'a'; 1000]))
            .unwrap(),
    )
    .await;
    assert_eq!((small.status, small.body.len()), (StatusCode::OK, 1000));
    let big = send(
        Request::post(proxy.url("/echo"))
            .body(Full::from(vec![b'a'; 2000]))
            .unwrap(),
    )
    .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A chunked body has no length up front: it is cut off when it passes the limit.
    let client = Client::builder(TokioExecutor::new()).build_http::<Repeat>();
    let chunked = Request::post(proxy.url("/echo"))
        .body(Repeat {
            remaining: 10_000,
            chunk: Bytes::from(vec![b'b'; 600]),
        })
        .unwrap();
    let response = client.request(chunked).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn header_limit_is_431() {
    let monolith = upstream("monolith").await;
    let text = format!(
        "[limits]\nmax_header_size = \"8KiB\"\n[upstreams.monolith]\naddresses = [\"{}\"]\n",
        monolith.url()
    );
    let proxy = start(config(&text), Arc::new(NoFlags)).await;
    let big = "v".repeat(20_000);
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn malformed_requests_do_not_hurt() {
    let monolith = upstream("monolith").await;
    let proxy = start(
        config(&format!(
            "[upstreams.monolith]\naddresses = [\"{}\"]\n",
            monolith.url()
        )),
        Arc::new(NoFlags),
    )
    .await;
    for garbage in [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nbad header\r\n\r\n",
        "\u{0}\u{1}\u{2}\r\n\r\n",
        "GET /x HTTP/9.9\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(garbage.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    }
    assert_eq!(get(&proxy.url("/"), &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let monolith = upstream("monolith").await;
    let proxy = start(
        config(&format!(
            "[upstreams.monolith]\naddresses = [\"{}\"]\n",
            monolith.url()
        )),
        Arc::new(NoFlags),
    )
    .await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Repeat>();
    let total = 32 << 20;
    let upload = Request::post(proxy.url("/echo"))
        .body(Repeat {
            remaining: total,
            chunk: Bytes::from(vec![b'z'; 64 << 10]),
        })
        .unwrap();
    let response = client.request(upload).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = 0;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, Bytes::len);
    }
    assert_eq!(received, total);
    let download = get(&proxy.url(&format!("/bytes/{}", 4 << 20)), &[]).await;
    assert_eq!(download.body.len(), 4 << 20);
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    let monolith = upstream("monolith").await;
    let proxy = start(
        config(&format!(
            "[upstreams.monolith]\naddresses = [\"{}\"]\n",
            monolith.url()
        )),
        Arc::new(NoFlags),
    )
    .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for message in [&b"hello"[..], b"through the proxy"] {
        stream.write_all(message).await.unwrap();
        let mut echo = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo, message);
    }
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let monolith = upstream("monolith").await;
    let proxy = start(
        config(&format!(
            "[upstreams.monolith]\naddresses = [\"{}\"]\n",
            monolith.url()
        )),
        Arc::new(NoFlags),
    )
    .await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let response = client
        .request(
            Request::get(proxy.url("/h2"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(
        response.headers().get("x-fig-upstream").unwrap(),
        "monolith"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("monolith\nGET /h2\n"), "{body}");
    assert!(body.contains("via: 2.0 fig"), "{body}");
}

#[tokio::test]
async fn round_robin_spreads_and_skips_nothing() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let text = format!(
        "[upstreams.monolith]\naddresses = [\"{}\", \"{}\"]\n",
        a.url(),
        b.url()
    );
    let proxy = start(config(&text), Arc::new(NoFlags)).await;
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(
            get(&proxy.url("/"), &[])
                .await
                .body
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        );
    }
    names.sort();
    assert_eq!(names, ["a", "a", "b", "b"]);
}

#[tokio::test]
async fn health_checks_take_a_dead_address_out() {
    let live = upstream("live").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let text = format!(
        "[upstreams.monolith]\naddresses = [\"{dead}\", \"{}\"]\nhealth_check = {{ path = \"/\", interval = \"50ms\", timeout = \"200ms\" }}\n",
        live.url()
    );
    let proxy = start(config(&text), Arc::new(NoFlags)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..6 {
        assert_eq!(get(&proxy.url("/"), &[]).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let monolith = upstream("monolith").await;
    let mut proxy = start(
        config(&format!(
            "[upstreams.monolith]\naddresses = [\"{}\"]\n",
            monolith.url()
        )),
        Arc::new(NoFlags),
    )
    .await;
    let url = proxy.url("/slow");
    let slow = tokio::spawn(async move { get(&url, &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        monolith.hits.load(Ordering::SeqCst),
        1,
        "the slow request reached the upstream"
    );
    let served = proxy.shutdown();
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "monolith slow\n");
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(proxy.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let monolith = upstream("monolith").await;
    let proxy = start(
        config(&format!(
            "[upstreams.monolith]\naddresses = [\"{}\"]\n",
            monolith.url()
        )),
        Arc::new(NoFlags),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(get(&proxy.url("/"), &[]).await.status, StatusCode::OK);
    }
    let download = get(&proxy.url("/bytes/300000"), &[]).await;
    assert_eq!(download.body.len(), 300_000);
    assert_eq!(get(&proxy.url("/"), &[]).await.status, StatusCode::OK);
    assert_eq!(monolith.hits.load(Ordering::SeqCst), 7);
    assert_eq!(
        monolith.connections.load(Ordering::SeqCst),
        1,
        "one pooled connection served all"
    );
}

#[tokio::test]
async fn upstream_closing_each_connection_is_fine() {
    let monolith = super::support::upstream_with("monolith", false).await;
    let proxy = start(
        config(&format!(
            "[upstreams.monolith]\naddresses = [\"{}\"]\n",
            monolith.url()
        )),
        Arc::new(NoFlags),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(get(&proxy.url("/"), &[]).await.status, StatusCode::OK);
    }
    assert_eq!(monolith.connections.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn drain_stops_at_its_deadline() {
    let monolith = upstream("monolith").await;
    let text = format!(
        "[server]\ndrain_timeout = \"200ms\"\n[upstreams.monolith]\naddresses = [\"{}\"]\n",
        monolith.url()
    );
    let mut proxy = start(config(&text), Arc::new(NoFlags)).await;
    let url = proxy.url("/slow");
    let slow = tokio::spawn(async move {
        super::support::client()
            .request(Request::get(url).body(Full::default()).unwrap())
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let served = proxy.shutdown();
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "returned after {:?}",
        started.elapsed()
    );
    drop(slow);
}

#[tokio::test]
async fn access_log_has_one_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let monolith = upstream("monolith").await;
    let text = format!(
        "[server]\naccess_log = \"{}\"\n[upstreams.monolith]\naddresses = [\"{}\"]\n",
        log.display(),
        monolith.url()
    );
    let mut proxy = start(config(&text), Arc::new(NoFlags)).await;
    get(&proxy.url("/a?x=1"), &[]).await;
    get(&proxy.url("/b"), &[]).await;
    proxy.shutdown().await.unwrap().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(
            " 127.0.0.1 \"GET /a?x=1\" 200 route=_unmatched upstream=monolith reason=no-route ms="
        ),
        "{text}"
    );
    assert!(lines[1].contains("\"GET /b\" 200"), "{text}");
}

#[track_caller]
fn check_hop_by_hop(headers: &[(&str, &str)], expected_kept: &[&str]) {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    crate::http::framing::remove_hop_by_hop(&mut map);
    let mut kept: Vec<&str> = map.keys().map(http::HeaderName::as_str).collect();
    kept.sort_unstable();
    assert_eq!(kept, expected_kept);
}

#[test]
fn hop_by_hop_headers_are_removed() {
    check_hop_by_hop(&[("host", "a"), ("accept", "*/*")], &["accept", "host"]);
    check_hop_by_hop(&[("connection", "keep-alive"), ("date", "x")], &["date"]);
    check_hop_by_hop(
        &[
            ("connection", "X-Secret, close"),
            ("connection", "x-other"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
        ],
        &["x-kept"],
    );
    check_hop_by_hop(
        &[
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("content-type", "text/plain"),
        ],
        // `Trailer` announces trailer fields end to end (RFC 9110 6.6.2).
        &["content-type", "trailer"],
    );
}
