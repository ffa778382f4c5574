//! Upstream pools: addresses, load balancing, health checks, and the HTTP client.
//!
//! Each address keeps its own pool of idle HTTP/1 connections of the proxy's own client
//! (`client.rs`): a connection goes back to the pool when its response body has been read to the
//! end; no task is spawned per request or per connection. Requests whose body streams from the
//! client take hyper's connection-level client instead (a second pool), which reads the response
//! while the body is still being sent. Health checks use hyper-util's pooled client.
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

use crate::config::{Balance, Config, HealthCheck, OutlierConfig, StatusSet, UpstreamConfig};
use crate::error::ProxyErrorKind;
use crate::http::body::RequestBody;
use crate::http::client::Conn;
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
    /// Idle hyper connections, for requests that stream a body, most recently used last.
    idle_streaming: Mutex<Vec<Sender>>,
}

/// The sending half of one hyper HTTP/1 connection to an upstream address: requests whose body
/// streams from the client go this way, since hyper reads the response while the body is still
/// being sent (an upstream that answers as it reads, like an echo, needs that).
pub type Sender = hyper::client::conn::http1::SendRequest<RequestBody>;

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

    /// An idle pooled hyper connection, if one is still open.
    pub fn checkout_streaming(&self) -> Option<Sender> {
        let mut idle = self
            .idle_streaming
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// Returns a hyper connection whose exchange has completed to the pool.
    pub fn checkin_streaming(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self
            .idle_streaming
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// Opens a new hyper connection, within `timeout`; a task drives it.
    pub async fn connect_streaming(&self, timeout: Duration) -> Result<Sender, ProxyErrorKind> {
        let conn = self.connect(timeout).await?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(conn.into_stream()))
            .await
            .map_err(|_| ProxyErrorKind::Protocol)?;
        tokio::spawn(async move {
            if let Err(err) = conn.with_upgrades().await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Opens a new connection, within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Conn, ProxyErrorKind> {
        let host = self
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = self.authority.port_u16().unwrap_or(80);
        Conn::connect(host, port, timeout).await.map_err(|err| {
            tracing::debug!(address = %self.authority, error = %err, "connect failed");
            ProxyErrorKind::Connect
        })
    }
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
    match tokio::time::timeout(check.timeout, client.request(request)).await {
        Ok(Ok(response)) => response.status().is_success() || response.status().is_redirection(),
        _ => false,
    }
}

impl crate::http::client::Pool for Address {
    fn checkin(&self, conn: Conn) {
        Address::checkin(self, conn);
    }
}
