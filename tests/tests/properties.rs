//! Property tests (proptest): attenuation never widens; `verify_batch` is `verify` on each; the
//! token cache and the Cedar request memo never change a decision.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use custody_tests::*;
use custody_verifier::{Request, Verifier, VerifierOptions};
use proptest::prelude::*;
use serde_json::json;

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(Fixture::standard)
}

const GATEWAY: &str = "spiffe://c.example/gateway";
const SCOPES: [&str; 4] = ["orders:read", "orders:write", "orders:delete", "admin"];
/// The standard path: each hop's domain and the agent it adds.
const HOPS: [(&str, &str); 3] = [
    ("a.example", BOB),
    ("b.example", ALICE),
    ("c.example", GATEWAY),
];

/// One generated hop: its scope (a bitmask over `SCOPES`), whether that mask is first narrowed
/// to the previous hop's, and offsets on `exp` and `iat`.
#[derive(Clone, Debug)]
struct Hop {
    scope: u8,
    narrow: bool,
    exp: i64,
    iat: i64,
}

fn hop() -> impl Strategy<Value = Hop> {
    (0u8..16, any::<bool>(), -120i64..120, -40i64..40).prop_map(|(scope, narrow, exp, iat)| Hop {
        scope,
        narrow,
        exp,
        iat,
    })
}

fn scope_set(mask: u8) -> BTreeSet<String> {
    SCOPES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, s)| (*s).to_owned())
        .collect()
}

/// Mints the chain; returns the tokens and each hop's (scope mask, exp).
fn mint_chain(hops: &[Hop]) -> (Vec<String>, Vec<(u8, i64)>) {
    let f = fixture();
    let mut tokens = Vec::new();
    let mut minted = Vec::new();
    let mut prev = 0xffu8;
    // One hop: Alice alone; two: Bob, Alice; three: Bob, Alice, the gateway.
    let path = if hops.len() == 1 {
        &HOPS[1..2]
    } else {
        &HOPS[..hops.len()]
    };
    for (i, h) in hops.iter().enumerate() {
        let mask = if h.narrow { h.scope & prev } else { h.scope } | if i == 0 { 1 } else { 0 };
        prev = mask;
        let (domain, _) = path[i];
        let actors: Vec<&str> = path[..=i].iter().map(|(_, a)| *a).collect();
        let aud = path.get(i + 1).map_or(AUD, |(_, a)| *a);
        let exp = NOW + 600 - 100 * i as i64 + h.exp;
        let scope: Vec<String> = scope_set(mask).into_iter().collect();
        tokens.push(f.token(
            domain,
            json!({
                "sub": "user:alice", "aud": [aud], "iat": NOW - 60 + 10 * i as i64 + h.iat,
                "exp": exp, "scope": scope.join(" "), "txn": "txn-1", "act": act(&actors),
            }),
        ));
        minted.push((mask, exp));
    }
    (tokens, minted)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Any chain along a -> b -> c that verifies presents no scope its origin lacked, outlives
    /// no earlier token, and narrows hop by hop.
    #[test]
    fn attenuation_never_widens(hops in prop::collection::vec(hop(), 1..=3)) {
        let (tokens, minted) = mint_chain(&hops);
        let d = fixture().verify(&request(tokens));
        if d.is_allowed() {
            let (origin_mask, origin_exp) = minted[0];
            let origin = scope_set(origin_mask);
            let presented: BTreeSet<String> = d.chain.as_ref().unwrap().scopes.iter().cloned().collect();
            prop_assert!(presented.is_subset(&origin), "{presented:?} ⊄ {origin:?}");
            prop_assert!(presented.contains("orders:read"));
            for pair in minted.windows(2) {
                prop_assert!(scope_set(pair[1].0).is_subset(&scope_set(pair[0].0)));
                prop_assert!(pair[1].1 <= pair[0].1);
            }
            prop_assert!(minted.iter().all(|(_, exp)| *exp <= origin_exp));
        }
    }
}

/// A request of one of a few shapes, valid or broken in a few ways.
fn some_request() -> impl Strategy<Value = Request> {
    (0u8..10, prop::collection::vec(hop(), 1..=3), ".{0,40}").prop_map(|(kind, hops, junk)| {
        let (mut tokens, _) = mint_chain(&hops);
        let mut req = request(tokens.clone());
        match kind {
            0 => req.audience = "spiffe://c.example/other".into(),
            1 => req.peer = Some(MALLORY.into()),
            2 => {
                tokens.push(junk);
                req.tokens = tokens;
            }
            3 => req.now = Some(NOW + 10_000),
            4 => req.action = "orders:write".into(),
            5 => req.tokens = vec![req.tokens[0].replace('.', "")],
            6 => req.peer = Some(junk),
            _ => {}
        }
        req
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// `verify_batch` gives exactly `verify` on each request, in order, whatever the batch
    /// (duplicates included: the signature cache must not change an answer).
    #[test]
    fn verify_batch_is_verify_on_each(batch in prop::collection::vec(some_request(), 0..12)) {
        let v = &fixture().verifier;
        let mut batch = batch;
        if let Some(first) = batch.first().cloned() {
            batch.push(first);
        }
        let together = v.verify_batch(&batch);
        let one_by_one: Vec<_> = batch.iter().map(|r| v.verify(r)).collect();
        prop_assert_eq!(together, one_by_one);
    }
}

/// The standard pack with Cedar policies over the chain summary, the peer and the request
/// context (the test kit's keys are the same in every pack it builds).
fn cedar_fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        PackBuilder::default()
            .cedar(
                r#"
                permit (principal, action == Action::"orders:read", resource)
                when { context.depth <= 2 && context.domains.contains("b.example") };
                permit (principal is Agent, action, resource) when { context.peer == "" };
                forbid (principal, action, resource)
                when { context.request has level && context.request.level > 3 };
                "#,
            )
            .build()
    })
}

/// A verifier on `f`'s pack that remembers nothing.
fn uncached(f: &Fixture) -> Verifier {
    let options = VerifierOptions {
        sig_cache_entries: 0,
        cedar_memo_entries: 0,
        ..VerifierOptions::default()
    };
    Verifier::with_options(Arc::clone(f.verifier.pack()), options)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// A verifier that remembers tokens and Cedar requests decides every request as one that
    /// remembers nothing: the first time, and again once everything is remembered.
    #[test]
    fn caches_never_change_a_decision(
        batch in prop::collection::vec((some_request(), 0i64..6), 1..8),
    ) {
        let plain = [uncached(fixture()), uncached(cedar_fixture())];
        for round in 0..2 {
            for (r, level) in &batch {
                let mut r = r.clone();
                if *level > 0 {
                    r.context = Some(json!({"level": level}));
                }
                for (f, p) in [fixture(), cedar_fixture()].into_iter().zip(&plain) {
                    prop_assert_eq!(f.verify(&r), p.verify(&r), "round {}", round);
                }
            }
        }
    }
}

// The trust language's parse → print → parse property lives beside the parser, in
// `crates/policy/src/syntax/tests.rs` (`print_then_parse_round_trips`,
// `parse_then_print_then_parse_round_trips`); the `trust` fuzz target checks the same property
// on arbitrary text.

/// The Cedar fixture decides both ways on the generator's requests.
#[test]
fn cedar_fixture_allows_and_denies() {
    let f = cedar_fixture();
    let hops = vec![
        Hop {
            scope: 15,
            narrow: true,
            exp: 0,
            iat: 0
        };
        2
    ];
    let mut r = request(mint_chain(&hops).0);
    assert!(f.verify(&r).is_allowed());
    r.context = Some(json!({"level": 5}));
    assert_eq!(outcome(&f.verify(&r)), "policy_denied");
}

/// The attenuation property is not vacuous: the generator's plain chains verify.
#[test]
fn attenuation_generator_reaches_allowed_chains() {
    for n in 1..=3 {
        let hops = vec![
            Hop {
                scope: 15,
                narrow: true,
                exp: 0,
                iat: 0
            };
            n
        ];
        let d = fixture().verify(&request(mint_chain(&hops).0));
        assert!(d.is_allowed(), "{n} hops: {:?}", d.reasons);
    }
}
