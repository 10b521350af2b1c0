//! Proving the caller (DESIGN.md, "Identity from the outside world"): JWT-SVIDs, WIMSE WIT +
//! WPT, DPoP and certificate-bound tokens, each rule with a case that holds and one that does
//! not, against the standard pack.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use base64::Engine as _;
use custody_jose::{sign_with_header, Algorithm, SigningKey, B64};
use custody_tests::{
    act, chain, hop, outcome, request, Fixture, PackBuilder, ALICE, AUD, BOB, NOW,
};
use custody_verifier::{ProofMethod, Request};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TARGET: &str = "https://orders.c.example/orders/7";
const HELPER: &str = "spiffe://b.example/agent/helper";

fn hash(text: &str) -> String {
    B64.encode(Sha256::digest(text.as_bytes()))
}

fn workload_key(kid: &str) -> SigningKey {
    SigningKey::generate(kid, Algorithm::Es256).unwrap()
}

/// The public JWK of `key` with its `alg`, as a WIT's `cnf.jwk` or a DPoP `jwk` header.
fn public_jwk(key: &SigningKey) -> Value {
    let mut jwk = key.public().to_jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    jwk["alg"] = key.alg().name().into();
    jwk
}

/// A WIT for `sub`, signed by `domain`'s key, binding `wl`.
fn wit(f: &Fixture, domain: &str, sub: &str, wl: &SigningKey, extra: Value) -> String {
    let mut c = json!({"sub": sub, "iat": NOW - 60, "exp": NOW + 3000,
        "cnf": {"jwk": public_jwk(wl)}});
    merge(&mut c, extra);
    let kid = f.key(domain).kid().to_owned();
    f.with_header(
        domain,
        json!({"alg": f.key(domain).alg().name(), "kid": kid, "typ": "wit+jwt"}),
        c,
    )
}

/// A WPT by `wl` for `wit`, covering `token`, for [`TARGET`].
fn wpt(wl: &SigningKey, wit: &str, token: &str, jti: &str, extra: Value) -> String {
    let mut c = json!({"aud": TARGET, "exp": NOW + 60, "jti": jti,
        "wth": hash(wit), "ath": hash(token)});
    merge(&mut c, extra);
    sign_with_header(wl, &json!({"alg": wl.alg().name(), "typ": "wpt+jwt"}), &c).unwrap()
}

/// A DPoP proof by `key` for `GET` [`TARGET`], covering `token`.
fn dpop(key: &SigningKey, token: &str, jti: &str, extra: Value) -> String {
    let mut c = json!({"htm": "GET", "htu": TARGET, "iat": NOW, "jti": jti,
        "ath": hash(token)});
    merge(&mut c, extra);
    let header = json!({"alg": key.alg().name(), "typ": "dpop+jwt", "jwk": public_jwk(key)});
    sign_with_header(key, &header, &c).unwrap()
}

/// Sets (or with `null`, removes) the members of `extra` in `c`.
fn merge(c: &mut Value, extra: Value) {
    if let Value::Object(m) = extra {
        for (k, v) in m {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(&k);
            } else {
                c[k] = v;
            }
        }
    }
}

/// Alice-agent's single token for the orders service.
fn alice_token(f: &Fixture, extra: Value) -> String {
    let mut c = json!({"sub": "user:alice", "aud": AUD, "iat": NOW - 30, "exp": NOW + 300,
        "scope": "orders:read", "act": act(&[ALICE])});
    merge(&mut c, extra);
    f.token("b.example", c)
}

fn with_wimse(token: &str, wit: &str, wpt: &str) -> Request {
    Request {
        wit: Some(wit.into()),
        wpt: Some(wpt.into()),
        target_uri: Some(format!("{TARGET}?page=2")),
        ..request(vec![token.into()])
    }
}

fn with_dpop(token: &str, proof: Option<&str>) -> Request {
    Request {
        dpop: proof.map(str::to_owned),
        target_uri: Some(TARGET.into()),
        http_method: Some("GET".into()),
        ..request(vec![token.into()])
    }
}

fn code(f: &Fixture, req: &Request) -> String {
    outcome(&f.verify(req))
}

// ---------------------------------------------------------------------------------------
// JWT-SVIDs

const SVID_CEDAR: &str = r#"
permit(principal == Agent::"spiffe://b.example/agent/alice", action == Action::"orders:read", resource);
"#;

fn svid(f: &Fixture, typ: Option<&str>, claims: Value) -> String {
    let mut header = json!({"alg": "EdDSA", "kid": f.key("b.example").kid()});
    if let Some(t) = typ {
        header["typ"] = t.into();
    }
    f.with_header("b.example", header, claims)
}

fn svid_claims() -> Value {
    json!({"sub": ALICE, "aud": AUD, "exp": NOW + 300})
}

#[test]
fn a_jwt_svid_is_a_chain_of_its_own_that_only_cedar_can_permit() {
    let f = PackBuilder::default().cedar(SVID_CEDAR).build();
    for typ in [None, Some("JWT"), Some("JOSE"), Some("application/jwt")] {
        let d = f.verify(&request(vec![svid(&f, typ, svid_claims())]));
        assert_eq!(outcome(&d), "allow", "typ {typ:?}: {d:?}");
        assert_eq!(d.chain.as_ref().unwrap().actors, vec![ALICE.to_owned()]);
    }
    // Cedar decides for whom: another agent of the same domain is not permitted
    let mut other = svid_claims();
    other["sub"] = HELPER.into();
    assert_eq!(
        code(&f, &request(vec![svid(&f, None, other)])),
        "policy_denied"
    );
    // without Cedar nothing permits a scope-less token
    let plain = Fixture::standard();
    let d = plain.verify(&request(vec![svid(&plain, None, svid_claims())]));
    assert_eq!(outcome(&d), "scope_missing");
}

#[test]
fn a_jwt_svid_follows_the_contract_rules() {
    let f = PackBuilder::default().cedar(SVID_CEDAR).build();
    let one = |typ: Option<&str>, extra: Value| {
        let mut c = svid_claims();
        merge(&mut c, extra);
        code(&f, &request(vec![svid(&f, typ, c)]))
    };
    assert_eq!(one(Some("at+jwt"), json!({})), "wrong_token_type");
    assert_eq!(one(None, json!({"aud": null})), "missing_claim");
    assert_eq!(one(None, json!({"exp": null})), "missing_claim");
    assert_eq!(one(None, json!({"iat": NOW - 10})), "allow");
    assert_eq!(one(None, json!({"iat": NOW + 600})), "issued_in_future");
    assert_eq!(one(None, json!({"exp": NOW - 100})), "expired");
    // with no `iat`, what is left of it counts against `max_lifetime` (3600 s)
    assert_eq!(one(None, json!({"exp": NOW + 7200})), "lifetime_too_long");
    assert_eq!(
        one(None, json!({"aud": "spiffe://c.example/other"})),
        "audience_mismatch"
    );
    // the keys are those of `sub`'s trust domain: declared, and the one that signed
    assert_eq!(
        one(None, json!({"sub": "spiffe://z.example/agent/x"})),
        "unknown_issuer"
    );
    // signed with b.example's key (its `kid`) for an a.example `sub`: not a key of a.example
    let forged = json!({"sub": "spiffe://a.example/agent/bob"});
    assert_eq!(one(None, forged), "unknown_key");
    assert_eq!(
        one(None, json!({"sub": "spiffe://b.example"})),
        "invalid_spiffe_id"
    );
    // one token of several is not a JWT-SVID's place
    let t = svid(&f, None, svid_claims());
    let d = f.verify(&request(vec![chain(&f)[0].clone(), t]));
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("wrong_token_type", Some(1))
    );
    // nor is the `txn_token`
    let mut req = request(chain(&f));
    req.txn_token = Some(svid(&f, None, svid_claims()));
    assert_eq!(code(&f, &req), "wrong_token_type");
}

#[test]
fn a_cached_jwt_svid_is_checked_again_for_its_time_and_place() {
    let f = PackBuilder::default().cedar(SVID_CEDAR).build();
    let t = svid(&f, None, svid_claims());
    assert_eq!(code(&f, &request(vec![t.clone()])), "allow");
    assert_eq!(code(&f, &request(vec![t.clone()])), "allow");
    let mut late = request(vec![t.clone()]);
    late.now = Some(NOW + 1000);
    assert_eq!(code(&f, &late), "expired");
    let d = f.verify(&request(vec![chain(&f)[0].clone(), t]));
    assert_eq!(outcome(&d), "wrong_token_type");
}

// ---------------------------------------------------------------------------------------
// WIMSE WIT + WPT

#[test]
fn a_wit_with_its_wpt_proves_the_caller() {
    let f = Fixture::standard();
    let wl = workload_key("wl");
    let token = alice_token(&f, json!({}));
    let w = wit(&f, "b.example", ALICE, &wl, json!({}));
    let req = with_wimse(&token, &w, &wpt(&wl, &w, &token, "j-1", json!({})));
    let (d, verified) = f.verifier.verify_traced(&req);
    assert_eq!(outcome(&d), "allow", "{d:?}");
    let caller = verified.caller().unwrap();
    assert_eq!(caller.methods(), [ProofMethod::WitWpt]);
    assert_eq!(caller.peer().unwrap().as_str(), ALICE);
    // a proof is good once
    let d = f.verify(&req);
    assert_eq!(outcome(&d), "replayed");
    assert_eq!(hop(&d), None);
    // a `peer` given as well must be the proven caller
    let req = Request {
        peer: Some(ALICE.into()),
        ..with_wimse(&token, &w, &wpt(&wl, &w, &token, "j-2", json!({})))
    };
    assert_eq!(code(&f, &req), "allow");
    let req = Request {
        peer: Some(HELPER.into()),
        ..with_wimse(&token, &w, &wpt(&wl, &w, &token, "j-3", json!({})))
    };
    assert_eq!(code(&f, &req), "sender_mismatch");
}

#[test]
fn a_token_stolen_by_another_workload_is_refused_by_sender_binding() {
    let f = Fixture::standard();
    let token = alice_token(&f, json!({}));
    // the helper holds a good WIT of its own and proves it properly, with Alice-agent's token
    let wl = workload_key("helper");
    let w = wit(&f, "b.example", HELPER, &wl, json!({}));
    let req = with_wimse(&token, &w, &wpt(&wl, &w, &token, "h-1", json!({})));
    let d = f.verify(&req);
    assert_eq!(outcome(&d), "sender_mismatch", "{d:?}");
}

#[test]
fn every_wpt_rule_denies_peer_invalid() {
    let f = Fixture::standard();
    let wl = workload_key("wl");
    let token = alice_token(&f, json!({}));
    let w = wit(&f, "b.example", ALICE, &wl, json!({}));
    let mut n = 0;
    let mut jti = || {
        n += 1;
        format!("j{n}")
    };
    let check = |req: Request| code(&f, &req);
    let proof = |extra: Value, jti: String| wpt(&wl, &w, &token, &jti, extra);
    // the good case, then one rule broken at a time
    assert_eq!(
        check(with_wimse(&token, &w, &proof(json!({}), jti()))),
        "allow"
    );
    let bad = [
        json!({"aud": "https://orders.c.example/orders/8"}),
        json!({"aud": [TARGET]}),
        json!({"aud": null}),
        json!({"ath": hash("another token")}),
        json!({"ath": null}),
        json!({"wth": hash("another wit")}),
        json!({"wth": null}),
        json!({"exp": NOW - 60}),
        json!({"exp": NOW + 301}),
        json!({"exp": null}),
        json!({"exp": 1.7e9}),
        json!({"jti": null}),
        json!({"jti": ""}),
        json!({"tth": hash("no txn token")}),
        json!({"oth": {"x-request-id": hash("abc")}}),
        json!({"iat": NOW + 600}),
    ];
    for extra in bad {
        let req = with_wimse(&token, &w, &proof(extra.clone(), jti()));
        assert_eq!(check(req), "peer_invalid", "{extra}");
    }
    // signed by a key other than `cnf`
    let other = workload_key("other");
    let forged = wpt(&other, &w, &token, &jti(), json!({}));
    assert_eq!(check(with_wimse(&token, &w, &forged)), "peer_invalid");
    // an `alg` other than the `cnf` key's own, and a `typ` other than `wpt+jwt`
    let c =
        json!({"aud": TARGET, "exp": NOW + 60, "jti": jti(), "wth": hash(&w), "ath": hash(&token)});
    for header in [
        json!({"alg": "ES384", "typ": "wpt+jwt"}),
        json!({"alg": "ES256", "typ": "JWT"}),
        json!({"alg": "ES256"}),
    ] {
        let t = sign_with_header(&wl, &header, &c).unwrap();
        assert_eq!(
            check(with_wimse(&token, &w, &t)),
            "peer_invalid",
            "{header}"
        );
    }
    // no target URI to check `aud` against
    let mut req = with_wimse(&token, &w, &proof(json!({}), jti()));
    req.target_uri = None;
    assert_eq!(check(req), "peer_invalid");
    // a WIT alone, or a WPT alone
    let mut req = with_wimse(&token, &w, &proof(json!({}), jti()));
    req.wpt = None;
    assert_eq!(check(req), "peer_invalid");
    let mut req = with_wimse(&token, &w, &proof(json!({}), jti()));
    req.wit = None;
    assert_eq!(check(req), "peer_invalid");
}

#[test]
fn wpt_hashes_cover_the_txn_token_and_the_headers_named() {
    let f = Fixture::standard();
    let wl = workload_key("wl");
    let token = alice_token(&f, json!({"txn": "txn-1"}));
    let w = wit(&f, "b.example", ALICE, &wl, json!({}));
    let txn = f.txn_token(
        json!({"sub": "user:alice", "aud": "c.example", "iat": NOW - 10,
        "exp": NOW + 120, "txn": "txn-1", "scope": "orders:read", "req_wl": ALICE}),
    );
    let headers = |v: &str| {
        Some(
            [("x-request-id".to_owned(), v.to_owned())]
                .into_iter()
                .collect(),
        )
    };
    let req = |extra: Value, jti: &str, h: Option<_>| Request {
        txn_token: Some(txn.clone()),
        proof_headers: h,
        ..with_wimse(&token, &w, &wpt(&wl, &w, &token, jti, extra))
    };
    let oth = json!({"x-request-id": hash("abc")});
    let d = f.verify(&req(
        json!({"tth": hash(&txn), "oth": oth}),
        "t1",
        headers(" abc "),
    ));
    assert_eq!(outcome(&d), "allow", "{d:?}");
    // `tth` is required when there is a Txn-Token, and must be its hash
    assert_eq!(code(&f, &req(json!({}), "t2", None)), "peer_invalid");
    assert_eq!(
        code(&f, &req(json!({"tth": hash(&token)}), "t3", None)),
        "peer_invalid"
    );
    // every `oth` entry names a header given, with that value
    let tth = json!({"tth": hash(&txn), "oth": oth});
    assert_eq!(code(&f, &req(tth.clone(), "t4", None)), "peer_invalid");
    assert_eq!(code(&f, &req(tth, "t5", headers("abd"))), "peer_invalid");
}

#[test]
fn every_wit_rule_denies_peer_invalid() {
    let f = Fixture::standard();
    let wl = workload_key("wl");
    let token = alice_token(&f, json!({}));
    let case = |w: String, jti: &str| {
        let proof = wpt(&wl, &w, &token, jti, json!({}));
        code(&f, &with_wimse(&token, &w, &proof))
    };
    assert_eq!(
        case(wit(&f, "b.example", ALICE, &wl, json!({})), "ok"),
        "allow"
    );
    let bad = [
        json!({"aud": AUD}),
        json!({"exp": NOW - 100}),
        json!({"exp": null}),
        json!({"nbf": NOW + 600}),
        json!({"iat": NOW + 600}),
        json!({"iat": NOW - 60, "exp": NOW + 7200}),
        json!({"cnf": null}),
        json!({"cnf": {"jkt": "abc"}}),
        json!({"cnf": {"jwk": {"kty": "EC", "crv": "P-256"}}}),
        json!({"sub": "spiffe://b.example"}),
        json!({"sub": null}),
    ];
    for (i, extra) in bad.iter().enumerate() {
        let w = wit(&f, "b.example", ALICE, &wl, extra.clone());
        assert_eq!(case(w, &format!("b{i}")), "peer_invalid", "{extra}");
    }
    // `cnf.jwk` without `alg`
    let mut jwk = public_jwk(&wl);
    jwk.as_object_mut().unwrap().remove("alg");
    let w = wit(&f, "b.example", ALICE, &wl, json!({"cnf": {"jwk": jwk}}));
    assert_eq!(case(w, "noalg"), "peer_invalid");
    // a private key in `cnf.jwk`
    let mut jwk = wl.to_private_jwk();
    jwk["alg"] = "ES256".into();
    let w = wit(&f, "b.example", ALICE, &wl, json!({"cnf": {"jwk": jwk}}));
    assert_eq!(case(w, "private"), "peer_invalid");
    // signed by another domain's key for a `sub` in b.example: the keys are `sub`'s domain's
    let w = wit(&f, "a.example", ALICE, &wl, json!({}));
    assert_eq!(case(w, "cross"), "peer_invalid");
    // a trust domain the pack does not declare
    let w = wit(&f, "b.example", "spiffe://z.example/x", &wl, json!({}));
    assert_eq!(case(w, "undeclared"), "peer_invalid");
    // `typ` other than `wit+jwt`
    let c = json!({"sub": ALICE, "exp": NOW + 600, "cnf": {"jwk": public_jwk(&wl)}});
    let w = f.typed("b.example", Some("JWT"), c);
    assert_eq!(case(w, "typ"), "peer_invalid");
}

#[test]
fn a_caller_proof_satisfies_required_sender_binding() {
    let f = PackBuilder::default()
        .chain("require_sender_binding true")
        .build();
    let wl = workload_key("wl");
    let token = alice_token(&f, json!({}));
    assert_eq!(
        code(&f, &request(vec![token.clone()])),
        "sender_binding_required"
    );
    let w = wit(&f, "b.example", ALICE, &wl, json!({}));
    let req = with_wimse(&token, &w, &wpt(&wl, &w, &token, "s1", json!({})));
    assert_eq!(code(&f, &req), "allow");
    // and a DPoP-bound token with its proof
    let key = workload_key("client");
    let jkt = B64.encode(key.public().thumbprint());
    let bound = alice_token(&f, json!({"cnf": {"jkt": jkt}}));
    let req = with_dpop(&bound, Some(&dpop(&key, &bound, "d1", json!({}))));
    assert_eq!(code(&f, &req), "allow");
}

// ---------------------------------------------------------------------------------------
// DPoP

#[test]
fn a_dpop_bound_token_needs_its_proof() {
    let f = Fixture::standard();
    let key = workload_key("client");
    let jkt = B64.encode(key.public().thumbprint());
    let token = alice_token(&f, json!({"cnf": {"jkt": jkt}}));
    let (d, verified) = f.verifier.verify_traced(&with_dpop(
        &token,
        Some(&dpop(&key, &token, "a", json!({}))),
    ));
    assert_eq!(outcome(&d), "allow", "{d:?}");
    assert_eq!(verified.caller().unwrap().methods(), [ProofMethod::Dpop]);
    assert_eq!(verified.caller().unwrap().dpop_jkt(), Some(jkt.as_str()));
    // whatever `require_sender_binding` says, no proof is no use
    assert_eq!(code(&f, &with_dpop(&token, None)), "peer_invalid");
    assert_eq!(code(&f, &request(vec![token.clone()])), "peer_invalid");
    // the same proof again
    let again = with_dpop(&token, Some(&dpop(&key, &token, "a", json!({}))));
    assert_eq!(code(&f, &again), "replayed");
    // `htu` is compared without query and fragment
    let q = dpop(&key, &token, "q", json!({"htu": format!("{TARGET}?a=1#f")}));
    assert_eq!(code(&f, &with_dpop(&token, Some(&q))), "allow");
    let bad = [
        json!({"htm": "POST"}),
        json!({"htm": null}),
        json!({"htu": "https://orders.c.example/orders/8"}),
        json!({"htu": null}),
        json!({"iat": NOW - 31}),
        json!({"iat": NOW + 31}),
        json!({"iat": null}),
        json!({"ath": hash("another token")}),
        json!({"ath": null}),
        json!({"jti": null}),
    ];
    for (i, extra) in bad.iter().enumerate() {
        let p = dpop(&key, &token, &format!("b{i}"), extra.clone());
        assert_eq!(
            code(&f, &with_dpop(&token, Some(&p))),
            "peer_invalid",
            "{extra}"
        );
    }
    // another key, even a valid proof of it
    let other = workload_key("other");
    let p = dpop(&other, &token, "o", json!({}));
    assert_eq!(code(&f, &with_dpop(&token, Some(&p))), "peer_invalid");
    // a proof whose `jwk` is not the key that signed it, or holds a private part
    let c = json!({"htm": "GET", "htu": TARGET, "iat": NOW, "jti": "x", "ath": hash(&token)});
    let h = json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": public_jwk(&key)});
    let t = sign_with_header(&other, &h, &c).unwrap();
    assert_eq!(code(&f, &with_dpop(&token, Some(&t))), "peer_invalid");
    let mut private = key.to_private_jwk();
    private["alg"] = "ES256".into();
    let h = json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": private});
    let t = sign_with_header(&key, &h, &c).unwrap();
    assert_eq!(code(&f, &with_dpop(&token, Some(&t))), "peer_invalid");
    let h = json!({"alg": "ES256", "typ": "JWT", "jwk": public_jwk(&key)});
    let t = sign_with_header(&key, &h, &c).unwrap();
    assert_eq!(code(&f, &with_dpop(&token, Some(&t))), "peer_invalid");
    // the request must say its method and target
    let mut req = with_dpop(&token, Some(&dpop(&key, &token, "m", json!({}))));
    req.http_method = None;
    assert_eq!(code(&f, &req), "peer_invalid");
}

#[test]
fn a_jwk_header_is_refused_everywhere_but_a_dpop_proof() {
    let f = Fixture::standard();
    let key = f.key("b.example");
    let header = json!({"alg": "EdDSA", "kid": key.kid(), "typ": "at+jwt",
        "jwk": key.public().to_jwk()});
    let mut c = json!({"sub": "user:alice", "aud": AUD, "iat": NOW - 30, "exp": NOW + 300,
        "scope": "orders:read", "act": act(&[ALICE]), "iss": "https://as.b.example"});
    let t = f.with_header("b.example", header, c.take());
    assert_eq!(code(&f, &request(vec![t])), "malformed_token");
}

#[test]
fn confirmations_custody_cannot_check_make_a_token_unusable() {
    let f = Fixture::standard();
    for cnf in [
        json!({"jwk": {"kty": "OKP"}}),
        json!({"jkt": "a", "x5t#S256": "b"}),
        json!({}),
    ] {
        let t = alice_token(&f, json!({"cnf": cnf}));
        assert_eq!(code(&f, &request(vec![t])), "peer_invalid", "{cnf}");
    }
    // a certificate-bound token with no certificate
    let t = alice_token(&f, json!({"cnf": {"x5t#S256": hash("cert")}}));
    assert_eq!(code(&f, &request(vec![t])), "peer_invalid");
    // `cnf` of the wrong type is a malformed token
    let t = alice_token(&f, json!({"cnf": "jkt"}));
    assert_eq!(code(&f, &request(vec![t])), "malformed_token");
}

#[test]
fn an_upstream_bound_token_cannot_ride_along() {
    // a DPoP-bound origin token passed upstream: its holder is not the caller, so the one
    // proof of the request (the caller's) cannot cover it
    let f = Fixture::standard();
    let key = workload_key("bob");
    let jkt = B64.encode(key.public().thumbprint());
    let mut t0 = custody_tests::t0_claims();
    t0["cnf"] = json!({"jkt": jkt});
    let tokens = vec![f.token("a.example", t0), chain(&f)[1].clone()];
    let d = f.verify(&Request {
        peer: Some(ALICE.into()),
        ..request(tokens)
    });
    assert_eq!(outcome(&d), "peer_invalid", "{d:?}");
    let _ = BOB;
}

// ---------------------------------------------------------------------------------------
// The request's new fields

#[test]
fn proof_fields_are_read_strictly() {
    let f = Fixture::standard();
    let token = alice_token(&f, json!({}));
    let doc = |extra: Value| {
        let mut r = json!({"tokens": [token], "audience": AUD, "action": "orders:read",
            "now": NOW});
        merge(&mut r, extra);
        let d = f.verifier.verify_json(r.to_string().as_bytes()).unwrap();
        outcome(&d)
    };
    assert_eq!(doc(json!({"peer_certificates": []})), "invalid_request");
    assert_eq!(doc(json!({"peer_certificates": [1]})), "invalid_request");
    assert_eq!(doc(json!({"peer_certificates": [""]})), "invalid_request");
    assert_eq!(doc(json!({"wit": 1})), "invalid_request");
    assert_eq!(doc(json!({"wpt": ""})), "invalid_request");
    assert_eq!(doc(json!({"http_method": "GET /"})), "invalid_request");
    assert_eq!(
        doc(json!({"proof_headers": {"X-Id": "a"}})),
        "invalid_request"
    );
    assert_eq!(
        doc(json!({"proof_headers": {"x-id": 1}})),
        "invalid_request"
    );
    assert_eq!(doc(json!({"proof_headers": []})), "invalid_request");
    assert_eq!(doc(json!({"dpops": "x"})), "invalid_request");
    let many: Vec<String> = (0..9).map(|_| "x".to_owned()).collect();
    assert_eq!(doc(json!({"peer_certificates": many})), "invalid_request");
    // fields present but unused change nothing
    assert_eq!(
        doc(json!({"target_uri": TARGET, "http_method": "GET", "proof_headers": {"x-id": "a"}})),
        "allow"
    );
    // and the request round-trips through its JSON form
    let req = Request {
        peer_certificates: vec!["-----BEGIN CERTIFICATE-----".into()],
        wit: Some("w".into()),
        wpt: Some("p".into()),
        dpop: Some("d".into()),
        target_uri: Some(TARGET.into()),
        http_method: Some("GET".into()),
        proof_headers: Some([("x-id".to_owned(), "a".to_owned())].into_iter().collect()),
        ..request(vec![token.clone()])
    };
    let back = Request::from_json(req.to_json().to_string().as_bytes(), &Default::default());
    assert_eq!(back.unwrap(), req);
}

#[test]
fn a_remembered_wit_holds_only_while_its_key_and_its_time_do() {
    let f = Fixture::standard();
    let wl = workload_key("wl");
    let token = alice_token(&f, json!({"exp": NOW + 2000}));
    let w = wit(&f, "b.example", ALICE, &wl, json!({"exp": NOW + 1000}));
    let first = with_wimse(&token, &w, &wpt(&wl, &w, &token, "c1", json!({})));
    assert_eq!(code(&f, &first), "allow");
    // the same WIT again (remembered), with a new proof
    let second = with_wimse(&token, &w, &wpt(&wl, &w, &token, "c2", json!({})));
    assert_eq!(code(&f, &second), "allow");
    // past its `exp` (plus skew) the remembered WIT is expired
    let mut late = with_wimse(
        &token,
        &w,
        &wpt(&wl, &w, &token, "c3", json!({"exp": NOW + 1100})),
    );
    late.now = Some(NOW + 1040);
    assert_eq!(code(&f, &late), "peer_invalid");
    // its key leaves b.example's WIT keys: the remembered WIT verifies nothing any more
    let store = f.verifier.key_store();
    let b = store.index_of("b.example").unwrap();
    let current = store.domain(b).unwrap();
    let material = custody_jose::DomainMaterial {
        tokens: current.tokens().clone(),
        biscuit: current.biscuit().clone(),
        wit: custody_jose::KeySet::new(),
        x509: Vec::new(),
    };
    store.replace_material(b, material, custody_jose::Remote::None);
    let after = with_wimse(&token, &w, &wpt(&wl, &w, &token, "c4", json!({})));
    let d = f.verify(&after);
    assert_eq!(outcome(&d), "peer_invalid");
    assert!(d.reasons[0].message.contains("not a WIT key"), "{d:?}");
}

// ---------------------------------------------------------------------------------------
// The WIMSE draft's own example WIT and WPT (tests/data/wimse, from
// ietf-wg-wimse/draft-ietf-wimse-s2s-protocol; see /work/shared/vectors/SOURCES.md §5)

fn wimse_vector(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/wimse/");
    std::fs::read_to_string(format!("{dir}{name}")).unwrap()
}

#[test]
fn the_wimse_draft_examples_verify_and_their_wimse_id_is_refused() {
    use custody_jose::{decode, parse_jwk, Limits};
    let expected: Value = serde_json::from_str(&wimse_vector("expected.json")).unwrap();
    let (wit, wpt) = (wimse_vector("wit.txt"), wimse_vector("wpt.txt"));
    let limits = Limits::default();
    // the WIT verifies under the draft's Identity Server key, with custody's strict decoder
    let issuer = expected["keys"]["wit_issuer_june5"]
        .as_object()
        .unwrap()
        .clone();
    let issuer = parse_jwk(&issuer, false).unwrap();
    let w = decode(&wit, &limits).unwrap();
    assert_eq!(w.header.typ.as_deref(), Some("wit+jwt"));
    assert!(issuer.verify_with(&w.header.alg, w.signing_input, &w.signature));
    // the WPT verifies under the WIT's `cnf.jwk`, with exactly its `alg`, and binds the WIT
    let cnf = w.claims["cnf"]["jwk"].as_object().unwrap().clone();
    let cnf = parse_jwk(&cnf, true).unwrap();
    let p = decode(&wpt, &limits).unwrap();
    assert_eq!(Some(p.header.alg.as_str()), cnf.alg());
    assert!(cnf.verify_with(&p.header.alg, p.signing_input, &p.signature));
    assert_eq!(p.claims["wth"], hash(&wit));
    assert_eq!(p.claims["ath"], hash("16_mAd0GiwaZokU26_0902100"));
    // a changed byte of either signature is refused
    let mut sig = p.signature.clone();
    sig[0] ^= 1;
    assert!(!cnf.verify_with(&p.header.alg, p.signing_input, &sig));
    // custody's `peer` is a SPIFFE ID: the example's `wimse://` subject proves none, whatever
    // its signature (DESIGN.md's reading; the README says so)
    let f = Fixture::standard();
    let token = alice_token(&f, json!({}));
    let mut req = with_wimse(&token, &wit, &wpt);
    req.target_uri = Some("https://workload.example.com/path".into());
    req.now = Some(1_745_509_800);
    req.tokens = vec![f.token(
        "b.example",
        json!({"sub": "user:carol", "aud": AUD, "iat": 1_745_509_700, "exp": 1_745_509_900,
            "scope": "orders:read", "act": act(&[ALICE])}),
    )];
    let d = f.verify(&req);
    assert_eq!(outcome(&d), "peer_invalid");
    assert!(d.reasons[0].message.contains("wimse://"), "{d:?}");
}
