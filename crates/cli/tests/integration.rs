//! The package's integration tests, built as one binary: each file of this folder is a
//! module. One link instead of one per file keeps CI's disk and link time small; run one
//! file's tests with `cargo test -p <package> --test integration <file>::`.

mod authoring;
mod biscuit_cli;
mod card;
mod cli;
mod remote_keys;
