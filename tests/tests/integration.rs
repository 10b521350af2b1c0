//! The package's integration tests, built as one binary: each file of this folder is a
//! module. One link instead of one per file keeps CI's disk and link time small; run one
//! file's tests with `cargo test -p <package> --test integration <file>::`.

mod agent_cards;
mod algorithm_oracles;
mod algorithms;
mod authzen;
mod biscuit_hostile;
mod biscuit_parity;
mod caller_proofs;
mod conformance;
mod corpus_replay;
mod dates;
mod ed25519_acceptance;
mod key_store;
mod limits;
mod one_time;
mod perf_equivalence;
mod policy_errors;
mod properties;
mod remote_keys;
mod revocation;
mod rules;
mod wycheproof_signatures;
mod x509_peers;
