//! The proxy's own HTTP/1.1 client (client.rs) against upstreams that answer with raw bytes: the
//! framings of RFC 9112 section 6.3, interim responses, connection reuse and what happens when an
//! upstream closes an idle connection or breaks the protocol.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::support::{config, get, send, start};
use crate::decision::flags::NoFlags;

/// An upstream that reads each request head (and a body as long as its `Content-Length`) and
/// answers with the bytes `script` returns for it, written in pieces of `piece` bytes with a short
/// pause between them, so that the proxy sees heads and bodies split across reads. `script` gets
/// the request head and the number of the request on its connection (0, 1, ...); an empty answer
/// closes the connection without a word.
struct Raw {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

/// What a raw upstream answers to a request head (and its number on the connection): the bytes,
/// and whether the connection stays open after them.
type Script = dyn Fn(&str, usize) -> (Vec<u8>, bool) + Send + Sync;

async fn raw(
    piece: usize,
    script: impl Fn(&str, usize) -> (Vec<u8>, bool) + Send + Sync + 'static,
) -> Raw {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(script);
    let (accepted, served) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let script = script.clone();
            let served = served.clone();
            tokio::spawn(async move {
                let _ = serve_raw(stream, piece, &*script, &served).await;
            });
        }
    });
    Raw {
        addr,
        connections,
        requests,
    }
}

async fn serve_raw(
    mut stream: TcpStream,
    piece: usize,
    script: &Script,
    served: &AtomicUsize,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for n in 0.. {
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..read]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let body_len: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + body_len {
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..read]);
        }
        buf.drain(..head_end + body_len);
        served.fetch_add(1, Ordering::SeqCst);
        let (answer, keep_open) = script(&head, n);
        for part in answer.chunks(piece.max(1)) {
            stream.write_all(part).await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if !keep_open {
            return Ok(());
        }
    }
    Ok(())
}

async fn proxy_to(raw: &Raw) -> super::support::TestProxy {
    start(
        config(&format!(
            "[upstreams.monolith]\naddresses = [\"http://{}\"]\n",
            raw.addr
        )),
        Arc::new(NoFlags),
    )
    .await
}

#[tokio::test]
async fn chunked_response_split_across_reads_with_extensions_and_trailers() {
    let upstream = raw(7, |_, _| {
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Checksum: 42\r\n\r\n"
                .to_vec(),
            true,
        )
    })
    .await;
    let proxy = proxy_to(&upstream).await;
    for _ in 0..3 {
        let reply = get(&proxy.url("/"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "hello, world");
        assert_eq!(reply.headers["x-kind"], "chunked");
    }
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "a complete chunked exchange leaves the connection reusable"
    );
}

#[tokio::test]
async fn body_until_close_is_passed_whole_and_the_connection_is_not_reused() {
    let upstream = raw(3, |_, _| {
        (
            b"HTTP/1.1 200 OK\r\nX-Kind: eof\r\n\r\nuntil the end".to_vec(),
            false,
        )
    })
    .await;
    let proxy = proxy_to(&upstream).await;
    for _ in 0..2 {
        let reply = get(&proxy.url("/"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "until the end");
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let upstream = raw(5, |_, _| {
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
              HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
                .to_vec(),
            true,
        )
    })
    .await;
    let proxy = proxy_to(&upstream).await;
    let reply = get(&proxy.url("/"), &[]).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body, "done");
}

#[tokio::test]
async fn head_204_and_304_have_no_body_and_a_head_announcing_a_body_is_not_reused() {
    let upstream = raw(64, |head, _| {
        let answer: &[u8] = if head.starts_with("HEAD") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        } else if head.contains("/gone") {
            b"HTTP/1.1 204 No Content\r\n\r\n"
        } else {
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n"
        };
        (answer.to_vec(), true)
    })
    .await;
    let proxy = proxy_to(&upstream).await;
    let head = send(
        Request::head(proxy.url("/"))
            .body(Full::<Bytes>::default())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["content-length"], "1000");
    assert_eq!(
        get(&proxy.url("/gone"), &[]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&proxy.url("/cached"), &[]).await.status,
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 3);
    // The HEAD's connection is closed: an upstream that sends the announced body anyway would
    // have it read as the next response (framing.rs). The 204 and the 304 share one.
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_is_not_used_again() {
    // Each connection serves one response and is then closed by the upstream, without saying so
    // in the response: the proxy must notice the close in its pool and open a new connection,
    // never answering 502.
    let upstream = raw(64, |_, _| {
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            false,
        )
    })
    .await;
    let proxy = proxy_to(&upstream).await;
    for round in 0..5 {
        let reply = get(&proxy.url("/"), &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "round {round}: {}",
            reply.body
        );
        assert_eq!(reply.body, "ok");
        // Let the close reach the proxy's pool.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn broken_responses_give_502_and_the_proxy_lives_on() {
    let upstream = raw(64, |head, _| {
        let answer: &[u8] = if head.contains("/garbage") {
            b"NOT HTTP AT ALL\r\n\r\n"
        } else if head.contains("/conflict") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
        } else if head.contains("/short") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
        } else if head.contains("/silent") {
            b""
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        (
            answer.to_vec(),
            !head.contains("/short") && !head.contains("/silent"),
        )
    })
    .await;
    let proxy = proxy_to(&upstream).await;
    for path in ["/garbage", "/conflict", "/silent"] {
        let reply = get(&proxy.url(path), &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_GATEWAY,
            "{path}: {}",
            reply.body
        );
    }
    // A body cut short after the head: the head has gone to the client already, so the client
    // sees its body end early, which hyper's client reports as an error.
    let cut = tokio::time::timeout(
        Duration::from_secs(10),
        super::support::client().request(
            Request::get(proxy.url("/short"))
                .body(Full::<Bytes>::default())
                .unwrap(),
        ),
    )
    .await
    .expect("no hang");
    if let Ok(response) = cut {
        use http_body_util::BodyExt as _;
        assert!(response.into_body().collect().await.is_err());
    }
    let reply = get(&proxy.url("/fine"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "ok");
}

#[tokio::test]
async fn request_bodies_and_heads_reach_the_upstream_as_sent() {
    // The raw upstream answers with the request head it read, so the test sees what went out.
    let upstream = raw(1024, |head, _| {
        let body = head.replace("\r\n", "\n");
        (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            true,
        )
    })
    .await;
    let proxy = proxy_to(&upstream).await;
    let reply = get(&proxy.url("/path?q=1"), &[("x-custom", "yes")]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let first = reply.body.lines().next().unwrap_or("");
    assert_eq!(first, "GET /path?q=1 HTTP/1.1");
    assert!(reply.body.contains("x-custom: yes"), "{}", reply.body);
    assert!(
        reply.body.contains("x-forwarded-for: 127.0.0.1"),
        "{}",
        reply.body
    );
    assert!(
        !reply.body.contains("transfer-encoding"),
        "a GET has no body: {}",
        reply.body
    );
    let post = send(
        Request::post(proxy.url("/submit"))
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, StatusCode::OK);
    assert!(
        post.body.starts_with("POST /submit HTTP/1.1"),
        "{}",
        post.body
    );
    assert!(post.body.contains("content-length: 7"), "{}", post.body);
}

#[tokio::test]
async fn responses_with_many_header_fields_pass_and_too_many_are_refused() {
    let upstream = raw(512, |head, _| {
        let count = if head.contains("/many") { 40 } else { 150 };
        let mut answer = String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
        for i in 0..count {
            answer.push_str(&format!("x-field-{i}: {i}\r\n"));
        }
        answer.push_str("\r\nok");
        (answer.into_bytes(), true)
    })
    .await;
    let proxy = proxy_to(&upstream).await;
    let many = get(&proxy.url("/many"), &[]).await;
    assert_eq!(many.status, StatusCode::OK);
    assert_eq!(many.headers["x-field-39"], "39");
    assert_eq!(many.body, "ok");
    let too_many = get(&proxy.url("/too-many"), &[]).await;
    assert_eq!(too_many.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_retry_on_the_fallback_carries_the_head_rewritten_once_with_the_fallbacks_host() {
    // The service fails every request; a GET is then sent to the monolith, which echoes the head
    // it received. That head must be the client's, rewritten once: one `Via`, one
    // `X-Forwarded-For`, the client's host as `X-Forwarded-Host`, and as `Host` the client's
    // (`preserve_host`, the default) or else the monolith's own address, not the service's.
    let service = raw(64, |_, _| {
        (
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops".to_vec(),
            true,
        )
    })
    .await;
    let monolith = super::support::upstream("monolith").await;
    for preserve_host in [true, false] {
        let proxy = start(
            config(&format!(
                "[server]\npreserve_host = {preserve_host}\n\
                 [upstreams.monolith]\naddresses = [\"{}\"]\n\
                 [upstreams.svc]\naddresses = [\"http://{}\"]\n\
                 [[routes]]\nname = \"api\"\nmatch = {{ prefix = \"/\" }}\nservice = \"svc\"\n",
                monolith.url(),
                service.addr
            )),
            Arc::new(NoFlags),
        )
        .await;
        let reply = get(&proxy.url("/orders/1"), &[("host", "shop.example")]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.upstream(), "monolith");
        let count = |name: &str| {
            reply
                .body
                .lines()
                .filter(|line| line.starts_with(&format!("{name}: ")))
                .count()
        };
        assert_eq!(count("via"), 1, "{}", reply.body);
        assert_eq!(count("x-forwarded-for"), 1, "{}", reply.body);
        assert_eq!(reply.seen("x-forwarded-host"), Some("shop.example"));
        let monolith_host = monolith.addr.to_string();
        let expected = if preserve_host {
            "shop.example"
        } else {
            monolith_host.as_str()
        };
        assert_eq!(reply.seen("host"), Some(expected), "{}", reply.body);
    }
    assert_eq!(service.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn hop_by_hop_response_headers_and_those_connection_names_are_not_passed_on() {
    let upstream = raw(64, |_, n| {
        let connection = if n == 0 {
            "Connection: keep-alive, X-Secret\r\n"
        } else {
            "Connection: keep-alive\r\n"
        };
        (
            format!(
                "HTTP/1.1 200 OK\r\n{connection}Keep-Alive: timeout=5\r\nX-Secret: 1\r\n\
                 Trailer: X-Sum\r\nProxy-Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\
                 X-Kept: yes\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 2\r\n\r\n"
            )
            .into_bytes(),
            true,
        )
    })
    .await;
    let proxy = proxy_to(&upstream).await;
    for n in 0..2 {
        let reply = get(&proxy.url("/"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "ok");
        assert_eq!(reply.headers["x-kept"], "yes");
        for name in ["keep-alive", "proxy-connection"] {
            assert!(!reply.headers.contains_key(name), "{name} passed on");
        }
        // End to end: it announces the trailer fields (RFC 9110 6.6.2).
        assert_eq!(reply.headers["trailer"], "X-Sum");
        // Named by `Connection` on the first response only: hop-by-hop there, end to end after.
        assert_eq!(
            reply.headers.contains_key("x-secret"),
            n == 1,
            "response {n}: {:?}",
            reply.headers
        );
    }
}
