//! The same delegation scenarios as JWT chains and as Biscuits (issue 5): identical decisions,
//! reason codes and hops; then what only a Biscuit can get wrong.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use custody_tests::*;
use custody_verifier::biscuit::{self, Authority, Hop};
use custody_verifier::Decision;
use serde_json::json;

const CAROL: &str = "spiffe://b.example/agent/carol";
const OTHER_SERVICE: &str = "spiffe://c.example/billing";
const READ: &str = "orders:read";
const WRITE: &str = "orders:write";

/// One hop of a scenario: who signs (domain), the actor it makes current, the audience and
/// scopes of the token it issues, its expiry.
#[derive(Clone)]
struct HopSpec {
    signer: &'static str,
    actor: &'static str,
    aud: Vec<&'static str>,
    scopes: Vec<&'static str>,
    exp: i64,
}

fn step(
    signer: &'static str,
    actor: &'static str,
    aud: &[&'static str],
    scopes: &[&'static str],
    exp: i64,
) -> HopSpec {
    HopSpec {
        signer,
        actor,
        aud: aud.to_vec(),
        scopes: scopes.to_vec(),
        exp,
    }
}

const IAT: i64 = NOW - 60;

/// The chain as JWTs: token i signed by hop i's domain, its `act` holding actors 0..=i.
fn as_jwts(f: &Fixture, hops: &[HopSpec]) -> Vec<String> {
    let mut actors = Vec::new();
    hops.iter()
        .map(|h| {
            actors.push(h.actor);
            f.token(
                h.signer,
                json!({
                    "sub": "user:alice", "aud": h.aud, "iat": IAT, "exp": h.exp,
                    "scope": h.scopes.join(" "), "txn": "txn-1", "act": act(&actors),
                }),
            )
        })
        .collect()
}

/// The chain as one Biscuit: hop 0 the authority block, each later hop a third-party block.
fn as_biscuit(f: &Fixture, hops: &[HopSpec]) -> String {
    let h0 = &hops[0];
    let mut token = biscuit::mint(
        f.key(h0.signer),
        &Authority {
            domain: h0.signer.into(),
            sub: "user:alice".into(),
            txn: Some("txn-1".into()),
            scopes: strings(&h0.scopes),
            audience: strings(&h0.aud),
            actor: Some(h0.actor.into()),
            issued_at: IAT,
            expires: h0.exp,
            checks: Vec::new(),
        },
    )
    .unwrap();
    for h in &hops[1..] {
        token = biscuit::attest(
            &token,
            f.key(h.signer),
            &Hop {
                actor: h.actor.into(),
                scopes: strings(&h.scopes),
                audience: strings(&h.aud),
                expires: Some(h.exp),
                checks: Vec::new(),
            },
        )
        .unwrap();
    }
    token
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn two_domain() -> Vec<HopSpec> {
    vec![
        step("a.example", BOB, &[ALICE], &[READ, WRITE], NOW + 600),
        step("b.example", ALICE, &[AUD], &[READ], NOW + 300),
    ]
}

fn biscuit_pack() -> PackBuilder {
    PackBuilder::default().biscuit_keys()
}

/// Decides the scenario both ways and checks they agree; returns the Biscuit decision.
fn parity(
    f: &Fixture,
    hops: &[HopSpec],
    edit: impl Fn(&mut custody_verifier::Request),
) -> Decision {
    let mut jwt_req = request(as_jwts(f, hops));
    edit(&mut jwt_req);
    let mut b_req = request(vec![as_biscuit(f, hops)]);
    edit(&mut b_req);
    let (j, b) = (f.verify(&jwt_req), f.verify(&b_req));
    assert_eq!(
        outcome(&b),
        outcome(&j),
        "jwt {:?}\nbiscuit {:?}",
        j.reasons,
        b.reasons
    );
    assert_eq!(
        hop_of(&b),
        hop_of(&j),
        "jwt {:?}\nbiscuit {:?}",
        j.reasons,
        b.reasons
    );
    assert_eq!(b.chain, j.chain);
    assert_eq!(b.policies, j.policies);
    b
}

fn hop_of(d: &Decision) -> Option<usize> {
    custody_tests::hop(d)
}

fn expect(f: &Fixture, hops: &[HopSpec], code: &str) {
    let d = parity(f, hops, |_| {});
    assert_eq!(outcome(&d), code, "{:?}", d.reasons);
}

#[test]
fn allow_two_domain_chain() {
    let f = biscuit_pack().build();
    let d = parity(&f, &two_domain(), |_| {});
    assert!(d.is_allowed(), "{:?}", d.reasons);
    let c = d.chain.unwrap();
    assert_eq!(c.origin, "a.example|user:alice");
    assert_eq!(c.actors, vec![BOB, ALICE]);
    assert_eq!(c.scopes, vec![READ]);
    assert_eq!(c.txn, "txn-1");
}

#[test]
fn allow_single_hop() {
    let f = biscuit_pack().build();
    let hops = [step("b.example", ALICE, &[AUD], &[READ], NOW + 300)];
    let d = parity(&f, &hops, |_| {});
    assert!(d.is_allowed(), "{:?}", d.reasons);
}

#[test]
fn scope_widening() {
    let f = biscuit_pack().build();
    let mut hops = two_domain();
    hops[0].scopes = vec![READ];
    hops[1].scopes = vec![READ, WRITE];
    expect(&f, &hops, "scope_escalation");
}

#[test]
fn action_outside_scope() {
    let f = biscuit_pack().build();
    let d = parity(&f, &two_domain(), |r| r.action = WRITE.into());
    assert_eq!(outcome(&d), "scope_missing");
}

#[test]
fn unfederated_pivot() {
    let f = biscuit_pack().build();
    let hops = [
        step("a.example", BOB, &[MALLORY], &[READ], NOW + 600),
        step("d.example", MALLORY, &[AUD], &[READ], NOW + 300),
    ];
    expect(&f, &hops, "domain_not_federated");
}

#[test]
fn too_deep() {
    let f = biscuit_pack().chain("max_depth 2").build();
    let hops = [
        step("a.example", BOB, &[ALICE], &[READ], NOW + 600),
        step("b.example", ALICE, &[CAROL], &[READ], NOW + 500),
        step("b.example", CAROL, &[AUD], &[READ], NOW + 400),
    ];
    expect(&f, &hops, "depth_exceeded");
    // within the limit, the same three hops pass
    let f = biscuit_pack().build();
    expect(&f, &hops, "allow");
}

#[test]
fn delegation_loop() {
    let f = biscuit_pack().build();
    let hops = [
        step("a.example", BOB, &[ALICE], &[READ], NOW + 600),
        step("b.example", ALICE, &[BOB], &[READ], NOW + 500),
        step("a.example", BOB, &[AUD], &[READ], NOW + 400),
    ];
    expect(&f, &hops, "delegation_loop");
}

#[test]
fn sender_binding() {
    let f = biscuit_pack().build();
    let d = parity(&f, &two_domain(), |r| r.peer = Some(BOB.into()));
    assert_eq!(outcome(&d), "sender_mismatch");
    let d = parity(&f, &two_domain(), |r| r.peer = Some(ALICE.into()));
    assert!(d.is_allowed());
    let f = biscuit_pack().chain("require_sender_binding true").build();
    let d = parity(&f, &two_domain(), |_| {});
    assert_eq!(outcome(&d), "sender_binding_required");
}

#[test]
fn wrong_audience() {
    let f = biscuit_pack().build();
    let mut hops = two_domain();
    hops[1].aud = vec![OTHER_SERVICE];
    expect(&f, &hops, "audience_mismatch");
}

#[test]
fn next_actor_not_in_audience() {
    let f = biscuit_pack().build();
    let mut hops = two_domain();
    hops[0].aud = vec![CAROL];
    expect(&f, &hops, "chain_broken");
}

#[test]
fn expired() {
    let f = biscuit_pack().build();
    let mut hops = two_domain();
    hops[0].exp = NOW - 100;
    hops[1].exp = NOW - 200;
    expect(&f, &hops, "expired");
    let mut hops = two_domain();
    hops[1].exp = NOW - 100;
    expect(&f, &hops, "expired");
}

#[test]
fn expiry_extended() {
    let f = biscuit_pack().build();
    let mut hops = two_domain();
    hops[1].exp = NOW + 900;
    expect(&f, &hops, "expiry_extended");
}

#[test]
fn lifetime_too_long() {
    let f = biscuit_pack().build();
    let mut hops = two_domain();
    hops[0].exp = IAT + 7200;
    expect(&f, &hops, "lifetime_too_long");
}

#[test]
fn vouching_by_wrong_domain_key() {
    let f = biscuit_pack().build();
    let mut hops = two_domain();
    hops[1].signer = "a.example";
    expect(&f, &hops, "issuer_not_in_chain");
}

#[test]
fn federation_scope() {
    let f = PackBuilder::default()
        .no_federation()
        .federate("a.example", "b.example", r#"["orders:write"]"#)
        .federate("b.example", "c.example", r#"["orders:read"]"#)
        .biscuit_keys()
        .build();
    expect(&f, &two_domain(), "federation_scope_denied");
}

#[test]
fn cedar_sees_the_same_request() {
    let permit = r#"@id("partner-read")
permit(principal == Agent::"spiffe://b.example/agent/alice", action == Action::"orders:read", resource)
when { context.origin == "a.example|user:alice" && context.depth == 2 && context.cross_domain };"#;
    let f = biscuit_pack().cedar(permit).build();
    let d = parity(&f, &two_domain(), |_| {});
    assert!(d.is_allowed(), "{:?}", d.reasons);
    assert_eq!(d.policies, vec!["partner-read"]);
    let f = biscuit_pack()
        .cedar(r#"permit(principal == Agent::"spiffe://a.example/agent/bob", action, resource);"#)
        .build();
    let d = parity(&f, &two_domain(), |_| {});
    assert_eq!(outcome(&d), "policy_denied");
}

// What only a Biscuit can get wrong.

fn authority(f: &Fixture) -> String {
    as_biscuit(f, &two_domain()[..1])
}

fn decide(f: &Fixture, token: String) -> Decision {
    f.verify(&request(vec![token]))
}

#[test]
fn first_party_block_asserting_an_actor() {
    let f = biscuit_pack().build();
    let t = biscuit::attenuate(&authority(&f), &format!("actor(\"{ALICE}\");")).unwrap();
    let d = decide(&f, t);
    assert_eq!(outcome(&d), "chain_broken", "{:?}", d.reasons);
    // the same after a proper hop: a self-asserted third actor
    let t = as_biscuit(&f, &two_domain());
    for fact in [
        format!("actor(\"{CAROL}\");"),
        format!("scope(\"{WRITE}\");"),
    ] {
        let d = decide(&f, biscuit::attenuate(&t, &fact).unwrap());
        assert_eq!(outcome(&d), "chain_broken", "{fact}: {:?}", d.reasons);
    }
    // a rule deriving one is refused too
    let d = decide(
        &f,
        biscuit::attenuate(&t, "actor($x) <- service($x);").unwrap(),
    );
    assert_eq!(outcome(&d), "chain_broken");
    // any other fact in a first-party block
    let d = decide(&f, biscuit::attenuate(&t, "note(\"hi\");").unwrap());
    assert_eq!(outcome(&d), "malformed_token");
}

#[test]
fn first_party_checks_restrict() {
    let f = biscuit_pack().build();
    let t = as_biscuit(&f, &two_domain());
    let ok = biscuit::attenuate(&t, r#"check if operation("orders:read");"#).unwrap();
    assert!(decide(&f, ok.clone()).is_allowed());
    let narrowed = biscuit::attenuate(&ok, r#"check if operation("orders:write");"#).unwrap();
    let d = decide(&f, narrowed);
    assert_eq!(outcome(&d), "policy_denied");
    assert!(
        d.reasons[0].message.contains("orders:write"),
        "{}",
        d.reasons[0].message
    );
    // request facts: service, resource, time, peer
    let t2 = biscuit::attenuate(
        &t,
        &format!(
            "check if service(\"{AUD}\"), resource(\"{AUD}\"), time($t), $t < {};",
            "2026-01-01T00:10:00Z"
        ),
    )
    .unwrap();
    assert!(decide(&f, t2).is_allowed());
    let late = biscuit::attenuate(&t, "check if time($t), $t < 2025-01-01T00:00:00Z;").unwrap();
    assert_eq!(outcome(&decide(&f, late)), "policy_denied");
    let bound = biscuit::attenuate(&t, &format!("check if peer(\"{ALICE}\");")).unwrap();
    assert_eq!(outcome(&decide(&f, bound.clone())), "policy_denied");
    let mut req = request(vec![bound]);
    req.peer = Some(ALICE.into());
    assert!(f.verify(&req).is_allowed());
}

#[test]
fn hop_checks_run_too() {
    let f = biscuit_pack().build();
    let t = authority(&f);
    let h = Hop {
        actor: ALICE.into(),
        scopes: vec![READ.into()],
        audience: vec![AUD.into()],
        expires: None,
        checks: vec![r#"check if resource_type("Order")"#.into()],
    };
    let t = biscuit::attest(&t, f.key("b.example"), &h).unwrap();
    assert_eq!(outcome(&decide(&f, t.clone())), "policy_denied");
    let mut req = request(vec![t]);
    req.resource = Some(custody_verifier::ResourceRef {
        type_name: "Order".into(),
        id: "1".into(),
    });
    assert!(f.verify(&req).is_allowed());
}

#[test]
fn hop_inherits_scope_and_expiry() {
    let f = biscuit_pack().build();
    let h = Hop {
        actor: ALICE.into(),
        audience: vec![AUD.into()],
        ..Hop::default()
    };
    let t = biscuit::attest(&authority(&f), f.key("b.example"), &h).unwrap();
    let d = decide(&f, t);
    assert!(d.is_allowed(), "{:?}", d.reasons);
    assert_eq!(d.chain.unwrap().scopes, vec![READ, WRITE]);
}

#[test]
fn hop_must_name_exactly_one_actor() {
    let f = biscuit_pack().build();
    let key = f.key("b.example");
    let none = biscuit::attest_code(&authority(&f), key, &format!("audience(\"{AUD}\");")).unwrap();
    assert_eq!(outcome(&decide(&f, none)), "chain_broken");
    let two = format!("actor(\"{ALICE}\"); actor(\"{CAROL}\"); audience(\"{AUD}\");");
    let two = biscuit::attest_code(&authority(&f), key, &two).unwrap();
    assert_eq!(outcome(&decide(&f, two)), "chain_broken");
    let bad = biscuit::attest_code(
        &authority(&f),
        key,
        &format!("actor(\"spiffe://b.example\"); audience(\"{AUD}\");"),
    )
    .unwrap();
    let d = decide(&f, bad);
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("invalid_spiffe_id", Some(1))
    );
    let no_aud =
        biscuit::attest_code(&authority(&f), key, &format!("actor(\"{ALICE}\");")).unwrap();
    assert_eq!(outcome(&decide(&f, no_aud)), "missing_claim");
    let rule = format!("actor(\"{ALICE}\"); audience(\"{AUD}\"); extra($x) <- scope($x);");
    let rule = biscuit::attest_code(&authority(&f), key, &rule).unwrap();
    assert_eq!(outcome(&decide(&f, rule)), "malformed_token");
    let spliced = format!("actor(\"{ALICE}\"); audience(\"{AUD}\"); txn(\"txn-2\");");
    let spliced = biscuit::attest_code(&authority(&f), key, &spliced).unwrap();
    assert_eq!(outcome(&decide(&f, spliced)), "txn_mismatch");
    let resub = format!("actor(\"{ALICE}\"); audience(\"{AUD}\"); sub(\"user:eve\");");
    let resub = biscuit::attest_code(&authority(&f), key, &resub).unwrap();
    assert_eq!(outcome(&decide(&f, resub)), "subject_mismatch");
}

#[test]
fn keys_and_signatures() {
    let f = biscuit_pack().build();
    // a hop signed by a key no domain declares
    let stranger = custody_jose::SigningKey::from_seed("x", [42; 32]);
    let h = Hop {
        actor: ALICE.into(),
        audience: vec![AUD.into()],
        ..Hop::default()
    };
    let t = biscuit::attest(&authority(&f), &stranger, &h).unwrap();
    assert_eq!(outcome(&decide(&f, t)), "unknown_key");
    // an authority block naming b.example, signed by a.example's root key
    let a = Authority {
        domain: "b.example".into(),
        sub: "user:alice".into(),
        audience: vec![AUD.into()],
        scopes: vec![READ.into()],
        issued_at: IAT,
        expires: NOW + 60,
        ..Authority::default()
    };
    let forged = biscuit::mint(f.key("a.example"), &a).unwrap();
    assert_eq!(outcome(&decide(&f, forged)), "bad_signature");
    // an undeclared issuer domain
    let t = biscuit::mint(
        f.key("b.example"),
        &Authority {
            domain: "z.example".into(),
            ..a.clone()
        },
    )
    .unwrap();
    assert_eq!(outcome(&decide(&f, t)), "unknown_issuer");
    // a domain without `biscuit_keys`: JWT keys alone do not sign Biscuits
    let plain = PackBuilder::default().build();
    let t = biscuit::mint(f.key("b.example"), &a).unwrap();
    assert_eq!(outcome(&decide(&plain, t.clone())), "unknown_key");
    assert!(decide(&f, t).is_allowed());
}

#[test]
fn authority_claims() {
    let f = biscuit_pack().build();
    let a = Authority {
        domain: "b.example".into(),
        sub: "user:alice".into(),
        audience: vec![AUD.into()],
        scopes: vec![READ.into()],
        issued_at: IAT,
        expires: NOW + 60,
        ..Authority::default()
    };
    let d = decide(&f, biscuit::mint(f.key("b.example"), &a).unwrap());
    assert!(d.is_allowed(), "{:?}", d.reasons);
    // no actor: the principal is the subject, the issuer's domain first on the path
    let c = d.chain.unwrap();
    assert_eq!(c.depth, 0);
    assert_eq!(c.domains, vec!["b.example", "c.example"]);
    for (edit, code) in [
        (
            Authority {
                audience: vec![],
                ..a.clone()
            },
            "missing_claim",
        ),
        (
            Authority {
                expires: NOW - 1000,
                issued_at: NOW - 2000,
                ..a.clone()
            },
            "expired",
        ),
        (
            Authority {
                issued_at: NOW + 1000,
                expires: NOW + 2000,
                ..a.clone()
            },
            "issued_in_future",
        ),
        (
            Authority {
                actor: Some("spiffe://b.example".into()),
                ..a.clone()
            },
            "invalid_spiffe_id",
        ),
        (
            Authority {
                checks: vec!["check if operation(\"x\")".into()],
                ..a.clone()
            },
            "policy_denied",
        ),
        (
            Authority {
                checks: vec!["check if service($s), $s.matches(\"c.*\")".into()],
                ..a.clone()
            },
            "malformed_token",
        ),
    ] {
        let d = decide(&f, biscuit::mint(f.key("b.example"), &edit).unwrap());
        assert_eq!(outcome(&d), code, "{:?}", d.reasons);
    }
}

#[test]
fn biscuit_among_other_tokens() {
    let f = biscuit_pack().build();
    let jwts = as_jwts(&f, &two_domain());
    let b = as_biscuit(&f, &two_domain());
    let d = f.verify(&request(vec![jwts[0].clone(), b.clone()]));
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("wrong_token_type", Some(1))
    );
    let d = f.verify(&request(vec![b, jwts[1].clone()]));
    assert_eq!(
        (outcome(&d).as_str(), hop(&d)),
        ("wrong_token_type", Some(0))
    );
    // a non-JWS that is not a Biscuit either stays `malformed_token`
    let d = f.verify(&request(vec![jwts[0].clone(), "garbage".into()]));
    assert_eq!(outcome(&d), "malformed_token");
}
