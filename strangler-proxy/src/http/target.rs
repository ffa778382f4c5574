//! What a request names: the authority it is for, the path it asks for, and the protocol it
//! asks to switch to, checked and put in one form before anything decides on them.
//!
//! [`canonicalize`] is the first step of `proxy::handle`, so it holds for every request whichever
//! server read it (the proxy's own HTTP/1 server, hyper's HTTP/1 or HTTP/2 one). It refuses what
//! the RFCs call malformed, with a [`BadTarget`] the client gets as a 400:
//!
//! - an HTTP/1.1 or HTTP/2 request naming no authority, more than one `Host` field line (even
//!   the same value twice, as NGINX does: RFC 9112 3.2 says "more than one"), or a `Host` that is
//!   not `host[:port]` (RFC 9110 7.2; no user, no path, not empty);
//! - an absolute-form target whose scheme is not `http` or `https`, an authority-form target
//!   outside `CONNECT` and an asterisk-form one outside `OPTIONS` (RFC 9112 3.2);
//! - an HTTP/2 request whose `Host` names another authority than its `:authority` (RFC 9113
//!   8.3.1);
//! - a path [`normalize_path`] refuses.
//!
//! Then the request names its authority in exactly one place the rest of the proxy reads: an
//! absolute-form target's or HTTP/2 `:authority` replaces `Host` (RFC 9112 3.2.2: the proxy
//! ignores the received `Host`), so that a route's `host` matcher, the flag context and the
//! upstream all see the same host. And its path is in normal form, so that a route's path
//! matcher, its rate limit and flag, shadow traffic, the access log and the upstream all read the
//! path the proxy routed.
//!
//! Upgrades: [`allowed_upgrade`] keeps the protocols a route lets through (never HTTP/2 or another
//! HTTP version: a tunnel to such a connection would carry requests past the proxy's routing),
//! and [`upgrade_accepted`] checks that a `101` switches to one of them.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Method, Version};

/// The upgrades a route allows when its config says nothing, and those of a request no route
/// matches.
pub(crate) const DEFAULT_UPGRADES: &[&str] = &["websocket"];

/// Why a request is refused with 400 before it is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadTarget {
    /// An HTTP/1.1 request without `Host`, or an HTTP/2 one without `:authority` or `Host`.
    #[error("the request names no host: HTTP/1.1 needs a Host field")]
    MissingHost,
    /// More than one `Host` field line.
    #[error("the request has more than one Host field")]
    RepeatedHost,
    /// A `Host` that is not `host[:port]`.
    #[error("the Host field is not a valid host[:port]")]
    InvalidHost,
    /// An absolute-form target or `:authority` that is not `host[:port]` (a user, say).
    #[error("the request target's authority is not a valid host[:port]")]
    InvalidAuthority,
    /// An HTTP/2 `Host` naming another authority than `:authority`.
    #[error("the Host field names another authority than :authority")]
    HostMismatch,
    /// An absolute-form target with another scheme than `http` or `https`.
    #[error("the request target's scheme is not http or https")]
    Scheme,
    /// An authority-form target outside `CONNECT`, an asterisk-form one outside `OPTIONS`, or a
    /// path not starting with `/`.
    #[error("the request target is not a path")]
    NotAPath,
    /// A path [`normalize_path`] refuses.
    #[error(transparent)]
    Path(#[from] PathError),
}

/// Why [`normalize_path`] refuses a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// A `%` not followed by two hex digits.
    #[error("the path has a `%` not followed by two hex digits")]
    BadEscape,
    /// `%2F`: whether it separates segments or not, upstreams disagree (see [`normalize_path`]).
    #[error("the path has an encoded `/` (%2F)")]
    EncodedSlash,
    /// `%00`.
    #[error("the path has an encoded NUL (%00)")]
    EncodedNul,
    /// A `..` segment with nothing left to remove.
    #[error("the path goes above the root with `..`")]
    AboveRoot,
}

/// Checks what a request names and puts it in the one form the proxy routes and forwards (see
/// the module documentation). Leaves a request that is already so untouched, without allocating.
pub(crate) fn canonicalize(parts: &mut Parts) -> Result<(), BadTarget> {
    canonicalize_authority(parts)?;
    canonicalize_path(parts)
}

fn canonicalize_authority(parts: &mut Parts) -> Result<(), BadTarget> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(BadTarget::RepeatedHost);
    }
    if host.is_some_and(|host| !is_host_port(host.as_bytes())) {
        return Err(BadTarget::InvalidHost);
    }
    let Some(authority) = parts.uri.authority() else {
        // Origin form: `Host` names the authority. HTTP/1.0 did not require it.
        return match host {
            None if parts.version != Version::HTTP_10 => Err(BadTarget::MissingHost),
            _ => Ok(()),
        };
    };
    if parts
        .uri
        .scheme()
        .is_some_and(|scheme| *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS)
    {
        return Err(BadTarget::Scheme);
    }
    let authority = authority.as_str();
    if !is_host_port(authority.as_bytes()) {
        return Err(BadTarget::InvalidAuthority);
    }
    match host {
        Some(host) if host.as_bytes() == authority.as_bytes() => Ok(()),
        Some(host)
            if parts.version == Version::HTTP_2
                && !host.as_bytes().eq_ignore_ascii_case(authority.as_bytes()) =>
        {
            Err(BadTarget::HostMismatch)
        }
        _ => {
            // The target's authority wins over `Host` (RFC 9112 3.2.2), and HTTP/2's
            // `:authority` becomes the `Host` an HTTP/1.1 upstream needs (RFC 9113 8.3.1).
            let value =
                HeaderValue::from_str(authority).map_err(|_| BadTarget::InvalidAuthority)?;
            parts.headers.insert(header::HOST, value);
            Ok(())
        }
    }
}

fn canonicalize_path(parts: &mut Parts) -> Result<(), BadTarget> {
    let Some(path_and_query) = parts.uri.path_and_query() else {
        // Authority form (`CONNECT host:port`), which the proxy refuses further on.
        return if parts.method == Method::CONNECT {
            Ok(())
        } else {
            Err(BadTarget::NotAPath)
        };
    };
    let path = path_and_query.path();
    if path == "*" {
        return if parts.method == Method::OPTIONS {
            Ok(())
        } else {
            Err(BadTarget::NotAPath)
        };
    }
    if !path.starts_with('/') {
        return Err(BadTarget::NotAPath);
    }
    let Cow::Owned(mut normal) = normalize_path(path)? else {
        return Ok(());
    };
    if let Some(query) = path_and_query.query() {
        normal.push('?');
        normal.push_str(query);
    }
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    // Made of the characters of a valid path and query, so valid as well.
    uri.path_and_query = Some(PathAndQuery::try_from(normal).map_err(|_| BadTarget::NotAPath)?);
    parts.uri = Uri::from_parts(uri).map_err(|_| BadTarget::NotAPath)?;
    Ok(())
}

/// Puts a path (starting with `/`) in normal form, as NGINX does before it matches `location`s
/// (RFC 3986 6.2.2): percent-encoded unreserved characters (letters, digits, `-._~`) are decoded
/// and the hex digits of the other escapes upper-cased, then repeated slashes are merged and the
/// dot-segments resolved (also those written `%2e`). A path ending in an empty, `.` or `..`
/// segment keeps its trailing slash (`/a/b/..` is `/a/`).
///
/// Refused: a `%` without two hex digits after it, `%00` (C upstreams stop at it), `..` above the
/// root (as NGINX does; RFC 3986 would drop it), and `%2F`. NGINX matches `%2F` as `/` but forwards
/// it encoded; some upstreams decode it before routing (WSGI's `PATH_INFO`) and others not (Rack,
/// Go's `net/http` for routing), so `/payments%2F1` would be one path for the proxy's routes and
/// another for the upstream. Tomcat and Spring refuse it by default, and so does the proxy.
///
/// Returns the path itself, without allocating, when it is in normal form already.
pub(crate) fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    // Percent-encoding first, so that a `%2e` segment is a dot-segment below.
    let mut decoded = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        decoded.push_str(&rest[..at]);
        let escape = rest.as_bytes();
        let (Some(high), Some(low)) = (
            escape.get(at + 1).copied().and_then(hex_value),
            escape.get(at + 2).copied().and_then(hex_value),
        ) else {
            return Err(PathError::BadEscape);
        };
        match (high << 4) | low {
            0 => return Err(PathError::EncodedNul),
            b'/' => return Err(PathError::EncodedSlash),
            byte if is_unreserved(byte) => decoded.push(char::from(byte)),
            byte => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                decoded.push('%');
                decoded.push(char::from(HEX[usize::from(byte >> 4)]));
                decoded.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        rest = &rest[at + 3..];
    }
    decoded.push_str(rest);

    // Then the segments (RFC 3986 5.2.4, with empty segments merged as NGINX's `merge_slashes`).
    let mut normal = String::with_capacity(decoded.len());
    // Where each segment kept so far starts in `normal`, for `..`.
    let mut starts = Vec::new();
    let mut trailing_slash = false;
    let body = decoded.strip_prefix('/').unwrap_or(&decoded);
    for segment in body.split('/') {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                let start = starts.pop().ok_or(PathError::AboveRoot)?;
                normal.truncate(start);
            }
            _ => {
                starts.push(normal.len());
                normal.push('/');
                normal.push_str(segment);
            }
        }
    }
    if normal.is_empty() || trailing_slash {
        normal.push('/');
    }
    Ok(Cow::Owned(normal))
}

/// Why a route's path (`prefix`, `exact` or `pattern`) can never match a request, whose path is
/// matched in normal form; `None` when it can.
pub(crate) fn route_path_problem(path: &str) -> Option<String> {
    match normalize_path(path) {
        Ok(Cow::Borrowed(_)) => None,
        Ok(Cow::Owned(normal)) => Some(format!(
            "`{path}` never matches: request paths are matched in normal form; write `{normal}`"
        )),
        Err(err) => Some(format!(
            "`{path}` never matches: {err}, and such requests are refused"
        )),
    }
}

/// Whether [`normalize_path`] would leave `path` as it is: every `%` starts an upper-case escape
/// of a character that stays encoded, and there is no empty segment but a last one and no `.` or
/// `..` segment. One pass over the bytes, the common case.
fn is_normal(path: &str) -> bool {
    let Some(body) = path.strip_prefix('/') else {
        return false;
    };
    let escapes_normal = body.match_indices('%').all(|(at, _)| {
        let Some(&[high, low]) = body.as_bytes().get(at + 1..at + 3) else {
            return false;
        };
        match (hex_value(high), hex_value(low)) {
            (Some(high_value), Some(low_value))
                if !high.is_ascii_lowercase() && !low.is_ascii_lowercase() =>
            {
                let byte = (high_value << 4) | low_value;
                byte != 0 && byte != b'/' && !is_unreserved(byte)
            }
            _ => false,
        }
    });
    if !escapes_normal {
        return false;
    }
    let mut segments = body.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == "." || segment == ".." {
            return false;
        }
    }
    true
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// RFC 3986 2.3.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// The bytes of a reg-name (RFC 3986 3.2.2): unreserved, `%` of a percent-encoding, and
/// sub-delims; a table, since every request's `Host` is checked byte by byte.
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

/// Whether `value` is `uri-host [ ":" port ]` (RFC 9110 7.2, RFC 3986 3.2.2): an IP literal in
/// brackets or a non-empty reg-name (unreserved, percent-encoded and sub-delims characters; so no
/// `@`, `/`, `?`, `#`, space or control byte), then at most five port digits.
fn is_host_port(value: &[u8]) -> bool {
    let port = if value.first() == Some(&b'[') {
        let Some(close) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &value[1..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        {
            return false;
        }
        &value[close + 1..]
    } else {
        let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        let host = &value[..end];
        if host.is_empty() || !host.iter().all(|&b| REG_NAME[usize::from(b)]) {
            return false;
        }
        &value[end..]
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// Protocol names that are never upgraded to, whatever a route says: HTTP/2 (`h2c`, and `h2`,
/// which names HTTP/2 over TLS) and any HTTP version. Past a `101` the proxy only copies bytes, so
/// a tunnel to an HTTP connection would carry requests the proxy never routes.
pub(crate) const FORBIDDEN_UPGRADES: &[&str] = &["h2c", "h2", "http"];

/// Whether a protocol name (without version) is one of [`FORBIDDEN_UPGRADES`].
pub(crate) fn is_forbidden_upgrade(name: &str) -> bool {
    FORBIDDEN_UPGRADES
        .iter()
        .any(|forbidden| forbidden.eq_ignore_ascii_case(name))
}

/// The `Upgrade` value to forward for a request that asks for an upgrade: the protocols it names
/// that are in `allowed` (case-insensitive, versions ignored) and not forbidden, in its order;
/// `None` when none is, and the request goes as a plain one.
pub(crate) fn allowed_upgrade(
    headers: &HeaderMap,
    allowed: &[impl AsRef<str>],
) -> Option<HeaderValue> {
    let mut kept = String::new();
    for token in list_tokens(headers) {
        let name = protocol_name(token);
        if is_forbidden_upgrade(name)
            || !allowed
                .iter()
                .any(|allowed| allowed.as_ref().eq_ignore_ascii_case(name))
        {
            continue;
        }
        if !kept.is_empty() {
            kept.push_str(", ");
        }
        kept.push_str(token);
    }
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept).ok()
}

/// Whether a `101` response (its `headers`) switches to protocols the request asked for (`asked`,
/// as forwarded by [`allowed_upgrade`]): its `Upgrade` names at least one protocol and only
/// protocols asked for.
pub(crate) fn upgrade_accepted(asked: &HeaderValue, headers: &HeaderMap) -> bool {
    let asked = asked.to_str().unwrap_or_default();
    let mut any = false;
    for token in list_tokens(headers) {
        let name = protocol_name(token);
        let was_asked = asked
            .split(',')
            .any(|asked| protocol_name(asked.trim()).eq_ignore_ascii_case(name));
        if !was_asked || is_forbidden_upgrade(name) {
            return false;
        }
        any = true;
    }
    any
}

/// The non-empty, trimmed elements of every `Upgrade` field of `headers`; a value that is not
/// text has none.
fn list_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// `websocket` of `websocket`, `HTTP` of `HTTP/2.0`.
fn protocol_name(token: &str) -> &str {
    token.split_once('/').map_or(token, |(name, _)| name).trim()
}
