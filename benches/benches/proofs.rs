//! Issue 15: proving the caller, each against its peer measured in the same run.
//! `cargo bench -p custody-benches --bench proofs`.
//!
//! - `x509/webpki_alone`: rustls-webpki's own path validation of a 2-certificate chain (ES256
//!   leaf and intermediate, a root as trust anchor parsed once); `x509/custody_svid_cold`:
//!   `custody_svid::validate` on the same chain (its SPIFFE rules and webpki's path). Goal:
//!   custody within 1.2× of webpki alone.
//! - `x509/decision_cold` and `x509/decision_warm`: a whole decision (one Ed25519 token, warm)
//!   with that chain as `peer_certificates`, the verifier's chain cache off and on. Goal: warm
//!   ≥ 20× cold... of the certificate work, so the ratio is reported on the decisions.
//! - `wimse/raw_sum`: ed25519-dalek `verify_strict` of the WIT (signed by the domain's Ed25519
//!   key) plus aws-lc-rs ES256 verify of the WPT; `wimse/decision_with` and
//!   `wimse/decision_without`: the same warm decision with a fresh WIT + WPT (a new WPT per
//!   iteration, minted untimed; the WIT remembered, as allowed) and without. Goal: raw_sum ÷
//!   (with − without) ≥ 0.85.
//! - `dpop/raw_sum`: ed25519-dalek `verify_strict` of the access token plus aws-lc-rs ES256
//!   of the DPoP proof; `dpop/decision_cold`: the decision of that DPoP-bound token with a
//!   fresh proof, caches cleared each iteration (untimed). Goal: raw_sum ÷ decision ≥ 0.85.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_lc_rs::signature::{self as aws, ParsedPublicKey};
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use custody_jose::{sign_with_header, Algorithm, KeyMaterial, SigningKey, B64};
use custody_policy::PolicyPack;
use custody_tests::{act, request, PackBuilder, ALICE, AUD, NOW};
use custody_verifier::{Request, Verifier, VerifierOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TARGET: &str = "https://orders.c.example/orders/7";

fn hash(text: &str) -> String {
    B64.encode(Sha256::digest(text.as_bytes()))
}

fn public_jwk(key: &SigningKey) -> Value {
    let mut jwk = key.public().to_jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    jwk["alg"] = key.alg().name().into();
    jwk
}

fn p256(key: &SigningKey) -> ParsedPublicKey {
    let KeyMaterial::Ec(k) = key.public().material().clone() else {
        panic!("a P-256 key")
    };
    let point = [&[4u8][..], k.x(), k.y()].concat();
    ParsedPublicKey::new(&aws::ECDSA_P256_SHA256_FIXED, point).unwrap()
}

fn ed25519(key: &SigningKey) -> ed25519_dalek::VerifyingKey {
    let KeyMaterial::Ed25519(k) = key.public().material().clone() else {
        panic!("an Ed25519 key")
    };
    ed25519_dalek::VerifyingKey::from_bytes(&k.to_bytes()).unwrap()
}

/// The raw verify of a compact JWS's signature, its signing input and signature split out once.
fn parts(token: &str) -> (Vec<u8>, Vec<u8>) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    (input.as_bytes().to_vec(), B64.decode(sig).unwrap())
}

fn fresh_jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("bench-{}", N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn at(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(vec![]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(NOW - 86_400);
    p.not_after = at(NOW + 86_400);
    p
}

fn x509(c: &mut Criterion) {
    let root_key = KeyPair::generate().unwrap();
    let root = ca_params("b.example root").self_signed(&root_key).unwrap();
    let mid_key = KeyPair::generate().unwrap();
    let mid = ca_params("b.example intermediate")
        .signed_by(&mid_key, &root, &root_key)
        .unwrap();
    let mid = Ca {
        cert: mid,
        key: mid_key,
    };
    let mut lp = CertificateParams::new(vec![]).unwrap();
    lp.subject_alt_names = vec![SanType::URI(ALICE.try_into().unwrap())];
    lp.is_ca = IsCa::ExplicitNoCa;
    lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    lp.not_before = at(NOW - 3600);
    lp.not_after = at(NOW + 3600);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = lp.signed_by(&leaf_key, &mid.cert, &mid.key).unwrap();
    let chain = vec![leaf.der().to_vec(), mid.cert.der().to_vec()];

    let mut g = c.benchmark_group("x509");
    // webpki alone: the anchor parsed once, as custody's authorities are
    let root_der = CertificateDer::from(root.der().to_vec());
    let anchors = vec![webpki::anchor_from_trusted_cert(&root_der)
        .unwrap()
        .to_owned()];
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW as u64));
    g.bench_function("webpki_alone", |b| {
        b.iter(|| {
            let leaf = CertificateDer::from(chain[0].as_slice());
            let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
            let inter = [CertificateDer::from(chain[1].as_slice())];
            black_box(
                ee.verify_for_usage(
                    webpki::ALL_VERIFICATION_ALGS,
                    &anchors,
                    &inter,
                    time,
                    webpki::KeyUsage::client_auth(),
                    None,
                    None,
                )
                .is_ok(),
            )
        })
    });
    let authorities = custody_svid::X509Authorities::from_der(vec![root.der().to_vec()]).unwrap();
    g.bench_function("custody_svid_cold", |b| {
        b.iter(|| {
            let lookup = |_: &str| Some(&authorities);
            black_box(custody_svid::validate(&chain, lookup, NOW, 30).unwrap())
        })
    });
    // whole decisions, the chain cache off and on
    let authority = json!({"use": "x509-svid", "kty": "EC", "crv": "P-256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(root.der())]});
    let f = PackBuilder::default()
        .bundle("b.example", vec![authority])
        .build();
    let token = alice_token(&f.verifier, &f);
    let req = Request {
        peer_certificates: vec![leaf.pem(), mid.cert.pem()],
        ..request(vec![token])
    };
    let cold = Verifier::with_options(
        Arc::clone(f.verifier.pack()),
        VerifierOptions {
            x509_cache_entries: 0,
            ..VerifierOptions::default()
        },
    );
    assert!(cold.verify(&req).is_allowed());
    assert!(f.verifier.verify(&req).is_allowed());
    g.bench_function("decision_cold", |b| b.iter(|| black_box(cold.verify(&req))));
    g.bench_function("decision_warm", |b| {
        b.iter(|| black_box(f.verifier.verify(&req)))
    });
    g.finish();
}

fn alice_token(_: &Verifier, f: &custody_tests::Fixture) -> String {
    f.token(
        "b.example",
        json!({"sub": "user:carol", "aud": AUD, "iat": NOW - 30, "exp": NOW + 300,
            "scope": "orders:read", "act": act(&[ALICE])}),
    )
}

// ---------------------------------------------------------------------------------------

fn wimse(c: &mut Criterion) {
    let f = PackBuilder::default().build();
    let token = alice_token(&f.verifier, &f);
    let wl = SigningKey::generate("wl", Algorithm::Es256).unwrap();
    let dk = f.key("b.example");
    let wit = sign_with_header(
        dk,
        &json!({"alg": "EdDSA", "kid": dk.kid(), "typ": "wit+jwt"}),
        &json!({"sub": ALICE, "iat": NOW - 60, "exp": NOW + 3000, "cnf": {"jwk": public_jwk(&wl)}}),
    )
    .unwrap();
    let wpt = || {
        sign_with_header(
            &wl,
            &json!({"alg": "ES256", "typ": "wpt+jwt"}),
            &json!({"aud": TARGET, "exp": NOW + 60, "jti": fresh_jti(), "wth": hash(&wit),
                "ath": hash(&token)}),
        )
        .unwrap()
    };
    let with = |p: String| Request {
        wit: Some(wit.clone()),
        wpt: Some(p),
        target_uri: Some(TARGET.into()),
        ..request(vec![token.clone()])
    };
    let without = request(vec![token.clone()]);
    assert!(f.verifier.verify(&with(wpt())).is_allowed());
    assert!(f.verifier.verify(&without).is_allowed());
    let mut g = c.benchmark_group("wimse");
    // the raw verifies a WIT + WPT check needs
    let (wit_in, wit_sig) = parts(&wit);
    let wit_key = ed25519(dk);
    let wit_sig = ed25519_dalek::Signature::from_slice(&wit_sig).unwrap();
    let sample = wpt();
    let (wpt_in, wpt_sig) = parts(&sample);
    let wpt_key = p256(&wl);
    g.bench_function("raw_sum", |b| {
        b.iter(|| {
            let a = wit_key.verify_strict(&wit_in, &wit_sig).is_ok();
            let b = wpt_key.verify_sig(&wpt_in, &wpt_sig).is_ok();
            black_box(a && b)
        })
    });
    g.bench_function("decision_with", |b| {
        b.iter_batched(
            || with(wpt()),
            |r| assert!(black_box(f.verifier.verify(&r)).is_allowed()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("decision_without", |b| {
        b.iter(|| black_box(f.verifier.verify(&without)))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------

fn dpop(c: &mut Criterion) {
    let f = PackBuilder::default().build();
    let key = SigningKey::generate("client", Algorithm::Es256).unwrap();
    let jkt = B64.encode(key.public().thumbprint());
    let token = |n: usize| {
        f.token(
            "b.example",
            json!({"sub": format!("user:{n}"), "aud": AUD, "iat": NOW - 30, "exp": NOW + 300,
                "scope": "orders:read", "act": act(&[ALICE]), "cnf": {"jkt": jkt}}),
        )
    };
    let proof = |token: &str| {
        sign_with_header(
            &key,
            &json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": public_jwk(&key)}),
            &json!({"htm": "GET", "htu": TARGET, "iat": NOW, "jti": fresh_jti(),
                "ath": hash(token)}),
        )
        .unwrap()
    };
    // a pool of distinct DPoP-bound tokens, each with its own proof: every decision is of a
    // token not seen before (a new verifier, untimed, each time the pool wraps, since the
    // proofs are one-time)
    let reqs: Vec<Request> = (0..POOL)
        .map(|n| {
            let t = token(n);
            Request {
                dpop: Some(proof(&t)),
                target_uri: Some(TARGET.into()),
                http_method: Some("GET".into()),
                ..request(vec![t])
            }
        })
        .collect();
    let mut g = c.benchmark_group("dpop");
    let sample = &reqs[0];
    let (at_in, at_sig) = parts(&sample.tokens[0]);
    let at_key = ed25519(f.key("b.example"));
    let at_sig = ed25519_dalek::Signature::from_slice(&at_sig).unwrap();
    let (p_in, p_sig) = parts(sample.dpop.as_deref().unwrap());
    let p_key = p256(&key);
    g.bench_function("raw_sum", |b| {
        b.iter(|| {
            let a = at_key.verify_strict(&at_in, &at_sig).is_ok();
            let b = p_key.verify_sig(&p_in, &p_sig).is_ok();
            black_box(a && b)
        })
    });
    g.bench_function("decision_cold", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let v = Verifier::new(PolicyPack::clone(f.verifier.pack()));
                let n = left.min(POOL as u64) as usize;
                let start = std::time::Instant::now();
                for r in &reqs[..n] {
                    assert!(black_box(v.verify(r)).is_allowed());
                }
                total += start.elapsed();
                left -= n as u64;
            }
            total
        })
    });
    g.finish();
}

const POOL: usize = 256;

criterion_group!(benches, x509, wimse, dpop);
criterion_main!(benches);
