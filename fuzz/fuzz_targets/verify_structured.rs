//! Fuzz target: `custody_oracles::verify_structured` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::verify_structured(data) {
        panic!("verify_structured: {broken}");
    }
});
