//! The package's integration tests, built as one binary: each file of this folder is a
//! module. One link instead of one per file keeps CI's disk and link time small; run one
//! file's tests with `cargo test -p <package> --test integration <file>::`.

mod good_pack;
mod key_sources;
mod resource;
mod store;
