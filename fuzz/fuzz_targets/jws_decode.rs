//! Fuzz target: `custody_oracles::jws_decode` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::jws_decode(data) {
        panic!("jws_decode: {broken}");
    }
});
