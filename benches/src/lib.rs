//! Fixtures shared by custody's benches.
#![forbid(unsafe_code)]
