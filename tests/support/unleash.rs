//! The shared real Unleash server of end-to-end tests, and a TCP forwarder to it that a test can
//! take down and bring back.
//!
//! The server is found through `UNLEASH_URL`, `UNLEASH_CLIENT_TOKEN` and `UNLEASH_ADMIN_TOKEN`
//! (`eval "$(../shared/tools/unleash-dev.sh env)"`; `.ci/run` exports them). Without them a test
//! says loudly that it is skipped and passes, unless `FIG_REQUIRE_UNLEASH=1` (set by CI), which
//! makes it fail. The server is shared: tests use flag names of their own ([`unique_name`]),
//! archive them when done ([`DeleteOnDrop`]), and simulate an outage with a [`Forwarder`],
//! never by stopping the server.

use std::net::SocketAddr;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::fig;

/// Where the shared server is, and its tokens.
pub struct UnleashEnv {
    /// Base URL, such as `http://127.0.0.1:4242`.
    pub url: String,
    /// A client (backend) token.
    pub client_token: String,
    /// An admin token.
    pub admin_token: String,
}

/// The server's coordinates, or `None` (after saying so on stderr) when the test must be
/// skipped. Fails the test instead when `FIG_REQUIRE_UNLEASH=1`.
#[track_caller]
pub fn unleash_env(test: &str) -> Option<UnleashEnv> {
    let var = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    match (
        var("UNLEASH_URL"),
        var("UNLEASH_CLIENT_TOKEN"),
        var("UNLEASH_ADMIN_TOKEN"),
    ) {
        (Some(url), Some(client_token), Some(admin_token)) => Some(UnleashEnv {
            url,
            client_token,
            admin_token,
        }),
        _ => {
            let why = "UNLEASH_URL, UNLEASH_CLIENT_TOKEN and UNLEASH_ADMIN_TOKEN are not all set \
                       (eval \"$(../shared/tools/unleash-dev.sh env)\" after unleash-dev.sh start)";
            assert!(
                std::env::var("FIG_REQUIRE_UNLEASH").as_deref() != Ok("1"),
                "{test}: FIG_REQUIRE_UNLEASH=1 but {why}"
            );
            eprintln!("\n*** SKIPPED {test}: {why} ***\n");
            None
        }
    }
}

/// A flag name no earlier run used: the server's database outlives test runs, and archived
/// flags keep their names taken.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

impl UnleashEnv {
    /// Runs `fig flags --unleash URL ARGS...` with the tokens from the environment, as a
    /// person who exported them would.
    pub fn flags(&self, args: &[&str]) -> Output {
        fig()
            .arg("flags")
            .args(["--unleash", &self.url])
            .env("UNLEASH_CLIENT_TOKEN", &self.client_token)
            .env("UNLEASH_ADMIN_TOKEN", &self.admin_token)
            .args(args)
            .output()
            .expect("fig flags runs")
    }

    /// Like [`UnleashEnv::flags`], for a command that must succeed; returns its stdout.
    #[track_caller]
    pub fn flags_ok(&self, args: &[&str]) -> String {
        let output = self.flags(args);
        assert!(
            output.status.success(),
            "fig flags {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `host:port` of the server, for a forwarder.
    pub fn host_port(&self) -> String {
        let rest = self.url.split("://").nth(1).unwrap_or(&self.url);
        rest.split('/').next().unwrap_or(rest).to_owned()
    }
}

/// Archives a flag on the server when the test ends, passed or failed.
pub struct DeleteOnDrop<'a> {
    /// The server.
    pub env: &'a UnleashEnv,
    /// The flag.
    pub name: String,
}

impl Drop for DeleteOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.env.flags(&["delete", &self.name]);
    }
}

/// A TCP forwarder on a loopback port to a target, on a runtime of its own. [`Forwarder::stop`]
/// takes the server away for whoever goes through it: open connections are cut, and new ones
/// are closed as soon as they are accepted, until [`Forwarder::start_again`]. The port stays
/// the forwarder's all along, so no other process can take it in between. It works from plain
/// and from async tests alike: it never blocks on its runtime.
pub struct Forwarder {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Forwarder {
    /// Starts forwarding from `127.0.0.1:0` to `target` (`host:port`).
    pub fn start(target: &str) -> Forwarder {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the forwarder");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the forwarder");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the forwarder's address");
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let target = target.to_owned();
        let accept = {
            let (up, connections) = (up.clone(), connections.clone());
            runtime.spawn(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // The server is away: the connection is closed at once.
                        drop(inbound);
                        continue;
                    }
                    let target = target.clone();
                    let connection = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(&target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(connection);
                }
            })
        };
        Forwarder {
            addr,
            up,
            connections,
            accept,
            runtime: Some(runtime),
        }
    }

    /// The forwarder as an HTTP base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Takes the server away: open connections are cut, new ones closed at once.
    pub fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        let connections: Vec<_> = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        for connection in &connections {
            connection.abort();
        }
        // An aborted task drops its sockets when its runtime next polls it: wait for that, so
        // that nothing gets through once `stop` has returned.
        let deadline = Instant::now() + Duration::from_secs(2);
        while connections.iter().any(|task| !task.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Brings the server back: new connections are forwarded again.
    pub fn start_again(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop();
        self.accept.abort();
        if let Some(runtime) = self.runtime.take() {
            // Not `shutdown_timeout`: that blocks, which an async test may not do.
            runtime.shutdown_background();
        }
    }
}
