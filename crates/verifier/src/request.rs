//! The request: one call to decide, the same in the library, the CLI and gRPC.

use std::fmt;

use custody_id::SpiffeId;
use custody_jose::{json, Limits};
use serde_json::{Map, Value};

use crate::{Reason, ReasonCode};

/// What a resource is, for Cedar: `T::"I"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    /// The Cedar entity type, e.g. `Order` or `Shop::Order`.
    pub type_name: String,
    /// The entity id.
    pub id: String,
}

/// The Cedar entity type of a request's resource when it names none: the resource is then
/// `Resource::"<audience>"` ([`Request::resource_or_default`]).
pub const DEFAULT_RESOURCE_TYPE: &str = "Resource";

/// One call to decide (DESIGN.md, "The request").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// Tokens, origin first; the last one is the credential the caller presented.
    pub tokens: Vec<String>,
    /// A Txn-Token from the `Txn-Token` header.
    pub txn_token: Option<String>,
    /// This service's identifier; the presented token's `aud` must contain it exactly.
    pub audience: String,
    /// The operation, e.g. `orders:read`.
    pub action: String,
    /// The resource; default `Resource::"<audience>"`.
    pub resource: Option<ResourceRef>,
    /// The caller's authenticated SPIFFE ID.
    pub peer: Option<String>,
    /// Unix seconds to decide at; default the system clock.
    pub now: Option<i64>,
    /// A JSON object passed to Cedar as `context.request`.
    pub context: Option<Value>,
    /// The caller's X.509-SVID chain, leaf first, one PEM certificate per string (empty: none).
    pub peer_certificates: Vec<String>,
    /// A WIMSE workload identity token (the `Workload-Identity-Token` header).
    pub wit: Option<String>,
    /// A WIMSE workload proof token (the `Workload-Proof-Token` header).
    pub wpt: Option<String>,
    /// A DPoP proof (RFC 9449; the `DPoP` header).
    pub dpop: Option<String>,
    /// The URI this call was made to, as the gateway knows it (never from `Host`): a WPT's
    /// `aud` and a DPoP proof's `htu` must equal it without query and fragment.
    pub target_uri: Option<String>,
    /// The call's HTTP method; a DPoP proof's `htm` must equal it.
    pub http_method: Option<String>,
    /// Headers a WPT's `oth` may cover: lower-case names to values.
    pub proof_headers: Option<std::collections::BTreeMap<String, String>>,
}

impl Request {
    /// Whether the request carries any proof of the caller besides `peer`.
    pub fn has_caller_proof(&self) -> bool {
        !self.peer_certificates.is_empty()
            || self.wit.is_some()
            || self.wpt.is_some()
            || self.dpop.is_some()
    }
}

/// Why a request document could not become a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// Not JSON at all (CLI exit status 2).
    Unreadable(String),
    /// JSON, but not a valid request: denied with `invalid_request`.
    Invalid(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Unreadable(m) => write!(f, "unreadable request: {m}"),
            RequestError::Invalid(m) => write!(f, "invalid request: {m}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Why a parsed JSON value is not a valid request ([`Request::from_value`]); its text is the
/// `invalid_request` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRequest(pub String);

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidRequest {}

impl From<&str> for InvalidRequest {
    fn from(m: &str) -> Self {
        InvalidRequest(m.to_owned())
    }
}

impl From<String> for InvalidRequest {
    fn from(m: String) -> Self {
        InvalidRequest(m)
    }
}

/// Every field of a request document (DESIGN.md, "The request", and the caller proofs).
pub const REQUEST_FIELDS: [&str; 15] = [
    "tokens",
    "txn_token",
    "audience",
    "action",
    "resource",
    "peer",
    "now",
    "context",
    "peer_certificates",
    "wit",
    "wpt",
    "dpop",
    "target_uri",
    "http_method",
    "proof_headers",
];

impl Request {
    /// Parses a request document strictly: unknown fields, duplicate keys at any depth, wrong
    /// types and nesting over the limit are [`RequestError::Invalid`].
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Request, RequestError> {
        if bytes.len() > limits.request_bytes {
            return Err(RequestError::Invalid(format!(
                "request larger than {} bytes",
                limits.request_bytes
            )));
        }
        let doc = match json::parse(bytes, limits.json_depth) {
            Ok(v) => v,
            Err(json::JsonError::Syntax(m)) => return Err(RequestError::Unreadable(m)),
            Err(e) => return Err(RequestError::Invalid(e.to_string())),
        };
        Self::from_value(doc).map_err(|e| RequestError::Invalid(e.0))
    }

    /// Builds a request from an already parsed JSON value (no duplicate check possible here).
    pub fn from_value(doc: Value) -> Result<Request, InvalidRequest> {
        let Value::Object(mut m) = doc else {
            return Err("request must be a JSON object".into());
        };
        if let Some(unknown) = m.keys().find(|k| !REQUEST_FIELDS.contains(&k.as_str())) {
            return Err(format!("unknown field `{unknown}`").into());
        }
        let tokens = match m.remove("tokens") {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|t| match t {
                    Value::String(s) => Ok(s),
                    _ => Err("`tokens` must be a list of strings".to_owned()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err("`tokens` must be a list of strings".into()),
            None => return Err("missing field `tokens`".into()),
        };
        Ok(Request {
            tokens,
            txn_token: opt_str(&mut m, "txn_token")?,
            audience: opt_str(&mut m, "audience")?.ok_or("missing field `audience`")?,
            action: opt_str(&mut m, "action")?.ok_or("missing field `action`")?,
            resource: resource(m.remove("resource"))?,
            peer: opt_str(&mut m, "peer")?,
            now: match m.remove("now") {
                None => None,
                Some(v) => Some(
                    v.as_i64()
                        .filter(|n| *n >= 0)
                        .ok_or("`now` must be a non-negative integer (unix seconds)")?,
                ),
            },
            context: m.remove("context"),
            peer_certificates: match m.remove("peer_certificates") {
                None => Vec::new(),
                Some(Value::Array(items)) if !items.is_empty() => items
                    .into_iter()
                    .map(|t| match t {
                        Value::String(s) => Ok(s),
                        _ => Err("`peer_certificates` must be a list of PEM strings".to_owned()),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => {
                    return Err(
                        "`peer_certificates` must be a non-empty list of PEM strings".into(),
                    )
                }
            },
            wit: opt_str(&mut m, "wit")?,
            wpt: opt_str(&mut m, "wpt")?,
            dpop: opt_str(&mut m, "dpop")?,
            target_uri: opt_str(&mut m, "target_uri")?,
            http_method: opt_str(&mut m, "http_method")?,
            proof_headers: proof_headers(m.remove("proof_headers"))?,
        })
    }

    /// The resource's type and id: the request's own, else [`DEFAULT_RESOURCE_TYPE`] and the
    /// audience. Cedar's request and a Biscuit's `resource`/`resource_type` facts both read it.
    pub fn resource_or_default(&self) -> (&str, &str) {
        match &self.resource {
            Some(r) => (r.type_name.as_str(), r.id.as_str()),
            None => (DEFAULT_RESOURCE_TYPE, self.audience.as_str()),
        }
    }

    /// The request as JSON (the form `from_json` reads).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("tokens".into(), self.tokens.clone().into());
        if let Some(t) = &self.txn_token {
            m.insert("txn_token".into(), t.clone().into());
        }
        m.insert("audience".into(), self.audience.clone().into());
        m.insert("action".into(), self.action.clone().into());
        if let Some(r) = &self.resource {
            let mut rm = Map::new();
            rm.insert("type".into(), r.type_name.clone().into());
            rm.insert("id".into(), r.id.clone().into());
            m.insert("resource".into(), Value::Object(rm));
        }
        if let Some(p) = &self.peer {
            m.insert("peer".into(), p.clone().into());
        }
        if let Some(n) = self.now {
            m.insert("now".into(), n.into());
        }
        if let Some(c) = &self.context {
            m.insert("context".into(), c.clone());
        }
        if !self.peer_certificates.is_empty() {
            m.insert(
                "peer_certificates".into(),
                self.peer_certificates.clone().into(),
            );
        }
        for (name, v) in [
            ("wit", &self.wit),
            ("wpt", &self.wpt),
            ("dpop", &self.dpop),
            ("target_uri", &self.target_uri),
            ("http_method", &self.http_method),
        ] {
            if let Some(v) = v {
                m.insert(name.into(), v.clone().into());
            }
        }
        if let Some(h) = &self.proof_headers {
            let h: Map<String, Value> = h
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            m.insert("proof_headers".into(), Value::Object(h));
        }
        Value::Object(m)
    }

    /// Checks the request's shape (for values built in code as much as parsed ones); the first
    /// failure is `invalid_request`, then `peer` is checked as a SPIFFE ID.
    pub(crate) fn check(&self, limits: &Limits) -> Result<Option<SpiffeId>, Reason> {
        let invalid = |m: String| Reason::new(ReasonCode::InvalidRequest, None, m);
        if self.tokens.is_empty() {
            return Err(invalid("`tokens` must hold at least one token".into()));
        }
        if self.tokens.len() > limits.tokens_per_request {
            return Err(invalid(format!(
                "more than {} tokens",
                limits.tokens_per_request
            )));
        }
        if self.audience.is_empty() {
            return Err(invalid("`audience` is empty".into()));
        }
        if self.action.is_empty() {
            return Err(invalid("`action` is empty".into()));
        }
        if let Some(r) = &self.resource {
            check_resource(r).map_err(invalid)?;
        }
        if let Some(n) = self.now {
            if n < 0 {
                return Err(invalid("`now` must be non-negative".into()));
            }
        }
        if let Some(c) = &self.context {
            check_context(c, limits).map_err(invalid)?;
        }
        check_proof_fields(self, limits).map_err(invalid)?;
        match &self.peer {
            None => Ok(None),
            Some(p) => limits.workload_id(p).map(Some).map_err(|e| {
                Reason::new(
                    ReasonCode::InvalidSpiffeId,
                    None,
                    format!("`peer` `{}`: {e}", crate::reason::clip(p)),
                )
            }),
        }
    }
}

fn opt_str(m: &mut Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match m.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

/// `proof_headers`: an object of lower-case header names to string values.
fn proof_headers(
    v: Option<Value>,
) -> Result<Option<std::collections::BTreeMap<String, String>>, String> {
    let Some(v) = v else { return Ok(None) };
    let Value::Object(m) = v else {
        return Err("`proof_headers` must be an object of header names to strings".into());
    };
    m.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(format!("`proof_headers.{k}` must be a string")),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// The caller-proof fields' shape: bounded sizes, a method that is an HTTP token, header
/// names in lower case. Whether the proofs hold is the proof step's to say (`peer_invalid`).
fn check_proof_fields(r: &Request, limits: &Limits) -> Result<(), String> {
    let max = limits.token_bytes;
    if r.peer_certificates.len() > MAX_PEER_CERTIFICATES {
        return Err(format!(
            "`peer_certificates` holds more than {MAX_PEER_CERTIFICATES} certificates"
        ));
    }
    if r.peer_certificates.iter().any(String::is_empty) {
        return Err("`peer_certificates` holds an empty string".into());
    }
    let pem_bytes: usize = r.peer_certificates.iter().map(String::len).sum();
    if pem_bytes > MAX_PEER_CERTIFICATE_BYTES {
        return Err(format!(
            "`peer_certificates` larger than {MAX_PEER_CERTIFICATE_BYTES} bytes"
        ));
    }
    for (name, v) in [
        ("wit", &r.wit),
        ("wpt", &r.wpt),
        ("dpop", &r.dpop),
        ("target_uri", &r.target_uri),
    ] {
        match v {
            Some(s) if s.is_empty() => return Err(format!("`{name}` is empty")),
            Some(s) if s.len() > max => return Err(format!("`{name}` longer than {max} bytes")),
            _ => {}
        }
    }
    if let Some(m) = &r.http_method {
        let token = !m.is_empty()
            && m.len() <= 32
            && m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(format!(
                "`http_method` `{}` is not an HTTP method",
                crate::reason::clip(m)
            ));
        }
    }
    if let Some(h) = &r.proof_headers {
        if h.len() > limits.claims_per_object {
            return Err(format!(
                "`proof_headers` has more than {} headers",
                limits.claims_per_object
            ));
        }
        for (k, v) in h {
            let name = !k.is_empty()
                && k.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
                });
            if !name {
                return Err(format!(
                    "`proof_headers` key `{}` is not a lower-case header name",
                    crate::reason::clip(k)
                ));
            }
            if v.len() > max {
                return Err(format!("`proof_headers.{k}` longer than {max} bytes"));
            }
        }
    }
    Ok(())
}

/// The most certificates `peer_certificates` may hold (a leaf, intermediates, a root).
pub const MAX_PEER_CERTIFICATES: usize = 8;

/// The most bytes of PEM `peer_certificates` may hold in all.
pub const MAX_PEER_CERTIFICATE_BYTES: usize = 64 << 10;

fn resource(v: Option<Value>) -> Result<Option<ResourceRef>, String> {
    let Some(v) = v else { return Ok(None) };
    let Value::Object(mut m) = v else {
        return Err("`resource` must be an object with `type` and `id`".into());
    };
    if let Some(unknown) = m.keys().find(|k| *k != "type" && *k != "id") {
        return Err(format!("unknown field `resource.{unknown}`"));
    }
    let type_name = opt_str(&mut m, "type")?.ok_or("missing field `resource.type`")?;
    let id = opt_str(&mut m, "id")?.ok_or("missing field `resource.id`")?;
    Ok(Some(ResourceRef { type_name, id }))
}

fn check_resource(r: &ResourceRef) -> Result<(), String> {
    let ok = !r.type_name.is_empty()
        && r.type_name.split("::").all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`resource.type` `{}` is not a Cedar entity type name",
            crate::reason::clip(&r.type_name)
        ))
    }
}

/// `context`: an object of strings, 64-bit integers, booleans, lists and objects; no `null`, no
/// other numbers, no key starting with `__` (Cedar would read `__entity` as a reference).
fn check_context(c: &Value, limits: &Limits) -> Result<(), String> {
    if !c.is_object() {
        return Err("`context` must be a JSON object".into());
    }
    // The request document is level 1, so `context` itself sits at level 2.
    check_context_value(c, 2, limits.json_depth)
}

fn check_context_value(v: &Value, level: usize, max: usize) -> Result<(), String> {
    match v {
        Value::Null => Err("`context` may not hold `null`".into()),
        Value::Number(n) if !(n.is_i64()) => {
            Err(format!("`context` number `{n}` is not a 64-bit integer"))
        }
        Value::Array(_) | Value::Object(_) if level > max => {
            Err(format!("`context` nests deeper than {max} levels"))
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|i| check_context_value(i, level + 1, max)),
        Value::Object(m) => m.iter().try_for_each(|(k, v)| {
            if k.starts_with("__") {
                return Err(format!("`context` key `{k}` may not start with `__`"));
            }
            check_context_value(v, level + 1, max)
        }),
        _ => Ok(()),
    }
}
