//! The rules of DESIGN.md's "Algorithms" paragraph, one test each, on the RFCs' own examples.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use base64::Engine as _;
use serde_json::{json, Value};

use crate::{
    decode, parse_key_set, Algorithm, Curve, EcKey, JwsError, KeyMaterial, KeySetError, Limits,
    PublicKey, RsaKey, SigningKey, B64,
};

const A2_JWK: &str = include_str!("../testdata/rfc7515-a2.key.jwk");
const A3_JWK: &str = include_str!("../testdata/rfc7515-a3.key.jwk");

/// RFC 7515 A.2: `{"alg":"RS256"}` over the `joe` claims.
const A2_INPUT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const A2_SIG: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
/// RFC 7515 A.3: `{"alg":"ES256"}` over the same claims.
const A3_INPUT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const A3_SIG: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

fn b64(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap()
}

/// The public half of a private test JWK: the private members dropped, `extra` merged in.
fn public_jwk(private: &str, extra: Value) -> Value {
    let mut jwk: Value = serde_json::from_str(private).unwrap();
    let m = jwk.as_object_mut().unwrap();
    for part in ["d", "p", "q", "dp", "dq", "qi"] {
        m.remove(part);
    }
    for (k, v) in extra.as_object().unwrap() {
        m.insert(k.clone(), v.clone());
    }
    jwk
}

fn load(jwks: &Value) -> Result<crate::ParsedKeySet, KeySetError> {
    parse_key_set(jwks.to_string().as_bytes(), &Limits::default())
}

fn one(jwk: Value) -> PublicKey {
    let set = load(&json!({ "keys": [jwk] })).unwrap();
    assert!(set.skipped.is_empty(), "{:?}", set.skipped);
    set.keys.keys()[0].clone()
}

fn skipped(jwk: Value) -> String {
    let set = load(&json!({ "keys": [jwk] })).unwrap();
    assert!(set.keys.is_empty());
    set.skipped[0].reason.clone()
}

fn a2() -> PublicKey {
    one(public_jwk(A2_JWK, json!({})))
}

fn a3() -> PublicKey {
    one(public_jwk(A3_JWK, json!({})))
}

#[test]
fn rfc7515_a2_rs256_verifies_and_nothing_else_does() {
    let key = a2();
    let sig = b64(A2_SIG);
    assert!(key.verify_with("RS256", A2_INPUT.as_bytes(), &sig));
    for other in [
        "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "EdDSA", "HS256",
    ] {
        assert!(
            !key.verify_with(other, A2_INPUT.as_bytes(), &sig),
            "{other}"
        );
    }
    let mut flipped = sig.clone();
    flipped[100] ^= 1;
    assert!(!key.verify_with("RS256", A2_INPUT.as_bytes(), &flipped));
    assert!(!key.verify_with("RS256", A2_INPUT.as_bytes(), &sig[1..]));
    let mut longer = vec![0];
    longer.extend_from_slice(&sig);
    assert!(!key.verify_with("RS256", A2_INPUT.as_bytes(), &longer));
    // six algorithms fit an unpinned RSA key: the two-argument form has none to choose
    assert_eq!(key.sole_algorithm(), None);
    assert!(!key.verify(A2_INPUT.as_bytes(), &sig));
}

/// PKCS#1 v1.5 is deterministic: the A.2 private key signs the RFC's exact bytes.
#[test]
fn rfc7515_a2_private_key_signs_the_rfc_signature() {
    let key = SigningKey::from_jwk(A2_JWK.as_bytes()).unwrap();
    assert_eq!(key.alg(), Algorithm::Rs256);
    assert_eq!(key.sign_bytes(A2_INPUT.as_bytes()), b64(A2_SIG));
    let pss = key.with_alg(Algorithm::Ps256).unwrap();
    let sig = pss.sign_bytes(A2_INPUT.as_bytes());
    assert!(a2().verify_with("PS256", A2_INPUT.as_bytes(), &sig));
    assert!(!a2().verify_with("RS256", A2_INPUT.as_bytes(), &sig));
}

#[test]
fn rfc7515_a3_es256_verifies_and_its_der_form_does_not() {
    let key = a3();
    let sig = b64(A3_SIG);
    assert!(key.verify_with("ES256", A3_INPUT.as_bytes(), &sig));
    assert!(key.verify(A3_INPUT.as_bytes(), &sig));
    for other in ["ES384", "RS256", "EdDSA", "ES512", "ES256K"] {
        assert!(
            !key.verify_with(other, A3_INPUT.as_bytes(), &sig),
            "{other}"
        );
    }
    let der = der_signature(&sig);
    assert!(!key.verify_with("ES256", A3_INPUT.as_bytes(), &der));
    assert!(!key.verify_with("ES256", A3_INPUT.as_bytes(), &sig[..63]));
    let mut long = sig.clone();
    long.push(0);
    assert!(!key.verify_with("ES256", A3_INPUT.as_bytes(), &long));
}

/// `r‖s` as an ASN.1 DER `ECDSA-Sig-Value`, as a non-JOSE signer would write it.
pub(crate) fn der_signature(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    let int = |x: &[u8]| {
        let x = &x[x.iter().position(|&b| b != 0).unwrap_or(x.len() - 1)..];
        let mut out = vec![0x02];
        let pad = x[0] & 0x80 != 0;
        out.push((x.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(x);
        out
    };
    let body = [int(r), int(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

/// The orders of P-256 and P-384, big-endian.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn ecdsa_r_or_s_zero_or_at_least_n_is_refused() {
    let key = a3();
    let sig = b64(A3_SIG);
    let (r, s) = sig.split_at(32);
    let n = hex(P256_N);
    let ones = [0xff; 32];
    let zero = [0; 32];
    for (what, r, s) in [
        ("r = 0", &zero[..], s),
        ("s = 0", r, &zero[..]),
        ("r = n", &n[..], s),
        ("s = n", r, &n[..]),
        ("r = 2^256 - 1", &ones[..], s),
        ("s = 2^256 - 1", r, &ones[..]),
    ] {
        let forged = [r, s].concat();
        assert!(
            !key.verify_with("ES256", A3_INPUT.as_bytes(), &forged),
            "{what}"
        );
    }
}

#[test]
fn ec_points_must_be_on_the_curve_and_full_length() {
    let jwk = public_jwk(A3_JWK, json!({}));
    let mut y = b64(jwk["y"].as_str().unwrap());
    y[31] ^= 1;
    let off = public_jwk(A3_JWK, json!({"y": B64.encode(&y)}));
    let err = load(&json!({ "keys": [off] })).unwrap_err();
    assert!(
        matches!(&err, KeySetError::BadKey(kid, why) if kid == "rfc7515-a3" && why.contains("not on the curve")),
        "{err}"
    );
    let x = b64(jwk["x"].as_str().unwrap());
    let short = public_jwk(A3_JWK, json!({"x": B64.encode(&x[1..])}));
    assert!(matches!(
        load(&json!({ "keys": [short] })),
        Err(KeySetError::BadKey(..))
    ));
    let padded = public_jwk(A3_JWK, json!({"x": B64.encode([&[0][..], &x].concat())}));
    assert!(matches!(
        load(&json!({ "keys": [padded] })),
        Err(KeySetError::BadKey(..))
    ));
    // the P-256 point as a P-384 key: wrong length for the curve
    let p384 = public_jwk(A3_JWK, json!({"crv": "P-384"}));
    assert!(matches!(
        load(&json!({ "keys": [p384] })),
        Err(KeySetError::BadKey(..))
    ));
    // x = p, the field prime: not a field element
    let p = hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
    assert!(EcKey::from_coordinates("k", Curve::P256, &p, &y).is_err());
    assert!(EcKey::from_coordinates("k", Curve::P256, &[0; 32], &[0; 32]).is_err());
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "kid": "r", "n": B64.encode(n), "e": B64.encode(e)})
}

#[test]
fn rsa_modulus_2048_to_8192_bits_and_exponent_65537_only() {
    let n = b64(public_jwk(A2_JWK, json!({}))["n"].as_str().unwrap());
    let e = [1, 0, 1];
    let bits = |len: usize| {
        let mut m = vec![0xc5; len];
        m[len - 1] |= 1;
        m
    };
    let refused = |n: &[u8], e: &[u8]| load(&json!({ "keys": [rsa_jwk(n, e)] })).unwrap_err();
    assert_eq!(
        refused(&n[..128], &e),
        KeySetError::RsaModulus("r".into(), 1024)
    );
    let mut short = n.clone();
    short[0] = 0x7f;
    assert_eq!(
        refused(&short, &e),
        KeySetError::RsaModulus("r".into(), 2047)
    );
    assert_eq!(
        refused(&bits(1025), &e),
        KeySetError::RsaModulus("r".into(), 8200)
    );
    assert!(RsaKey::from_components("r", &bits(1024), &e).is_ok());
    assert_eq!(RsaKey::from_components("r", &n, &e).unwrap().bits(), 2048);
    for bad_e in [&[3][..], &[1, 0, 0, 1], &[0, 1, 0, 1], &[1], &[]] {
        assert!(
            matches!(refused(&n, bad_e), KeySetError::BadKey(..)),
            "{bad_e:?}"
        );
    }
    let padded = [&[0][..], &n].concat();
    assert!(matches!(refused(&padded, &e), KeySetError::BadKey(..)));
    let mut even = n.clone();
    even[255] &= 0xfe;
    assert!(matches!(refused(&even, &e), KeySetError::BadKey(..)));
}

#[test]
fn a_private_part_anywhere_spoils_the_set() {
    for part in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
        for private in [A2_JWK, A3_JWK] {
            let jwk = public_jwk(private, json!({ part: "AQAB" }));
            let set = json!({"keys": [public_jwk(A3_JWK, json!({"kid": "other"})), jwk]});
            assert_eq!(
                load(&set).unwrap_err(),
                KeySetError::PrivateKey(1),
                "{part}"
            );
        }
    }
    // even on a key that would be skipped
    let enc = public_jwk(A2_JWK, json!({"use": "enc", "d": "AQAB"}));
    assert_eq!(
        load(&json!({ "keys": [enc] })).unwrap_err(),
        KeySetError::PrivateKey(0)
    );
}

#[test]
fn the_key_decides_its_algorithms() {
    let rsa = a2();
    for a in Algorithm::ALL {
        assert_eq!(rsa.allows_alg(a.name()), a.is_rsa(), "{a}");
        assert_eq!(a3().allows_alg(a.name()), a == Algorithm::Es256, "{a}");
    }
    let ed = SigningKey::from_seed("e", [9; 32]).public();
    for a in Algorithm::ALL {
        assert_eq!(ed.allows_alg(a.name()), a.is_ed25519(), "{a}");
    }
    for unlisted in ["HS256", "none", "ES256K", "rs256", ""] {
        assert!(!rsa.allows_alg(unlisted) && !a3().allows_alg(unlisted));
    }
}

#[test]
fn a_pinned_alg_narrows_the_key_and_an_unfit_one_skips_it() {
    let pinned = one(public_jwk(A2_JWK, json!({"alg": "PS256"})));
    assert_eq!(pinned.alg(), Some("PS256"));
    assert!(pinned.allows_alg("PS256"));
    assert!(!pinned.allows_alg("RS256"));
    assert!(!pinned.verify_with("RS256", A2_INPUT.as_bytes(), &b64(A2_SIG)));
    assert_eq!(
        pinned.to_jwk()["alg"],
        "PS256",
        "the pin is written back out"
    );
    for (jwk, alg) in [
        (public_jwk(A2_JWK, json!({"alg": "ES256"})), "ES256"),
        (public_jwk(A2_JWK, json!({"alg": "HS256"})), "HS256"),
        (public_jwk(A3_JWK, json!({"alg": "ES384"})), "ES384"),
        (public_jwk(A3_JWK, json!({"alg": "RS256"})), "RS256"),
    ] {
        let reason = skipped(jwk);
        assert!(reason.contains(alg), "{reason}");
    }
}

#[test]
fn use_and_key_ops_decide_whether_a_key_signs_tokens() {
    // a plain JWK Set: `use` absent or `sig`
    for extra in [json!({}), json!({"use": "sig"})] {
        one(public_jwk(A3_JWK, extra));
    }
    for use_ in ["enc", "SIG", ""] {
        let reason = skipped(public_jwk(A3_JWK, json!({ "use": use_ })));
        assert!(reason.contains("`use`"), "{reason}");
    }
    // a SPIFFE bundle (a key with a SPIFFE `use` makes it one): `jwt-svid` signs tokens
    let jwt_svid = one(public_jwk(A3_JWK, json!({"use": "jwt-svid"})));
    assert_eq!(jwt_svid.kid(), "rfc7515-a3");
    let x509 = skipped(public_jwk(A3_JWK, json!({"use": "x509-svid"})));
    assert!(x509.contains("certificates"), "{x509}");
    // `wit-svid` keys verify WITs only: they are kept apart from the token keys
    let wit = load(&json!({"keys": [public_jwk(A3_JWK, json!({"use": "wit-svid"}))]})).unwrap();
    assert!(wit.bundle && wit.keys.is_empty() && wit.skipped.is_empty());
    assert_eq!(wit.wit_keys.len(), 1);
    // in a bundle (`spiffe_sequence`), `sig` and a missing `use` sign nothing
    for extra in [json!({"use": "sig"}), json!({})] {
        let doc = json!({"spiffe_sequence": 3, "keys": [public_jwk(A3_JWK, extra)]});
        let set = load(&doc).unwrap();
        assert!(set.bundle && set.keys.is_empty(), "{set:?}");
        assert_eq!(set.sequence, Some(3));
        assert!(
            set.skipped[0].reason.contains("bundle"),
            "{:?}",
            set.skipped
        );
    }
    // one `kid` names one key, whether it verifies tokens or WITs
    let both = json!({"keys": [
        public_jwk(A3_JWK, json!({"use": "jwt-svid"})),
        public_jwk(A2_JWK, json!({"use": "wit-svid", "kid": "rfc7515-a3"})),
    ]});
    assert_eq!(
        load(&both).unwrap_err(),
        KeySetError::DuplicateKid("rfc7515-a3".into())
    );
    for bad in [json!(-1), json!(1.5), json!("1")] {
        let doc = json!({"spiffe_sequence": bad, "keys": []});
        assert!(matches!(load(&doc), Err(KeySetError::Shape(_))), "{doc}");
    }
    one(public_jwk(A2_JWK, json!({"key_ops": ["sign", "verify"]})));
    skipped(public_jwk(A2_JWK, json!({"key_ops": ["encrypt"]})));
    skipped(public_jwk(A2_JWK, json!({"key_ops": []})));
    // an X.509 authority of a SPIFFE bundle has no `kid`: skipped, not an error
    let mut x509 = public_jwk(A3_JWK, json!({"use": "x509-svid"}));
    x509.as_object_mut().unwrap().remove("kid");
    skipped(x509);
    // kinds custody does not verify are skipped
    skipped(json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}));
    skipped(json!({"kty": "EC", "crv": "P-521", "kid": "p5", "x": "AA", "y": "AA"}));
    skipped(json!({"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AA"}));
}

#[test]
fn a_usable_key_needs_a_kid_and_kids_are_unique() {
    let mut no_kid = public_jwk(A2_JWK, json!({}));
    no_kid.as_object_mut().unwrap().remove("kid");
    assert_eq!(
        load(&json!({ "keys": [no_kid] })).unwrap_err(),
        KeySetError::MissingKid(0)
    );
    let twice = json!({"keys": [
        public_jwk(A2_JWK, json!({"kid": "k"})),
        public_jwk(A3_JWK, json!({"kid": "k"})),
    ]});
    assert_eq!(
        load(&twice).unwrap_err(),
        KeySetError::DuplicateKid("k".into())
    );
}

fn thumbprint(key: &PublicKey) -> String {
    B64.encode(key.thumbprint())
}

/// RFC 7638 §3.1's RSA example and RFC 8037 A.3's Ed25519 one.
#[test]
fn thumbprints_are_rfc_7638() {
    let rfc7638 = one(json!({
        "kty": "RSA", "kid": "2011-04-29", "alg": "RS256", "e": "AQAB",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    }));
    assert_eq!(
        thumbprint(&rfc7638),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    let rfc8037 = one(json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "a3",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    }));
    assert_eq!(
        thumbprint(&rfc8037),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    // the `kid` and the pin are not part of a key's identity
    let renamed = one(public_jwk(A3_JWK, json!({"kid": "x", "alg": "ES256"})));
    assert_eq!(thumbprint(&renamed), thumbprint(&a3()));
}

/// RFC 8037 A.4: `{"alg":"EdDSA"}` over "Example of Ed25519 signing".
#[test]
fn rfc8037_a4_ed25519_verifies_strictly() {
    let key = one(json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "a4",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    }));
    let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let sig = b64(
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
    );
    assert!(key.verify_with("EdDSA", input, &sig));
    assert!(key.verify_with("Ed25519", input, &sig));
    assert!(key.verify_strict(input, &sig));
    assert!(!key.verify_with("ES256", input, &sig));
}

#[test]
fn decode_lets_listed_algorithms_reach_the_key_and_refuses_the_rest() {
    let token = |alg: &str| {
        format!(
            "{}.{}.AAAA",
            B64.encode(json!({"alg": alg, "kid": "k"}).to_string()),
            B64.encode("{}")
        )
    };
    for a in Algorithm::ALL {
        assert_eq!(
            decode(&token(a.name()), &Limits::default())
                .unwrap()
                .header
                .alg,
            a.name()
        );
    }
    for refused in [
        "none", "HS256", "HS384", "HS512", "ES256K", "ES512", "Ed448", "es256",
    ] {
        assert!(
            matches!(
                decode(&token(refused), &Limits::default()),
                Err(JwsError::AlgNotAllowed(_))
            ),
            "{refused}"
        );
    }
}

#[test]
fn generated_keys_sign_what_their_public_half_verifies() {
    for alg in [
        Algorithm::EdDsa,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Rs256,
        Algorithm::Ps256,
    ] {
        let key = SigningKey::generate("g", alg).unwrap();
        let sig = key.sign_bytes(b"message");
        let public = key.public();
        assert!(public.verify_with(alg.name(), b"message", &sig), "{alg}");
        assert!(!public.verify_with(alg.name(), b"messagE", &sig), "{alg}");
        // the private JWK reads back as the same key, with the same algorithm
        let text = key.to_private_jwk().to_string();
        let again = SigningKey::from_jwk(text.as_bytes()).unwrap();
        assert_eq!(again.alg(), alg);
        assert_eq!(again.public(), public);
        // and its public JWK loads as a key set, private parts gone
        let loaded = one(public.to_jwk());
        assert_eq!(loaded, public);
        match loaded.material() {
            KeyMaterial::Ed25519(_) => assert_eq!(loaded.alg(), None),
            _ => assert_eq!(loaded.alg(), Some(alg.name())),
        }
    }
}
