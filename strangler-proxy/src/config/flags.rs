//! `[flags]`: the flag store (the embedded file store or an Unleash server) and the Unleash
//! admin token an SLO rollback turns a flag off with.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ctx::{Ctx, UnvalidatedConfig};

/// The flag store to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagStoreConfig {
    /// The embedded file store at this path.
    File(PathBuf),
    /// An Unleash server.
    Unleash {
        /// Base URL, e.g. `http://127.0.0.1:4242/api`.
        url: String,
        /// Client API token.
        token: String,
        /// Time between fetches.
        refresh: Duration,
        /// Where the last flags fetched are kept, to start from when the server is away;
        /// `None` uses the store's default (a file in the temporary directory).
        backup: Option<PathBuf>,
    },
}

/// Unleash's Admin API, used to turn a flag off after an SLO rollback.
#[derive(Clone, PartialEq, Eq)]
pub struct UnleashAdminConfig {
    /// The admin token.
    pub token: String,
    /// The project of the flags (default `default`).
    pub project: Option<String>,
    /// The environment whose flag is turned off (default `development`).
    pub environment: Option<String>,
}

impl std::fmt::Debug for UnleashAdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnleashAdminConfig")
            .field("project", &self.project)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// `[flags]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlags {
    file: Option<Spanned<String>>,
    unleash: Option<Spanned<RawUnleash>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnleash {
    url: Spanned<String>,
    token: Option<String>,
    token_file: Option<Spanned<String>>,
    refresh: Option<Spanned<String>>,
    backup_file: Option<Spanned<String>>,
    admin_token: Option<Spanned<String>>,
    admin_token_file: Option<Spanned<String>>,
    project: Option<String>,
    environment: Option<String>,
}

/// `[flags]` validated, with `--flags FILE` and the admin token of the environment applied.
pub(super) struct Flags {
    /// The store; `None` means no flags.
    pub store: Option<FlagStoreConfig>,
    /// How to change flags on Unleash; `None` without an admin token.
    pub unleash_admin: Option<UnleashAdminConfig>,
}

impl UnvalidatedConfig for Option<RawFlags> {
    type ValidCfg = Flags;

    fn validate(self, ctx: &mut Ctx<'_>) -> Flags {
        let mut flags = match self {
            None => Flags {
                store: None,
                unleash_admin: None,
            },
            Some(RawFlags {
                file: Some(_),
                unleash: Some(unleash),
            }) => {
                ctx.report(
                    unleash.span(),
                    "give either `flags.file` or `flags.unleash`, not both",
                );
                Flags {
                    store: None,
                    unleash_admin: None,
                }
            }
            Some(RawFlags {
                file: Some(file),
                unleash: None,
            }) => Flags {
                store: Some(FlagStoreConfig::File(ctx.path(file.get_ref()))),
                unleash_admin: None,
            },
            Some(RawFlags {
                file: None,
                unleash: Some(unleash),
            }) => unleash.validate(ctx),
            Some(RawFlags {
                file: None,
                unleash: None,
            }) => Flags {
                store: None,
                unleash_admin: None,
            },
        };
        if let Some(file) = &ctx.overrides.flags_file {
            flags = Flags {
                store: Some(FlagStoreConfig::File(file.clone())),
                unleash_admin: None,
            };
        }
        flags
    }
}

impl UnvalidatedConfig for Spanned<RawUnleash> {
    type ValidCfg = Flags;

    fn validate(self, ctx: &mut Ctx<'_>) -> Flags {
        let span = self.span();
        let unleash = self.into_inner();
        let admin_token = match (&unleash.admin_token, &unleash.admin_token_file) {
            (Some(_), Some(file)) => {
                ctx.report(
                    file.span(),
                    "give either `admin_token` or `admin_token_file`, not both",
                );
                None
            }
            (Some(token), None) => Some(token.get_ref().trim().to_owned()),
            (None, Some(file)) => ctx.read_secret(file),
            (None, None) => ctx.overrides.unleash_admin_token.clone(),
        };
        let unleash_admin =
            admin_token
                .filter(|token| !token.is_empty())
                .map(|token| UnleashAdminConfig {
                    token,
                    project: unleash.project.clone(),
                    environment: unleash.environment.clone(),
                });
        let token = match (unleash.token, &unleash.token_file) {
            (Some(token), None) => token,
            (None, Some(file)) => ctx.read_secret(file).unwrap_or_default(),
            _ => {
                ctx.report(
                    span,
                    "`flags.unleash` needs exactly one of `token` or `token_file`",
                );
                String::new()
            }
        };
        Flags {
            store: Some(FlagStoreConfig::Unleash {
                url: unleash.url.into_inner(),
                token,
                refresh: ctx.duration(unleash.refresh.as_ref(), Duration::from_secs(15)),
                backup: unleash
                    .backup_file
                    .as_ref()
                    .map(|file| ctx.path(file.get_ref())),
            }),
            unleash_admin,
        }
    }
}
