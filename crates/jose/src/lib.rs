//! Strict JOSE for custody: JSON without duplicate keys, compact JWS, Ed25519 key sets.
//!
//! Everything here treats its input as hostile. Sizes and nesting are checked before parsing
//! goes deep and before any signature work; only `EdDSA`/`Ed25519` with OKP Ed25519 keys is
//! accepted, with exactly `verify_strict`'s acceptance; keys come only from the key set the
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

mod b64;
mod date;
pub mod json;
mod jwk;
mod jws;
mod keystore;
mod limits;
mod sign;

pub use b64::B64;
pub use date::{in_date_range, numeric_date, DateError, MAX_NUMERIC_DATE};
pub use jwk::{
    is_ed25519_alg, parse_key_set, Ed25519Key, KeyMaterial, KeySet, KeySetError, ParsedKeySet,
    PublicKey, SkippedKey,
};
pub use jws::{classify_typ, decode, decode_header, Header, JwsError, TokenClass, UnverifiedJws};
pub use keystore::{DomainKeys, KeyStore};
pub use limits::Limits;
pub use sign::{sign, sign_with_header, SigningKey};
