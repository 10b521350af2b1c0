//! The OpenID AuthZEN Authorization API 1.0 on the sidecar's HTTP port: the mapping from an
//! Access Evaluation request to a custody [`Request`] and from a [`Decision`] to the answer,
//! without a server (the HTTP side is `web.rs`; the decision is custody.v1 Verify's own,
//! [`Service::decide_call`](crate::server::Service::decide_call)).
//!
//! **Endpoints.** `POST /access/v1/evaluation` (one evaluation), `POST /access/v1/evaluations`
//! (a batch: the top-level `subject`, `action`, `resource` and `context` are defaults, and each
//! `evaluations` item's own members replace them whole; without an `evaluations` array, or with
//! an empty one, it is one evaluation answered as the single endpoint answers), and
//! `GET /.well-known/authzen-configuration`.
//!
//! **Mapping.**
//!
//! | custody request | from |
//! |---|---|
//! | `action` | `action.name` (a non-empty string) |
//! | `resource` | `{"type": resource.type, "id": resource.id}` (Cedar: `type::"id"`) |
//! | `audience` | the sidecar's `--audience`, never the request; without it every evaluation is `invalid_request` |
//! | `tokens` (origin first, presented last), `txn_token`, `peer`, `peer_certificates`, `wit`, `wpt`, `dpop`, `target_uri`, `http_method`, `proof_headers` | the members of those names of `context`, or of `subject.properties`: one place or the other, never both (`invalid_request`) |
//! | `now` | `context.now` (unix seconds), refused (`invalid_request`) unless `--allow-request-time` |
//! | `context` (Cedar `context.request`) | the other members of `context`, plus `authzen`: `{"subject": …, "resource": …, "action": …}`, the other members of `subject.properties` and the `properties` of `resource` and `action`, each present only when non-empty |
//!
//! `peer` is taken as the custody.v1 Verify RPC takes it: on the PEP's word, as the caller its
//! transport authenticated (the PEP is the Verify caller's equal: both ask on behalf of the
//! call they enforce); `peer_certificates` or `wit` with `wpt` are the proofs custody checks
//! itself.
//!
//! Every custody request field name is reserved in `context` and in `subject.properties`: the
//! credential fields above are taken as credentials, `now` only from `context`, and `audience`,
//! `action`, `resource`, `context`, `authzen` (and `now` in `subject.properties`) are
//! `invalid_request`, so a PEP cannot believe it set the audience, and Cedar never sees them.
//! Values are custody's request values: `context` and the properties hold strings, 64-bit
//! integers, booleans, lists and objects (`null`, fractions, keys starting with `__` are
//! `invalid_request`), nested at most as deep as a request document allows.
//!
//! `subject.type` is free. `subject.id`, when given, must name the verified chain's caller: its
//! current (last) actor, or, when the chain has no actor, the origin subject (the presented
//! chain's `sub`, or `<origin domain>|<sub>` in full); otherwise an allowed decision becomes a
//! denial `subject_mismatch` (hop `null`) whose message names both. (A denial stays as the
//! verifier made it.)
//!
//! **Answer.** HTTP 200 for every decision (AuthZEN: the decision is in the body):
//!
//! ```json
//! {"decision": false,
//!  "context": {"reason_codes": ["scope_missing"],
//!              "reasons": [{"code": "scope_missing", "hop": 1, "message": "…"}],
//!              "pack_version": "…"}}
//! ```
//!
//! and on allow `"reason_codes": [], "reasons": []` and `"chain": {"origin": …, "actors": […],
//! "depth": n, "domains": […]}` in `context`. A batch answers `{"evaluations": [each answer]}`
//! in request order; `options.evaluations_semantic` `execute_all` (the default) answers every
//! item, `deny_on_first_deny` stops after the first `false` and `permit_on_first_permit` after
//! the first `true` (the items after it are not decided and not answered). A batch item that is
//! not an evaluation (a missing `subject`, a `resource` without `id`, …) is answered
//! `false`/`invalid_request`; the others are decided independently.
//!
//! **Refused** (HTTP status, with `{"error": {"status": …, "message": …}}`): a body that is not
//! strict JSON (a duplicate key, nesting deeper than the request limit, trailing bytes) or not
//! an evaluation request (a missing or ill-typed `subject`/`action`/`resource`/`context`, an
//! unknown member at any level of the request's own structure, an unknown option or semantic,
//! an `evaluations` item that is not an object, more than [`MAX_EVALUATIONS`] items, or items
//! holding more than [`MAX_EXPANDED_BYTES`] with the defaults they inherit): 400; a
//! body over the custody request limit (256 KiB): 413; a `content-type` other than
//! `application/json`: 415 (see `web.rs`).

use custody_jose::json as strict;
use custody_verifier::{Decision, Limits, Reason, ReasonCode, Request};
use serde_json::{json, Map, Value};

use crate::call::{Mapped, Semantic};

/// The single evaluation endpoint.
pub(crate) const EVALUATION_PATH: &str = "/access/v1/evaluation";
/// The batch endpoint.
pub(crate) const EVALUATIONS_PATH: &str = "/access/v1/evaluations";
/// The PDP metadata.
pub(crate) const METADATA_PATH: &str = "/.well-known/authzen-configuration";

/// The most items one `evaluations` array may hold, 64: a page of a UI's buttons or a list's
/// rows, decided within one call's deadline (each item is a whole decision, the key-refresh
/// wait included).
pub(crate) const MAX_EVALUATIONS: usize = 64;

/// The most bytes a batch's items may hold once the defaults they inherit are counted in each,
/// 4 MiB (the gRPC port's default `--max-message-bytes`): a 256 KiB top-level `context` may be
/// inherited by 16 items, not by 64 (each item's request owns its copy).
pub(crate) const MAX_EXPANDED_BYTES: usize = 4 << 20;

/// The custody request fields a PEP passes as the caller's credentials, in `context` or in
/// `subject.properties`.
pub(crate) const CREDENTIAL_FIELDS: [&str; 10] = [
    "tokens",
    "txn_token",
    "peer",
    "peer_certificates",
    "wit",
    "wpt",
    "dpop",
    "target_uri",
    "http_method",
    "proof_headers",
];

/// The Cedar `context.request` member holding the AuthZEN entities' properties.
pub(crate) const PROPERTIES_MEMBER: &str = "authzen";

/// Names refused in `context`: they never come from there (the audience is `--audience`; the
/// action and resource are AuthZEN's own; `authzen` is where custody puts the properties).
const RESERVED_IN_CONTEXT: [&str; 5] = ["audience", "action", "resource", "context", "authzen"];

/// What the mapping takes from the server's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mapping<'a> {
    /// `--audience`.
    pub audience: Option<&'a str>,
    /// `--allow-request-time`.
    pub allow_request_time: bool,
    /// The verifier's limits (the body's nesting).
    pub limits: &'a Limits,
}

/// A body that is no evaluation request: HTTP 400, this message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadRequest(pub String);

impl From<String> for BadRequest {
    fn from(m: String) -> Self {
        BadRequest(m)
    }
}

/// What `POST /access/v1/evaluations` asks.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// No `evaluations` array (or an empty one): one evaluation, answered as the single
    /// endpoint answers.
    Single(Box<Mapped>),
    /// The items, defaults applied, and how to run them.
    Batch(Vec<Mapped>, Semantic),
}

/// An AuthZEN `subject`.
#[derive(Clone, Debug, PartialEq)]
struct Subject {
    id: Option<String>,
    properties: Map<String, Value>,
}

/// An AuthZEN `action`.
#[derive(Clone, Debug, PartialEq)]
struct Action {
    name: String,
    properties: Option<Map<String, Value>>,
}

/// An AuthZEN `resource`.
#[derive(Clone, Debug, PartialEq)]
struct Resource {
    type_name: String,
    id: String,
    properties: Option<Map<String, Value>>,
}

/// The 4-tuple, each member optional (a batch's defaults, an item before them).
#[derive(Clone, Debug, Default, PartialEq)]
struct Tuple {
    subject: Option<Subject>,
    action: Option<Action>,
    resource: Option<Resource>,
    context: Option<Map<String, Value>>,
}

impl Tuple {
    /// Reads the tuple's members out of `m` (`at` prefixes member names in messages); other
    /// members stay in `m`.
    fn take(m: &mut Map<String, Value>, at: &str) -> Result<Tuple, String> {
        Ok(Tuple {
            subject: m
                .remove("subject")
                .map(|v| subject(v, &format!("{at}subject")))
                .transpose()?,
            action: m
                .remove("action")
                .map(|v| action(v, &format!("{at}action")))
                .transpose()?,
            resource: m
                .remove("resource")
                .map(|v| resource(v, &format!("{at}resource")))
                .transpose()?,
            context: m
                .remove("context")
                .map(|v| object(v, &format!("{at}context")))
                .transpose()?,
        })
    }

    /// `self`'s members, else `defaults`' (a whole member replaces the default, never merged).
    fn over(self, defaults: &Tuple) -> Tuple {
        Tuple {
            subject: self.subject.or_else(|| defaults.subject.clone()),
            action: self.action.or_else(|| defaults.action.clone()),
            resource: self.resource.or_else(|| defaults.resource.clone()),
            context: self.context.or_else(|| defaults.context.clone()),
        }
    }

    /// The custody request of a complete tuple; `Err` names what is missing or refused.
    fn map(self, mapping: &Mapping<'_>) -> Mapped {
        let subject_id = self.subject.as_ref().and_then(|s| s.id.clone());
        Mapped {
            request: self.request(mapping),
            subject: subject_id,
        }
    }

    fn request(self, mapping: &Mapping<'_>) -> Result<Request, String> {
        let subject = self.subject.ok_or("missing `subject`")?;
        let action = self.action.ok_or("missing `action`")?;
        let resource = self.resource.ok_or("missing `resource`")?;
        build(subject, action, resource, self.context, mapping)
    }
}

/// Reads the body of `POST /access/v1/evaluation`.
pub(crate) fn parse_evaluation(body: &[u8], mapping: &Mapping<'_>) -> Result<Mapped, BadRequest> {
    let mut m = parse_body(body, mapping.limits)?;
    let tuple = Tuple::take(&mut m, "")?;
    no_other_members(&m, "")?;
    complete(&tuple)?;
    Ok(tuple.map(mapping))
}

/// Reads the body of `POST /access/v1/evaluations`.
pub(crate) fn parse_evaluations(body: &[u8], mapping: &Mapping<'_>) -> Result<Parsed, BadRequest> {
    let mut m = parse_body(body, mapping.limits)?;
    // what each default weighs, for the items that inherit it
    let weights: Vec<(&str, usize)> = ["subject", "action", "resource", "context"]
        .into_iter()
        .map(|k| (k, m.get(k).map_or(0, |v| v.to_string().len())))
        .collect();
    let defaults = Tuple::take(&mut m, "")?;
    let semantic = match m.remove("options") {
        None => Semantic::default(),
        Some(v) => options(v)?,
    };
    let items = match m.remove("evaluations") {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(BadRequest("`evaluations` must be an array".into())),
    };
    no_other_members(&m, "")?;
    if items.is_empty() {
        complete(&defaults)?;
        return Ok(Parsed::Single(Box::new(defaults.map(mapping))));
    }
    if items.len() > MAX_EVALUATIONS {
        return Err(BadRequest(format!(
            "`evaluations` holds {} items; at most {MAX_EVALUATIONS} are decided in one call",
            items.len()
        )));
    }
    let expanded: usize = items
        .iter()
        .map(|item| {
            let own = item.to_string().len();
            let inherited: usize = weights
                .iter()
                .filter(|(k, _)| item.get(*k).is_none())
                .map(|(_, w)| w)
                .sum();
            own.saturating_add(inherited)
        })
        .fold(0usize, usize::saturating_add);
    if expanded > MAX_EXPANDED_BYTES {
        return Err(BadRequest(format!(
            "the batch's items, each with the defaults it inherits, hold {expanded} bytes; at \
             most {MAX_EXPANDED_BYTES} are decided in one call"
        )));
    }
    let mut mapped = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("evaluations[{i}].");
        let Value::Object(mut item) = item else {
            return Err(BadRequest(format!("`evaluations[{i}]` must be an object")));
        };
        // an item that is not an evaluation is that item's denial, not the call's failure
        let tuple = Tuple::take(&mut item, &at)
            .and_then(|t| no_other_members(&item, &at).map(|()| t))
            .map(|t| t.over(&defaults));
        mapped.push(match tuple {
            Ok(t) => t.map(mapping),
            Err(message) => Mapped {
                request: Err(message),
                subject: None,
            },
        });
    }
    Ok(Parsed::Batch(mapped, semantic))
}

/// The body as a strict JSON object: a duplicate key, trailing bytes or nesting deeper than a
/// request document's limit (plus the two levels a batch item adds) is refused.
fn parse_body(body: &[u8], limits: &Limits) -> Result<Map<String, Value>, BadRequest> {
    match strict::parse(body, limits.json_depth.saturating_add(2)) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(BadRequest("the body must be a JSON object".into())),
        Err(e) => Err(BadRequest(format!("the body is not strict JSON: {e}"))),
    }
}

/// A single evaluation has all three of `subject`, `action`, `resource`.
fn complete(t: &Tuple) -> Result<(), BadRequest> {
    for (name, present) in [
        ("subject", t.subject.is_some()),
        ("action", t.action.is_some()),
        ("resource", t.resource.is_some()),
    ] {
        if !present {
            return Err(BadRequest(format!("missing `{name}`")));
        }
    }
    Ok(())
}

fn no_other_members(m: &Map<String, Value>, at: &str) -> Result<(), String> {
    match m.keys().next() {
        Some(k) => Err(format!("unknown member `{at}{k}`")),
        None => Ok(()),
    }
}

/// `options`: `evaluations_semantic` only (an unknown option, a typo such as the spec draft's
/// `evaluation_semantics`, must not silently run another semantic).
fn options(v: Value) -> Result<Semantic, BadRequest> {
    let mut m = object(v, "options")?;
    let semantic = match m.remove("evaluations_semantic") {
        None => Semantic::default(),
        Some(Value::String(s)) => Semantic::parse(&s).ok_or_else(|| {
            BadRequest(format!(
                "`options.evaluations_semantic` `{}` is not `execute_all`, `deny_on_first_deny` \
                 or `permit_on_first_permit`",
                clip(&s)
            ))
        })?,
        Some(_) => {
            return Err(BadRequest(
                "`options.evaluations_semantic` must be a string".into(),
            ))
        }
    };
    no_other_members(&m, "options.")?;
    Ok(semantic)
}

fn object(v: Value, at: &str) -> Result<Map<String, Value>, String> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(format!("`{at}` must be an object")),
    }
}

fn string(m: &mut Map<String, Value>, name: &str, at: &str) -> Result<Option<String>, String> {
    match m.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{at}.{name}` must be a string")),
    }
}

fn required(m: &mut Map<String, Value>, name: &str, at: &str) -> Result<String, String> {
    string(m, name, at)?.ok_or_else(|| format!("missing `{at}.{name}`"))
}

fn properties(m: &mut Map<String, Value>, at: &str) -> Result<Option<Map<String, Value>>, String> {
    m.remove("properties")
        .map(|v| object(v, &format!("{at}.properties")))
        .transpose()
}

fn subject(v: Value, at: &str) -> Result<Subject, String> {
    let mut m = object(v, at)?;
    // `type` is required by the spec and free here
    required(&mut m, "type", at)?;
    let id = string(&mut m, "id", at)?;
    let properties = properties(&mut m, at)?.unwrap_or_default();
    no_other_members(&m, &format!("{at}."))?;
    Ok(Subject { id, properties })
}

fn action(v: Value, at: &str) -> Result<Action, String> {
    let mut m = object(v, at)?;
    let name = required(&mut m, "name", at)?;
    let properties = properties(&mut m, at)?;
    no_other_members(&m, &format!("{at}."))?;
    Ok(Action { name, properties })
}

fn resource(v: Value, at: &str) -> Result<Resource, String> {
    let mut m = object(v, at)?;
    let type_name = required(&mut m, "type", at)?;
    let id = required(&mut m, "id", at)?;
    let properties = properties(&mut m, at)?;
    no_other_members(&m, &format!("{at}."))?;
    Ok(Resource {
        type_name,
        id,
        properties,
    })
}

/// The custody request document for one complete evaluation, read by custody's own request
/// reader ([`Request::from_value`]: field types, unknown fields); what is wrong with it is
/// `invalid_request`.
fn build(
    subject: Subject,
    action: Action,
    resource: Resource,
    context: Option<Map<String, Value>>,
    mapping: &Mapping<'_>,
) -> Result<Request, String> {
    let audience = mapping.audience.ok_or(
        "no audience: the sidecar runs without `--audience`, and the audience is never taken \
         from the request",
    )?;
    let mut context = context.unwrap_or_default();
    let mut props = subject.properties;
    let carries = |m: &Map<String, Value>| CREDENTIAL_FIELDS.iter().any(|f| m.contains_key(*f));
    let (in_context, in_subject) = (carries(&context), carries(&props));
    if in_context && in_subject {
        return Err(
            "credentials in both `context` and `subject.properties`: send them in one place".into(),
        );
    }
    if let Some(name) = RESERVED_IN_CONTEXT
        .iter()
        .find(|n| context.contains_key(**n))
    {
        return Err(format!(
            "`context.{name}` is reserved: {}",
            why_reserved(name)
        ));
    }
    if let Some(name) = RESERVED_IN_CONTEXT
        .iter()
        .chain(&["now"])
        .find(|n| props.contains_key(**n))
    {
        return Err(format!(
            "`subject.properties.{name}` is reserved: {}",
            why_reserved(name)
        ));
    }
    let mut doc = Map::new();
    let source = if in_subject { &mut props } else { &mut context };
    for field in CREDENTIAL_FIELDS {
        if let Some(v) = source.remove(field) {
            doc.insert(field.to_owned(), v);
        }
    }
    if !doc.contains_key("tokens") {
        return Err(
            "no `tokens`: the caller's tokens (origin first, presented last) go in `context` or \
             in `subject.properties`"
                .into(),
        );
    }
    if let Some(now) = context.remove("now") {
        if !mapping.allow_request_time {
            return Err(
                "a request-supplied `now` is refused: the sidecar was not started with \
                 `--allow-request-time`"
                    .into(),
            );
        }
        doc.insert("now".into(), now);
    }
    doc.insert("audience".into(), audience.into());
    doc.insert("action".into(), action.name.into());
    doc.insert(
        "resource".into(),
        json!({"type": resource.type_name, "id": resource.id}),
    );
    let mut entities = Map::new();
    for (name, p) in [
        ("subject", Some(props)),
        ("resource", resource.properties),
        ("action", action.properties),
    ] {
        if let Some(p) = p.filter(|p| !p.is_empty()) {
            entities.insert(name.into(), Value::Object(p));
        }
    }
    if !entities.is_empty() {
        context.insert(PROPERTIES_MEMBER.into(), Value::Object(entities));
    }
    if !context.is_empty() {
        doc.insert("context".into(), Value::Object(context));
    }
    Request::from_value(Value::Object(doc)).map_err(|e| e.0)
}

fn why_reserved(name: &str) -> &'static str {
    match name {
        "audience" => "the audience is the sidecar's `--audience`",
        "action" => "the action is `action.name`",
        "resource" => "the resource is `resource.type` and `resource.id`",
        "now" => "the decision time comes only from `context.now`",
        "authzen" => "custody puts the entities' properties there",
        _ => "custody's own request field",
    }
}

/// An allowed decision whose chain's caller is not `subject_id` becomes a `subject_mismatch`
/// denial: the caller is the chain's current (last) actor, or, with no actor, the origin
/// subject (`<origin domain>|<sub>`, matched in full or by `sub`). A denial is returned as it
/// is, as is every decision when no `subject.id` was given.
pub(crate) fn check_subject(d: Decision, subject_id: Option<&str>) -> Decision {
    let Some(id) = subject_id else { return d };
    if !d.is_allowed() {
        return d;
    }
    let Some(chain) = d.chain.as_ref() else {
        // An allow always carries its chain; were one ever to come without, no caller can be
        // shown to be `subject.id`, and the safer reading is a denial.
        let message = format!("`subject.id` `{}` names no verified caller", clip(id));
        return Decision::deny(
            Reason::new(ReasonCode::SubjectMismatch, None, message),
            None,
        );
    };
    let (caller, matches) = match chain.actors.last() {
        Some(actor) => (actor.as_str(), id == actor),
        None => {
            let sub = chain
                .origin
                .split_once('|')
                .map_or(chain.origin.as_str(), |(_, sub)| sub);
            (chain.origin.as_str(), id == sub || id == chain.origin)
        }
    };
    if matches {
        return d;
    }
    let who = if chain.actors.is_empty() {
        "the origin subject"
    } else {
        "the current actor"
    };
    let message = format!(
        "`subject.id` `{}` is not the chain's caller, {who} `{}`",
        clip(id),
        clip(caller)
    );
    let chain = d.chain.clone();
    Decision::deny(
        Reason::new(ReasonCode::SubjectMismatch, None, message),
        chain,
    )
}

/// One evaluation's answer (see the module documentation for the shape).
pub(crate) fn answer(d: &Decision, pack: &str) -> Value {
    let codes: Vec<&str> = d.reasons.iter().map(|r| r.code.as_str()).collect();
    let reasons: Vec<Value> = d
        .reasons
        .iter()
        .map(|r| json!({"code": r.code.as_str(), "hop": r.hop, "message": r.message}))
        .collect();
    let mut context = Map::new();
    context.insert("reason_codes".into(), codes.into());
    context.insert("reasons".into(), reasons.into());
    context.insert("pack_version".into(), pack.into());
    if d.is_allowed() {
        if let Some(c) = &d.chain {
            context.insert(
                "chain".into(),
                json!({"origin": c.origin, "actors": c.actors, "depth": c.depth,
                       "domains": c.domains}),
            );
        }
    }
    json!({"decision": d.is_allowed(), "context": context})
}

/// A batch's answer, in request order.
pub(crate) fn answers(decisions: &[Decision], pack: &str) -> Value {
    let items: Vec<Value> = decisions.iter().map(|d| answer(d, pack)).collect();
    json!({ "evaluations": items })
}

/// The PDP metadata under `base` (`--authzen-base-url`, without a trailing `/`).
pub(crate) fn metadata(base: &str) -> Value {
    json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}{EVALUATION_PATH}"),
        "access_evaluations_endpoint": format!("{base}{EVALUATIONS_PATH}"),
    })
}

/// The body of a refused call.
pub(crate) fn error(status: u16, message: &str) -> Value {
    json!({"error": {"status": status, "message": message}})
}

/// At most 200 characters of a request-supplied string, for messages.
fn clip(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", s.get(..at).unwrap_or_default()),
        None => s.to_owned(),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;
    use custody_verifier::ResourceRef;

    const AUD: &str = "spiffe://c.example/orders";

    fn mapping(limits: &Limits) -> Mapping<'_> {
        Mapping {
            audience: Some(AUD),
            allow_request_time: false,
            limits,
        }
    }

    /// Every request field is either a credential a PEP passes through or one AuthZEN's own
    /// members supply: a field added to the request must be placed on one side here.
    #[test]
    fn credential_fields_are_the_request_fields_authzen_does_not_map() {
        const FROM_AUTHZEN: [&str; 5] = ["audience", "action", "resource", "now", "context"];
        for f in CREDENTIAL_FIELDS {
            assert!(custody_verifier::REQUEST_FIELDS.contains(&f), "{f}");
            assert!(!FROM_AUTHZEN.contains(&f), "{f}");
        }
        for f in custody_verifier::REQUEST_FIELDS {
            assert!(
                CREDENTIAL_FIELDS.contains(&f) != FROM_AUTHZEN.contains(&f),
                "request field `{f}` is neither a credential nor mapped from AuthZEN (or both)"
            );
        }
    }

    fn one(body: Value) -> Result<Mapped, BadRequest> {
        let limits = Limits::default();
        parse_evaluation(body.to_string().as_bytes(), &mapping(&limits))
    }

    fn request(body: Value) -> Request {
        one(body).unwrap().request.unwrap()
    }

    fn refused(body: Value) -> String {
        match one(body) {
            Ok(m) => m.request.unwrap_err(),
            Err(e) => panic!("not an evaluation: {e:?}"),
        }
    }

    fn bad(body: Value) -> String {
        one(body).unwrap_err().0
    }

    fn base() -> Value {
        json!({
            "subject": {"type": "user", "id": "user:alice"},
            "action": {"name": "orders:read"},
            "resource": {"type": "Order", "id": "42"},
            "context": {"tokens": ["t0", "t1"], "tenant": "acme"}
        })
    }

    #[test]
    fn the_spec_example_maps_to_a_custody_request() {
        let m = one(base()).unwrap();
        assert_eq!(m.subject.as_deref(), Some("user:alice"));
        let r = m.request.unwrap();
        assert_eq!(r.tokens, ["t0", "t1"]);
        assert_eq!(r.audience, AUD);
        assert_eq!(r.action, "orders:read");
        assert_eq!(
            r.resource,
            Some(ResourceRef {
                type_name: "Order".into(),
                id: "42".into()
            })
        );
        // the credentials are not Cedar's; the rest of the context is
        assert_eq!(r.context, Some(json!({"tenant": "acme"})));
        assert_eq!(r.now, None);
        assert_eq!(r.peer, None);
    }

    #[test]
    fn credentials_come_from_context_or_subject_properties_never_both() {
        let mut b = base();
        b["context"] = json!({"time": "1985-10-26T01:22-07:00"});
        b["subject"]["properties"] = json!({"tokens": ["t0"], "dpop": "p", "department": "sales",
                                            "peer": "spiffe://b.example/agent/alice"});
        let r = request(b.clone());
        assert_eq!(r.tokens, ["t0"]);
        assert_eq!(r.dpop.as_deref(), Some("p"));
        assert_eq!(r.peer.as_deref(), Some("spiffe://b.example/agent/alice"));
        assert_eq!(
            r.context,
            Some(json!({"time": "1985-10-26T01:22-07:00",
                        "authzen": {"subject": {"department": "sales"}}}))
        );
        // one credential in each place is both places
        b["context"]["wit"] = "w".into();
        assert!(refused(b).contains("both"));
        // none at all
        let mut b = base();
        b["context"] = json!({"tenant": "acme"});
        assert!(refused(b).contains("no `tokens`"));
    }

    #[test]
    fn every_credential_field_is_taken() {
        let mut b = base();
        b["context"] = json!({"tokens": ["t"], "txn_token": "x", "peer": "spiffe://a.example/w",
            "peer_certificates": ["pem"], "wit": "w", "wpt": "p", "dpop": "d",
            "target_uri": "https://orders.c.example/o", "http_method": "GET",
            "proof_headers": {"x-a": "1"}});
        let r = request(b);
        assert_eq!(r.txn_token.as_deref(), Some("x"));
        assert_eq!(r.peer_certificates, ["pem"]);
        assert_eq!(r.wit.as_deref(), Some("w"));
        assert_eq!(r.wpt.as_deref(), Some("p"));
        assert_eq!(r.target_uri.as_deref(), Some("https://orders.c.example/o"));
        assert_eq!(r.http_method.as_deref(), Some("GET"));
        assert_eq!(r.proof_headers.unwrap()["x-a"], "1");
        assert_eq!(r.context, None);
    }

    #[test]
    fn ill_typed_credentials_are_invalid_requests() {
        let mut b = base();
        b["context"]["tokens"] = "t0".into();
        assert!(refused(b).contains("`tokens` must be a list of strings"));
        let mut b = base();
        b["context"]["peer"] = 7.into();
        assert!(refused(b).contains("`peer` must be a string"));
    }

    #[test]
    fn the_audience_is_never_the_requests() {
        let mut b = base();
        b["context"]["audience"] = "spiffe://c.example/billing".into();
        assert!(refused(b).contains("--audience"));
        let limits = Limits::default();
        let none = Mapping {
            audience: None,
            ..mapping(&limits)
        };
        let m = parse_evaluation(base().to_string().as_bytes(), &none).unwrap();
        assert!(m.request.unwrap_err().contains("--audience"));
    }

    #[test]
    fn reserved_names_are_refused_where_they_cannot_come_from() {
        for name in ["action", "resource", "context", "authzen"] {
            let mut b = base();
            b["context"][name] = json!({});
            assert!(refused(b).contains("reserved"), "context.{name}");
        }
        let mut b = base();
        b["subject"]["properties"] = json!({"now": 5});
        assert!(refused(b).contains("reserved"));
    }

    #[test]
    fn now_needs_the_testing_flag() {
        let mut b = base();
        b["context"]["now"] = 1_767_225_600.into();
        assert!(refused(b.clone()).contains("--allow-request-time"));
        let limits = Limits::default();
        let testing = Mapping {
            allow_request_time: true,
            ..mapping(&limits)
        };
        let m = parse_evaluation(b.to_string().as_bytes(), &testing).unwrap();
        assert_eq!(m.request.unwrap().now, Some(1_767_225_600));
    }

    #[test]
    fn properties_reach_cedar_under_authzen() {
        let mut b = base();
        b["resource"]["properties"] = json!({"ownerID": "rick@the-citadel.com"});
        b["action"]["properties"] = json!({"method": "GET"});
        b["subject"]["properties"] = json!({});
        let r = request(b);
        assert_eq!(
            r.context,
            Some(json!({"tenant": "acme", "authzen": {
                "resource": {"ownerID": "rick@the-citadel.com"},
                "action": {"method": "GET"}}}))
        );
    }

    #[test]
    fn shapes_that_are_not_evaluations_are_bad_requests() {
        for (body, says) in [
            (json!([]), "JSON object"),
            (
                json!({"action": {"name": "a"}, "resource": {"type": "t", "id": "i"}}),
                "`subject`",
            ),
            (
                json!({"subject": {"type": "user"}, "resource": {"type": "t", "id": "i"}}),
                "`action`",
            ),
            (
                json!({"subject": {"type": "user"}, "action": {"name": "a"}}),
                "`resource`",
            ),
            (
                json!({"subject": {"id": "x"}, "action": {"name": "a"},
                       "resource": {"type": "t", "id": "i"}}),
                "`subject.type`",
            ),
            (
                json!({"subject": {"type": "u"}, "action": {"name": 5},
                       "resource": {"type": "t", "id": "i"}}),
                "`action.name` must be a string",
            ),
            (
                json!({"subject": {"type": "u"}, "action": {"name": "a"},
                       "resource": {"type": "t"}}),
                "`resource.id`",
            ),
            (
                json!({"subject": {"type": "u", "role": "admin"}, "action": {"name": "a"},
                       "resource": {"type": "t", "id": "i"}}),
                "unknown member `subject.role`",
            ),
            (
                json!({"subject": {"type": "u"}, "action": {"name": "a"},
                       "resource": {"type": "t", "id": "i"}, "contxt": {}}),
                "unknown member `contxt`",
            ),
            (
                json!({"subject": {"type": "u"}, "action": {"name": "a"},
                       "resource": {"type": "t", "id": "i"}, "context": []}),
                "`context` must be an object",
            ),
            (
                json!({"subject": {"type": "u", "properties": "p"}, "action": {"name": "a"},
                       "resource": {"type": "t", "id": "i"}}),
                "`subject.properties` must be an object",
            ),
        ] {
            let e = bad(body.clone());
            assert!(e.contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn the_body_is_read_strictly() {
        let limits = Limits::default();
        let m = mapping(&limits);
        let dup = br#"{"subject": {"type": "u", "type": "v"}, "action": {"name": "a"},
                       "resource": {"type": "t", "id": "i"}}"#;
        assert!(parse_evaluation(dup, &m)
            .unwrap_err()
            .0
            .contains("duplicate"));
        let trailing = br#"{"subject": {"type": "u"}, "action": {"name": "a"},
                            "resource": {"type": "t", "id": "i"}} {}"#;
        assert!(parse_evaluation(trailing, &m).is_err());
        let deep = format!(
            r#"{{"subject": {{"type": "u"}}, "action": {{"name": "a"}},
                "resource": {{"type": "t", "id": "i"}}, "context": {}1{}}}"#,
            "[".repeat(40),
            "]".repeat(40)
        );
        assert!(parse_evaluation(deep.as_bytes(), &m)
            .unwrap_err()
            .0
            .contains("deeper"));
    }

    #[test]
    fn context_values_are_checked_by_the_verifier_not_dropped() {
        // null reaches the request: the verifier's own check refuses it (`invalid_request`)
        let mut b = base();
        b["context"]["x"] = Value::Null;
        assert_eq!(
            request(b).context,
            Some(json!({"tenant": "acme", "x": null}))
        );
    }

    fn batch(body: Value) -> Result<Parsed, BadRequest> {
        let limits = Limits::default();
        parse_evaluations(body.to_string().as_bytes(), &mapping(&limits))
    }

    #[test]
    fn batch_items_override_the_defaults_whole() {
        let body = json!({
            "subject": {"type": "user", "id": "user:alice"},
            "action": {"name": "orders:read"},
            "context": {"tokens": ["t0"]},
            "options": {"evaluations_semantic": "deny_on_first_deny"},
            "evaluations": [
                {"resource": {"type": "Order", "id": "1"}},
                {"resource": {"type": "Order", "id": "2"}, "action": {"name": "orders:write"}},
                {"resource": {"type": "Order", "id": "3"}, "context": {"tokens": ["t9"]},
                 "subject": {"type": "agent", "id": "spiffe://b.example/agent/alice"}},
                {"action": {"name": "orders:read"}},
                {"resource": {"type": "Order", "id": "5"}, "subject": {"id": "x"}}
            ]
        });
        let Parsed::Batch(items, semantic) = batch(body).unwrap() else {
            panic!("not a batch")
        };
        assert_eq!(semantic, Semantic::DenyOnFirstDeny);
        assert_eq!(items.len(), 5);
        let r0 = items[0].request.as_ref().unwrap();
        assert_eq!(
            (r0.action.as_str(), r0.tokens.as_slice()),
            ("orders:read", &["t0".to_owned()][..])
        );
        assert_eq!(items[0].subject.as_deref(), Some("user:alice"));
        assert_eq!(items[1].request.as_ref().unwrap().action, "orders:write");
        let r2 = items[2].request.as_ref().unwrap();
        assert_eq!(r2.tokens, ["t9"]);
        assert_eq!(
            items[2].subject.as_deref(),
            Some("spiffe://b.example/agent/alice")
        );
        // an item without a resource (and none by default) is its own denial
        assert!(items[3]
            .request
            .as_ref()
            .unwrap_err()
            .contains("`resource`"));
        // an ill-formed item subject: that item only
        assert!(items[4]
            .request
            .as_ref()
            .unwrap_err()
            .contains("`evaluations[4].subject.type`"));
    }

    #[test]
    fn a_batch_without_evaluations_is_one_evaluation() {
        let Parsed::Single(m) = batch(base()).unwrap() else {
            panic!("not single")
        };
        assert_eq!(m.request.unwrap().action, "orders:read");
        let mut b = base();
        b["evaluations"] = json!([]);
        assert!(matches!(batch(b).unwrap(), Parsed::Single(_)));
        assert!(batch(json!({"evaluations": []}))
            .unwrap_err()
            .0
            .contains("`subject`"));
    }

    #[test]
    fn batch_envelopes_that_are_wrong_are_bad_requests() {
        let item = json!({"subject": {"type": "u"}, "action": {"name": "a"},
                          "resource": {"type": "t", "id": "i"}});
        for (body, says) in [
            (json!({"evaluations": {}}), "must be an array"),
            (
                json!({"evaluations": [1]}),
                "`evaluations[0]` must be an object",
            ),
            (
                json!({"evaluations": vec![item.clone(); MAX_EVALUATIONS + 1]}),
                "at most 64",
            ),
            (
                json!({"evaluations": [item.clone()], "options": {"evaluation_semantics": "execute_all"}}),
                "unknown member `options.evaluation_semantics`",
            ),
            (
                json!({"evaluations": [item.clone()], "options": {"evaluations_semantic": "first"}}),
                "is not `execute_all`",
            ),
            (
                json!({"evaluations": [item.clone()], "options": 1}),
                "`options` must be an object",
            ),
            (
                json!({"evaluations": [item.clone()], "extra": 1}),
                "unknown member `extra`",
            ),
        ] {
            let e = batch(body.clone()).unwrap_err().0;
            assert!(e.contains(says), "{body}: {e}");
        }
        // a large default context may be inherited by a few items, not by 64
        let big = json!({"tokens": ["t"], "pad": " ".repeat(200 * 1024)});
        let inherit = |n: usize| {
            json!({"subject": {"type": "u"}, "action": {"name": "a"}, "context": big,
                   "evaluations": vec![json!({"resource": {"type": "t", "id": "i"}}); n]})
        };
        assert!(
            matches!(batch(inherit(16)).unwrap(), Parsed::Batch(items, _) if items.len() == 16)
        );
        assert!(batch(inherit(21)).unwrap_err().0.contains("inherits"));
        // items bringing their own context do not inherit it
        let mut own = inherit(21);
        for i in own["evaluations"].as_array_mut().unwrap() {
            i["context"] = json!({"tokens": ["t"]});
        }
        assert!(batch(own).is_ok());
        assert!(matches!(
            batch(json!({"evaluations": vec![item; MAX_EVALUATIONS]})).unwrap(),
            Parsed::Batch(items, Semantic::ExecuteAll) if items.len() == MAX_EVALUATIONS
        ));
    }

    /// A verifier-made allow: the kit's two-domain chain (actors Bob then Alice), or one
    /// token with no actor (origin `c.example|user:carol`).
    fn allowed(actors: bool) -> Decision {
        let f = custody_tests::Fixture::standard();
        let tokens = if actors {
            custody_tests::chain(&f)
        } else {
            vec![f.token(
                "c.example",
                json!({"sub": "user:carol", "aud": custody_tests::AUD,
                       "iat": custody_tests::NOW - 10, "exp": custody_tests::NOW + 300,
                       "scope": "orders:read"}),
            )]
        };
        let d = f.verify(&custody_tests::request(tokens));
        assert!(d.is_allowed(), "{:?}", d.reasons);
        d
    }

    #[test]
    fn the_subject_is_the_current_actor() {
        let d = allowed(true);
        assert_eq!(check_subject(d.clone(), None), d);
        assert_eq!(check_subject(d.clone(), Some(custody_tests::ALICE)), d);
        // an earlier actor, or the origin subject, is not the caller of a delegated chain
        for other in [custody_tests::BOB, "user:alice", "a.example|user:alice"] {
            let denied = check_subject(d.clone(), Some(other));
            assert!(!denied.is_allowed(), "{other}");
            assert_eq!(denied.code(), Some(ReasonCode::SubjectMismatch));
            assert_eq!(denied.reasons[0].hop, None);
            assert!(denied.reasons[0].message.contains(custody_tests::ALICE));
            assert!(denied.reasons[0].message.contains("current actor"));
            assert_eq!(denied.chain, d.chain);
        }
    }

    #[test]
    fn without_actors_the_subject_is_the_origin_subject() {
        let d = allowed(false);
        assert_eq!(check_subject(d.clone(), Some("user:carol")), d);
        assert_eq!(check_subject(d.clone(), Some("c.example|user:carol")), d);
        for other in ["user:caro", "b.example|user:carol", "c.example", ""] {
            let denied = check_subject(d.clone(), Some(other));
            assert_eq!(
                denied.code(),
                Some(ReasonCode::SubjectMismatch),
                "{other:?}"
            );
            assert!(denied.reasons[0].message.contains("origin subject"));
        }
    }

    #[test]
    fn a_denial_is_never_turned_by_the_subject_check() {
        let d = Decision::deny(
            Reason::new(ReasonCode::Expired, Some(0), "expired"),
            allowed(true).chain,
        );
        assert_eq!(check_subject(d.clone(), Some("someone else")), d);
    }

    #[test]
    fn semantics_cut_after_their_stop() {
        let deny = Decision::invalid_request("no");
        let ds = vec![deny.clone(), deny.clone()];
        assert_eq!(Semantic::ExecuteAll.cut(ds.clone()).len(), 2);
        assert_eq!(Semantic::DenyOnFirstDeny.cut(ds.clone()).len(), 1);
        assert_eq!(Semantic::PermitOnFirstPermit.cut(ds).len(), 2);
        assert!(Semantic::PermitOnFirstPermit.stops_after(true));
        assert!(!Semantic::PermitOnFirstPermit.stops_after(false));
        assert!(Semantic::DenyOnFirstDeny.stops_after(false));
        assert!(!Semantic::ExecuteAll.stops_after(false));
    }

    #[test]
    fn answers_have_the_documented_shape() {
        let d = Decision::deny(
            Reason::new(ReasonCode::ScopeMissing, Some(1), "not in scope"),
            None,
        );
        let a = answer(&d, "v1");
        assert_eq!(
            a,
            json!({"decision": false, "context": {"reason_codes": ["scope_missing"],
                   "reasons": [{"code": "scope_missing", "hop": 1, "message": "not in scope"}],
                   "pack_version": "v1"}})
        );
        let b = answers(&[d.clone(), d], "v1");
        assert_eq!(b["evaluations"].as_array().unwrap().len(), 2);
        assert_eq!(
            metadata("https://pdp.c.example"),
            json!({"policy_decision_point": "https://pdp.c.example",
                   "access_evaluation_endpoint": "https://pdp.c.example/access/v1/evaluation",
                   "access_evaluations_endpoint": "https://pdp.c.example/access/v1/evaluations"})
        );
        assert_eq!(
            error(400, "m"),
            json!({"error": {"status": 400, "message": "m"}})
        );
    }

    #[test]
    fn clipped_messages_stay_on_char_boundaries() {
        let long = "é".repeat(300);
        let c = clip(&long);
        assert_eq!(c.chars().count(), 201);
        assert_eq!(clip("short"), "short");
    }
}
