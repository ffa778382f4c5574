//! Unit tests of the extraction pipeline.
