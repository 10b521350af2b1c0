//! Fuzz target: `custody_oracles::caller_proofs` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::caller_proofs(data) {
        panic!("caller_proofs: {broken}");
    }
});
