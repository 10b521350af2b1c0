//! Entry points for the fuzz targets `check_request` and `check_structured` (`fuzz/`) and the
//! corpus replay test (`tests/`).
//!
//! Both run the Check handler's own code through its hidden harness,
//! `custody_sidecar::check::Harness` (mapping, decision, Envoy's answer; the server adds only
//! its decision cache, metrics and log), on the in-memory fuzzing pack, with `--audience spiffe://c.example/orders` and the clock fixed at
//! [`FUZZ_NOW`], and then check an oracle (`check_oracle`, documented there). They never panic
//! themselves; an `Err` is a broken property.
//!
//! - [`check_request`]: the input is a protobuf `CheckRequest`, decoded as tonic decodes it
//!   (malformed protobuf is refused before the handler, so it is no finding), answered under
//!   both action settings (`METHOD:path`, and `--action-header x-custody-action`).
//! - [`check_structured`]: the input is a [`FuzzCheckRequest`] (through `arbitrary`): a chain
//!   minted with the pack's keys (or a structured Biscuit) placed in headers, with fuzzer-chosen
//!   header forms, extra headers, raw or merged header encoding, method, path and host. An
//!   all-zero input is an allowed single-token request.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use custody_sidecar::check::{
    Checked, Harness, ACTOR_HEADER, CHAIN_HEADER, DEPTH_HEADER, NOW_HEADER, ORIGIN_HEADER,
    TXN_HEADER,
};
use custody_sidecar::ServeArgs;
use custody_verifier::{Decision, ReasonCode, Request, Verifier};
use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, HeaderAppendAction, HeaderValue, HttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::google::protobuf::{value::Kind, Value};
use prost::Message as _;

use crate::{
    fuzz_verifiers, same_decision, FuzzBiscuit, FuzzRequest, Ident, Oracle, FUZZ_AUD, FUZZ_NOW,
};

/// The action header of the second setting (`--action-header`).
pub const ACTION_HEADER: &str = "x-custody-action";

/// Denials about the credential itself: HTTP 401 (DESIGN.md's per-token checks, the presented
/// token's audience, and a failed or replayed proof of the caller, as README's "Envoy
/// ext_authz" maps them), written out here independently of the handler.
const UNAUTHENTICATED: [&str; 15] = [
    "malformed_token",
    "token_too_large",
    "wrong_token_type",
    "alg_not_allowed",
    "unknown_issuer",
    "unknown_key",
    "bad_signature",
    "missing_claim",
    "expired",
    "not_yet_valid",
    "issued_in_future",
    "lifetime_too_long",
    "audience_mismatch",
    "peer_invalid",
    "replayed",
];

/// Denials that say "not now" rather than "no": HTTP 503 (a decision past its deadline, keys
/// not yet fetched, the replay store unreachable), as README's "Envoy ext_authz" maps them.
const UNAVAILABLE: [&str; 3] = ["decision_timeout", "keys_unavailable", "store_unavailable"];

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Oracle {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// The two settings: `METHOD:path` actions, and actions from [`ACTION_HEADER`]. Neither allows a
/// request-supplied time.
fn settings() -> Option<&'static [Harness; 2]> {
    static SETTINGS: OnceLock<Option<[Harness; 2]>> = OnceLock::new();
    SETTINGS
        .get_or_init(|| {
            let args = ServeArgs {
                audience: Some(FUZZ_AUD.into()),
                ..ServeArgs::default()
            };
            let header = ServeArgs {
                action_header: Some(ACTION_HEADER.into()),
                ..args.clone()
            };
            let both = [Harness::new(&args).ok()?, Harness::new(&header).ok()?];
            Some(both)
        })
        .as_ref()
}

fn verifier() -> Result<&'static Verifier, String> {
    fuzz_verifiers()
        .map(|(plain, _)| plain)
        .ok_or_else(|| "no fuzzing pack".to_owned())
}

/// A protobuf `CheckRequest`, answered under both settings; the oracle is the module's.
pub fn check_request(data: &[u8]) -> Oracle {
    let Ok(check) = CheckRequest::decode(data) else {
        return Ok(());
    };
    for s in settings().ok_or("settings")? {
        check_oracle(&check, s)?;
    }
    Ok(())
}

/// Runs the Check handler: the custody request it decided (if any) and its answer.
fn run(check: &CheckRequest, settings: &Harness) -> Result<(Checked, Option<Request>), String> {
    let v = verifier()?;
    let mut decided = None;
    let out = settings.answer(check, v.limits(), &v.pack().version, |req| {
        decided = Some(req.clone());
        // The server decides on its clock (`now` unset): here the clock is fixed instead.
        let mut at = req.clone();
        at.now = Some(FUZZ_NOW);
        Arc::new(v.verify(&at))
    });
    Ok((out, decided))
}

/// The oracle, for one Check request under one setting. The handler never panics; answering
/// twice gives the same answer; the request it decides has the configured audience (never
/// `Host`/`:authority`) and no time of its own, and a `custody-now` header is a denial; an allow
/// carries a bearer token that verifies under a pack key (and, a JWS, is addressed to the
/// audience), a peer equal to the current actor, and only the `x-custody-*` headers, set or
/// removed, with visible-ASCII values that decode to the chain summary; a denial carries at
/// least one reason, `PERMISSION_DENIED` with the first code, a JSON body with the same codes,
/// and 401 exactly for DESIGN.md's credential failures and a missing bearer token (403
/// otherwise); no answer contains a token the request carried.
fn check_oracle(check: &CheckRequest, settings: &Harness) -> Oracle {
    let (out, decided) = run(check, settings)?;
    let (again, _) = run(check, settings)?;
    // Equal answers; where a Biscuit's Datalog failure is worded differently (see
    // `same_decision`), the same decision and the same status.
    let same = if again.decision == out.decision {
        again.response == out.response
    } else {
        same_decision(&again.decision, &out.decision)
            && grpc_code(&again.response) == grpc_code(&out.response)
            && http_status(&again.response) == http_status(&out.response)
    };
    ensure(same, || {
        format!(
            "a second Check answers differently: first {:?}, then {:?}",
            out.decision, again.decision
        )
    })?;
    ensure(out.request == decided, || {
        "the request reported is not the one decided".into()
    })?;
    if let Some(req) = &decided {
        ensure(req.now.is_none(), || {
            format!("a request-supplied time was honoured: {:?}", req.now)
        })?;
        ensure(req.audience == FUZZ_AUD, || {
            format!("audience `{}` is not `--audience`", req.audience)
        })?;
    }
    let seen = Seen::read(check);
    let d = &out.decision;
    ensure(d.is_allowed() == d.reasons.is_empty(), || format!("{d:?}"))?;
    ensure(!seen.now_header || !d.is_allowed(), || {
        "allowed a request carrying `custody-now`".into()
    })?;
    if d.is_allowed() {
        allowed(&seen, &out, decided.as_ref())?;
    } else {
        denied(&seen, d, &out.response)?;
    }
    no_token_echoed(&seen, &out.response)
}

/// What the oracle reads from a Check request by itself.
#[derive(Debug, Default)]
struct Seen {
    /// The token of each `authorization: Bearer` value.
    bearers: Vec<String>,
    /// A `custody-now` header the handler looks at.
    now_header: bool,
    /// Every token the request carries (bearer, chain entries, Txn-Token).
    tokens: Vec<String>,
    /// Request text an answer may legitimately quote (peer, action, method, path).
    quotable: Vec<String>,
    /// The source principal.
    principal: String,
    /// A `txn-token` header is present.
    txn: bool,
}

impl Seen {
    fn read(check: &CheckRequest) -> Seen {
        let attrs = check.attributes.as_ref();
        let http = attrs
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let mut seen = Seen {
            principal: attrs
                .and_then(|a| a.source.as_ref())
                .map(|s| s.principal.clone())
                .unwrap_or_default(),
            ..Seen::default()
        };
        seen.quotable.push(seen.principal.clone());
        let Some(http) = http else {
            return seen;
        };
        seen.quotable.push(http.method.clone());
        seen.quotable.push(http.path.clone());
        let values = header_values(http);
        let named = |name: &'static str| {
            values
                .iter()
                .filter(move |(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        seen.bearers = named("authorization").filter_map(|v| bearer(&v)).collect();
        seen.now_header = named(NOW_HEADER).next().is_some();
        seen.txn = named(TXN_HEADER).next().is_some();
        seen.tokens.extend(seen.bearers.iter().cloned());
        for chain in named(CHAIN_HEADER) {
            seen.tokens
                .extend(chain.split(',').map(|t| t.trim().to_owned()));
        }
        seen.tokens
            .extend(named(TXN_HEADER).map(|t| t.trim().to_owned()));
        seen.quotable.extend(named(ACTION_HEADER));
        seen
    }
}

/// The headers as the handler reads them: the raw list (names compared in lowercase, the raw
/// value when set) under `encode_raw_headers`, else the merged map (lowercase names).
fn header_values(http: &HttpRequest) -> Vec<(String, String)> {
    match &http.header_map {
        Some(m) => m
            .headers
            .iter()
            .map(|h| {
                let v = if h.raw_value.is_empty() {
                    h.value.clone()
                } else {
                    String::from_utf8_lossy(&h.raw_value).into_owned()
                };
                (h.key.to_ascii_lowercase(), v)
            })
            .collect(),
        None => http
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// RFC 6750's `Bearer <token>`, the scheme in any case.
fn bearer(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

fn allowed(seen: &Seen, out: &Checked, req: Option<&Request>) -> Oracle {
    let req = req.ok_or("allowed without a request")?;
    let presented = req.tokens.last().ok_or("allowed without tokens")?;
    ensure(seen.bearers.contains(presented), || {
        "the presented token is not the bearer token".into()
    })?;
    ensure(bearer_verifies(presented, FUZZ_AUD), || {
        "allowed a bearer token that does not verify for the audience".into()
    })?;
    let r = &out.response;
    ensure(r.status.as_ref().is_some_and(|s| s.code == 0), || {
        "allow without gRPC OK".into()
    })?;
    let chain = out
        .decision
        .chain
        .as_ref()
        .ok_or("allowed without a chain")?;
    if !seen.principal.is_empty() && !seen.txn {
        ensure(chain.actors.last() == Some(&seen.principal), || {
            format!(
                "allowed peer `{}` that is not the current actor",
                seen.principal
            )
        })?;
    }
    let Some(HttpResponse::OkResponse(ok)) = &r.http_response else {
        return Err("allow without an OK response".into());
    };
    let ours = [ORIGIN_HEADER, ACTOR_HEADER, DEPTH_HEADER];
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
    let mut set = HashMap::new();
    for h in &ok.headers {
        let hv = h.header.as_ref().ok_or("an empty header option")?;
        ensure(
            ours.contains(&hv.key.as_str()) && h.append_action == overwrite,
            || format!("allow sets `{}` (or appends)", hv.key),
        )?;
        ensure(hv.value.bytes().all(|b| b.is_ascii_graphic()), || {
            format!("header `{}` has a value Envoy must refuse", hv.key)
        })?;
        set.insert(hv.key.as_str(), percent_decode(&hv.value));
    }
    for name in ours {
        let removed = ok.headers_to_remove.iter().any(|h| h == name);
        ensure(set.contains_key(name) != removed, || {
            format!("`{name}` neither set nor removed (a client's copy would pass)")
        })?;
    }
    ensure(
        set.get(ORIGIN_HEADER) == Some(&Some(chain.origin.clone())),
        || "`x-custody-origin` does not read back as the origin".into(),
    )?;
    let actor = set.get(ACTOR_HEADER).cloned().flatten();
    ensure(actor.as_ref() == chain.actors.last(), || {
        "`x-custody-actor` does not read back as the current actor".into()
    })
}

/// Percent-decoding, the oracle's own: `None` for a bad escape or non-UTF-8.
fn percent_decode(v: &str) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
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

fn denied(seen: &Seen, d: &Decision, r: &CheckResponse) -> Oracle {
    let first = d.code().ok_or("a denial without a reason")?;
    let code = first.as_str();
    let status = r.status.as_ref().ok_or("a denial without a gRPC status")?;
    ensure(status.code == 7 && status.message == code, || {
        format!(
            "denial status {} `{}`, first reason `{code}`",
            status.code, status.message
        )
    })?;
    let Some(HttpResponse::DeniedResponse(den)) = &r.http_response else {
        return Err("a denial without a denied response".into());
    };
    let http = http_status(r);
    let credential = UNAUTHENTICATED.contains(&code);
    let unavailable = UNAVAILABLE.contains(&code);
    let no_token = first == ReasonCode::InvalidRequest && seen.bearers.is_empty();
    match http {
        401 => ensure(credential || no_token, || {
            format!("401 for `{code}` with a bearer token")
        })?,
        403 => ensure(!credential && !unavailable, || {
            format!("403 for `{code}`, a credential failure or a 503 code")
        })?,
        503 => ensure(unavailable, || format!("503 for `{code}`"))?,
        other => return Err(format!("denial with HTTP {other}")),
    }
    let challenge = den
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key == "www-authenticate");
    ensure(http != 401 || challenge.is_some(), || {
        "401 without `www-authenticate`".into()
    })?;
    ensure(
        den.headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .all(|h| !h.key.starts_with("x-custody-")),
        || "a denial sets `x-custody-*` headers".into(),
    )?;
    let body: serde_json::Value =
        serde_json::from_str(&den.body).map_err(|e| format!("denial body is not JSON: {e}"))?;
    let codes: Vec<&str> = body
        .get("reasons")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("code").and_then(serde_json::Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let want: Vec<&str> = d.reasons.iter().map(|r| r.code.as_str()).collect();
    let deny = body.get("decision").and_then(serde_json::Value::as_str) == Some("deny");
    ensure(deny && codes == want, || {
        format!("denial body {} for reasons {want:?}", den.body)
    })
}

/// No token the request carried appears in the answer (headers, body, status, metadata). Only
/// token-shaped strings (at least 24 base64url characters, dots, `=`) count, and not those the
/// request also carried where an answer may quote it (peer, action, method, path).
/// The gRPC status code of an answer.
fn grpc_code(r: &CheckResponse) -> Option<i32> {
    r.status.as_ref().map(|s| s.code)
}

/// The HTTP status of a denial (0 for an allow).
fn http_status(r: &CheckResponse) -> i32 {
    match &r.http_response {
        Some(HttpResponse::DeniedResponse(den)) => den.status.as_ref().map_or(0, |s| s.code),
        _ => 0,
    }
}

fn no_token_echoed(seen: &Seen, r: &CheckResponse) -> Oracle {
    let mut text = Vec::new();
    if let Some(s) = &r.status {
        text.push(s.message.clone());
    }
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => {
            for h in ok.headers.iter().filter_map(|h| h.header.as_ref()) {
                text.push(h.value.clone());
            }
        }
        Some(HttpResponse::DeniedResponse(den)) => {
            text.push(den.body.clone());
            for h in den.headers.iter().filter_map(|h| h.header.as_ref()) {
                text.push(h.value.clone());
            }
        }
        Some(HttpResponse::ErrorResponse(e)) => text.push(e.body.clone()),
        None => {}
    }
    if let Some(m) = &r.dynamic_metadata {
        m.fields.values().for_each(|v| strings(v, &mut text));
    }
    let shaped = |t: &str| {
        t.len() >= 24
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
    };
    for t in seen.tokens.iter().filter(|t| shaped(t)) {
        if seen.quotable.iter().any(|q| q.contains(t.as_str())) {
            continue;
        }
        ensure(!text.iter().any(|x| x.contains(t.as_str())), || {
            format!("the answer echoes a token: {}", t.get(..24).unwrap_or(t))
        })?;
    }
    Ok(())
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match &v.kind {
        Some(Kind::StringValue(s)) => out.push(s.clone()),
        Some(Kind::ListValue(l)) => l.values.iter().for_each(|x| strings(x, out)),
        Some(Kind::StructValue(s)) => s.fields.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// The structured input

/// A header name: one of [`HEADER_NAMES`] (modulo its length), or any.
#[derive(Arbitrary, Clone, Debug)]
pub enum HeaderName {
    /// An index into [`HEADER_NAMES`].
    Known(u8),
    /// Any name.
    Raw(String),
}

/// Header names the handler reads or writes, in several spellings, and a few others.
pub const HEADER_NAMES: [&str; 14] = [
    "authorization",
    "custody-chain",
    "txn-token",
    "custody-now",
    "x-custody-action",
    "host",
    ":authority",
    "x-custody-origin",
    "x-custody-actor",
    "x-custody-depth",
    "Authorization",
    "Custody-Now",
    "content-type",
    "cookie",
];

/// A structured Check request for [`check_structured`]. Every field's zero value means "as the
/// allowed request has it".
#[derive(Arbitrary, Clone, Debug, Default)]
pub struct FuzzCheckRequest {
    /// The chain (minted as `verify_structured` mints it): upstream tokens in `custody-chain`,
    /// the presented token as the bearer token, its `txn_token` in `txn-token`, its `peer` as
    /// the source principal, its action in [`ACTION_HEADER`].
    pub chain: FuzzRequest,
    /// A Biscuit as the only token instead.
    pub biscuit: Option<FuzzBiscuit>,
    /// 0 `Bearer <t>`, 1 `bearer   <t>  `, 2 `Basic <t>`, 3 `Bearer`, 4 `<t>` alone, 5 no
    /// header, 6 two `authorization` headers.
    pub bearer: u8,
    /// 0 `a,b`, 1 `a , b`, 2 no `custody-chain` (upstream tokens dropped), 3 an empty entry,
    /// 4 reversed, 5 padded to 16 entries.
    pub chain_form: u8,
    /// Take the action from `METHOD:path` instead of [`ACTION_HEADER`].
    pub method_path: bool,
    /// [`ACTION_HEADER`]'s value instead of the chain's action.
    pub action: Option<String>,
    /// Method; default `GET`.
    pub method: Option<String>,
    /// Path; default `/orders/7?x=1`.
    pub path: Option<String>,
    /// `host` and `:authority`; default `evil.example`.
    pub host: Option<Ident>,
    /// Send the headers as the raw list (`header_map`, values in `raw_value`).
    pub raw: bool,
    /// Extra headers.
    pub extra: Vec<(HeaderName, Vec<u8>)>,
    /// Leave `attributes.request.http` out.
    pub no_http: bool,
}

/// A [`FuzzCheckRequest`], answered under the setting it names, with the oracle of
/// [`check_request`].
pub fn check_structured(data: &[u8]) -> Oracle {
    let mut u = Unstructured::new(data);
    let Ok(input) = FuzzCheckRequest::arbitrary(&mut u) else {
        return Ok(());
    };
    check_input(&input)
}

/// [`check_structured`] on an already built input.
pub fn check_input(input: &FuzzCheckRequest) -> Oracle {
    let Some(check) = build_check(input) else {
        return Ok(());
    };
    let setting = setting(input).ok_or("settings")?;
    check_oracle(&check, setting)
}

/// The Check request a structured input builds and Envoy's answer (for tests of the harness).
pub fn answer_input(input: &FuzzCheckRequest) -> Option<(CheckRequest, Checked)> {
    let check = build_check(input)?;
    let (out, _) = run(&check, setting(input)?).ok()?;
    Some((check, out))
}

fn setting(input: &FuzzCheckRequest) -> Option<&'static Harness> {
    let [path, header] = settings()?;
    Some(if input.method_path { path } else { header })
}

/// The protobuf bytes of a structured input's Check request, for seeds. Deterministic: prost
/// writes a map in its hash order, so the request goes out without its merged header map, then
/// one message per header in name order; a decoder merges them back into the same request.
pub fn check_bytes(input: &FuzzCheckRequest) -> Option<Vec<u8>> {
    let mut check = build_check(input)?;
    let http = check
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut());
    let mut headers: Vec<(String, String)> = match http {
        Some(h) => std::mem::take(&mut h.headers).into_iter().collect(),
        None => Vec::new(),
    };
    headers.sort();
    let mut out = check.encode_to_vec();
    for (k, v) in headers {
        let one = HttpRequest {
            headers: HashMap::from([(k, v)]),
            ..HttpRequest::default()
        };
        let part = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(AttrRequest {
                    http: Some(one),
                    ..AttrRequest::default()
                }),
                ..AttributeContext::default()
            }),
        };
        out.extend(part.encode_to_vec());
    }
    Some(out)
}

fn build_check(input: &FuzzCheckRequest) -> Option<CheckRequest> {
    let minted = crate::mint_input(&input.chain)?;
    let tokens = match &input.biscuit {
        Some(b) => vec![crate::biscuit_text(b)?],
        None => minted.tokens.clone(),
    };
    let (presented, upstream) = tokens.split_last()?;
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |k: &str, v: &str| headers.push((k.to_owned(), v.as_bytes().to_vec()));
    for v in authorization(input.bearer, presented) {
        add("authorization", &v);
    }
    if let Some(chain) = chain_value(input.chain_form, upstream) {
        add(CHAIN_HEADER, &chain);
    }
    if let (Some(t), None) = (&minted.txn_token, &input.biscuit) {
        add(TXN_HEADER, t);
    }
    add(
        ACTION_HEADER,
        input.action.as_deref().unwrap_or(&minted.action),
    );
    let host = input
        .host
        .as_ref()
        .map_or("evil.example".to_owned(), Ident::text);
    add("host", &host);
    add(":authority", &host);
    for (name, value) in input.extra.iter().take(16) {
        let name = match name {
            HeaderName::Known(i) => HEADER_NAMES
                .get(usize::from(*i) % HEADER_NAMES.len())
                .copied()
                .unwrap_or_default()
                .to_owned(),
            HeaderName::Raw(s) => s.clone(),
        };
        headers.push((name, value.clone()));
    }
    let http = (!input.no_http).then(|| http_request(input, &host, headers));
    Some(CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                principal: minted.peer.clone().unwrap_or_default(),
                ..Peer::default()
            }),
            request: Some(AttrRequest {
                http,
                ..AttrRequest::default()
            }),
            ..AttributeContext::default()
        }),
    })
}

fn http_request(
    input: &FuzzCheckRequest,
    host: &str,
    headers: Vec<(String, Vec<u8>)>,
) -> HttpRequest {
    let mut http = HttpRequest {
        method: input.method.clone().unwrap_or_else(|| "GET".into()),
        path: input.path.clone().unwrap_or_else(|| "/orders/7?x=1".into()),
        host: host.to_owned(),
        ..HttpRequest::default()
    };
    if input.raw {
        http.header_map = Some(HeaderMap {
            headers: headers
                .into_iter()
                .map(|(key, raw_value)| HeaderValue {
                    key,
                    raw_value,
                    ..HeaderValue::default()
                })
                .collect(),
        });
    } else {
        // The merged map: one value per (lowercase) name, repeated names joined with `,`.
        for (k, v) in headers {
            let v = String::from_utf8_lossy(&v).into_owned();
            http.headers
                .entry(k.to_ascii_lowercase())
                .and_modify(|old| {
                    old.push(',');
                    old.push_str(&v);
                })
                .or_insert(v);
        }
    }
    http
}

fn authorization(form: u8, token: &str) -> Vec<String> {
    match form % 7 {
        0 => vec![format!("Bearer {token}")],
        1 => vec![format!("bearer   {token}  ")],
        2 => vec![format!("Basic {token}")],
        3 => vec!["Bearer".into()],
        4 => vec![token.to_owned()],
        5 => Vec::new(),
        _ => vec![format!("Bearer {token}"), format!("Bearer {token}")],
    }
}

fn chain_value(form: u8, upstream: &[String]) -> Option<String> {
    if upstream.is_empty() && form % 6 != 5 {
        return None;
    }
    Some(match form % 6 {
        0 => upstream.join(","),
        1 => upstream.join(" , "),
        2 => return None,
        3 => format!("{},", upstream.join(",")),
        4 => upstream.iter().rev().cloned().collect::<Vec<_>>().join(","),
        _ => {
            let mut all = upstream.to_vec();
            while all.len() < 16 {
                all.push(upstream.last().cloned().unwrap_or_else(|| "x".into()));
            }
            all.join(",")
        }
    })
}

/// Whether `token` is one a verifier of the in-memory pack could honestly accept for
/// `audience`: a compact JWS whose `kid` names a pack key under which its signature verifies
/// (`verify_strict`) and whose `aud` holds `audience`, or a Biscuit whose signatures verify under
/// a pack root key (biscuit-auth's own reading).
pub fn bearer_verifies(token: &str, audience: &str) -> bool {
    if !token.contains('.') {
        return crate::biscuit::biscuit_signed_by_pack(token);
    }
    let Some(w) = crate::verify::world() else {
        return false;
    };
    let Ok(jws) = custody_jose::decode(token, &custody_jose::Limits::default()) else {
        return false;
    };
    let Some(kid) = jws.header.kid.as_deref() else {
        return false;
    };
    let signed = w
        .keys
        .iter()
        .any(|k| k.kid() == kid && k.public().verify_strict(jws.signing_input, &jws.signature));
    let aud = match jws.claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == audience,
        Some(serde_json::Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    signed && aud
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle's own lists name real reason codes, and no code is both a credential
    /// failure (401) and a "not now" (503): a misspelt or renamed code would otherwise sit in
    /// a list unnoticed and class its denials wrongly.
    #[test]
    fn status_lists_name_real_codes() {
        for name in UNAUTHENTICATED.iter().chain(&UNAVAILABLE) {
            assert!(ReasonCode::from_name(name).is_some(), "{name}");
        }
        assert!(UNAVAILABLE.iter().all(|c| !UNAUTHENTICATED.contains(c)));
    }
}
