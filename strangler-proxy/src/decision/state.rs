//! Route pins: which routes are rolled back to their fallback, kept in a state file.
//!
//! Each route name has one `AtomicBool`, shared by every compiled route table of that name, so a
//! rollback is in force for the next request that loads it, across reloads. The state file is
//! JSON (`{"schema_version": 1, "pinned": ["payments"], "details": {...}}`), replaced with
//! `feature_flags::write_atomically` (a temporary file of a random name, created exclusively,
//! synced and renamed over the old one) so a crash never leaves half a file and a symlink planted
//! next to it is never followed. Names that are
//! not (or no longer) in the config are kept: removing a route and adding it back keeps its pin.
//!
//! Each pin carries a [`PinInfo`]: who pinned it (an operator through the admin API, or the SLO
//! checker of `slo.rs`), why and when. `details` is optional in the file, so state files written
//! before it existed still load (their pins read as made by `admin`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// Who pinned a route, why and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinInfo {
    /// Who: an operator (`admin`) or the SLO checker (`slo`).
    pub by: PinnedBy,
    /// Why, for a pin made by the SLO checker, e.g. `slo: 5xx rate 62% > 5% over 30s (124 requests)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When (RFC 3339, UTC); `None` for pins read from an older state file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// What became of turning the route's flag off, when the SLO asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_off: Option<FlagOff>,
}

/// Who pinned a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinnedBy {
    /// `POST /routes/{name}/rollback` (`fig route rollback`).
    Admin,
    /// The SLO checker, when the route's service broke its SLO.
    Slo,
}

/// The outcome of turning a route's flag off after an SLO rollback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlagOff {
    /// The flag.
    pub flag: String,
    /// Whether the flag store took the change.
    pub done: bool,
    /// What happened, in words (the error when it failed).
    pub message: String,
}

impl PinnedBy {
    /// `admin` or `slo`.
    pub fn as_str(self) -> &'static str {
        match self {
            PinnedBy::Admin => "admin",
            PinnedBy::Slo => "slo",
        }
    }
}

impl PinInfo {
    /// A pin made now through the admin API.
    pub fn admin() -> PinInfo {
        PinInfo {
            by: PinnedBy::Admin,
            reason: None,
            at: Some(now()),
            flag_off: None,
        }
    }

    /// A pin made now by the SLO checker, for `reason`.
    pub fn slo(reason: String) -> PinInfo {
        PinInfo {
            by: PinnedBy::Slo,
            reason: Some(reason),
            at: Some(now()),
            flag_off: None,
        }
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[derive(Debug, Default)]
struct Inner {
    pinned: BTreeSet<String>,
    details: BTreeMap<String, PinInfo>,
    flags: HashMap<String, Arc<AtomicBool>>,
    rollbacks: HashMap<String, Arc<AtomicU64>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateFile {
    schema_version: u32,
    pinned: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    details: BTreeMap<String, PinInfo>,
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
                    let mut details = state.details;
                    for name in state.pinned {
                        let info = details.remove(&name).unwrap_or(PinInfo {
                            by: PinnedBy::Admin,
                            reason: None,
                            at: None,
                            flag_off: None,
                        });
                        inner.details.insert(name.clone(), info);
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

    /// Who pinned route `name`, why and when; `None` when it is not pinned.
    pub fn info(&self, name: &str) -> Option<PinInfo> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.details.get(name).cloned()
    }

    /// Pins route `name` with `info`, unless it is pinned already (then its first reason stays).
    /// As [`Pins::set`], the pin is in force even when persisting fails; an error means it changed.
    pub fn pin(&self, name: &str, info: PinInfo) -> Result<bool, Error> {
        self.change(name, Some(info))
    }

    /// Records what became of turning the flag of route `name` off, if it is still pinned by the
    /// SLO checker.
    pub fn note_flag_off(&self, name: &str, flag_off: FlagOff) -> Result<(), Error> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(info) = inner.details.get_mut(name) else {
            return Ok(());
        };
        if info.by != PinnedBy::Slo {
            return Ok(());
        }
        info.flag_off = Some(flag_off);
        match &self.file {
            Some(path) => write_state(path, &inner.pinned, &inner.details),
            None => Ok(()),
        }
    }

    /// Pins (`true`, as the admin API does) or unpins route `name`. The pin is in force when this
    /// returns, even if persisting it fails (the error says so): a rollback must not wait for a
    /// disk. Returns whether anything changed.
    pub fn set(&self, name: &str, pinned: bool) -> Result<bool, Error> {
        self.change(name, pinned.then(PinInfo::admin))
    }

    fn change(&self, name: &str, info: Option<PinInfo>) -> Result<bool, Error> {
        let pinned = info.is_some();
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
        match info {
            Some(info) if changed => {
                inner.details.insert(name.to_owned(), info);
            }
            Some(_) => {}
            None => {
                inner.details.remove(name);
            }
        }
        if changed && pinned {
            inner
                .rollbacks
                .entry(name.to_owned())
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
        if changed && let Some(path) = &self.file {
            write_state(path, &inner.pinned, &inner.details)?;
        }
        Ok(changed)
    }
}

fn write_state(
    path: &Path,
    pinned: &BTreeSet<String>,
    details: &BTreeMap<String, PinInfo>,
) -> Result<(), Error> {
    let state = StateFile {
        schema_version: 1,
        pinned: pinned.clone(),
        details: details.clone(),
    };
    let fail = |reason: String| Error::State {
        path: path.to_path_buf(),
        reason,
    };
    let mut text = serde_json::to_string_pretty(&state).map_err(|err| fail(err.to_string()))?;
    text.push('\n');
    feature_flags::write_atomically(path, text.as_bytes(), feature_flags::FileMode::Keep)
        .map_err(|err| fail(format!("cannot write it: {err}")))
}
