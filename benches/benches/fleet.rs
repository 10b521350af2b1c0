//! Issue 17: the revocation check on the hot path. `cargo bench -p custody-benches --bench
//! fleet`; every row is in one group, so the ratios come from one run.
//!
//! - `single_cold/no_revocations` and `single_cold/10k_revocations`: verify.rs's cold
//!   single-token decision (distinct tokens, caches cleared each time the pool wraps, untimed),
//!   the verifier given an empty [`Revocations`] and then one holding 10,000 (2,500 of each
//!   kind: random `jti`s, SPIFFE IDs, origins, transactions), none of which match, so every
//!   decision is still an allow that went through the whole check.
//! - `chain_cold/no_revocations` and `chain_cold/10k_revocations`: the same for the standard
//!   two-token chain, both tokens distinct in every request.
//! - `revocation_check/10k`: the lookups alone, [`Revocations::find`] against the 10k set for
//!   each item the check looks up for a two-token chain: a `jti` and a `txn` per token, the
//!   actors of each token (1 + 2) and the origin, 8 in all, on a different chain each
//!   iteration. `find` takes the read lock per lookup where the check takes it once per
//!   decision, so this is, if anything, an over-estimate of the check.
//!
//! Ratios: (10k − none) ÷ none for single and chain; `revocation_check/10k` ÷
//! `single_cold/no_revocations` (goal ≤ 0.05).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use custody_benches::policygen::Rng;
use custody_benches::{chain_requests, demo_pack, single_requests, Minter, ALICE, BOB, NOW};
use custody_verifier::{
    ReasonCode, Request, Revocation, RevocationKind, Revocations, Verifier, VerifierOptions,
};

/// Distinct requests cycled through by the cold rows (as verify.rs's).
const POOL: u64 = 2048;
/// Revocations held in the `10k` rows, a quarter of each kind.
const HELD: usize = 10_000;

#[path = "shared/cold.rs"]
mod cold;
use cold::cold_one_by_one;

/// A one-thread verifier of the demo pack denying what `revocations` holds.
fn verifier(revocations: &Arc<Revocations>) -> Verifier {
    let options = VerifierOptions {
        batch_threads: Some(1),
        ..VerifierOptions::default()
    };
    let v = Verifier::with_options(Arc::new(demo_pack().unwrap()), options)
        .with_revocations(Arc::clone(revocations));
    assert!(Arc::ptr_eq(v.revocations(), revocations));
    v
}

/// A random UUID-shaped string (the usual look of a `jti` or a transaction id).
fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// `HELD` revocations, a quarter of each kind, valid an hour past [`NOW`], none naming anything
/// the demo scenario's tokens carry.
fn held() -> Vec<Revocation> {
    let mut rng = Rng::new(17);
    let until = NOW + 3600;
    let per_kind = HELD / RevocationKind::ALL.len();
    let mut out = Vec::with_capacity(HELD);
    for n in 0..per_kind {
        let items = [
            (RevocationKind::Jti, uuid(&mut rng)),
            (
                RevocationKind::Actor,
                format!("spiffe://x.example/agent/{n}"),
            ),
            (RevocationKind::Origin, format!("x.example|user:{n}")),
            (RevocationKind::Txn, format!("txn-{}", uuid(&mut rng))),
        ];
        for (kind, value) in items {
            out.push(Revocation::new(kind, value, until).unwrap());
        }
    }
    out
}

/// The set of [`held`], checked to hold all of them.
fn ten_k() -> Arc<Revocations> {
    let set = Revocations::new();
    set.extend(held());
    assert_eq!(set.len(), HELD);
    Arc::new(set)
}

/// The check is on this verifier's path: the same set plus one revocation of `req`'s first
/// token's `jti` denies it `revoked` (a copy of the set, so the measured one is unchanged).
fn assert_checked(set: &Revocations, req: &Request, jti: &str) {
    let with_hit = Revocations::new();
    with_hit.extend(set.list());
    with_hit.revoke(Revocation::new(RevocationKind::Jti, jti, NOW + 60).unwrap());
    let d = verifier(&Arc::new(with_hit)).verify(req);
    assert_eq!(d.code(), Some(ReasonCode::Revoked), "{d:?}");
}

/// Per chain request `i` of `chain_requests(m, POOL, POOL)`, what the check looks up: each
/// token's `jti`, actors and `txn` in order, then the origin.
fn chain_lookups(origin: &str) -> Vec<[(RevocationKind, String); 8]> {
    (0..POOL)
        .map(|i| {
            let txn = format!("txn-{i}");
            [
                (RevocationKind::Jti, format!("t0-{i}")),
                (RevocationKind::Actor, BOB.to_owned()),
                (RevocationKind::Txn, txn.clone()),
                (RevocationKind::Jti, format!("t1-{i}")),
                (RevocationKind::Actor, BOB.to_owned()),
                (RevocationKind::Actor, ALICE.to_owned()),
                (RevocationKind::Txn, txn),
                (RevocationKind::Origin, origin.to_owned()),
            ]
        })
        .collect()
}

fn revocations(c: &mut Criterion) {
    let m = Minter::new().unwrap();
    let singles = single_requests(&m, POOL).unwrap();
    let chains = chain_requests(&m, POOL, POOL).unwrap();
    let none = Arc::new(Revocations::new());
    let set = ten_k();
    let (v_none, v_10k) = (verifier(&none), verifier(&set));

    // untimed: still allows with the 10k set held, and the set is on the path
    let d = v_10k.verify(&singles[0]);
    assert!(d.is_allowed(), "{d:?}");
    let d = v_10k.verify(&chains[0]);
    assert!(d.is_allowed(), "{d:?}");
    let origin = d.chain.as_ref().unwrap().origin.clone();
    assert_eq!(origin, "a.example|user:alice");
    assert_checked(&set, &singles[0], "s-0");
    assert_checked(&set, &chains[0], "t0-0");
    v_10k.clear_caches();

    let lookups = chain_lookups(&origin);
    for items in &lookups {
        for (kind, value) in items {
            assert_eq!(set.find(*kind, value, NOW), None);
        }
    }

    let mut g = c.benchmark_group("fleet");
    cold_one_by_one(&mut g, "single_cold/no_revocations", &v_none, &singles);
    cold_one_by_one(&mut g, "single_cold/10k_revocations", &v_10k, &singles);
    cold_one_by_one(&mut g, "chain_cold/no_revocations", &v_none, &chains);
    cold_one_by_one(&mut g, "chain_cold/10k_revocations", &v_10k, &chains);
    g.throughput(Throughput::Elements(1));
    g.bench_function("revocation_check/10k", |b| {
        let mut i = 0;
        b.iter(|| {
            let items = &lookups[i % lookups.len()];
            i += 1;
            for (kind, value) in items {
                assert!(set
                    .find(*kind, black_box(value.as_str()), black_box(NOW))
                    .is_none());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, revocations);
criterion_main!(benches);
