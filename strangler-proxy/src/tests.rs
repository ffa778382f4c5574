//! Unit and in-process tests of the proxy library.
//!
//! The proxy tests are real: small hyper upstreams and the proxy listen on 127.0.0.1 port 0 in
//! the test's runtime, and requests go over TCP. `support` has the helpers.

mod admin;
mod client;
mod config;
mod connections;
mod context;
mod diff;
mod differential;
mod guard;
mod http1;
mod proxy;
mod route;
mod slo;
mod support;
mod target;
