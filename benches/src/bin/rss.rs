//! The memory run: decides 500,000 two-token chains (1,000,000 distinct tokens, every one
//! signature-checked once and cached) through `verify_batch` with the default cache, then
//! reports peak RSS (`VmHWM`) against the cache's documented bound, as JSON, to stdout and
//! `target/custody-rss.json`. `CUSTODY_RSS_CHAINS` changes the number of chains.

use std::path::Path;
use std::sync::Arc;

use custody_benches::{demo_pack, peak_rss_kib, request, rss_kib, Minter};
use custody_verifier::{Verifier, VerifierOptions};
use rayon::prelude::*;
use serde_json::json;

const CHUNK: u64 = 4096;

fn main() {
    if let Err(e) = run() {
        eprintln!("rss: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let chains: u64 = std::env::var("CUSTODY_RSS_CHAINS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500_000);
    let minter = Minter::new()?;
    let verifier = Verifier::with_options(Arc::new(demo_pack()?), VerifierOptions::default());
    let mut baseline = 0;
    let mut half_peak = 0;
    let mut allowed = 0u64;
    let mut start = 0;
    while start < chains {
        let end = (start + CHUNK).min(chains);
        let reqs = (start..end)
            .into_par_iter()
            .map(|i| Ok(request(vec![minter.upstream(i)?, minter.presented(i, i)?])))
            .collect::<Result<Vec<_>, custody_benches::FixtureError>>()?;
        allowed += verifier
            .verify_batch(&reqs)
            .iter()
            .filter(|d| d.is_allowed())
            .count() as u64;
        if start == 0 {
            // the pack, the verifier, one chunk of requests and the allocator's per-thread
            // arenas after one batch: what every later chunk reuses. The cache holds 8,192
            // digests (a chunk's) by now, so the growth measured from here understates the
            // cache by that much; the bound is checked against the whole cache all the same.
            baseline = rss_kib().unwrap_or(0);
        }
        if end == chains / 2 || (start < chains / 2 && end > chains / 2) {
            half_peak = peak_rss_kib().unwrap_or(0);
        }
        start = end;
    }
    let cache = verifier.sig_cache();
    let peak = peak_rss_kib().unwrap_or(0);
    let bound = cache.capacity_bytes() as u64;
    let report = json!({
        "requests": chains,
        "signatures": chains * 2,
        "allowed": allowed,
        "baseline_rss_kib": baseline,
        "peak_rss_kib": peak,
        "peak_rss_kib_at_half": half_peak,
        "cache_capacity": cache.capacity(),
        "cache_len": cache.len(),
        "cache_bound_bytes": bound,
        "within_bound": (peak.saturating_sub(baseline)) * 1024 <= bound,
    });
    println!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/custody-rss.json");
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| Path::new(&d).join("custody-rss.json"))
        .unwrap_or(out);
    std::fs::write(out, report.to_string())?;
    if allowed != chains {
        return Err(format!("{} of {chains} chains denied", chains - allowed).into());
    }
    Ok(())
}
