//! Connection lifetimes (connections.rs): streams in flight and idleness, the HTTP/2 handshake
//! seen in the client's bytes, the deadlines [`drive`] enforces, the accept back-off and the
//! default cap. On tokio's paused clock: every wait is exact and instant.
//!
//! Covers issue 15, item 5: idle HTTP/2 cleartext connections were never closed.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::connections::{
    self, Backoff, Ended, H2Deadlines, Phase, Protocol, Sniff, Streams, default_max_connections,
    drive,
};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A SETTINGS frame with one setting (6 bytes of payload).
const SETTINGS: &[u8] = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64";

const DEADLINES: H2Deadlines = H2Deadlines {
    handshake: Duration::from_secs(10),
    idle: Duration::from_secs(60),
    grace: Duration::from_secs(20),
};

#[tokio::test(start_paused = true)]
async fn a_connection_is_idle_only_when_no_stream_has_been_open_for_the_whole_timeout() {
    let streams = Streams::new();
    let start = Instant::now();
    // A stream open from 0 s to 30 s, another from 50 s to 55 s: idle from 55 s, so the
    // 60 s idle timeout passes at 115 s.
    let first = streams.open();
    let tracker = streams.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(first);
        tokio::time::sleep(Duration::from_secs(20)).await;
        let second = tracker.open();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(second);
    });
    tokio::time::timeout(
        Duration::from_secs(600),
        streams.idle_for(Duration::from_secs(60)),
    )
    .await
    .expect("idle in the end");
    assert_eq!(Instant::now() - start, Duration::from_secs(115));
}

#[tokio::test(start_paused = true)]
async fn a_connection_with_a_stream_open_is_never_idle() {
    let streams = Streams::new();
    let _open = streams.open();
    let idle = tokio::time::timeout(
        Duration::from_secs(3600),
        streams.idle_for(Duration::from_secs(1)),
    )
    .await;
    assert!(idle.is_err(), "idle with a stream open");
}

#[tokio::test(start_paused = true)]
async fn a_response_body_keeps_its_stream_open_until_it_is_sent() {
    use http_body_util::BodyExt as _;
    let streams = Streams::new();
    let body = http_body_util::Full::new(bytes::Bytes::from_static(b"hello"));
    let mut tracked = connections::Tracked::new(body, streams.open());
    let start = Instant::now();
    let idle = streams.clone();
    let waiter = tokio::spawn(async move { idle.idle_for(Duration::from_secs(5)).await });
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!waiter.is_finished(), "idle while a body is unsent");
    while tracked.frame().await.is_some() {}
    waiter.await.expect("the waiter");
    assert_eq!(Instant::now() - start, Duration::from_secs(35));
}

/// Sends `pieces` one write at a time through [`Sniff`] and returns the phase after each.
async fn phases(pieces: &[&[u8]]) -> Vec<Phase> {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let (mut sniff, protocol) = Sniff::new(server);
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    for piece in pieces {
        client.write_all(piece).await.expect("write");
        let mut got = 0;
        while got < piece.len() {
            got += sniff.read(&mut buf).await.expect("read");
        }
        seen.push(protocol.get());
    }
    seen
}

#[tokio::test]
async fn the_handshake_ends_with_the_clients_whole_first_settings_frame() {
    let (half, rest) = SETTINGS.split_at(11);
    assert_eq!(
        phases(&[&PREFACE[..5], &PREFACE[5..], half, rest]).await,
        [Phase::Preface, Phase::Preface, Phase::Preface, Phase::H2]
    );
    assert_eq!(phases(&[&[PREFACE, SETTINGS].concat()]).await, [Phase::H2]);
    assert_eq!(
        phases(&[b"GET / HTTP/1.1\r\n", b"PRI"]).await,
        [Phase::Http1, Phase::Http1]
    );
    assert_eq!(phases(&[b"PRI * HTTP/1.1\r\n"]).await, [Phase::Http1]);
}

/// A stand-in for hyper's connection: pending until shut down, then done (or never, for a peer
/// that does not finish the shutdown).
struct FakeConn {
    shut_down: Arc<AtomicBool>,
    ends_on_shutdown: bool,
}

impl Future for FakeConn {
    type Output = Result<(), String>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        if self.ends_on_shutdown && self.shut_down.load(Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

struct Run {
    ended: Ended<Result<(), String>>,
    after: Duration,
    shut_down: bool,
}

/// Drives a fake connection whose client sent `bytes`, with one stream open for the first
/// `busy` (if any), and a shutdown of the proxy after `stop_after` (if any).
async fn drive_fake(
    bytes: &[u8],
    ends_on_shutdown: bool,
    busy: Option<Duration>,
    stop_after: Option<Duration>,
) -> Run {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let (mut sniff, protocol): (_, Arc<Protocol>) = Sniff::new(server);
    client.write_all(bytes).await.expect("write");
    if !bytes.is_empty() {
        let mut buf = vec![0u8; bytes.len()];
        sniff.read_exact(&mut buf).await.expect("read");
    }
    let streams = Streams::new();
    if let Some(busy) = busy {
        let stream = streams.open();
        tokio::spawn(async move {
            tokio::time::sleep(busy).await;
            drop(stream);
        });
    }
    let (stop_tx, stop) = watch::channel(false);
    if let Some(after) = stop_after {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = stop_tx.send(true);
        });
    }
    let shut_down = Arc::new(AtomicBool::new(false));
    let conn = pin!(FakeConn {
        shut_down: shut_down.clone(),
        ends_on_shutdown,
    });
    let start = Instant::now();
    let flag = shut_down.clone();
    let ended = tokio::time::timeout(
        Duration::from_secs(3600),
        drive(
            conn,
            move |_| flag.store(true, Ordering::SeqCst),
            &streams,
            &protocol,
            DEADLINES,
            stop,
        ),
    )
    .await
    .expect("the connection ended within an hour");
    drop(stop_tx);
    Run {
        ended,
        after: Instant::now() - start,
        shut_down: shut_down.load(Ordering::SeqCst),
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_without_a_handshake_is_closed_at_the_handshake_deadline() {
    for bytes in [&b""[..], PREFACE, &[PREFACE, &SETTINGS[..9]].concat()] {
        let run = drive_fake(bytes, true, None, None).await;
        assert_eq!(run.ended, Ended::HandshakeTimeout, "after {bytes:?}");
        assert_eq!(run.after, DEADLINES.handshake);
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_h2_connection_is_shut_down_gracefully_at_the_idle_deadline() {
    let handshake = [PREFACE, SETTINGS].concat();
    let run = drive_fake(&handshake, true, None, None).await;
    assert_eq!(run.ended, Ended::Idle(Some(Ok(()))));
    assert!(run.shut_down, "a graceful shutdown (GOAWAY)");
    assert_eq!(run.after, DEADLINES.idle);
    // Busy for 100 s: idle from then on.
    let run = drive_fake(&handshake, true, Some(Duration::from_secs(100)), None).await;
    assert_eq!(run.ended, Ended::Idle(Some(Ok(()))));
    assert_eq!(run.after, Duration::from_secs(160));
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_finish_the_shutdown_is_dropped_after_the_grace_time() {
    let run = drive_fake(&[PREFACE, SETTINGS].concat(), false, None, None).await;
    assert_eq!(run.ended, Ended::Idle(None));
    assert_eq!(run.after, DEADLINES.idle + DEADLINES.grace);
}

#[tokio::test(start_paused = true)]
async fn http1_connections_keep_their_own_deadlines() {
    let outcome = tokio::time::timeout(
        Duration::from_secs(3000),
        drive_fake(b"GET / HTTP/1.1\r\n", true, None, None),
    )
    .await;
    assert!(
        outcome.is_err(),
        "an HTTP/1 connection was ended by h2 deadlines"
    );
}

#[tokio::test(start_paused = true)]
async fn the_proxys_shutdown_shuts_the_connection_down_gracefully() {
    let run = drive_fake(
        &[PREFACE, SETTINGS].concat(),
        true,
        None,
        Some(Duration::from_secs(3)),
    )
    .await;
    assert_eq!(run.ended, Ended::Closed(Ok(())));
    assert!(run.shut_down);
    assert_eq!(run.after, Duration::from_secs(3));
}

#[test]
fn failed_accepts_back_off_from_5ms_to_1s_and_start_over_after_a_success() {
    let mut backoff = Backoff::new();
    let pauses: Vec<u128> = (0..10).map(|_| backoff.failed().as_millis()).collect();
    assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    backoff.reset();
    assert_eq!(backoff.failed(), Duration::from_millis(5));
}

#[test]
fn the_default_cap_leaves_room_for_upstream_connections_and_files() {
    assert_eq!(default_max_connections(Some(1024)), 480);
    assert_eq!(default_max_connections(Some(200)), 68);
    assert_eq!(default_max_connections(Some(10)), 1);
    assert_eq!(default_max_connections(None), 1 << 20);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_log_line_comes_once_a_period_and_counts_the_rest() {
    let every = connections::Every::new(Duration::from_secs(10));
    assert_eq!(every.ready(), Some(0));
    assert_eq!(every.ready(), None);
    assert_eq!(every.ready(), None);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(every.ready(), Some(2));
}

/// Parses a config made of `text` and a monolith upstream.
fn parse(text: &str) -> Result<crate::Config, String> {
    let text = format!("{text}\n[upstreams.monolith]\naddresses = [\"http://127.0.0.1:8080\"]\n");
    let path = std::path::Path::new("fig-proxy.toml");
    crate::Config::parse(&text, Some(path), &crate::Overrides::default())
        .map_err(|err| err.to_string())
}

#[test]
fn the_connection_settings_have_defaults_and_can_be_set() {
    let config = parse("").expect("an empty config");
    assert_eq!(config.max_connections, None, "derived from the file limit");
    let timeouts = config.timeouts;
    assert_eq!(
        [
            timeouts.h2_handshake,
            timeouts.h2_idle,
            timeouts.h2_ping_interval,
            timeouts.h2_ping_timeout
        ],
        [10, 60, 60, 20].map(Duration::from_secs)
    );
    let config = parse(
        "[server]\nmax_connections = 3\n[timeouts]\nh2_handshake = \"1s\"\nh2_idle = \"2s\"\nh2_ping_interval = \"3s\"\nh2_ping_timeout = \"4s\"\n",
    )
    .expect("a config with every connection setting");
    assert_eq!(config.max_connections, Some(3));
    let timeouts = config.timeouts;
    assert_eq!(
        [
            timeouts.h2_handshake,
            timeouts.h2_idle,
            timeouts.h2_ping_interval,
            timeouts.h2_ping_timeout
        ],
        [1, 2, 3, 4].map(Duration::from_secs)
    );
}

#[test]
fn connection_settings_that_would_refuse_or_close_everything_are_refused_with_their_place() {
    assert_eq!(
        parse("[server]\nmax_connections = 0\n").unwrap_err(),
        "fig-proxy.toml:2:19: `max_connections` must be at least 1; leave it out for a cap derived from the file limit"
    );
    assert_eq!(
        parse("[server]\nmax_connections = -5\n").unwrap_err(),
        "fig-proxy.toml:2:19: `max_connections` must be at least 1; leave it out for a cap derived from the file limit"
    );
    assert_eq!(
        parse("[timeouts]\nh2_idle = \"0s\"\n").unwrap_err(),
        "fig-proxy.toml:2:11: `h2_idle` must be longer than 0"
    );
    assert!(
        parse("[timeouts]\nh2_handshake = \"soon\"\n")
            .unwrap_err()
            .starts_with("fig-proxy.toml:2:16: invalid duration `soon`"),
    );
}
