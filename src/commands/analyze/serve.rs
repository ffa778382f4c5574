//! `fig analyze --serve ADDR [--watch]`: the HTML report on a local port, analysed again when
//! the workspace changes.
//!
//! Three paths: `/` (the page of the latest good analysis), `/report.json` (its JSON document)
//! and `/version?after=N`, a long poll that answers as soon as the analysis is newer than `N`
//! (or after [`LONG_POLL`]) with `{"version": .., "error": ..}`; the page's script asks it and
//! reloads when there is a newer version. An analysis that fails (a file being written, a broken
//! manifest) keeps the last good page and reports the error through `/version`.
//!
//! The watcher is a thread that polls the modification times of the workspace's `.rs` files and
//! manifests (no extra dependency, and it works the same on every file system, including
//! network and container mounts where change notification is unreliable). A change is analysed
//! once the files have stood still for one more poll, off the request path: requests only ever
//! read the last published snapshot.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use super::{ReportArgs, html, load};
use crate::output;

/// How long `/version` waits for a newer analysis before answering with the current one.
const LONG_POLL: Duration = Duration::from_secs(25);
/// How often the watcher looks at the files.
const POLL: Duration = Duration::from_millis(400);

/// One analysis, rendered: what every request reads.
struct Snapshot {
    version: u64,
    page: Bytes,
    json: Bytes,
    /// The last analysis that failed after this one, if any.
    error: Option<String>,
}

/// Serves the report until the process is stopped.
pub fn run(
    args: &ReportArgs,
    addr: SocketAddr,
    watch_files: bool,
    allow_remote: bool,
) -> anyhow::Result<ExitCode> {
    if !addr.ip().is_loopback() && !allow_remote {
        anyhow::bail!(
            "refusing to serve on {addr}: not a loopback address, and the report shows the \
             workspace's paths and code to whoever reaches it; use 127.0.0.1 or [::1], or pass \
             --allow-remote"
        );
    }
    let first = snapshot(args, 1)?;
    let (sender, receiver) = watch::channel(Arc::new(first));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        // Stdout carries the address only, so that a script (or a test) can read it.
        println!("serving http://{bound}/");
        std::io::Write::flush(&mut std::io::stdout()).context("writing to stdout")?;
        // Without a watcher the sender stays here, alive as long as the server: `/version`
        // then waits out its long poll instead of seeing a closed channel.
        let _unwatched = if watch_files {
            let watched = args.clone();
            std::thread::Builder::new()
                .name("fig-watch".to_owned())
                .spawn(move || watch_loop(&watched, &sender))
                .context("starting the watcher")?;
            eprintln!("watching {} for changes", args.path.display());
            None
        } else {
            Some(sender)
        };
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let receiver = receiver.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let receiver = receiver.clone();
                    async move {
                        Ok::<_, Infallible>(respond(request, receiver, bound, allow_remote).await)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(err) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!(%err, "connection ended");
                }
            });
        }
    })
}

/// Analyses and renders version `version`.
fn snapshot(args: &ReportArgs, version: u64) -> anyhow::Result<Snapshot> {
    let report = load(args)?;
    let page = html(&report, Some(version))?;
    let json = super::json(&output::report(&report))?;
    Ok(Snapshot {
        version,
        page: Bytes::from(page),
        json: Bytes::from(json),
        error: None,
    })
}

/// Polls the workspace's files; analyses again once a change has settled.
fn watch_loop(args: &ReportArgs, sender: &watch::Sender<Arc<Snapshot>>) {
    let root = std::fs::canonicalize(&args.path).unwrap_or_else(|_| args.path.clone());
    let root = if root.is_file() {
        root.parent().map_or(root.clone(), Path::to_path_buf)
    } else {
        root
    };
    let mut seen = fingerprint(&root);
    loop {
        std::thread::sleep(POLL);
        let now = fingerprint(&root);
        if now == seen {
            continue;
        }
        // Wait until the files stand still (an editor writing several files, a `git checkout`).
        let mut settled = now;
        loop {
            std::thread::sleep(POLL);
            let again = fingerprint(&root);
            if again == settled {
                break;
            }
            settled = again;
        }
        seen = settled;
        let current = sender.borrow().version;
        match snapshot(args, current + 1) {
            Ok(next) => {
                eprintln!("analysed again: version {}", next.version);
                sender.send_replace(Arc::new(next));
            }
            Err(err) => {
                let message = format!("{err:#}");
                eprintln!("analysis failed, still serving version {current}: {message}");
                let last = sender.borrow().clone();
                sender.send_replace(Arc::new(Snapshot {
                    version: last.version,
                    page: last.page.clone(),
                    json: last.json.clone(),
                    error: Some(message),
                }));
            }
        }
    }
}

/// Path → (modification time, length) of every `.rs` file and `Cargo.toml` under `root`,
/// outside `target/` and hidden directories.
fn fingerprint(root: &Path) -> BTreeMap<PathBuf, (Option<SystemTime>, u64)> {
    let mut res = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    dirs.push(entry.path());
                }
            } else if (name.ends_with(".rs") || name == "Cargo.toml" || name == "Cargo.lock")
                && let Ok(meta) = entry.metadata()
            {
                res.insert(entry.path(), (meta.modified().ok(), meta.len()));
            }
        }
    }
    res
}

/// Whether `Host` names this server: a loopback name or address with the bound port. A page on
/// another site cannot then read the report through a name it points at 127.0.0.1 (DNS
/// rebinding).
fn host_allowed(host: &str, bound: SocketAddr) -> bool {
    let port = bound.port().to_string();
    let Some((name, host_port)) = host.rsplit_once(':') else {
        return false;
    };
    host_port == port && matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

async fn respond(
    request: Request<Incoming>,
    mut receiver: watch::Receiver<Arc<Snapshot>>,
    bound: SocketAddr,
    allow_remote: bool,
) -> Response<Full<Bytes>> {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !allow_remote && !host_allowed(host, bound) {
        return plain(
            StatusCode::FORBIDDEN,
            "this server answers only to its loopback address\n",
        );
    }
    if request.method() != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match request.uri().path() {
        "/" | "/index.html" => {
            let snap = receiver.borrow().clone();
            body(
                StatusCode::OK,
                "text/html; charset=utf-8",
                snap.page.clone(),
            )
        }
        "/report.json" => {
            let snap = receiver.borrow().clone();
            body(StatusCode::OK, "application/json", snap.json.clone())
        }
        "/version" => {
            let after = request
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|pair| pair.strip_prefix("after="))
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or(0);
            let wait = async {
                loop {
                    let snap = receiver.borrow_and_update().clone();
                    if snap.version > after || snap.error.is_some() {
                        return snap;
                    }
                    if receiver.changed().await.is_err() {
                        return snap;
                    }
                }
            };
            let snap = match tokio::time::timeout(LONG_POLL, wait).await {
                Ok(snap) => snap,
                Err(_) => receiver.borrow().clone(),
            };
            let doc = serde_json::json!({ "version": snap.version, "error": snap.error });
            body(
                StatusCode::OK,
                "application/json",
                Bytes::from(doc.to_string()),
            )
        }
        // Browsers ask for it on their own; nothing to show, and no error in the page's console.
        "/favicon.ico" => body(StatusCode::NO_CONTENT, "image/x-icon", Bytes::new()),
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn body(status: StatusCode, content_type: &'static str, bytes: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response.headers_mut().insert(
        CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    body(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_with_the_port_are_answered() {
        let bound: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert!(host_allowed("127.0.0.1:4321", bound));
        assert!(host_allowed("localhost:4321", bound));
        assert!(!host_allowed("evil.example:4321", bound));
        assert!(!host_allowed("127.0.0.1:80", bound));
        assert!(!host_allowed("127.0.0.1", bound));
    }
}
