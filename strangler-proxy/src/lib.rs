//! The strangler reverse proxy.
