//! HTTP/1.1 message framing (RFC 9112 section 6), in one place for the proxy's own server and
//! client.
//!
//! Every rule that decides where a message's body ends lives here: how `Content-Length` is read,
//! when `Transfer-Encoding` frames a message, which responses have no body, what `Connection`
//! says, which fields may travel as trailers. `server.rs` (requests from clients) and `client.rs`
//! (responses from upstreams) only collect a head's fields and ask this module; neither keeps a
//! rule of its own. The rules follow hyper's (`proto/h1/role.rs`), which serves whatever the
//! proxy's own code hands over, so that a message means the same thing on either path; the
//! differential tests (`src/tests/differential.rs`) hold the two to that.
//!
//! **Architecture Invariant:** a response that carries both `Transfer-Encoding` and
//! `Content-Length` never leaves with its `Content-Length` (RFC 9112 6.3 item 3: the coding
//! wins, and an intermediary removes the length before it forwards), and its connection is not
//! used again.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};

/// What a head's framing fields said, gathered field by field as the head is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FramingFields {
    /// The `Content-Length`, when every value given agrees.
    pub(crate) content_length: Option<u64>,
    /// A `Content-Length` field that is not a valid length, or lengths that differ.
    pub(crate) bad_content_length: bool,
    /// A `Content-Length` value was a list (`5, 5`). A response's is read as its one value, as
    /// hyper's client reads it; a request with one is refused, as hyper's server refuses it (it
    /// takes digits only), so that both of the proxy's servers answer it alike.
    pub(crate) content_length_list: bool,
    /// A `Transfer-Encoding` field was present.
    pub(crate) transfer_encoding: bool,
    /// The last transfer coding named is `chunked`.
    pub(crate) chunked: bool,
    /// `Connection` tokens.
    pub(crate) connection: ConnectionTokens,
}

/// The tokens of a message's `Connection` fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConnectionTokens {
    /// `close`.
    pub(crate) close: bool,
    /// `keep-alive`.
    pub(crate) keep_alive: bool,
    /// `upgrade`.
    pub(crate) upgrade: bool,
    /// Any other token: a field name that is hop-by-hop for this message.
    pub(crate) names_fields: bool,
}

impl FramingFields {
    /// Takes one header field into account; returns whether it is a framing field
    /// (`Content-Length`, `Transfer-Encoding`) or `Connection`.
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8]) -> bool {
        // Called for every field of every head: the length tells most names apart at once.
        if !matches!(name.len(), 10 | 14 | 17) {
            return false;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            match content_length(value) {
                Some(len) if self.content_length.is_none_or(|known| known == len) => {
                    self.content_length = Some(len);
                }
                _ => self.bad_content_length = true,
            }
            self.content_length_list |= value.contains(&b',');
            true
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
            // Only the last coding of the last field frames the message.
            self.chunked = last_coding_is_chunked(value);
            true
        } else if name.eq_ignore_ascii_case(b"connection") {
            self.connection.add(value);
            true
        } else {
            false
        }
    }

    /// Whether the connection stays open after this message, for a message of `version`.
    pub(crate) fn keep_alive(&self, version: Version) -> bool {
        if self.connection.close {
            return false;
        }
        match version {
            Version::HTTP_10 => self.connection.keep_alive,
            _ => true,
        }
    }
}

impl ConnectionTokens {
    /// Adds the tokens of one `Connection` field value.
    pub(crate) fn add(&mut self, value: &[u8]) {
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if !token.is_empty() {
                self.names_fields = true;
            }
        }
    }
}

/// The largest length taken: hyper's (`body/length.rs`), which keeps the two largest values of a
/// `u64` for itself, so that both of the proxy's paths refuse the same lengths.
const MAX_LENGTH: u64 = u64::MAX - 2;

/// A `Content-Length` value: digits (leading zeros allowed) up to [`MAX_LENGTH`], or a list of
/// the same digits (`5, 5`, which RFC 9110 8.6 lets a recipient read as `5`, as hyper does).
/// `None` for anything else.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    if let Some(length) = plain_length(value) {
        return Some(length);
    }
    let mut length = None;
    for part in value.split(|&b| b == b',') {
        let digits = part.trim_ascii();
        if digits.is_empty() {
            return None;
        }
        let mut parsed = 0u64;
        for &digit in digits {
            if !digit.is_ascii_digit() {
                return None;
            }
            parsed = parsed
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
        }
        if parsed > MAX_LENGTH || length.is_some_and(|known| known != parsed) {
            return None;
        }
        length = Some(parsed);
    }
    length
}

/// A value that is nothing but digits (the usual case), read without looking for a list.
fn plain_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    let mut length: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        length = length * 10 + u64::from(b - b'0');
    }
    Some(length)
}

/// Whether the last coding named in a `Transfer-Encoding` value is `chunked`.
pub(crate) fn last_coding_is_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// How a response's body is framed (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseFraming {
    /// No body: HEAD, 1xx, 204, 304, or this many bytes (`Length(0)` included).
    Length(u64),
    /// `chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
    /// `101 Switching Protocols`: the connection changes hands.
    Upgrade,
}

/// A response head whose framing cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FramingError {
    /// A `Content-Length` that is not a length, or two different ones.
    #[error("bad content-length")]
    ContentLength,
    /// `Transfer-Encoding` in an HTTP/1.0 response (RFC 9112 6.1: the framing is faulty).
    #[error("transfer-encoding in an HTTP/1.0 response")]
    TransferEncodingInHttp10,
}

/// How the body of a response to `method` with `status` is framed, from its head's fields. The
/// order is RFC 9112 6.3's: no body for HEAD, 1xx, 204 and 304 whatever the fields say; then
/// `Transfer-Encoding` (chunked last, else until the close), which overrides `Content-Length`;
/// then `Content-Length`; then the close.
pub(crate) fn response_framing(
    method: &Method,
    status: StatusCode,
    version: Version,
    fields: &FramingFields,
) -> Result<ResponseFraming, FramingError> {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(ResponseFraming::Upgrade);
    }
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(ResponseFraming::Length(0));
    }
    if fields.transfer_encoding {
        if version == Version::HTTP_10 {
            return Err(FramingError::TransferEncodingInHttp10);
        }
        return Ok(if fields.chunked {
            ResponseFraming::Chunked
        } else {
            ResponseFraming::UntilClose
        });
    }
    if fields.bad_content_length {
        return Err(FramingError::ContentLength);
    }
    Ok(match fields.content_length {
        Some(len) => ResponseFraming::Length(len),
        None => ResponseFraming::UntilClose,
    })
}

/// What the front of a chunked body holds where a chunk-size line is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkSize {
    /// A whole line: its length (CRLF included) and the size it gives.
    Line { len: usize, size: u64 },
    /// The start of a line that may still be valid.
    Partial,
    /// Not a chunk-size line.
    Invalid,
}

/// Reads a chunk-size line (RFC 9112 7.1) at the front of `buf` as hyper reads it
/// (`proto/h1/decode.rs`): at least one hex digit, as many as the size fits a `u64`; spaces or
/// tabs; extensions, which are skipped, up to a CR; then CRLF. A bare LF ends nothing: in an
/// extension it makes the line invalid (httparse's `parse_chunk_size` would skip it, and take
/// whatever follows up to the next CRLF as the extension: bytes that another reader of the same
/// body, hyper among them, does not skip), and an empty line is not a last chunk.
pub(crate) fn chunk_size(buf: &[u8]) -> ChunkSize {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum At {
        Size,
        Space,
        Extension,
    }
    let mut at = At::Size;
    let mut size = 0u64;
    let mut digits = false;
    for (i, &b) in buf.iter().enumerate() {
        match (at, b) {
            (At::Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    _ => b - b'A' + 10,
                };
                let Some(next) = size
                    .checked_mul(16)
                    .and_then(|size| size.checked_add(u64::from(digit)))
                else {
                    return ChunkSize::Invalid;
                };
                size = next;
                digits = true;
            }
            (_, b'\r') if digits => {
                return match buf.get(i + 1) {
                    None => ChunkSize::Partial,
                    Some(b'\n') => ChunkSize::Line { len: i + 2, size },
                    Some(_) => ChunkSize::Invalid,
                };
            }
            (At::Size | At::Space, b' ' | b'\t') if digits => at = At::Space,
            (At::Size | At::Space, b';') if digits => at = At::Extension,
            (At::Extension, b'\n') => return ChunkSize::Invalid,
            (At::Extension, _) => {}
            _ => return ChunkSize::Invalid,
        }
    }
    ChunkSize::Partial
}

/// What the front of a chunked body holds after its last chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrailerSection {
    /// The whole trailer section, its final CRLF included (`len`), with `lines` field lines.
    Whole { len: usize, lines: usize },
    /// The start of a section that may still be valid.
    Partial,
    /// Not a trailer section.
    Invalid,
}

/// Delimits the trailer section (RFC 9112 7.1.2) at the front of `buf` as hyper does
/// (`proto/h1/decode.rs`): lines that end with CRLF, up to an empty one. A bare LF ends no line
/// here (a field line may hold one; the fields are then parsed from the section, as many as it has
/// lines, which refuses it): were it an end, the section could end for the proxy where it goes on
/// for hyper, and the bytes in between be read as the next response by one and not the other.
pub(crate) fn trailer_section(buf: &[u8]) -> TrailerSection {
    let mut start = 0;
    let mut lines = 0;
    loop {
        let Some(cr) = buf[start..].iter().position(|&b| b == b'\r') else {
            return TrailerSection::Partial;
        };
        let cr = start + cr;
        match buf.get(cr + 1) {
            None => return TrailerSection::Partial,
            Some(b'\n') => {}
            Some(_) => return TrailerSection::Invalid,
        }
        if cr == start {
            return TrailerSection::Whole { len: cr + 2, lines };
        }
        lines += 1;
        start = cr + 2;
    }
}

/// Whether the connection a response came on may carry another exchange, as far as the response
/// head can tell (the body must still be read to its end): the upstream keeps it open, the body
/// is delimited, and nothing about the head suggests that bytes the proxy does not expect may
/// follow. Not after a response with both `Transfer-Encoding` and `Content-Length` (RFC 9112
/// 6.3: "ought to be handled as an error"), nor after a bodiless response to HEAD, or a 204, that
/// announced a body: an upstream that sends that body anyway would have it read as the next
/// response (response queue poisoning).
pub(crate) fn response_reusable(
    method: &Method,
    status: StatusCode,
    version: Version,
    fields: &FramingFields,
    framing: ResponseFraming,
) -> bool {
    if !fields.keep_alive(version) {
        return false;
    }
    match framing {
        ResponseFraming::UntilClose | ResponseFraming::Upgrade => return false,
        ResponseFraming::Length(_) | ResponseFraming::Chunked => {}
    }
    if fields.transfer_encoding && (fields.content_length.is_some() || fields.bad_content_length) {
        return false;
    }
    let announced_body =
        fields.transfer_encoding || fields.content_length.is_some_and(|len| len > 0);
    !(announced_body && (*method == Method::HEAD || status == StatusCode::NO_CONTENT))
}

/// Whether `name` is among the field names a message's `Trailer` fields (`values`) announce: a
/// trailer field goes on only when its message announced it, as hyper's server has it.
pub(crate) fn is_announced_trailer<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
    name: &HeaderName,
) -> bool {
    values.any(|value| {
        value.split(|&b| b == b',').any(|token| {
            token
                .trim_ascii()
                .eq_ignore_ascii_case(name.as_str().as_bytes())
        })
    })
}

/// Whether a field may be passed on as a trailer. Fields that frame, route or authorise a
/// message, or that a recipient must see before the body, never are (RFC 9110 6.5.1); the list
/// is hyper's (`proto/h1/encode.rs`), so that both of the proxy's HTTP/1 servers pass on the
/// same trailers.
pub(crate) fn is_valid_trailer(name: &HeaderName) -> bool {
    !matches!(
        *name,
        header::AUTHORIZATION
            | header::CACHE_CONTROL
            | header::CONTENT_ENCODING
            | header::CONTENT_LENGTH
            | header::CONTENT_RANGE
            | header::CONTENT_TYPE
            | header::HOST
            | header::MAX_FORWARDS
            | header::SET_COOKIE
            | header::TRAILER
            | header::TRANSFER_ENCODING
            | header::TE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> FramingFields {
        let mut fields = FramingFields::default();
        for (name, value) in list {
            fields.field(name.as_bytes(), value.as_bytes());
        }
        fields
    }

    #[test]
    fn content_length_takes_digits_and_lists_of_one_value() {
        assert_eq!(content_length(b"5"), Some(5));
        assert_eq!(content_length(b" 5 "), Some(5));
        assert_eq!(content_length(b"5, 5"), Some(5));
        assert_eq!(content_length(b"5, 6"), None);
        assert_eq!(content_length(b"+5"), None);
        assert_eq!(content_length(b"5,"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"0x5"), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
        // Any number of digits, as hyper reads them, up to hyper's largest length.
        assert_eq!(content_length(b"000000000000000000005"), Some(5));
        assert_eq!(content_length(b"18446744073709551613"), Some(u64::MAX - 2));
        assert_eq!(content_length(b"18446744073709551614"), None);
    }

    #[test]
    fn transfer_encoding_overrides_content_length() {
        let get = Method::GET;
        let both = fields(&[("Content-Length", "5"), ("Transfer-Encoding", "chunked")]);
        assert_eq!(
            response_framing(&get, StatusCode::OK, Version::HTTP_11, &both),
            Ok(ResponseFraming::Chunked)
        );
        assert!(!response_reusable(
            &get,
            StatusCode::OK,
            Version::HTTP_11,
            &both,
            ResponseFraming::Chunked
        ));
        let identity = fields(&[("Transfer-Encoding", "identity"), ("Content-Length", "5")]);
        assert_eq!(
            response_framing(&get, StatusCode::OK, Version::HTTP_11, &identity),
            Ok(ResponseFraming::UntilClose)
        );
        let http10 = fields(&[("Transfer-Encoding", "chunked")]);
        assert_eq!(
            response_framing(&get, StatusCode::OK, Version::HTTP_10, &http10),
            Err(FramingError::TransferEncodingInHttp10)
        );
    }

    #[test]
    fn bodiless_responses_that_announce_a_body_end_the_connection() {
        let announced = fields(&[("Content-Length", "8")]);
        for (method, status) in [
            (Method::HEAD, StatusCode::OK),
            (Method::GET, StatusCode::NO_CONTENT),
        ] {
            let framing = response_framing(&method, status, Version::HTTP_11, &announced).unwrap();
            assert_eq!(framing, ResponseFraming::Length(0));
            assert!(!response_reusable(
                &method,
                status,
                Version::HTTP_11,
                &announced,
                framing
            ));
        }
        // A 304 carries the length of the representation it validates: the usual case.
        let framing = response_framing(
            &Method::GET,
            StatusCode::NOT_MODIFIED,
            Version::HTTP_11,
            &announced,
        )
        .unwrap();
        assert!(response_reusable(
            &Method::GET,
            StatusCode::NOT_MODIFIED,
            Version::HTTP_11,
            &announced,
            framing
        ));
        let empty = fields(&[("Content-Length", "0")]);
        assert!(response_reusable(
            &Method::HEAD,
            StatusCode::OK,
            Version::HTTP_11,
            &empty,
            ResponseFraming::Length(0)
        ));
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        assert!(fields(&[]).keep_alive(Version::HTTP_11));
        assert!(!fields(&[]).keep_alive(Version::HTTP_10));
        assert!(fields(&[("Connection", "Keep-Alive")]).keep_alive(Version::HTTP_10));
        assert!(!fields(&[("Connection", "keep-alive, close")]).keep_alive(Version::HTTP_11));
        assert!(
            fields(&[("Connection", "x-secret")])
                .connection
                .names_fields
        );
    }

    #[test]
    fn chunk_size_lines_are_read_as_hyper_reads_them() {
        let line = |len, size| ChunkSize::Line { len, size };
        assert_eq!(chunk_size(b"5\r\nhello"), line(3, 5));
        assert_eq!(chunk_size(b"1F;a=\"b\"\r\n"), line(10, 31));
        assert_eq!(chunk_size(b"5 \t;x\r\n"), line(7, 5));
        assert_eq!(chunk_size(b"0000000000000000005\r\n"), line(21, 5));
        assert_eq!(chunk_size(b"5"), ChunkSize::Partial);
        assert_eq!(chunk_size(b"5;ext\r"), ChunkSize::Partial);
        for invalid in [
            b"\r\n".as_slice(),
            b";ext\r\n",
            b"0;ext\nX: 1\r\n",
            b"5\n",
            b"5\rx",
            b"0x5\r\n",
            b"+5\r\n",
            b" 5\r\n",
            b"5 5\r\n",
            b"10000000000000000\r\n",
        ] {
            assert_eq!(
                chunk_size(invalid),
                ChunkSize::Invalid,
                "{}",
                invalid.escape_ascii()
            );
        }
    }

    #[test]
    fn trailer_sections_end_at_an_empty_crlf_line() {
        let whole = |len, lines| TrailerSection::Whole { len, lines };
        assert_eq!(trailer_section(b"\r\nHTTP/1.1"), whole(2, 0));
        assert_eq!(
            trailer_section(b"X-A: 1\r\nX-B: 2\r\n\r\nnext"),
            whole(18, 2)
        );
        // A bare LF ends no line: the section goes on to the first empty CRLF line.
        assert_eq!(trailer_section(b"X-A: 1\n\r\n\r\n"), whole(11, 1));
        assert_eq!(trailer_section(b"X-A: 1\n\r\n"), TrailerSection::Partial);
        assert_eq!(trailer_section(b"X-A: 1\r"), TrailerSection::Partial);
        assert_eq!(trailer_section(b"X-A: 1\rX"), TrailerSection::Invalid);
        assert_eq!(trailer_section(b"\rX"), TrailerSection::Invalid);
    }

    #[test]
    fn framing_fields_are_never_trailers() {
        for name in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::SET_COOKIE,
            header::HOST,
        ] {
            assert!(!is_valid_trailer(&name), "{name}");
        }
        assert!(is_valid_trailer(&HeaderName::from_static("grpc-status")));
    }
}

// What a proxy removes from a head and adds to it (RFC 9110 7.6): the rules the server, the
// client and the handler share.

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that concern one connection only (RFC 9110 7.6.1), never forwarded. `Connection`
/// comes first: [`remove_hop_by_hop`] treats it apart. `Trailer` is not among them: it announces
/// the trailer fields end to end, and a server passes a trailer on only when it was announced.
pub(crate) static HOP_BY_HOP: [&HeaderName; 7] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TE,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &header::PROXY_AUTHORIZATION,
];

/// Whether a message is gRPC (`content-type: application/grpc`, `application/grpc+proto`, ...).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds what is there: most messages carry no hop-by-hop header or
    // only `Connection`, and removing all eight names would hash each of them every time.
    let mut connection = false;
    let mut others = false;
    for name in headers.keys() {
        if name == header::CONNECTION {
            connection = true;
        } else if HOP_BY_HOP.contains(&name) {
            others = true;
        }
    }
    if connection {
        // Only names present in the message are removed; the usual tokens (`keep-alive`,
        // `close`) name no header and cost neither a lookup nor an allocation.
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter(|v| !is_connection_option(v.as_bytes()))
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|token| !is_connection_option(token.as_bytes()))
            .filter_map(|token| {
                headers
                    .keys()
                    // `Connection: host` would take away the Host the request was routed on, and
                    // the upstream would get the address's instead (target.rs).
                    .find(|name| name.as_str().eq_ignore_ascii_case(token) && *name != header::HOST)
                    .cloned()
            })
            .collect();
        for name in listed {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    if others {
        for name in &HOP_BY_HOP[1..] {
            headers.remove(*name);
        }
    }
}

/// `keep-alive` and `close` in `Connection` are options, not header names (a `Keep-Alive` header
/// is removed as hop-by-hop anyway).
fn is_connection_option(token: &[u8]) -> bool {
    token.eq_ignore_ascii_case(b"keep-alive") || token.eq_ignore_ascii_case(b"close")
}

/// How many headers [`rewrite_request`] may add to a request head's map.
pub(crate) const ADDED_REQUEST_HEADERS: usize = 2;

/// The forwarding headers of a request (`X-Forwarded-For`, `-Proto`, `-Host`, `Via`), kept out of
/// its header map: the proxy's own client writes them after the map's headers, and only the
/// requests that go another way (hyper's client, shadow copies) get them in their map
/// ([`Forwarded::apply`]). Inserting four headers into a hash map on every request was about 5%
/// of the proxy's instructions.
#[derive(Debug, Clone)]
pub(crate) struct Forwarded {
    /// `X-Forwarded-For`: the client's address, after a trusted proxy's list.
    pub(crate) forwarded_for: HeaderValue,
    /// `X-Forwarded-Proto`: how the client reached the proxy, unless a trusted proxy set one.
    pub(crate) proto: Option<Proto>,
    /// `X-Forwarded-Host`: the client's `Host`, unless a trusted proxy set one.
    pub(crate) host: Option<HeaderValue>,
    /// `Via`.
    pub(crate) via: HeaderValue,
}

/// The scheme a client reached the proxy with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    /// Cleartext.
    Http,
    /// Over TLS.
    Https,
}

impl Forwarded {
    /// The headers, in the order they are written.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&'static HeaderName, &HeaderValue)> {
        static HTTP: HeaderValue = HeaderValue::from_static("http");
        static HTTPS: HeaderValue = HeaderValue::from_static("https");
        [
            Some((&X_FORWARDED_FOR, &self.forwarded_for)),
            self.proto.map(|proto| {
                let value = match proto {
                    Proto::Http => &HTTP,
                    Proto::Https => &HTTPS,
                };
                (&X_FORWARDED_PROTO, value)
            }),
            self.host.as_ref().map(|host| (&X_FORWARDED_HOST, host)),
            Some((&header::VIA, &self.via)),
        ]
        .into_iter()
        .flatten()
    }

    /// Puts the headers into `headers`, for a request that is not encoded by the proxy's own
    /// client.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in self.fields() {
            headers.append(name, value.clone());
        }
    }
}
