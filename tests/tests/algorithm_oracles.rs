//! Property tests standing in for two fuzz targets (issue 14), over public APIs only:
//!
//! - JWK/JWKS parsing across EC and RSA never panics, and what it accepts is a key custody can
//!   use: its material re-serializes to a JWK that parses back to the same key, with the same
//!   thumbprint, and no key with a private member or an out-of-bounds RSA modulus is accepted.
//! - Signature verification across algorithms agrees with `custody_oracles::raw_verify`
//!   (aws-lc-rs's raw verify, the fuzz oracle's own) under the
//!   same key and algorithm (custody adds only the fixed-length and `0 < r, s < n` rules for
//!   ECDSA, which a mutated signature can only make stricter).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::sync::OnceLock;

use base64::Engine as _;
use custody_jose::{parse_key_set, Algorithm, KeyMaterial, Limits, SigningKey, B64};
use proptest::prelude::*;
use serde_json::{json, Value};

const A2_JWK: &str = include_str!("../../crates/jose/testdata/rfc7515-a2.key.jwk");
const A3_JWK: &str = include_str!("../../crates/jose/testdata/rfc7515-a3.key.jwk");

fn base_jwks() -> Vec<Value> {
    [A2_JWK, A3_JWK]
        .iter()
        .map(|t| {
            let mut v: Value = serde_json::from_str(t).unwrap();
            for p in ["d", "p", "q", "dp", "dq", "qi"] {
                v.as_object_mut().unwrap().remove(p);
            }
            v
        })
        .collect()
}

/// A JWK member value, hostile or plausible.
fn member_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("AQAB")),
        Just(json!("Aw")),
        Just(json!("")),
        Just(json!(null)),
        Just(json!(7)),
        Just(json!(["verify"])),
        Just(json!(["sign"])),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| json!(B64.encode(b))),
        "[A-Za-z0-9_-]{0,12}".prop_map(|s| json!(s)),
        prop::sample::select(vec![
            "RSA", "EC", "OKP", "oct", "P-256", "P-384", "P-521", "Ed25519", "sig", "enc",
            "jwt-svid", "wit-svid", "RS256", "PS256", "ES256", "ES384", "HS256", "EdDSA"
        ])
        .prop_map(|s| json!(s)),
    ]
}

fn member_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "kty", "crv", "kid", "alg", "use", "key_ops", "n", "e", "x", "y", "d", "p", "q", "dp",
        "dq", "qi", "oth", "x5c",
    ])
    .prop_map(str::to_owned)
}

/// A mutation of one of the RFC keys: members set, removed, or bytes flipped.
fn mutated_jwk() -> impl Strategy<Value = Value> {
    (
        0usize..2,
        prop::collection::vec((member_name(), member_value(), any::<bool>()), 0..4),
        prop::option::of((
            prop::sample::select(vec!["n", "x", "y"]),
            any::<prop::sample::Index>(),
            any::<u8>(),
        )),
    )
        .prop_map(|(which, edits, flip)| {
            let mut jwk = base_jwks()[which].clone();
            let m = jwk.as_object_mut().unwrap();
            for (name, value, remove) in edits {
                if remove {
                    m.remove(&name);
                } else {
                    m.insert(name, value);
                }
            }
            if let Some((name, at, xor)) = flip {
                if let Some(bytes) = m
                    .get(name)
                    .and_then(Value::as_str)
                    .and_then(|s| B64.decode(s).ok())
                {
                    let mut bytes = bytes;
                    if !bytes.is_empty() {
                        let i = at.index(bytes.len());
                        bytes[i] ^= xor;
                        m.insert(name.into(), json!(B64.encode(bytes)));
                    }
                }
            }
            jwk
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn jwk_parsing_accepts_only_usable_public_keys(jwk in mutated_jwk()) {
        let doc = json!({"keys": [jwk.clone()]}).to_string();
        let Ok(set) = parse_key_set(doc.as_bytes(), &Limits::default()) else {
            return Ok(());
        };
        for key in set.keys.keys() {
            let m = jwk.as_object().unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
                prop_assert!(!m.contains_key(private), "accepted a key with `{private}`");
            }
            if let KeyMaterial::Rsa(r) = key.material() {
                prop_assert!((2048..=8192).contains(&r.bits()));
                prop_assert_eq!(m.get("e"), Some(&json!("AQAB")));
            }
            // what was accepted prints and parses back to the same key
            let again = parse_key_set(json!({"keys": [key.to_jwk()]}).to_string().as_bytes(), &Limits::default()).unwrap();
            prop_assert_eq!(again.keys.keys(), std::slice::from_ref(key));
            prop_assert_eq!(again.keys.keys()[0].thumbprint(), key.thumbprint());
        }
    }
}

struct Keys {
    es256: SigningKey,
    es384: SigningKey,
    rsa: SigningKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        es256: SigningKey::from_jwk(A3_JWK.as_bytes()).unwrap(),
        es384: SigningKey::generate("p384", Algorithm::Es384).unwrap(),
        rsa: SigningKey::from_jwk(A2_JWK.as_bytes()).unwrap(),
    })
}

fn signing_case(
) -> impl Strategy<Value = (usize, usize, Vec<u8>, Option<(prop::sample::Index, u8)>, u8)> {
    (
        0usize..3,
        0usize..10,
        prop::collection::vec(any::<u8>(), 0..64),
        prop::option::of((any::<prop::sample::Index>(), 1u8..)),
        0u8..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn verification_agrees_with_aws_lc_rs((which, alg_at, msg, flip, shape) in signing_case()) {
        let k = keys();
        let signer = [&k.es256, &k.es384, &k.rsa][which];
        let alg = Algorithm::ALL[alg_at];
        let sign_as = signer.with_alg(alg).unwrap_or_else(|| signer.clone());
        let mut sig = sign_as.sign_bytes(&msg);
        if let Some((at, xor)) = flip {
            let i = at.index(sig.len());
            sig[i] ^= xor;
        }
        match shape {
            1 => sig.truncate(sig.len().saturating_sub(1)),
            2 => sig.push(0),
            _ => {}
        }
        let public = signer.public();
        let material = public.material();
        let custody = material.verify(alg, &msg, &sig);
        let raw = custody_oracles::raw_verify(material, alg.name(), &msg, &sig);
        prop_assert_eq!(custody, raw, "{} under {:?}", alg, material);
        // an untouched signature of the key's own algorithm always verifies
        if flip.is_none() && shape == 0 && sign_as.alg() == alg {
            prop_assert!(custody);
        }
    }
}
