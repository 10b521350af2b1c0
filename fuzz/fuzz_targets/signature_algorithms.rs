//! Fuzz target: `custody_oracles::signature_algorithms` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::signature_algorithms(data) {
        panic!("signature_algorithms: {broken}");
    }
});
