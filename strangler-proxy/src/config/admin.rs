//! `[admin]`: the admin API's listener, its token, and the hosts it answers.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::Config;
use super::ctx::{Ctx, UnvalidatedConfig};

/// The default admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";

/// The admin API.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Its listener; `None` turns the admin API off.
    pub listen: Option<SocketAddr>,
    /// The bearer token; `None` means no token is asked (only allowed on loopback).
    pub token: Option<String>,
    /// Hosts the admin API answers besides its own address and the loopback names (`Host` and
    /// `Origin` are checked against them): lowercase `HOST` (any port) or `HOST:PORT`, or `*`
    /// for any host.
    pub allowed_hosts: Vec<String>,
    /// Where `fig proxy` keeps the token it generates at first start when no token is
    /// configured; `None` when `admin.generate_token = false` or there is no config file.
    pub generated_token_file: Option<PathBuf>,
}

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    listen: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    #[serde(default)]
    allowed_hosts: Vec<Spanned<String>>,
    generate_token: Option<bool>,
    generated_token_file: Option<Spanned<String>>,
}

impl UnvalidatedConfig for RawAdmin {
    type ValidCfg = AdminConfig;

    fn validate(self, ctx: &mut Ctx<'_>) -> AdminConfig {
        let listen = match &self.listen {
            Some(value) if value.get_ref() == "off" => None,
            // A wrong address turns the API off, which asks nothing of the token.
            Some(value) => ctx.check(
                value.span(),
                value.get_ref().parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "invalid admin address `{}`; write IP:PORT or \"off\"",
                        value.get_ref()
                    )
                }),
            ),
            None => DEFAULT_ADMIN_LISTEN.parse().ok(),
        };
        let listen = ctx.overrides.admin.or(listen);
        let before_token = ctx.mark();
        let mut token = match (&self.token, &self.token_file) {
            (Some(_), Some(file)) => {
                ctx.report(
                    file.span(),
                    "give either `admin.token` or `admin.token_file`, not both",
                );
                None
            }
            (Some(token), None) => Some(token.get_ref().clone()),
            (None, Some(file)) => ctx.read_secret(file),
            (None, None) => ctx.overrides.generated_admin_token.clone(),
        };
        if let Some(file) = &ctx.overrides.admin_token_file {
            match std::fs::read_to_string(file) {
                Ok(text) => token = Some(text.trim().to_owned()),
                Err(err) => ctx.report_command_line(format!(
                    "--admin-token-file: cannot read {}: {err}",
                    file.display()
                )),
            }
        }
        if let Some(text) = &token
            && text.is_empty()
        {
            let span = self
                .token_file
                .as_ref()
                .or(self.token.as_ref())
                .map_or(0..0, Spanned::span);
            ctx.report(span, "the admin token is empty");
        }
        // Without the token it failed to read, the check below would only repeat that mistake.
        if let Some(addr) = listen
            && token.is_none()
            && !addr.ip().is_loopback()
            && !ctx.reported_since(before_token)
        {
            let span = self.listen.as_ref().map_or(0..0, Spanned::span);
            ctx.report(
                span,
                format!(
                    "the admin API on non-loopback address {addr} needs `admin.token` or `admin.token_file`"
                ),
            );
        }
        let mut allowed_hosts = Vec::with_capacity(self.allowed_hosts.len());
        for host in &self.allowed_hosts {
            let text = host.get_ref().trim().to_ascii_lowercase();
            if text != "*" && http::uri::Authority::try_from(text.as_str()).is_err() {
                ctx.report(
                    host.span(),
                    format!(
                        "invalid host `{}` in `allowed_hosts`; write a name or address, with or without :PORT, or \"*\"",
                        host.get_ref()
                    ),
                );
                continue;
            }
            allowed_hosts.push(text);
        }
        let generated_token_file = match (self.generate_token, &self.generated_token_file) {
            (Some(false), _) => None,
            (_, Some(file)) => Some(ctx.path(file.get_ref())),
            (_, None) => ctx.path.map(Config::default_admin_token_file),
        };
        AdminConfig {
            listen,
            token,
            allowed_hosts,
            generated_token_file,
        }
    }
}
