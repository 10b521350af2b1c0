//! Oracles of the signature algorithms (issue 14): EC and RSA key sets, and signature
//! verification held to the chosen library's raw verify.

use std::sync::OnceLock;

use aws_lc_rs::signature::{self as aws, UnparsedPublicKey};
use custody_jose::{parse_key_set, Algorithm, KeyMaterial, Limits, PublicKey, SigningKey};
use serde_json::Value;

use crate::verify::{ensure, Oracle};

const A2_JWK: &str = include_str!("../../jose/testdata/rfc7515-a2.key.jwk");
const A3_JWK: &str = include_str!("../../jose/testdata/rfc7515-a3.key.jwk");

/// Every algorithm custody verifies, and two it refuses.
const ALGS: [&str; 12] = [
    "EdDSA", "Ed25519", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "HS256", "none",
];

/// EC and RSA JWK Sets: parsing never panics, and what it accepts is usable. No accepted key
/// came from a JWK with a private member; an RSA key is 2048 to 8192 bits with `e` 65537; an
/// accepted set's `kid`s are unique; printed back out, the set reads back to the same keys with
/// the same RFC 7638 thumbprints.
pub fn jwk_set_algorithms(data: &[u8]) -> Oracle {
    let limits = Limits::default();
    let Ok(parsed) = parse_key_set(data, &limits) else {
        return Ok(());
    };
    let doc: Value = serde_json::from_slice(data).map_err(|e| format!("accepted non-JSON: {e}"))?;
    let sources: Vec<&serde_json::Map<String, Value>> = doc
        .get("keys")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    for key in parsed.keys.keys().iter().chain(parsed.wit_keys.keys()) {
        let source = sources
            .iter()
            .find(|m| m.get("kid").and_then(Value::as_str) == Some(key.kid()))
            .ok_or_else(|| format!("key `{}` accepted from no JWK with its kid", key.kid()))?;
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
            ensure(!source.contains_key(private), || {
                format!("accepted a key with `{private}`")
            })?;
        }
        if let KeyMaterial::Rsa(r) = key.material() {
            ensure((2048..=8192).contains(&r.bits()), || {
                format!("accepted an RSA key of {} bits", r.bits())
            })?;
        }
    }
    let mut kids: Vec<&str> = parsed.keys.keys().iter().map(PublicKey::kid).collect();
    kids.sort_unstable();
    let n = kids.len();
    kids.dedup();
    ensure(kids.len() == n, || "two keys with one kid".into())?;
    let text = parsed.keys.to_jwks().to_string();
    let again = parse_key_set(text.as_bytes(), &limits)
        .map_err(|e| format!("the printed key set does not parse: {e}"))?;
    ensure(again.keys.keys() == parsed.keys.keys(), || {
        "the printed key set reads back differently".into()
    })?;
    for (a, b) in again.keys.keys().iter().zip(parsed.keys.keys()) {
        ensure(a.thumbprint() == b.thumbprint(), || {
            "thumbprint changed".into()
        })?;
    }
    Ok(())
}

struct Keys {
    ed25519: SigningKey,
    es256: SigningKey,
    es384: SigningKey,
    rsa: SigningKey,
}

fn keys() -> Option<&'static Keys> {
    static KEYS: OnceLock<Option<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        Some(Keys {
            ed25519: SigningKey::from_seed("ed", [9; 32]),
            es256: SigningKey::from_jwk(A3_JWK.as_bytes()).ok()?,
            es384: SigningKey::generate("p384", Algorithm::Es384).ok()?,
            rsa: SigningKey::from_jwk(A2_JWK.as_bytes()).ok()?,
        })
    })
    .as_ref()
}

/// The chosen libraries' own verdict on (key, header `alg`, message, signature): aws-lc-rs for
/// ECDSA (fixed-length `r‖s`) and RSA, ed25519-dalek's `verify_strict` for Ed25519; `false`
/// for an algorithm the key's kind does not verify. A pinned `alg` is not considered: the
/// oracle of [`signature_algorithms`] and the algorithm property test hold custody to this.
pub fn raw_verify(material: &KeyMaterial, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
    match material {
        KeyMaterial::Ed25519(k) => {
            let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                return false;
            };
            matches!(alg, "EdDSA" | "Ed25519")
                && ed25519_dalek::VerifyingKey::from_bytes(&k.to_bytes())
                    .is_ok_and(|vk| vk.verify_strict(msg, &sig).is_ok())
        }
        KeyMaterial::Ec(k) => {
            let point = [&[4u8][..], k.x(), k.y()].concat();
            let a: &'static dyn aws::VerificationAlgorithm = match (alg, k.x().len()) {
                ("ES256", 32) => &aws::ECDSA_P256_SHA256_FIXED,
                ("ES384", 48) => &aws::ECDSA_P384_SHA384_FIXED,
                _ => return false,
            };
            UnparsedPublicKey::new(a, point).verify(msg, sig).is_ok()
        }
        KeyMaterial::Rsa(k) => {
            let p: &'static aws::RsaParameters = match alg {
                "RS256" => &aws::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &aws::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &aws::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &aws::RSA_PSS_2048_8192_SHA256,
                "PS384" => &aws::RSA_PSS_2048_8192_SHA384,
                "PS512" => &aws::RSA_PSS_2048_8192_SHA512,
                _ => return false,
            };
            aws::RsaPublicKeyComponents {
                n: k.n(),
                e: &[1u8, 0, 1][..],
            }
            .verify(p, msg, sig)
            .is_ok()
        }
        _ => false,
    }
}

/// Signature verification across algorithms: custody accepts (key, header `alg`, message,
/// signature) exactly when the key allows `alg` (its kind's, and only its pinned `alg` when it
/// has one) and the chosen library's raw verify accepts. The input picks the key
/// (Ed25519, P-256, P-384, RSA 2048), the header `alg`, a message, and either a genuine
/// signature of it under the key's matching algorithm with bytes flipped, or raw bytes.
pub fn signature_algorithms(data: &[u8]) -> Oracle {
    let Some(k) = keys() else {
        return Err("the fixed keys do not load".into());
    };
    let [pick, alg_at, shape, rest @ ..] = data else {
        return Ok(());
    };
    let signer = match pick % 4 {
        0 => &k.ed25519,
        1 => &k.es256,
        2 => &k.es384,
        _ => &k.rsa,
    };
    let alg = ALGS
        .get(usize::from(*alg_at) % ALGS.len())
        .copied()
        .unwrap_or("none");
    let split = rest.len().min(usize::from(shape >> 2));
    let (msg, tail) = rest.split_at(split);
    let sig = if shape & 1 == 0 {
        // a genuine signature under the key's own (or, for RSA, the header's) algorithm, mutated
        let own = Algorithm::from_name(alg)
            .and_then(|a| signer.with_alg(a))
            .unwrap_or_else(|| signer.clone());
        let mut sig = own.sign_bytes(msg);
        for pair in tail.chunks(2) {
            if let [at, xor] = pair {
                let i = usize::from(*at) % sig.len().max(1);
                if let Some(b) = sig.get_mut(i) {
                    *b ^= xor;
                }
            }
        }
        if shape & 2 != 0 {
            sig.truncate(sig.len().saturating_sub(1));
        }
        sig
    } else {
        tail.to_vec()
    };
    let public = signer.public();
    let custody = public.verify_with(alg, msg, &sig);
    // the key decides: a pinned `alg` (or its kind) first, then the library's verdict
    let raw = public.allows_alg(alg) && raw_verify(public.material(), alg, msg, &sig);
    ensure(custody == raw, || {
        format!(
            "custody says {custody}, the raw verify {raw}: key `{}`, alg `{alg}`, {} byte signature",
            public.kid(),
            sig.len()
        )
    })
}
