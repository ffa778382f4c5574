//! The extracted payment service.
fn main() {}
