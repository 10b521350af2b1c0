//! Caller proofs through Check: a WIT with its WPT from their headers, checked against the
//! configured target authority (never `Host`); the same WPT again is `replayed` even with the
//! decision cache on (a one-time proof is never answered from it); a DPoP-bound token without
//! its proof is `peer_invalid` with 401.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use crate::common;

use base64::Engine as _;
use common::*;
use custody_jose::{sign_with_header, Algorithm, SigningKey, B64};
use custody_tests::{act, Fixture, ALICE, AUD};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const AUTHORITY: &str = "https://orders.c.example";

fn hash(text: &str) -> String {
    B64.encode(Sha256::digest(text.as_bytes()))
}

fn public_jwk(key: &SigningKey) -> Value {
    let mut jwk = key.public().to_jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    jwk["alg"] = key.alg().name().into();
    jwk
}

fn alice_token(f: &Fixture, extra: Value) -> String {
    let mut c = live(
        json!({"sub": "user:alice", "aud": AUD, "scope": "orders:read", "act": act(&[ALICE])}),
        30,
        300,
    );
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    f.token("b.example", c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wpt_is_good_once_through_check() {
    let f = Fixture::standard();
    let mut a = args(&f);
    a.target_authority = Some(AUTHORITY.into());
    let r = start(a).await;
    let mut client = authz(&r).await;
    let wl = SigningKey::generate("wl", Algorithm::Es256).unwrap();
    let token = alice_token(&f, json!({}));
    let now = unix_now();
    let key = f.key("b.example");
    let wit = sign_with_header(
        key,
        &json!({"alg": "EdDSA", "kid": key.kid(), "typ": "wit+jwt"}),
        &json!({"sub": ALICE, "iat": now - 10, "exp": now + 600, "cnf": {"jwk": public_jwk(&wl)}}),
    )
    .unwrap();
    let wpt = |aud: &str, jti: &str| {
        sign_with_header(
            &wl,
            &json!({"alg": "ES256", "typ": "wpt+jwt"}),
            &json!({"aud": aud, "exp": now + 60, "jti": jti, "wth": hash(&wit),
                "ath": hash(&token)}),
        )
        .unwrap()
    };
    // the path of `check_request` without its query, under the configured authority
    let target = format!("{AUTHORITY}/orders/42");
    let headers = |proof: String| {
        let mut h = chain_headers(&[], &token, "orders:read");
        h.push(("workload-identity-token", wit.clone()));
        h.push(("workload-proof-token", proof));
        h
    };
    let first = check(&mut client, &headers(wpt(&target, "j1")), "").await;
    assert_eq!(code(&first), "allow", "{first:?}");
    let again = check(&mut client, &headers(wpt(&target, "j1")), "").await;
    assert_eq!(code(&again), "replayed");
    match outcome(&again) {
        Outcome::Deny { http, .. } => assert_eq!(http, 401),
        other => panic!("{other:?}"),
    }
    // `Host` (orders.c.example in `check_request`) says nothing: a WPT for another authority
    // is refused
    let elsewhere = wpt("https://evil.example/orders/42", "j2");
    let d = check(&mut client, &headers(elsewhere), "").await;
    assert_eq!(code(&d), "peer_invalid");
    // a proven caller beside a principal Envoy sends: the principal is not taken on trust
    // (no certificate here, so by default the principal is `peer`, and it must agree)
    let d = check(
        &mut client,
        &headers(wpt(&target, "j3")),
        "spiffe://b.example/other",
    )
    .await;
    assert_eq!(code(&d), "sender_mismatch");
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_token_without_its_proof_is_401() {
    let f = Fixture::standard();
    let mut a = args(&f);
    a.target_authority = Some(AUTHORITY.into());
    let r = start(a).await;
    let mut client = authz(&r).await;
    let client_key = SigningKey::generate("c", Algorithm::Es256).unwrap();
    let jkt = B64.encode(client_key.public().thumbprint());
    let token = alice_token(&f, json!({"cnf": {"jkt": jkt}}));
    let h = chain_headers(&[], &token, "orders:read");
    let d = check(&mut client, &h, "").await;
    assert_eq!(code(&d), "peer_invalid");
    match outcome(&d) {
        Outcome::Deny { http, .. } => assert_eq!(http, 401),
        other => panic!("{other:?}"),
    }
    let now = unix_now();
    let proof = sign_with_header(
        &client_key,
        &json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": public_jwk(&client_key)}),
        &json!({"htm": "GET", "htu": format!("{AUTHORITY}/orders/42"), "iat": now,
            "jti": "p1", "ath": hash(&token)}),
    )
    .unwrap();
    let mut h = chain_headers(&[], &token, "orders:read");
    h[0].1 = format!("DPoP {token}");
    h.push(("dpop", proof));
    let d = check(&mut client, &h, "").await;
    assert_eq!(code(&d), "allow", "{d:?}");
    let d = check(&mut client, &h, "").await;
    assert_eq!(code(&d), "replayed");
    r.shutdown().await.unwrap();
}
