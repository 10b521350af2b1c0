//! Compact JWS decoding, strict: three base64url segments without padding, JSON-object header
//! and payload with no duplicate keys, depth and size capped before any signature work.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::json::Members;
use crate::{json, Limits};

/// Header members custody understands. Everything else is refused: `crit`, `jku`, `x5u`,
/// `jwk`, `x5c` because they smuggle keys or semantics in (RFC 8725 §3.10), the rest because a
/// verifier that ignores a header its signer relied on (`b64`, `cty`, …) verifies something else.
const KNOWN_HEADERS: [&str; 3] = ["alg", "kid", "typ"];
const KEY_SMUGGLING_HEADERS: [&str; 5] = ["crit", "jku", "x5u", "jwk", "x5c"];

/// The protected header of a decoded token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// `alg`, already known to be on custody's list ([`Algorithm::from_name`](crate::Algorithm::from_name));
    /// whether it fits the key is the key's to say.
    pub alg: String,
    /// `kid`, if present.
    pub kid: Option<String>,
    /// `typ`, if present, as written.
    pub typ: Option<String>,
}

/// A structurally valid compact JWS whose signature has not been checked yet.
#[derive(Clone, Debug)]
pub struct UnverifiedJws<'a> {
    /// The header.
    pub header: Header,
    /// The payload's claims.
    pub claims: Map<String, Value>,
    /// `base64url(header) "." base64url(payload)`, the bytes the signature covers.
    pub signing_input: &'a [u8],
    /// The decoded signature (any length; verification refuses every length but the
    /// algorithm's).
    pub signature: Vec<u8>,
}

/// Why a token failed decoding or header checks, in the order they run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwsError {
    /// Longer than `Limits::token_bytes`.
    TooLarge(usize),
    /// Not a strict compact JWS; the text says what is wrong.
    Malformed(String),
    /// `alg` absent or not on custody's list of algorithms.
    AlgNotAllowed(String),
}

impl fmt::Display for JwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwsError::TooLarge(n) => write!(f, "token longer than {n} bytes"),
            JwsError::Malformed(m) | JwsError::AlgNotAllowed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for JwsError {}

fn malformed(msg: impl Into<String>) -> JwsError {
    JwsError::Malformed(msg.into())
}

/// Decodes a compact JWS and checks its header; does not verify the signature.
pub fn decode<'a>(token: &'a str, limits: &Limits) -> Result<UnverifiedJws<'a>, JwsError> {
    decode_inner(token, limits, false, |p| {
        decode_object(p, "payload", limits)
    })
    .map(UnverifiedJws::from)
}

/// [`decode`] for the one token whose header carries its own key: a DPoP proof (RFC 9449
/// §4.2). The `jwk` header member is required and returned as the object it is; every other
/// header rule is [`decode`]'s. Whether the key may be trusted is the caller's to say.
pub fn decode_with_jwk<'a>(
    token: &'a str,
    limits: &Limits,
) -> Result<(UnverifiedJws<'a>, Map<String, Value>), JwsError> {
    let mut parts = decode_inner(token, limits, true, |p| decode_object(p, "payload", limits))?;
    let jwk = parts
        .jwk
        .take()
        .ok_or_else(|| malformed("header has no `jwk`"))?;
    Ok((parts.into(), jwk))
}

/// A compact JWS decoded as [`decode`] decodes it, its claims read into [`Members`] (the
/// claims a verifier looks up, each in its slot, strings as the text they are in the decoded
/// payload, `'p`) instead of a map.
#[derive(Clone, Debug)]
pub struct UnverifiedMembers<'a, 'p, const N: usize> {
    /// The header.
    pub header: Header,
    /// The payload's claims.
    pub claims: Members<'p, N>,
    /// `base64url(header) "." base64url(payload)`, the bytes the signature covers.
    pub signing_input: &'a [u8],
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// [`decode`], with the claims read into [`Members`] placed by `slot`: the same tokens
/// accepted, the same errors, the same claims. The payload is decoded into `payload` (cleared
/// first), which the claims then borrow; a claim set without escaped names is read straight
/// into its slots, any other through [`decode`]'s reader.
pub fn decode_members<'a, 'p, const N: usize>(
    token: &'a str,
    limits: &Limits,
    slot: fn(&str) -> Option<usize>,
    payload: &'p mut Vec<u8>,
) -> Result<UnverifiedMembers<'a, 'p, N>, JwsError> {
    let read = move |p: &str| {
        // moved in (not reborrowed): the claims borrow the payload for `'p`
        let buf = payload;
        unbase64_into(p, "payload", buf)?;
        let bytes: &'p [u8] = buf;
        // the quick reader, then serde_json's member reader, then the general reader: each
        // reads what the one before it leaves, and the first two answer only as the general
        // reader would
        let fast = json::quick_members(bytes, limits.json_depth, limits.claims_per_object, slot)
            .or_else(|| json::members(bytes, limits.json_depth, limits.claims_per_object, slot))
            .filter(|m: &Members<'p, N>| {
                widest(m.len(), m.containers()) <= limits.claims_per_object
            });
        match fast {
            Some(m) => Ok(m),
            None => object(bytes, "payload", limits).map(|map| Members::from_map(map, slot)),
        }
    };
    let parts = decode_inner(token, limits, false, read)?;
    Ok(UnverifiedMembers {
        header: parts.header,
        claims: parts.claims,
        signing_input: parts.signing_input,
        signature: parts.signature,
    })
}

impl<'a> From<Parts<'a, Map<String, Value>>> for UnverifiedJws<'a> {
    fn from(p: Parts<'a, Map<String, Value>>) -> Self {
        UnverifiedJws {
            header: p.header,
            claims: p.claims,
            signing_input: p.signing_input,
            signature: p.signature,
        }
    }
}

/// What [`decode_inner`] decodes, the claims as `read` reads them.
struct Parts<'a, C> {
    header: Header,
    claims: C,
    signing_input: &'a [u8],
    signature: Vec<u8>,
    /// A DPoP proof's `jwk` (asked for with `with_jwk`).
    jwk: Option<Map<String, Value>>,
}

/// The one decoding of a compact JWS, in DESIGN.md's order: size, three parts, each part
/// decoded (the payload by `read`), then the header's rules.
fn decode_inner<'a, C>(
    token: &'a str,
    limits: &Limits,
    with_jwk: bool,
    read: impl FnOnce(&str) -> Result<C, JwsError>,
) -> Result<Parts<'a, C>, JwsError> {
    if token.len() > limits.token_bytes {
        return Err(JwsError::TooLarge(limits.token_bytes));
    }
    let three = || malformed("a compact JWS has exactly three dot-separated parts");
    let (h, rest) = split_at_dot(token).ok_or_else(three)?;
    let (p, s) = split_at_dot(rest).ok_or_else(three)?;
    let parts = decode_parts(token, (h, p, s), with_jwk, limits, read);
    // the signature part is not searched for a third dot up front: its decoding refuses a
    // dot, and any error then gives way to this one, which comes first in DESIGN.md's order
    match parts {
        Err(_) if s.contains('.') => Err(three()),
        other => other,
    }
}

/// `text` split at its first `.`, eight bytes at a time (`str::split_once`'s answer).
fn split_at_dot(text: &str) -> Option<(&str, &str)> {
    use crate::swar::{below, first, ONES};
    let at = first(
        text.as_bytes(),
        0,
        |x| below(x ^ (ONES * u64::from(b'.')), 1),
        |c| c == b'.',
    );
    // a `.` is one byte of its own in UTF-8: both sides are on character boundaries
    Some((text.get(..at)?, text.get(at.checked_add(1)?..)?))
}

/// [`decode_inner`] once the token is split at its first two dots.
fn decode_parts<'a, C>(
    token: &'a str,
    (h, p, s): (&str, &str, &str),
    with_jwk: bool,
    limits: &Limits,
    read: impl FnOnce(&str) -> Result<C, JwsError>,
) -> Result<Parts<'a, C>, JwsError> {
    let header = read_header(h, limits)?;
    let claims = read(p)?;
    let signature = unbase64(s, "signature")?;
    // the header's rules come after every part decoded (DESIGN.md's order)
    let (header, jwk) = header.check(with_jwk)?;
    let signing_input = token
        .as_bytes()
        .get(..h.len() + 1 + p.len())
        .ok_or_else(|| malformed("truncated"))?;
    Ok(Parts {
        header,
        claims,
        signing_input,
        signature,
        jwk,
    })
}

/// Decodes and checks a compact JWS's protected header alone, as [`decode`] does, without
/// reading the payload or the signature: for a look at `typ` that costs little.
pub fn decode_header(token: &str, limits: &Limits) -> Result<Header, JwsError> {
    if token.len() > limits.token_bytes {
        return Err(JwsError::TooLarge(limits.token_bytes));
    }
    let h = token.split('.').next().unwrap_or_default();
    read_header(h, limits)?
        .check(false)
        .map(|(header, _)| header)
}

/// A header part decoded (base64url, strict JSON, object width), its rules not yet applied.
enum RawHeader {
    /// The header almost every token has, an object of `alg` (an allowed algorithm), `kid`
    /// and `typ` strings, read straight into a [`Header`] by [`plain_header`]: it passes
    /// [`check_header`] as it is.
    Plain(Header),
    /// Any other header, for [`check_header`] (which refuses it with its own message).
    General(Map<String, Value>),
}

impl RawHeader {
    /// The header's rules applied; with `with_jwk`, a DPoP proof's `jwk` is taken out before
    /// them (anywhere else `check_header` refuses it in its usual order). A plain header has
    /// no `jwk`.
    fn check(self, with_jwk: bool) -> Result<(Header, Option<Map<String, Value>>), JwsError> {
        match self {
            RawHeader::Plain(header) => Ok((header, None)),
            RawHeader::General(mut map) => {
                let jwk = match with_jwk.then(|| map.remove("jwk")).flatten() {
                    Some(Value::Object(jwk)) => Some(jwk),
                    Some(_) => return Err(malformed("header `jwk` must be an object")),
                    None => None,
                };
                Ok((check_header(&map)?, jwk))
            }
        }
    }
}

fn read_header(part: &str, limits: &Limits) -> Result<RawHeader, JwsError> {
    let bytes = unbase64(part, "header")?;
    if let Some(header) = plain_header(&bytes, limits) {
        return Ok(RawHeader::Plain(header));
    }
    Ok(RawHeader::General(object(&bytes, "header", limits)?))
}

/// `bytes` as a header of `alg` (an allowed algorithm), `kid` and `typ`, each a string and
/// present at most once, and nothing else, within `limits`; `None` for any other text, valid
/// or not (the general reader decides). Strict JSON as [`json::parse`] reads it: serde_json's
/// grammar, UTF-8 and trailing-data rules, and a repeated name refused (here by refusing the
/// plain form).
fn plain_header(bytes: &[u8], limits: &Limits) -> Option<Header> {
    quick_header(bytes, limits).or_else(|| serde_plain_header(bytes, limits))
}

/// [`plain_header`] for a header whose strings have no escapes, read by the quick reader
/// (`None` for any other text).
fn quick_header(bytes: &[u8], limits: &Limits) -> Option<Header> {
    let (mut alg, mut kid, mut typ) = (None, None, None);
    crate::quick::strings(
        bytes,
        limits.json_depth,
        limits.claims_per_object,
        |name, v| {
            let slot = match name {
                "alg" => &mut alg,
                "kid" => &mut kid,
                "typ" => &mut typ,
                _ => return None,
            };
            slot.is_none().then_some(())?;
            *slot = Some(v);
            Some(())
        },
    )?;
    let alg = alg.filter(|a| crate::Algorithm::from_name(a).is_some())?;
    Some(Header {
        alg: alg.to_owned(),
        kid: kid.map(str::to_owned),
        typ: typ.map(str::to_owned),
    })
}

/// [`plain_header`] read through serde_json, for the plain form the quick reader leaves.
fn serde_plain_header(bytes: &[u8], limits: &Limits) -> Option<Header> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let header = de.deserialize_map(PlainHeader).ok()?;
    de.end().ok()?;
    let members = 1 + usize::from(header.kid.is_some()) + usize::from(header.typ.is_some());
    let fits = limits.json_depth >= 1 && members <= limits.claims_per_object;
    (fits && crate::Algorithm::from_name(&header.alg).is_some()).then_some(header)
}

/// The visitor of [`plain_header`]: an error for anything but the plain form (the error's text
/// is never shown).
struct PlainHeader;

/// A header member's name, as [`PlainHeader`] tells them apart.
enum HeaderName {
    Alg,
    Kid,
    Typ,
    Other,
}

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Names;
        impl Visitor<'_> for Names {
            type Value = HeaderName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderName, E> {
                Ok(match v {
                    "alg" => HeaderName::Alg,
                    "kid" => HeaderName::Kid,
                    "typ" => HeaderName::Typ,
                    _ => HeaderName::Other,
                })
            }
        }
        d.deserialize_str(Names)
    }
}

impl<'de> Visitor<'de> for PlainHeader {
    type Value = Header;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plain header")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Header, A::Error> {
        let (mut alg, mut kid, mut typ) = (None, None, None);
        while let Some(name) = m.next_key::<HeaderName>()? {
            let slot = match name {
                HeaderName::Alg => &mut alg,
                HeaderName::Kid => &mut kid,
                HeaderName::Typ => &mut typ,
                HeaderName::Other => return Err(de::Error::custom("not plain")),
            };
            if slot.is_some() {
                return Err(de::Error::custom("not plain"));
            }
            // a string, or an error (`null` included: `Option` is not asked for)
            *slot = Some(m.next_value::<String>()?);
        }
        let alg = alg.ok_or_else(|| de::Error::custom("not plain"))?;
        Ok(Header { alg, kid, typ })
    }
}

fn decode_object(part: &str, what: &str, limits: &Limits) -> Result<Map<String, Value>, JwsError> {
    object(&unbase64(part, what)?, what, limits)
}

/// Token part `what` decoded from base64url.
fn unbase64(part: &str, what: &str) -> Result<Vec<u8>, JwsError> {
    let mut out = Vec::new();
    unbase64_into(part, what, &mut out)?;
    Ok(out)
}

/// Token part `what` decoded from base64url into `out` (cleared first).
fn unbase64_into(part: &str, what: &str, out: &mut Vec<u8>) -> Result<(), JwsError> {
    out.clear();
    crate::b64::decode_into(part.as_bytes(), out)
        .map_err(|_| malformed(format!("{what} is not unpadded base64url")))
}

/// `bytes` as a strict JSON object no object of which has more than
/// `limits.claims_per_object` members.
fn object(bytes: &[u8], what: &str, limits: &Limits) -> Result<Map<String, Value>, JwsError> {
    let map = json::parse_object(bytes, limits.json_depth)
        .map_err(|e| malformed(format!("{what}: {e}")))?;
    if widest(map.len(), map.values()) > limits.claims_per_object {
        return Err(malformed(format!(
            "{what} has an object with more than {} members",
            limits.claims_per_object
        )));
    }
    Ok(map)
}

/// The member count of the widest object in an object of `members` members whose values are
/// `values`, itself included.
fn widest<'v>(members: usize, values: impl Iterator<Item = &'v Value>) -> usize {
    values.map(widest_in).fold(members, usize::max)
}

/// The member count of the widest object in `v`, itself included (0 for no object).
fn widest_in(v: &Value) -> usize {
    match v {
        Value::Object(m) => widest(m.len(), m.values()),
        Value::Array(a) => a.iter().map(widest_in).fold(0, usize::max),
        _ => 0,
    }
}

fn check_header(h: &Map<String, Value>) -> Result<Header, JwsError> {
    let alg = match h.get("alg") {
        None => return Err(JwsError::AlgNotAllowed("header has no `alg`".into())),
        Some(Value::String(a)) => a,
        Some(_) => return Err(malformed("header `alg` must be a string")),
    };
    if crate::Algorithm::from_name(alg).is_none() {
        return Err(JwsError::AlgNotAllowed(format!(
            "`alg` `{alg}` is not allowed: only `EdDSA`, `Ed25519`, `ES256`, `ES384`, `RS256`, `RS384`, `RS512`, `PS256`, `PS384` and `PS512`"
        )));
    }
    for name in h.keys() {
        if KEY_SMUGGLING_HEADERS.contains(&name.as_str()) {
            return Err(malformed(format!("header `{name}` is refused")));
        }
        if !KNOWN_HEADERS.contains(&name.as_str()) {
            return Err(malformed(format!("unsupported header `{name}`")));
        }
    }
    Ok(Header {
        alg: alg.clone(),
        kid: opt_string(h, "kid")?,
        typ: opt_string(h, "typ")?,
    })
}

fn opt_string(h: &Map<String, Value>, name: &str) -> Result<Option<String>, JwsError> {
    match h.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(format!("header `{name}` must be a string"))),
    }
}

/// The token classes `typ` distinguishes here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenClass {
    /// `at+jwt`, `JWT`, or no `typ`.
    Access,
    /// `txntoken+jwt`.
    TxnToken,
    /// Anything else (`wit+jwt`, `wpt+jwt`, `JOSE`, parameters, …).
    Other,
}

/// Whether `typ` is the media type `name` (lower case, without `application/`): compared ASCII
/// case-insensitively, the `application/` prefix optional (RFC 7515 §4.1.9). Every `typ`
/// comparison in custody goes through here.
pub fn media_type_is(typ: &str, name: &str) -> bool {
    const PREFIX: &str = "application/";
    let bare = match typ.get(..PREFIX.len()) {
        Some(p) if p.eq_ignore_ascii_case(PREFIX) => typ.get(PREFIX.len()..).unwrap_or(""),
        _ => typ,
    };
    bare.eq_ignore_ascii_case(name)
}

/// Classifies `typ` as a media type ([`media_type_is`]).
pub fn classify_typ(typ: Option<&str>) -> TokenClass {
    let Some(typ) = typ else {
        return TokenClass::Access;
    };
    let is = |name: &str| media_type_is(typ, name);
    if is("at+jwt") || is("jwt") {
        TokenClass::Access
    } else if is("txntoken+jwt") {
        TokenClass::TxnToken
    } else {
        TokenClass::Other
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::b64::B64;
    use crate::json::Peek;

    /// The media-type comparison, against the lowercasing it replaces.
    #[test]
    fn classify_typ_is_case_insensitive_with_optional_application() {
        let reference = |typ: &str| {
            let lower = typ.to_ascii_lowercase();
            match lower.strip_prefix("application/").unwrap_or(&lower) {
                "at+jwt" | "jwt" => TokenClass::Access,
                "txntoken+jwt" => TokenClass::TxnToken,
                _ => TokenClass::Other,
            }
        };
        let cases = [
            "at+jwt",
            "AT+JWT",
            "JWT",
            "jwt",
            "application/at+jwt",
            "Application/JWT",
            "APPLICATION/TXNTOKEN+JWT",
            "txntoken+jwt",
            "application/",
            "application",
            "",
            "application/application/jwt",
            "at+jwt ",
            "wit+jwt",
            "JOSE",
            "jwt;x=1",
            "é",
            "applicatioé",
            "application/é",
            "Ä",
            "applicationÄ/jwt",
        ];
        for typ in cases {
            assert_eq!(classify_typ(Some(typ)), reference(typ), "{typ:?}");
        }
        assert_eq!(classify_typ(None), TokenClass::Access);
    }

    /// The general reading of a header: strict JSON, object width, then the header rules.
    fn general(bytes: &[u8], limits: &Limits) -> Result<Header, JwsError> {
        check_header(&object(bytes, "header", limits)?)
    }

    /// The plain-header reader agrees with the general one on every header it reads, and
    /// reads the usual ones (so decoding them never takes the general way).
    #[test]
    fn plain_header_agrees_with_the_general_reading() {
        let limits = Limits::default();
        let plain_cases: [&[u8]; 7] = [
            br#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#,
            br#"{"alg":"EdDSA"}"#,
            br#"{"typ":"JWT","kid":"x","alg":"ES256"}"#,
            br#" { "alg" : "PS512" , "kid" : "" } "#,
            br#"{"alg":"RS\u0032\u00356","kid":"\u00e9\ud83d\ude00"}"#,
            br#"{"alg":"Ed25519","typ":"txntoken+jwt"}"#,
            "{\"alg\":\"ES384\",\"kid\":\"é\"}".as_bytes(),
        ];
        for text in plain_cases {
            let plain = plain_header(text, &limits);
            assert!(plain.is_some(), "{}", String::from_utf8_lossy(text));
            assert_eq!(plain.map(Ok), Some(general(text, &limits)));
        }
        let general_cases: [&[u8]; 20] = [
            br#"{"alg":"RS256","kid":null}"#,
            br#"{"alg":"RS256","typ":{"a":1}}"#,
            br#"{"alg":"RS256","kid":1}"#,
            br#"{"alg":"RS256","alg":"RS256"}"#,
            br#"{"alg":"RS256","kid":"a","\u006bid":"a"}"#,
            br#"{"alg":"none"}"#,
            br#"{"alg":"HS256","kid":"k"}"#,
            br#"{"kid":"k"}"#,
            br#"{}"#,
            br#"["RS256","k","JWT"]"#,
            br#"{"alg":"RS256"} {}"#,
            br#"{"alg":"RS256"}x"#,
            br#"{"alg":"RS256","kid":"\ud800"}"#,
            br#"{"alg":"RS256","x5u":"https://a.example/k"}"#,
            br#"{"alg":"RS256","crit":["exp"]}"#,
            br#"{"alg":"RS256","jwk":{}}"#,
            br#"{"alg":"RS256","zip":"DEF"}"#,
            b"{\"alg\":\"RS256\",\"kid\":\"\xff\"}",
            br#"{"alg":"RS256","kid":"a"#,
            br#""RS256""#,
        ];
        for text in general_cases {
            let shown = String::from_utf8_lossy(text);
            assert_eq!(plain_header(text, &limits), None, "{shown}");
            assert!(general(text, &limits).is_err(), "{shown}");
        }
        // limits the plain form would exceed: the general reading refuses it, with its message
        let three = br#"{"alg":"RS256","kid":"k","typ":"JWT"}"#;
        for limits in [
            Limits {
                claims_per_object: 2,
                ..Limits::default()
            },
            Limits {
                json_depth: 0,
                ..Limits::default()
            },
        ] {
            assert_eq!(plain_header(three, &limits), None);
            assert!(general(three, &limits).is_err());
        }
    }

    /// Claim names with a slot in [`members_agree_with_the_map`].
    fn slot3(name: &str) -> Option<usize> {
        ["sub", "act", "exp"].iter().position(|n| *n == name)
    }

    /// `decode_members` takes and refuses what `decode` does, with the same message, and
    /// reads every claim as the map does: on the fast path (plain names) and on the general
    /// one (an escaped name), for placed and other claims, strings with and without escapes.
    #[test]
    fn members_agree_with_the_map() {
        let header = B64.encode(r#"{"alg":"EdDSA","kid":"k"}"#);
        let nested = |n: usize| {
            let inner: Vec<String> = (0..n).map(|i| format!("\"m{i}\":{i}")).collect();
            format!(r#"{{"sub":"s","x":{{{}}}}}"#, inner.join(","))
        };
        let wide = |n: usize| {
            let all: Vec<String> = (0..n).map(|i| format!("\"c{i}\":{i}")).collect();
            format!("{{{}}}", all.join(","))
        };
        let payloads: Vec<String> = vec![
            r#"{"sub":"user:carol","act":{"sub":"spiffe://a.example/x"},"exp":1,"jti":"j"}"#.into(),
            r#"{"sub":"a\"b","exp":1.5,"act":null,"other":[1,{"a":"b"}],"t":"\u00e9"}"#.into(),
            r#"{}"#.into(),
            r#"{"s\u0075b":"escaped name","x":"y"}"#.into(),
            r#"{"sub":"a","sub":"b"}"#.into(),
            r#"{"x":1,"x":2}"#.into(),
            r#"{"x":1,"\u0078":2}"#.into(),
            r#"{"sub":"a","s\u0075b":"b"}"#.into(),
            r#"{"act":{"sub":"a","sub":"b"}}"#.into(),
            r#"{"sub":"a"} {}"#.into(),
            r#"{"sub":"\ud800"}"#.into(),
            r#"{"sub":"a""#.into(),
            r#"["sub"]"#.into(),
            r#""sub""#.into(),
            format!(r#"{{"sub":{}1{}}}"#, "[".repeat(16), "]".repeat(16)),
            format!(r#"{{"sub":{}1{}}}"#, "[".repeat(15), "]".repeat(15)),
            // what the quick reader reads, and what it leaves to the general reader
            " {\"iat\" : 0 ,\n\"exp\":\t-12,\"n\":null,\"t\":true,\"f\":false,\"a\":[ ],\"o\":{ }\r} "
                .into(),
            r#"{"iat":-0,"exp":1}"#.into(),
            r#"{"iat":01}"#.into(),
            r#"{"iat":1e3,"x":1E3,"y":1.0}"#.into(),
            r#"{"iat":999999999999999999,"exp":-999999999999999999}"#.into(),
            r#"{"iat":18446744073709551616,"exp":-9223372036854775809}"#.into(),
            r#"{"iat":1,}"#.into(),
            r#"{"a":[1,2,],"b":1}"#.into(),
            r#"{"a":truex}"#.into(),
            r#"{"a":nul}"#.into(),
            r#"{"a":"tab	inside"}"#.into(),
            r#"{"a":"café","é":1}"#.into(),
            "{\"é\":\"ü\",\"act\":{\"sub\":\"x\",\"act\":{\"sub\":\"y\"}}}".into(),
            nested(64),
            nested(65),
            // objects read as their text, not built: every kind of value in them, the
            // widest such object and one wider, a repeated name and the depth cap below the top
            r#"{"act":{"sub":"a","n":-1,"l":[1,{"x":"y"}],"o":{"p":{},"q":"r"},"t":true,"z":null},"exp":1}"#.into(),
            nested(16),
            nested(17),
            format!(r#"{{"act":{{"sub":"a","act":{}}}}}"#, nested(16)),
            r#"{"o":{"p":{"a":1,"a":2}}}"#.into(),
            r#"{"o":{"p":{"a":1,"b":{"a":2}}},"a":{}}"#.into(),
            r#"{"o":{"p" :{ "a" : "b" } , "q":[ ]} }"#.into(),
            r#"{"o":{"p":{"a":"b\"c"}}}"#.into(),
            r#"{"o":{"p":{"a":01}}}"#.into(),
            format!(r#"{{"o":{}1{}}}"#, r#"{"a":"#.repeat(14), "}".repeat(14)),
            format!(r#"{{"o":{}1{}}}"#, r#"{"a":"#.repeat(15), "}".repeat(15)),
            wide(64),
            wide(65),
            wide(100),
        ];
        for limits in [
            Limits::default(),
            Limits {
                json_depth: 0,
                ..Limits::default()
            },
            Limits {
                claims_per_object: 1,
                ..Limits::default()
            },
            // wider than the fast reader reads itself: the general reader takes it
            Limits {
                claims_per_object: 200,
                ..Limits::default()
            },
        ] {
            for text in &payloads {
                let token = format!("{header}.{}.AA", B64.encode(text));
                let map = decode(&token, &limits);
                let mut buf = Vec::new();
                let members = decode_members::<3>(&token, &limits, slot3, &mut buf);
                let (map, members) = match (map, members) {
                    (Err(a), Err(b)) => {
                        assert_eq!(a, b, "{text}");
                        continue;
                    }
                    (Ok(a), Ok(b)) => (a, b),
                    (a, b) => panic!("{text}: {a:?} against {b:?}"),
                };
                assert_eq!(members.claims.len(), map.claims.len(), "{text}");
                let names = map.claims.keys().map(String::as_str);
                for name in names.clone().chain(["sub", "act", "exp", "absent"]) {
                    // looked at before anything is built for it
                    let seen = members.claims.peek(name).map(peek_tree);
                    let want = map.claims.get(name).map(|v| peek_tree(Peek::of(v)));
                    assert_eq!(seen, want, "{text} {name}");
                }
                for name in names.chain(["sub", "act", "exp", "absent"]) {
                    let want = map.claims.get(name);
                    let text_of = members.claims.get_str(name).map(|r| r.ok());
                    assert_eq!(text_of, want.map(Value::as_str), "{text} {name}");
                    assert_eq!(members.claims.get(name), want, "{text} {name}");
                }
            }
        }
    }

    /// The dot finder splits as `split_once('.')` does, a dot at every place in words and in
    /// the tail, among bytes that are and are not ASCII.
    #[test]
    fn split_at_dot_is_split_once() {
        let fills = ["a", "é", "\u{7f}", "-", "\u{ae}", "\u{2e80}", "/"];
        for len in 0..26 {
            for fill in fills {
                let base = fill.repeat(len);
                assert_eq!(split_at_dot(&base), base.split_once('.'), "{base:?}");
                for cut in 0..=base.len() {
                    let Some((a, b)) = base.split_at_checked(cut) else {
                        continue;
                    };
                    for text in [format!("{a}.{b}"), format!("{a}.{b}.{a}"), format!("{a}..")] {
                        assert_eq!(split_at_dot(&text), text.split_once('.'), "{text:?}");
                    }
                }
            }
        }
    }

    /// What a [`Peek`] shows, as a value to compare: a string as `{"s": text}`, an object as
    /// its members' `[name, shown]` pairs sorted by name (a `serde_json` map keeps document
    /// order only with its `preserve_order` feature, which this crate alone does not turn
    /// on), anything else as `"other"`.
    fn peek_tree(p: Peek<'_>) -> Value {
        match p {
            Peek::Str(s) => serde_json::json!({ "s": s }),
            Peek::Object(o) => {
                let mut pairs: Vec<(&str, Value)> =
                    o.members().map(|(name, v)| (name, peek_tree(v))).collect();
                pairs.sort_by(|a, b| a.0.cmp(b.0));
                Value::Array(
                    pairs
                        .into_iter()
                        .map(|(name, v)| serde_json::json!([name, v]))
                        .collect(),
                )
            }
            Peek::Other => "other".into(),
        }
    }

    /// A token whose header is refused and whose claims do not decode is refused for its
    /// claims: every part is decoded before the header's rules (DESIGN.md's order), on the
    /// plain and the general path alike.
    #[test]
    fn parts_decode_before_the_header_rules() {
        let b64 = |s: &str| B64.encode(s);
        let sig = b64("s");
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"RS256","x5u":"u"}"#,
            r#"{"alg":"RS256"}"#,
        ] {
            let token = format!("{}.{}.{sig}", b64(header), b64("[1"));
            let err = decode(&token, &Limits::default())
                .err()
                .map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.starts_with("payload: ")),
                "{err:?}"
            );
        }
        let token = format!("{}.{}.{sig}", b64(r#"{"alg":"none"}"#), b64("{}"));
        assert!(matches!(
            decode(&token, &Limits::default()),
            Err(JwsError::AlgNotAllowed(_))
        ));
    }
}
