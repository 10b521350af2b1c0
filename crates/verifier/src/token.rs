//! One token's checks, in DESIGN.md's order: size, decoding, header, issuer and key, signature,
//! claims, times, identifiers. What comes out is a [`Token`] only this module can build.
//!
//! A token seen before comes from the token cache (`cache.rs`) as a [`Verified`]: its
//! decoding, signature, claims and identifiers are the ones computed the first time (they
//! depend on its bytes, the pack and the limits only, all fixed for one verifier); its class
//! for this position, its issuer and key binding to the pack, and its times are checked
//! again, in the same order as for a new token.

use std::mem::size_of;
use std::sync::Arc;

use custody_id::{looks_like_spiffe, IdError, SpiffeId};
use custody_jose::{
    classify_typ, decode, numeric_date, JwsError, Limits, PublicKey, TokenClass, UnverifiedJws,
};
use custody_policy::PolicyPack;
use serde_json::{Map, Value};

use crate::cache::TokenCache;
use crate::fifo::alloc_cost;
use crate::index::PackIndex;
use crate::{Reason, ReasonCode};

/// Which token classes a position accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// `tokens[0]`: an access token or a Txn-Token (which makes the chain a Txn-Token chain).
    First,
    Access,
    Txn,
}

/// The time a token is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Clock<'a> {
    /// The request's time.
    pub now: i64,
    /// The next token in `tokens`, if any. A Txn-Token followed by another is an earlier token
    /// of a replacement chain: it is not checked against `now`, and must not be expired at the
    /// next token's `iat` (when that can be read; the next token gets all its own checks).
    pub next: Option<&'a str>,
}

/// A token whose every single-token check passed.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub class: TokenClass,
    /// Index of the issuer's domain in `pack.domains`.
    pub domain: usize,
    pub sub: String,
    pub aud: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub nbf: Option<i64>,
    /// `None` when the token has no `scope` claim (grants nothing).
    pub scope: Vec<String>,
    pub txn: Option<String>,
    /// Earliest first: the `act` chain for access tokens, `req_wl` for Txn-Tokens.
    pub actors: Vec<SpiffeId>,
    pub tctx: Option<Map<String, Value>>,
}

impl Token {
    pub fn current_actor(&self) -> Option<&SpiffeId> {
        self.actors.last()
    }

    /// An upper estimate of the heap this token owns (allocator rounding included).
    fn heap_bytes(&self) -> usize {
        let strings = |v: &[String]| v.iter().map(|s| alloc_cost(s.capacity())).sum::<usize>();
        alloc_cost(self.sub.capacity())
            + alloc_cost(self.aud.capacity() * size_of::<String>())
            + strings(&self.aud)
            + alloc_cost(self.scope.capacity() * size_of::<String>())
            + strings(&self.scope)
            + self.txn.as_ref().map_or(0, |t| alloc_cost(t.capacity()))
            + alloc_cost(self.actors.capacity() * size_of::<SpiffeId>())
            + self
                .actors
                .iter()
                .map(|a| alloc_cost(a.as_str().len()))
                .sum::<usize>()
            + self.tctx.as_ref().map_or(0, map_bytes)
    }
}

/// An upper estimate of the heap a JSON object owns: its entry and index tables at twice
/// their length (growth slack), its keys and its values.
fn map_bytes(m: &Map<String, Value>) -> usize {
    let entry = 8 + size_of::<String>() + size_of::<Value>();
    2 * alloc_cost(m.len() * entry)
        + 2 * alloc_cost(m.len() * 16)
        + m.iter()
            .map(|(k, v)| alloc_cost(k.len()) + value_bytes(v))
            .sum::<usize>()
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => alloc_cost(s.len()),
        Value::Array(a) => {
            2 * alloc_cost(a.len() * size_of::<Value>()) + a.iter().map(value_bytes).sum::<usize>()
        }
        Value::Object(m) => map_bytes(m),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// A token that passed every check that does not depend on the request: decoding, header,
/// issuer and key, signature, claims, identifiers. What the token cache keeps, with what a
/// hit needs to check the binding to the pack again.
pub(crate) struct Verified {
    pub token: Arc<Token>,
    pub iss: String,
    pub kid: String,
    pub alg: String,
    pub typ: Option<String>,
    /// The key the signature verified under.
    pub key: [u8; 32],
    /// `iat` as [`peek_iat`] reads it (always `Some` for a token that passed its checks).
    pub raw_iat: Option<i64>,
}

impl Verified {
    /// An upper estimate of the heap this entry owns, itself and its token included.
    pub fn heap_bytes(&self) -> usize {
        let arc = 2 * size_of::<usize>();
        alloc_cost(arc + size_of::<Verified>())
            + alloc_cost(arc + size_of::<Token>())
            + self.token.heap_bytes()
            + alloc_cost(self.iss.capacity())
            + alloc_cost(self.kid.capacity())
            + alloc_cost(self.alg.capacity())
            + self.typ.as_ref().map_or(0, |t| alloc_cost(t.capacity()))
    }
}

/// What a token check needs from the verifier.
pub(crate) struct Ctx<'a> {
    pub pack: &'a PolicyPack,
    pub index: &'a PackIndex,
    pub limits: &'a Limits,
    pub cache: &'a TokenCache,
    /// The request has exactly one token (actor-level faults then name the actor index).
    pub single: bool,
    /// This token's hop (`None` for the `txn_token`).
    pub hop: Option<usize>,
}

impl Ctx<'_> {
    fn fail(&self, code: ReasonCode, message: impl Into<String>) -> Reason {
        Reason::new(code, self.hop, message)
    }

    /// The hop for a fault about actor `index` of this token.
    fn actor_fail(&self, index: usize, code: ReasonCode, message: impl Into<String>) -> Reason {
        let hop = if self.single { Some(index) } else { self.hop };
        Reason::new(code, hop, message)
    }
}

/// Runs every single-token check on `raw` (those that do not depend on the request only once
/// per token while it stays in the cache).
pub(crate) fn check(
    ctx: &Ctx<'_>,
    raw: &str,
    expect: Expect,
    clock: Clock<'_>,
) -> Result<Arc<Token>, Reason> {
    if let Some(v) = ctx.cache.peek(raw) {
        if let Some(done) = check_cached(ctx, &v, expect, clock) {
            ctx.cache.note_hit();
            return done;
        }
    }
    check_fresh(ctx, raw, expect, clock)
}

/// The checks a cached token still gets, in order: its class for this position, its issuer
/// and key (`None`, the long way, unless they are still exactly this pack's), its times.
fn check_cached(
    ctx: &Ctx<'_>,
    v: &Verified,
    expect: Expect,
    clock: Clock<'_>,
) -> Option<Result<Arc<Token>, Reason>> {
    if let Err(r) = check_class(ctx, v.token.class, v.typ.as_deref(), expect) {
        return Some(Err(r));
    }
    let bound = ctx
        .index
        .domain_for_issuer(ctx.pack, &v.iss)
        .is_some_and(|(i, d)| {
            i == v.token.domain
                && d.keys
                    .get(&v.kid)
                    .is_some_and(|k| k.bytes() == v.key && k.allows_alg(&v.alg))
        });
    if !bound {
        return None;
    }
    Some(check_times(ctx, &v.token, clock).map(|()| Arc::clone(&v.token)))
}

/// Every check on a token not in the cache; one that passes all those that do not depend on
/// the request is remembered.
fn check_fresh(
    ctx: &Ctx<'_>,
    raw: &str,
    expect: Expect,
    clock: Clock<'_>,
) -> Result<Arc<Token>, Reason> {
    let jws = decode(raw, ctx.limits).map_err(|e| match e {
        JwsError::TooLarge(_) => ctx.fail(ReasonCode::TokenTooLarge, e.to_string()),
        JwsError::AlgNotAllowed(m) => ctx.fail(ReasonCode::AlgNotAllowed, m),
        _ => ctx.fail(ReasonCode::MalformedToken, e.to_string()),
    })?;
    let typ = jws.header.typ.as_deref();
    let class = check_class(ctx, classify_typ(typ), typ, expect)?;
    let (domain, key) = check_signature(ctx, &jws)?;
    let mut token = read_claims(ctx, &jws.claims, class, domain)?;
    // Identifiers do not depend on the clock: read them now, report them after the times.
    match identifiers(ctx, &jws.claims, &token) {
        Ok(actors) => token.actors = actors,
        Err(r) => {
            check_times(ctx, &token, clock)?;
            return Err(r);
        }
    }
    let token = Arc::new(token);
    remember(ctx, raw, &jws, key, &token);
    check_times(ctx, &token, clock)?;
    Ok(token)
}

fn remember(ctx: &Ctx<'_>, raw: &str, jws: &UnverifiedJws<'_>, key: &PublicKey, t: &Arc<Token>) {
    if !ctx.cache.is_on() {
        return;
    }
    let verified = Verified {
        token: Arc::clone(t),
        iss: jws
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        kid: key.kid().to_owned(),
        alg: jws.header.alg.clone(),
        typ: jws.header.typ.clone(),
        key: key.bytes(),
        raw_iat: jws.claims.get("iat").and_then(|v| numeric_date(v).ok()),
    };
    ctx.cache.insert_token(raw, Arc::new(verified));
}

/// Whether `class` (the class of `typ`) fits the position.
fn check_class(
    ctx: &Ctx<'_>,
    class: TokenClass,
    typ: Option<&str>,
    expect: Expect,
) -> Result<TokenClass, Reason> {
    let ok = match expect {
        Expect::First => class != TokenClass::Other,
        Expect::Access => class == TokenClass::Access,
        Expect::Txn => class == TokenClass::TxnToken,
    };
    if ok {
        return Ok(class);
    }
    let want = match expect {
        Expect::First => "an access token (`at+jwt`, `JWT` or none) or `txntoken+jwt`",
        Expect::Access => "an access token (`at+jwt`, `JWT` or none)",
        Expect::Txn => "a Txn-Token (`txntoken+jwt`)",
    };
    let got = typ.unwrap_or("none");
    Err(ctx.fail(
        ReasonCode::WrongTokenType,
        format!("`typ` `{}` where {want} is expected", clip(got)),
    ))
}

/// Issuer, key and signature; returns the issuer's domain index and the key.
fn check_signature<'p>(
    ctx: &Ctx<'p>,
    jws: &UnverifiedJws<'_>,
) -> Result<(usize, &'p PublicKey), Reason> {
    let iss = match jws.claims.get("iss") {
        None => return Err(ctx.fail(ReasonCode::MissingClaim, "missing claim `iss`")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(ctx.fail(ReasonCode::MalformedToken, "claim `iss` must be a string")),
    };
    let (index, domain) = ctx.index.domain_for_issuer(ctx.pack, iss).ok_or_else(|| {
        ctx.fail(
            ReasonCode::UnknownIssuer,
            format!("issuer `{}` is not declared by any domain", clip(iss)),
        )
    })?;
    let kid = jws
        .header
        .kid
        .as_deref()
        .ok_or_else(|| ctx.fail(ReasonCode::UnknownKey, "header has no `kid`"))?;
    let key = domain.keys.get(kid).ok_or_else(|| {
        ctx.fail(
            ReasonCode::UnknownKey,
            format!(
                "`kid` `{}` is not a key of domain `{}`",
                clip(kid),
                domain.name
            ),
        )
    })?;
    if !key.allows_alg(&jws.header.alg) {
        return Err(ctx.fail(
            ReasonCode::AlgNotAllowed,
            format!("key `{}` is pinned to another `alg`", clip(kid)),
        ));
    }
    if !ctx
        .cache
        .verify_uncached(key, jws.signing_input, &jws.signature)
    {
        return Err(ctx.fail(
            ReasonCode::BadSignature,
            format!(
                "signature does not verify with key `{}` of `{}`",
                clip(kid),
                domain.name
            ),
        ));
    }
    Ok((index, key))
}

fn read_claims(
    ctx: &Ctx<'_>,
    c: &Map<String, Value>,
    class: TokenClass,
    domain: usize,
) -> Result<Token, Reason> {
    let txn_class = class == TokenClass::TxnToken;
    let sub = req_string(ctx, c, "sub")?;
    let iat = req_date(ctx, c, "iat")?;
    let exp = req_date(ctx, c, "exp")?;
    let nbf = opt_date(ctx, c, "nbf")?;
    let aud = match c.get("aud") {
        None if txn_class => Vec::new(),
        None => return Err(missing(ctx, "aud")),
        Some(v) => audience(ctx, v)?,
    };
    let txn = opt_string(ctx, c, "txn")?;
    let scope = opt_string(ctx, c, "scope")?;
    opt_string(ctx, c, "client_id")?;
    if txn_class {
        if txn.is_none() {
            return Err(missing(ctx, "txn"));
        }
        if scope.is_none() {
            return Err(missing(ctx, "scope"));
        }
        if !c.contains_key("req_wl") {
            return Err(missing(ctx, "req_wl"));
        }
    }
    let tctx = match c.get("tctx") {
        None => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => return Err(wrong_type(ctx, "tctx", "an object")),
    };
    if let Some(act) = c.get("act") {
        check_act_shape(ctx, act, 1)?;
    }
    Ok(Token {
        class,
        domain,
        sub,
        aud,
        iat,
        exp,
        nbf,
        scope: scope.map(|s| split_scope(&s)).unwrap_or_default(),
        txn,
        actors: Vec::new(),
        tctx,
    })
}

/// Space-separated scope items, empty items ignored, duplicates removed, order kept.
pub(crate) fn split_scope(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in s.split(' ').filter(|i| !i.is_empty()) {
        if !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    out
}

fn missing(ctx: &Ctx<'_>, name: &str) -> Reason {
    ctx.fail(ReasonCode::MissingClaim, format!("missing claim `{name}`"))
}

fn wrong_type(ctx: &Ctx<'_>, name: &str, want: &str) -> Reason {
    ctx.fail(
        ReasonCode::MalformedToken,
        format!("claim `{name}` must be {want}"),
    )
}

fn req_string(ctx: &Ctx<'_>, c: &Map<String, Value>, name: &str) -> Result<String, Reason> {
    opt_string(ctx, c, name)?.ok_or_else(|| missing(ctx, name))
}

fn opt_string(ctx: &Ctx<'_>, c: &Map<String, Value>, name: &str) -> Result<Option<String>, Reason> {
    match c.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong_type(ctx, name, "a string")),
    }
}

fn req_date(ctx: &Ctx<'_>, c: &Map<String, Value>, name: &str) -> Result<i64, Reason> {
    opt_date(ctx, c, name)?.ok_or_else(|| missing(ctx, name))
}

/// A NumericDate, read by the one reader every date goes through ([`numeric_date`]): an
/// integer from 0 to the end of year 9999, written without fraction or exponent. Anything
/// else is `malformed_token`.
fn opt_date(ctx: &Ctx<'_>, c: &Map<String, Value>, name: &str) -> Result<Option<i64>, Reason> {
    match c.get(name).map(numeric_date) {
        None => Ok(None),
        Some(Ok(d)) => Ok(Some(d)),
        Some(Err(e)) => Err(ctx.fail(
            ReasonCode::MalformedToken,
            format!("claim `{name}` must be a whole number of seconds from 0 to year 9999: {e}"),
        )),
    }
}

fn audience(ctx: &Ctx<'_>, v: &Value) -> Result<Vec<String>, Reason> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| wrong_type(ctx, "aud", "a string or a list of strings")),
        _ => Err(wrong_type(ctx, "aud", "a string or a list of strings")),
    }
}

/// Members an `act` object may hold (RFC 8693 §4.1 identity claims and the nested actor).
const ACT_MEMBERS: [&str; 4] = ["sub", "iss", "client_id", "act"];

fn check_act_shape(ctx: &Ctx<'_>, act: &Value, level: usize) -> Result<(), Reason> {
    let Value::Object(m) = act else {
        return Err(wrong_type(ctx, "act", "an object"));
    };
    if level > ctx.limits.act_depth {
        return Err(ctx.fail(
            ReasonCode::DepthExceeded,
            format!("`act` nests deeper than {} levels", ctx.limits.act_depth),
        ));
    }
    if let Some(extra) = m.keys().find(|k| !ACT_MEMBERS.contains(&k.as_str())) {
        return Err(ctx.fail(
            ReasonCode::MalformedToken,
            format!("`act` may hold only identity claims, not `{}`", clip(extra)),
        ));
    }
    match m.get("sub") {
        None => return Err(ctx.fail(ReasonCode::MissingClaim, "missing claim `act.sub`")),
        Some(Value::String(_)) => {}
        Some(_) => return Err(wrong_type(ctx, "act.sub", "a string")),
    }
    for name in ["iss", "client_id"] {
        if m.get(name).is_some_and(|v| !v.is_string()) {
            return Err(wrong_type(ctx, &format!("act.{name}"), "a string"));
        }
    }
    match m.get("act") {
        Some(inner) => check_act_shape(ctx, inner, level + 1),
        None => Ok(()),
    }
}

fn check_times(ctx: &Ctx<'_>, t: &Token, clock: Clock<'_>) -> Result<(), Reason> {
    let at = match clock.next {
        Some(next) if t.class == TokenClass::TxnToken => match next_iat(ctx, next) {
            Some(iat) => DatedAt::Replaced(iat),
            // the replacement has no readable `iat`: it is refused at its own hop
            None => DatedAt::ReplacementUnreadable,
        },
        _ => DatedAt::Now(clock.now),
    };
    time_rule(t, at, ctx.pack).map_err(|(code, m)| ctx.fail(code, m))
}

/// The moment a token's times are judged at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DatedAt {
    /// The request's time: every token of an access chain, the last of a Txn-Token chain,
    /// every Biscuit hop.
    Now(i64),
    /// An earlier token of a Txn-Token replacement chain, at its replacement's `iat`.
    Replaced(i64),
    /// An earlier Txn-Token whose replacement has no readable `iat` (refused at its own hop).
    ReplacementUnreadable,
}

/// The time rule (DESIGN.md, "Each token"), the one home for JWT tokens and Biscuit hops
/// alike, with the pack's skew `s`: expired iff `now ≥ exp + s`; not yet valid iff
/// `now + s < nbf`; issued in the future iff `iat > now + s`; `exp − iat` at most
/// `max_lifetime`. An earlier token of a replacement chain must not be expired, skew
/// included, at its replacement's `iat`. Dates are at most year 9999 and the skew at most
/// 120 s, so the arithmetic saturates only on values no reader lets through.
pub(crate) fn time_rule(
    t: &Token,
    at: DatedAt,
    pack: &PolicyPack,
) -> Result<(), (ReasonCode, String)> {
    let s = i64::try_from(pack.chain.clock_skew).unwrap_or(i64::MAX);
    let expires = t.exp.saturating_add(s);
    match at {
        DatedAt::Now(now) => {
            if now >= expires {
                let m = format!("expired at {} (now {now}, skew {s}s)", t.exp);
                return Err((ReasonCode::Expired, m));
            }
            if t.nbf.is_some_and(|nbf| now.saturating_add(s) < nbf) {
                let nbf = t.nbf.unwrap_or_default();
                let m = format!("not valid before {nbf} (now {now}, skew {s}s)");
                return Err((ReasonCode::NotYetValid, m));
            }
            if t.iat > now.saturating_add(s) {
                let m = format!("issued at {} after now {now} (skew {s}s)", t.iat);
                return Err((ReasonCode::IssuedInFuture, m));
            }
        }
        DatedAt::Replaced(iat) if iat >= expires => {
            let m = format!(
                "expired at {} before its replacement was issued at {iat}",
                t.exp
            );
            return Err((ReasonCode::Expired, m));
        }
        DatedAt::Replaced(_) | DatedAt::ReplacementUnreadable => {}
    }
    let max = i64::try_from(pack.chain.max_lifetime).unwrap_or(i64::MAX);
    let lifetime = t.exp.saturating_sub(t.iat);
    if lifetime > max {
        return Err((
            ReasonCode::LifetimeTooLong,
            format!("lifetime {lifetime}s exceeds {max}s"),
        ));
    }
    Ok(())
}

/// Parses a workload SPIFFE ID (non-empty path) under the configured length limits.
pub(crate) fn workload_id(text: &str, limits: &Limits) -> Result<SpiffeId, IdError> {
    let id = SpiffeId::parse_workload(text)?;
    if text.len() > limits.spiffe_id_bytes
        || id.trust_domain_str().len() > limits.trust_domain_bytes
    {
        return Err(IdError::TooLong);
    }
    Ok(id)
}

/// Identifier checks; returns the token's actors, earliest first.
fn identifiers(ctx: &Ctx<'_>, c: &Map<String, Value>, t: &Token) -> Result<Vec<SpiffeId>, Reason> {
    let bad_id = |what: &str, text: &str, e: IdError| {
        format!(
            "{what} `{}` is not a valid workload SPIFFE ID: {e}",
            clip(text)
        )
    };
    let spiffe_claim = |name: &str| -> Result<Option<SpiffeId>, Reason> {
        match c.get(name).and_then(Value::as_str) {
            Some(v) if looks_like_spiffe(v) => workload_id(v, ctx.limits)
                .map(Some)
                .map_err(|e| ctx.fail(ReasonCode::InvalidSpiffeId, bad_id(name, v, e))),
            _ => Ok(None),
        }
    };
    let sub_id = spiffe_claim("sub")?;
    let client_id = spiffe_claim("client_id")?;
    if t.class == TokenClass::TxnToken {
        return requesting_workloads(ctx, c.get("req_wl"));
    }
    let Some(act) = c.get("act") else {
        return Ok(client_id.or(sub_id).into_iter().collect());
    };
    // Outermost first in the token; earliest first here.
    let mut subs = Vec::new();
    let mut level = Some(act);
    while let Some(Value::Object(m)) = level {
        subs.push(m.get("sub").and_then(Value::as_str).unwrap_or(""));
        level = m.get("act");
    }
    subs.reverse();
    let mut actors = Vec::with_capacity(subs.len());
    for (i, s) in subs.iter().enumerate() {
        let id = workload_id(s, ctx.limits)
            .map_err(|e| ctx.actor_fail(i, ReasonCode::InvalidSpiffeId, bad_id("actor", s, e)))?;
        actors.push(id);
    }
    if let (Some(client), Some(current)) = (&client_id, actors.last()) {
        if client != current {
            return Err(ctx.fail(
                ReasonCode::ChainBroken,
                format!("`client_id` `{client}` is not the current actor `{current}`"),
            ));
        }
    }
    Ok(actors)
}

/// `req_wl`: a comma-separated string or a list of workload SPIFFE IDs, non-empty.
fn requesting_workloads(ctx: &Ctx<'_>, v: Option<&Value>) -> Result<Vec<SpiffeId>, Reason> {
    let items: Vec<&str> = match v {
        Some(Value::String(s)) => s.split(',').map(|i| i.trim_matches(' ')).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| wrong_type(ctx, "req_wl", "a string or a list of strings"))?,
        Some(_) => return Err(wrong_type(ctx, "req_wl", "a string or a list of strings")),
        None => return Err(missing(ctx, "req_wl")),
    };
    if items.is_empty() || items == [""] {
        return Err(ctx.fail(ReasonCode::MissingClaim, "claim `req_wl` is empty"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, w)| {
            workload_id(w, ctx.limits).map_err(|e| {
                ctx.actor_fail(
                    i,
                    ReasonCode::InvalidSpiffeId,
                    format!(
                        "requesting workload `{}` is not a valid workload SPIFFE ID: {e}",
                        clip(w)
                    ),
                )
            })
        })
        .collect()
}

/// [`peek_iat`], from the cache when the token is there (the same bytes, the same answer).
fn next_iat(ctx: &Ctx<'_>, raw: &str) -> Option<i64> {
    match ctx.cache.peek(raw) {
        Some(v) => v.raw_iat,
        None => peek_iat(raw, ctx.limits),
    }
}

/// Reads `iat` from a token without verifying it, to date a replacement in a Txn-Token chain,
/// through the same reader as every date ([`numeric_date`]). `None` when the replacement has
/// no readable `iat`: it then fails its own claims check at its own hop (`missing_claim` or
/// `malformed_token`) and the chain is denied there, so no date that one reader takes and
/// another refuses can skip the expiry check.
pub(crate) fn peek_iat(raw: &str, limits: &Limits) -> Option<i64> {
    let jws = decode(raw, limits).ok()?;
    numeric_date(jws.claims.get("iat")?).ok()
}

/// Cuts attacker-controlled text down to a size fit for a message.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 96;
    if s.len() <= MAX {
        return s.escape_debug().to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or("").escape_debug())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;
    use crate::cache::CacheStats;
    use custody_jose::{sign, KeySet, SigningKey};
    use serde_json::json;

    fn demo() -> PolicyPack {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/demo");
        PolicyPack::load(dir.as_ref(), &Limits::default())
            .unwrap()
            .pack
    }

    fn with_keys(pack: &PolicyPack, domain: usize, keys: &[SigningKey]) -> PolicyPack {
        let mut p = pack.clone();
        p.domains[domain].keys = KeySet::new();
        for k in keys {
            p.domains[domain].keys.insert(k.public()).unwrap();
        }
        p
    }

    /// A token kept under one pack is checked against the pack of the call: another key
    /// under its `kid`, no key, or its issuer moved to another domain all take the long way.
    #[test]
    fn a_cached_token_is_bound_to_the_pack_it_is_checked_against() {
        let key = SigningKey::from_seed("b-test", [7; 32]);
        let a = with_keys(&demo(), 1, std::slice::from_ref(&key));
        let claims = json!({"iss": "https://as.b.example", "sub": "user:x", "aud": "x",
            "iat": 100, "exp": 200});
        let token = sign(&key, Some("at+jwt"), &claims).unwrap();
        let cache = TokenCache::new(64);
        let limits = Limits::default();
        let check_in = |p: &PolicyPack| {
            let index = PackIndex::new(p);
            let ctx = Ctx {
                pack: p,
                index: &index,
                limits: &limits,
                cache: &cache,
                single: true,
                hop: Some(0),
            };
            check(
                &ctx,
                &token,
                Expect::First,
                Clock {
                    now: 150,
                    next: None,
                },
            )
            .map(|t| t.domain)
            .map_err(|r| r.code)
        };
        assert_eq!(check_in(&a), Ok(1));
        assert_eq!(check_in(&a), Ok(1));
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 1 });
        assert_eq!(
            check_in(&with_keys(&a, 1, &[])),
            Err(ReasonCode::UnknownKey)
        );
        let other = SigningKey::from_seed("b-test", [8; 32]);
        let replaced = with_keys(&a, 1, &[other]);
        assert_eq!(check_in(&replaced), Err(ReasonCode::BadSignature));
        let mut moved = a.clone();
        moved.domains.swap(0, 1);
        assert_eq!(check_in(&moved), Ok(0));
        // none of the three was answered from the cache
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 3 });
        // the last one was kept with its binding to `moved`: back under `a`, that binding does
        // not hold either, and the token is checked the long way once more
        assert_eq!(check_in(&a), Ok(1));
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 4 });
        assert_eq!(check_in(&a), Ok(1));
        assert_eq!(cache.stats(), CacheStats { hits: 2, misses: 4 });
    }
}
