//! The Cedar request for a verified chain, and its evaluation (on the slice of the policy set
//! that can apply to it: `slice.rs`).
//!
//! Building a Cedar request costs more than evaluating the demo policies on it (Cedar turns
//! every context value into its own representation), and a gateway sees the same few shapes of
//! request over and over: the same agents, origins, actions and resources, only the tokens
//! differ. So each [`Engine`] keeps a small memo of the requests it built, keyed by every input
//! the request is built from (compared in full: a fast hash only picks the bucket), with the
//! slice of the policy set the request is evaluated against. Cedar still evaluates every
//! request; only its construction is remembered.
//!
//! **Memo bound.** At most [`MEMO_ENTRIES`] requests and [`MEMO_BYTES`] bytes by default,
//! tables included, first in, first out (`fifo.rs`). Requests whose inputs exceed
//! [`MEMO_MAX_INPUT`] bytes are built every time and never kept. A kept one is accounted at
//! [`MEMO_ENTRY_BYTES`] plus [`MEMO_BYTES_PER_INPUT_BYTE`] times its input bytes, an upper
//! estimate of what the key's copy and Cedar's own hold (a demo request, about 270 input
//! bytes, holds 5.9 KiB in 39 allocations), plus a quarter for the allocator's fragmentation
//! when the memo churns (`benches/src/bin/rss.rs` measures 6.7 KiB of RSS per demo request
//! when every call brings a new one; it is accounted at 7.8 KiB).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision as CedarDecision, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, RestrictedExpression, Schema,
};
use custody_policy::CedarPack;
use serde_json::{json, Value};

use crate::decision::ChainSummary;
use crate::fifo::{random_seed, with_churn, Cost, Fifo, Prehashed, Streaming};
use crate::request::{ResourceRef, DEFAULT_RESOURCE_TYPE};
use crate::slice::SlicedPolicySet;

/// The default bound on remembered Cedar requests.
pub const MEMO_ENTRIES: usize = 1024;

/// The default bound on the memo's accounted bytes (4 MiB).
pub const MEMO_BYTES: usize = 4 << 20;

/// Requests built from more input bytes than this are not remembered.
pub const MEMO_MAX_INPUT: usize = 2048;

/// What a remembered request is accounted at besides its inputs.
pub const MEMO_ENTRY_BYTES: usize = 4096;

/// What each input byte of a remembered request is accounted at (the key's copy, Cedar's
/// copies, their containers).
pub const MEMO_BYTES_PER_INPUT_BYTE: usize = 8;

/// What Cedar said.
pub(crate) struct Outcome {
    pub allowed: bool,
    pub policies: Vec<String>,
    /// Policies that failed to evaluate, `(id, Cedar's message)`, sorted by id. Cedar skips
    /// them; custody denies (`policy_error`).
    pub errors: Vec<(String, String)>,
}

/// Why no Cedar request could be built for a verified chain: the schema refuses it, or an
/// entity type name does not parse. Both are `invalid_request`.
#[derive(Debug)]
pub(crate) struct BuildError(pub String);

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

/// A verifier's Cedar side: the sliced policy set, the entity types parsed once, the memo.
pub(crate) struct Engine {
    policies: SlicedPolicySet,
    /// `None` never happens (the four names parse); the string route stands in for it.
    types: Option<Types>,
    /// Each policy's id as the decision names it (`PolicyId`'s `Display`), written once.
    names: HashMap<PolicyId, String, BuildHasherDefault<Prehashed>>,
    memo: Fifo<Memo>,
    seed: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policies", &self.policies)
            .field("memo", &self.memo.len())
            .finish()
    }
}

struct Types {
    agent: EntityTypeName,
    user: EntityTypeName,
    action: EntityTypeName,
    resource: EntityTypeName,
}

impl Types {
    fn new() -> Option<Self> {
        let t = |n: &str| EntityTypeName::from_str(n).ok();
        Some(Types {
            agent: t("Agent")?,
            user: t("User")?,
            action: t("Action")?,
            resource: t(DEFAULT_RESOURCE_TYPE)?,
        })
    }
}

/// A remembered request: its inputs, the request, and the slice it is evaluated against.
struct Memo {
    /// `None` for a request built and not kept.
    key: Option<Key>,
    request: cedar_policy::Request,
    slice: Arc<PolicySet>,
    cost: usize,
}

impl Cost for Memo {
    fn cost(&self) -> usize {
        self.cost
    }
}

/// An [`Input`], owned.
struct Key {
    actor: Option<String>,
    summary: ChainSummary,
    origin_domain: String,
    action: String,
    resource: Option<ResourceRef>,
    audience: String,
    txn: String,
    peer: String,
    request: Option<Value>,
}

impl Input<'_> {
    /// Whether `k` holds exactly these inputs (the summary's `txn` is not one: Cedar sees
    /// [`Input::txn`]).
    fn is(&self, k: &Key) -> bool {
        let s = self.summary;
        let t = &k.summary;
        self.actor == k.actor.as_deref()
            && self.action == k.action
            && self.resource == k.resource.as_ref()
            && self.audience == k.audience
            && self.origin_domain == k.origin_domain
            && s.origin == t.origin
            && s.depth == t.depth
            && s.actors == t.actors
            && s.domains == t.domains
            && s.scopes == t.scopes
            && s.cross_domain == t.cross_domain
            && self.txn == k.txn
            && self.peer == k.peer
            && self.request == k.request.as_ref()
    }

    /// The bucket: the inputs that vary most between requests (who, on whose behalf, what,
    /// on what, for whom); the others follow from them in practice, and [`Input::is`]
    /// compares them all.
    fn hash(&self, seed: u64) -> u64 {
        let mut h = Streaming(seed);
        self.actor.hash(&mut h);
        self.summary.origin.hash(&mut h);
        self.action.hash(&mut h);
        self.resource.hash(&mut h);
        self.audience.hash(&mut h);
        self.peer.hash(&mut h);
        self.txn.hash(&mut h);
        self.request.hash(&mut h);
        h.finish()
    }

    /// The input's bytes (strings, and an estimate for `context.request`).
    fn size(&self) -> usize {
        let s = self.summary;
        let list = |v: &[String]| v.iter().map(|x| x.len() + 8).sum::<usize>();
        self.actor.map_or(0, str::len)
            + self.action.len()
            + self.resource.map_or(0, |r| r.type_name.len() + r.id.len())
            + self.audience.len()
            + self.origin_domain.len()
            + s.origin.len()
            + list(&s.actors)
            + list(&s.domains)
            + list(&s.scopes)
            + self.txn.len()
            + self.peer.len()
            + self.request.map_or(0, json_size)
    }

    fn to_key(&self) -> Key {
        Key {
            actor: self.actor.map(str::to_owned),
            summary: ChainSummary {
                txn: String::new(),
                ..self.summary.clone()
            },
            origin_domain: self.origin_domain.to_owned(),
            action: self.action.to_owned(),
            resource: self.resource.cloned(),
            audience: self.audience.to_owned(),
            txn: self.txn.to_owned(),
            peer: self.peer.to_owned(),
            request: self.request.cloned(),
        }
    }
}

/// An estimate of a JSON value's size: its strings, and 8 bytes for anything else.
fn json_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 8,
        Value::Array(a) => 8 + a.iter().map(json_size).sum::<usize>(),
        Value::Object(m) => 8 + m.iter().map(|(k, v)| k.len() + json_size(v)).sum::<usize>(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
    }
}

impl Engine {
    /// The Cedar side of a verifier; a memo of `memo_entries` requests and `memo_bytes` bytes
    /// (0 turns it off).
    pub fn new(policies: SlicedPolicySet, memo_entries: usize, memo_bytes: usize) -> Self {
        let names = policies
            .whole()
            .policies()
            .map(|p| (p.id().clone(), p.id().to_string()))
            .collect();
        Engine {
            policies,
            types: Types::new(),
            names,
            memo: Fifo::new(memo_entries, memo_bytes, with_churn(MEMO_ENTRY_BYTES)),
            seed: random_seed(),
        }
    }

    /// Requests remembered now.
    pub fn memo_len(&self) -> usize {
        self.memo.len()
    }

    /// Forgets every remembered request.
    pub fn memo_clear(&self) {
        self.memo.clear();
    }

    /// `(entries, bytes)` bounds of the memo.
    pub fn memo_capacity(&self) -> (usize, usize) {
        (self.memo.capacity(), self.memo.capacity_bytes())
    }

    /// `T::"id"` for one of the four fixed types, without parsing `T` again.
    fn uid(
        &self,
        pick: fn(&Types) -> &EntityTypeName,
        name: &str,
        id: &str,
    ) -> Result<EntityUid, String> {
        match &self.types {
            Some(t) => Ok(EntityUid::from_type_name_and_id(
                pick(t).clone(),
                EntityId::new(id),
            )),
            None => entity(name, id),
        }
    }

    /// The request and its slice, from the memo or built (and remembered if small).
    fn request(&self, pack: &CedarPack, input: &Input<'_>) -> Result<Arc<Memo>, BuildError> {
        let hash = input.hash(self.seed);
        let is_it = |m: &Memo| m.key.as_ref().is_some_and(|k| input.is(k));
        if let Some(m) = self.memo.get(hash, is_it) {
            return Ok(m);
        }
        let request = self.build(pack.schema.as_ref(), pack.schema_json.as_ref(), input)?;
        let slice = self.policies.slice_for(&request, &pack.entities);
        let size = input.size();
        let keep = !self.memo.is_off() && size <= MEMO_MAX_INPUT;
        let memo = Arc::new(Memo {
            key: keep.then(|| input.to_key()),
            request,
            slice,
            cost: with_churn(MEMO_ENTRY_BYTES + MEMO_BYTES_PER_INPUT_BYTE * size),
        });
        if keep {
            self.memo.insert(hash, Arc::clone(&memo));
        }
        Ok(memo)
    }

    /// The Cedar request. With a schema, the context is read the schema's way (entity
    /// references, extension values) and the whole request is validated against it, so a
    /// `context.request` attribute of the wrong type, or missing, is refused here rather than
    /// making a policy fail to evaluate (which Cedar would skip).
    fn build(
        &self,
        schema: Option<&Schema>,
        schema_json: Option<&Value>,
        input: &Input<'_>,
    ) -> Result<cedar_policy::Request, BuildError> {
        let principal = match input.actor {
            Some(a) => self.uid(|t| &t.agent, "Agent", a),
            None => self.uid(|t| &t.user, "User", &input.summary.origin),
        }
        .map_err(BuildError)?;
        let action = self
            .uid(|t| &t.action, "Action", input.action)
            .map_err(BuildError)?;
        let resource = match input.resource {
            Some(r) => entity(&r.type_name, &r.id),
            None => self.uid(|t| &t.resource, DEFAULT_RESOURCE_TYPE, input.audience),
        }
        .map_err(BuildError)?;
        let Some(schema) = schema else {
            let context = context(input).map_err(BuildError)?;
            return cedar_policy::Request::new(principal, action, resource, context, None)
                .map_err(|e| BuildError(e.to_string()));
        };
        let json = context_json(input);
        let refused = |e: &dyn std::fmt::Display| {
            let why = schema_json
                .and_then(|s| custody_policy::context_mismatch(s, input.action, &json))
                .unwrap_or_else(|| e.to_string());
            BuildError(format!(
                "the Cedar request does not fit the pack's schema: {why}"
            ))
        };
        let context = Context::from_json_value(json.clone(), Some((schema, &action)))
            .map_err(|e| refused(&e))?;
        cedar_policy::Request::new(principal, action, resource, context, Some(schema))
            .map_err(|e| refused(&e))
    }

    pub fn evaluate(&self, pack: &CedarPack, input: &Input<'_>) -> Result<Outcome, BuildError> {
        let memo = self.request(pack, input)?;
        let response = Authorizer::new().is_authorized(&memo.request, &memo.slice, &pack.entities);
        let diagnostics = response.diagnostics();
        // Cedar hands the determining policies over as a hash set: sorted, the order is stable.
        let name = |id: &PolicyId| {
            self.names
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.to_string())
        };
        let mut ids: Vec<String> = diagnostics.reason().map(name).collect();
        ids.sort_unstable();
        let mut errors: Vec<(String, String)> = diagnostics
            .errors()
            .map(|e| match e {
                AuthorizationError::PolicyEvaluationError(p) => {
                    (name(p.policy_id()), p.inner().to_string())
                }
            })
            .collect();
        errors.sort();
        Ok(Outcome {
            allowed: response.decision() == CedarDecision::Allow,
            policies: ids,
            errors,
        })
    }
}

pub(crate) fn entity(type_name: &str, id: &str) -> Result<EntityUid, String> {
    let t = EntityTypeName::from_str(type_name)
        .map_err(|_| format!("`{type_name}` is not a Cedar entity type name"))?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
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

/// One attribute of the context record, before it is written for Cedar.
enum Field<'a> {
    Str(&'a str),
    Long(usize),
    Strings(&'a [String]),
    Bool(bool),
    /// `context.request`: the request's object, or an empty record.
    Record(Option<&'a Value>),
}

/// The context record (DESIGN.md's shape), listed once: the direct and the JSON routes below
/// both write exactly these attributes.
fn fields<'a>(input: &Input<'a>) -> [(&'static str, Field<'a>); 10] {
    let s = input.summary;
    [
        ("origin", Field::Str(&s.origin)),
        ("origin_domain", Field::Str(input.origin_domain)),
        ("depth", Field::Long(s.depth)),
        ("actors", Field::Strings(&s.actors)),
        ("domains", Field::Strings(&s.domains)),
        ("scopes", Field::Strings(&s.scopes)),
        ("txn", Field::Str(input.txn)),
        ("cross_domain", Field::Bool(s.cross_domain)),
        ("peer", Field::Str(input.peer)),
        ("request", Field::Record(input.request)),
    ]
}

/// The context built straight from restricted expressions (no JSON round trip), or `None`
/// when a value of `context.request` needs Cedar's JSON reader to decide.
fn direct_context(input: &Input<'_>) -> Option<Context> {
    let mut pairs = Vec::with_capacity(10);
    for (name, field) in fields(input) {
        let value = match field {
            Field::Str(v) => RestrictedExpression::new_string(v.to_owned()),
            Field::Long(n) => RestrictedExpression::new_long(i64::try_from(n).ok()?),
            Field::Strings(items) => strings(items),
            Field::Bool(b) => RestrictedExpression::new_bool(b),
            Field::Record(Some(v)) => restricted(v)?,
            Field::Record(None) => RestrictedExpression::new_record(Vec::new()).ok()?,
        };
        pairs.push((name.to_owned(), value));
    }
    Context::from_pairs(pairs).ok()
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
    Context::from_json_value(context_json(input), None).map_err(|e| e.to_string())
}

/// The context record as JSON, for Cedar's JSON reader (with a schema, or when the direct
/// route declines).
fn context_json(input: &Input<'_>) -> Value {
    let mut m = serde_json::Map::with_capacity(10);
    for (name, field) in fields(input) {
        let value = match field {
            Field::Str(v) => json!(v),
            Field::Long(n) => json!(i64::try_from(n).unwrap_or(i64::MAX)),
            Field::Strings(items) => json!(items),
            Field::Bool(b) => json!(b),
            Field::Record(v) => v.cloned().unwrap_or_else(|| json!({})),
        };
        m.insert(name.to_owned(), value);
    }
    Value::Object(m)
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
