//! Where the proxy's flag decisions come from.
//!
//! The proxy asks [`FlagSource::is_enabled`] once per request of a flagged route. An
//! implementation must answer from memory, without blocking and without IO: the `feature-flags`
//! crate keeps its snapshot fresh in the background, and the proxy only reads it.

use std::sync::Arc;
use std::time::Duration;

pub use feature_flags::{Context, ContextRef};

/// A source of flag decisions, read on the request path.
pub trait FlagSource: Send + Sync + 'static {
    /// Whether `flag` is on for this context. Unknown flags are off. Never blocks.
    fn is_enabled(&self, flag: &str, context: ContextRef<'_>) -> bool;

    /// Whether `flag` is on, when the answer does not depend on the context (then the proxy
    /// builds none); `None` when [`FlagSource::is_enabled`] must decide with one.
    fn is_enabled_for_everyone(&self, _flag: &str) -> Option<bool> {
        None
    }

    /// Whether the flags have been loaded at least once. Until then the proxy sends flagged
    /// routes to their fallback and `/readyz` answers 503.
    fn is_ready(&self) -> bool;

    /// How old the flags being served are (Unleash: since the server last answered; file:
    /// since the watcher last found the file good); `None` for a source that is never stale.
    /// Rendered as `fig_proxy_flags_staleness_seconds`.
    fn staleness(&self) -> Option<Duration> {
        None
    }

    /// Why the store's last reload or poll failed, while nothing has succeeded since (a flags
    /// file that is missing or refused, a server that does not answer). Shown by `/readyz`,
    /// `GET /routes` (`fig route status`) and `fig_proxy_flags_error`.
    fn last_error(&self) -> Option<String> {
        None
    }
}

impl<T: FlagSource + ?Sized> FlagSource for Arc<T> {
    fn is_enabled(&self, flag: &str, context: ContextRef<'_>) -> bool {
        (**self).is_enabled(flag, context)
    }

    fn is_enabled_for_everyone(&self, flag: &str) -> Option<bool> {
        (**self).is_enabled_for_everyone(flag)
    }

    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }

    fn staleness(&self) -> Option<Duration> {
        (**self).staleness()
    }

    fn last_error(&self) -> Option<String> {
        (**self).last_error()
    }
}

/// No flag store: every flag is off, and the source is ready (flagged routes use their fallback).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFlags;

impl FlagSource for NoFlags {
    fn is_enabled(&self, _flag: &str, _context: ContextRef<'_>) -> bool {
        false
    }

    fn is_ready(&self) -> bool {
        true
    }
}

/// The `feature-flags` store: evaluation reads its in-memory snapshot.
impl FlagSource for feature_flags::Flags {
    fn is_enabled(&self, flag: &str, context: ContextRef<'_>) -> bool {
        feature_flags::Flags::is_enabled(self, flag, context)
    }

    fn is_enabled_for_everyone(&self, flag: &str) -> Option<bool> {
        feature_flags::Flags::is_enabled_for_everyone(self, flag)
    }

    fn is_ready(&self) -> bool {
        feature_flags::Flags::is_ready(self)
    }

    fn staleness(&self) -> Option<Duration> {
        feature_flags::Flags::staleness(self)
    }

    fn last_error(&self) -> Option<String> {
        feature_flags::Flags::last_error(self)
    }
}

/// A fixed answer per flag name, for tests: every listed flag is on for everyone.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub struct StaticFlags {
    /// The flags that are on.
    pub enabled: Vec<String>,
}

#[cfg(test)]
impl FlagSource for StaticFlags {
    fn is_enabled(&self, flag: &str, _context: ContextRef<'_>) -> bool {
        self.enabled.iter().any(|f| f == flag)
    }

    fn is_ready(&self) -> bool {
        true
    }
}
