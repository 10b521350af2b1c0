//! custody's HTTP face: the one mapping from an HTTP call to a custody [`Request`] and the one
//! answer to a [`Decision`], shared by every door that sees HTTP (the Envoy ext_authz sidecar,
//! `custody-sidecar`, and the tower Layer, `custody-tower`), so they cannot drift apart.
//!
//! | request field | from |
//! |---|---|
//! | `tokens` | the `custody-chain` header (upstream tokens, origin first, comma-separated), then the `authorization: Bearer` (or `DPoP`) token (the presented one, last) |
//! | `txn_token` | the `txn-token` header (the only place a Txn-Token is accepted) |
//! | `peer`, `peer_certificates` | the door's own: Envoy's `source` attributes, or the Layer's peer extractor (never a header) |
//! | `wit`, `wpt`, `dpop` | the `workload-identity-token`, `workload-proof-token` and `dpop` headers, each at most once |
//! | `target_uri` | the configured target authority and the path without query, when a WPT or DPoP proof is present (never `Host`) |
//! | `http_method` | the request's method, when a DPoP proof is present |
//! | `proof_headers` | the request's other headers, when a WPT or DPoP proof is present (what a WPT's `oth` may cover) |
//! | `action` | `METHOD:path` (`GET:/orders/7`: the method, a colon, the path without query string or fragment), or the value of the configured action header |
//! | `audience` | the configured audience, never `Host`/`:authority` |
//! | `now` | the system clock; the `custody-now` header only when request time is allowed |
//!
//! A Txn-Token (`typ` `txntoken+jwt`) is no bearer credential: in `authorization` or in
//! `custody-chain` it is `wrong_token_type` (401), `hop` its index in `tokens`. The first token is
//! checked here, in the mapping (the verifier would take a Txn-Token first as the start of a
//! Txn-Token replacement chain); a later one the verifier itself refuses at its `typ` check.
//!
//! The answer: an allowed call goes on with `x-custody-origin`, `x-custody-actor` and
//! `x-custody-depth` set (replacing any the client sent; [`AllowHeaders`]), each value one item
//! no list or parameter syntax can split ([`header_safe`]). A denied call gets [`Denial`]: 401
//! with `www-authenticate` when the bearer token is missing or a credential is invalid, 403 when
//! it does not allow the call, 503 when the decision did not finish or keys or the store are
//! unavailable, and a JSON body with the reason codes.

use std::borrow::Cow;
use std::collections::BTreeMap;

mod error;
pub mod protocol;
pub use error::MapError;
pub use protocol::Protocol;

use custody_jose::{classify_typ, TokenClass};
use custody_verifier::{without_query, Decision, Limits, Reason, ReasonCode, Request};
use serde_json::json;

/// The header carrying the upstream tokens.
pub const CHAIN_HEADER: &str = "custody-chain";
/// The header carrying a Txn-Token.
pub const TXN_HEADER: &str = "txn-token";
/// The WIMSE workload identity token.
pub const WIT_HEADER: &str = "workload-identity-token";
/// The WIMSE workload proof token.
pub const WPT_HEADER: &str = "workload-proof-token";
/// A DPoP proof (RFC 9449).
pub const DPOP_HEADER: &str = "dpop";
/// The header carrying a request-supplied time (only when request time is allowed).
pub const NOW_HEADER: &str = "custody-now";
/// Set on allowed calls: the chain's origin (`<domain>|<sub>`).
pub const ORIGIN_HEADER: &str = "x-custody-origin";
/// Set on allowed calls: the current actor.
pub const ACTOR_HEADER: &str = "x-custody-actor";
/// Set on allowed calls: the number of actors.
pub const DEPTH_HEADER: &str = "x-custody-depth";
/// Every header custody sets on an allowed call (and removes from what the client sent).
pub const SET_HEADERS: [&str; 3] = [ORIGIN_HEADER, ACTOR_HEADER, DEPTH_HEADER];

/// The challenge of a 401.
pub const REALM: &str = "Bearer realm=\"custody\"";

/// How a door maps calls: what the operator configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapSettings {
    /// This service's identifier, which the presented token's `aud` must hold. `None`: every
    /// call is `invalid_request` (custody never takes the audience from `Host`).
    pub audience: Option<String>,
    /// A header (lower-case) whose value is the action instead of `METHOD:path`.
    pub action_header: Option<String>,
    /// Whether the `custody-now` header may set the decision time (tests only).
    pub allow_request_time: bool,
    /// The scheme and authority this service is reached at (`https://api.example`, no trailing
    /// `/`): with the path, the target URI a WPT's `aud` or a DPoP proof's `htu` must name.
    pub target_authority: Option<String>,
}

impl MapSettings {
    /// Settings for `audience` and nothing else.
    pub fn for_audience(audience: impl Into<String>) -> MapSettings {
        MapSettings {
            audience: Some(audience.into()),
            ..MapSettings::default()
        }
    }
}

/// A call's request headers, as a door holds them.
pub trait Headers {
    /// One header's value (by lower-case name); a header that appears more than once, or is not
    /// UTF-8, is refused.
    fn one(&self, name: &str) -> Result<Option<Cow<'_, str>>, MapError>;

    /// Every header but pseudo-headers, names lower-case (repeated ones joined by `, `): what a
    /// WPT's `oth` may cover, before the credentials are taken out.
    fn all(&self) -> BTreeMap<String, String>;
}

impl Headers for http::HeaderMap {
    fn one(&self, name: &str) -> Result<Option<Cow<'_, str>>, MapError> {
        let mut values = self.get_all(name).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(MapError::Invalid(format!("more than one `{name}` header")));
        }
        match std::str::from_utf8(first.as_bytes()) {
            Ok(v) => Ok(Some(Cow::Borrowed(v))),
            Err(_) => Err(MapError::Invalid(format!(
                "the `{name}` header is not UTF-8"
            ))),
        }
    }

    fn all(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in self {
            // a value that is not UTF-8 cannot be covered by `oth` (its hash is over text)
            let Ok(value) = std::str::from_utf8(value.as_bytes()) else {
                continue;
            };
            out.entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.to_owned());
        }
        out
    }
}

/// One HTTP call as a door sees it.
#[derive(Debug)]
pub struct Call<'a, H: ?Sized> {
    /// The method (`GET`).
    pub method: &'a str,
    /// The path, with or without its query (`/orders/7?x=1`).
    pub path: &'a str,
    /// The request headers.
    pub headers: &'a H,
    /// The caller's authenticated SPIFFE ID, as the door established it.
    pub peer: Option<String>,
    /// The caller's X.509-SVID chain (PEM, leaf first), for custody to validate.
    pub peer_certificates: Vec<String>,
}

/// Builds the custody request for one call.
pub fn map_request<H: Headers + ?Sized>(
    call: Call<'_, H>,
    settings: &MapSettings,
    limits: &Limits,
) -> Result<Request, MapError> {
    let headers = call.headers;
    let presented = bearer(headers.one("authorization")?.as_deref())?;
    let mut tokens = match headers.one(CHAIN_HEADER)? {
        Some(chain) => split_chain(&chain, limits)?,
        None => Vec::new(),
    };
    tokens.push(presented);
    let txn_token = headers
        .one(TXN_HEADER)?
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let action = match &settings.action_header {
        Some(name) => match headers.one(name)? {
            Some(a) if !a.trim().is_empty() => a.trim().to_owned(),
            _ => {
                return Err(MapError::Invalid(format!(
                    "the `{name}` header (the action) is missing"
                )))
            }
        },
        None => method_path(call.method, call.path)?,
    };
    let wit = one_proof(headers, WIT_HEADER)?;
    let wpt = one_proof(headers, WPT_HEADER)?;
    let dpop = one_proof(headers, DPOP_HEADER)?;
    let (target_uri, proof_headers) = match (&wpt, &dpop) {
        (None, None) => (None, None),
        _ => (
            settings
                .target_authority
                .as_ref()
                .map(|a| format!("{a}{}", without_query(call.path))),
            Some(proof_headers(headers)),
        ),
    };
    let now = match headers.one(NOW_HEADER)? {
        None => None,
        Some(_) if !settings.allow_request_time => {
            return Err(MapError::Invalid(format!(
                "a request-supplied time (`{NOW_HEADER}`) is refused: request time is not allowed (`--allow-request-time`)"
            )))
        }
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            MapError::Invalid(format!("`{NOW_HEADER}` must be unix seconds"))
        })?),
    };
    let audience = settings.audience.clone().ok_or_else(|| {
        MapError::Invalid(
            "no audience is configured (`--audience ID`): custody cannot know which service \
             the tokens must be addressed to (it never trusts `Host`)"
                .into(),
        )
    })?;
    refuse_txn_first(&tokens, limits)?;
    Ok(Request {
        tokens,
        txn_token,
        audience,
        action,
        resource: None,
        peer: call.peer,
        now,
        context: None,
        peer_certificates: call.peer_certificates,
        wit,
        http_method: dpop.as_ref().map(|_| call.method.to_owned()),
        wpt,
        dpop,
        target_uri,
        proof_headers,
    })
}

/// A proof header (`workload-identity-token`, `workload-proof-token`, `dpop`): at most one,
/// one compact JWS. A proxy joins repeated headers with commas, which no JWS holds, so a comma
/// is a second header (draft-ietf-wimse-wpt: exactly one `Workload-Proof-Token`; RFC 9449:
/// one `DPoP`).
fn one_proof<H: Headers + ?Sized>(headers: &H, name: &str) -> Result<Option<String>, MapError> {
    match headers.one(name)? {
        None => Ok(None),
        Some(v) if v.contains(',') => {
            Err(MapError::Invalid(format!("more than one `{name}` header")))
        }
        Some(v) => Ok(Some(v.trim().to_owned()).filter(|v| !v.is_empty())),
    }
}

/// The headers a WPT's `oth` may cover: every request header but pseudo-headers and the ones
/// with a hash claim of their own (or none: the credentials and proofs themselves).
fn proof_headers<H: Headers + ?Sized>(headers: &H) -> BTreeMap<String, String> {
    const OWN: [&str; 6] = [
        "authorization",
        CHAIN_HEADER,
        TXN_HEADER,
        WIT_HEADER,
        WPT_HEADER,
        DPOP_HEADER,
    ];
    headers
        .all()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| !k.starts_with(':') && !OWN.contains(&k.as_str()))
        .collect()
}

/// A Txn-Token is no bearer credential (draft-ietf-oauth-transaction-tokens): it comes only in
/// the `txn-token` header. The verifier accepts one first in `tokens` (a Txn-Token replacement
/// chain), so the first token is checked here: one that decodes (as the verifier decodes it,
/// so a token it would refuse earlier, as too large or malformed, is left to it) and whose
/// `typ` is `txntoken+jwt` is `wrong_token_type` at hop 0. After an access token first, the
/// verifier itself refuses a Txn-Token at its `typ` check (`wrong_token_type`, its hop), after
/// every check of the tokens before it.
fn refuse_txn_first(tokens: &[String], limits: &Limits) -> Result<(), MapError> {
    let Some(first) = tokens.first() else {
        return Ok(());
    };
    // the header alone first: almost every call's first token is an access token, whose
    // payload the verifier (or its token cache) reads anyway
    let txn_typed = custody_jose::decode_header(first, limits)
        .is_ok_and(|h| classify_typ(h.typ.as_deref()) == TokenClass::TxnToken);
    if !txn_typed || custody_jose::decode(first, limits).is_err() {
        return Ok(());
    }
    let from = if tokens.len() == 1 {
        "`authorization: Bearer`"
    } else {
        "the first `custody-chain` entry"
    };
    Err(MapError::TxnAsBearer(
        0,
        format!(
            "{from} is a Txn-Token (`typ` `txntoken+jwt`): a Txn-Token is no bearer \
             credential and is accepted only in the `{TXN_HEADER}` header"
        ),
    ))
}

/// The token of an `authorization: Bearer <token>` (or `DPoP <token>`) header.
fn bearer(value: Option<&str>) -> Result<String, MapError> {
    let missing = || MapError::NoToken("no `authorization: Bearer` token".into());
    let value = value.ok_or_else(missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("dpop") {
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

/// `METHOD:path`, the path without its query string or fragment (`GET:/orders/7`): one scope
/// item, since scopes are space-separated.
fn method_path(method: &str, path: &str) -> Result<String, MapError> {
    let path = without_query(path);
    if method.is_empty() || !path.starts_with('/') {
        return Err(MapError::Invalid(
            "the HTTP request has no method or no absolute path".into(),
        ));
    }
    Ok(format!("{method}:{path}"))
}

/// Whether a denial is about the credential itself (401) rather than what it allows (403).
pub fn unauthenticated(code: ReasonCode) -> bool {
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
            | ReasonCode::PeerInvalid
            | ReasonCode::Replayed
    )
}

/// What an HTTP door answers for a denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// 401, 403 or 503.
    pub status: u16,
    /// The `www-authenticate` challenge of a 401 (and of a 403 for a missing scope).
    pub www_authenticate: Option<String>,
    /// `{"decision":"deny","reasons":[{"code","hop","message"}...]}` (`application/json`).
    pub body: String,
}

/// What a door knows to put in its `www-authenticate` challenges besides the decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// The protected resource metadata URL (RFC 9728 §5.1), when the pack declares a
    /// `resource` ([`custody_verifier::ProtectedResource::metadata_url`]): every challenge names
    /// it, so a client can find where to get a token.
    pub resource_metadata: Option<&'a str>,
    /// The request's action: the scope a `scope_missing` denial asks for (RFC 6750 §3), named
    /// only when it is a valid scope token.
    pub action: Option<&'a str>,
}

/// The answer to a denied decision. `no_token` marks the missing-bearer denial
/// ([`MapError::is_no_token`]).
pub fn denial(decision: &Decision, no_token: bool, challenge: &Challenge<'_>) -> Denial {
    let first = decision.code().unwrap_or(ReasonCode::InvalidRequest);
    // a decision that did not finish, or keys or the store unavailable, say nothing of the
    // credential: the caller may retry
    let status = if matches!(
        first,
        ReasonCode::DecisionTimeout | ReasonCode::KeysUnavailable | ReasonCode::StoreUnavailable
    ) {
        503
    } else if no_token || unauthenticated(first) {
        401
    } else {
        403
    };
    let mut www_authenticate = if no_token {
        Some(REALM.to_owned())
    } else if unauthenticated(first) {
        Some(format!(
            "{REALM}, error=\"invalid_token\", error_description=\"{}\"",
            first.as_str()
        ))
    } else if first == ReasonCode::ScopeMissing {
        let mut c = format!("{REALM}, error=\"insufficient_scope\"");
        if let Some(action) = challenge
            .action
            .filter(|a| custody_verifier::is_scope_token(a))
        {
            c.push_str(&format!(", scope=\"{action}\""));
        }
        Some(c)
    } else {
        None
    };
    if let (Some(c), Some(url)) = (&mut www_authenticate, challenge.resource_metadata) {
        // the URL was checked printable ASCII when the pack loaded; a quote or backslash would
        // end or escape the quoted string, so such a URL is left out rather than mangled
        if url
            .bytes()
            .all(|b| (0x21..=0x7E).contains(&b) && b != b'"' && b != b'\\')
        {
            c.push_str(&format!(", resource_metadata=\"{url}\""));
        }
    }
    let body = json!({"decision": "deny", "reasons": reasons_json(&decision.reasons)}).to_string();
    Denial {
        status,
        www_authenticate,
        body,
    }
}

/// The reasons as JSON: `[{"code", "hop", "message"}...]`.
pub fn reasons_json(reasons: &[Reason]) -> serde_json::Value {
    reasons
        .iter()
        .map(|r| json!({"code": r.code.as_str(), "hop": r.hop, "message": r.message}))
        .collect()
}

/// The headers an allowed call goes on with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowHeaders {
    /// Set, replacing any value the client sent (values already [`header_safe`]).
    pub set: Vec<(&'static str, String)>,
    /// Removed (a chain without actors has no `x-custody-actor`; no chain, none of them).
    pub remove: Vec<&'static str>,
}

/// The `x-custody-*` headers for an allowed decision.
pub fn allow_headers(decision: &Decision) -> AllowHeaders {
    let mut set = Vec::with_capacity(3);
    let mut remove = Vec::new();
    match &decision.chain {
        Some(c) => {
            set.push((ORIGIN_HEADER, header_safe(&c.origin)));
            set.push((DEPTH_HEADER, c.depth.to_string()));
            match c.actors.last() {
                Some(a) => set.push((ACTOR_HEADER, header_safe(a))),
                None => remove.push(ACTOR_HEADER),
            }
        }
        None => remove.extend(SET_HEADERS),
    }
    AllowHeaders { set, remove }
}

/// Whether `header_safe` writes byte `b` as is: `A-Z a-z 0-9 - . _ ~ : / @ |` (RFC 3986's
/// unreserved characters, and `:` `/` `@` `|` for SPIFFE IDs, qualified subjects and e-mail
/// addresses). None of them is list, parameter, quoting or comment syntax in any HTTP header
/// grammar (`,` `;` `=` `"` `\` `(` `)` `<` `>` whitespace), nor `%` or `+`.
fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'/' | b'@' | b'|')
}

/// An `x-custody-*` header value: every byte of `v`'s UTF-8 outside [`kept`]'s set written
/// `%XX` (uppercase hex), so the value is one item an upstream can never split into several
/// (`a,b`), give parameters (`;x=y`) or unquote, and no subject can inject a header or break
/// a proxy's header validation. Exactly undone by plain percent-decoding (Python's
/// `urllib.parse.unquote`, JavaScript's `decodeURIComponent`, Rust's
/// `percent_encoding::percent_decode_str(..).decode_utf8()`).
pub fn header_safe(v: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if kept(b) {
            out.push(char::from(b));
        } else {
            // writing to a String cannot fail
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn map(h: &HeaderMap, settings: &MapSettings) -> Result<Request, MapError> {
        map_request(
            Call {
                method: "GET",
                path: "/orders/7?x=1",
                headers: h,
                peer: None,
                peer_certificates: Vec::new(),
            },
            settings,
            &Limits::default(),
        )
    }

    #[test]
    fn a_header_map_maps_like_envoy_headers() {
        let s = MapSettings::for_audience("spiffe://b.example/api");
        let h = headers(&[
            ("authorization", "Bearer t3"),
            ("custody-chain", "t1, t2"),
            ("txn-token", " x "),
        ]);
        let r = map(&h, &s).unwrap();
        assert_eq!(r.tokens, ["t1", "t2", "t3"]);
        assert_eq!(r.txn_token.as_deref(), Some("x"));
        assert_eq!(r.action, "GET:/orders/7");
        assert_eq!(r.audience, "spiffe://b.example/api");
        assert!(r.target_uri.is_none() && r.proof_headers.is_none());
    }

    #[test]
    fn a_repeated_credential_header_is_refused() {
        let s = MapSettings::for_audience("a");
        let h = headers(&[
            ("authorization", "Bearer t1"),
            ("authorization", "Bearer t2"),
        ]);
        assert!(matches!(map(&h, &s), Err(MapError::Invalid(m)) if m.contains("more than one")));
        let h = headers(&[("authorization", "Bearer t1"), ("dpop", "a"), ("dpop", "b")]);
        assert!(map(&h, &s).is_err());
    }

    #[test]
    fn no_audience_no_request() {
        let h = headers(&[("authorization", "Bearer t1")]);
        assert!(matches!(
            map(&h, &MapSettings::default()),
            Err(MapError::Invalid(_))
        ));
        let h = headers(&[]);
        assert!(map(&h, &MapSettings::for_audience("a"))
            .unwrap_err()
            .is_no_token());
    }

    #[test]
    fn proofs_take_the_target_from_settings_and_the_other_headers() {
        let s = MapSettings {
            target_authority: Some("https://b.example".into()),
            ..MapSettings::for_audience("a")
        };
        let h = headers(&[
            ("authorization", "DPoP t1"),
            ("dpop", "p"),
            ("host", "evil.example"),
            ("x-a", "1"),
            ("x-a", "2"),
        ]);
        let r = map(&h, &s).unwrap();
        assert_eq!(r.target_uri.as_deref(), Some("https://b.example/orders/7"));
        assert_eq!(r.http_method.as_deref(), Some("GET"));
        let p = r.proof_headers.unwrap();
        assert_eq!(p.get("x-a").map(String::as_str), Some("1, 2"));
        assert!(!p.contains_key("authorization") && !p.contains_key("dpop"));
    }

    #[test]
    fn the_default_action_is_method_and_path_without_query() {
        assert_eq!(method_path("GET", "/a/b?c=d#e").unwrap(), "GET:/a/b");
        assert!(method_path("", "/a").is_err());
        assert!(method_path("GET", "a").is_err());
    }

    #[test]
    fn denials_choose_their_status() {
        let d = MapError::NoToken("x".into()).decision();
        let none = Challenge::default();
        let a = denial(&d, true, &none);
        assert_eq!(
            (a.status, a.www_authenticate.as_deref()),
            (401, Some(REALM))
        );
        let d = Decision::invalid_request("bad");
        let a = denial(&d, false, &none);
        assert_eq!((a.status, a.www_authenticate), (403, None));
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["reasons"][0]["code"], "invalid_request");
        let d = Decision::deny(Reason::new(ReasonCode::Expired, Some(0), "old"), None);
        let a = denial(&d, false, &none);
        assert_eq!(a.status, 401);
        assert!(a
            .www_authenticate
            .unwrap()
            .contains("error_description=\"expired\""));
        let d = Decision::deny(
            Reason::new(ReasonCode::KeysUnavailable, None, "later"),
            None,
        );
        assert_eq!(denial(&d, false, &none).status, 503);
    }

    #[test]
    fn challenges_name_the_resource_metadata_and_the_missing_scope() {
        let url = "https://mcp.example/.well-known/oauth-protected-resource/mcp";
        let with = |action| Challenge {
            resource_metadata: Some(url),
            action,
        };
        let no_token = MapError::NoToken("x".into()).decision();
        assert_eq!(
            denial(&no_token, true, &with(None))
                .www_authenticate
                .as_deref(),
            Some(format!("{REALM}, resource_metadata=\"{url}\"").as_str())
        );
        let expired = Decision::deny(Reason::new(ReasonCode::Expired, Some(0), "old"), None);
        assert_eq!(
            denial(&expired, false, &with(Some("tools/call:x"))).www_authenticate.as_deref(),
            Some(format!("{REALM}, error=\"invalid_token\", error_description=\"expired\", resource_metadata=\"{url}\"").as_str())
        );
        let scope = Decision::deny(Reason::new(ReasonCode::ScopeMissing, Some(0), "no"), None);
        let a = denial(&scope, false, &with(Some("tools/call:delete_repo")));
        assert_eq!(
            (a.status, a.www_authenticate.as_deref()),
            (403, Some(format!("{REALM}, error=\"insufficient_scope\", scope=\"tools/call:delete_repo\", resource_metadata=\"{url}\"").as_str()))
        );
        // an action that is no scope token is not named; nothing else changes
        for odd in ["two words", "quote\"d", "back\\slash", "", "caf\u{e9}"] {
            assert_eq!(
                denial(&scope, false, &with(Some(odd)))
                    .www_authenticate
                    .as_deref(),
                Some(
                    format!("{REALM}, error=\"insufficient_scope\", resource_metadata=\"{url}\"")
                        .as_str()
                ),
                "{odd}"
            );
        }
        // other 403s and 503s carry no challenge, with or without a resource
        let escalation =
            Decision::deny(Reason::new(ReasonCode::ScopeEscalation, Some(1), "x"), None);
        assert_eq!(
            denial(&escalation, false, &with(Some("a"))).www_authenticate,
            None
        );
        let later = Decision::deny(Reason::new(ReasonCode::KeysUnavailable, None, "x"), None);
        assert_eq!(
            denial(&later, false, &with(Some("a"))).www_authenticate,
            None
        );
        // a URL that would break the quoted string is left out
        let bad = Challenge {
            resource_metadata: Some("https://h/\"x"),
            action: None,
        };
        assert_eq!(
            denial(&no_token, true, &bad).www_authenticate.as_deref(),
            Some(REALM)
        );
    }
}
