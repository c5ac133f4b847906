//! The kpax workspace's root package: it exists to own the integration tests
//! in `tests/` and the `build.rs` guard over the generated protocol code.
