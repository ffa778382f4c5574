//! TLS at the proxy's edge (issue 16, first half), against the real `fig proxy`: curl with
//! `--cacert` over HTTP/1.1 and HTTP/2 (ALPN), a Rust rustls client for SNI, TLS versions and
//! client certificates, cleartext HTTP on the TLS port, certificates that rotate under load, a
//! bad pair refused while the old one keeps serving, and the expiry in the metrics and in
//! `fig route status`.
//!
//! Certificates are made per test with rcgen (ECDSA P-256) into a temporary directory. The
//! upstream is a recording loopback server (support/wire.rs). Every wait is bounded.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls_pki_types::pem::PemObject as _;

use crate::support::fig;
use crate::support::procs::Proc;
use crate::support::wire::{Reply, Upstream, ok};

const TOKEN: &str = "tls-test-admin-token";
/// How soon a reload must be in force; generous for a debug build on a busy machine.
const IN_FORCE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Certificates.

/// A certificate authority that signs the test's server and client certificates.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A leaf for `names` (DNS names or IPs) with common name `cn`, expiring on `not_after`
    /// (year, month, day): its PEM certificate, PEM key and DER certificate.
    fn leaf(&self, cn: &str, names: &[&str], not_after: (i32, u8, u8)) -> Leaf {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Leaf {
    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("the key's PEM")
    }
}

/// Writes `text` to `path` by a rename, as Kubernetes and cert-manager replace files.
fn replace(path: &Path, text: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, text).expect("write a certificate file");
    std::fs::rename(&temp, path).expect("rename it over the old one");
}

// ---------------------------------------------------------------------------------------------
// The proxy.

struct Proxy {
    proc: Proc,
    /// The TLS listener.
    addr: SocketAddr,
    admin: SocketAddr,
}

/// Starts `fig proxy` with `args` in `dir` (the config's directory), the admin API on port 0.
fn start(dir: &Path, args: &[&str]) -> Proxy {
    std::fs::write(dir.join("admin.token"), format!("{TOKEN}\n")).expect("write the token");
    let mut command = fig();
    command
        .current_dir(dir)
        .args([
            "-v",
            "proxy",
            "--admin",
            "127.0.0.1:0",
            "--admin-token-file",
        ])
        .arg(dir.join("admin.token"))
        .args(args);
    let mut proc = Proc::spawn("fig proxy", command);
    let addr = proc.address("listening on https://");
    let admin = proc.address("admin on http://");
    Proxy { proc, addr, admin }
}

impl Proxy {
    fn admin_get(&self, path: &str) -> String {
        reqwest::blocking::Client::new()
            .get(format!("http://{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .and_then(reqwest::blocking::Response::text)
            .expect("an admin GET")
    }

    /// `POST /reload`: the status and the body.
    fn reload(&self) -> (u16, String) {
        let response = reqwest::blocking::Client::new()
            .post(format!("http://{}/reload", self.admin))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .expect("POST /reload");
        let status = response.status().as_u16();
        (status, response.text().unwrap_or_default())
    }
}

/// An upstream that answers every request with `ok` and records it.
fn upstream() -> Upstream {
    Upstream::start(|_| Reply::Send(ok("hello over tls")))
}

/// A config file in `dir` with the given `[tls]` table (and what follows it), in front of
/// `upstream`, watching its files every 100 ms.
fn write_config(dir: &Path, upstream: &Upstream, tls: &str) -> PathBuf {
    let path = dir.join("fig-proxy.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[upstreams.monolith]\naddresses = [\"{}\"]\n\n[reload]\npoll_interval = \"100ms\"\n\n{tls}\n",
        upstream.url()
    );
    std::fs::write(&path, text).expect("write the config");
    path
}

// ---------------------------------------------------------------------------------------------
// A Rust TLS client (rustls, blocking).

/// A client config trusting `roots`, offering `alpn`, with an optional client certificate.
fn client_config(
    roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
    client: Option<&Leaf>,
) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("a root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(store);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.der.clone()], leaf.key_der())
            .expect("a client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|proto| proto.to_vec()).collect();
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects to `addr` naming `sni`, and completes the handshake.
fn connect(
    addr: SocketAddr,
    sni: &str,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from(sni.to_owned()).expect("a server name");
    let connection =
        rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The server certificate a handshake presented.
fn presented(stream: &Tls) -> CertificateDer<'static> {
    stream
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("a server certificate")
        .clone()
        .into_owned()
}

/// Sends `GET path` (HTTP/1.1, keep-alive) and reads the response: status, head, body.
fn get(stream: &mut Tls, path: &str) -> std::io::Result<(u16, String, String)> {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((status, head, String::from_utf8_lossy(&body).into_owned()))
}

fn tls13() -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    &TLS13
}

// ---------------------------------------------------------------------------------------------
// curl.

/// Runs curl against the proxy's TLS port as `localhost`, trusting `ca_file`: the status, the
/// HTTP version curl used, and the body.
fn curl(addr: SocketAddr, ca_file: &Path, extra: &[&str]) -> (String, String) {
    let output = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca_file)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(extra)
        .arg(format!("https://localhost:{}/orders/1", addr.port()))
        .output()
        .expect("curl runs (it is in .ci/run's packages)");
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl's -w line");
    (status.to_owned(), body.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// `fig proxy --tls-cert --tls-key`: curl with `--cacert` gets the upstream's answer over
/// HTTP/1.1 and, by ALPN, HTTP/2; the upstream sees `X-Forwarded-Proto: https`.
#[test]
fn curl_reaches_the_upstream_over_tls_with_http1_and_http2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("fig test CA");
    let leaf = ca.leaf("localhost", &["localhost", "127.0.0.1"], (2030, 1, 1));
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).expect("write");
    std::fs::write(dir.path().join("key.pem"), &leaf.key_pem).expect("write");
    let upstream = upstream();
    let proxy = start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--monolith",
            &upstream.url(),
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ],
    );
    let ca_file = dir.path().join("ca.pem");
    assert_eq!(
        curl(proxy.addr, &ca_file, &["--http1.1"]),
        ("200 1.1".to_owned(), "hello over tls".to_owned())
    );
    assert_eq!(
        curl(proxy.addr, &ca_file, &["--http2"]),
        ("200 2".to_owned(), "hello over tls".to_owned())
    );
    assert_eq!(
        curl(
            proxy.addr,
            &ca_file,
            &["--http2", "--tlsv1.2", "--tls-max", "1.2"]
        ),
        ("200 2".to_owned(), "hello over tls".to_owned())
    );
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.header("x-forwarded-proto"), Some("https"));
        assert_eq!(request.target(), "/orders/1");
    }
}

/// Several certificates in `[[tls.certificates]]`: the client's SNI name picks one (exact or
/// wildcard), and a client naming another host, or none, gets the default. TLS 1.3 and 1.2
/// both complete; ALPN picks `h2` when offered.
#[test]
fn sni_picks_the_certificate_and_unknown_names_get_the_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("fig test CA");
    let shop = ca.leaf("shop", &["shop.test"], (2030, 1, 1));
    let api = ca.leaf("api", &["*.api.test"], (2031, 1, 1));
    let fallback = ca.leaf("fallback", &["localhost"], (2032, 1, 1));
    for (name, leaf) in [("shop", &shop), ("api", &api), ("fallback", &fallback)] {
        std::fs::write(dir.path().join(format!("{name}.pem")), &leaf.cert_pem).expect("write");
        std::fs::write(dir.path().join(format!("{name}.key")), &leaf.key_pem).expect("write");
    }
    let upstream = upstream();
    let config = write_config(
        dir.path(),
        &upstream,
        r#"[tls]
[[tls.certificates]]
cert = "shop.pem"
key = "shop.key"

[[tls.certificates]]
cert = "api.pem"
key = "api.key"

[[tls.certificates]]
cert = "fallback.pem"
key = "fallback.key"
default = true
"#,
    );
    let proxy = start(dir.path(), &["--config", config.to_str().expect("utf-8")]);
    let roots = [ca.der()];
    static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    for versions in [tls13(), &TLS12[..]] {
        let h1 = client_config(&roots, &[b"http/1.1"], versions, None);
        let cases = [
            ("shop.test", &shop),
            ("v1.api.test", &api),
            ("localhost", &fallback),
            ("other.test", &fallback),
        ];
        for (sni, expected) in cases {
            // A client naming an unknown host gets the default, which does not name it: the
            // client is told to accept that (verification is not what this checks).
            let config = if sni == "other.test" {
                insecure_client_config(versions)
            } else {
                h1.clone()
            };
            let mut stream = connect(proxy.addr, sni, &config)
                .unwrap_or_else(|err| panic!("handshake naming {sni}: {err}"));
            assert!(
                presented(&stream) == expected.der,
                "naming {sni} got another certificate"
            );
            assert_eq!(stream.conn.protocol_version(), Some(versions[0].version),);
            let (status, _, body) = get(&mut stream, "/").expect("a response");
            assert_eq!((status, body.as_str()), (200, "hello over tls"));
        }
    }
    let h2 = client_config(&roots, &[b"h2", b"http/1.1"], tls13(), None);
    let stream = connect(proxy.addr, "shop.test", &h2).expect("handshake");
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"h2"[..]));
}

/// A verifier that accepts any server certificate, for the one case where the default
/// certificate does not name the host asked for.
fn insecure_client_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct AnyServer(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Cleartext HTTP sent to the TLS port gets a plain 400 that says why, and the connection
/// closes; the proxy goes on serving TLS.
#[test]
fn cleartext_http_on_the_tls_port_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("fig test CA");
    let leaf = ca.leaf("localhost", &["localhost"], (2030, 1, 1));
    std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).expect("write");
    std::fs::write(dir.path().join("key.pem"), &leaf.key_pem).expect("write");
    let upstream = upstream();
    let proxy = start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--monolith",
            &upstream.url(),
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ],
    );
    let mut tcp = TcpStream::connect(proxy.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(b"GET /orders/1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut answer = Vec::new();
    // Read to the close: it must come, within the read timeout.
    tcp.read_to_end(&mut answer)
        .expect("the proxy answers and closes the connection");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "got {answer:?}"
    );
    assert!(answer.contains("a plain HTTP request was sent to an HTTPS port"));
    assert!(upstream.seen().is_empty(), "nothing reached the upstream");

    // Garbage that is neither TLS nor HTTP is closed without an answer.
    let mut tcp = TcpStream::connect(proxy.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(&[0u8; 64]).expect("send");
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(answer.is_empty(), "got {answer:?}");

    let config = client_config(&[ca.der()], &[b"http/1.1"], tls13(), None);
    let mut stream = connect(proxy.addr, "localhost", &config).expect("handshake");
    assert_eq!(get(&mut stream, "/").expect("a response").0, 200);
    let metrics = proxy.admin_get("/metrics");
    assert!(
        metrics.contains("fig_tls_handshake_failures_total{reason=\"cleartext\"} 1"),
        "{metrics}"
    );
}

/// Certificates rotate under load: a client loop opens new connections while another keeps
/// one keep-alive connection busy; the certificate and key files are replaced (by rename, the
/// certificate first), picked up by the file watcher, then replaced again and reloaded by
/// `POST /reload` and again by SIGHUP. No request fails, the keep-alive connection lives
/// through every rotation, and new handshakes present the newest certificate.
#[test]
fn certificates_rotate_under_load_with_no_failed_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("fig test CA");
    let first = ca.leaf("first", &["localhost"], (2030, 1, 1));
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &first.cert_pem).expect("write");
    std::fs::write(&key, &first.key_pem).expect("write");
    let upstream = upstream();
    let config = write_config(
        dir.path(),
        &upstream,
        "[tls]\n[[tls.certificates]]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
    );
    let proxy = start(dir.path(), &["--config", config.to_str().expect("utf-8")]);
    let client = client_config(&[ca.der()], &[b"http/1.1"], tls13(), None);

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (new_ok, kept_ok) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let latest = Arc::new(std::sync::Mutex::new(None::<CertificateDer<'static>>));
    let addr = proxy.addr;
    let new_connections = {
        let (stop, failures, new_ok, latest, client) = (
            stop.clone(),
            failures.clone(),
            new_ok.clone(),
            latest.clone(),
            client.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let outcome = connect(addr, "localhost", &client).and_then(|mut stream| {
                    let presented = presented(&stream);
                    let (status, _, _) = get(&mut stream, "/new")?;
                    Ok((status, presented))
                });
                match outcome {
                    Ok((200, presented)) => {
                        new_ok.fetch_add(1, Ordering::SeqCst);
                        *latest.lock().expect("lock") = Some(presented);
                    }
                    Ok((status, _)) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("new connection: status {status}")),
                    Err(err) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("new connection: {err}")),
                }
            }
        })
    };
    let keep_alive = {
        let (stop, failures, kept_ok, client) = (
            stop.clone(),
            failures.clone(),
            kept_ok.clone(),
            client.clone(),
        );
        let mut stream = connect(addr, "localhost", &client).expect("the keep-alive connection");
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match get(&mut stream, "/kept") {
                    Ok((200, _, _)) => {
                        kept_ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((status, _, _)) => {
                        failures
                            .lock()
                            .expect("lock")
                            .push(format!("keep-alive: status {status}"));
                        return;
                    }
                    Err(err) => {
                        failures
                            .lock()
                            .expect("lock")
                            .push(format!("keep-alive: {err}"));
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let wait_for = |leaf: &Leaf, how: &str| {
        let deadline = Instant::now() + IN_FORCE;
        loop {
            if latest.lock().expect("lock").as_ref() == Some(&leaf.der) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "new handshakes did not present the new certificate within {IN_FORCE:?} after {how}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    std::thread::sleep(Duration::from_millis(500));

    // 1. The file watcher: the certificate first, then its key (a mismatched pair between).
    let second = ca.leaf("second", &["localhost"], (2031, 1, 1));
    replace(&cert, &second.cert_pem);
    std::thread::sleep(Duration::from_millis(30));
    replace(&key, &second.key_pem);
    wait_for(&second, "the files changed");
    let kept_before = kept_ok.load(Ordering::SeqCst);

    // 2. `POST /reload`.
    let third = ca.leaf("third", &["localhost"], (2032, 1, 1));
    replace(&key, &third.key_pem);
    replace(&cert, &third.cert_pem);
    let (status, body) = proxy.reload();
    assert_eq!(status, 200, "{body}");
    wait_for(&third, "POST /reload");

    // 3. SIGHUP.
    let fourth = ca.leaf("fourth", &["localhost"], (2033, 1, 1));
    replace(&cert, &fourth.cert_pem);
    replace(&key, &fourth.key_pem);
    proxy.proc.signal("HUP");
    wait_for(&fourth, "SIGHUP");
    std::thread::sleep(Duration::from_millis(300));

    stop.store(true, Ordering::SeqCst);
    new_connections.join().expect("the new-connection loop");
    keep_alive.join().expect("the keep-alive loop");
    let failures = failures.lock().expect("lock");
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(
        new_ok.load(Ordering::SeqCst) > 20,
        "too few new connections to tell"
    );
    assert!(
        kept_ok.load(Ordering::SeqCst) > kept_before,
        "the keep-alive connection went on after the rotations"
    );
    // The last handshake presents the newest certificate, and its expiry is the one shown.
    let stream = connect(addr, "localhost", &client).expect("handshake");
    assert!(presented(&stream) == fourth.der);
    let metrics = proxy.admin_get("/metrics");
    assert!(
        metrics.contains(&format!(
            "fig_tls_certificate_expiry_seconds{{name=\"{}\",subject=\"CN=fourth\"}} 1988150400",
            cert.display()
        )),
        "{metrics}"
    );
}

/// A certificate whose key does not match, and a file that is not PEM, are refused with the
/// file and the reason; the old certificate keeps serving.
#[test]
fn a_mismatched_pair_is_refused_and_the_old_certificate_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("fig test CA");
    let good = ca.leaf("good", &["localhost"], (2030, 1, 1));
    let other = ca.leaf("other", &["localhost"], (2031, 1, 1));
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &good.cert_pem).expect("write");
    std::fs::write(&key, &good.key_pem).expect("write");
    let upstream = upstream();
    let config = write_config(
        dir.path(),
        &upstream,
        "[tls]\n[[tls.certificates]]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
    );
    let proxy = start(dir.path(), &["--config", config.to_str().expect("utf-8")]);
    let client = client_config(&[ca.der()], &[b"http/1.1"], tls13(), None);

    // Another certificate with the old key.
    replace(&cert, &other.cert_pem);
    let (status, body) = proxy.reload();
    assert_eq!(status, 422, "{body}");
    let expected = format!(
        "{}: the private key does not match the certificate in {}",
        key.display(),
        cert.display()
    );
    assert!(body.contains(&expected), "{body}");
    assert!(
        proxy.proc.stderr_within(&expected, IN_FORCE),
        "the refusal is logged: {}",
        proxy.proc.stderr()
    );
    let mut stream = connect(proxy.addr, "localhost", &client).expect("handshake");
    assert!(presented(&stream) == good.der, "the old certificate serves");
    assert_eq!(get(&mut stream, "/").expect("a response").0, 200);

    // A key file that is not PEM at all.
    replace(&cert, &good.cert_pem);
    replace(&key, "not a key\n");
    let (status, body) = proxy.reload();
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains(&format!("{}: no private key in the file", key.display())),
        "{body}"
    );
    let stream = connect(proxy.addr, "localhost", &client).expect("handshake");
    assert!(presented(&stream) == good.der, "the old certificate serves");

    // Both mistakes of a file at once, with file:line, from `fig proxy --check`.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        format!(
            "[upstreams.monolith]\naddresses = [\"{}\"]\n\n[tls]\n[[tls.certificates]]\ncert = \"missing.pem\"\nkey = \"key.pem\"\n\n[[tls.certificates]]\ncert = \"cert.pem\"\nkey = \"key.pem\"\nnames = [\"bad name!\"]\n",
            upstream.url()
        ),
    )
    .expect("write");
    let output = fig()
        .args(["proxy", "--check", "--config"])
        .arg(&broken)
        .output()
        .expect("fig proxy --check");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = broken.display();
    assert!(
        stderr.contains(&format!(
            "{file}:6:8: cannot read {}",
            dir.path().join("missing.pem").display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:12:10: invalid SNI name `bad name!`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:10:8: {}: no private key in the file",
            key.display()
        )),
        "{stderr}"
    );
}

/// Optional mTLS: a client certificate signed by `tls.client_ca` makes its common name the
/// flag context's user (`client-cert:cn`), so a flag on for `alice` sends her to the service;
/// `bob`, and a client without a certificate, go to the monolith. A header cannot claim alice.
/// `fig route status` shows the certificate's expiry.
#[test]
fn a_client_certificate_is_the_flag_contexts_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_ca = Ca::new("fig server CA");
    let client_ca = Ca::new("fig client CA");
    let leaf = server_ca.leaf("localhost", &["localhost"], (2030, 1, 1));
    std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).expect("write");
    std::fs::write(dir.path().join("key.pem"), &leaf.key_pem).expect("write");
    std::fs::write(dir.path().join("clients.pem"), client_ca.pem()).expect("write");
    let alice = client_ca.leaf("alice", &["alice@shop.test"], (2030, 1, 1));
    let bob = client_ca.leaf("bob", &["bob@shop.test"], (2030, 1, 1));
    let stranger = Ca::new("someone else").leaf("alice", &["alice@shop.test"], (2030, 1, 1));

    let flags = dir.path().join("flags.json");
    for args in [
        &["create", "pay"][..],
        &["users", "pay", "alice"],
        &["enable", "pay"],
    ] {
        let status = fig()
            .args(["flags", "--store"])
            .arg(&flags)
            .args(args)
            .status()
            .expect("fig flags");
        assert!(status.success());
    }
    let monolith = Upstream::start(|_| Reply::Send(ok("monolith")));
    let service = Upstream::start(|_| Reply::Send(ok("service")));
    let config = write_config(
        dir.path(),
        &monolith,
        &format!(
            r#"[upstreams.payment-service]
addresses = ["{}"]

[[routes]]
name = "payments"
match = {{ prefix = "/payments" }}
service = "payment-service"
flag = "pay"

[flags]
file = "flags.json"

[context]
user_id = ["client-cert:cn", "header:x-user-id"]

[tls]
client_ca = "clients.pem"

[[tls.certificates]]
cert = "cert.pem"
key = "key.pem"
"#,
            service.url()
        ),
    );
    let proxy = start(dir.path(), &["--config", config.to_str().expect("utf-8")]);
    let roots = [server_ca.der()];
    let body_for = |client: Option<&Leaf>| {
        let config = client_config(&roots, &[b"http/1.1"], tls13(), client);
        let mut stream = connect(proxy.addr, "localhost", &config).expect("handshake");
        get(&mut stream, "/payments/1").expect("a response").2
    };
    assert_eq!(body_for(Some(&alice)), "service");
    assert_eq!(body_for(Some(&bob)), "monolith");
    assert_eq!(body_for(None), "monolith");
    // A certificate from another CA fails the handshake.
    let config = client_config(&roots, &[b"http/1.1"], tls13(), Some(&stranger));
    let refused = connect(proxy.addr, "localhost", &config)
        .and_then(|mut stream| get(&mut stream, "/payments/1"));
    assert!(refused.is_err(), "a stranger's certificate is refused");
    // Without a certificate, the header is the next source; with bob's, his name wins.
    let config = client_config(&roots, &[b"http/1.1"], tls13(), Some(&bob));
    let mut stream = connect(proxy.addr, "localhost", &config).expect("handshake");
    write!(
        stream,
        "GET /payments/1 HTTP/1.1\r\nHost: localhost\r\nX-User-Id: alice\r\n\r\n"
    )
    .expect("send");
    stream.flush().expect("flush");
    let mut answer = vec![0; 4096];
    let n = stream.read(&mut answer).expect("read");
    assert!(String::from_utf8_lossy(&answer[..n]).ends_with("monolith"));

    let status = fig()
        .args(["route", "--admin"])
        .arg(format!("http://{}", proxy.admin))
        .args(["--token-file"])
        .arg(dir.path().join("admin.token"))
        .arg("status")
        .output()
        .expect("fig route status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "{} for localhost (default): CN=localhost, expires 2030-01-01T00:00:00Z (in ",
            dir.path().join("cert.pem").display()
        )),
        "{text}"
    );
}

/// `fig demo --tls`: the proxy serves TLS with the certificate generated into the state dir, and
/// the `curl --cacert` line the banner prints works as printed (over HTTP/2 too).
#[test]
fn the_demo_serves_tls_and_its_curl_line_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("demo");
    let mut command = fig();
    command
        .args([
            "demo",
            "--tls",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .arg("--state-dir")
        .arg(&state_dir);
    let mut demo = Proc::spawn("fig demo", command);
    let proxy = demo.address("listening on https://");
    demo.line_after("Ctrl-C stops everything.", Duration::from_secs(60));
    let banner = demo.stdout_seen().join("\n");
    let line = banner
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("curl -i --cacert") && line.contains("/payments/7"))
        .unwrap_or_else(|| panic!("a curl --cacert line in the banner:\n{banner}"));
    let words = crate::support::shell_words(line.split("  ").next().expect("the command"));
    assert!(
        words.contains(&format!("https://{proxy}/payments/7")),
        "{line}"
    );
    for extra in [&[][..], &["--http2"]] {
        let output = std::process::Command::new(&words[0])
            .args(&words[1..])
            .args(["-sS", "--max-time", "10"])
            .args(extra)
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.starts_with("HTTP/"), "{text}");
        assert!(text.contains(" 200"), "{text}");
        assert!(text.contains("x-fig-upstream: monolith"), "{text}");
    }
    let key = state_dir.join("tls").join("key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key)
            .expect("the key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner reads the key");
    }
}
