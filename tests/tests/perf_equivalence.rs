//! The speed-ups change nothing but speed:
//!
//! - Cedar slicing: on a generated pack of 240 policies (permit and forbid; action `==`,
//!   `in` lists, `in` action groups and unconstrained; principal `==`, `is`, `in`, `is … in`;
//!   resource scopes; `when`/`unless` on the context, some erroring), 12,000 generated
//!   requests get from [`SlicedPolicySet`] exactly what `Authorizer::is_authorized` on the
//!   whole set gives: decision, determining policy ids, and evaluation errors in order. The
//!   same pack through the whole verifier, sliced and not, gives identical `Decision`s.
//! - `verify_batch` (global pool, 1 and 2 threads of its own) is `verify` one by one.
//! - The signature cache skips only the signature: a cached token is still checked for time,
//!   audience and chain, and a different key never hits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../benches/src/policygen.rs"]
#[allow(dead_code)]
mod policygen;

use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request as CedarRequest};
use custody_jose::SigningKey;
use custody_tests::{
    chain, outcome, request, t0_claims, t1_claims, Fixture, PackBuilder, ALICE, BOB, NOW,
};
use custody_verifier::{
    Decision, Request, ResourceRef, SigCache, SlicedPolicySet, Verifier, VerifierOptions,
};
use policygen::{Rng, ACTIONS};
use serde_json::json;

/// The policy ids of a PolicySet parsed from text are `policy<n>`; the generator's `@id`s are
/// kept by custody's loader only, so the differential test works on positions.
fn cedar_request(g: &policygen::GenRequest) -> CedarRequest {
    let context = Context::from_json_str(&g.context, None).unwrap();
    CedarRequest::new(
        EntityUid::from_str(&g.principal).unwrap(),
        EntityUid::from_str(&g.action).unwrap(),
        EntityUid::from_str(&g.resource).unwrap(),
        context,
        None,
    )
    .unwrap()
}

#[derive(Debug, PartialEq, Eq)]
struct Answer {
    allow: bool,
    reasons: Vec<String>,
    errors: Vec<String>,
}

fn answer(r: &cedar_policy::Response) -> Answer {
    let mut reasons: Vec<String> = r.diagnostics().reason().map(ToString::to_string).collect();
    reasons.sort();
    Answer {
        allow: r.decision() == cedar_policy::Decision::Allow,
        reasons,
        errors: r.diagnostics().errors().map(ToString::to_string).collect(),
    }
}

#[test]
fn sliced_cedar_equals_whole_set_on_12000_requests() {
    let text = policygen::policies(240, 7);
    let whole = PolicySet::from_str(&text).unwrap();
    assert_eq!(whole.num_of_policies(), 240);
    let entities = Entities::from_json_str(&policygen::entities_json(), None).unwrap();
    let sliced = SlicedPolicySet::new(whole.clone());
    let authorizer = Authorizer::new();
    let mut rng = Rng::new(11);
    let (mut allows, mut with_errors, mut evaluated, mut reasons) = (0, 0, 0usize, 0usize);
    for i in 0..12_000 {
        let g = policygen::request(&mut rng);
        let req = cedar_request(&g);
        let want = answer(&authorizer.is_authorized(&req, &whole, &entities));
        let got = answer(&sliced.is_authorized(&req, &entities));
        assert_eq!(got, want, "request {i}: {g:?}");
        allows += usize::from(want.allow);
        with_errors += usize::from(!want.errors.is_empty());
        reasons += want.reasons.len();
        evaluated += sliced.slice_for(&req, &entities).num_of_policies();
    }
    // the generated traffic exercises both decisions, errors, and real slicing
    assert!(allows > 1_000 && allows < 11_000, "{allows} allows");
    assert!(with_errors > 500, "{with_errors} requests with errors");
    assert!(reasons > 12_000, "{reasons} determining policies");
    assert!(
        evaluated < 12_000 * 240 / 3,
        "slices average {}",
        evaluated / 12_000
    );
}

/// A pack with the generated policies, federation open to every action.
fn generated_pack(slicing: bool, threads: Option<usize>) -> (Fixture, Verifier) {
    let f = PackBuilder::default()
        .no_federation()
        .federate("a.example", "b.example", r#"["*"]"#)
        .federate("b.example", "c.example", r#"["*"]"#)
        .cedar(&policygen::policies(220, 3))
        .entities(&policygen::entities_json())
        .build();
    let options = VerifierOptions {
        cedar_slicing: slicing,
        batch_threads: threads,
        ..VerifierOptions::default()
    };
    let v = Verifier::with_options(Arc::clone(f.verifier.pack()), options);
    (f, v)
}

/// Requests over the generated pack: one upstream token per `txn`, shared by many requests.
fn generated_requests(f: &Fixture, n: usize, seed: u64) -> Vec<Request> {
    let all = ACTIONS.join(" ");
    let mut rng = Rng::new(seed);
    let upstream: Vec<String> = (0..8)
        .map(|u| {
            let mut c = t0_claims();
            c["scope"] = all.clone().into();
            c["txn"] = format!("txn-{u}").into();
            f.token("a.example", c)
        })
        .collect();
    (0..n)
        .map(|i| {
            let u = rng.below(upstream.len());
            let action = rng.pick(&ACTIONS).to_owned();
            let mut c = t1_claims();
            c["scope"] = all.clone().into();
            c["txn"] = format!("txn-{u}").into();
            c["iat"] = (NOW - 30 + (i % 7) as i64).into();
            let mut r = request(vec![upstream[u].clone(), f.token("b.example", c)]);
            r.action = action;
            r.resource = match rng.below(3) {
                0 => None,
                1 => Some(ResourceRef {
                    type_name: "Doc".into(),
                    id: "d1".into(),
                }),
                _ => Some(ResourceRef {
                    type_name: "Resource".into(),
                    id: "spiffe://c.example/invoices".into(),
                }),
            };
            r.context = match rng.below(3) {
                0 => None,
                _ => Some(json!({"level": rng.below(6)})),
            };
            if rng.below(4) == 0 {
                r.peer = Some(ALICE.into());
            }
            if rng.below(10) == 0 {
                r.now = Some(NOW + 10_000); // expired: denied before Cedar
            }
            r
        })
        .collect()
}

#[test]
fn sliced_verifier_equals_unsliced_verifier() {
    let (f, sliced) = generated_pack(true, None);
    let plain = Verifier::with_options(
        Arc::clone(f.verifier.pack()),
        VerifierOptions {
            cedar_slicing: false,
            ..VerifierOptions::default()
        },
    );
    let reqs = generated_requests(&f, 400, 5);
    let mut allowed = 0;
    let mut policy_denied = 0;
    for (i, r) in reqs.iter().enumerate() {
        let (a, b) = (sliced.verify(r), plain.verify(r));
        assert_eq!(a, b, "request {i}");
        allowed += usize::from(a.is_allowed());
        policy_denied += usize::from(outcome(&a) == "policy_denied");
    }
    assert!(
        allowed > 20 && policy_denied > 20,
        "{allowed} allowed, {policy_denied} denied by Cedar"
    );
}

#[test]
fn batch_equals_one_by_one_on_every_pool() {
    let (f, one_by_one) = generated_pack(true, None);
    let reqs = generated_requests(&f, 300, 9);
    let want: Vec<Decision> = reqs.iter().map(|r| one_by_one.verify(r)).collect();
    for threads in [None, Some(1), Some(2)] {
        let (_, v) = {
            let options = VerifierOptions {
                batch_threads: threads,
                ..VerifierOptions::default()
            };
            (
                (),
                Verifier::with_options(Arc::clone(f.verifier.pack()), options),
            )
        };
        if let Some(n) = threads {
            assert_eq!(v.batch_threads(), n);
        }
        // twice: cold, then with every signature cached
        assert_eq!(v.verify_batch(&reqs), want, "threads {threads:?}, cold");
        assert_eq!(v.verify_batch(&reqs), want, "threads {threads:?}, warm");
        assert!(v.sig_cache().stats().hits >= reqs.len() as u64);
    }
    // and with the cache off
    let off = Verifier::with_options(
        Arc::clone(f.verifier.pack()),
        VerifierOptions {
            sig_cache_entries: 0,
            batch_threads: Some(2),
            ..VerifierOptions::default()
        },
    );
    assert_eq!(off.verify_batch(&reqs), want);
    assert!(off.sig_cache().is_empty());
}

#[test]
fn a_cached_signature_skips_nothing_else() {
    let f = Fixture::standard();
    let tokens = chain(&f);
    let ok = f.verify(&request(tokens.clone()));
    assert!(ok.is_allowed(), "{ok:?}");
    let misses = f.verifier.sig_cache().stats().misses;
    // the same tokens, now cached, still fail every other check
    let mut late = request(tokens.clone());
    late.now = Some(NOW + 3_600);
    assert_eq!(outcome(&f.verify(&late)), "expired");
    let mut early = request(tokens.clone());
    early.now = Some(NOW - 3_600);
    assert_eq!(outcome(&f.verify(&early)), "issued_in_future");
    let mut elsewhere = request(tokens.clone());
    elsewhere.audience = "spiffe://c.example/other".into();
    assert_eq!(outcome(&f.verify(&elsewhere)), "audience_mismatch");
    let mut write = request(tokens.clone());
    write.action = "orders:write".into();
    assert_eq!(outcome(&f.verify(&write)), "scope_missing");
    let mut wrong_peer = request(tokens.clone());
    wrong_peer.peer = Some(BOB.into());
    assert_eq!(outcome(&f.verify(&wrong_peer)), "sender_mismatch");
    // t1 alone (cached) is no chain: its actors are not vouched for
    let alone = f.verify(&request(vec![tokens[1].clone()]));
    assert!(!alone.is_allowed());
    let stats = f.verifier.sig_cache().stats();
    assert_eq!(
        stats.misses, misses,
        "every signature above came from the cache"
    );
    assert!(stats.hits >= 9, "{stats:?}");
    // a token signed by the right kid with the wrong key is refused, cached or not
    let rogue = SigningKey::from_seed("a.example-k1", [99; 32]);
    let mut c = t0_claims();
    c["iss"] = "https://as.a.example".into();
    let forged = custody_jose::sign(&rogue, Some("at+jwt"), &c).unwrap();
    let d = f.verify(&request(vec![forged.clone(), tokens[1].clone()]));
    assert_eq!(outcome(&d), "bad_signature");
    assert_eq!(
        outcome(&f.verify(&request(vec![forged, tokens[1].clone()]))),
        "bad_signature"
    );
}

#[test]
fn a_replaced_key_never_hits() {
    let old = SigningKey::from_seed("k1", [1; 32]);
    let new = SigningKey::from_seed("k1", [2; 32]);
    let cache = SigCache::new(64);
    let sig = old.sign_bytes(b"payload");
    assert!(cache.verify(&old.public(), b"payload", &sig));
    // after a reload the same kid names another key: the old signature is not a hit
    assert!(!cache.verify(&new.public(), b"payload", &sig));
    assert_eq!(cache.stats().hits, 0);
    // a verifier on a reloaded pack starts with an empty cache of its own
    let f = Fixture::standard();
    f.verify(&request(chain(&f)));
    let reloaded = Verifier::new((**f.verifier.pack()).clone());
    assert!(reloaded.sig_cache().is_empty());
    assert!(!f.verifier.sig_cache().is_empty());
}
