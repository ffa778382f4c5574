//! Running the proxy: listeners, connections, reloads and graceful shutdown.
//!
//! [`Proxy`] owns everything that outlives one config: the flag source, the pins, the metrics and
//! the current config, held in an `ArcSwap` so that the request path takes no lock. A reload
//! (SIGHUP, `POST /reload`, or a change of the config file) validates the new file first and only
//! then swaps it in; requests already running finish on the config they started with. On
//! shutdown the listeners close, every connection is told to finish its current request, and
//! [`Proxy::serve`] returns when they are done or when `drain_timeout` has passed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::HeaderName;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::config::{AccessLog, Config, Http1Server, Overrides};
use crate::http::connections::{self, Backoff, Every};
use crate::decision::context::ContextBuilder;
use crate::error::{ConfigError, Error};
use crate::decision::flags::FlagSource;
use crate::ops::metrics::Metrics;
use crate::proxy;
use crate::decision::route::{Reason, RouteTable};
use crate::ops::state::Pins;
use crate::protection::upstream::{self, Upstream};

/// The listeners a proxy serves on.
#[derive(Debug)]
pub struct Listeners {
    /// Proxy listeners.
    pub proxy: Vec<TcpListener>,
    /// The admin listener, if the admin API is on.
    pub admin: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(listener: TcpListener) -> Listeners {
        Listeners {
            proxy: vec![listener],
            admin: None,
        }
    }
}

impl Listeners {
    /// Binds the addresses of `config` (`listen` and `admin.listen`).
    pub async fn bind(config: &Config) -> Result<Listeners, Error> {
        let mut proxy = Vec::new();
        for addr in &config.listen {
            proxy.push(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind {
                        addr: *addr,
                        source,
                    })?,
            );
        }
        let admin = match config.admin.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Listeners { proxy, admin })
    }
}

/// A configured proxy, ready to serve. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Proxy {
    pub(crate) shared: Arc<Shared>,
}

/// State shared by every connection and the admin API.
pub(crate) struct Shared {
    pub(crate) active: ArcSwap<Active>,
    pub(crate) flags: Arc<dyn FlagSource>,
    pub(crate) pins: Pins,
    pub(crate) metrics: Metrics,
    pub(crate) access_log: Option<AccessLogger>,
    overrides: Overrides,
    /// Held for a whole reload; it also keeps what the last reload attempt read.
    reload_lock: Mutex<LastAttempt>,
    /// SIGHUP, listened for from [`Proxy::new`] on: a SIGHUP with no handler would end the
    /// process.
    #[cfg(unix)]
    hangup: Mutex<Option<tokio::signal::unix::Signal>>,
}

/// The config file's modification time and length, which tell the watcher it changed.
type FileStamp = (Option<SystemTime>, u64);

fn file_stamp(path: &std::path::Path) -> Option<FileStamp> {
    std::fs::metadata(path)
        .ok()
        .map(|meta| (meta.modified().ok(), meta.len()))
}

/// The config file as the last reload attempt (or the start) read it. The watcher reloads only
/// when the file differs from this, so a file an admin call or SIGHUP already tried is not tried
/// (and refused, and logged) again; and a refused file is logged in full once, however many
/// triggers try it.
#[derive(Debug, Default)]
struct LastAttempt {
    stamp: Option<FileStamp>,
    refused: bool,
}

/// Everything derived from one config.
pub(crate) struct Active {
    pub(crate) config: Arc<Config>,
    pub(crate) routes: RouteTable,
    pub(crate) upstreams: Vec<Arc<Upstream>>,
    pub(crate) context: ContextBuilder,
    pub(crate) upstream_header: Option<HeaderName>,
    health_checks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Active {
    fn drop(&mut self) {
        for handle in &self.health_checks {
            handle.abort();
        }
    }
}

impl Active {
    fn new(config: Config, pins: &Pins, metrics: &Metrics) -> Active {
        let routes = RouteTable::compile(&config, pins, metrics);
        let upstreams: Vec<Arc<Upstream>> = config
            .upstreams
            .iter()
            .map(|up| Arc::new(Upstream::with_metrics(up, metrics)))
            .collect();
        let health_checks = upstream::spawn_health_checks(&upstreams, &config);
        Active {
            routes,
            upstreams,
            context: ContextBuilder::new(config.context.clone()),
            upstream_header: config.upstream_header.clone(),
            health_checks,
            config: Arc::new(config),
        }
    }
}

impl Proxy {
    /// Builds a proxy from a validated config. `overrides` are re-applied on every reload.
    /// Must be called inside a tokio runtime (health checks and the access log start here).
    pub fn new(
        config: Config,
        flags: Arc<dyn FlagSource>,
        overrides: Overrides,
    ) -> Result<Proxy, Error> {
        let pins = Pins::open(config.state_file.clone())?;
        let metrics = Metrics::default();
        let access_log = config
            .access_log
            .clone()
            .map(AccessLogger::start)
            .transpose()?;
        let last_attempt = LastAttempt {
            stamp: config.path.as_deref().and_then(file_stamp),
            refused: false,
        };
        let active = Active::new(config, &pins, &metrics);
        Ok(Proxy {
            shared: Arc::new(Shared {
                active: ArcSwap::from_pointee(active),
                flags,
                pins,
                metrics,
                access_log,
                overrides,
                reload_lock: Mutex::new(last_attempt),
                #[cfg(unix)]
                hangup: Mutex::new(
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
                ),
            }),
        })
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.shared.active.load().config.clone()
    }

    /// Re-reads the config file and swaps it in. A config that does not validate is refused,
    /// logged, and returned as the error; the old one keeps serving.
    pub fn reload(&self) -> Result<(), Error> {
        let shared = &self.shared;
        let mut last_attempt = shared
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = shared.active.load_full();
        let Some(path) = old.config.path.clone() else {
            return Err(Error::Config(ConfigError {
                file: "<command line>".to_owned(),
                line: 0,
                column: 0,
                reason: "this proxy was started without --config; there is no file to reload"
                    .to_owned(),
            }));
        };
        let stamp = file_stamp(&path);
        let loaded = Config::load(&path, &shared.overrides);
        let refused_before = last_attempt.refused && stamp.is_some() && last_attempt.stamp == stamp;
        *last_attempt = LastAttempt {
            stamp,
            refused: loaded.is_err(),
        };
        match loaded {
            Ok(config) => {
                if config.listen != old.config.listen
                    || config.admin.listen != old.config.admin.listen
                {
                    tracing::warn!(
                        "listen addresses changed in the config; they take effect on restart"
                    );
                }
                if config.flags != old.config.flags {
                    tracing::warn!(
                        "the flag store changed in the config; it takes effect on restart"
                    );
                }
                if config.access_log != old.config.access_log {
                    tracing::warn!(
                        "the access log changed in the config; it takes effect on restart"
                    );
                }
                if config.state_file != old.config.state_file {
                    tracing::warn!(
                        "the state file changed in the config; it takes effect on restart"
                    );
                }
                let active = Active::new(config, &shared.pins, &shared.metrics);
                shared.active.store(Arc::new(active));
                shared.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(path = %path.display(), "config reloaded");
                Ok(())
            }
            Err(err) => {
                shared
                    .metrics
                    .reloads_failed
                    .fetch_add(1, Ordering::Relaxed);
                if refused_before {
                    tracing::warn!(path = %path.display(), "config reload refused again: the file has not changed since it was refused");
                } else {
                    tracing::error!(error = %err, "config reload refused; the previous config keeps serving");
                }
                Err(err)
            }
        }
    }

    /// Pins route `name` to its fallback (a rollback), in force for the next request.
    pub fn rollback(&self, name: &str) -> Result<bool, Error> {
        self.check_route(name)?;
        let changed = self.shared.pins.set(name, true)?;
        self.shared.metrics.slo.reset(name);
        tracing::warn!(route = name, "route rolled back to its fallback");
        Ok(changed)
    }

    /// Lifts the pin of route `name`: its flag decides again.
    pub fn restore(&self, name: &str) -> Result<bool, Error> {
        self.check_route(name)?;
        let changed = self.shared.pins.set(name, false)?;
        // The SLO judges the service afresh, not on what made it roll back.
        self.shared.metrics.slo.reset(name);
        tracing::info!(route = name, "route restored");
        Ok(changed)
    }

    fn check_route(&self, name: &str) -> Result<(), Error> {
        let active = self.shared.active.load();
        if active.config.routes.iter().any(|r| r.name == name) {
            Ok(())
        } else {
            Err(Error::UnknownRoute(name.to_owned()))
        }
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests for up to
    /// `server.drain_timeout` and returns.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let graceful = Arc::new(GracefulShutdown::new());
        let mut tasks = tokio::task::JoinSet::new();
        let file_limit = connections::raise_file_limit();
        let default_cap = connections::default_max_connections(file_limit);
        let cap = self.config().max_connections.unwrap_or(default_cap);
        self.shared
            .metrics
            .connections
            .max
            .store(u64::try_from(cap).unwrap_or(u64::MAX), Ordering::Relaxed);
        tracing::info!(
            file_limit = ?file_limit,
            max_connections = cap,
            "serving; at most max_connections client connections at once"
        );
        for listener in listeners.proxy {
            tasks.spawn(accept_loop(
                listener,
                self.shared.clone(),
                graceful.clone(),
                stop_rx.clone(),
                default_cap,
            ));
        }
        if let Some(listener) = listeners.admin {
            tasks.spawn(crate::ops::admin::serve(
                listener,
                self.clone(),
                graceful.clone(),
                stop_rx.clone(),
            ));
        }
        let watcher = tokio::spawn(watch_config(self.clone(), stop_rx.clone()));
        let slo_checker = tokio::spawn(crate::protection::slo::run(self.clone(), stop_rx.clone()));
        #[cfg(unix)]
        let hangup = tokio::spawn(reload_on_sighup(self.clone()));

        shutdown.await;
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        watcher.abort();
        slo_checker.abort();
        #[cfg(unix)]
        hangup.abort();
        let drain_timeout = self.shared.active.load().config.drain_timeout;
        let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| GracefulShutdown::new());
        if tokio::time::timeout(drain_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                ?drain_timeout,
                "drain deadline passed; closing the remaining connections"
            );
        }
        if let Some(log) = &self.shared.access_log {
            log.flush().await;
        }
        Ok(())
    }
}

/// Runs a proxy for `config` on `listeners` until `shutdown` resolves (see [`Proxy::serve`]).
pub async fn serve(
    listeners: impl Into<Listeners>,
    config: Config,
    flags: Arc<dyn FlagSource>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    Proxy::new(config, flags, Overrides::default())?
        .serve(listeners.into(), shutdown)
        .await
}

/// The HTTP server settings of a config.
fn server_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.timeouts.header_read)
        .max_buf_size(config.limits.max_header_size.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.limits.max_header_size).unwrap_or(u32::MAX))
        // A dead peer is found by its missing PING answers; the handshake and idle deadlines
        // hyper lacks are enforced around the connection (connections.rs).
        .keep_alive_interval(config.timeouts.h2_ping_interval)
        .keep_alive_timeout(config.timeouts.h2_ping_timeout);
    builder
}

/// One open client connection, counted in `fig_proxy_connections` until dropped.
struct Slot(Arc<Shared>);

impl Slot {
    /// A slot under `cap`, or `None` at the cap.
    fn take(shared: &Arc<Shared>, cap: usize) -> Option<Slot> {
        let open = &shared.metrics.connections.open;
        let cap = u64::try_from(cap).unwrap_or(u64::MAX);
        open.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < cap).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(shared.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0
            .metrics
            .connections
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// One warning a period for the connection cap, and one for failing accepts.
static AT_CAP_LOG: Every = Every::new(Duration::from_secs(10));
static ACCEPT_ERROR_LOG: Every = Every::new(Duration::from_secs(10));

/// Answers a connection over the cap (see [`connections::refuse`]), unless too many refusals
/// are being written already: then it is closed at once.
fn refuse(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, cap: usize) {
    let metrics = &shared.metrics.connections;
    metrics.refused.fetch_add(1, Ordering::Relaxed);
    if let Some(skipped) = AT_CAP_LOG.ready() {
        tracing::warn!(
            max_connections = cap,
            %peer,
            refused_since_last_warning = skipped,
            "at the connection cap (server.max_connections): refusing new connections with 503"
        );
    }
    let refusing = metrics.refusing.fetch_add(1, Ordering::Relaxed);
    if refusing >= connections::MAX_REFUSING {
        metrics.refusing.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        connections::refuse(stream).await;
        shared
            .metrics
            .connections
            .refusing
            .fetch_sub(1, Ordering::Relaxed);
    });
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
    default_cap: usize,
) {
    // Server settings (header limit, timeouts, the cap) are per connection: a reload applies
    // them to connections accepted after it. The builder is rebuilt only when the config changed.
    let mut built_for = shared.active.load().config.clone();
    let mut builder = Arc::new(server_builder(&built_for));
    let mut cap = built_for.max_connections.unwrap_or(default_cap);
    let mut backoff = Backoff::new();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if connections::is_connection_error(&err) => continue,
                Err(err) => {
                    // EMFILE, ENFILE, ENOMEM: the open connections keep being served while this
                    // loop waits, longer each time, for some of them to end.
                    shared
                        .metrics
                        .connections
                        .accept_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let pause = backoff.failed();
                    if let Some(skipped) = ACCEPT_ERROR_LOG.ready() {
                        tracing::warn!(
                            error = %err,
                            ?pause,
                            failed_since_last_warning = skipped,
                            "accept failed; retrying after a pause (at the file limit, raise it or lower server.max_connections)"
                        );
                    }
                    tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        () = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        backoff.reset();
        let config = shared.active.load().config.clone();
        if !Arc::ptr_eq(&config, &built_for) {
            builder = Arc::new(server_builder(&config));
            cap = config.max_connections.unwrap_or(default_cap);
            built_for = config;
            shared
                .metrics
                .connections
                .max
                .store(u64::try_from(cap).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        let Some(slot) = Slot::take(&shared, cap) else {
            refuse(stream, peer, &shared, cap);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let settings = crate::http::server::Settings {
            header_read: built_for.timeouts.header_read,
            body_read: built_for.timeouts.request,
            max_head: built_for.limits.max_header_size.max(8192),
            body_idle: built_for.timeouts.body_idle,
        };
        let own_http1 = built_for.http1 == Http1Server::Fig;
        let connection = crate::http::server::Connection {
            // One clone of one `Arc` per request: the shared state and what is known of the client.
            conn: Arc::new((shared, proxy::ClientConn::new(peer))),
            builder: builder.clone(),
            watcher: graceful.watcher(),
            stop: stop.clone(),
        };
        tokio::spawn(async move {
            let _slot = slot;
            if own_http1 {
                crate::http::server::serve(stream, settings, connection).await;
            } else {
                let stream = crate::http::deadline::IdleWrite::new(stream, settings.body_idle);
                crate::http::server::serve_with_hyper(stream, connection).await;
            }
        });
    }
}

async fn watch_config(proxy: Proxy, mut stop: watch::Receiver<bool>) {
    let config = proxy.config();
    let (Some(path), true) = (config.path.clone(), config.reload.watch) else {
        return;
    };
    let last_attempted = || {
        proxy
            .shared
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stamp
    };
    loop {
        let interval = proxy.config().reload.poll_interval;
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = file_stamp(&path);
        if now.is_none() || now == last_attempted() {
            continue;
        }
        // A file written in place may be caught half written: let the writer finish first.
        tokio::time::sleep(SETTLE.min(interval)).await;
        if file_stamp(&path) != now {
            continue;
        }
        tracing::info!(path = %path.display(), "config file changed; reloading");
        // The error is logged by `reload`.
        let _ = proxy.reload();
    }
}

/// How long the watcher waits after seeing a change before it reads the file.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

#[cfg(unix)]
async fn reload_on_sighup(proxy: Proxy) {
    use tokio::signal::unix::{SignalKind, signal};
    let installed = proxy
        .shared
        .hangup
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let Some(mut hangups) = installed.or_else(|| signal(SignalKind::hangup()).ok()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with the admin API instead");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        let _ = proxy.reload();
    }
}

/// One access-log line: `TIME CLIENT "METHOD URI" STATUS route=R upstream=U reason=X ms=T`.
pub(crate) struct AccessEntry<'a> {
    pub(crate) client: std::net::IpAddr,
    pub(crate) method: &'a http::Method,
    pub(crate) uri: &'a http::Uri,
    pub(crate) status: u16,
    pub(crate) route: &'a str,
    pub(crate) upstream: &'a str,
    pub(crate) reason: Reason,
    pub(crate) elapsed: std::time::Duration,
}

/// Writes access-log lines from a background task, so the request path never waits on IO.
pub(crate) struct AccessLogger {
    sender: mpsc::UnboundedSender<LogMessage>,
}

enum LogMessage {
    Line(String),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl AccessLogger {
    fn start(target: AccessLog) -> Result<AccessLogger, Error> {
        let mut writer: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match &target {
            AccessLog::Stdout => Box::new(tokio::io::stdout()),
            AccessLog::File(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| Error::Io {
                        context: format!("cannot open access log {}", path.display()),
                        source,
                    })?;
                Box::new(tokio::fs::File::from_std(file))
            }
        };
        let (sender, mut receiver) = mpsc::unbounded_channel::<LogMessage>();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(64 << 10);
            while let Some(message) = receiver.recv().await {
                let mut flushes = Vec::new();
                let mut handle = |message| match message {
                    LogMessage::Line(line) => buf.extend_from_slice(line.as_bytes()),
                    LogMessage::Flush(done) => flushes.push(done),
                };
                handle(message);
                while let Ok(message) = receiver.try_recv() {
                    handle(message);
                }
                if writer.write_all(&buf).await.is_err() || writer.flush().await.is_err() {
                    tracing::warn!("cannot write the access log");
                }
                buf.clear();
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        Ok(AccessLogger { sender })
    }

    /// Queues one line for a finished request head.
    pub(crate) fn line(&self, entry: &AccessEntry<'_>) {
        let line = format!(
            "{} {} \"{} {}\" {} route={} upstream={} reason={} ms={:.3}\n",
            humantime::format_rfc3339_millis(SystemTime::now()),
            entry.client,
            entry.method,
            entry.uri,
            entry.status,
            entry.route,
            entry.upstream,
            entry.reason.as_str(),
            entry.elapsed.as_secs_f64() * 1000.0,
        );
        let _ = self.sender.send(LogMessage::Line(line));
    }

    async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.sender.send(LogMessage::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// The socket address a listener is bound to, for printing.
pub fn local_addrs(listeners: &Listeners) -> (Vec<SocketAddr>, Option<SocketAddr>) {
    (
        listeners
            .proxy
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect(),
        listeners.admin.as_ref().and_then(|l| l.local_addr().ok()),
    )
}
