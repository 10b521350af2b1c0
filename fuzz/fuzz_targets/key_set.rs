//! Fuzz target: `custody_oracles::key_set` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::key_set(data) {
        panic!("key_set: {broken}");
    }
});
