//! The verifier's oracles: identifiers, strict JSON, JWS decoding, key sets, the trust
//! language, pack loading, request documents and structured requests, on an in-memory
//! four-domain pack (`world`) shared with the other modules.

use std::path::{Component, Path};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use custody_id::{SpiffeId, TrustDomain};
use custody_jose::{json, parse_key_set, sign_with_header, KeySet, Limits, SigningKey, B64};
use custody_policy::{
    parse_trust, CedarPack, ChainSettings, DomainConfig, FederationRule, PolicyPack, ScopeRule,
};
use serde_json::{json, Map, Value};

use custody_verifier::{Decision, Request, Verifier};

/// The time structured requests are decided at: 2026-01-01T00:00:00Z.
pub const FUZZ_NOW: i64 = 1_767_225_600;
/// The orders service, the structured requests' default audience.
pub const FUZZ_AUD: &str = "spiffe://c.example/orders";
/// The in-memory pack's domains; `c.example` is `local`.
pub const FUZZ_DOMAINS: [&str; 4] = ["a.example", "b.example", "c.example", "d.example"];
/// Clock skew of the in-memory pack (the default).
pub(crate) const SKEW: i64 = 30;

/// A broken property: what the oracle saw.
pub type Oracle = Result<(), String>;

/// Whether two decisions of the same request agree. They must be equal, except that the message
/// of a Biscuit Datalog failure may differ: biscuit-auth keeps facts in hash sets seeded per
/// authorizer, so when a block's check is ill-typed for some facts, whether evaluation meets the
/// type error or the failing check first varies between runs. The decision, every code and hop,
/// the chain summary and the policies must still be equal.
pub fn same_decision(a: &Decision, b: &Decision) -> bool {
    fn biscuit_logic(m: &str) -> bool {
        m.starts_with("Biscuit check failed: ")
            || m.starts_with("the Biscuit's checks could not be evaluated: ")
    }
    a.is_allowed() == b.is_allowed()
        && a.chain == b.chain
        && a.policies == b.policies
        && a.reasons.len() == b.reasons.len()
        && a.reasons.iter().zip(&b.reasons).all(|(x, y)| {
            x.code == y.code
                && x.hop == y.hop
                && (x.message == y.message
                    || (biscuit_logic(&x.message) && biscuit_logic(&y.message)))
        })
}

pub(crate) fn ensure(ok: bool, what: impl FnOnce() -> String) -> Oracle {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

// ---------------------------------------------------------------------------------------------
// SPIFFE IDs

/// Parses `data` as a SPIFFE ID and a trust domain name, and checks the result against an
/// independent reading of the SPIFFE spec (standards digest §2).
pub fn spiffe_id(data: &[u8]) -> Oracle {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let parsed = SpiffeId::parse(text);
    ensure(parsed.is_ok() == reference_id(text), || {
        format!("SpiffeId::parse({text:?}) = {parsed:?}, the reference disagrees")
    })?;
    if let Ok(id) = &parsed {
        ensure(id.as_str() == text, || format!("{text:?} was normalised"))?;
        let td = id.trust_domain();
        ensure(TrustDomain::parse(td.as_str()).is_ok(), || {
            format!("bad td in {text:?}")
        })?;
        ensure(text.starts_with(&td.id_string()), || {
            format!("td of {text:?}")
        })?;
        let workload = SpiffeId::parse_workload(text);
        ensure(workload.is_ok() != id.path().is_empty(), || {
            format!("workload {text:?}")
        })?;
    }
    let td = TrustDomain::parse(text);
    let td_ok = !text.is_empty() && text.len() <= 255 && text.bytes().all(td_byte);
    ensure(td.is_ok() == td_ok, || {
        format!("TrustDomain::parse({text:?}) = {td:?}")
    })
}

fn td_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'_'
}

fn path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'
}

/// The SPIFFE ID grammar, written independently of `custody-id`.
fn reference_id(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("spiffe://") else {
        return false;
    };
    let (td, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if text.len() > 2048 || td.is_empty() || td.len() > 255 || !td.bytes().all(td_byte) {
        return false;
    }
    if path.is_empty() {
        return true;
    }
    path.split('/')
        .skip(1)
        .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg.bytes().all(path_byte))
}

// ---------------------------------------------------------------------------------------------
// JSON, JWS, key sets

/// Strict JSON: whatever it accepts, serde_json reads the same, within the depth cap; and the
/// text read as a token's claims and as its header reads as the general reader has it
/// ([`jws_decode`]'s oracle, which holds the quick readers to it).
pub fn strict_json(data: &[u8]) -> Oracle {
    // the same text as a token's claim set and as its header: the quick readers of both
    // (`decode_members`, the plain header) must read it as the general reader does
    let part = |bytes: &[u8]| base64::Engine::encode(&B64, bytes);
    let as_claims = format!("{}.{}.AA", part(br#"{"alg":"EdDSA"}"#), part(data));
    jws_decode(as_claims.as_bytes())?;
    let as_header = format!("{}.{}.AA", part(data), part(b"{}"));
    jws_decode(as_header.as_bytes())?;
    let Ok(v) = json::parse(data, 16) else {
        return Ok(());
    };
    ensure(depth(&v) <= 16, || {
        "accepted JSON deeper than 16 levels".into()
    })?;
    match serde_json::from_slice::<Value>(data) {
        Ok(w) => ensure(w == v, || "serde_json reads another value".into()),
        Err(e) => Err(format!(
            "strict parser accepted what serde_json refuses: {e}"
        )),
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn fixed_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seed("a.example-k1", [1; 32]))
}

/// Compact JWS decoding: custody's base64url reader reads any input as the base64 crate does;
/// an accepted token is a strict, well-formed JWS whose parts say what a lenient reading says;
/// `decode_members` agrees with `decode`; and signature checking never panics.
pub fn jws_decode(data: &[u8]) -> Oracle {
    // custody's base64url reader (every token part goes through it) against the crate's
    let ours = custody_jose::base64url_decode(data).ok();
    let theirs = base64::Engine::decode(&B64, data).ok();
    ensure(ours == theirs, || {
        format!("base64url reads {ours:?} where the base64 crate reads {theirs:?}")
    })?;
    let Ok(token) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let limits = Limits::default();
    let decoded = custody_jose::decode(token, &limits);
    same_members(token, &limits, &decoded)?;
    let Ok(jws) = decoded else {
        return Ok(());
    };
    let _ = fixed_key()
        .public()
        .verify_strict(jws.signing_input, &jws.signature);
    ensure(token.len() <= limits.token_bytes, || {
        "oversized token accepted".into()
    })?;
    ensure(
        custody_jose::Algorithm::from_name(&jws.header.alg).is_some(),
        || "bad alg".into(),
    )?;
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, _] = parts.as_slice() else {
        return Err("accepted a token without exactly three parts".into());
    };
    ensure(jws.signing_input == format!("{h}.{p}").as_bytes(), || {
        "signing input".into()
    })?;
    let lenient = b64_object(p);
    ensure(lenient.as_ref() == Some(&jws.claims), || {
        "payload reads differently".into()
    })?;
    // the header, read the general way (strict JSON), says exactly what was decoded: only
    // `alg`, `kid` and `typ`, each a string (the plain-header reader must agree with this)
    let strict = base64::Engine::decode(&B64, h)
        .ok()
        .and_then(|b| json::parse_object(&b, limits.json_depth).ok())
        .ok_or("accepted a header that strict JSON refuses")?;
    let allowed = ["alg", "kid", "typ"];
    ensure(strict.keys().all(|k| allowed.contains(&k.as_str())), || {
        format!("header with refused members accepted: {strict:?}")
    })?;
    let member = |name: &str| strict.get(name).and_then(Value::as_str).map(str::to_owned);
    ensure(
        strict.values().all(Value::is_string)
            && member("alg").as_ref() == Some(&jws.header.alg)
            && member("kid") == jws.header.kid
            && member("typ") == jws.header.typ,
        || {
            format!(
                "header reads differently: {strict:?} against {:?}",
                jws.header
            )
        },
    )
}

/// The claim names [`same_members`] gives a slot (the verifier's, and two that no token has).
const SLOTTED: [&str; 16] = [
    "iss",
    "sub",
    "aud",
    "iat",
    "exp",
    "nbf",
    "txn",
    "scope",
    "client_id",
    "req_wl",
    "tctx",
    "act",
    "cnf",
    "jti",
    "",
    "\u{e9}",
];

fn slotted(name: &str) -> Option<usize> {
    SLOTTED.iter().position(|n| *n == name)
}

/// `decode_members` reads a token exactly as `decode` does: the same error, or the same
/// header, signing input, signature and claims (every claim `get` as the map has it, a string
/// `get_str` as its text, nothing more).
fn same_members(
    token: &str,
    limits: &Limits,
    decoded: &Result<custody_jose::UnverifiedJws<'_>, custody_jose::JwsError>,
) -> Oracle {
    let mut payload = Vec::new();
    let members = custody_jose::decode_members::<16>(token, limits, slotted, &mut payload);
    let (jws, m) = match (decoded, members) {
        (Err(a), Err(b)) => {
            return ensure(*a == b, || {
                format!("decode_members errs `{b}` where decode errs `{a}`")
            })
        }
        (Ok(_), Err(e)) => return Err(format!("decode_members refused what decode accepts: {e}")),
        (Err(e), Ok(_)) => return Err(format!("decode_members accepted what decode refuses: {e}")),
        (Ok(jws), Ok(m)) => (jws, m),
    };
    ensure(
        m.header == jws.header
            && m.signing_input == jws.signing_input
            && m.signature == jws.signature,
        || "decode_members reads the header or signature differently".into(),
    )?;
    ensure(m.claims.len() == jws.claims.len(), || {
        format!(
            "{} claims against decode's {}",
            m.claims.len(),
            jws.claims.len()
        )
    })?;
    let absent = ["absent", "ISS", "sub "];
    for name in jws
        .claims
        .keys()
        .map(String::as_str)
        .chain(SLOTTED)
        .chain(absent)
    {
        let want = jws.claims.get(name);
        let text = m.claims.get_str(name);
        ensure(text.map(|t| t.ok()) == want.map(Value::as_str), || {
            format!("claim `{name}` reads as {text:?} against {want:?}")
        })?;
        ensure(m.claims.get(name) == want, || {
            format!(
                "claim `{name}` reads as {:?} against {want:?}",
                m.claims.get(name)
            )
        })?;
    }
    Ok(())
}

fn b64_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = base64::Engine::decode(&B64, part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// JWKS / SPIFFE bundle parsing: an accepted set is within its limits and prints back to the
/// same keys.
pub fn key_set(data: &[u8]) -> Oracle {
    let limits = Limits::default();
    let Ok(parsed) = parse_key_set(data, &limits) else {
        return Ok(());
    };
    ensure(parsed.keys.len() <= limits.keys_per_set, || {
        "too many keys".into()
    })?;
    let text = parsed.keys.to_jwks().to_string();
    match parse_key_set(text.as_bytes(), &limits) {
        Ok(again) => ensure(again.keys.keys() == parsed.keys.keys(), || {
            "the printed key set reads back differently".into()
        }),
        Err(e) => Err(format!("the printed key set does not parse: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The trust language and packs

/// The trust-language parser: accepted text prints back to text that parses to the same file.
pub fn trust(data: &[u8]) -> Oracle {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let limits = Limits::default();
    let Ok(file) = parse_trust(text, Path::new("fuzz.trust"), &limits) else {
        return Ok(());
    };
    let printed = file.to_string();
    match parse_trust(&printed, Path::new("fuzz.trust"), &limits) {
        Ok(again) => ensure(again == file, || {
            format!("printer changed the file:\n{printed}")
        }),
        Err(e) => Err(format!("printed text does not parse: {e:?}\n{printed}")),
    }
}

/// Pack loading through custody: `data` is a set of files, each introduced by a line
/// `--- <relative path>` (e.g. `--- pack.trust`, `--- keys/a.jwks`, `--- policies.cedar`),
/// written to a fresh directory and loaded with [`PolicyPack::load`]. A pack that loads must
/// give a verifier that decides a request without panicking.
pub fn pack_load(data: &[u8]) -> Oracle {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let files = split_files(text);
    if files.is_empty() {
        return Ok(());
    }
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "custody-fuzz-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = load_files(&dir, &files);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn split_files(text: &str) -> Vec<(&str, String)> {
    let mut files: Vec<(&str, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix("--- ") {
            let name = name.trim_end();
            if safe_name(name) && files.len() < 16 {
                files.push((name, String::new()));
                continue;
            }
        }
        if let Some((_, body)) = files.last_mut() {
            body.push_str(line);
        }
    }
    files
}

/// A relative path of at most two plain components, in a portable alphabet (no NUL: the file
/// system would refuse it, and that is no finding about custody).
fn safe_name(name: &str) -> bool {
    let portable = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/');
    if !name.bytes().all(portable) {
        return false;
    }
    let path = Path::new(name);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    plain && path.components().count() <= 2 && !name.is_empty() && name.len() < 64
}

fn load_files(dir: &Path, files: &[(&str, String)]) -> Oracle {
    for (name, body) in files {
        let path = dir.join(name);
        let parent = path.parent().unwrap_or(dir);
        // A set of names that cannot all exist (`keys` and `keys/a.jwks`) is no pack at all.
        if std::fs::create_dir_all(parent).is_err() || std::fs::write(&path, body).is_err() {
            return Ok(());
        }
    }
    let limits = Limits::default();
    let Ok(loaded) = PolicyPack::load(dir, &limits) else {
        return Ok(());
    };
    let pack = loaded.pack;
    ensure(pack.domain(pack.local.as_str()).is_some(), || {
        "`local` undeclared".into()
    })?;
    ensure(pack.chain.clock_skew <= 120, || {
        "clock skew over 120 s".into()
    })?;
    let verifier = Verifier::new(pack);
    let req = Request {
        tokens: vec![minted_standard_token()],
        audience: FUZZ_AUD.into(),
        action: "orders:read".into(),
        now: Some(FUZZ_NOW),
        ..Request::default()
    };
    decision_invariants(&verifier.verify(&req))
}

fn minted_standard_token() -> String {
    let claims = json!({
        "iss": "https://as.b.example", "sub": "user:carol", "aud": FUZZ_AUD,
        "iat": FUZZ_NOW - 10, "exp": FUZZ_NOW + 300, "scope": "orders:read",
        "act": {"sub": "spiffe://b.example/agent/alice"},
    });
    let key = SigningKey::from_seed("b.example-k1", [2; 32]);
    let header = json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt"});
    sign_with_header(&key, &header, &claims).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The verifier

pub(crate) struct World {
    pub(crate) verifier: Verifier,
    /// The pack without Cedar, for caller proofs (its own replay cache).
    pub(crate) proofs: Verifier,
    /// The same pack with Cedar policies that read the chain summary and `context.request`.
    pub(crate) cedar: Verifier,
    pub(crate) keys: Vec<SigningKey>,
    rogue: SigningKey,
}

pub(crate) fn world() -> Option<&'static World> {
    static WORLD: OnceLock<Option<World>> = OnceLock::new();
    WORLD.get_or_init(build_world).as_ref()
}

/// The standard test pack, in memory: four domains, each with one key (`<domain>-k1`, seed
/// `[n + 1; 32]`, the same as the test kit's), `a -> b` and `b -> c` federated for
/// `orders:read` and `orders:write`, default chain settings, no Cedar.
fn build_world() -> Option<World> {
    let mut keys = Vec::new();
    let mut domains = Vec::new();
    for (n, d) in (1u8..).zip(FUZZ_DOMAINS) {
        let key = SigningKey::from_seed(&format!("{d}-k1"), [n; 32]);
        let mut set = KeySet::new();
        set.insert(key.public()).ok()?;
        domains.push(DomainConfig {
            name: TrustDomain::parse(d).ok()?,
            issuers: vec![format!("https://as.{d}")],
            keys: set.clone(),
            // a plain key set's keys verify WITs too
            wit_keys: set.clone(),
            x509_authorities: Vec::new(),
            key_files: Vec::new(),
            // the same key serves the Biscuit profile, so fuzzing reaches it too
            biscuit_keys: set,
            biscuit_key_files: Vec::new(),
            sources: Vec::new(),
            refresh: custody_policy::DEFAULT_REFRESH,
            ca: None,
        });
        keys.push(key);
    }
    let scopes = ScopeRule::List(vec!["orders:read".into(), "orders:write".into()]);
    let edge = |from: &str, to: &str| -> Option<FederationRule> {
        Some(FederationRule {
            from: TrustDomain::parse(from).ok()?,
            to: TrustDomain::parse(to).ok()?,
            scopes: scopes.clone(),
        })
    };
    let mut pack = PolicyPack {
        local: TrustDomain::parse("c.example").ok()?,
        domains,
        federation: vec![
            edge("a.example", "b.example")?,
            edge("b.example", "c.example")?,
        ],
        chain: ChainSettings::default(),
        cedar: None,
        resource: None,
        store: None,
        version: "fuzz".into(),
        dir: std::env::temp_dir(),
    };
    let plain = pack.clone();
    pack.cedar = Some(CedarPack {
        policies: CEDAR.parse().ok()?,
        schema: None,
        schema_json: None,
        entities: cedar_policy::Entities::empty(),
    });
    Some(World {
        proofs: Verifier::new(plain.clone()),
        verifier: Verifier::new(plain),
        cedar: Verifier::new(pack),
        keys,
        rogue: SigningKey::from_seed("a.example-k1", [99; 32]),
    })
}

/// The Cedar policies of the in-memory pack's second verifier.
const CEDAR: &str = r#"
permit(principal, action, resource)
when { context.depth <= 3 && context.request has level && context.request.level == "gold" };
permit(principal, action == Action::"orders:read", resource)
when { context.cross_domain && context.origin_domain == "a.example" && context.peer == "" };
forbid(principal == Agent::"spiffe://d.example/agent/mallory", action, resource);
forbid(principal, action, resource) when { context.request has block && context.request.block };
"#;

/// The in-memory pack's verifiers, without and with Cedar (for tests of the harness).
pub fn fuzz_verifiers() -> Option<(&'static Verifier, &'static Verifier)> {
    world().map(|w| (&w.verifier, &w.cedar))
}

/// A request document (CLI/gRPC JSON) decided by the in-memory pack: a request that parses
/// prints back to the same request, and the decision is well formed and repeatable.
pub fn request_json(data: &[u8]) -> Oracle {
    let verifier = world().map(|w| &w.verifier).ok_or("world")?;
    let Ok(req) = Request::from_json(data, verifier.limits()) else {
        let _ = verifier.verify_json(data);
        return Ok(());
    };
    if !req.context.as_ref().is_some_and(has_float) {
        let printed = req.to_json().to_string();
        let again = Request::from_json(printed.as_bytes(), verifier.limits());
        ensure(again.as_ref() == Ok(&req), || {
            format!("request round trip: {again:?}")
        })?;
    }
    let d = verifier.verify(&req);
    decision_invariants(&d)?;
    ensure(verifier.verify(&req) == d, || {
        "a second verify differs".into()
    })?;
    let w = world().ok_or("world")?;
    let c = w.cedar.verify(&req);
    decision_invariants(&c)?;
    ensure(!c.is_allowed() || d.is_allowed(), || {
        format!(
            "Cedar allowed what chain validity alone denies: {:?}",
            d.reasons
        )
    })
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(m) => m.values().any(has_float),
        _ => false,
    }
}

pub(crate) fn decision_invariants(d: &Decision) -> Oracle {
    ensure(d.is_allowed() == d.reasons.is_empty(), || format!("{d:?}"))?;
    let j = d.to_json();
    let want = if d.is_allowed() { "allow" } else { "deny" };
    ensure(
        j.get("decision").and_then(Value::as_str) == Some(want),
        || format!("{j}"),
    )
}

/// An identifier the structured input names: one of a fixed table, or any text.
#[derive(Arbitrary, Clone, Debug)]
pub enum Ident {
    /// An index into the table (modulo its length).
    Known(u8),
    /// Any string.
    Raw(String),
}

const IDS: [&str; 16] = [
    "spiffe://a.example/agent/bob",
    "spiffe://b.example/agent/alice",
    "spiffe://c.example/gateway",
    "spiffe://d.example/agent/mallory",
    "spiffe://c.example/orders",
    "spiffe://b.example/agent/carol",
    "spiffe://a.example/agent/eve",
    "user:alice",
    "user:carol",
    "spiffe://b.example",
    "spiffe://A.example/agent/bob",
    "Spiffe://a.example/agent/bob",
    "spiffe://a.example/agent/bob/",
    "spiffe://a.example/agent/b%6fb",
    "c.example",
    "https://as.a.example",
];

/// The agent each domain's tokens add by default.
pub(crate) const DEFAULT_ACTOR: [&str; 4] = [
    "spiffe://a.example/agent/bob",
    "spiffe://b.example/agent/alice",
    "spiffe://c.example/gateway",
    "spiffe://d.example/agent/mallory",
];

pub(crate) const SCOPES: [&str; 6] = [
    "orders:read",
    "orders:write",
    "orders:delete",
    "*",
    "orders:READ",
    "",
];

impl Ident {
    /// The identifier's text.
    pub fn text(&self) -> String {
        match self {
            Ident::Known(i) => pick(&IDS, *i).to_owned(),
            Ident::Raw(s) => s.clone(),
        }
    }
}

/// A scope item: indices below 32 pick from [`SCOPES`] (so most lists share items), the rest
/// name one of 224 more, so that a list can pass the 16 items past which custody compares
/// lists through a hash set (`crates/verifier/src/items.rs`).
fn scope_item(i: u8) -> String {
    match i {
        0..32 => pick(&SCOPES, i).to_owned(),
        _ => format!("orders:x{i}"),
    }
}

pub(crate) fn pick<'a>(table: &[&'a str], i: u8) -> &'a str {
    table
        .get(usize::from(i) % table.len().max(1))
        .copied()
        .unwrap_or("")
}

/// One token of a structured request. Every field's zero value means "as the standard chain
/// would have it".
#[derive(Arbitrary, Clone, Debug, Default)]
pub struct FuzzToken {
    /// Signing domain: `None` = the hop's standard domain (b alone; else a, b, c, …); 0–3 a
    /// pack domain;
    /// 4 a rogue key that claims `a.example`'s `kid`.
    pub signer: Option<u8>,
    /// 0 `EdDSA`, 1 `Ed25519`, 2 `none`, 3 `HS256`, 4 absent.
    pub alg: u8,
    /// 0 standard for the position, 1 absent, 2 `JWT`, 3 `txntoken+jwt`,
    /// 4 `application/TXNTOKEN+JWT`, 5 `wit+jwt`, 6 `at+jwt`.
    pub typ: u8,
    /// 0 the signer's `kid`, 1 another domain's, 2 absent, 3 unknown.
    pub kid: u8,
    /// 0 the signer's issuer, 1 absent, 2 another domain's, 3 an unknown one.
    pub iss: u8,
    /// Omitted claims, one bit each: sub, aud, iat, exp, scope, txn, act/req_wl.
    pub omit: u8,
    /// `sub`; default `user:alice`.
    pub sub: Option<Ident>,
    /// `aud`; default the request's audience for the last token, else the next hop's actor.
    pub aud: Option<Vec<Ident>>,
    /// `aud` as a one-element list instead of a string.
    pub aud_list: bool,
    /// Offsets from the standard `iat`, `exp`; `nbf` relative to now.
    pub iat: Option<i16>,
    /// See `iat`.
    pub exp: Option<i16>,
    /// See `iat`.
    pub nbf: Option<i16>,
    /// Scope items (at most 40) as indices: below 32 into a fixed table, the rest named
    /// `orders:x<i>`; default: both orders scopes at hop 0, `orders:read` after.
    pub scope: Option<Vec<u8>>,
    /// 0 `txn-1`, else `txn-<n>`.
    pub txn: u8,
    /// Actors earliest first; default the previous hop's actors plus this hop's standard one.
    pub act: Option<Vec<Ident>>,
    /// `client_id`.
    pub client_id: Option<Ident>,
    /// Txn-Token requesting workloads; default `[gateway]`.
    pub req_wl: Option<Vec<Ident>>,
    /// `req_wl` as a comma-separated string.
    pub req_wl_string: bool,
    /// `tctx` amount, if any.
    pub tctx: Option<u8>,
    /// An extra claim (name, integer value).
    pub extra: Option<(String, i64)>,
    /// 0 none, 1 flip a signature bit, 2 `S + L`, 3 a 63-byte signature, 4 small-order `R`.
    pub tamper: u8,
}

/// A structured request for [`verify_structured`].
#[derive(Arbitrary, Clone, Debug, Default)]
pub struct FuzzRequest {
    /// The chain (at most 6 are used; none means one standard token).
    pub tokens: Vec<FuzzToken>,
    /// `tokens` is padded with standard tokens up to `1 + hops % 3` tokens.
    pub hops: u8,
    /// A `txn_token`.
    pub txn_token: Option<FuzzToken>,
    /// The audience; default the orders service.
    pub audience: Option<Ident>,
    /// 0 `orders:read`, else an index into the scope table.
    pub action: u8,
    /// `peer`.
    pub peer: Option<Ident>,
    /// Offset of `now` from [`FUZZ_NOW`].
    pub now: i16,
    /// From 200 on, 17 to 72 more scope items (`orders:f<k>`) on every hop that has a scope:
    /// lists long enough that custody compares them through a hash set
    /// (`crates/verifier/src/items.rs`).
    pub filler: u8,
}

/// What a token was minted with, for the oracle.
#[derive(Debug, Default)]
struct Minted {
    honest: bool,
    scope: Option<Vec<String>>,
    exp: Option<i64>,
    iat: Option<i64>,
    aud: Vec<String>,
}

/// Mints the structured request's tokens, decides it, and checks what any allowed decision
/// implies: honest signatures and keys, tokens within their times, the action in the presented
/// scope, the audience in the presented `aud`, and an access chain no wider and no longer-lived
/// than its origin. Also: deciding twice (the second time from the signature cache) agrees.
pub fn verify_structured(data: &[u8]) -> Oracle {
    let mut u = Unstructured::new(data);
    let Ok(input) = FuzzRequest::arbitrary(&mut u) else {
        return Ok(());
    };
    verify_input(&input)
}

/// [`verify_structured`] on an already built input.
pub fn verify_input(input: &FuzzRequest) -> Oracle {
    let w = world().ok_or("world")?;
    let (req, minted, txn_minted) = build_request(w, input);
    let d = w.verifier.verify(&req);
    decision_invariants(&d)?;
    ensure(w.verifier.verify(&req) == d, || {
        "a second verify differs".into()
    })?;
    if d.is_allowed() {
        allowed_invariants(&req, &minted, txn_minted.as_ref())?;
    }
    Ok(())
}

/// The request a structured input mints and its decision (for tests of the harness itself).
pub fn decide_input(input: &FuzzRequest) -> Option<(Request, Decision)> {
    let w = world()?;
    let (req, _, _) = build_request(w, input);
    let d = w.verifier.verify(&req);
    Some((req, d))
}

/// The request a structured input mints, undecided (the sidecar's Check harness sends its
/// tokens in headers).
pub fn mint_input(input: &FuzzRequest) -> Option<Request> {
    let w = world()?;
    Some(build_request(w, input).0)
}

fn build_request(w: &World, input: &FuzzRequest) -> (Request, Vec<Minted>, Option<Minted>) {
    let mut specs: Vec<FuzzToken> = input.tokens.iter().take(6).cloned().collect();
    let want = 1 + usize::from(input.hops % 3);
    while specs.len() < want {
        specs.push(FuzzToken::default());
    }
    let audience = input
        .audience
        .as_ref()
        .map_or(FUZZ_AUD.to_owned(), Ident::text);
    let actors = default_actors(&specs);
    let filler = match input.filler {
        0..200 => 0,
        n => usize::from(n - 200) + 17,
    };
    let mut tokens = Vec::new();
    let mut minted = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let next_actor = actors.get(i + 1).and_then(|a| a.last().cloned());
        let ctx = Position {
            hop: i,
            total: specs.len(),
            txn_field: false,
            aud: next_actor.unwrap_or_else(|| audience.clone()),
            actors: actors.get(i).cloned().unwrap_or_default(),
            filler,
        };
        let (t, m) = mint(w, spec, &ctx);
        tokens.push(t);
        minted.push(m);
    }
    let txn = input.txn_token.as_ref().map(|spec| {
        let ctx = Position {
            hop: 0,
            total: 1,
            txn_field: true,
            aud: "c.example".into(),
            actors: Vec::new(),
            filler: 0,
        };
        mint(w, spec, &ctx)
    });
    let action = match input.action {
        0 => "orders:read".to_owned(),
        n => pick(&SCOPES, n).to_owned(),
    };
    let req = Request {
        tokens,
        txn_token: txn.as_ref().map(|(t, _)| t.clone()),
        audience,
        action,
        resource: None,
        peer: input.peer.as_ref().map(Ident::text),
        now: Some(FUZZ_NOW + i64::from(input.now)),
        ..Request::default()
    };
    (req, minted, txn.map(|(_, m)| m))
}

struct Position {
    hop: usize,
    total: usize,
    txn_field: bool,
    aud: String,
    actors: Vec<String>,
    /// Scope items added after the token's own (`FuzzRequest::filler`).
    filler: usize,
}

/// Each hop's actors: its own list if given, else the previous hop's plus its standard actor.
fn default_actors(specs: &[FuzzToken]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let actors = match &spec.act {
            Some(list) => list.iter().take(10).map(Ident::text).collect(),
            None => {
                let mut prev = out.last().cloned().unwrap_or_default();
                let d = signer_index(spec, i, specs.len()).min(3);
                prev.push(DEFAULT_ACTOR.get(d).copied().unwrap_or("").to_owned());
                prev
            }
        };
        out.push(actors);
    }
    out
}

/// The signing domain's index: by default the standard path's (b alone; a, b; a, b, c; …).
fn signer_index(spec: &FuzzToken, hop: usize, total: usize) -> usize {
    match spec.signer {
        None if total == 1 => 1,
        None => hop % 4,
        Some(n) => usize::from(n) % 5,
    }
}

fn mint(w: &World, spec: &FuzzToken, pos: &Position) -> (String, Minted) {
    let signer = if pos.txn_field && spec.signer.is_none() {
        2
    } else {
        signer_index(spec, pos.hop, pos.total)
    };
    let key = w.keys.get(signer).unwrap_or(&w.rogue);
    let domain = FUZZ_DOMAINS.get(signer).copied().unwrap_or("a.example");
    let header = header(spec, pos, key, domain);
    let (claims, mut m) = claims(spec, pos, domain);
    m.honest = signer < 4
        && matches!(spec.tamper % 5, 0)
        && matches!(spec.kid % 4, 0)
        && matches!(spec.iss % 4, 0)
        && spec.alg % 5 < 2;
    let token = sign_with_header(key, &header, &Value::Object(claims)).unwrap_or_default();
    (tamper(&token, spec.tamper), m)
}

fn header(spec: &FuzzToken, pos: &Position, key: &SigningKey, domain: &str) -> Value {
    let mut h = Map::new();
    let alg = ["EdDSA", "Ed25519", "none", "HS256"];
    if let Some(a) = alg.get(usize::from(spec.alg % 5)) {
        h.insert("alg".into(), (*a).into());
    }
    let kid = match spec.kid % 4 {
        0 => Some(key.kid().to_owned()),
        1 => Some(
            if domain == "b.example" {
                "a.example-k1"
            } else {
                "b.example-k1"
            }
            .into(),
        ),
        2 => None,
        _ => Some(format!("{domain}-k2")),
    };
    if let Some(kid) = kid {
        h.insert("kid".into(), kid.into());
    }
    let standard = if pos.txn_field {
        "txntoken+jwt"
    } else {
        "at+jwt"
    };
    let typ = match spec.typ % 7 {
        0 => Some(standard),
        1 => None,
        2 => Some("JWT"),
        3 => Some("txntoken+jwt"),
        4 => Some("application/TXNTOKEN+JWT"),
        5 => Some("wit+jwt"),
        _ => Some("at+jwt"),
    };
    if let Some(t) = typ {
        h.insert("typ".into(), t.into());
    }
    Value::Object(h)
}

fn claims(spec: &FuzzToken, pos: &Position, domain: &str) -> (Map<String, Value>, Minted) {
    let hop = i64::try_from(pos.hop).unwrap_or(0);
    let omit = |bit: u8| spec.omit & (1 << bit) != 0;
    let mut c = Map::new();
    let mut m = Minted::default();
    let iss = match spec.iss % 4 {
        0 => Some(format!("https://as.{domain}")),
        1 => None,
        2 => Some("https://as.d.example".to_owned()),
        _ => Some(format!("https://evil.{domain}")),
    };
    if let Some(iss) = iss {
        c.insert("iss".into(), iss.into());
    }
    if !omit(0) {
        let sub = spec
            .sub
            .as_ref()
            .map_or("user:alice".to_owned(), Ident::text);
        c.insert("sub".into(), sub.into());
    }
    if !omit(1) {
        m.aud = match &spec.aud {
            Some(list) => list.iter().take(8).map(Ident::text).collect(),
            None => vec![pos.aud.clone()],
        };
        let aud = match m.aud.as_slice() {
            [one] if !spec.aud_list => Value::from(one.clone()),
            list => Value::from(list.to_vec()),
        };
        c.insert("aud".into(), aud);
    }
    let iat = FUZZ_NOW - 60 + 10 * hop + spec.iat.map_or(0, i64::from);
    let exp = FUZZ_NOW + 600 - 60 * hop + spec.exp.map_or(0, i64::from);
    if !omit(2) {
        c.insert("iat".into(), iat.into());
        m.iat = Some(iat);
    }
    if !omit(3) {
        c.insert("exp".into(), exp.into());
        m.exp = Some(exp);
    }
    if let Some(nbf) = spec.nbf {
        c.insert("nbf".into(), (FUZZ_NOW + i64::from(nbf)).into());
    }
    if !omit(4) {
        let mut scope: Vec<String> = match &spec.scope {
            Some(items) => items.iter().take(40).map(|i| scope_item(*i)).collect(),
            None if pos.hop == 0 && !pos.txn_field => {
                vec!["orders:read".into(), "orders:write".into()]
            }
            None => vec!["orders:read".into()],
        };
        scope.extend((0..pos.filler).map(|k| format!("orders:f{k}")));
        c.insert("scope".into(), scope.join(" ").into());
        m.scope = Some(scope.into_iter().filter(|s| !s.is_empty()).collect());
    }
    if !omit(5) {
        let txn = if spec.txn == 0 {
            "txn-1".to_owned()
        } else {
            format!("txn-{}", spec.txn)
        };
        c.insert("txn".into(), txn.into());
    }
    add_actors(&mut c, spec, pos, omit(6));
    if let Some(amount) = spec.tctx {
        c.insert("tctx".into(), json!({"amount": amount}));
    }
    if let Some((name, value)) = &spec.extra {
        if !c.contains_key(name) {
            c.insert(name.clone(), (*value).into());
        }
    }
    (c, m)
}

fn add_actors(c: &mut Map<String, Value>, spec: &FuzzToken, pos: &Position, omit: bool) {
    if let Some(id) = &spec.client_id {
        c.insert("client_id".into(), id.text().into());
    }
    if omit {
        return;
    }
    let is_txn = pos.txn_field || matches!(spec.typ % 7, 3 | 4);
    if is_txn {
        let wl: Vec<String> = match &spec.req_wl {
            Some(list) => list.iter().take(10).map(Ident::text).collect(),
            None => vec!["spiffe://c.example/gateway".into()],
        };
        let value = if spec.req_wl_string {
            Value::from(wl.join(","))
        } else {
            Value::from(wl)
        };
        c.insert("req_wl".into(), value);
    } else if let Some(act) = nest_act(&pos.actors) {
        c.insert("act".into(), act);
    }
}

/// `act` for actors earliest first.
fn nest_act(actors: &[String]) -> Option<Value> {
    actors.iter().fold(None, |inner, a| {
        let mut m = Map::new();
        m.insert("sub".into(), a.clone().into());
        if let Some(inner) = inner {
            m.insert("act".into(), inner);
        }
        Some(Value::Object(m))
    })
}

/// The group order L of Ed25519, little-endian.
const ORDER_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `S + L` (mod 2^256): the same scalar mod L, a non-canonical encoding `verify_strict`
/// refuses. Both halves are little-endian 32-byte numbers.
pub fn add_order(s: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for ((o, a), b) in out.iter_mut().zip(s).zip(ORDER_L) {
        let sum = u16::from(*a) + u16::from(b) + carry;
        *o = sum.to_le_bytes()[0];
        carry = sum >> 8;
    }
    out
}

/// Rewrites a token's signature: 1 flips a bit, 2 adds L to `S`, 3 drops a byte, 4 puts the
/// identity point (small order) in `R`.
pub fn tamper(token: &str, mode: u8) -> String {
    let Some((input, sig)) = token.rsplit_once('.') else {
        return token.to_owned();
    };
    let Ok(mut bytes) = base64::Engine::decode(&B64, sig) else {
        return token.to_owned();
    };
    match mode % 5 {
        1 => {
            if let Some(b) = bytes.first_mut() {
                *b ^= 1;
            }
        }
        2 => {
            if let Some(s) = bytes.get_mut(32..64) {
                let mut half = [0u8; 32];
                half.copy_from_slice(s);
                s.copy_from_slice(&add_order(&half));
            }
        }
        3 => {
            bytes.pop();
        }
        4 => {
            if let Some(r) = bytes.get_mut(..32) {
                r.fill(0);
                if let Some(b) = r.first_mut() {
                    *b = 1;
                }
            }
        }
        _ => return token.to_owned(),
    }
    format!("{input}.{}", base64::Engine::encode(&B64, bytes))
}

fn allowed_invariants(req: &Request, minted: &[Minted], txn: Option<&Minted>) -> Oracle {
    let now = req.now.unwrap_or(FUZZ_NOW);
    for (i, m) in minted.iter().chain(txn).enumerate() {
        ensure(m.honest, || {
            format!("token {i} is forged or tampered, yet allowed")
        })?;
        let exp = m
            .exp
            .ok_or_else(|| format!("token {i} has no exp, yet allowed"))?;
        let iat = m
            .iat
            .ok_or_else(|| format!("token {i} has no iat, yet allowed"))?;
        ensure(iat <= now + SKEW, || {
            format!("token {i} issued in the future")
        })?;
        if i + 1 >= minted.len() {
            ensure(now < exp + SKEW, || format!("presented token {i} expired"))?;
        }
    }
    let (Some(first), Some(last)) = (minted.first(), minted.last()) else {
        return Err("allowed without tokens".into());
    };
    let last_scope = last.scope.clone().unwrap_or_default();
    if let Some(t) = txn {
        let scope = t.scope.clone().unwrap_or_default();
        ensure(scope.contains(&req.action), || {
            "action not in the txn_token scope".into()
        })?;
    }
    ensure(last_scope.contains(&req.action), || {
        "action not in the presented scope".into()
    })?;
    let origin_scope = first.scope.clone().unwrap_or_default();
    ensure(last_scope.iter().all(|s| origin_scope.contains(s)), || {
        format!("presented scope {last_scope:?} wider than the origin's {origin_scope:?}")
    })?;
    if req.tokens.first().is_some_and(|t| is_txn_typ(t)) {
        return Ok(());
    }
    ensure(last.exp <= first.exp, || {
        "presented token outlives the origin".into()
    })?;
    ensure(last.aud.contains(&req.audience), || {
        "audience not in the presented `aud`".into()
    })
}

fn is_txn_typ(token: &str) -> bool {
    custody_jose::decode(token, &Limits::default())
        .map(|j| custody_jose::classify_typ(j.header.typ.as_deref()))
        .is_ok_and(|c| c == custody_jose::TokenClass::TxnToken)
}
