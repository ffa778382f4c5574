//! `[limits]`: the largest request head and body.

use serde::Deserialize;
use toml::Spanned;

use super::ctx::{Ctx, UnvalidatedConfig};

/// Size limits on requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers) in bytes; larger gets 431.
    pub max_header_size: usize,
    /// Largest request body in bytes; larger gets 413. `None` is no limit.
    pub max_body_size: Option<u64>,
}

/// `[limits]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    max_header_size: Option<Spanned<toml::Value>>,
    max_body_size: Option<Spanned<toml::Value>>,
}

impl UnvalidatedConfig for RawLimits {
    type ValidCfg = Limits;

    fn validate(self, ctx: &mut Ctx<'_>) -> Limits {
        const DEFAULT_HEADER_SIZE: usize = 64 << 10;
        let max_header_size = match &self.max_header_size {
            Some(value) => match ctx.size(value) {
                Some(size) if (8192..=16 << 20).contains(&size) => {
                    usize::try_from(size).unwrap_or(usize::MAX)
                }
                Some(_) => {
                    ctx.report(
                        value.span(),
                        "`max_header_size` must be between 8KiB and 16MiB",
                    );
                    DEFAULT_HEADER_SIZE
                }
                None => DEFAULT_HEADER_SIZE,
            },
            None => DEFAULT_HEADER_SIZE,
        };
        let max_body_size = self
            .max_body_size
            .as_ref()
            .and_then(|value| ctx.size(value));
        Limits {
            max_header_size,
            max_body_size,
        }
    }
}
