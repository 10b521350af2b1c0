//! Revocations in the verifier (issue 17, part 1): a revoked `jti`, actor, origin or `txn`
//! denies every later request whose chain contains it, `revoked` with the hop that matched,
//! after the chain rules and before Cedar; the token cache keeps nothing alive past one; a
//! revocation lasts until its time; the set outlives the verifier it was given to.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::sync::Arc;

use custody_tests::{
    chain, hop, outcome, request, t0_claims, t1_claims, Fixture, PackBuilder, ALICE, BOB, NOW,
};
use custody_verifier::{Revocation, RevocationKind, Revocations, Verifier};

fn revoke(set: &Revocations, kind: RevocationKind, value: &str, until: i64) {
    set.revoke(Revocation::new(kind, value, until).unwrap());
}

#[test]
fn each_kind_denies_with_the_hop_it_matched() {
    let f = Fixture::standard();
    let mut t1 = t1_claims();
    t1["jti"] = "t1-jti".into();
    let tokens = vec![f.token("a.example", t0_claims()), f.token("b.example", t1)];
    let cases = [
        (RevocationKind::Jti, "t1-jti", Some(1)),
        (RevocationKind::Actor, BOB, Some(0)),
        (RevocationKind::Actor, ALICE, Some(1)),
        (RevocationKind::Origin, "a.example|user:alice", Some(0)),
        (RevocationKind::Txn, "txn-1", Some(0)),
    ];
    for (kind, value, want_hop) in cases {
        let set = Arc::new(Revocations::new());
        let v =
            Verifier::new(f.verifier.pack().as_ref().clone()).with_revocations(Arc::clone(&set));
        assert_eq!(outcome(&v.verify(&request(tokens.clone()))), "allow");
        revoke(&set, kind, value, NOW + 60);
        let d = v.verify(&request(tokens.clone()));
        assert_eq!(
            (outcome(&d).as_str(), hop(&d)),
            ("revoked", want_hop),
            "{kind} {value}"
        );
        assert!(
            d.reasons[0].message.contains(value),
            "{}",
            d.reasons[0].message
        );
        // the chain summary is still there: the chain itself was valid
        assert!(d.chain.is_some());
        // a value of another kind, or another value, matches nothing
        let other = Arc::new(Revocations::new());
        let v2 =
            Verifier::new(f.verifier.pack().as_ref().clone()).with_revocations(Arc::clone(&other));
        let wrong_kind = if kind == RevocationKind::Txn {
            RevocationKind::Jti
        } else {
            RevocationKind::Txn
        };
        revoke(&other, wrong_kind, value, NOW + 60);
        revoke(&other, kind, &format!("{value}x"), NOW + 60);
        assert_eq!(
            outcome(&v2.verify(&request(tokens.clone()))),
            "allow",
            "{kind} {value}"
        );
    }
}

#[test]
fn a_revocation_lasts_until_its_time() {
    let f = Fixture::standard();
    let set = Arc::new(Revocations::new());
    let v = Verifier::new(f.verifier.pack().as_ref().clone()).with_revocations(Arc::clone(&set));
    revoke(&set, RevocationKind::Actor, ALICE, NOW);
    assert_eq!(outcome(&v.verify(&request(chain(&f)))), "revoked");
    let mut later = request(chain(&f));
    later.now = Some(NOW + 1);
    assert_eq!(outcome(&v.verify(&later)), "allow");
}

#[test]
fn the_token_cache_keeps_no_allow_alive_past_a_revocation() {
    let f = Fixture::standard();
    let set = Arc::new(Revocations::new());
    let v = Verifier::new(f.verifier.pack().as_ref().clone()).with_revocations(Arc::clone(&set));
    let tokens = chain(&f);
    for _ in 0..3 {
        assert_eq!(outcome(&v.verify(&request(tokens.clone()))), "allow");
    }
    let misses = v.token_cache().stats().misses;
    revoke(
        &set,
        RevocationKind::Origin,
        "a.example|user:alice",
        NOW + 60,
    );
    assert_eq!(outcome(&v.verify(&request(tokens.clone()))), "revoked");
    // decided from the cache (no signature checked again), and denied all the same
    assert_eq!(v.token_cache().stats().misses, misses);
}

#[test]
fn revoked_is_checked_after_the_chain_rules_and_before_cedar() {
    let f = PackBuilder::default()
        .cedar("forbid(principal, action, resource);")
        .build();
    let set = Arc::new(Revocations::new());
    let v = Verifier::new(f.verifier.pack().as_ref().clone()).with_revocations(Arc::clone(&set));
    assert_eq!(outcome(&v.verify(&request(chain(&f)))), "policy_denied");
    revoke(&set, RevocationKind::Actor, ALICE, NOW + 60);
    // Cedar would deny too; the revocation is found first
    assert_eq!(outcome(&v.verify(&request(chain(&f)))), "revoked");
    // a chain rule failure is reported before the revocation
    let mut wide = t1_claims();
    wide["scope"] = "orders:read orders:admin".into();
    let tokens = vec![
        f.token("a.example", t0_claims()),
        f.token("b.example", wide),
    ];
    assert_eq!(outcome(&v.verify(&request(tokens))), "scope_escalation");
}

#[test]
fn one_set_serves_the_verifiers_of_later_packs() {
    let f = Fixture::standard();
    let set = Arc::new(Revocations::new());
    let first =
        Verifier::new(f.verifier.pack().as_ref().clone()).with_revocations(Arc::clone(&set));
    revoke(&set, RevocationKind::Actor, BOB, NOW + 60);
    assert_eq!(outcome(&first.verify(&request(chain(&f)))), "revoked");
    let second = Verifier::new(f.verifier.pack().as_ref().clone())
        .with_revocations(Arc::clone(first.revocations()));
    assert_eq!(outcome(&second.verify(&request(chain(&f)))), "revoked");
    // a verifier without the set denies nothing
    let own = Verifier::new(f.verifier.pack().as_ref().clone());
    assert_eq!(outcome(&own.verify(&request(chain(&f)))), "allow");
}
