//! Fuzz target: `custody_oracles::x509_svid` (see its documentation for the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = custody_oracles::x509_svid(data) {
        panic!("x509_svid: {broken}");
    }
});
