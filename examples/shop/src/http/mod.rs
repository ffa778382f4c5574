//! HTTP wiring.
