//! The demo's proxy replicas: `fig proxy` child processes, started, watched, restarted, stopped.
//!
//! Each replica is the current executable run as `fig proxy --config FILE
//! --stop-on-stdin-close`, with a pipe as its standard input. The demo never writes to the pipe;
//! it only holds the write end. Closing it (on Ctrl-C or SIGTERM), or the demo ending in any way
//! (the kernel closes it then, even on SIGKILL), makes the replica drain and exit, so none is
//! left behind. On Unix each replica runs in a process group of its own, so a Ctrl-C at the
//! terminal reaches only the demo, which then stops the replicas in order.
//!
//! A replica that exits while the demo runs is started again on the same addresses, after a
//! short pause; one that keeps exiting soon after its start stops the demo with an error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;

/// How long a replica may take to print its addresses (a debug build, a slow Unleash).
const STARTUP: Duration = Duration::from_secs(60);
/// How long a stopping replica gets to drain before it is killed: its `drain_timeout` (30 s by
/// default) and a margin.
const STOP: Duration = Duration::from_secs(35);
/// The pause before a replica that exited is started again.
const RESTART_PAUSE: Duration = Duration::from_millis(500);
/// A replica that exits sooner than this after its start counts as a failed start.
const QUICK_EXIT: Duration = Duration::from_secs(10);
/// Failed starts in a row after which the demo gives up.
const MAX_QUICK_EXITS: u32 = 3;

/// A running replica.
pub(super) struct Replica {
    /// 1-based, as printed.
    pub(super) number: usize,
    /// Where its proxy listens.
    pub(super) proxy: SocketAddr,
    /// Where its admin API listens.
    pub(super) admin: SocketAddr,
    config: PathBuf,
    child: Child,
    /// The pipe whose closing stops the replica.
    stdin: Option<ChildStdin>,
    started: Instant,
}

impl Replica {
    /// The replica's process id (0 once it has been reaped).
    pub(super) fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// Starts replica `number` on `config` and waits until it prints its addresses. `addresses`
/// replaces the config's listeners, for a restart on the ports the replica had.
pub(super) async fn start(
    number: usize,
    config: &Path,
    addresses: Option<(SocketAddr, SocketAddr)>,
) -> anyhow::Result<Replica> {
    let exe = std::env::current_exe().context("cannot find the fig executable to run replicas")?;
    let mut command = Command::new(exe);
    command
        .arg("proxy")
        .arg("--config")
        .arg(config)
        .arg("--stop-on-stdin-close");
    if let Some((proxy, admin)) = addresses {
        command
            .arg("--listen")
            .arg(proxy.to_string())
            .arg("--admin")
            .arg(admin.to_string());
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Only on paths where the demo fails before supervising; the pipe covers the rest.
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start replica {number}"))?;
    let stdin = child.stdin.take();
    let stdout = child
        .stdout
        .take()
        .context("the replica's stdout is not piped")?;
    let read = read_addresses(stdout);
    let (proxy, admin, stdout) = match tokio::time::timeout(STARTUP, read).await {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => {
            let status = child.wait().await.ok();
            let status = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
            bail!("replica {number} stopped before it listened ({status}): {err:#}");
        }
        Err(_) => bail!("replica {number} printed no address within {STARTUP:?}"),
    };
    // The rest of its stdout (an access log, if configured) is drained, so it never blocks.
    tokio::spawn(async move {
        let mut lines = stdout.lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    Ok(Replica {
        number,
        proxy,
        admin,
        config: config.to_path_buf(),
        child,
        stdin,
        started: Instant::now(),
    })
}

/// Reads `listening on http(s)://ADDR` and `admin on http://ADDR` from a replica's stdout.
async fn read_addresses(
    stdout: ChildStdout,
) -> anyhow::Result<(SocketAddr, SocketAddr, BufReader<ChildStdout>)> {
    let mut reader = BufReader::new(stdout);
    let (mut proxy, mut admin) = (None, None);
    while proxy.is_none() || admin.is_none() {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            bail!("its error is above");
        }
        let parse = |text: &str| -> anyhow::Result<SocketAddr> {
            text.trim()
                .parse()
                .with_context(|| format!("`{}` is not an address", text.trim()))
        };
        let listening = line
            .strip_prefix("listening on http://")
            .or_else(|| line.strip_prefix("listening on https://"));
        if let Some(rest) = listening {
            proxy.get_or_insert(parse(rest)?);
        } else if let Some(rest) = line.strip_prefix("admin on http://") {
            admin = Some(parse(rest)?);
        }
    }
    match (proxy, admin) {
        (Some(proxy), Some(admin)) => Ok((proxy, admin, reader)),
        _ => bail!("no address"),
    }
}

/// Watches the replicas until `stop` resolves, restarting those that exit, then stops them all.
/// Fails when a replica cannot be kept running (it is stopped with the others first).
pub(super) async fn supervise(
    replicas: Vec<Replica>,
    stop: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (stop_sender, stop_receiver) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for replica in replicas {
        tasks.spawn(watch_replica(replica, stop_receiver.clone()));
    }
    let failed = tokio::select! {
        () = stop => None,
        Some(ended) = tasks.join_next() => Some(ended),
    };
    let _ = stop_sender.send(true);
    let mut ended: Vec<_> = failed.into_iter().collect();
    while let Some(outcome) = tasks.join_next().await {
        ended.push(outcome);
    }
    let mut res = Ok(());
    for outcome in ended {
        let err = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(err)) => err,
            Err(err) => anyhow::anyhow!("a replica's watcher failed: {err}"),
        };
        // The first failure is the one to report; the others follow from it.
        if res.is_ok() {
            res = Err(err);
        }
    }
    res
}

/// Restarts `replica` whenever it exits, until `stop` turns true; then stops it.
async fn watch_replica(
    mut replica: Replica,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut quick_exits = 0;
    loop {
        let status = tokio::select! {
            biased;
            () = stopped(&mut stop) => return stop_replica(replica).await,
            status = replica.child.wait() => status,
        };
        let number = replica.number;
        let status = status.map_or_else(
            |err| format!("cannot wait for it: {err}"),
            |s| s.to_string(),
        );
        if replica.started.elapsed() < QUICK_EXIT {
            quick_exits += 1;
        } else {
            quick_exits = 1;
        }
        if quick_exits >= MAX_QUICK_EXITS {
            bail!("replica {number} exited {quick_exits} times soon after starting ({status})");
        }
        // A Ctrl-C may have stopped the replica as well as the demo: give the stop a moment.
        tokio::select! {
            biased;
            () = stopped(&mut stop) => return Ok(()),
            () = tokio::time::sleep(RESTART_PAUSE) => {}
        }
        say(&format!(
            "fig demo: replica {number} exited ({status}); starting it again"
        ));
        let addresses = Some((replica.proxy, replica.admin));
        let config = replica.config.clone();
        replica = tokio::select! {
            biased;
            () = stopped(&mut stop) => return Ok(()),
            started = start(number, &config, addresses) => started?,
        };
        say(&format!(
            "fig demo: replica {number} is back (pid {}): proxy http://{}, admin http://{}",
            replica.pid(),
            replica.proxy,
            replica.admin
        ));
    }
}

/// Writes one line to stderr in a single write. The replicas share the demo's stderr, and
/// `eprintln!` writes a formatted line piece by piece, so a replica's log line could land in
/// the middle of it; one write of less than a pipe's buffer is never split.
fn say(line: &str) {
    use std::io::Write as _;
    let line = format!("{line}\n");
    // Nothing to do if stderr is gone.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Resolves once the demo is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens when the demo is ending anyway.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Closes the replica's pipe, which makes it drain and exit; kills it if it takes too long.
async fn stop_replica(mut replica: Replica) -> anyhow::Result<()> {
    drop(replica.stdin.take());
    match tokio::time::timeout(STOP, replica.child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => {
            tracing::warn!(replica = replica.number, %status, "the replica stopped with an error");
            Ok(())
        }
        Ok(Err(err)) => Err(err).with_context(|| format!("waiting for replica {}", replica.number)),
        Err(_) => {
            tracing::warn!(
                replica = replica.number,
                "the replica did not stop within {STOP:?}; killing it"
            );
            replica
                .child
                .kill()
                .await
                .with_context(|| format!("cannot kill replica {}", replica.number))
        }
    }
}
