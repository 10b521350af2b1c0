//! Fuzz target: `custody_sidecar::fuzzing::check_structured` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_sidecar::fuzzing::check_structured(data) {
        panic!("check_structured: {broken}");
    }
});
