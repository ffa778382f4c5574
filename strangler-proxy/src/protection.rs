//! Layer 2, protection: circuit breakers and outlier ejection, rate limits and in-flight caps,
//! the upstream pools that carry them, what an attempt's outcome teaches them, and the SLO
//! windows that judge a route's service.
//!
//! It imports the HTTP layer and `config`/`error` only.

pub mod attempt;
pub mod breaker;
pub mod guard;
pub mod limit;
pub mod slo;
pub mod upstream;
