//! `fig demo`: the example system in one command, to try a strangler migration in five minutes.
//!
//! It starts, in this one process, the example monolith (`shop`) and the extracted payment
//! service (`payment-service`) on free loopback ports, and the strangler proxy in front of them on
//! `--listen`, with its admin API on `--admin`. It writes into `--state-dir` (default `./fig-demo`,
//! created if missing) the three files a real deployment has:
//!
//! - `fig-proxy.toml`: route `payments` (`/payments/**`) goes to `payment-service` when flag
//!   `payments-service` is on, else to `monolith`; everything else goes to `monolith`,
//! - `flags.json`: the embedded flag store, with `payments-service` off,
//! - `admin.token`: a fresh random bearer token for the admin API (mode 0600).
//!
//! Each start begins from scratch: the flag is off and no route is rolled back. The first two
//! stdout lines are the proxy's addresses, as with `fig proxy` (`listening on http://ADDR`, then
//! `admin on http://ADDR`); then comes what was started and the commands to try. Ctrl-C or SIGTERM
//! drains the proxy and stops everything.
//!
//! The example servers run in-process, from their libraries, rather than as child processes:
//! `cargo run -- demo` then works without building the example binaries first, and there is no
//! child to leave behind if the demo is killed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use feature_flags::{FileConfig, FileStore, Flags, StoreConfig};
use strangler_proxy::{Config, Listeners, Overrides, Proxy};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The route, flag and upstream names of the demo, as the issue and the guides use them.
const ROUTE: &str = "payments";
const FLAG: &str = "payments-service";
const SERVICE: &str = "payment-service";
const MONOLITH: &str = "monolith";

/// How long the example servers get to finish requests after the proxy has drained.
const UPSTREAM_DRAIN: Duration = Duration::from_secs(5);

/// Arguments of `fig demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the proxy listens (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Where the proxy's admin API listens (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8001")]
    pub admin: SocketAddr,
    /// Directory for fig-proxy.toml, flags.json and admin.token; created if missing, and its
    /// files are rewritten on every start.
    #[arg(long, value_name = "DIR", default_value = "fig-demo")]
    pub state_dir: PathBuf,
}

/// Runs `fig demo`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            args.state_dir.display()
        )
    })?;
    let state_dir = std::fs::canonicalize(&args.state_dir)
        .with_context(|| format!("cannot resolve {}", args.state_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(demo(&args, &state_dir))?;
    Ok(ExitCode::SUCCESS)
}

/// The files of a demo's state directory.
struct Files {
    config: PathBuf,
    flags: PathBuf,
    token: PathBuf,
    state: PathBuf,
}

impl Files {
    fn new(dir: &Path) -> Files {
        let config = dir.join("fig-proxy.toml");
        Files {
            state: Config::default_state_file(&config),
            config,
            flags: dir.join("flags.json"),
            token: dir.join("admin.token"),
        }
    }
}

/// Where each part of the demo listens.
struct Addresses {
    proxy: SocketAddr,
    admin: SocketAddr,
    monolith: SocketAddr,
    service: SocketAddr,
}

async fn demo(args: &Args, state_dir: &Path) -> anyhow::Result<()> {
    // Signal handlers go in before anything is printed, so that a script that starts the demo
    // and stops it at once gets a clean stop, not the default action of the signal.
    let stop = shutdown_signal().context("cannot install the Ctrl-C and SIGTERM handlers")?;

    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} for the {what}; is another demo running? pick another address with --{}",
                if what == "proxy" { "listen" } else { "admin" })
        })
    };
    let proxy_listener = bind(args.listen, "proxy").await?;
    let admin_listener = bind(args.admin, "admin API").await?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let monolith_listener = TcpListener::bind(loopback)
        .await
        .context("cannot listen on a loopback port for the monolith")?;
    let service_listener = TcpListener::bind(loopback)
        .await
        .context("cannot listen on a loopback port for the payment service")?;
    let addresses = Addresses {
        proxy: proxy_listener.local_addr()?,
        admin: admin_listener.local_addr()?,
        monolith: monolith_listener.local_addr()?,
        service: service_listener.local_addr()?,
    };

    let files = Files::new(state_dir);
    write_state_dir(&files, &addresses)?;
    let config = Config::load(&files.config, &Overrides::default())?;
    let flags = Flags::open(StoreConfig::File(FileConfig::new(&files.flags)))
        .await
        .with_context(|| format!("cannot open the flag store {}", files.flags.display()))?;
    let proxy = Proxy::new(config, Arc::new(flags), Overrides::default())?;

    let (stop_upstreams, upstreams_stopped) = watch::channel(false);
    let until_stopped = |mut receiver: watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };
    let monolith = tokio::spawn(shop::http::serve(
        monolith_listener,
        shop::Shop::seeded(),
        until_stopped(upstreams_stopped.clone()),
    ));
    let service = tokio::spawn(payment_service::serve(
        service_listener,
        payment_service::PaymentBook::seeded(),
        until_stopped(upstreams_stopped),
    ));

    let mut stdout = std::io::stdout().lock();
    // Nobody reading stdout is no reason to stop the demo, hence the ignored results.
    let _ = stdout.write_all(banner(&addresses, &files, state_dir).as_bytes());
    let _ = stdout.flush();
    drop(stdout);

    let listeners = Listeners {
        proxy: vec![proxy_listener],
        admin: Some(admin_listener),
    };
    let served = proxy.serve(listeners, stop).await;
    // The proxy has drained: no request is on its way to the example servers any more.
    let _ = stop_upstreams.send(true);
    for (name, task) in [("monolith", monolith), ("payment service", service)] {
        match tokio::time::timeout(UPSTREAM_DRAIN, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "the {name} stopped with an error"),
            Ok(Err(err)) => tracing::warn!(error = %err, "the {name} task failed"),
            Err(_) => tracing::warn!("the {name} did not stop within {UPSTREAM_DRAIN:?}"),
        }
    }
    served?;
    eprintln!("fig demo stopped");
    Ok(())
}

/// Writes the config, a flag store with the flag off, and a fresh admin token; forgets old
/// rollbacks so that every demo starts from the same place.
fn write_state_dir(files: &Files, addresses: &Addresses) -> anyhow::Result<()> {
    let token = random_token()?;
    write_secret(&files.token, &format!("{token}\n"))
        .with_context(|| format!("cannot write the admin token {}", files.token.display()))?;

    match std::fs::remove_file(&files.flags) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(err).with_context(|| format!("cannot replace {}", files.flags.display()));
        }
    }
    FileStore::new(&files.flags, "fig demo")
        .create(
            FLAG,
            Some("send /payments/** to the extracted payment service"),
        )
        .with_context(|| format!("cannot write the flag store {}", files.flags.display()))?;

    match std::fs::remove_file(&files.state) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(err).with_context(|| format!("cannot reset {}", files.state.display()));
        }
    }

    std::fs::write(&files.config, proxy_config(addresses))
        .with_context(|| format!("cannot write the proxy config {}", files.config.display()))?;
    Ok(())
}

/// The proxy config of the demo; paths are relative to the config's directory.
fn proxy_config(addresses: &Addresses) -> String {
    format!(
        r#"# Written by `fig demo`; rewritten on every start. The keys are documented in docs/proxy-config.md.

[server]
listen = "{proxy}"

[upstreams.{MONOLITH}]
addresses = ["http://{monolith}"]

[upstreams.{SERVICE}]
addresses = ["http://{service}"]

# /payments/** goes to the payment service when flag `{FLAG}` is on for the request,
# else to the monolith; `fig route rollback {ROUTE}` pins it to the monolith.
[[routes]]
name = "{ROUTE}"
match = {{ pattern = "/payments/**" }}
service = "{SERVICE}"
flag = "{FLAG}"
fallback = "{MONOLITH}"

# The flag context's user id comes from the X-User-Id header (the default), so a gradual rollout
# keeps each user on one side: `fig flags --store flags.json rollout {FLAG} 30`.
[context]
user_id = ["header:x-user-id"]

[flags]
file = "flags.json"

[admin]
listen = "{admin}"
token_file = "admin.token"
"#,
        proxy = addresses.proxy,
        monolith = addresses.monolith,
        service = addresses.service,
        admin = addresses.admin,
    )
}

/// What was started, and what to try.
fn banner(addresses: &Addresses, files: &Files, state_dir: &Path) -> String {
    let proxy = format!("http://{}", addresses.proxy);
    let admin = format!("http://{}", addresses.admin);
    let fig = "fig";
    let flags = shell_quote(&files.flags.display().to_string());
    let token = shell_quote(&files.token.display().to_string());
    let route = format!("{fig} route --admin {admin} --token-file {token}");
    let mut out = String::new();
    let _ = writeln!(out, "listening on {proxy}");
    let _ = writeln!(out, "admin on {admin}");
    let _ = writeln!(out);
    let _ = writeln!(out, "fig demo: the example shop behind the strangler proxy");
    let _ = writeln!(out, "  monolith (shop)    http://{}", addresses.monolith);
    let _ = writeln!(out, "  payment-service    http://{}", addresses.service);
    let _ = writeln!(out, "  proxy              {proxy}");
    let _ = writeln!(out, "  admin API          {admin}");
    let _ = writeln!(out, "  state dir          {}", state_dir.display());
    let _ = writeln!(
        out,
        "    fig-proxy.toml   route `{ROUTE}` (/payments/**) goes to {SERVICE} when flag `{FLAG}` is on, else to {MONOLITH}"
    );
    let _ = writeln!(out, "    flags.json       the flag store: `{FLAG}` is off");
    let _ = writeln!(out, "    admin.token      the admin API's bearer token");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Try it from another terminal (watch the x-fig-upstream header):"
    );
    let _ = writeln!(out, "  curl -i {proxy}/payments/7");
    let _ = writeln!(out, "  {fig} flags --store {flags} enable {FLAG}");
    let _ = writeln!(
        out,
        "  curl -i {proxy}/payments/7      # now answered by {SERVICE}"
    );
    let _ = writeln!(out, "  {route} rollback {ROUTE}");
    let _ = writeln!(
        out,
        "  curl -i {proxy}/payments/7      # back on the {MONOLITH}"
    );
    let _ = writeln!(out, "  {route} list");
    let _ = writeln!(out, "  {route} restore {ROUTE}");
    let _ = writeln!(
        out,
        "  curl -s {admin}/metrics -H \"authorization: Bearer $(cat {token})\""
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Ctrl-C stops everything.");
    out
}

/// Quotes `text` for a POSIX shell when it holds anything but safe characters.
fn shell_quote(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// 32 random bytes from the operating system, as hex.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| anyhow::anyhow!("cannot get random bytes for the admin token: {err}"))?;
    let mut token = String::with_capacity(64);
    for byte in bytes {
        let _ = write!(token, "{byte:02x}");
    }
    Ok(token)
}

/// Writes a file only its owner can read (mode 0600 on Unix), also when it already existed.
fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // `mode` applies only to a new file; an old one keeps its bits unless we set them.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    {
        options.open(path)?.write_all(text.as_bytes())
    }
}

/// Installs the Ctrl-C and SIGTERM handlers now, and returns a future that resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Returns a future that resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}
