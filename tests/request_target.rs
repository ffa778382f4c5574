//! What a request names, on the wire, through the real `fig proxy` (issue 15, items 6, 7 and 9):
//! its Host, its path and the protocol it asks to switch to.
//!
//! The clients and the upstreams here speak raw TCP, because the flaws are in bytes an HTTP
//! library would fix or refuse before sending: two `Host` fields, an absolute-form target,
//! `/./payments`, an `Upgrade: h2c`, a `101` nobody asked for. A [`Recorder`] upstream keeps
//! every request head it receives, so a test can say what reached the upstream, and nothing
//! when the proxy refused. Every read has a deadline.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::support::fig;
use crate::support::procs::Proc;

/// How long any read may wait.
const READ: Duration = Duration::from_secs(10);

/// An HTTP/1.1 upstream on raw TCP that records each request head. It answers `200` with the
/// body `NAME saw TARGET`, except: a target ending in `/ws` that asks for an upgrade gets a `101`
/// switching to what was asked; a target `/101/PROTO` gets a `101` switching to `PROTO`, asked or
/// not. After a `101` it echoes bytes.
struct Recorder {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    fn start(name: &'static str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a recorder");
        let addr = listener.local_addr().expect("its address");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (heads.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || answer(name, stream, &seen));
            }
        });
        Recorder { addr, heads, stop }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request heads received whose request line has `needle`.
    fn heads_with(&self, needle: &str) -> Vec<String> {
        self.heads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|head| {
                head.lines()
                    .next()
                    .is_some_and(|line| line.contains(needle))
            })
            .cloned()
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn answer(name: &str, mut stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(READ));
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut stream, &mut buf) else {
            return;
        };
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(head.clone());
        let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
        let upgrade = field(&head, "upgrade");
        let switch_to = match (target.strip_prefix("/101/"), upgrade) {
            (Some(proto), _) => Some(proto.to_owned()),
            (None, Some(asked)) if target.ends_with("/ws") => Some(asked),
            _ => None,
        };
        if let Some(proto) = switch_to {
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {proto}\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let mut chunk = [0u8; 1024];
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 || stream.write_all(&chunk[..n]).is_err() {
                    return;
                }
            }
            return;
        }
        let body = format!("{name} saw {target}");
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads one message head (to its empty line) from `stream`, keeping what follows in `buf`;
/// `None` at the end of the stream or after [`READ`].
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        if buf.len() > 64 << 10 {
            return None;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The value of the first field `name` (lowercase) of a head.
fn field(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// A response as the client read it.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// A client connection to the proxy.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the proxy");
        stream.set_read_timeout(Some(READ)).expect("a read timeout");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends `request` as it is and reads one response (its body by `Content-Length`).
    #[track_caller]
    fn send(&mut self, request: &str) -> Reply {
        self.stream
            .write_all(request.as_bytes())
            .expect("send a request");
        let head = read_head(&mut self.stream, &mut self.buf)
            .unwrap_or_else(|| panic!("no response to {request:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("a status line: {head:?}"));
        let length: usize = field(&head, "content-length")
            .and_then(|len| len.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < length {
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = self.buf.drain(..length.min(self.buf.len())).collect();
        Reply {
            status,
            head,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// One request on a new connection.
#[track_caller]
fn send(addr: SocketAddr, request: &str) -> Reply {
    Client::connect(addr).send(request)
}

/// A running `fig proxy` and its temporary directory.
struct Proxy {
    _dir: tempfile::TempDir,
    _proc: Proc,
    addr: SocketAddr,
}

/// Starts `fig proxy` with upstreams `monolith` and `service` and the given `[server] http1` and
/// routes.
fn start(http1: &str, monolith: &Recorder, service: &Recorder, routes: &str) -> Proxy {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"[server]
listen = "127.0.0.1:0"
http1 = "{http1}"

[upstreams.monolith]
addresses = ["{monolith}"]

[upstreams.service]
addresses = ["{service}"]

{routes}

[admin]
listen = "127.0.0.1:0"
"#,
        monolith = monolith.url(),
        service = service.url(),
    );
    let path = dir.path().join("fig-proxy.toml");
    std::fs::write(&path, config).expect("write the config");
    let mut command = fig();
    command.arg("proxy").arg("--config").arg(&path);
    let mut proc = Proc::spawn("fig proxy", command);
    let addr = proc.address("listening on http://");
    Proxy {
        _dir: dir,
        _proc: proc,
        addr,
    }
}

// ---------------------------------------------------------------------------------------------
// Item 6: Host.

/// A request with no Host, two of them (even equal), or an invalid one is refused with 400 and
/// reaches no upstream, on both HTTP/1 servers (RFC 9112 3.2).
#[test]
fn host_is_needed_once_and_valid_on_both_http1_servers() {
    for http1 in ["fig", "hyper"] {
        let monolith = Recorder::start("monolith");
        let service = Recorder::start("service");
        let proxy = start(http1, &monolith, &service, "");
        for (case, request) in [
            ("no-host", "GET /no-host HTTP/1.1\r\nx-a: 1\r\n\r\n"),
            (
                "two-hosts",
                "GET /two-hosts HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\n\r\n",
            ),
            (
                "same-host-twice",
                "GET /same-host-twice HTTP/1.1\r\nhost: t\r\nhost: t\r\n\r\n",
            ),
            ("userinfo", "GET /userinfo HTTP/1.1\r\nhost: user@t\r\n\r\n"),
            ("empty-host", "GET /empty-host HTTP/1.1\r\nhost:\r\n\r\n"),
        ] {
            let reply = send(proxy.addr, request);
            assert_eq!(reply.status, 400, "{http1} {case}: {reply:?}");
            assert!(
                monolith.heads_with(case).is_empty(),
                "{http1} {case} reached the upstream: {:?}",
                monolith.heads_with(case)
            );
        }
        let reply = send(proxy.addr, "GET /fine HTTP/1.1\r\nhost: t\r\n\r\n");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "monolith saw /fine")
        );
        // HTTP/1.0 did not require Host.
        let reply = send(proxy.addr, "GET /old HTTP/1.0\r\n\r\n");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "monolith saw /old")
        );
    }
}

/// An absolute-form target's authority wins over `Host` (RFC 9112 3.2.2): the proxy routes on
/// it and the upstream gets it as its `Host`, so that the two never disagree.
#[test]
fn an_absolute_form_target_routes_and_forwards_its_own_host() {
    let monolith = Recorder::start("monolith");
    let service = Recorder::start("service");
    let routes = r#"[[routes]]
name = "by-host"
match = { prefix = "/", host = "service.example" }
service = "service"
"#;
    let proxy = start("fig", &monolith, &service, routes);

    let reply = send(
        proxy.addr,
        "GET http://service.example/abs-1 HTTP/1.1\r\nhost: monolith.example\r\n\r\n",
    );
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "service saw /abs-1")
    );
    let heads = service.heads_with("/abs-1");
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert_eq!(field(&heads[0], "host").as_deref(), Some("service.example"));

    let reply = send(
        proxy.addr,
        "GET http://monolith.example/abs-2 HTTP/1.1\r\nhost: service.example\r\n\r\n",
    );
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "monolith saw /abs-2")
    );
    let heads = monolith.heads_with("/abs-2");
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert_eq!(
        field(&heads[0], "host").as_deref(),
        Some("monolith.example")
    );

    // `Connection: host` does not take away the Host the request was routed on.
    let reply = send(
        proxy.addr,
        "GET /conn-host HTTP/1.1\r\nhost: service.example\r\nconnection: host\r\n\r\n",
    );
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "service saw /conn-host")
    );
    let heads = service.heads_with("/conn-host");
    assert_eq!(field(&heads[0], "host").as_deref(), Some("service.example"));

    // Another scheme is not a target this proxy serves.
    let reply = send(
        proxy.addr,
        "GET ftp://service.example/abs-3 HTTP/1.1\r\nhost: service.example\r\n\r\n",
    );
    assert_eq!(reply.status, 400, "{reply:?}");
}

/// An HTTP/2 (h2c, prior knowledge) request whose `host` differs from its `:authority` is
/// malformed (RFC 9113 8.3.1): 400, and the upstream sees nothing. One that agrees is served,
/// its `:authority` as the upstream's `Host`.
#[test]
fn http2_host_must_agree_with_authority() {
    let monolith = Recorder::start("monolith");
    let service = Recorder::start("service");
    let proxy = start("fig", &monolith, &service, "");
    let status = h2_get(
        proxy.addr,
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "evil.example"),
            (":path", "/h2-mismatch"),
            ("host", "good.example"),
        ],
    );
    assert_eq!(status, 400);
    assert!(monolith.heads_with("/h2-mismatch").is_empty());

    let status = h2_get(
        proxy.addr,
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "good.example"),
            (":path", "/h2-fine"),
        ],
    );
    assert_eq!(status, 200);
    let heads = monolith.heads_with("/h2-fine");
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert_eq!(field(&heads[0], "host").as_deref(), Some("good.example"));
}

/// Sends one HTTP/2 request with these header fields (no body) over a new cleartext connection
/// and returns the response's status. The header block is HPACK literals without indexing, and
/// the status is read from the response's first field, which the proxy's HTTP/2 server (hyper,
/// h2) sends from the static table for 200 and 400.
fn h2_get(addr: SocketAddr, fields: &[(&str, &str)]) -> u16 {
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).expect("a small frame");
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0);
        for text in [name, value] {
            block.push(u8::try_from(text.len()).expect("a short field"));
            block.extend_from_slice(text.as_bytes());
        }
    }
    let mut stream = TcpStream::connect(addr).expect("connect to the proxy");
    stream.set_read_timeout(Some(READ)).expect("a read timeout");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    // HEADERS with END_STREAM and END_HEADERS.
    out.extend(frame(1, 0x5, 1, &block));
    stream.write_all(&out).expect("send the request");
    let mut buf = Vec::new();
    // Frames until the response's HEADERS; at most a few dozen before it.
    for _ in 0..64 {
        while buf.len() < 9
            || buf.len()
                < 9 + (usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]))
        {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => panic!("the HTTP/2 connection ended before a response: {buf:?}"),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let len = usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
        let (kind, flags) = (buf[3], buf[4]);
        let payload: Vec<u8> = buf.drain(..9 + len).skip(9).collect();
        match kind {
            // SETTINGS from the server: acknowledged, as a client must.
            4 if flags & 1 == 0 => stream
                .write_all(&frame(4, 1, 0, &[]))
                .expect("acknowledge settings"),
            1 => {
                return match payload.first() {
                    Some(0x88) => 200,
                    Some(0x8c) => 400,
                    other => panic!("a status this client cannot read: {other:?} in {payload:?}"),
                };
            }
            3 | 7 => panic!("the stream or connection was reset: kind {kind}, {payload:?}"),
            _ => {}
        }
    }
    panic!("no response HEADERS among the first frames")
}

// ---------------------------------------------------------------------------------------------
// Item 7: routes match the normalised path.

/// `/./payments/1`, `//payments/1`, `/%70ayments/1` and the like are `/payments/1`: they take the
/// route, so its rate limit holds (NGINX answers 429 too), where they used to reach the monolith.
#[test]
fn another_spelling_of_a_path_takes_its_route_and_its_rate_limit() {
    let monolith = Recorder::start("monolith");
    let service = Recorder::start("service");
    let routes = r#"[[routes]]
name = "payments"
match = { prefix = "/payments" }
service = "service"
rate_limit = { rate = 1, per = "1h", burst = 1, key = "global" }
"#;
    let proxy = start("fig", &monolith, &service, routes);
    let reply = send(proxy.addr, "GET /payments/1 HTTP/1.1\r\nhost: t\r\n\r\n");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "service saw /payments/1")
    );
    for path in [
        "/payments/1",
        "/./payments/1",
        "//payments/1",
        "/%70ayments/1",
        "/x/../payments/1",
        "/%2e/payments/1",
        "/x/%2E%2e/payments/1",
    ] {
        let reply = send(
            proxy.addr,
            &format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n"),
        );
        assert_eq!(reply.status, 429, "{path}: {reply:?}");
    }
    assert!(
        monolith.heads_with("ayments").is_empty(),
        "{:?}",
        monolith.heads_with("ayments")
    );
}

/// The upstream gets the path the proxy routed (the query as it was), and a path that has no
/// normal form is refused with 400 before any upstream sees it, on both HTTP/1 servers.
#[test]
fn the_upstream_reads_the_path_that_was_routed() {
    for http1 in ["fig", "hyper"] {
        let monolith = Recorder::start("monolith");
        let service = Recorder::start("service");
        let routes = r#"[[routes]]
name = "orders"
match = { prefix = "/orders" }
service = "service"
"#;
        let proxy = start(http1, &monolith, &service, routes);
        let reply = send(
            proxy.addr,
            "GET //%6Frders/./%7e1/../2?q=/../%41 HTTP/1.1\r\nhost: t\r\n\r\n",
        );
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "service saw /orders/2?q=/../%41"),
            "{http1}"
        );
        for (case, path) in [
            ("above-root", "/../above-root"),
            ("encoded-slash", "/orders%2Fencoded-slash"),
            ("encoded-nul", "/orders/encoded-nul%00"),
            ("bad-escape", "/orders/bad-escape%zz"),
        ] {
            let reply = send(
                proxy.addr,
                &format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n"),
            );
            assert_eq!(reply.status, 400, "{http1} {case}: {reply:?}");
            assert!(monolith.heads_with(case).is_empty(), "{http1} {case}");
            assert!(service.heads_with(case).is_empty(), "{http1} {case}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Item 9: upgrades.

const UPGRADE_ROUTES: &str = r#"[[routes]]
name = "no-upgrades"
match = { prefix = "/plain" }
service = "service"
upgrades = []
"#;

/// `Upgrade: h2c` would have opened a raw HTTP/2 tunnel to the upstream, past the proxy's
/// routing. It goes as a plain request (without `Upgrade` and the fields `Connection` names),
/// gets a plain answer, and the connection goes on serving HTTP/1.1.
#[test]
fn an_h2c_upgrade_is_forwarded_as_a_plain_request() {
    let monolith = Recorder::start("monolith");
    let service = Recorder::start("service");
    let proxy = start("fig", &monolith, &service, "");
    let mut client = Client::connect(proxy.addr);
    let reply = client.send(
        "GET /h2c/ws HTTP/1.1\r\nhost: t\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    );
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "monolith saw /h2c/ws"),
        "{reply:?}"
    );
    let heads = monolith.heads_with("/h2c/ws");
    assert_eq!(heads.len(), 1, "{heads:?}");
    for name in ["upgrade", "http2-settings", "connection"] {
        assert_eq!(field(&heads[0], name), None, "{name} in {}", heads[0]);
    }
    let reply = client.send("GET /after-h2c HTTP/1.1\r\nhost: t\r\n\r\n");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "monolith saw /after-h2c")
    );
}

/// WebSocket is allowed by default and still tunnels; a route with `upgrades = []` forwards the
/// same request as a plain one.
#[test]
fn websocket_tunnels_where_allowed_only() {
    let monolith = Recorder::start("monolith");
    let service = Recorder::start("service");
    let proxy = start("fig", &monolith, &service, UPGRADE_ROUTES);
    let websocket = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nhost: t\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    let mut client = Client::connect(proxy.addr);
    let reply = client.send(&websocket("/chat/ws"));
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(field(&reply.head, "upgrade").as_deref(), Some("websocket"));
    client
        .stream
        .write_all(b"ping")
        .expect("write through the tunnel");
    let mut echoed = [0u8; 4];
    client
        .stream
        .read_exact(&mut echoed)
        .expect("the echo through the tunnel");
    assert_eq!(&echoed, b"ping");

    let reply = send(proxy.addr, &websocket("/plain/ws"));
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "service saw /plain/ws"),
        "{reply:?}"
    );
    let heads = service.heads_with("/plain/ws");
    assert_eq!(field(&heads[0], "upgrade"), None, "{}", heads[0]);
}

/// A `101` the client did not ask for, or to another protocol than it asked for, opens no tunnel:
/// the client gets 502.
#[test]
fn a_101_nobody_asked_for_is_a_bad_gateway() {
    let monolith = Recorder::start("monolith");
    let service = Recorder::start("service");
    let proxy = start("fig", &monolith, &service, "");
    let reply = send(proxy.addr, "GET /101/websocket HTTP/1.1\r\nhost: t\r\n\r\n");
    assert_eq!(reply.status, 502, "{reply:?}");
    let reply = send(
        proxy.addr,
        "GET /101/h2c HTTP/1.1\r\nhost: t\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
    );
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(monolith.heads_with("/101/").len(), 2);
}

/// A shadow copy carries the path the route matched, as the primary request does.
#[test]
fn a_shadow_copy_carries_the_normalised_path() {
    let monolith = Recorder::start("monolith");
    let service = Recorder::start("service");
    let routes = r#"[[routes]]
name = "orders"
match = { prefix = "/orders" }
service = "service"
shadow = { percent = 100 }

[shadow]
dir = "shadow"
"#;
    let proxy = start("fig", &monolith, &service, routes);
    let reply = send(proxy.addr, "GET //orders/./%37 HTTP/1.1\r\nhost: t\r\n\r\n");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "service saw /orders/7")
    );
    // The copy goes to the fallback in the background: waited for, within a bound.
    let deadline = std::time::Instant::now() + READ;
    while monolith.heads_with("/orders/7").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(monolith.heads_with("/orders/7").len(), 1);
    assert!(monolith.heads_with("//orders").is_empty());
}
