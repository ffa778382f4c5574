//! End-to-end tests of the `fig` binary: each module drives real processes.

mod support;
