//! RSA public keys (`kty` `RSA`): `RS256`/`RS384`/`RS512` (PKCS#1 v1.5) and
//! `PS256`/`PS384`/`PS512` (PSS, MGF1 with the same hash, salt as long as the hash, RFC 7518
//! §3.5).
//!
//! A key is checked once, when its set loads: `n` and `e` minimal big-endian (RFC 7518
//! §6.3.1's Base64urlUInt: no leading zero byte), the modulus odd and 2048 to 8192 bits, the
//! exponent exactly 65537. Anything else is a load error, never a key that verifies nothing.

use std::fmt;

use aws_lc_rs::signature::{self as aws, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;

use crate::b64::B64;
use crate::error::KeySetError;
use crate::Algorithm;

/// The smallest modulus accepted, in bits (DESIGN.md; RFC 7518 §3.3 requires 2048).
pub const RSA_MIN_BITS: usize = 2048;
/// The largest modulus accepted, in bits (DESIGN.md: bounds the cost of one verification).
pub const RSA_MAX_BITS: usize = 8192;
/// The only public exponent accepted, 65537, big-endian.
const E_65537: [u8; 3] = [0x01, 0x00, 0x01];

/// The six RSA algorithms, in the order of [`RsaKey::parsed`]'s slots.
const RSA_ALGS: [Algorithm; 6] = [
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
];

fn parameters(alg: Algorithm) -> Option<&'static aws::RsaParameters> {
    Some(match alg {
        Algorithm::Rs256 => &aws::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::Rs384 => &aws::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::Rs512 => &aws::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::Ps256 => &aws::RSA_PSS_2048_8192_SHA256,
        Algorithm::Ps384 => &aws::RSA_PSS_2048_8192_SHA384,
        Algorithm::Ps512 => &aws::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// An RSA public key within custody's bounds, parsed once for each of its six algorithms.
#[derive(Clone)]
pub struct RsaKey {
    n: Vec<u8>,
    bits: usize,
    /// One parsed key per algorithm of [`RSA_ALGS`], same order.
    parsed: Vec<ParsedPublicKey>,
}

impl RsaKey {
    /// The key from its modulus and exponent (big-endian, minimal); refuses a modulus outside
    /// 2048 to 8192 bits or even, and an exponent other than 65537 (`kid` names the key in the
    /// error).
    pub fn from_components(kid: &str, n: &[u8], e: &[u8]) -> Result<Self, KeySetError> {
        let bad = |why| KeySetError::BadKey(kid.to_owned(), why);
        let Some(&first) = n.first() else {
            return Err(bad("`n` is empty"));
        };
        if first == 0 {
            return Err(bad("`n` has a leading zero byte (RFC 7518 §6.3.1.1)"));
        }
        if e != E_65537 {
            return Err(bad("`e` must be 65537 (`AQAB`)"));
        }
        let bits = n.len() * 8 - first.leading_zeros() as usize;
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(KeySetError::RsaModulus(kid.to_owned(), bits));
        }
        if n.last().is_some_and(|b| b & 1 == 0) {
            return Err(bad("`n` is even"));
        }
        let components = RsaPublicKeyComponents { n, e };
        let parsed = RSA_ALGS
            .iter()
            .filter_map(|&a| parameters(a))
            .map(|p| components.to_parsed_public_key(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("not a usable RSA public key"))?;
        Ok(RsaKey {
            n: n.to_vec(),
            bits,
            parsed,
        })
    }

    /// The modulus, big-endian, no leading zero.
    pub fn n(&self) -> &[u8] {
        &self.n
    }

    /// The modulus length in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Verifies `signature` over `message` with RSA algorithm `alg`; `false` for any other
    /// algorithm and for a signature not exactly the modulus's length.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        let Some(slot) = RSA_ALGS.iter().position(|&a| a == alg) else {
            return false;
        };
        signature.len() == self.n.len()
            && self
                .parsed
                .get(slot)
                .is_some_and(|k| k.verify_sig(message, signature).is_ok())
    }

    pub(crate) fn thumbprint_input(&self) -> String {
        format!(
            "{{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"{}\"}}",
            B64.encode(&self.n)
        )
    }
}

impl PartialEq for RsaKey {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n
    }
}

impl Eq for RsaKey {}

impl fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaKey")
            .field("bits", &self.bits)
            .field("n", &B64.encode(&self.n))
            .field("e", &"AQAB")
            .finish()
    }
}
