//! The HTTP/1.1 client the proxy speaks to upstreams.
//!
//! A request is driven inside the task of the client connection that carries it: its future
//! writes the head and the body and reads the response head, and the response body is read from
//! the upstream socket when the server polls it ([`ResponseBody`]). There is no connection task,
//! no channel between tasks and no oneshot per request. hyper's connection-level client costs all
//! three, which was the largest share of the proxy's instructions per request (about 13k of 38k
//! on the loopback benchmark, docs/benchmarks.md).
//!
//! What it speaks (RFC 9112):
//! - requests in origin form, always HTTP/1.1; a body goes as it came when the head has a
//!   `Content-Length`, else it is re-framed as `chunked`;
//! - responses framed by section 6.3: no body for HEAD, 1xx, 204 and 304; `chunked` (trailers
//!   passed on); `Content-Length` (conflicting values refused); otherwise up to the close;
//! - the response's header fields, hop-by-hop ones left out, are kept as the lines the proxy's
//!   own server writes ([`Fields`]), not in the response's `HeaderMap`;
//! - interim 1xx responses are skipped; `101 Switching Protocols` hands the socket back for the
//!   upgrade (with any bytes already read after the head);
//! - a connection is reused only when both messages were complete and the upstream did not ask
//!   to close; an idle pooled connection that saw a close (or stray bytes) is not used again.

use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::http::framing::{
    self, ChunkSize, FramingError, FramingFields, ResponseFraming, TrailerSection,
};

/// Most header fields in a response head (hyper's default as well).
const MAX_HEADERS: usize = 100;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 << 10;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 << 10;
/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Request bodies up to this size are sent in the same write as the head.
const COALESCE: usize = 16 << 10;

/// One open connection to an upstream address.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Bytes read and not used yet.
    buf: BytesMut,
    /// Whether it carried an exchange before.
    reused: bool,
    /// When it was last returned to its pool.
    pub(crate) idle_since: Instant,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Reading from or writing to the upstream failed.
    #[error("upstream connection failed: {0}")]
    Io(#[from] io::Error),
    /// The upstream closed the connection before the response was complete.
    #[error("the upstream closed the connection before the response was complete")]
    Closed,
    /// The upstream's response is not valid HTTP/1.1.
    #[error("invalid response from the upstream: {0}")]
    Invalid(&'static str),
    /// The upstream stopped sending the response body for longer than `timeouts.body_idle`.
    #[error("the upstream sent nothing of the response body for too long")]
    Stalled,
    /// hyper's client failed (requests whose body streams go through it).
    #[error(transparent)]
    Hyper(hyper::Error),
}

/// A request as the proxy's own client sends it: the head already rewritten for the upstream
/// (origin form, hop-by-hop fields out), the fields written after the head's own (the proxy's
/// forwarding fields), and the whole body.
///
/// The client only ever borrows it: sending it again (see [`Failure::may_resend`]) sends the same
/// head with the same body, so a request cannot go twice with its body left behind. The body is
/// framed by its length, written by the client from the bytes themselves; a `Content-Length` or
/// `Transfer-Encoding` in the head is never written as it came.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The head.
    pub parts: &'a http::request::Parts,
    /// Fields written after those of `parts`.
    pub extra: &'a [(&'a HeaderName, &'a HeaderValue)],
    /// The whole body (empty for none).
    pub body: &'a Bytes,
}

/// A failed exchange, and what is known of how far it got: whether the request could go again
/// on another connection is [`Failure::may_resend`]'s to say.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: ClientError,
    /// The connection had carried an exchange before: a pooled one, which the upstream may have
    /// closed while it was idle.
    pub reused: bool,
    /// Some of the request was handed to the socket, so it may have reached the upstream.
    pub sent: bool,
    /// Some of a response arrived.
    pub received: bool,
}

impl Failure {
    /// Whether the request may be sent again, once, on a new connection: it failed on a pooled
    /// connection before any byte of a response came (the upstream closed the idle connection as
    /// the request went out), and either nothing of it left the proxy or sending it twice does
    /// no harm (`idempotent`, RFC 9110 9.2.2). A request that may have reached the upstream and
    /// is not idempotent is never sent again: the upstream may have acted on it.
    pub fn may_resend(&self, idempotent: bool) -> bool {
        self.reused && !self.received && (!self.sent || idempotent)
    }
}

/// Whether a request may be sent twice: an idempotent method (RFC 9110 9.2.2), or a request that
/// carries an `Idempotency-Key` (as Go's HTTP client takes it).
pub fn is_idempotent(parts: &http::request::Parts) -> bool {
    static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
    static X_IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("x-idempotency-key");
    matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) || parts.headers.contains_key(&IDEMPOTENCY_KEY)
        || parts.headers.contains_key(&X_IDEMPOTENCY_KEY)
}

/// Where a connection goes back when its response has been read to the end: the upstream
/// address it was checked out of (`protection::upstream::Address` implements it). A trait, so
/// that this layer names nothing above it; the calls are monomorphised.
pub trait Pool: std::fmt::Debug + Send + Sync + 'static {
    /// Takes an idle connection back.
    fn checkin(&self, conn: Conn);
}

/// A response head, its body, and the connection when the response is an upgrade.
#[derive(Debug)]
pub struct Exchanged<P: Pool> {
    /// The response, its body read from the connection as it is polled.
    pub response: http::Response<ResponseBody<P>>,
    /// The connection, after `101 Switching Protocols`.
    pub upgraded: Option<Upgraded>,
}

/// A connection switched to another protocol: the bytes already read after the 101 head come
/// first, then the socket.
#[derive(Debug)]
pub struct Upgraded {
    /// Read after the response head.
    pub read: Bytes,
    /// The socket.
    pub stream: TcpStream,
}

impl Conn {
    /// Connects to `host:port` within `timeout`.
    pub async fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<Conn> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
            Ok(stream) => stream?,
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        };
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: BytesMut::new(),
            reused: false,
            idle_since: Instant::now(),
        })
    }

    /// The socket, for another client to drive.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Whether an idle connection can carry another request: no event arrived since its last
    /// exchange (the usual case, answered from the reactor's state without a system call), or an
    /// event came and reading shows the socket is merely empty. A close or bytes nobody asked for
    /// make it unusable.
    pub fn is_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends one request and reads the response head.
    pub async fn exchange<P: Pool>(
        mut self,
        request: Outgoing<'_>,
        pool: &Arc<P>,
    ) -> Result<Exchanged<P>, Failure> {
        let reused = std::mem::replace(&mut self.reused, true);
        let mut sent = false;
        let written = write_request(&mut self.stream, request, &mut sent).await;
        if let Err(error) = written {
            // An upstream may answer before it has read the whole body (413, 401) and close: that
            // answer is the one to pass on, if it came. The connection is not used again.
            return match read_head(&mut self, &request.parts.method).await {
                Ok(head) => Ok(self.into_exchanged(head, false, pool)),
                Err(head_error) => Err(Failure {
                    error: error.into(),
                    reused,
                    sent,
                    received: head_error.received,
                }),
            };
        }
        match read_head(&mut self, &request.parts.method).await {
            Ok(head) => Ok(self.into_exchanged(head, true, pool)),
            Err(HeadError { error, received }) => Err(Failure {
                error,
                reused,
                sent,
                received,
            }),
        }
    }

    fn into_exchanged<P: Pool>(
        mut self,
        head: ResponseHead,
        request_complete: bool,
        pool: &Arc<P>,
    ) -> Exchanged<P> {
        let ResponseHead {
            parts,
            fields,
            framing,
            reusable,
        } = head;
        let state = match framing {
            ResponseFraming::Upgrade => {
                let read = self.buf.split().freeze();
                return Exchanged {
                    response: http::Response::from_parts(parts, ResponseBody::done()),
                    upgraded: Some(Upgraded {
                        read,
                        stream: self.stream,
                    }),
                };
            }
            ResponseFraming::Length(n) => State::Length(n),
            ResponseFraming::Chunked => State::Chunked(Chunked::Size),
            ResponseFraming::UntilClose => State::UntilClose,
        };
        let mut body = ResponseBody {
            conn: Some(self),
            state,
            reuse: reusable && request_complete,
            pool: Some(pool.clone()),
            fields,
        };
        body.finish_if_done();
        Exchanged {
            response: http::Response::from_parts(parts, body),
            upgraded: None,
        }
    }
}

/// The request head as it goes on the wire: the request line, the head's fields but those that
/// frame a body, the extra fields, and the body's length when there is one to announce.
fn encode_head(request: Outgoing<'_>) -> Vec<u8> {
    let parts = request.parts;
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut len = parts.method.as_str().len() + target.len() + 64;
    for (name, value) in parts.headers.iter().chain(request.extra.iter().copied()) {
        len += name.as_str().len() + value.len() + 4;
    }
    let mut head = Vec::with_capacity(len + request.body.len().min(COALESCE));
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let mut had_length = false;
    for (name, value) in parts.headers.iter().chain(request.extra.iter().copied()) {
        if *name == header::CONTENT_LENGTH {
            had_length = true;
            continue;
        }
        if *name == header::TRANSFER_ENCODING {
            continue;
        }
        push_line(&mut head, name.as_str().as_bytes(), value.as_bytes());
    }
    if had_length || !request.body.is_empty() {
        // Writing into a `Vec` cannot fail.
        let _ = write!(head, "content-length: {}\r\n", request.body.len());
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Writes the head and the body; a small body leaves in the same write as the head. `sent`
/// becomes true as soon as a write has taken any byte.
async fn write_request(
    stream: &mut TcpStream,
    request: Outgoing<'_>,
    sent: &mut bool,
) -> io::Result<()> {
    let mut head = encode_head(request);
    if request.body.len() <= COALESCE {
        head.extend_from_slice(request.body);
        return write_tracked(stream, &head, sent).await;
    }
    write_tracked(stream, &head, sent).await?;
    write_tracked(stream, request.body, sent).await
}

async fn write_tracked(stream: &mut TcpStream, mut buf: &[u8], sent: &mut bool) -> io::Result<()> {
    while !buf.is_empty() {
        let n = stream.write(buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        *sent = true;
        buf = &buf[n..];
    }
    Ok(())
}

struct ResponseHead {
    parts: http::response::Parts,
    fields: Fields,
    framing: ResponseFraming,
    /// Whether the connection may carry another exchange once the body is read (framing.rs).
    reusable: bool,
}

struct HeadError {
    error: ClientError,
    /// Some of a response arrived.
    received: bool,
}

impl From<ClientError> for HeadError {
    fn from(error: ClientError) -> HeadError {
        HeadError {
            error,
            received: true,
        }
    }
}

/// Reads response heads until a final one (interim 1xx responses are skipped).
async fn read_head(conn: &mut Conn, method: &Method) -> Result<ResponseHead, HeadError> {
    let mut received = !conn.buf.is_empty();
    loop {
        if !conn.buf.is_empty() {
            if let Some(head) = parse_head(&mut conn.buf, method)? {
                if head.parts.status.is_informational()
                    && head.parts.status != StatusCode::SWITCHING_PROTOCOLS
                {
                    continue;
                }
                return Ok(head);
            }
            if conn.buf.len() >= MAX_HEAD {
                return Err(ClientError::Invalid("response head too large").into());
            }
        }
        if conn.buf.capacity() - conn.buf.len() < READ_CHUNK / 4 {
            conn.buf.reserve(READ_CHUNK);
        }
        let read = match conn.stream.read_buf(&mut conn.buf).await {
            Ok(read) => read,
            Err(err) => {
                return Err(HeadError {
                    error: err.into(),
                    received,
                });
            }
        };
        if read == 0 {
            return Err(HeadError {
                error: ClientError::Closed,
                received,
            });
        }
        received = true;
    }
}

/// Parses one response head from the front of `buf`; `None` when it is not complete yet.
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<ResponseHead>, ClientError> {
    // Most responses have a handful of fields: room for 16 first, all of them only when needed.
    match parse_head_with::<16>(buf, method) {
        Err(ClientError::Invalid(TOO_MANY_HEADERS)) => parse_head_with::<MAX_HEADERS>(buf, method),
        parsed => parsed,
    }
}

const TOO_MANY_HEADERS: &str = "too many header fields";

fn parse_head_with<const N: usize>(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, ClientError> {
    // Where each header's name and value are in `buf`.
    let mut spans = [(0u32, 0u32, 0u32, 0u32); N];
    let (len, status, version, count) = {
        let mut headers = [httparse::EMPTY_HEADER; N];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ClientError::Invalid(TOO_MANY_HEADERS));
            }
            Err(_) => return Err(ClientError::Invalid("malformed response head")),
        };
        let status = response
            .code
            .and_then(|code| StatusCode::from_u16(code).ok())
            .ok_or(ClientError::Invalid("bad status code"))?;
        let version = match response.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let base = buf.as_ptr() as usize;
        let count = response.headers.len();
        for (span, h) in spans.iter_mut().zip(response.headers.iter()) {
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            *span = (
                name as u32,
                (name + h.name.len()) as u32,
                value as u32,
                (value + h.value.len()) as u32,
            );
        }
        (len, status, version, count)
    };
    let head = buf.split_to(len).freeze();
    let field = |&(name_start, name_end, value_start, value_end): &(u32, u32, u32, u32)| {
        (
            &head[name_start as usize..name_end as usize],
            &head[value_start as usize..value_end as usize],
        )
    };
    // The framing fields are read here and judged by `framing.rs`. Hop-by-hop fields (RFC 9110
    // 7.6.1) are left out of the response the proxy passes on, except in a 101, whose `Upgrade`
    // and `Connection` the client needs; `Connection` naming other fields (rare) makes those go
    // too. `Content-Length` goes on only when no `Transfer-Encoding` frames the message.
    let mut framing_fields = FramingFields::default();
    let keep_hop_by_hop = status == StatusCode::SWITCHING_PROTOCOLS;
    // The fields to pass on, as they go on the wire, in one pass: httparse checked every name
    // and value (token characters; no control characters but tab in values), and each line is
    // written anew, so what leaves is well-formed whatever whitespace or line ends the upstream
    // used. The first `Content-Length` line is kept where it stands (`length_line`) until the
    // head is read: it goes when a coding frames the body or the length is not one.
    let mut wire = Vec::with_capacity(len);
    let mut date = false;
    let mut length_line: Option<(usize, usize)> = None;
    for span in &spans[..count] {
        let (name, value) = field(span);
        let framing_field = framing_fields.field(name, value);
        if !keep_hop_by_hop && is_hop_by_hop(name) {
            continue;
        }
        if framing_field && name.eq_ignore_ascii_case(b"content-length") {
            if length_line.is_none() {
                let start = wire.len();
                push_line(&mut wire, name, value);
                length_line = Some((start, wire.len()));
            }
            continue;
        }
        date |= name.eq_ignore_ascii_case(b"date");
        push_line(&mut wire, name, value);
    }
    // The length passed on: none when a coding frames the body, or when it is not a length.
    let length = framing_fields
        .content_length
        .filter(|_| !framing_fields.transfer_encoding && !framing_fields.bad_content_length);
    if let Some((start, end)) = length_line {
        let plain = wire[start..end - 2]
            .iter()
            .skip("content-length: ".len())
            .all(u8::is_ascii_digit);
        if length.is_none() || !plain {
            wire.drain(start..end);
            if let Some(len) = length {
                // `5, 5` goes on as `5`.
                let _ = write!(wire, "content-length: {len}\r\n");
            }
        }
    }
    let framing = framing::response_framing(method, status, version, &framing_fields).map_err(
        |err| match err {
            FramingError::ContentLength => ClientError::Invalid("bad content-length"),
            FramingError::TransferEncodingInHttp10 => {
                ClientError::Invalid("transfer-encoding in an HTTP/1.0 response")
            }
        },
    )?;
    let reusable = framing::response_reusable(method, status, version, &framing_fields, framing);
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    let fields = if keep_hop_by_hop || framing_fields.connection.names_fields {
        // The rare heads whose fields a map must sort out: a 101 keeps its hop-by-hop fields,
        // and `Connection` naming other fields takes those out as well.
        let mut headers = HeaderMap::with_capacity(count + 2);
        for span in &spans[..count] {
            let (name, value) = field(span);
            if name.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            let name = HeaderName::from_bytes(name)
                .map_err(|_| ClientError::Invalid("bad header name"))?;
            let value = HeaderValue::from_bytes(value)
                .map_err(|_| ClientError::Invalid("bad header value"))?;
            headers.append(name, value);
        }
        if !keep_hop_by_hop {
            framing::remove_hop_by_hop(&mut headers);
        }
        if let Some(len) = length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        *response.headers_mut() = headers;
        Fields::default()
    } else {
        Fields {
            wire,
            content_length: length,
            date,
        }
    };
    Ok(Some(ResponseHead {
        parts: response.into_parts().0,
        fields,
        framing,
        reusable,
    }))
}

/// Appends a header field line, `name: value\r\n`, to a head being written.
pub(crate) fn push_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether a field is hop-by-hop (`Connection` included), by its name as read.
fn is_hop_by_hop(name: &[u8]) -> bool {
    framing::HOP_BY_HOP
        .iter()
        .any(|hop| hop.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// A response's header fields kept as they go on the wire, `name: value\r\n` each, instead of in
/// the response's `HeaderMap`: the proxy's own server writes them out as they are, which saves
/// building a map for every response (about 5% of the proxy's instructions per request).
/// Whatever needs the fields as a map (hyper's server, the shadow comparison) moves them into one
/// with [`ResponseBody::move_fields_into`]. Hop-by-hop fields are not among them.
#[derive(Debug, Default)]
pub struct Fields {
    wire: Vec<u8>,
    /// The `Content-Length` among them, if any.
    content_length: Option<u64>,
    date: bool,
}

impl Fields {
    /// The fields, `name: value\r\n` each; empty when the response's map holds them.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The `Content-Length` among them, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Whether there is a `Date` among them.
    pub fn has_date(&self) -> bool {
        self.date
    }

    /// Whether a field of this name is among them.
    pub fn contains(&self, name: &HeaderName) -> bool {
        let name = name.as_str().as_bytes();
        self.wire.split(|&b| b == b'\n').any(|line| {
            line.len() > name.len()
                && line[name.len()] == b':'
                && line[..name.len()].eq_ignore_ascii_case(name)
        })
    }

    /// The values of the fields of this name.
    pub fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        let name = name.as_str().as_bytes();
        self.wire.split(|&b| b == b'\n').filter_map(move |line| {
            // Written as `name: value\r` (the `\n` is the split).
            let value = line
                .strip_suffix(b"\r")?
                .get(name.len() + 2..)
                .filter(|_| line[name.len()] == b':')?;
            line[..name.len()]
                .eq_ignore_ascii_case(name)
                .then_some(value)
        })
    }

    /// Appends a field, `name: value\r\n`.
    pub fn push(&mut self, name: &HeaderName, value: &HeaderValue) {
        push_line(&mut self.wire, name.as_str().as_bytes(), value.as_bytes());
        if name == header::CONTENT_LENGTH {
            self.content_length = framing::content_length(value.as_bytes());
        }
        self.date |= name == header::DATE;
    }

    /// Appends the fields to `headers` and leaves `self` empty.
    pub fn move_into(&mut self, headers: &mut HeaderMap) {
        let wire = std::mem::take(&mut self.wire);
        self.content_length = None;
        self.date = false;
        if wire.is_empty() {
            return;
        }
        let wire = Bytes::from(wire);
        let mut rest = &wire[..];
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let line = &rest[..end];
            rest = &rest[end + 2..];
            // Written by the parser above as `name: value`; the name holds no colon.
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let value_start = (colon + 2).min(line.len());
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_maybe_shared(wire.slice_ref(&line[value_start..])),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
    }
}

/// A response body, read from the upstream connection as it is polled. When it has been read to
/// the end (and the exchange allows it), the connection goes back to its address's pool.
#[derive(Debug)]
pub struct ResponseBody<P: Pool> {
    conn: Option<Conn>,
    state: State,
    reuse: bool,
    pool: Option<Arc<P>>,
    /// The response's header fields, when they are not in its map.
    fields: Fields,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunked),
    /// Until the upstream closes.
    UntilClose,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data are left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Expecting the trailer section (possibly empty) after the last chunk.
    Trailers,
}

impl<P: Pool> ResponseBody<P> {
    fn done() -> ResponseBody<P> {
        ResponseBody {
            conn: None,
            state: State::Done,
            reuse: false,
            pool: None,
            fields: Fields::default(),
        }
    }

    /// The response's header fields that are not in its map (see [`Fields`]).
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Moves the response's header fields into `headers`, its map, for whatever reads a map.
    pub fn move_fields_into(&mut self, headers: &mut HeaderMap) {
        self.fields.move_into(headers);
    }

    /// Appends a field to the response's fields kept as lines.
    pub fn push_field(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.fields.push(name, value);
    }

    /// Hands the connection back once the body is complete.
    fn finish_if_done(&mut self) {
        if self.state == State::Length(0) {
            self.state = State::Done;
        }
        if self.state != State::Done {
            return;
        }
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.reuse
            && conn.buf.is_empty()
            && let Some(pool) = self.pool.take()
        {
            conn.idle_since = Instant::now();
            pool.checkin(conn);
        }
    }

    fn fail(&mut self, error: ClientError) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        self.state = State::Done;
        self.conn = None;
        Poll::Ready(Some(Err(error)))
    }

    /// Reads more from the connection into its buffer; `Ok(false)` at the close.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, ClientError>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        if conn.buf.capacity() - conn.buf.len() < 1024 {
            conn.buf.reserve(READ_CHUNK);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(read)) => Poll::Ready(Ok(read > 0)),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err.into())),
        }
    }

    fn buffered(&self) -> usize {
        self.conn.as_ref().map_or(0, |conn| conn.buf.len())
    }

    fn take(&mut self, n: usize) -> Bytes {
        match self.conn.as_mut() {
            Some(conn) => conn.buf.split_to(n).freeze(),
            None => Bytes::new(),
        }
    }
}

impl<P: Pool> Body for ResponseBody<P> {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        let this = &mut *self;
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(0) => {
                    this.finish_if_done();
                    return Poll::Ready(None);
                }
                State::Length(left) => {
                    if this.buffered() == 0 {
                        match this.poll_fill(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(true)) => {}
                            Poll::Ready(Ok(false)) => return this.fail(ClientError::Closed),
                            Poll::Ready(Err(err)) => return this.fail(err),
                        }
                    }
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(this.buffered());
                    let data = this.take(n);
                    this.state = State::Length(left - n as u64);
                    this.finish_if_done();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::UntilClose => {
                    if this.buffered() == 0 {
                        match this.poll_fill(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(true)) => {}
                            Poll::Ready(Ok(false)) => {
                                this.state = State::Done;
                                this.conn = None;
                                return Poll::Ready(None);
                            }
                            Poll::Ready(Err(err)) => return this.fail(err),
                        }
                    }
                    let n = this.buffered();
                    return Poll::Ready(Some(Ok(Frame::data(this.take(n)))));
                }
                State::Chunked(step) => match this.step_chunked(step) {
                    Ok(Some(frame)) => {
                        this.finish_if_done();
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    Ok(None) if this.state == State::Done => {
                        this.finish_if_done();
                        return Poll::Ready(None);
                    }
                    Ok(None) if this.state != State::Chunked(step) => {}
                    Ok(None) => match this.poll_fill(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(true)) => {}
                        Poll::Ready(Ok(false)) => return this.fail(ClientError::Closed),
                        Poll::Ready(Err(err)) => return this.fail(err),
                    },
                    Err(err) => return this.fail(err),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(left) => SizeHint::with_exact(left),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl<P: Pool> ResponseBody<P> {
    /// One step of chunked decoding over what is buffered: a frame, or `None` when the state
    /// moved on or more bytes are needed (the state is then unchanged).
    fn step_chunked(&mut self, step: Chunked) -> Result<Option<Frame<Bytes>>, ClientError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(ClientError::Closed);
        };
        let buf = &mut conn.buf;
        match step {
            Chunked::Size => match framing::chunk_size(buf) {
                ChunkSize::Line { len, size } => {
                    let _ = buf.split_to(len);
                    self.state = State::Chunked(if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    });
                    Ok(None)
                }
                ChunkSize::Partial if buf.len() < MAX_CHUNK_LINE => Ok(None),
                _ => Err(ClientError::Invalid("bad chunk size line")),
            },
            Chunked::Data(left) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let data = buf.split_to(n).freeze();
                let left = left - n as u64;
                self.state = State::Chunked(if left == 0 {
                    Chunked::DataEnd
                } else {
                    Chunked::Data(left)
                });
                Ok(Some(Frame::data(data)))
            }
            Chunked::DataEnd => {
                if buf.len() < 2 {
                    return Ok(None);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(ClientError::Invalid("chunk data not followed by CRLF"));
                }
                let _ = buf.split_to(2);
                self.state = State::Chunked(Chunked::Size);
                Ok(None)
            }
            Chunked::Trailers => match framing::trailer_section(buf) {
                TrailerSection::Partial if buf.len() < MAX_HEAD => Ok(None),
                TrailerSection::Whole { len, lines } if lines <= MAX_HEADERS => {
                    let section = buf.split_to(len);
                    self.state = State::Done;
                    if lines == 0 {
                        return Ok(None);
                    }
                    // As many fields as the section has lines, as hyper parses them.
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let Ok(httparse::Status::Complete((_, fields))) =
                        httparse::parse_headers(&section, &mut headers[..lines])
                    else {
                        return Err(ClientError::Invalid("bad trailer section"));
                    };
                    let mut trailers = HeaderMap::with_capacity(fields.len());
                    for field in fields {
                        let (Ok(name), Ok(value)) = (
                            HeaderName::from_bytes(field.name.as_bytes()),
                            HeaderValue::from_bytes(field.value),
                        ) else {
                            return Err(ClientError::Invalid("bad trailer field"));
                        };
                        trailers.append(name, value);
                    }
                    Ok(Some(Frame::trailers(trailers)))
                }
                _ => Err(ClientError::Invalid("bad trailer section")),
            },
        }
    }
}
