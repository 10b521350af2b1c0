//! Fuzz target: `custody_oracles::biscuit_structured` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::biscuit_structured(data) {
        panic!("biscuit_structured: {broken}");
    }
});
