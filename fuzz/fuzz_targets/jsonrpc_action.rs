//! Fuzz target: `custody_oracles::jsonrpc_action` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::jsonrpc_action(data) {
        panic!("jsonrpc_action: {broken}");
    }
});
