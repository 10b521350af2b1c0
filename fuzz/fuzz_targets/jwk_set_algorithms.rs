//! Fuzz target: `custody_oracles::jwk_set_algorithms` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::jwk_set_algorithms(data) {
        panic!("jwk_set_algorithms: {broken}");
    }
});
