//! Sample monolith.
