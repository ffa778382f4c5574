//! The shared real Unleash server of end-to-end tests, and a TCP forwarder to it that a test can
//! take down and bring back.
//!
//! The server is found through `UNLEASH_URL`, `UNLEASH_CLIENT_TOKEN` and `UNLEASH_ADMIN_TOKEN`
//! (`eval "$(../shared/tools/unleash-dev.sh env)"`; `.ci/run` exports them). A test that needs
//! it is marked `#[ignore = "needs a real Unleash server: ..."]` (issue 17, item 7): a plain
//! `cargo test` lists it as `ignored` with that reason in its summary, instead of a pass that
//! tested nothing, and `cargo test -- --ignored` (or `--include-ignored`) runs it, failing if
//! the variables are not set. CI runs the ignored tests on a real server, so it cannot pass
//! without one. [`every_test_that_needs_unleash_is_ignored_by_default`] keeps the marks honest.
//!
//! The server is shared: tests use flag names of their own ([`unique_name`]), archive them when
//! done ([`DeleteOnDrop`]), and simulate an outage with a [`Forwarder`], never by stopping the
//! server.

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

/// The server's coordinates; fails the test, saying what to set, when they are missing (the
/// test is `#[ignore]`d, so it runs only when asked for).
#[track_caller]
pub fn unleash_env(test: &str) -> UnleashEnv {
    let var = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    match (
        var("UNLEASH_URL"),
        var("UNLEASH_CLIENT_TOKEN"),
        var("UNLEASH_ADMIN_TOKEN"),
    ) {
        (Some(url), Some(client_token), Some(admin_token)) => UnleashEnv {
            url,
            client_token,
            admin_token,
        },
        _ => panic!(
            "{test} needs a real Unleash server, but UNLEASH_URL, UNLEASH_CLIENT_TOKEN and \
             UNLEASH_ADMIN_TOKEN are not all set (eval \"$(../shared/tools/unleash-dev.sh env)\" \
             after unleash-dev.sh start)"
        ),
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

/// The tests that call [`unleash_env`], by `module::name`, read from the sources.
fn tests_that_need_unleash() -> Vec<(String, bool)> {
    let root = crate::support::workspace_root().join("tests");
    let mut found = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&root)
        .expect("read tests/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    entries.sort();
    for path in entries {
        let module = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_owned();
        let source = std::fs::read_to_string(&path).expect("read a test module");
        let mut attributes: Vec<&str> = Vec::new();
        let mut current: Option<(String, bool)> = None;
        for line in source.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("#[") {
                attributes.push(trimmed);
                continue;
            }
            if let Some(rest) = trimmed
                .strip_prefix("async fn ")
                .or_else(|| trimmed.strip_prefix("fn "))
                && attributes.iter().any(|attr| attr.contains("test"))
            {
                let name = rest.split('(').next().unwrap_or_default();
                let ignored = attributes
                    .iter()
                    .any(|attr| attr.starts_with("#[ignore = \"needs a real Unleash server"));
                current = Some((format!("{module}::{name}"), ignored));
            } else if trimmed.starts_with("fn ") || trimmed.starts_with("async fn ") {
                current = None;
            }
            if !trimmed.starts_with("///") && !trimmed.is_empty() {
                attributes.clear();
            }
            if trimmed.contains("unleash_env(")
                && let Some(test) = current.take()
            {
                found.push(test);
            }
        }
    }
    found
}

/// Issue 17, item 7: a test that needs Unleash is `ignored` in a plain run, listed as such by
/// the test binary, and fails (not passes) when run without the server's variables.
#[test]
fn every_test_that_needs_unleash_is_ignored_by_default() {
    let tests = tests_that_need_unleash();
    assert!(tests.len() >= 7, "the Unleash tests were found: {tests:?}");
    let unmarked: Vec<&String> = tests
        .iter()
        .filter(|(_, ignored)| !ignored)
        .map(|(name, _)| name)
        .collect();
    assert!(
        unmarked.is_empty(),
        "these tests need a real Unleash but are not `#[ignore = \"needs a real Unleash server: ...\"]`: {unmarked:?}"
    );

    // What libtest itself says: listed among the ignored tests.
    let this = std::env::current_exe().expect("the test binary");
    let listed = std::process::Command::new(&this)
        .args(["--list", "--ignored"])
        .output()
        .expect("the test binary lists its tests");
    let listed = String::from_utf8_lossy(&listed.stdout);
    for (name, _) in &tests {
        assert!(
            listed.contains(&format!("{name}: test")),
            "`{name}` is not listed as ignored:\n{listed}"
        );
    }

    // Asked for without a server, it fails and says what is missing.
    let (name, _) = tests
        .iter()
        .find(|(name, _)| name == "flags::unleash_mistakes_exit_2_and_write_nothing")
        .expect("a quick Unleash test");
    let mut run = std::process::Command::new(&this);
    run.args(["--ignored", "--exact", name]);
    for key in ["UNLEASH_URL", "UNLEASH_CLIENT_TOKEN", "UNLEASH_ADMIN_TOKEN"] {
        run.env_remove(key);
    }
    let output = run.output().expect("the test binary runs one test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "it passed without a server:\n{stdout}"
    );
    assert!(
        stdout.contains("needs a real Unleash server, but UNLEASH_URL"),
        "{stdout}"
    );
}
