//! custody's signature path accepts exactly what ed25519-dalek's `verify_strict` accepts, one
//! signature at a time, on the cases where Ed25519 verifiers disagree: non-canonical `S`
//! (`S + L`, high bits), small-order `R`, small-order `A`, mixed-order `A` (a full-order point
//! plus a torsion point), and ordinary valid and invalid signatures. Every case goes through
//! `TokenCache::verify` cold (the miss path), warm (asked again: a hit for accepted ones), and
//! with the cache off, and must agree with `VerifyingKey::verify_strict` every time.
//!
//! `PublicKey::verify_strict` does not call dalek: it compares encodings before decoding `R`
//! (see its documentation), so these cases also cover every non-canonical encoding of `y`, as
//! `R` and as `A`, and a seeded differential run over mutated signatures.
#![allow(
    deprecated,
    reason = "BASEPOINT_ORDER (the group order L) is the value these tests need"
)] // BASEPOINT_ORDER (the group order L) is the value these tests need.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use curve25519_dalek::constants::{BASEPOINT_ORDER, ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use custody_jose::PublicKey;
use custody_verifier::TokenCache;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};

/// A deterministic scalar from a label.
fn scalar(label: &str) -> Scalar {
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&Sha512::digest(label.as_bytes()));
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// `H(R || A || M)` reduced mod L: the Ed25519 challenge.
fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&h.finalize());
    Scalar::from_bytes_mod_order_wide(&wide)
}

fn sig_bytes(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(r);
    out[32..].copy_from_slice(s);
    out
}

/// A signature by secret scalar `a` (public `a_point`, possibly with a torsion part) with
/// nonce `r`, computed against the encoding `a_bytes`.
fn sign_raw(a: &Scalar, a_bytes: &[u8; 32], r: &Scalar, m: &[u8]) -> [u8; 64] {
    let big_r = EdwardsPoint::mul_base(r).compress().to_bytes();
    let k = challenge(&big_r, a_bytes, m);
    let s = r + k * a;
    sig_bytes(&big_r, &s.to_bytes())
}

/// 256-bit little-endian `x + y`; `None` on overflow.
fn add_le(x: &[u8; 32], y: &[u8; 32]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(x[i]) + u16::from(y[i]) + carry;
        out[i] = (v & 0xff) as u8;
        carry = v >> 8;
    }
    (carry == 0).then_some(out)
}

/// What dalek's `verify_strict` says, the reference.
fn reference(a: &[u8; 32], m: &[u8], sig: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(a)
        .map(|k| k.verify_strict(m, &Signature::from_bytes(sig)).is_ok())
        .unwrap_or(false)
}

#[derive(Default)]
struct Tally {
    cases: usize,
    accepted: usize,
    refused_keys: usize,
}

/// custody's answers, cold, warm and uncached, all equal to the reference.
fn check(tally: &mut Tally, what: &str, a: &[u8; 32], m: &[u8], sig: &[u8; 64]) {
    let want = reference(a, m, sig);
    tally.cases += 1;
    tally.accepted += usize::from(want);
    let key = match PublicKey::from_bytes("k", a) {
        Ok(k) => k,
        Err(_) => {
            // custody refuses the key at load, so nothing can verify under it: the reference
            // must refuse too (small-order or invalid A).
            assert!(
                !want,
                "{what}: custody refuses a key dalek accepts a signature under"
            );
            tally.refused_keys += 1;
            return;
        }
    };
    assert_eq!(
        key.verify_strict(m, sig),
        want,
        "{what}: PublicKey::verify_strict"
    );
    let cache = TokenCache::new(1024);
    for round in ["cold", "warm", "third"] {
        assert_eq!(cache.verify(&key, m, sig), want, "{what}: cache {round}");
    }
    assert_eq!(
        cache.len(),
        usize::from(want),
        "{what}: only successes are kept"
    );
    let off = TokenCache::new(0);
    assert_eq!(off.verify(&key, m, sig), want, "{what}: cache off");
    // a shared cache that already holds many other entries answers the same
    SHARED.with(|c| {
        assert_eq!(c.verify(&key, m, sig), want, "{what}: shared cache");
        assert_eq!(c.verify(&key, m, sig), want, "{what}: shared cache again");
    });
}

thread_local! {
    static SHARED: TokenCache = TokenCache::new(256);
}

#[test]
fn random_valid_and_corrupted_signatures() {
    let mut t = Tally::default();
    for i in 0..50 {
        let a = scalar(&format!("key {i}"));
        let a_bytes = EdwardsPoint::mul_base(&a).compress().to_bytes();
        let m = format!("message {i}").into_bytes();
        let sig = sign_raw(&a, &a_bytes, &scalar(&format!("nonce {i}")), &m);
        check(&mut t, "valid", &a_bytes, &m, &sig);
        let mut bad = sig;
        bad[i % 64] ^= 1 << (i % 8);
        check(&mut t, "bit flip", &a_bytes, &m, &bad);
        check(&mut t, "other message", &a_bytes, b"other", &sig);
    }
    assert!(t.accepted >= 50);
}

#[test]
fn non_canonical_s_is_refused() {
    let mut t = Tally::default();
    let l = BASEPOINT_ORDER.to_bytes();
    for i in 0..24 {
        let a = scalar(&format!("nc key {i}"));
        let a_bytes = EdwardsPoint::mul_base(&a).compress().to_bytes();
        let m = format!("nc {i}").into_bytes();
        let sig = sign_raw(&a, &a_bytes, &scalar(&format!("nc nonce {i}")), &m);
        check(&mut t, "canonical", &a_bytes, &m, &sig);
        let s: [u8; 32] = sig[32..].try_into().unwrap();
        let r: [u8; 32] = sig[..32].try_into().unwrap();
        // S + L and S + 2L: the same scalar mod L, which non-strict verifiers accept
        let s1 = add_le(&s, &l).unwrap();
        check(&mut t, "S + L", &a_bytes, &m, &sig_bytes(&r, &s1));
        if let Some(s2) = add_le(&s1, &l) {
            check(&mut t, "S + 2L", &a_bytes, &m, &sig_bytes(&r, &s2));
        }
        // the high bit set
        let mut s3 = s;
        s3[31] |= 0x80;
        check(&mut t, "S high bit", &a_bytes, &m, &sig_bytes(&r, &s3));
    }
    assert_eq!(t.accepted, 24, "only the canonical signatures verify");
}

#[test]
fn small_order_r_is_refused() {
    let mut t = Tally::default();
    for i in 0..6 {
        let a = scalar(&format!("sr key {i}"));
        let a_bytes = EdwardsPoint::mul_base(&a).compress().to_bytes();
        let m = format!("sr {i}").into_bytes();
        for (j, torsion) in EIGHT_TORSION.iter().enumerate() {
            // S = k·a makes [S]B = [k]A, so R = identity satisfies the cofactorless equation
            // and any torsion R satisfies the cofactored one: both must be refused.
            let r_bytes = torsion.compress().to_bytes();
            let k = challenge(&r_bytes, &a_bytes, &m);
            let s = k * a;
            let sig = sig_bytes(&r_bytes, &s.to_bytes());
            check(&mut t, &format!("small-order R {j}"), &a_bytes, &m, &sig);
            // and R = rB + T: a mixed-order R
            let r = scalar(&format!("sr nonce {i} {j}"));
            let mixed_r = (EdwardsPoint::mul_base(&r) + torsion).compress().to_bytes();
            let k = challenge(&mixed_r, &a_bytes, &m);
            let sig = sig_bytes(&mixed_r, &(r + k * a).to_bytes());
            check(&mut t, &format!("mixed-order R {j}"), &a_bytes, &m, &sig);
        }
    }
    // the identity R is refused by verify_strict; a mixed-order R only verifies with T = 0
    assert_eq!(t.accepted, 6);
}

#[test]
fn small_order_a_is_refused_at_load_and_by_dalek() {
    let mut t = Tally::default();
    for (j, torsion) in EIGHT_TORSION.iter().enumerate() {
        let a_bytes = torsion.compress().to_bytes();
        assert!(PublicKey::from_bytes("weak", &a_bytes).is_err());
        for i in 0..6 {
            let m = format!("sa {i}").into_bytes();
            let r = scalar(&format!("sa nonce {i}"));
            let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
            // [S]B = R + [k]T holds whenever [k]T = 0: a signature "valid" under a weak key
            let sig = sig_bytes(&big_r, &r.to_bytes());
            check(&mut t, &format!("small-order A {j}"), &a_bytes, &m, &sig);
            // and the all-zero signature, valid under the identity key for lax verifiers
            check(&mut t, "zero signature", &a_bytes, &m, &[0u8; 64]);
        }
    }
    assert_eq!(t.accepted, 0);
    assert_eq!(t.refused_keys, t.cases);
}

#[test]
fn mixed_order_keys_agree_with_verify_strict() {
    let mut t = Tally::default();
    for (j, torsion) in EIGHT_TORSION.iter().enumerate().skip(1) {
        let a = scalar(&format!("mixed key {j}"));
        let point = EdwardsPoint::mul_base(&a) + torsion;
        let a_bytes = point.compress().to_bytes();
        assert!(!point.is_torsion_free() && !point.is_small_order());
        for i in 0..32 {
            let m = format!("mixed {j} {i}").into_bytes();
            // signed as if A were aB: the cofactorless check passes iff [k]T = 0
            let sig = sign_raw(&a, &a_bytes, &scalar(&format!("mixed nonce {j} {i}")), &m);
            check(&mut t, &format!("mixed-order A {j}"), &a_bytes, &m, &sig);
        }
    }
    // some accepted (k a multiple of T's order), most refused: both outcomes are exercised
    assert!(
        t.accepted > 0 && t.accepted < t.cases,
        "{} of {}",
        t.accepted,
        t.cases
    );
    assert_eq!(t.refused_keys, 0);
}

#[test]
fn non_canonical_point_encodings() {
    let mut t = Tally::default();
    let a = scalar("enc key");
    let a_bytes = EdwardsPoint::mul_base(&a).compress().to_bytes();
    let m = b"encodings";
    let sig = sign_raw(&a, &a_bytes, &scalar("enc nonce"), m);
    // the sign bit flipped on A: another point (or none), refused either way
    let mut flipped = a_bytes;
    flipped[31] ^= 0x80;
    check(&mut t, "A sign flipped", &flipped, m, &sig);
    // R's sign bit flipped
    let mut r_flipped = sig;
    r_flipped[31] ^= 0x80;
    check(&mut t, "R sign flipped", &a_bytes, m, &r_flipped);
    // y = p + 1 (non-canonical encoding of the identity) as R and as A
    let mut p_plus_1 = [0xffu8; 32];
    p_plus_1[0] = 0xee;
    p_plus_1[31] = 0x7f;
    assert!(CompressedEdwardsY(p_plus_1).decompress().is_some());
    let mut sig_r = sig;
    sig_r[..32].copy_from_slice(&p_plus_1);
    check(&mut t, "R = non-canonical identity", &a_bytes, m, &sig_r);
    check(&mut t, "A = non-canonical identity", &p_plus_1, m, &sig);
    let base = ED25519_BASEPOINT_POINT.compress().to_bytes();
    check(&mut t, "wrong key", &base, m, &sig);
    check(&mut t, "valid", &a_bytes, m, &sig);
    assert_eq!(t.accepted, 1);
}

/// `p + d`, the non-canonical encoding of `y = d` (`d < 19`), with the sign bit `sign`.
fn non_canonical_y(d: u8, sign: u8) -> [u8; 32] {
    let mut enc = [0xffu8; 32];
    enc[0] = 0xed + d;
    enc[31] = 0x7f | sign;
    enc
}

#[test]
fn every_non_canonical_y_as_r_and_as_a() {
    let mut t = Tally::default();
    let a = scalar("y key");
    let a_bytes = EdwardsPoint::mul_base(&a).compress().to_bytes();
    let m = b"non-canonical y";
    let sig = sign_raw(&a, &a_bytes, &scalar("y nonce"), m);
    let mut decodable = 0;
    for d in 0..19u8 {
        for sign in [0u8, 0x80] {
            let enc = non_canonical_y(d, sign);
            decodable += usize::from(CompressedEdwardsY(enc).decompress().is_some());
            let mut sig_r = sig;
            sig_r[..32].copy_from_slice(&enc);
            check(
                &mut t,
                &format!("R = p + {d} sign {sign}"),
                &a_bytes,
                m,
                &sig_r,
            );
            // S = k·a: the computed point is the identity whatever R's bytes say
            let k = challenge(&enc, &a_bytes, m);
            check(
                &mut t,
                &format!("R = p + {d}, S = k·a"),
                &a_bytes,
                m,
                &sig_bytes(&enc, &(k * a).to_bytes()),
            );
            // as A, with a signature computed against exactly those bytes
            if let Some(point) = CompressedEdwardsY(enc).decompress() {
                if !point.is_small_order() {
                    let r = scalar(&format!("y a nonce {d} {sign}"));
                    let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
                    let sig_a = sig_bytes(&big_r, &r.to_bytes());
                    check(&mut t, &format!("A = p + {d} sign {sign}"), &enc, m, &sig_a);
                }
            }
        }
    }
    check(&mut t, "valid", &a_bytes, m, &sig);
    assert!(decodable > 0, "some non-canonical encodings decode");
    assert_eq!(t.accepted, 1, "only the untouched signature verifies");
}

/// A small deterministic generator (xorshift64*), so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> usize {
        usize::try_from(self.next() % n).unwrap()
    }
}

#[test]
fn seeded_differential_over_mutations() {
    let mut t = Tally::default();
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let l = BASEPOINT_ORDER.to_bytes();
    let mut plain_keys = 0;
    for i in 0..200 {
        let a = scalar(&format!("diff key {i}"));
        // one key in four carries a torsion part
        let torsion = EIGHT_TORSION[if i % 4 == 0 { rng.below(8) } else { 0 }];
        plain_keys += usize::from(torsion.is_identity());
        let a_bytes = (EdwardsPoint::mul_base(&a) + torsion).compress().to_bytes();
        let m = format!("diff {i} {}", rng.next()).into_bytes();
        let r = scalar(&format!("diff nonce {i}"));
        let sig = sign_raw(&a, &a_bytes, &r, &m);
        let mut bad = sig;
        let what = match rng.below(6) {
            0 => {
                let bit = rng.below(512);
                bad[bit / 8] ^= 1 << (bit % 8);
                "bit flip"
            }
            1 => {
                // R plus a torsion point, S recomputed for the new challenge
                let t_r = EdwardsPoint::mul_base(&r) + EIGHT_TORSION[rng.below(8)];
                let r_bytes = t_r.compress().to_bytes();
                let k = challenge(&r_bytes, &a_bytes, &m);
                bad = sig_bytes(&r_bytes, &(r + k * a).to_bytes());
                "torsion R"
            }
            2 => {
                let s: [u8; 32] = sig[32..].try_into().unwrap();
                match add_le(&s, &l) {
                    Some(s1) => bad[32..].copy_from_slice(&s1),
                    None => bad[63] |= 0x80,
                }
                "S + L"
            }
            3 => {
                for b in &mut bad[..32] {
                    *b = u8::try_from(rng.below(256)).unwrap();
                }
                "random R"
            }
            4 => {
                bad[..32].copy_from_slice(&non_canonical_y(
                    u8::try_from(rng.below(19)).unwrap(),
                    if rng.below(2) == 0 { 0 } else { 0x80 },
                ));
                "non-canonical R"
            }
            _ => "untouched",
        };
        check(&mut t, &format!("case {i}: valid"), &a_bytes, &m, &sig);
        check(&mut t, &format!("case {i}: {what}"), &a_bytes, &m, &bad);
    }
    // every signature under a torsion-free key verifies, and some mutations are refused
    assert!(
        t.accepted >= plain_keys && t.accepted < t.cases,
        "{} of {}",
        t.accepted,
        t.cases
    );
}
