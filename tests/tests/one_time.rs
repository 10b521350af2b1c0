//! One-time `jti`s across nodes (issue 17, part 2, the library side): under `chain {
//! one_time_tokens true }` the presented token is accepted once; with a shared
//! [`ReplayStore`] what one verifier accepted another refuses (`replayed`); a store that cannot
//! answer is `store_unavailable` unless `fail_open_replay true`. The store here is a plain
//! shared table standing for the fleet's; the Redis one is tested against a real server in
//! `crates/store`.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use custody_tests::{hop, outcome, request, t0_claims, t1_claims, Fixture, PackBuilder};
use custody_verifier::{ReplayStore, StoreDown, Verifier};

#[derive(Debug, Default)]
struct Shared {
    used: Mutex<HashMap<u128, i64>>,
    down: AtomicBool,
}

impl ReplayStore for Shared {
    fn first_use(&self, id: u128, until: i64, now: i64) -> Result<bool, StoreDown> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreDown("connection refused".into()));
        }
        let mut used = self.used.lock().unwrap();
        match used.get(&id) {
            Some(&u) if u >= now => Ok(false),
            _ => {
                used.insert(id, until);
                Ok(true)
            }
        }
    }
}

fn pack(chain: &str) -> Fixture {
    PackBuilder::default().chain(chain).build()
}

fn tokens(f: &Fixture, jti: Option<&str>) -> Vec<String> {
    let mut t1 = t1_claims();
    if let Some(j) = jti {
        t1["jti"] = j.into();
    }
    vec![f.token("a.example", t0_claims()), f.token("b.example", t1)]
}

fn node(f: &Fixture, store: &Arc<Shared>) -> Verifier {
    Verifier::new(f.verifier.pack().as_ref().clone())
        .with_replay_store(Arc::clone(store) as Arc<dyn ReplayStore>)
}

#[test]
fn a_one_time_token_is_accepted_once_per_node() {
    let f = pack("one_time_tokens true");
    let t = tokens(&f, Some("t1-a"));
    assert_eq!(outcome(&f.verify(&request(t.clone()))), "allow");
    let again = f.verify(&request(t));
    assert_eq!(
        (outcome(&again).as_str(), hop(&again)),
        ("replayed", Some(1))
    );
    // another jti is another token
    assert_eq!(
        outcome(&f.verify(&request(tokens(&f, Some("t1-b"))))),
        "allow"
    );
    // without a jti it cannot be one-time
    let none = f.verify(&request(tokens(&f, None)));
    assert_eq!(
        (outcome(&none).as_str(), hop(&none)),
        ("missing_claim", Some(1))
    );
    // without the setting, tokens are reusable as before
    let plain = Fixture::standard();
    let t = tokens(&plain, Some("t1-a"));
    for _ in 0..2 {
        assert_eq!(outcome(&plain.verify(&request(t.clone()))), "allow");
    }
}

#[test]
fn a_denied_call_uses_nothing_up() {
    let f = PackBuilder::default()
        .chain("one_time_tokens true")
        .cedar("permit(principal, action == Action::\"orders:read\", resource);")
        .build();
    let t = tokens(&f, Some("t1-c"));
    let mut write = request(t.clone());
    write.action = "orders:write".into();
    assert_ne!(outcome(&f.verify(&write)), "allow");
    assert_eq!(outcome(&f.verify(&request(t))), "allow");
}

#[test]
fn what_one_node_accepted_another_refuses() {
    let f = pack("one_time_tokens true");
    let store = Arc::new(Shared::default());
    let (a, b) = (node(&f, &store), node(&f, &store));
    let t = tokens(&f, Some("t1-d"));
    assert_eq!(outcome(&a.verify(&request(t.clone()))), "allow");
    let d = b.verify(&request(t));
    assert_eq!(outcome(&d), "replayed");
    assert!(
        d.reasons[0].message.contains("another node"),
        "{}",
        d.reasons[0].message
    );
}

#[test]
fn a_store_that_cannot_answer_fails_closed_unless_the_pack_says_open() {
    let store = Arc::new(Shared::default());
    store.down.store(true, Ordering::SeqCst);
    let closed = pack("one_time_tokens true");
    let d = node(&closed, &store).verify(&request(tokens(&closed, Some("t1-e"))));
    assert_eq!(outcome(&d), "store_unavailable");
    assert!(d.reasons[0].message.contains("connection refused"));

    let open = pack("one_time_tokens true\n  fail_open_replay true");
    let v = node(&open, &store);
    let t = tokens(&open, Some("t1-f"));
    assert_eq!(outcome(&v.verify(&request(t.clone()))), "allow");
    // this node's own memory still refuses its own replay
    assert_eq!(outcome(&v.verify(&request(t))), "replayed");
}
