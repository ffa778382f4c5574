//! HTTP/1 as a client sees it, over raw TCP: keep-alive, pipelining, `Connection: close`,
//! HTTP/1.0, response framing, HEAD, a connection that moves from the proxy's own server to
//! hyper's mid-way, deadlines, refusals and shutdown. Each test runs against both servers
//! (`server.http1 = "fig"`, the default, and `"hyper"`), which must behave alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::decision::flags::NoFlags;

use super::support::{TestProxy, Upstream, config, start, upstream};

const SERVERS: [&str; 2] = ["fig", "hyper"];
/// Longest wait for anything in these tests.
const WAIT: Duration = Duration::from_secs(5);

async fn proxy_for(server: &str, upstream: &str, extra: &str) -> TestProxy {
    start(
        config(&format!(
            "[server]\nhttp1 = \"{server}\"\n{extra}\n[upstreams.monolith]\naddresses = [\"{upstream}\"]\n"
        )),
        Arc::new(NoFlags),
    )
    .await
}

/// One response as it came on the wire.
#[derive(Debug)]
struct Wire {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: bool,
}

impl Wire {
    fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that writes raw bytes and reads responses framed as RFC 9112 says.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more; false at the close.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 << 10];
        match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!("nothing arrived within {WAIT:?}"),
        }
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await, "closed in the middle of a response");
        }
        self.buf.drain(..n).collect()
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.take(end + 2).await;
                return String::from_utf8_lossy(&line[..end]).into_owned();
            }
            assert!(self.fill().await, "closed in the middle of a head");
        }
    }

    /// Reads one response to a request with `method`, skipping interim (1xx) ones unless asked.
    async fn response(&mut self, method: &str) -> Wire {
        loop {
            let wire = self.response_or_interim(method).await;
            if !(100..200).contains(&wire.status()) {
                return wire;
            }
        }
    }

    async fn response_or_interim(&mut self, method: &str) -> Wire {
        let status_line = self.line().await;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header line");
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut wire = Wire {
            status_line,
            headers,
            body: Vec::new(),
            chunked: false,
        };
        let status = wire.status();
        if method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
            return wire;
        }
        if wire
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            wire.chunked = true;
            loop {
                let size_line = self.line().await;
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                    .expect("chunk size");
                if size == 0 {
                    while !self.line().await.is_empty() {}
                    break;
                }
                let data = self.take(size).await;
                wire.body.extend_from_slice(&data);
                assert_eq!(self.take(2).await, b"\r\n");
            }
        } else if let Some(len) = wire.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            wire.body = self.take(len).await;
        } else {
            while self.fill().await {}
            wire.body = std::mem::take(&mut self.buf);
        }
        wire
    }

    /// Whether the proxy closes the connection (within the wait) with nothing more to say.
    async fn closes(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        !self.fill().await && self.buf.is_empty()
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: example.test\r\n\r\n")
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_are_answered_in_order_on_one_connection() {
    let monolith = upstream("monolith").await;
    for server in SERVERS {
        let proxy = proxy_for(server, &monolith.url(), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        // Three requests in one write, then one more after their answers.
        client
            .send(format!("{}{}{}", get("/a"), get("/b"), get("/c")).as_bytes())
            .await;
        for path in ["/a", "/b", "/c"] {
            let wire = client.response("GET").await;
            assert_eq!(wire.status(), 200, "{server}");
            assert!(
                wire.text().starts_with(&format!("monolith\nGET {path}\n")),
                "{server}: {}",
                wire.text()
            );
            assert_eq!(wire.header("x-fig-upstream"), Some("monolith"));
            assert!(wire.header("date").is_some(), "{server}: no Date");
        }
        client.send(get("/d").as_bytes()).await;
        let wire = client.response("GET").await;
        assert!(wire.text().starts_with("monolith\nGET /d\n"), "{server}");
    }
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let monolith = upstream("monolith").await;
    for server in SERVERS {
        let proxy = proxy_for(server, &monolith.url(), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        client
            .send(b"GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .await;
        let wire = client.response("GET").await;
        assert_eq!(wire.status(), 200, "{server}");
        assert_eq!(wire.header("connection"), Some("close"), "{server}");
        assert!(client.closes().await, "{server}: still open after close");
    }
}

#[tokio::test]
async fn http_1_0_clients_get_close_by_default_and_keep_alive_when_they_ask() {
    let monolith = upstream("monolith").await;
    for server in SERVERS {
        let proxy = proxy_for(server, &monolith.url(), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        client.send(b"GET /old HTTP/1.0\r\nhost: a\r\n\r\n").await;
        let wire = client.response("GET").await;
        assert_eq!(wire.status(), 200, "{server}");
        assert!(!wire.chunked, "{server}: chunked to an HTTP/1.0 client");
        assert!(wire.text().starts_with("monolith\nGET /old\n"), "{server}");
        assert!(
            client.closes().await,
            "{server}: HTTP/1.0 without keep-alive"
        );

        // The proxy's own server keeps an HTTP/1.0 connection that asks for it; hyper's (as
        // this proxy drives it) answers and closes, which is allowed.
        let requests = if server == "fig" { 2 } else { 1 };
        let mut client = Raw::connect(proxy.addr).await;
        for _ in 0..requests {
            client
                .send(b"GET /kept HTTP/1.0\r\nhost: a\r\nconnection: keep-alive\r\n\r\n")
                .await;
            let wire = client.response("GET").await;
            assert_eq!(wire.status(), 200, "{server}");
            assert!(!wire.chunked, "{server}");
            // An HTTP/1.0 client keeps the connection only when the answer says so (RFC 9112
            // 9.3).
            if server == "fig" {
                assert_eq!(
                    wire.header("connection").map(str::to_ascii_lowercase),
                    Some("keep-alive".to_owned()),
                    "{server}"
                );
            }
        }
    }
}

/// An upstream that answers every request with `answer` and keeps the connection open when
/// `keep` (else closes after it).
async fn scripted(answer: &'static [u8], keep: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    if stream.write_all(answer).await.is_err() || !keep {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn responses_without_a_length_are_chunked_for_http_1_1_and_closed_for_http_1_0() {
    let chunked = scripted(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
        true,
    )
    .await;
    let until_close = scripted(b"HTTP/1.1 200 OK\r\n\r\nuntil the close", false).await;
    for server in SERVERS {
        for upstream in [chunked, until_close] {
            let proxy = proxy_for(server, &format!("http://{upstream}"), "").await;
            let expected = if upstream == chunked {
                "hello, world"
            } else {
                "until the close"
            };
            let mut client = Raw::connect(proxy.addr).await;
            for _ in 0..2 {
                client.send(get("/").as_bytes()).await;
                let wire = client.response("GET").await;
                assert_eq!(wire.text(), expected, "{server}");
                assert!(
                    wire.chunked || wire.header("content-length").is_some(),
                    "{server}: an HTTP/1.1 response must be framed to keep the connection"
                );
            }
            let mut client = Raw::connect(proxy.addr).await;
            client.send(b"GET / HTTP/1.0\r\nhost: a\r\n\r\n").await;
            let wire = client.response("GET").await;
            assert!(!wire.chunked, "{server}: chunked to HTTP/1.0");
            assert_eq!(wire.text(), expected, "{server}");
        }
    }
}

#[tokio::test]
async fn one_connection_moves_to_hyper_for_a_chunked_upload_and_keeps_working() {
    let monolith = upstream("monolith").await;
    for server in SERVERS {
        let proxy = proxy_for(server, &monolith.url(), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        client.send(get("/first").as_bytes()).await;
        assert!(
            client
                .response("GET")
                .await
                .text()
                .starts_with("monolith\nGET /first\n")
        );
        // A body with a length, read whole by the proxy's own server.
        client
            .send(b"POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 11\r\n\r\nhello there")
            .await;
        assert_eq!(
            client.response("POST").await.text(),
            "hello there",
            "{server}"
        );
        // A chunked body: the connection goes to hyper from here on.
        client
            .send(
                b"POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n\
                  6\r\nchunks\r\n5\r\n, too\r\n0\r\n\r\n",
            )
            .await;
        assert_eq!(
            client.response("POST").await.text(),
            "chunks, too",
            "{server}"
        );
        client.send(get("/after").as_bytes()).await;
        assert!(
            client
                .response("GET")
                .await
                .text()
                .starts_with("monolith\nGET /after\n"),
            "{server}"
        );
        // A body over the size the own server reads whole streams through hyper as well.
        let big = vec![b'b'; 3 << 20];
        let mut request = format!(
            "POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n",
            big.len()
        )
        .into_bytes();
        request.extend_from_slice(&big);
        let mut client = Raw::connect(proxy.addr).await;
        client.send(get("/before").as_bytes()).await;
        let _ = client.response("GET").await;
        client.send(&request).await;
        let echoed = client.response("POST").await;
        assert_eq!(echoed.body.len(), big.len(), "{server}");
        assert!(echoed.body == big, "{server}");
        client.send(get("/last").as_bytes()).await;
        assert_eq!(client.response("GET").await.status(), 200, "{server}");
    }
}

#[tokio::test]
async fn expect_100_continue_is_answered_and_the_body_arrives() {
    let monolith = upstream("monolith").await;
    for server in SERVERS {
        let proxy = proxy_for(server, &monolith.url(), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        client
            .send(b"POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
            .await;
        let first = client.response_or_interim("POST").await;
        if first.status() == 100 {
            client.send(b"ping").await;
            let wire = client.response("POST").await;
            assert_eq!(wire.text(), "ping", "{server}");
        } else {
            panic!("{server}: {} before the body was sent", first.status_line);
        }
    }
}

/// The upstream's header fields reach the client in order, a repeated one each time, each
/// line well-formed whatever whitespace or bare line ends the upstream used; its hop-by-hop
/// fields and its own `x-fig-upstream` (a proxy behind this one) do not.
#[tokio::test]
async fn upstream_header_fields_pass_in_order_tidied_without_hop_by_hop_ones() {
    let sloppy = scripted(
        b"HTTP/1.1 200 OK\r\nServer: sloppy\r\nSet-Cookie: a=1\r\nX-Spaced:   padded value \t\r\nset-cookie: b=2\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\nx-fig-upstream: not-me\r\nContent-Length: 2\r\n\r\nok",
        true,
    )
    .await;
    let naming = scripted(
        b"HTTP/1.1 200 OK\r\nConnection: x-private\r\nx-private: 1\r\nx-public: 2\r\ncontent-length: 2\r\n\r\nok",
        true,
    )
    .await;
    let plain = scripted(
        b"HTTP/1.1 200 OK\r\nServer: plain\r\nContent-Length: 2\r\n\r\nok",
        true,
    )
    .await;
    for server in SERVERS {
        let proxy = proxy_for(server, &format!("http://{sloppy}"), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        for _ in 0..2 {
            client.send(get("/").as_bytes()).await;
            let wire = client.response("GET").await;
            assert_eq!(wire.text(), "ok", "{server}");
            let all = |name: &str| -> Vec<&str> {
                wire.headers
                    .iter()
                    .filter(|(key, _)| key == name)
                    .map(|(_, value)| value.as_str())
                    .collect()
            };
            assert_eq!(
                all("set-cookie"),
                ["a=1", "b=2"],
                "{server}: {:?}",
                wire.headers
            );
            assert_eq!(all("x-spaced"), ["padded value"], "{server}");
            assert_eq!(all("server"), ["sloppy"], "{server}");
            assert_eq!(all("content-length"), ["2"], "{server}");
            assert_eq!(all("x-fig-upstream"), ["monolith"], "{server}");
            assert_eq!(all("via"), ["1.1 fig"], "{server}");
            assert_eq!(all("keep-alive"), Vec::<&str>::new(), "{server}");
            assert_eq!(all("connection"), Vec::<&str>::new(), "{server}");
            let position = |name: &str| wire.headers.iter().position(|(key, _)| key == name);
            assert!(
                position("server") < position("set-cookie")
                    && position("set-cookie") < position("x-spaced"),
                "{server}: the upstream's order: {:?}",
                wire.headers
            );
        }

        let proxy = proxy_for(server, &format!("http://{naming}"), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        client.send(get("/").as_bytes()).await;
        let wire = client.response("GET").await;
        assert_eq!(
            wire.header("x-private"),
            None,
            "{server}: {:?}",
            wire.headers
        );
        assert_eq!(wire.header("x-public"), Some("2"), "{server}");
        assert_eq!(wire.header("connection"), None, "{server}");
        assert_eq!(wire.header("via"), Some("1.1 fig"), "{server}");
        assert_eq!(wire.header("x-fig-upstream"), Some("monolith"), "{server}");

        // The common case: the proxy's `Via` and upstream header go out once each, after the
        // upstream's fields, on keep-alive responses one after another.
        let proxy = proxy_for(server, &format!("http://{plain}"), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        for _ in 0..3 {
            client.send(get("/").as_bytes()).await;
            let wire = client.response("GET").await;
            assert_eq!(wire.text(), "ok", "{server}");
            let names: Vec<&str> = wire.headers.iter().map(|(key, _)| key.as_str()).collect();
            for name in ["server", "content-length", "via", "x-fig-upstream", "date"] {
                assert_eq!(
                    names.iter().filter(|&&key| key == name).count(),
                    1,
                    "{server}: {name} in {:?}",
                    wire.headers
                );
            }
            assert_eq!(wire.header("via"), Some("1.1 fig"), "{server}");
            assert_eq!(wire.header("x-fig-upstream"), Some("monolith"), "{server}");
            let position = |name: &str| names.iter().position(|&key| key == name);
            assert!(
                position("server") < position("via"),
                "{server}: {:?}",
                wire.headers
            );
        }
    }
}

#[tokio::test]
async fn head_answers_carry_no_body_and_204_and_304_none_either() {
    let no_content = scripted(b"HTTP/1.1 204 No Content\r\nx-kind: 204\r\n\r\n", true).await;
    let not_modified = scripted(
        b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 99\r\n\r\n",
        true,
    )
    .await;
    let chunked_head = scripted(
        b"HTTP/1.1 200 OK\r\nx-kind: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
        true,
    )
    .await;
    let monolith = upstream("monolith").await;
    for server in SERVERS {
        let proxy = proxy_for(server, &monolith.url(), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        client.send(b"HEAD /h HTTP/1.1\r\nhost: a\r\n\r\n").await;
        let wire = client.response("HEAD").await;
        assert_eq!(wire.status(), 200, "{server}");
        assert!(
            wire.header("content-length").is_some_and(|len| len != "0"),
            "{server}: HEAD keeps the length of the GET: {:?}",
            wire.headers
        );
        // Had a body followed the HEAD answer, it would be read as the next status line.
        client.send(get("/after-head").as_bytes()).await;
        let wire = client.response("GET").await;
        assert!(
            wire.text().starts_with("monolith\nGET /after-head\n"),
            "{server}"
        );

        // The answer to a HEAD of a chunked resource has no length to give: none is made up,
        // and no chunk terminator follows it.
        let proxy = proxy_for(server, &format!("http://{chunked_head}"), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        for _ in 0..2 {
            client.send(b"HEAD /c HTTP/1.1\r\nhost: a\r\n\r\n").await;
            let wire = client.response("HEAD").await;
            assert_eq!(wire.status(), 200, "{server}");
            assert_eq!(wire.header("x-kind"), Some("chunked"), "{server}");
            assert_eq!(wire.header("content-length"), None, "{server}");
        }

        for (upstream, status) in [(no_content, 204), (not_modified, 304)] {
            let proxy = proxy_for(server, &format!("http://{upstream}"), "").await;
            let mut client = Raw::connect(proxy.addr).await;
            for _ in 0..2 {
                client.send(get("/").as_bytes()).await;
                let wire = client.response("GET").await;
                assert_eq!(wire.status(), status, "{server}");
                assert!(wire.body.is_empty(), "{server}");
            }
        }
    }
}

#[tokio::test]
async fn a_slow_head_is_served_and_one_slower_than_header_read_is_cut() {
    let monolith = upstream("monolith").await;
    for server in SERVERS {
        let proxy = proxy_for(
            server,
            &monolith.url(),
            "[timeouts]\nheader_read = \"600ms\"",
        )
        .await;
        // Byte by byte, all of it within the timeout.
        let mut client = Raw::connect(proxy.addr).await;
        for byte in get("/trickle").as_bytes() {
            client.send(&[*byte]).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let wire = client.response("GET").await;
        assert!(
            wire.text().starts_with("monolith\nGET /trickle\n"),
            "{server}"
        );

        // Slowloris: a head that never ends.
        let mut client = Raw::connect(proxy.addr).await;
        client.send(b"GET /never HTTP/1.1\r\nhost: a\r\n").await;
        let started = std::time::Instant::now();
        let mut cut = false;
        for _ in 0..40 {
            if client.stream.write_all(b"x-more: 1\r\n").await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, client.stream.read_to_end(&mut rest)).await;
        cut |= matches!(read, Ok(Ok(_)) | Ok(Err(_)));
        assert!(cut, "{server}: a never-ending head was not cut");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{server}: cut after {:?}",
            started.elapsed()
        );

        // An idle keep-alive connection counts as waiting for a head, as with hyper.
        let mut client = Raw::connect(proxy.addr).await;
        client.send(get("/then-idle").as_bytes()).await;
        let _ = client.response("GET").await;
        assert!(client.closes().await, "{server}: idle connection kept open");
    }
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let monolith = upstream("monolith").await;
    let proxy = proxy_for("fig", &monolith.url(), "[timeouts]\nrequest = \"500ms\"").await;
    let mut client = Raw::connect(proxy.addr).await;
    client
        .send(b"POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nabc")
        .await;
    let wire = client.response("POST").await;
    assert_eq!(wire.status(), 408);
    assert_eq!(wire.header("connection"), Some("close"));
    assert!(client.closes().await);
    assert_eq!(
        monolith.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was sent upstream"
    );
}

#[tokio::test]
async fn malformed_heads_get_400_and_oversized_ones_431() {
    let monolith = upstream("monolith").await;
    for server in SERVERS {
        let proxy = proxy_for(
            server,
            &monolith.url(),
            "[limits]\nmax_header_size = \"8KiB\"",
        )
        .await;
        for (request, status) in [
            ("GET / HTTP/1.1\r\nbad header\r\n\r\n".to_owned(), 400),
            (
                "GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 1, 2\r\n\r\n".to_owned(),
                400,
            ),
            (
                format!(
                    "GET / HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
                    "v".repeat(20_000)
                ),
                431,
            ),
        ] {
            let mut client = Raw::connect(proxy.addr).await;
            client.send(request.as_bytes()).await;
            let wire = client.response("GET").await;
            assert_eq!(wire.status(), status, "{server}: {}", &request[..40]);
        }
        // And the proxy serves the next connection.
        let mut client = Raw::connect(proxy.addr).await;
        client.send(get("/fine").as_bytes()).await;
        assert_eq!(client.response("GET").await.status(), 200, "{server}");
    }
}

#[tokio::test]
async fn the_proxys_own_answers_are_framed_and_dated() {
    // Nothing listens on this address: every request gets the proxy's 502.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = free.local_addr().unwrap();
    drop(free);
    for server in SERVERS {
        let proxy = proxy_for(server, &format!("http://{down}"), "").await;
        let mut client = Raw::connect(proxy.addr).await;
        for _ in 0..2 {
            client.send(get("/").as_bytes()).await;
            let wire = client.response("GET").await;
            assert_eq!(wire.status(), 502, "{server}");
            assert!(!wire.body.is_empty(), "{server}");
            let date = wire.header("date").expect("a Date header");
            assert!(httpdate::parse_http_date(date).is_ok(), "{server}: {date}");
            assert_eq!(wire.header("x-fig-upstream"), Some("monolith"), "{server}");
        }
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_lets_a_busy_one_finish() {
    let monolith: Upstream = upstream("monolith").await;
    for server in SERVERS {
        let mut proxy = proxy_for(server, &monolith.url(), "").await;
        let mut idle = Raw::connect(proxy.addr).await;
        idle.send(get("/idle").as_bytes()).await;
        let _ = idle.response("GET").await;
        let mut busy = Raw::connect(proxy.addr).await;
        busy.send(get("/slow").as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let served = proxy.shutdown();
        assert!(idle.closes().await, "{server}: idle connection left open");
        let wire = busy.response("GET").await;
        assert_eq!(wire.text(), "monolith slow\n", "{server}");
        assert_eq!(wire.header("connection"), Some("close"), "{server}");
        tokio::time::timeout(WAIT, served)
            .await
            .expect("drained")
            .unwrap()
            .unwrap();
    }
}
