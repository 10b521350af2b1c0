//! custody against its peers and the physical limit, each row measured beside its peers in one
//! run. `cargo bench -p custody-benches`; `bash benches/run.sh` also writes BENCHMARKS.md.
//!
//! Ids are `<scenario>/<variant>`; `src/bin/report.rs` knows how many decisions each iteration
//! of each id makes (the `BATCH`, `POOL` and batch sizes below).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request as CedarRequest};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use custody_benches::baseline::Baseline;
use custody_benches::{
    chain_requests, demo_pack, generated_pack_dir, load, policygen, single_requests, Minter,
};
use custody_jose::{decode, Limits, PublicKey};
use custody_verifier::{Request, SlicedPolicySet, Verifier, VerifierOptions};
use ed25519_dalek::Signature;
use rayon::prelude::*;

/// Requests per batch in the 2-thread rows.
const BATCH: usize = 512;
/// Distinct requests cycled through by the cold one-thread rows.
const POOL: u64 = 2048;

fn verifier(threads: usize) -> Verifier {
    let options = VerifierOptions {
        batch_threads: Some(threads),
        ..VerifierOptions::default()
    };
    Verifier::with_options(Arc::new(demo_pack().unwrap()), options)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

#[path = "shared/cold.rs"]
mod cold;
use cold::cold_one_by_one;

/// `BATCH` decisions per iteration through `verify_batch`, cold (cache cleared, untimed).
fn cold_batches(g: &mut Group<'_>, id: &str, v: &Verifier, reqs: &[Request]) {
    g.throughput(Throughput::Elements(BATCH as u64));
    let chunks: Vec<&[Request]> = reqs.chunks(BATCH).filter(|c| c.len() == BATCH).collect();
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for k in 0..iters as usize {
                v.clear_caches();
                let chunk = chunks[k % chunks.len()];
                let start = Instant::now();
                let out = black_box(v.verify_batch(chunk));
                total += start.elapsed();
                assert!(out.iter().all(|d| d.is_allowed()));
            }
            total
        })
    });
}

/// The signatures of the presented tokens, decoded once: the raw `verify_strict` limit.
fn raw_signatures(reqs: &[Request], key: &PublicKey) -> Vec<(Vec<u8>, Signature)> {
    reqs.iter()
        .map(|r| {
            let t = r.tokens.last().unwrap();
            let jws = decode(t, &Limits::default()).unwrap();
            let sig = Signature::from_slice(&jws.signature).unwrap();
            assert!(key
                .ed25519()
                .unwrap()
                .as_dalek()
                .verify_strict(jws.signing_input, &sig)
                .is_ok());
            assert!(key.verify_strict(jws.signing_input, &jws.signature));
            (jws.signing_input.to_vec(), sig)
        })
        .collect()
}

/// The limit rows: ed25519-dalek's own `VerifyingKey::verify_strict` on decoded signatures, 1
/// and 2 threads; and, for the record, custody's signature check (`PublicKey::verify_strict`,
/// the same acceptance without decompressing `R`) on the same signatures.
fn raw_rows(g: &mut Group<'_>, sigs: &[(Vec<u8>, Signature)], key: &PublicKey) {
    g.throughput(Throughput::Elements(1));
    let dalek = key.ed25519().unwrap().as_dalek();
    g.bench_function("verify_strict_1t", |b| {
        let mut i = 0;
        b.iter(|| {
            let (m, s) = &sigs[i % sigs.len()];
            i += 1;
            assert!(dalek.verify_strict(black_box(m), black_box(s)).is_ok());
        })
    });
    let two = pool(2);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("verify_strict_2t_batch", |b| {
        b.iter(|| {
            two.install(|| {
                sigs[..BATCH]
                    .par_iter()
                    .for_each(|(m, s)| assert!(dalek.verify_strict(m, s).is_ok()));
            })
        })
    });
    let bytes: Vec<(&[u8], [u8; 64])> = sigs.iter().map(|(m, s)| (&m[..], s.to_bytes())).collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("custody_signature_1t", |b| {
        let mut i = 0;
        b.iter(|| {
            let (m, s) = &bytes[i % bytes.len()];
            i += 1;
            assert!(key.verify_strict(black_box(m), black_box(s)));
        })
    });
}

fn single_token(c: &mut Criterion) {
    let m = Minter::new().unwrap();
    let reqs = single_requests(&m, POOL).unwrap();
    let mut g = c.benchmark_group("single_cold");
    cold_one_by_one(&mut g, "custody_1t", &verifier(1), &reqs);
    cold_batches(&mut g, "custody_1t_batch", &verifier(1), &reqs);
    cold_batches(&mut g, "custody_2t_batch", &verifier(2), &reqs);
    raw_rows(
        &mut g,
        &raw_signatures(&reqs, &m.b_key().public()),
        &m.b_key().public(),
    );
    let base = Baseline::demo().unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("jsonwebtoken_1t", |b| {
        let mut i = 0;
        b.iter(|| {
            let t = &reqs[i % reqs.len()].tokens[0];
            i += 1;
            assert!(base.single(black_box(t), "orders:read"));
        })
    });
    g.finish();
}

fn chain(c: &mut Criterion) {
    let m = Minter::new().unwrap();
    let cold = chain_requests(&m, POOL, POOL).unwrap();
    let mut g = c.benchmark_group("chain_cold");
    cold_one_by_one(&mut g, "custody_1t", &verifier(1), &cold);
    cold_batches(&mut g, "custody_1t_batch", &verifier(1), &cold);
    cold_batches(&mut g, "custody_2t_batch", &verifier(2), &cold);
    let base = Baseline::demo().unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("jsonwebtoken_cedar_1t", |b| {
        let mut i = 0;
        b.iter(|| {
            let r = &cold[i % cold.len()];
            i += 1;
            assert!(base.chain(&r.tokens[0], &r.tokens[1], "orders:read"));
        })
    });
    g.finish();

    // only the presented token is new: one upstream token, kept warm
    let warm_up = chain_requests(&m, POOL, 1).unwrap();
    let v = verifier(1);
    let mut g = c.benchmark_group("chain_warm_upstream");
    g.throughput(Throughput::Elements(1));
    g.bench_function("custody_1t", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                v.clear_caches();
                // warm the upstream token with a request whose presented token is not reused
                assert!(v.verify(&warm_up[0]).is_allowed());
                let n = left.min(warm_up.len() as u64 - 1) as usize;
                let start = Instant::now();
                for r in &warm_up[1..=n] {
                    assert!(black_box(v.verify(r)).is_allowed());
                }
                total += start.elapsed();
                left -= n as u64;
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("chain_warm_all");
    g.throughput(Throughput::Elements(1));
    let all_warm = &cold[0];
    assert!(v.verify(all_warm).is_allowed());
    g.bench_function("custody_1t", |b| {
        b.iter(|| assert!(black_box(v.verify(black_box(all_warm))).is_allowed()))
    });
    let two = verifier(2);
    let same: Vec<Request> = vec![all_warm.clone(); BATCH];
    two.verify_batch(&same[..1]);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("custody_2t_batch", |b| {
        b.iter(|| black_box(two.verify_batch(&same)))
    });
    let cedar_req = Baseline::demo_cedar_request().unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("plain_cedar", |b| {
        b.iter(|| assert!(base.is_authorized(black_box(&cedar_req))))
    });
    g.finish();
}

fn cedar_requests(n: usize) -> Vec<CedarRequest> {
    let mut rng = policygen::Rng::new(99);
    (0..n)
        .map(|_| {
            let g = policygen::request(&mut rng);
            CedarRequest::new(
                EntityUid::from_str(&g.principal).unwrap(),
                EntityUid::from_str(&g.action).unwrap(),
                EntityUid::from_str(&g.resource).unwrap(),
                Context::from_json_str(&g.context, None).unwrap(),
                None,
            )
            .unwrap()
        })
        .collect()
}

fn policies_200(c: &mut Criterion) {
    let whole = PolicySet::from_str(&policygen::policies(200, 42)).unwrap();
    let entities = Entities::from_json_str(&policygen::entities_json(), None).unwrap();
    let sliced = SlicedPolicySet::new(whole.clone());
    let reqs = cedar_requests(1000);
    for r in &reqs {
        sliced.is_authorized(r, &entities);
    }
    let mut g = c.benchmark_group("policies_200");
    g.throughput(Throughput::Elements(1));
    g.bench_function("custody_sliced", |b| {
        let mut i = 0;
        b.iter(|| {
            let r = &reqs[i % reqs.len()];
            i += 1;
            black_box(sliced.is_authorized(r, &entities))
        })
    });
    let authorizer = Authorizer::new();
    g.bench_function("plain_cedar", |b| {
        let mut i = 0;
        b.iter(|| {
            let r = &reqs[i % reqs.len()];
            i += 1;
            black_box(authorizer.is_authorized(r, &whole, &entities))
        })
    });
    g.finish();
}

fn batch_10k(c: &mut Criterion) {
    let m = Minter::new().unwrap();
    let reqs = chain_requests(&m, 10_000, 100).unwrap();
    let mut g = c.benchmark_group("batch_10k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(reqs.len() as u64));
    let loop_v = verifier(1);
    g.bench_function("verify_loop", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                loop_v.clear_caches();
                let start = Instant::now();
                for r in &reqs {
                    black_box(loop_v.verify(r));
                }
                total += start.elapsed();
            }
            total
        })
    });
    for (id, threads) in [("custody_1t", 1), ("custody_2t", 2)] {
        let v = verifier(threads);
        assert!(v.verify_batch(&reqs).iter().all(|d| d.is_allowed()));
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    v.clear_caches();
                    let start = Instant::now();
                    black_box(v.verify_batch(&reqs));
                    total += start.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

fn pack_load(c: &mut Criterion) {
    let dir = generated_pack_dir(1000).unwrap();
    let text = std::fs::read_to_string(dir.path().join("generated.cedar")).unwrap();
    let pack = load(dir.path()).unwrap();
    assert_eq!(
        pack.cedar.as_ref().unwrap().policies.num_of_policies(),
        1000
    );
    let mut g = c.benchmark_group("pack_load");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("custody_1000", |b| {
        b.iter(|| {
            let p = load(dir.path()).unwrap();
            black_box(Verifier::new(p))
        })
    });
    g.bench_function("cedar_from_str_1000", |b| {
        b.iter(|| black_box(PolicySet::from_str(&text).unwrap()))
    });
    g.finish();
}

/// Long scope lists: a chain whose two tokens carry 1,000 distinct scope items each (about
/// 7 KiB a token, under the 8 KiB cap), both tokens remembered, beside the standard chain of
/// the test kit (two items), and beside the item-by-item scan of two 1,000-item lists that
/// custody did before `crates/verifier/src/items.rs` (each item looked for in the other list).
fn scope_lists(c: &mut Criterion) {
    use custody_tests::{request, t0_claims, t1_claims, Fixture};
    let f = Fixture::standard();
    let items: Vec<String> = (0..1000).map(|i| format!("s{i:03}")).collect();
    let wide = format!("orders:read {}", items.join(" "));
    let chain = |scope: Option<&str>| {
        let (mut t0, mut t1) = (t0_claims(), t1_claims());
        if let Some(scope) = scope {
            t0["scope"] = scope.into();
            t1["scope"] = scope.into();
        }
        request(vec![f.token("a.example", t0), f.token("b.example", t1)])
    };
    let (standard, long) = (chain(None), chain(Some(&wide)));
    assert!(f.verify(&standard).is_allowed() && f.verify(&long).is_allowed());
    let mut g = c.benchmark_group("scope_lists");
    g.throughput(Throughput::Elements(1));
    g.bench_function("custody_2_items_warm", |b| {
        b.iter(|| assert!(black_box(f.verify(black_box(&standard))).is_allowed()))
    });
    g.bench_function("custody_1000_items_warm", |b| {
        b.iter(|| assert!(black_box(f.verify(black_box(&long))).is_allowed()))
    });
    let list: Vec<&str> = wide.split(' ').collect();
    g.bench_function("item_by_item_scan_1000", |b| {
        b.iter(|| {
            let (next, prev) = (black_box(&list), black_box(&list));
            assert!(next.iter().all(|s| prev.contains(s)))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    single_token,
    chain,
    policies_200,
    batch_10k,
    pack_load,
    scope_lists
);
criterion_main!(benches);
