//! The Unleash backend: polls the client API, registers, sends metrics, keeps a backup.
//!
//! This is a small SDK loop of our own rather than the `unleash-api-client` crate: that crate
//! pins `unleash-types` to an older patch release than `unleash-yggdrasil` 0.21.7 needs, keys
//! flags by a compile-time enum, and keeps its own engine, so it could not share our snapshot
//! (which reports the deciding strategy and counts usage without allocating). The loop does
//! what Unleash's SDK specification asks of a server-side SDK:
//!
//! - `GET /api/client/features` every `refresh_interval` with `If-None-Match` (ETag); a `304`
//!   only marks the flags fresh;
//! - `POST /api/client/register` once at start, `POST /api/client/metrics` every
//!   `metrics_interval` with the yes/no and variant counts since the last send;
//! - the last good answer is written atomically to `backup_path` (client API JSON, a valid
//!   flags file). When the server is unreachable at start the backup is served; when it goes
//!   away later the last flags keep serving. Errors are logged, never raised to a caller.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH};
use serde_json::json;
use unleash_types::client_features::ClientFeatures;

use crate::Flags;
use crate::error::{Error, Result};
use crate::file::{load_file, to_json, write_atomically};
use crate::snapshot::Defaults;

/// How to reach an Unleash server.
#[derive(Clone, Debug)]
pub struct UnleashConfig {
    /// The server's base URL, such as `https://unleash.example.com` (a trailing `/api` is
    /// accepted too).
    pub url: String,
    /// A client (backend) API token.
    pub client_token: String,
    /// The app name sent to Unleash and filled into contexts (default `fig`).
    pub app_name: String,
    /// This instance's id for metrics (default `fig-<host>-<pid>`).
    pub instance_id: String,
    /// Filled into contexts without an `environment` and sent with metrics. The flags' own
    /// environment is the one the client token belongs to.
    pub environment: Option<String>,
    /// Only this project's flags (`?project=`).
    pub project: Option<String>,
    /// How often to poll (default 15 s; at least 1 s).
    pub refresh_interval: Duration,
    /// How often to send usage metrics (default 60 s; at least 1 s).
    pub metrics_interval: Duration,
    /// Where to keep the last flags fetched (default `<temp dir>/fig-unleash-<app name>.json`).
    pub backup_path: Option<PathBuf>,
    /// Timeout of each request (default 5 s).
    pub timeout: Duration,
}

impl UnleashConfig {
    /// A configuration with the defaults above.
    pub fn new(url: impl Into<String>, client_token: impl Into<String>) -> UnleashConfig {
        UnleashConfig {
            url: url.into(),
            client_token: client_token.into(),
            app_name: "fig".to_owned(),
            instance_id: default_instance_id(),
            environment: None,
            project: None,
            refresh_interval: Duration::from_secs(15),
            metrics_interval: Duration::from_secs(60),
            backup_path: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// The backup file used when `backup_path` is not set.
    pub fn effective_backup_path(&self) -> PathBuf {
        self.backup_path.clone().unwrap_or_else(|| {
            let safe: String = self
                .app_name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            std::env::temp_dir().join(format!("fig-unleash-{safe}.json"))
        })
    }
}

/// The server's base URL without a trailing `/` or `/api`.
pub(crate) fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    url.strip_suffix("/api").unwrap_or(url).to_owned()
}

fn default_instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("fig-{host}-{}", std::process::id())
}

pub(crate) async fn open(config: UnleashConfig) -> Result<Flags> {
    if config.url.trim().is_empty() {
        return Err(Error::Config("the Unleash URL is empty".to_owned()));
    }
    if config.client_token.trim().is_empty() {
        return Err(Error::Config(
            "the Unleash client token is empty".to_owned(),
        ));
    }
    let refresh_interval = config.refresh_interval.max(Duration::from_secs(1));
    let metrics_interval = config.metrics_interval.max(Duration::from_secs(1));
    let client = Client::new(&config)?;
    let flags = Flags::new(Defaults {
        app_name: Some(config.app_name.clone()),
        environment: config.environment.clone(),
    });
    let backup_path = config.effective_backup_path();
    let mut etag = None;
    match client.fetch(None).await {
        Ok(Fetched::Features(features, new_etag)) => {
            apply(&flags, *features, &backup_path, &client.features_url);
            flags.mark_refreshed();
            etag = new_etag;
        }
        Ok(Fetched::NotModified) => flags.mark_refreshed(),
        // A server that answers but refuses the token is a mistake to fix, not an outage.
        Err(err @ Error::Unauthorized { .. }) => return Err(err),
        Err(err) => {
            tracing::warn!("Unleash unreachable at start: {err}");
            flags.set_error(Some(error_chain(&err)));
            match load_file(&backup_path) {
                Ok(features) => {
                    tracing::warn!(backup = %backup_path.display(), "serving flags from the backup file");
                    flags.apply(features);
                }
                Err(err) => tracing::warn!(
                    "no usable backup, every flag is off until Unleash answers: {err}"
                ),
            }
        }
    }
    let weak = flags.downgrade();
    let poll_client = client.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(refresh_interval).await;
            let Some(flags) = Flags::upgrade(&weak) else {
                return;
            };
            match poll_client.fetch(etag.as_deref()).await {
                Ok(Fetched::Features(features, new_etag)) => {
                    apply(&flags, *features, &backup_path, &poll_client.features_url);
                    flags.mark_refreshed();
                    etag = new_etag;
                }
                Ok(Fetched::NotModified) => flags.mark_refreshed(),
                Err(err) => {
                    tracing::warn!("Unleash poll failed, keeping the last flags: {err}");
                    flags.set_error(Some(error_chain(&err)));
                }
            }
        }
    });
    let weak = flags.downgrade();
    tokio::spawn(async move {
        if let Err(err) = client.register(refresh_interval).await {
            tracing::warn!("Unleash registration failed: {err}");
        }
        let mut start = chrono::Utc::now();
        loop {
            tokio::time::sleep(metrics_interval).await;
            let Some(flags) = Flags::upgrade(&weak) else {
                return;
            };
            let counts = flags.take_counts();
            drop(flags);
            if counts.is_empty() {
                continue;
            }
            let stop = chrono::Utc::now();
            match client.send_metrics(start, stop, &counts).await {
                Ok(()) => start = stop,
                Err(err) => {
                    // Counts are dropped rather than piling up while the server is away.
                    tracing::warn!("sending Unleash metrics failed: {err}");
                    start = stop;
                }
            }
        }
    });
    Ok(flags)
}

/// Fetches the flags once through the client API (what `fig flags list` shows for a server).
pub async fn fetch_features(config: &UnleashConfig) -> Result<ClientFeatures> {
    let client = Client::new(config)?;
    match client.fetch(None).await? {
        Fetched::Features(features, _) => Ok(*features),
        Fetched::NotModified => Err(Error::Server {
            url: client.features_url,
            status: 304,
            body: "not modified without an ETag".to_owned(),
        }),
    }
}

/// Waits until the client API shows every one of `changes`, asking every 100 ms for at most
/// `limit`: how long it took, or `None` if it still did not show them.
///
/// Unleash answers its client API from a cache it refreshes about every second, so a flag
/// created through the Admin API is missing from it for a moment; `fig flags` waits here after
/// a write so that the next command (and a proxy's next poll) reads what was written.
pub async fn wait_until_visible(
    config: &UnleashConfig,
    changes: &[crate::Change],
    limit: Duration,
) -> Result<Option<Duration>> {
    let client = Client::new(config)?;
    let start = std::time::Instant::now();
    loop {
        if let Fetched::Features(features, _) = client.fetch(None).await?
            && changes
                .iter()
                .all(|change| crate::edit::shows(&features, change))
        {
            return Ok(Some(start.elapsed()));
        }
        if start.elapsed() >= limit {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn apply(flags: &Flags, features: ClientFeatures, backup_path: &std::path::Path, url: &str) {
    let n_flags = features.features.len();
    let text = to_json(&features);
    let warnings = flags.apply(features);
    for (flag, reason) in crate::explain::explain_warnings(flags, warnings) {
        tracing::warn!(flag = %flag, url, "{reason}");
    }
    tracing::info!(
        n_flags,
        revision = flags.revision(),
        "flags fetched from Unleash"
    );
    if let Err(err) = write_atomically(backup_path, text.as_bytes()) {
        tracing::warn!("cannot write the Unleash backup: {err}");
    }
}

enum Fetched {
    Features(Box<ClientFeatures>, Option<String>),
    NotModified,
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    features_url: String,
    app_name: String,
    instance_id: String,
    environment: Option<String>,
}

impl Client {
    fn new(config: &UnleashConfig) -> Result<Client> {
        let mut headers = HeaderMap::new();
        let header = |value: &str, what: &str| {
            HeaderValue::from_str(value)
                .map_err(|_| Error::Config(format!("the {what} is not a valid HTTP header value")))
        };
        headers.insert(
            "authorization",
            header(config.client_token.trim(), "client token")?,
        );
        headers.insert("unleash-appname", header(&config.app_name, "app name")?);
        headers.insert(
            "unleash-instanceid",
            header(&config.instance_id, "instance id")?,
        );
        headers.insert(
            "unleash-sdk",
            HeaderValue::from_static(concat!("fig-feature-flags:", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert(
            "unleash-connection-id",
            header(
                &format!("{}-{}", config.instance_id, rand_suffix()),
                "connection id",
            )?,
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("fig/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| Error::Config(format!("cannot build the HTTP client: {err}")))?;
        let base = base_url(&config.url);
        let mut features_url = format!("{base}/api/client/features");
        if let Some(project) = &config.project {
            features_url.push_str("?project=");
            features_url.push_str(&url_encode(project));
        }
        Ok(Client {
            http,
            base,
            features_url,
            app_name: config.app_name.clone(),
            instance_id: config.instance_id.clone(),
            environment: config.environment.clone(),
        })
    }

    async fn fetch(&self, etag: Option<&str>) -> Result<Fetched> {
        let url = &self.features_url;
        let mut req = self.http.get(url);
        if let Some(etag) = etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        let res = req.send().await.map_err(|source| Error::Unreachable {
            url: url.clone(),
            source,
        })?;
        let status = res.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        check_status(url, status, "client")?;
        let etag = res
            .headers()
            .get(ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = res.text().await.map_err(|source| Error::Unreachable {
            url: url.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(Error::Server {
                url: url.clone(),
                status: status.as_u16(),
                body: body.chars().take(200).collect(),
            });
        }
        let features: ClientFeatures = serde_json::from_str(&body).map_err(|err| Error::Parse {
            path: url.into(),
            line: err.line(),
            column: err.column(),
            reason: err.to_string(),
        })?;
        Ok(Fetched::Features(Box::new(features), etag))
    }

    async fn register(&self, interval: Duration) -> Result<()> {
        let body = json!({
            "appName": self.app_name,
            "instanceId": self.instance_id,
            "environment": self.environment,
            "sdkVersion": concat!("fig-feature-flags:", env!("CARGO_PKG_VERSION")),
            "strategies": unleash_yggdrasil::KNOWN_STRATEGIES,
            "started": chrono::Utc::now(),
            "interval": interval.as_millis() as u64,
            "platformName": "rust",
            "yggdrasilVersion": unleash_yggdrasil::CORE_VERSION,
            "specVersion": unleash_yggdrasil::SUPPORTED_SPEC_VERSION,
        });
        self.post("/api/client/register", &body).await
    }

    async fn send_metrics(
        &self,
        start: chrono::DateTime<chrono::Utc>,
        stop: chrono::DateTime<chrono::Utc>,
        counts: &std::collections::HashMap<String, unleash_types::client_metrics::ToggleStats>,
    ) -> Result<()> {
        let body = json!({
            "appName": self.app_name,
            "instanceId": self.instance_id,
            "environment": self.environment,
            "bucket": { "start": start, "stop": stop, "toggles": counts },
            "sdkVersion": concat!("fig-feature-flags:", env!("CARGO_PKG_VERSION")),
            "platformName": "rust",
            "yggdrasilVersion": unleash_yggdrasil::CORE_VERSION,
            "specVersion": unleash_yggdrasil::SUPPORTED_SPEC_VERSION,
        });
        self.post("/api/client/metrics", &body).await
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> Result<()> {
        let url = format!("{}{path}", self.base);
        let res = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|source| Error::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = res.status();
        check_status(&url, status, "client")?;
        if status.is_success() {
            Ok(())
        } else {
            let body = res.text().await.unwrap_or_default();
            Err(Error::Server {
                url,
                status: status.as_u16(),
                body: body.chars().take(200).collect(),
            })
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut res = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        res.push_str(": ");
        res.push_str(&cause.to_string());
        source = cause.source();
    }
    res
}

pub(crate) fn check_status(url: &str, status: StatusCode, which: &'static str) -> Result<()> {
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(Error::Unauthorized {
            url: url.to_owned(),
            status: status.as_u16(),
            which,
        });
    }
    Ok(())
}

/// Percent-encodes a query or path segment.
pub(crate) fn url_encode(value: &str) -> String {
    let mut res = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            res.push(byte as char);
        } else {
            res.push_str(&format!("%{byte:02X}"));
        }
    }
    res
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{nanos:08x}")
}
