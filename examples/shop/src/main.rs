//! The `shop` binary (HTTP server coming next).

fn main() {}
