//! The flag context of one request: user id, session id, client IP and properties.
//!
//! Values come from headers, cookies, JWT claims and the client certificate of a TLS
//! connection (`client-cert:subject|cn|san`, verified in the handshake), as `[context]` in the
//! config says; a
//! `trusted-header:` source is read only from a peer in `trusted_proxies`. A JWT is
//! decoded at most once per request, and only when a route with a flag needs the context. When a
//! key is configured the signature (HS256 or RS256), `exp`/`nbf` (when present, with a leeway of 60 s
//! for clocks that disagree), and the optional issuer and audience are checked, and a token that fails
//! is treated as absent.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use http::HeaderMap;
use http::request::Parts;
use ipnet::IpNet;
use serde_json::Value;

use crate::config::{
    CertField, Config, ContextConfig, JwtConfig, RateKey, TokenLocation, ValueSource,
};
use crate::decision::flags::{Context, ContextRef};
use crate::http::tls::ClientIdentity;

/// Seconds a JWT's `exp` and `nbf` may be off, for clocks that disagree.
pub(crate) const JWT_LEEWAY_SECS: u64 = 60;

/// A [`ContextConfig`] ready for use on the request path.
#[derive(Debug)]
pub struct ContextBuilder {
    config: ContextConfig,
    validation: Option<jsonwebtoken::Validation>,
}

impl ContextBuilder {
    /// Prepares the JWT validation rules once.
    pub fn new(config: ContextConfig) -> ContextBuilder {
        let validation = config.jwt.as_ref().map(|jwt| {
            let mut validation = match &jwt.key {
                Some((_, algorithm)) => jsonwebtoken::Validation::new(*algorithm),
                None => {
                    tracing::warn!(
                        "context.jwt has no key: JWT claims are read without checking signatures"
                    );
                    jsonwebtoken::Validation::default()
                }
            };
            // `exp` and `nbf` are checked when present, not required: many session tokens lack
            // them. Both allow the library's leeway of 60 s for clocks that disagree, as
            // docs/proxy-config.md says.
            validation.required_spec_claims.clear();
            validation.validate_nbf = true;
            validation.leeway = JWT_LEEWAY_SECS;
            validation.validate_aud = jwt.audience.is_some();
            if let Some(audience) = &jwt.audience {
                validation.set_audience(&[audience]);
            }
            if let Some(issuer) = &jwt.issuer {
                validation.set_issuer(&[issuer]);
            }
            validation
        });
        ContextBuilder { config, validation }
    }

    /// The peers whose `X-Forwarded-*` headers are believed.
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.config.trusted_proxies
    }

    /// Builds the context of a request that came from `peer`. Values are borrowed from the
    /// request where they can be; the client address is formatted on the stack.
    pub fn build<'a>(&'a self, parts: &'a Parts, peer: IpAddr) -> RequestContext<'a> {
        self.build_for(parts, peer, None)
    }

    /// Builds the context of a request that came from `peer`, whose connection presented the
    /// client certificate `cert` (read by `client-cert:` sources).
    pub(crate) fn build_for<'a>(
        &'a self,
        parts: &'a Parts,
        peer: IpAddr,
        cert: Option<&'a ClientIdentity>,
    ) -> RequestContext<'a> {
        let mut claims: Option<Option<serde_json::Map<String, Value>>> = None;
        let mut lookup = |source: &ValueSource| -> Option<Cow<'a, str>> {
            match source {
                ValueSource::Header(name) => parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(Cow::Borrowed),
                ValueSource::TrustedHeader(name) => {
                    if !is_trusted(peer, &self.config.trusted_proxies) {
                        return None;
                    }
                    parts
                        .headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(Cow::Borrowed)
                }
                ValueSource::Cookie(name) => cookie(&parts.headers, name).map(Cow::Borrowed),
                ValueSource::Jwt(claim) => {
                    let claims = claims.get_or_insert_with(|| self.claims(&parts.headers));
                    claims
                        .as_ref()?
                        .get(claim)
                        .and_then(claim_string)
                        .map(Cow::Owned)
                }
                ValueSource::ClientCert(field) => {
                    let cert = cert?;
                    let value = match field {
                        CertField::Subject => Some(cert.subject.as_str()),
                        CertField::CommonName => cert.common_name.as_deref(),
                        CertField::San => cert.san.as_deref(),
                    };
                    value.filter(|v| !v.is_empty()).map(Cow::Borrowed)
                }
            }
        };
        let user_id = self.config.user_id.iter().find_map(&mut lookup);
        let session_id = self.config.session_id.iter().find_map(&mut lookup);
        let properties = self
            .config
            .properties
            .iter()
            .filter_map(|(name, source)| Some((name.clone(), lookup(source)?.into_owned())))
            .collect();
        let client = client_ip(peer, &parts.headers, &self.config.trusted_proxies);
        RequestContext {
            user_id,
            session_id,
            remote_address: IpText::new(client),
            environment: self.config.environment.as_deref(),
            app_name: self.config.app_name.as_deref(),
            properties,
        }
    }

    fn claims(&self, headers: &HeaderMap) -> Option<serde_json::Map<String, Value>> {
        let jwt: &JwtConfig = self.config.jwt.as_ref()?;
        let validation = self.validation.as_ref()?;
        let token = match &jwt.from {
            TokenLocation::Header(name) => {
                let value = headers.get(name)?.to_str().ok()?.trim();
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .unwrap_or(value)
                    .trim()
            }
            TokenLocation::Cookie(name) => cookie(headers, name)?,
        };
        let decoded = match &jwt.key {
            Some((key, _)) => {
                jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, validation)
            }
            None => {
                jsonwebtoken::dangerous::insecure_decode::<serde_json::Map<String, Value>>(token)
            }
        };
        match decoded {
            Ok(data) => Some(data.claims),
            Err(err) => {
                tracing::debug!(error = %err, "ignoring a JWT that does not validate");
                None
            }
        }
    }
}

/// What in `config` trusts a user id that clients choose: a per-user rate limit or a flagged
/// route, while `[context] user_id` has a source a client sets as it likes (a header, a cookie,
/// or a JWT claim read without a key; a `trusted-header:` from `trusted_proxies` is trusted). Since the first source with a value wins, one such source
/// anywhere in the list is enough: a client without a JWT sends the header. One sentence per
/// finding, for `fig proxy --check` and the start-up log.
pub fn untrusted_user_id_warnings(config: &Config) -> Vec<String> {
    let context = &config.context;
    let signed = context.jwt.as_ref().is_some_and(|jwt| jwt.key.is_some());
    let chosen: Vec<String> = context
        .user_id
        .iter()
        .filter_map(|source| match source {
            ValueSource::Header(name) => Some(format!("header:{name}")),
            ValueSource::Cookie(name) => Some(format!("cookie:{name}")),
            ValueSource::Jwt(claim) if !signed => Some(format!("jwt:{claim} (no key)")),
            ValueSource::Jwt(_) | ValueSource::TrustedHeader(_) | ValueSource::ClientCert(_) => {
                None
            }
        })
        .collect();
    if chosen.is_empty() {
        return Vec::new();
    }
    let sources = chosen.join(", ");
    let mut warnings = Vec::new();
    for route in &config.routes {
        if route
            .rate_limit
            .is_some_and(|limit| limit.key == RateKey::User)
        {
            warnings.push(format!(
                "route `{}` rate-limits per user, but clients choose their user id ({sources} in `[context] user_id`): a new id per request escapes the limit; use `key = \"ip\"`, a `jwt:` source with a key, or a `trusted-header:` set by a gateway in `trusted_proxies`",
                route.name
            ));
        }
    }
    let flagged: Vec<&str> = config
        .routes
        .iter()
        .filter(|route| route.flag.is_some())
        .map(|route| route.name.as_str())
        .collect();
    if !flagged.is_empty() {
        warnings.push(format!(
            "flagged route(s) {} keep users on one side by user id, but clients choose it ({sources} in `[context] user_id`): a client can pick its side of a gradual rollout or join a user list; fine for a rollout, not for access control",
            flagged
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    warnings
}

fn claim_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The value of cookie `name`, from any `Cookie` header.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
        .filter(|v| !v.is_empty())
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return peer;
    }
    let mut leftmost = None;
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| item.trim().parse::<IpAddr>().ok().map(canonical))
        .collect();
    for hop in hops.iter().rev() {
        leftmost = Some(*hop);
        if !is_trusted(*hop, trusted) {
            return *hop;
        }
    }
    leftmost.unwrap_or(peer)
}

/// Whether `ip` is in one of the `trusted` networks.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The flag context of one request, borrowing from the request and the config.
#[derive(Debug)]
pub struct RequestContext<'a> {
    user_id: Option<Cow<'a, str>>,
    session_id: Option<Cow<'a, str>>,
    remote_address: IpText,
    environment: Option<&'a str>,
    app_name: Option<&'a str>,
    properties: HashMap<String, String>,
}

impl RequestContext<'_> {
    /// The borrowed form flag stores evaluate.
    pub fn as_ref(&self) -> ContextRef<'_> {
        ContextRef {
            user_id: self.user_id.as_deref(),
            session_id: self.session_id.as_deref(),
            remote_address: Some(self.remote_address.as_str()),
            environment: self.environment,
            app_name: self.app_name,
            current_time: None,
            properties: (!self.properties.is_empty()).then_some(&self.properties),
        }
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Context {
        Context {
            user_id: self.user_id.as_deref().map(str::to_owned),
            session_id: self.session_id.as_deref().map(str::to_owned),
            remote_address: Some(self.remote_address.as_str().to_owned()),
            environment: self.environment.map(str::to_owned),
            app_name: self.app_name.map(str::to_owned),
            current_time: None,
            properties: self.properties.clone(),
        }
    }
}

/// An IP address formatted into a stack buffer (the longest IPv6 text is 45 bytes).
#[derive(Debug, Clone, Copy)]
pub struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    /// Formats `ip`.
    pub fn new(ip: IpAddr) -> IpText {
        use std::io::Write as _;
        let mut buf = [0u8; 48];
        let len = match ip {
            // By hand: `fmt` costs about a thousand instructions per IPv4 address, which shows
            // in the proxy's CPU time per request.
            IpAddr::V4(v4) => {
                let mut len = 0;
                for (idx, octet) in v4.octets().into_iter().enumerate() {
                    if idx > 0 {
                        buf[len] = b'.';
                        len += 1;
                    }
                    if octet >= 100 {
                        buf[len] = b'0' + octet / 100;
                        len += 1;
                    }
                    if octet >= 10 {
                        buf[len] = b'0' + octet / 10 % 10;
                        len += 1;
                    }
                    buf[len] = b'0' + octet % 10;
                    len += 1;
                }
                len
            }
            IpAddr::V6(_) => {
                let mut cursor = std::io::Cursor::new(&mut buf[..]);
                let _ = write!(cursor, "{ip}");
                usize::try_from(cursor.position()).unwrap_or(0)
            }
        };
        IpText { buf, len }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl crate::shadow::StickyId for RequestContext<'_> {
    fn sticky_id(&self) -> &str {
        let context = self.as_ref();
        context.user_id.or(context.remote_address).unwrap_or("")
    }
}
