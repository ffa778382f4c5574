//! `fig demo`: the example system in one command, to try a strangler migration in five minutes.
//!
//! It starts, in this one process, the example monolith (`shop`) and the extracted payment
//! service (`payment-service`) on free loopback ports, and `--replicas N` (default 1) strangler
//! proxies in front of them. Each replica is a real `fig proxy --config …` child process of its
//! own, with its own flag store handle, rollbacks (state file) and, on Unleash, its own poller and
//! backup file; replica K listens on `--listen` + K-1 and its admin API on `--admin` + K-1 (port
//! 0: each picks a free port). Flags live in the embedded file store (default) or, with
//! `--unleash URL`, on an Unleash server, where the flag (`--flag`, default `payments-service`)
//! is created, off, if it is missing; an existing flag is left as it is.
//!
//! It writes into `--state-dir` (default `./fig-demo`, created if missing) the files a real
//! deployment has:
//!
//! - `fig-proxy.toml`: route `payments` (`/payments/**`) goes to `payment-service` when the flag
//!   is on, else to `monolith`; everything else goes to `monolith` (one per replica, in
//!   `replica-K/` when there are several, next to that replica's state and Unleash backup),
//! - `flags.json`: the embedded flag store, with the flag off (file store only),
//! - `unleash.token`: the client token the replicas read Unleash with (Unleash only, mode 0600),
//! - `admin.token`: a fresh random bearer token for the admin APIs of all replicas (mode 0600),
//! - with `--tls`, `tls/ca.pem`, `tls/cert.pem` and `tls/key.pem`: a certificate authority made
//!   for the demo and the certificate (localhost, 127.0.0.1) it signs, which the proxies serve
//!   over TLS; the commands printed trust it with `curl --cacert`.
//!
//! Each start begins from scratch: no route is rolled back, and the file store's flag is off.
//! The first stdout lines are each replica's addresses, as with `fig proxy` (`listening on
//! http://ADDR`, or `https://` with `--tls`, then `admin on http://ADDR`); then comes what was started and the commands to
//! try. A replica that exits is started again on the same addresses (from its backup file if
//! Unleash is away). Ctrl-C or SIGTERM drains the replicas and stops everything.
//!
//! No replica outlives the demo: each runs with `--stop-on-stdin-close` and a pipe as its
//! standard input whose other end only the demo holds, so when the demo ends, however it ends
//! (even killed), the pipe closes and the replica drains and exits. Stopping the demo closes the
//! pipes the same way. The example servers run in-process, from their libraries: `cargo run --
//! demo` then works without building the example binaries first.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use feature_flags::{FileStore, UnleashAdmin, UnleashConfig};
use strangler_proxy::Config;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::commands::flags::Server;

mod replicas;
#[cfg(test)]
mod tests;

use replicas::Replica;

/// The route and upstream names of the demo, as the issue and the guides use them.
const ROUTE: &str = "payments";
const SERVICE: &str = "payment-service";
const MONOLITH: &str = "monolith";
/// The default flag deciding the route.
const DEFAULT_FLAG: &str = "payments-service";
/// What the flag is for, as written into a new flag.
const FLAG_DESCRIPTION: &str = "send /payments/** to the extracted payment service";
/// The most replicas one demo starts.
const MAX_REPLICAS: u16 = 16;

/// How long the example servers get to finish requests after the proxies have drained.
const UPSTREAM_DRAIN: Duration = Duration::from_secs(5);

/// Arguments of `fig demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the (first) proxy listens; replica K listens on the port K-1 above it. Port 0
    /// gives each replica a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Where the (first) admin API listens; replica K's is K-1 above it [default: 127.0.0.1
    /// and the port right after the proxies', e.g. 8001 for one replica on 8000].
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Directory for the configs, flags, tokens and state; created if missing, and its files
    /// are rewritten on every start.
    #[arg(long, value_name = "DIR", default_value = "fig-demo")]
    pub state_dir: PathBuf,
    /// How many proxy replicas to run, each a `fig proxy` process of its own.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_REPLICAS)))]
    pub replicas: u16,
    /// The flag that sends `/payments/**` to the payment service; a unique name keeps demos
    /// that share an Unleash server apart.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_FLAG, value_parser = parse_flag_name)]
    pub flag: String,
    /// Keep the flags on the Unleash server at URL instead of a file; the flag is created there,
    /// off, if it is missing (in project `default`, environment `development`, as `fig flags`
    /// does).
    #[arg(long, value_name = "URL")]
    pub unleash: Option<String>,
    /// Unleash client token the replicas read flags with [env: FIG_UNLEASH_TOKEN or
    /// UNLEASH_CLIENT_TOKEN].
    #[arg(long, value_name = "TOKEN", alias = "token", requires = "unleash")]
    pub client_token: Option<String>,
    /// Unleash admin token, to create the flag when it is missing [env: FIG_UNLEASH_ADMIN_TOKEN
    /// or UNLEASH_ADMIN_TOKEN].
    #[arg(long, value_name = "TOKEN", requires = "unleash")]
    pub admin_token: Option<String>,
    /// How often each replica asks Unleash for changes (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_refresh)]
    pub refresh: Duration,
    /// Serve the proxies over TLS (HTTP/1.1 and HTTP/2) with a certificate for localhost and
    /// 127.0.0.1 generated into the state dir (`tls/ca.pem` signs `tls/cert.pem`); the commands
    /// printed use `curl --cacert`.
    #[arg(long)]
    pub tls: bool,

    /// Print the plan that leads to the demo's route (`fig plan examples/shop --extract
    /// payment`, from this checkout's source of the shop) and exit.
    #[arg(long)]
    pub plan: bool,
}

fn parse_flag_name(name: &str) -> Result<String, String> {
    let valid = (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err("a flag name is 1 to 100 letters, digits, `.`, `_`, `-` or `~`".to_owned())
    }
}

fn parse_refresh(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|err| err.to_string())?;
    if duration < Duration::from_secs(1) {
        return Err("the refresh interval is at least 1s".to_owned());
    }
    Ok(duration)
}

/// Runs `fig demo`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.plan {
        return crate::commands::plan::print_shop_plan(&args.flag);
    }
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

/// Where the flags of the demo live.
enum Store {
    /// The embedded file store, `flags.json` in the state directory.
    File,
    /// An Unleash server.
    Unleash {
        /// The URL as given, and the tokens.
        server: Server,
        /// The flag as found (or created), in words: `off`, `on; flexibleRollout 25% (default)`.
        state: String,
        /// Whether the demo created the flag.
        created: bool,
    },
}

/// The files of a demo's state directory. With one replica, its files sit in the state
/// directory itself (as they always did); with several, replica K's are in `replica-K/`.
struct Layout {
    dir: PathBuf,
    replicas: usize,
}

impl Layout {
    fn replica_dir(&self, idx: usize) -> PathBuf {
        if self.replicas == 1 {
            self.dir.clone()
        } else {
            self.dir.join(format!("replica-{}", idx + 1))
        }
    }

    /// The state directory as a replica's config names it: paths in a config are relative to
    /// the config's directory.
    fn shared_prefix(&self) -> &'static str {
        if self.replicas == 1 { "" } else { "../" }
    }

    fn config(&self, idx: usize) -> PathBuf {
        self.replica_dir(idx).join("fig-proxy.toml")
    }

    fn state_file(&self, idx: usize) -> PathBuf {
        Config::default_state_file(&self.config(idx))
    }

    fn flags(&self) -> PathBuf {
        self.dir.join("flags.json")
    }

    fn admin_token(&self) -> PathBuf {
        self.dir.join("admin.token")
    }

    /// The Unleash admin token the replicas switch the flag off with when the service breaks
    /// its SLO (Unleash only, when the demo was given one).
    fn unleash_admin_token(&self) -> PathBuf {
        self.dir.join("unleash-admin.token")
    }

    /// Where a replica keeps its samples of shadow differences (the proxy's default, next to
    /// its state file).
    fn shadow_dir(&self, idx: usize) -> PathBuf {
        self.replica_dir(idx).join("fig-proxy.shadow")
    }

    fn unleash_token(&self) -> PathBuf {
        self.dir.join("unleash.token")
    }

    /// The demo's certificate authority (`--tls`): what `curl --cacert` trusts.
    fn tls_ca(&self) -> PathBuf {
        self.dir.join("tls").join("ca.pem")
    }
}

/// Each replica's Unleash backup, in its own directory.
const BACKUP_FILE: &str = "unleash-backup.json";

/// Where the example servers listen.
struct Upstreams {
    monolith: SocketAddr,
    service: SocketAddr,
}

async fn demo(args: &Args, state_dir: &Path) -> anyhow::Result<()> {
    // Signal handlers go in before anything is printed, so that a script that starts the demo
    // and stops it at once gets a clean stop, not the default action of the signal.
    let stop = shutdown_signal().context("cannot install the Ctrl-C and SIGTERM handlers")?;

    let n_replicas = usize::from(args.replicas);
    let planned = plan_addresses(args.listen, args.admin, n_replicas)?;
    // Taken addresses are refused here, with the option to change, before anything starts.
    let mut reserved = Vec::with_capacity(planned.len());
    for (idx, (proxy, admin)) in planned.iter().enumerate() {
        let what = |part: &str| {
            if n_replicas == 1 {
                format!("the {part}")
            } else {
                format!("the {part} of replica {}", idx + 1)
            }
        };
        let proxy_listener = reserve(*proxy, &what("proxy"), "listen")?;
        let admin_listener = reserve(*admin, &what("admin API"), "admin")?;
        reserved.push((proxy_listener, admin_listener));
    }

    let layout = Layout {
        dir: state_dir.to_path_buf(),
        replicas: n_replicas,
    };
    let store = prepare_store(args, &layout).await?;

    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let monolith_listener = TcpListener::bind(loopback)
        .await
        .context("cannot listen on a loopback port for the monolith")?;
    let service_listener = TcpListener::bind(loopback)
        .await
        .context("cannot listen on a loopback port for the payment service")?;
    let upstreams = Upstreams {
        monolith: monolith_listener.local_addr()?,
        service: service_listener.local_addr()?,
    };
    write_state_dir(args, &layout, &store, &planned, &upstreams)?;

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

    // The replicas, one after the other; a failure drops (and so stops) those already started.
    let mut started: Vec<Replica> = Vec::with_capacity(n_replicas);
    for (idx, reservation) in reserved.into_iter().enumerate() {
        drop(reservation);
        started.push(replicas::start(idx + 1, &layout.config(idx), None).await?);
    }

    let mut stdout = std::io::stdout().lock();
    // Nobody reading stdout is no reason to stop the demo, hence the ignored results.
    let _ = stdout.write_all(banner(args, &layout, &store, &started, &upstreams).as_bytes());
    let _ = stdout.flush();
    drop(stdout);

    let supervised = replicas::supervise(started, stop).await;
    // The replicas have drained: no request is on its way to the example servers any more.
    let _ = stop_upstreams.send(true);
    for (name, task) in [("monolith", monolith), ("payment service", service)] {
        match tokio::time::timeout(UPSTREAM_DRAIN, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "the {name} stopped with an error"),
            Ok(Err(err)) => tracing::warn!(error = %err, "the {name} task failed"),
            Err(_) => tracing::warn!("the {name} did not stop within {UPSTREAM_DRAIN:?}"),
        }
    }
    supervised?;
    eprintln!("fig demo stopped");
    Ok(())
}

/// The proxy and admin addresses of each replica: consecutive ports from `listen` and `admin`
/// (by default, the ports right after the proxies'), or port 0 for each when given port 0.
fn plan_addresses(
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    n_replicas: usize,
) -> anyhow::Result<Vec<(SocketAddr, SocketAddr)>> {
    let admin = match admin {
        Some(admin) => admin,
        None if listen.port() == 0 => SocketAddr::from(([127, 0, 0, 1], 0)),
        None => {
            let port = usize::from(listen.port()) + n_replicas;
            let Ok(port) = u16::try_from(port) else {
                bail!(
                    "--listen {listen} with --replicas {n_replicas} leaves no port after the proxies' for the admin API; give --admin"
                );
            };
            SocketAddr::from(([127, 0, 0, 1], port))
        }
    };
    let nth = |base: SocketAddr, idx: usize, option: &str| -> anyhow::Result<SocketAddr> {
        if base.port() == 0 {
            return Ok(base);
        }
        let port = usize::from(base.port()) + idx;
        let Ok(port) = u16::try_from(port) else {
            bail!(
                "--{option} {base} with --replicas {n_replicas} needs ports up to {port}, past 65535; pick a lower port"
            );
        };
        Ok(SocketAddr::new(base.ip(), port))
    };
    let mut planned = Vec::with_capacity(n_replicas);
    for idx in 0..n_replicas {
        planned.push((nth(listen, idx, "listen")?, nth(admin, idx, "admin")?));
    }
    let mut ports: Vec<u16> = planned
        .iter()
        .flat_map(|(proxy, admin)| [proxy.port(), admin.port()])
        .filter(|port| *port != 0)
        .collect();
    ports.sort_unstable();
    if let Some(pair) = ports.windows(2).find(|pair| pair[0] == pair[1]) {
        let last = |addr: &SocketAddr| {
            if addr.port() == 0 {
                0
            } else {
                usize::from(addr.port()) + n_replicas - 1
            }
        };
        bail!(
            "port {} would be used twice: the proxies take ports {}-{} and the admin APIs {}-{}; pick --admin outside the proxies' range",
            pair[0],
            listen.port(),
            last(&listen),
            admin.port(),
            last(&admin)
        );
    }
    Ok(planned)
}

/// Binds `addr` (unless it is port 0) to find out now whether it is free; the listener is
/// released just before the replica that needs it starts.
fn reserve(
    addr: SocketAddr,
    what: &str,
    option: &str,
) -> anyhow::Result<Option<std::net::TcpListener>> {
    if addr.port() == 0 {
        return Ok(None);
    }
    std::net::TcpListener::bind(addr).map(Some).with_context(|| {
        format!(
            "cannot listen on {addr} for {what}; is another demo running? pick another address with --{option}"
        )
    })
}

/// Checks the Unleash server and the flag there, creating it (off) when it is missing.
async fn prepare_store(args: &Args, layout: &Layout) -> anyhow::Result<Store> {
    let Some(url) = &args.unleash else {
        return Ok(Store::File);
    };
    let server = Server::new(
        url.clone(),
        args.client_token.clone(),
        args.admin_token.clone(),
    );
    let Some(client_token) = server.token.clone() else {
        bail!(
            "the replicas read flags from Unleash with a client token: --client-token, $FIG_UNLEASH_TOKEN or $UNLEASH_CLIENT_TOKEN"
        );
    };
    // Reading first checks the URL and the client token the replicas will use.
    let features = feature_flags::fetch_features(&UnleashConfig::new(url.clone(), &client_token))
        .await
        .with_context(|| format!("cannot read the flags of Unleash at {url}"))?;
    let found = features.features.iter().find(|f| f.name == args.flag);
    let (feature, created) = match (found, &server.admin_token) {
        (Some(feature), _) => (feature.clone(), false),
        (None, None) => bail!(
            "flag `{}` is not on Unleash at {url}, and creating it needs an admin token: --admin-token, $FIG_UNLEASH_ADMIN_TOKEN or $UNLEASH_ADMIN_TOKEN",
            args.flag
        ),
        (None, Some(admin_token)) => {
            let admin = UnleashAdmin::new(url, admin_token, None, None)?;
            // The client API may lag behind the admin API: ask the admin API before creating.
            match admin.feature(&args.flag).await {
                Ok(feature) => (feature, false),
                Err(feature_flags::Error::UnknownFlag(_)) => {
                    let change = admin
                        .create(&args.flag, Some(FLAG_DESCRIPTION))
                        .await
                        .with_context(|| {
                            format!("cannot create flag `{}` on Unleash", args.flag)
                        })?;
                    let feature = change.new.with_context(|| {
                        format!("Unleash did not return the new flag `{}`", args.flag)
                    })?;
                    (feature, true)
                }
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!("cannot read flag `{}` from Unleash's admin API", args.flag)
                    });
                }
            }
        }
    };
    write_secret(&layout.unleash_token(), &format!("{client_token}\n")).with_context(|| {
        format!(
            "cannot write the Unleash token {}",
            layout.unleash_token().display()
        )
    })?;
    let admin_token_file = layout.unleash_admin_token();
    match &server.admin_token {
        Some(admin_token) => write_secret(&admin_token_file, &format!("{admin_token}\n"))
            .with_context(|| {
                format!(
                    "cannot write the Unleash admin token {}",
                    admin_token_file.display()
                )
            })?,
        None => remove_if_present(&admin_token_file)?,
    }
    Ok(Store::Unleash {
        server,
        state: feature_flags::describe(&feature),
        created,
    })
}

/// Writes the configs, the file store with the flag off (file store), and a fresh admin token;
/// forgets old rollbacks so that every demo starts from the same place.
fn write_state_dir(
    args: &Args,
    layout: &Layout,
    store: &Store,
    planned: &[(SocketAddr, SocketAddr)],
    upstreams: &Upstreams,
) -> anyhow::Result<()> {
    let token_file = layout.admin_token();
    let token = crate::commands::proxy::random_token()?;
    write_secret(&token_file, &format!("{token}\n"))
        .with_context(|| format!("cannot write the admin token {}", token_file.display()))?;

    if args.tls {
        let addresses: Vec<SocketAddr> = planned.iter().map(|(proxy, _)| *proxy).collect();
        write_demo_certificate(&layout.dir.join("tls"), &addresses)?;
    }

    if matches!(store, Store::File) {
        let flags = layout.flags();
        remove_if_present(&flags)?;
        FileStore::new(&flags, "fig demo")
            .create(&args.flag, Some(FLAG_DESCRIPTION))
            .with_context(|| format!("cannot write the flag store {}", flags.display()))?;
    }

    for (idx, (proxy, admin)) in planned.iter().enumerate() {
        let dir = layout.replica_dir(idx);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        remove_if_present(&layout.state_file(idx))?;
        remove_dir_if_present(&layout.shadow_dir(idx))?;
        let flags = match store {
            Store::File => FlagsSection::File {
                file: format!("{}flags.json", layout.shared_prefix()),
            },
            Store::Unleash { server, .. } => FlagsSection::Unleash {
                url: server.url.clone(),
                token_file: format!("{}unleash.token", layout.shared_prefix()),
                refresh: args.refresh,
                backup_file: BACKUP_FILE.to_owned(),
                admin_token_file: server
                    .admin_token
                    .as_ref()
                    .map(|_| format!("{}unleash-admin.token", layout.shared_prefix())),
            },
        };
        let config = ReplicaConfig {
            listen: *proxy,
            admin: *admin,
            admin_token_file: format!("{}admin.token", layout.shared_prefix()),
            monolith: upstreams.monolith,
            service: upstreams.service,
            flag: &args.flag,
            flags,
            tls: args.tls.then(|| format!("{}tls/", layout.shared_prefix())),
        };
        let path = layout.config(idx);
        feature_flags::write_atomically(
            &path,
            proxy_config(&config).as_bytes(),
            feature_flags::FileMode::Keep,
        )
        .with_context(|| format!("cannot write the proxy config {}", path.display()))?;
    }
    Ok(())
}

fn remove_dir_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot reset {}", path.display())),
    }
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot reset {}", path.display())),
    }
}

/// What one replica's config says.
struct ReplicaConfig<'a> {
    listen: SocketAddr,
    admin: SocketAddr,
    /// Relative to the config's directory, like every path below.
    admin_token_file: String,
    monolith: SocketAddr,
    service: SocketAddr,
    flag: &'a str,
    flags: FlagsSection,
    /// `--tls`: the directory of the certificate and key, relative to the config's.
    tls: Option<String>,
}

/// The `[flags]` table of a replica's config.
enum FlagsSection {
    File {
        file: String,
    },
    Unleash {
        url: String,
        token_file: String,
        refresh: Duration,
        backup_file: String,
        /// Lets the SLO switch the flag off on Unleash; without it the SLO only rolls back.
        admin_token_file: Option<String>,
    },
}

/// The proxy config of one replica; paths are relative to the config's directory.
fn proxy_config(config: &ReplicaConfig<'_>) -> String {
    let (flags, can_turn_off_flag) = match &config.flags {
        FlagsSection::File { file } => (format!("file = {}", toml_string(file)), true),
        FlagsSection::Unleash {
            url,
            token_file,
            refresh,
            backup_file,
            admin_token_file,
        } => {
            let admin = admin_token_file.as_ref().map_or_else(String::new, |file| {
                format!(", admin_token_file = {}", toml_string(file))
            });
            (
                format!(
                    "# Each replica polls Unleash on its own and keeps its own backup of the last flags.\nunleash = {{ url = {}, token_file = {}, refresh = \"{}\", backup_file = {}{admin} }}",
                    toml_string(url),
                    toml_string(token_file),
                    humantime::format_duration(*refresh),
                    toml_string(backup_file),
                ),
                admin_token_file.is_some(),
            )
        }
    };
    format!(
        r#"# Written by `fig demo`; rewritten on every start. The keys are documented in docs/proxy-config.md.

[server]
listen = "{listen}"

[upstreams.{MONOLITH}]
addresses = ["http://{monolith}"]

[upstreams.{SERVICE}]
addresses = ["http://{service}"]

{route}
# The flag context's user id comes from the X-User-Id header (the default), so a gradual rollout
# keeps each user on one side.
[context]
user_id = ["header:x-user-id"]

[flags]
{flags}

[admin]
listen = "{admin}"
token_file = {admin_token_file}
{tls}"#,
        tls = config.tls.as_ref().map_or_else(String::new, |dir| format!(
            "\n# `fig demo --tls`: the listener speaks TLS with the certificate the demo generated. A new\n# certificate and key in these files take effect on the next connection (the files are watched).\n[tls]\n[[tls.certificates]]\ncert = {}\nkey = {}\n",
            toml_string(&format!("{dir}cert.pem")),
            toml_string(&format!("{dir}key.pem")),
        )),
        listen = config.listen,
        monolith = config.monolith,
        service = config.service,
        route = payments_route(config.flag, can_turn_off_flag),
        admin = config.admin,
        admin_token_file = toml_string(&config.admin_token_file),
    )
}

/// The demo's one route, as a `[[routes]]` table: `/payments/**` goes to the payment service
/// when `flag` is on for the request, else to the monolith, with the protections a first
/// extraction should have: fallback retry, an SLO with automatic rollback (turning the flag off
/// too when the replica can write to the flag store) and shadow traffic.
fn payments_route(flag: &str, turn_off_flag: bool) -> String {
    let slo_note = if turn_off_flag {
        "rolls the route back and\n# turns the flag off (every replica follows)"
    } else {
        "rolls the route back on\n# this replica (no Unleash admin token to turn the flag off with)"
    };
    format!(
        r#"# /payments/** goes to the payment service when flag `{flag}` is on for the request,
# else to the monolith; `fig route rollback {ROUTE}` pins it to the monolith.
#
# Protections (docs/proxy-config.md): a GET, HEAD or OPTIONS the service fails is answered by
# the monolith (`retry`); the service's circuit breaker (on by default) sends the route to the
# monolith after 5 failures in a row; the service breaking its SLO {slo_note}. The
# SLO's min_requests is low so the demo reacts after a handful of requests: keep the default (20)
# or more in production. Every request the monolith answers is mirrored to the service and the
# answers compared (`shadow`): `fig route diff {ROUTE}` shows where they differ.
[[routes]]
name = "{ROUTE}"
match = {{ pattern = "/payments/**" }}
service = "{SERVICE}"
flag = {flag_value}
fallback = "{MONOLITH}"
retry = {{ methods = ["GET", "HEAD", "OPTIONS"] }}
slo = {{ max_error_rate = "5%", max_p99 = "1s", window = "30s", min_requests = 5, turn_off_flag = {turn_off_flag} }}
shadow = {{ percent = 100 }}
"#,
        flag_value = toml_string(flag),
    )
}

/// `text` as a TOML basic string, quoted and escaped.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// What was started, and what to try.
fn banner(
    args: &Args,
    layout: &Layout,
    store: &Store,
    replicas: &[Replica],
    upstreams: &Upstreams,
) -> String {
    let flag = &args.flag;
    let unleash = matches!(store, Store::Unleash { .. });
    let mut out = String::new();
    let scheme = if args.tls { "https" } else { "http" };
    for replica in replicas {
        let _ = writeln!(out, "listening on {scheme}://{}", replica.proxy);
        let _ = writeln!(out, "admin on http://{}", replica.admin);
    }
    let _ = writeln!(out);
    let first_proxy = format!("{scheme}://{}", replicas[0].proxy);
    let first_admin = format!("http://{}", replicas[0].admin);
    let behind = if replicas.len() == 1 {
        "the strangler proxy".to_owned()
    } else {
        format!("{} strangler proxy replicas", replicas.len())
    };
    let on_unleash = if unleash { ", flags on Unleash" } else { "" };
    let _ = writeln!(
        out,
        "fig demo: the example shop behind {behind}{on_unleash}"
    );
    let _ = writeln!(out, "  monolith (shop)    http://{}", upstreams.monolith);
    let _ = writeln!(out, "  payment-service    http://{}", upstreams.service);
    if replicas.len() == 1 {
        let _ = writeln!(out, "  proxy              {first_proxy}");
        let _ = writeln!(out, "  admin API          {first_admin}");
    } else {
        for replica in replicas {
            let _ = writeln!(
                out,
                "  replica {:<11}proxy {scheme}://{}  admin http://{}  pid {}",
                replica.number,
                replica.proxy,
                replica.admin,
                replica.pid()
            );
        }
    }
    let route_text = format!(
        "`{ROUTE}` (/payments/**) goes to {SERVICE} when flag `{flag}` is on, else to {MONOLITH}"
    );
    if replicas.len() > 1 {
        let _ = writeln!(out, "  route              {route_text}");
    }
    if let Store::Unleash {
        server,
        state,
        created,
    } = store
    {
        let created = if *created { " (created now)" } else { "" };
        let _ = writeln!(
            out,
            "  flag               `{flag}` on Unleash at {}: {state}{created}",
            server.url
        );
        let _ = writeln!(
            out,
            "  refresh            each proxy asks Unleash for changes every {}",
            humantime::format_duration(args.refresh)
        );
    }
    let _ = writeln!(out, "  state dir          {}", layout.dir.display());
    if replicas.len() == 1 {
        let _ = writeln!(out, "    fig-proxy.toml   route {route_text}");
    }
    if unleash {
        let _ = writeln!(
            out,
            "    unleash.token    the Unleash client token the proxies read flags with"
        );
    } else {
        let _ = writeln!(out, "    flags.json       the flag store: `{flag}` is off");
    }
    if args.tls {
        let _ = writeln!(
            out,
            "    tls/             ca.pem (what `curl --cacert` trusts), cert.pem and key.pem (the proxy's)"
        );
    }
    if replicas.len() == 1 {
        let _ = writeln!(out, "    admin.token      the admin API's bearer token");
        if unleash {
            let _ = writeln!(
                out,
                "    {BACKUP_FILE:<17}the last flags fetched, served when Unleash is away at start"
            );
        }
    } else {
        let _ = writeln!(
            out,
            "    admin.token      the bearer token of every replica's admin API"
        );
        let backup = if unleash {
            format!(", {BACKUP_FILE}")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "    replica-K/       replica K's fig-proxy.toml, fig-proxy.state.json (its rollbacks){backup}"
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Try it from another terminal (watch the x-fig-upstream header):"
    );
    for line in try_lines(args, layout, store, replicas, upstreams.service) {
        let _ = writeln!(out, "  {line}");
    }
    if unleash {
        let _ = writeln!(
            out,
            "`fig flags` takes the Unleash tokens from --token and --admin-token, else from \
             $FIG_UNLEASH_TOKEN or $UNLEASH_CLIENT_TOKEN and $FIG_UNLEASH_ADMIN_TOKEN or $UNLEASH_ADMIN_TOKEN."
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Ctrl-C stops everything.");
    out
}

/// The commands of the banner's walk, each with a comment aligned after it.
fn try_lines(
    args: &Args,
    layout: &Layout,
    store: &Store,
    replicas: &[Replica],
    service: SocketAddr,
) -> Vec<String> {
    let flag = &args.flag;
    // With --tls, curl is told to trust the demo's CA; the option goes before the URL, so every
    // `curl ... {proxy}/path` below reads right.
    let proxy_url = |addr: SocketAddr| {
        if args.tls {
            format!(
                "--cacert {} https://{addr}",
                shell_quote(&layout.tls_ca().display().to_string())
            )
        } else {
            format!("http://{addr}")
        }
    };
    let first_proxy = proxy_url(replicas[0].proxy);
    let first_admin = format!("http://{}", replicas[0].admin);
    let token = shell_quote(&layout.admin_token().display().to_string());
    let route = format!("fig route --admin {first_admin} --token-file {token}");
    let flags = match store {
        Store::File => format!(
            "fig flags --store {}",
            shell_quote(&layout.flags().display().to_string())
        ),
        Store::Unleash { server, .. } => {
            format!("fig flags --unleash {}", shell_quote(&server.url))
        }
    };
    let metrics =
        format!("curl -s {first_admin}/metrics -H \"authorization: Bearer $(cat {token})\"");
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut add = |command: String, comment: &str| lines.push((command, comment.to_owned()));
    // The service failing on purpose: the fallback, the breaker and the SLO at work.
    let break_service = |add: &mut dyn FnMut(String, &str), proxy: &str, route: &str| {
        add(
            format!("curl -X PUT http://{service}/_faults -d '{{\"error_rate\": 1}}'"),
            &format!("{SERVICE} now fails every payment"),
        );
        add(
            format!(
                "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' {proxy}/payments/7; done"
            ),
            "all 200: the monolith answers what the service fails",
        );
        add(
            format!("{route} status"),
            "rolled back by the SLO, with the reason",
        );
        add(
            format!("curl -X DELETE http://{service}/_faults"),
            "repaired; restoring the route stays your call",
        );
    };
    if replicas.len() == 1 && matches!(store, Store::File) {
        // The first walk: the flag, the rollback, then the protections.
        add(format!("curl -i {first_proxy}/payments/7"), "");
        add(
            format!("{route} diff {ROUTE}"),
            &format!("{SERVICE} shadows the monolith: same answers so far"),
        );
        add(
            format!("curl -i -X POST {first_proxy}/payments/5/refund"),
            "the monolith refunds; the service never hears of it",
        );
        add(format!("curl -i {first_proxy}/payments/5"), "");
        add(
            format!("{route} diff {ROUTE}"),
            "now they differ: refunded vs captured",
        );
        add(format!("{flags} enable {flag}"), "");
        add(
            format!("curl -i {first_proxy}/payments/7"),
            &format!("now answered by {SERVICE}"),
        );
        add(format!("{route} rollback {ROUTE}"), "");
        add(
            format!("curl -i {first_proxy}/payments/7"),
            &format!("back on the {MONOLITH}"),
        );
        add(format!("{route} list"), "");
        add(format!("{route} restore {ROUTE}"), "");
        break_service(&mut add, &first_proxy, &route);
        add(metrics, "");
        return lines
            .into_iter()
            .map(|(command, comment)| {
                if comment.is_empty() {
                    command
                } else {
                    format!("{command}      # {comment}")
                }
            })
            .collect();
    }
    let last_proxy = proxy_url(replicas[replicas.len() - 1].proxy);
    let every = if replicas.len() == 1 {
        String::new()
    } else {
        " on every replica".to_owned()
    };
    let within = match store {
        Store::File => format!("within a second{every}"),
        Store::Unleash { .. } => {
            format!("within {}{every}", humantime::format_duration(args.refresh))
        }
    };
    let user = "-H 'x-user-id: alice'";
    add(format!("curl -i {user} {first_proxy}/payments/7"), "");
    add(
        format!("{flags} rollout {flag} 25"),
        "the share, while the flag is off",
    );
    add(
        format!("{flags} enable {flag}"),
        &format!("a quarter of the users, {within}"),
    );
    add(
        format!("curl -i {user} {last_proxy}/payments/7"),
        &format!("one user stays on one side{every}"),
    );
    add(format!("{flags} rollout {flag} 100"), "every user");
    let this_replica = if replicas.len() == 1 {
        "at once"
    } else {
        "replica 1 only, at once"
    };
    add(format!("{route} rollback {ROUTE}"), this_replica);
    add(format!("{route} restore {ROUTE}"), "");
    add(
        format!("{flags} disable {flag}"),
        &format!("back on the {MONOLITH}{every}"),
    );
    add(format!("{route} list"), "");
    add(
        format!("{route} diff {ROUTE}"),
        &format!("what {SERVICE} answered differently as a shadow"),
    );
    if replicas.len() > 1 {
        add(
            format!("kill {}", replicas[0].pid()),
            "replica 1 stops; the demo starts it again",
        );
    }
    add(metrics, "");
    let width = lines
        .iter()
        .filter(|(_, comment)| !comment.is_empty())
        .map(|(command, _)| command.len())
        .max()
        .unwrap_or(0);
    lines
        .into_iter()
        .map(|(command, comment)| {
            if comment.is_empty() {
                command
            } else {
                format!("{command:<width$}  # {comment}")
            }
        })
        .collect()
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

/// Writes a certificate authority (`ca.pem`) and a certificate it signs for localhost,
/// 127.0.0.1, ::1 and the proxies' own addresses (`cert.pem`, `key.pem`, mode 0600) into `dir`
/// (`fig demo --tls`). ECDSA P-256, valid for 90 days, as a public CA would issue.
fn write_demo_certificate(dir: &Path, addresses: &[SocketAddr]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let make = || -> Result<(String, String, String), rcgen::Error> {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fig demo CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        for addr in addresses {
            let ip = addr.ip().to_string();
            if !addr.ip().is_unspecified() && !names.contains(&ip) {
                names.push(ip);
            }
        }
        let mut params = rcgen::CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let now = std::time::SystemTime::now();
        params.not_before = now.into();
        params.not_after = (now + Duration::from_secs(90 * 86_400)).into();
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        Ok((ca.pem(), cert.pem(), key.serialize_pem()))
    };
    let (ca, cert, key) = make().context("cannot generate the demo's TLS certificate")?;
    for (name, text, secret) in [
        ("ca.pem", ca, false),
        ("cert.pem", cert, false),
        ("key.pem", key, true),
    ] {
        let path = dir.join(name);
        let mode = if secret {
            feature_flags::FileMode::OwnerOnly
        } else {
            feature_flags::FileMode::Keep
        };
        feature_flags::write_atomically(&path, text.as_bytes(), mode)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Writes a file only its owner can read (mode 0600 on Unix), also when it already existed.
fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    feature_flags::write_atomically(path, text.as_bytes(), feature_flags::FileMode::OwnerOnly)
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
