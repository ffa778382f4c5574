//! The strangler proxy: a reverse proxy that sends each route to the monolith or to an
//! extracted service, decided per request by a feature flag.
//!
//! Entry points: [`Config::load`] (or [`Config::from_overrides`] for `--listen/--monolith` only),
//! [`Listeners::bind`], then [`serve`] or [`Proxy::new`] + [`Proxy::serve`], which also gives a
//! handle to reload, roll back and restore. The CLI (`fig proxy`) does exactly that.
//!
//! A key design decision is that the request path takes no lock that requests contend for and
//! does no IO beyond the two sockets: the config in force is one `ArcSwap` load, route matchers
//! are compiled when a config is loaded, a rollback is an `AtomicBool` per route, metrics are
//! atomics held by the compiled routes, and flags are read from the in-memory snapshot of a
//! [`FlagSource`]; the only locks are short and local (an address's idle-connection list, a
//! connection's own timer). The routing decision itself is the pure function [`route::route`].
//! Where an HTTP/1 message's body ends is decided in one place, `http::framing`, for the proxy's
//! own server and client alike.
//!
//! The crate is in layers, each a directory, and a module imports only its own layer and those
//! below it (checked by `fig check` with `strangler-proxy/fig.toml`; docs/ARCHITECTURE.md), from
//! the bottom: `http` (the own HTTP/1 server and client, framing, request bodies, what a request
//! names, deadlines, the connection cap), `protection` (breakers, limits, upstream pools,
//! attempts, SLO windows), `shadow` (mirrored requests, with `diff`), `decision` (routes, flag
//! context, flags, persisted rollbacks, the counters), `ops` (the proxy in force and its
//! control, the admin API, metrics, the SLO watcher), then `proxy` (the request handler, in
//! named phases) and `serve` (listeners, reload, drain). `config` and `error` are beside them.

pub mod config;
pub(crate) mod decision;
pub mod error;
pub(crate) mod http;
pub(crate) mod ops;
pub(crate) mod protection;
pub(crate) mod proxy;
pub(crate) mod serve;
pub mod shadow;

#[cfg(test)]
mod tests;

pub use config::{Config, Overrides};
pub use decision::flags::{Context, FlagSource, NoFlags};
pub use error::{ConfigError, Error, ErrorSource};
pub use ops::runtime::Proxy;
pub use serve::{Listeners, serve};

// What the CLI (`fig route`, `fig proxy --check`) and the benches use, by the paths they had
// before the layers: each module below re-exports exactly that and nothing else. `config` reads
// `slo`, `target` and `diff` by these paths too.

/// The admin API's JSON shapes, shared with `fig route` (`ops::admin::api`).
pub mod admin {
    pub use crate::ops::admin::api;
}

/// Persisted rollbacks (`decision::state`).
pub mod state {
    pub use crate::decision::state::{PinInfo, PinnedBy, Pins};
}

/// The flag context of a request (`decision::context`).
pub mod context {
    pub use crate::decision::context::{ContextBuilder, untrusted_user_id_warnings};
}

/// Route matching and the decision (`decision::route`).
pub mod route {
    pub use crate::decision::route::{RouteTable, route};
}

/// Rate limits (`protection::limit`).
pub mod limit {
    pub use crate::protection::limit::{Key, RateLimit};
}

/// Circuit breakers and outlier ejection (`protection::breaker`).
pub mod breaker {
    pub use crate::protection::breaker::{Breaker, Outlier, nanos};
}

/// The registry of every counter (`decision::series`), rendered by `ops::metrics`.
pub mod metrics {
    pub use crate::decision::series::Metrics;
}

/// SLO windows and the decision to roll back (`protection::slo`).
pub mod slo {
    pub use crate::protection::slo::{SloConfig, Window, decide};
}

pub(crate) use http::target;
