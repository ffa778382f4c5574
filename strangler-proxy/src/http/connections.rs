//! Client connections that end: HTTP/2 handshake and idle deadlines, the connection cap, the
//! process's file limit and accepting at it.
//!
//! hyper's HTTP/2 server has keep-alive PINGs but no deadline for the handshake and none for a
//! connection that carries no stream, so a client could open cleartext HTTP/2 connections and
//! leave them silent for ever (issue 15, item 5: 2,000 of them held 59 MB, and at the file limit
//! nobody else got in). This module adds what NGINX (`http2_recv_timeout`, `keepalive_timeout`)
//! and Envoy (`idle_timeout`) have:
//!
//! - [`Sniff`] watches the first bytes a connection sends and tells HTTP/2 (the preface) from
//!   HTTP/1, and when the client's first SETTINGS frame has arrived: the end of the handshake.
//! - [`Streams`] counts the requests in flight on a connection, from the service call to the end
//!   of the response body ([`Tracked`]), and knows since when none has been.
//! - [`drive`] runs a connection with both: closed when the handshake is not done by
//!   `timeouts.h2_handshake`, shut down gracefully (GOAWAY) when an HTTP/2 connection has had no
//!   stream for `timeouts.h2_idle`, and dropped if the peer does not finish that shutdown within
//!   `timeouts.h2_ping_timeout`. HTTP/1 connections keep their own deadline
//!   (`timeouts.header_read`, which covers an idle keep-alive connection).
//!
//! The cap on open connections (`server.max_connections`) defaults to what the file limit
//! allows ([`default_max_connections`]), which [`raise_file_limit`] first raises to its hard
//! limit, as Go's runtime does at start and NGINX's `worker_rlimit_nofile` lets one do. When
//! `accept` fails for want of files anyway, [`Backoff`] spaces the retries (5 ms doubling to 1 s,
//! as Go's `net/http` does) and [`Every`] keeps the log to one line per period.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The client connection preface of HTTP/2 (RFC 9113 3.4), before its SETTINGS frame.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An HTTP/2 frame header: length (3), type, flags, stream id (4).
const FRAME_HEADER: usize = 9;
/// The SETTINGS frame type.
const SETTINGS: u8 = 4;

/// Files a proxy needs besides its client and upstream connections: listeners, the runtime's
/// epoll and event descriptors, standard streams, the access log, the state file, health checks
/// and the admin API's connections. The default connection cap leaves them free.
pub const RESERVED_FILES: u64 = 64;
/// The default connection cap when the file limit is unlimited.
const UNLIMITED_DEFAULT: usize = 1 << 20;

/// The HTTP/2 deadlines of one connection, from `[timeouts]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct H2Deadlines {
    /// `h2_handshake`: from the start to the end of the client's first SETTINGS frame.
    pub(crate) handshake: Duration,
    /// `h2_idle`: the longest time with no stream open.
    pub(crate) idle: Duration,
    /// `h2_ping_timeout`: how long a graceful shutdown for idleness may take.
    pub(crate) grace: Duration,
}

/// How [`drive`] ended a connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended<T> {
    /// The connection ended by itself (the peer closed it, an error, a graceful shutdown done).
    Closed(T),
    /// The handshake was not done in time: closed.
    HandshakeTimeout,
    /// Idle for too long: shut down gracefully; `None` when the peer did not finish the
    /// shutdown within the grace time and the connection was dropped.
    Idle(Option<T>),
}

/// Runs `conn` until it ends, enforcing the HTTP/2 deadlines: see the module documentation.
/// `shutdown` starts a graceful shutdown of `conn` (hyper's `graceful_shutdown`), which happens
/// too when `stop` turns true (the proxy is shutting down).
pub(crate) async fn drive<C: Future>(
    mut conn: Pin<&mut C>,
    shutdown: impl Fn(Pin<&mut C>),
    streams: &Streams,
    protocol: &Protocol,
    deadlines: H2Deadlines,
    mut stop: watch::Receiver<bool>,
) -> Ended<C::Output> {
    let start = Instant::now();
    let mut watchdog = pin!(watchdog(start, streams, protocol, deadlines));
    let mut stopped = pin!(async move {
        if stop.wait_for(|stop| *stop).await.is_err() {
            // No one can stop the proxy any more.
            std::future::pending::<()>().await;
        }
    });
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            output = conn.as_mut() => return Ended::Closed(output),
            () = &mut stopped, if !stopping => {
                stopping = true;
                shutdown(conn.as_mut());
            }
            expired = &mut watchdog => match expired {
                Expired::Handshake => return Ended::HandshakeTimeout,
                Expired::Idle => {
                    shutdown(conn.as_mut());
                    let finished = tokio::time::timeout(deadlines.grace, conn.as_mut()).await;
                    return Ended::Idle(finished.ok());
                }
            },
        }
    }
}

/// Logs how a connection ended and counts the deadlines that ended it.
pub(crate) fn record<E: std::fmt::Display>(
    ended: &Ended<Result<(), E>>,
    peer: std::net::SocketAddr,
    metrics: &ConnectionMetrics,
) {
    match ended {
        Ended::Closed(Ok(())) | Ended::Idle(Some(Ok(()))) => {}
        Ended::Closed(Err(err)) | Ended::Idle(Some(Err(err))) => {
            tracing::debug!(%peer, error = %err, "connection ended with an error");
        }
        Ended::HandshakeTimeout => {
            tracing::debug!(%peer, "no HTTP/2 handshake within timeouts.h2_handshake; closing");
        }
        Ended::Idle(None) => {
            tracing::debug!(%peer, "the peer did not finish the idle shutdown within timeouts.h2_ping_timeout; closing");
        }
    }
    match ended {
        Ended::HandshakeTimeout => {
            metrics
                .h2_handshake_timeouts
                .fetch_add(1, Ordering::Relaxed);
        }
        Ended::Idle(_) => {
            metrics.h2_idle_closes.fetch_add(1, Ordering::Relaxed);
        }
        Ended::Closed(_) => {}
    }
}

/// Which deadline passed.
enum Expired {
    Handshake,
    Idle,
}

/// Resolves when a deadline of the connection has passed; never for HTTP/1.
async fn watchdog(
    start: Instant,
    streams: &Streams,
    protocol: &Protocol,
    deadlines: H2Deadlines,
) -> Expired {
    // Lazily: the handshake is looked at when its deadline comes, not as it happens.
    tokio::time::sleep_until(start + deadlines.handshake).await;
    match protocol.get() {
        Phase::Unknown | Phase::Preface => return Expired::Handshake,
        Phase::Http1 => std::future::pending::<()>().await,
        Phase::H2 => {}
    }
    streams.idle_for(deadlines.idle).await;
    Expired::Idle
}

// ---------------------------------------------------------------------------------------------
// Streams in flight.

/// The requests in flight on one connection (HTTP/2 streams, or the one HTTP/1 request), in
/// atomics: opening and ending a stream takes no lock.
#[derive(Debug)]
pub(crate) struct Streams {
    open: AtomicUsize,
    /// When the last stream ended (or the connection started), in nanoseconds after `base`.
    idle_since: AtomicU64,
    base: Instant,
    /// Signalled when the last open stream ends.
    idle: Notify,
}

impl Streams {
    /// A connection with no stream yet, idle from now.
    pub(crate) fn new() -> Arc<Streams> {
        Arc::new(Streams {
            open: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            base: Instant::now(),
            idle: Notify::new(),
        })
    }

    /// Counts a stream as open until the guard is dropped.
    pub(crate) fn open(self: &Arc<Self>) -> StreamGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        StreamGuard(self.clone())
    }

    /// Resolves once no stream has been open for `timeout`.
    pub(crate) async fn idle_for(&self, timeout: Duration) {
        loop {
            // Made before the state is read, so that a stream ending in between is not missed.
            let notified = self.idle.notified();
            // `open` first: a stream that ended stored its time before it counted itself out.
            if self.open.load(Ordering::SeqCst) > 0 {
                notified.await;
                continue;
            }
            let idle_since =
                self.base + Duration::from_nanos(self.idle_since.load(Ordering::SeqCst));
            let deadline = idle_since + timeout;
            if Instant::now() >= deadline {
                return;
            }
            // A stream may open and end meanwhile: the state is read again when this fires.
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One open stream of a [`Streams`]; dropping it ends the stream.
#[derive(Debug)]
pub(crate) struct StreamGuard(Arc<Streams>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let streams = &self.0;
        let now = u64::try_from((Instant::now() - streams.base).as_nanos()).unwrap_or(u64::MAX);
        // Stored by every ending stream, before it counts itself out: whichever makes the count
        // zero has stored a time no earlier than any other's.
        streams.idle_since.fetch_max(now, Ordering::SeqCst);
        if streams.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            streams.idle.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its stream open until it is done (or dropped): a long
    /// download is not an idle connection.
    pub(crate) struct Tracked<B> {
        #[pin]
        body: B,
        stream: Option<StreamGuard>,
    }
}

impl<B> Tracked<B> {
    /// `body`, keeping `stream` open until it ends.
    pub(crate) fn new(body: B, stream: StreamGuard) -> Tracked<B> {
        Tracked {
            body,
            stream: Some(stream),
        }
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.stream.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------
// The protocol and the HTTP/2 handshake, from the bytes the client sends.

/// What the first bytes of a connection said, shared between [`Sniff`] and [`drive`].
#[derive(Debug, Default)]
pub(crate) struct Protocol(AtomicU8);

/// How far a connection has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Nothing decisive read yet.
    Unknown,
    /// The HTTP/2 preface (or part of it), and not yet the whole first SETTINGS frame.
    Preface,
    /// HTTP/2, handshake done: the preface and a whole first frame (SETTINGS) arrived.
    H2,
    /// Not HTTP/2: hyper's HTTP/1 server and its own deadlines.
    Http1,
}

impl Protocol {
    /// The phase reached.
    pub(crate) fn get(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            1 => Phase::Preface,
            2 => Phase::H2,
            3 => Phase::Http1,
            _ => Phase::Unknown,
        }
    }

    fn set(&self, phase: Phase) {
        let value = match phase {
            Phase::Unknown => 0,
            Phase::Preface => 1,
            Phase::H2 => 2,
            Phase::Http1 => 3,
        };
        self.0.store(value, Ordering::Release);
    }
}

pin_project_lite::pin_project! {
    /// A client connection whose first bytes are watched until they tell its protocol and, for
    /// HTTP/2, the end of the handshake; then it is a plain pass-through.
    pub(crate) struct Sniff<I> {
        #[pin]
        io: I,
        protocol: Arc<Protocol>,
        // Bytes read so far, while undecided.
        seen: usize,
        // The first frame's header after the preface.
        header: [u8; FRAME_HEADER],
        decided: bool,
    }
}

impl<I> Sniff<I> {
    /// Wraps `io`; the returned [`Protocol`] follows what it reads.
    pub(crate) fn new(io: I) -> (Sniff<I>, Arc<Protocol>) {
        let protocol = Arc::new(Protocol::default());
        let sniff = Sniff {
            io,
            protocol: protocol.clone(),
            seen: 0,
            header: [0; FRAME_HEADER],
            decided: false,
        };
        (sniff, protocol)
    }
}

/// Feeds the next bytes of a connection; returns the phase reached and whether it is final.
fn feed(seen: &mut usize, header: &mut [u8; FRAME_HEADER], bytes: &[u8]) -> (Phase, bool) {
    for &byte in bytes {
        let at = *seen;
        if at < PREFACE.len() {
            if byte != PREFACE[at] {
                return (Phase::Http1, true);
            }
        } else if at < PREFACE.len() + FRAME_HEADER {
            header[at - PREFACE.len()] = byte;
        }
        *seen += 1;
        if *seen >= PREFACE.len() + FRAME_HEADER {
            if header[3] != SETTINGS {
                // A protocol error hyper answers itself; no handshake to wait for.
                return (Phase::H2, true);
            }
            let length =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            if *seen >= PREFACE.len() + FRAME_HEADER + length {
                return (Phase::H2, true);
            }
        }
    }
    let phase = if *seen == 0 {
        Phase::Unknown
    } else {
        Phase::Preface
    };
    (phase, false)
}

impl<I: AsyncRead> AsyncRead for Sniff<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if !*this.decided && matches!(polled, Poll::Ready(Ok(()))) {
            let (phase, decided) = feed(this.seen, this.header, &buf.filled()[before..]);
            this.protocol.set(phase);
            *this.decided = decided;
        }
        polled
    }
}

impl<I: AsyncWrite> AsyncWrite for Sniff<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

// ---------------------------------------------------------------------------------------------
// The cap, the file limit, accepting at it.

/// Connection counters, rendered with the other metrics.
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    /// Client connections open on the proxy listeners.
    pub open: AtomicU64,
    /// The cap in force (`server.max_connections` or its default).
    pub max: AtomicU64,
    /// Connections refused at the cap.
    pub refused: AtomicU64,
    /// Connections closed because their HTTP/2 handshake was not done in time.
    pub h2_handshake_timeouts: AtomicU64,
    /// HTTP/2 connections shut down for idleness.
    pub h2_idle_closes: AtomicU64,
    /// `accept` failures for want of resources (files, memory).
    pub accept_errors: AtomicU64,
    /// TLS connections that ended before their handshake was done: cleartext HTTP answered
    /// with 400, handshakes not done within `timeouts.header_read`, failed handshakes.
    pub tls_cleartext: AtomicU64,
    /// See `tls_cleartext`.
    pub tls_timeouts: AtomicU64,
    /// See `tls_cleartext`.
    pub tls_failures: AtomicU64,
    /// Refusals being written now (not rendered).
    pub(crate) refusing: AtomicU64,
}

impl ConnectionMetrics {
    /// Counts and logs (at debug: clients cause it) a TLS connection that ended before its
    /// handshake was done.
    pub(crate) fn tls_refused(
        &self,
        refused: &crate::http::tls::Refused,
        peer: std::net::SocketAddr,
    ) {
        use crate::http::tls::Refused;
        match refused {
            Refused::Cleartext(_) => {
                self.tls_cleartext.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "cleartext HTTP on a TLS listener; answered 400 and closed");
            }
            Refused::Timeout => {
                self.tls_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "no TLS handshake within timeouts.header_read; closing");
            }
            Refused::Handshake(err) => {
                self.tls_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, error = %err, "TLS handshake failed");
            }
        }
    }

    /// Appends the connection series to a Prometheus text exposition.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        out.push_str(
            "# HELP fig_proxy_connections Client connections open on the proxy listeners.\n",
        );
        out.push_str("# TYPE fig_proxy_connections gauge\n");
        let _ = writeln!(out, "fig_proxy_connections {}", load(&self.open));
        out.push_str("# HELP fig_proxy_connections_max The cap on client connections (server.max_connections).\n");
        out.push_str("# TYPE fig_proxy_connections_max gauge\n");
        let _ = writeln!(out, "fig_proxy_connections_max {}", load(&self.max));
        out.push_str(
            "# HELP fig_proxy_connections_refused_total Connections refused with 503 at the cap.\n",
        );
        out.push_str("# TYPE fig_proxy_connections_refused_total counter\n");
        let _ = writeln!(
            out,
            "fig_proxy_connections_refused_total {}",
            load(&self.refused)
        );
        out.push_str("# HELP fig_proxy_connections_timed_out_total Connections the proxy closed for a deadline, by deadline.\n");
        out.push_str("# TYPE fig_proxy_connections_timed_out_total counter\n");
        let _ = writeln!(
            out,
            "fig_proxy_connections_timed_out_total{{timeout=\"h2-handshake\"}} {}",
            load(&self.h2_handshake_timeouts)
        );
        let _ = writeln!(
            out,
            "fig_proxy_connections_timed_out_total{{timeout=\"h2-idle\"}} {}",
            load(&self.h2_idle_closes)
        );
        out.push_str(
            "# HELP fig_proxy_accept_errors_total Failed accepts for want of files or memory.\n",
        );
        out.push_str("# TYPE fig_proxy_accept_errors_total counter\n");
        let _ = writeln!(
            out,
            "fig_proxy_accept_errors_total {}",
            load(&self.accept_errors)
        );
        out.push_str("# HELP fig_tls_handshake_failures_total TLS connections that ended before their handshake was done, by reason.\n");
        out.push_str("# TYPE fig_tls_handshake_failures_total counter\n");
        for (reason, counter) in [
            ("cleartext", &self.tls_cleartext),
            ("timeout", &self.tls_timeouts),
            ("error", &self.tls_failures),
        ] {
            let _ = writeln!(
                out,
                "fig_tls_handshake_failures_total{{reason=\"{reason}\"}} {}",
                load(counter)
            );
        }
    }
}

/// The answer to a connection over the cap, written without reading the request.
pub(crate) const AT_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 72\r\nretry-after: 1\r\nconnection: close\r\n\r\nthe proxy has too many open connections (server.max_connections); retry\n";
/// How long writing [`AT_CAPACITY`] may take.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);
/// How long a refused connection is read from after the answer, so that closing it with the
/// request unread does not reset it before the client has read the answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Most refusals written at once; beyond, a connection over the cap is closed at once.
pub(crate) const MAX_REFUSING: u64 = 64;

/// Answers a connection over the cap with [`AT_CAPACITY`] and closes it.
pub(crate) async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    refuse_with(stream, AT_CAPACITY).await;
}

/// Writes `answer` (a whole response that closes the connection) within [`REFUSAL_WRITE`], then
/// reads what the client still sends for up to [`REFUSAL_LINGER`] before closing, so that the
/// close does not reset the answer away. Used for a connection over the cap and for cleartext
/// HTTP on a TLS port (`tls::CLEARTEXT_REFUSAL`, by the accept loop).
pub(crate) async fn refuse_with<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answer: &[u8]) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let answered = tokio::time::timeout(REFUSAL_WRITE, async {
        stream.write_all(answer).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(answered, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        let mut sink = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// The process's file limit (RLIMIT_NOFILE), raised to its hard limit; `None` when unlimited.
/// Logs what it did.
#[cfg(unix)]
pub fn raise_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit is left alone: the kernel refuses a soft limit above its own
    // maximum (`fs.nr_open`), which an infinite one would be.
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::info!(
                    from = current,
                    to = maximum,
                    "raised the file limit (RLIMIT_NOFILE) to its hard limit"
                );
                return Some(maximum);
            }
            Err(err) => {
                tracing::warn!(error = %err, limit = current, "cannot raise the file limit (RLIMIT_NOFILE)");
            }
        }
    }
    limit.current
}

/// The process's file limit; not known off unix.
#[cfg(not(unix))]
pub fn raise_file_limit() -> Option<u64> {
    None
}

/// The default `server.max_connections` for a file limit: each proxied connection may hold a
/// client and an upstream socket, and [`RESERVED_FILES`] stay free for everything else.
pub fn default_max_connections(file_limit: Option<u64>) -> usize {
    match file_limit {
        None => UNLIMITED_DEFAULT,
        Some(limit) => usize::try_from(limit.saturating_sub(RESERVED_FILES) / 2)
            .unwrap_or(UNLIMITED_DEFAULT)
            .clamp(1, UNLIMITED_DEFAULT),
    }
}

/// Whether an `accept` error concerns only the connection being accepted (retry at once) rather
/// than the process (files, memory: back off).
pub(crate) fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The pause after each failed `accept`: 5 ms, doubling up to 1 s, back to 5 ms after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The pause after one more failure.
    pub(crate) fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        pause
    }

    /// An `accept` succeeded.
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// A rate limit for a log line: at most one per period, counting what was not logged.
#[derive(Debug)]
pub(crate) struct Every {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Every {
    pub(crate) const fn new(period: Duration) -> Every {
        Every {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being the events not logged since the last
    /// line; `None` when the line should be skipped.
    pub(crate) fn ready(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match state.0 {
            Some(last) if now < last + self.period => {
                state.1 += 1;
                None
            }
            _ => {
                let skipped = std::mem::take(&mut state.1);
                state.0 = Some(now);
                Some(skipped)
            }
        }
    }
}
