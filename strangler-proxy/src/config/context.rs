//! `[context]`: how the flag context of a request is built (user and session ids, properties,
//! trusted proxies) and `[context.jwt]`, the token claims can be read from.

use std::collections::BTreeMap;

use http::HeaderName;
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::ctx::{Ctx, UnvalidatedConfig};

/// How the flag context of a request is built.
#[derive(Debug, Clone)]
pub struct ContextConfig {
    /// Where the user id comes from; the first source with a value wins.
    pub user_id: Vec<ValueSource>,
    /// Where the session id comes from; the first source with a value wins.
    pub session_id: Vec<ValueSource>,
    /// Extra context properties, each from its source.
    pub properties: Vec<(String, ValueSource)>,
    /// The `environment` field of every context.
    pub environment: Option<String>,
    /// The `app_name` field of every context.
    pub app_name: Option<String>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Where a JWT comes from and how it is checked; needed by `jwt:` sources.
    pub jwt: Option<JwtConfig>,
}

/// Where a context value is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// A request header.
    Header(HeaderName),
    /// A request header set by a gateway in front: read only when the request's TCP peer is
    /// one of `trusted_proxies`, absent from anyone else (whom the gateway did not vouch for).
    TrustedHeader(HeaderName),
    /// A cookie.
    Cookie(String),
    /// A claim of the request's JWT (see [`JwtConfig`]).
    Jwt(String),
    /// What the client certificate of a TLS connection says (`tls.client_ca`): verified by
    /// the handshake, so clients cannot choose it. Absent on cleartext connections and for
    /// clients without a certificate.
    ClientCert(CertField),
}

/// The part of a client certificate a `client-cert:` source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertField {
    /// The whole subject, e.g. `CN=alice, O=Shop` (`client-cert:subject`).
    Subject,
    /// The subject's common name, e.g. `alice` (`client-cert:cn`).
    CommonName,
    /// The first subject alternative name that is a DNS name, e-mail address or URI
    /// (`client-cert:san`).
    San,
}

/// The request's JWT.
#[derive(Clone)]
pub struct JwtConfig {
    /// Where the token is: a header (with or without `Bearer `) or a cookie.
    pub from: TokenLocation,
    /// The key checking its signature; `None` reads claims without checking (logged as a warning).
    pub key: Option<(jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm)>,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Required `aud`, if any.
    pub audience: Option<String>,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("from", &self.from)
            .field("algorithm", &self.key.as_ref().map(|(_, alg)| *alg))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Where a JWT is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// A header; a `Bearer ` prefix is removed.
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
}

/// `[context]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContext {
    user_id: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    session_id: Vec<Spanned<String>>,
    #[serde(default)]
    properties: BTreeMap<Spanned<String>, Spanned<String>>,
    environment: Option<String>,
    app_name: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    jwt: Option<Spanned<RawJwt>>,
}

/// `[context.jwt]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    from: Option<Spanned<String>>,
    algorithm: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    public_key_file: Option<Spanned<String>>,
    issuer: Option<String>,
    audience: Option<String>,
}

fn parse_source(text: &str) -> Result<ValueSource, String> {
    let (kind, name) = text.split_once(':').ok_or_else(|| {
        format!(
            "invalid source `{text}`; write `header:NAME`, `trusted-header:NAME`, `cookie:NAME`, `jwt:CLAIM` or `client-cert:subject|cn|san`"
        )
    })?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("source `{text}` has an empty name"));
    }
    match kind.trim() {
        "header" => HeaderName::try_from(name)
            .map(ValueSource::Header)
            .map_err(|_| format!("invalid header name `{name}`")),
        "trusted-header" => HeaderName::try_from(name)
            .map(ValueSource::TrustedHeader)
            .map_err(|_| format!("invalid header name `{name}`")),
        "cookie" => Ok(ValueSource::Cookie(name.to_owned())),
        "jwt" => Ok(ValueSource::Jwt(name.to_owned())),
        "client-cert" => match name {
            "subject" => Ok(ValueSource::ClientCert(CertField::Subject)),
            "cn" => Ok(ValueSource::ClientCert(CertField::CommonName)),
            "san" => Ok(ValueSource::ClientCert(CertField::San)),
            other => Err(format!(
                "unknown client certificate field `{other}`; use `client-cert:subject`, `client-cert:cn` or `client-cert:san`"
            )),
        },
        other => Err(format!(
            "unknown source kind `{other}`; use `header`, `trusted-header`, `cookie`, `jwt` or `client-cert`"
        )),
    }
}

/// The sources of a list; a wrong one is reported and left out.
fn sources(ctx: &mut Ctx<'_>, list: &[Spanned<String>]) -> Vec<ValueSource> {
    list.iter()
        .filter_map(|item| ctx.check(item.span(), parse_source(item.get_ref())))
        .collect()
}

impl UnvalidatedConfig for RawContext {
    type ValidCfg = ContextConfig;

    fn validate(self, ctx: &mut Ctx<'_>) -> ContextConfig {
        let raw = self;
        let user_id = match &raw.user_id {
            Some(list) => sources(ctx, list),
            None => vec![ValueSource::Header(HeaderName::from_static("x-user-id"))],
        };
        let session_id = sources(ctx, &raw.session_id);
        let mut properties = Vec::new();
        for (name, source) in &raw.properties {
            if let Some(source) = ctx.check(source.span(), parse_source(source.get_ref())) {
                properties.push((name.get_ref().clone(), source));
            }
        }
        let before_proxies = ctx.mark();
        let mut trusted_proxies = Vec::new();
        for item in &raw.trusted_proxies {
            let text = item.get_ref().trim();
            match text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
            {
                Ok(net) => trusted_proxies.push(net),
                Err(_) => ctx.report(item.span(), format!("invalid address or CIDR `{text}`")),
            }
        }
        let uses_trusted_header = user_id
            .iter()
            .chain(&session_id)
            .chain(properties.iter().map(|(_, source)| source))
            .any(|source| matches!(source, ValueSource::TrustedHeader(_)));
        if uses_trusted_header && trusted_proxies.is_empty() && !ctx.reported_since(before_proxies)
        {
            let span = raw
                .user_id
                .iter()
                .flatten()
                .chain(&raw.session_id)
                .chain(raw.properties.values())
                .find(|item| item.get_ref().trim_start().starts_with("trusted-header:"))
                .map_or(0..0, Spanned::span);
            ctx.report(
                span,
                "a `trusted-header:` source needs `trusted_proxies`: the peers whose header is believed",
            );
        }
        let uses_jwt = user_id
            .iter()
            .chain(&session_id)
            .chain(properties.iter().map(|(_, source)| source))
            .any(|source| matches!(source, ValueSource::Jwt(_)));
        // Whether the table is there, not whether it is valid: a wrong one was reported already.
        if uses_jwt && raw.jwt.is_none() {
            let span = raw
                .user_id
                .iter()
                .flatten()
                .chain(&raw.session_id)
                .find(|item| item.get_ref().starts_with("jwt:"))
                .map_or(0..0, Spanned::span);
            ctx.report(span, "a `jwt:` source needs a [context.jwt] table");
        }
        ContextConfig {
            user_id,
            session_id,
            properties,
            environment: raw.environment,
            app_name: raw.app_name,
            trusted_proxies,
            jwt: raw.jwt.map(|jwt| jwt.validate(ctx)),
        }
    }
}

impl UnvalidatedConfig for Spanned<RawJwt> {
    type ValidCfg = JwtConfig;

    fn validate(self, ctx: &mut Ctx<'_>) -> JwtConfig {
        use jsonwebtoken::{Algorithm, DecodingKey};
        let span = self.span();
        let jwt = self.into_inner();
        let default_from = TokenLocation::Header(http::header::AUTHORIZATION);
        let from = match &jwt.from {
            None => default_from,
            Some(value) => match parse_source(value.get_ref()) {
                Ok(ValueSource::Header(name)) => TokenLocation::Header(name),
                Ok(ValueSource::Cookie(name)) => TokenLocation::Cookie(name),
                Ok(
                    ValueSource::Jwt(_)
                    | ValueSource::TrustedHeader(_)
                    | ValueSource::ClientCert(_),
                ) => {
                    ctx.report(
                        value.span(),
                        "`from` must be `header:NAME` or `cookie:NAME`",
                    );
                    default_from
                }
                Err(reason) => {
                    ctx.report(value.span(), reason);
                    default_from
                }
            },
        };
        let mark = ctx.mark();
        let algorithm = match jwt
            .algorithm
            .as_ref()
            .map(|a| a.get_ref().to_ascii_uppercase())
        {
            None => None,
            Some(alg) if alg == "HS256" => Some(Algorithm::HS256),
            Some(alg) if alg == "RS256" => Some(Algorithm::RS256),
            Some(other) => {
                let span = jwt.algorithm.as_ref().map_or(span.clone(), Spanned::span);
                ctx.report(
                    span,
                    format!("unsupported algorithm `{other}`; use HS256 or RS256"),
                );
                None
            }
        };
        let secret = match (&jwt.secret, &jwt.secret_file) {
            (Some(_), Some(file)) => {
                ctx.report(
                    file.span(),
                    "give either `secret` or `secret_file`, not both",
                );
                None
            }
            (Some(secret), None) => Some(secret.get_ref().clone()),
            (None, Some(file)) => ctx.read_secret(file),
            (None, None) => None,
        };
        // Which key is wanted is unclear once the algorithm or the secret was wrong.
        let key = if ctx.reported_since(mark) {
            None
        } else {
            match (algorithm, secret, &jwt.public_key_file) {
                (None, None, None) => None,
                (Some(Algorithm::HS256) | None, Some(secret), None) => Some((
                    DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )),
                (Some(Algorithm::RS256) | None, None, Some(file)) => {
                    let path = ctx.path(file.get_ref());
                    match std::fs::read(&path) {
                        Err(err) => {
                            ctx.report(
                                file.span(),
                                format!("cannot read {}: {err}", path.display()),
                            );
                            None
                        }
                        Ok(pem) => match DecodingKey::from_rsa_pem(&pem) {
                            Ok(key) => Some((key, Algorithm::RS256)),
                            Err(err) => {
                                ctx.report(
                                    file.span(),
                                    format!(
                                        "{} is not an RSA public key in PEM: {err}",
                                        path.display()
                                    ),
                                );
                                None
                            }
                        },
                    }
                }
                (Some(Algorithm::HS256), _, _) => {
                    ctx.report(
                        span,
                        "HS256 needs `secret` or `secret_file` (and no `public_key_file`)",
                    );
                    None
                }
                (Some(_), _, _) => {
                    ctx.report(span, "RS256 needs `public_key_file` (and no `secret`)");
                    None
                }
                (None, _, _) => {
                    ctx.report(
                        span,
                        "give either a secret (HS256) or `public_key_file` (RS256), not both",
                    );
                    None
                }
            }
        };
        JwtConfig {
            from,
            key,
            issuer: jwt.issuer,
            audience: jwt.audience,
        }
    }
}
