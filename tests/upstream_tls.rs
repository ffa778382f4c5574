//! https upstreams (issue 16): `fig proxy` in front of https servers in the test process
//! (tests/support/tls.rs, certificates from rcgen). Verification against a CA file, refusals of
//! expired, wrong-host and self-signed certificates (502, the reason in the proxy's log), SNI,
//! upstream mTLS, `insecure_skip_verify` and its warning, connection reuse, shadow traffic and
//! health checks over TLS, and the config's mistakes with their places.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::fig;
use crate::support::procs::Proc;
use crate::support::tls::{Pki, TlsServer, self_signed};
use crate::support::wire::{Client, Wire};

/// A running `fig proxy`, its config in a temporary directory.
struct Proxy {
    _dir: tempfile::TempDir,
    proc: Proc,
    addr: SocketAddr,
}

impl Proxy {
    /// `fig proxy` with `config` (TOML, after a `[server]` and `[admin]` of its own) and `args`.
    fn start(config: &str, args: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fig-proxy.toml");
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"off\"\n\n[reload]\nwatch = false\n\n{config}\n"
        );
        std::fs::write(&path, text).expect("write the config");
        let mut command = fig();
        command.arg("proxy").arg("--config").arg(&path).args(args);
        let mut proc = Proc::spawn("fig proxy", command);
        let addr = proc.address("listening on http://");
        Proxy {
            _dir: dir,
            proc,
            addr,
        }
    }

    /// `GET path` on a new connection.
    fn get(&self, path: &str) -> Wire {
        let mut client = Client::connect(self.addr);
        client.send(format!("GET {path} HTTP/1.1\r\nhost: shop.test\r\n\r\n").as_bytes());
        client.response("GET")
    }
}

/// Waits (bounded) until `done` holds.
fn within(wait: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn toml_path(path: &Path) -> String {
    path.display().to_string().replace('\\', "\\\\")
}

/// `--monolith https://...` with `--upstream-ca`: the certificate is checked against the CA
/// file, and twenty requests, on twenty client connections, share one TLS connection.
#[test]
fn an_https_monolith_is_verified_against_the_ca_file_and_its_connection_reused() {
    let pki = Pki::new();
    let server = TlsServer::start("monolith", &pki.server(&["127.0.0.1"], false), None);
    let ca = pki.ca_file();
    let mut command = fig();
    command.args([
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--admin-token-file",
    ]);
    let token = pki.dir().join("admin.token");
    std::fs::write(&token, "secret-token").expect("token");
    command
        .arg(&token)
        .arg("--monolith")
        .arg(server.url())
        .arg("--upstream-ca")
        .arg(&ca);
    let mut proc = Proc::spawn("fig proxy", command);
    let addr = proc.address("listening on http://");
    for n in 0..20 {
        let mut client = Client::connect(addr);
        client.send(format!("GET /orders/{n} HTTP/1.1\r\nhost: shop.test\r\n\r\n").as_bytes());
        let response = client.response("GET");
        assert_eq!(response.status(), 200, "{}", proc.stderr());
        assert_eq!(response.text(), format!("monolith /orders/{n}"));
    }
    assert_eq!(
        server.accepted(),
        1,
        "twenty sequential requests reuse one pooled TLS connection"
    );
    assert!(
        server
            .seen()
            .iter()
            .all(|seen| seen.version == http::Version::HTTP_11)
    );
}

/// An expired certificate, one for another host and a self-signed one are refused: the client
/// gets a 502, the upstream no request, and the proxy's log says why.
#[test]
fn untrusted_upstream_certificates_are_refused_with_the_reason_logged() {
    let pki = Pki::new();
    let expired = TlsServer::start("expired", &pki.server(&["127.0.0.1"], true), None);
    let wrong_host = TlsServer::start("wrong", &pki.server(&["other.test"], false), None);
    let unknown = TlsServer::start("unknown", &self_signed(&["127.0.0.1"]), None);
    let ca = toml_path(&pki.ca_file());
    let mut config = String::new();
    for (name, server) in [
        ("expired", &expired),
        ("wrong", &wrong_host),
        ("unknown", &unknown),
    ] {
        config.push_str(&format!(
            "[upstreams.{name}]\naddresses = [\"{}\"]\ntls = {{ ca = \"{ca}\" }}\n\n\
             [[routes]]\nname = \"{name}\"\nmatch = {{ prefix = \"/{name}\" }}\nservice = \"{name}\"\nfallback = \"{name}\"\nretry = {{ enabled = false }}\n\n",
            server.url()
        ));
    }
    config.push_str(&format!(
        "[upstreams.monolith]\naddresses = [\"{}\"]\ntls = {{ ca = \"{ca}\" }}\n",
        expired.url()
    ));
    let proxy = Proxy::start(&config, &[]);
    for (path, reason) in [
        ("/expired", "certificate expired"),
        ("/wrong", "certificate not valid for name \"127.0.0.1\""),
        ("/unknown", "UnknownIssuer"),
    ] {
        let response = proxy.get(path);
        assert_eq!(response.status(), 502, "{path}");
        assert!(
            proxy.proc.stderr_within(reason, Duration::from_secs(10)),
            "{path}: the log names `{reason}`:\n{}",
            proxy.proc.stderr()
        );
    }
    assert!(
        proxy
            .proc
            .stderr()
            .contains("TLS handshake with the upstream failed")
    );
    for server in [&expired, &wrong_host, &unknown] {
        assert_eq!(server.accepted(), 0);
        assert!(server.seen().is_empty());
    }
}

/// `server_name` is sent as SNI and is the name verified, whatever the address says.
#[test]
fn server_name_is_the_sni_and_the_name_checked() {
    let pki = Pki::new();
    let server = TlsServer::start("payments", &pki.server(&["payments.internal"], false), None);
    let config = format!(
        "[upstreams.monolith]\naddresses = [\"{}\"]\n\n[upstreams.monolith.tls]\nca = \"{}\"\nserver_name = \"payments.internal\"\n",
        server.url(),
        toml_path(&pki.ca_file())
    );
    let proxy = Proxy::start(&config, &[]);
    let response = proxy.get("/pay");
    assert_eq!(response.status(), 200, "{}", proxy.proc.stderr());
    assert_eq!(response.text(), "payments /pay");
    assert_eq!(server.seen()[0].sni.as_deref(), Some("payments.internal"));
}

/// Upstream mTLS: an upstream that requires a client certificate gets the configured one; the
/// same server reached without it refuses the proxy, and the client gets a 502.
#[test]
fn upstream_mtls_presents_the_client_certificate() {
    let pki = Pki::new();
    let (cert, key) = pki.client("fig-proxy");
    let server = TlsServer::start(
        "payments",
        &pki.server(&["127.0.0.1"], false),
        Some(&pki.ca_file()),
    );
    let ca = toml_path(&pki.ca_file());
    let config = format!(
        "[upstreams.monolith]\naddresses = [\"{url}\"]\n\n[upstreams.monolith.tls]\nca = \"{ca}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n\n\
         [upstreams.anonymous]\naddresses = [\"{url}\"]\ntls = {{ ca = \"{ca}\" }}\n\n\
         [[routes]]\nname = \"anonymous\"\nmatch = {{ prefix = \"/anonymous\" }}\nservice = \"anonymous\"\nfallback = \"anonymous\"\n",
        toml_path(&cert),
        toml_path(&key),
        url = server.url()
    );
    let proxy = Proxy::start(&config, &[]);
    let response = proxy.get("/orders");
    assert_eq!(response.status(), 200, "{}", proxy.proc.stderr());
    assert_eq!(response.text(), "payments /orders");
    assert!(server.seen()[0].client_cert);
    let refused = proxy.get("/anonymous");
    assert_eq!(refused.status(), 502);
    assert_eq!(server.seen().len(), 1, "no request without a certificate");
}

/// `insecure_skip_verify = true` reaches a self-signed upstream, and each start says so.
#[test]
fn insecure_skip_verify_works_and_warns_at_every_start() {
    let server = TlsServer::start("monolith", &self_signed(&["somewhere.test"]), None);
    let config = format!(
        "[upstreams.monolith]\naddresses = [\"{}\"]\ntls = {{ insecure_skip_verify = true }}\n",
        server.url()
    );
    for _ in 0..2 {
        let proxy = Proxy::start(&config, &[]);
        assert!(
            proxy.proc.stderr_within(
                "upstream `monolith` has `insecure_skip_verify = true`",
                Duration::from_secs(10)
            ),
            "{}",
            proxy.proc.stderr()
        );
        let response = proxy.get("/anything");
        assert_eq!(response.status(), 200, "{}", proxy.proc.stderr());
        assert_eq!(response.text(), "monolith /anything");
    }
}

/// Health checks and shadow copies reach an https upstream, verified like requests.
#[test]
fn health_checks_and_shadow_traffic_reach_https_upstreams() {
    let pki = Pki::new();
    let monolith = TlsServer::start("monolith", &pki.server(&["127.0.0.1"], false), None);
    let service = TlsServer::start("service", &pki.server(&["127.0.0.1"], false), None);
    let ca = toml_path(&pki.ca_file());
    let config = format!(
        "[upstreams.monolith]\naddresses = [\"{}\"]\ntls = {{ ca = \"{ca}\" }}\n\
         health_check = {{ path = \"/healthz\", interval = \"200ms\", timeout = \"2s\" }}\n\n\
         [upstreams.service]\naddresses = [\"{}\"]\ntls = {{ ca = \"{ca}\" }}\n\n\
         [[routes]]\nname = \"orders\"\nmatch = {{ prefix = \"/orders\" }}\nservice = \"monolith\"\nfallback = \"monolith\"\n\
         shadow = {{ percent = 100, target = \"service\" }}\n",
        monolith.url(),
        service.url()
    );
    let proxy = Proxy::start(&config, &[]);
    assert!(
        within(Duration::from_secs(10), || monolith
            .seen()
            .iter()
            .filter(|seen| seen.path == "/healthz")
            .count()
            >= 2),
        "health checks over TLS: {}",
        proxy.proc.stderr()
    );
    let response = proxy.get("/orders/7");
    assert_eq!(response.status(), 200, "{}", proxy.proc.stderr());
    assert_eq!(response.text(), "monolith /orders/7");
    assert!(
        within(Duration::from_secs(10), || service
            .seen()
            .iter()
            .any(|seen| seen.path == "/orders/7")),
        "the shadow copy over TLS: {}",
        proxy.proc.stderr()
    );
}

/// The TLS settings' mistakes are config mistakes: every one, with its place, and exit 2.
#[test]
fn tls_mistakes_are_reported_with_their_places() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fig-proxy.toml");
    let config = "[server]\nlisten = \"127.0.0.1:0\"\n\n\
        [upstreams.monolith]\naddresses = [\"https://127.0.0.1:9443\"]\n\n\
        [upstreams.monolith.tls]\nca = \"missing-ca.pem\"\nclient_cert = \"client.pem\"\nserver_name = \"not a name\"\n\n\
        [upstreams.plain]\naddresses = [\"http://127.0.0.1:9000\"]\ntls = { insecure_skip_verify = true }\n\n\
        [upstreams.mixed]\naddresses = [\"http://127.0.0.1:9000\", \"https://127.0.0.1:9443\"]\n";
    std::fs::write(&path, config).expect("write the config");
    let output = fig()
        .arg("proxy")
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .expect("fig proxy --check runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = path.display();
    for expected in [
        format!(
            "{file}:8:6: cannot read certificates from {}",
            dir.path().join("missing-ca.pem").display()
        ),
        format!("{file}:9:15: `client_cert` and `client_key` go together; give both"),
        format!("{file}:10:15: `not a name` is not a DNS name or an IP address"),
        format!("{file}:14:7: upstream `plain` has a [tls] table but no https:// address"),
        format!("{file}:17:13: upstream `mixed` mixes http:// and https:// addresses"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

/// A GET whose https service fails its handshake goes once to the route's fallback, with its
/// whole head: hyper's client must not have taken the head with the failed attempt.
#[test]
fn a_failed_https_service_falls_back_with_the_whole_request() {
    let pki = Pki::new();
    let expired = TlsServer::start("service", &pki.server(&["127.0.0.1"], true), None);
    let monolith = TlsServer::start("monolith", &pki.server(&["127.0.0.1"], false), None);
    let ca = toml_path(&pki.ca_file());
    let config = format!(
        "[upstreams.monolith]\naddresses = [\"{}\"]\ntls = {{ ca = \"{ca}\" }}\n\n\
         [upstreams.service]\naddresses = [\"{}\"]\ntls = {{ ca = \"{ca}\" }}\n\n\
         [[routes]]\nname = \"orders\"\nmatch = {{ prefix = \"/orders\" }}\nservice = \"service\"\n",
        monolith.url(),
        expired.url()
    );
    let proxy = Proxy::start(&config, &[]);
    let response = proxy.get("/orders/7?expand=items");
    assert_eq!(response.status(), 200, "{}", proxy.proc.stderr());
    assert_eq!(response.text(), "monolith /orders/7");
    assert_eq!(response.header("x-fig-upstream"), Some("monolith"));
}

/// `protocol = "h2"` over TLS: HTTP/2 is agreed over ALPN, and requests from many client
/// connections at once share the one multiplexed connection.
#[test]
fn h2_over_alpn_multiplexes_one_connection() {
    let pki = Pki::new();
    let server = TlsServer::start("monolith", &pki.server(&["127.0.0.1"], false), None);
    let config = format!(
        "[upstreams.monolith]\naddresses = [\"{}\"]\nprotocol = \"h2\"\ntls = {{ ca = \"{}\" }}\n",
        server.url(),
        toml_path(&pki.ca_file())
    );
    let proxy = Proxy::start(&config, &[]);
    let first = proxy.get("/first");
    assert_eq!(first.status(), 200, "{}", proxy.proc.stderr());
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let addr = proxy.addr;
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for round in 0..5 {
                    client.send(
                        format!("GET /{n}/{round} HTTP/1.1\r\nhost: shop.test\r\n\r\n").as_bytes(),
                    );
                    let response = client.response("GET");
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.text(), format!("monolith /{n}/{round}"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("client thread");
    }
    assert_eq!(server.seen().len(), 41);
    assert!(
        server
            .seen()
            .iter()
            .all(|seen| seen.version == http::Version::HTTP_2)
    );
    assert_eq!(server.accepted(), 1, "one multiplexed connection");
}
