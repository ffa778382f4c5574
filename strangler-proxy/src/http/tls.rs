//! TLS at the proxy's edge: certificates from PEM files, the choice by SNI, the optional client
//! certificate, and the handshake of one client connection.
//!
//! The protocol is rustls's (TLS 1.3 and 1.2, its modern cipher suites only, the ring provider);
//! this module only loads what the config names and hands the decrypted stream to the HTTP
//! servers above it: HTTP/2 when the client chose `h2` by ALPN (hyper's server, the same path as
//! h2c), HTTP/1.1 otherwise (the proxy's own server or hyper's, as `server.http1` says).
//!
//! - [`load_certificate`] reads a certificate chain and its key and checks that they belong
//!   together; [`load_roots`] reads the CAs client certificates are checked against. Their
//!   errors name the file and say what is wrong with it.
//! - [`server_config`] builds the rustls config of one validated set: a [`CertSet`] picks the
//!   certificate by the client's SNI name (exact, then `*.parent`), else the default one.
//!   A reload builds a whole new config and swaps it in (`ops::runtime`): new handshakes get
//!   it, open connections keep the session they have.
//! - [`accept`] runs one handshake within a deadline. A client that speaks cleartext HTTP to
//!   the TLS port gets a plain `400` saying so, as NGINX's "plain HTTP request was sent to HTTPS
//!   port" does, and the connection closes; anything else that is not TLS is closed.
//! - [`ClientIdentity`] is what a verified client certificate says (subject, common name,
//!   first subject alternative name), read once per connection, for the flag context
//!   (`client-cert:` sources in `decision::context`).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// The ALPN protocols offered, in the server's order of preference.
pub(crate) const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The answer to cleartext HTTP on a TLS port.
pub(crate) const CLEARTEXT_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 70\r\nconnection: close\r\n\r\nthis port speaks TLS: a plain HTTP request was sent to an HTTPS port\n";

/// The first byte of a TLS record that carries a handshake message (a ClientHello).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The crypto provider of every TLS config the proxy makes: ring, as reqwest's.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain with its key, loaded and checked, and what its leaf says.
#[derive(Debug, Clone)]
pub(crate) struct Certificate {
    /// The chain (leaf first) and the signing key, as rustls serves them.
    pub(crate) certified: Arc<CertifiedKey>,
    /// The leaf's subject, e.g. `CN=shop.example.com`.
    pub(crate) subject: String,
    /// The leaf's DNS names (subject alternative names), lowercase.
    pub(crate) dns_names: Vec<String>,
    /// The leaf's `notAfter`, in seconds since the Unix epoch.
    pub(crate) not_after: i64,
}

/// Reads the PEM certificate chain in `cert` (leaf first) and the PEM private key in `key`
/// (PKCS#8, PKCS#1 or SEC1), and checks that the key is the leaf's. The error names the file
/// and the reason.
pub(crate) fn load_certificate(cert: &Path, key: &Path) -> Result<Certificate, String> {
    let cert_text = read(cert)?;
    let key_text = read(key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{}: not a PEM certificate chain: {err}", cert.display()))?;
    let Some(leaf) = chain.first() else {
        return Err(format!(
            "{}: no certificate in the file (expected PEM `-----BEGIN CERTIFICATE-----` blocks, the server's first)",
            cert.display()
        ));
    };
    let described = describe(leaf).map_err(|err| {
        format!(
            "{}: the first certificate cannot be parsed: {err}",
            cert.display()
        )
    })?;
    let private_key = match PrivateKeyDer::from_pem_slice(&key_text) {
        Ok(private_key) => private_key,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            return Err(format!(
                "{}: no private key in the file (expected a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block)",
                key.display()
            ));
        }
        Err(err) => return Err(format!("{}: not a PEM private key: {err}", key.display())),
    };
    let signing_key = provider()
        .key_provider
        .load_private_key(private_key)
        .map_err(|err| format!("{}: the private key cannot be used: {err}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(format!(
                "{}: the private key does not match the certificate in {}",
                key.display(),
                cert.display()
            ));
        }
        Err(err) => {
            return Err(format!(
                "{}: cannot check the key against the certificate in {}: {err}",
                key.display(),
                cert.display()
            ));
        }
    }
    Ok(Certificate {
        certified: Arc::new(certified),
        subject: described.subject,
        dns_names: described.dns_names,
        not_after: described.not_after,
    })
}

/// Reads the PEM CA certificates in `path`, which client certificates are checked against.
pub(crate) fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{}: not PEM certificates: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no CA certificate in the file (expected PEM `-----BEGIN CERTIFICATE-----` blocks)",
            path.display()
        ));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|err| format!("{}: not a usable CA certificate: {err}", path.display()))?;
    }
    Ok(Arc::new(roots))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

/// What a leaf certificate says, for the expiry gauge and the status document.
struct Described {
    subject: String,
    dns_names: Vec<String>,
    not_after: i64,
}

fn describe(der: &CertificateDer<'_>) -> Result<Described, String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(der).map_err(|err| err.to_string())?;
    let dns_names = match parsed.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(err) => return Err(format!("its subject alternative names: {err}")),
    };
    Ok(Described {
        subject: parsed.subject().to_string(),
        dns_names,
        not_after: parsed.validity().not_after.timestamp(),
    })
}

/// Client certificates: checked against `roots`, and asked for or required.
#[derive(Debug, Clone)]
pub(crate) struct ClientAuth {
    /// The CAs a client certificate must chain to.
    pub(crate) roots: Arc<RootCertStore>,
    /// Refuse the handshake of a client without a certificate (else it is served, with no
    /// client identity).
    pub(crate) required: bool,
}

/// The certificates of a TLS listener, chosen by the client's SNI name.
#[derive(Debug)]
pub(crate) struct CertSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is kept under `example.com`: it serves one more label.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl CertSet {
    /// A set serving `default` to clients whose name no entry has; each entry is a certificate
    /// and the names it is served for (`*.parent` for any one label under `parent`). The first
    /// entry that names a name gets it.
    pub(crate) fn new(
        default: Arc<CertifiedKey>,
        entries: &[(Arc<CertifiedKey>, Vec<String>)],
    ) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (certified, names) in entries {
            for name in names {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard
                        .entry(parent.to_owned())
                        .or_insert_with(|| certified.clone()),
                    None => exact.entry(name).or_insert_with(|| certified.clone()),
                };
            }
        }
        CertSet {
            exact,
            wildcard,
            default,
        }
    }

    /// The certificate for an SNI name (`None`: the client sent none).
    pub(crate) fn pick(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = name else {
            return &self.default;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.exact
            .get(&name)
            .or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for CertSet {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()).clone())
    }
}

/// The rustls config of a TLS listener: TLS 1.3 and 1.2, ALPN `h2` and `http/1.1`, the
/// certificate by SNI from `certs`, client certificates as `client_auth` says.
pub(crate) fn server_config(
    certs: CertSet,
    client_auth: Option<&ClientAuth>,
) -> Result<Arc<ServerConfig>, String> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|err| format!("TLS versions: {err}"))?;
    let builder = match client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(auth.roots.clone(), provider.clone());
            let verifier = if auth.required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|err| format!("client certificate verifier: {err}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(certs));
    config.alpn_protocols = ALPN.iter().map(|proto| proto.to_vec()).collect();
    Ok(Arc::new(config))
}

/// What a verified client certificate says: the flag context's `client-cert:` sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientIdentity {
    /// The subject, e.g. `CN=alice, O=Shop` (`client-cert:subject`).
    pub(crate) subject: String,
    /// The subject's first common name, e.g. `alice` (`client-cert:cn`).
    pub(crate) common_name: Option<String>,
    /// The first subject alternative name that is a DNS name, an e-mail address or a URI
    /// (`client-cert:san`).
    pub(crate) san: Option<String>,
}

impl ClientIdentity {
    /// What the leaf certificate `der` says; `None` if it does not parse (rustls has verified it,
    /// so that does not happen in practice).
    pub(crate) fn of(der: &CertificateDer<'_>) -> Option<ClientIdentity> {
        use x509_parser::extensions::GeneralName;
        let (_, parsed) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let san = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|name| match name {
                    GeneralName::DNSName(text)
                    | GeneralName::RFC822Name(text)
                    | GeneralName::URI(text) => Some((*text).to_owned()),
                    _ => None,
                })
            });
        Some(ClientIdentity {
            subject: parsed.subject().to_string(),
            common_name,
            san,
        })
    }
}

/// What the handshake of a client connection settled.
#[derive(Debug, Clone, Default)]
pub(crate) struct Session {
    /// The client chose HTTP/2 by ALPN.
    pub(crate) h2: bool,
    /// The client's verified certificate, if it sent one.
    pub(crate) client: Option<ClientIdentity>,
}

/// Why a connection ended before its handshake was done.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Cleartext HTTP on the TLS port: to be answered with [`CLEARTEXT_REFUSAL`]
    /// (`connections::refuse_with`).
    Cleartext(TcpStream),
    /// The handshake was not done within the deadline.
    Timeout,
    /// The handshake failed (not TLS, no common version or cipher, a bad client certificate).
    Handshake(io::Error),
}

/// Runs the TLS handshake of `stream` with `config` within `deadline`.
pub(crate) async fn accept(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    deadline: Duration,
) -> Result<(TlsStream<TcpStream>, Session), Refused> {
    let deadline = tokio::time::Instant::now() + deadline;
    // The first byte tells a ClientHello from a cleartext request; peeking leaves it for rustls.
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_) => return Err(Refused::Timeout),
        Ok(Err(err)) => return Err(Refused::Handshake(err)),
        Ok(Ok(0)) => {
            return Err(Refused::Handshake(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(Ok(_)) if first[0] != HANDSHAKE_RECORD => {
            if first[0].is_ascii_uppercase() {
                return Err(Refused::Cleartext(stream));
            }
            return Err(Refused::Handshake(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a TLS handshake",
            )));
        }
        Ok(Ok(_)) => {}
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Err(_) => return Err(Refused::Timeout),
        Ok(Err(err)) => return Err(Refused::Handshake(err)),
        Ok(Ok(stream)) => stream,
    };
    let (_, connection) = stream.get_ref();
    let session = Session {
        h2: connection.alpn_protocol() == Some(b"h2"),
        client: connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(ClientIdentity::of),
    };
    Ok((stream, session))
}
