//! Fuzz target: `custody_oracles::ed25519_strict` (see its documentation for the
//! oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::ed25519_strict(data) {
        panic!("ed25519_strict: {broken}");
    }
});
