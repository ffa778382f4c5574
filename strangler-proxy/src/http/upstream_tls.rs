//! TLS to upstreams: the rustls client settings of an `https://` upstream, and the handshake.
//!
//! Each upstream with `https://` addresses has one [`UpstreamTls`], built when its config is
//! validated (so a CA file, a certificate or a key that cannot be read is a config mistake with
//! its file and line, and a reload that has one keeps the config in force): the roots it trusts
//! (the operating system's store, read once per process, or a CA file), an optional client
//! certificate (upstream mTLS), the name sent as SNI and verified, and the ALPN protocols it
//! offers (`h2` or `http/1.1`, from the upstream's `protocol`). Verification can only be turned
//! off per upstream (`insecure_skip_verify`); the handshake signatures are still checked then, so
//! the connection is encrypted to whoever holds the key of the certificate it shows.
//!
//! The handshake is tokio-rustls on the pooled connection's socket; the connections themselves
//! are pooled by `protection::upstream` like cleartext ones. The ring provider is used, as
//! reqwest uses it in this workspace: no aws-lc build and no system OpenSSL.

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The TLS settings of one upstream, ready to connect with.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// The rustls client config: roots, client certificate, ALPN.
    pub config: Arc<ClientConfig>,
    /// The name sent as SNI and checked against the certificate; `None` takes each address's host.
    pub server_name: Option<ServerName<'static>>,
    /// Whether the upstream's certificate is not verified (`insecure_skip_verify`).
    pub insecure: bool,
}

/// What an upstream's TLS is built from, as the config names it (paths already resolved).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings<'a> {
    /// A PEM file of the CA certificates to trust instead of the system's.
    pub ca: Option<&'a Path>,
    /// The name to send as SNI and verify, instead of each address's host.
    pub server_name: Option<&'a str>,
    /// The client certificate chain (PEM) and its key (PEM), for upstream mTLS.
    pub client_cert: Option<(&'a Path, &'a Path)>,
    /// Skip verifying the upstream's certificate.
    pub insecure_skip_verify: bool,
    /// Offer `h2` (and only it) over ALPN, else `http/1.1`.
    pub h2: bool,
}

/// Which setting a mistake is about, so the config can point at its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `ca`.
    Ca,
    /// `server_name`.
    ServerName,
    /// `client_cert` (or the pair of it and `client_key`).
    ClientCert,
    /// `client_key`.
    ClientKey,
    /// None in particular: the system roots.
    Roots,
}

/// Builds an upstream's TLS settings; every mistake found, each with the setting it is about.
pub fn build(settings: &TlsSettings<'_>) -> Result<UpstreamTls, Vec<(Setting, String)>> {
    let mut mistakes = Vec::new();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_name = settings.server_name.and_then(|name| {
        ServerName::try_from(name.to_owned())
            .map_err(|_| {
                mistakes.push((
                    Setting::ServerName,
                    format!("`{name}` is not a DNS name or an IP address"),
                ));
            })
            .ok()
    });
    let roots = if settings.insecure_skip_verify {
        None
    } else {
        match settings.ca {
            Some(path) => match read_certificates(path) {
                Ok(certs) => {
                    let mut store = RootCertStore::empty();
                    let (_, ignored) = store.add_parsable_certificates(certs);
                    if store.is_empty() {
                        mistakes.push((
                            Setting::Ca,
                            format!("{}: no usable CA certificate in it", path.display()),
                        ));
                    } else if ignored > 0 {
                        tracing::warn!(file = %path.display(), ignored, "CA file has certificates that cannot be used");
                    }
                    Some(Arc::new(store))
                }
                Err(reason) => {
                    mistakes.push((Setting::Ca, reason));
                    None
                }
            },
            None => match system_roots() {
                Ok(store) => Some(store),
                Err(reason) => {
                    mistakes.push((Setting::Roots, reason));
                    None
                }
            },
        }
    };
    let client_auth = settings.client_cert.and_then(|(cert, key)| {
        let chain = read_certificates(cert)
            .map_err(|reason| mistakes.push((Setting::ClientCert, reason)))
            .ok()?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|err| {
                mistakes.push((
                    Setting::ClientKey,
                    format!("{}: no private key read: {err}", key.display()),
                ));
            })
            .ok()?;
        Some((chain, key))
    });
    if !mistakes.is_empty() {
        return Err(mistakes);
    }
    let builder = match ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder,
        Err(err) => return Err(vec![(Setting::Roots, err.to_string())]),
    };
    let builder = match roots {
        Some(roots) => builder.with_root_certificates(roots),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
    };
    let mut config = match client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|err| {
            vec![(
                Setting::ClientCert,
                format!("the client certificate and key do not go together: {err}"),
            )]
        })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = if settings.h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(UpstreamTls {
        config: Arc::new(config),
        server_name,
        insecure: settings.insecure_skip_verify,
    })
}

/// Does the TLS handshake on `stream` with the upstream at `host` (its name, or IP address).
/// A failure says why in its message (`invalid peer certificate: ...` from rustls).
pub async fn connect(
    tls: &UpstreamTls,
    host: &str,
    stream: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    let name = match &tls.server_name {
        Some(name) => name.clone(),
        None => ServerName::try_from(host.to_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid server name"))?,
    };
    TlsConnector::from(tls.config.clone())
        .connect(name, stream)
        .await
}

/// The certificates of a PEM file, at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("cannot read certificates from {}: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The operating system's trust store, read once per process (as curl and NGINX use it).
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(String::new, |err| format!(" ({err})"));
                Err(format!(
                    "no CA certificate found in the system's trust store{why}; give the upstream a `ca` file or pass --upstream-ca"
                ))
            } else {
                Ok(Arc::new(store))
            }
        })
        .clone()
}

/// `insecure_skip_verify`: any certificate is accepted, but the handshake's signatures are
/// still checked against it.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection to an upstream: TCP, or TLS over TCP. Both are `Unpin`, so the I/O traits
/// delegate without pinning code.
#[derive(Debug)]
pub enum UpstreamIo {
    /// Cleartext.
    Plain(TcpStream),
    /// TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for UpstreamIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(stream) => std::pin::Pin::new(stream).poll_read(cx, buf),
            UpstreamIo::Tls(stream) => std::pin::Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for UpstreamIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(stream) => std::pin::Pin::new(stream).poll_write(cx, buf),
            UpstreamIo::Tls(stream) => std::pin::Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(stream) => std::pin::Pin::new(stream).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(stream) => std::pin::Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(stream) => stream.is_write_vectored(),
            UpstreamIo::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(stream) => std::pin::Pin::new(stream).poll_flush(cx),
            UpstreamIo::Tls(stream) => std::pin::Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(stream) => std::pin::Pin::new(stream).poll_shutdown(cx),
            UpstreamIo::Tls(stream) => std::pin::Pin::new(stream).poll_shutdown(cx),
        }
    }
}
