//! Fuzz target: `custody_oracles::request_json` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::request_json(data) {
        panic!("request_json: {broken}");
    }
});
