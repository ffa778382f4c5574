//! `[timeouts]`: connecting, reading a request's headers, waiting for a response, idle bodies,
//! and the HTTP/2 connection deadlines.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ctx::{Ctx, UnvalidatedConfig};

/// Timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting to an upstream.
    pub connect: Duration,
    /// Reading a client's request headers.
    pub header_read: Duration,
    /// Waiting for an upstream's response headers after the request was sent.
    pub request: Duration,
    /// The longest a body may go without progress once the response head is known: an upstream
    /// that sends nothing more of its response body, a client that reads nothing of it, or a
    /// request body that stops arriving.
    pub body_idle: Duration,
    /// From an HTTP/2 connection's start to the end of the client's first SETTINGS frame.
    pub h2_handshake: Duration,
    /// How long an HTTP/2 connection may have no stream open before it is shut down (GOAWAY).
    pub h2_idle: Duration,
    /// Time between keep-alive PINGs on an HTTP/2 connection.
    pub h2_ping_interval: Duration,
    /// How long a PING (or a graceful shutdown) may wait for the peer before the connection is
    /// closed.
    pub h2_ping_timeout: Duration,
}

/// `[timeouts]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    connect: Option<Spanned<String>>,
    header_read: Option<Spanned<String>>,
    request: Option<Spanned<String>>,
    body_idle: Option<Spanned<String>>,
    h2_handshake: Option<Spanned<String>>,
    h2_idle: Option<Spanned<String>>,
    h2_ping_interval: Option<Spanned<String>>,
    h2_ping_timeout: Option<Spanned<String>>,
}

impl UnvalidatedConfig for RawTimeouts {
    type ValidCfg = Timeouts;

    fn validate(self, ctx: &mut Ctx<'_>) -> Timeouts {
        Timeouts {
            connect: ctx.duration(self.connect.as_ref(), Duration::from_secs(5)),
            header_read: ctx.duration(self.header_read.as_ref(), Duration::from_secs(30)),
            request: ctx.duration(self.request.as_ref(), Duration::from_secs(60)),
            body_idle: ctx.positive_duration(
                self.body_idle.as_ref(),
                Duration::from_secs(60),
                "body_idle",
            ),
            h2_handshake: ctx.positive_duration(
                self.h2_handshake.as_ref(),
                Duration::from_secs(10),
                "h2_handshake",
            ),
            h2_idle: ctx.positive_duration(
                self.h2_idle.as_ref(),
                Duration::from_secs(60),
                "h2_idle",
            ),
            h2_ping_interval: ctx.positive_duration(
                self.h2_ping_interval.as_ref(),
                Duration::from_secs(60),
                "h2_ping_interval",
            ),
            h2_ping_timeout: ctx.positive_duration(
                self.h2_ping_timeout.as_ref(),
                Duration::from_secs(20),
                "h2_ping_timeout",
            ),
        }
    }
}
