//! End-to-end tests of the `fig` binary: each module drives real processes over loopback.

/// The admin API and what the proxy trusts (issue 15): no cross-site or rebound calls, the
/// generated token, the state file's writes, JWT `nbf`, user ids clients choose.
mod admin;
/// `fig analyze`, `fig suggest`, `fig check` on real workspaces.
mod analyze;
/// The HTML report of examples/shop in headless Chromium.
mod browser;
/// What people expect of a CLI (issue 17): completions, man pages, the same option names
/// everywhere, singular counts of one.
mod cli;
/// Every mistake of a config file at once: `fig proxy --check` and a refused reload name them all.
mod config_errors;
/// Connections that end: HTTP/2 handshake and idle deadlines, the connection cap, the file limit.
mod connections;
/// `fig demo`: the example system started as a newcomer would.
mod demo;
/// docs/deploy: the Kubernetes manifests, the alert rules and the proxy config they carry.
mod deploy;
/// Every command in README.md and docs/ is run, or covered by a named test (docs/doc-tests.md).
mod docs;
/// `fig flags` on the file store and on a real Unleash server.
mod flags;
/// A fleet of proxy replicas following one real Unleash: the whole migration, an outage, load.
mod fleet;
/// gRPC through `fig proxy` to tonic servers over HTTP/2 (issue 16): unary and streaming calls
/// routed by service path and flag per call, statuses and trailers intact.
mod grpc;
/// `fig plan`: endpoints, the extraction plan, its emitted config through the real proxy,
/// traffic from a real access log (issue 20).
mod plan;
/// `fig proxy` and `fig route` in front of the example monolith and service.
mod proxy;
/// `fig proxy` hot reload: SIGHUP, file changes, bad configs, no failed request meanwhile.
mod reload;
/// The request path on the wire: response framing, requests sent again after a pooled
/// connection closed, trailers, refusals that end the connection (issue 15).
mod request_path;
/// What a request names, on raw TCP: Host, absolute-form and HTTP/2 authority, path
/// normalisation before routing, upgrades (issue 15, items 6, 7, 9).
mod request_target;
/// `fig proxy` against failing, slow and dead services: fallback retry, circuit breaker,
/// outlier ejection, rate limits, in-flight caps.
mod resilience;
/// The scripts that turn raw measurements into reported numbers (`scripts/bench-ratios.py`).
mod scripts;
/// Shadow traffic: mirrored requests, response diffs, `fig route diff`.
mod shadow;
/// Automatic rollback when a route's service breaks its SLO.
mod slo;
mod support;
/// TLS at the edge (issue 16): curl and a rustls client over HTTP/1.1 and HTTP/2, SNI, mTLS as
/// the flag context's user, cleartext on the TLS port, certificates rotating under load.
mod tls;
/// https upstreams (issue 16): verification, refusals with their reasons, SNI, upstream mTLS,
/// `insecure_skip_verify`, connection reuse, shadow traffic and health checks over TLS.
mod upstream_tls;
