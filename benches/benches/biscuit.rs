//! Issue 5: a 3-hop Biscuit chain against the same chain as three JWTs, cold (no token cache,
//! no Cedar memo) and warm, and against biscuit-auth's own verify + authorize of the same
//! token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::sync::Arc;
use std::time::Duration;

use biscuit_auth::builder::{fact, string, Term};
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use custody_tests::*;
use custody_verifier::biscuit::{self, Authority, Hop};
use custody_verifier::{Verifier, VerifierOptions};
use serde_json::json;

const CAROL: &str = "spiffe://b.example/agent/carol";
const HOPS: [(&str, &str, &str); 3] = [
    ("a.example", BOB, ALICE),
    ("b.example", ALICE, CAROL),
    ("b.example", CAROL, AUD),
];

fn jwts(f: &Fixture) -> Vec<String> {
    let mut actors = Vec::new();
    HOPS.iter()
        .map(|(signer, actor, aud)| {
            actors.push(*actor);
            f.token(
                signer,
                json!({"sub": "user:alice", "aud": aud, "iat": NOW - 60, "exp": NOW + 300,
                       "scope": "orders:read", "txn": "txn-1", "act": act(&actors)}),
            )
        })
        .collect()
}

fn biscuit_token(f: &Fixture) -> String {
    let a = Authority {
        domain: "a.example".into(),
        sub: "user:alice".into(),
        txn: Some("txn-1".into()),
        scopes: vec!["orders:read".into()],
        audience: vec![ALICE.into()],
        actor: Some(BOB.into()),
        issued_at: NOW - 60,
        expires: NOW + 300,
        checks: vec![],
    };
    let mut t = biscuit::mint(f.key("a.example"), &a).unwrap();
    for (signer, actor, aud) in &HOPS[1..] {
        let h = Hop {
            actor: (*actor).into(),
            audience: vec![(*aud).into()],
            ..Hop::default()
        };
        t = biscuit::attest(&t, f.key(signer), &h).unwrap();
    }
    biscuit::attenuate(&t, r#"check if operation("orders:read");"#).unwrap()
}

fn plain_biscuit_auth(f: &Fixture, token: &str) -> bool {
    let root = biscuit_auth::PublicKey::from_bytes(
        &f.key("a.example").public().ed25519().unwrap().to_bytes(),
        biscuit_auth::Algorithm::Ed25519,
    )
    .unwrap();
    let b = Biscuit::from_base64(token, root).unwrap();
    let mut a = AuthorizerBuilder::new()
        .fact(fact("operation", &[string("orders:read")]))
        .unwrap()
        .fact(fact("service", &[string(AUD)]))
        .unwrap()
        .fact(fact("time", &[Term::Date(NOW as u64)]))
        .unwrap()
        .policy("allow if true")
        .unwrap()
        .set_limits(AuthorizerLimits {
            max_facts: 10_000,
            max_iterations: 100,
            max_time: Duration::from_secs(86_400),
        })
        .build(&b)
        .unwrap();
    a.authorize().is_ok()
}

fn benches(c: &mut Criterion) {
    let f = PackBuilder::default().biscuit_keys().build();
    let pack = f.verifier.pack().clone();
    let cold = Verifier::with_options(
        Arc::clone(&pack),
        VerifierOptions {
            sig_cache_entries: 0,
            cedar_memo_entries: 0,
            ..VerifierOptions::default()
        },
    );
    let warm = Verifier::with_options(pack, VerifierOptions::default());
    let jwt_req = request(jwts(&f));
    let token = biscuit_token(&f);
    let b_req = request(vec![token.clone()]);
    for v in [&cold, &warm] {
        assert!(v.verify(&jwt_req).is_allowed());
        assert!(v.verify(&b_req).is_allowed());
    }
    assert!(plain_biscuit_auth(&f, &token));
    let mut g = c.benchmark_group("biscuit");
    g.bench_function("jwt_3_tokens_cold", |b| {
        b.iter(|| cold.verify(black_box(&jwt_req)))
    });
    g.bench_function("jwt_3_tokens_warm", |b| {
        b.iter(|| warm.verify(black_box(&jwt_req)))
    });
    g.bench_function("biscuit_3_hops_cold", |b| {
        b.iter(|| cold.verify(black_box(&b_req)))
    });
    g.bench_function("biscuit_3_hops_warm", |b| {
        b.iter(|| warm.verify(black_box(&b_req)))
    });
    g.bench_function("biscuit_auth_plain", |b| {
        b.iter(|| plain_biscuit_auth(&f, black_box(&token)))
    });
    g.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(group);
