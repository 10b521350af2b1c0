//! custody's signature check (`PublicKey::verify_strict`, which compares encodings before it
//! decodes `R`) against ed25519-dalek's `VerifyingKey::verify_strict`, the acceptance it must
//! reproduce exactly.

use arbitrary::Unstructured;
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use custody_jose::PublicKey;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};

use crate::verify::{ensure, Oracle};

/// The group order L, little-endian (RFC 8032, section 5.1).
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `H(R || A || M)` reduced mod L.
fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

fn torsion(i: u8) -> EdwardsPoint {
    EIGHT_TORSION
        .get(usize::from(i % 8))
        .copied()
        .unwrap_or_default()
}

fn join(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    let (left, right) = out.split_at_mut(32);
    left.copy_from_slice(r);
    right.copy_from_slice(s);
    out
}

/// 256-bit little-endian `x + y`, `None` on overflow.
fn add_le(x: &[u8; 32], y: &[u8; 32]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
        let v = u16::from(*a) + u16::from(*b) + carry;
        *o = v.to_le_bytes()[0];
        carry = v >> 8;
    }
    (carry == 0).then_some(out)
}

/// A key, a message and a signature from the input: raw bytes (odd first byte), or a valid
/// signature under a key derived from the input, possibly with a torsion part, put through one
/// mutation: a flipped bit, a torsion point added to `R` with `S` recomputed for it, `S + L`,
/// a non-canonical encoding of a small `y` as `R`, or a small-order `R` with `S = k·a` (which
/// satisfies the cofactorless equation's right-hand side being the identity).
fn case(u: &mut Unstructured<'_>) -> arbitrary::Result<([u8; 32], Vec<u8>, [u8; 64])> {
    let mode: u8 = u.arbitrary()?;
    if mode & 1 == 1 {
        let a: [u8; 32] = u.arbitrary()?;
        let sig: [u8; 64] = {
            let r: [u8; 32] = u.arbitrary()?;
            let s: [u8; 32] = u.arbitrary()?;
            join(&r, &s)
        };
        let len = u.len().min(512);
        return Ok((a, u.bytes(len)?.to_vec(), sig));
    }
    let a = Scalar::from_bytes_mod_order(u.arbitrary()?);
    let key_torsion = if mode & 2 == 2 {
        torsion(u.arbitrary()?)
    } else {
        torsion(0)
    };
    let a_bytes = (EdwardsPoint::mul_base(&a) + key_torsion)
        .compress()
        .to_bytes();
    let nonce = Scalar::from_bytes_mod_order(u.arbitrary()?);
    let len = usize::from(u.arbitrary::<u8>()?).min(u.len());
    let m = u.bytes(len)?.to_vec();
    let sign = |r_point: EdwardsPoint| {
        let r_bytes = r_point.compress().to_bytes();
        let k = challenge(&r_bytes, &a_bytes, &m);
        join(&r_bytes, &(nonce + k * a).to_bytes())
    };
    let valid = sign(EdwardsPoint::mul_base(&nonce));
    let sig = match (mode >> 2) % 6 {
        0 => valid,
        1 => {
            let mut bad = valid;
            let bit = usize::from(u.arbitrary::<u16>()?) % 512;
            if let Some(b) = bad.get_mut(bit / 8) {
                *b ^= 1 << (bit % 8);
            }
            bad
        }
        2 => sign(EdwardsPoint::mul_base(&nonce) + torsion(u.arbitrary()?)),
        3 => {
            let mut r = [0u8; 32];
            let mut s = [0u8; 32];
            r.copy_from_slice(valid.get(..32).unwrap_or_default());
            s.copy_from_slice(valid.get(32..).unwrap_or_default());
            let s = add_le(&s, &L).unwrap_or_else(|| {
                let mut high = s;
                high[31] |= 0x80;
                high
            });
            join(&r, &s)
        }
        4 => {
            // y = p + d (d < 19), either sign: the only non-canonical encodings of y
            let d: u8 = u.arbitrary()?;
            let mut r = [0xffu8; 32];
            r[0] = 0xed + d % 19;
            r[31] = 0x7f | (d & 0x80);
            let mut s = [0u8; 32];
            s.copy_from_slice(valid.get(32..).unwrap_or_default());
            join(&r, &s)
        }
        _ => {
            let r = torsion(u.arbitrary()?).compress().to_bytes();
            let k = challenge(&r, &a_bytes, &m);
            join(&r, &(k * a).to_bytes())
        }
    };
    Ok((a_bytes, m, sig))
}

/// What ed25519-dalek's `verify_strict` says of the case `data` builds (`None`: too short), so
/// tests can check that the seeds reach both answers.
pub fn ed25519_reference(data: &[u8]) -> Option<bool> {
    let (a, m, sig) = case(&mut Unstructured::new(data)).ok()?;
    Some(
        VerifyingKey::from_bytes(&a)
            .is_ok_and(|k| k.verify_strict(&m, &Signature::from_bytes(&sig)).is_ok()),
    )
}

/// custody accepts a signature exactly when ed25519-dalek's `verify_strict` does, and refuses
/// at load every key under which dalek could accept nothing.
pub fn ed25519_strict(data: &[u8]) -> Oracle {
    let mut u = Unstructured::new(data);
    let Ok((a, m, sig)) = case(&mut u) else {
        return Ok(());
    };
    let dalek = VerifyingKey::from_bytes(&a)
        .is_ok_and(|k| k.verify_strict(&m, &Signature::from_bytes(&sig)).is_ok());
    let custody = match PublicKey::from_bytes("k", &a) {
        Ok(key) => key.verify_strict(&m, &sig),
        Err(_) => {
            ensure(!dalek, || {
                format!("custody refuses key {a:02x?}, under which dalek accepts a signature")
            })?;
            false
        }
    };
    ensure(custody == dalek, || {
        format!(
            "custody says {custody}, dalek's verify_strict {dalek}: key {a:02x?} R {:02x?}",
            CompressedEdwardsY(
                sig.get(..32)
                    .and_then(|r| r.try_into().ok())
                    .unwrap_or_default()
            )
        )
    })
}
