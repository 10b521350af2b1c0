//! Fuzz target: `custody_oracles::biscuit_time` (see its documentation for the oracle:
//! no Biscuit the cost budget accepts decides slower than the documented bound).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::biscuit_time(data) {
        panic!("biscuit_time: {broken}");
    }
});
