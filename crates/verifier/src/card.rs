//! A2A Agent Card signatures (A2A 0.3 §8.4): each entry of the card's `signatures` is a JWS with
//! a detached payload, the RFC 8785 (JCS) canonical JSON of the card without `signatures`. The
//! key comes from the trust file: the card's provider (`provider.url`'s host, or a subdomain
//! of it) must be a declared trust domain, and the `kid` one of that domain's token keys; the
//! algorithm is the key's to allow, as for tokens.
//!
//! - The card is read as strict JSON (a member named twice anywhere is refused); the
//!   canonical form is `serde_json_canonicalizer`'s (RFC 8785: sorted by UTF-16 code units,
//!   ECMAScript number form).
//! - Each signature's protected header follows the token header rules: a known `alg`, no
//!   header that carries or points to a key (`jwk`, `jku`, `x5u`, `x5c`), no unknown member.
//!   The unprotected `header` is reported and never used.
//! - The card verifies when at least one signature verifies under a key of the provider's
//!   domain; the others are reported with why they do not (another party's key, say). A valid
//!   signature covers every member but `signatures`, so no member can change under it.
//! - Pinning: given the card verified before, a card whose `url`, `securitySchemes` or
//!   `security` differ from it is reported (an agent moved or changed how it authenticates).

use std::collections::BTreeMap;

use base64::Engine as _;
use custody_jose::{json, KeyStore, Limits, B64};
use serde_json::{Map, Value};

/// Why a card could not be examined at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardError(pub String);

impl std::fmt::Display for CardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CardError {}

/// One entry of `signatures`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSignature {
    /// The protected header's `kid`.
    pub kid: Option<String>,
    /// The protected header's `alg`.
    pub alg: Option<String>,
    /// `Ok` when it verifies under a key of the provider's domain; why not otherwise.
    pub outcome: Result<(), String>,
}

/// What `verify_card` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardReport {
    /// The card's `name`.
    pub name: Option<String>,
    /// The card's `url` (the agent's endpoint).
    pub url: Option<String>,
    /// The declared trust domain of the provider, when there is one.
    pub domain: Option<String>,
    /// The card's members a valid signature covers (every one but `signatures`), sorted.
    pub covered: Vec<String>,
    /// Each signature, in the card's order.
    pub signatures: Vec<CardSignature>,
    /// What else is worth knowing: an endpoint outside the provider's domain, unprotected
    /// headers.
    pub warnings: Vec<String>,
    /// The pinned members that differ from the pinned card (empty without one).
    pub pin_differences: Vec<String>,
}

impl CardReport {
    /// Whether a signature verifies under the provider domain's key.
    pub fn is_verified(&self) -> bool {
        self.domain.is_some() && self.signatures.iter().any(|s| s.outcome.is_ok())
    }

    /// Verified, and no pinned member changed.
    pub fn is_trusted(&self) -> bool {
        self.is_verified() && self.pin_differences.is_empty()
    }
}

/// The members compared with a pinned card.
pub const PINNED_MEMBERS: [&str; 3] = ["url", "securitySchemes", "security"];

/// The largest card read (1 MiB).
pub const MAX_CARD_BYTES: usize = 1 << 20;

/// The RFC 8785 canonical JSON of `card` without its `signatures`: the signed payload.
pub fn signing_payload(card: &Map<String, Value>) -> Result<Vec<u8>, CardError> {
    let mut unsigned = card.clone();
    unsigned.remove("signatures");
    serde_json_canonicalizer::to_vec(&Value::Object(unsigned))
        .map_err(|e| CardError(format!("the card cannot be canonicalized: {e}")))
}

/// Checks the signatures of the card in `card` (JSON bytes) against the keys of `store`, and
/// compares it with `pinned` (the card verified before) when given.
pub fn verify_card(
    store: &KeyStore,
    card: &[u8],
    pinned: Option<&[u8]>,
) -> Result<CardReport, CardError> {
    let card = read(card, "the card")?;
    let name = string(&card, "name");
    let url = string(&card, "url");
    let mut warnings = Vec::new();
    let provider_host = card
        .get("provider")
        .and_then(|p| p.get("url"))
        .and_then(Value::as_str)
        .and_then(host);
    let domain = provider_host.as_deref().and_then(|h| declared(store, h));
    if provider_host.is_none() {
        warnings
            .push("the card names no provider (`provider.url`): no domain vouches for it".into());
    } else if domain.is_none() {
        warnings.push(format!(
            "the provider `{}` is no declared trust domain (nor under one)",
            provider_host.as_deref().unwrap_or_default()
        ));
    }
    if let (Some(d), Some(u)) = (&domain, url.as_deref()) {
        if !host(u).is_some_and(|h| under(&h, d)) {
            warnings.push(format!(
                "the endpoint `{u}` is outside the provider's domain `{d}`"
            ));
        }
    }
    let covered: Vec<String> = card
        .keys()
        .filter(|k| k.as_str() != "signatures")
        .cloned()
        .collect();
    let payload = B64.encode(signing_payload(&card)?);
    let entries = match card.get("signatures") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(CardError("`signatures` must be an array".into())),
    };
    let index = domain.as_deref().and_then(|d| store.index_of(d));
    let signatures = entries
        .iter()
        .enumerate()
        .map(|(i, e)| check(e, i, &payload, store, index, &mut warnings))
        .collect();
    let pin_differences = match pinned {
        None => Vec::new(),
        Some(p) => {
            let p = read(p, "the pinned card")?;
            PINNED_MEMBERS
                .iter()
                .filter(|m| card.get(**m) != p.get(**m))
                .map(|m| (*m).to_owned())
                .collect()
        }
    };
    Ok(CardReport {
        name,
        url,
        domain,
        covered,
        signatures,
        warnings,
        pin_differences,
    })
}

fn read(bytes: &[u8], what: &str) -> Result<Map<String, Value>, CardError> {
    if bytes.len() > MAX_CARD_BYTES {
        return Err(CardError(format!(
            "{what} is larger than {MAX_CARD_BYTES} bytes"
        )));
    }
    json::parse_object(bytes, 64).map_err(|e| CardError(format!("{what} is not strict JSON: {e}")))
}

fn string(card: &Map<String, Value>, name: &str) -> Option<String> {
    card.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// The lower-case host of an `https` (or `http`) URL.
fn host(u: &str) -> Option<String> {
    let url = url::Url::parse(u).ok()?;
    if !matches!(url.scheme(), "https" | "http") {
        return None;
    }
    url.host_str().map(str::to_ascii_lowercase)
}

/// Whether `host` is `domain` or a name under it.
fn under(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The declared trust domain `host` is, or is under (the longest such).
fn declared(store: &KeyStore, host: &str) -> Option<String> {
    (0..store.len())
        .filter_map(|i| store.name(i).map(|n| n.as_str().to_owned()))
        .filter(|d| under(host, d))
        .max_by_key(String::len)
}

fn check(
    entry: &Value,
    i: usize,
    payload: &str,
    store: &KeyStore,
    index: Option<usize>,
    warnings: &mut Vec<String>,
) -> CardSignature {
    let mut out = CardSignature {
        kid: None,
        alg: None,
        outcome: Err(String::new()),
    };
    let Some(entry) = entry.as_object() else {
        out.outcome = Err("the entry is not an object".into());
        return out;
    };
    if entry.contains_key("header") {
        warnings.push(format!(
            "signature {i} has an unprotected `header`: it is not signed and was not used"
        ));
    }
    let (Some(protected), Some(signature)) = (
        entry.get("protected").and_then(Value::as_str),
        entry.get("signature").and_then(Value::as_str),
    ) else {
        out.outcome = Err("`protected` and `signature` must be strings".into());
        return out;
    };
    let compact = format!("{protected}.{payload}.{signature}");
    let limits = Limits {
        token_bytes: MAX_CARD_BYTES * 2,
        claims_per_object: 4096,
        json_depth: 64,
        ..Limits::default()
    };
    let jws = match custody_jose::decode(&compact, &limits) {
        Ok(j) => j,
        Err(e) => {
            out.outcome = Err(format!("the protected header is refused: {e}"));
            return out;
        }
    };
    out.kid = jws.header.kid.clone();
    out.alg = Some(jws.header.alg.clone());
    let Some(index) = index else {
        out.outcome = Err("no declared domain vouches for the card".into());
        return out;
    };
    let Some(kid) = jws.header.kid.as_deref() else {
        out.outcome = Err("the protected header has no `kid`".into());
        return out;
    };
    let verified = store.with_domain(index, |keys| match keys.token_key(kid) {
        None => Err(format!(
            "`kid` `{kid}` is not a key of the provider's domain"
        )),
        Some(key) if key.verify_with(&jws.header.alg, jws.signing_input, &jws.signature) => Ok(()),
        Some(_) => Err(format!(
            "the signature does not verify under `{kid}` with `{}` (or the key does not allow it)",
            jws.header.alg
        )),
    });
    out.outcome = verified.unwrap_or_else(|| Err("the domain has no keys".into()));
    out
}

/// The report as JSON (the CLI's `--json`).
pub fn report_json(r: &CardReport) -> Value {
    let sigs: Vec<Value> = r
        .signatures
        .iter()
        .map(|s| {
            let mut m = BTreeMap::new();
            m.insert("kid", serde_json::json!(s.kid));
            m.insert("alg", serde_json::json!(s.alg));
            m.insert("verified", Value::Bool(s.outcome.is_ok()));
            if let Err(e) = &s.outcome {
                m.insert("error", Value::String(e.clone()));
            }
            serde_json::json!(m)
        })
        .collect();
    serde_json::json!({
        "verified": r.is_verified(),
        "trusted": r.is_trusted(),
        "name": r.name,
        "url": r.url,
        "domain": r.domain,
        "covered": r.covered,
        "signatures": sigs,
        "warnings": r.warnings,
        "pin_differences": r.pin_differences,
    })
}
