//! The Unleash backend against a small fake server on 127.0.0.1:0 that records what it gets.
//!
//! The real-server proof is in the workspace's `tests/flags.rs`; this fake checks the protocol
//! details everywhere, without a server: the client token and SDK headers, `If-None-Match`
//! with the last ETag and a `304` that changes nothing, registration, metrics with the
//! evaluations counted, and the backup file serving a store started while the server is down.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use feature_flags::{Context, Flags, StoreConfig, UnleashConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const FEATURES: &str = r#"{"version":2,"features":[{"name":"checkout","enabled":true,"strategies":[{"name":"default"}]}]}"#;
const ETAG: &str = "\"v1\"";

#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Serves the client API from `FEATURES` with an ETag; records every request.
async fn fake_unleash() -> (u16, Arc<Mutex<Vec<Request>>>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let log = seen.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut stream).await else {
                    return;
                };
                let response = if request.header("authorization") != Some("client-token") {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                } else if request.method == "GET"
                    && request.path.starts_with("/api/client/features")
                {
                    if request.header("if-none-match") == Some(ETAG) {
                        "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n".to_owned()
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\nETag: {ETAG}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{FEATURES}",
                            FEATURES.len()
                        )
                    }
                } else {
                    "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                };
                log.lock().expect("lock").push(request);
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, seen, server)
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[header_end..]).into_owned();
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[tokio::test]
async fn polls_with_etag_registers_sends_metrics_and_keeps_a_backup() {
    let (port, seen, server) = fake_unleash().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = dir.path().join("backup.json");
    let mut config = UnleashConfig::new(format!("http://127.0.0.1:{port}/api"), "client-token");
    config.app_name = "fake-test".to_owned();
    config.project = Some("default".to_owned());
    config.refresh_interval = Duration::from_secs(1);
    config.metrics_interval = Duration::from_secs(1);
    config.backup_path = Some(backup.clone());
    let flags = Flags::open(StoreConfig::Unleash(config.clone()))
        .await
        .expect("open");
    assert!(flags.is_ready());
    let ctx = Context::default();
    for _ in 0..3 {
        assert!(flags.is_enabled("checkout", &ctx));
    }
    assert!(!flags.is_enabled("nope", &ctx));
    let revision = flags.revision();

    let requests = || seen.lock().expect("lock").clone();
    let got_all = eventually(|| {
        let requests = requests();
        let polled_with_etag = requests
            .iter()
            .any(|r| r.method == "GET" && r.header("if-none-match") == Some(ETAG));
        let registered = requests.iter().any(|r| r.path == "/api/client/register");
        let metrics = requests.iter().any(|r| r.path == "/api/client/metrics");
        polled_with_etag && registered && metrics
    })
    .await;
    let requests = requests();
    assert!(got_all, "missing requests: {requests:#?}");

    let first = &requests[0];
    assert_eq!(first.path, "/api/client/features?project=default");
    assert_eq!(first.header("unleash-appname"), Some("fake-test"));
    assert!(first.header("unleash-instanceid").is_some());
    assert!(
        first
            .header("unleash-sdk")
            .is_some_and(|sdk| sdk.starts_with("fig-feature-flags:"))
    );
    // A 304 applies nothing: the revision did not move, the flags still serve.
    assert_eq!(flags.revision(), revision);
    assert!(
        flags
            .staleness()
            .is_some_and(|age| age < Duration::from_secs(5))
    );

    let register = requests
        .iter()
        .find(|r| r.path == "/api/client/register")
        .expect("register");
    let register: serde_json::Value = serde_json::from_str(&register.body).expect("json");
    assert_eq!(register["appName"], "fake-test");
    assert_eq!(register["interval"], 1000);
    let metrics = requests
        .iter()
        .find(|r| r.path == "/api/client/metrics")
        .expect("metrics");
    let metrics: serde_json::Value = serde_json::from_str(&metrics.body).expect("json");
    assert_eq!(metrics["bucket"]["toggles"]["checkout"]["yes"], 3);
    assert_eq!(metrics["bucket"]["toggles"]["checkout"]["no"], 0);

    // The backup is the last answer, a valid flags file.
    let saved = feature_flags::load_file(&backup).expect("backup is a flags file");
    assert_eq!(saved.features[0].name, "checkout");

    // Server gone: a store started now serves the backup, and says why it is not fresh.
    server.abort();
    drop(flags);
    let restarted = Flags::open(StoreConfig::Unleash(config))
        .await
        .expect("open");
    assert!(restarted.is_ready());
    assert!(restarted.is_enabled("checkout", &ctx));
    assert!(
        restarted
            .last_error()
            .is_some_and(|e| e.contains("cannot reach Unleash"))
    );
    assert_eq!(restarted.staleness(), None);
}

#[tokio::test]
async fn a_refused_token_is_an_error_at_open() {
    let (port, _seen, _server) = fake_unleash().await;
    let config = UnleashConfig::new(format!("http://127.0.0.1:{port}"), "wrong");
    let err = Flags::open(StoreConfig::Unleash(config))
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("refused the token (HTTP 401)"),
        "{err}"
    );
}

#[tokio::test]
async fn no_server_and_no_backup_serves_nothing_but_does_not_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = UnleashConfig::new(format!("http://127.0.0.1:{port}"), "client-token");
    config.backup_path = Some(dir.path().join("none.json"));
    let flags = Flags::open(StoreConfig::Unleash(config))
        .await
        .expect("open");
    assert!(!flags.is_ready());
    assert!(!flags.is_enabled("checkout", &Context::default()));
}
