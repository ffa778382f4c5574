//! Connections that end (issue 15, item 5: idle HTTP/2 cleartext connections were never closed,
//! and at the file limit they stopped all service): the HTTP/2 handshake and idle deadlines, the
//! connection cap and its 503, and accepting at the process's file limit.
//!
//! Each test starts the real `fig proxy` on port 0 in front of a healthy upstream, with the
//! deadlines set short in its config, and talks raw TCP to it: HTTP/2 frames are written and read
//! by hand, as an attacker's script would. Every wait is bounded.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::faulty::{Faulty, Mode};
use crate::support::fig;
use crate::support::procs::Proc;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// The SETTINGS acknowledgement.
const SETTINGS_ACK: &[u8] = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00";
const HEADERS: u8 = 1;
const SETTINGS_FRAME: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;

/// The admin token of every proxy here.
const TOKEN: &str = "connections-test-token";

/// A running `fig proxy`.
struct Proxy {
    dir: tempfile::TempDir,
    proc: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
    _upstream: Faulty,
}

/// Starts `fig proxy` in front of `upstream` with `server` and `timeouts` added to those tables,
/// run through `wrapper` (such as `prlimit --nofile=...`) when there is one.
fn start_with(upstream: Faulty, server: &str, timeouts: &str, wrapper: &[&str]) -> Proxy {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"[server]
listen = "127.0.0.1:0"
{server}

[timeouts]
{timeouts}

[upstreams.monolith]
addresses = ["http://{}"]

[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"
"#,
        upstream.addr
    );
    std::fs::write(dir.path().join("admin.token"), TOKEN).expect("write the token");
    let path = dir.path().join("fig-proxy.toml");
    std::fs::write(&path, config).expect("write the config");
    let mut command = match wrapper.split_first() {
        None => fig(),
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(fig().get_program());
            command
        }
    };
    command.arg("proxy").arg("--config").arg(&path);
    let mut proc = Proc::spawn("fig proxy", command);
    let addr = proc.address("listening on http://");
    let admin = proc.address("admin on http://");
    Proxy {
        dir,
        proc,
        addr,
        admin,
        _upstream: upstream,
    }
}

fn start(server: &str, timeouts: &str) -> Proxy {
    start_with(
        Faulty::start("monolith", Mode::Healthy),
        server,
        timeouts,
        &[],
    )
}

impl Proxy {
    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to the proxy");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("a read timeout");
        stream
    }

    /// `GET path` on the proxy (HTTP/1.1, `Connection: close`): the status line and the rest.
    fn get(&self, path: &str) -> String {
        http1_get(self.addr, path, "")
    }

    /// The value of one metric line (`name{labels}`), from the admin API.
    fn metric(&self, series: &str) -> f64 {
        let metrics = http1_get(
            self.admin,
            "/metrics",
            &format!("Authorization: Bearer {TOKEN}\r\n"),
        );
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{metrics}"))
    }

    /// Polls the metric until `done` holds, for at most 20 s.
    #[track_caller]
    fn wait_for_metric(&self, series: &str, done: impl Fn(f64) -> bool) {
        let start = Instant::now();
        loop {
            let value = self.metric(series);
            if done(value) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{series} is still {value}; proxy stderr:\n{}",
                self.proc.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `GET path` on `addr` with the header lines `fields` (each ending in CRLF).
fn http1_get(addr: SocketAddr, path: &str, fields: &str) -> String {
    try_http1_get(addr, path, fields).unwrap_or_else(|err| panic!("GET {path} on {addr}: {err}"))
}

fn try_http1_get(addr: SocketAddr, path: &str, fields: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{fields}Connection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Reads until the peer closes the connection (or resets it); returns what came before, or
/// `None` if it was still open after `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(got),
        }
    }
    None
}

/// One HTTP/2 frame: type, flags, stream id, payload.
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// Splits whole frames off the front of `bytes`.
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        if rest.len() < 9 + length {
            break;
        }
        frames.push(Frame {
            kind: rest[3],
            flags: rest[4],
            stream: u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff,
            payload: rest[9..9 + length].to_vec(),
        });
        rest = &rest[9 + length..];
    }
    frames
}

/// A GET on stream 1, its fields as HPACK literals without indexing.
fn get_request(path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "fig.test"),
        (":path", path),
    ] {
        block.push(0);
        block.push(u8::try_from(name.len()).expect("a short name"));
        block.extend_from_slice(name.as_bytes());
        block.push(u8::try_from(value.len()).expect("a short value"));
        block.extend_from_slice(value.as_bytes());
    }
    let length = u32::try_from(block.len())
        .expect("a short block")
        .to_be_bytes();
    // END_STREAM | END_HEADERS on stream 1.
    let mut frame = vec![length[1], length[2], length[3], HEADERS, 0x5, 0, 0, 0, 1];
    frame.extend_from_slice(&block);
    frame
}

/// Everything an h2 client that answers SETTINGS and PINGs (as a live client does) received
/// until the proxy closed the connection; `None` if it did not within `limit`.
fn h2_frames_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<Frame>> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut answered = 0;
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Some(frames(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(frames(&got)),
        }
        let received = frames(&got);
        for frame in &received[answered..] {
            let reply = match (frame.kind, frame.flags & 1) {
                (SETTINGS_FRAME, 0) => SETTINGS_ACK.to_vec(),
                (PING, 0) => {
                    let mut pong = vec![0, 0, 8, PING, 1, 0, 0, 0, 0];
                    pong.extend_from_slice(&frame.payload);
                    pong
                }
                _ => continue,
            };
            // The proxy may close first: what it sent is what counts.
            let _ = stream.write_all(&reply);
        }
        answered = received.len();
    }
    None
}

/// Covers issue 15, item 5: 2,000 silent h2c connections stayed open for ever.
#[test]
fn h2c_connections_without_a_handshake_are_closed_at_the_handshake_deadline() {
    for http1 in ["fig", "hyper"] {
        let proxy = start(&format!("http1 = \"{http1}\""), "h2_handshake = \"1s\"");
        let started = Instant::now();
        // The preface alone, the preface and half a SETTINGS frame, half the preface: never a
        // handshake. With hyper's server for every connection, a connection that sends nothing
        // is waiting for one too.
        let mut openings: Vec<Vec<u8>> = vec![
            PREFACE.to_vec(),
            [PREFACE, &SETTINGS[..5]].concat(),
            PREFACE[..16].to_vec(),
        ];
        if http1 == "hyper" {
            openings.push(Vec::new());
        }
        let mut silent: Vec<(usize, TcpStream)> = Vec::new();
        for (idx, opening) in openings.iter().enumerate() {
            for _ in 0..5 {
                let mut stream = proxy.connect();
                stream.write_all(opening).expect("send the opening");
                silent.push((idx, stream));
            }
        }
        for (idx, stream) in &mut silent {
            let closed = read_until_closed(stream, Duration::from_secs(20));
            assert!(
                closed.is_some(),
                "http1 = {http1}: a connection that sent {:?} is still open after 20 s",
                String::from_utf8_lossy(&openings[*idx])
            );
        }
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "closed before the deadline: {:?}",
            started.elapsed()
        );
        proxy.wait_for_metric(
            "fig_proxy_connections_timed_out_total{timeout=\"h2-handshake\"}",
            |n| n >= 15.0,
        );
        // A client that does shake hands is served as before.
        let mut client = proxy.connect();
        client
            .write_all(&[PREFACE, SETTINGS, &get_request("/h2")].concat())
            .expect("send a request");
        let frames = h2_frames_until_closed(&mut client, Duration::from_secs(2));
        assert!(frames.is_none(), "the h2 client was cut off: {frames:?}");
    }
}

/// Covers issue 15, item 5: an idle h2c connection (handshake done, no stream) was never closed.
#[test]
fn an_idle_h2c_connection_gets_goaway_then_is_closed() {
    let proxy = start("", "h2_idle = \"1s\"\nh2_ping_timeout = \"2s\"");
    // One request, answered; then nothing.
    let mut client = proxy.connect();
    let started = Instant::now();
    client
        .write_all(&[PREFACE, SETTINGS, &get_request("/orders/1")].concat())
        .expect("send a request");
    let frames = h2_frames_until_closed(&mut client, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still open after 20 s; stderr:\n{}", proxy.proc.stderr()));
    let elapsed = started.elapsed();
    let kinds: Vec<(u8, u32)> = frames.iter().map(|f| (f.kind, f.stream)).collect();
    let answered = kinds.iter().position(|&k| k == (HEADERS, 1));
    let goaway = frames.iter().position(|f| f.kind == GOAWAY);
    assert!(
        answered.is_some() && goaway.is_some() && answered < goaway,
        "expected the response, then GOAWAY: {kinds:?}"
    );
    // NO_ERROR: a graceful close, which a client retries on a new connection.
    let code = &frames[goaway.unwrap_or_default()].payload[4..8];
    assert_eq!(code, [0, 0, 0, 0], "GOAWAY code");
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed before the idle deadline: {elapsed:?}"
    );
    proxy.wait_for_metric(
        "fig_proxy_connections_timed_out_total{timeout=\"h2-idle\"}",
        |n| n >= 1.0,
    );

    // A stream in flight longer than the idle deadline is not idleness: answered, then GOAWAY.
    let slow = start_with(
        Faulty::start("monolith", Mode::Slow(Duration::from_secs(3))),
        "",
        "h2_idle = \"1s\"\nh2_ping_timeout = \"2s\"",
        &[],
    );
    let mut client = slow.connect();
    client
        .write_all(&[PREFACE, SETTINGS, &get_request("/slow")].concat())
        .expect("send a request");
    let frames = h2_frames_until_closed(&mut client, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still open after 20 s; stderr:\n{}", slow.proc.stderr()));
    let kinds: Vec<(u8, u32)> = frames.iter().map(|f| (f.kind, f.stream)).collect();
    let answered = kinds.iter().position(|&k| k == (HEADERS, 1));
    let goaway = kinds.iter().position(|&(kind, _)| kind == GOAWAY);
    assert!(
        answered.is_some() && answered < goaway,
        "the slow response must come before GOAWAY: {kinds:?}"
    );
}

/// Covers issue 15, item 5: a connection cap with a clear refusal, the admin API still open.
#[test]
fn at_the_connection_cap_a_new_connection_gets_503_and_the_admin_api_still_answers() {
    let proxy = start("max_connections = 3", "");
    assert!(proxy.get("/healthz").starts_with("HTTP/1.1 200"));
    proxy.wait_for_metric("fig_proxy_connections", |n| n == 0.0);
    let mut held: Vec<TcpStream> = (0..3).map(|_| proxy.connect()).collect();
    proxy.wait_for_metric("fig_proxy_connections", |n| n == 3.0);

    let mut fourth = proxy.connect();
    // The answer comes without a request: nothing is read.
    let answer = read_until_closed(&mut fourth, Duration::from_secs(10))
        .expect("the fourth connection is closed");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(
        answer.starts_with("http/1.1 503 service unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.contains("server.max_connections"), "{answer}");
    // Ops can still look and roll back.
    assert!(http1_get(proxy.admin, "/healthz", "").starts_with("HTTP/1.1 200"));
    proxy.wait_for_metric("fig_proxy_connections_refused_total", |n| n == 1.0);
    assert_eq!(proxy.metric("fig_proxy_connections_max"), 3.0);
    assert!(
        proxy
            .proc
            .stderr_within("server.max_connections", Duration::from_secs(10)),
        "a warning names the cap; stderr:\n{}",
        proxy.proc.stderr()
    );

    // A held connection ends: room for a new one.
    drop(held.pop());
    proxy.wait_for_metric("fig_proxy_connections", |n| n == 2.0);
    assert!(proxy.get("/healthz").starts_with("HTTP/1.1 200"));
    // And the held ones still work.
    write!(
        held[0],
        "GET /healthz HTTP/1.1\r\nHost: fig.test\r\nConnection: close\r\n\r\n"
    )
    .expect("send on a held connection");
    let answer = read_until_closed(&mut held[0], Duration::from_secs(10)).expect("answered");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

/// The `prlimit` wrapper that gives `fig proxy` this file limit (soft:hard).
fn prlimit(limits: &str) -> Vec<String> {
    vec![
        "prlimit".to_owned(),
        format!("--nofile={limits}"),
        "--".to_owned(),
    ]
}

/// Covers issue 15, item 5: at the process's file limit the proxy stopped all service; the
/// accept loop must neither spin nor stop.
#[test]
fn at_the_file_limit_the_proxy_backs_off_and_serves_again_once_connections_close() {
    let wrapper = prlimit("48:48");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    // A cap above the limit: `accept` itself fails.
    let proxy = start_with(
        Faulty::start("monolith", Mode::Healthy),
        "max_connections = 1000\nworkers = 1",
        "",
        &wrapper,
    );
    assert!(proxy.get("/healthz").starts_with("HTTP/1.1 200"));
    // More connections than files: the kernel queues them, the proxy cannot take them all.
    // (Nor can the admin API: it is not asked meanwhile.)
    let held: Vec<TcpStream> = (0..80).map(|_| proxy.connect()).collect();
    let accept_warnings = || {
        let stderr = proxy.proc.stderr();
        stderr
            .lines()
            .filter(|line| line.contains("accept failed") && !line.contains("admin"))
            .count()
    };
    let start = Instant::now();
    while accept_warnings() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no accept failure at the file limit; stderr:\n{}",
            proxy.proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Two seconds at the limit, accepts failing: warned about once, not in a loop.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        accept_warnings(),
        1,
        "accept warnings; stderr:\n{}",
        proxy.proc.stderr()
    );
    // The held connections go: service comes back.
    drop(held);
    let start = Instant::now();
    loop {
        let answer = try_http1_get(proxy.addr, "/healthz", "");
        if answer.is_ok_and(|answer| answer.starts_with("HTTP/1.1 200")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no service 20 s after the connections closed; stderr:\n{}",
            proxy.proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(proxy.metric("fig_proxy_accept_errors_total") >= 1.0);
}

/// The default cap follows the file limit, raised to its hard limit at start.
#[test]
fn the_default_connection_cap_follows_the_raised_file_limit() {
    let wrapper = prlimit("100:200");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let proxy = start_with(Faulty::start("monolith", Mode::Healthy), "", "", &wrapper);
    // (200 files - 64 reserved) / 2 sockets per proxied connection.
    assert_eq!(proxy.metric("fig_proxy_connections_max"), 68.0);
}

/// Covers issue 15, item 5: keep-alive PINGs find a peer that is gone, even while its request
/// waits for a slow upstream (so the connection is not idle).
#[test]
fn an_h2c_peer_that_does_not_answer_pings_is_closed() {
    let proxy = start_with(
        Faulty::start("monolith", Mode::Slow(Duration::from_secs(60))),
        "",
        "h2_ping_interval = \"1s\"\nh2_ping_timeout = \"1s\"",
        &[],
    );
    let mut client = proxy.connect();
    let started = Instant::now();
    client
        .write_all(&[PREFACE, SETTINGS, &get_request("/slow")].concat())
        .expect("send a request");
    // Reads, and answers nothing: not the SETTINGS, not the PINGs.
    let received = read_until_closed(&mut client, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still open after 20 s; stderr:\n{}", proxy.proc.stderr()));
    let kinds: Vec<u8> = frames(&received).iter().map(|frame| frame.kind).collect();
    assert!(kinds.contains(&PING), "no PING before the close: {kinds:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before a PING could be answered: {:?}",
        started.elapsed()
    );
}

/// The cap follows a reload; a reload with a cap of 0 is refused with its place and the cap in
/// force stays.
#[test]
fn a_reloaded_cap_applies_to_new_connections_and_a_bad_one_keeps_the_last_good_one() {
    let proxy = start("max_connections = 1", "");
    let _held = proxy.connect();
    proxy.wait_for_metric("fig_proxy_connections", |n| n == 1.0);
    let mut refused = proxy.connect();
    let answer = read_until_closed(&mut refused, Duration::from_secs(10)).expect("refused");
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");

    let path = proxy.dir.path().join("fig-proxy.toml");
    let config = std::fs::read_to_string(&path).expect("read the config");
    std::fs::write(
        &path,
        config.replace("max_connections = 1", "max_connections = 2"),
    )
    .expect("write the config");
    proxy.proc.signal("HUP");
    // A reload applies to connections accepted after it.
    let start = Instant::now();
    while !proxy.get("/healthz").starts_with("HTTP/1.1 200") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the new cap is not in force; stderr:\n{}",
            proxy.proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(proxy.metric("fig_proxy_connections_max"), 2.0);

    std::fs::write(
        &path,
        config.replace("max_connections = 1", "max_connections = 0"),
    )
    .expect("write the config");
    proxy.proc.signal("HUP");
    let start = Instant::now();
    while !proxy
        .proc
        .stderr()
        .contains("`max_connections` must be at least 1")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the bad cap was not refused; stderr:\n{}",
            proxy.proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        proxy.proc.stderr().contains("fig-proxy.toml:3:19:"),
        "the refusal names the place; stderr:\n{}",
        proxy.proc.stderr()
    );
    assert!(proxy.get("/healthz").starts_with("HTTP/1.1 200"));
    assert_eq!(proxy.metric("fig_proxy_connections_max"), 2.0);
}
