//! The speed-ups change nothing but speed:
//!
//! - Cedar slicing: on a generated pack of 240 policies (permit and forbid; action `==`,
//!   `in` lists, `in` action groups and unconstrained; principal `==`, `is`, `in`, `is … in`;
//!   resource scopes; `when`/`unless` on the context, some erroring), 12,000 generated
//!   requests get from [`SlicedPolicySet`] exactly what `Authorizer::is_authorized` on the
//!   whole set gives: decision, determining policy ids, and evaluation errors in order. The
//!   same pack through the whole verifier, sliced and not, gives identical `Decision`s.
//! - `verify_batch` (global pool, 1 and 2 threads of its own) is `verify` one by one.
//! - The token cache skips only decoding and the signature: a cached token is still checked
//!   for class, key binding, time, audience and chain, a different key never hits, a failed
//!   token is checked and denied again every time, and a reload that removes or replaces a key
//!   takes its tokens with it. A verifier with its caches (token cache, Cedar request memo)
//!   decides every generated case, cold and warm, one by one and in batches, exactly as one
//!   without them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

#[path = "../../benches/src/policygen.rs"]
#[allow(
    dead_code,
    reason = "a module shared with another target, which uses the items this one does not"
)]
mod policygen;

use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request as CedarRequest};
use custody_jose::SigningKey;
use custody_tests::{
    chain, hop, outcome, request, t0_claims, t1_claims, Fixture, PackBuilder, ALICE, BOB, NOW,
};
use custody_verifier::{
    Decision, Request, ResourceRef, SlicedPolicySet, TokenCache, Verifier, VerifierOptions,
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
        assert!(v.token_cache().stats().hits >= reqs.len() as u64);
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
    assert!(off.token_cache().is_empty());
}

#[test]
fn a_cached_signature_skips_nothing_else() {
    let f = Fixture::standard();
    let tokens = chain(&f);
    let ok = f.verify(&request(tokens.clone()));
    assert!(ok.is_allowed(), "{ok:?}");
    let misses = f.verifier.token_cache().stats().misses;
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
    let stats = f.verifier.token_cache().stats();
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
    let cache = TokenCache::new(64);
    let sig = old.sign_bytes(b"payload");
    assert!(cache.verify(&old.public(), b"payload", &sig));
    // after a reload the same kid names another key: the old signature is not a hit
    assert!(!cache.verify(&new.public(), b"payload", &sig));
    assert_eq!(cache.stats().hits, 0);
    // a verifier on a reloaded pack starts with an empty cache of its own
    let f = Fixture::standard();
    f.verify(&request(chain(&f)));
    let reloaded = Verifier::new((**f.verifier.pack()).clone());
    assert!(reloaded.token_cache().is_empty());
    assert!(!f.verifier.token_cache().is_empty());
}

/// A verifier on `pack` that remembers nothing: every token decoded and verified, every Cedar
/// request built.
fn uncached(pack: &Arc<custody_policy::PolicyPack>) -> Verifier {
    let options = VerifierOptions {
        sig_cache_entries: 0,
        cedar_memo_entries: 0,
        ..VerifierOptions::default()
    };
    Verifier::with_options(Arc::clone(pack), options)
}

/// Variations of a request that a cached token must still fail or pass exactly as a new one
/// would: past its expiry (at the boundary, skew included), before its `iat`, at another
/// audience, for another action, with another peer, with the tokens alone or swapped.
fn variations(r: &Request) -> Vec<Request> {
    let mut out = vec![r.clone()];
    let now = r.now.unwrap_or(NOW);
    for t in [now + 10_000, NOW + 300 + 29, NOW + 300 + 30, NOW - 3_600] {
        let mut v = r.clone();
        v.now = Some(t);
        out.push(v);
    }
    let mut v = r.clone();
    v.audience = "spiffe://c.example/other".into();
    out.push(v);
    let mut v = r.clone();
    v.action = "orders:write".into();
    out.push(v);
    let mut v = r.clone();
    v.peer = Some(BOB.into());
    out.push(v);
    if r.tokens.len() > 1 {
        let mut v = r.clone();
        v.tokens = vec![r.tokens[1].clone()];
        out.push(v);
        let mut v = r.clone();
        v.tokens.reverse();
        out.push(v);
    }
    out
}

#[test]
fn cached_and_uncached_verifiers_agree_on_every_case() {
    let (f, cached) = generated_pack(true, None);
    let plain = uncached(f.verifier.pack());
    let reqs: Vec<Request> = generated_requests(&f, 60, 21)
        .iter()
        .flat_map(variations)
        .collect();
    let want: Vec<Decision> = reqs.iter().map(|r| plain.verify(r)).collect();
    // every request twice: the first pass meets most tokens new, the second finds them all
    for pass in ["cold", "warm"] {
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(cached.verify(r), want[i], "{pass} request {i}: {r:?}");
        }
    }
    // and through the batch path, on its two threads
    let two = Verifier::with_options(
        Arc::clone(f.verifier.pack()),
        VerifierOptions {
            batch_threads: Some(2),
            ..VerifierOptions::default()
        },
    );
    assert_eq!(two.verify_batch(&reqs), want);
    assert_eq!(two.verify_batch(&reqs), want);
    let codes: std::collections::BTreeSet<String> = want.iter().map(outcome).collect();
    // the comparison is not vacuous: caches were used, and many outcomes were met
    assert!(cached.token_cache().stats().hits > reqs.len() as u64);
    assert!(cached.cedar_memo_len() > 0);
    assert!(plain.token_cache().is_empty() && plain.cedar_memo_len() == 0);
    for code in [
        "allow",
        "expired",
        "issued_in_future",
        "audience_mismatch",
        "sender_mismatch",
        "policy_denied",
        "issuer_not_in_chain",
    ] {
        assert!(codes.contains(code), "no `{code}` among {codes:?}");
    }
}

/// A hit is the whole token byte for byte: tokens of the same length that end in the same
/// signature (the bytes the cache's bucket is picked by), differing anywhere before it, are not
/// found: each goes the long way and is denied (from the cache it would be allowed).
#[test]
fn a_token_sharing_a_cached_tokens_length_and_signature_is_not_found() {
    let f = Fixture::standard();
    let tokens = chain(&f);
    assert!(f.verify(&request(tokens.clone())).is_allowed());
    let t1 = &tokens[1];
    let dot = t1.find('.').unwrap_or_default();
    // one character in the header, then one in the claims: same length, same tail
    for at in [dot / 2, dot + 3] {
        let mut bytes = t1.clone().into_bytes();
        let b = bytes.get_mut(at).expect("inside the token");
        *b = if *b == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).expect("ASCII");
        assert_eq!(forged.len(), t1.len());
        let d = f.verify(&request(vec![tokens[0].clone(), forged]));
        assert!(!d.is_allowed(), "a forged token at {at} was allowed");
    }
    // the genuine chain is still found
    let misses = f.verifier.token_cache().stats().misses;
    assert!(f.verify(&request(tokens)).is_allowed());
    assert_eq!(f.verifier.token_cache().stats().misses, misses);
}

#[test]
fn a_cached_token_is_checked_again_for_everything_but_its_signature() {
    let f = Fixture::standard();
    let plain = uncached(f.verifier.pack());
    let tokens = chain(&f);
    let same = |r: &Request| {
        let d = f.verify(r);
        assert_eq!(d, plain.verify(r), "{r:?}");
        d
    };
    // the same tokens twice: allowed both times, the second time from the cache
    assert!(same(&request(tokens.clone())).is_allowed());
    let misses = f.verifier.token_cache().stats().misses;
    assert!(same(&request(tokens.clone())).is_allowed());
    assert_eq!(f.verifier.token_cache().stats().misses, misses);
    assert_eq!(f.verifier.token_cache().len(), 2);
    // t1 expires at NOW + 300, skew 30: valid one second before, expired at the boundary
    let mut at = request(tokens.clone());
    at.now = Some(NOW + 329);
    assert!(same(&at).is_allowed());
    at.now = Some(NOW + 330);
    let d = same(&at);
    assert_eq!((outcome(&d), hop(&d)), ("expired".to_owned(), Some(1)));
    // the same bytes at another audience
    let mut elsewhere = request(tokens.clone());
    elsewhere.audience = "spiffe://c.example/invoices".into();
    assert_eq!(outcome(&same(&elsewhere)), "audience_mismatch");
    // the upstream token alone is presented to the wrong audience; the presented one alone is
    // no chain; swapped, the class and links fail as for new tokens
    assert_eq!(
        outcome(&same(&request(vec![tokens[0].clone()]))),
        "audience_mismatch"
    );
    assert_eq!(
        outcome(&same(&request(vec![tokens[1].clone()]))),
        "issuer_not_in_chain"
    );
    let mut swapped = tokens.clone();
    swapped.reverse();
    assert!(!same(&request(swapped)).is_allowed());
    // a cached t0 where a Txn-Token is expected is the wrong type
    let mut c = json!({"sub": "user:alice", "txn": "txn-1", "scope": "orders:read",
        "req_wl": ALICE, "aud": "c.example", "iat": NOW - 5, "exp": NOW + 60});
    c["iss"] = custody_tests::issuer("c.example").into();
    let mut with_txn = request(tokens.clone());
    with_txn.txn_token = Some(tokens[0].clone());
    assert_eq!(outcome(&same(&with_txn)), "wrong_token_type");
    with_txn.txn_token = Some(f.txn_token(c));
    with_txn.peer = Some(ALICE.into());
    assert!(same(&with_txn).is_allowed(), "{:?}", f.verify(&with_txn));
    assert_eq!(f.verifier.token_cache().len(), 3);
}

#[test]
fn a_failed_token_is_checked_and_denied_again_every_time() {
    let f = Fixture::standard();
    let plain = uncached(f.verifier.pack());
    let rogue = SigningKey::from_seed("a.example-k1", [99; 32]);
    let mut c = t0_claims();
    c["iss"] = "https://as.a.example".into();
    let forged = custody_jose::sign(&rogue, Some("at+jwt"), &c).unwrap();
    let good = chain(&f);
    let expired = f.token("b.example", {
        let mut c = t1_claims();
        c["exp"] = (NOW - 100).into();
        c["iat"] = (NOW - 200).into();
        c
    });
    let bad_actor = f.token("b.example", {
        let mut c = t1_claims();
        c["act"] = json!({"sub": "spiffe://b.example"});
        c
    });
    // (tokens, first code, `verify_strict` runs per repeat, tokens kept)
    let cases = [
        // the forged token fails first: nothing after it is read, nothing is kept
        (vec![forged, good[1].clone()], "bad_signature", 1, 0),
        // a good signature on good claims is kept even though the token has expired: its
        // times are checked again every time
        (vec![good[0].clone(), expired], "expired", 0, 2),
        // good signature, bad identifiers: not kept, verified again every time
        (vec![good[0].clone(), bad_actor], "invalid_spiffe_id", 1, 1),
    ];
    for (tokens, code, verified, kept) in cases {
        f.verifier.clear_caches();
        let req = request(tokens);
        let first = f.verify(&req);
        assert_eq!(outcome(&first), code);
        for _ in 0..3 {
            let misses = f.verifier.token_cache().stats().misses;
            assert_eq!(f.verify(&req), first);
            assert_eq!(plain.verify(&req), first);
            let again = f.verifier.token_cache().stats().misses - misses;
            assert_eq!(again, verified, "{code}");
        }
        assert_eq!(f.verifier.token_cache().len(), kept, "{code}");
    }
}

#[test]
fn a_reload_that_removes_or_replaces_a_key_takes_its_tokens_with_it() {
    use custody_jose::KeySet;
    let f = Fixture::standard();
    let req = request(chain(&f));
    let load = || {
        custody_policy::PolicyPack::load(f.dir.path(), &custody_jose::Limits::default())
            .unwrap()
            .pack
    };
    let before = Verifier::new(load());
    assert!(before.verify(&req).is_allowed());
    assert!(before.verify(&req).is_allowed());
    assert_eq!(before.token_cache().len(), 2);
    let keys = f.dir.path().join("keys/a.example.jwks");
    // a.example rotates: its key is removed, another one takes its place under a new kid
    let mut rotated = KeySet::new();
    rotated
        .insert(SigningKey::from_seed("a.example-k2", [42; 32]).public())
        .unwrap();
    std::fs::write(&keys, rotated.to_jwks().to_string()).unwrap();
    let reloaded = Verifier::new(load());
    let d = reloaded.verify(&req);
    assert_eq!((outcome(&d), hop(&d)), ("unknown_key".to_owned(), Some(0)));
    assert_eq!(reloaded.verify(&req), d);
    assert_eq!(uncached(reloaded.pack()).verify(&req), d);
    // the same kid now names another key: the signature is checked, and fails
    let mut replaced = KeySet::new();
    replaced
        .insert(SigningKey::from_seed("a.example-k1", [42; 32]).public())
        .unwrap();
    std::fs::write(&keys, replaced.to_jwks().to_string()).unwrap();
    let reloaded = Verifier::new(load());
    let d = reloaded.verify(&req);
    assert_eq!(outcome(&d), "bad_signature");
    assert_eq!(reloaded.verify(&req), d);
    assert_eq!(uncached(reloaded.pack()).verify(&req), d);
    // the verifier built before the reload still decides with the pack it was built from
    assert!(before.verify(&req).is_allowed());
}

#[test]
fn the_cedar_memo_gives_what_building_the_request_gives() {
    let (f, memo) = generated_pack(true, None);
    let plain = uncached(f.verifier.pack());
    let mut reqs = generated_requests(&f, 300, 17);
    // the same chains under contexts that differ only in ways the memo key must see
    let extra: Vec<Request> = reqs
        .iter()
        .take(40)
        .flat_map(|r| {
            [
                json!({"level": 1}),
                json!({"level": 2}),
                json!({"level": "1"}),
                json!({"level": [1]}),
                json!({"level": 1, "x": true}),
                json!({}),
            ]
            .into_iter()
            .map(move |c| {
                let mut v = r.clone();
                v.context = Some(c);
                v
            })
        })
        .collect();
    reqs.extend(extra);
    for pass in 0..2 {
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(memo.verify(r), plain.verify(r), "pass {pass}, request {i}");
        }
    }
    assert!(memo.cedar_memo_len() > 10);
}
