//! The Biscuit path (README "Biscuit profile"), through [`Verifier::verify`](custody_verifier::Verifier::verify)
//! with a Biscuit as the sole token, on the in-memory pack (whose domains use their JWT key as
//! their one `biscuit_keys` key).
//!
//! - [`biscuit`]: the input is a Biscuit's bytes (its protobuf), sent base64url-encoded; UTF-8
//!   input without a `.` is also sent as the token text itself.
//! - [`biscuit_structured`]: the input is a [`FuzzBiscuit`] (through `arbitrary`), minted with
//!   the pack's own keys, so the fuzzer works past the signatures: fuzzer-chosen hops, first-party
//!   attenuation blocks, facts and checks, signers, and byte tampering. An all-zero (or empty)
//!   input is the standard allowed two-hop chain `a.example` → `b.example` → `c.example`.
//!   Minting is deterministic (fixed ephemeral keys), so an input always gives the same token.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use biscuit_auth::builder::{fact, BlockBuilder, Term as BTerm};
use biscuit_auth::datalog::SymbolTable;
use biscuit_auth::format::schema;
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit, KeyPair};
use custody_id::SpiffeId;
use custody_jose::B64;
use prost_biscuit::Message as _;

use crate::verify::{
    decision_invariants, ensure, pick, world, Ident, Oracle, DEFAULT_ACTOR, FUZZ_AUD, FUZZ_DOMAINS,
    FUZZ_NOW, SCOPES, SKEW,
};
use custody_verifier::{Decision, Request};

/// The pack's `local` domain.
const LOCAL: &str = "c.example";
/// Most blocks a structured input appends after the authority block (the profile allows 15).
const MAX_BLOCKS: usize = 8;

// ---------------------------------------------------------------------------------------------
// Raw bytes

/// A Biscuit's bytes, sent base64url-encoded as the only token (and, when the input is UTF-8
/// without a `.`, the input itself as the token text). Oracle: no panic; the decision is well
/// formed and repeatable, and Cedar never allows what chain validity denies; anything allowed
/// verifies (biscuit-auth's own reading) under the root key of the domain its authority block
/// names, within its times, with the action in the presented scopes and those within the
/// authority block's.
pub fn biscuit(data: &[u8]) -> Oracle {
    let text = B64.encode(data);
    check_raw(&text, Some(data))?;
    match std::str::from_utf8(data) {
        Ok(t) if !t.contains('.') && !t.is_empty() => check_raw(t, None),
        _ => Ok(()),
    }
}

fn check_raw(token: &str, bytes: Option<&[u8]>) -> Oracle {
    let req = Request {
        tokens: vec![token.to_owned()],
        audience: FUZZ_AUD.into(),
        action: "orders:read".into(),
        now: Some(FUZZ_NOW),
        ..Request::default()
    };
    let d = decide_all(&req)?;
    if !d.is_allowed() {
        return Ok(());
    }
    let decoded;
    let bytes = match bytes {
        Some(b) => b,
        None => {
            decoded = padded_b64(token).ok_or("allowed a token that is not base64url")?;
            decoded.as_slice()
        }
    };
    raw_allowed(bytes, &req, &d)
}

/// base64url with or without padding, read leniently (the oracle's own reading).
fn padded_b64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.trim_end_matches('=')).ok()
}

/// Decides `req` twice and with Cedar; checks what every decision must satisfy.
fn decide_all(req: &Request) -> Result<Decision, String> {
    let w = world().ok_or("world")?;
    let d = w.verifier.verify(req);
    decision_invariants(&d)?;
    let again = w.verifier.verify(req);
    ensure(super::same_decision(&again, &d), || {
        format!("a second verify differs: first {d:?}, then {again:?}")
    })?;
    let c = w.cedar.verify(req);
    decision_invariants(&c)?;
    ensure(!c.is_allowed() || d.is_allowed(), || {
        format!("Cedar allowed what chain validity denies: {:?}", d.reasons)
    })?;
    Ok(d)
}

fn raw_allowed(bytes: &[u8], req: &Request, d: &Decision) -> Oracle {
    let (signer, token) = root_signer(bytes).ok_or("allowed, yet no pack root key verifies it")?;
    let mut a = AuthorizerBuilder::new()
        .set_limits(AuthorizerLimits {
            max_facts: 10_000,
            max_iterations: 100,
            max_time: Duration::from_secs(60),
        })
        .build(&token)
        .map_err(|e| format!("allowed, yet biscuit-auth cannot load it: {e}"))?;
    // An authorizer's queries see the authority block only (and the authorizer's own facts).
    let domains: Vec<(String,)> = query(&mut a, "data($d) <- issuer_domain($d)")?;
    let name = FUZZ_DOMAINS.get(signer).copied().unwrap_or_default();
    ensure(domains == [(name.to_owned(),)], || {
        format!("allowed, signed by `{name}`'s root key, yet `issuer_domain` is {domains:?}")
    })?;
    let scopes: Vec<(String,)> = query(&mut a, "data($s) <- scope($s)")?;
    let scopes: Vec<String> = scopes.into_iter().map(|(s,)| s).collect();
    let presented = d
        .chain
        .as_ref()
        .map(|c| c.scopes.clone())
        .unwrap_or_default();
    ensure(presented.contains(&req.action), || {
        format!(
            "allowed `{}` outside the presented scopes {presented:?}",
            req.action
        )
    })?;
    ensure(presented.iter().all(|s| scopes.contains(s)), || {
        format!("presented scopes {presented:?} wider than the authority block's {scopes:?}")
    })?;
    let now = req.now.unwrap_or(FUZZ_NOW);
    let exp = date(&mut a, "expires")?;
    let iat = date(&mut a, "issued_at")?;
    ensure(now < exp.saturating_add(SKEW) && iat <= now + SKEW, || {
        format!("allowed at {now} outside the authority block's times {iat}..{exp}")
    })
}

fn query(a: &mut biscuit_auth::Authorizer, rule: &str) -> Result<Vec<(String,)>, String> {
    a.query(rule)
        .map_err(|e| format!("allowed, yet the query `{rule}` fails: {e}"))
}

/// The authority block's one `name` date (an integer or a Datalog date).
fn date(a: &mut biscuit_auth::Authorizer, name: &str) -> Result<i64, String> {
    let rule = format!("data($t) <- {name}($t)");
    let ints: Result<Vec<(i64,)>, _> = a.query(rule.as_str());
    let found: Vec<i64> = match ints {
        Ok(v) => v.into_iter().map(|(t,)| t).collect(),
        Err(_) => {
            let dates: Vec<(std::time::SystemTime,)> = a
                .query(rule.as_str())
                .map_err(|e| format!("allowed, yet `{name}` is unreadable: {e}"))?;
            dates
                .into_iter()
                .filter_map(|(t,)| t.duration_since(std::time::UNIX_EPOCH).ok())
                .filter_map(|t| i64::try_from(t.as_secs()).ok())
                .collect()
        }
    };
    match found.as_slice() {
        [one] => Ok(*one),
        other => Err(format!("allowed with {} `{name}` facts", other.len())),
    }
}

/// The pack domain whose key verifies every signature of `bytes`, per biscuit-auth.
fn root_signer(bytes: &[u8]) -> Option<(usize, Biscuit)> {
    let keys = keys()?;
    keys.roots
        .iter()
        .take(FUZZ_DOMAINS.len())
        .enumerate()
        .find_map(|(i, k)| Biscuit::from(bytes, k.public()).ok().map(|b| (i, b)))
}

/// Whether `token` (base64url, padded or not) is a Biscuit whose signatures verify under one of
/// the in-memory pack's root keys, per biscuit-auth.
pub fn biscuit_signed_by_pack(token: &str) -> bool {
    padded_b64(token).is_some_and(|b| root_signer(&b).is_some())
}

// ---------------------------------------------------------------------------------------------
// Keys

struct Keys {
    /// The four domains' keys, then the rogue key (seed `[99; 32]`, in no domain).
    roots: Vec<KeyPair>,
    /// Block `i`'s ephemeral (next) key.
    next: Vec<KeyPair>,
}

fn keys() -> Option<&'static Keys> {
    static KEYS: OnceLock<Option<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed = schema::public_key::Algorithm::Ed25519;
        let seeds = [1u8, 2, 3, 4, 99];
        let roots = seeds
            .iter()
            .map(|s| KeyPair::from_bytes(&[*s; 32], ed).ok())
            .collect::<Option<Vec<_>>>()?;
        let next = (0..=MAX_BLOCKS + 4)
            .map(|i| KeyPair::from_bytes(&[200u8.wrapping_add(i as u8); 32], ed).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Keys { roots, next })
    })
    .as_ref()
}

// ---------------------------------------------------------------------------------------------
// The structured input

/// A fact's term.
#[derive(Arbitrary, Clone, Debug)]
pub enum FuzzTerm {
    /// A string from the identifier table, or any.
    Str(Ident),
    /// A scope from the scope table.
    Scope(u8),
    /// An integer.
    Int(i64),
    /// A date, relative to the fuzzing time.
    Date(i16),
    /// A boolean.
    Bool(bool),
}

/// An extra fact: a predicate from [`FACT_NAMES`] (the request's and the profile's among them)
/// and one term.
#[derive(Arbitrary, Clone, Debug)]
pub struct FuzzFact {
    /// Index into [`FACT_NAMES`].
    pub name: u8,
    /// The term.
    pub value: FuzzTerm,
}

/// Predicates of extra facts: a neutral one, the request facts the verifier adds, the profile's.
pub const FACT_NAMES: [&str; 15] = [
    "role",
    "operation",
    "time",
    "service",
    "peer",
    "resource",
    "resource_type",
    "scope",
    "audience",
    "actor",
    "expires",
    "issued_at",
    "sub",
    "txn",
    "issuer_domain",
];

/// A check, from templates whose meaning the oracle knows, or any Datalog.
#[derive(Arbitrary, Clone, Debug)]
pub enum FuzzCheck {
    /// `check if operation(S)`, S from the scope table.
    Operation(u8),
    /// `reject if operation(S)`.
    Reject(u8),
    /// `check all operation($o), $o == S`.
    All(u8),
    /// `check if service(S)`.
    Service(Ident),
    /// `check if peer(S)`.
    Peer(Ident),
    /// `check if time($t), $t < D`, D relative to the fuzzing time.
    Before(i16),
    /// `check if resource($r), $r.starts_with(S)`.
    ResourcePrefix(String),
    /// Any check, in Datalog.
    Raw(String),
}

/// The authority block. Zero values mean "as the standard chain has it".
#[derive(Arbitrary, Clone, Debug, Default)]
pub struct FuzzAuthority {
    /// `issuer_domain`: `None` the position's standard domain; else an index into
    /// [`DOMAIN_NAMES`].
    pub domain: Option<u8>,
    /// Root signer: `None` the named domain's key; else 0–3 a pack domain's, 4 the rogue key.
    pub signer: Option<u8>,
    /// `sub`; default `user:alice`.
    pub sub: Option<Ident>,
    /// 0 `txn-1`, 1 none, else `txn-<n>`.
    pub txn: u8,
    /// Scopes, indices into the scope table; default `orders:read orders:write`.
    pub scope: Option<Vec<u8>>,
    /// `audience`; default the next position's actor (the request's audience when alone).
    pub audience: Option<Vec<Ident>>,
    /// `None`: the domain's standard actor; `Some(None)`: no actor; `Some(Some(id))`.
    pub actor: Option<Option<Ident>>,
    /// Offsets of `issued_at` and `expires` from the standard ones.
    pub iat: Option<i16>,
    /// See `iat`.
    pub exp: Option<i16>,
    /// Omitted facts, a bit each: issuer_domain, sub, audience, issued_at, expires, scope.
    pub omit: u8,
    /// Extra facts.
    pub facts: Vec<FuzzFact>,
    /// Checks.
    pub checks: Vec<FuzzCheck>,
}

/// A hop: a third-party block.
#[derive(Arbitrary, Clone, Debug, Default)]
pub struct FuzzHop {
    /// Signer: `None` the position's standard domain's key; else 0–3 a pack domain's, 4 rogue.
    pub signer: Option<u8>,
    /// `actor`; default the signer domain's standard actor.
    pub actor: Option<Ident>,
    /// Narrower scopes; `None` states none (keeps the previous ones).
    pub scope: Option<Vec<u8>>,
    /// `audience`; default the next position's actor, or the request's audience.
    pub audience: Option<Vec<Ident>>,
    /// `expires`, as an offset from the position's standard expiry; none by default.
    pub expires: Option<i16>,
    /// `issued_at`, as an offset from the position's standard one; none by default.
    pub issued_at: Option<i16>,
    /// `sub`, if stated.
    pub sub: Option<Ident>,
    /// `txn`, if stated: 0 `txn-1`, else `txn-<n>`.
    pub txn: Option<u8>,
    /// Omitted facts, a bit each: actor, audience.
    pub omit: u8,
    /// Extra facts.
    pub facts: Vec<FuzzFact>,
    /// Checks.
    pub checks: Vec<FuzzCheck>,
}

/// A first-party block: what anyone holding the token may append.
#[derive(Arbitrary, Clone, Debug, Default)]
pub struct FuzzAttenuation {
    /// Checks (all the profile allows here).
    pub checks: Vec<FuzzCheck>,
    /// Facts (refused by the profile).
    pub facts: Vec<FuzzFact>,
    /// A rule (refused by the profile).
    pub rule: bool,
}

/// A block after the authority block.
#[derive(Arbitrary, Clone, Debug)]
pub enum FuzzBlock {
    /// A hop.
    Hop(FuzzHop),
    /// A first-party block.
    Attenuation(FuzzAttenuation),
}

/// A structured Biscuit request for [`biscuit_structured`].
#[derive(Arbitrary, Clone, Debug, Default)]
pub struct FuzzBiscuit {
    /// The authority block.
    pub authority: FuzzAuthority,
    /// The blocks after it, in order (at most 8 are used).
    pub blocks: Vec<FuzzBlock>,
    /// Standard hops are appended until the token holds `[1, 2, 0][hops % 3]` hops.
    pub hops: u8,
    /// Flip bits (`mask`, at least one) of the byte at `position % length` of the token.
    pub tamper: Option<(u16, u8)>,
    /// The request's action: 0 `orders:read`, else an index into the scope table.
    pub action: u8,
    /// `peer`.
    pub peer: Option<Ident>,
    /// The request's audience; default the orders service.
    pub audience: Option<Ident>,
    /// Offset of `now` from the fuzzing time.
    pub now: i16,
}

/// `issuer_domain` values: the pack's domains, then undeclared or non-canonical names.
pub const DOMAIN_NAMES: [&str; 7] = [
    "a.example",
    "b.example",
    "c.example",
    "d.example",
    "e.example",
    "A.example",
    "",
];

/// Mints the structured Biscuit, decides it (twice, and with Cedar) and checks what any allow
/// implies: the authority block signed by the root key of the domain it names, every hop by a
/// pack key of its actor's domain (or `local`), no fact or rule in a first-party block, every
/// check whose meaning the harness knows satisfied by the request (or by a fact the check
/// trusts), each hop narrowing scopes and expiry, the action in the presented scopes, the
/// audience in the presented `audience`, the times, and a tampered token only when the tamper
/// left its protobuf unchanged.
pub fn biscuit_structured(data: &[u8]) -> Oracle {
    let mut u = Unstructured::new(data);
    let Ok(input) = FuzzBiscuit::arbitrary(&mut u) else {
        return Ok(());
    };
    biscuit_input(&input)
}

/// [`biscuit_structured`] on an already built input.
pub fn biscuit_input(input: &FuzzBiscuit) -> Oracle {
    let Some(minted) = mint_biscuit(input) else {
        return Ok(());
    };
    let d = decide_all(&minted.request)?;
    if d.is_allowed() {
        minted.model.allowed(&minted.request)?;
        ensure(minted.tamper_harmless(), || {
            "a tampered token that reads differently was allowed".into()
        })?;
    }
    Ok(())
}

/// The request a structured input mints and its decision (for tests of the harness itself).
pub fn decide_biscuit(input: &FuzzBiscuit) -> Option<(Request, Decision)> {
    let w = world()?;
    let minted = mint_biscuit(input)?;
    let d = w.verifier.verify(&minted.request);
    Some((minted.request, d))
}

/// The token text (base64url) a structured input mints.
pub fn biscuit_text(input: &FuzzBiscuit) -> Option<String> {
    mint_biscuit(input).and_then(|m| m.request.tokens.into_iter().next())
}

/// The token (protobuf bytes) a structured input mints, for seeds.
pub fn biscuit_bytes(input: &FuzzBiscuit) -> Option<Vec<u8>> {
    mint_biscuit(input).map(|m| m.bytes)
}

// ---------------------------------------------------------------------------------------------
// Minting

struct Minted {
    request: Request,
    /// The token's bytes, after tampering.
    bytes: Vec<u8>,
    /// Before tampering.
    honest: Vec<u8>,
    model: Model,
}

impl Minted {
    /// Tampering changed nothing biscuit-auth reads: the same blocks, signatures and proof.
    fn tamper_harmless(&self) -> bool {
        if self.bytes == self.honest {
            return true;
        }
        let read = |b: &[u8]| {
            schema::Biscuit::decode(b)
                .ok()
                .map(|t| (t.authority, t.blocks, t.proof))
        };
        read(&self.bytes).is_some_and(|t| Some(t) == read(&self.honest))
    }
}

/// One position of the chain (the authority block or a hop), as the harness wrote it.
#[derive(Clone, Debug, Default)]
struct Position {
    /// Index into the keys (4: rogue).
    signer: usize,
    actor: Option<String>,
    /// Stated scopes (a hop with none keeps the previous ones).
    scopes: Vec<String>,
    audience: Vec<String>,
    iat: Option<i64>,
    exp: Option<i64>,
    sub: Option<String>,
    txn: Option<String>,
}

/// A check the harness can evaluate, with the extra facts it trusts (its own block's and the
/// authority block's).
#[derive(Clone, Debug)]
struct ModelCheck {
    check: FuzzCheck,
    facts: Vec<(String, FuzzTerm)>,
}

/// What the harness put in the token.
#[derive(Clone, Debug, Default)]
struct Model {
    /// `issuer_domain`, if stated.
    domain: Option<String>,
    positions: Vec<Position>,
    checks: Vec<ModelCheck>,
    /// A first-party block with a fact or a rule, or any block with a rule.
    forbidden: bool,
    /// An extra fact with a profile predicate: scopes, times and audiences are not modelled.
    profile_facts: bool,
}

/// The standard positions' domains and actors, and where the hops go among the blocks.
struct Layout {
    blocks: Vec<FuzzBlock>,
    /// Each position's standard domain index.
    domains: Vec<usize>,
    /// Each position's actor, as it will be written (for the default audiences).
    actors: Vec<Option<String>>,
}

fn layout(input: &FuzzBiscuit) -> Layout {
    let mut blocks: Vec<FuzzBlock> = input.blocks.iter().take(MAX_BLOCKS).cloned().collect();
    let want = [1usize, 2, 0].get(usize::from(input.hops % 3)).copied();
    let hops = |b: &[FuzzBlock]| b.iter().filter(|x| matches!(x, FuzzBlock::Hop(_))).count();
    while hops(&blocks) < want.unwrap_or(0) {
        blocks.push(FuzzBlock::Hop(FuzzHop::default()));
    }
    let total = 1 + hops(&blocks);
    let standard = |pos: usize| if total == 1 { 1 } else { pos % 4 };
    let mut domains = vec![standard(0)];
    let mut actors = vec![match &input.authority.actor {
        None => DEFAULT_ACTOR.get(standard(0)).map(|a| (*a).to_owned()),
        Some(a) => a.as_ref().map(Ident::text),
    }];
    for h in blocks.iter().filter_map(|b| match b {
        FuzzBlock::Hop(h) => Some(h),
        FuzzBlock::Attenuation(_) => None,
    }) {
        let pos = domains.len();
        let signer = h.signer.map_or(standard(pos), |s| usize::from(s) % 5);
        domains.push(standard(pos));
        let actor = match &h.actor {
            Some(a) => a.text(),
            None => DEFAULT_ACTOR
                .get(signer.min(3))
                .copied()
                .unwrap_or("")
                .to_owned(),
        };
        actors.push((h.omit & 1 == 0).then_some(actor));
    }
    Layout {
        blocks,
        domains,
        actors,
    }
}

fn mint_biscuit(input: &FuzzBiscuit) -> Option<Minted> {
    let keys = keys()?;
    let lay = layout(input);
    let audience = input
        .audience
        .as_ref()
        .map_or(FUZZ_AUD.to_owned(), Ident::text);
    let default_aud = |pos: usize| -> Vec<String> {
        match lay.actors.get(pos + 1) {
            Some(next) => next.iter().cloned().collect(),
            None => vec![audience.clone()],
        }
    };
    let mut model = Model::default();
    let (mut token, auth_facts) = authority(keys, input, &lay, &default_aud(0), &mut model)?;
    let mut pos = 1;
    for (i, block) in lay.blocks.iter().enumerate() {
        let next = keys.next.get(i + 1)?;
        token = match block {
            FuzzBlock::Hop(h) => {
                let std_domain = lay.domains.get(pos).copied().unwrap_or(0);
                let actor = lay.actors.get(pos).cloned().flatten();
                let ctx = HopCtx {
                    pos,
                    std_domain,
                    actor,
                    aud: default_aud(pos),
                };
                pos += 1;
                hop(keys, &token, next, h, &ctx, &auth_facts, &mut model)?
            }
            FuzzBlock::Attenuation(a) => attenuation(&token, next, a, &auth_facts, &mut model)?,
        };
    }
    let honest = token.to_vec().ok()?;
    let mut bytes = honest.clone();
    if let Some((at, mask)) = input.tamper {
        let len = bytes.len().max(1);
        if let Some(b) = bytes.get_mut(usize::from(at) % len) {
            *b ^= mask.max(1);
        }
    }
    let action = match input.action {
        0 => "orders:read".to_owned(),
        n => pick(&SCOPES, n).to_owned(),
    };
    let request = Request {
        tokens: vec![B64.encode(&bytes)],
        audience,
        action,
        peer: input.peer.as_ref().map(Ident::text),
        now: Some(FUZZ_NOW + i64::from(input.now)),
        ..Request::default()
    };
    Some(Minted {
        request,
        bytes,
        honest,
        model,
    })
}

fn scopes_of(items: &[u8]) -> Vec<String> {
    items
        .iter()
        .take(8)
        .map(|i| pick(&SCOPES, *i).to_owned())
        .collect()
}

fn idents(list: &[Ident]) -> Vec<String> {
    list.iter().take(8).map(Ident::text).collect()
}

fn add_str(b: BlockBuilder, name: &str, values: &[String]) -> Option<BlockBuilder> {
    values
        .iter()
        .try_fold(b, |b, v| b.fact(fact(name, &[BTerm::Str(v.clone())])).ok())
}

fn add_int(b: BlockBuilder, name: &str, value: Option<i64>) -> Option<BlockBuilder> {
    match value {
        None => Some(b),
        Some(v) => b.fact(fact(name, &[BTerm::Integer(v)])).ok(),
    }
}

fn std_iat(pos: usize) -> i64 {
    FUZZ_NOW - 60 + 10 * i64::try_from(pos).unwrap_or(0)
}

fn std_exp(pos: usize) -> i64 {
    FUZZ_NOW + 600 - 60 * i64::try_from(pos).unwrap_or(0)
}

fn txn_name(n: u8) -> String {
    if n == 0 {
        "txn-1".to_owned()
    } else {
        format!("txn-{n}")
    }
}

/// The authority block: the token, and its extra facts (trusted by every block's checks).
fn authority(
    keys: &Keys,
    input: &FuzzBiscuit,
    lay: &Layout,
    default_aud: &[String],
    model: &mut Model,
) -> Option<(Biscuit, Vec<(String, FuzzTerm)>)> {
    let a = &input.authority;
    let omit = |bit: u8| a.omit & (1 << bit) != 0;
    let std_domain = lay.domains.first().copied().unwrap_or(1);
    let domain = a
        .domain
        .map_or(std_domain, |d| usize::from(d) % DOMAIN_NAMES.len());
    let name = DOMAIN_NAMES.get(domain).copied().unwrap_or_default();
    let signer = a.signer.map_or(domain.min(4), |s| usize::from(s) % 5);
    let p = Position {
        signer,
        actor: lay.actors.first().cloned().flatten(),
        scopes: match &a.scope {
            _ if omit(5) => Vec::new(),
            Some(s) => scopes_of(s),
            None => vec!["orders:read".into(), "orders:write".into()],
        },
        audience: match &a.audience {
            _ if omit(2) => Vec::new(),
            Some(list) => idents(list),
            None => default_aud.to_vec(),
        },
        iat: (!omit(3)).then(|| std_iat(0) + a.iat.map_or(0, i64::from)),
        exp: (!omit(4)).then(|| std_exp(0) + a.exp.map_or(0, i64::from)),
        sub: (!omit(1)).then(|| a.sub.as_ref().map_or("user:alice".into(), Ident::text)),
        txn: (a.txn != 1).then(|| txn_name(a.txn)),
    };
    model.domain = (!omit(0)).then(|| name.to_owned());
    let mut b = BlockBuilder::new();
    b = add_str(b, "issuer_domain", model.domain.as_slice())?;
    b = add_str(b, "sub", p.sub.as_slice())?;
    b = add_str(b, "txn", p.txn.as_slice())?;
    b = add_str(b, "scope", &p.scopes)?;
    b = add_str(b, "audience", &p.audience)?;
    b = add_str(b, "actor", p.actor.as_slice())?;
    b = add_int(b, "issued_at", p.iat)?;
    b = add_int(b, "expires", p.exp)?;
    let facts = extra_facts(&a.facts, model);
    b = add_facts(b, &facts)?;
    b = add_checks(b, &a.checks, &facts, model);
    model.positions.push(p);
    let token = Biscuit::builder()
        .merge(b)
        .build_with_key_pair(
            keys.roots.get(signer)?,
            SymbolTable::new(),
            keys.next.first()?,
        )
        .ok()?;
    Some((token, facts))
}

struct HopCtx {
    pos: usize,
    std_domain: usize,
    actor: Option<String>,
    aud: Vec<String>,
}

fn hop(
    keys: &Keys,
    token: &Biscuit,
    next: &KeyPair,
    h: &FuzzHop,
    ctx: &HopCtx,
    auth_facts: &[(String, FuzzTerm)],
    model: &mut Model,
) -> Option<Biscuit> {
    let signer = h.signer.map_or(ctx.std_domain, |s| usize::from(s) % 5);
    let p = Position {
        signer,
        actor: ctx.actor.clone(),
        scopes: h.scope.as_deref().map(scopes_of).unwrap_or_default(),
        audience: match &h.audience {
            _ if h.omit & 2 != 0 => Vec::new(),
            Some(list) => idents(list),
            None => ctx.aud.clone(),
        },
        iat: h.issued_at.map(|o| std_iat(ctx.pos) + i64::from(o)),
        exp: h.expires.map(|o| std_exp(ctx.pos) + i64::from(o)),
        sub: h.sub.as_ref().map(Ident::text),
        txn: h.txn.map(txn_name),
    };
    let mut b = BlockBuilder::new();
    b = add_str(b, "actor", p.actor.as_slice())?;
    b = add_str(b, "scope", &p.scopes)?;
    b = add_str(b, "audience", &p.audience)?;
    b = add_int(b, "expires", p.exp)?;
    b = add_int(b, "issued_at", p.iat)?;
    b = add_str(b, "sub", p.sub.as_slice())?;
    b = add_str(b, "txn", p.txn.as_slice())?;
    let own = extra_facts(&h.facts, model);
    b = add_facts(b, &own)?;
    let trusted: Vec<_> = auth_facts.iter().chain(&own).cloned().collect();
    b = add_checks(b, &h.checks, &trusted, model);
    model.positions.push(p);
    let key = keys.roots.get(signer)?;
    let block = token
        .third_party_request()
        .ok()?
        .create_block(&key.private(), b)
        .ok()?;
    token
        .append_third_party_with_keypair(key.public(), block, clone_key(next)?)
        .ok()
}

fn clone_key(k: &KeyPair) -> Option<KeyPair> {
    KeyPair::from_bytes(&k.private().to_bytes(), k.algorithm()).ok()
}

fn attenuation(
    token: &Biscuit,
    next: &KeyPair,
    a: &FuzzAttenuation,
    auth_facts: &[(String, FuzzTerm)],
    model: &mut Model,
) -> Option<Biscuit> {
    let mut b = BlockBuilder::new();
    let own = extra_facts(&a.facts, model);
    b = add_facts(b, &own)?;
    if a.rule {
        b = b.rule("derived($x) <- operation($x)").ok()?;
    }
    model.forbidden |= !own.is_empty() || a.rule;
    let trusted: Vec<_> = auth_facts.iter().chain(&own).cloned().collect();
    b = add_checks(b, &a.checks, &trusted, model);
    token.append_with_keypair(next, b).ok()
}

fn extra_facts(facts: &[FuzzFact], model: &mut Model) -> Vec<(String, FuzzTerm)> {
    let out: Vec<(String, FuzzTerm)> = facts
        .iter()
        .take(8)
        .map(|f| (pick(&FACT_NAMES, f.name).to_owned(), f.value.clone()))
        .collect();
    model.profile_facts |= out
        .iter()
        .any(|(n, _)| custody_verifier::biscuit::PROFILE_PREDICATES.contains(&n.as_str()));
    out
}

fn term(t: &FuzzTerm) -> BTerm {
    match t {
        FuzzTerm::Str(i) => BTerm::Str(i.text()),
        FuzzTerm::Scope(i) => BTerm::Str(pick(&SCOPES, *i).to_owned()),
        FuzzTerm::Int(n) => BTerm::Integer(*n),
        FuzzTerm::Date(d) => BTerm::Date(fuzz_date(*d)),
        FuzzTerm::Bool(b) => BTerm::Bool(*b),
    }
}

fn fuzz_date(offset: i16) -> u64 {
    u64::try_from(FUZZ_NOW + i64::from(offset)).unwrap_or(0)
}

fn add_facts(b: BlockBuilder, facts: &[(String, FuzzTerm)]) -> Option<BlockBuilder> {
    facts
        .iter()
        .try_fold(b, |b, (name, t)| b.fact(fact(name, &[term(t)])).ok())
}

/// Adds each check the builder accepts; the templated ones join the model.
fn add_checks(
    mut b: BlockBuilder,
    checks: &[FuzzCheck],
    trusted: &[(String, FuzzTerm)],
    model: &mut Model,
) -> BlockBuilder {
    for c in checks.iter().take(8) {
        let built = match template(c) {
            None => b.clone().check(c_raw(c)),
            Some((code, value)) => {
                let params = HashMap::from([("v".to_owned(), value)]);
                b.clone().code_with_params(code, params, HashMap::new())
            }
        };
        if let Ok(next) = built {
            b = next;
            model.checks.push(ModelCheck {
                check: c.clone(),
                facts: trusted.to_vec(),
            });
        }
    }
    b
}

/// A templated check's Datalog, with its one parameter `{v}`; `None` for raw Datalog.
fn template(c: &FuzzCheck) -> Option<(&'static str, BTerm)> {
    let scope = |i: &u8| BTerm::Str(pick(&SCOPES, *i).to_owned());
    Some(match c {
        FuzzCheck::Operation(i) => ("check if operation({v})", scope(i)),
        FuzzCheck::Reject(i) => ("reject if operation({v})", scope(i)),
        FuzzCheck::All(i) => ("check all operation($o), $o == {v}", scope(i)),
        FuzzCheck::Service(s) => ("check if service({v})", BTerm::Str(s.text())),
        FuzzCheck::Peer(s) => ("check if peer({v})", BTerm::Str(s.text())),
        FuzzCheck::Before(d) => ("check if time($t), $t < {v}", BTerm::Date(fuzz_date(*d))),
        FuzzCheck::ResourcePrefix(s) => (
            "check if resource($r), $r.starts_with({v})",
            BTerm::Str(s.clone()),
        ),
        FuzzCheck::Raw(_) => return None,
    })
}

fn c_raw(c: &FuzzCheck) -> &str {
    match c {
        FuzzCheck::Raw(code) => code,
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// The model's verdict on an allowed request

impl Model {
    fn allowed(&self, req: &Request) -> Oracle {
        self.signers()?;
        ensure(!self.forbidden, || {
            "allowed with a fact or rule the profile refuses".into()
        })?;
        for c in &self.checks {
            ensure(holds(c, req), || {
                format!("allowed although the check {:?} fails", c.check)
            })?;
        }
        if !self.profile_facts {
            self.chain(req)?;
        }
        Ok(())
    }

    /// The authority block under its named domain's root key; each hop under a pack key of its
    /// actor's domain or `local`'s.
    fn signers(&self) -> Oracle {
        let (first, hops) = self.positions.split_first().ok_or("no authority")?;
        let name = FUZZ_DOMAINS.get(first.signer).copied();
        ensure(name.is_some() && self.domain.as_deref() == name, || {
            format!(
                "allowed an authority block signed by key {} naming {:?}",
                first.signer, self.domain
            )
        })?;
        for (i, p) in self.positions.iter().enumerate() {
            let signer = FUZZ_DOMAINS.get(p.signer).copied();
            let actor_domain = p.actor.as_deref().map(actor_domain);
            let vouched = signer == Some(LOCAL)
                || actor_domain.is_none() && i == 0
                || actor_domain.is_some_and(|d| Some(d.as_str()) == signer);
            ensure(signer.is_some() && vouched, || {
                format!(
                    "allowed position {i} signed by key {} for actor {:?}",
                    p.signer, p.actor
                )
            })?;
        }
        ensure(hops.iter().all(|h| h.actor.is_some()), || {
            "allowed a hop without an actor".into()
        })
    }

    /// Scopes, expiry and audiences narrow hop by hop; the request fits the presented hop.
    fn chain(&self, req: &Request) -> Oracle {
        let now = req.now.unwrap_or(FUZZ_NOW);
        let first = self.positions.first().ok_or("no authority")?;
        let mut scopes = first.scopes.clone();
        let mut exp = first.exp.ok_or("allowed without `expires`")?;
        let iat = first.iat.ok_or("allowed without `issued_at`")?;
        ensure(iat <= now + SKEW, || "allowed, issued in the future".into())?;
        ensure(first.sub.is_some(), || "allowed without `sub`".into())?;
        ensure(self.positions.len() < 2 || first.txn.is_some(), || {
            "allowed a chain without `txn`".into()
        })?;
        let mut prev = first;
        for (i, p) in self.positions.iter().enumerate().skip(1) {
            ensure(p.scopes.iter().all(|s| scopes.contains(s)), || {
                format!("hop {i} widens {scopes:?} to {:?}", p.scopes)
            })?;
            if !p.scopes.is_empty() {
                scopes.clone_from(&p.scopes);
            }
            if let Some(e) = p.exp {
                ensure(e <= exp, || format!("hop {i} extends expiry {exp} to {e}"))?;
                exp = e;
            }
            ensure(p.iat.is_none_or(|t| t <= now + SKEW), || {
                format!("hop {i} issued in the future")
            })?;
            let linked = p.actor.as_ref().is_some_and(|a| prev.audience.contains(a));
            ensure(linked, || {
                format!("hop {i}'s actor is not in the previous audience")
            })?;
            ensure(p.sub.is_none() || p.sub == first.sub, || {
                format!("hop {i} changes `sub`")
            })?;
            ensure(p.txn.is_none() || p.txn == first.txn, || {
                format!("hop {i} changes `txn`")
            })?;
            prev = p;
        }
        ensure(now < exp + SKEW, || {
            format!("allowed at {now}, expired at {exp}")
        })?;
        ensure(scopes.contains(&req.action), || {
            format!(
                "action `{}` not in the presented scopes {scopes:?}",
                req.action
            )
        })?;
        ensure(prev.audience.contains(&req.audience), || {
            "audience not in the presented `audience`".into()
        })
    }
}

fn actor_domain(actor: &str) -> String {
    SpiffeId::parse(actor)
        .map(|id| id.trust_domain().as_str().to_owned())
        .unwrap_or_default()
}

/// Whether a templated check holds for `req`, given the extra facts it trusts: the harness's
/// own reading of the check.
fn holds(c: &ModelCheck, req: &Request) -> bool {
    let now = req.now.unwrap_or(FUZZ_NOW);
    let strs = |pred: &str| -> Vec<String> {
        let mut v: Vec<String> = c
            .facts
            .iter()
            .filter(|(n, _)| n == pred)
            .filter_map(|(_, t)| match term(t) {
                BTerm::Str(s) => Some(s),
                _ => None,
            })
            .collect();
        match pred {
            "operation" => v.push(req.action.clone()),
            "service" | "resource" => v.push(req.audience.clone()),
            "peer" => v.extend(req.peer.clone()),
            _ => {}
        }
        v
    };
    match &c.check {
        FuzzCheck::Operation(i) => strs("operation").iter().any(|s| s == pick(&SCOPES, *i)),
        FuzzCheck::Reject(i) => !strs("operation").iter().any(|s| s == pick(&SCOPES, *i)),
        FuzzCheck::All(i) => strs("operation").iter().all(|s| s == pick(&SCOPES, *i)),
        FuzzCheck::Service(s) => strs("service").contains(&s.text()),
        FuzzCheck::Peer(s) => strs("peer").contains(&s.text()),
        FuzzCheck::ResourcePrefix(p) => strs("resource").iter().any(|r| r.starts_with(p)),
        FuzzCheck::Before(d) => {
            let limit = fuzz_date(*d);
            let request = u64::try_from(now).is_ok_and(|n| n < limit);
            request
                || c.facts
                    .iter()
                    .any(|(n, t)| n == "time" && matches!(term(t), BTerm::Date(x) if x < limit))
        }
        FuzzCheck::Raw(_) => true,
    }
}
