//! The proxy service: one request in, one response out.
//!
//! For each request: load the current config (one `ArcSwap` load), decide the route, rewrite the
//! head (hop-by-hop headers out, `X-Forwarded-*` and `Via` in), stream the body to the chosen
//! upstream and its response back. Bodies are never collected: [`RequestBody`] counts bytes
//! against the body limit as they pass, and [`ProxyBody`] passes the upstream's frames on.
//! `Upgrade` requests (WebSocket) are joined end to end with `copy_bidirectional` once the
//! upstream answers 101.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tracing::Instrument as _;

use crate::error::ProxyErrorKind;
use crate::metrics::UNMATCHED;
use crate::route;
use crate::serve::{AccessEntry, Shared};
use crate::upstream::{Address, InFlight, Sender};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that concern one connection only (RFC 9110 7.6.1), never forwarded.
static HOP_BY_HOP: [&HeaderName; 8] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &header::PROXY_AUTHORIZATION,
];

/// A request body on its way to the upstream, cut off when it passes the body limit.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    remaining: u64,
    /// A copy for shadow traffic, if the request is mirrored and has a body.
    tee: Option<crate::shadow::Tee>,
}

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body passed `limits.max_body_size`.
    #[error("request body is larger than the limit")]
    TooLarge,
    /// Reading from the client failed.
    #[error("reading the request body failed")]
    Client(#[source] hyper::Error),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let end_stream = self.inner.is_end_stream();
        if let Some(tee) = &mut self.tee {
            tee.observe(&polled, end_stream);
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > self.remaining {
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    self.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(BodyError::Client(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body: the upstream's, streamed, or a short one made by the proxy.
#[derive(Debug)]
pub struct ProxyBody {
    kind: BodyKind,
}

#[derive(Debug)]
enum BodyKind {
    Upstream {
        body: Incoming,
        _slot: InFlight,
        /// The connection, returned to its pool when the body has been read to the end.
        conn: Option<(Sender, Arc<Address>)>,
        /// A copy for shadow traffic, if the request is mirrored.
        tee: Option<crate::shadow::Tee>,
    },
    Full(Option<Bytes>),
}

impl ProxyBody {
    /// A body of these bytes.
    pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
        let bytes = bytes.into();
        ProxyBody {
            kind: BodyKind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// No body.
    pub fn empty() -> ProxyBody {
        ProxyBody {
            kind: BodyKind::Full(None),
        }
    }

    fn upstream(
        body: Incoming,
        slot: InFlight,
        conn: (Sender, Arc<Address>),
        tee: Option<crate::shadow::Tee>,
    ) -> ProxyBody {
        ProxyBody {
            kind: BodyKind::Upstream {
                body,
                _slot: slot,
                conn: Some(conn),
                tee,
            },
        }
    }

    fn release(&mut self) {
        if let BodyKind::Upstream { conn, .. } = &mut self.kind
            && let Some((sender, address)) = conn.take()
        {
            address.checkin(sender);
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // A body the server never polled (HEAD, 204, empty) is complete; anything else was cut
        // short and its connection is unusable, so it is dropped and closes.
        if let BodyKind::Upstream { body, tee, .. } = &mut self.kind
            && body.is_end_stream()
        {
            if let Some(tee) = tee {
                tee.end();
            }
            self.release();
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.kind {
            BodyKind::Upstream { body, tee, .. } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                if let Some(tee) = tee {
                    tee.observe(&polled, body.is_end_stream());
                }
                if let Poll::Ready(None) = polled {
                    self.release();
                }
                polled
            }
            BodyKind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Upstream { body, .. } => body.is_end_stream(),
            BodyKind::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Upstream { body, .. } => body.size_hint(),
            BodyKind::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// Proxies one request from `peer`.
pub(crate) async fn handle(
    shared: &Shared,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let active = shared.active.load_full();
    let client_upgrade = is_upgrade_request(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let client_version = parts.version;
    let logged = shared
        .access_log
        .is_some()
        .then(|| (parts.method.clone(), parts.uri.clone()));

    let decision = route::route(&parts, &active.routes, &*shared.flags, || {
        active.context.build(&parts, peer.ip())
    });
    let upstream = &active.upstreams[decision.upstream];
    let series = active.routes.series(&decision);
    let route_name: &str = decision
        .route
        .map_or(UNMATCHED, |idx| &*active.routes.routes()[idx].name);
    let span = tracing::debug_span!(
        "request",
        method = %parts.method,
        path = parts.uri.path(),
        route = route_name,
        flag = decision.route.and_then(|idx| active.routes.routes()[idx].flag.as_deref()),
        upstream = &*upstream.name,
        reason = decision.reason.as_str(),
    );
    // Shadow traffic: chosen before the head is rewritten, as the flag context is.
    let shadow_plan = decision
        .route
        .and_then(|idx| active.routes.routes()[idx].shadow.as_ref())
        .filter(|plan| {
            client_upgrade.is_none()
                && plan.selects(&parts.method, || active.context.build(&parts, peer.ip()))
        });
    let mut shadow = None;

    let result = async {
        if parts.method == Method::CONNECT {
            return Err(ProxyErrorKind::BadRequest);
        }
        let limit = active.config.limits.max_body_size;
        if let Some(limit) = limit
            && content_length(&parts.headers).is_some_and(|len| len > limit)
        {
            return Err(ProxyErrorKind::BodyTooLarge);
        }
        let (address, slot) = upstream.pick();
        let trusted = !active.context.trusted_proxies().is_empty()
            && crate::context::is_trusted(peer.ip(), active.context.trusted_proxies());
        let upgrade = client_upgrade.is_some();
        rewrite_request(
            &mut parts,
            peer.ip(),
            trusted,
            upgrade,
            active.config.preserve_host,
            &address,
        )?;
        let tee = shadow_plan.and_then(|plan| {
            let (pending, tee) =
                crate::shadow::start(plan, &parts, &body, decision.upstream, &active.upstreams)?;
            shadow = Some(pending);
            tee
        });
        let body = RequestBody {
            inner: body,
            remaining: limit.unwrap_or(u64::MAX),
            tee,
        };
        let request = Request::from_parts(parts, body);
        let sent = send(&address, request, active.config.timeouts.connect);
        let (response, sender) =
            match tokio::time::timeout(active.config.timeouts.request, sent).await {
                Err(_) => return Err(ProxyErrorKind::Timeout),
                Ok(result) => result?,
            };
        Ok((response, slot, (sender, address)))
    }
    .instrument(span.clone())
    .await;

    // The SLO of the route's service judges what the service answered (slo.rs).
    if let Some(window) = active.routes.slo_window(&decision) {
        let now = Instant::now();
        let outcome = result.as_ref().map(|(response, ..)| response.status());
        window.observe(
            now,
            now.saturating_duration_since(start),
            outcome.map_err(|k| *k),
        );
    }

    let mut response = match result {
        Ok((mut response, slot, conn)) => {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some(client_upgrade) = client_upgrade
            {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                tokio::spawn(
                    async move {
                        match tokio::try_join!(client_upgrade, upstream_upgrade) {
                            Ok((client, upstream)) => {
                                let mut client = TokioIo::new(client);
                                let mut upstream = TokioIo::new(upstream);
                                if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                                    tracing::debug!(error = %err, "upgraded connection ended with an error");
                                }
                            }
                            Err(err) => tracing::debug!(error = %err, "upgrade failed"),
                        }
                    }
                    .instrument(span),
                );
                let (parts, _) = response.into_parts();
                let mut response = Response::from_parts(parts, ProxyBody::empty());
                response
                    .headers_mut()
                    .append(header::VIA, via(Version::HTTP_11));
                response
            } else {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                parts.headers.append(header::VIA, via(parts.version));
                parts.version = client_version;
                let tee = shadow
                    .take()
                    .map(|pending| pending.primary(parts.status, &parts.headers));
                Response::from_parts(parts, ProxyBody::upstream(body, slot, conn, tee))
            }
        }
        Err(kind) => {
            series.record_error(kind);
            if kind.source() == crate::error::ErrorSource::Upstream {
                tracing::warn!(
                    route = route_name,
                    upstream = &*upstream.name,
                    kind = kind.as_str(),
                    "upstream request failed"
                );
            }
            error_response(kind, &upstream.name)
        }
    };
    if let Some(name) = &active.upstream_header {
        response
            .headers_mut()
            .insert(name.clone(), upstream.header_value.clone());
    }
    let elapsed = start.elapsed();
    series.record(response.status().as_u16(), elapsed);
    if let (Some(log), Some(request)) = (&shared.access_log, &logged) {
        log.line(&AccessEntry {
            client: peer.ip(),
            method: &request.0,
            uri: &request.1,
            status: response.status().as_u16(),
            route: route_name,
            upstream: &upstream.name,
            reason: decision.reason,
            elapsed,
        });
    }
    response
}

/// Sends `request` on a pooled connection of `address`, or a new one. A pooled connection the
/// upstream closed in the meantime gives the request back unsent, and the next one is tried.
async fn send(
    address: &Arc<Address>,
    mut request: Request<RequestBody>,
    connect_timeout: std::time::Duration,
) -> Result<(Response<Incoming>, Sender), ProxyErrorKind> {
    while let Some(mut sender) = address.checkout() {
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(request).await {
            Ok(response) => return Ok((response, sender)),
            Err(mut err) => match err.take_message() {
                Some(unsent) => request = unsent,
                None => return Err(classify(err.error())),
            },
        }
    }
    let mut sender = address.connect(connect_timeout).await?;
    match sender.send_request(request).await {
        Ok(response) => Ok((response, sender)),
        Err(err) => Err(classify(&err)),
    }
}

fn classify(err: &hyper::Error) -> ProxyErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(body) = cause.downcast_ref::<BodyError>() {
            return match body {
                BodyError::TooLarge => ProxyErrorKind::BodyTooLarge,
                BodyError::Client(_) => ProxyErrorKind::BadRequest,
            };
        }
        source = cause.source();
    }
    if err.is_timeout() {
        ProxyErrorKind::Timeout
    } else {
        ProxyErrorKind::Protocol
    }
}

/// A short plain-text error response.
pub(crate) fn error_response(kind: ProxyErrorKind, upstream: &str) -> Response<ProxyBody> {
    let status = kind.status();
    let reason = status.canonical_reason().unwrap_or("Error");
    let detail = match kind {
        ProxyErrorKind::Connect => format!("cannot connect to upstream `{upstream}`"),
        ProxyErrorKind::Timeout => format!("upstream `{upstream}` did not answer in time"),
        ProxyErrorKind::Protocol => {
            format!("upstream `{upstream}` closed the connection or sent an invalid response")
        }
        ProxyErrorKind::BodyTooLarge => "request body is larger than the limit".to_owned(),
        ProxyErrorKind::BadRequest => "request cannot be forwarded".to_owned(),
        ProxyErrorKind::Internal => "internal proxy error".to_owned(),
    };
    let mut response = Response::new(ProxyBody::full(format!(
        "{} {reason}: {detail}\n",
        status.as_u16()
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if kind == ProxyErrorKind::BodyTooLarge || kind == ProxyErrorKind::BadRequest {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn via(version: Version) -> HeaderValue {
    match version {
        Version::HTTP_2 => HeaderValue::from_static("2.0 fig"),
        Version::HTTP_10 => HeaderValue::from_static("1.0 fig"),
        _ => HeaderValue::from_static("1.1 fig"),
    }
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::try_from(token.trim()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Points the request at `address` and sets the forwarding headers.
fn rewrite_request(
    parts: &mut http::request::Parts,
    peer: IpAddr,
    trusted: bool,
    upgrade: bool,
    preserve_host: bool,
    address: &Address,
) -> Result<(), ProxyErrorKind> {
    let upgrade_value = if upgrade {
        parts.headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    remove_hop_by_hop(&mut parts.headers);
    if let Some(value) = upgrade_value {
        parts.headers.insert(header::UPGRADE, value);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }

    let original_host = match parts.headers.get(header::HOST) {
        Some(host) => Some(host.clone()),
        None => parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };

    // X-Forwarded-For: believe what a trusted proxy says and add the peer; from anyone else,
    // replace it, so a client cannot claim another address.
    let peer_value = ip_header_value(peer);
    let forwarded_for = if trusted && parts.headers.contains_key(&X_FORWARDED_FOR) {
        let mut joined = Vec::with_capacity(64);
        for value in parts.headers.get_all(&X_FORWARDED_FOR) {
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(value.as_bytes());
        }
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(peer_value.as_bytes());
        HeaderValue::from_bytes(&joined).unwrap_or(peer_value)
    } else {
        peer_value
    };
    parts.headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);
    if !(trusted && parts.headers.contains_key(&X_FORWARDED_PROTO)) {
        parts
            .headers
            .insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !(trusted && parts.headers.contains_key(&X_FORWARDED_HOST))
        && let Some(host) = &original_host
    {
        parts.headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    parts.headers.append(header::VIA, via(parts.version));

    // HTTP/1.1 needs a Host: the client's (unless told otherwise), else the upstream's.
    match original_host {
        Some(host) if preserve_host => {
            parts.headers.insert(header::HOST, host);
        }
        _ => {
            let host = HeaderValue::from_str(address.authority.as_str())
                .map_err(|_| ProxyErrorKind::Internal)?;
            parts.headers.insert(header::HOST, host);
        }
    }

    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    // Origin form (`/path?query`): the connection already goes to the address.
    let mut uri = http::uri::Parts::default();
    uri.path_and_query = Some(path_and_query);
    parts.uri = Uri::from_parts(uri).map_err(|_| ProxyErrorKind::BadRequest)?;
    parts.version = Version::HTTP_11;
    Ok(())
}

fn ip_header_value(ip: IpAddr) -> HeaderValue {
    let text = crate::context::IpText::new(ip);
    HeaderValue::from_str(text.as_str()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}
