//! Upstreams that misbehave on demand, for the resilience tests (and anyone else's).
//!
//! A [`Faulty`] server listens on `127.0.0.1:0` in a runtime of its own and answers every path
//! according to its [`Mode`], which a test can change while it runs: `Healthy` answers 200 with
//! `x-served-by: NAME` and the body `NAME METHOD PATH`, `Error` answers 500 (also with
//! `x-served-by`), `Slow` waits before answering like `Healthy`. It counts the requests it got,
//! by method. A port where nothing listens is `upstreams::closed_port()`. Dropping the server
//! stops it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use tokio::sync::watch;

/// How a [`Faulty`] server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 at once.
    Healthy,
    /// 500 at once.
    Error,
    /// 200 after this delay.
    Slow(Duration),
}

/// A misbehaving upstream, running until dropped.
pub struct Faulty {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

struct Shared {
    name: &'static str,
    /// 0 healthy, 1 error, 2 slow.
    mode: AtomicU8,
    delay_ms: AtomicU64,
    hits: AtomicUsize,
    methods: Mutex<Vec<String>>,
}

#[allow(dead_code)]
impl Faulty {
    /// Starts a server named `name` (its `x-served-by`) in `mode`.
    pub fn start(name: &'static str, mode: Mode) -> Faulty {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for a faulty server");
        let shared = Arc::new(Shared {
            name,
            mode: AtomicU8::new(0),
            delay_ms: AtomicU64::new(0),
            hits: AtomicUsize::new(0),
            methods: Mutex::new(Vec::new()),
        });
        let (stop, mut stopped) = watch::channel(false);
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let addr = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a faulty server");
            let addr = listener.local_addr().expect("its address");
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await;
            });
            addr
        });
        let server = Faulty {
            addr,
            shared,
            stop,
            runtime: Some(runtime),
        };
        server.set(mode);
        server
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes how it answers from the next request on.
    pub fn set(&self, mode: Mode) {
        let (code, delay) = match mode {
            Mode::Healthy => (0, Duration::ZERO),
            Mode::Error => (1, Duration::ZERO),
            Mode::Slow(delay) => (2, delay),
        };
        self.shared.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        self.shared.mode.store(code, Ordering::SeqCst);
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Requests received so far with this method.
    pub fn hits_of(&self, method: &str) -> usize {
        self.shared
            .methods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|m| m.as_str() == method)
            .count()
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    shared
        .methods
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request.method().to_string());
    let text = format!(
        "{} {} {}",
        shared.name,
        request.method(),
        request.uri().path()
    );
    let status = match shared.mode.load(Ordering::SeqCst) {
        1 => StatusCode::INTERNAL_SERVER_ERROR,
        2 => {
            let delay = shared.delay_ms.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            StatusCode::OK
        }
        _ => StatusCode::OK,
    };
    let mut response = (status, text).into_response();
    response
        .headers_mut()
        .insert("x-served-by", HeaderValue::from_static(shared.name));
    response
}
