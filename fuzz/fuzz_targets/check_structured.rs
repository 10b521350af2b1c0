//! Fuzz target: `custody_oracles::check::check_structured` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::check::check_structured(data) {
        panic!("check_structured: {broken}");
    }
});
