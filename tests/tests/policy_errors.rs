//! Security review finding 1: a Cedar policy that fails to evaluate must never let a call
//! through. Cedar alone skips an erroring policy, so an erroring `forbid` would allow.
//!
//! With a schema, the Cedar request (context included) is validated against it and a mismatch
//! is `invalid_request` naming the attribute; without one, any evaluation error is
//! `policy_error` naming the policy. The property test checks the class: for random contexts,
//! no request that makes any policy error (judged by Cedar itself, on a request built here
//! independently of the verifier) is ever allowed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::str::FromStr;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request as CedarRequest};
use custody_tests::*;
use custody_verifier::{Decision, Request};
use proptest::prelude::*;
use serde_json::{json, Value};

const POLICIES: &str = r#"
@id("read")
permit (principal, action == Action::"orders:read", resource);

@id("block-flagged")
forbid (principal, action, resource) when { context.request.blocked };
"#;

/// The demo schema's context, with `request` declaring `blocked: Bool`.
const SCHEMA: &str = r#"
entity User;
entity Agent;
entity Resource;
type Chain = {
  origin: String, origin_domain: String, depth: Long, actors: Set<String>,
  domains: Set<String>, scopes: Set<String>, txn: String, cross_domain: Bool, peer: String,
  request: { blocked: Bool },
};
action "orders:read", "orders:write" appliesTo {
  principal: [Agent, User], resource: [Resource], context: Chain,
};
"#;

fn with_context(f: &Fixture, context: Option<Value>) -> Decision {
    let mut req = request(chain(f));
    req.context = context;
    f.verify(&req)
}

#[test]
fn without_a_schema_an_erroring_forbid_denies_policy_error() {
    let f = PackBuilder::default().cedar(POLICIES).build();
    for context in [
        None,
        Some(json!({})),
        Some(json!({"blocked": "yes"})),
        Some(json!({"blocked": 1})),
    ] {
        let d = with_context(&f, context.clone());
        assert_eq!(outcome(&d), "policy_error", "{context:?}: {d:?}");
        assert_eq!(d.policies, ["block-flagged"], "{context:?}");
        assert_eq!(hop(&d), None);
        let m = &d.reasons[0].message;
        assert!(m.contains("`block-flagged`"), "{m}");
        assert!(
            d.chain.is_some(),
            "the chain was established before Cedar ran"
        );
    }
    assert_eq!(
        outcome(&with_context(&f, Some(json!({"blocked": true})))),
        "policy_denied"
    );
    assert_eq!(
        outcome(&with_context(&f, Some(json!({"blocked": false})))),
        "allow"
    );
}

#[test]
fn with_a_schema_the_request_is_validated_and_a_mismatch_names_the_attribute() {
    let f = PackBuilder::default()
        .cedar(POLICIES)
        .schema(SCHEMA)
        .build();
    for context in [
        None,
        Some(json!({})),
        Some(json!({"blocked": "yes"})),
        Some(json!({"blocked": [true]})),
    ] {
        let d = with_context(&f, context.clone());
        assert_eq!(outcome(&d), "invalid_request", "{context:?}: {d:?}");
        let m = &d.reasons[0].message;
        assert!(
            m.contains("blocked"),
            "the message names the attribute: {m}"
        );
        assert!(m.contains("schema"), "{m}");
    }
    let extra = with_context(&f, Some(json!({"blocked": false, "other": 1})));
    assert_eq!(outcome(&extra), "invalid_request", "{extra:?}");
    assert!(extra.reasons[0].message.contains("other"), "{extra:?}");
    assert_eq!(
        outcome(&with_context(&f, Some(json!({"blocked": true})))),
        "policy_denied"
    );
    assert_eq!(
        outcome(&with_context(&f, Some(json!({"blocked": false})))),
        "allow"
    );
}

#[test]
fn an_action_the_schema_does_not_declare_is_invalid_request() {
    let f = PackBuilder::default()
        .no_federation()
        .federate("b.example", "c.example", r#"["*"]"#)
        .cedar(POLICIES)
        .schema(SCHEMA)
        .build();
    let mut req = request(vec![f.token(
        "b.example",
        json!({"sub": "user:alice", "aud": AUD, "iat": NOW - 10, "exp": NOW + 60,
               "scope": "orders:delete", "act": {"sub": ALICE}}),
    )]);
    req.action = "orders:delete".into();
    req.context = Some(json!({"blocked": false}));
    let d = f.verify(&req);
    assert_eq!(outcome(&d), "invalid_request", "{d:?}");
}

#[test]
fn an_erroring_permit_denies_even_when_another_permit_allows() {
    let f = PackBuilder::default()
        .cedar(
            r#"
            @id("read") permit (principal, action == Action::"orders:read", resource);
            @id("level") permit (principal, action, resource) when { context.request.level > 3 };
            "#,
        )
        .build();
    let d = with_context(&f, None);
    assert_eq!(outcome(&d), "policy_error", "{d:?}");
    assert_eq!(d.policies, ["level"]);
    assert_eq!(
        outcome(&with_context(&f, Some(json!({"level": 1})))),
        "allow"
    );
}

#[test]
fn an_attribute_of_a_missing_entity_denies_policy_error() {
    let f = PackBuilder::default()
        .cedar(
            r#"
            @id("read") permit (principal, action == Action::"orders:read", resource);
            @id("suspended") forbid (principal, action, resource) when { principal.suspended };
            "#,
        )
        .build();
    let d = with_context(&f, None);
    assert_eq!(outcome(&d), "policy_error", "{d:?}");
    assert_eq!(d.policies, ["suspended"]);
}

/// Policies that error for some contexts and not others, `forbid`s and `permit`s alike.
const MIXED: &str = r#"
@id("read") permit (principal, action == Action::"orders:read", resource);
@id("f-flag") forbid (principal, action, resource)
  when { context.request has flag && context.request.flag };
@id("f-level") forbid (principal, action, resource)
  when { context.request has level && context.request.level > 5 };
@id("f-tags") forbid (principal, action, resource)
  when { context.request has tags && context.request.tags.contains("deny") };
@id("p-sum") permit (principal, action, resource)
  when { context.request has n && context.request.n + 1 > 0 };
@id("f-x") forbid (principal, action, resource) unless { context.request has x || true };
@id("f-nested") forbid (principal, action, resource)
  when { context.request has inner && context.request.inner.on == true && context.depth > 0 };
"#;

/// What Cedar itself says of the request the verifier should have built, built here from
/// the decision's chain summary: whether any policy errored.
fn cedar_errors(policies: &PolicySet, req: &Request, d: &Decision) -> bool {
    let c = d.chain.as_ref().expect("a chain summary when Cedar ran");
    let actor = c.actors.last().expect("the standard chain has actors");
    let context = json!({
        "origin": c.origin, "origin_domain": c.origin.split('|').next().unwrap(),
        "depth": c.depth, "actors": c.actors, "domains": c.domains, "scopes": c.scopes,
        "txn": "", "cross_domain": c.cross_domain, "peer": "",
        "request": req.context.clone().unwrap_or_else(|| json!({})),
    });
    let request = CedarRequest::new(
        EntityUid::from_str(&format!("Agent::{}", json!(actor))).unwrap(),
        EntityUid::from_str(&format!("Action::{}", json!(req.action))).unwrap(),
        EntityUid::from_str(&format!("Resource::{}", json!(AUD))).unwrap(),
        Context::from_json_value(context, None).unwrap(),
        None,
    )
    .unwrap();
    let response = Authorizer::new().is_authorized(&request, policies, &Entities::empty());
    let errored = response.diagnostics().errors().next().is_some();
    errored
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        prop_oneof![Just(i64::MAX), Just(i64::MIN), -10i64..10].prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::from),
        prop::collection::vec("[a-z]{0,4}|deny", 0..3).prop_map(|v| json!(v)),
    ]
}

fn contexts() -> impl Strategy<Value = Option<Value>> {
    let keys = prop::sample::select(vec!["flag", "level", "tags", "n", "inner", "x"]);
    let field = (
        keys,
        prop_oneof![
            scalar(),
            prop::collection::btree_map("on|off", scalar(), 0..2).prop_map(|m| json!(m)),
        ],
    );
    prop::option::of(prop::collection::btree_map(field.0, field.1, 0..5).prop_map(|m| json!(m)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The class: whatever the context, a request that makes any policy error is never
    /// allowed (and is `policy_error`, since every chain check passed).
    #[test]
    fn no_request_that_makes_a_policy_error_is_allowed(context in contexts()) {
        thread_local! {
            static F: Fixture = PackBuilder::default().cedar(MIXED).build();
        }
        let policies = PolicySet::from_str(MIXED).unwrap();
        F.with(|f| {
            let mut req = request(chain(f));
            req.context = context;
            let d = f.verify(&req);
            if cedar_errors(&policies, &req, &d) {
                prop_assert!(!d.is_allowed(), "allowed although a policy errored: {req:?}");
                prop_assert_eq!(outcome(&d), "policy_error");
            } else {
                prop_assert_ne!(outcome(&d), "policy_error", "{:?}", d);
            }
            Ok(())
        })?;
    }
}
