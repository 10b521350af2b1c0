//! The cold one-decision-per-iteration loop, shared by the `verify` and `idp` benches (a module
//! file each includes with `#[path]`; not a bench target of its own).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Throughput};
use custody_verifier::{Request, Verifier};

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// One decision per iteration, each on a request not seen before (the cache is cleared each
/// time the pool of distinct requests wraps around, outside the timed region).
pub fn cold_one_by_one(g: &mut Group<'_>, id: &str, v: &Verifier, reqs: &[Request]) {
    g.throughput(Throughput::Elements(1));
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut i = 0usize;
            let mut left = iters;
            while left > 0 {
                v.clear_caches();
                let n = left.min(reqs.len() as u64) as usize;
                let start = Instant::now();
                for r in &reqs[..n] {
                    assert!(black_box(v.verify(r)).is_allowed());
                }
                total += start.elapsed();
                left -= n as u64;
                i += n;
            }
            black_box(i);
            total
        })
    });
}
