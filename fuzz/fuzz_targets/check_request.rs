//! Fuzz target: `custody_oracles::check::check_request` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::check::check_request(data) {
        panic!("check_request: {broken}");
    }
});
