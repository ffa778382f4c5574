//! `[reload]`: watching the config file.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ctx::{Ctx, UnvalidatedConfig};

/// Config-file watching.
#[derive(Debug, Clone, Copy)]
pub struct ReloadConfig {
    /// Poll the config file and reload it when it changes.
    pub watch: bool,
    /// Time between polls.
    pub poll_interval: Duration,
}

/// `[reload]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReload {
    watch: Option<bool>,
    poll_interval: Option<Spanned<String>>,
}

impl UnvalidatedConfig for RawReload {
    type ValidCfg = ReloadConfig;

    fn validate(self, ctx: &mut Ctx<'_>) -> ReloadConfig {
        ReloadConfig {
            watch: self.watch.unwrap_or(true),
            poll_interval: ctx.duration(self.poll_interval.as_ref(), Duration::from_secs(1)),
        }
    }
}
