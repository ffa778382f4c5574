//! `fig proxy`: run the strangler reverse proxy.
//!
//! With `--config FILE` the proxy reads its routes, upstreams and flag store from a TOML file
//! (docs/proxy-config.md); with only `--listen ADDR --monolith URL` it sends everything to the
//! monolith, the first step of every migration. Flags given here override the file, also on
//! reload. The first lines on stdout are the bound addresses (`listening on http://ADDR`, then
//! `listening on https://ADDR` for TLS listeners, then `admin on http://ADDR`), so scripts and
//! tests can use port 0. `--tls-cert FILE --tls-key FILE` makes every listener speak TLS.
//!
//! When the config names no admin token, the first start generates one (32 random bytes from the
//! operating system) into `admin.generated_token_file` (default `<config stem>.admin-token` next
//! to the config and its state file, mode 0600), later starts reuse it, and stderr says where it
//! is; `fig route --config FILE` finds it there. `--check` and the start warn when a rate limit
//! or a flag relies on a user id that clients choose (`context::untrusted_user_id_warnings`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use feature_flags::{FileConfig, FileStore, Flags, StoreConfig, UnleashConfig};
use strangler_proxy::config::FlagStoreConfig;
use strangler_proxy::{Config, FlagSource, Listeners, NoFlags, Overrides, Proxy};

/// Arguments of `fig proxy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (TOML); without it, --monolith is required and every request goes there.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (repeatable); overrides `server.listen`. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// The monolith's address, e.g. http://127.0.0.1:8080; overrides `upstreams.monolith`.
    #[arg(long, value_name = "URL")]
    pub monolith: Option<String>,
    /// CA certificates (PEM) that `https://` upstreams are verified against, instead of the
    /// system's roots; an upstream's own `tls.ca` comes first.
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// Runtime worker threads (default: one per core); 1 runs everything on one thread.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Admin API address; overrides `admin.listen` (default 127.0.0.1:9901).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// File holding the admin API's bearer token; overrides `admin.token`/`admin.token_file`.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The embedded flag store file; overrides `[flags]`.
    #[arg(long, value_name = "FILE")]
    pub flags: Option<PathBuf>,
    /// Where rollbacks are kept; default `<config dir>/<config stem>.state.json`.
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Serve TLS on every listener with this certificate chain (PEM, server certificate
    /// first); replaces `[[tls.certificates]]`. Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Ask TLS clients for a certificate signed by a CA in this file (PEM); replaces
    /// `tls.client_ca`. Its subject or SAN can be the flag context's user (`client-cert:`).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Validate the config and exit (0 when valid).
    #[arg(long)]
    pub check: bool,
    /// Also stop (drain, then exit) when standard input reaches its end. A supervisor that
    /// holds the other end of the pipe, such as `fig demo`, then leaves no proxy behind however
    /// it ends, even when it is killed.
    #[arg(long)]
    pub stop_on_stdin_close: bool,
}

/// Runs `fig proxy`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut overrides = Overrides {
        listen: args.listen.clone(),
        monolith: args.monolith.clone(),
        upstream_ca: args.upstream_ca.clone(),
        workers: args.workers.map(usize::from),
        admin: args.admin,
        admin_token_file: args.admin_token_file.clone(),
        flags_file: args.flags.clone(),
        state_file: args.state_file.clone(),
        // For SLO rollbacks that turn a flag off in Unleash (`turn_off_flag`), as `fig flags`.
        unleash_admin_token: ["FIG_UNLEASH_ADMIN_TOKEN", "UNLEASH_ADMIN_TOKEN"]
            .into_iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty())),
        generated_admin_token: None,
        tls: args
            .tls_cert
            .clone()
            .zip(args.tls_key.clone())
            .map(|(cert, key)| strangler_proxy::config::TlsFiles { cert, key }),
        tls_client_ca: args.tls_client_ca.clone(),
    };
    let mut config = match &args.config {
        Some(path) => Config::load(path, &overrides)?,
        None => Config::from_overrides(&overrides)?,
    };
    let file = args.config.as_ref().map_or_else(
        || "<command line>".to_owned(),
        |path| path.display().to_string(),
    );
    let mut warnings = strangler_proxy::context::untrusted_user_id_warnings(&config);
    warnings.extend(strangler_proxy::config::insecure_upstream_warnings(
        &config.upstreams,
    ));
    if args.check {
        for warning in &warnings {
            eprintln!("warning: {file}: {warning}");
        }
        // A flag store the proxy could not read would leave it not ready (issue 17, item 8).
        if let Some(FlagStoreConfig::File(path)) = &config.flags
            && let Err(err) = FileStore::new(path, "fig proxy --check").read()
        {
            eprintln!("error: {file}: [flags] file: {err}");
            return Ok(ExitCode::from(crate::exit::ERROR));
        }
        println!(
            "config is valid: {} route(s), {} upstream(s)",
            config.routes.len(),
            config.upstreams.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for warning in &warnings {
        tracing::warn!("{file}: {warning}");
    }
    if config.admin.listen.is_some()
        && config.admin.token.is_none()
        && let Some(path) = config.admin.generated_token_file.clone()
    {
        let token = generated_token(&path)?;
        overrides.generated_admin_token = Some(token.clone());
        config.admin.token = Some(token);
        eprintln!(
            "note: the admin API's bearer token is in {} (generated by fig proxy, only its owner can read it); `fig route --config {file}` or `fig route --token-file {}` uses it",
            path.display(),
            path.display()
        );
    }
    let workers = config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    // One worker runs on the current thread: no work-stealing and no cross-thread wakeups, which
    // is what a single-worker NGINX or HAProxy is compared with.
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, overrides, args.stop_on_stdin_close))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    config: Config,
    overrides: Overrides,
    stop_on_stdin_close: bool,
) -> anyhow::Result<()> {
    let flags: Arc<dyn FlagSource> = match &config.flags {
        None => Arc::new(NoFlags),
        Some(FlagStoreConfig::File(path)) => {
            let mut store = FileConfig::new(path);
            store.app_name.clone_from(&config.context.app_name);
            store.environment.clone_from(&config.context.environment);
            let flags = Flags::open(StoreConfig::File(store))
                .await
                .with_context(|| format!("cannot open flag store {}", path.display()))?;
            Arc::new(flags)
        }
        Some(FlagStoreConfig::Unleash {
            url,
            token,
            refresh,
            backup,
        }) => {
            let mut store = UnleashConfig::new(url.clone(), token.clone());
            store.refresh_interval = *refresh;
            store.backup_path.clone_from(backup);
            if let Some(app_name) = &config.context.app_name {
                store.app_name.clone_from(app_name);
            }
            store.environment.clone_from(&config.context.environment);
            let flags = Flags::open(StoreConfig::Unleash(store))
                .await
                .with_context(|| format!("cannot open Unleash flag store {url}"))?;
            Arc::new(flags)
        }
    };
    let listeners = Listeners::bind(&config).await?;
    if config.admin.listen.is_some() && config.admin.token.is_none() {
        tracing::warn!(
            "the admin API has no token: anyone on this machine can roll routes back (browsers on other sites cannot: their Host and Origin are refused); give it one with `admin.token_file`, or run with a config file, next to which a token is generated"
        );
    }
    // The proxy (and its SIGHUP handler) and the SIGTERM handler exist before the addresses are
    // printed: whoever reads them may signal at once, and a signal without a handler would kill
    // the process instead of reloading or draining it.
    let proxy = Proxy::new(config, flags, overrides)?;
    let shutdown_signal = shutdown_signal();
    {
        let mut stdout = std::io::stdout().lock();
        for listener in &listeners.proxy {
            writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
        }
        for listener in &listeners.tls {
            writeln!(stdout, "listening on https://{}", listener.local_addr()?)?;
        }
        if let Some(admin) = &listeners.admin {
            writeln!(stdout, "admin on http://{}", admin.local_addr()?)?;
        }
        stdout.flush()?;
    }
    let stdin_closed = async move {
        if stop_on_stdin_close {
            stdin_closed().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let shutdown = async move {
        tokio::select! {
            () = shutdown_signal => {}
            () = stdin_closed => tracing::info!("standard input closed: stopping"),
        }
    };
    proxy.serve(listeners, shutdown).await?;
    Ok(())
}

/// The token in `path`, made there first (random, mode 0600) when the file does not exist.
fn generated_token(path: &Path) -> anyhow::Result<String> {
    let read = |path: &Path| -> anyhow::Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let token = text.trim();
                if token.is_empty() {
                    bail!(
                        "the admin token file {} is empty; delete it and a new token is generated",
                        path.display()
                    );
                }
                warn_if_others_can_read(path);
                Ok(Some(token.to_owned()))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err)
                .with_context(|| format!("cannot read the admin token file {}", path.display())),
        }
    };
    if let Some(token) = read(path)? {
        return Ok(token);
    }
    let token = random_token()?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {} for the admin token", dir.display()))?;
    }
    let created = feature_flags::create_atomically(
        path,
        format!("{token}\n").as_bytes(),
        feature_flags::FileMode::OwnerOnly,
    );
    match created {
        Ok(()) => Ok(token),
        // Another proxy on the same config made it first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            read(path)?.with_context(|| format!("the admin token file {} vanished", path.display()))
        }
        Err(err) => Err(err)
            .with_context(|| format!("cannot write the admin token file {}", path.display())),
    }
}

/// Logs a warning when others than its owner may read the token file at `path`.
fn warn_if_others_can_read(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                "others than its owner may read the admin token file; `chmod 600` it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Resolves when standard input reaches its end or cannot be read.
async fn stdin_closed() {
    let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
    // A plain thread rather than tokio's blocking pool: a read blocked on stdin would keep the
    // runtime from shutting down after a SIGTERM.
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".to_owned())
        .spawn(move || {
            use std::io::Read as _;
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 256];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = sender.send(());
        });
    if spawned.is_err() {
        tracing::warn!("cannot watch standard input; stop the proxy with SIGTERM");
        std::future::pending::<()>().await;
    }
    let _ = receiver.await;
}

/// Resolves on Ctrl-C or SIGTERM. The SIGTERM handler is installed when this is called, not when
/// the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// 32 random bytes from the operating system, as hex (the admin token `fig proxy` generates, and `fig demo`'s).
pub(crate) fn random_token() -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| anyhow::anyhow!("cannot get random bytes for the admin token: {err}"))?;
    let mut token = String::with_capacity(64);
    for byte in bytes {
        let _ = write!(token, "{byte:02x}");
    }
    Ok(token)
}
