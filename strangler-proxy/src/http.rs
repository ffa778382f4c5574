//! Layer 1, the HTTP plumbing: the proxy's own HTTP/1 server and client, message framing
//! (RFC 9112) and the hop-by-hop rules both share, what a request names (its target), deadlines,
//! the connection cap with the HTTP/2 deadlines, TLS at the edge (certificates, SNI, the
//! handshake) and TLS to upstreams.
//!
//! The lowest layer: it imports nothing else of the crate. The server calls the request handler
//! through [`server::Service`], a trait the handler implements (monomorphised, no `dyn`), and the
//! client gives connections back through [`client::Pool`], which the upstream pools implement.

pub(crate) mod body;
pub mod client;
pub mod connections;
pub(crate) mod deadline;
pub(crate) mod framing;
pub(crate) mod server;
pub(crate) mod target;
pub(crate) mod tls;
pub mod upstream_tls;
