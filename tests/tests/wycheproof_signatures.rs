//! Wycheproof's ECDSA (P-256, P-384; fixed-length r‖s) and RSA (PKCS#1 v1.5 and PSS, 2048
//! bits) verification vectors, every case, through custody's `KeyMaterial::verify`.
//!
//! "valid" must verify, "invalid" must not; the one "acceptable" case (an RSA DigestInfo
//! missing its NULL) must not either: custody takes only the canonical encoding. Two RSA
//! groups have e = 3: their keys do not load (custody takes e = 65537 only), so their two
//! "valid" cases count as refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::path::Path;

use custody_jose::{Algorithm, Curve, EcKey, KeyMaterial, RsaKey};
use serde_json::Value;

fn vectors(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/wycheproof")
        .join(file);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A big-endian integer from hex, without leading zeros, left-padded to `len` if given.
fn int(s: &str, len: Option<usize>) -> Vec<u8> {
    let bytes = hex(s);
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let trimmed = &bytes[start..];
    match len {
        Some(n) => [vec![0; n - trimmed.len()], trimmed.to_vec()].concat(),
        None => trimmed.to_vec(),
    }
}

/// Runs every case of `file` with the key each group builds; returns (accepted, refused).
fn run(
    file: &str,
    alg: Algorithm,
    key: impl Fn(&Value) -> Option<KeyMaterial>,
    expected_total: usize,
) -> (usize, usize) {
    let doc = vectors(file);
    let (mut accepted, mut refused) = (0, 0);
    for group in doc["testGroups"].as_array().unwrap() {
        let Some(material) = key(group) else {
            refused += group["tests"].as_array().unwrap().len();
            continue;
        };
        for case in group["tests"].as_array().unwrap() {
            let msg = hex(case["msg"].as_str().unwrap());
            let sig = hex(case["sig"].as_str().unwrap());
            let got = material.verify(alg, &msg, &sig);
            let want = case["result"] == "valid";
            assert_eq!(
                got, want,
                "{file} tcId {} ({}, {}): custody says {got}",
                case["tcId"], case["comment"], case["result"]
            );
            if got {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert_eq!(accepted + refused, expected_total, "{file}: every case ran");
    (accepted, refused)
}

fn ec(curve: Curve) -> impl Fn(&Value) -> Option<KeyMaterial> {
    move |group| {
        let k = &group["publicKey"];
        let n = curve.field_len();
        let x = int(k["wx"].as_str().unwrap(), Some(n));
        let y = int(k["wy"].as_str().unwrap(), Some(n));
        Some(KeyMaterial::Ec(
            EcKey::from_coordinates("wycheproof", curve, &x, &y).unwrap(),
        ))
    }
}

/// The group's RSA key; `None` (checked to be for its exponent) when custody refuses it.
fn rsa(group: &Value) -> Option<KeyMaterial> {
    let k = &group["publicKey"];
    let n = int(k["modulus"].as_str().unwrap(), None);
    let e = int(k["publicExponent"].as_str().unwrap(), None);
    match RsaKey::from_components("wycheproof", &n, &e) {
        Ok(key) => Some(KeyMaterial::Rsa(key)),
        Err(err) => {
            assert_ne!(e, [1, 0, 1], "a 65537 key refused: {err}");
            None
        }
    }
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    let got = run(
        "ecdsa_secp256r1_sha256_p1363_test.json",
        Algorithm::Es256,
        ec(Curve::P256),
        262,
    );
    assert_eq!(got, (173, 89));
}

#[test]
fn ecdsa_p384_sha384_p1363() {
    let got = run(
        "ecdsa_secp384r1_sha384_p1363_test.json",
        Algorithm::Es384,
        ec(Curve::P384),
        280,
    );
    assert_eq!(got, (193, 87));
}

#[test]
fn rsa_pkcs1_2048_sha256() {
    let got = run(
        "rsa_signature_2048_sha256_test.json",
        Algorithm::Rs256,
        rsa,
        259,
    );
    assert_eq!(got, (7, 252));
}

#[test]
fn rsa_pss_2048_sha256_mgf1_32() {
    let got = run(
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        Algorithm::Ps256,
        rsa,
        108,
    );
    assert_eq!(got, (63, 45));
}

/// The same signatures under a key of the other kind, or with another algorithm of the same
/// key, never verify.
#[test]
fn valid_vectors_do_not_cross_algorithms() {
    let doc = vectors("rsa_pss_2048_sha256_mgf1_32_test.json");
    let group = &doc["testGroups"][0];
    let key = rsa(group).unwrap();
    for case in group["tests"].as_array().unwrap() {
        if case["result"] != "valid" {
            continue;
        }
        let msg = hex(case["msg"].as_str().unwrap());
        let sig = hex(case["sig"].as_str().unwrap());
        for other in [
            Algorithm::Rs256,
            Algorithm::Ps384,
            Algorithm::Es256,
            Algorithm::EdDsa,
        ] {
            assert!(!key.verify(other, &msg, &sig), "{other}");
        }
    }
}
