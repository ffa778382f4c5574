//! The proxy in force: [`Proxy`], the handle on everything that outlives one config (the flag
//! source, the pins, the metrics, the access log and the current config, held in an `ArcSwap`
//! so that the request path takes no lock), and its control: reload, roll back, restore.
//!
//! A reload (SIGHUP, `POST /reload`, or a change of the config file) validates the new file
//! first and only then swaps it in; requests already running finish on the config they started
//! with. The admin API and the SLO watcher act through this handle; `serve` runs it.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::HeaderName;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use crate::config::{AccessLog, Config, Overrides};
use crate::decision::context::ContextBuilder;
use crate::decision::flags::FlagSource;
use crate::decision::route::{Reason, RouteTable};
use crate::decision::state::Pins;
use crate::error::{ConfigError, Error};
use crate::ops::metrics::Metrics;
use crate::protection::upstream::{self, Upstream};

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
    pub(crate) hangup: Mutex<Option<tokio::signal::unix::Signal>>,
}

/// A watched file's modification time, length and a hash of its content, which tell the
/// watcher it changed. The content counts because a renewed certificate can have the length
/// of the old one, and a copy may keep its modification time.
pub(crate) type FileStamp = (Option<SystemTime>, u64, u64);

pub(crate) fn file_stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::hash::{Hash as _, Hasher as _};
    let meta = std::fs::metadata(path).ok()?;
    let content = std::fs::read(path).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    Some((meta.modified().ok(), meta.len(), hasher.finish()))
}

/// The files a config is read from (the config file, the TLS certificates, keys and client CA)
/// and their stamps when last read.
pub(crate) type Stamps = Vec<(PathBuf, Option<FileStamp>)>;

/// The stamps of `files` now.
pub(crate) fn stamps(files: Vec<PathBuf>) -> Stamps {
    files
        .into_iter()
        .map(|file| {
            let stamp = file_stamp(&file);
            (file, stamp)
        })
        .collect()
}

/// The files `config` was read from.
fn files_of(config: &Config) -> Vec<PathBuf> {
    config
        .path
        .iter()
        .chain(config.tls.iter().flat_map(|tls| tls.files()))
        .cloned()
        .collect()
}

/// The files a reload read as the last attempt (or the start) read them. The watcher reloads
/// only when one differs from this, so files an admin call or SIGHUP already tried are not
/// tried (and refused, and logged) again; and a refused config is logged in full once, however
/// many triggers try it.
#[derive(Debug, Default)]
struct LastAttempt {
    stamps: Stamps,
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
            .map(|up| Arc::new(Upstream::with_metrics(up, &metrics.guard)))
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
            stamps: stamps(files_of(&config)),
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

    /// Re-reads the config file (and the TLS files it names) and swaps it in. A config that
    /// does not validate, or whose certificates do not load, is refused, logged, and returned
    /// as the error; the old one keeps serving. A proxy started without a config file but with
    /// `--tls-cert` reloads its certificate.
    pub fn reload(&self) -> Result<(), Error> {
        let shared = &self.shared;
        let mut last_attempt = shared
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = shared.active.load_full();
        let path = old.config.path.clone();
        if path.is_none() && shared.overrides.tls.is_none() {
            return Err(Error::Config(ConfigError {
                file: "<command line>".to_owned(),
                line: 0,
                column: 0,
                reason: "this proxy was started without --config; there is no file to reload"
                    .to_owned(),
            }));
        }
        // Stamped before reading: a change while the files are read is seen by the next poll.
        let before = stamps(match &path {
            Some(path) => Config::files_named(path, &shared.overrides),
            None => files_of(&old.config),
        });
        let loaded = match &path {
            Some(path) => Config::load(path, &shared.overrides),
            None => Config::from_overrides(&shared.overrides).map_err(Error::from),
        };
        let path = path.unwrap_or_else(|| PathBuf::from("<command line>"));
        let refused_before = last_attempt.refused
            && before.iter().all(|(_, stamp)| stamp.is_some())
            && last_attempt.stamps == before;
        *last_attempt = LastAttempt {
            stamps: before,
            refused: loaded.is_err(),
        };
        match loaded {
            Ok(config) => {
                if config.listen != old.config.listen
                    || config.admin.listen != old.config.admin.listen
                    || config.tls.as_ref().map(|tls| &tls.listen)
                        != old.config.tls.as_ref().map(|tls| &tls.listen)
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
                if let Some(tls) = &config.tls {
                    for cert in &tls.certificates {
                        tracing::info!(
                            file = %cert.cert.display(),
                            subject = %cert.subject,
                            not_after = cert.not_after,
                            "TLS certificate in force for new connections"
                        );
                    }
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

    /// The files the last reload attempt (or the start) read, as it read them.
    pub(crate) fn last_attempted(&self) -> Stamps {
        self.shared
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stamps
            .clone()
    }

    /// Whether a reload can re-read anything: a config file, or `--tls-cert`'s files.
    pub(crate) fn can_reload(&self) -> bool {
        self.shared.overrides.tls.is_some() || self.config().path.is_some()
    }

    fn check_route(&self, name: &str) -> Result<(), Error> {
        let active = self.shared.active.load();
        if active.config.routes.iter().any(|r| r.name == name) {
            Ok(())
        } else {
            Err(Error::UnknownRoute(name.to_owned()))
        }
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

    pub(crate) async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.sender.send(LogMessage::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}
