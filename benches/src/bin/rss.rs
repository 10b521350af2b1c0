//! The memory run: decides 500,000 two-token chains (1,000,000 distinct tokens, every one
//! signature-checked once and cached, each chain for its own user, so every Cedar request is
//! new too) through `verify_batch` with the default caches, then reports peak RSS (`VmHWM`)
//! against the caches' documented bounds, as JSON, to stdout and `target/custody-rss.json`.
//! `CUSTODY_RSS_CHAINS` changes the number of chains; `CUSTODY_RSS_TOKENS` and
//! `CUSTODY_RSS_MEMO` the entry bounds of the token cache and the Cedar memo (0: off), to
//! measure one at a time.
//!
//! What the caches cost is measured against a control: the same run, in a child process of
//! this binary, with both caches off (the same chains, batches, threads and minting). Its peak
//! is what the process needs with no cache at all, allocator arenas and in-flight batches
//! included; the peak with the caches, less the control's, must stay within the caches'
//! documented bound (token cache + Cedar memo, tables included). Within one run, the peak
//! also drifts a megabyte or two above the peak of a warm-up of the same batches: that
//! baseline is reported too (`baseline_rss_kib`), for comparison with earlier runs.

use std::path::Path;
use std::sync::Arc;

use custody_benches::{demo_pack, peak_rss_kib, request, rss_kib, FixtureError, Minter};
use custody_verifier::{Request, Verifier, VerifierOptions};
use rayon::prelude::*;
use serde_json::json;

const CHUNK: u64 = 4096;
/// Chunks of the warm-up (their chains are not used again).
const WARM_UP: u64 = 4;

fn main() {
    if let Err(e) = run() {
        eprintln!("rss: {e}");
        std::process::exit(1);
    }
}

/// Chains `start..end`, each with distinct tokens and its own user.
fn chunk(minter: &Minter, start: u64, end: u64) -> Result<Vec<Request>, FixtureError> {
    (start..end)
        .into_par_iter()
        .map(|i| {
            let user = format!("user:{i}");
            Ok(request(vec![
                minter.upstream_for(&user, i)?,
                minter.presented_for(&user, i, i)?,
            ]))
        })
        .collect()
}

fn allowed(verifier: &Verifier, reqs: &[Request]) -> u64 {
    verifier
        .verify_batch(reqs)
        .iter()
        .filter(|d| d.is_allowed())
        .count() as u64
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The control run's peak (KiB): this binary again, caches off.
fn control_peak(chains: u64) -> Result<u64, Box<dyn std::error::Error>> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .env("CUSTODY_RSS_CHAINS", chains.to_string())
        .env("CUSTODY_RSS_TOKENS", "0")
        .env("CUSTODY_RSS_MEMO", "0")
        .env("CUSTODY_RSS_CONTROL", "1")
        .output()?;
    if !out.status.success() {
        return Err(format!("control run: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v.get("peak_rss_kib")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| "control run: no peak".into())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let chains = env("CUSTODY_RSS_CHAINS", 500_000);
    let control = std::env::var_os("CUSTODY_RSS_CONTROL").is_some();
    let defaults = VerifierOptions::default();
    let options = VerifierOptions {
        sig_cache_entries: env("CUSTODY_RSS_TOKENS", defaults.sig_cache_entries as u64) as usize,
        cedar_memo_entries: env("CUSTODY_RSS_MEMO", defaults.cedar_memo_entries as u64) as usize,
        ..defaults
    };
    let minter = Minter::new()?;
    let pack = Arc::new(demo_pack()?);
    let off = VerifierOptions {
        sig_cache_entries: 0,
        cedar_memo_entries: 0,
        ..VerifierOptions::default()
    };
    let cacheless = Verifier::with_options(Arc::clone(&pack), off);
    for c in 0..WARM_UP {
        let reqs = chunk(&minter, chains + c * CHUNK, chains + (c + 1) * CHUNK)?;
        if allowed(&cacheless, &reqs) != CHUNK {
            return Err("the warm-up chains were denied".into());
        }
    }
    drop(cacheless);
    let baseline = peak_rss_kib().unwrap_or(0);
    let baseline_now = rss_kib().unwrap_or(0);
    let verifier = Verifier::with_options(pack, options);
    let (mut half_peak, mut ok, mut start) = (0, 0u64, 0);
    while start < chains {
        let end = (start + CHUNK).min(chains);
        ok += allowed(&verifier, &chunk(&minter, start, end)?);
        if start < chains / 2 && end >= chains / 2 {
            half_peak = peak_rss_kib().unwrap_or(0);
        }
        start = end;
    }
    let cache = verifier.token_cache();
    let (memo_entries, memo_bytes) = verifier.cedar_memo_capacity();
    let peak = peak_rss_kib().unwrap_or(0);
    let bound = (cache.capacity_bytes() + memo_bytes) as u64;
    if control {
        println!("{}", json!({ "peak_rss_kib": peak, "allowed": ok }));
        return Ok(());
    }
    let control_peak = control_peak(chains)?;
    let report = json!({
        "requests": chains,
        "signatures": chains * 2,
        "allowed": ok,
        "baseline_rss_kib": baseline,
        "baseline_current_rss_kib": baseline_now,
        "peak_rss_kib": peak,
        "peak_rss_kib_at_half": half_peak,
        "cache_capacity": cache.capacity(),
        "cache_len": cache.len(),
        "cache_accounted_bytes": cache.bytes() + cache.table_bytes(),
        "cache_bound_bytes": cache.capacity_bytes(),
        "memo_capacity": memo_entries,
        "memo_len": verifier.cedar_memo_len(),
        "memo_bound_bytes": memo_bytes,
        "bound_bytes": bound,
        "control_peak_rss_kib": control_peak,
        "within_bound": (peak.saturating_sub(control_peak)) * 1024 <= bound,
    });
    println!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/custody-rss.json");
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| Path::new(&d).join("custody-rss.json"))
        .unwrap_or(out);
    std::fs::write(out, report.to_string())?;
    if ok != chains {
        return Err(format!("{} of {chains} chains denied", chains - ok).into());
    }
    Ok(())
}
