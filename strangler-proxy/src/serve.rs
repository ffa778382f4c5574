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
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::{Config, Http1Server, Overrides};
use crate::decision::flags::FlagSource;
use crate::error::Error;
use crate::http::connections::{self, Backoff, Every};
use crate::ops::runtime::Proxy;
use crate::ops::runtime::{FileStamp, Shared, file_stamp};
use crate::proxy;

/// The listeners a proxy serves on.
#[derive(Debug)]
pub struct Listeners {
    /// Proxy listeners speaking cleartext HTTP.
    pub proxy: Vec<TcpListener>,
    /// Proxy listeners speaking TLS (`[tls]`, `--tls-cert`).
    pub tls: Vec<TcpListener>,
    /// The admin listener, if the admin API is on.
    pub admin: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(listener: TcpListener) -> Listeners {
        Listeners {
            proxy: vec![listener],
            tls: Vec::new(),
            admin: None,
        }
    }
}

impl Listeners {
    /// Binds the addresses of `config` (`listen`, those of them `tls.listen` names as TLS
    /// listeners, and `admin.listen`).
    pub async fn bind(config: &Config) -> Result<Listeners, Error> {
        let mut proxy = Vec::new();
        let mut tls = Vec::new();
        for addr in &config.listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind {
                    addr: *addr,
                    source,
                })?;
            if config
                .tls
                .as_ref()
                .is_some_and(|tls| tls.listen.contains(addr))
            {
                tls.push(listener);
            } else {
                proxy.push(listener);
            }
        }
        let admin = match config.admin.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Listeners { proxy, tls, admin })
    }
}

impl Proxy {
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
        let tls = listeners.tls.into_iter().map(|listener| (listener, true));
        for (listener, tls) in listeners.proxy.into_iter().map(|l| (l, false)).chain(tls) {
            tasks.spawn(accept_loop(
                listener,
                tls,
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
        let slo_checker = tokio::spawn(crate::ops::slo_watch::run(self.clone(), stop_rx.clone()));
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
    tls: bool,
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
    // The TLS config of new handshakes: the config's in force, or the last one that had TLS (a
    // reload cannot turn a bound listener's TLS off; that takes a restart).
    let mut tls_config = tls
        .then(|| built_for.tls.as_ref().map(|tls| tls.server.clone()))
        .flatten();
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
            if let Some(new) = config.tls.as_ref().filter(|_| tls) {
                tls_config = Some(new.server.clone());
            }
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
        let client = crate::http::server::ClientConn::new(peer, proxy::ip_header_value(peer.ip()));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let stop = stop.clone();
        let metrics = shared.clone();
        let connection = move |client| crate::http::server::Connection {
            // One clone of one `Arc` per request: the shared state and what is known of the client.
            conn: Arc::new((shared, client)),
            builder,
            watcher,
            stop,
        };
        if !tls {
            tokio::spawn(async move {
                let _slot = slot;
                let connection = connection(client);
                if own_http1 {
                    crate::http::server::serve(stream, settings, connection).await;
                } else {
                    let stream = crate::http::deadline::IdleWrite::new(stream, settings.body_idle);
                    crate::http::server::serve_with_hyper(stream, connection).await;
                }
            });
            continue;
        }
        let Some(tls_config) = tls_config.clone() else {
            // Not reached: a TLS listener is bound only for a config with TLS.
            continue;
        };
        let handshake = built_for.timeouts.header_read;
        tokio::spawn(async move {
            let _slot = slot;
            let (stream, session) =
                match crate::http::tls::accept(stream, tls_config, handshake).await {
                    Ok(accepted) => accepted,
                    Err(refused) => {
                        metrics.metrics.connections.tls_refused(&refused, peer);
                        if let crate::http::tls::Refused::Cleartext(stream) = refused {
                            crate::http::connections::refuse_with(
                                stream,
                                crate::http::tls::CLEARTEXT_REFUSAL,
                            )
                            .await;
                        }
                        return;
                    }
                };
            let mut client = client;
            client.tls = Some(crate::http::server::TlsConn {
                client: session.client,
            });
            let connection = connection(client);
            if own_http1 && !session.h2 {
                crate::http::server::serve(stream, settings, connection).await;
            } else {
                // HTTP/2 chosen by ALPN: hyper's server, as for h2c.
                let stream = crate::http::deadline::IdleWrite::new(stream, settings.body_idle);
                crate::http::server::serve_with_hyper(stream, connection).await;
            }
        });
    }
}

/// Polls the files the config was read from (the config file, the TLS certificates, keys and
/// client CA) and reloads when one of them changed.
async fn watch_config(proxy: Proxy, mut stop: watch::Receiver<bool>) {
    if !proxy.can_reload() || !proxy.config().reload.watch {
        return;
    }
    loop {
        let interval = proxy.config().reload.poll_interval;
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let attempted = proxy.last_attempted();
        let now = current_stamps(&attempted);
        // A missing file is being replaced (or gone): nothing to read yet.
        if now.iter().any(Option::is_none)
            || now
                .iter()
                .zip(&attempted)
                .all(|(now, (_, then))| now == then)
        {
            continue;
        }
        // A file written in place may be caught half written, and a certificate may be
        // replaced before its key: let the writer finish first.
        tokio::time::sleep(SETTLE.min(interval)).await;
        if current_stamps(&attempted) != now {
            continue;
        }
        let changed: Vec<String> = attempted
            .iter()
            .zip(&now)
            .filter(|((_, then), now)| now != &then)
            .map(|((path, _), _)| path.display().to_string())
            .collect();
        tracing::info!(files = ?changed, "config or certificate files changed; reloading");
        // The error is logged by `reload`.
        let _ = proxy.reload();
    }
}

fn current_stamps(attempted: &crate::ops::runtime::Stamps) -> Vec<Option<FileStamp>> {
    attempted.iter().map(|(path, _)| file_stamp(path)).collect()
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
