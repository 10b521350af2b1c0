//! The package's integration tests, built as one binary: each file of this folder is a
//! module. One link instead of one per file keeps CI's disk and link time small; run one
//! file's tests with `cargo test -p <package> --test integration <file>::`.

mod caller_proofs;
mod common;
mod fleet;
mod grpc;
mod health_limits;
mod lifecycle;
mod reload_watch;
mod remote_keys;
mod resource_metadata;
