//! custody's fuzz oracles: the entry points of the fuzz targets (`fuzz/`) and of the corpus
//! replay test (`tests/tests/corpus_replay.rs`). Not shipped: nothing of custody depends on this
//! crate, and it reaches custody through public APIs only (the sidecar's Check handler through
//! its one hidden harness, `custody_sidecar::check::Harness`).
//!
//! Every function takes the fuzzer's raw bytes, runs one of custody's parsers (or the whole
//! verifier) on them and then checks an oracle: a property that must hold whatever the input.
//! They never panic themselves; an `Err` is a broken property, which the fuzz target turns into
//! a crash and the replay test into a failure.
//!
//! [`verify_structured`] reads the bytes as a [`FuzzRequest`] (through `arbitrary`) and mints
//! its tokens with fixed test keys of an in-memory four-domain pack, so the fuzzer gets past the
//! signature into the chain rules. An all-zero input is the standard allowed three-domain chain
//! and every field mutates one thing about it. [`biscuit`] and [`biscuit_structured`] do the same
//! for the Biscuit path (module `biscuit` below), [`biscuit_time`] holds Biscuit decisions to
//! their time bound, [`ed25519_strict`] holds custody's Ed25519 check to ed25519-dalek's
//! `verify_strict`, and module [`check`] drives the sidecar's Check handler on the same
//! in-memory pack ([`mint_input`], [`check::bearer_verifies`]).
//!
//! ```
//! // The all-zero input is the standard allowed chain; every oracle holds on it.
//! assert_eq!(custody_oracles::verify_structured(&[0; 64]), Ok(()));
//! assert_eq!(custody_oracles::strict_json(br#"{"a": [1, 2]}"#), Ok(()));
//! ```
#![forbid(unsafe_code)]

mod algorithms;
mod biscuit;
mod biscuit_time;
pub mod check;
mod ed25519;
mod proofs;
mod protocol;
mod verify;
mod x509;

pub use algorithms::{jwk_set_algorithms, raw_verify, signature_algorithms};
pub use biscuit::{
    biscuit, biscuit_bytes, biscuit_input, biscuit_signed_by_pack, biscuit_structured,
    biscuit_text, decide_biscuit, FuzzAttenuation, FuzzAuthority, FuzzBiscuit, FuzzBlock,
    FuzzCheck, FuzzFact, FuzzHop, FuzzTerm, DOMAIN_NAMES, FACT_NAMES,
};
pub use biscuit_time::{
    biscuit_time, costly_biscuit, costly_input, datalog, decide_costly, FuzzCostly,
    FuzzCostlyCheck, FuzzOp, TIME_FACTOR,
};
pub use ed25519::{ed25519_reference, ed25519_strict};
pub use proofs::{caller_proofs, proof_input, proof_request, Edit, FuzzProof, FuzzValue};
pub use protocol::jsonrpc_action;
pub use verify::*;
pub use x509::x509_svid;
