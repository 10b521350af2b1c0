//! The Cedar request for a verified chain, and its evaluation (on the slice of the policy set
//! that can apply to it: `slice.rs`).

use std::str::FromStr;

use cedar_policy::{
    Context, Decision as CedarDecision, EntityId, EntityTypeName, EntityUid, RestrictedExpression,
};
use custody_policy::CedarPack;
use serde_json::{json, Value};

use crate::decision::ChainSummary;
use crate::request::ResourceRef;
use crate::slice::SlicedPolicySet;

/// What Cedar said.
pub(crate) struct Outcome {
    pub allowed: bool,
    pub policies: Vec<String>,
    pub errors: Vec<String>,
}

/// Everything the Cedar request is built from.
pub(crate) struct Input<'a> {
    /// The current actor, if the chain has one.
    pub actor: Option<&'a str>,
    pub summary: &'a ChainSummary,
    pub origin_domain: &'a str,
    pub action: &'a str,
    pub resource: Option<&'a ResourceRef>,
    pub audience: &'a str,
    pub txn: &'a str,
    pub peer: &'a str,
    pub request: Option<&'a Value>,
}

pub(crate) fn entity(type_name: &str, id: &str) -> Result<EntityUid, String> {
    let t = EntityTypeName::from_str(type_name)
        .map_err(|_| format!("`{type_name}` is not a Cedar entity type name"))?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

pub(crate) fn evaluate(
    pack: &CedarPack,
    policies: &SlicedPolicySet,
    input: &Input<'_>,
) -> Result<Outcome, String> {
    let principal = match input.actor {
        Some(a) => entity("Agent", a)?,
        None => entity("User", &input.summary.origin)?,
    };
    let action = entity("Action", input.action)?;
    let resource = match input.resource {
        Some(r) => entity(&r.type_name, &r.id)?,
        None => entity("Resource", input.audience)?,
    };
    let context = context(input)?;
    let request = cedar_policy::Request::new(principal, action, resource, context, None)
        .map_err(|e| e.to_string())?;
    let response = policies.is_authorized(&request, &pack.entities);
    let diagnostics = response.diagnostics();
    // Cedar hands the determining policies over as a hash set: sorted, the order is stable.
    let mut ids: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
    ids.sort_unstable();
    Ok(Outcome {
        allowed: response.decision() == CedarDecision::Allow,
        policies: ids,
        errors: diagnostics.errors().map(ToString::to_string).collect(),
    })
}

/// The context record. Built directly as Cedar values (the JSON route costs most of a warm
/// decision: Cedar's JSON reader tries each value form in turn and formats an error for every
/// miss); any value that route would not take as-is (`null`, a non-integer number, a `__` key:
/// the request check refuses them before Cedar runs) goes through `Context::from_json_value`,
/// so the result is the same either way (tests compare the two).
fn context(input: &Input<'_>) -> Result<Context, String> {
    match direct_context(input) {
        Some(c) => Ok(c),
        None => json_context(input),
    }
}

fn strings(items: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(items.iter().cloned().map(RestrictedExpression::new_string))
}

fn direct_context(input: &Input<'_>) -> Option<Context> {
    let s = input.summary;
    let request = match input.request {
        Some(v) => restricted(v)?,
        None => RestrictedExpression::new_record(Vec::new()).ok()?,
    };
    let string = |v: &str| RestrictedExpression::new_string(v.to_owned());
    let pairs = [
        ("origin", string(&s.origin)),
        ("origin_domain", string(input.origin_domain)),
        (
            "depth",
            RestrictedExpression::new_long(i64::try_from(s.depth).ok()?),
        ),
        ("actors", strings(&s.actors)),
        ("domains", strings(&s.domains)),
        ("scopes", strings(&s.scopes)),
        ("txn", string(input.txn)),
        (
            "cross_domain",
            RestrictedExpression::new_bool(s.cross_domain),
        ),
        ("peer", string(input.peer)),
        ("request", request),
    ];
    Context::from_pairs(pairs.into_iter().map(|(k, v)| (k.to_owned(), v))).ok()
}

/// A JSON value as Cedar reads it without a schema (arrays are sets, objects records), or
/// `None` for anything the request check refuses.
fn restricted(v: &Value) -> Option<RestrictedExpression> {
    Some(match v {
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::Number(n) => RestrictedExpression::new_long(n.as_i64()?),
        Value::Array(items) => {
            RestrictedExpression::new_set(items.iter().map(restricted).collect::<Option<Vec<_>>>()?)
        }
        Value::Object(m) => {
            if m.keys().any(|k| k.starts_with("__")) {
                return None;
            }
            let fields = m
                .iter()
                .map(|(k, v)| Some((k.clone(), restricted(v)?)))
                .collect::<Option<Vec<_>>>()?;
            RestrictedExpression::new_record(fields).ok()?
        }
        Value::Null => return None,
    })
}

fn json_context(input: &Input<'_>) -> Result<Context, String> {
    let context = json!({
        "origin": input.summary.origin,
        "origin_domain": input.origin_domain,
        "depth": input.summary.depth as i64,
        "actors": input.summary.actors,
        "domains": input.summary.domains,
        "scopes": input.summary.scopes,
        "txn": input.txn,
        "cross_domain": input.summary.cross_domain,
        "peer": input.peer,
        "request": input.request.cloned().unwrap_or_else(|| json!({})),
    });
    Context::from_json_value(context, None).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(summary: &'a ChainSummary, request: Option<&'a Value>) -> Input<'a> {
        Input {
            actor: Some("spiffe://b.example/agent/alice"),
            summary,
            origin_domain: "a.example",
            action: "orders:read",
            resource: None,
            audience: "spiffe://c.example/orders",
            txn: "txn-1",
            peer: "",
            request,
        }
    }

    #[test]
    fn direct_context_equals_the_json_route() {
        let summary = ChainSummary {
            origin: "a.example|user:alice".into(),
            actors: vec![
                "spiffe://a.example/agent/bob".into(),
                "x".into(),
                "x".into(),
            ],
            domains: vec!["a.example".into(), "c.example".into()],
            scopes: vec![],
            depth: 3,
            txn: "t".into(),
            cross_domain: true,
        };
        let requests = [
            None,
            Some(json!({})),
            Some(json!({"level": 3, "tags": ["a", "b", "a"], "nested": {"ok": true, "n": -7}})),
            Some(json!({"list": [[1, 2], {"k": "v"}], "empty": [], "s": "é\u{0}"})),
            Some(json!({"big": i64::MAX, "small": i64::MIN})),
        ];
        for r in &requests {
            let i = input(&summary, r.as_ref());
            let direct = direct_context(&i).unwrap();
            assert_eq!(direct, json_context(&i).unwrap(), "{r:?}");
        }
        // what the request check refuses takes the JSON route (and its answer)
        for bad in [
            json!({"x": null}),
            json!({"f": 1.5}),
            json!({"__entity": {"type": "A", "id": "b"}}),
        ] {
            let i = input(&summary, Some(&bad));
            assert!(direct_context(&i).is_none());
            assert_eq!(context(&i).ok(), json_context(&i).ok());
        }
    }
}
