//! `envoy.service.auth.v3.Authorization/Check`: the HTTP request Envoy describes becomes a
//! custody [`Request`], and the [`Decision`] becomes Envoy's answer. The mapping and the answer
//! are [`custody_http`]'s, shared with the tower Layer (`custody-tower`); what is Envoy's own is
//! here:
//!
//! | request field | from |
//! |---|---|
//! | headers, method, path | `attributes.request.http` (the merged `headers` map, or the raw `header_map` under `encode_raw_headers`, where a repeated credential header is refused) |
//! | `peer` | `attributes.source.principal` (Envoy: the client certificate's URI SAN); empty = none. Under `--peer-from certificate` (and by default when Envoy forwards one) the client certificate instead |
//! | `peer_certificates` | `attributes.source.certificate` (URL-encoded PEM; the listener needs `include_peer_certificate: true`), validated by custody |
//! | `audience`, `action`, `target_uri` | `--audience`, `--action-header`, `--target-authority` ([`custody_http::MapSettings`]) |
//!
//! Allow: gRPC OK, `x-custody-origin`, `x-custody-actor` and `x-custody-depth` set on the
//! upstream request (replacing any a client sent) and the chain summary in dynamic metadata.
//! Deny: `PERMISSION_DENIED` with [`custody_http::denial`]'s HTTP status, challenge and JSON body.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub(crate) use custody_http::MapError;
use custody_http::{Call, Headers as _, Protocol};
pub use custody_http::{
    ACTOR_HEADER, CHAIN_HEADER, DEPTH_HEADER, DPOP_HEADER, NOW_HEADER, ORIGIN_HEADER, TXN_HEADER,
    WIT_HEADER, WPT_HEADER,
};
use custody_verifier::{Decision, Limits, ProtectedResource, ReasonCode, Request};
use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue,
    HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value};
use envoy_types::pb::google::rpc;

use crate::config::{PeerFrom, Settings};

const GRPC_OK: i32 = 0;
const GRPC_PERMISSION_DENIED: i32 = 7;

/// The request headers Envoy sent: the merged map, or the raw list under `encode_raw_headers`.
struct EnvoyHeaders<'a> {
    map: &'a HashMap<String, String>,
    raw: Option<&'a [HeaderValue]>,
}

impl custody_http::Headers for EnvoyHeaders<'_> {
    /// One header's value; a header repeated in the raw list is refused.
    fn one(&self, name: &str) -> Result<Option<Cow<'_, str>>, MapError> {
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

    /// The merged map (Envoy has joined repeated headers already).
    fn all(&self) -> BTreeMap<String, String> {
        self.map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
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
    let headers = EnvoyHeaders {
        map: &http.headers,
        raw: http.header_map.as_ref().map(|m| m.headers.as_slice()),
    };
    let source = attrs.and_then(|a| a.source.as_ref());
    let certificate = source
        .map(|s| s.certificate.as_str())
        .filter(|c| !c.is_empty());
    let principal = source
        .map(|s| s.principal.as_str())
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    let (peer, certificates) = match (settings.peer_from, certificate) {
        (Some(PeerFrom::None), _) => (None, Ok(Vec::new())),
        (Some(PeerFrom::Principal), _) => (principal, Ok(Vec::new())),
        (Some(PeerFrom::Certificate), None) => (None, Ok(Vec::new())),
        (None, None) => (principal, Ok(Vec::new())),
        (Some(PeerFrom::Certificate) | None, Some(c)) => (None, envoy_certificate(c)),
    };
    // what is wrong with the call's own headers (no bearer token first) is said before what is
    // wrong with the certificate Envoy forwarded
    let (peer_certificates, bad_certificate) = match certificates {
        Ok(c) => (c, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut request = custody_http::map_request(
        Call {
            method: &http.method,
            path: &http.path,
            headers: &headers,
            peer,
            peer_certificates,
        },
        &settings.map,
        limits,
    )?;
    if settings.protocol != Protocol::Http && http.method.eq_ignore_ascii_case("POST") {
        request.action = protocol_action(http, &headers, settings)?;
    }
    match bad_certificate {
        Some(e) => Err(e),
        None => Ok(request),
    }
}

/// The action of an MCP or A2A call from the JSON-RPC body Envoy forwarded
/// (`with_request_body`): `raw_body` (`pack_as_bytes: true`) or `body`. A body Envoy cut short
/// (`x-envoy-auth-partial-body: true`), or longer than `--max-body-bytes`, is refused.
fn protocol_action(
    http: &envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest,
    headers: &EnvoyHeaders<'_>,
    settings: &Settings,
) -> Result<String, MapError> {
    let body: &[u8] = if http.raw_body.is_empty() {
        http.body.as_bytes()
    } else {
        &http.raw_body
    };
    let partial = headers
        .one("x-envoy-auth-partial-body")?
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let declared = usize::try_from(http.size).unwrap_or(0);
    if partial || body.len() > settings.max_body_bytes || declared > settings.max_body_bytes {
        return Err(settings.protocol.refusal(&format!(
            "the body is over the limit ({} bytes)",
            settings.max_body_bytes
        )));
    }
    if body.is_empty() {
        return Err(settings
            .protocol
            .refusal("no JSON-RPC body (Envoy's ext_authz needs `with_request_body`)"));
    }
    custody_http::protocol::action(settings.protocol, body)
}

/// `attributes.source.certificate`: the client's certificate chain as Envoy forwards it
/// (URL-encoded PEM), one PEM certificate per element.
fn envoy_certificate(encoded: &str) -> Result<Vec<String>, MapError> {
    let pem = percent_decode(encoded).ok_or_else(|| {
        MapError::Invalid("the forwarded client certificate is not URL-encoded UTF-8".into())
    })?;
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem.as_str();
    while let Some(at) = rest.find(END) {
        let (cert, tail) = rest.split_at(at + END.len());
        out.push(cert.trim().to_owned());
        rest = tail;
    }
    if !rest.trim().is_empty() || out.is_empty() {
        // whatever the rest is, the verifier says what is wrong with it
        out.push(rest.trim().to_owned());
        out.retain(|c| !c.is_empty());
    }
    if out.is_empty() {
        return Err(MapError::Invalid(
            "the forwarded client certificate is empty".into(),
        ));
    }
    Ok(out)
}

/// `%XX` decoding (and `+` kept as is, as Envoy's encoding never writes it for a space).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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

/// The Check handler without a server: custody's fuzz oracles (`crates/oracles`, the
/// `check_request` and `check_structured` targets) drive [`answer`] through it, on settings
/// built from `ServeArgs` exactly as the server builds its own. Not part of the sidecar's API.
#[doc(hidden)]
#[derive(Debug)]
pub struct Harness {
    settings: Settings,
}

#[doc(hidden)]
impl Harness {
    /// The handler under the settings `args` give, or why the server would refuse them.
    pub fn new(args: &crate::ServeArgs) -> Result<Harness, crate::ServeError> {
        Settings::from_args(args)
            .map(|settings| Harness { settings })
            .map_err(crate::ServeError::Options)
    }

    /// The handler's answer to `check`, `decide` standing for the decision cache and verifier.
    pub fn answer(
        &self,
        check: &CheckRequest,
        limits: &Limits,
        pack: &str,
        decide: impl FnOnce(&Request) -> Arc<Decision>,
    ) -> Checked {
        answer(check, &self.settings, limits, pack, None, decide)
    }
}

/// The Check handler but the verifier: maps `check` to a custody request, has `decide` decide
/// it (the server: its decision cache, then the verifier), and builds Envoy's answer. A request
/// that does not map is denied with `invalid_request` without calling `decide`. `resource` is
/// the pack's protected resource, named in denials' challenges.
pub(crate) fn answer(
    check: &CheckRequest,
    settings: &Settings,
    limits: &Limits,
    pack: &str,
    resource: Option<&ProtectedResource>,
    decide: impl FnOnce(&Request) -> Arc<Decision>,
) -> Checked {
    match map_request(check, settings, limits) {
        Ok(req) => {
            let decision = decide(&req);
            let response = response(&decision, false, pack, resource, Some(&req.action));
            Checked {
                request: Some(req),
                decision,
                response,
            }
        }
        Err(e) => {
            let decision = Arc::new(e.decision());
            let response = response(&decision, e.is_no_token(), pack, resource, None);
            Checked {
                request: None,
                decision,
                response,
            }
        }
    }
}

/// Envoy's answer for a decision. `no_token` marks the missing-bearer denial; `resource` (the
/// pack's protected resource) and `action` (the request's) go into a denial's challenge.
pub(crate) fn response(
    decision: &Decision,
    no_token: bool,
    pack: &str,
    resource: Option<&ProtectedResource>,
    action: Option<&str>,
) -> CheckResponse {
    if decision.is_allowed() {
        allow(decision, pack)
    } else {
        let metadata = resource.map(ProtectedResource::metadata_url);
        let challenge = custody_http::Challenge {
            resource_metadata: metadata.as_deref(),
            action,
        };
        deny(decision, no_token, pack, &challenge)
    }
}

fn allow(decision: &Decision, pack: &str) -> CheckResponse {
    let answer = custody_http::allow_headers(decision);
    let headers = answer.set.iter().map(|(k, v)| set_header(k, v)).collect();
    let remove = answer.remove.iter().map(|k| (*k).to_owned()).collect();
    let mut metadata = HashMap::new();
    metadata.insert("decision".to_owned(), string("allow"));
    metadata.insert("pack_version".to_owned(), string(pack));
    if let Some(c) = &decision.chain {
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

fn deny(
    decision: &Decision,
    no_token: bool,
    pack: &str,
    challenge: &custody_http::Challenge<'_>,
) -> CheckResponse {
    let first = decision.code().unwrap_or(ReasonCode::InvalidRequest);
    let answer = custody_http::denial(decision, no_token, challenge);
    let mut headers = vec![set_header("content-type", "application/json")];
    if let Some(c) = &answer.www_authenticate {
        headers.push(set_header("www-authenticate", c));
    }
    let body = answer.body;
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
                code: i32::from(answer.status),
            }),
            headers,
            body,
        })),
    }
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
    use custody_http::header_safe;
    use custody_verifier::Reason;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Peer, Request as AttrRequest,
    };
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use serde_json::json;

    use custody_tests::{Fixture, ALICE, AUD, NOW};

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
        assert_eq!(r.action, "GET:/orders/7");
        assert_eq!(r.audience, "spiffe://c.example/orders");
        assert_eq!(r.peer.as_deref(), Some("spiffe://b.example/agent/alice"));
        assert_eq!(r.now, None);
    }

    fn with_certificate(mut c: CheckRequest, cert: &str) -> CheckRequest {
        if let Some(src) = c.attributes.as_mut().and_then(|a| a.source.as_mut()) {
            src.certificate = cert.into();
        }
        c
    }

    fn settings_with(f: impl FnOnce(&mut crate::ServeArgs)) -> Settings {
        let mut args = crate::ServeArgs {
            audience: Some("spiffe://c.example/orders".into()),
            ..crate::ServeArgs::default()
        };
        f(&mut args);
        crate::config::Settings::from_args(&args).unwrap()
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn the_peer_comes_from_the_certificate_the_principal_or_nowhere() {
        let encoded = PEM.replace('\n', "%0A").replace(' ', "%20");
        let c = with_certificate(check(&[("authorization", "Bearer t")], ALICE), &encoded);
        let map = |s: &Settings| map_request(&c, s, &Limits::default()).unwrap();
        // by default the certificate wins, and the principal is not taken on trust beside it
        let r = map(&settings());
        assert_eq!(r.peer, None);
        assert_eq!(r.peer_certificates, vec![PEM.trim().to_owned()]);
        let r = map(&settings_with(|a| a.peer_from = Some(PeerFrom::Principal)));
        assert_eq!(
            (r.peer.as_deref(), r.peer_certificates.len()),
            (Some(ALICE), 0)
        );
        let r = map(&settings_with(|a| a.peer_from = Some(PeerFrom::None)));
        assert_eq!((r.peer, r.peer_certificates.len()), (None, 0));
        // without a certificate: the principal by default, nothing under `certificate`
        let bare = check(&[("authorization", "Bearer t")], ALICE);
        let r = map_request(&bare, &settings(), &Limits::default()).unwrap();
        assert_eq!(r.peer.as_deref(), Some(ALICE));
        let s = settings_with(|a| a.peer_from = Some(PeerFrom::Certificate));
        let r = map_request(&bare, &s, &Limits::default()).unwrap();
        assert_eq!((r.peer, r.peer_certificates.len()), (None, 0));
        // two certificates in one forwarded chain are two elements, leaf first
        let two = format!("{encoded}{}", encoded.replace("MIIB", "MIIC"));
        let c2 = with_certificate(check(&[("authorization", "Bearer t")], ""), &two);
        let r = map_request(&c2, &settings(), &Limits::default()).unwrap();
        assert_eq!(r.peer_certificates.len(), 2);
        assert!(r.peer_certificates[1].contains("MIIC"));
        // a broken URL encoding is refused
        let bad = with_certificate(check(&[("authorization", "Bearer t")], ""), "%ZZ");
        assert!(map_request(&bad, &settings(), &Limits::default()).is_err());
    }

    #[test]
    fn proof_headers_and_the_target_uri_map_once() {
        let s = settings_with(|a| a.target_authority = Some("https://orders.c.example/".into()));
        let c = check(
            &[
                ("authorization", "DPoP t"),
                ("workload-identity-token", "w"),
                ("workload-proof-token", "p"),
                ("dpop", "d"),
                ("x-request-id", "abc"),
                ("host", "evil.example"),
            ],
            "",
        );
        let r = map_request(&c, &s, &Limits::default()).unwrap();
        assert_eq!(r.tokens, vec!["t".to_owned()]);
        assert_eq!((r.wit.as_deref(), r.wpt.as_deref()), (Some("w"), Some("p")));
        assert_eq!(r.dpop.as_deref(), Some("d"));
        // the configured authority and the path without query: never `Host`
        assert_eq!(
            r.target_uri.as_deref(),
            Some("https://orders.c.example/orders/7")
        );
        assert_eq!(r.http_method.as_deref(), Some("GET"));
        let h = r.proof_headers.unwrap();
        assert_eq!(h.get("x-request-id").map(String::as_str), Some("abc"));
        for own in ["authorization", "workload-proof-token", "dpop"] {
            assert!(!h.contains_key(own), "{own}");
        }
        // two WPT (or DPoP) headers, which Envoy joins with a comma, are refused
        for name in ["workload-proof-token", "dpop", "workload-identity-token"] {
            let c = check(&[("authorization", "Bearer t"), (name, "a, b")], "");
            assert!(map_request(&c, &s, &Limits::default()).is_err(), "{name}");
        }
        // without a proof header nothing of the kind is set
        let c = check(&[("authorization", "Bearer t")], "");
        let r = map_request(&c, &s, &Limits::default()).unwrap();
        assert_eq!(
            (r.target_uri, r.http_method, r.proof_headers),
            (None, None, None)
        );
        // without `--target-authority` a proof has nothing to be checked against
        let c = check(&[("authorization", "Bearer t"), ("dpop", "d")], "");
        let r = map_request(&c, &settings(), &Limits::default()).unwrap();
        assert_eq!(r.target_uri, None);
    }

    #[test]
    fn target_authority_is_checked_at_start() {
        for bad in [
            "orders.c.example",
            "https://",
            "https://a/b",
            "ftp://a",
            "https://a?b",
        ] {
            let args = crate::ServeArgs {
                target_authority: Some(bad.into()),
                ..crate::ServeArgs::default()
            };
            assert!(crate::config::Settings::from_args(&args).is_err(), "{bad}");
        }
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

    fn mcp_settings(f: impl FnOnce(&mut crate::ServeArgs)) -> Settings {
        settings_with(|a| {
            a.protocol = Protocol::Mcp;
            a.max_body_bytes = 256;
            f(a);
        })
    }

    fn with_body(method: &str, body: &str, extra: &[(&str, &str)]) -> CheckRequest {
        let mut headers = vec![("authorization", "Bearer t")];
        headers.extend_from_slice(extra);
        let mut c = check(&headers, "");
        let http = c
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
            .unwrap();
        http.method = method.into();
        http.path = "/mcp".into();
        http.body = body.into();
        http.size = i64::try_from(body.len()).unwrap();
        c
    }

    #[test]
    fn mcp_mode_takes_the_action_from_the_json_rpc_body() {
        let s = mcp_settings(|_| {});
        let map = |c: &CheckRequest| map_request(c, &s, &Limits::default());
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{}}}"#;
        assert_eq!(
            map(&with_body("POST", call, &[])).unwrap().action,
            "tools/call:get_weather"
        );
        // raw_body (pack_as_bytes) is read when present
        let mut raw = with_body("POST", "", &[]);
        if let Some(h) = raw
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
        {
            h.raw_body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec();
        }
        assert_eq!(map(&raw).unwrap().action, "tools/list");
        // the stream and session calls keep METHOD:path
        assert_eq!(map(&with_body("GET", "", &[])).unwrap().action, "GET:/mcp");
        assert_eq!(
            map(&with_body("DELETE", "", &[])).unwrap().action,
            "DELETE:/mcp"
        );
        // refused, never guessed
        for (c, why) in [
            (with_body("POST", "", &[]), "no JSON-RPC body"),
            (
                with_body("POST", r#"[{"jsonrpc":"2.0","method":"ping"}]"#, &[]),
                "batch",
            ),
            (
                with_body(
                    "POST",
                    &format!(
                        r#"{{"jsonrpc":"2.0","method":"ping","x":"{}"}}"#,
                        "a".repeat(300)
                    ),
                    &[],
                ),
                "over the limit",
            ),
            (
                with_body("POST", call, &[("x-envoy-auth-partial-body", "true")]),
                "over the limit",
            ),
            (
                with_body("POST", r#"{"jsonrpc":"2.0","method":"tools/remove"}"#, &[]),
                "not a method",
            ),
        ] {
            match map(&c) {
                Err(MapError::Invalid(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{why}: {other:?}"),
            }
        }
        // no token is still the missing-bearer 401 first
        let mut c = with_body("POST", "[]", &[]);
        if let Some(h) = c
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
        {
            h.headers.remove("authorization");
        }
        assert!(map(&c).unwrap_err().is_no_token());
        // one way to name the action
        let both = crate::ServeArgs {
            protocol: Protocol::A2a,
            action_header: Some("x-a".into()),
            audience: Some("a".into()),
            ..crate::ServeArgs::default()
        };
        assert!(crate::config::Settings::from_args(&both).is_err());
    }

    #[test]
    fn action_header_replaces_method_path() {
        let mut s = settings();
        s.map.action_header = Some("x-action".into());
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
        assert_eq!(
            header_safe("spiffe://b.example/agent/alice"),
            "spiffe://b.example/agent/alice"
        );
        assert_eq!(header_safe("a b\r\nx%"), "a%20b%0D%0Ax%25");
        assert_eq!(header_safe("é+\"(;=)\\"), "%C3%A9%2B%22%28%3B%3D%29%5C");
    }

    /// Security review finding 6: a subject holding a comma reached the upstream as two list
    /// items, the second one another domain's user.
    #[test]
    fn a_comma_in_the_subject_stays_in_one_item() {
        let origin = "b.example|user:x,a.example|user:root";
        let v = header_safe(origin);
        assert_eq!(v, "b.example|user:x%2Ca.example|user:root");
        assert_eq!(v.split(',').count(), 1);
        assert_eq!(percent_decode(&v).as_deref(), Some(origin));
    }

    /// Plain percent-decoding (what Python's `urllib.parse.unquote` does): `None` for a bad
    /// escape or non-UTF-8.
    fn percent_decode(v: &str) -> Option<String> {
        let mut out = Vec::new();
        let mut bytes = v.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            } else {
                out.push(b);
            }
        }
        String::from_utf8(out).ok()
    }

    /// What an encoded value may hold: the kept characters and `%` with two uppercase hex
    /// digits; so no `,`, `;`, `"`, space or other non-visible byte.
    fn assert_one_item(input: &str, v: &str) {
        let b = v.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                assert!(
                    b.get(i + 1..i + 3).is_some_and(|h| h
                        .iter()
                        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))),
                    "{input:?} -> {v:?}"
                );
                i += 3;
            } else {
                assert!(
                    b[i].is_ascii_alphanumeric() || b"-._~:/@|".contains(&b[i]),
                    "{input:?} -> {v:?}"
                );
                i += 1;
            }
        }
        assert!(
            v.bytes()
                .all(|c| c.is_ascii_graphic() && !b",;\"".contains(&c)),
            "{input:?} -> {v:?}"
        );
    }

    /// `header_safe` is exactly undone by percent-decoding, and its output is one item, for
    /// every character up to U+0800, a few beyond, and pseudo-random strings of them.
    #[test]
    fn header_safe_round_trips_and_never_leaks_separators() {
        let mut alphabet: Vec<char> = (0u32..0x800).filter_map(char::from_u32).collect();
        alphabet.extend(['\u{FEFF}', '\u{2028}', '\u{FFFD}', '\u{10FFFF}', '😀', '€']);
        for c in &alphabet {
            let s = c.to_string();
            let v = header_safe(&s);
            assert_one_item(&s, &v);
            assert_eq!(percent_decode(&v).as_deref(), Some(s.as_str()));
        }
        // xorshift64*: deterministic, so a failure reproduces
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let ascii: Vec<char> = (0u8..0x80).map(char::from).collect();
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len)
                .map(|_| {
                    let r = next();
                    // mostly ASCII (every separator), sometimes anything
                    if r % 4 == 0 {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    } else {
                        ascii[(r >> 8) as usize % ascii.len()]
                    }
                })
                .collect();
            let v = header_safe(&s);
            assert_one_item(&s, &v);
            assert_eq!(percent_decode(&v).as_deref(), Some(s.as_str()), "{s:?}");
        }
    }

    /// Security review finding 7: without `--action-header` the action is `METHOD:path`, one
    /// scope item, so a token whose scope holds it is allowed (`METHOD path` never matched).
    #[test]
    fn the_default_action_can_match_a_scope() {
        let f = Fixture::standard();
        let token = f.token(
            "c.example",
            json!({"sub": "user:carol", "aud": AUD, "iat": NOW - 10, "exp": NOW + 300,
                   "scope": "orders:read GET:/orders/7"}),
        );
        let auth = format!("Bearer {token}");
        let c = check(&[("authorization", &auth)], "");
        let mut r = map_request(&c, &settings(), &Limits::default()).unwrap();
        assert_eq!(r.action, "GET:/orders/7");
        r.now = Some(NOW);
        let d = f.verify(&r);
        assert!(d.is_allowed(), "{:?}", d.reasons);
        // another method or path is another action
        for (method, path) in [("POST", "/orders/7"), ("GET", "/orders/8#x")] {
            let mut c = c.clone();
            let http = c
                .attributes
                .as_mut()
                .and_then(|a| a.request.as_mut())
                .and_then(|r| r.http.as_mut())
                .unwrap();
            http.method = method.into();
            http.path = path.into();
            let mut r = map_request(&c, &settings(), &Limits::default()).unwrap();
            r.now = Some(NOW);
            assert_eq!(
                f.verify(&r).code(),
                Some(ReasonCode::ScopeMissing),
                "{method}"
            );
        }
    }

    fn txn_claims() -> serde_json::Value {
        json!({"sub": "user:alice", "aud": "c.example", "txn": "txn-1", "scope": "orders:read",
               "req_wl": GATEWAY, "iat": NOW - 5, "exp": NOW + 120})
    }

    const GATEWAY: &str = "spiffe://c.example/gateway";

    /// The Check request for `tokens` (upstream ones in `custody-chain`, the last as the
    /// bearer token) and an optional `txn-token` header, the action from the action header.
    fn chain_check(tokens: &[String], txn: Option<&str>, principal: &str) -> CheckRequest {
        let (presented, upstream) = tokens.split_last().unwrap();
        let auth = format!("Bearer {presented}");
        let chain = upstream.join(",");
        let mut h = vec![
            ("authorization", auth.as_str()),
            ("x-action", "orders:read"),
        ];
        if !upstream.is_empty() {
            h.push(("custody-chain", &chain));
        }
        if let Some(t) = txn {
            h.push(("txn-token", t));
        }
        check(&h, principal)
    }

    fn action_settings() -> Settings {
        let mut s = settings();
        s.map.action_header = Some("x-action".into());
        s
    }

    /// Decides a Check request as the server does, on the fixture's verifier at `NOW`: the
    /// decision and the HTTP status (200 for an allow).
    fn decide(f: &Fixture, c: &CheckRequest) -> (Arc<Decision>, bool, i32) {
        let mut called = false;
        let out = answer(
            c,
            &action_settings(),
            &Limits::default(),
            "v",
            None,
            |req| {
                called = true;
                let mut at = req.clone();
                at.now = Some(NOW);
                Arc::new(f.verify(&at))
            },
        );
        let status = match out.response.http_response {
            Some(HttpResponse::DeniedResponse(d)) => d.status.unwrap().code,
            Some(HttpResponse::OkResponse(_)) => 200,
            other => panic!("{other:?}"),
        };
        (out.decision, called, status)
    }

    fn first(d: &Decision) -> (Option<ReasonCode>, Option<usize>) {
        (d.code(), d.reasons.first().and_then(|r| r.hop))
    }

    /// Security review finding 8: a Txn-Token is no bearer credential. In `authorization` (or
    /// first in `custody-chain`) it is `wrong_token_type` at its hop, 401, without asking the
    /// verifier, which would take it as a Txn-Token replacement chain and allow it.
    #[test]
    fn a_txn_token_as_bearer_is_wrong_token_type() {
        let f = Fixture::standard();
        let txn = f.txn_token(txn_claims());
        // what the verifier alone says: allowed (only sender binding guards it)
        let mut alone = custody_tests::request(vec![txn.clone()]);
        alone.peer = Some(GATEWAY.into());
        assert!(f.verify(&alone).is_allowed());

        let c = chain_check(std::slice::from_ref(&txn), None, GATEWAY);
        assert!(matches!(
            map_request(&c, &action_settings(), &Limits::default()),
            Err(MapError::TxnAsBearer(0, _))
        ));
        let (d, called, status) = decide(&f, &c);
        assert_eq!(first(&d), (Some(ReasonCode::WrongTokenType), Some(0)));
        assert!(!called);
        assert_eq!(status, 401);
        // any spelling of the media type
        for typ in ["application/TXNTOKEN+JWT", "TxnToken+JWT"] {
            let t = f.typed("c.example", Some(typ), txn_claims());
            let (d, _, status) = decide(&f, &chain_check(&[t], None, GATEWAY));
            assert_eq!(
                (first(&d), status),
                ((Some(ReasonCode::WrongTokenType), Some(0)), 401)
            );
        }
        // a replacement chain in the headers: the first is refused
        let (d, _, _) = decide(&f, &chain_check(&[txn.clone(), txn.clone()], None, GATEWAY));
        assert_eq!(first(&d), (Some(ReasonCode::WrongTokenType), Some(0)));
        // first in `custody-chain`, an access token presented
        let t1 = f.token("b.example", custody_tests::t1_claims());
        let (d, _, status) = decide(&f, &chain_check(&[txn.clone(), t1], None, ALICE));
        assert_eq!(
            (first(&d), status),
            ((Some(ReasonCode::WrongTokenType), Some(0)), 401)
        );
        // after an access token, the verifier refuses it at its own hop
        let t0 = f.token("a.example", custody_tests::t0_claims());
        let (d, called, status) = decide(&f, &chain_check(&[t0, txn.clone()], None, GATEWAY));
        assert_eq!(
            (first(&d), called, status),
            ((Some(ReasonCode::WrongTokenType), Some(1)), true, 401)
        );
        // ... after every check of the tokens before it
        let mut old = custody_tests::t0_claims();
        old["iat"] = json!(NOW - 900);
        old["exp"] = json!(NOW - 600);
        let expired = f.token("a.example", old);
        let (d, _, _) = decide(&f, &chain_check(&[expired, txn], None, GATEWAY));
        assert_eq!(first(&d), (Some(ReasonCode::Expired), Some(0)));
        // a first token the verifier refuses before its `typ` is left to it
        let (d, called, _) = decide(&f, &chain_check(&["a.b.c".into()], None, GATEWAY));
        assert_eq!(
            (first(&d), called),
            ((Some(ReasonCode::MalformedToken), Some(0)), true)
        );
    }

    /// The `txn-token` header keeps working: an access chain with a Txn-Token alongside.
    #[test]
    fn a_txn_token_in_its_header_still_works() {
        let f = Fixture::standard();
        let tokens = custody_tests::chain(&f);
        let txn = f.txn_token(txn_claims());
        let (d, _, status) = decide(&f, &chain_check(&tokens, Some(&txn), GATEWAY));
        assert!(d.is_allowed(), "{:?}", d.reasons);
        assert_eq!(status, 200);
    }

    #[test]
    fn denials_pick_401_or_403() {
        let d = Decision::deny(Reason::new(ReasonCode::Expired, Some(0), "x"), None);
        let r = response(&d, false, "v", None, None);
        let Some(HttpResponse::DeniedResponse(den)) = r.http_response else {
            panic!()
        };
        assert_eq!(den.status.unwrap().code, 401);
        assert!(den
            .headers
            .iter()
            .any(|h| h.header.as_ref().unwrap().key == "www-authenticate"));
        let d = Decision::deny(Reason::new(ReasonCode::ScopeEscalation, Some(1), "x"), None);
        let r = response(&d, false, "v", None, None);
        assert_eq!(r.status.unwrap().code, GRPC_PERMISSION_DENIED);
        let Some(HttpResponse::DeniedResponse(den)) = r.http_response else {
            panic!()
        };
        assert_eq!(den.status.unwrap().code, 403);
        assert!(den.body.contains("scope_escalation"));
    }
}
