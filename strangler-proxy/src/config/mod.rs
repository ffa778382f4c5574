//! The proxy's configuration: a TOML file, command-line overrides, and validation.
//!
//! Parsing happens in two steps, as in cargo-deny: serde reads the file into `Raw*` types that keep
//! the span of every value (`toml::Spanned`), then each table's raw type is validated into the
//! type the proxy uses ([`Config`] and its parts). There is one module per table, each with its
//! raw type, its validated type and its validation (`ctx.rs` has what they share). Validation
//! does not stop at a mistake: every mistake in the file is reported, as one
//! `file:line:column: reason` line each, pointing at the value that is wrong, in file order. A
//! TOML syntax error, an unknown key or a value of the wrong type stops serde, so it is the one
//! mistake reported. Every key, its default and an example are documented in
//! `docs/proxy-config.md`; keep the two in step.
//!
//! Modules: `server` (`[server]`), `timeouts`, `limits`, `upstreams` (`[upstreams.NAME]` with
//! its health check, circuit breaker, outlier ejection and in-flight cap), `routes`
//! (`[[routes]]`: match, retry, rate limit, SLO, upgrades), `shadow` (a route's `shadow` and
//! `[shadow]`), `context` (`[context]` and `[context.jwt]`), `flags`, `admin`, `reload`, `tls`
//! (`[tls]`: the TLS listeners and their certificates, loaded and checked here).

mod admin;
mod context;
mod ctx;
mod flags;
mod limits;
mod reload;
mod routes;
mod server;
mod shadow;
mod timeouts;
mod tls;
mod upstreams;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use toml::Spanned;

pub use self::admin::{AdminConfig, DEFAULT_ADMIN_LISTEN};
pub use self::context::{CertField, ContextConfig, JwtConfig, TokenLocation, ValueSource};
pub use self::flags::{FlagStoreConfig, UnleashAdminConfig};
pub use self::limits::Limits;
pub use self::reload::ReloadConfig;
pub use self::routes::{
    DEFAULT_MIN_REQUESTS, DEFAULT_WINDOW, MatchConfig, PathMatch, RateKey, RateLimitConfig,
    RetryConfig, RouteConfig, SloConfig,
};
pub use self::server::{AccessLog, Http1Server};
pub use self::shadow::{
    IgnorePattern, SHADOW_SAFE_METHODS, ShadowConfig, ShadowSettings, ShadowTarget,
};
pub use self::timeouts::Timeouts;
pub use self::tls::{ClientAuthMode, TlsCertificate, TlsConfig, TlsFiles};
pub use self::upstreams::{
    Balance, CircuitBreakerConfig, HealthCheck, OutlierConfig, Protocol, StatusSet, UpstreamConfig,
    UpstreamTls, insecure_upstream_warnings, parse_upstream_address,
};

use self::ctx::{Ctx, UnvalidatedConfig};
use crate::error::{ConfigError, ConfigErrors, Error};

/// The upstream that gets every request no route takes, unless `server.default_upstream` says otherwise.
pub const MONOLITH: &str = "monolith";
/// The default response header naming the upstream that answered.
pub const DEFAULT_UPSTREAM_HEADER: &str = "x-fig-upstream";

/// A validated proxy configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; `None` for a config made of command-line flags only.
    pub path: Option<PathBuf>,
    /// Addresses the proxy listens on.
    pub listen: Vec<SocketAddr>,
    /// Runtime worker threads (`--workers`); `None` lets the CLI pick.
    pub workers: Option<usize>,
    /// Response header naming the upstream that answered; `None` turns it off.
    pub upstream_header: Option<HeaderName>,
    /// The upstream for requests no route matches, and the default fallback of routes.
    pub default_upstream: String,
    /// Forward the client's `Host` header (true) or the upstream address (false).
    pub preserve_host: bool,
    /// How long a shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Where route rollbacks are persisted; `None` keeps them in memory only.
    pub state_file: Option<PathBuf>,
    /// Where to write one line per request; `None` for no access log.
    pub access_log: Option<AccessLog>,
    /// Which server speaks HTTP/1 to clients.
    pub http1: Http1Server,
    /// Which client speaks HTTP/1 to upstreams.
    pub http1_client: Http1Server,
    /// Most client connections open at once on the proxy listeners; `None` derives it from the
    /// process's file limit (`connections::default_max_connections`).
    pub max_connections: Option<usize>,
    /// TLS at the edge (`[tls]`, `--tls-cert`): which of `listen` speak TLS, with what
    /// certificates; `None`: every listener is cleartext.
    pub tls: Option<TlsConfig>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Size limits.
    pub limits: Limits,
    /// Upstreams, sorted by name.
    pub upstreams: Vec<UpstreamConfig>,
    /// Routes, in the order they are tried.
    pub routes: Vec<RouteConfig>,
    /// How the flag context of a request is built.
    pub context: ContextConfig,
    /// The flag store; `None` means no flags (every flagged route goes to its fallback).
    pub flags: Option<FlagStoreConfig>,
    /// How to change flags on Unleash (SLO rollbacks with `turn_off_flag`); `None` without an
    /// admin token.
    pub unleash_admin: Option<UnleashAdminConfig>,
    /// The admin API.
    pub admin: AdminConfig,
    /// Config-file watching.
    pub reload: ReloadConfig,
    /// Settings shared by every route's shadow traffic.
    pub shadow: ShadowSettings,
}

/// Values given on the command line; each replaces the one in the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`, one or more.
    pub listen: Vec<SocketAddr>,
    /// `--monolith URL`: the addresses of the `monolith` upstream.
    pub monolith: Option<String>,
    /// `--upstream-ca FILE`: the CA certificates of every `https://` upstream whose `tls` names
    /// no `ca` (instead of the system's roots).
    pub upstream_ca: Option<PathBuf>,
    /// `--workers N`.
    pub workers: Option<usize>,
    /// `--admin ADDR`.
    pub admin: Option<SocketAddr>,
    /// `--admin-token-file F`.
    pub admin_token_file: Option<PathBuf>,
    /// `--flags FILE`: the embedded file store.
    pub flags_file: Option<PathBuf>,
    /// `--state-file F`.
    pub state_file: Option<PathBuf>,
    /// The Unleash admin token from the environment (`$FIG_UNLEASH_ADMIN_TOKEN`), used when
    /// `flags.unleash` has none.
    pub unleash_admin_token: Option<String>,
    /// The admin token `fig proxy` generated (`admin.generated_token_file`), used when the
    /// config names none, also on reload.
    pub generated_admin_token: Option<String>,
    /// `--tls-cert` and `--tls-key`: every listener speaks TLS with this certificate, which
    /// replaces `[[tls.certificates]]`.
    pub tls: Option<TlsFiles>,
    /// `--tls-client-ca`: replaces `tls.client_ca`.
    pub tls_client_ca: Option<PathBuf>,
}

impl Config {
    /// Reads and validates a config file, then applies `overrides`. Every mistake in the file
    /// is in the error ([`Error::ConfigErrors`]).
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Config::parse(&text, Some(path), overrides)?)
    }

    /// Validates config text. `path` names the file in errors and anchors relative paths.
    /// Every mistake is reported, in file order, but a TOML syntax error, an unknown key or a
    /// value of the wrong type, which stop the parser, is the only one.
    pub fn parse(
        text: &str,
        path: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigErrors> {
        let file = path.map_or_else(|| "<config>".to_owned(), |p| p.display().to_string());
        let mut ctx = Ctx::new(&file, text, path, overrides);
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let span = err.span().unwrap_or(0..0);
            ctx.mistake(span, feature_flags::did_you_mean(err.message()))
        })?;
        let config = validate(raw, &mut ctx);
        ctx.finish(config)
    }

    /// A config made of command-line flags only: everything goes to `--monolith`.
    pub fn from_overrides(overrides: &Overrides) -> Result<Config, ConfigErrors> {
        if overrides.monolith.is_none() {
            return Err(ConfigError {
                file: "<command line>".to_owned(),
                line: 0,
                column: 0,
                reason: "without --config, --monolith URL is required".to_owned(),
            }
            .into());
        }
        let mut ctx = Ctx::new("<command line>", "", None, overrides);
        let config = validate(RawConfig::default(), &mut ctx);
        ctx.finish(config)
    }

    /// The files a reload of the config file at `path` reads: the file itself and the TLS
    /// files it names (`[[tls.certificates]]`, `tls.client_ca`, or `--tls-cert`'s), found
    /// without validating, so that a config refused for a bad certificate is tried again when
    /// the certificate changes.
    pub fn files_named(path: &Path, overrides: &Overrides) -> Vec<PathBuf> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut files = vec![path.to_path_buf()];
        files.extend(tls::files_named(&text, path, overrides));
        files
    }

    /// The upstream with this name.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|up| up.name == name)
    }

    /// The default place of the state file for a config file: `<dir>/<stem>.state.json`.
    pub fn default_state_file(config_path: &Path) -> PathBuf {
        let stem = config_path
            .file_stem()
            .map_or_else(|| "fig-proxy".into(), |s| s.to_string_lossy().into_owned());
        config_path.with_file_name(format!("{stem}.state.json"))
    }

    /// The default place of the generated admin token for a config file, next to the state
    /// file: `<dir>/<stem>.admin-token`.
    pub fn default_admin_token_file(config_path: &Path) -> PathBuf {
        let stem = config_path
            .file_stem()
            .map_or_else(|| "fig-proxy".into(), |s| s.to_string_lossy().into_owned());
        config_path.with_file_name(format!("{stem}.admin-token"))
    }
}

/// The whole file as written: one field per table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    timeouts: timeouts::RawTimeouts,
    #[serde(default)]
    limits: limits::RawLimits,
    #[serde(default)]
    upstreams: BTreeMap<Spanned<String>, upstreams::RawUpstream>,
    #[serde(default)]
    routes: Vec<routes::RawRoute>,
    #[serde(default)]
    context: context::RawContext,
    flags: Option<flags::RawFlags>,
    #[serde(default)]
    admin: admin::RawAdmin,
    #[serde(default)]
    reload: reload::RawReload,
    #[serde(default)]
    shadow: shadow::RawShadowSettings,
    tls: Option<Spanned<tls::RawTls>>,
}

/// Validates every table, reporting every mistake to `ctx`, then checks what tables say of each
/// other. The result holds placeholders where `ctx` has mistakes.
fn validate(raw: RawConfig, ctx: &mut Ctx<'_>) -> Config {
    let RawConfig {
        server,
        timeouts,
        limits,
        mut upstreams,
        routes,
        context,
        flags,
        admin,
        reload,
        shadow,
        tls,
    } = raw;

    // `--monolith URL` goes in before validation so routes can name it; a wrong URL still
    // names the upstream, so that its mistake is the only one.
    if let Some(monolith) = &ctx.overrides.monolith {
        match parse_upstream_address(monolith) {
            Ok(_) => {
                upstreams
                    .entry(Spanned::new(0..0, MONOLITH.to_owned()))
                    .or_insert_with(|| upstreams::RawUpstream::from_address(monolith))
                    .set_address(monolith);
            }
            Err(reason) => {
                ctx.report_command_line(format!("--monolith: {reason}"));
                ctx.upstreams.insert(MONOLITH.to_owned());
            }
        }
    }
    ctx.upstreams
        .extend(upstreams.keys().map(|name| name.get_ref().clone()));
    ctx.default_upstream = server.default_upstream();
    ctx.state_file = server.state_file(ctx);
    // Where each `turn_off_flag = true` is, checked against `[flags]` below.
    let turn_off_flags: Vec<_> = routes
        .iter()
        .filter_map(routes::RawRoute::turn_off_flag)
        .collect();

    let server = server.validate(ctx);
    let tls = tls::validate(tls, &server.listen, ctx);
    let timeouts = timeouts.validate(ctx);
    let limits = limits.validate(ctx);
    let upstreams = upstreams.validate(ctx);
    let routes = routes.validate(ctx);
    let upstreams = upstreams.with_breakers(&routes);
    let context = context.validate(ctx);
    let before_flags = ctx.mark();
    let flags = flags.validate(ctx);
    // Against a `[flags]` with mistakes, these checks would only repeat them.
    if !ctx.reported_since(before_flags) {
        for span in turn_off_flags {
            match &flags.store {
                None => ctx.report(
                    span,
                    "`turn_off_flag` needs a flag store: add [flags] or pass --flags FILE",
                ),
                Some(FlagStoreConfig::Unleash { .. }) if flags.unleash_admin.is_none() => ctx.report(
                    span,
                    "`turn_off_flag` with Unleash needs an admin token: set `admin_token_file` in `flags.unleash` or $FIG_UNLEASH_ADMIN_TOKEN",
                ),
                Some(_) => {}
            }
        }
    }
    let admin = admin.validate(ctx);
    let reload = reload.validate(ctx);
    let shadow = shadow.validate(ctx);
    Config {
        path: ctx.path.map(Path::to_path_buf),
        listen: server.listen,
        workers: server.workers,
        upstream_header: server.upstream_header,
        default_upstream: server.default_upstream,
        preserve_host: server.preserve_host,
        drain_timeout: server.drain_timeout,
        state_file: ctx.state_file.clone(),
        access_log: server.access_log,
        http1: server.http1,
        http1_client: server.http1_client,
        max_connections: server.max_connections,
        tls,
        timeouts,
        limits,
        upstreams,
        routes,
        context,
        flags: flags.store,
        unleash_admin: flags.unleash_admin,
        admin,
        reload,
        shadow,
    }
}
