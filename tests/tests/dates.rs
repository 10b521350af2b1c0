//! Security review finding 3: one reader of NumericDate everywhere. A date is a JSON integer
//! from 0 to 253402300799 written without fraction or exponent; anything else is
//! `malformed_token` at the token that carries it, read the same way by every check (the
//! token's own times, and the `iat` that dates a Txn-Token replacement). A whole-valued float
//! `iat` on a replacement used to skip the "expired before its replacement" check.
//!
//! The property test is the class: a date written in any non-integer form, in any date claim
//! of any token of a chain, never lets the request through and is refused at that token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use base64::Engine as _;
use custody_jose::B64;
use custody_tests::*;
use proptest::prelude::*;
use serde_json::{json, Value};

const GATEWAY: &str = "spiffe://c.example/gateway";

/// Signs `claims` with the date claim `name` written as `text`.
fn raw(f: &Fixture, domain: &str, typ: &str, claims: &Value, name: &str, text: &str) -> String {
    let mut c = claims.clone();
    c["iss"] = issuer(domain).into();
    c[name] = json!(0);
    let payload = c
        .to_string()
        .replace(&format!("\"{name}\":0"), &format!("\"{name}\":{text}"));
    let key = f.key(domain);
    let header = json!({"alg": "EdDSA", "kid": key.kid(), "typ": typ}).to_string();
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = B64.encode(key.sign_bytes(input.as_bytes()));
    format!("{input}.{sig}")
}

fn txn_claims() -> Value {
    json!({"sub": "user:alice", "aud": "c.example", "txn": "txn-1", "scope": "orders:read",
           "req_wl": [GATEWAY], "iat": NOW - 10, "exp": NOW + 200})
}

fn replacement_chain(f: &Fixture, iat_text: &str) -> custody_verifier::Request {
    let mut original = txn_claims();
    original["iat"] = json!(NOW - 400);
    original["exp"] = json!(NOW - 100);
    let tokens = vec![
        f.txn_token(original),
        raw(
            f,
            "c.example",
            "txntoken+jwt",
            &txn_claims(),
            "iat",
            iat_text,
        ),
    ];
    let mut req = request(tokens);
    req.peer = Some(GATEWAY.into());
    req
}

#[test]
fn a_replacement_iat_written_as_a_float_no_longer_skips_the_expiry_check() {
    let f = Fixture::standard();
    let iat = NOW - 60;
    let d = f.verify(&replacement_chain(&f, &iat.to_string()));
    assert_eq!((outcome(&d), hop(&d)), ("expired".into(), Some(0)), "{d:?}");
    for text in [
        format!("{iat}.0"),
        "1.76722554e9".into(),
        format!("{iat}e0"),
    ] {
        let d = f.verify(&replacement_chain(&f, &text));
        assert_eq!(
            (outcome(&d), hop(&d)),
            ("malformed_token".into(), Some(1)),
            "{text}: {d:?}"
        );
    }
    // out of range: refused at the replacement, not read as a huge date that expires the
    // original
    let d = f.verify(&replacement_chain(&f, "253402300800"));
    assert_eq!(
        (outcome(&d), hop(&d)),
        ("malformed_token".into(), Some(1)),
        "{d:?}"
    );
}

#[test]
fn the_same_chain_with_integer_dates_is_allowed() {
    let f = Fixture::standard();
    let mut req = replacement_chain(&f, &(NOW - 60).to_string());
    req.tokens[0] = f.txn_token(txn_claims());
    assert!(f.verify(&req).is_allowed(), "{:?}", f.verify(&req));
}

/// A date claim, a whole number of seconds near [`NOW`], written in a non-integer form.
fn non_integer_form() -> impl Strategy<Value = (i64, String)> {
    let value = (NOW - 500)..(NOW + 500);
    (value, 0..5u8).prop_map(|(v, form)| {
        let text = match form {
            0 => format!("{v}.0"),
            1 => format!("{v}e0"),
            2 => format!("{}e9", v as f64 / 1e9),
            3 => format!("{v}.000"),
            _ => format!("{v}E+0"),
        };
        (v, text)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any date claim of either token of the standard chain (or of a Txn-Token replacement),
    /// written in a non-integer form: refused as `malformed_token` at that token.
    #[test]
    fn a_non_integer_date_is_refused_wherever_it_is(
        (_, text) in non_integer_form(),
        claim in prop::sample::select(vec!["iat", "exp", "nbf"]),
        at in 0usize..3,
    ) {
        let f = Fixture::standard();
        let req = match at {
            0 => request(vec![raw(&f, "a.example", "at+jwt", &t0_claims(), claim, &text), f.token("b.example", t1_claims())]),
            1 => request(vec![f.token("a.example", t0_claims()), raw(&f, "b.example", "at+jwt", &t1_claims(), claim, &text)]),
            _ => {
                let mut r = request(vec![f.txn_token(txn_claims()), raw(&f, "c.example", "txntoken+jwt", &txn_claims(), claim, &text)]);
                r.peer = Some(GATEWAY.into());
                r
            }
        };
        let d = f.verify(&req);
        let want_hop = if at == 0 { 0 } else { 1 };
        prop_assert_eq!((outcome(&d), hop(&d)), ("malformed_token".to_owned(), Some(want_hop)), "{} = {}: {:?}", claim, text, d);
    }
}
