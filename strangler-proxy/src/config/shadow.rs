//! Shadow traffic: a route's `shadow` table (what is mirrored, where, and how the responses are
//! compared) and `[shadow]` (the settings every route's shadow traffic shares).

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Method};
use serde::Deserialize;
use toml::Spanned;

use super::ctx::{Ctx, UnvalidatedConfig};

/// Mirroring of a share of a route's requests to another upstream.
#[derive(Debug, Clone)]
pub struct ShadowConfig {
    /// Share of users (0 to 100) whose requests are mirrored, sticky per user.
    pub percent: u8,
    /// Where copies go.
    pub target: ShadowTarget,
    /// Methods that are mirrored; methods other than GET, HEAD and OPTIONS are opt-in.
    pub methods: Vec<Method>,
    /// Response headers whose values are compared.
    pub compare_headers: Vec<HeaderName>,
    /// JSON paths left out of the body comparison, e.g. `/items/*/id`.
    pub ignore: Vec<IgnorePattern>,
    /// Largest request body copied for the shadow; a larger one is not mirrored.
    pub max_request_body: u64,
    /// Largest response body kept for the comparison, on each side.
    pub max_response_body: u64,
    /// Time the shadow upstream has to answer, body included.
    pub timeout: Duration,
    /// Differences kept as samples (newest first).
    pub samples: usize,
}

/// Where a route's shadow copies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShadowTarget {
    /// Whichever of `service` and `fallback` did not answer.
    Other,
    /// This upstream, always.
    Upstream(String),
}

/// Settings shared by every route's shadow traffic.
#[derive(Debug, Clone)]
pub struct ShadowSettings {
    /// Shadow requests in flight at most, over all routes; beyond it copies are dropped.
    pub max_concurrent: usize,
    /// Where samples of differences are kept; `None` keeps them in memory only.
    pub dir: Option<PathBuf>,
}

/// The methods mirrored when a route does not list its own: the safe ones (RFC 9110 9.2.1).
pub const SHADOW_SAFE_METHODS: [Method; 3] = [Method::GET, Method::HEAD, Method::OPTIONS];

/// A route's `shadow` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShadow {
    percent: Option<Spanned<i64>>,
    target: Option<Spanned<String>>,
    methods: Option<Vec<Spanned<String>>>,
    compare_headers: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    max_request_body: Option<Spanned<toml::Value>>,
    max_response_body: Option<Spanned<toml::Value>>,
    timeout: Option<Spanned<String>>,
    samples: Option<Spanned<i64>>,
}

/// `[shadow]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShadowSettings {
    max_concurrent: Option<Spanned<i64>>,
    dir: Option<Spanned<String>>,
}

impl UnvalidatedConfig for RawShadow {
    type ValidCfg = ShadowConfig;

    fn validate(self, ctx: &mut Ctx<'_>) -> ShadowConfig {
        let percent = match &self.percent {
            None => 100,
            Some(value) => match u8::try_from(*value.get_ref()).ok().filter(|p| *p <= 100) {
                Some(percent) => percent,
                None => {
                    ctx.report(value.span(), "`percent` must be between 0 and 100");
                    100
                }
            },
        };
        let target = match &self.target {
            None => ShadowTarget::Other,
            Some(name) if name.get_ref() == "other" => ShadowTarget::Other,
            Some(name) => {
                if !ctx.upstream_exists(name.get_ref()) {
                    ctx.report(
                        name.span(),
                        format!(
                            "no upstream named `{}`; `target` is an upstream name or \"other\"",
                            name.get_ref()
                        ),
                    );
                }
                ShadowTarget::Upstream(name.get_ref().clone())
            }
        };
        let methods = match &self.methods {
            None => SHADOW_SAFE_METHODS.to_vec(),
            Some(list) => ctx.methods(list),
        };
        let compare_headers = match &self.compare_headers {
            None => vec![http::header::CONTENT_TYPE],
            Some(list) => list
                .iter()
                .filter_map(|name| {
                    ctx.check(
                        name.span(),
                        HeaderName::try_from(name.get_ref().as_str())
                            .map_err(|_| format!("invalid header name `{}`", name.get_ref())),
                    )
                })
                .collect(),
        };
        let ignore = self
            .ignore
            .iter()
            .filter_map(|path| ctx.check(path.span(), IgnorePattern::parse(path.get_ref())))
            .collect();
        let mut size = |value: Option<&Spanned<toml::Value>>, default: u64| {
            value.map_or(default, |value| ctx.size(value).unwrap_or(default))
        };
        let max_request_body = size(self.max_request_body.as_ref(), 64 << 10);
        let max_response_body = size(self.max_response_body.as_ref(), 1 << 20);
        let samples = match &self.samples {
            None => 20,
            Some(value) => match usize::try_from(*value.get_ref())
                .ok()
                .filter(|n| (1..=1000).contains(n))
            {
                Some(samples) => samples,
                None => {
                    ctx.report(value.span(), "`samples` must be between 1 and 1000");
                    20
                }
            },
        };
        ShadowConfig {
            percent,
            target,
            methods,
            compare_headers,
            ignore,
            max_request_body,
            max_response_body,
            timeout: ctx.duration(self.timeout.as_ref(), Duration::from_secs(5)),
            samples,
        }
    }
}

impl UnvalidatedConfig for RawShadowSettings {
    type ValidCfg = ShadowSettings;

    fn validate(self, ctx: &mut Ctx<'_>) -> ShadowSettings {
        let max_concurrent = match &self.max_concurrent {
            None => 64,
            Some(value) => match usize::try_from(*value.get_ref())
                .ok()
                .filter(|n| (1..=65_536).contains(n))
            {
                Some(n) => n,
                None => {
                    ctx.report(value.span(), "`max_concurrent` must be between 1 and 65536");
                    64
                }
            },
        };
        let dir = match &self.dir {
            Some(dir) => Some(ctx.path(dir.get_ref())),
            // Next to the state file: `fig-proxy.state.json` -> `fig-proxy.shadow/`.
            None => ctx.state_file.as_deref().map(|file| {
                let name = file
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                let stem = name
                    .strip_suffix(".state.json")
                    .or_else(|| name.strip_suffix(".json"))
                    .unwrap_or(&name);
                file.with_file_name(format!("{stem}.shadow"))
            }),
        };
        ShadowSettings {
            max_concurrent,
            dir,
        }
    }
}

/// A JSON Pointer-like path where the segment `*` matches any one key or index, such as
/// `/items/*/id`. A pattern also ignores everything below the path it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnorePattern {
    /// The unescaped segments; `*` matches any one.
    pub(crate) segments: Vec<String>,
}

impl IgnorePattern {
    /// Parses `/a/*/b`. The pattern must start with `/`; `~1` and `~0` are unescaped as in
    /// JSON Pointer.
    pub fn parse(text: &str) -> Result<IgnorePattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "ignore path `{text}` must start with `/`, e.g. \"/items/*/id\""
            ));
        };
        let segments = rest
            .split('/')
            .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
            .collect();
        Ok(IgnorePattern { segments })
    }
}
