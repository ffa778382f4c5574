//! Hot reload of the real `fig proxy`: by SIGHUP, by a change of the config file (written
//! atomically by rename, and in place), a bad config refused with file, line and reason while the
//! old one keeps serving, and no failed request while the proxy reloads several times.
//!
//! Each test writes a config into a temporary directory and starts the `fig` binary on it (port
//! 0, addresses read from its first stdout lines), in front of the example monolith and payment
//! service run in-process. The change every reload makes is visible from outside: route
//! `payments` appears, or moves between the service and the monolith, and `x-fig-upstream` says
//! which one answered. Every wait is bounded in time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::fig;
use crate::support::procs::Proc;
use crate::support::upstreams::Upstreams;

const TOKEN: &str = "test-admin-token";
/// How soon a reload must be in force; generous for a debug build on a busy machine.
const IN_FORCE: Duration = Duration::from_secs(10);

/// How the config file changes.
#[derive(Debug, Clone, Copy)]
enum Write {
    /// A new file renamed over the old one, as deployment tools do.
    Rename,
    /// The same file truncated and rewritten, as an editor may do.
    InPlace,
}

/// A temporary directory with a config, next to the example servers it points at.
struct Setup {
    dir: tempfile::TempDir,
    upstreams: Upstreams,
}

/// Where route `payments` sends requests in a config; `None` leaves the route out.
type PaymentsTo = Option<&'static str>;

impl Setup {
    fn new() -> Setup {
        let setup = Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            upstreams: Upstreams::start(),
        };
        std::fs::write(setup.dir.path().join("admin.token"), format!("{TOKEN}\n"))
            .expect("write the admin token");
        setup
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("fig-proxy.toml")
    }

    /// A config: the monolith, the payment service, route `payments` if asked for, the admin
    /// API, and file watching on or off (polling every 100 ms).
    fn config(&self, payments_to: PaymentsTo, watch: bool) -> String {
        let route = match payments_to {
            Some(upstream) => format!(
                "[[routes]]\nname = \"payments\"\nmatch = {{ pattern = \"/payments/**\" }}\nservice = \"{upstream}\"\nfallback = \"monolith\"\n"
            ),
            None => String::new(),
        };
        format!(
            r#"[server]
listen = "127.0.0.1:0"

[upstreams.monolith]
addresses = ["http://{monolith}"]

[upstreams.payment-service]
addresses = ["http://{service}"]

{route}
[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"

[reload]
watch = {watch}
poll_interval = "100ms"
"#,
            monolith = self.upstreams.monolith,
            service = self.upstreams.service,
        )
    }

    fn write(&self, text: &str, how: Write) {
        let path = self.config_path();
        match how {
            Write::InPlace => std::fs::write(&path, text).expect("write the config"),
            Write::Rename => {
                let staged = self.dir.path().join("fig-proxy.toml.new");
                std::fs::write(&staged, text).expect("write the new config");
                std::fs::rename(&staged, &path).expect("rename it over the config");
            }
        }
    }

    /// Starts `fig -v proxy --config FILE` (info logs, so reloads show on stderr).
    #[track_caller]
    fn start(&self) -> Proxy {
        let mut command = fig();
        command
            .arg("-v")
            .arg("proxy")
            .arg("--config")
            .arg(self.config_path())
            .env_remove("RUST_LOG");
        let mut proc = Proc::spawn("fig proxy", command);
        let addr = proc.address("listening on http://");
        let admin = proc.address("admin on http://");
        Proxy { proc, addr, admin }
    }
}

/// A running `fig proxy`, killed on drop.
struct Proxy {
    proc: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Proxy {
    /// `GET path` with a new client each time; the upstream that answered (`x-fig-upstream`).
    #[track_caller]
    fn upstream_of(&self, path: &str) -> String {
        let response = client()
            .get(format!("http://{}{path}", self.addr))
            .send()
            .unwrap_or_else(|err| panic!("GET {path} through the proxy: {err}"));
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response
            .headers()
            .get("x-fig-upstream")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    /// Waits until `GET path` is answered by `upstream`, for at most [`IN_FORCE`].
    #[track_caller]
    fn wait_for_upstream(&self, path: &str, upstream: &str) {
        let start = Instant::now();
        loop {
            let seen = self.upstream_of(path);
            if seen == upstream {
                return;
            }
            assert!(
                start.elapsed() < IN_FORCE,
                "GET {path} still answered by {seen:?}, not {upstream:?}, {IN_FORCE:?} after the reload; stderr:\n{}",
                self.proc.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the proxy's stderr holds `count` lines containing `text`.
    #[track_caller]
    fn wait_for_log(&self, text: &str, count: usize) {
        let start = Instant::now();
        while log_lines(&self.proc.stderr(), text) < count {
            assert!(
                start.elapsed() < IN_FORCE,
                "no {count} log line(s) with {text:?} within {IN_FORCE:?}; stderr:\n{}",
                self.proc.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `POST /reload` on the admin API: the status code and body.
    fn admin_reload(&self) -> (u16, String) {
        let response = client()
            .post(format!("http://{}/reload", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("POST /reload");
        let status = response.status().as_u16();
        (status, response.text().expect("a body"))
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

fn log_lines(stderr: &str, text: &str) -> usize {
    stderr.lines().filter(|line| line.contains(text)).count()
}

const RELOADED: &str = "config reloaded";
const REFUSED: &str = "config reload refused; the previous config keeps serving";

#[test]
fn sighup_reloads_a_changed_config_and_the_new_route_takes_effect() {
    let setup = Setup::new();
    // No watching: only the signal can make this reload happen.
    setup.write(&setup.config(None, false), Write::InPlace);
    let proxy = setup.start();
    assert_eq!(proxy.upstream_of("/payments/7"), "monolith");

    setup.write(&setup.config(Some("payment-service"), false), Write::Rename);
    proxy.proc.signal("HUP");
    proxy.wait_for_upstream("/payments/7", "payment-service");
    proxy.wait_for_log(RELOADED, 1);
    assert_eq!(proxy.upstream_of("/orders/1"), "monolith");
}

#[track_caller]
fn check_file_change_reloads(how: Write) {
    let setup = Setup::new();
    setup.write(&setup.config(None, true), Write::InPlace);
    let proxy = setup.start();
    assert_eq!(proxy.upstream_of("/payments/7"), "monolith");

    setup.write(&setup.config(Some("payment-service"), true), how);
    proxy.wait_for_upstream("/payments/7", "payment-service");
    proxy.wait_for_log(RELOADED, 1);
    let stderr = proxy.proc.stderr();
    assert_eq!(
        log_lines(&stderr, REFUSED),
        0,
        "a {how:?} write is never caught half done: {stderr}"
    );
}

#[test]
fn a_config_renamed_over_the_file_is_reloaded() {
    check_file_change_reloads(Write::Rename);
}

#[test]
fn a_config_rewritten_in_place_is_reloaded() {
    check_file_change_reloads(Write::InPlace);
}

/// A config whose route names an upstream that does not exist, and the 1-based line of that.
fn bad_config(setup: &Setup, watch: bool) -> (String, usize) {
    let bad = setup
        .config(Some("payment-service"), watch)
        .replace(r#"service = "payment-service""#, r#"service = "billing""#);
    let line = bad
        .lines()
        .position(|line| line.contains(r#""billing""#))
        .expect("the bad line")
        + 1;
    (bad, line)
}

/// The refusal in the log names the file, the line and the reason, exactly once.
#[track_caller]
fn check_refusal_logged_once(setup: &Setup, proxy: &Proxy, line: usize) {
    proxy.wait_for_log(REFUSED, 1);
    let stderr = proxy.proc.stderr();
    let place = format!("{}:{line}:", setup.config_path().display());
    let refusal = stderr
        .lines()
        .find(|entry| entry.contains(REFUSED))
        .unwrap_or_default();
    assert!(
        refusal.contains(&place) && refusal.contains("no upstream named `billing`"),
        "the refusal names file, line and reason: {refusal}"
    );
    assert_eq!(log_lines(&stderr, REFUSED), 1, "{stderr}");
}

#[test]
fn a_bad_config_by_sighup_is_refused_with_its_place_and_the_old_one_keeps_serving() {
    let setup = Setup::new();
    setup.write(
        &setup.config(Some("payment-service"), false),
        Write::InPlace,
    );
    let proxy = setup.start();
    assert_eq!(proxy.upstream_of("/payments/7"), "payment-service");

    let (bad, line) = bad_config(&setup, false);
    setup.write(&bad, Write::Rename);
    proxy.proc.signal("HUP");
    check_refusal_logged_once(&setup, &proxy, line);
    assert_eq!(proxy.upstream_of("/payments/7"), "payment-service");
    assert_eq!(proxy.upstream_of("/orders/1"), "monolith");
}

#[test]
fn a_bad_config_by_file_change_is_refused_once_and_the_old_one_keeps_serving() {
    let setup = Setup::new();
    setup.write(&setup.config(Some("payment-service"), true), Write::InPlace);
    let mut proxy = setup.start();
    assert_eq!(proxy.upstream_of("/payments/7"), "payment-service");

    let (bad, line) = bad_config(&setup, true);
    setup.write(&bad, Write::InPlace);
    check_refusal_logged_once(&setup, &proxy, line);

    // An admin call on the same unchanged file is answered with the error, but the log does not
    // repeat it in full; and the watcher does not try the file again.
    let (status, body) = proxy.admin_reload();
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("no upstream named `billing`"), "{body}");
    std::thread::sleep(Duration::from_millis(500));
    check_refusal_logged_once(&setup, &proxy, line);
    assert_eq!(proxy.upstream_of("/payments/7"), "payment-service");
    assert!(proxy.proc.is_running());

    // Fixed, the file is taken up by the watcher.
    setup.write(&setup.config(Some("monolith"), true), Write::InPlace);
    proxy.wait_for_upstream("/payments/7", "monolith");
}

/// The admin call refuses the file first; the watcher, seeing the same file, does not refuse and
/// log it a second time.
#[test]
fn a_bad_config_refused_by_the_admin_api_is_not_refused_again_by_the_watcher() {
    let setup = Setup::new();
    setup.write(&setup.config(Some("payment-service"), true), Write::InPlace);
    let proxy = setup.start();
    let (bad, line) = bad_config(&setup, true);
    setup.write(&bad, Write::Rename);
    let (status, body) = proxy.admin_reload();
    assert_eq!(status, 422, "{body}");
    // Several poll intervals of the watcher.
    std::thread::sleep(Duration::from_millis(800));
    check_refusal_logged_once(&setup, &proxy, line);
    assert_eq!(proxy.upstream_of("/payments/7"), "payment-service");
}

/// Counts of a client loop: requests sent and requests that failed.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    failed: AtomicU64,
}

/// Sends `GET /payments/7` in a loop until `stop` (bounded by count and time), on keep-alive
/// connections or on a new connection per request. A failure is a transport error, a status
/// other than 200, or an answer from no known upstream.
fn client_loop(addr: SocketAddr, keep_alive: bool, stop: &AtomicBool, tally: &Tally) {
    let mut builder = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10));
    if !keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    let client = builder.build().expect("an HTTP client");
    let url = format!("http://{addr}/payments/7");
    let deadline = Instant::now() + Duration::from_secs(120);
    for _ in 0..1_000_000 {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        tally.sent.fetch_add(1, Ordering::SeqCst);
        let ok = client.get(&url).send().is_ok_and(|response| {
            let served_by = response
                .headers()
                .get("x-served-by")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_owned();
            response.status().as_u16() == 200
                && matches!(served_by.as_str(), "shop" | "payment-service")
                && response.bytes().is_ok()
        });
        if !ok {
            tally.failed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn no_request_fails_while_the_proxy_reloads_several_times() {
    let setup = Setup::new();
    setup.write(&setup.config(Some("payment-service"), true), Write::InPlace);
    let proxy = setup.start();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = [true, false]
        .into_iter()
        .map(|keep_alive| {
            let (stop, tally, addr) = (stop.clone(), tally.clone(), proxy.addr);
            std::thread::spawn(move || client_loop(addr, keep_alive, &stop, &tally))
        })
        .collect();

    // Six reloads, two by each trigger, each moving route `payments` to the other side and
    // waiting until that is in force, with traffic running all along.
    let reloads = 6;
    for reload in 0..reloads {
        let upstream = if reload % 2 == 0 {
            "monolith"
        } else {
            "payment-service"
        };
        let text = setup.config(Some(upstream), true);
        match reload % 3 {
            0 => {
                setup.write(&text, Write::Rename);
                proxy.proc.signal("HUP");
            }
            1 => {
                setup.write(&text, Write::Rename);
                let (status, body) = proxy.admin_reload();
                assert_eq!(status, 200, "reload {reload}: {body}");
            }
            _ => setup.write(&text, Write::InPlace),
        }
        proxy.wait_for_upstream("/payments/7", upstream);
        // Traffic on the new config before the next reload.
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("a client thread");
    }
    let sent = tally.sent.load(Ordering::SeqCst);
    let failed = tally.failed.load(Ordering::SeqCst);
    println!("{sent} requests during {reloads} reloads, {failed} failed");
    assert_eq!(
        failed,
        0,
        "{failed} of {sent} requests failed during {reloads} reloads; stderr:\n{}",
        proxy.proc.stderr()
    );
    assert!(sent >= 100, "only {sent} requests ran during the reloads");
    assert!(log_lines(&proxy.proc.stderr(), RELOADED) >= reloads);
}
