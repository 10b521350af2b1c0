//! Every chain rule and reason code of DESIGN.md, each with a passing and a failing case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::sync::Arc;

use custody_tests::*;
use custody_verifier::{Decision, Request, ResourceRef, Verifier, VerifierOptions};
use serde_json::{json, Value};

/// Decides `req` three ways that must agree exactly: the fixture's verifier (token cache and
/// Cedar memo on) cold, the same verifier again (every token and request now remembered),
/// and a verifier on the same pack with both off.
fn decide(f: &Fixture, req: &Request) -> Decision {
    let first = f.verifier.verify(req);
    let again = f.verifier.verify(req);
    let off = VerifierOptions {
        sig_cache_entries: 0,
        cedar_memo_entries: 0,
        ..VerifierOptions::default()
    };
    let uncached = Verifier::with_options(Arc::clone(f.verifier.pack()), off).verify(req);
    assert_eq!(
        again, first,
        "the same request again (cached) decides otherwise"
    );
    assert_eq!(
        uncached, first,
        "a verifier without caches decides otherwise"
    );
    first
}

fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

/// A single token from b.example: Alice-agent acting for user Carol of b.example.
fn single_claims() -> Value {
    json!({
        "sub": "user:carol", "aud": AUD, "iat": NOW - 10, "exp": NOW + 300,
        "scope": "orders:read", "act": {"sub": ALICE},
    })
}

fn single(f: &Fixture, patch: Value) -> Request {
    request(vec![f.token("b.example", with(single_claims(), patch))])
}

#[test]
fn baseline_allows() {
    let f = Fixture::standard();
    let d = decide(&f, &request(chain(&f)));
    assert!(d.is_allowed(), "{:?}", d.reasons);
    let c = d.chain.unwrap();
    assert_eq!(c.origin, "a.example|user:alice");
    assert_eq!(c.actors, vec![BOB, ALICE]);
    assert_eq!(c.domains, vec!["a.example", "b.example", "c.example"]);
    assert_eq!(c.scopes, vec!["orders:read"]);
    assert_eq!(c.depth, 2);
    assert_eq!(c.txn, "txn-1");
    assert!(c.cross_domain);
    assert!(d.policies.is_empty());

    let d = decide(&f, &single(&f, json!({})));
    assert!(d.is_allowed(), "{:?}", d.reasons);
}

#[test]
fn no_actor_token_has_the_subject_as_principal() {
    let f = PackBuilder::default()
        .cedar(r#"permit(principal == User::"b.example|user:carol", action, resource);"#)
        .build();
    let d = decide(&f, &single(&f, json!({"act": null})));
    assert!(d.is_allowed(), "{:?}", d.reasons);
    let c = d.chain.unwrap();
    assert_eq!(c.depth, 0);
    assert_eq!(c.domains, vec!["b.example", "c.example"]);
    assert!(!c.cross_domain || c.domains.len() > 1);
    // client_id as the actor when it is a SPIFFE ID.
    let d = decide(&f, &single(&f, json!({"act": null, "client_id": ALICE})));
    assert_eq!(outcome(&d), "policy_denied");
    assert_eq!(d.chain.unwrap().actors, vec![ALICE]);
}

#[test]
fn invalid_request_shapes() {
    let f = Fixture::standard();
    let v = &f.verifier;
    let deny = |doc: &str| outcome(&v.verify_json(doc.as_bytes()).unwrap());
    let good = serde_json::to_string(&request(chain(&f)).to_json()).unwrap();
    assert_eq!(deny(&good), "allow");
    let t = &chain(&f)[0];
    for doc in [
        r#"{"tokens": [], "audience": "x", "action": "y"}"#.to_owned(),
        r#"{"audience": "x", "action": "y"}"#.to_owned(),
        format!(r#"{{"tokens": ["{t}"], "action": "y"}}"#),
        format!(r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "peers": "z"}}"#),
        format!(r#"{{"tokens": ["{t}"], "audience": "x", "audience": "x", "action": "y"}}"#),
        format!(r#"{{"tokens": ["{t}"], "audience": 7, "action": "y"}}"#),
        format!(r#"{{"tokens": "{t}", "audience": "x", "action": "y"}}"#),
        format!(r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "now": -1}}"#),
        format!(r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "now": 1.5}}"#),
        format!(
            r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "context": {{"a": null}}}}"#
        ),
        format!(
            r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "context": {{"a": 1.5}}}}"#
        ),
        format!(
            r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "context": {{"__entity": {{}}}}}}"#
        ),
        format!(
            r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "context": {{"a": {{"b": 1, "b": 2}}}}}}"#
        ),
        format!(r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "context": []}}"#),
        format!(
            r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "resource": {{"type": "9x", "id": "1"}}}}"#
        ),
        format!(
            r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "resource": {{"type": "T"}}}}"#
        ),
        format!(r#"{{"tokens": ["{t}"], "audience": "", "action": "y"}}"#),
        format!(
            r#"{{"tokens": ["{t}"], "audience": "x", "action": "y", "context": {}}}"#,
            "[".repeat(15) + &"]".repeat(15)
        ),
        "[1]".to_owned(),
    ] {
        assert_eq!(deny(&doc), "invalid_request", "{doc}");
    }
    // Nesting: the request is level 1, so context may nest to level 16 in all.
    let ok_nest = format!(r#"{{"a": {}1{}}}"#, "[".repeat(13), "]".repeat(13));
    let mut req = request(chain(&f));
    req.context = Some(serde_json::from_str(&ok_nest).unwrap());
    let doc = serde_json::to_string(&req.to_json()).unwrap();
    assert_eq!(deny(&doc), "allow");
    // Seventeen tokens.
    let mut req = request(chain(&f));
    req.tokens = vec![req.tokens[0].clone(); 17];
    assert_eq!(outcome(&decide(&f, &req)), "invalid_request");
    // Unreadable JSON is not a decision at all.
    assert!(v.verify_json(b"{not json").is_err());
}

#[test]
fn invalid_spiffe_ids() {
    let f = Fixture::standard();
    let mut req = request(chain(&f));
    req.peer = Some("spiffe://b.example".into());
    assert_eq!(outcome(&decide(&f, &req)), "invalid_spiffe_id");
    req.peer = Some("spiffe://B.example/agent/alice".into());
    assert_eq!(outcome(&decide(&f, &req)), "invalid_spiffe_id");
    req.peer = Some(ALICE.into());
    assert_eq!(outcome(&decide(&f, &req)), "allow");

    for bad in [
        "spiffe://b.example/agent/al%69ce",
        "spiffe://b.exаmple/agent/alice",
        "SPIFFE://b.example/agent/alice",
        "spiffe://b.example/agent/alice/",
        "bob",
    ] {
        let d = decide(&f, &single(&f, json!({"act": {"sub": bad}})));
        assert_eq!(outcome(&d), "invalid_spiffe_id", "{bad}");
        assert_eq!(hop(&d), Some(0));
    }
    let d = decide(&f, &single(&f, json!({"sub": "Spiffe://b.example/x"})));
    assert_eq!(outcome(&d), "invalid_spiffe_id");
    let d = decide(&f, &single(&f, json!({"client_id": "spiffe://b.example"})));
    assert_eq!(outcome(&d), "invalid_spiffe_id");
    // Actor index as hop for a single token.
    let d = decide(
        &f,
        &single(&f, json!({"act": act(&["spiffe://b.example/x/", ALICE])})),
    );
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("invalid_spiffe_id", Some(0))
    );
    let d = decide(
        &f,
        &single(
            &f,
            json!({"act": act(&["spiffe://b.example/x", "spiffe://b.example/y/"])}),
        ),
    );
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("invalid_spiffe_id", Some(1))
    );
}

#[test]
fn malformed_tokens() {
    let f = Fixture::standard();
    let good = f.token("b.example", single_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |v: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    };
    let header = r#"{"alg":"EdDSA","kid":"b.example-k1","typ":"at+jwt"}"#;
    for bad in [
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.x"),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64("not json"), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"EdDSA","alg":"EdDSA","kid":"b.example-k1"}"#),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            b64(header),
            b64(r#"{"sub":"a","sub":"b"}"#),
            parts[2]
        ),
        format!("{}.{}.{}", b64(header), b64("[1,2]"), parts[2]),
        format!("{}.{}.{}", b64(header), b64(&"[".repeat(200)), parts[2]),
        format!("{} .{}.{}", parts[0], parts[1], parts[2]),
        String::new(),
    ] {
        let d = decide(&f, &request(vec![bad.clone()]));
        assert_eq!(outcome(&d), "malformed_token", "{bad}");
    }
    // Duplicate keys inside `act`, signed properly.
    let dup_payload = format!(
        r#"{{"iss":"https://as.b.example","sub":"u","aud":"{AUD}","iat":{},"exp":{},"scope":"orders:read","act":{{"sub":"{ALICE}","sub":"{ALICE}"}}}}"#,
        NOW,
        NOW + 60
    );
    let input = format!("{}.{}", b64(header), b64(&dup_payload));
    let sig = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(f.key("b.example").sign_bytes(input.as_bytes()))
    };
    assert_eq!(
        outcome(&decide(&f, &request(vec![format!("{input}.{sig}")]))),
        "malformed_token"
    );
    for name in ["crit", "jku", "x5u", "jwk", "x5c", "b64", "cty"] {
        let h = json!({"alg": "EdDSA", "kid": "b.example-k1", name: ["x"]});
        let t = f.with_header(
            "b.example",
            h,
            with(single_claims(), json!({"iss": issuer("b.example")})),
        );
        assert_eq!(
            outcome(&decide(&f, &request(vec![t]))),
            "malformed_token",
            "{name}"
        );
    }
    for patch in [
        json!({"exp": "1767225900"}),
        json!({"exp": 1e30}),
        json!({"exp": -5}),
        json!({"iat": 1.5}),
        json!({"aud": 7}),
        json!({"aud": [AUD, 7]}),
        json!({"scope": ["orders:read"]}),
        json!({"sub": 5}),
        json!({"act": "spiffe://b.example/agent/alice"}),
        json!({"act": {"sub": ALICE, "exp": NOW}}),
        json!({"txn": 1}),
        json!({"nbf": "soon"}),
    ] {
        assert_eq!(
            outcome(&decide(&f, &single(&f, patch.clone()))),
            "malformed_token",
            "{patch}"
        );
    }
}

#[test]
fn token_size_limit() {
    let f = Fixture::standard();
    let mut claims = single_claims();
    claims["pad"] = "".into();
    let base = f.token("b.example", claims.clone()).len();
    // Base64 grows by 4/3: find a padding that lands exactly on the limit, then one past it.
    let mut exact = None;
    for n in 0..8192 {
        claims["pad"] = "x".repeat(n).into();
        let t = f.token("b.example", claims.clone());
        if t.len() == 8192 {
            exact = Some(t.clone());
        }
        if t.len() > 8192 {
            assert_eq!(outcome(&decide(&f, &request(vec![t]))), "token_too_large");
            break;
        }
    }
    assert!(base < 8192);
    let exact = exact.expect("a token of exactly 8192 bytes");
    assert_eq!(outcome(&decide(&f, &request(vec![exact]))), "allow");
    assert_eq!(
        outcome(&decide(&f, &request(vec!["x".repeat(1 << 20)]))),
        "token_too_large"
    );
}

#[test]
fn token_types() {
    let f = Fixture::standard();
    let c = single_claims();
    for typ in [
        None,
        Some("at+jwt"),
        Some("JWT"),
        Some("application/at+jwt"),
        Some("AT+JWT"),
        Some("jwt"),
    ] {
        let t = f.typed("b.example", typ, c.clone());
        assert_eq!(outcome(&decide(&f, &request(vec![t]))), "allow", "{typ:?}");
    }
    for typ in [
        "wit+jwt",
        "JOSE",
        "at+jwt; x=y",
        "application/",
        "txn_token",
    ] {
        let t = f.typed("b.example", Some(typ), c.clone());
        assert_eq!(
            outcome(&decide(&f, &request(vec![t]))),
            "wrong_token_type",
            "{typ}"
        );
    }
    // A Txn-Token where an access token belongs, and the reverse.
    let mut chain = chain(&f);
    chain[1] = f.typed("b.example", Some("txntoken+jwt"), t1_claims());
    let d = decide(&f, &request(chain));
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("wrong_token_type", Some(1))
    );
    let mut req = request(self::chain(&f));
    req.txn_token = Some(f.token("c.example", json!({"sub": "user:alice", "txn": "txn-1"})));
    let d = decide(&f, &req);
    assert_eq!((outcome(&d).as_str(), hop(&d)), ("wrong_token_type", None));
}

#[test]
fn algorithms() {
    let f = Fixture::standard();
    let claims = with(single_claims(), json!({"iss": issuer("b.example")}));
    for alg in ["EdDSA", "Ed25519"] {
        let t = f.with_header(
            "b.example",
            json!({"alg": alg, "kid": "b.example-k1"}),
            claims.clone(),
        );
        assert_eq!(outcome(&decide(&f, &request(vec![t]))), "allow", "{alg}");
    }
    for alg in ["none", "HS256", "ES256", "RS256", "eddsa", "Ed448"] {
        let t = f.with_header(
            "b.example",
            json!({"alg": alg, "kid": "b.example-k1"}),
            claims.clone(),
        );
        assert_eq!(
            outcome(&decide(&f, &request(vec![t]))),
            "alg_not_allowed",
            "{alg}"
        );
    }
    let t = f.with_header("b.example", json!({"kid": "b.example-k1"}), claims.clone());
    assert_eq!(outcome(&decide(&f, &request(vec![t]))), "alg_not_allowed");
    // alg none with an empty signature.
    let t = f.with_header("b.example", json!({"alg": "none"}), claims);
    let unsigned = format!("{}.", t.rsplit_once('.').unwrap().0);
    assert_eq!(
        outcome(&decide(&f, &request(vec![unsigned]))),
        "alg_not_allowed"
    );
}

#[test]
fn issuers_and_keys() {
    let f = Fixture::standard();
    let d = decide(&f, &single(&f, json!({"iss": "https://as.evil.example"})));
    assert_eq!(outcome(&d), "unknown_issuer");
    let d = decide(&f, &single(&f, json!({"iss": "https://AS.b.example"})));
    assert_eq!(outcome(&d), "unknown_issuer");
    let no_iss = custody_jose::sign(f.key("b.example"), Some("at+jwt"), &single_claims()).unwrap();
    assert_eq!(
        outcome(&decide(&f, &request(vec![no_iss]))),
        "missing_claim"
    );
    let claims = with(single_claims(), json!({"iss": issuer("b.example")}));
    let t = f.with_header("b.example", json!({"alg": "EdDSA"}), claims.clone());
    assert_eq!(outcome(&decide(&f, &request(vec![t]))), "unknown_key");
    // A kid that exists, but in another domain's key set, signed with that key.
    let t = f.with_header(
        "a.example",
        json!({"alg": "EdDSA", "kid": "a.example-k1"}),
        claims.clone(),
    );
    assert_eq!(outcome(&decide(&f, &request(vec![t]))), "unknown_key");
    let t = f.with_header(
        "b.example",
        json!({"alg": "EdDSA", "kid": "B.example-k1"}),
        claims.clone(),
    );
    assert_eq!(outcome(&decide(&f, &request(vec![t]))), "unknown_key");
    // b's kid, signed with a's key.
    let t = f.with_header(
        "a.example",
        json!({"alg": "EdDSA", "kid": "b.example-k1"}),
        claims,
    );
    assert_eq!(outcome(&decide(&f, &request(vec![t]))), "bad_signature");
}

#[test]
fn signatures() {
    let f = Fixture::standard();
    let good = f.token("b.example", single_claims());
    let (input, sig) = good.rsplit_once('.').unwrap();
    // Tampered payload.
    let other = f.token(
        "b.example",
        with(
            single_claims(),
            json!({"scope": "orders:read orders:write"}),
        ),
    );
    let (other_input, _) = other.rsplit_once('.').unwrap();
    assert_eq!(
        outcome(&decide(&f, &request(vec![format!("{other_input}.{sig}")]))),
        "bad_signature"
    );
    // Truncated and empty signatures.
    assert_eq!(
        outcome(&decide(&f, &request(vec![format!("{input}.")]))),
        "bad_signature"
    );
    assert_eq!(
        outcome(&decide(
            &f,
            &request(vec![format!("{input}.{}", &sig[..40])])
        )),
        "bad_signature"
    );
    assert_eq!(outcome(&decide(&f, &request(vec![good]))), "allow");
}

#[test]
fn missing_claims() {
    let f = Fixture::standard();
    for name in ["sub", "iat", "exp", "aud"] {
        let d = decide(&f, &single(&f, json!({ name: null })));
        assert_eq!(outcome(&d), "missing_claim", "{name}");
        assert_eq!(hop(&d), Some(0));
    }
    let d = decide(&f, &single(&f, json!({"act": {"iss": "x"}})));
    assert_eq!(outcome(&d), "missing_claim");
    // An explicit chain needs txn on every token.
    let mut c0 = t0_claims();
    c0.as_object_mut().unwrap().remove("txn");
    let d = decide(
        &f,
        &request(vec![
            f.token("a.example", c0),
            f.token("b.example", t1_claims()),
        ]),
    );
    assert_eq!((outcome(&d).as_str(), hop(&d)), ("missing_claim", Some(0)));
    let mut c1 = t1_claims();
    c1.as_object_mut().unwrap().remove("txn");
    let d = decide(
        &f,
        &request(vec![
            f.token("a.example", t0_claims()),
            f.token("b.example", c1),
        ]),
    );
    assert_eq!((outcome(&d).as_str(), hop(&d)), ("missing_claim", Some(1)));
    // An absent scope grants nothing.
    let d = decide(&f, &single(&f, json!({"scope": null})));
    assert_eq!(outcome(&d), "scope_missing");
}

#[test]
fn times_around_the_skew() {
    let f = Fixture::standard();
    let s = 30;
    let at = |patch: Value| outcome(&decide(&f, &single(&f, patch)));
    assert_eq!(at(json!({"exp": NOW - s})), "expired");
    assert_eq!(at(json!({"exp": NOW - s + 1})), "allow");
    assert_eq!(at(json!({"nbf": NOW + s + 1})), "not_yet_valid");
    assert_eq!(at(json!({"nbf": NOW + s})), "allow");
    assert_eq!(at(json!({"iat": NOW + s + 1})), "issued_in_future");
    assert_eq!(at(json!({"iat": NOW + s})), "allow");
    assert_eq!(
        at(json!({"iat": NOW - 100, "exp": NOW - 100 + 3601})),
        "lifetime_too_long"
    );
    assert_eq!(
        at(json!({"iat": NOW - 100, "exp": NOW - 100 + 3600})),
        "allow"
    );
    // The pack's skew and lifetime are used.
    let f = PackBuilder::default()
        .chain("clock_skew 0s\n max_lifetime 5m")
        .build();
    let at = |patch: Value| outcome(&decide(&f, &single(&f, patch)));
    assert_eq!(at(json!({"exp": NOW})), "expired");
    assert_eq!(at(json!({"exp": NOW + 1})), "allow");
    assert_eq!(
        at(json!({"iat": NOW - 1, "exp": NOW + 300})),
        "lifetime_too_long"
    );
}

#[test]
fn audience() {
    let f = Fixture::standard();
    let at = |aud: Value| outcome(&decide(&f, &single(&f, json!({ "aud": aud }))));
    assert_eq!(at(json!(AUD)), "allow");
    assert_eq!(at(json!(["spiffe://c.example/billing", AUD])), "allow");
    assert_eq!(at(json!("spiffe://c.example/billing")), "audience_mismatch");
    assert_eq!(
        at(json!([
            "spiffe://c.example/orders2",
            "spiffe://c.example/order"
        ])),
        "audience_mismatch"
    );
    assert_eq!(at(json!("spiffe://c.example/Orders")), "audience_mismatch");
    assert_eq!(at(json!("SPIFFE://c.example/orders")), "audience_mismatch");
    assert_eq!(at(json!([])), "audience_mismatch");
}

#[test]
fn explicit_chain_links() {
    let f = Fixture::standard();
    let run = |c0: Value, c1: Value| {
        let d = decide(
            &f,
            &request(vec![f.token("a.example", c0), f.token("b.example", c1)]),
        );
        (outcome(&d), hop(&d))
    };
    let hop1 = |code: &str| (code.to_owned(), Some(1));
    assert_eq!(run(t0_claims(), t1_claims()), ("allow".to_owned(), None));
    assert_eq!(
        run(t0_claims(), with(t1_claims(), json!({"txn": "txn-2"}))),
        hop1("txn_mismatch")
    );
    assert_eq!(
        run(
            t0_claims(),
            with(t1_claims(), json!({"sub": "user:mallory"}))
        ),
        hop1("subject_mismatch")
    );
    // Actor rewriting: t1 replaces Bob with someone else.
    let rewritten = with(
        t1_claims(),
        json!({"act": act(&["spiffe://a.example/agent/eve", ALICE])}),
    );
    assert_eq!(run(t0_claims(), rewritten), hop1("chain_broken"));
    // t1 adds two actors at once.
    let two = with(
        t1_claims(),
        json!({"act": act(&[BOB, "spiffe://b.example/agent/x", ALICE])}),
    );
    assert_eq!(run(t0_claims(), two), hop1("chain_broken"));
    // t0 was not issued to Alice.
    assert_eq!(
        run(
            with(
                t0_claims(),
                json!({"aud": "spiffe://b.example/agent/other"})
            ),
            t1_claims()
        ),
        hop1("chain_broken")
    );
    // t1 issued before t0 (beyond the skew), and just within it.
    assert_eq!(
        run(
            t0_claims(),
            with(t1_claims(), json!({"iat": NOW - 60 - 31}))
        ),
        hop1("chain_broken")
    );
    assert_eq!(
        run(
            t0_claims(),
            with(t1_claims(), json!({"iat": NOW - 60 - 30}))
        ),
        ("allow".to_owned(), None)
    );
    assert_eq!(
        run(
            t0_claims(),
            with(t1_claims(), json!({"scope": "orders:read orders:admin"}))
        ),
        hop1("scope_escalation")
    );
    assert_eq!(
        run(
            with(t0_claims(), json!({"scope": "orders:read"})),
            with(t1_claims(), json!({"scope": "orders:read orders:write"}))
        ),
        hop1("scope_escalation")
    );
    assert_eq!(
        run(t0_claims(), with(t1_claims(), json!({"exp": NOW + 601}))),
        hop1("expiry_extended")
    );
    assert_eq!(
        run(t0_claims(), with(t1_claims(), json!({"exp": NOW + 600}))),
        ("allow".to_owned(), None)
    );
    // client_id must be the current actor when act is present.
    assert_eq!(
        run(t0_claims(), with(t1_claims(), json!({"client_id": BOB}))),
        hop1("chain_broken")
    );
    assert_eq!(
        run(t0_claims(), with(t1_claims(), json!({"client_id": ALICE}))),
        ("allow".to_owned(), None)
    );
    assert_eq!(
        run(
            t0_claims(),
            with(t1_claims(), json!({"client_id": "orders-app"}))
        ),
        ("allow".to_owned(), None)
    );
}

#[test]
fn scope_is_checked_on_the_presented_token() {
    let f = Fixture::standard();
    let mut req = request(chain(&f));
    req.action = "orders:write".into();
    let d = decide(&f, &req);
    assert_eq!((outcome(&d).as_str(), hop(&d)), ("scope_missing", Some(1)));
    let d = decide(
        &f,
        &single(&f, json!({"scope": "  orders:read  orders:write "})),
    );
    assert_eq!(outcome(&d), "allow");
    assert_eq!(d.chain.unwrap().scopes, vec!["orders:read", "orders:write"]);
}

/// Long scope lists (as many distinct items as an 8 KiB token holds, about a thousand) are
/// deduplicated in order and checked against the previous hop's, the first widening item
/// named, as short ones are. (They go through a hash set, `crates/verifier/src/items.rs`; the
/// cost is the `scope_lists` group of the `verify` bench.)
#[test]
fn long_scope_lists_follow_the_same_rules() {
    let f = Fixture::standard();
    let items: Vec<String> = (0..1000).map(|i| format!("s{i:03}")).collect();
    let list = |items: &[String]| format!("orders:read {}", items.join(" "));
    let run = |t0: String, t1: String| {
        let d = decide(
            &f,
            &request(vec![
                f.token("a.example", with(t0_claims(), json!({ "scope": t0 }))),
                f.token("b.example", with(t1_claims(), json!({ "scope": t1 }))),
            ]),
        );
        (outcome(&d), hop(&d), d)
    };
    // the same long list on both hops, the second in reverse with fifty items twice
    let mut twice: Vec<String> = items.iter().rev().cloned().collect();
    twice.extend(items[..50].iter().cloned());
    let (o, _, d) = run(list(&items), list(&twice));
    assert_eq!(o, "allow", "{:?}", d.reasons);
    let scopes = d.chain.unwrap().scopes;
    assert_eq!(scopes.len(), 1001);
    assert_eq!(scopes[1], "s999");
    assert_eq!(scopes[1000], "s000");
    // one item the first hop lacks, deep in the list: named, however long the lists
    let mut wider = items.clone();
    wider.insert(700, "orders:admin".into());
    wider.insert(900, "orders:delete".into());
    let (o, h, d) = run(list(&items), list(&wider));
    assert_eq!((o.as_str(), h), ("scope_escalation", Some(1)));
    assert!(
        d.reasons[0].message.contains("`orders:admin`"),
        "{}",
        d.reasons[0].message
    );
    // a narrower second hop is fine
    let (o, _, _) = run(list(&items), list(&items[..10]));
    assert_eq!(o, "allow");
}

#[test]
fn depth_and_loops() {
    let f = PackBuilder::default().chain("max_depth 2").build();
    let b = |n: &str| format!("spiffe://b.example/agent/{n}");
    let (x, y, z) = (b("x"), b("y"), b("z"));
    let d = decide(&f, &single(&f, json!({"act": act(&[&x, &y])})));
    assert_eq!(outcome(&d), "allow");
    let d = decide(&f, &single(&f, json!({"act": act(&[&x, &y, &z])})));
    assert_eq!((outcome(&d).as_str(), hop(&d)), ("depth_exceeded", Some(2)));
    let f = Fixture::standard();
    let d = decide(&f, &single(&f, json!({"act": act(&[&x, &y, &x])})));
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("delegation_loop", Some(2))
    );
    // act nesting beyond the token limit (8) is refused before anything else.
    let nine: Vec<String> = (0..9).map(|i| b(&format!("n{i}"))).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    let d = decide(&f, &single(&f, json!({"act": act(&nine)})));
    assert_eq!(outcome(&d), "depth_exceeded");
}

#[test]
fn federation_path() {
    let f = Fixture::standard();
    // A compromised agent in d.example pivots towards c: no d -> c (or a -> d) rule.
    let c1 = with(t1_claims(), json!({"act": act(&[BOB, MALLORY])}));
    let c0 = with(t0_claims(), json!({"aud": MALLORY}));
    let d = decide(
        &f,
        &request(vec![f.token("a.example", c0), f.token("d.example", c1)]),
    );
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("domain_not_federated", Some(1))
    );
    // Single token from d.example straight to c.
    let d = decide(
        &f,
        &request(vec![f.token(
            "d.example",
            with(single_claims(), json!({"act": {"sub": MALLORY}})),
        )]),
    );
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("domain_not_federated", None)
    );
    // A federation rule that does not carry the action.
    let f = PackBuilder::default()
        .no_federation()
        .federate("a.example", "b.example", r#"["orders:read"]"#)
        .federate("b.example", "c.example", r#"["orders:write"]"#)
        .build();
    let d = decide(&f, &request(chain(&f)));
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("federation_scope_denied", None)
    );
    let f = PackBuilder::default()
        .no_federation()
        .federate("a.example", "b.example", r#"["orders:write"]"#)
        .federate("b.example", "c.example", r#"["*"]"#)
        .build();
    let d = decide(&f, &request(chain(&f)));
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("federation_scope_denied", Some(1))
    );
    // Federation is not transitive.
    let f = PackBuilder::default()
        .no_federation()
        .federate("a.example", "b.example", r#"["*"]"#)
        .build();
    assert_eq!(
        outcome(&decide(&f, &request(chain(&f)))),
        "domain_not_federated"
    );
    // Too many domains.
    let f = PackBuilder::default().chain("max_domains 2").build();
    let d = decide(&f, &request(chain(&f)));
    assert_eq!((outcome(&d).as_str(), hop(&d)), ("too_many_domains", None));
    assert_eq!(outcome(&decide(&f, &single(&f, json!({})))), "allow");
}

#[test]
fn vouching() {
    let f = Fixture::standard();
    // b.example vouches for Bob of a.example with no token of a.example in the chain.
    let d = decide(
        &f,
        &single(&f, json!({"act": act(&[BOB, ALICE]), "aud": AUD})),
    );
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("issuer_not_in_chain", Some(0))
    );
    // b.example issues a token whose current actor is of a.example.
    let d = decide(
        &f,
        &request(vec![f.token(
            "b.example",
            with(
                single_claims(),
                json!({"act": {"sub": "spiffe://b.example/agent/x"}, "sub": "user:carol"}),
            ),
        )]),
    );
    assert_eq!(outcome(&d), "allow");
    let t = f.token(
        "b.example",
        json!({"sub": "user:alice", "aud": AUD, "iat": NOW, "exp": NOW + 60,
        "scope": "orders:read", "act": act(&["spiffe://b.example/agent/x", BOB])}),
    );
    let d = decide(&f, &request(vec![t]));
    // Path b -> a -> c: a -> c is not federated, which is found first.
    assert_eq!(outcome(&d), "domain_not_federated");
    let f2 = PackBuilder::default()
        .federate("b.example", "a.example", r#"["*"]"#)
        .federate("a.example", "c.example", r#"["*"]"#)
        .build();
    let t = f2.token(
        "b.example",
        json!({"sub": "user:alice", "aud": AUD, "iat": NOW, "exp": NOW + 60,
        "scope": "orders:read", "act": act(&["spiffe://b.example/agent/x", BOB])}),
    );
    let d = decide(&f2, &request(vec![t]));
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("issuer_not_in_chain", Some(0))
    );
    // A SPIFFE subject of another domain.
    let d = decide(
        &f,
        &single(&f, json!({"sub": "spiffe://a.example/user/alice"})),
    );
    assert_eq!(outcome(&d), "issuer_not_in_chain");
    let d = decide(
        &f,
        &single(&f, json!({"sub": "spiffe://b.example/user/carol"})),
    );
    assert_eq!(outcome(&d), "allow");
    // The local domain may vouch for anyone on the path.
    let t = f.token(
        "c.example",
        json!({"sub": "spiffe://a.example/user/alice", "aud": AUD, "iat": NOW, "exp": NOW + 60,
        "scope": "orders:read", "act": act(&[BOB, ALICE])}),
    );
    assert_eq!(outcome(&decide(&f, &request(vec![t]))), "allow");
    // An issuer off the path: d.example issues the origin token of an a -> b chain.
    let c0 = t0_claims();
    let t0 = f.token(
        "d.example",
        with(
            c0,
            json!({"act": {"sub": "spiffe://d.example/agent/m"}, "aud": ALICE}),
        ),
    );
    let c1 = with(
        t1_claims(),
        json!({"act": act(&["spiffe://d.example/agent/m", ALICE])}),
    );
    let d = decide(&f, &request(vec![t0, f.token("b.example", c1)]));
    assert_eq!(outcome(&d), "domain_not_federated");
}

#[test]
fn sender_binding() {
    let f = Fixture::standard();
    let mut req = request(chain(&f));
    req.peer = Some(BOB.into());
    let d = decide(&f, &req);
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("sender_mismatch", Some(1))
    );
    req.peer = Some(ALICE.into());
    assert_eq!(outcome(&decide(&f, &req)), "allow");
    // No actor at all: any peer is a mismatch.
    let mut req = single(&f, json!({"act": null}));
    req.peer = Some(ALICE.into());
    assert_eq!(outcome(&decide(&f, &req)), "sender_mismatch");
    let f = PackBuilder::default()
        .chain("require_sender_binding true")
        .build();
    let mut req = request(chain(&f));
    let d = decide(&f, &req);
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("sender_binding_required", Some(1))
    );
    req.peer = Some(ALICE.into());
    assert_eq!(outcome(&decide(&f, &req)), "allow");
}

fn txn_claims() -> Value {
    json!({"sub": "user:alice", "aud": "c.example", "txn": "txn-1", "scope": "orders:read",
        "req_wl": "spiffe://c.example/gateway", "iat": NOW - 5, "exp": NOW + 120})
}

#[test]
fn txn_token_alongside() {
    let f = Fixture::standard();
    let mut req = request(chain(&f));
    req.txn_token = Some(f.txn_token(txn_claims()));
    req.peer = Some("spiffe://c.example/gateway".into());
    let d = decide(&f, &req);
    assert!(d.is_allowed(), "{:?}", d.reasons);
    // The caller is the Txn-Token's last requesting workload, not the chain's current actor.
    req.peer = Some(ALICE.into());
    let d = decide(&f, &req);
    assert_eq!((outcome(&d).as_str(), hop(&d)), ("sender_mismatch", None));
    req.peer = Some("spiffe://c.example/gateway".into());
    let run = |patch: Value| {
        let mut r = req.clone();
        r.txn_token = Some(f.txn_token(with(txn_claims(), patch)));
        let d = decide(&f, &r);
        (outcome(&d), hop(&d))
    };
    let null = |c: &str| (c.to_owned(), None);
    assert_eq!(run(json!({"aud": "b.example"})), null("audience_mismatch"));
    assert_eq!(run(json!({"sub": "user:bob"})), null("subject_mismatch"));
    assert_eq!(run(json!({"txn": "txn-9"})), null("txn_mismatch"));
    assert_eq!(run(json!({"scope": "orders:write"})), null("scope_missing"));
    for name in ["txn", "sub", "scope", "req_wl", "iat", "exp"] {
        assert_eq!(run(json!({ name: null })), null("missing_claim"), "{name}");
    }
    assert_eq!(run(json!({"req_wl": ""})), null("missing_claim"));
    assert_eq!(
        run(json!({"req_wl": "spiffe://c.example"})),
        null("invalid_spiffe_id")
    );
    assert_eq!(
        run(json!({"req_wl": ["spiffe://c.example/a", "spiffe://c.example/gateway"]})),
        ("allow".to_owned(), None)
    );
    assert_eq!(
        run(json!({"req_wl": "spiffe://c.example/a, spiffe://c.example/gateway"})),
        ("allow".to_owned(), None)
    );
    assert_eq!(run(json!({"exp": NOW - 31})), null("expired"));
    // A Txn-Token issued by another domain.
    let mut r = req.clone();
    r.txn_token = Some(f.typed("b.example", Some("txntoken+jwt"), txn_claims()));
    assert_eq!(outcome(&decide(&f, &r)), "issuer_not_in_chain");
    // The origin token must carry the txn the Txn-Token continues.
    let mut c0 = t0_claims();
    c0.as_object_mut().unwrap().remove("txn");
    let mut r = request(vec![f.token(
        "b.example",
        with(single_claims(), json!({"sub": "user:alice"})),
    )]);
    r.txn_token = req.txn_token.clone();
    r.peer = req.peer.clone();
    let d = decide(&f, &r);
    assert_eq!((outcome(&d).as_str(), hop(&d)), ("missing_claim", Some(0)));
}

#[test]
fn txn_token_replacement_chain() {
    let f = Fixture::standard();
    let gw = "spiffe://c.example/gateway";
    let svc = "spiffe://c.example/orders-api";
    let t0 = || {
        with(
            txn_claims(),
            json!({"tctx": {"amount": 100}, "scope": "orders:read orders:write"}),
        )
    };
    let t1 = || {
        with(
            txn_claims(),
            json!({"tctx": {"amount": 100, "extra": true}, "req_wl": format!("{gw},{svc}"), "iat": NOW - 2}),
        )
    };
    let run = |c0: Value, c1: Value, peer: Option<&str>| {
        let mut r = request(vec![f.txn_token(c0), f.txn_token(c1)]);
        r.audience = "spiffe://c.example/orders".into();
        r.peer = peer.map(str::to_owned);
        let d = decide(&f, &r);
        (outcome(&d), hop(&d))
    };
    let ok = ("allow".to_owned(), None);
    let hop1 = |c: &str| (c.to_owned(), Some(1));
    assert_eq!(run(t0(), t1(), Some(svc)), ok);
    assert_eq!(run(t0(), t1(), None), hop1("sender_binding_required"));
    assert_eq!(run(t0(), t1(), Some(gw)), hop1("sender_mismatch"));
    assert_eq!(
        run(t0(), with(t1(), json!({"txn": "x"})), Some(svc)),
        hop1("txn_mismatch")
    );
    assert_eq!(
        run(t0(), with(t1(), json!({"sub": "user:eve"})), Some(svc)),
        hop1("subject_mismatch")
    );
    assert_eq!(
        run(
            t0(),
            with(t1(), json!({"aud": ["c.example", "d.example"]})),
            Some(svc)
        ),
        hop1("audience_mismatch")
    );
    assert_eq!(
        run(
            t0(),
            with(t1(), json!({"scope": "orders:read orders:delete"})),
            Some(svc)
        ),
        hop1("scope_escalation")
    );
    assert_eq!(
        run(
            t0(),
            with(t1(), json!({"tctx": {"amount": 1000}})),
            Some(svc)
        ),
        hop1("chain_broken")
    );
    assert_eq!(
        run(t0(), with(t1(), json!({"req_wl": svc})), Some(svc)),
        hop1("chain_broken")
    );
    // An earlier token must not be expired at its replacement's iat; only the last sees `now`.
    let old = with(t0(), json!({"iat": NOW - 400, "exp": NOW - 100}));
    assert_eq!(
        run(old.clone(), with(t1(), json!({"iat": NOW - 70})), Some(svc)),
        ("expired".to_owned(), Some(0))
    );
    assert_eq!(
        run(old, with(t1(), json!({"iat": NOW - 71})), Some(svc)),
        ok
    );
    // Every token of a Txn-Token chain is a Txn-Token.
    let mut r = request(vec![f.txn_token(t0()), f.token("c.example", t1())]);
    r.peer = Some(svc.into());
    assert_eq!(outcome(&decide(&f, &r)), "wrong_token_type");
    // A SPIFFE audience must be in the local domain.
    let mut r = request(vec![f.txn_token(t0()), f.txn_token(t1())]);
    r.peer = Some(svc.into());
    r.audience = "spiffe://b.example/orders".into();
    assert_eq!(outcome(&decide(&f, &r)), "audience_mismatch");
    r.audience = "https://orders.c.example".into();
    assert_eq!(outcome(&decide(&f, &r)), "allow");
}

#[test]
fn cedar_policies() {
    let f = PackBuilder::default()
        .cedar(r#"
@id("read")
permit(principal, action == Action::"orders:read", resource)
when { context.origin_domain == "a.example" && context.actors.contains("spiffe://a.example/agent/bob") };
@id("no-deep")
forbid(principal, action, resource) when { context.depth > 1 && context.request has flag };
"#)
        .build();
    let d = decide(&f, &request(chain(&f)));
    assert!(d.is_allowed(), "{:?}", d.reasons);
    assert_eq!(d.policies, vec!["read"]);
    let mut req = request(chain(&f));
    req.context = Some(json!({"flag": true}));
    let d = decide(&f, &req);
    assert_eq!(outcome(&d), "policy_denied");
    assert_eq!(d.policies, vec!["no-deep"]);
    // A principal the policies do not name: default deny, no policy determined it.
    let d = decide(&f, &single(&f, json!({})));
    assert_eq!(outcome(&d), "policy_denied");
    assert!(d.policies.is_empty());
    // The resource and principal Cedar sees.
    let f = PackBuilder::default()
        .cedar(r#"permit(principal == Agent::"spiffe://b.example/agent/alice", action, resource == Order::"42");"#)
        .build();
    let mut req = single(&f, json!({}));
    assert_eq!(outcome(&decide(&f, &req)), "policy_denied");
    req.resource = Some(ResourceRef {
        type_name: "Order".into(),
        id: "42".into(),
    });
    assert_eq!(outcome(&decide(&f, &req)), "allow");
}

#[test]
fn cedar_context_txn_only_from_local_txn_tokens() {
    let f = PackBuilder::default()
        .cedar(r#"permit(principal, action, resource) when { context.txn == "txn-1" };"#)
        .build();
    let mut req = request(chain(&f));
    assert_eq!(outcome(&decide(&f, &req)), "policy_denied");
    req.txn_token = Some(f.txn_token(txn_claims()));
    req.peer = Some("spiffe://c.example/gateway".into());
    assert_eq!(outcome(&decide(&f, &req)), "allow");
}

#[test]
fn batch_equals_one_by_one() {
    let f = Fixture::standard();
    let mut reqs = Vec::new();
    for i in 0..40 {
        let mut r = request(chain(&f));
        if i % 3 == 0 {
            r.action = "orders:write".into();
        }
        if i % 5 == 0 {
            r.peer = Some(BOB.into());
        }
        reqs.push(r);
    }
    let batch = f.verifier.verify_batch(&reqs);
    let single: Vec<_> = reqs.iter().map(|r| decide(&f, r)).collect();
    assert_eq!(batch, single);
}

#[test]
fn extreme_times_do_not_overflow() {
    let f = Fixture::standard();
    for now in [0, i64::MAX, i64::MAX - 1] {
        let mut req = single(&f, json!({}));
        req.now = Some(now);
        let d = decide(&f, &req);
        let expected = if now == 0 {
            "issued_in_future"
        } else {
            "expired"
        };
        assert_eq!(outcome(&d), expected, "{now}");
    }
    let doc = format!(
        r#"{{"tokens": ["x"], "audience": "a", "action": "b", "now": {}}}"#,
        u64::MAX
    );
    assert_eq!(
        outcome(&f.verifier.verify_json(doc.as_bytes()).unwrap()),
        "invalid_request"
    );
}

/// DESIGN.md, Clarifications: a date written with a fraction (`1767225595.0`) is not a
/// NumericDate here, whole-valued or not (it was accepted before the security review; one
/// reader now refuses it everywhere, `tests/dates.rs`).
#[test]
fn whole_number_floats_are_not_dates() {
    let f = Fixture::standard();
    for claims in [
        json!({"nbf": (NOW - 5) as f64}),
        json!({"exp": (NOW + 60) as f64}),
        json!({"iat": (NOW - 5) as f64}),
    ] {
        let d = decide(&f, &single(&f, claims.clone()));
        assert_eq!(
            (outcome(&d), hop(&d)),
            ("malformed_token".into(), Some(0)),
            "{claims}"
        );
    }
    let d = decide(&f, &single(&f, json!({"nbf": NOW - 5, "exp": NOW + 60})));
    assert_eq!(outcome(&d), "allow");
}
