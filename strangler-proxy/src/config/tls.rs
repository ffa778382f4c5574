//! `[tls]`: TLS at the proxy's edge: which listeners speak it, their certificates (chosen by SNI,
//! with a default) and optional client certificates.
//!
//! The certificate and key files are read and checked here, with the config: a pair that does
//! not load, or whose key is not the certificate's, is a mistake of the file at the line of its
//! `cert`, so a reload with a bad pair is refused whole and the old certificates keep serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::Overrides;
use super::ctx::Ctx;
use crate::http::tls::{self, CertSet, ClientAuth};

/// TLS at the edge, validated: the files are loaded and the rustls config is built.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The listen addresses (of `server.listen`) that speak TLS.
    pub listen: Vec<SocketAddr>,
    /// The certificates, in the order written; one is the default.
    pub certificates: Vec<TlsCertificate>,
    /// The CA file client certificates are checked against; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required (or only asked for).
    pub client_auth: ClientAuthMode,
    /// The rustls config every TLS listener's new handshakes use.
    pub(crate) server: Arc<rustls::ServerConfig>,
}

impl TlsConfig {
    /// Every file the TLS config was read from: the certificates, keys and the client CA. A
    /// change to one of them reloads the config (`serve::watch_config`).
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.certificates
            .iter()
            .flat_map(|cert| [&cert.cert, &cert.key])
            .chain(&self.client_ca)
    }
}

/// One certificate of `[[tls.certificates]]`, loaded.
#[derive(Debug, Clone)]
pub struct TlsCertificate {
    /// The certificate chain file (PEM, server certificate first).
    pub cert: PathBuf,
    /// Its private key file (PEM).
    pub key: PathBuf,
    /// The SNI names it is served for (`*.example.com` for one label under example.com).
    pub names: Vec<String>,
    /// Served to clients that name no host, or one no certificate has.
    pub default: bool,
    /// The certificate's subject.
    pub subject: String,
    /// Its `notAfter`, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// Client certificates (`tls.client_auth`), with `tls.client_ca`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAuthMode {
    /// Asked for; a client without one is served, with no client identity.
    #[default]
    Optional,
    /// Required: a handshake without a valid client certificate fails.
    Required,
}

/// `[tls]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    listen: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    certificates: Vec<RawCertificate>,
    client_ca: Option<Spanned<String>>,
    client_auth: Option<Spanned<ClientAuthMode>>,
}

/// `[[tls.certificates]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    cert: Spanned<String>,
    key: Spanned<String>,
    names: Option<Vec<Spanned<String>>>,
    default: Option<Spanned<bool>>,
}

/// Validates `[tls]` (absent: `None`, unless `--tls-cert` asks for TLS) against the validated
/// `listen` addresses.
pub(super) fn validate(
    raw: Option<Spanned<RawTls>>,
    listen: &[SocketAddr],
    ctx: &mut Ctx<'_>,
) -> Option<TlsConfig> {
    let cli = ctx.overrides.tls.clone();
    if raw.is_none() && cli.is_none() {
        if ctx.overrides.tls_client_ca.is_some() {
            ctx.report_command_line(
                "--tls-client-ca needs TLS: pass --tls-cert and --tls-key, or add [tls]",
            );
        }
        return None;
    }
    let table_span = raw.as_ref().map_or(0..0, Spanned::span);
    let raw = raw.map(Spanned::into_inner).unwrap_or_default();
    let mistakes = ctx.mark();

    // Which listeners: `tls.listen`, each one of `server.listen`, or all of them. `--listen`
    // replaces both lists: then every listener speaks TLS.
    let tls_listen = match &raw.listen {
        Some(addresses) if ctx.overrides.listen.is_empty() => {
            let mut chosen = Vec::new();
            for text in addresses.get_ref() {
                match text.parse::<SocketAddr>() {
                    Ok(addr) if listen.contains(&addr) => chosen.push(addr),
                    Ok(addr) => ctx.report(
                        addresses.span(),
                        format!("`{addr}` is not one of `server.listen`; list the TLS listeners there too"),
                    ),
                    Err(_) => ctx.report(
                        addresses.span(),
                        format!("invalid listen address `{text}`; write IP:PORT, e.g. 0.0.0.0:8443"),
                    ),
                }
            }
            chosen
        }
        _ => listen.to_vec(),
    };

    // The certificates: the file's, or the one of `--tls-cert`/`--tls-key`.
    let mut certificates = Vec::new();
    let mut loaded = Vec::new();
    let mut default = None;
    if let Some(cli) = &cli {
        match tls::load_certificate(&cli.cert, &cli.key) {
            Ok(cert) => {
                certificates.push(described(&cert, cli.cert.clone(), cli.key.clone(), None));
                loaded.push(cert);
                default = Some(0);
            }
            Err(reason) => ctx.report_command_line(format!("--tls-cert/--tls-key: {reason}")),
        }
    } else {
        if raw.certificates.is_empty() {
            ctx.report(
                table_span.clone(),
                "`[tls]` needs a certificate: add [[tls.certificates]] with `cert` and `key`, or pass --tls-cert and --tls-key",
            );
        }
        for entry in &raw.certificates {
            let cert_path = ctx.path(entry.cert.get_ref());
            let key_path = ctx.path(entry.key.get_ref());
            let names = entry.names.as_ref().map(|names| {
                names
                    .iter()
                    .filter_map(|name| {
                        let text = name.get_ref().trim().to_ascii_lowercase();
                        let plain = text.strip_prefix("*.").unwrap_or(&text);
                        let valid = !plain.is_empty()
                            && !plain.contains('*')
                            && rustls_pki_types::DnsName::try_from(plain).is_ok();
                        if valid {
                            Some(text)
                        } else {
                            ctx.report(
                                name.span(),
                                format!("invalid SNI name `{}`; write a DNS name, e.g. shop.example.com or *.example.com", name.get_ref()),
                            );
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            });
            if let Some(flag) = &entry.default
                && *flag.get_ref()
            {
                if default.is_some() {
                    ctx.report(flag.span(), "only one certificate can be the default");
                } else {
                    default = Some(certificates.len());
                }
            }
            match tls::load_certificate(&cert_path, &key_path) {
                Ok(cert) => {
                    certificates.push(described(&cert, cert_path, key_path, names));
                    loaded.push(cert);
                }
                // Then the whole table is refused (below): indices need not stay in step.
                Err(reason) => ctx.report(entry.cert.span(), reason),
            }
        }
    }
    let default = default.unwrap_or(0);
    if let Some(cert) = certificates.get_mut(default) {
        cert.default = true;
    }

    let client_ca = match (&ctx.overrides.tls_client_ca, &raw.client_ca) {
        (Some(path), _) => Some((path.clone(), 0..0)),
        (None, Some(path)) => Some((ctx.path(path.get_ref()), path.span())),
        (None, None) => None,
    };
    let client_auth = raw
        .client_auth
        .as_ref()
        .map(|mode| *mode.get_ref())
        .unwrap_or_default();
    if let (Some(mode), None) = (&raw.client_auth, &client_ca) {
        ctx.report(
            mode.span(),
            "`client_auth` needs `client_ca`, the CA file client certificates are checked against",
        );
    }
    let roots = client_ca
        .as_ref()
        .and_then(|(path, span)| match tls::load_roots(path) {
            Ok(roots) => Some(roots),
            Err(reason) if span.is_empty() => {
                ctx.report_command_line(format!("--tls-client-ca: {reason}"));
                None
            }
            Err(reason) => {
                ctx.report(span.clone(), reason);
                None
            }
        });

    if ctx.reported_since(mistakes) || loaded.is_empty() {
        return None;
    }
    let entries: Vec<_> = loaded
        .iter()
        .zip(&certificates)
        .map(|(cert, described)| (cert.certified.clone(), described.names.clone()))
        .collect();
    let set = CertSet::new(loaded[default].certified.clone(), &entries);
    let auth = roots.map(|roots| ClientAuth {
        roots,
        required: client_auth == ClientAuthMode::Required,
    });
    let server = match tls::server_config(set, auth.as_ref()) {
        Ok(server) => server,
        Err(reason) => {
            ctx.report(table_span, reason);
            return None;
        }
    };
    Some(TlsConfig {
        listen: tls_listen,
        certificates,
        client_ca: client_ca.map(|(path, _)| path),
        client_auth,
        server,
    })
}

/// The TLS files `text` (the config file at `path`) names, or `overrides` replace, read
/// loosely: the table need not be valid.
pub(super) fn files_named(text: &str, path: &Path, overrides: &Overrides) -> Vec<PathBuf> {
    let table: toml::Table = toml::from_str(text).unwrap_or_default();
    let tls = table.get("tls").and_then(toml::Value::as_table);
    let dir = path.parent().unwrap_or(Path::new(""));
    let named = |value: Option<&toml::Value>| {
        value
            .and_then(toml::Value::as_str)
            .map(|file| dir.join(file))
    };
    let mut files = Vec::new();
    match &overrides.tls {
        Some(cli) => files.extend([cli.cert.clone(), cli.key.clone()]),
        None => {
            let certificates = tls
                .and_then(|tls| tls.get("certificates"))
                .and_then(toml::Value::as_array);
            for entry in certificates.into_iter().flatten() {
                files.extend(named(entry.get("cert")));
                files.extend(named(entry.get("key")));
            }
        }
    }
    match &overrides.tls_client_ca {
        Some(ca) => files.push(ca.clone()),
        None => files.extend(named(tls.and_then(|tls| tls.get("client_ca")))),
    }
    files
}

/// A loaded certificate as the config describes it; `names` default to its DNS names.
fn described(
    cert: &tls::Certificate,
    cert_path: PathBuf,
    key_path: PathBuf,
    names: Option<Vec<String>>,
) -> TlsCertificate {
    TlsCertificate {
        cert: cert_path,
        key: key_path,
        names: names.unwrap_or_else(|| cert.dns_names.clone()),
        default: false,
        subject: cert.subject.clone(),
        not_after: cert.not_after,
    }
}

/// `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}
