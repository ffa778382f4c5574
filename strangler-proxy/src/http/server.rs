//! The proxy's own HTTP/1.1 server for plain requests; hyper's server for everything else.
//!
//! Nearly every request a proxy in front of a monolith sees is plain: a head, no body or a small
//! one with a `Content-Length`, on a keep-alive connection. For those this module does the
//! server's work in the connection's task, with no per-request state machine around it: it reads
//! into one buffer, parses the head with `httparse`, calls the handler ([`Service`]), writes the response
//! head and the start of its body in one write, and reads the next request. hyper's HTTP/1 server
//! (its dispatcher, its head parsing and encoding, its per-request header-read timer) was about a
//! third of the proxy's instructions per request on the loopback benchmark (docs/benchmarks.md).
//!
//! Anything else is handed to hyper, on the same connection, with the bytes already read put back
//! in front of the socket ([`Rewind`]): a request with `Transfer-Encoding`, an `Expect`, an
//! `Upgrade` (WebSocket) or a body over [`MAX_READ_BODY`]; a head that `httparse` or `http`
//! refuses (hyper answers 400), one over `limits.max_header_size` (hyper answers 431), the HTTP/2
//! preface (h2c), and `CONNECT`. From then on hyper serves the connection to its end, so whatever
//! this module does not speak is spoken by hyper, as before.
//!
//! What it speaks (RFC 9112): keep-alive by default for HTTP/1.1 and on `Connection: keep-alive`
//! for HTTP/1.0; `Connection: close` honoured both ways; pipelined requests answered in order;
//! responses framed by their `Content-Length`, else by a known length, else `chunked` for an
//! HTTP/1.1 client (trailers passed on when it sent `TE: trailers`) and by the close for an
//! HTTP/1.0 one; no body after HEAD, 1xx, 204 and 304; a `Date` header when the response has
//! none. Deadlines: `timeouts.header_read` from the moment a head is awaited (an idle keep-alive
//! connection included, as hyper does) to its last byte, then `timeouts.request` for a body, on
//! the connection's lazily re-armed timer (deadline.rs). At shutdown an idle connection closes at
//! once and a busy one after its response, which says `Connection: close`.

use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::client::Fields;
use crate::http::connections::{self, Sniff, Streams, Tracked};
use crate::http::deadline::ConnTimer;
use crate::http::deadline::IdleWrite;
use crate::http::framing::{self, ConnectionTokens, FramingFields};
use crate::http::tls::ClientIdentity;

/// Request bodies up to this size (with a `Content-Length`) are read whole by this server;
/// larger ones stream through hyper's.
pub(crate) const MAX_READ_BODY: usize = 64 << 10;
/// Most header fields in a request head (hyper's default as well).
const MAX_HEADERS: usize = 100;
/// Room made in the read buffer before a read.
const READ_CHUNK: usize = 8 << 10;
/// Response body bytes gathered before a write.
const WRITE_BATCH: usize = 64 << 10;

/// The answer to a body that does not arrive within `timeouts.request`.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 48\r\nconnection: close\r\n\r\nthe request body did not arrive within the time\n";

/// What a connection needs from the config it was accepted under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// `timeouts.header_read`.
    pub(crate) header_read: Duration,
    /// `timeouts.request`, for reading a body.
    pub(crate) body_read: Duration,
    /// `limits.max_header_size`.
    pub(crate) max_head: usize,
    /// `timeouts.body_idle`, for writing a response.
    pub(crate) body_idle: Duration,
}

/// What the server asks of the request handler above it: `proxy.rs` implements it for the
/// proxy's shared state. The server is generic over it, so the call is monomorphised (no `dyn`,
/// no box): the handler's future is polled in the connection's task as it was when the server
/// named the handler.
pub(crate) trait Service: Send + Sync + 'static {
    /// The response body.
    type Body: ResponseBody;

    /// Answers one request from `client`.
    fn call<'a>(
        &'a self,
        client: &'a ClientConn,
        req: Request<ClientBody>,
    ) -> impl Future<Output = Response<Self::Body>> + Send + 'a;

    /// The HTTP/2 deadlines of the config in force.
    fn h2_deadlines(&self) -> connections::H2Deadlines;

    /// Where the ends of connections are counted.
    fn connection_metrics(&self) -> &connections::ConnectionMetrics;
}

/// A response body as this server writes it: its frames, and the upstream's header fields kept
/// out of the response's map ([`Fields`]).
pub(crate) trait ResponseBody:
    Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static> + Send + Unpin + 'static
{
    /// The upstream response's header fields that are not in the response's map: written after
    /// the map's.
    fn upstream_fields(&self) -> Option<&Fields>;

    /// Moves those fields into `headers`, for a server that writes only the map (hyper's).
    fn move_fields_into(&mut self, headers: &mut HeaderMap);
}

/// One client connection: what the proxy knows of it and how to hand it to hyper.
pub(crate) struct Connection<S> {
    pub(crate) conn: Arc<(Arc<S>, ClientConn)>,
    pub(crate) builder: Arc<auto::Builder<TokioExecutor>>,
    pub(crate) watcher: Watcher,
    pub(crate) stop: watch::Receiver<bool>,
}

/// Serves one client connection with hyper's server only (`server.http1 = "hyper"`, or after a
/// hand-off), within the HTTP/2 deadlines hyper lacks (connections.rs): the handshake within
/// `timeouts.h2_handshake`, GOAWAY after `timeouts.h2_idle` with no stream open.
pub(crate) async fn serve_with_hyper<I, S: Service>(io: I, connection: Connection<S>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Connection {
        conn,
        builder,
        watcher,
        stop,
    } = connection;
    let peer = conn.1.addr;
    let shared = conn.0.clone();
    let deadlines = shared.h2_deadlines();
    let streams = Streams::new();
    let (io, protocol) = Sniff::new(io);
    let tracker = streams.clone();
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let conn = conn.clone();
        let stream = tracker.open();
        async move {
            let response = conn.0.call(&conn.1, req.map(ClientBody::Hyper)).await;
            // hyper writes the map only: the upstream's fields go into it.
            let (mut parts, mut body) = response.into_parts();
            body.move_fields_into(&mut parts.headers);
            // The stream stays open, for the idle deadline, until its body is sent.
            let body = Tracked::new(body, stream);
            Ok::<_, std::convert::Infallible>(Response::from_parts(parts, body))
        }
    });
    let served = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
    let ended = connections::drive(
        served,
        |conn| conn.graceful_shutdown(),
        &streams,
        &protocol,
        deadlines,
        stop,
    )
    .await;
    connections::record(&ended, peer, shared.connection_metrics());
    // Held to the end: the proxy's drain waits for every watcher to be dropped.
    drop(watcher);
}

/// Serves one client connection: plain HTTP/1 requests here, the rest by hyper (see the module
/// documentation).
pub(crate) async fn serve<I, S: Service>(stream: I, settings: Settings, connection: Connection<S>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A client that stops reading its response holds the connection `body_idle` at most.
    let mut stream = IdleWrite::new(stream, settings.body_idle);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut stop = connection.stop.clone();
    let mut stopping = pin!(stop.changed());
    loop {
        // A request head, within `header_read`.
        let deadline = Instant::now() + settings.header_read;
        let head = loop {
            if !buf.is_empty() {
                match parse(&mut buf) {
                    Parsed::Request(head) => break head,
                    Parsed::Partial if buf.len() < settings.max_head => {}
                    Parsed::Partial | Parsed::NotOurs => {
                        return hand_off(stream, buf, connection).await;
                    }
                }
            }
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            let timer = &connection.conn.1.timer;
            let read = tokio::select! {
                biased;
                read = timer.timeout(deadline, stream.read_buf(&mut buf)) => read,
                // Shutting down: an idle connection closes now; a request already begun is read
                // and answered (with `Connection: close`).
                _ = &mut stopping, if buf.is_empty() => return,
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                Ok(Ok(_)) => return,
                Ok(Err(err)) => {
                    tracing::debug!(peer = %connection.conn.1.addr, error = %err, "reading a request failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %connection.conn.1.addr, "no complete request head within timeouts.header_read; closing");
                    return;
                }
            }
        };

        // Its body, if it has one: here within `timeouts.request`.
        let Head {
            request: mut req,
            body_len,
            keep_alive,
            trailers,
        } = head;
        if body_len > 0 {
            let deadline = Instant::now() + settings.body_read;
            while buf.len() < body_len {
                buf.reserve(body_len - buf.len());
                let timer = &connection.conn.1.timer;
                match timer.timeout(deadline, stream.read_buf(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    Ok(_) => return,
                    Err(_) => {
                        // As NGINX's `client_body_timeout` does.
                        let _ = stream.write_all(REQUEST_TIMEOUT).await;
                        return;
                    }
                }
            }
            *req.body_mut() = ClientBody::Read(Some(buf.split_to(body_len).freeze()));
        }

        let exchange = Exchange {
            head_request: req.method() == Method::HEAD,
            version: req.version(),
            keep_alive,
            trailers,
        };
        let (shared, client) = &*connection.conn;
        let response = shared.call(client, req).await;
        let shutting_down = *connection.stop.borrow();
        let keep_alive = exchange.keep_alive && !shutting_down;
        match write_response(&mut stream, &mut out, response, &exchange, keep_alive).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = stream.shutdown().await;
                return;
            }
            Err(err) => {
                tracing::debug!(peer = %client.addr, error = %err, "writing a response failed");
                return;
            }
        }
    }
}

/// Gives the connection to hyper's server, the bytes read so far first.
async fn hand_off<I, S: Service>(stream: IdleWrite<I>, buf: BytesMut, connection: Connection<S>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = Rewind {
        read: buf.freeze(),
        inner: stream,
    };
    serve_with_hyper(io, connection).await;
}

/// A parsed request head and what the server needs to know of it.
struct Head {
    request: Request<ClientBody>,
    body_len: usize,
    keep_alive: bool,
    /// The client accepts trailers (`TE: trailers`).
    trailers: bool,
}

// Returned once per request and matched at once: boxing the head would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Request(Head),
    /// More bytes are needed.
    Partial,
    /// hyper's to serve; nothing was taken from the buffer.
    NotOurs,
}

/// Parses one request head from the front of `buf`, taking it (and only it) from the buffer when
/// it is a request this server serves.
fn parse(buf: &mut BytesMut) -> Parsed {
    // Most requests have a handful of fields: room for 16 first, all of them only when needed.
    match parse_with::<16>(buf) {
        Err(httparse::Error::TooManyHeaders) => match parse_with::<MAX_HEADERS>(buf) {
            Ok(parsed) => parsed,
            Err(_) => Parsed::NotOurs,
        },
        Ok(parsed) => parsed,
        Err(_) => Parsed::NotOurs,
    }
}

fn parse_with<const N: usize>(buf: &mut BytesMut) -> Result<Parsed, httparse::Error> {
    // Where the target and each header's name and value are in `buf`: they become slices of the
    // frozen head without copying.
    let mut spans = [(0u32, 0u32, 0u32, 0u32); N];
    let (len, method, target, version, count) = {
        let mut headers = [httparse::EMPTY_HEADER; N];
        let mut request = httparse::Request::new(&mut headers);
        let len = match request.parse(buf)? {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial => return Ok(Parsed::Partial),
        };
        let (Some(method), Some(path), Some(version)) =
            (request.method, request.path, request.version)
        else {
            return Ok(Parsed::NotOurs);
        };
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return Ok(Parsed::NotOurs);
        };
        if method == Method::CONNECT {
            return Ok(Parsed::NotOurs);
        }
        let base = buf.as_ptr() as usize;
        let target = path.as_ptr() as usize - base;
        let count = request.headers.len();
        for (span, h) in spans.iter_mut().zip(request.headers.iter()) {
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            *span = (
                name as u32,
                (name + h.name.len()) as u32,
                value as u32,
                (value + h.value.len()) as u32,
            );
        }
        let version = if version == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        (len, method, (target, target + path.len()), version, count)
    };
    let head = buf.split_to(len).freeze();
    match build(&head, &spans[..count], method, target, version) {
        Some(parsed) => Ok(Parsed::Request(parsed)),
        None => {
            // Not ours after all: put the head back in front of what follows it.
            let mut whole = BytesMut::with_capacity(head.len() + buf.len());
            whole.extend_from_slice(&head);
            whole.extend_from_slice(buf);
            *buf = whole;
            Ok(Parsed::NotOurs)
        }
    }
}

/// The request of a parsed head, or `None` when it is hyper's to serve.
fn build(
    head: &Bytes,
    spans: &[(u32, u32, u32, u32)],
    method: Method,
    target: (usize, usize),
    version: Version,
) -> Option<Head> {
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.1)).ok()?;
    // Room for the headers the proxy adds on the way (`X-Forwarded-*`, `Via`, ...): sized as
    // `rewrite_request` reserves, so that the map never grows (a reallocation and a rehash).
    let mut headers = HeaderMap::with_capacity(spans.len() + framing::ADDED_REQUEST_HEADERS);
    // The framing fields are judged by `framing.rs`; a request whose framing this server does
    // not take on (a coding, a bad length or a list of lengths, an upgrade, `Expect`) is
    // hyper's, which refuses what it does not take.
    let mut framing = FramingFields::default();
    let mut trailers = false;
    for &(name_start, name_end, value_start, value_end) in spans {
        let name = HeaderName::from_bytes(&head[name_start as usize..name_end as usize]).ok()?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(value_start as usize..value_end as usize))
                .ok()?;
        if name == header::UPGRADE || name == header::EXPECT {
            return None;
        }
        if !framing.field(name.as_str().as_bytes(), value.as_bytes()) && name == header::TE {
            trailers |= value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"trailers"));
        }
        headers.append(name, value);
    }
    if framing.transfer_encoding
        || framing.bad_content_length
        || framing.content_length_list
        || framing.connection.upgrade
    {
        return None;
    }
    let keep_alive = framing.keep_alive(version);
    let body_len = match framing.content_length {
        None | Some(0) => 0,
        Some(len) => usize::try_from(len)
            .ok()
            .filter(|&len| len <= MAX_READ_BODY)?,
    };
    let mut request = Request::new(ClientBody::Read(None));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Some(Head {
        request,
        body_len,
        keep_alive,
        trailers,
    })
}

/// What the response to a request must respect.
struct Exchange {
    head_request: bool,
    version: Version,
    keep_alive: bool,
    trailers: bool,
}

/// How a response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// As its `Content-Length` says.
    Length,
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and no known length).
    Close,
}

/// Writes `response`; `Ok(true)` when the connection can carry another request.
async fn write_response<B: ResponseBody, W: AsyncWrite + Unpin>(
    stream: &mut W,
    out: &mut Vec<u8>,
    response: Response<B>,
    exchange: &Exchange,
    keep_alive: bool,
) -> io::Result<bool> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let mut keep_alive = keep_alive;
    out.clear();
    // The status line and the response's own fields; what they lack is known after one pass.
    let seen = write_fields(out, &parts, body.upstream_fields(), exchange.version);
    // A response of the proxy's own that ends the connection (a 400, a 413) says so in its map.
    keep_alive &= !seen.close;
    let mut length = None;
    // The length the head announces, which the body must fill exactly.
    let mut declared = None;
    let framing = if exchange.head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        // A 101 here was not asked for through this server (upgrades are hyper's): end there.
        keep_alive &= status != StatusCode::SWITCHING_PROTOCOLS;
        Framing::None
    } else if let Some(len) = seen.content_length {
        declared = Some(len);
        Framing::Length
    } else if let Some(len) = body.size_hint().exact() {
        length = Some(len);
        declared = Some(len);
        Framing::Length
    } else if exchange.version == Version::HTTP_11 {
        Framing::Chunked
    } else {
        keep_alive = false;
        Framing::Close
    };
    if let Some(len) = length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    } else if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !seen.date {
        out.extend_from_slice(b"date: ");
        date::append(out);
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if exchange.version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if framing == Framing::None {
        stream.write_all(out).await?;
        return Ok(keep_alive);
    }
    let complete = write_body(
        stream,
        out,
        &mut body,
        (framing, declared),
        exchange,
        &parts.headers,
    )
    .await?;
    Ok(complete && keep_alive)
}

/// Which fields a response head has that the server would otherwise add.
struct Seen {
    content_length: Option<u64>,
    date: bool,
    /// The map asked for the connection to close (`Connection: close`).
    close: bool,
}

/// Appends the status line and the response's header fields (not the blank line): the
/// upstream's fields kept out of the map first, then the map's.
fn write_fields(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    upstream: Option<&crate::http::client::Fields>,
    version: Version,
) -> Seen {
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    let mut seen = Seen {
        content_length: None,
        date: false,
        close: false,
    };
    if let Some(fields) = upstream {
        out.extend_from_slice(fields.wire());
        seen.content_length = fields.content_length();
        seen.date = fields.has_date();
    }
    for (name, value) in &parts.headers {
        if *name == header::CONNECTION {
            // The server writes the one `Connection` field of the response, from what it decides.
            let mut tokens = ConnectionTokens::default();
            tokens.add(value.as_bytes());
            seen.close |= tokens.close;
            continue;
        }
        if *name == header::CONTENT_LENGTH {
            // A length the proxy cannot read frames nothing: the body's own length is used.
            seen.content_length = framing::content_length(value.as_bytes());
            if seen.content_length.is_none() {
                continue;
            }
        }
        seen.date |= *name == header::DATE;
        crate::http::client::push_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    seen
}

/// Writes the body after the head in `out`; the head leaves with the first bytes of the body.
/// `Ok(false)` when the body ended early (the upstream failed): the client sees the connection
/// close, as with hyper. A body framed by a length (`declared`) never writes more than that
/// length, nor ends the response with less: the connection closes instead, so that the client
/// cannot read body bytes as the next response.
async fn write_body<B: ResponseBody, W: AsyncWrite + Unpin>(
    stream: &mut W,
    out: &mut Vec<u8>,
    body: &mut B,
    (framing, declared): (Framing, Option<u64>),
    exchange: &Exchange,
    headers: &HeaderMap,
) -> io::Result<bool> {
    let mut left = declared.unwrap_or(u64::MAX);
    loop {
        if body.is_end_stream() {
            break;
        }
        // What is there already joins the bytes waiting in `out`; when the body has to wait for
        // its upstream, what is waiting goes first.
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await;
        let frame = match polled {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() {
                    stream.write_all(out).await?;
                    out.clear();
                }
                body.frame().await
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(err)) => {
                tracing::debug!(error = %err, "the response body failed; closing the connection");
                if !out.is_empty() {
                    stream.write_all(out).await?;
                }
                return Ok(false);
            }
        };
        match frame.into_data() {
            Ok(mut data) => {
                if data.is_empty() {
                    continue;
                }
                if framing == Framing::Length {
                    if data.len() as u64 > left {
                        tracing::debug!(
                            "the response body is longer than its length; closing the connection"
                        );
                        data.truncate(usize::try_from(left).unwrap_or(usize::MAX));
                        out.extend_from_slice(&data);
                        stream.write_all(out).await?;
                        out.clear();
                        return Ok(false);
                    }
                    left -= data.len() as u64;
                }
                if framing == Framing::Chunked {
                    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                }
                if out.len() + data.len() <= WRITE_BATCH {
                    out.extend_from_slice(&data);
                } else {
                    stream.write_all(out).await?;
                    out.clear();
                    stream.write_all(&data).await?;
                }
                if framing == Framing::Chunked {
                    out.extend_from_slice(b"\r\n");
                }
            }
            Err(frame) => {
                if let (Ok(trailers), Framing::Chunked, true) =
                    (frame.into_trailers(), framing, exchange.trailers)
                {
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in &trailers {
                        let announced = framing::is_announced_trailer(
                            headers
                                .get_all(header::TRAILER)
                                .iter()
                                .map(HeaderValue::as_bytes)
                                .chain(
                                    body.upstream_fields()
                                        .into_iter()
                                        .flat_map(|fields| fields.values(&header::TRAILER)),
                                ),
                            name,
                        );
                        if announced && framing::is_valid_trailer(name) {
                            crate::http::client::push_line(
                                out,
                                name.as_str().as_bytes(),
                                value.as_bytes(),
                            );
                        }
                    }
                    out.extend_from_slice(b"\r\n");
                    stream.write_all(out).await?;
                    out.clear();
                    return Ok(true);
                }
            }
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    // Shorter than announced: the client is still waiting for body bytes.
    Ok(framing != Framing::Length || declared.is_none() || left == 0)
}

/// A socket with bytes already read from it put back in front.
struct Rewind<I> {
    read: Bytes,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The `Date` header's value, formatted once a second.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }

    pub(super) fn append(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        CACHED.with_borrow_mut(|(at, text)| {
            if *at != second || text.is_empty() {
                *at = second;
                *text = httpdate::fmt_http_date(now);
            }
            out.extend_from_slice(text.as_bytes());
        });
    }
}

/// A request body as the server that read the request hands it over.
#[derive(Debug)]
pub enum ClientBody {
    /// Streamed by hyper's server (HTTP/2, and HTTP/1 requests the proxy's own server hands to
    /// hyper: see `server.rs`).
    Hyper(Incoming),
    /// Read whole by the proxy's own HTTP/1 server (`None`: no body).
    Read(Option<Bytes>),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut *self {
            ClientBody::Hyper(inner) => Pin::new(inner).poll_frame(cx),
            ClientBody::Read(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Hyper(inner) => inner.is_end_stream(),
            ClientBody::Read(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Hyper(inner) => inner.size_hint(),
            ClientBody::Read(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// What the proxy knows of one client connection, computed once when it is accepted.
#[derive(Debug)]
pub(crate) struct ClientConn {
    /// The peer's address.
    pub(crate) addr: SocketAddr,
    /// The peer's IP as an `X-Forwarded-For` value (formatting it per request is measurable).
    pub(crate) forwarded_for: HeaderValue,
    /// The timer its HTTP/1 requests' deadlines share.
    pub(crate) timer: ConnTimer,
    /// Whether it came over TLS, and its verified client certificate if any.
    pub(crate) tls: Option<TlsConn>,
}

/// What the proxy knows of a client connection's TLS session.
#[derive(Debug, Default)]
pub(crate) struct TlsConn {
    /// The verified client certificate's identity (mTLS), if the client sent one.
    pub(crate) client: Option<ClientIdentity>,
}

impl ClientConn {
    pub(crate) fn new(addr: SocketAddr, forwarded_for: HeaderValue) -> ClientConn {
        ClientConn {
            addr,
            forwarded_for,
            timer: ConnTimer::default(),
            tls: None,
        }
    }
}
