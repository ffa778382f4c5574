//! Route pins: which routes are rolled back to their fallback, kept in a state file.
//!
//! Each route name has one `AtomicBool`, shared by every compiled route table of that name, so a
//! rollback is in force for the next request that loads it, across reloads. The state file is
//! JSON (`{"schema_version": 1, "pinned": ["payments"]}`), written to a temporary file and renamed
//! over the old one so a crash never leaves half a file. Names that are not (or no longer) in the
//! config are kept: removing a route and adding it back keeps its pin.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Error;

/// The pins of every route name, and where they are persisted.
#[derive(Debug)]
pub struct Pins {
    file: Option<PathBuf>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    pinned: BTreeSet<String>,
    flags: HashMap<String, Arc<AtomicBool>>,
    rollbacks: HashMap<String, Arc<AtomicU64>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateFile {
    schema_version: u32,
    pinned: BTreeSet<String>,
}

impl Pins {
    /// Opens the pins, reading `file` when it exists.
    pub fn open(file: Option<PathBuf>) -> Result<Pins, Error> {
        let mut inner = Inner::default();
        if let Some(path) = &file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let state: StateFile =
                        serde_json::from_str(&text).map_err(|err| Error::State {
                            path: path.clone(),
                            reason: format!("not a state file: {err}"),
                        })?;
                    for name in state.pinned {
                        inner
                            .flags
                            .insert(name.clone(), Arc::new(AtomicBool::new(true)));
                        inner.pinned.insert(name);
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(Error::State {
                        path: path.clone(),
                        reason: err.to_string(),
                    });
                }
            }
        }
        Ok(Pins {
            file,
            inner: Mutex::new(inner),
        })
    }

    /// The state file, if pins are persisted.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The pin of route `name`, shared with every other holder of that name.
    pub fn flag(&self, name: &str) -> Arc<AtomicBool> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.flags.entry(name.to_owned()).or_default().clone()
    }

    /// Whether route `name` is pinned.
    pub fn is_pinned(&self, name: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.pinned.contains(name)
    }

    /// Pinned route names.
    pub fn pinned(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.pinned.iter().cloned().collect()
    }

    /// How many times route `name` was rolled back since start.
    pub fn rollbacks(&self) -> Vec<(String, u64)> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut res: Vec<_> = inner
            .rollbacks
            .iter()
            .map(|(name, n)| (name.clone(), n.load(Ordering::Relaxed)))
            .collect();
        res.sort();
        res
    }

    /// Pins (`true`) or unpins route `name`. The pin is in force when this returns, even if
    /// persisting it fails (the error says so): a rollback must not wait for a disk.
    /// Returns whether anything changed.
    pub fn set(&self, name: &str, pinned: bool) -> Result<bool, Error> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .flags
            .entry(name.to_owned())
            .or_default()
            .store(pinned, Ordering::SeqCst);
        let changed = if pinned {
            inner.pinned.insert(name.to_owned())
        } else {
            inner.pinned.remove(name)
        };
        if changed && pinned {
            inner
                .rollbacks
                .entry(name.to_owned())
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
        if changed && let Some(path) = &self.file {
            write_state(path, &inner.pinned)?;
        }
        Ok(changed)
    }
}

fn write_state(path: &Path, pinned: &BTreeSet<String>) -> Result<(), Error> {
    let state = StateFile {
        schema_version: 1,
        pinned: pinned.clone(),
    };
    let fail = |reason: String| Error::State {
        path: path.to_path_buf(),
        reason,
    };
    let mut text = serde_json::to_string_pretty(&state).map_err(|err| fail(err.to_string()))?;
    text.push('\n');
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .map_err(|err| fail(format!("cannot write {}: {err}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|err| fail(format!("cannot replace it: {err}")))?;
    Ok(())
}
