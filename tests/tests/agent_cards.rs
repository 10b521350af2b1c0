//! A2A Agent Card signatures (`custody_verifier::card`): the a2a-tck signing vectors (RFC 8785
//! canonical payloads, detached-payload JWS), cards signed here with the pack's keys, tampering,
//! key and header rules, the provider's domain, pinning.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use base64::Engine as _;
use custody_jose::{SigningKey, B64};
use custody_tests::PackBuilder;
use custody_verifier::card::{signing_payload, verify_card, CardReport};
use serde_json::{json, Value};

fn vectors() -> Value {
    serde_json::from_str(include_str!("../data/a2a/card_signing_vectors.json")).unwrap()
}

#[test]
fn the_canonical_payload_is_the_vectors_jcs() {
    let v = vectors();
    let mut n = 0;
    for case in v["canonicalization_cases"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["signing_cases"].as_array().unwrap())
    {
        let card = case["agent_card"].as_object().unwrap();
        let got = String::from_utf8(signing_payload(card).unwrap()).unwrap();
        assert_eq!(
            got,
            case["expected_jcs_payload"].as_str().unwrap(),
            "{}",
            case["id"]
        );
        n += 1;
    }
    assert_eq!(n, 8);
}

/// A pack whose `agents.example` domain holds the vectors' published key (kid `key-1`).
fn vector_pack() -> custody_tests::Fixture {
    let v = vectors();
    let key = SigningKey::from_jwk(v["private_jwk"].to_string().as_bytes()).unwrap();
    PackBuilder::default().key("a.example", key).build()
}

/// The vectors' signed card, with its signature entry and a provider in `a.example`.
fn vector_card(case: &Value) -> Value {
    let mut card = case["agent_card"].clone();
    card["signatures"] = json!([{
        "protected": case["expected_protected_b64"],
        "signature": case["signature"],
    }]);
    card
}

fn check(f: &custody_tests::Fixture, card: &Value, pinned: Option<&Value>) -> CardReport {
    let pinned = pinned.map(|p| serde_json::to_vec(p).unwrap());
    verify_card(
        f.verifier.key_store(),
        &serde_json::to_vec(card).unwrap(),
        pinned.as_deref(),
    )
    .unwrap()
}

#[test]
fn the_vectors_signing_inputs_are_reproduced_and_their_signatures_verify() {
    let f = vector_pack();
    let v = vectors();
    for case in v["signing_cases"].as_array().unwrap() {
        // the vectors' cards name no provider: the signature is good, but no domain vouches
        let card = vector_card(case);
        let r = check(&f, &card, None);
        assert!(!r.is_verified(), "{r:?}");
        assert!(r.warnings[0].contains("no provider"), "{r:?}");
        // the signed input is the vector's exactly: the protected header and payload match
        let payload = B64.encode(signing_payload(card.as_object().unwrap()).unwrap());
        let input = format!(
            "{}.{payload}",
            case["expected_protected_b64"].as_str().unwrap()
        );
        assert_eq!(input, case["expected_signing_input"].as_str().unwrap());
        let sig = B64.decode(case["signature"].as_str().unwrap()).unwrap();
        let key = f.key("a.example").public();
        assert!(key.verify_with("EdDSA", input.as_bytes(), &sig));
        let mut bad = sig.clone();
        bad[0] ^= 1;
        assert!(!key.verify_with("EdDSA", input.as_bytes(), &bad));
    }
}

/// A card for an agent of `a.example`, signed with `key` (detached JWS over the JCS payload).
fn signed_card(key: &SigningKey, card: Value) -> Value {
    let mut card = card;
    let payload = B64.encode(signing_payload(card.as_object().unwrap()).unwrap());
    let header = json!({"alg": key.alg().name(), "kid": key.kid(), "typ": "JOSE"});
    let protected = B64.encode(serde_json::to_vec(&header).unwrap());
    let sig = key.sign_bytes(format!("{protected}.{payload}").as_bytes());
    card["signatures"] = json!([{"protected": protected, "signature": B64.encode(sig)}]);
    card
}

fn agent() -> Value {
    json!({
        "name": "Orders agent", "description": "Places orders", "version": "1.0.0",
        "url": "https://agent.a.example/a2a", "protocolVersion": "0.3.0",
        "provider": {"organization": "A", "url": "https://a.example"},
        "capabilities": {"streaming": true}, "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "security": [{"bearer": []}],
        "skills": [{"id": "order", "name": "Order", "description": "d", "tags": ["t"]}],
    })
}

#[test]
fn a_card_signed_with_the_providers_key_verifies_and_reports_what_it_covers() {
    let f = PackBuilder::default().build();
    let card = signed_card(f.key("a.example"), agent());
    let r = check(&f, &card, None);
    assert!(r.is_verified() && r.is_trusted(), "{r:?}");
    assert_eq!(r.domain.as_deref(), Some("a.example"));
    assert!(r.warnings.is_empty(), "{r:?}");
    assert!(
        r.covered.contains(&"securitySchemes".to_owned())
            && !r.covered.contains(&"signatures".to_owned())
    );
    assert_eq!(r.covered.len(), agent().as_object().unwrap().len());

    // member order and whitespace do not matter (the payload is canonical)
    let text = serde_json::to_string_pretty(&card).unwrap();
    let r2 = verify_card(f.verifier.key_store(), text.as_bytes(), None).unwrap();
    assert!(r2.is_verified());

    // any change under the signature breaks it
    for (path, value) in [
        ("url", json!("https://evil.example/a2a")),
        ("description", json!("Places orders!")),
    ] {
        let mut t = card.clone();
        t[path] = value;
        assert!(!check(&f, &t, None).is_verified(), "{path}");
    }
    let mut t = card.clone();
    t["securitySchemes"]["bearer"]["scheme"] = json!("basic");
    assert!(!check(&f, &t, None).is_verified());
    let mut t = card.clone();
    t["extra"] = json!(1);
    assert!(!check(&f, &t, None).is_verified());
}

#[test]
fn only_the_providers_own_domain_key_counts() {
    let f = PackBuilder::default().build();
    // b.example's key signs a card whose provider is a.example
    let card = signed_card(f.key("b.example"), agent());
    let r = check(&f, &card, None);
    assert!(!r.is_verified());
    assert!(
        r.signatures[0]
            .outcome
            .as_ref()
            .unwrap_err()
            .contains("not a key"),
        "{r:?}"
    );
    // a provider that is no declared domain
    let mut other = agent();
    other["provider"]["url"] = json!("https://unknown.example");
    let r = check(&f, &signed_card(f.key("a.example"), other), None);
    assert!(!r.is_verified() && r.domain.is_none());
    // a look-alike host is not under the domain
    let mut other = agent();
    other["provider"]["url"] = json!("https://evila.example");
    assert!(!check(&f, &signed_card(f.key("a.example"), other), None).is_verified());
    // an endpoint outside the provider's domain is reported
    let mut moved = agent();
    moved["url"] = json!("https://agent.b.example/a2a");
    let r = check(&f, &signed_card(f.key("a.example"), moved), None);
    assert!(r.is_verified());
    assert!(r.warnings.iter().any(|w| w.contains("outside")), "{r:?}");
}

#[test]
fn headers_that_carry_keys_and_unprotected_headers() {
    let f = PackBuilder::default().build();
    let key = f.key("a.example");
    let mut card = signed_card(key, agent());
    let payload = B64.encode(signing_payload(card.as_object().unwrap()).unwrap());
    for header in [
        json!({"alg": "EdDSA", "kid": key.kid(), "jku": "https://evil.example/keys"}),
        json!({"alg": "EdDSA", "kid": key.kid(), "jwk": {"kty": "OKP"}}),
        json!({"alg": "none", "kid": key.kid()}),
        json!({"alg": "HS256", "kid": key.kid()}),
        json!({"alg": "EdDSA"}),
    ] {
        let protected = B64.encode(serde_json::to_vec(&header).unwrap());
        let sig = key.sign_bytes(format!("{protected}.{payload}").as_bytes());
        card["signatures"] = json!([{"protected": protected, "signature": B64.encode(sig)}]);
        assert!(!check(&f, &card, None).is_verified(), "{header}");
    }
    // an unprotected header is reported, never used
    let mut card = signed_card(key, agent());
    card["signatures"][0]["header"] = json!({"kid": "someone-else"});
    let r = check(&f, &card, None);
    assert!(r.is_verified());
    assert!(r.warnings.iter().any(|w| w.contains("unprotected")));
    // strict JSON: a member named twice is refused
    let text = serde_json::to_string(&signed_card(key, agent())).unwrap();
    let dup = text.replacen('{', "{\"name\":\"x\",", 1);
    assert!(verify_card(f.verifier.key_store(), dup.as_bytes(), None).is_err());
}

#[test]
fn a_pinned_agent_whose_url_or_security_changed_is_reported() {
    let f = PackBuilder::default().build();
    let key = f.key("a.example");
    let pinned = signed_card(key, agent());
    assert!(check(&f, &pinned, Some(&pinned)).is_trusted());
    let mut changed = agent();
    changed["url"] = json!("https://agent2.a.example/a2a");
    changed["security"] = json!([]);
    let r = check(&f, &signed_card(key, changed), Some(&pinned));
    assert!(r.is_verified() && !r.is_trusted());
    assert_eq!(r.pin_differences, ["url", "security"]);
}
