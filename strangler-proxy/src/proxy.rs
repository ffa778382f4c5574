//! The proxy service: one request in, one response out.
//!
//! For each request: load the current config (one `ArcSwap` load), decide the route, rewrite the
//! head (hop-by-hop headers out, `X-Forwarded-*` and `Via` in), stream the body to the chosen
//! upstream and its response back. Bodies are never collected: [`RequestBody`] counts bytes
//! against the body limit as they pass, and [`ProxyBody`] passes the upstream's frames on.
//! `Upgrade` requests (WebSocket) are joined end to end with `copy_bidirectional` once the
//! upstream answers 101.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tracing::Instrument as _;

use crate::config::{Http1Server, RateKey};
use crate::decision::route::{self, CompiledRoute, Reason};
use crate::decision::series::UNMATCHED;
use crate::error::ProxyErrorKind;
use crate::http::body::{BodyError, Outbound, RequestBody, Tee};
use crate::http::client::{self, ClientError, Outgoing, ResponseBody};
use crate::http::deadline::{ConnTimer, Idle};
use crate::http::framing::{
    ADDED_REQUEST_HEADERS, Forwarded, Proto, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO,
    remove_hop_by_hop,
};
use crate::http::server::{self, ClientBody, ClientConn};
use crate::ops::runtime::{AccessEntry, Active, Shared};
use crate::protection::attempt::{Attempt, Outcome};
use crate::protection::breaker::{Nanos, Permit};
use crate::protection::guard::Cause;
use crate::protection::limit::{Key, RateLimit};
use crate::protection::upstream::{Address, InFlight, Sender, Upstream};

/// A response body: the upstream's, streamed, or a short one made by the proxy.
#[derive(Debug)]
pub struct ProxyBody {
    kind: BodyKind,
}

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "`Upstream` is the body of nearly every response: boxing it would add an allocation per request"
)]
enum BodyKind {
    Upstream {
        /// Read from the upstream connection, which goes back to its pool at the end.
        body: Received,
        _slot: InFlight,
        /// A copy for shadow traffic, if the request is mirrored.
        tee: Option<Tee>,
        /// `timeouts.body_idle`: an upstream that stops sending its body.
        idle: Idle,
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

    fn upstream(body: Received, slot: InFlight, tee: Option<Tee>, idle: Duration) -> ProxyBody {
        ProxyBody {
            kind: BodyKind::Upstream {
                body,
                _slot: slot,
                tee,
                idle: Idle::new(idle),
            },
        }
    }

    /// The upstream response's header fields that are not in the response's map (see
    /// [`crate::http::client::Fields`]): written after the map's by the proxy's own server.
    pub(crate) fn upstream_fields(&self) -> Option<&crate::http::client::Fields> {
        match &self.kind {
            BodyKind::Upstream {
                body: Received::Own(own),
                ..
            } => Some(own.fields()),
            _ => None,
        }
    }

    /// Whether a field that replaces any of its name goes as a line after the upstream's fields
    /// (see [`Received::takes_line`]); a response of the proxy's own has only its map.
    fn takes_line(&self, headers: &HeaderMap, name: &HeaderName) -> bool {
        match &self.kind {
            BodyKind::Upstream { body, .. } => body.takes_line(headers, Some(name)),
            _ => false,
        }
    }

    /// Appends a field after the upstream's fields kept as lines, where [`ProxyBody::takes_line`]
    /// said so.
    fn push_field(&mut self, name: &HeaderName, value: &HeaderValue) {
        if let BodyKind::Upstream {
            body: Received::Own(own),
            ..
        } = &mut self.kind
        {
            own.push_field(name, value);
        }
    }

    /// Moves those fields into `headers`, for a server that writes only the map (hyper's).
    pub(crate) fn move_fields_into(&mut self, headers: &mut HeaderMap) {
        if let BodyKind::Upstream {
            body: Received::Own(own),
            ..
        } = &mut self.kind
        {
            own.move_fields_into(headers);
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // A body the server never polled (HEAD, 204, empty) is complete (its connection is back
        // in the pool already); anything else was cut short and its connection closes with it.
        if let BodyKind::Upstream {
            body,
            tee: Some(tee),
            ..
        } = &mut self.kind
            && body.is_end_stream()
        {
            tee.end();
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        match &mut self.kind {
            BodyKind::Upstream {
                body, tee, idle, ..
            } => {
                let polled = match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Pending if idle.poll_expired(cx) => {
                        tracing::debug!(
                            "the upstream sent nothing of the body for timeouts.body_idle"
                        );
                        // The connection is dropped with the body, never pooled.
                        Poll::Ready(Some(Err(ClientError::Stalled)))
                    }
                    Poll::Pending => Poll::Pending,
                    ready => {
                        idle.progress();
                        ready
                    }
                };
                if let Some(tee) = tee {
                    tee.observe(&polled, body.is_end_stream());
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

/// An upstream's response body: from the proxy's own client, or from hyper's for a request whose
/// body streamed (see `send`).
#[derive(Debug)]
pub(crate) enum Received {
    Own(ResponseBody<Address>),
    Streaming {
        body: Incoming,
        /// The connection, back to its pool when the body has been read to the end.
        conn: Option<(Sender, Arc<Address>)>,
    },
}

impl Received {
    /// Whether a field the proxy adds to the response goes as a line after the upstream's
    /// fields: they are kept as lines and the response's map, `headers`, is empty (the common
    /// case: no map is built for the response), and, for a field that replaces the upstream's
    /// own of that name (`replacing`), the lines hold none of it. Either way the field goes on
    /// the wire after the upstream's fields.
    fn takes_line(&self, headers: &HeaderMap, replacing: Option<&HeaderName>) -> bool {
        match self {
            Received::Own(own) => {
                headers.is_empty() && replacing.is_none_or(|name| !own.fields().contains(name))
            }
            Received::Streaming { .. } => false,
        }
    }

    /// Appends a field the proxy adds to every response (`Via`): as a line or to the map, as
    /// [`Received::takes_line`] says.
    fn append_field(&mut self, headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
        if self.takes_line(headers, None)
            && let Received::Own(own) = self
        {
            own.push_field(&name, &value);
        } else {
            headers.append(name, value);
        }
    }

    fn release(&mut self) {
        if let Received::Streaming { conn, .. } = self
            && let Some((sender, address)) = conn.take()
        {
            address.checkin_streaming(sender);
        }
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        // A streamed body the server never polled (HEAD, 204, empty) is complete; one cut short
        // leaves its connection unusable, and it closes.
        if let Received::Streaming { body, .. } = self
            && body.is_end_stream()
        {
            self.release();
        }
    }
}

impl Body for Received {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        match &mut *self {
            Received::Own(body) => Pin::new(body).poll_frame(cx),
            Received::Streaming { body, .. } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                let ended = body.is_end_stream();
                match polled {
                    Poll::Ready(None) => {
                        self.release();
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(ClientError::Hyper(err)))),
                    // The last frame: the connection goes back now, before the client has it
                    // all and sends its next request, which would otherwise find no idle one.
                    Poll::Ready(Some(Ok(frame))) => {
                        if ended {
                            self.release();
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Received::Own(body) => body.is_end_stream(),
            Received::Streaming { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Received::Own(body) => body.size_hint(),
            Received::Streaming { body, .. } => body.size_hint(),
        }
    }
}

/// Proxies one request from `client`, in five named phases: [`plan`] (what the request names,
/// the route decision, the upgrade and the shadow copy), [`admit`] (the route's rate limit, the
/// circuit of the decided upstream), [`attempt`] (the send, and the retry on the route's fallback),
/// [`respond`] (the response the client gets: the headers the proxy adds, the client's version),
/// and [`log`] (metrics, the access log).
///
/// Request-path protection happens in this order: the route's rate limit (429), the circuit of
/// the chosen upstream (open: the route's fallback, reason `circuit-open`, or 503 without one),
/// the upstream's in-flight cap (503), then the attempt, whose outcome goes to
/// [`crate::protection::attempt::observe_attempt`]; a failed idempotent request meant for a
/// route's service is then sent once to the route's fallback (reason `service-failed`).
///
/// A plain function returning an `async move` block, not an `async fn`: an `async fn` keeps each
/// argument twice in its state (as the argument and as the local it is moved into), and a
/// request's future is copied whole when it starts, at every level (`attempt`, `send_attempt`
/// and `send` are written the same way). Every phase but `attempt` is a plain function: it adds
/// nothing to the future, whose state holds what the phases hand each other ([`Plan`]), as it
/// held the same values as locals before the phases had names.
pub(crate) fn handle<'a>(
    shared: &'a Shared,
    client: &'a ClientConn,
    mut req: Request<ClientBody>,
) -> impl Future<Output = Response<ProxyBody>> + 'a {
    let start = Instant::now();
    let client_upgrade = is_upgrade_request(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    async move {
        // What the request names, in the one form everything below reads (target.rs).
        if let Err(bad) = crate::http::target::canonicalize(&mut parts) {
            return bad_target(shared, client, &parts, bad, start);
        }
        let active = shared.active.load_full();
        let mut plan = plan(shared, client, &active, &mut parts, client_upgrade, start);
        let (permit, refused) = admit(&active, &mut plan, &parts, client);
        let span = tracing::debug_span!(
            "request",
            method = %parts.method,
            path = parts.uri.path(),
            route = plan.route_name(),
            flag = plan.route.and_then(|route| route.flag.as_deref()),
            upstream = &*active.upstreams[plan.decision.upstream].name,
            reason = plan.decision.reason.as_str(),
            fallback = tracing::field::Empty,
        );
        // Worked out by the first attempt's rewrite; a retry reuses them.
        let mut forwarded: Option<Forwarded> = None;
        let result = attempt(
            &active,
            client,
            &mut plan,
            (&mut parts, body, &mut forwarded),
            permit,
            refused,
        );
        // Entering a disabled span does nothing, but wrapping the future in it moves the whole
        // future once more per request.
        let result = if span.is_disabled() {
            result.await
        } else {
            result.instrument(span.clone()).await
        };
        let response = respond(&active, &mut plan, result, span);
        log(shared, client, &active, &plan, &response, start);
        response
    }
}

/// What [`plan`] works out for the phases after it.
struct Plan<'r> {
    /// The route decision; [`admit`] and [`attempt`] may move it to the route's fallback.
    decision: route::Decision,
    /// The route that matched.
    route: Option<&'r CompiledRoute>,
    /// The client's side of an upgrade the route allows.
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// The upgrade forwarded, if the route allows what the client asks for.
    asked_upgrade: Option<HeaderValue>,
    /// The shadow copy, when this request is mirrored.
    shadow: Option<&'r Arc<crate::shadow::RouteShadow>>,
    /// When the request came in, for the breakers.
    now: Nanos,
    /// The client's HTTP version, which the response gets.
    client_version: Version,
    /// Whether the request is a gRPC call: the proxy's own answers are then gRPC statuses.
    grpc: bool,
    /// The connection's timer, for an HTTP/1 request.
    timer: Option<&'r ConnTimer>,
    /// The method and target for the access log, when there is one.
    logged: Option<(Method, Uri)>,
}

impl<'r> Plan<'r> {
    /// The route's name in metrics and logs.
    fn route_name(&self) -> &'r str {
        self.route.map_or(UNMATCHED, |route| &*route.name)
    }
}

/// Phase 1, plan: the route decision (flags read from the flag context), the upgrade the route
/// allows (set on the head, or the request goes as a plain one), and whether the request is
/// mirrored: chosen before the head is rewritten, as the flag context is. `parts` is already in
/// the form target.rs made of it.
fn plan<'r>(
    shared: &'r Shared,
    client: &'r ClientConn,
    active: &'r Active,
    parts: &mut http::request::Parts,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    start: Instant,
) -> Plan<'r> {
    let peer = client.addr;
    let client_version = parts.version;
    // HTTP/1 requests on a connection come one at a time and share its timer (deadline.rs).
    let timer = (client_version != Version::HTTP_2).then_some(&client.timer);
    let logged = shared
        .access_log
        .is_some()
        .then(|| (parts.method.clone(), parts.uri.clone()));
    let decision = route::route(parts, &active.routes, &*shared.flags, || {
        active
            .context
            .build_for(parts, peer.ip(), client_cert(client))
    });
    let route = decision.route.map(|idx| &active.routes.routes()[idx]);
    let asked_upgrade = client_upgrade.as_ref().and_then(|_| match decision.route {
        Some(idx) => crate::http::target::allowed_upgrade(
            &parts.headers,
            &active.config.routes[idx].upgrades,
        ),
        None => crate::http::target::allowed_upgrade(
            &parts.headers,
            crate::http::target::DEFAULT_UPGRADES,
        ),
    });
    let client_upgrade = client_upgrade.filter(|_| asked_upgrade.is_some());
    if let Some(value) = &asked_upgrade {
        parts.headers.insert(header::UPGRADE, value.clone());
    }
    let shadow = route
        .and_then(|route| route.shadow.as_ref())
        .filter(|plan| {
            client_upgrade.is_none()
                && plan.selects(&parts.method, || {
                    active
                        .context
                        .build_for(parts, peer.ip(), client_cert(client))
                })
        });
    Plan {
        decision,
        route,
        client_upgrade,
        asked_upgrade,
        shadow,
        now: crate::protection::breaker::nanos(start),
        client_version,
        // gRPC is HTTP/2 only: an HTTP/1 request costs no header lookup.
        grpc: client_version == Version::HTTP_2 && crate::http::framing::is_grpc(&parts.headers),
        timer,
        logged,
    }
}

/// Phase 2, admit: a token of the route's rate limit, then the circuit of the decided upstream
/// ([`admit_circuit`], which may send the request to the route's fallback). A refusal is handed
/// to [`attempt`], which sends nothing then.
fn admit<'r>(
    active: &'r Active,
    plan: &mut Plan<'_>,
    parts: &http::request::Parts,
    client: &ClientConn,
) -> (Permit<'r>, Option<Failure>) {
    if let Some(route) = plan.route
        && let Some(limit) = &route.rate_limit
        && let Err(wait) = check_rate_limit(limit, active, parts, client)
    {
        route.guard.rate_limited.fetch_add(1, Ordering::Relaxed);
        return (
            Permit::none(),
            Some(Failure::Local(Refusal::RateLimited(wait))),
        );
    }
    match admit_circuit(active, plan.route, &mut plan.decision, plan.now) {
        Ok(admitted) => (admitted, None),
        Err(wait) => (
            Permit::none(),
            Some(Failure::Local(Refusal::CircuitOpen(wait))),
        ),
    }
}

/// Phase 3, attempt: the body as it will be sent (whole when it may be sent twice), the send to
/// the decided upstream, its outcome observed, and for a failed request meant for a route's
/// service that may be retried, the one retry on the route's fallback.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its state; see `handle`"
)]
fn attempt<'p, 'r: 'p>(
    active: &'r Active,
    client: &'r ClientConn,
    plan: &'p mut Plan<'r>,
    (parts, body, forwarded): (
        &'p mut http::request::Parts,
        ClientBody,
        &'p mut Option<Forwarded>,
    ),
    permit: Permit<'r>,
    refused: Option<Failure>,
) -> impl Future<Output = Result<Sent, Failure>> + 'p {
    async move {
        let peer = client.addr;
        let (route, now, timer, shadow_plan) = (plan.route, plan.now, plan.timer, plan.shadow);
        let client_upgrade = &plan.client_upgrade;
        let decision = &mut plan.decision;
        if let Some(refused) = refused {
            return Err(refused);
        }
        if parts.method == Method::CONNECT {
            return Err(Failure::Kind(ProxyErrorKind::BadRequest));
        }
        let limit = active.config.limits.max_body_size;
        if let Some(limit) = limit
            && content_length(&parts.headers).is_some_and(|len| len > limit)
        {
            return Err(Failure::Kind(ProxyErrorKind::BodyTooLarge));
        }
        let remaining = limit.unwrap_or(u64::MAX);
        let upstream = &active.upstreams[decision.upstream];
        let trusted = !active.context.trusted_proxies().is_empty()
            && crate::decision::context::is_trusted(peer.ip(), active.context.trusted_proxies());
        let upgrade = client_upgrade.is_some();

        // A request meant for a route's service that may go to the fallback if the service fails:
        // an idempotent method, and a body that can be sent twice.
        let retry = route
            .zip(decision.route)
            .map(|(route, idx)| (route, &active.config.routes[idx].retry))
            .filter(|(route, retry)| {
                retry.enabled
                    && !upgrade
                    && route.service == decision.upstream
                    && route.fallback != route.service
                    && retry.methods.contains(&parts.method)
            });
        // A body that is all here is sent whole (and can be sent again); one that may go to
        // the fallback is collected first, within its limit; any other streams, once.
        let body = match body {
            ClientBody::Read(bytes) => Outbound::Whole(bytes.unwrap_or_default()),
            ClientBody::Hyper(incoming) if incoming.is_end_stream() => {
                Outbound::Whole(Bytes::new())
            }
            body => match retry {
                Some((_, config))
                    if content_length(&parts.headers)
                        .is_some_and(|len| len <= config.max_body.min(remaining)) =>
                {
                    let collected = tokio::time::timeout(
                        active.config.timeouts.request,
                        http_body_util::BodyExt::collect(body),
                    )
                    .await;
                    match collected {
                        Ok(Ok(collected)) => Outbound::Whole(collected.to_bytes()),
                        _ => return Err(Failure::Kind(ProxyErrorKind::BadRequest)),
                    }
                }
                // An upgrade takes the connection over after its head: a body on its way
                // would be lost in between.
                _ if upgrade => return Err(Failure::Kind(ProxyErrorKind::BadRequest)),
                _ => Outbound::Streaming(RequestBody {
                    inner: body,
                    remaining,
                    tee: None,
                    idle: Idle::new(active.config.timeouts.body_idle),
                }),
            },
        };
        if let Outbound::Whole(bytes) = &body
            && bytes.len() as u64 > remaining
        {
            return Err(Failure::Kind(ProxyErrorKind::BodyTooLarge));
        }
        let replay = match &body {
            Outbound::Whole(bytes) if retry.is_some() => Some(bytes.clone()),
            _ => None,
        };
        let first_timeout = match (retry, &replay) {
            (Some((_, config)), Some(_)) => config
                .per_try_timeout
                .unwrap_or(active.config.timeouts.request),
            _ => active.config.timeouts.request,
        };
        let sent = Instant::now();
        let (address, result) = send_attempt(
            active,
            upstream,
            (&mut *parts, &mut *forwarded, true),
            body,
            (sent, first_timeout),
            Origin {
                forwarded_for: &client.forwarded_for,
                https: client.tls.is_some(),
                trusted,
                upgrade,
                now,
                timer,
            },
            shadow_plan.map(|plan| (plan, decision.upstream)),
        )
        .await;
        let to_service = route.is_some_and(|route| route.service == decision.upstream)
            && matches!(decision.reason, Reason::FlagOn | Reason::Unflagged);
        let outcome = observe(
            (route, to_service),
            upstream,
            address.as_deref(),
            &result,
            sent,
            permit,
        );

        let (Some((route, _)), Some(replay), Some(outcome)) = (retry, replay, outcome) else {
            return result;
        };
        if outcome.is_failure(&upstream.failure_statuses) != Some(true) {
            return result;
        }
        let fallback = &active.upstreams[route.fallback];
        let (acquired, transition) = fallback
            .guard
            .breaker
            .try_acquire(crate::protection::breaker::nanos(Instant::now()));
        fallback.guard.note(&fallback.name, transition);
        let Ok(fallback_permit) = acquired else {
            return result;
        };
        drop(result);
        let cause = outcome.cause();
        route.guard.fallback(cause);
        if let Outcome::Error(kind) = outcome {
            route.service_series.record_error(kind);
        }
        decision.upstream = route.fallback;
        decision.reason = Reason::ServiceFailed;
        route
            .last_reason
            .store(Reason::ServiceFailed as u8, Ordering::Relaxed);
        tracing::Span::current().record("fallback", cause.as_str());
        tracing::debug!(
            cause = cause.as_str(),
            "service failed; retrying on the fallback"
        );
        let sent = Instant::now();
        let (address, result) = send_attempt(
            active,
            fallback,
            (&mut *parts, &mut *forwarded, false),
            Outbound::Whole(replay),
            (sent, active.config.timeouts.request),
            Origin {
                forwarded_for: &client.forwarded_for,
                https: client.tls.is_some(),
                trusted,
                upgrade: false,
                now,
                timer,
            },
            None,
        )
        .await;
        observe(
            (Some(route), false),
            fallback,
            address.as_deref(),
            &result,
            sent,
            fallback_permit,
        );
        result
    }
}

/// Phase 4, respond: the response the client gets: the upstream's (its hop-by-hop fields out,
/// `Via` in, the tunnel joined after a 101 the client asked for), or the proxy's own answer to a
/// failure or a refusal; then the upstream header the config names and the client's version.
fn respond(
    active: &Active,
    plan: &mut Plan<'_>,
    result: Result<Sent, Failure>,
    span: tracing::Span,
) -> Response<ProxyBody> {
    let client_upgrade = plan.client_upgrade.take();
    let (decision, asked_upgrade) = (&plan.decision, &plan.asked_upgrade);
    let (route_name, client_version) = (plan.route_name(), plan.client_version);
    let upstream = &active.upstreams[decision.upstream];
    let series = active.routes.series(decision);
    let mut upstream_header = true;
    let local = result.is_err();
    let mut response = match result {
        Ok(Sent {
            response,
            slot,
            upgraded,
            shadow,
        }) => {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some(client_upgrade) = client_upgrade
                && let Some(upgraded) = upgraded
                && asked_upgrade.as_ref().is_some_and(|asked| {
                    crate::http::target::upgrade_accepted(asked, response.headers())
                })
            {
                tokio::spawn(join_upgraded(client_upgrade, upgraded).instrument(span));
                let (parts, _) = response.into_parts();
                let mut response = Response::from_parts(parts, ProxyBody::empty());
                response
                    .headers_mut()
                    .append(header::VIA, via(Version::HTTP_11));
                response
            } else if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                // A switch the client did not ask for, or to another protocol: no tunnel.
                series.record_error(ProxyErrorKind::Protocol);
                tracing::warn!(
                    route = route_name,
                    upstream = &*upstream.name,
                    "upstream switched protocols without being asked to"
                );
                error_response(ProxyErrorKind::Protocol, &upstream.name)
            } else {
                let (mut parts, mut body) = response.into_parts();
                match &mut body {
                    // The proxy's own client leaves hop-by-hop headers out as it parses. The
                    // shadow comparison reads the answer's fields from the map.
                    Received::Own(own) if shadow.is_some() => {
                        own.move_fields_into(&mut parts.headers);
                    }
                    Received::Own(_) => {}
                    Received::Streaming { .. } => {
                        // hyper's client frames by the coding and leaves the length in the
                        // map: it must not go on (RFC 9112 6.3, as in framing.rs).
                        if parts.headers.contains_key(header::TRANSFER_ENCODING) {
                            parts.headers.remove(header::CONTENT_LENGTH);
                        }
                        remove_hop_by_hop(&mut parts.headers);
                    }
                }
                body.append_field(&mut parts.headers, header::VIA, via(parts.version));
                parts.version = client_version;
                let tee = shadow.map(|pending| pending.primary(parts.status, &parts.headers));
                Response::from_parts(
                    parts,
                    ProxyBody::upstream(body, slot, tee, active.config.timeouts.body_idle),
                )
            }
        }
        Err(Failure::Kind(kind)) => {
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
        Err(Failure::Local(Refusal::RateLimited(wait))) => {
            upstream_header = false;
            too_many_requests(route_name, wait)
        }
        Err(Failure::Local(Refusal::Shed)) => shed(&upstream.name),
        Err(Failure::Local(Refusal::CircuitOpen(wait))) => circuit_open(&upstream.name, wait),
    };
    if upstream_header && let Some(name) = &active.upstream_header {
        // The proxy's says who answered, never an upstream's own (a proxy behind this one).
        if response.body().takes_line(response.headers(), name) {
            response.body_mut().push_field(name, &upstream.header_value);
        } else {
            let (mut parts, mut body) = response.into_parts();
            body.move_fields_into(&mut parts.headers);
            parts
                .headers
                .insert(name.clone(), upstream.header_value.clone());
            response = Response::from_parts(parts, body);
        }
    }
    if local && plan.grpc {
        response = grpc_answer(response);
    }
    // The client's version, for the proxy's own answers too: hyper's HTTP/1 server reads it
    // to decide what `Connection` says to an HTTP/1.0 client.
    *response.version_mut() = client_version;
    response
}

/// The proxy's own answer to a gRPC call, as gRPC has it (and Envoy answers): HTTP 200, a
/// trailers-only response whose `grpc-status` is the HTTP status mapped as gRPC's spec maps it
/// (429, 502, 503 and 504 are UNAVAILABLE) and whose `grpc-message` is the text the proxy would
/// have sent, percent-encoded. A client library reads a bare 502 as a protocol error instead.
fn grpc_answer(response: Response<ProxyBody>) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    let code: u16 = match parts.status.as_u16() {
        429 | 502..=504 => 14, // UNAVAILABLE
        413 => 8,              // RESOURCE_EXHAUSTED
        400 | 500 => 13,       // INTERNAL
        _ => 2,                // UNKNOWN
    };
    let text = match &body.kind {
        BodyKind::Full(Some(bytes)) => bytes.clone(),
        _ => Bytes::new(),
    };
    let mut message = String::with_capacity(text.len());
    for &byte in text.trim_ascii() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            message.push(char::from(byte));
        } else {
            message.push_str(&format!("%{byte:02X}"));
        }
    }
    parts.status = StatusCode::OK;
    parts.headers.remove(header::CONNECTION);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    parts
        .headers
        .insert(GRPC_STATUS.clone(), HeaderValue::from(code));
    if let Ok(value) = HeaderValue::from_str(&message) {
        parts.headers.insert(GRPC_MESSAGE.clone(), value);
    }
    Response::from_parts(parts, ProxyBody::empty())
}

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Phase 5, log: the response in the metrics of its (route, upstream) and in the access log.
fn log(
    shared: &Shared,
    client: &ClientConn,
    active: &Active,
    plan: &Plan<'_>,
    response: &Response<ProxyBody>,
    start: Instant,
) {
    let peer = client.addr;
    let decision = &plan.decision;
    let upstream = &active.upstreams[decision.upstream];
    let series = active.routes.series(decision);
    let (route_name, logged) = (plan.route_name(), &plan.logged);
    let elapsed = start.elapsed();
    series.record(response.status().as_u16(), elapsed);
    if let (Some(log), Some(request)) = (&shared.access_log, logged) {
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
}

/// A response head from an upstream, with what must live as long as its body.
struct Sent {
    response: Response<Received>,
    slot: InFlight,
    /// The upstream connection, after `101 Switching Protocols`.
    upgraded: Option<crate::http::client::Upgraded>,
    /// The shadow copy of this request, waiting for the primary's response head.
    shadow: Option<crate::shadow::Pending>,
}

/// Who sent the request, for an attempt: the client, whether it is a trusted proxy, whether it
/// asks for an upgrade, and when the request came in.
#[derive(Debug, Clone, Copy)]
struct Origin<'a> {
    /// The client's address as an `X-Forwarded-For` value, made once per connection.
    forwarded_for: &'a HeaderValue,
    /// The request came over TLS: `X-Forwarded-Proto: https`.
    https: bool,
    trusted: bool,
    upgrade: bool,
    now: Nanos,
    /// The connection's timer, for an HTTP/1 request.
    timer: Option<&'a ConnTimer>,
}

/// Why a request got no upstream response.
enum Failure {
    /// The attempt failed.
    Kind(ProxyErrorKind),
    /// The proxy answers itself.
    Local(Refusal),
}

/// Why the proxy answers a request itself.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// 429: the route's rate limit; a token comes after this wait.
    RateLimited(std::time::Duration),
    /// 503: the upstream's in-flight cap.
    Shed,
    /// 503: the upstream's circuit is open for this long still (and there is no fallback).
    CircuitOpen(std::time::Duration),
}

/// Checks the circuit of the decided upstream. An open circuit of a route's service sends the
/// request to the route's fallback instead (reason `circuit-open`); an open circuit with nowhere
/// to go answers 503.
fn admit_circuit<'a>(
    active: &'a Active,
    route: Option<&CompiledRoute>,
    decision: &mut route::Decision,
    now: Nanos,
) -> Result<Permit<'a>, std::time::Duration> {
    let upstream = &active.upstreams[decision.upstream];
    let (acquired, transition) = upstream.guard.breaker.try_acquire(now);
    upstream.guard.note(&upstream.name, transition);
    let wait = match acquired {
        Ok(permit) => return Ok(permit),
        Err(wait) => wait,
    };
    if let Some(route) = route
        && decision.upstream == route.service
        && route.fallback != route.service
    {
        route.guard.fallback(Cause::CircuitOpen);
        // The SLO counts it as a failure of the service (slo.rs, `Window::record_refused`).
        if let Some(window) = &route.slo
            && matches!(decision.reason, Reason::FlagOn | Reason::Unflagged)
        {
            window.record_refused(std::time::Instant::now());
        }
        decision.upstream = route.fallback;
        decision.reason = Reason::CircuitOpen;
        route
            .last_reason
            .store(Reason::CircuitOpen as u8, Ordering::Relaxed);
        let fallback = &active.upstreams[route.fallback];
        let (acquired, transition) = fallback.guard.breaker.try_acquire(now);
        fallback.guard.note(&fallback.name, transition);
        return acquired.inspect_err(|_| {
            fallback
                .guard
                .counters
                .shed_circuit_open
                .fetch_add(1, Ordering::Relaxed);
        });
    }
    upstream
        .guard
        .counters
        .shed_circuit_open
        .fetch_add(1, Ordering::Relaxed);
    Err(wait)
}

/// Sends one attempt to `upstream`: takes a slot of its in-flight cap, picks an address, points
/// the request at it and waits up to `timeout` from `started` for the response head. Returns the
/// address tried (`None` when the request was shed before one was picked).
///
/// The first attempt rewrites the client's head for the upstream (`rewrite_request`); a retry
/// gets the same head, already rewritten, and only its `Host` moves to the new address, so that
/// the head need not be copied in case of a retry.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its state; see `handle`"
)]
fn send_attempt<'a>(
    active: &'a Active,
    upstream: &'a Upstream,
    (parts, forwarded, first): (
        &'a mut http::request::Parts,
        &'a mut Option<Forwarded>,
        bool,
    ),
    mut body: Outbound,
    (started, timeout): (Instant, std::time::Duration),
    origin: Origin<'a>,
    shadow: Option<(&'a Arc<crate::shadow::RouteShadow>, usize)>,
) -> impl Future<Output = (Option<Arc<Address>>, Result<Sent, Failure>)> + 'a {
    async move {
        let cap_permit = match &upstream.concurrency {
            None => None,
            Some(cap) => {
                if let Some(permit) = cap.acquire().await {
                    Some(permit)
                } else {
                    upstream
                        .guard
                        .counters
                        .shed_in_flight
                        .fetch_add(1, Ordering::Relaxed);
                    return (None, Err(Failure::Local(Refusal::Shed)));
                }
            }
        };
        let Origin {
            forwarded_for,
            https,
            trusted,
            upgrade,
            now,
            timer,
        } = origin;
        let (address, mut slot) = upstream.pick_at(now);
        slot.hold(cap_permit);
        if !first {
            if !active.config.preserve_host {
                parts
                    .headers
                    .insert(header::HOST, address.host_header.clone());
            }
        } else {
            match rewrite_request(
                parts,
                (forwarded_for, https),
                trusted,
                upgrade,
                active.config.preserve_host,
                &address,
            ) {
                Ok(fields) => *forwarded = Some(fields),
                Err(kind) => return (Some(address), Err(Failure::Kind(kind))),
            }
        }
        let forwarded = forwarded.as_ref();
        // Shadow traffic starts from the head as rewritten for the primary (shadow.rs).
        let pending = shadow.and_then(|(plan, primary)| {
            let (pending, tee) =
                crate::shadow::start(plan, parts, forwarded, &body, primary, &active.upstreams)?;
            match (&mut body, tee) {
                (Outbound::Whole(bytes), Some(tee)) => tee.copy(bytes),
                (Outbound::Streaming(streaming), tee) => streaming.tee = tee,
                (Outbound::Whole(_), None) => {}
            }
            Some(pending)
        });
        let sent = send(
            &address,
            (parts, forwarded),
            body,
            (upgrade, active.config.http1_client == Http1Server::Fig),
            active.config.timeouts.connect,
        );
        let result = match timer {
            Some(timer) => {
                let deadline = tokio::time::Instant::from_std(started) + timeout;
                timer.timeout(deadline, sent).await.ok()
            }
            None => tokio::time::timeout(timeout, sent).await.ok(),
        };
        let result = result.unwrap_or(Err(ProxyErrorKind::Timeout));
        let result = match result {
            Ok(exchanged) => Ok(Sent {
                response: exchanged.response,
                slot,
                upgraded: exchanged.upgraded,
                shadow: pending,
            }),
            Err(kind) => Err(Failure::Kind(kind)),
        };
        (Some(address), result)
    }
}

/// Passes the outcome of an attempt to [`crate::protection::attempt::observe_attempt`]; returns it (`None`
/// when no address was tried).
fn observe(
    (route, to_service): (Option<&CompiledRoute>, bool),
    upstream: &Upstream,
    address: Option<&Address>,
    result: &Result<Sent, Failure>,
    sent: Instant,
    permit: Permit<'_>,
) -> Option<Outcome> {
    let address = address?;
    let outcome = match result {
        Ok(sent) => Outcome::Status(sent.response.status()),
        Err(Failure::Kind(kind)) => Outcome::Error(*kind),
        Err(Failure::Local(..)) => return None,
    };
    let done = Instant::now();
    crate::protection::attempt::observe_attempt(
        &Attempt {
            slo: route.and_then(|route| route.slo.as_deref()),
            upstream,
            address,
            to_service,
            outcome,
            latency: done.saturating_duration_since(sent),
            finished: done,
        },
        permit,
    );
    Some(outcome)
}

/// The verified client certificate of the request's connection, if any (`client-cert:`
/// sources of the flag context).
fn client_cert(client: &ClientConn) -> Option<&crate::http::tls::ClientIdentity> {
    client.tls.as_ref()?.client.as_ref()
}

/// Takes a token of a route's rate limit for this request.
fn check_rate_limit(
    limit: &RateLimit,
    active: &Active,
    parts: &http::request::Parts,
    client: &ClientConn,
) -> Result<(), std::time::Duration> {
    let peer = client.addr.ip();
    let client_ip = || {
        crate::decision::context::client_ip(peer, &parts.headers, active.context.trusted_proxies())
    };
    match limit.key_kind() {
        RateKey::Global => limit.check(Key::Global),
        RateKey::Ip => limit.check(Key::Ip(client_ip())),
        RateKey::User => {
            let context = active.context.build_for(parts, peer, client_cert(client));
            match context.as_ref().user_id {
                Some(user) => limit.check(Key::User(user)),
                None => limit.check(Key::Ip(client_ip())),
            }
        }
    }
}

fn local_response(
    status: StatusCode,
    detail: &str,
    retry_after: Option<std::time::Duration>,
) -> Response<ProxyBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut response = Response::new(ProxyBody::full(format!(
        "{} {reason}: {detail}\n",
        status.as_u16()
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(wait) = retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::protection::limit::retry_after_seconds(wait)),
        );
    }
    response
}

fn too_many_requests(route: &str, wait: std::time::Duration) -> Response<ProxyBody> {
    local_response(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("rate limit of route `{route}` exceeded"),
        Some(wait),
    )
}

fn shed(upstream: &str) -> Response<ProxyBody> {
    local_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("upstream `{upstream}` has too many requests in flight"),
        Some(std::time::Duration::from_secs(1)),
    )
}

fn circuit_open(upstream: &str, wait: std::time::Duration) -> Response<ProxyBody> {
    local_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("the circuit of upstream `{upstream}` is open after repeated failures"),
        Some(wait),
    )
}

/// Sends `request` on a pooled connection of `address`, or a new one.
///
/// A whole body (none, or one the proxy holds) and any upgrade go through the proxy's own client
/// in this task (`client.rs`). When a pooled connection fails before any byte of a response came
/// (the upstream closed it while it was idle), the request goes once more, on a new connection,
/// if [`client::Failure::may_resend`] allows it: nothing of it was sent, or it is idempotent.
/// Never more than once, and never on another pooled connection: fifty stale connections must
/// not make fifty copies of one request. A body that streams from the client takes hyper's
/// client, which reads the response while the body is still going out; hyper hands a request
/// back only when none of it was sent, and only then does it go on another connection.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its state; see `handle`"
)]
fn send<'a>(
    address: &'a Arc<Address>,
    (parts, forwarded): (&'a mut http::request::Parts, Option<&'a Forwarded>),
    body: Outbound,
    (upgrade, own_client): (bool, bool),
    connect_timeout: std::time::Duration,
) -> impl Future<Output = Result<Exchanged, ProxyErrorKind>> + 'a {
    async move {
        let body = match body {
            Outbound::Whole(bytes) if (own_client || upgrade) && !address.via_hyper() => bytes,
            // `server.http1_client = "hyper"`: hyper's client sends it all (but upgrades, which
            // take the connection over); so it does to an https or HTTP/2 upstream.
            Outbound::Whole(bytes) => {
                let body = RequestBody {
                    inner: ClientBody::Read((!bytes.is_empty()).then_some(bytes)),
                    remaining: u64::MAX,
                    tee: None,
                    // All there: it never waits.
                    idle: Idle::new(Duration::MAX),
                };
                // A copy of the head: a whole body may go again, to the route's fallback
                // (`attempt`), with this head.
                return Box::pin(send_through_hyper(
                    address,
                    &mut parts.clone(),
                    forwarded,
                    body,
                    connect_timeout,
                ))
                .await;
            }
            Outbound::Streaming(body) => {
                return Box::pin(send_through_hyper(
                    address,
                    parts,
                    forwarded,
                    body,
                    connect_timeout,
                ))
                .await;
            }
        };
        debug_assert!(!upgrade || body.is_empty(), "an upgrade has no body");
        // The forwarding headers go on the wire after the map's.
        static NONE: HeaderValue = HeaderValue::from_static("");
        let mut extra = [(&header::VIA, &NONE); 4];
        let mut count = 0;
        for (slot, field) in extra
            .iter_mut()
            .zip(forwarded.into_iter().flat_map(Forwarded::fields))
        {
            *slot = field;
            count += 1;
        }
        let request = Outgoing {
            parts: &*parts,
            extra: &extra[..count],
            body: &body,
        };
        let conn = match address.checkout() {
            Some(conn) => conn,
            None => address.connect(connect_timeout).await?,
        };
        let exchanged = match conn.exchange(request, address).await {
            Ok(exchanged) => exchanged,
            Err(failure) if failure.may_resend(client::is_idempotent(request.parts)) => {
                tracing::debug!(
                    address = %address.authority,
                    error = %failure.error,
                    "pooled connection failed before any response; sending once more on a new one"
                );
                let conn = address.connect(connect_timeout).await?;
                conn.exchange(request, address)
                    .await
                    .map_err(|failure| classify(&failure.error))?
            }
            Err(failure) => return Err(classify(&failure.error)),
        };
        let (parts, body) = exchanged.response.into_parts();
        Ok(Exchanged {
            response: Response::from_parts(parts, Received::Own(body)),
            upgraded: exchanged.upgraded,
        })
    }
}

/// [`send`] on hyper's client: the head taken from `parts`, the forwarding fields put into its
/// map; a streamed body is never sent twice anyway. `send` boxes this future: hyper's client
/// would make it the largest state of `send`, and every request's future is moved by copying it
/// whole when it starts.
async fn send_through_hyper(
    address: &Arc<Address>,
    parts: &mut http::request::Parts,
    forwarded: Option<&Forwarded>,
    body: RequestBody,
    connect_timeout: std::time::Duration,
) -> Result<Exchanged, ProxyErrorKind> {
    let mut parts = std::mem::replace(parts, Request::new(()).into_parts().0);
    if let Some(forwarded) = forwarded {
        forwarded.apply(&mut parts.headers);
    }
    // hyper's client sends no body at all for a GET, HEAD or CONNECT whose body has no length
    // and whose head names no coding: it would drop the body the client sent (and leave it
    // unread on the client's connection). Naming the coding makes it go, chunked, as it came.
    // (The hop-by-hop `Transfer-Encoding` of the client's head was removed; the length, if any,
    // is still there.)
    if body.size_hint().exact().is_none()
        && matches!(parts.method, Method::GET | Method::HEAD | Method::CONNECT)
        && !parts.headers.contains_key(header::CONTENT_LENGTH)
    {
        parts.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    if address.is_h2() {
        address.h2_head(&mut parts);
    }
    let request = Request::from_parts(parts, body);
    send_streaming(address, request, connect_timeout).await
}

/// A response head from an upstream, and the connection after an upgrade.
struct Exchanged {
    response: Response<Received>,
    upgraded: Option<crate::http::client::Upgraded>,
}

/// [`send`] for a request whose body streams, on hyper's client.
async fn send_streaming(
    address: &Arc<Address>,
    mut request: Request<RequestBody>,
    connect_timeout: std::time::Duration,
) -> Result<Exchanged, ProxyErrorKind> {
    let received = |response: Response<Incoming>, sender| {
        let (parts, body) = response.into_parts();
        Ok(Exchanged {
            response: Response::from_parts(
                parts,
                Received::Streaming {
                    body,
                    conn: Some((sender, address.clone())),
                },
            ),
            upgraded: None,
        })
    };
    while let Some(mut sender) = address.checkout_streaming() {
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(request).await {
            Ok(response) => return received(response, sender),
            Err(mut err) => match err.take_message() {
                Some(unsent) => request = unsent,
                None => return Err(classify_hyper(err.error())),
            },
        }
    }
    let mut sender = address.connect_streaming(connect_timeout).await?;
    match sender.send_request(request).await {
        Ok(response) => received(response, sender),
        Err(err) => Err(classify_hyper(&err)),
    }
}

fn classify_hyper(err: &hyper::Error) -> ProxyErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(body) = cause.downcast_ref::<BodyError>() {
            return match body {
                BodyError::TooLarge => ProxyErrorKind::BodyTooLarge,
                BodyError::Client(_) | BodyError::Stalled => ProxyErrorKind::BadRequest,
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

fn classify(err: &ClientError) -> ProxyErrorKind {
    match err {
        ClientError::Stalled => ProxyErrorKind::Timeout,
        ClientError::Io(_)
        | ClientError::Closed
        | ClientError::Invalid(_)
        | ClientError::Hyper(_) => {
            tracing::debug!(error = %err, "upstream exchange failed");
            ProxyErrorKind::Protocol
        }
    }
}

/// Joins an upgraded client connection (WebSocket) to the upstream's, both ways, until either
/// side closes. Bytes the upstream sent right after its 101 go to the client first.
async fn join_upgraded(
    client_upgrade: hyper::upgrade::OnUpgrade,
    upgraded: crate::http::client::Upgraded,
) {
    use tokio::io::AsyncWriteExt as _;
    let client = match client_upgrade.await {
        Ok(client) => client,
        Err(err) => {
            tracing::debug!(error = %err, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let crate::http::client::Upgraded {
        read,
        stream: mut upstream,
    } = upgraded;
    if !read.is_empty()
        && let Err(err) = client.write_all(&read).await
    {
        tracing::debug!(error = %err, "upgraded connection ended with an error");
        return;
    }
    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %err, "upgraded connection ended with an error");
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

/// The answer to a request [`crate::http::target::canonicalize`] refuses: 400, and the connection
/// closes, as NGINX does (what follows a malformed head cannot be trusted to be a request).
fn bad_target(
    shared: &Shared,
    client: &ClientConn,
    parts: &http::request::Parts,
    bad: crate::http::target::BadTarget,
    start: Instant,
) -> Response<ProxyBody> {
    tracing::debug!(peer = %client.addr, error = %bad, "request refused");
    let mut response = local_response(StatusCode::BAD_REQUEST, &bad.to_string(), None);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(log) = &shared.access_log {
        log.line(&AccessEntry {
            client: client.addr.ip(),
            method: &parts.method,
            uri: &parts.uri,
            status: StatusCode::BAD_REQUEST.as_u16(),
            route: UNMATCHED,
            upstream: "-",
            reason: Reason::NoRoute,
            elapsed: start.elapsed(),
        });
    }
    response
}

/// Whether a request asks for an upgrade (`Upgrade`, and `Connection: upgrade`), to any protocol:
/// which one is forwarded, if any, depends on its route (`handle`).
fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// The request's `Content-Length`, read by the one rule of `framing.rs`.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    crate::http::framing::content_length(headers.get(header::CONTENT_LENGTH)?.as_bytes())
}

fn via(version: Version) -> HeaderValue {
    match version {
        Version::HTTP_2 => HeaderValue::from_static("2.0 fig"),
        Version::HTTP_10 => HeaderValue::from_static("1.0 fig"),
        _ => HeaderValue::from_static("1.1 fig"),
    }
}

/// Points the request at `address` and works out its forwarding headers: hop-by-hop headers out,
/// `Host` set, the client's own `X-Forwarded-*` dropped unless it is a trusted proxy.
fn rewrite_request(
    parts: &mut http::request::Parts,
    (peer_value, https): (&HeaderValue, bool),
    trusted: bool,
    upgrade: bool,
    preserve_host: bool,
    address: &Address,
) -> Result<Forwarded, ProxyErrorKind> {
    let upgrade_value = if upgrade {
        parts.headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    remove_hop_by_hop(&mut parts.headers);
    if let Some(value) = upgrade_value {
        // Room for the two headers at once: the parser sized the map for what it read.
        parts.headers.reserve(ADDED_REQUEST_HEADERS);
        parts.headers.insert(header::UPGRADE, value);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }

    // One pass over the names finds the forwarding headers the client sent, if any.
    let (mut has_for, mut has_proto, mut has_host) = (false, false, false);
    for name in parts.headers.keys() {
        if !name.as_str().starts_with("x-forwarded-") {
            continue;
        }
        has_for |= *name == X_FORWARDED_FOR;
        has_proto |= *name == X_FORWARDED_PROTO;
        has_host |= *name == X_FORWARDED_HOST;
    }

    let host_header = parts.headers.get(header::HOST).cloned();
    let original_host = host_header.clone().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });

    // X-Forwarded-For: believe what a trusted proxy says and add the peer; from anyone else,
    // replace it, so a client cannot claim another address.
    let forwarded_for = if trusted && has_for {
        let mut joined = Vec::with_capacity(64);
        for value in parts.headers.get_all(&X_FORWARDED_FOR) {
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(value.as_bytes());
        }
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(peer_value.as_bytes());
        HeaderValue::from_bytes(&joined).unwrap_or_else(|_| peer_value.clone())
    } else {
        peer_value.clone()
    };
    if has_for {
        parts.headers.remove(&X_FORWARDED_FOR);
    }
    if has_proto && !trusted {
        parts.headers.remove(&X_FORWARDED_PROTO);
    }
    if has_host && !trusted {
        parts.headers.remove(&X_FORWARDED_HOST);
    }
    let forwarded = Forwarded {
        forwarded_for,
        proto: if trusted && has_proto {
            None
        } else if https {
            Some(Proto::Https)
        } else {
            Some(Proto::Http)
        },
        host: if trusted && has_host {
            None
        } else {
            original_host.clone()
        },
        via: via(parts.version),
    };

    // HTTP/1.1 needs a Host: the client's (unless told otherwise), else the upstream's.
    match original_host {
        // Already there.
        Some(_) if preserve_host && host_header.is_some() => {}
        Some(host) if preserve_host => {
            parts.headers.insert(header::HOST, host);
        }
        _ => {
            parts
                .headers
                .insert(header::HOST, address.host_header.clone());
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
    Ok(forwarded)
}

/// A client's IP as a header value (`X-Forwarded-For`).
pub(crate) fn ip_header_value(ip: IpAddr) -> HeaderValue {
    let text = crate::decision::context::IpText::new(ip);
    HeaderValue::from_str(text.as_str()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The proxy's own HTTP/1 server and hyper's call [`handle`] through this.
impl server::Service for Shared {
    type Body = ProxyBody;

    fn call<'a>(
        &'a self,
        client: &'a ClientConn,
        req: Request<ClientBody>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + 'a {
        handle(self, client, req)
    }

    fn h2_deadlines(&self) -> crate::http::connections::H2Deadlines {
        let timeouts = self.active.load().config.timeouts;
        crate::http::connections::H2Deadlines {
            handshake: timeouts.h2_handshake,
            idle: timeouts.h2_idle,
            grace: timeouts.h2_ping_timeout,
        }
    }

    fn connection_metrics(&self) -> &crate::http::connections::ConnectionMetrics {
        &self.metrics.connections
    }
}

impl server::ResponseBody for ProxyBody {
    fn upstream_fields(&self) -> Option<&crate::http::client::Fields> {
        ProxyBody::upstream_fields(self)
    }

    fn move_fields_into(&mut self, headers: &mut HeaderMap) {
        ProxyBody::move_fields_into(self, headers);
    }
}
