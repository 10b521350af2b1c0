//! Why a key set (JWKS or SPIFFE bundle) or one of its keys is unusable.

use std::fmt;

use crate::json;

/// Why a JWKS or bundle document is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySetError {
    /// Larger than the limit.
    TooLarge(usize),
    /// Not strict JSON.
    Json(json::JsonError),
    /// Not `{"keys": [...]}` or a member of the wrong type; the text says which.
    Shape(String),
    /// More keys than the limit.
    TooManyKeys(usize),
    /// A key carries a private part (`d`, `p`, `q`, `dp`, `dq`, `qi` or `oth`).
    PrivateKey(usize),
    /// A usable key without a string `kid`.
    MissingKid(usize),
    /// Two usable keys share a `kid`.
    DuplicateKid(String),
    /// A key whose material is unusable (an Ed25519 `x` not a full-order point, an EC point
    /// off its curve or with short coordinates, an RSA exponent other than 65537, …).
    BadKey(String, &'static str),
    /// An RSA key whose modulus (this many bits) is outside 2048 to 8192 bits.
    RsaModulus(String, usize),
}

impl fmt::Display for KeySetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySetError::TooLarge(n) => write!(f, "key set larger than {n} bytes"),
            KeySetError::Json(e) => write!(f, "{e}"),
            KeySetError::Shape(m) => f.write_str(m),
            KeySetError::TooManyKeys(n) => write!(f, "more than {n} keys"),
            KeySetError::PrivateKey(i) => write!(
                f,
                "key {i} has a private part (`d`, `p`, `q`, `dp`, `dq`, `qi` or `oth`): publish public keys only"
            ),
            KeySetError::MissingKid(i) => write!(f, "key {i} has no string `kid`"),
            KeySetError::DuplicateKid(k) => write!(f, "two keys with `kid` `{k}`"),
            KeySetError::BadKey(k, why) => write!(f, "key `{k}`: {why}"),
            KeySetError::RsaModulus(k, bits) => write!(
                f,
                "key `{k}`: RSA modulus of {bits} bits, outside 2048 to 8192"
            ),
        }
    }
}

impl std::error::Error for KeySetError {}
