//! Test upstreams, a proxy started on port 0, and a small HTTP client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{Config, Overrides};
use crate::decision::flags::FlagSource;
use crate::ops::runtime::Proxy;
use crate::serve::Listeners;

/// A test upstream: answers with its name and the request head it received.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) hits: Arc<AtomicUsize>,
    pub(crate) connections: Arc<AtomicUsize>,
}

impl Upstream {
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts an upstream named `name` on a free port. Paths:
/// `/slow` answers after 1.5 s, `/echo` streams the request body back, `/bytes/N` streams N
/// bytes, `/ws` upgrades and echoes raw bytes, anything else answers `name`, then
/// `method uri`, then one `header: value` line per request header.
pub(crate) async fn upstream(name: &'static str) -> Upstream {
    upstream_with(name, true).await
}

/// [`upstream`], closing every connection after one response when `keep_alive` is false.
pub(crate) async fn upstream_with(name: &'static str, keep_alive: bool) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let accepted = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    answer(name, req)
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http1().keep_alive(keep_alive);
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        hits,
        connections,
    }
}

type TestBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

async fn answer(
    name: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let boxed = |body: Full<Bytes>| body.map_err(|never| match never {}).boxed();
    if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        return Ok(Response::new(boxed(Full::from(format!("{name} slow\n")))));
    }
    if path == "/echo" {
        let body = req
            .into_body()
            .map_err(|err| Box::new(err) as Box<dyn std::error::Error + Send + Sync>);
        return Ok(Response::new(body.boxed()));
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let body = Repeat {
            remaining: n.parse().unwrap_or(0),
            chunk: Bytes::from(vec![b'x'; 64 << 10]),
        };
        return Ok(Response::new(body.boxed()));
    }
    if path == "/ws" {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .body(boxed(Full::default()))
            .unwrap();
        return Ok(response);
    }
    let mut text = format!("{name}\n{} {}\n", req.method(), req.uri());
    for (key, value) in req.headers() {
        text.push_str(&format!("{key}: {}\n", value.to_str().unwrap_or("?")));
    }
    Ok(Response::new(boxed(Full::from(text))))
}

/// A streamed body of `remaining` bytes, made chunk by chunk (never held whole).
pub(crate) struct Repeat {
    pub(crate) remaining: usize,
    pub(crate) chunk: Bytes,
}

impl hyper::body::Body for Repeat {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        let len = self.chunk.len().min(self.remaining);
        self.remaining -= len;
        std::task::Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..len)))))
    }
}

/// A proxy running in this test's runtime.
pub(crate) struct TestProxy {
    pub(crate) addr: SocketAddr,
    pub(crate) admin: SocketAddr,
    /// The handle, for tests that reload or roll back without the admin API.
    pub(crate) proxy: Proxy,
    stop: Option<oneshot::Sender<()>>,
    pub(crate) task: Option<JoinHandle<Result<(), crate::Error>>>,
}

impl TestProxy {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Signals shutdown and returns the serve task.
    pub(crate) fn shutdown(&mut self) -> JoinHandle<Result<(), crate::Error>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a proxy on `config`, with the proxy and admin listeners on port 0.
pub(crate) async fn start(config: Config, flags: Arc<dyn FlagSource>) -> TestProxy {
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = proxy_listener.local_addr().unwrap();
    let admin = admin_listener.local_addr().unwrap();
    let proxy = Proxy::new(config, flags, Overrides::default()).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let listeners = Listeners {
        tls: Vec::new(),
        proxy: vec![proxy_listener],
        admin: Some(admin_listener),
    };
    let task = tokio::spawn(proxy.clone().serve(listeners, async move {
        let _ = stopped.await;
    }));
    TestProxy {
        addr,
        admin,
        proxy,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Parses a config from TOML text; panics on a config error (the test wrote it).
pub(crate) fn config(text: &str) -> Config {
    match Config::parse(text, None, &Overrides::default()) {
        Ok(config) => config,
        Err(err) => panic!("test config does not validate: {err}"),
    }
}

/// A config file on disk, for reload and state-file tests.
pub(crate) fn config_file(dir: &std::path::Path, text: &str) -> Config {
    let path = dir.join("fig-proxy.toml");
    std::fs::write(&path, text).unwrap();
    match Config::load(&path, &Overrides::default()) {
        Ok(config) => config,
        Err(err) => panic!("test config does not validate: {err}"),
    }
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    /// The `x-fig-upstream` header.
    pub(crate) fn upstream(&self) -> &str {
        self.headers
            .get("x-fig-upstream")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of a header line the test upstream echoed.
    pub(crate) fn seen(&self, header: &str) -> Option<&str> {
        self.body
            .lines()
            .find_map(|line| line.strip_prefix(header)?.strip_prefix(": "))
    }
}

pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends a request and reads the whole answer.
pub(crate) async fn send(req: Request<Full<Bytes>>) -> Reply {
    let response = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body failed").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// GET `url` with extra headers.
pub(crate) async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = Request::get(url);
    for (key, value) in headers {
        builder = builder.header(*key, *value);
    }
    send(builder.body(Full::default()).unwrap()).await
}

/// POST to the admin API with a bearer token.
pub(crate) async fn admin_post(url: &str, token: Option<&str>) -> Reply {
    let mut builder = Request::post(url);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    send(builder.body(Full::default()).unwrap()).await
}
