//! Fuzz target: `custody_oracles::pack_load` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::pack_load(data) {
        panic!("pack_load: {broken}");
    }
});
