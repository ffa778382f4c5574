//! The embedded file store: one JSON file in the client API format, watched, written atomically.
//!
//! Reading: [`open`] loads the file and spawns a watcher that compares the file's metadata
//! (modification time, size, inode) with the last it read, every [`FileConfig::poll_interval`]
//! and at once when the operating system reports a change in the file's directory (`notify`:
//! inotify on Linux). The notification only wakes the check early, so a change is seen within a
//! few milliseconds instead of up to a poll interval later (docs/benchmarks.md); the metadata stays
//! the judge, and polling the fallback where notifications are missing or lost (network file
//! systems, a directory replaced, a full inotify queue). The directory is watched, not the file,
//! because editors and `mv` replace the file by a rename. A changed file that does not parse is
//! refused with line, column and reason, logged, and the last good flags keep serving.
//!
//! Writing: [`FileStore`] takes an exclusive lock on `<file>.lock`, reads, changes, writes a
//! temporary file in the same directory, fsyncs it, renames it over the file and fsyncs the
//! directory, then appends the change to the audit log `<file>.audit.jsonl`. Two writer
//! processes therefore never lose each other's update, and a reader never sees half a file.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use unleash_types::client_features::ClientFeatures;

use crate::Flags;
use crate::edit::{self, Change, ListEdit, Stickiness};
use crate::error::{Error, Result};
use crate::snapshot::{Defaults, Snapshot};

/// How to open a file store.
#[derive(Clone, Debug)]
pub struct FileConfig {
    /// The flags file (client API JSON).
    pub path: PathBuf,
    /// How often the watcher checks the file for a change (default 200 ms).
    pub poll_interval: Duration,
    /// Also check as soon as the operating system reports a change in the file's directory
    /// (default true); polling alone when false or when the directory cannot be watched.
    pub notify: bool,
    /// Filled into contexts that have no `appName`.
    pub app_name: Option<String>,
    /// Filled into contexts that have no `environment`.
    pub environment: Option<String>,
}

impl FileConfig {
    /// A file store on `path`, polled every 200 ms.
    pub fn new(path: impl Into<PathBuf>) -> FileConfig {
        FileConfig {
            path: path.into(),
            poll_interval: Duration::from_millis(200),
            notify: true,
            app_name: None,
            environment: None,
        }
    }
}

/// One line of the audit log: who changed which flag, when, from what to what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339 UTC time of the change.
    pub time: String,
    /// Who made it (`--actor`, else `$USER`).
    pub actor: String,
    /// The flag.
    pub flag: String,
    /// What was done (`create`, `enable`, `rollout`, ...).
    pub action: String,
    /// `old → new` in words.
    pub summary: String,
    /// The flag before (client API JSON), `null` if it did not exist.
    pub old: Option<serde_json::Value>,
    /// The flag after, `null` if deleted.
    pub new: Option<serde_json::Value>,
}

/// Reads and validates a flags file.
///
/// A missing file is an [`Error::Io`] here; [`FileStore::read`] calls it [`Error::NoStore`].
pub fn load_file(path: &Path) -> Result<ClientFeatures> {
    let text = fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    parse_features(path, &text)
}

/// Parses and validates client API JSON; `path` is only used in error messages.
///
/// Refused: invalid JSON or a wrong shape (with line and column), two flags of one name, and
/// strategies or constraints Unleash's engine cannot compile, and an empty text
/// ([`Error::EmptyStore`]), which is never read as "no flags".
pub fn parse_features(path: &Path, text: &str) -> Result<ClientFeatures> {
    if text.trim().is_empty() {
        return Err(Error::EmptyStore(path.to_owned()));
    }
    // serde skips a key the types do not have; in a file a person edits that is a typo that
    // would silently change a flag, so it is refused with the nearest valid key.
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
        && let Some((place, key, nearest)) = crate::explain::unknown_key(&value)
    {
        return Err(Error::UnknownKey {
            path: path.to_owned(),
            place,
            key,
            nearest,
        });
    }
    let features: ClientFeatures = serde_json::from_str(text).map_err(|err| {
        let full = err.to_string();
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        Error::Parse {
            path: path.to_owned(),
            line: err.line(),
            column: err.column(),
            reason: full.strip_suffix(&suffix).unwrap_or(&full).to_owned(),
        }
    })?;
    let mut seen = std::collections::HashSet::new();
    for feature in &features.features {
        if !seen.insert(feature.name.as_str()) {
            return Err(Error::Invalid {
                path: path.to_owned(),
                flag: feature.name.clone(),
                reason: "defined twice".to_owned(),
            });
        }
    }
    let (_, warnings) = Snapshot::compile(features.clone());
    if let Some(warning) = warnings.into_iter().next() {
        let reason = match features
            .features
            .iter()
            .find(|feature| feature.name == warning.toggle_name)
        {
            Some(feature) => crate::explain::explain(&features, feature, &warning.message),
            None => warning.message,
        };
        return Err(Error::Invalid {
            path: path.to_owned(),
            flag: warning.toggle_name,
            reason,
        });
    }
    Ok(features)
}

/// Client API JSON as we write it: pretty, with `null` fields left out.
pub fn to_json(features: &ClientFeatures) -> String {
    let mut value = serde_json::to_value(features).unwrap_or(serde_json::Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, field| !field.is_null());
    }
    let mut res = serde_json::to_string_pretty(&value).unwrap_or_default();
    res.push('\n');
    res
}

pub(crate) async fn open(config: FileConfig) -> Result<Flags> {
    let flags = Flags::new(Defaults {
        app_name: config.app_name.clone(),
        environment: config.environment.clone(),
    });
    let mut stamp = file_stamp(&config.path);
    match load_file(&config.path) {
        Ok(features) => {
            flags.apply(features);
            flags.mark_refreshed();
        }
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %config.path.display(), "flags file does not exist yet; every flag is off until it does");
            flags.set_error(Some(Error::NoStore(config.path.clone()).to_string()));
            stamp = None;
        }
        Err(err) => return Err(err),
    }
    let weak = flags.downgrade();
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let watcher = if config.notify {
        watch_directory(&config.path, wake.clone())
    } else {
        None
    };
    tokio::spawn(async move {
        // Kept here: the watcher stops when the task ends (the last `Flags` is dropped).
        let _watcher = watcher;
        let mut refused: Option<FileStamp> = None;
        let mut missing_logged = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(config.poll_interval) => {}
                () = wake.notified() => {}
            }
            let Some(flags) = Flags::upgrade(&weak) else {
                return;
            };
            let now = file_stamp(&config.path);
            if now == stamp {
                // The flags served are the file's: fresh, unless a missing file never appeared.
                if now.is_some() {
                    flags.mark_refreshed();
                }
                continue;
            }
            if now.is_none() {
                if !missing_logged {
                    flags.set_error(Some(format!(
                        "{}: the flags file is missing; the last flags read keep serving",
                        config.path.display()
                    )));
                    tracing::warn!(path = %config.path.display(), "flags file disappeared; keeping the last flags");
                    missing_logged = true;
                }
                continue;
            }
            missing_logged = false;
            if now == refused {
                continue;
            }
            let _span =
                tracing::info_span!("reload flags", path = %config.path.display()).entered();
            match load_file(&config.path) {
                Ok(features) => {
                    let n_flags = features.features.len();
                    flags.apply(features);
                    flags.mark_refreshed();
                    stamp = now;
                    refused = None;
                    flags.set_error(None);
                    tracing::info!(n_flags, revision = flags.revision(), "flags file reloaded");
                }
                Err(err) => {
                    // A file caught mid-write by a non-atomic writer looks bad too; the next
                    // write changes its stamp and it is read again.
                    tracing::error!("flags file refused, keeping the last good flags: {err}");
                    flags.set_error(Some(err.to_string()));
                    refused = now;
                }
            }
        }
    });
    Ok(flags)
}

/// Watches the directory of `path` and wakes `wake` on any event about `path`'s name; `None`
/// (logged) when it cannot be watched, and then polling alone finds changes.
fn watch_directory(
    path: &Path,
    wake: std::sync::Arc<tokio::sync::Notify>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let name = path.file_name()?.to_owned();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let handler = move |event: notify::Result<notify::Event>| {
        // An error (a full queue, say) may hide a change: check now rather than at the next poll.
        let ours = event.map_or(true, |event| {
            event
                .paths
                .iter()
                .any(|changed| changed.file_name() == Some(name.as_os_str()))
        });
        if ours {
            wake.notify_one();
        }
    };
    let watched = notify::recommended_watcher(handler).and_then(|mut watcher| {
        watcher
            .watch(&dir, notify::RecursiveMode::NonRecursive)
            .map(|()| watcher)
    });
    match watched {
        Ok(watcher) => Some(watcher),
        Err(err) => {
            tracing::info!(dir = %dir.display(), "cannot watch the flags file's directory, polling only: {err}");
            None
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// The writer of a flags file: every change is locked, atomic and audited.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: PathBuf,
    actor: String,
}

impl FileStore {
    /// A writer for `path`, recording `actor` in the audit log.
    pub fn new(path: impl Into<PathBuf>, actor: impl Into<String>) -> FileStore {
        FileStore {
            path: path.into(),
            actor: actor.into(),
        }
    }

    /// The flags file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The audit log next to the flags file: `<file>.audit.jsonl`.
    pub fn audit_path(&self) -> PathBuf {
        sibling(&self.path, "audit.jsonl")
    }

    /// The lock file next to the flags file: `<file>.lock`.
    pub fn lock_path(&self) -> PathBuf {
        sibling(&self.path, "lock")
    }

    /// The flags in the file. A missing file is [`Error::NoStore`] and an empty one
    /// [`Error::EmptyStore`]: a reader never takes a mistyped path for a store without flags.
    pub fn read(&self) -> Result<ClientFeatures> {
        match load_file(&self.path) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::NoStore(self.path.clone()))
            }
            other => other,
        }
    }

    /// What a change starts from: the flags in the file, or none when the file is missing or
    /// empty, so that the first write creates the store.
    fn read_for_write(&self) -> Result<ClientFeatures> {
        match self.read() {
            Err(Error::NoStore(_) | Error::EmptyStore(_)) => Ok(empty()),
            other => other,
        }
    }

    /// Adds a flag, off, with no strategies.
    pub fn create(&self, name: &str, description: Option<&str>) -> Result<Change> {
        self.change(|features| edit::create(features, name, description))
    }

    /// Switches a flag on (adding a 100% rollout if it has no strategy).
    pub fn enable(&self, name: &str) -> Result<Change> {
        self.change(|features| edit::set_enabled(features, name, true))
    }

    /// Switches a flag off.
    pub fn disable(&self, name: &str) -> Result<Change> {
        self.change(|features| edit::set_enabled(features, name, false))
    }

    /// Sets the flag's gradual rollout to `percent`; without `stickiness` it keeps the one it
    /// has (`default` for a new rollout).
    pub fn rollout(
        &self,
        name: &str,
        percent: u32,
        stickiness: Option<Stickiness>,
    ) -> Result<Change> {
        self.change(|features| edit::rollout(features, name, percent, stickiness))
    }

    /// Sets or edits the user ids the flag is on for, while it is on.
    pub fn users(&self, name: &str, edit: &ListEdit) -> Result<Change> {
        self.change(|features| edit::users(features, name, edit))
    }

    /// Sets or edits the IP addresses or CIDR blocks the flag is on for, while it is on.
    pub fn ips(&self, name: &str, edit: &ListEdit) -> Result<Change> {
        self.change(|features| edit::ips(features, name, edit))
    }

    /// Removes a flag.
    pub fn delete(&self, name: &str) -> Result<Change> {
        self.change(|features| edit::delete(features, name))
    }

    /// Replaces the whole file with `features` (validated first), auditing each flag that
    /// changed.
    pub fn import(&self, features: ClientFeatures) -> Result<Vec<Change>> {
        let text = to_json(&features);
        parse_features(&self.path, &text)?;
        self.locked(|current| {
            let mut changes = Vec::new();
            for new in &features.features {
                let old = current.features.iter().find(|f| f.name == new.name);
                if old != Some(new) {
                    changes.push(Change {
                        flag: new.name.clone(),
                        action: "import".to_owned(),
                        old: old.cloned(),
                        new: Some(new.clone()),
                    });
                }
            }
            for old in &current.features {
                if !features.features.iter().any(|f| f.name == old.name) {
                    changes.push(Change {
                        flag: old.name.clone(),
                        action: "import".to_owned(),
                        old: Some(old.clone()),
                        new: None,
                    });
                }
            }
            *current = features.clone();
            Ok(changes)
        })
    }

    /// The audit entries of one flag, oldest first.
    pub fn history(&self, name: &str) -> Result<Vec<AuditEntry>> {
        let path = self.audit_path();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let mut res = Vec::new();
        for (idx, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| Error::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let entry: AuditEntry = serde_json::from_str(&line).map_err(|err| Error::Parse {
                path: path.clone(),
                line: idx + 1,
                column: err.column(),
                reason: err.to_string(),
            })?;
            if entry.flag == name {
                res.push(entry);
            }
        }
        Ok(res)
    }

    fn change(&self, f: impl FnOnce(&mut ClientFeatures) -> Result<Change>) -> Result<Change> {
        self.locked(|features| f(features).map(|change| vec![change]))
            .map(|mut changes| changes.remove(0))
    }

    /// Lock, read, change, write atomically, audit, unlock. Nothing is written on error.
    fn locked(
        &self,
        f: impl FnOnce(&mut ClientFeatures) -> Result<Vec<Change>>,
    ) -> Result<Vec<Change>> {
        let lock_path = self.lock_path();
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        lock.lock().map_err(io("lock", &lock_path))?;
        let mut features = self.read_for_write()?;
        let changes = f(&mut features)?;
        let text = to_json(&features);
        // Never write what the watcher would refuse.
        parse_features(&self.path, &text)?;
        write_atomically(&self.path, text.as_bytes())?;
        self.append_audit(&changes)?;
        drop(lock);
        Ok(changes)
    }

    fn append_audit(&self, changes: &[Change]) -> Result<()> {
        let path = self.audit_path();
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut text = String::new();
        for change in changes {
            let entry = AuditEntry {
                time: time.clone(),
                actor: self.actor.clone(),
                flag: change.flag.clone(),
                action: change.action.clone(),
                summary: change.summary(),
                old: change
                    .old
                    .as_ref()
                    .and_then(|f| serde_json::to_value(f).ok()),
                new: change
                    .new
                    .as_ref()
                    .and_then(|f| serde_json::to_value(f).ok()),
            };
            text.push_str(&serde_json::to_string(&entry).unwrap_or_default());
            text.push('\n');
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| Error::Io {
                action: "open",
                path: path.clone(),
                source,
            })?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|source| Error::Io {
                action: "append to",
                path,
                source,
            })
    }
}

/// Writes `bytes` to `path` with [`crate::write_atomically`], keeping the file's mode. Readers see
/// the old file or the new one, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::atomic::write_atomically(path, bytes, crate::atomic::FileMode::Keep).map_err(|source| {
        Error::Io {
            action: "write",
            path: path.to_owned(),
            source,
        }
    })
}

/// `flags.json` + `lock` → `flags.json.lock`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

pub(crate) fn empty() -> ClientFeatures {
    ClientFeatures {
        version: 2,
        features: Vec::new(),
        segments: None,
        query: None,
        meta: None,
    }
}
