//! Profiling aid: decides the demo chain, all tokens warm, in a loop (`perf record` it), and
//! times plain Cedar `is_authorized` on a prebuilt request in alternating rounds, so that the
//! ratio holds even on a busy machine.
//!
//! `cargo run --release -p custody-benches --example warm [DECISIONS]`; `--cold` decides a
//! chain of never-seen tokens each time instead (signatures included), `--no-memo` turns the
//! Cedar request memo off.
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_benches::baseline::Baseline;
use custody_benches::{chain_requests, demo_pack, Minter};
use custody_verifier::{Verifier, VerifierOptions};

const ROUNDS: u64 = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.iter().find_map(|s| s.parse().ok()).unwrap_or(200_000);
    let cold = args.iter().any(|a| a == "--cold");
    let memo = !args.iter().any(|a| a == "--no-memo");
    let distinct = if cold { n.min(20_000) } else { 1 };
    let reqs = chain_requests(&Minter::new()?, distinct, distinct)?;
    let options = VerifierOptions {
        cedar_memo_entries: if memo { 1024 } else { 0 },
        ..VerifierOptions::default()
    };
    let v = Verifier::with_options(Arc::new(demo_pack()?), options);
    let base = Baseline::demo()?;
    let cedar_req = Baseline::demo_cedar_request()?;
    let per_round = (n / ROUNDS).max(1);
    let (mut custody, mut cedar) = (Duration::ZERO, Duration::ZERO);
    let (mut allowed, mut i) = (0usize, 0usize);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..per_round {
            let r = reqs.get(i % reqs.len()).ok_or("no request")?;
            i += 1;
            if cold && i % reqs.len() == 0 {
                v.clear_caches();
            }
            allowed += usize::from(v.verify(r).is_allowed());
        }
        custody += start.elapsed();
        let start = Instant::now();
        for _ in 0..per_round {
            allowed += usize::from(base.is_authorized(std::hint::black_box(&cedar_req)));
        }
        cedar += start.elapsed();
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / (per_round * ROUNDS) as f64;
    println!(
        "{allowed} allowed; {} {:.2} µs per decision, plain Cedar {:.2} µs: {:.2}× Cedar",
        if cold { "cold" } else { "warm" },
        per(custody),
        per(cedar),
        per(custody) / per(cedar)
    );
    Ok(())
}
