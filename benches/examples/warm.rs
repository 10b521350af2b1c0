//! Profiling aid: decides the demo chain, all tokens warm, in a loop (`perf record` it).
use std::sync::Arc;

use custody_benches::{chain_requests, demo_pack, Minter};
use custody_verifier::{Verifier, VerifierOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let reqs = chain_requests(&Minter::new()?, 1, 1)?;
    let Some(req) = reqs.first() else {
        return Err("no request".into());
    };
    let v = Verifier::with_options(Arc::new(demo_pack()?), VerifierOptions::default());
    let start = std::time::Instant::now();
    let mut allowed = 0;
    for _ in 0..n {
        allowed += usize::from(v.verify(req).is_allowed());
    }
    let el = start.elapsed();
    println!(
        "{allowed} allowed, {:.2} µs per decision",
        el.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
