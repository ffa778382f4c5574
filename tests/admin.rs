//! Issue 15, the admin API and what the proxy trusts, against the real `fig proxy` process: a
//! browser on another site cannot call the admin API (raw TCP with the `Host` and `Origin` a
//! browser sends), a token is generated at first start and `fig route` finds it, the rollback
//! state file follows no planted symlink, a JWT that is not valid yet is not trusted, and
//! `fig proxy --check` warns when a rate limit trusts a user id that clients choose.
//!
//! The upstreams are the example monolith and payment service (tests/support/upstreams.rs); the
//! proxy and its admin API listen on loopback port 0. Every wait is bounded.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::support::fig;
use crate::support::procs::Proc;
use crate::support::upstreams::Upstreams;

/// The route under test: `/payments/**` to the payment service, no flag.
const ROUTE: &str = r#"
[[routes]]
name = "payments"
match = { pattern = "/payments/**" }
service = "payment-service"
fallback = "monolith"
"#;

/// A config directory and the example servers.
struct Setup {
    dir: tempfile::TempDir,
    upstreams: Upstreams,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            upstreams: Upstreams::start(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config_path(&self) -> PathBuf {
        self.path("fig-proxy.toml")
    }

    /// Writes the config: the two upstreams, `extra` (routes, `[context]`...), then `[admin]`
    /// on port 0 with `admin`.
    fn write_config(&self, extra: &str, admin: &str) {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[upstreams.monolith]\naddresses = [\"http://{}\"]\n\n[upstreams.payment-service]\naddresses = [\"http://{}\"]\n{extra}\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin}\n",
            self.upstreams.monolith, self.upstreams.service
        );
        std::fs::write(self.config_path(), text).expect("write the config");
    }

    #[track_caller]
    fn start(&self) -> Proxy {
        let mut command = fig();
        command.arg("proxy").arg("--config").arg(self.config_path());
        let mut proc = Proc::spawn("fig proxy", command);
        let addr = proc.address("listening on http://");
        let admin = proc.address("admin on http://");
        Proxy { proc, addr, admin }
    }
}

struct Proxy {
    proc: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Proxy {
    /// Runs `fig route --admin URL ARGS...` with no token from the environment.
    fn route(&self, args: &[&str]) -> Output {
        fig()
            .arg("route")
            .arg("--admin")
            .arg(format!("http://{}", self.admin))
            .args(args)
            .env_remove("FIG_ADMIN_TOKEN")
            .env_remove("FIG_ADMIN_TOKEN_FILE")
            .env_remove("FIG_ADMIN_URL")
            .output()
            .expect("fig route runs")
    }

    #[track_caller]
    fn route_ok(&self, args: &[&str]) -> String {
        let output = self.route(args);
        assert!(
            output.status.success(),
            "fig route {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// Sends `request` as it is over a new connection to `addr` and returns all it answered (the
/// request asks to close, so the answer ends with the connection).
#[track_caller]
fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status line and body of an admin request `METHOD PATH` with these extra header lines.
#[track_caller]
fn admin_request(admin: SocketAddr, method: &str, path: &str, headers: &str) -> (String, String) {
    let answer = raw(
        admin,
        &format!(
            "{method} {path} HTTP/1.1\r\n{headers}content-length: 0\r\nconnection: close\r\n\r\n"
        ),
    );
    let status = answer.lines().next().unwrap_or("").to_owned();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

/// The `state` of route `payments` in `GET /routes`, asked with the right `Host`.
#[track_caller]
fn payments_state(admin: SocketAddr, auth: &str) -> String {
    let (status, body) =
        admin_request(admin, "GET", "/routes", &format!("host: {admin}\r\n{auth}"));
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let routes: Value = serde_json::from_str(&body).expect("JSON");
    routes["routes"][0]["state"]
        .as_str()
        .expect("a state")
        .to_owned()
}

/// Issue 15, item 8: a POST with `Origin: http://evil.example` rolled a route back, and
/// `Host: evil.example` (DNS rebinding) was served. Both are refused now, with the reason, and
/// change nothing; the listener's own address and `localhost` on its port still work.
#[test]
fn a_browser_on_another_site_cannot_call_the_admin_api() {
    let setup = Setup::new();
    setup.write_config(ROUTE, "generate_token = false");
    let proxy = setup.start();
    let admin = proxy.admin;
    let own_host = format!("host: {admin}\r\n");

    let (status, body) = admin_request(
        admin,
        "POST",
        "/routes/payments/rollback",
        &format!("{own_host}origin: http://evil.example\r\n"),
    );
    assert_eq!(status, "HTTP/1.1 403 Forbidden", "{body}");
    assert_eq!(
        body,
        "forbidden: a page on `http://evil.example` may not call the admin API (Origin); list its host in `admin.allowed_hosts` to allow it\n"
    );
    assert_eq!(
        payments_state(admin, ""),
        "flag",
        "the refused rollback changed nothing"
    );

    let (status, body) = admin_request(
        admin,
        "POST",
        "/routes/payments/rollback",
        &format!("{own_host}sec-fetch-site: cross-site\r\n"),
    );
    assert_eq!(status, "HTTP/1.1 403 Forbidden", "{body}");
    assert_eq!(payments_state(admin, ""), "flag");

    let rebound = format!("host: evil.example:{}\r\n", admin.port());
    for path in ["/routes", "/metrics", "/healthz"] {
        let (status, body) = admin_request(admin, "GET", path, &rebound);
        assert_eq!(status, "HTTP/1.1 403 Forbidden", "GET {path}: {body}");
        assert!(
            body.starts_with(&format!(
                "forbidden: Host `evil.example:{}` is neither this admin API's address ({admin})",
                admin.port()
            )),
            "GET {path}: {body}"
        );
    }

    // What a person's tools send still works: curl on localhost, and `fig route`.
    let localhost = format!("host: localhost:{}\r\n", admin.port());
    let (status, body) = admin_request(admin, "POST", "/routes/payments/rollback", &localhost);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(payments_state(admin, ""), "pinned-to-monolith");
    assert!(
        proxy
            .route_ok(&["restore", "payments"])
            .contains("restored route `payments`")
    );
    assert_eq!(payments_state(admin, ""), "flag");
}

/// `admin.allowed_hosts` lets a name in (an SSH tunnel, an internal name), with the reason of a
/// refusal pointing at it.
#[test]
fn allowed_hosts_let_a_name_in() {
    let setup = Setup::new();
    setup.write_config(
        ROUTE,
        "generate_token = false\nallowed_hosts = [\"fig-admin.internal\"]",
    );
    let proxy = setup.start();
    let (status, body) = admin_request(
        proxy.admin,
        "GET",
        "/routes",
        "host: fig-admin.internal\r\norigin: https://fig-admin.internal\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let (status, _) = admin_request(proxy.admin, "GET", "/routes", "host: other.internal\r\n");
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("stat the token file")
        .permissions()
        .mode()
        & 0o777
}

/// Issue 15, item 8: without a configured token, the first start generates one next to the
/// config (mode 0600) and says where on stderr; the admin API asks for it; `fig route --config`
/// finds it; a restart keeps it.
#[test]
fn a_token_is_generated_at_first_start_and_fig_route_finds_it() {
    let setup = Setup::new();
    setup.write_config(ROUTE, "");
    let token_file = setup.path("fig-proxy.admin-token");
    let mut proxy = setup.start();
    let token = std::fs::read_to_string(&token_file)
        .expect("the generated token file")
        .trim()
        .to_owned();
    assert_eq!(token.len(), 64, "32 random bytes as hex: {token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token:?}");
    #[cfg(unix)]
    assert_eq!(mode(&token_file), 0o600);
    let note = format!(
        "note: the admin API's bearer token is in {}",
        token_file.display()
    );
    assert!(
        proxy.proc.stderr_within(&note, Duration::from_secs(10)),
        "stderr says where the token is: {}",
        proxy.proc.stderr()
    );

    let host = format!("host: {}\r\n", proxy.admin);
    let (status, _) = admin_request(proxy.admin, "GET", "/routes", &host);
    assert_eq!(status, "HTTP/1.1 401 Unauthorized", "no token, no answer");
    assert_eq!(
        payments_state(proxy.admin, &format!("authorization: Bearer {token}\r\n")),
        "flag"
    );
    let (status, _) = admin_request(proxy.admin, "GET", "/healthz", &host);
    assert_eq!(status, "HTTP/1.1 200 OK", "health needs no token");

    let config = setup.config_path();
    let config = config.to_str().expect("a UTF-8 path");
    let listed = proxy.route_ok(&["--config", config, "list"]);
    assert!(listed.contains("payments"), "{listed}");
    let output = proxy.route(&["list"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "without the token fig route is refused"
    );
    let output = fig()
        .arg("route")
        .arg("--admin")
        .arg(format!("http://{}", proxy.admin))
        .arg("list")
        .env("FIG_ADMIN_TOKEN_FILE", &token_file)
        .env_remove("FIG_ADMIN_TOKEN")
        .env_remove("FIG_ADMIN_URL")
        .output()
        .expect("fig route runs");
    assert!(
        output.status.success(),
        "$FIG_ADMIN_TOKEN_FILE: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A restart reuses the token: scripts and Prometheus keep working.
    proxy.proc.signal("TERM");
    assert!(proxy.proc.wait(Duration::from_secs(40)).success());
    let restarted = setup.start();
    assert_eq!(
        std::fs::read_to_string(&token_file)
            .expect("the token file")
            .trim(),
        token
    );
    assert_eq!(
        payments_state(
            restarted.admin,
            &format!("authorization: Bearer {token}\r\n")
        ),
        "flag"
    );
}

/// Issue 15 (low): the rollback state file was written through the fixed name
/// `fig-proxy.state.json.tmp`, following a symlink planted there.
#[cfg(unix)]
#[test]
fn a_rollback_follows_no_symlink_planted_next_to_the_state_file() {
    let setup = Setup::new();
    setup.write_config(ROUTE, "generate_token = false");
    let victim = setup.path("victim");
    std::fs::write(&victim, "precious\n").expect("write the victim");
    std::os::unix::fs::symlink(&victim, setup.path("fig-proxy.state.json.tmp"))
        .expect("plant a symlink");
    let proxy = setup.start();
    assert!(
        proxy
            .route_ok(&["rollback", "payments"])
            .contains("rolled back route `payments`")
    );
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "precious\n"
    );
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(setup.path("fig-proxy.state.json")).expect("the state file"),
    )
    .expect("JSON");
    assert_eq!(state["pinned"], serde_json::json!(["payments"]));
}

/// The route's `headers` matcher reaches `fig route` (issue 15: it was missing from both ends of
/// the admin API), in the table and in the JSON.
#[test]
fn fig_route_shows_a_header_matcher() {
    let setup = Setup::new();
    setup.write_config(
        &ROUTE.replace(
            r#"match = { pattern = "/payments/**" }"#,
            r#"match = { pattern = "/payments/**", headers = { "x-beta" = "1", "x-canary" = "*" } }"#,
        ),
        "generate_token = false",
    );
    let proxy = setup.start();
    let table = proxy.route_ok(&["list"]);
    assert!(
        table.contains("/payments/** x-beta=1 x-canary=*"),
        "the MATCH column names the headers:\n{table}"
    );
    let json: Value =
        serde_json::from_str(&proxy.route_ok(&["list", "--format", "json"])).expect("JSON");
    assert_eq!(
        json["routes"][0]["match"]["headers"],
        serde_json::json!({"x-beta": "1", "x-canary": "*"})
    );
}

/// An HS256 token for `sub` with `nbf`, signed with `secret`.
fn jwt(sub: &str, nbf: u64, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": sub, "nbf": nbf}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode a JWT")
}

/// The status of `GET /payments/7` through the proxy with these header lines.
fn get_status(addr: SocketAddr, headers: &str) -> String {
    let answer = raw(
        addr,
        &format!("GET /payments/7 HTTP/1.1\r\nhost: {addr}\r\n{headers}connection: close\r\n\r\n"),
    );
    answer.lines().next().unwrap_or("").to_owned()
}

/// Issue 15 (low): a JWT's `nbf` was not checked though the docs say it is. A per-user rate
/// limit of one request shows whose bucket a request takes: a token valid only in an hour is
/// not carol's, so it gets a bucket of its own (the client IP's) instead of carol's empty one.
#[test]
fn a_jwt_that_is_not_valid_yet_is_not_trusted() {
    let setup = Setup::new();
    let route = ROUTE.replace(
        "fallback = \"monolith\"",
        "fallback = \"monolith\"\nrate_limit = { rate = 1, per = \"1h\", key = \"user\" }",
    );
    setup.write_config(
        &format!("{route}\n[context]\nuser_id = [\"jwt:sub\"]\n\n[context.jwt]\nalgorithm = \"HS256\"\nsecret = \"s3cret\"\n"),
        "generate_token = false",
    );
    let proxy = setup.start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let bearer = |nbf: u64| format!("authorization: Bearer {}\r\n", jwt("carol", nbf, "s3cret"));
    assert_eq!(get_status(proxy.addr, &bearer(now - 60)), "HTTP/1.1 200 OK");
    assert_eq!(
        get_status(proxy.addr, &bearer(now - 60)),
        "HTTP/1.1 429 Too Many Requests",
        "carol's bucket is empty"
    );
    assert_eq!(
        get_status(proxy.addr, &bearer(now + 3600)),
        "HTTP/1.1 200 OK",
        "a token not valid yet is no user: the client IP's bucket"
    );
}

/// Issue 15 (low): the default user id is `X-User-Id`, which a client sets; `--check` says so
/// when a rate limit is keyed on it, and is quiet when the user id is a verified JWT claim.
#[test]
fn check_warns_when_a_rate_limit_trusts_a_user_id_clients_choose() {
    let setup = Setup::new();
    let limited = ROUTE.replace(
        "fallback = \"monolith\"",
        "fallback = \"monolith\"\nrate_limit = { rate = 10 }",
    );
    let check = |extra: &str| {
        setup.write_config(extra, "generate_token = false");
        let output = fig()
            .arg("proxy")
            .arg("--config")
            .arg(setup.config_path())
            .arg("--check")
            .output()
            .expect("fig proxy --check runs");
        assert!(output.status.success(), "the config is valid");
        String::from_utf8_lossy(&output.stderr)
            .replace(&setup.config_path().display().to_string(), "[CONFIG]")
    };
    insta::assert_snapshot!(check(&limited), @r#"warning: [CONFIG]: route `payments` rate-limits per user, but clients choose their user id (header:x-user-id in `[context] user_id`): a new id per request escapes the limit; use `key = "ip"`, a `jwt:` source with a key, or a `trusted-header:` set by a gateway in `trusted_proxies`"#);
    assert_eq!(
        check(&format!(
            "{limited}\n[context]\nuser_id = [\"jwt:sub\"]\n\n[context.jwt]\nsecret = \"s3cret\"\n"
        )),
        ""
    );
    assert_eq!(
        check(&limited.replace("rate = 10", "rate = 10, key = \"ip\"")),
        ""
    );
    assert_eq!(
        check(&format!(
            "{limited}\n[context]\nuser_id = [\"trusted-header:x-user-id\"]\ntrusted_proxies = [\"10.0.0.1\"]\n"
        )),
        ""
    );
}

/// A `trusted-header:` user id is believed only from `trusted_proxies` (a gateway that sets it):
/// from this test, which is no trusted proxy, two requests naming two users share the client
/// IP's bucket of a per-user rate limit of one.
#[test]
fn a_trusted_header_from_another_peer_is_no_user() {
    let setup = Setup::new();
    let route = ROUTE.replace(
        "fallback = \"monolith\"",
        "fallback = \"monolith\"\nrate_limit = { rate = 1, per = \"1h\", key = \"user\" }",
    );
    let context = |trusted: &str| {
        format!(
            "{route}\n[context]\nuser_id = [\"trusted-header:x-user-id\"]\ntrusted_proxies = [\"{trusted}\"]\n"
        )
    };
    setup.write_config(&context("10.0.0.1"), "generate_token = false");
    let proxy = setup.start();
    assert_eq!(
        get_status(proxy.addr, "x-user-id: alice\r\n"),
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        get_status(proxy.addr, "x-user-id: bob\r\n"),
        "HTTP/1.1 429 Too Many Requests",
        "bob is not believed: the same client IP's bucket"
    );
    drop(proxy);

    // From a trusted proxy (this test on loopback), each user has a bucket.
    setup.write_config(&context("127.0.0.1"), "generate_token = false");
    let proxy = setup.start();
    assert_eq!(
        get_status(proxy.addr, "x-user-id: alice\r\n"),
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        get_status(proxy.addr, "x-user-id: bob\r\n"),
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        get_status(proxy.addr, "x-user-id: bob\r\n"),
        "HTTP/1.1 429 Too Many Requests"
    );
}
