//! The Cedar request for a verified chain, and its evaluation (on the slice of the policy set
//! that can apply to it: `slice.rs`).

use std::str::FromStr;

use cedar_policy::{Context, Decision as CedarDecision, EntityId, EntityTypeName, EntityUid};
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
    let context = Context::from_json_value(context, None).map_err(|e| e.to_string())?;
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
