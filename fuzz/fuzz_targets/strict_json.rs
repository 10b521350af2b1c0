//! Fuzz target: `custody_oracles::strict_json` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::strict_json(data) {
        panic!("strict_json: {broken}");
    }
});
