//! The context a flag is evaluated for: who asks, from where, with which properties.
//!
//! [`Context`] owns its strings and is what most callers build. [`ContextRef`] borrows them, so a
//! caller that already holds the request's user id and address as `&str` evaluates without
//! allocating. Every evaluation method takes `impl Into<ContextRef>`, so `&Context` works too.

use std::collections::HashMap;

/// The Unleash context of one evaluation, with owned strings.
///
/// Field names follow Unleash's context fields (`userId`, `sessionId`, `remoteAddress`,
/// `environment`, `appName`, `currentTime`, `properties`). Empty fields are `None`; the store's
/// configured `app_name` and `environment` fill in when the caller leaves them out, as Unleash
/// SDKs do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The `userId` field: stickiness for gradual rollouts, `userWithId` lists.
    pub user_id: Option<String>,
    /// The `sessionId` field.
    pub session_id: Option<String>,
    /// The `remoteAddress` field: an IP address, matched by `remoteAddress` and CIDR constraints.
    pub remote_address: Option<String>,
    /// The `environment` field (defaults to the store's environment).
    pub environment: Option<String>,
    /// The `appName` field (defaults to the store's app name).
    pub app_name: Option<String>,
    /// The `currentTime` field in RFC 3339; `None` means now (date constraints).
    pub current_time: Option<String>,
    /// Custom context fields, used by constraints and custom stickiness.
    pub properties: HashMap<String, String>,
}

/// A borrowed [`Context`]: evaluation through it allocates nothing of its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContextRef<'a> {
    /// See [`Context::user_id`].
    pub user_id: Option<&'a str>,
    /// See [`Context::session_id`].
    pub session_id: Option<&'a str>,
    /// See [`Context::remote_address`].
    pub remote_address: Option<&'a str>,
    /// See [`Context::environment`].
    pub environment: Option<&'a str>,
    /// See [`Context::app_name`].
    pub app_name: Option<&'a str>,
    /// See [`Context::current_time`].
    pub current_time: Option<&'a str>,
    /// See [`Context::properties`]; `None` when there are none.
    pub properties: Option<&'a HashMap<String, String>>,
}

impl<'a> From<&'a Context> for ContextRef<'a> {
    fn from(ctx: &'a Context) -> Self {
        ContextRef {
            user_id: ctx.user_id.as_deref(),
            session_id: ctx.session_id.as_deref(),
            remote_address: ctx.remote_address.as_deref(),
            environment: ctx.environment.as_deref(),
            app_name: ctx.app_name.as_deref(),
            current_time: ctx.current_time.as_deref(),
            properties: (!ctx.properties.is_empty()).then_some(&ctx.properties),
        }
    }
}

impl<'a> From<&'a ContextRef<'a>> for ContextRef<'a> {
    fn from(ctx: &'a ContextRef<'a>) -> Self {
        *ctx
    }
}
