//! Strict JOSE for custody: JSON without duplicate keys, compact JWS, key sets (JWKS and
//! SPIFFE bundles) of Ed25519, EC and RSA keys.
//!
//! Everything here treats its input as hostile. Sizes and nesting are checked before parsing
//! goes deep and before any signature work. The algorithms are one list, [`Algorithm`]:
//! `EdDSA`/`Ed25519` (OKP Ed25519, exactly `verify_strict`'s acceptance), `ES256` (P-256),
//! `ES384` (P-384), `RS256`/`RS384`/`RS512` and `PS256`/`PS384`/`PS512` (RSA, 2048 to 8192
//! bits, e = 65537); the key decides which of them it verifies ([`KeyMaterial::fits`], narrowed
//! by the JWK's own `alg`). ECDSA and RSA are aws-lc-rs's. Keys come only from the key set the
//! caller chose, never from the token.
//!
//! ```
//! use custody_jose::{decode, sign, Limits, SigningKey};
//! use serde_json::json;
//!
//! let key = SigningKey::from_seed("k1", [7; 32]);
//! let token = sign(&key, Some("at+jwt"), &json!({"iss": "https://as.example", "sub": "u"})).unwrap();
//! let jws = decode(&token, &Limits::default()).unwrap();
//! assert!(key.public().verify_strict(jws.signing_input, &jws.signature));
//! assert_eq!(jws.claims["sub"], "u");
//! ```
//!
//! Limits live in [`Limits`]; every default there cites its reason.
#![forbid(unsafe_code)]

mod alg;
#[cfg(test)]
mod algs_tests;
mod b64;
mod date;
mod ec;
mod error;
pub mod json;
mod jwk;
mod jws;
mod keystore;
mod limits;
mod quick;
mod rsa;
mod sign;
mod swar;

pub use alg::{is_ed25519_alg, Algorithm};
pub use b64::{base64url_decode, NotBase64url, B64};
pub use date::{in_date_range, numeric_date, DateError, MAX_NUMERIC_DATE};
pub use ec::{Curve, EcKey};
pub use error::KeySetError;
pub use json::{Members, Object, ObjectMembers, Peek};
pub use jwk::{
    parse_jwk, parse_key_set, Ed25519Key, KeyMaterial, KeySet, ParsedKeySet, PublicKey, SkippedKey,
};
pub use jws::{
    classify_typ, decode, decode_header, decode_members, decode_with_jwk, media_type_is, Header,
    JwsError, TokenClass, UnverifiedJws, UnverifiedMembers,
};
pub use keystore::{DomainKeys, DomainMaterial, KeyStore, MissHook, Remote};
pub use limits::Limits;
pub use rsa::{RsaKey, RSA_MAX_BITS, RSA_MIN_BITS};
pub use sign::{sign, sign_with_header, SigningKey};
