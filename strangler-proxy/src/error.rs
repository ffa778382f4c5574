//! Errors of the proxy library.
//!
//! Two kinds live here. [`Error`] is what the library's functions return (a config that does not
//! validate, a listener that cannot bind, a state file that cannot be written). [`ProxyError`] is
//! what can go wrong while one request is proxied; it carries the [`ErrorSource`] that caused it,
//! which picks the status code the client sees (the idea of pingora's `ErrorSource`).

use std::path::PathBuf;

use http::StatusCode;

/// An error of the proxy library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// One mistake in the config with no file to point into (a reload of a proxy started
    /// without `--config`); the message says where and why.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config file has mistakes: every one of them, one `file:line:column: reason` line
    /// each, in file order.
    #[error(transparent)]
    ConfigErrors(#[from] ConfigErrors),
    /// A listener could not bind its address.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The rollback state file could not be read or written.
    #[error("state file {}: {reason}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A route name that the config does not have.
    #[error("no route named `{0}`")]
    UnknownRoute(String),
    /// Another IO failure.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

/// A mistake in a config, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `<command line>` for a config made of flags only).
    pub file: String,
    /// 1-based line, 0 when the mistake has no place in the file.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, lowercase, no trailing period.
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.reason
            )
        }
    }
}

/// Every mistake found in a config, in file order (mistakes with no place in the file last);
/// never empty. It prints one `file:line:column: reason` line per mistake, so a config with one
/// mistake prints exactly as that [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// The mistakes, sorted by their place in the file. `errors` must not be empty.
    pub(crate) fn new(mut errors: Vec<ConfigError>) -> ConfigErrors {
        debug_assert!(!errors.is_empty(), "a config error without a mistake");
        // Stable: two mistakes at one place keep the order they were found in.
        errors.sort_by_key(|err| (err.line == 0, err.line, err.column));
        ConfigErrors(errors)
    }

    /// The mistakes, in file order.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(err: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![err])
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Which side of the proxy caused a request to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The upstream server: refused, reset, too slow, or spoke bad HTTP (502/504).
    Upstream,
    /// The client: a malformed or too large request (400/413/431).
    Downstream,
    /// The proxy itself (500).
    Internal,
}

/// What went wrong while proxying one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyErrorKind {
    /// No connection to the upstream could be made.
    Connect,
    /// The upstream did not answer within the request timeout.
    Timeout,
    /// The upstream closed or broke the connection, or sent bad HTTP.
    Protocol,
    /// The request body is over the configured limit.
    BodyTooLarge,
    /// The request cannot be forwarded (for example an unusable URI).
    BadRequest,
    /// A bug or an impossible state in the proxy.
    Internal,
}

/// A failed request, tagged with the side that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyError {
    /// What happened.
    pub kind: ProxyErrorKind,
}

impl ProxyErrorKind {
    /// The side that caused this kind of failure.
    pub fn source(self) -> ErrorSource {
        match self {
            Self::Connect | Self::Timeout | Self::Protocol => ErrorSource::Upstream,
            Self::BodyTooLarge | Self::BadRequest => ErrorSource::Downstream,
            Self::Internal => ErrorSource::Internal,
        }
    }

    /// The status code the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Connect | Self::Protocol => StatusCode::BAD_GATEWAY,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable name, used as the `kind` label in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
            Self::BodyTooLarge => "body-too-large",
            Self::BadRequest => "bad-request",
            Self::Internal => "internal",
        }
    }

    /// All kinds, in metrics order.
    pub const ALL: [ProxyErrorKind; 6] = [
        Self::Connect,
        Self::Timeout,
        Self::Protocol,
        Self::BodyTooLarge,
        Self::BadRequest,
        Self::Internal,
    ];
}
