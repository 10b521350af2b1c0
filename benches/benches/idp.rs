//! Issue 14: tokens from identity providers, against the chosen library's raw verify in the
//! same run. `cargo bench -p custody-benches --bench idp`.
//!
//! - `single_<alg>/custody`: a cold single-token decision (token cache cleared each time the
//!   pool of 512 distinct tokens wraps, untimed) whose token is signed ES256, RS256 (2048) or
//!   PS256 (2048); `single_<alg>/raw`: aws-lc-rs verifying the same tokens' signatures (key
//!   parsed once). Ratio: raw ÷ custody (goal ≥ 0.85).
//! - `chain_rs256_eddsa/custody`: the standard two-token chain, cold, its origin token RS256
//!   (the IdP's) and its hop Ed25519 (an agent's); `/raw`: aws-lc-rs RS256 plus ed25519-dalek
//!   `verify_strict` on the same two signatures.
//! - `refresh/warm_chain` and `refresh/warm_chain_under_refresh`: the same warm chain decision,
//!   without and with another thread replacing the origin domain's key set (same keys, a new
//!   snapshot) every millisecond, as a key source refreshing would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{self as aws, ParsedPublicKey};
use criterion::{criterion_group, criterion_main, Criterion};
use custody_jose::{decode, Algorithm, KeyMaterial, Limits, SigningKey};
use custody_tests::{request, t0_claims, t1_claims, PackBuilder, ALICE, AUD, NOW};
use custody_verifier::Request;
use serde_json::json;

const POOL: usize = 512;

#[path = "shared/cold.rs"]
mod cold;
use cold::cold_one_by_one as cold;

/// aws-lc-rs's parsed public key for `key` under `alg`.
fn parsed(key: &SigningKey, alg: Algorithm) -> ParsedPublicKey {
    match key.public().material().clone() {
        KeyMaterial::Ec(k) => {
            let point = [&[4u8][..], k.x(), k.y()].concat();
            ParsedPublicKey::new(&aws::ECDSA_P256_SHA256_FIXED, point).unwrap()
        }
        KeyMaterial::Rsa(k) => {
            let params: &'static aws::RsaParameters = match alg {
                Algorithm::Ps256 => &aws::RSA_PSS_2048_8192_SHA256,
                _ => &aws::RSA_PKCS1_2048_8192_SHA256,
            };
            // DER of RSAPublicKey { n, e }: aws-lc-rs parses it once here
            let der = rsa_public_der(k.n(), &[1, 0, 1]);
            ParsedPublicKey::new(params, der).unwrap()
        }
        _ => panic!("an EC or RSA key"),
    }
}

fn der_int(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    [der_len(0x02, v.len()), v].concat()
}

fn der_len(tag: u8, len: usize) -> Vec<u8> {
    match len {
        0..=127 => vec![tag, len as u8],
        128..=255 => vec![tag, 0x81, len as u8],
        _ => vec![tag, 0x82, (len >> 8) as u8, len as u8],
    }
}

fn rsa_public_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let body = [der_int(n), der_int(e)].concat();
    [der_len(0x30, body.len()), body].concat()
}

/// (signing input, signature) of each token.
fn signatures(tokens: &[String]) -> Vec<(Vec<u8>, Vec<u8>)> {
    tokens
        .iter()
        .map(|t| {
            let jws = decode(t, &Limits::default()).unwrap();
            (jws.signing_input.to_vec(), jws.signature.to_vec())
        })
        .collect()
}

fn single(c: &mut Criterion) {
    for (name, alg) in [
        ("single_es256", Algorithm::Es256),
        ("single_rs256", Algorithm::Rs256),
        ("single_ps256", Algorithm::Ps256),
    ] {
        let key = SigningKey::generate("b-idp", alg).unwrap();
        let f = PackBuilder::default().key("b.example", key.clone()).build();
        let tokens: Vec<String> = (0..POOL)
            .map(|i| {
                let claims = json!({
                    "sub": "user:carol", "aud": AUD, "iat": NOW - 10, "exp": NOW + 300,
                    "scope": "orders:read", "act": {"sub": ALICE}, "jti": format!("t{i}"),
                });
                f.token("b.example", claims)
            })
            .collect();
        let reqs: Vec<Request> = tokens.iter().map(|t| request(vec![t.clone()])).collect();
        assert!(f.verifier.verify(&reqs[0]).is_allowed());
        let sigs = signatures(&tokens);
        let raw = parsed(&key, alg);
        let mut g = c.benchmark_group(name);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(3));
        cold(&mut g, "custody", &f.verifier, &reqs);
        g.bench_function("raw", |b| {
            let mut i = 0;
            b.iter(|| {
                let (m, s) = &sigs[i % sigs.len()];
                i += 1;
                assert!(raw.verify_sig(black_box(m), black_box(s)).is_ok());
            })
        });
        g.finish();
    }
}

fn chain(c: &mut Criterion) {
    let origin = SigningKey::generate("a-idp", Algorithm::Rs256).unwrap();
    let f = PackBuilder::default()
        .key("a.example", origin.clone())
        .build();
    // every request distinct in both tokens, so a cold pass verifies two signatures each
    let (t0s, hops): (Vec<String>, Vec<String>) = (0..POOL)
        .map(|i| {
            let mut c0 = t0_claims();
            c0["jti"] = format!("o{i}").into();
            let mut c1 = t1_claims();
            c1["jti"] = format!("h{i}").into();
            (f.token("a.example", c0), f.token("b.example", c1))
        })
        .unzip();
    let reqs: Vec<Request> = t0s
        .iter()
        .zip(&hops)
        .map(|(t0, t1)| request(vec![t0.clone(), t1.clone()]))
        .collect();
    assert!(f.verifier.verify(&reqs[0]).is_allowed());
    let rs = signatures(&t0s);
    let eds = signatures(&hops);
    let raw_rs = parsed(&origin, Algorithm::Rs256);
    let KeyMaterial::Ed25519(ed_key) = f.key("b.example").public().material().clone() else {
        panic!("b.example signs with Ed25519")
    };
    let dalek = ed25519_dalek::VerifyingKey::from_bytes(&ed_key.to_bytes()).unwrap();
    let ed_sigs: Vec<(Vec<u8>, ed25519_dalek::Signature)> = eds
        .iter()
        .map(|(m, s)| (m.clone(), ed25519_dalek::Signature::from_slice(s).unwrap()))
        .collect();
    let mut g = c.benchmark_group("chain_rs256_eddsa");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    cold(&mut g, "custody", &f.verifier, &reqs);
    g.bench_function("raw", |b| {
        let mut i = 0;
        b.iter(|| {
            let (m, s) = &rs[i % rs.len()];
            let (em, es) = &ed_sigs[i % ed_sigs.len()];
            i += 1;
            assert!(raw_rs.verify_sig(black_box(m), black_box(s)).is_ok());
            assert!(dalek.verify_strict(black_box(em), es).is_ok());
        })
    });
    g.finish();

    // a warm chain, with and without a key source replacing a.example's keys every millisecond
    let req = &reqs[0];
    let mut g = c.benchmark_group("refresh");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("warm_chain", |b| {
        b.iter(|| assert!(black_box(f.verifier.verify(req)).is_allowed()))
    });
    let store = Arc::clone(f.verifier.key_store());
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let a = store.index_of("a.example").unwrap();
            while !stop.load(Ordering::Relaxed) {
                let now = store.domain(a).unwrap();
                store.replace(a, now.tokens().clone(), now.biscuit().clone());
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    g.bench_function("warm_chain_under_refresh", |b| {
        b.iter(|| assert!(black_box(f.verifier.verify(req)).is_allowed()))
    });
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    g.finish();
}

criterion_group!(benches, single, chain);
criterion_main!(benches);
