//! Unit tests of the proxy library.
