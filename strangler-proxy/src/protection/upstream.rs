//! Upstream pools: addresses, load balancing, health checks, and the HTTP client.
//!
//! Each address keeps its own pool of idle HTTP/1 connections of the proxy's own client
//! (`client.rs`): a connection goes back to the pool when its response body has been read to the
//! end; no task is spawned per request or per connection. Requests whose body streams from the
//! client take hyper's connection-level client instead (a second pool), which reads the response
//! while the body is still being sent. So does every request to an upstream the own client does
//! not speak to: `https://` addresses (TLS by `http::upstream_tls`, the connections pooled the
//! same way) and `protocol = "h2"` (one multiplexed connection per address, shared by every
//! request, reopened when it closes). Health checks use hyper-util's pooled client for cleartext
//! HTTP/1 and a new connection per check otherwise (as HAProxy's checks do).
//! Balancing is round-robin or least-connections over the healthy addresses; when every address
//! is unhealthy, all are used, since a health check that is wrong must not take the site down.
//! Health checks run as background tasks that are aborted when their config is replaced.
//! Addresses ejected by outlier detection (`breaker::Outlier`) are skipped like unhealthy ones.
//! Each upstream also holds its circuit breaker and in-flight cap (`breaker`, `limit`), fed by
//! `attempt::observe_attempt`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::config::{
    Balance, Config, HealthCheck, OutlierConfig, Protocol, StatusSet, UpstreamConfig, UpstreamTls,
};
use crate::error::ProxyErrorKind;
use crate::http::body::RequestBody;
use crate::http::client::Conn;
use crate::http::upstream_tls::{self, UpstreamIo};
use crate::protection::breaker::{Nanos, Outlier};
use crate::protection::guard::{GuardMetrics, UpstreamGuard};
use crate::protection::limit::Concurrency;

/// One upstream: a named pool of addresses.
#[derive(Debug)]
pub struct Upstream {
    /// Its name.
    pub name: Arc<str>,
    /// Its name as a header value, for the response header.
    pub header_value: HeaderValue,
    /// Its addresses.
    pub addresses: Vec<Arc<Address>>,
    balance: Balance,
    next: AtomicUsize,
    health_check: Option<HealthCheck>,
    /// Statuses that count as failures of this upstream.
    pub failure_statuses: StatusSet,
    /// Outlier ejection settings.
    pub outlier: OutlierConfig,
    /// The circuit breaker and the counters of this upstream, kept across reloads.
    pub guard: Arc<UpstreamGuard>,
    /// The cap on requests in flight, if any.
    pub concurrency: Option<Concurrency>,
}

/// One address of an upstream.
#[derive(Debug)]
pub struct Address {
    /// `http`.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
    /// Requests in flight (until the response body ends).
    pub in_flight: AtomicUsize,
    /// Result of the last health check (true until a check fails).
    pub healthy: AtomicBool,
    /// Outlier-ejection state.
    pub outlier: Outlier,
    /// `host:port` as a `Host` header value.
    pub host_header: HeaderValue,
    /// Idle keep-alive connections, most recently used last.
    idle: Mutex<Vec<Conn>>,
    /// Idle hyper connections, for requests that stream a body, most recently used last. An
    /// HTTP/2 address keeps its one connection here, shared (never taken out).
    idle_streaming: Mutex<Vec<Sender>>,
    /// TLS to this address, for `https://`.
    tls: Option<UpstreamTls>,
    /// Whether it speaks HTTP/2.
    h2: bool,
}

/// The sending half of one hyper connection to an upstream address: requests whose body streams
/// from the client go this way, since hyper reads the response while the body is still being
/// sent (an upstream that answers as it reads, like an echo, needs that), and every request to
/// an `https://` or HTTP/2 address.
pub type Sender = HyperSender<RequestBody>;

/// hyper's sending half of one connection, HTTP/1 or HTTP/2, for request bodies of type `B`.
#[derive(Debug)]
pub enum HyperSender<B> {
    /// One request at a time.
    Http1(hyper::client::conn::http1::SendRequest<B>),
    /// Multiplexed; clones share the connection.
    Http2(hyper::client::conn::http2::SendRequest<B>),
}

impl<B> HyperSender<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        match self {
            HyperSender::Http1(sender) => sender.is_closed(),
            HyperSender::Http2(sender) => sender.is_closed(),
        }
    }

    /// Waits until the connection can take a request.
    pub async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            HyperSender::Http1(sender) => sender.ready().await,
            HyperSender::Http2(sender) => sender.ready().await,
        }
    }

    /// Sends `request`; hands it back when none of it was sent.
    pub async fn try_send_request(
        &mut self,
        request: Request<B>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper::client::conn::TrySendError<Request<B>>>
    {
        match self {
            HyperSender::Http1(sender) => sender.try_send_request(request).await,
            HyperSender::Http2(sender) => sender.try_send_request(request).await,
        }
    }

    /// Sends `request`.
    pub async fn send_request(
        &mut self,
        request: Request<B>,
    ) -> hyper::Result<http::Response<hyper::body::Incoming>> {
        match self {
            HyperSender::Http1(sender) => sender.send_request(request).await,
            HyperSender::Http2(sender) => sender.send_request(request).await,
        }
    }

    /// A handle on the same connection, for HTTP/2 (which many requests share at once).
    pub fn share(&self) -> Option<HyperSender<B>> {
        match self {
            HyperSender::Http1(_) => None,
            HyperSender::Http2(sender) => Some(HyperSender::Http2(sender.clone())),
        }
    }
}

/// Most idle connections kept per address.
const MAX_IDLE: usize = 512;

/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

impl Address {
    /// An idle pooled connection, if one is still open (the most recently used first).
    pub fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(mut conn) = idle.pop() {
            if conn.is_usable() {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection whose exchange has completed to the pool. The oldest idle connection
    /// goes when it has been idle too long or the upstream closed it, so that closed sockets do
    /// not pile up in a pool that is not drained.
    pub fn checkin(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(oldest) = idle.first_mut()
            && (conn.idle_since.saturating_duration_since(oldest.idle_since) > IDLE_TIMEOUT
                || !oldest.is_usable())
        {
            idle.remove(0);
        }
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// An idle pooled hyper connection, if one is still open; for HTTP/2, the shared one.
    pub fn checkout_streaming(&self) -> Option<Sender> {
        let mut idle = self
            .idle_streaming
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                if let Some(shared) = sender.share() {
                    idle.push(sender);
                    return Some(shared);
                }
                return Some(sender);
            }
        }
        None
    }

    /// Returns a hyper connection whose exchange has completed to the pool (for HTTP/2, keeps
    /// it as the shared connection unless one is kept already).
    pub fn checkin_streaming(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self
            .idle_streaming
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if matches!(sender, HyperSender::Http2(_)) {
            if idle.iter().any(|kept| !kept.is_closed()) {
                return;
            }
            idle.clear();
        }
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// Opens a new hyper connection, within `timeout`; a task drives it. An HTTP/2 one becomes
    /// the address's shared connection.
    pub async fn connect_streaming(&self, timeout: Duration) -> Result<Sender, ProxyErrorKind> {
        let sender = self
            .handshake(timeout, true)
            .await
            .map_err(|err| err.kind)?;
        if let Some(shared) = sender.share() {
            self.checkin_streaming(shared);
        }
        Ok(sender)
    }

    /// Whether requests to this address go through hyper's client: TLS or HTTP/2, which the
    /// proxy's own HTTP/1 client does not speak.
    pub fn via_hyper(&self) -> bool {
        self.tls.is_some() || self.h2
    }

    /// Whether it speaks HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.h2
    }

    /// Opens a connection, TCP then TLS for `https://`, within `timeout`. A failed TLS
    /// handshake is logged with its reason (an unknown issuer, an expired certificate, a name
    /// that does not match), since the client only sees a 502.
    pub async fn open(&self, timeout: Duration) -> Result<UpstreamIo, OpenError> {
        let opened = tokio::time::timeout(timeout, async {
            let conn = self.connect(timeout).await.map_err(|kind| OpenError {
                kind,
                reason: format!("cannot connect to {}", self.authority),
            })?;
            let stream = conn.into_stream();
            let Some(tls) = &self.tls else {
                return Ok(UpstreamIo::Plain(stream));
            };
            match upstream_tls::connect(tls, self.host(), stream).await {
                Ok(stream) => Ok(UpstreamIo::Tls(Box::new(stream))),
                Err(err) => {
                    tracing::warn!(address = %self.authority, error = %err, "TLS handshake with the upstream failed");
                    Err(OpenError {
                        kind: ProxyErrorKind::Connect,
                        reason: format!("TLS handshake with {} failed: {err}", self.authority),
                    })
                }
            }
        })
        .await;
        opened.unwrap_or_else(|_| {
            Err(OpenError {
                kind: ProxyErrorKind::Connect,
                reason: format!("cannot connect to {} in time", self.authority),
            })
        })
    }

    /// Opens a connection ([`Address::open`]) and starts hyper's client on it, HTTP/2 when the
    /// upstream speaks it; a task drives the connection.
    pub async fn handshake<B>(
        &self,
        timeout: Duration,
        upgrades: bool,
    ) -> Result<HyperSender<B>, OpenError>
    where
        B: hyper::body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let io = TokioIo::new(self.open(timeout).await?);
        let failed = |err: hyper::Error| OpenError {
            kind: ProxyErrorKind::Protocol,
            reason: format!("handshake with {} failed: {err}", self.authority),
        };
        if self.h2 {
            let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(failed)?;
            tokio::spawn(async move {
                if let Err(err) = conn.await {
                    tracing::debug!(error = %err, "upstream HTTP/2 connection ended with an error");
                }
            });
            return Ok(HyperSender::Http2(sender));
        }
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(io)
            .await
            .map_err(failed)?;
        tokio::spawn(async move {
            let ended = if upgrades {
                conn.with_upgrades().await
            } else {
                conn.await
            };
            if let Err(err) = ended {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        Ok(HyperSender::Http1(sender))
    }

    /// Rewrites a head for this address when it speaks HTTP/2: `:authority` carries what `Host`
    /// would (the request URI is absolute, the `Host` field goes), and a gRPC call says
    /// `te: trailers` again (gRPC requires it; the client's `TE` was hop-by-hop and removed).
    pub fn h2_head(&self, parts: &mut http::request::Parts) {
        let authority = parts
            .headers
            .remove(http::header::HOST)
            .and_then(|host| Authority::try_from(host.as_bytes()).ok())
            .unwrap_or_else(|| self.authority.clone());
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(authority);
        uri.path_and_query = parts.uri.path_and_query().cloned();
        if let Ok(absolute) = Uri::from_parts(uri) {
            parts.uri = absolute;
        }
        parts.version = http::Version::HTTP_2;
        if crate::http::framing::is_grpc(&parts.headers) {
            parts
                .headers
                .insert(http::header::TE, HeaderValue::from_static("trailers"));
        }
    }

    /// The host, without the brackets of an IPv6 address.
    fn host(&self) -> &str {
        self.authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
    }

    /// Opens a new connection, within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Conn, ProxyErrorKind> {
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        let port = self.authority.port_u16().unwrap_or(default_port);
        Conn::connect(self.host(), port, timeout)
            .await
            .map_err(|err| {
                tracing::debug!(address = %self.authority, error = %err, "connect failed");
                ProxyErrorKind::Connect
            })
    }
}

/// Why a connection to an upstream address could not be opened.
#[derive(Debug)]
pub struct OpenError {
    /// How the request path counts it.
    pub kind: ProxyErrorKind,
    /// What happened, for logs and shadow samples.
    pub reason: String,
}

/// Holds one in-flight slot of an address (and of its upstream's cap, if any) until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Address>, Option<tokio::sync::OwnedSemaphorePermit>);

impl InFlight {
    /// Also holds `permit` of the upstream's in-flight cap until dropped.
    pub fn hold(&mut self, permit: Option<tokio::sync::OwnedSemaphorePermit>) {
        self.1 = permit;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Upstream {
    /// Builds the pool of one upstream config, with counters (and a breaker) that live in
    /// `metrics` across reloads.
    pub fn with_metrics(config: &UpstreamConfig, guard: &GuardMetrics) -> Upstream {
        let mut upstream = Upstream::new(config);
        upstream.guard = guard.upstream(&config.name, &config.circuit_breaker);
        upstream
    }

    /// Builds the pool of one upstream config.
    pub fn new(config: &UpstreamConfig) -> Upstream {
        let addresses = config
            .addresses
            .iter()
            .map(|uri| {
                let authority = uri
                    .authority()
                    .cloned()
                    .unwrap_or_else(|| Authority::from_static("localhost"));
                Arc::new(Address {
                    scheme: uri.scheme().cloned().unwrap_or(Scheme::HTTP),
                    host_header: HeaderValue::from_str(authority.as_str())
                        .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
                    authority,
                    in_flight: AtomicUsize::new(0),
                    healthy: AtomicBool::new(true),
                    outlier: Outlier::default(),
                    idle: Mutex::new(Vec::new()),
                    idle_streaming: Mutex::new(Vec::new()),
                    tls: config.tls.clone(),
                    h2: config.protocol == Protocol::H2,
                })
            })
            .collect();
        Upstream {
            name: config.name.as_str().into(),
            header_value: HeaderValue::from_str(&config.name)
                .unwrap_or_else(|_| HeaderValue::from_static("upstream")),
            addresses,
            balance: config.balance,
            next: AtomicUsize::new(0),
            health_check: config.health_check.clone(),
            failure_statuses: config.failure_statuses,
            outlier: config.outlier_detection,
            guard: Arc::new(UpstreamGuard::new(&config.circuit_breaker)),
            concurrency: config
                .max_in_flight
                .map(|max| Concurrency::new(max, config.queue_timeout)),
        }
    }

    /// Addresses ejected by outlier detection at `now`.
    pub fn ejected(&self, now: Nanos) -> usize {
        self.addresses
            .iter()
            .filter(|a| a.outlier.is_ejected(now))
            .count()
    }

    /// Picks an address for one request and takes an in-flight slot on it.
    pub fn pick(&self) -> (Arc<Address>, InFlight) {
        self.pick_at(crate::protection::breaker::nanos(std::time::Instant::now()))
    }

    /// [`Upstream::pick`] at time `now`: addresses that fail their health check or are ejected
    /// get no requests, unless no address is left, then all are used.
    pub fn pick_at(&self, now: Nanos) -> (Arc<Address>, InFlight) {
        let address = if self.addresses.len() == 1 {
            &self.addresses[0]
        } else {
            let good =
                |a: &Arc<Address>| a.healthy.load(Ordering::Relaxed) && !a.outlier.is_ejected(now);
            let any_good = self.addresses.iter().any(good);
            let usable = |a: &&Arc<Address>| !any_good || good(a);
            match self.balance {
                Balance::RoundRobin => {
                    let start = self.next.fetch_add(1, Ordering::Relaxed);
                    let n = self.addresses.len();
                    (0..n)
                        .map(|i| &self.addresses[(start + i) % n])
                        .find(|a| usable(a))
                        .unwrap_or(&self.addresses[start % n])
                }
                Balance::LeastConnections => {
                    // Ties go round-robin so an idle pool still spreads load.
                    let start = self.next.fetch_add(1, Ordering::Relaxed);
                    let n = self.addresses.len();
                    (0..n)
                        .map(|i| &self.addresses[(start + i) % n])
                        .filter(|a| usable(a))
                        .min_by_key(|a| a.in_flight.load(Ordering::Relaxed))
                        .unwrap_or(&self.addresses[0])
                }
            }
        };
        address.in_flight.fetch_add(1, Ordering::Relaxed);
        (address.clone(), InFlight(address.clone(), None))
    }
}

/// The client type used for health checks.
pub type UpstreamClient<B> = Client<HttpConnector, B>;

/// Builds the health-check client with the config's connect timeout.
pub fn client<B>(config: &Config) -> UpstreamClient<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.timeouts.connect));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .set_host(false)
        .build(connector)
}

/// Starts the health-check tasks of `upstreams`; abort the handles to stop them.
pub fn spawn_health_checks(
    upstreams: &[Arc<Upstream>],
    config: &Config,
) -> Vec<tokio::task::AbortHandle> {
    let client: UpstreamClient<Empty<Bytes>> = client(config);
    let mut handles = Vec::new();
    for upstream in upstreams {
        let Some(check) = upstream.health_check.clone() else {
            continue;
        };
        for address in &upstream.addresses {
            let client = client.clone();
            let address = address.clone();
            let check = check.clone();
            let name = upstream.name.clone();
            let task = tokio::spawn(async move {
                let mut ticker = tokio::time::interval(check.interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let healthy = probe(&client, &address, &check).await;
                    let was = address.healthy.swap(healthy, Ordering::Relaxed);
                    if was != healthy {
                        if healthy {
                            tracing::info!(upstream = %name, address = %address.authority, "upstream address is healthy again");
                        } else {
                            tracing::warn!(upstream = %name, address = %address.authority, path = %check.path, "upstream address failed its health check");
                        }
                    }
                }
            });
            handles.push(task.abort_handle());
        }
    }
    handles
}

async fn probe(
    client: &UpstreamClient<Empty<Bytes>>,
    address: &Address,
    check: &HealthCheck,
) -> bool {
    let Ok(uri) = Uri::builder()
        .scheme(address.scheme.clone())
        .authority(address.authority.clone())
        .path_and_query(check.path.as_str())
        .build()
    else {
        return false;
    };
    let Ok(host) = HeaderValue::from_str(address.authority.as_str()) else {
        return false;
    };
    let Ok(request) = Request::get(uri)
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "fig-proxy-health-check")
        .body(Empty::new())
    else {
        return false;
    };
    let status = if address.via_hyper() {
        // TLS or HTTP/2: a connection of its own per check, closed after it.
        let (mut parts, body) = request.into_parts();
        if !address.h2 {
            parts.uri = Uri::from_maybe_shared(check.path.clone()).unwrap_or_default();
        }
        let request = Request::from_parts(parts, body);
        let checked = async {
            let mut sender = match address
                .handshake::<Empty<Bytes>>(check.timeout, false)
                .await
            {
                Ok(sender) => sender,
                Err(err) => {
                    tracing::debug!(address = %address.authority, error = %err.reason, "health check cannot connect");
                    return None;
                }
            };
            sender
                .send_request(request)
                .await
                .ok()
                .map(|response| response.status())
        };
        tokio::time::timeout(check.timeout, checked)
            .await
            .ok()
            .flatten()
    } else {
        match tokio::time::timeout(check.timeout, client.request(request)).await {
            Ok(Ok(response)) => Some(response.status()),
            _ => None,
        }
    };
    status.is_some_and(|status| status.is_success() || status.is_redirection())
}

impl crate::http::client::Pool for Address {
    fn checkin(&self, conn: Conn) {
        Address::checkin(self, conn);
    }
}
