//! Writes the issue-3 table of BENCHMARKS.md from criterion's results of the last
//! `cargo bench -p custody-benches --bench verify` and the memory run's `rss.json`.
//!
//! Usage: `report [BENCHMARKS.md]` (run by `benches/run.sh`). Everything between the
//! `<!-- issue-3-table:begin -->` and `<!-- issue-3-table:end -->` markers is replaced; the rest
//! of the file (other sections, hand-written notes) is left alone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

const BEGIN: &str = "<!-- issue-3-table:begin -->";
const END: &str = "<!-- issue-3-table:end -->";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Criterion's mean time per iteration and the elements per iteration of one bench.
struct Measured {
    ns_per_iter: f64,
    elements: f64,
}

impl Measured {
    fn per_sec(&self) -> f64 {
        self.elements / (self.ns_per_iter * 1e-9)
    }
    fn ns_per_element(&self) -> f64 {
        self.ns_per_iter / self.elements
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn measured(group: &str, id: &str) -> Option<Measured> {
    let dir = target_dir()
        .join("criterion")
        .join(group)
        .join(id)
        .join("new");
    let est = read_json(&dir.join("estimates.json"))?;
    let bench = read_json(&dir.join("benchmark.json"))?;
    let elements = bench
        .pointer("/throughput/Elements")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    Some(Measured {
        ns_per_iter: est.pointer("/mean/point_estimate")?.as_f64()?,
        elements,
    })
}

fn rate(m: Option<&Measured>) -> String {
    m.map_or_else(|| "n/a".to_owned(), |m| format!("{:.0}/s", m.per_sec()))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

fn verdict(r: Option<f64>, target: f64) -> String {
    match r {
        Some(r) if r >= target => format!("{r:.2}× (target ≥ {target}×: met)"),
        Some(r) => format!("{r:.2}× (target ≥ {target}×: **missed**)"),
        None => "n/a".to_owned(),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cores} cores (`nproc`), {model}; load average when the table was written: {}",
        load.join(" ")
    )
}

#[allow(
    clippy::too_many_lines,
    reason = "one table's layout, read top to bottom"
)]
fn table() -> String {
    let m = |g: &str, id: &str| measured(g, id);
    let single_1 = m("single_cold", "custody_1t");
    let single_b1 = m("single_cold", "custody_1t_batch");
    let single_b2 = m("single_cold", "custody_2t_batch");
    let raw_1 = m("single_cold", "verify_strict_1t");
    let raw_2 = m("single_cold", "verify_strict_2t_batch");
    let jwt_1 = m("single_cold", "jsonwebtoken_1t");
    let sig_1 = m("single_cold", "custody_signature_1t");
    let chain_1 = m("chain_cold", "custody_1t");
    let chain_b1 = m("chain_cold", "custody_1t_batch");
    let chain_b2 = m("chain_cold", "custody_2t_batch");
    let jwt_chain = m("chain_cold", "jsonwebtoken_cedar_1t");
    let warm_up = m("chain_warm_upstream", "custody_1t");
    let warm_all = m("chain_warm_all", "custody_1t");
    let warm_all_2 = m("chain_warm_all", "custody_2t_batch");
    let cedar = m("chain_warm_all", "plain_cedar");
    let sliced = m("policies_200", "custody_sliced");
    let plain200 = m("policies_200", "plain_cedar");
    let b_loop = m("batch_10k", "verify_loop");
    let b_1 = m("batch_10k", "custody_1t");
    let b_2 = m("batch_10k", "custody_2t");
    let load = m("pack_load", "custody_1000");
    let from_str = m("pack_load", "cedar_from_str_1000");

    let ps = |x: &Option<Measured>| x.as_ref().map(Measured::per_sec);
    let half = |x: &Option<Measured>| ps(x).map(|r| r / 2.0);
    let mut t = String::new();
    let _ = writeln!(t, "Machine: {}.\n", machine());
    t.push_str("| scenario | custody | peers in the same run | ratios (target) |\n");
    t.push_str("|---|---|---|---|\n");
    let _ = writeln!(
        t,
        "| single token, cold cache | 1 thread {}; 2 threads {} (1-thread batch {}) | raw ed25519-dalek `verify_strict` 1 thread {}, 2 threads {}; `jsonwebtoken` decode+verify+claims {}; (custody's own signature check, the same acceptance, {}) | vs limit, 1 thread {}; 2 threads {}; 2 threads / 1 thread {}; vs `jsonwebtoken` {:.2}× |",
        rate(single_1.as_ref()), rate(single_b2.as_ref()), rate(single_b1.as_ref()),
        rate(raw_1.as_ref()), rate(raw_2.as_ref()), rate(jwt_1.as_ref()), rate(sig_1.as_ref()),
        verdict(ratio(ps(&single_1), ps(&raw_1)), 0.85),
        verdict(ratio(ps(&single_b2), ps(&raw_2)), 0.85),
        verdict(ratio(ps(&single_b2), ps(&single_b1)), 1.8),
        ratio(ps(&single_1), ps(&jwt_1)).unwrap_or(f64::NAN),
    );
    let _ = writeln!(
        t,
        "| 2-token cross-domain chain + Cedar (demo pack), cold | 1 thread {}; 2 threads {} (1-thread batch {}) | limit = raw `verify_strict` / 2: 1 thread {:.0}/s, 2 threads {:.0}/s; hand-written `jsonwebtoken` + plain Cedar {} | vs limit, 1 thread {}; 2 threads {}; 2 threads / 1 thread {}; vs `jsonwebtoken` + Cedar {} |",
        rate(chain_1.as_ref()), rate(chain_b2.as_ref()), rate(chain_b1.as_ref()),
        half(&raw_1).unwrap_or(f64::NAN), half(&raw_2).unwrap_or(f64::NAN), rate(jwt_chain.as_ref()),
        verdict(ratio(ps(&chain_1), half(&raw_1)), 0.85),
        verdict(ratio(ps(&chain_b2), half(&raw_2)), 0.85),
        verdict(ratio(ps(&chain_b2), ps(&chain_b1)), 1.8),
        verdict(ratio(ps(&chain_1), ps(&jwt_chain)), 3.0),
    );
    let _ = writeln!(
        t,
        "| same, upstream token warm (only the last token new) | 1 thread {} | limit = raw `verify_strict` 1 thread {} | vs limit {} |",
        rate(warm_up.as_ref()), rate(raw_1.as_ref()),
        verdict(ratio(ps(&warm_up), ps(&raw_1)), 0.85),
    );
    let _ = writeln!(
        t,
        "| same, all tokens warm | 1 thread {}; 2 threads {} | plain Cedar `is_authorized` alone (request prebuilt) {} | vs cold chain {}; Cedar time / custody time {} (target ≥ 0.67, i.e. within 1.5×); vs `jsonwebtoken` + Cedar {} |",
        rate(warm_all.as_ref()), rate(warm_all_2.as_ref()), rate(cedar.as_ref()),
        verdict(ratio(ps(&warm_all), ps(&chain_1)), 20.0),
        verdict(ratio(ps(&warm_all), ps(&cedar)), 0.67),
        verdict(ratio(ps(&warm_all), ps(&jwt_chain)), 15.0),
    );
    let us = |x: &Option<Measured>| {
        x.as_ref().map_or_else(
            || "n/a".to_owned(),
            |m| format!("{:.1} µs", m.ns_per_element() / 1e3),
        )
    };
    let _ = writeln!(
        t,
        "| 200-policy pack (generated), Cedar only | sliced {} per decision | plain Cedar on the whole set {} | speed-up {} |",
        us(&sliced), us(&plain200),
        verdict(ratio(ps(&sliced), ps(&plain200)), 5.0),
    );
    let ms = |x: &Option<Measured>| {
        x.as_ref().map_or_else(
            || "n/a".to_owned(),
            |m| format!("{:.1} ms", m.ns_per_iter / 1e6),
        )
    };
    let _ = writeln!(
        t,
        "| 10k-request batch, 100 distinct upstream tokens, cold cache | `verify_batch` 1 thread {}, 2 threads {} | `verify` in a loop {} | 2 threads / 1 thread {}; 1-thread batch vs loop {:.2}× |",
        ms(&b_1), ms(&b_2), ms(&b_loop),
        verdict(ratio(ps(&b_2), ps(&b_1)), 1.8),
        ratio(ps(&b_1), ps(&b_loop)).unwrap_or(f64::NAN),
    );
    let _ = writeln!(
        t,
        "| pack load: 1,000 Cedar policies + trust file + keys (+ `Verifier::new`) | {} | Cedar `PolicySet::from_str` alone {} | custody / Cedar {:.2}× the time |",
        ms(&load), ms(&from_str),
        ratio(load.as_ref().map(|m| m.ns_per_iter), from_str.as_ref().map(|m| m.ns_per_iter)).unwrap_or(f64::NAN),
    );
    t.push_str(&memory());
    t
}

fn memory() -> String {
    let path = target_dir().join("custody-rss.json");
    let Some(v) = read_json(&path) else {
        return "\nMemory: no `target/custody-rss.json` (run `benches/run.sh`).\n".to_owned();
    };
    let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let kib = |k: &str| num(k) / 1024.0;
    let mib = |k: &str| num(k) / 1_048_576.0;
    format!(
        "\nMemory ({} distinct 2-token chains, {} signatures, each chain for its own user, through \
         `verify_batch`): peak RSS {:.1} MiB (after half the chains: {:.1} MiB); the same run \
         with both caches off (the control) {:.1} MiB; the caches' documented bound {:.1} MiB \
         (token cache {:.1} MiB, {} entries at most; Cedar memo {:.1} MiB, {} at most); at the \
         end {} tokens ({:.1} MiB accounted) and {} Cedar requests held; peak − control \
         {:.1} MiB: {} (peak − the peak after a warm-up of the same batches without caches: \
         {:.1} MiB).\n",
        num("requests"),
        num("signatures"),
        kib("peak_rss_kib"),
        kib("peak_rss_kib_at_half"),
        kib("control_peak_rss_kib"),
        mib("bound_bytes"),
        mib("cache_bound_bytes"),
        num("cache_capacity"),
        mib("memo_bound_bytes"),
        num("memo_capacity"),
        num("cache_len"),
        mib("cache_accounted_bytes"),
        num("memo_len"),
        kib("peak_rss_kib") - kib("control_peak_rss_kib"),
        if v.get("within_bound").and_then(Value::as_bool) == Some(true) {
            "within the bound"
        } else {
            "**over the bound**"
        },
        kib("peak_rss_kib") - kib("baseline_rss_kib"),
    )
}

fn main() {
    let file = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md"));
    let old = std::fs::read_to_string(&file).unwrap_or_default();
    let block = format!("{BEGIN}\n{}{END}", table());
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            let (head, rest) = old.split_at(b);
            let tail = rest.get(e - b + END.len()..).unwrap_or("");
            format!("{head}{block}{tail}")
        }
        _ => format!("{old}\n{block}\n"),
    };
    if let Err(e) = std::fs::write(&file, new) {
        eprintln!("report: cannot write {}: {e}", file.display());
        std::process::exit(1);
    }
    println!("{}", table());
}
