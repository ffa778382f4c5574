//! Feature-flag stores and Unleash-compatible evaluation.
