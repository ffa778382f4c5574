//! `[server]`: the listeners, the HTTP/1 implementations, the default upstream, the state file
//! and the access log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use toml::Spanned;

use super::ctx::{Ctx, UnvalidatedConfig};
use super::{Config, DEFAULT_UPSTREAM_HEADER, MONOLITH};

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// Which implementation speaks HTTP/1: to clients (`server.http1`), or to upstreams
/// (`server.http1_client`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Http1Server {
    /// The proxy's own, for what it speaks: as a server, plain requests (hyper's serves
    /// upgrades, streamed request bodies, `Expect`, h2c); as a client, requests whose body is
    /// all there and upgrades (hyper's sends streamed bodies).
    #[default]
    Fig,
    /// hyper's for everything (but upgrades to upstreams): the way back if the proxy's own
    /// misbehaves.
    Hyper,
}

/// `[server]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<Spanned<toml::Value>>,
    workers: Option<Spanned<i64>>,
    upstream_header: Option<Spanned<toml::Value>>,
    default_upstream: Option<Spanned<String>>,
    preserve_host: Option<bool>,
    drain_timeout: Option<Spanned<String>>,
    state_file: Option<Spanned<String>>,
    access_log: Option<Spanned<String>>,
    http1: Option<Http1Server>,
    http1_client: Option<Http1Server>,
    max_connections: Option<Spanned<i64>>,
}

/// `[server]` validated, with the command-line overrides applied; its fields are fields of
/// [`Config`].
pub(super) struct Server {
    pub listen: Vec<SocketAddr>,
    pub workers: Option<usize>,
    pub upstream_header: Option<HeaderName>,
    pub default_upstream: String,
    pub preserve_host: bool,
    pub drain_timeout: Duration,
    pub access_log: Option<AccessLog>,
    pub http1: Http1Server,
    pub http1_client: Http1Server,
    pub max_connections: Option<usize>,
}

impl RawServer {
    /// The upstream named by `default_upstream`, or `monolith`; whether it exists is checked by
    /// `validate`.
    pub(super) fn default_upstream(&self) -> String {
        self.default_upstream
            .as_ref()
            .map_or_else(|| MONOLITH.to_owned(), |name| name.get_ref().clone())
    }

    /// The state file: `--state-file`, `state_file`, or next to the config file.
    pub(super) fn state_file(&self, ctx: &Ctx<'_>) -> Option<PathBuf> {
        match (&ctx.overrides.state_file, &self.state_file) {
            (Some(file), _) => Some(file.clone()),
            (None, Some(file)) => Some(ctx.path(file.get_ref())),
            (None, None) => ctx.path.map(Config::default_state_file),
        }
    }
}

impl UnvalidatedConfig for RawServer {
    type ValidCfg = Server;

    fn validate(self, ctx: &mut Ctx<'_>) -> Server {
        let mut listen = Vec::new();
        if let Some(value) = &self.listen {
            let items: Vec<&str> = match value.get_ref() {
                toml::Value::String(s) => vec![s.as_str()],
                toml::Value::Array(items) => items.iter().filter_map(toml::Value::as_str).collect(),
                _ => vec![],
            };
            if items.is_empty() {
                ctx.report(
                    value.span(),
                    "`listen` must be an address or a list of addresses like \"127.0.0.1:8000\"",
                );
            }
            for item in items {
                match item.parse::<SocketAddr>() {
                    Ok(addr) => listen.push(addr),
                    Err(_) => ctx.report(
                        value.span(),
                        format!(
                            "invalid listen address `{item}`; write IP:PORT, e.g. 0.0.0.0:8000"
                        ),
                    ),
                }
            }
        }
        if !ctx.overrides.listen.is_empty() {
            listen.clone_from(&ctx.overrides.listen);
        }
        if listen.is_empty() {
            listen.push(SocketAddr::from(([127, 0, 0, 1], 8000)));
        }
        let workers = match &self.workers {
            Some(n) if *n.get_ref() < 1 || *n.get_ref() > 1024 => {
                ctx.report(n.span(), "`workers` must be between 1 and 1024");
                None
            }
            Some(n) => Some(usize::try_from(*n.get_ref()).unwrap_or(1)),
            None => None,
        };
        let workers = ctx.overrides.workers.or(workers);
        let max_connections = match &self.max_connections {
            Some(n) => match usize::try_from(*n.get_ref()) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    ctx.report(
                        n.span(),
                        "`max_connections` must be at least 1; leave it out for a cap derived from the file limit",
                    );
                    None
                }
            },
            None => None,
        };
        let default_header = Some(HeaderName::from_static(DEFAULT_UPSTREAM_HEADER));
        let upstream_header = match &self.upstream_header {
            None => default_header,
            Some(value) => match value.get_ref() {
                toml::Value::Boolean(false) => None,
                toml::Value::Boolean(true) => default_header,
                toml::Value::String(name) => match HeaderName::try_from(name.as_str()) {
                    Ok(header) => Some(header),
                    Err(_) => {
                        ctx.report(value.span(), format!("invalid header name `{name}`"));
                        default_header
                    }
                },
                _ => {
                    ctx.report(
                        value.span(),
                        "`upstream_header` must be a header name or false",
                    );
                    default_header
                }
            },
        };
        let drain_timeout = ctx.duration(self.drain_timeout.as_ref(), Duration::from_secs(30));
        let access_log = self
            .access_log
            .as_ref()
            .map(|value| match value.get_ref().as_str() {
                "stdout" | "-" => AccessLog::Stdout,
                file => AccessLog::File(ctx.path(file)),
            });
        match &self.default_upstream {
            Some(name) if !ctx.upstream_exists(name.get_ref()) => {
                ctx.report(
                    name.span(),
                    format!("no upstream named `{}`", name.get_ref()),
                );
            }
            Some(_) => {}
            None if !ctx.upstream_exists(MONOLITH) => {
                ctx.report(
                    0..0,
                    "no upstream named `monolith`: add [upstreams.monolith] with its addresses, pass --monolith URL, or set server.default_upstream",
                );
            }
            None => {}
        }
        Server {
            listen,
            workers,
            upstream_header,
            default_upstream: self.default_upstream(),
            preserve_host: self.preserve_host.unwrap_or(true),
            drain_timeout,
            access_log,
            http1: self.http1.unwrap_or_default(),
            http1_client: self.http1_client.unwrap_or_default(),
            max_connections,
        }
    }
}
