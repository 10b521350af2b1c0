//! EC public keys (`kty` `EC`, `crv` `P-256` or `P-384`): `ES256` and `ES384`.
//!
//! A key is checked once, when its set loads: `x` and `y` the curve's full length, the point on
//! the curve (aws-lc's decoding refuses coordinates ≥ p and points off the curve). A signature
//! is the JOSE fixed-length `r‖s` (RFC 7518 §3.4): 64 or 96 bytes, anything else (DER, one byte
//! short or long) is refused before the library sees it, and so are `r` or `s` zero or ≥ n,
//! checked here on the bytes whatever the library would say.

use std::fmt;

use aws_lc_rs::signature::{self as aws, ParsedPublicKey};
use base64::Engine as _;

use crate::b64::B64;
use crate::error::KeySetError;
use crate::Algorithm;

/// The curves custody verifies ECDSA over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Curve {
    /// NIST P-256 (secp256r1): `ES256`.
    P256,
    /// NIST P-384 (secp384r1): `ES384`.
    P384,
}

/// The order n of P-256's base point, big-endian (SEC 2 §2.4.2).
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The order n of P-384's base point, big-endian (SEC 2 §2.5.1).
const P384_N: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

impl Curve {
    /// The curve a JWK's `crv` names (`P-256`, `P-384`); `None` for every other.
    pub fn from_crv(crv: &str) -> Option<Self> {
        match crv {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            _ => None,
        }
    }

    /// The JWK `crv` name.
    pub fn crv(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    /// The length of a coordinate and of each of `r` and `s`, in bytes.
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    /// The one algorithm of the curve.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Curve::P256 => Algorithm::Es256,
            Curve::P384 => Algorithm::Es384,
        }
    }

    fn order(self) -> &'static [u8] {
        match self {
            Curve::P256 => &P256_N,
            Curve::P384 => &P384_N,
        }
    }

    fn verification(self) -> &'static aws::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &aws::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &aws::ECDSA_P384_SHA384_FIXED,
        }
    }
}

/// An EC public key on P-256 or P-384, checked once: full-length coordinates, on the curve.
#[derive(Clone)]
pub struct EcKey {
    curve: Curve,
    x: Vec<u8>,
    y: Vec<u8>,
    parsed: ParsedPublicKey,
}

impl EcKey {
    /// The key from its affine coordinates; refuses coordinates of the wrong length and points
    /// that are not on the curve (`kid` names the key in the error).
    pub fn from_coordinates(
        kid: &str,
        curve: Curve,
        x: &[u8],
        y: &[u8],
    ) -> Result<Self, KeySetError> {
        let bad = |why| KeySetError::BadKey(kid.to_owned(), why);
        let n = curve.field_len();
        if x.len() != n || y.len() != n {
            return Err(bad(match curve {
                Curve::P256 => "`x` and `y` of a P-256 key are 32 bytes each",
                Curve::P384 => "`x` and `y` of a P-384 key are 48 bytes each",
            }));
        }
        let mut point = Vec::with_capacity(1 + 2 * n);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let parsed = ParsedPublicKey::new(curve.verification(), &point)
            .map_err(|_| bad("the point (`x`, `y`) is not on the curve"))?;
        Ok(EcKey {
            curve,
            x: x.to_vec(),
            y: y.to_vec(),
            parsed,
        })
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The affine x coordinate, big-endian, the curve's full length.
    pub fn x(&self) -> &[u8] {
        &self.x
    }

    /// The affine y coordinate, big-endian, the curve's full length.
    pub fn y(&self) -> &[u8] {
        &self.y
    }

    /// Verifies a JOSE ECDSA signature: exactly `r‖s` of the curve's length, `0 < r, s < n`,
    /// and the ECDSA equation under SHA-256 (P-256) or SHA-384 (P-384).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let n = self.curve.field_len();
        if signature.len() != 2 * n {
            return false;
        }
        let (r, s) = signature.split_at(n);
        let order = self.curve.order();
        in_range(r, order)
            && in_range(s, order)
            && self.parsed.verify_sig(message, signature).is_ok()
    }

    pub(crate) fn thumbprint_input(&self) -> String {
        format!(
            "{{\"crv\":\"{}\",\"kty\":\"EC\",\"x\":\"{}\",\"y\":\"{}\"}}",
            self.curve.crv(),
            B64.encode(&self.x),
            B64.encode(&self.y)
        )
    }
}

/// Whether the big-endian `scalar` (as long as `order`) is in `[1, order)`.
fn in_range(scalar: &[u8], order: &[u8]) -> bool {
    scalar.iter().any(|&b| b != 0) && scalar < order
}

impl PartialEq for EcKey {
    fn eq(&self, other: &Self) -> bool {
        self.curve == other.curve && self.x == other.x && self.y == other.y
    }
}

impl Eq for EcKey {}

impl fmt::Debug for EcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcKey")
            .field("curve", &self.curve)
            .field("x", &B64.encode(&self.x))
            .field("y", &B64.encode(&self.y))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-wise comparison of equal-length big-endian numbers is numeric comparison.
    #[test]
    fn scalar_range_is_one_to_order_minus_one() {
        let n = &P256_N;
        assert!(!in_range(&[0; 32], n));
        let mut one = [0; 32];
        one[31] = 1;
        assert!(in_range(&one, n));
        assert!(!in_range(n, n));
        let mut below = P256_N;
        below[31] -= 1;
        assert!(in_range(&below, n));
        let mut above = P256_N;
        above[31] += 1;
        assert!(!in_range(&above, n));
        assert!(!in_range(&[0xff; 32], n));
        assert!(!in_range(&P384_N, &P384_N));
    }
}
