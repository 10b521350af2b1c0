//! Tests that hold RPCs and decisions in flight: the real server on a loopback port, generated
//! clients over real HTTP/2, and the `cfg(test)` hooks (`testing::Gate` holds RPCs after their
//! pack snapshot, `state::Stall` blocks the thread that decides). They live inside the crate
//! because the hooks exist only in its test build: no feature puts them in the shipped server.
//! The helpers are the integration tests' own (`tests/common`), reached through
//! `extern crate self as custody_sidecar`.

#[path = "../tests/common/mod.rs"]
mod common;
mod deadlines;
mod drain;
mod limits;
