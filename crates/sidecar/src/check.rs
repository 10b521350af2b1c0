//! `envoy.service.auth.v3.Authorization/Check`: the HTTP request Envoy describes becomes a
//! custody [`Request`], and the [`Decision`] becomes Envoy's answer.
//!
//! | request field | from |
//! |---|---|
//! | `tokens` | the `custody-chain` header (upstream tokens, origin first, comma-separated), then the `authorization: Bearer` token (the presented one, last) |
//! | `txn_token` | the `txn-token` header |
//! | `peer` | `attributes.source.principal` (Envoy: the client certificate's URI SAN); empty = none |
//! | `action` | `METHOD path` (the path without query string or fragment, as Envoy forwards it), or the value of the `--action-header` header |
//! | `audience` | `--audience`, never `Host`/`:authority` |
//! | `now` | the system clock; the `custody-now` header only under `--allow-request-time` |
//!
//! Allow: gRPC OK, `x-custody-origin`, `x-custody-actor` and `x-custody-depth` set on the
//! upstream request (replacing any a client sent) and the chain summary in dynamic metadata.
//! Deny: `PERMISSION_DENIED` with an HTTP 403 (or 401 with `www-authenticate` when the bearer
//! token is missing or a token is invalid) and a JSON body with the reason codes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use custody_verifier::{Decision, Limits, Reason, ReasonCode, Request};
use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue,
    HeaderValueOption, HttpResponse, HttpStatus, HttpStatusCode, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value};
use envoy_types::pb::google::rpc;
use serde_json::json;

use crate::config::Settings;

/// The header carrying the upstream tokens.
pub const CHAIN_HEADER: &str = "custody-chain";
/// The header carrying a Txn-Token.
pub const TXN_HEADER: &str = "txn-token";
/// The header carrying a request-supplied time (only under `--allow-request-time`).
pub const NOW_HEADER: &str = "custody-now";
/// Headers set on allowed requests.
pub const ORIGIN_HEADER: &str = "x-custody-origin";
/// The current actor.
pub const ACTOR_HEADER: &str = "x-custody-actor";
/// The number of actors.
pub const DEPTH_HEADER: &str = "x-custody-depth";

const GRPC_OK: i32 = 0;
const GRPC_PERMISSION_DENIED: i32 = 7;
const REALM: &str = "Bearer realm=\"custody\"";

/// Why a Check request could not become a custody request; both are `invalid_request`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MapError {
    /// No `authorization: Bearer` token: 401.
    NoToken(String),
    /// Anything else: 403.
    Invalid(String),
}

impl MapError {
    pub(crate) fn decision(&self) -> Decision {
        match self {
            MapError::NoToken(m) | MapError::Invalid(m) => Decision::invalid_request(m.clone()),
        }
    }
}

/// The request headers Envoy sent: the merged map, or the raw list under `encode_raw_headers`.
struct Headers<'a> {
    map: &'a HashMap<String, String>,
    raw: Option<&'a [HeaderValue]>,
}

impl Headers<'_> {
    /// One header's value; a header repeated in the raw list is refused.
    fn get(&self, name: &str) -> Result<Option<Cow<'_, str>>, MapError> {
        let Some(raw) = self.raw else {
            return Ok(self.map.get(name).map(|v| Cow::Borrowed(v.as_str())));
        };
        let mut found = raw.iter().filter(|h| h.key.eq_ignore_ascii_case(name));
        let Some(first) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(MapError::Invalid(format!("more than one `{name}` header")));
        }
        if first.raw_value.is_empty() {
            return Ok(Some(Cow::Borrowed(first.value.as_str())));
        }
        match std::str::from_utf8(&first.raw_value) {
            Ok(v) => Ok(Some(Cow::Owned(v.to_owned()))),
            Err(_) => Err(MapError::Invalid(format!(
                "the `{name}` header is not UTF-8"
            ))),
        }
    }
}

/// Builds the custody request for one Check call.
pub(crate) fn map_request(
    check: &CheckRequest,
    settings: &Settings,
    limits: &Limits,
) -> Result<Request, MapError> {
    let attrs = check.attributes.as_ref();
    let http = attrs
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
        .ok_or_else(|| MapError::Invalid("the check request describes no HTTP request".into()))?;
    let headers = Headers {
        map: &http.headers,
        raw: http.header_map.as_ref().map(|m| m.headers.as_slice()),
    };
    let presented = bearer(headers.get("authorization")?.as_deref())?;
    let mut tokens = match headers.get(CHAIN_HEADER)? {
        Some(chain) => split_chain(&chain, limits)?,
        None => Vec::new(),
    };
    tokens.push(presented);
    let txn_token = headers
        .get(TXN_HEADER)?
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let action = match &settings.action_header {
        Some(name) => match headers.get(name)? {
            Some(a) if !a.trim().is_empty() => a.trim().to_owned(),
            _ => {
                return Err(MapError::Invalid(format!(
                    "the `{name}` header (the action) is missing"
                )))
            }
        },
        None => method_path(&http.method, &http.path)?,
    };
    let peer = attrs
        .and_then(|a| a.source.as_ref())
        .map(|s| s.principal.as_str())
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    let now = match headers.get(NOW_HEADER)? {
        None => None,
        Some(_) if !settings.allow_request_time => {
            return Err(MapError::Invalid(format!(
                "a request-supplied time (`{NOW_HEADER}`) is refused: the sidecar was not started with `--allow-request-time`"
            )))
        }
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            MapError::Invalid(format!("`{NOW_HEADER}` must be unix seconds"))
        })?),
    };
    Ok(Request {
        tokens,
        txn_token,
        audience: settings.audience.clone().ok_or_else(|| {
            MapError::Invalid(
                "the sidecar was started without `--audience ID`: Check cannot know which \
                 service the tokens must be addressed to (it never trusts `Host`)"
                    .into(),
            )
        })?,
        action,
        resource: None,
        peer,
        now,
        context: None,
    })
}

/// The token of an `authorization: Bearer <token>` header.
fn bearer(value: Option<&str>) -> Result<String, MapError> {
    let missing = || MapError::NoToken("no `authorization: Bearer` token".into());
    let value = value.ok_or_else(missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(missing());
    }
    Ok(token.to_owned())
}

/// The `custody-chain` header's tokens; refuses more than the request may hold before
/// splitting, so thousands of entries cost nothing.
fn split_chain(value: &str, limits: &Limits) -> Result<Vec<String>, MapError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let upstream_max = limits.tokens_per_request.saturating_sub(1);
    let commas = value.bytes().filter(|b| *b == b',').count();
    if commas >= upstream_max {
        return Err(MapError::Invalid(format!(
            "`{CHAIN_HEADER}` holds more than {upstream_max} tokens"
        )));
    }
    value
        .split(',')
        .map(|t| match t.trim() {
            "" => Err(MapError::Invalid(format!(
                "`{CHAIN_HEADER}` has an empty entry"
            ))),
            t => Ok(t.to_owned()),
        })
        .collect()
}

/// `METHOD path`, the path without its query string or fragment.
fn method_path(method: &str, path: &str) -> Result<String, MapError> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if method.is_empty() || !path.starts_with('/') {
        return Err(MapError::Invalid(
            "the HTTP request has no method or no absolute path".into(),
        ));
    }
    Ok(format!("{method} {path}"))
}

/// One Check call, decided: the custody request it mapped to (`None` when it did not map), the
/// decision and Envoy's answer.
#[derive(Debug)]
pub struct Checked {
    /// The custody request, when the Check request mapped to one.
    pub request: Option<Request>,
    /// The decision (shared with the decision cache).
    pub decision: Arc<Decision>,
    /// Envoy's answer.
    pub response: CheckResponse,
}

/// The Check handler but the verifier: maps `check` to a custody request, has `decide` decide
/// it (the server: its decision cache, then the verifier), and builds Envoy's answer. A request
/// that does not map is denied with `invalid_request` without calling `decide`.
pub(crate) fn answer(
    check: &CheckRequest,
    settings: &Settings,
    limits: &Limits,
    pack: &str,
    decide: impl FnOnce(&Request) -> Arc<Decision>,
) -> Checked {
    match map_request(check, settings, limits) {
        Ok(req) => {
            let decision = decide(&req);
            let response = response(&decision, false, pack);
            Checked {
                request: Some(req),
                decision,
                response,
            }
        }
        Err(e) => {
            let decision = Arc::new(e.decision());
            let response = response(&decision, matches!(e, MapError::NoToken(_)), pack);
            Checked {
                request: None,
                decision,
                response,
            }
        }
    }
}

/// Whether a denial is about the credential itself (401) rather than what it allows (403).
fn unauthenticated(code: ReasonCode) -> bool {
    matches!(
        code,
        ReasonCode::MalformedToken
            | ReasonCode::TokenTooLarge
            | ReasonCode::WrongTokenType
            | ReasonCode::AlgNotAllowed
            | ReasonCode::UnknownIssuer
            | ReasonCode::UnknownKey
            | ReasonCode::BadSignature
            | ReasonCode::MissingClaim
            | ReasonCode::Expired
            | ReasonCode::NotYetValid
            | ReasonCode::IssuedInFuture
            | ReasonCode::LifetimeTooLong
            | ReasonCode::AudienceMismatch
    )
}

/// Envoy's answer for a decision. `no_token` marks the missing-bearer denial.
pub(crate) fn response(decision: &Decision, no_token: bool, pack: &str) -> CheckResponse {
    if decision.is_allowed() {
        allow(decision, pack)
    } else {
        deny(decision, no_token, pack)
    }
}

fn allow(decision: &Decision, pack: &str) -> CheckResponse {
    let mut headers = Vec::new();
    let mut remove = Vec::new();
    let mut metadata = HashMap::new();
    metadata.insert("decision".to_owned(), string("allow"));
    metadata.insert("pack_version".to_owned(), string(pack));
    if let Some(c) = &decision.chain {
        headers.push(set_header(ORIGIN_HEADER, &header_safe(&c.origin)));
        headers.push(set_header(DEPTH_HEADER, &c.depth.to_string()));
        match c.actors.last() {
            Some(a) => headers.push(set_header(ACTOR_HEADER, &header_safe(a))),
            None => remove.push(ACTOR_HEADER.to_owned()),
        }
        metadata.insert("origin".into(), string(&c.origin));
        metadata.insert("actors".into(), list(&c.actors));
        metadata.insert("domains".into(), list(&c.domains));
        metadata.insert("scopes".into(), list(&c.scopes));
        metadata.insert("depth".into(), number(c.depth as f64));
        metadata.insert("txn".into(), string(&c.txn));
        metadata.insert(
            "cross_domain".into(),
            Value {
                kind: Some(Kind::BoolValue(c.cross_domain)),
            },
        );
    } else {
        remove.extend([ORIGIN_HEADER, ACTOR_HEADER, DEPTH_HEADER].map(str::to_owned));
    }
    metadata.insert("policies".into(), list(&decision.policies));
    CheckResponse {
        status: Some(rpc::Status {
            code: GRPC_OK,
            message: String::new(),
            details: Vec::new(),
        }),
        dynamic_metadata: Some(Struct { fields: metadata }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove: remove,
            ..OkHttpResponse::default()
        })),
    }
}

fn deny(decision: &Decision, no_token: bool, pack: &str) -> CheckResponse {
    let first = decision.code().unwrap_or(ReasonCode::InvalidRequest);
    let status = if no_token || unauthenticated(first) {
        HttpStatusCode::Unauthorized
    } else {
        HttpStatusCode::Forbidden
    };
    let mut headers = vec![set_header("content-type", "application/json")];
    let challenge = if no_token {
        Some(REALM.to_owned())
    } else if unauthenticated(first) {
        Some(format!(
            "{REALM}, error=\"invalid_token\", error_description=\"{}\"",
            first.as_str()
        ))
    } else if first == ReasonCode::ScopeMissing {
        Some(format!("{REALM}, error=\"insufficient_scope\""))
    } else {
        None
    };
    if let Some(c) = challenge {
        headers.push(set_header("www-authenticate", &c));
    }
    let body = json!({"decision": "deny", "reasons": reasons_json(&decision.reasons)}).to_string();
    let codes: Vec<String> = decision
        .reasons
        .iter()
        .map(|r| r.code.as_str().to_owned())
        .collect();
    let mut metadata = HashMap::new();
    metadata.insert("decision".to_owned(), string("deny"));
    metadata.insert("codes".to_owned(), list(&codes));
    metadata.insert("pack_version".to_owned(), string(pack));
    CheckResponse {
        status: Some(rpc::Status {
            code: GRPC_PERMISSION_DENIED,
            message: first.as_str().to_owned(),
            details: Vec::new(),
        }),
        dynamic_metadata: Some(Struct { fields: metadata }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: status as i32,
            }),
            headers,
            body,
        })),
    }
}

fn reasons_json(reasons: &[Reason]) -> serde_json::Value {
    reasons
        .iter()
        .map(|r| json!({"code": r.code.as_str(), "hop": r.hop, "message": r.message}))
        .collect()
}

fn set_header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            ..HeaderValue::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

/// A header value: visible ASCII kept, everything else (and `%`) percent-encoded, so no
/// subject can inject a header or break Envoy's header validation.
pub(crate) fn header_safe(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn list(items: &[String]) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue {
            values: items.iter().map(|s| string(s)).collect(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Peer, Request as AttrRequest,
    };
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;

    fn settings() -> Settings {
        crate::config::Settings::from_args(&crate::ServeArgs {
            audience: Some("spiffe://c.example/orders".into()),
            ..crate::ServeArgs::default()
        })
        .unwrap()
    }

    fn check(headers: &[(&str, &str)], principal: &str) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(Peer {
                    principal: principal.into(),
                    ..Peer::default()
                }),
                request: Some(AttrRequest {
                    http: Some(HttpRequest {
                        method: "GET".into(),
                        path: "/orders/7?x=1".into(),
                        host: "evil.example".into(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| ((*k).into(), (*v).into()))
                            .collect(),
                        ..HttpRequest::default()
                    }),
                    ..AttrRequest::default()
                }),
                ..AttributeContext::default()
            }),
        }
    }

    #[test]
    fn maps_headers_to_the_request() {
        let c = check(
            &[
                ("authorization", "Bearer t2"),
                ("custody-chain", "t0, t1"),
                ("txn-token", "tx"),
                ("host", "x"),
            ],
            "spiffe://b.example/agent/alice",
        );
        let r = map_request(&c, &settings(), &Limits::default()).unwrap();
        assert_eq!(r.tokens, ["t0", "t1", "t2"]);
        assert_eq!(r.txn_token.as_deref(), Some("tx"));
        assert_eq!(r.action, "GET /orders/7");
        assert_eq!(r.audience, "spiffe://c.example/orders");
        assert_eq!(r.peer.as_deref(), Some("spiffe://b.example/agent/alice"));
        assert_eq!(r.now, None);
    }

    #[test]
    fn missing_or_foreign_scheme_is_no_token() {
        for h in [
            vec![],
            vec![("authorization", "Basic abc")],
            vec![("authorization", "Bearer  ")],
        ] {
            let r = map_request(&check(&h, ""), &settings(), &Limits::default());
            assert!(matches!(r, Err(MapError::NoToken(_))), "{h:?}");
        }
    }

    #[test]
    fn refuses_request_time_and_long_chains() {
        let c = check(&[("authorization", "Bearer t"), ("custody-now", "1")], "");
        assert!(matches!(
            map_request(&c, &settings(), &Limits::default()),
            Err(MapError::Invalid(_))
        ));
        let chain = vec!["x"; 5000].join(",");
        let c = check(
            &[("authorization", "Bearer t"), ("custody-chain", &chain)],
            "",
        );
        assert!(matches!(
            map_request(&c, &settings(), &Limits::default()),
            Err(MapError::Invalid(_))
        ));
        let c = check(
            &[("authorization", "Bearer t"), ("custody-chain", "a,,b")],
            "",
        );
        assert!(matches!(
            map_request(&c, &settings(), &Limits::default()),
            Err(MapError::Invalid(_))
        ));
    }

    #[test]
    fn action_header_replaces_method_path() {
        let mut s = settings();
        s.action_header = Some("x-action".into());
        let c = check(
            &[("authorization", "Bearer t"), ("x-action", "orders:read")],
            "",
        );
        assert_eq!(
            map_request(&c, &s, &Limits::default()).unwrap().action,
            "orders:read"
        );
        let c = check(&[("authorization", "Bearer t")], "");
        assert!(matches!(
            map_request(&c, &s, &Limits::default()),
            Err(MapError::Invalid(_))
        ));
    }

    #[test]
    fn header_values_are_made_safe() {
        assert_eq!(header_safe("a.example|user:alice"), "a.example|user:alice");
        assert_eq!(header_safe("a b\r\nx%"), "a%20b%0D%0Ax%25");
    }

    #[test]
    fn denials_pick_401_or_403() {
        let d = Decision::deny(Reason::new(ReasonCode::Expired, Some(0), "x"), None);
        let r = response(&d, false, "v");
        let Some(HttpResponse::DeniedResponse(den)) = r.http_response else {
            panic!()
        };
        assert_eq!(den.status.unwrap().code, 401);
        assert!(den
            .headers
            .iter()
            .any(|h| h.header.as_ref().unwrap().key == "www-authenticate"));
        let d = Decision::deny(Reason::new(ReasonCode::ScopeEscalation, Some(1), "x"), None);
        let r = response(&d, false, "v");
        assert_eq!(r.status.unwrap().code, GRPC_PERMISSION_DENIED);
        let Some(HttpResponse::DeniedResponse(den)) = r.http_response else {
            panic!()
        };
        assert_eq!(den.status.unwrap().code, 403);
        assert!(den.body.contains("scope_escalation"));
    }
}
