//! Feature flags that evaluate exactly as Unleash does, from a file or from an Unleash server.
//!
//! The proxy, the CLI and tests all use one handle, [`Flags`]. It is opened on a
//! [`StoreConfig`] — a JSON file ([`FileConfig`], the embedded default) or an Unleash server
//! ([`UnleashConfig`]) — and from then on answers from an in-memory snapshot:
//!
//! ```no_run
//! # async fn demo() -> Result<(), feature_flags::Error> {
//! use feature_flags::{Context, FileConfig, Flags, StoreConfig};
//!
//! let flags = Flags::open(StoreConfig::File(FileConfig::new("flags.json"))).await?;
//! let ctx = Context { user_id: Some("42".into()), ..Context::default() };
//! if flags.is_enabled("new-checkout", &ctx) { /* route to the new service */ }
//! let mut changes = flags.changes();          // revision, bumped on every applied change
//! # let _ = changes.changed().await;
//! # Ok(()) }
//! ```
//!
//! The public surface, which the proxy relies on:
//!
//! - [`Flags::open`] loads the flags and spawns the watcher (file) or poller (Unleash) on the
//!   current tokio runtime. The task ends when the last clone of the handle is dropped.
//! - [`Flags::is_enabled`], [`Flags::variant`] and [`Flags::evaluate`] (enabled, variant and
//!   the [`Reason`]: which strategy decided) take `&Context` or a borrowed [`ContextRef`].
//! - [`Flags::list`], [`Flags::changes`], [`Flags::is_ready`], [`Flags::staleness`],
//!   [`Flags::last_error`].
//! - [`Flags::from_features`] makes a fixed store from client API JSON, for tests and tools.
//! - [`FileStore`] is the writer for the file store (the CLI's `create/enable/disable/rollout/
//!   users/ips/delete/import`), and [`UnleashAdmin`] does the same through Unleash's Admin API.
//!
//! # Design
//!
//! **Evaluation is Unleash's own engine.** Every strategy, constraint operator, segment,
//! variant and dependency is evaluated by `unleash-yggdrasil`, the engine Unleash's SDKs share,
//! so a user at 37% of a rollout lands in the same bucket as with any Unleash SDK. This crate adds
//! what the engine leaves to an SDK: loading, watching, polling, backup, metrics and writing.
//! The test `tests/spec.rs` runs all 279 cases of Unleash's client specification against
//! [`Flags`]. The one shortcut: when a snapshot is built, a flag whose answer cannot depend on
//! the context (switched off, or on with no strategy or with an unconstrained `default` or 100%
//! rollout, and no parent flags; `constant.rs` lists the rules and where yggdrasil makes them
//! true) is marked, and [`Flags::is_enabled`] answers it without the engine.
//!
//! **Evaluation never waits.** [`Flags`] holds an `ArcSwap` of a compiled snapshot. A change is
//! compiled off the request path and swapped in whole; an evaluation loads the current pointer,
//! evaluates, and bumps an atomic usage counter. It performs no I/O, takes no lock and never
//! fails: an unknown flag is off. When the file turns bad or the server goes away, the last good
//! snapshot keeps serving.
//!
//! **Allocation.** [`Flags::is_enabled`] allocates nothing of its own; with a borrowed
//! [`ContextRef`] (or a `&Context` built once per request) the proxy's path allocates only
//! where yggdrasil does: once for a gradual rollout below 100% (it hashes `"{groupId}:{userId}"` from a
//! formatted string) and for date constraints without a `currentTime`. [`Flags::variant`] and
//! [`Flags::evaluate`] return owned names. `benches/evaluate.rs` counts allocations per call.
//!
//! **The file format is the client API's.** A flags file is exactly the body of Unleash's
//! `GET /api/client/features` (`version`, `features`, `segments`), so a file exported from a
//! server imports back unchanged and the Unleash backup file is a valid flags file.

#![warn(missing_docs, unreachable_pub)]

mod admin;
mod atomic;
mod constant;
mod context;
mod edit;
mod error;
mod explain;
mod file;
mod hint;
mod snapshot;
mod unleash;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use unleash_types::client_metrics::ToggleStats;

pub use admin::UnleashAdmin;
pub use atomic::{FileMode, create_atomically, write_atomically, write_atomically_with};
pub use context::{Context, ContextRef};
pub use edit::{Change, ListEdit, Stickiness, describe, describe_strategy};
pub use error::{Error, Result};
pub use file::{AuditEntry, FileConfig, FileStore, load_file, parse_features, to_json};
pub use hint::{did_you_mean, nearest_name};
pub use snapshot::{Evaluation, FlagSummary, Payload, Reason, Variant};
pub use unleash::{UnleashConfig, fetch_features, wait_until_visible};
pub use unleash_types::client_features::{ClientFeature, ClientFeatures};

use snapshot::{Defaults, Snapshot};

/// Where the flags come from.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// A JSON file in the client API format, watched for changes (the embedded default).
    File(FileConfig),
    /// An Unleash server, polled through its client API.
    Unleash(UnleashConfig),
}

/// A handle on a flag store: cheap to clone, `Send + Sync`, evaluations never block.
#[derive(Clone)]
pub struct Flags {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    defaults: Defaults,
    revision: watch::Sender<u64>,
    ready: AtomicBool,
    /// When the flags served were last fetched or confirmed current (the server answered, or
    /// the watcher found the file good).
    refreshed: Mutex<Option<Instant>>,
    /// Why the last reload or poll failed, cleared by the next success.
    last_error: Mutex<Option<String>>,
    /// Usage counts of snapshots already replaced, not yet sent as metrics.
    pending_counts: Mutex<std::collections::HashMap<String, ToggleStats>>,
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flags")
            .field("revision", &*self.inner.revision.borrow())
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl Flags {
    /// Opens a store and spawns its watcher or poller on the current tokio runtime.
    ///
    /// A file store fails to open when its file exists but is invalid (the error gives line,
    /// column and reason); a missing file is an empty store that fills in when the file
    /// appears. An Unleash store opens even when the server is unreachable: it serves from its
    /// backup file if there is one, or else serves nothing (every flag off) until the server
    /// answers; a server that refuses the client token is an error. Must be called within a
    /// tokio runtime.
    pub async fn open(config: StoreConfig) -> Result<Flags> {
        match config {
            StoreConfig::File(config) => file::open(config).await,
            StoreConfig::Unleash(config) => unleash::open(config).await,
        }
    }

    /// A store fixed at `features`, with no watcher: for tests, tools and the spec suite.
    ///
    /// Flags whose rules cannot be compiled are off, as in every Unleash SDK, and logged.
    pub fn from_features(features: ClientFeatures) -> Flags {
        let flags = Flags::new(Defaults::default());
        let warnings = flags.apply(features);
        for (flag, reason) in explain::explain_warnings(&flags, warnings) {
            tracing::warn!(flag = %flag, "{reason}");
        }
        flags
    }

    /// Whether `name` is on for `ctx`. An unknown flag is off. Never blocks, never fails.
    pub fn is_enabled<'a>(&self, name: &str, ctx: impl Into<ContextRef<'a>>) -> bool {
        let ctx = ctx.into();
        self.inner
            .snapshot
            .load()
            .is_enabled(name, &ctx, &self.inner.defaults)
    }

    /// Whether `name` is on, when the answer is the same for every context (a 100% rollout, a
    /// disabled flag, an unknown one: see `constant.rs`); `None` when the context decides, and
    /// [`Flags::is_enabled`] must be asked with one. Lets a caller skip building a context it
    /// would not need; an answer here is counted like any evaluation.
    pub fn is_enabled_for_everyone(&self, name: &str) -> Option<bool> {
        self.inner.snapshot.load().is_enabled_for_everyone(name)
    }

    /// The variant of `name` that `ctx` gets (`"disabled"` when the flag is off).
    pub fn variant<'a>(&self, name: &str, ctx: impl Into<ContextRef<'a>>) -> Variant {
        let ctx = ctx.into();
        self.inner
            .snapshot
            .load()
            .variant(name, &ctx, &self.inner.defaults)
    }

    /// Whether `name` is on for `ctx`, its variant, and which strategy decided.
    pub fn evaluate<'a>(&self, name: &str, ctx: impl Into<ContextRef<'a>>) -> Evaluation {
        let ctx = ctx.into();
        self.inner
            .snapshot
            .load()
            .evaluate(name, &ctx, &self.inner.defaults)
    }

    /// Every flag, sorted by name.
    pub fn list(&self) -> Vec<FlagSummary> {
        self.inner.snapshot.load().list()
    }

    /// The flag's full definition (client API format), if it exists.
    pub fn feature(&self, name: &str) -> Option<ClientFeature> {
        self.inner.snapshot.load().feature(name).cloned()
    }

    /// All flags as loaded, in the client API format (what `fig flags export` writes).
    pub fn features(&self) -> ClientFeatures {
        self.inner.snapshot.load().features().clone()
    }

    /// A receiver of the revision number, bumped each time a change is applied.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.revision.subscribe()
    }

    /// The current revision (0 before anything was loaded).
    pub fn revision(&self) -> u64 {
        *self.inner.revision.borrow()
    }

    /// Whether flags have been loaded, from the file, the server or the backup.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// How old the flags being served are: for Unleash, the time since the server last
    /// answered; for a file store, the time since the watcher last found the file good and
    /// served it (it grows while the file is missing or refused). `None` before the first load.
    pub fn staleness(&self) -> Option<Duration> {
        let refreshed = *self
            .inner
            .refreshed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        refreshed.map(|at| at.elapsed())
    }

    /// Why the last reload (file) or poll (Unleash) failed, if it did and nothing has
    /// succeeded since: e.g. `flags.json:3:16: expected value`. The last good flags are serving.
    pub fn last_error(&self) -> Option<String> {
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_error(&self, error: Option<String>) {
        *self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = error;
    }

    fn new(defaults: Defaults) -> Flags {
        let (revision, _) = watch::channel(0);
        Flags {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(Snapshot::empty()),
                defaults,
                revision,
                ready: AtomicBool::new(false),
                refreshed: Mutex::new(None),
                last_error: Mutex::new(None),
                pending_counts: Mutex::new(Default::default()),
            }),
        }
    }

    /// Compiles and swaps in `features`, bumps the revision; returns yggdrasil's warnings.
    fn apply(&self, features: ClientFeatures) -> Vec<unleash_yggdrasil::EvalWarning> {
        let (snapshot, warnings) = Snapshot::compile(features);
        let old = self.inner.snapshot.swap(Arc::new(snapshot));
        merge_counts(
            &mut self
                .inner
                .pending_counts
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            old.take_counts(),
        );
        self.inner.ready.store(true, Ordering::Release);
        self.inner.revision.send_modify(|revision| *revision += 1);
        warnings
    }

    /// Usage counts since the last call, for Unleash metrics.
    fn take_counts(&self) -> std::collections::HashMap<String, ToggleStats> {
        let mut acc = std::mem::take(
            &mut *self
                .inner
                .pending_counts
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        merge_counts(&mut acc, self.inner.snapshot.load().take_counts());
        acc
    }

    fn mark_refreshed(&self) {
        *self
            .inner
            .refreshed
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Flags> {
        weak.upgrade().map(|inner| Flags { inner })
    }
}

fn merge_counts(
    acc: &mut std::collections::HashMap<String, ToggleStats>,
    more: std::collections::HashMap<String, ToggleStats>,
) {
    for (name, stats) in more {
        let entry = acc.entry(name).or_default();
        entry.yes += stats.yes;
        entry.no += stats.no;
        for (variant, count) in stats.variants {
            *entry.variants.entry(variant).or_default() += count;
        }
    }
}

#[cfg(test)]
mod tests;
