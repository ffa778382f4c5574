//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong opening, reading or changing a flag store.
///
/// Evaluation never fails: a missing flag is off. These errors come from opening a store, from
/// the writer APIs ([`crate::FileStore`], [`crate::UnleashAdmin`]) and from parsing a flags file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flags file could not be read or written.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What was being done ("read", "write", "lock", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A flag store file that does not exist, read by a command that only reads. Only a
    /// command that writes creates the store.
    #[error(
        "no flag store at `{path}`; `fig flags --store {path} create NAME` makes one",
        path = .0.display()
    )]
    NoStore(PathBuf),
    /// A flag store file that is empty (or only whitespace): not client API JSON, and never
    /// read as "no flags", so a file caught half-written cannot switch every flag off.
    #[error(
        "`{path}` is empty, not a flag store; `fig flags --store {path} create NAME` writes a store into it",
        path = .0.display()
    )]
    EmptyStore(PathBuf),
    /// A flags file is not valid client API JSON; carries the position serde_json reported.
    #[error("{path}:{line}:{column}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong there.
        reason: String,
    },
    /// A key the flags file format does not have (most often a typo, such as `enable`).
    #[error("{path}: unknown key `{key}` in {place}{hint}", path = path.display(), hint = nearest.map(|name| format!("; did you mean `{name}`?")).unwrap_or_default())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// Where: `the file`, `flag `f``, `flag `f`, strategy 0, constraint 1`, ...
        place: String,
        /// The key.
        key: String,
        /// The valid key nearest to it, if one is close.
        nearest: Option<&'static str>,
    },
    /// A flag's strategies or constraints cannot be compiled (for example a bad operator).
    #[error("{path}: flag `{flag}`: {reason}")]
    Invalid {
        /// The file (or server URL).
        path: PathBuf,
        /// The flag at fault.
        flag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No flag of that name.
    #[error("no flag named `{0}`")]
    UnknownFlag(String),
    /// `create` of a name that exists.
    #[error("a flag named `{0}` already exists")]
    FlagExists(String),
    /// A name Unleash would refuse (empty, too long, characters outside URL-safe ones).
    #[error("invalid flag name `{0}`: use 1 to 100 letters, digits, `.`, `_`, `-` or `~`")]
    InvalidName(String),
    /// A rollout percentage outside 0..=100.
    #[error("invalid percentage {0}: must be between 0 and 100")]
    InvalidPercent(u32),
    /// A CIDR or IP address that does not parse.
    #[error("invalid IP address or CIDR `{0}`")]
    InvalidCidr(String),
    /// Any other bad argument to a writer.
    #[error("{0}")]
    InvalidArgument(String),
    /// The Unleash server could not be reached.
    #[error("cannot reach Unleash at {url}")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The Unleash server refused the token.
    #[error("Unleash at {url} refused the token (HTTP {status}); check the {which} token")]
    Unauthorized {
        /// The URL requested.
        url: String,
        /// 401 or 403.
        status: u16,
        /// "client" or "admin".
        which: &'static str,
    },
    /// The Unleash server answered with an unexpected status.
    #[error("Unleash at {url} answered HTTP {status}: {body}")]
    Server {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The store configuration is not usable.
    #[error("invalid flag store configuration: {0}")]
    Config(String),
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
