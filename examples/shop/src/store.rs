//! The shared in-memory store: one [`Table`] per aggregate, cheap to clone, safe to share.
//!
//! A real monolith would talk to one big database here. What matters for the example is the same
//! property: every domain module can reach every table, which is how the modules grew tangled.
//! This module knows no domain type; each domain wraps a `Table` in its own repository.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// A table of `V` keyed by `K`, shared between clones.
#[derive(Debug)]
pub struct Table<K, V> {
    rows: Arc<RwLock<BTreeMap<K, V>>>,
    next_id: Arc<AtomicU64>,
}

// Derived `Clone` would require `K: Clone, V: Clone`; sharing the handle needs neither.
impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Table {
            rows: Arc::clone(&self.rows),
            next_id: Arc::clone(&self.next_id),
        }
    }
}

impl<K: Ord, V: Clone> Default for Table<K, V> {
    fn default() -> Self {
        Table::new()
    }
}

impl<K: Ord, V: Clone> Table<K, V> {
    /// An empty table whose id sequence starts at 1.
    pub fn new() -> Self {
        Table {
            rows: Arc::new(RwLock::new(BTreeMap::new())),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The next free numeric id. Ids are never reused.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes sure [`Table::next_id`] returns ids above `id` (used when seeding fixed ids).
    pub fn reserve_id(&self, id: u64) {
        self.next_id.fetch_max(id + 1, Ordering::Relaxed);
    }

    /// A copy of the row under `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        // A panic while holding the lock cannot leave a half-written row: every write below is a
        // single map operation, so a poisoned lock is still consistent.
        let rows = self.rows.read().unwrap_or_else(PoisonError::into_inner);
        rows.get(key).cloned()
    }

    /// Inserts or replaces the row under `key`.
    pub fn insert(&self, key: K, value: V) {
        let mut rows = self.rows.write().unwrap_or_else(PoisonError::into_inner);
        rows.insert(key, value);
    }

    /// Applies `change` to the row under `key` and returns the new row, or `None` if absent.
    pub fn update<R>(&self, key: &K, change: impl FnOnce(&mut V) -> R) -> Option<(V, R)> {
        let mut rows = self.rows.write().unwrap_or_else(PoisonError::into_inner);
        let row = rows.get_mut(key)?;
        let res = change(row);
        Some((row.clone(), res))
    }

    /// Copies of the rows matching `keep`, in key order.
    pub fn filter(&self, keep: impl Fn(&V) -> bool) -> Vec<V> {
        let rows = self.rows.read().unwrap_or_else(PoisonError::into_inner);
        rows.values().filter(|row| keep(row)).cloned().collect()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the table has no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
