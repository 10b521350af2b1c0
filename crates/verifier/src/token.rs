//! One token's checks, in DESIGN.md's order: size, decoding, header, issuer and key, signature,
//! claims, times, identifiers. What comes out is a `VerifiedToken` (`verified.rs`), which
//! only the verifier builds.
//!
//! Keys come from the verifier's `KeyStore`: the issuer's domain's current snapshot, taken
//! once per token. A token seen before comes from the token cache (`cache.rs`) as a
//! `Verified` record: its decoding, signature, claims and identifiers are the ones computed the
//! first time (they depend on its bytes, the pack, the key and the limits only); its class for
//! this position, its issuer's domain, whether its key is still in that domain's set
//! (`KeyBinding::holds`), and its times are checked again, in the same order as for a new
//! token.

use std::sync::Arc;

use custody_id::{looks_like_spiffe, IdError, SpiffeId};
use custody_jose::{
    classify_typ, decode_members, media_type_is, numeric_date, Algorithm, Header, JwsError,
    KeyStore, Limits, Members, Object, Peek, Remote, TokenClass, UnverifiedMembers,
};
use custody_policy::PolicyPack;
use serde_json::Value;

use crate::cache::{KeyBinding, TokenCache, Verified};
use crate::index::PackIndex;
use crate::reason::clip;
use crate::texts::{CacheParts, Texts};
use crate::time::time_rule;
use crate::txn::{self, Expect};
use crate::verified::{Confirmation, VerifiedToken as Token};
use crate::{Reason, ReasonCode};

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

/// What a token check needs from the verifier.
pub(crate) struct Ctx<'a> {
    pub pack: &'a PolicyPack,
    pub index: &'a PackIndex,
    /// The current keys of every domain.
    pub keys: &'a KeyStore,
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
    if let Some(v) = ctx.cache.peek(raw).as_ref().and_then(|e| e.verified()) {
        if let Some(done) = check_cached(ctx, v, expect, clock) {
            ctx.cache.note_hit();
            return done;
        }
    }
    check_fresh(ctx, raw, expect, clock)
}

/// The checks a cached token still gets, in order: its class for this position, its key
/// (`None`, the long way, unless it is still in its domain's current set), its times.
fn check_cached(
    ctx: &Ctx<'_>,
    v: &Verified,
    expect: Expect,
    clock: Clock<'_>,
) -> Option<Result<Arc<Token>, Reason>> {
    let class = match v.token.svid {
        true => check_svid_position(ctx, v.token.texts.typ(), expect),
        false => check_class(ctx, v.token.class, v.token.texts.typ(), expect),
    };
    if let Err(r) = class {
        return Some(Err(r));
    }
    // the issuer's domain is the pack's to say, and the pack is the one the token was verified
    // under (`Verified`): only the key set can have changed since
    let bound = v.token.domain == v.key.domain && v.key.holds(ctx.keys, v.token.texts.kid(), v.alg);
    if !bound {
        return None;
    }
    Some(check_times(ctx, &v.token, clock).map(|()| Arc::clone(&v.token)))
}

/// The buffer a token's claim set is decoded into, one per thread and used again: taken for a
/// token's checks, given back (emptied) when they end. One larger than [`Scratch::KEEP`] bytes
/// (a token's claims are rarely a kilobyte) is not kept.
struct Scratch(Vec<u8>);

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Scratch {
    const KEEP: usize = 4096;

    fn take() -> Self {
        Scratch(SCRATCH.with(std::cell::Cell::take))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.capacity() <= Scratch::KEEP {
            let mut buf = std::mem::take(&mut self.0);
            buf.clear();
            // a thread being torn down keeps nothing
            let _ = SCRATCH.try_with(|s| s.set(buf));
        }
    }
}

/// Every check on a token not in the cache; one that passes all those that do not depend on
/// the request is remembered.
fn check_fresh(
    ctx: &Ctx<'_>,
    raw: &str,
    expect: Expect,
    clock: Clock<'_>,
) -> Result<Arc<Token>, Reason> {
    let mut payload = Scratch::take();
    let jws =
        decode_members(raw, ctx.limits, Claims::slot, &mut payload.0).map_err(|e| match e {
            JwsError::TooLarge(_) => ctx.fail(ReasonCode::TokenTooLarge, e.to_string()),
            JwsError::AlgNotAllowed(m) => ctx.fail(ReasonCode::AlgNotAllowed, m),
            _ => ctx.fail(ReasonCode::MalformedToken, e.to_string()),
        })?;
    let typ = jws.header.typ.as_deref();
    let claims = Claims::of(&jws.claims);
    let svid = is_jwt_svid(&claims);
    let class = match svid {
        true => check_svid_position(ctx, typ, expect)?,
        false => check_class(ctx, classify_typ(typ), typ, expect)?,
    };
    let key = check_signature(ctx, &jws, &claims, svid)?;
    // what the cache keeps of a token it remembers goes into the token's one allocation of text
    let remembered = ctx.cache.is_on().then(|| CacheParts {
        raw,
        // the key was found under the header's `kid`
        kid: jws.header.kid.as_deref().unwrap_or_default(),
        typ,
    });
    let (mut token, act) = read_claims(ctx, &claims, class, key.domain, svid, remembered)?;
    // Identifiers do not depend on the clock: read them now, report them after the times.
    match identifiers(ctx, &claims, &token, act.as_ref()) {
        Ok(actors) => token.actors = actors,
        Err(r) => {
            check_times(ctx, &token, clock)?;
            return Err(r);
        }
    }
    let token = Arc::new(token);
    remember(ctx, &jws.header, &claims, key, &token);
    check_times(ctx, &token, clock)?;
    Ok(token)
}

/// Remembers `t` (built with what the cache keeps of it: its text, `kid` and `typ`).
fn remember(ctx: &Ctx<'_>, header: &Header, claims: &Claims<'_>, key: KeyBinding, t: &Arc<Token>) {
    // the decoder accepts only custody's names, so an `alg` it cannot name is never remembered
    let (true, Some(alg)) = (ctx.cache.is_on(), Algorithm::from_name(&header.alg)) else {
        return;
    };
    let verified = Verified {
        token: Arc::clone(t),
        alg,
        key,
        raw_iat: claims.get("iat").and_then(|v| numeric_date(v).ok()),
    };
    ctx.cache.insert_token(verified);
}

/// A claim set as the checks here read it: decoded ([`decode_members`]) with each claim they
/// read in a slot of its own, so that a lookup is a comparison of names, not a keyed hash (a
/// token check looks claims up a score of times). Any other claim is kept in order.
struct Claims<'c> {
    members: &'c Members<'c, KNOWN>,
}

/// How many claims have a slot ([`Claims::slot`]).
const KNOWN: usize = 14;

impl<'c> Claims<'c> {
    fn of(members: &'c Members<'c, KNOWN>) -> Self {
        Claims { members }
    }

    /// Where claim `name` is kept, if it is one of the known. Matched byte by byte (a
    /// decision tree on the length, then on each byte), not as a chain of string comparisons:
    /// it is asked for every claim of every token and at every lookup.
    #[inline(always)]
    fn slot(name: &str) -> Option<usize> {
        Some(match name.as_bytes() {
            [b'i', b's', b's'] => 0,
            [b's', b'u', b'b'] => 1,
            [b'a', b'u', b'd'] => 2,
            [b'i', b'a', b't'] => 3,
            [b'e', b'x', b'p'] => 4,
            [b'n', b'b', b'f'] => 5,
            [b't', b'x', b'n'] => 6,
            [b's', b'c', b'o', b'p', b'e'] => 7,
            [b'c', b'l', b'i', b'e', b'n', b't', b'_', b'i', b'd'] => 8,
            [b'r', b'e', b'q', b'_', b'w', b'l'] => 9,
            [b't', b'c', b't', b'x'] => 10,
            [b'a', b'c', b't'] => 11,
            [b'c', b'n', b'f'] => 12,
            [b'j', b't', b'i'] => 13,
            _ => return None,
        })
    }

    /// Claim `name`, as `Map::get` on the claim set gives it. Inlined, so that for a name
    /// written here the slot is found as the code is compiled.
    #[inline(always)]
    fn get(&self, name: &str) -> Option<&'c Value> {
        match Claims::slot(name) {
            Some(i) => self.members.get_placed(i),
            None => self.members.get(name),
        }
    }

    /// Claim `name` as a string (`Ok`), another value (`Err`), or absent (`None`): what
    /// [`Claims::get`] gives, without building a string's value.
    #[inline(always)]
    fn get_str(&self, name: &str) -> Option<Result<&'c str, &'c Value>> {
        match Claims::slot(name) {
            Some(i) => self.members.get_str_placed(i),
            None => self.members.get_str(name),
        }
    }

    /// Claim `name` as [`Peek`] shows it (an object's members read, nothing built).
    #[inline(always)]
    fn peek(&self, name: &str) -> Option<Peek<'c>> {
        match Claims::slot(name) {
            Some(i) => self.members.peek_placed(i),
            None => self.members.peek(name),
        }
    }

    /// Claim `name` when it is a string.
    #[inline(always)]
    fn str(&self, name: &str) -> Option<&'c str> {
        self.get_str(name).and_then(Result::ok)
    }
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

/// Whether a token is a JWT-SVID (DESIGN.md, "JWT-SVIDs"): no `iss`, and a `sub` that is
/// a SPIFFE ID.
fn is_jwt_svid(c: &Claims<'_>) -> bool {
    c.get_str("iss").is_none() && c.str("sub").is_some_and(looks_like_spiffe)
}

/// A JWT-SVID's `typ` (absent, `JWT` or `JOSE`) and position: it is a chain of its own, never
/// one token of several nor a `txn_token`.
fn check_svid_position(
    ctx: &Ctx<'_>,
    typ: Option<&str>,
    expect: Expect,
) -> Result<TokenClass, Reason> {
    let fits = typ.is_none_or(|t| media_type_is(t, "jwt") || media_type_is(t, "jose"));
    if !fits {
        return Err(ctx.fail(
            ReasonCode::WrongTokenType,
            format!(
                "`typ` `{}` where a JWT-SVID (no `typ`, `JWT` or `JOSE`) is expected",
                clip(typ.unwrap_or(""))
            ),
        ));
    }
    if expect != Expect::First || !ctx.single {
        return Err(ctx.fail(
            ReasonCode::WrongTokenType,
            "a JWT-SVID (no `iss`, a SPIFFE ID as `sub`) is a chain of its own: it cannot be one token of several or a `txn_token`",
        ));
    }
    Ok(TokenClass::Access)
}

/// The domain whose keys verify a token: its `iss`'s, or for a JWT-SVID its `sub`'s trust
/// domain.
fn issuing_domain<'p>(
    ctx: &Ctx<'p>,
    c: &Claims<'_>,
    svid: bool,
) -> Result<(usize, &'p custody_policy::DomainConfig), Reason> {
    if svid {
        let sub = c.str("sub").unwrap_or("");
        let id = ctx.limits.workload_id(sub).map_err(|e| {
            ctx.fail(
                ReasonCode::InvalidSpiffeId,
                format!(
                    "JWT-SVID `sub` `{}` is not a valid workload SPIFFE ID: {e}",
                    clip(sub)
                ),
            )
        })?;
        let td = id.trust_domain_str();
        return ctx.index.domain_named(ctx.pack, td).ok_or_else(|| {
            ctx.fail(
                ReasonCode::UnknownIssuer,
                format!("JWT-SVID trust domain `{}` is not declared", clip(td)),
            )
        });
    }
    let iss = match c.get_str("iss") {
        None => return Err(ctx.fail(ReasonCode::MissingClaim, "missing claim `iss`")),
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            return Err(ctx.fail(ReasonCode::MalformedToken, "claim `iss` must be a string"))
        }
    };
    ctx.index.domain_for_issuer(ctx.pack, iss).ok_or_else(|| {
        ctx.fail(
            ReasonCode::UnknownIssuer,
            format!("issuer `{}` is not declared by any domain", clip(iss)),
        )
    })
}

/// Issuer, key and signature, the key looked up in the issuer's current key set (the
/// `KeyStore` snapshot taken here); returns the key the signature verified under.
fn check_signature(
    ctx: &Ctx<'_>,
    jws: &UnverifiedMembers<'_, '_, KNOWN>,
    claims: &Claims<'_>,
    svid: bool,
) -> Result<KeyBinding, Reason> {
    let (index, domain) = issuing_domain(ctx, claims, svid)?;
    let kid = jws
        .header
        .kid
        .as_deref()
        .ok_or_else(|| ctx.fail(ReasonCode::UnknownKey, "header has no `kid`"))?;
    let keys = ctx.keys.domain(index);
    let key = keys.as_ref().and_then(|k| k.token_key(kid)).ok_or_else(|| {
        ctx.keys.note_miss(index);
        if keys.as_ref().map(|k| k.remote()) == Some(Remote::Awaiting) {
            return ctx.fail(
                ReasonCode::KeysUnavailable,
                format!(
                    "`kid` `{}` is not in the key files of domain `{}`, and its remote key sources have not delivered a key set yet",
                    clip(kid),
                    domain.name
                ),
            );
        }
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
            format!(
                "`alg` `{}` is not an algorithm key `{}` verifies",
                clip(&jws.header.alg),
                clip(kid)
            ),
        ));
    }
    ctx.cache.note_miss();
    if !key.verify_with(&jws.header.alg, jws.signing_input, &jws.signature) {
        return Err(ctx.fail(
            ReasonCode::BadSignature,
            format!(
                "signature does not verify with key `{}` of `{}`",
                clip(kid),
                domain.name
            ),
        ));
    }
    Ok(KeyBinding {
        domain: index,
        thumbprint: *key.thumbprint(),
        epoch: keys.map_or(0, |k| k.epoch()),
    })
}

/// The token, and its `act` chain's `sub`s (outermost first) when it has one.
fn read_claims<'c>(
    ctx: &Ctx<'_>,
    c: &Claims<'c>,
    class: TokenClass,
    domain: usize,
    svid: bool,
    remembered: Option<CacheParts<'_>>,
) -> Result<(Token, Option<ActSubs<'c>>), Reason> {
    let txn_class = class == TokenClass::TxnToken;
    let sub = req_str(ctx, c, "sub")?;
    let (iat, iat_claimed) = match svid {
        // a JWT-SVID need not carry `iat`
        true => match opt_date(ctx, c, "iat")? {
            Some(iat) => (iat, true),
            None => (0, false),
        },
        false => (req_date(ctx, c, "iat")?, true),
    };
    let exp = req_date(ctx, c, "exp")?;
    let nbf = opt_date(ctx, c, "nbf")?;
    let aud = match c.get_str("aud") {
        None if txn_class => Audience::None,
        None => return Err(missing(ctx, "aud")),
        Some(aud) => audience(ctx, aud)?,
    };
    let txn = opt_str(ctx, c, "txn")?;
    let scope = opt_str(ctx, c, "scope")?;
    opt_str(ctx, c, "client_id")?;
    if txn_class {
        if txn.is_none() {
            return Err(missing(ctx, "txn"));
        }
        if scope.is_none() {
            return Err(missing(ctx, "scope"));
        }
        if c.get_str("req_wl").is_none() {
            return Err(missing(ctx, "req_wl"));
        }
    }
    let tctx = match c.get("tctx") {
        None => None,
        Some(Value::Object(m)) => Some(Box::new(m.clone())),
        Some(_) => return Err(wrong_type(ctx, "tctx", "an object")),
    };
    let act = c.peek("act").map(|act| act_chain(ctx, act)).transpose()?;
    let cnf = confirmation(ctx, c.get("cnf"))?;
    // read as it is: a `jti` that is not a string was never refused, and names nothing a
    // revocation can match
    let jti = c.str("jti");
    let scope = scope.map(split_scope).unwrap_or_default();
    let token = Token {
        class,
        domain,
        texts: Texts::new(
            sub,
            jti,
            txn,
            remembered,
            aud.items(),
            scope.iter().copied(),
        ),
        iat,
        exp,
        nbf,
        actors: Vec::new(),
        tctx,
        svid,
        iat_claimed,
        cnf,
    };
    Ok((token, act))
}

/// `cnf` (RFC 7800): an object; `jkt` (RFC 9449) and `x5t#S256` (RFC 8705) strings are what
/// custody can check, any other member makes the token unusable (never a bearer token).
fn confirmation(ctx: &Ctx<'_>, v: Option<&Value>) -> Result<Option<Confirmation>, Reason> {
    let Some(v) = v else { return Ok(None) };
    let Value::Object(m) = v else {
        return Err(wrong_type(ctx, "cnf", "an object"));
    };
    let text = |name: &str| match m.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(wrong_type(
            ctx,
            &format!("cnf.{name}"),
            "a non-empty string",
        )),
    };
    let names: Vec<&str> = m.keys().map(String::as_str).collect();
    Ok(Some(match names.as_slice() {
        ["jkt"] => Confirmation::Jkt(text("jkt")?),
        ["x5t#S256"] => Confirmation::X5t(text("x5t#S256")?),
        _ => Confirmation::Unsupported(clip(&names.join(", "))),
    }))
}

/// Space-separated scope items, empty items ignored, duplicates removed, order kept.
pub(crate) fn split_scope(s: &str) -> smallvec::SmallVec<[&str; 8]> {
    crate::items::unique(s.split(' ').filter(|i| !i.is_empty()))
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

#[inline(always)]
fn req_str<'c>(ctx: &Ctx<'_>, c: &Claims<'c>, name: &str) -> Result<&'c str, Reason> {
    opt_str(ctx, c, name)?.ok_or_else(|| missing(ctx, name))
}

#[inline(always)]
fn opt_str<'c>(ctx: &Ctx<'_>, c: &Claims<'c>, name: &str) -> Result<Option<&'c str>, Reason> {
    match c.get_str(name) {
        None => Ok(None),
        Some(Ok(s)) => Ok(Some(s)),
        Some(Err(_)) => Err(wrong_type(ctx, name, "a string")),
    }
}

#[inline(always)]
fn req_date(ctx: &Ctx<'_>, c: &Claims<'_>, name: &str) -> Result<i64, Reason> {
    opt_date(ctx, c, name)?.ok_or_else(|| missing(ctx, name))
}

/// A NumericDate, read by the one reader every date goes through ([`numeric_date`]): an
/// integer from 0 to the end of year 9999, written without fraction or exponent. Anything
/// else is `malformed_token`.
#[inline(always)]
fn opt_date(ctx: &Ctx<'_>, c: &Claims<'_>, name: &str) -> Result<Option<i64>, Reason> {
    match c.get(name).map(numeric_date) {
        None => Ok(None),
        Some(Ok(d)) => Ok(Some(d)),
        Some(Err(e)) => Err(ctx.fail(
            ReasonCode::MalformedToken,
            format!("claim `{name}` must be a whole number of seconds from 0 to year 9999: {e}"),
        )),
    }
}

/// `aud` as [`Claims::get_str`] reads it: a string, or a list of strings.
/// `aud` as read: none, one string, or a list whose every item is a string.
enum Audience<'c> {
    None,
    One(&'c str),
    List(&'c [Value]),
}

impl<'c> Audience<'c> {
    /// The items, in order.
    fn items(&self) -> impl Iterator<Item = &'c str> + Clone + 'c {
        let (one, list): (Option<&'c str>, &'c [Value]) = match *self {
            Audience::None => (None, &[]),
            Audience::One(s) => (Some(s), &[]),
            Audience::List(items) => (None, items),
        };
        // every item of a list was found a string by `audience`
        one.into_iter().chain(list.iter().filter_map(Value::as_str))
    }
}

fn audience<'c>(ctx: &Ctx<'_>, aud: Result<&'c str, &'c Value>) -> Result<Audience<'c>, Reason> {
    match aud {
        Ok(s) => Ok(Audience::One(s)),
        Err(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(Audience::List(items)),
        _ => Err(wrong_type(ctx, "aud", "a string or a list of strings")),
    }
}

/// An `act` object's members as the checks read them, found in one pass over the object (in
/// document order, nothing built for it) rather than by a keyed lookup each: `other` is the
/// first member that is none of RFC 8693 §4.1's identity claims or the nested actor.
#[derive(Default)]
struct ActMembers<'v> {
    sub: Option<Peek<'v>>,
    iss: Option<Peek<'v>>,
    client_id: Option<Peek<'v>>,
    act: Option<Peek<'v>>,
    other: Option<&'v str>,
}

impl<'v> ActMembers<'v> {
    fn of(m: Object<'v>) -> Self {
        let mut out = ActMembers::default();
        for (name, v) in m.members() {
            let slot = match name {
                "sub" => &mut out.sub,
                "iss" => &mut out.iss,
                "client_id" => &mut out.client_id,
                "act" => &mut out.act,
                other => {
                    out.other = out.other.or(Some(other));
                    continue;
                }
            };
            // a claim set's objects have no repeated names (strict JSON)
            *slot = Some(v);
        }
        out
    }

    /// The `act` object `v` is, if it is one.
    fn object(v: Peek<'v>) -> Option<Object<'v>> {
        match v {
            Peek::Object(m) => Some(m),
            _ => None,
        }
    }
}

/// The `sub`s of a token's `act` chain, outermost first, as [`act_chain`] read them: up to
/// the default `act` depth limit without an allocation.
type ActSubs<'v> = smallvec::SmallVec<[&'v str; 8]>;

/// `act` read in one pass, level by level: each level an object of identity claims with a
/// string `sub`, at most `act_depth` levels. Its `sub`s, outermost first.
fn act_chain<'v>(ctx: &Ctx<'_>, act: Peek<'v>) -> Result<ActSubs<'v>, Reason> {
    let mut subs = ActSubs::new();
    let mut next = Some(act);
    let mut level = 1;
    while let Some(act) = next {
        let Some(m) = ActMembers::object(act) else {
            return Err(wrong_type(ctx, "act", "an object"));
        };
        if level > ctx.limits.act_depth {
            return Err(ctx.fail(
                ReasonCode::DepthExceeded,
                format!("`act` nests deeper than {} levels", ctx.limits.act_depth),
            ));
        }
        let members = ActMembers::of(m);
        if let Some(extra) = members.other {
            return Err(ctx.fail(
                ReasonCode::MalformedToken,
                format!("`act` may hold only identity claims, not `{}`", clip(extra)),
            ));
        }
        match members.sub {
            None => return Err(ctx.fail(ReasonCode::MissingClaim, "missing claim `act.sub`")),
            Some(Peek::Str(sub)) => subs.push(sub),
            Some(_) => return Err(wrong_type(ctx, "act.sub", "a string")),
        }
        for (name, v) in [("iss", members.iss), ("client_id", members.client_id)] {
            if v.is_some_and(|v| !matches!(v, Peek::Str(_))) {
                return Err(wrong_type(ctx, &format!("act.{name}"), "a string"));
            }
        }
        next = members.act;
        level += 1;
    }
    Ok(subs)
}

fn check_times(ctx: &Ctx<'_>, t: &Token, clock: Clock<'_>) -> Result<(), Reason> {
    let at = txn::dated_at(t, clock.now, clock.next, ctx.cache, ctx.limits);
    time_rule(t, at, ctx.pack).map_err(|(code, m)| ctx.fail(code, m))
}

/// Identifier checks; returns the token's actors, earliest first (`act`: the `sub`s of its
/// `act` chain, outermost first, as [`act_chain`] read them).
fn identifiers(
    ctx: &Ctx<'_>,
    c: &Claims<'_>,
    t: &Token,
    act: Option<&ActSubs<'_>>,
) -> Result<Vec<SpiffeId>, Reason> {
    let bad_id = |what: &str, text: &str, e: IdError| {
        format!(
            "{what} `{}` is not a valid workload SPIFFE ID: {e}",
            clip(text)
        )
    };
    let spiffe_claim = |name: &str| -> Result<Option<SpiffeId>, Reason> {
        match c.str(name) {
            Some(v) if looks_like_spiffe(v) => ctx
                .limits
                .workload_id(v)
                .map(Some)
                .map_err(|e| ctx.fail(ReasonCode::InvalidSpiffeId, bad_id(name, v, e))),
            _ => Ok(None),
        }
    };
    if t.svid {
        // a JWT-SVID's one actor is its `sub` (already read as a workload ID for its keys)
        let sub = c.str("sub").unwrap_or("");
        return ctx
            .limits
            .workload_id(sub)
            .map(|id| vec![id])
            .map_err(|e| ctx.fail(ReasonCode::InvalidSpiffeId, bad_id("sub", sub, e)));
    }
    let sub_id = spiffe_claim("sub")?;
    let client_id = spiffe_claim("client_id")?;
    if t.class == TokenClass::TxnToken {
        return requesting_workloads(ctx, c.get("req_wl"));
    }
    let Some(act) = act else {
        return Ok(client_id.or(sub_id).into_iter().collect());
    };
    // Outermost first in the token; earliest first here. Read outermost first, then turned
    // round; of several that are not workload IDs, the earliest is reported.
    let depth = act.len();
    let mut actors = Vec::with_capacity(depth);
    let mut earliest_bad = None;
    for (outer, s) in act.iter().copied().enumerate() {
        match ctx.limits.workload_id(s) {
            Ok(id) => actors.push(id),
            Err(e) => earliest_bad = Some((depth - 1 - outer, s, e)),
        }
    }
    if let Some((i, s, e)) = earliest_bad {
        return Err(ctx.actor_fail(i, ReasonCode::InvalidSpiffeId, bad_id("actor", s, e)));
    }
    actors.reverse();
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
            ctx.limits.workload_id(w).map_err(|e| {
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;
    use crate::cache::CacheStats;
    use base64::Engine as _;
    use custody_jose::{sign, KeySet, SigningKey};
    use serde_json::{json, Map};

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
            let keys = crate::index::key_store(p);
            let ctx = Ctx {
                pack: p,
                index: &index,
                keys: &keys,
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

    /// `Claims::get` gives what the map of the same claims gives, for every claim a token check
    /// reads (each kept in a slot of its own), for any other name, and for a name that is
    /// absent; claims read straight into their slots and through the general reader alike.
    #[test]
    fn claims_lookup_is_the_maps() {
        let names = [
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
            "x",
            "",
            "ISS",
            "subs",
            "cnf ",
            "wth",
        ];
        let mut full = Map::new();
        for (i, name) in names.iter().enumerate() {
            full.insert((*name).to_owned(), json!(i));
        }
        let empty = Map::new();
        let some: Map<String, Value> = [("sub", json!("s")), ("act", json!({"sub": "a"}))]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        // a name with an escape: the claims are read by the general reader
        let mut escaped = some.clone();
        escaped.insert("q\"uote".to_owned(), json!(1));
        let header = custody_jose::B64.encode(br#"{"alg":"EdDSA","kid":"k"}"#);
        for map in [&full, &empty, &some, &escaped] {
            let payload = custody_jose::B64.encode(serde_json::to_vec(map).unwrap());
            let token = format!("{header}.{payload}.AA");
            let mut payload = Vec::new();
            let jws = decode_members(&token, &Limits::default(), Claims::slot, &mut payload);
            let jws = jws.unwrap();
            let claims = Claims::of(&jws.claims);
            for name in names.iter().chain(&["absent", "jtI", "q\"uote"]) {
                let want = map.get(*name);
                assert_eq!(claims.str(name), want.and_then(Value::as_str), "{name}");
                assert_eq!(claims.get_str(name).is_none(), want.is_none(), "{name}");
                assert_eq!(claims.get(name), want, "{name}");
            }
            assert_eq!(jws.claims.len(), map.len());
        }
        assert_eq!(
            names.iter().filter(|n| Claims::slot(n).is_some()).count(),
            KNOWN
        );
    }
}
