//! The key-source seam (`custody_jose::KeyStore` behind `Verifier::with_key_store`): a key
//! source replaces a domain's keys while the verifier runs, and the verifier's token cache
//! honours a remembered token only while the key it verified under is still in its domain's
//! set. Public APIs only.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::sync::Arc;

use custody_jose::{KeySet, SigningKey};
use custody_tests::{chain, outcome, request, Fixture};
use custody_verifier::{Verifier, VerifierOptions};

/// A verifier on the standard pack whose key store the test holds.
fn with_store(f: &Fixture) -> (Verifier, Arc<custody_jose::KeyStore>) {
    let store = Arc::new(Verifier::pack_key_store(f.verifier.pack()));
    let v = Verifier::with_key_store(
        Arc::clone(f.verifier.pack()),
        Arc::clone(&store),
        VerifierOptions::default(),
    );
    (v, store)
}

fn set(keys: &[&SigningKey]) -> KeySet {
    let mut s = KeySet::new();
    for k in keys {
        s.insert(k.public()).unwrap();
    }
    s
}

#[test]
fn a_key_removed_from_its_set_vouches_for_nothing_even_when_cached() {
    let f = Fixture::standard();
    let (v, store) = with_store(&f);
    let req = request(chain(&f));
    assert!(v.verify(&req).is_allowed());
    assert!(v.verify(&req).is_allowed());
    let hits = v.token_cache().stats().hits;
    assert!(hits >= 2, "the second call came from the cache");
    // a.example's key source drops its key: t0 is no longer signed by a key of a.example
    let a = store.index_of("a.example").unwrap();
    let biscuit = store.domain(a).unwrap().biscuit().clone();
    store.replace(a, KeySet::new(), biscuit.clone()).unwrap();
    let d = v.verify(&req);
    assert_eq!(outcome(&d), "unknown_key");
    assert_eq!(d.reasons[0].hop, Some(0));
    // the same kid under another key: the cached token is not honoured, and is refused
    let rogue = SigningKey::from_seed(f.key("a.example").kid(), [99; 32]);
    store.replace(a, set(&[&rogue]), biscuit.clone()).unwrap();
    assert_eq!(outcome(&v.verify(&req)), "bad_signature");
    // the key comes back (a new snapshot holding the same key): allowed again
    store
        .replace(a, set(&[f.key("a.example")]), biscuit)
        .unwrap();
    assert!(v.verify(&req).is_allowed());
}

#[test]
fn a_rotation_that_keeps_the_key_keeps_the_cached_tokens() {
    let f = Fixture::standard();
    let (v, store) = with_store(&f);
    let req = request(chain(&f));
    assert!(v.verify(&req).is_allowed());
    let misses = v.token_cache().stats().misses;
    // b.example publishes a second key beside the one t1 was signed with
    let b = store.index_of("b.example").unwrap();
    let before = store.domain(b).unwrap();
    let next = SigningKey::from_seed("b.example-next", [42; 32]);
    let epoch = store
        .replace(
            b,
            set(&[f.key("b.example"), &next]),
            before.biscuit().clone(),
        )
        .unwrap();
    assert_ne!(epoch, before.epoch());
    assert!(v.verify(&req).is_allowed());
    assert_eq!(
        v.token_cache().stats().misses,
        misses,
        "both tokens were honoured from the cache: their keys are still in their sets"
    );
    // and a token signed with the new key verifies without a reload
    let mut claims = custody_tests::t1_claims();
    claims["iss"] = custody_tests::issuer("b.example").into();
    let t1 = custody_jose::sign(&next, Some("at+jwt"), &claims).unwrap();
    let tokens = vec![chain(&f)[0].clone(), t1];
    assert!(v.verify(&request(tokens)).is_allowed());
}

#[test]
fn the_verified_chain_is_the_verifiers_reading() {
    let f = Fixture::standard();
    let tokens = chain(&f);
    let (d, verified) = f.verifier.verify_traced(&request(tokens.clone()));
    assert!(d.is_allowed());
    assert!(verified.is_complete() && !verified.is_biscuit());
    assert!(!verified.is_replacement_chain());
    assert_eq!(verified.tokens().len(), 2);
    let actors: Vec<&str> = verified.tokens()[1]
        .actors()
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(actors, d.chain.as_ref().unwrap().actors);
    // a token that fails its own checks ends the verified prefix there
    let mut bad = tokens[1].clone();
    bad.push('x');
    let (d, verified) = f
        .verifier
        .verify_traced(&request(vec![tokens[0].clone(), bad]));
    assert!(!d.is_allowed());
    assert_eq!(verified.tokens().len(), 1);
    assert!(!verified.is_complete());
}
