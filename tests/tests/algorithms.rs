//! Issue 14 end to end: tokens signed ES256, ES384, RS256 and PS256 under the keys of a pack
//! verify under the same chain rules as Ed25519 ones, and a chain may mix them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use base64::Engine as _;
use custody_jose::{Algorithm, SigningKey, B64};
use custody_tests::{chain, hop, outcome, request, t0_claims, t1_claims, Fixture, PackBuilder};

const A2_JWK: &str = include_str!("../../crates/jose/testdata/rfc7515-a2.key.jwk");

/// RFC 7515 A.2's RSA key as `a.example`'s, published pinned to `alg`.
fn rsa_origin(alg: Algorithm) -> Fixture {
    let key = SigningKey::from_jwk(A2_JWK.as_bytes())
        .unwrap()
        .with_kid("a.example-rsa")
        .with_alg(alg)
        .unwrap();
    PackBuilder::default().key("a.example", key).build()
}

/// An IdP-issued RS256 origin token (a.example) and an Ed25519 agent token (b.example): the
/// standard chain, allowed exactly as the all-Ed25519 one is.
#[test]
fn rs256_origin_with_ed25519_hop_verifies_under_the_same_chain_rules() {
    let f = rsa_origin(Algorithm::Rs256);
    let tokens = chain(&f);
    assert!(tokens[0].starts_with(&B64.encode(r#"{"alg":"RS256""#)[..10]));
    let d = f.verify(&request(tokens.clone()));
    assert!(d.is_allowed(), "{d:?}");
    // and the chain rules still bite: a widened scope in the Ed25519 hop
    let mut wide = t1_claims();
    wide["scope"] = "orders:read orders:admin".into();
    let d = f.verify(&request(vec![
        tokens[0].clone(),
        f.token("b.example", wide),
    ]));
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("scope_escalation", Some(1))
    );
    // a tampered RS256 origin is a bad signature at hop 0
    let (input, sig) = tokens[0].rsplit_once('.').unwrap();
    let mut bytes = B64.decode(sig).unwrap();
    bytes[7] ^= 1;
    let forged = format!("{input}.{}", B64.encode(bytes));
    let d = f.verify(&request(vec![forged, tokens[1].clone()]));
    assert_eq!((outcome(&d).as_str(), hop(&d)), ("bad_signature", Some(0)));
}

#[test]
fn each_listed_algorithm_verifies_in_a_chain() {
    for alg in [
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::EdDsa,
        Algorithm::Ed25519,
    ] {
        let key = SigningKey::generate("a.example-k2", alg).unwrap();
        let f = PackBuilder::default().key("a.example", key).build();
        let d = f.verify(&request(chain(&f)));
        assert!(d.is_allowed(), "{alg}: {d:?}");
    }
}

/// The key decides: a JWK pinned to RS256 refuses PS256 from the very same RSA key.
#[test]
fn a_pinned_rsa_key_refuses_its_other_algorithms() {
    let f = rsa_origin(Algorithm::Rs256);
    let pss = f.key("a.example").with_alg(Algorithm::Ps256).unwrap();
    let mut claims = t0_claims();
    claims["iss"] = custody_tests::issuer("a.example").into();
    let t0 = custody_jose::sign(&pss, Some("at+jwt"), &claims).unwrap();
    let d = f.verify(&request(vec![t0, f.token("b.example", t1_claims())]));
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("alg_not_allowed", Some(0))
    );
}

/// An ECDSA origin whose signature is DER, or whose r is zero: a bad signature, never a panic
/// or a pass.
#[test]
fn ecdsa_signatures_are_fixed_length_only() {
    let key = SigningKey::generate("a.example-ec", Algorithm::Es256).unwrap();
    let f = PackBuilder::default().key("a.example", key).build();
    let tokens = chain(&f);
    let (input, sig) = tokens[0].rsplit_once('.').unwrap();
    let sig = B64.decode(sig).unwrap();
    let mut zero_r = sig.clone();
    zero_r[..32].fill(0);
    for bad in [der(&sig), zero_r, sig[..63].to_vec()] {
        let t0 = format!("{input}.{}", B64.encode(bad));
        let d = f.verify(&request(vec![t0, tokens[1].clone()]));
        assert_eq!((outcome(&d).as_str(), hop(&d)), ("bad_signature", Some(0)));
    }
}

fn der(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    let int = |x: &[u8]| {
        let x = &x[x.iter().position(|&b| b != 0).unwrap_or(x.len() - 1)..];
        let pad = x[0] & 0x80 != 0;
        let mut out = vec![0x02, (x.len() + usize::from(pad)) as u8];
        if pad {
            out.push(0);
        }
        out.extend_from_slice(x);
        out
    };
    let body = [int(r), int(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}
