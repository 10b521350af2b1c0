//! Issue 14: which library verifies custody's signature algorithms fastest, measured in one run
//! on the same keys and messages. `cargo bench -p custody-benches --bench algorithms`.
//!
//! Ids are `<alg>/<library>`; every row verifies one valid signature of a 300-byte message (the
//! size of a token's signing input), so a row is one verification.
//!
//! - `aws-lc-rs`: `ParsedPublicKey::verify_sig`, the key parsed once (as custody holds it);
//!   `aws-lc-rs-unparsed`: `UnparsedPublicKey::verify`, the key parsed on every call.
//! - `ring`: `UnparsedPublicKey::verify` (ECDSA, Ed25519) and `RsaPublicKeyComponents::verify`
//!   (RSA): ring 0.17 has no parsed public key, so it parses on every call.
//! - `rustcrypto`: `p256`/`p384` `VerifyingKey` and `rsa` 0.9 `pkcs1v15`/`pss` `VerifyingKey`
//!   with `sha2`, built once.
//! - Ed25519: custody's `PublicKey::verify_strict` and ed25519-dalek's `verify_strict` (the
//!   acceptance custody must keep); aws-lc-rs and ring for the record only: they verify
//!   cofactorless but do not refuse small-order keys and `R` as `verify_strict` does, so they
//!   are not candidates for custody's Ed25519.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as aws, EcdsaKeyPair, KeyPair as _, ParsedPublicKey};
use criterion::{criterion_group, criterion_main, Criterion};
use custody_jose::{Algorithm, KeyMaterial, SigningKey};

/// The bytes every row verifies a signature of: about a token's signing input.
fn message() -> Vec<u8> {
    (0..300u32).map(|i| (i * 7 + 3) as u8).collect()
}

struct Ecdsa {
    point: Vec<u8>,
    sig: Vec<u8>,
}

fn ecdsa(alg: &'static aws::EcdsaSigningAlgorithm, msg: &[u8]) -> Ecdsa {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
    let sig = key.sign(&rng, msg).unwrap().as_ref().to_vec();
    Ecdsa {
        point: key.public_key().as_ref().to_vec(),
        sig,
    }
}

struct Rsa {
    n: Vec<u8>,
    e: Vec<u8>,
    pkcs1: Vec<u8>,
    pss: Vec<u8>,
}

/// An RSA-2048 key made and used through custody's own signing key (aws-lc-rs underneath).
fn rsa(msg: &[u8]) -> Rsa {
    let key = SigningKey::generate("rsa", Algorithm::Rs256).unwrap();
    let pss = key.with_alg(Algorithm::Ps256).unwrap().sign_bytes(msg);
    let KeyMaterial::Rsa(public) = key.public().material().clone() else {
        panic!("an RSA key")
    };
    Rsa {
        n: public.n().to_vec(),
        e: vec![1, 0, 1],
        pkcs1: key.sign_bytes(msg),
        pss,
    }
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn row(g: &mut Group<'_>, id: &str, verify: impl Fn() -> bool) {
    assert!(verify(), "{id}: the signature does not verify");
    g.bench_function(id, |b| b.iter(|| black_box(verify())));
}

fn es256(g: &mut Group<'_>, msg: &[u8]) {
    use p256::ecdsa::signature::Verifier as _;
    let k = ecdsa(&aws::ECDSA_P256_SHA256_FIXED_SIGNING, msg);
    let parsed = ParsedPublicKey::new(&aws::ECDSA_P256_SHA256_FIXED, &k.point).unwrap();
    row(g, "ES256/aws-lc-rs", || {
        parsed.verify_sig(msg, &k.sig).is_ok()
    });
    let unparsed = aws::UnparsedPublicKey::new(&aws::ECDSA_P256_SHA256_FIXED, &k.point);
    row(g, "ES256/aws-lc-rs-unparsed", || {
        unparsed.verify(msg, &k.sig).is_ok()
    });
    let ring_key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        &k.point,
    );
    row(g, "ES256/ring", || ring_key.verify(msg, &k.sig).is_ok());
    let rc = p256::ecdsa::VerifyingKey::from_sec1_bytes(&k.point).unwrap();
    row(g, "ES256/rustcrypto", || {
        p256::ecdsa::Signature::from_slice(&k.sig).is_ok_and(|s| rc.verify(msg, &s).is_ok())
    });
}

fn es384(g: &mut Group<'_>, msg: &[u8]) {
    use p384::ecdsa::signature::Verifier as _;
    let k = ecdsa(&aws::ECDSA_P384_SHA384_FIXED_SIGNING, msg);
    let parsed = ParsedPublicKey::new(&aws::ECDSA_P384_SHA384_FIXED, &k.point).unwrap();
    row(g, "ES384/aws-lc-rs", || {
        parsed.verify_sig(msg, &k.sig).is_ok()
    });
    let unparsed = aws::UnparsedPublicKey::new(&aws::ECDSA_P384_SHA384_FIXED, &k.point);
    row(g, "ES384/aws-lc-rs-unparsed", || {
        unparsed.verify(msg, &k.sig).is_ok()
    });
    let ring_key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P384_SHA384_FIXED,
        &k.point,
    );
    row(g, "ES384/ring", || ring_key.verify(msg, &k.sig).is_ok());
    let rc = p384::ecdsa::VerifyingKey::from_sec1_bytes(&k.point).unwrap();
    row(g, "ES384/rustcrypto", || {
        p384::ecdsa::Signature::from_slice(&k.sig).is_ok_and(|s| rc.verify(msg, &s).is_ok())
    });
}

fn rsa_rows(g: &mut Group<'_>, msg: &[u8]) {
    use rsa::signature::Verifier as _;
    let k = rsa(msg);
    let comps = aws::RsaPublicKeyComponents { n: &k.n, e: &k.e };
    let rc_key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&k.n),
        rsa::BigUint::from_bytes_be(&k.e),
    )
    .unwrap();
    let ring_comps = ring::signature::RsaPublicKeyComponents { n: &k.n, e: &k.e };

    let parsed = comps
        .to_parsed_public_key(&aws::RSA_PKCS1_2048_8192_SHA256)
        .unwrap();
    row(g, "RS256/aws-lc-rs", || {
        parsed.verify_sig(msg, &k.pkcs1).is_ok()
    });
    row(g, "RS256/aws-lc-rs-unparsed", || {
        comps
            .verify(&aws::RSA_PKCS1_2048_8192_SHA256, msg, &k.pkcs1)
            .is_ok()
    });
    row(g, "RS256/ring", || {
        ring_comps
            .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, msg, &k.pkcs1)
            .is_ok()
    });
    let rc = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(rc_key.clone());
    row(g, "RS256/rustcrypto", || {
        rsa::pkcs1v15::Signature::try_from(k.pkcs1.as_slice())
            .is_ok_and(|s| rc.verify(msg, &s).is_ok())
    });

    let parsed = comps
        .to_parsed_public_key(&aws::RSA_PSS_2048_8192_SHA256)
        .unwrap();
    row(g, "PS256/aws-lc-rs", || {
        parsed.verify_sig(msg, &k.pss).is_ok()
    });
    row(g, "PS256/aws-lc-rs-unparsed", || {
        comps
            .verify(&aws::RSA_PSS_2048_8192_SHA256, msg, &k.pss)
            .is_ok()
    });
    row(g, "PS256/ring", || {
        ring_comps
            .verify(&ring::signature::RSA_PSS_2048_8192_SHA256, msg, &k.pss)
            .is_ok()
    });
    let rc = rsa::pss::VerifyingKey::<sha2::Sha256>::new(rc_key);
    row(g, "PS256/rustcrypto", || {
        rsa::pss::Signature::try_from(k.pss.as_slice()).is_ok_and(|s| rc.verify(msg, &s).is_ok())
    });
}

fn ed25519(g: &mut Group<'_>, msg: &[u8]) {
    let key = SigningKey::from_seed("k", [7; 32]);
    let sig = key.sign_bytes(msg);
    let public = key.public();
    let raw = public.ed25519().unwrap().to_bytes();
    row(g, "Ed25519/custody", || public.verify_strict(msg, &sig));
    let dalek = ed25519_dalek::VerifyingKey::from_bytes(&raw).unwrap();
    let dalek_sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
    row(g, "Ed25519/ed25519-dalek", || {
        dalek.verify_strict(msg, &dalek_sig).is_ok()
    });
    let parsed = ParsedPublicKey::new(&aws::ED25519, raw).unwrap();
    row(g, "Ed25519/aws-lc-rs", || {
        parsed.verify_sig(msg, &sig).is_ok()
    });
    let ring_key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, raw);
    row(g, "Ed25519/ring", || ring_key.verify(msg, &sig).is_ok());
}

fn algorithms(c: &mut Criterion) {
    let msg = message();
    let mut g = c.benchmark_group("algorithms");
    g.measurement_time(Duration::from_secs(3));
    es256(&mut g, &msg);
    es384(&mut g, &msg);
    rsa_rows(&mut g, &msg);
    ed25519(&mut g, &msg);
    g.finish();
}

criterion_group!(benches, algorithms);
criterion_main!(benches);
