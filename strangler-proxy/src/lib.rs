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
//! Where an HTTP/1 message's body ends is decided in one place, `framing`, for the proxy's own
//! server and client alike.
//!
//! Module map: `config` (TOML → validated [`Config`]), `target` (what a request names: its
//! Host, its path in normal form, the upgrade it asks for; checked before routing), `route`
//! (matching and the decision),
//! `context` (the flag context of a request), `upstream` (pools, balancing, health checks),
//! `proxy` (the request handler), `server` (the HTTP/1 server for plain requests; hyper serves the
//! rest), `client` (the HTTP/1 client for requests whose body is all there), `framing` (RFC 9112
//! message framing for both), `deadline` (connection timers and body-idle deadlines), `serve` (listeners, reload, drain), `connections` (the connection cap and the HTTP/2
//! deadlines), `admin` (the admin API),
//! `metrics`, `state` (persisted rollbacks), `slo` (automatic rollback when a service breaks its
//! SLO), `shadow` (mirrored requests) and `diff` (response comparison), `flags` (the
//! [`FlagSource`] trait), `error`.

pub mod config;
pub mod decision;
pub mod error;
pub mod http;
pub mod ops;
pub mod protection;
pub mod proxy;
pub mod serve;
pub mod shadow;

// The modules by their names before the layers, for the CLI, the benches and `config`.
pub use decision::{context, flags, route, state};
pub(crate) use http::target;
pub use ops::{admin, metrics};
pub use protection::{attempt, breaker, limit, slo, upstream};
pub(crate) use shadow::diff;

#[cfg(test)]
mod tests;

pub use config::{Config, Overrides};
pub use error::{ConfigError, Error, ErrorSource};
pub use flags::{Context, FlagSource, NoFlags};
pub use ops::runtime::Proxy;
pub use serve::{Listeners, serve};
