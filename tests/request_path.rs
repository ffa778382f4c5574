//! The request path on the wire (issue 15): what `fig proxy` sends an upstream and a client,
//! byte for byte, when an upstream misbehaves. Response framing that could desynchronise a
//! client connection, requests sent twice (or without their body) after a pooled connection
//! closed, trailers, and the connection a refusal ends. Each test runs against both of the
//! proxy's HTTP/1 servers (`server.http1 = "fig"`, the default, and `"hyper"`) where the client
//! side matters, with a scripted upstream (tests/support/wire.rs) that records every byte.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::fig;
use crate::support::procs::Proc;
use crate::support::wire::{Client, Reply, Upstream, chunked, ok};

const SERVERS: [&str; 2] = ["fig", "hyper"];

/// A running `fig proxy` and its temporary directory.
struct Proxy {
    _dir: tempfile::TempDir,
    proc: Proc,
    addr: SocketAddr,
}

impl Proxy {
    /// `fig proxy` with `server.http1 = server`, every request to `upstream`, and `extra` TOML
    /// appended.
    fn start(server: &str, upstream: &Upstream, extra: &str) -> Proxy {
        Proxy::start_with(server, "fig", upstream, extra)
    }

    /// [`Proxy::start`] with `server.http1_client = client` too.
    fn start_with(server: &str, client: &str, upstream: &Upstream, extra: &str) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nhttp1 = \"{server}\"\nhttp1_client = \"{client}\"\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\n\
             [upstreams.monolith]\naddresses = [\"{}\"]\n\n{extra}\n",
            upstream.url()
        );
        let path = dir.path().join("fig-proxy.toml");
        std::fs::write(&path, config).expect("write the config");
        let mut command = fig();
        command.arg("proxy").arg("--config").arg(&path);
        let mut proc = Proc::spawn("fig proxy", command);
        let addr = proc.address("listening on http://");
        Proxy {
            _dir: dir,
            proc,
            addr,
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Waits (bounded) until `done` holds; false if it never did.
    fn within(&self, wait: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("fig proxy stderr:\n{}", self.proc.stderr());
        false
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: shop.test\r\n\r\n")
}

const INJECTED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Injected: yes\r\n\r\nINJECTED";

/// RFC 9112 6.3: with both `Transfer-Encoding` and `Content-Length`, the chunks frame the body.
/// Before the fix, the proxy passed the upstream's `Content-Length: 5` on while it sent the whole
/// de-chunked body, so the client read `hello` as the response and the rest, a response made by
/// the upstream, as the answer to its next request (response queue poisoning).
#[test]
fn a_response_with_transfer_encoding_and_content_length_is_framed_by_its_chunks() {
    for order in ["te-cl", "cl-te"] {
        let upstream = Upstream::start(move |seen| {
            if seen.target() == "/poison" {
                let mut body = b"hello".to_vec();
                body.extend_from_slice(INJECTED);
                let head: &[u8] = if order == "te-cl" {
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                };
                let mut reply = head.to_vec();
                reply.extend_from_slice(&chunked(&body, &[]));
                Reply::Send(reply)
            } else {
                Reply::Send(ok(&format!("real answer to {}", seen.target())))
            }
        });
        // Both servers, and both clients (`server.http1_client`).
        for (server, upstream_client) in [("fig", "fig"), ("hyper", "fig"), ("fig", "hyper")] {
            let proxy = Proxy::start_with(server, upstream_client, &upstream, "");
            let server = format!("server {server}, client {upstream_client}");
            let mut client = proxy.client();
            client.send(get("/poison").as_bytes());
            let first = client.response("GET");
            assert_eq!(first.status(), 200, "{order} {server}");
            assert_eq!(
                first.header("content-length").map(str::to_owned),
                first
                    .header("content-length")
                    .map(|_| first.body.len().to_string()),
                "{order} {server}: a Content-Length must be the body's own"
            );
            let mut expected = b"hello".to_vec();
            expected.extend_from_slice(INJECTED);
            assert_eq!(first.body, expected, "{order} {server}: the whole body");
            client.send(get("/victim").as_bytes());
            let second = client.response("GET");
            assert_eq!(
                second.text(),
                "real answer to /victim",
                "{order} {server}: the next response is the upstream's answer, not the injected one"
            );
            assert!(second.header("x-injected").is_none(), "{order} {server}");
            drop(proxy);
        }
    }
}

/// An upstream that sends a body after its response to HEAD: the connection is not used for the
/// next request, so that body is never read as the next response.
#[test]
fn a_late_body_after_a_head_response_is_never_read_as_the_next_response() {
    let upstream = Upstream::start(|seen| {
        if seen.method() == "HEAD" {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                INJECTED.len()
            );
            Reply::SendLater(
                head.into_bytes(),
                Duration::from_millis(300),
                INJECTED.to_vec(),
            )
        } else {
            Reply::Send(ok("real"))
        }
    });
    let proxy = Proxy::start("fig", &upstream, "");
    let mut client = proxy.client();
    client.send(b"HEAD /page HTTP/1.1\r\nhost: shop.test\r\n\r\n");
    assert_eq!(client.response("HEAD").status(), 200);
    // At once, while the upstream has not sent its late body yet.
    client.send(get("/next").as_bytes());
    let next = client.response("GET");
    assert_eq!(next.text(), "real", "{:?}", next);
    assert!(next.header("x-injected").is_none());
}

/// An upstream that reads a whole POST on a pooled connection and closes without answering. The
/// proxy must answer 502 at once and never send the POST again: before the fix it sent the head
/// again on a new connection with its `Content-Length` but without its body, the client waited a
/// minute, and the upstream read the next request's bytes as that body.
#[test]
fn a_post_on_a_pooled_connection_that_closes_is_sent_once_and_answered_502() {
    let upstream = Upstream::start(|seen| match (seen.conn, seen.method()) {
        (0, "POST") => Reply::Close(Vec::new()),
        _ => Reply::Send(ok(&format!("{} {}", seen.method(), seen.target()))),
    });
    let proxy = Proxy::start("fig", &upstream, "");
    let mut client = proxy.client();
    client.send(get("/warm").as_bytes());
    assert_eq!(client.response("GET").text(), "GET /warm");
    let started = Instant::now();
    client.send(
        b"POST /payments HTTP/1.1\r\nhost: shop.test\r\ncontent-type: application/json\r\n\
          content-length: 13\r\n\r\n{\"amount\": 1}",
    );
    let answer = client.response("POST");
    assert_eq!(answer.status(), 502, "{}", answer.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    let posts: Vec<_> = upstream
        .seen()
        .into_iter()
        .filter(|seen| seen.method() == "POST")
        .collect();
    assert_eq!(
        posts.len(),
        1,
        "the POST reached the upstream once: {posts:?}"
    );
    assert_eq!(posts[0].body, b"{\"amount\": 1}");
    // The client's connection still works.
    client.send(get("/after").as_bytes());
    assert_eq!(client.response("GET").text(), "GET /after");
    // No connection ever received a request head whose body did not follow.
    for (conn, bytes) in upstream.raw().iter().enumerate() {
        let text = String::from_utf8_lossy(bytes);
        assert_eq!(
            text.matches("POST ").count(),
            text.matches("{\"amount\": 1}").count(),
            "connection {conn}: {text}"
        );
    }
}

/// An idempotent request on a pooled connection that closes goes once more, on a new connection,
/// with its body.
#[test]
fn a_put_on_a_pooled_connection_that_closes_is_sent_again_once_with_its_body() {
    let upstream = Upstream::start(|seen| match (seen.conn, seen.method()) {
        (0, "PUT") => Reply::Close(Vec::new()),
        _ => Reply::Send(ok(&format!(
            "{} {} {}",
            seen.method(),
            seen.target(),
            String::from_utf8_lossy(&seen.body)
        ))),
    });
    let proxy = Proxy::start("fig", &upstream, "");
    let mut client = proxy.client();
    client.send(get("/warm").as_bytes());
    assert_eq!(client.response("GET").text(), "GET /warm ");
    client.send(b"PUT /carts/7 HTTP/1.1\r\nhost: shop.test\r\ncontent-length: 9\r\n\r\nquantity3");
    let answer = client.response("PUT");
    assert_eq!(answer.status(), 200, "{}", answer.text());
    assert_eq!(answer.text(), "PUT /carts/7 quantity3");
    let puts: Vec<_> = upstream
        .seen()
        .into_iter()
        .filter(|seen| seen.method() == "PUT")
        .collect();
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert!(puts.iter().all(|put| put.body == b"quantity3"), "{puts:?}");
    assert_eq!(upstream.connections(), 2);
}

/// After many pooled connections were opened, an upstream that closes every connection without
/// answering: one failing request reaches it at most twice (the pooled connection, then one new
/// one) when it is idempotent, and once when it is not. Before the fix it went once per pooled
/// connection, 51 times after 50.
#[test]
fn a_failing_request_is_not_replayed_on_every_pooled_connection() {
    const POOLED: usize = 8;
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fail = failing.clone();
    let upstream = Upstream::start(move |seen| {
        if fail.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::Close(Vec::new())
        } else if seen.target() == "/warm" {
            // Held so that the warming requests need a connection each.
            Reply::SendLater(Vec::new(), Duration::from_millis(300), ok("warm"))
        } else {
            Reply::Send(ok("ok"))
        }
    });
    let proxy = Proxy::start("fig", &upstream, "");
    let addr = proxy.addr;
    let warmers: Vec<_> = (0..POOLED)
        .map(|_| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                client.send(get("/warm").as_bytes());
                client.response("GET").status()
            })
        })
        .collect();
    for warmer in warmers {
        assert_eq!(warmer.join().expect("a warming request"), 200);
    }
    assert_eq!(
        upstream.connections(),
        POOLED,
        "one connection per warming request"
    );
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    for (method, most) in [("GET", 2), ("DELETE", 2), ("POST", 1)] {
        let before = upstream.seen().len();
        let mut client = proxy.client();
        client.send(
            format!("{method} /orders/1 HTTP/1.1\r\nhost: shop.test\r\ncontent-length: 0\r\n\r\n")
                .as_bytes(),
        );
        let answer = client.response(method);
        assert_eq!(answer.status(), 502, "{method}: {}", answer.text());
        let reached = upstream.seen().len() - before;
        assert!(
            (1..=most).contains(&reached),
            "{method} reached the upstream {reached} times (at most {most})"
        );
    }
    drop(proxy);
}

/// Trailers that the response announced pass to a client that accepts them, but never a field
/// that frames, routes or authorises a message (RFC 9110 6.5.1), which a client may otherwise
/// take as a header; nor one the response did not announce (both servers, as hyper's does).
#[test]
fn trailers_that_must_not_be_trailers_are_dropped() {
    let upstream = Upstream::start(|_| {
        let mut reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\
            Trailer: X-Checksum, Content-Length, Set-Cookie, Transfer-Encoding\r\n\r\n"
            .to_vec();
        reply.extend_from_slice(&chunked(
            b"hello",
            &[
                "X-Checksum: abc",
                "X-Unannounced: 1",
                "Content-Length: 99",
                "Set-Cookie: session=evil",
                "Transfer-Encoding: chunked",
            ],
        ));
        Reply::Send(reply)
    });
    for server in SERVERS {
        let proxy = Proxy::start(server, &upstream, "");
        let mut client = proxy.client();
        client.send(b"GET /t HTTP/1.1\r\nhost: shop.test\r\nte: trailers\r\n\r\n");
        let answer = client.response("GET");
        assert_eq!(answer.body, b"hello", "{server}");
        let names: Vec<&str> = answer.trailers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-checksum"], "{server}");
        drop(proxy);
    }
}

/// A refusal that ends the connection (413 `Connection: close`) ends it: a request pipelined
/// behind it is not served, and the response says `close` once, also to an HTTP/1.0 client that
/// asked for keep-alive.
#[test]
fn a_413_with_connection_close_ends_the_connection() {
    let upstream = Upstream::start(|seen| Reply::Send(ok(seen.target())));
    for server in SERVERS {
        let proxy = Proxy::start(server, &upstream, "[limits]\nmax_body_size = \"10B\"\n");
        for version in ["HTTP/1.1", "HTTP/1.0"] {
            let mut client = proxy.client();
            client.send(
                format!(
                    "POST /big {version}\r\nhost: shop.test\r\nconnection: keep-alive\r\n\
                     content-length: 20\r\n\r\n01234567890123456789{}",
                    get("/pipelined")
                )
                .as_bytes(),
            );
            let answer = client.response("POST");
            assert_eq!(answer.status(), 413, "{server} {version}");
            let connection: Vec<&str> = answer.all("connection").collect();
            assert_eq!(connection, ["close"], "{server} {version}");
            assert!(
                client.closes(),
                "{server} {version}: the pipelined request was served"
            );
        }
        drop(proxy);
    }
    assert!(
        upstream.seen().is_empty(),
        "nothing reached the upstream: {:?}",
        upstream.seen()
    );
}

/// `Content-Length: 5, 5` from an upstream is read as 5 (RFC 9110 8.6, as hyper does) and goes
/// to the client as one length; two different lengths are refused (502).
#[test]
fn content_length_lists_are_one_length_or_refused() {
    let upstream = Upstream::start(|seen| match seen.target() {
        "/same" => Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello".to_vec()),
        _ => Reply::Close(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!".to_vec()),
    });
    let proxy = Proxy::start("fig", &upstream, "");
    let mut client = proxy.client();
    client.send(get("/same").as_bytes());
    let same = client.response("GET");
    assert_eq!(same.body, b"hello");
    assert_eq!(same.all("content-length").collect::<Vec<_>>(), ["5"]);
    client.send(get("/differ").as_bytes());
    assert_eq!(client.response("GET").status(), 502);
}

/// `timeouts.body_idle`: an upstream that stops in the middle of a body, and a client that reads
/// none of its response, hold their connections that long, not for minutes. Before the fix both
/// connections stayed open until the upstream or the client gave up.
#[test]
fn a_body_that_makes_no_progress_ends_after_body_idle() {
    let upstream = Upstream::start(|seen| match seen.target() {
        "/stall" => {
            Reply::Stall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst ten.".to_vec())
        }
        // Far more than the socket buffers hold: the proxy must stop reading it.
        _ => {
            let body = "x".repeat(32 << 20);
            Reply::Send(ok(&body))
        }
    });
    for server in SERVERS {
        let proxy = Proxy::start(server, &upstream, "[timeouts]\nbody_idle = \"500ms\"\n");
        let ended = upstream.ended();
        let started = Instant::now();
        let mut client = proxy.client();
        client.send(get("/stall").as_bytes());
        // The head and ten bytes come, then the connection closes without the rest.
        let got = String::from_utf8_lossy(&client.until_closed()).into_owned();
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{server}: {got}");
        assert!(
            got.ends_with("\r\n\r\nfirst ten."),
            "{server}: the client got more or less than the ten bytes sent: {got}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{server}: the stalled body held the client {:?}",
            started.elapsed()
        );
        assert!(
            proxy.within(Duration::from_secs(5), || upstream.ended() > ended),
            "{server}: the stalled upstream connection is still open"
        );

        let ended = upstream.ended();
        let mut idle_reader = proxy.client();
        idle_reader.send(get("/big").as_bytes());
        assert!(
            proxy.within(Duration::from_secs(8), || upstream.ended() > ended),
            "{server}: a client that reads nothing still holds the upstream connection"
        );
        drop(proxy);
    }
}
