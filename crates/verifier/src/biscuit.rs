//! custody's Biscuit profile: one Biscuit is a whole delegation chain.
//!
//! - The **authority block** is signed by a Biscuit root key of the domain its
//!   `issuer_domain("…")` fact names (the domain's `biscuit_keys`); it states `sub`, `txn`,
//!   `scope` (one fact per scope), `audience` (one or more), at most one `actor`, `issued_at`
//!   and `expires` (unix seconds).
//! - Each **hop** is a third-party block signed by a `biscuit_keys` key of the new actor's
//!   domain, stating exactly one `actor` and one or more `audience`; optionally narrower
//!   `scope` facts (none: the previous hop's scopes), an earlier `expires`, `issued_at`; `sub`
//!   and `txn` if present must repeat the origin's (the chain rules compare them).
//! - **First-party blocks** hold checks only.
//! - No block holds rules: what each block states is read from that block alone.
//!
//! Every hop becomes a `Token` (the authority block is `t0`, the k-th third-party block
//! `tk`), so the chain rules, reason codes and Cedar request are exactly those of a JWT chain;
//! then the Biscuit's own checks run with the request's facts. README "Biscuit profile".

mod budget;
mod issue;
mod read;

use std::time::{Duration, Instant};

use base64::Engine as _;
use biscuit_auth::builder::{
    fact, string, CheckKind, Predicate, Rule as BRule, Scope, Term as BTerm,
};
use biscuit_auth::error::{Format, Logic, RunLimit, Token as BError};
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit};
use custody_id::SpiffeId;
use custody_jose::{KeyStore, Limits, TokenClass, B64};
use custody_policy::PolicyPack;

use crate::reason::clip;
use crate::texts::Texts;
use crate::time::{time_rule, DatedAt};
use crate::verified::VerifiedToken as Token;
use crate::{Reason, ReasonCode, Request};
use read::{BlockView, ExternalKey, Fact, ReadError, Value};

pub use budget::{
    EVAL_BUDGET, EVAL_TIME_LIMIT, MAX_EXPRESSION_OPS, MAX_QUERY_BYTES, MAX_VALUE_BYTES,
};
pub use issue::{attenuate, attest, attest_code, mint, Authority, Hop, IssueError};

/// The predicates the profile gives meaning to.
pub const PROFILE_PREDICATES: [&str; 8] = [
    "issuer_domain",
    "sub",
    "txn",
    "scope",
    "audience",
    "actor",
    "issued_at",
    "expires",
];

/// Datalog limits. There are no rules, so the run derives no fact: `max_facts` is what a token
/// can hold (16 blocks of 64 facts) and the request's six, rounded up, and one iteration is
/// all a run takes. `max_time` is [`EVAL_TIME_LIMIT`]; biscuit-auth looks at it only between
/// checks, the verifier's own clock also between the queries of `every_combination_evaluates`:
/// [`EVAL_BUDGET`] is what bounds one query.
fn run_limits(max_time: Duration) -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 1_100,
        max_iterations: 1,
        max_time,
    }
}

/// The facts the verifier adds for the token's checks, one term each: `operation(action)`,
/// `resource(id)`, `resource_type(type)`, `service(audience)`, `time(now)` and `peer(id)` when
/// given. The authorizer gets these, and the budget prices exactly these.
fn request_facts(req: &Request, now: i64) -> Vec<(&'static str, BTerm)> {
    let (rtype, rid) = req.resource_or_default();
    let mut out = vec![
        ("operation", string(&req.action)),
        ("resource", string(rid)),
        ("resource_type", string(rtype)),
        ("service", string(&req.audience)),
        ("time", BTerm::Date(u64::try_from(now).unwrap_or(0))),
    ];
    if let Some(peer) = &req.peer {
        out.push(("peer", string(peer)));
    }
    out
}

/// Each request fact's name and the size of its term, as the budget weighs them (a string
/// its length, a date 8 bytes).
fn fact_sizes(facts: &[(&'static str, BTerm)]) -> Vec<(&'static str, u64)> {
    facts
        .iter()
        .map(|(name, term)| {
            let size = match term {
                BTerm::Str(s) => s.len() as u64,
                _ => 8,
            };
            (*name, size)
        })
        .collect()
}

/// Whether a sole element of `tokens` takes the Biscuit path: no `.` (a compact JWS has two).
pub(crate) fn is_sole_biscuit(req: &Request) -> Option<&str> {
    match req.tokens.as_slice() {
        [one] if !one.contains('.') => Some(one.as_str()),
        _ => None,
    }
}

/// Whether `raw` (in a request with other tokens) decodes as a Biscuit.
pub(crate) fn looks_like_biscuit(raw: &str, limits: &Limits) -> bool {
    !raw.contains('.')
        && raw.len() <= limits.token_bytes
        && b64(raw).is_some_and(|b| read::decode(&b, limits).is_ok())
}

/// A Biscuit among other tokens: a Biscuit is a whole chain.
pub(crate) fn not_alone(hop: usize) -> Reason {
    Reason::new(
        ReasonCode::WrongTokenType,
        Some(hop),
        "a Biscuit is a whole delegation chain: it must be the only element of `tokens`",
    )
}

/// base64url, with or without `=` padding (biscuit-auth pads), canonical trailing bits.
fn b64(raw: &str) -> Option<Vec<u8>> {
    let body = raw.trim_end_matches('=');
    if raw.len() - body.len() > 2 || body.is_empty() {
        return None;
    }
    B64.decode(body).ok()
}

/// A token that does not decode as a Biscuit of the profile.
fn read_error(e: ReadError) -> Reason {
    match e {
        ReadError::Malformed(m) => at0(ReasonCode::MalformedToken, m),
        ReadError::TooLarge(m) => at0(ReasonCode::TokenTooLarge, m),
    }
}

fn at0(code: ReasonCode, message: impl Into<String>) -> Reason {
    Reason::new(code, Some(0), message)
}

/// Every single-token check of the profile; the hops as tokens, and the verified Biscuit.
pub(crate) fn check(
    pack: &PolicyPack,
    keys: &KeyStore,
    limits: &Limits,
    raw: &str,
    req: &Request,
    now: i64,
) -> Result<(Vec<Token>, Biscuit), Reason> {
    if raw.len() > limits.token_bytes {
        return Err(at0(
            ReasonCode::TokenTooLarge,
            format!("token is larger than {} bytes", limits.token_bytes),
        ));
    }
    let bytes = b64(raw).ok_or_else(|| {
        at0(
            ReasonCode::MalformedToken,
            "neither a compact JWS nor a base64url Biscuit",
        )
    })?;
    let blocks = read::decode(&bytes, limits).map_err(read_error)?;
    check_budget(&blocks, req, now)?;
    let authority = blocks
        .first()
        .ok_or_else(|| at0(ReasonCode::MalformedToken, "no authority block"))?;
    let domain = issuer_domain(pack, authority)?;
    let biscuit = verify_signatures(pack, keys, domain, &bytes)?;
    let tokens = hops(pack, keys, limits, &blocks, domain, now)?;
    Ok((tokens, biscuit))
}

/// The authority block's `issuer_domain`: a declared domain's index.
fn issuer_domain(pack: &PolicyPack, authority: &BlockView) -> Result<usize, Reason> {
    let name = single_str(authority, "issuer_domain", Some(0))?
        .ok_or_else(|| at0(ReasonCode::MissingClaim, "missing fact `issuer_domain`"))?;
    pack.domains
        .iter()
        .position(|d| d.name.as_str() == name)
        .ok_or_else(|| {
            at0(
                ReasonCode::UnknownIssuer,
                format!("`issuer_domain` `{}` is not a declared domain", clip(&name)),
            )
        })
}

/// Verifies every signature with `domain`'s Biscuit root keys, trying each in turn (a domain
/// has a handful; `root_key_id` is not used, as a `kid` is a string). Only that domain's keys
/// are tried: a key of another domain never speaks for this one.
fn verify_signatures(
    pack: &PolicyPack,
    keys: &KeyStore,
    domain: usize,
    bytes: &[u8],
) -> Result<Biscuit, Reason> {
    let d = pack
        .domains
        .get(domain)
        .ok_or_else(|| at0(ReasonCode::UnknownIssuer, "no such domain"))?;
    let roots = keys.domain(domain);
    let roots = roots
        .as_ref()
        .map(|k| k.biscuit().keys())
        .unwrap_or_default();
    if roots.is_empty() {
        return Err(at0(
            ReasonCode::UnknownKey,
            format!("domain `{}` declares no `biscuit_keys`", d.name),
        ));
    }
    for key in roots {
        let Some(root) = key.ed25519().and_then(|k| {
            biscuit_auth::PublicKey::from_bytes(&k.to_bytes(), biscuit_auth::Algorithm::Ed25519)
                .ok()
        }) else {
            continue;
        };
        match Biscuit::from(bytes, root) {
            Ok(b) => return Ok(b),
            Err(BError::Format(Format::Signature(_))) => continue,
            Err(e) => return Err(at0(ReasonCode::MalformedToken, biscuit_error(&e))),
        }
    }
    Err(at0(
        ReasonCode::BadSignature,
        format!(
            "the Biscuit's signatures do not verify with the Biscuit root keys of `{}`",
            d.name
        ),
    ))
}

fn biscuit_error(e: &BError) -> String {
    clip(&format!("not a valid Biscuit: {e:?}"))
}

/// Every block in order: the authority block and each third-party block become a hop token;
/// first-party blocks may hold checks only.
fn hops(
    pack: &PolicyPack,
    keys: &KeyStore,
    limits: &Limits,
    blocks: &[BlockView],
    domain: usize,
    now: i64,
) -> Result<Vec<Token>, Reason> {
    let mut tokens: Vec<Token> = Vec::new();
    for block in blocks {
        let hop = tokens.len();
        match (block.index, block.external, tokens.last()) {
            (0, _, _) => tokens.push(authority_token(limits, block, domain)?),
            (_, None, _) => first_party(block)?,
            (_, Some(key), Some(prev)) => {
                let t = hop_token(pack, keys, limits, block, key, prev, hop)?;
                tokens.push(t);
            }
            (_, Some(_), None) => {
                return Err(at0(ReasonCode::MalformedToken, "no authority block"));
            }
        }
        if let Some(t) = tokens.last().filter(|_| tokens.len() > hop) {
            check_times(pack, t, hop, now)?;
        }
    }
    Ok(tokens)
}

fn no_rules(block: &BlockView, hop: Option<usize>) -> Result<(), Reason> {
    match block.rule_heads.first() {
        None => Ok(()),
        Some(head) => Err(Reason::new(
            ReasonCode::MalformedToken,
            hop,
            format!(
                "block {} has a rule (`{}`): custody's Biscuit profile has facts and checks only",
                block.index,
                clip(head)
            ),
        )),
    }
}

/// A first-party (attenuation) block: checks only. A profile fact or rule in one would be a
/// self-asserted hop (`chain_broken`); any other fact or rule is `malformed_token`.
fn first_party(block: &BlockView) -> Result<(), Reason> {
    let names = block
        .facts
        .iter()
        .map(|f| f.name.as_str())
        .chain(block.rule_heads.iter().map(String::as_str));
    let mut other = None;
    for name in names {
        if PROFILE_PREDICATES.contains(&name) {
            return Err(Reason::new(
                ReasonCode::ChainBroken,
                None,
                format!(
                    "first-party block {} asserts `{name}`: only a block signed by a domain key may add a hop",
                    block.index
                ),
            ));
        }
        other = other.or(Some(name));
    }
    match other {
        None => Ok(()),
        Some(name) => Err(Reason::new(
            ReasonCode::MalformedToken,
            None,
            format!(
                "first-party block {} has `{}`: first-party blocks may hold checks only",
                block.index,
                clip(name)
            ),
        )),
    }
}

fn authority_token(limits: &Limits, block: &BlockView, domain: usize) -> Result<Token, Reason> {
    let hop = Some(0);
    no_rules(block, hop)?;
    let sub = required(single_str(block, "sub", hop)?, "sub", hop)?;
    let txn = single_str(block, "txn", hop)?;
    let scope = strings(block, "scope", hop)?;
    let aud = strings(block, "audience", hop)?;
    if aud.is_empty() {
        return Err(missing("audience", hop));
    }
    let iat = required(single_date(block, "issued_at", hop)?, "issued_at", hop)?;
    let exp = required(single_date(block, "expires", hop)?, "expires", hop)?;
    let actors = match strings(block, "actor", hop)?.as_slice() {
        [] => Vec::new(),
        [one] => vec![actor_id(one, limits, 0)?],
        _ => {
            return Err(at0(
                ReasonCode::MalformedToken,
                "the authority block names more than one `actor`",
            ))
        }
    };
    Ok(Token {
        class: TokenClass::Access,
        domain,
        // a Biscuit has no `jti`: revoke its actors, origin or `txn` instead
        texts: Texts::new(
            &sub,
            None,
            txn.as_deref(),
            None,
            aud.iter().map(String::as_str),
            scope.iter().map(String::as_str),
        ),
        iat,
        exp,
        nbf: None,
        actors,
        tctx: None,
        svid: false,
        iat_claimed: true,
        cnf: None,
    })
}

fn actor_id(text: &str, limits: &Limits, hop: usize) -> Result<SpiffeId, Reason> {
    limits.workload_id(text).map_err(|e| {
        Reason::new(
            ReasonCode::InvalidSpiffeId,
            Some(hop),
            format!(
                "actor `{}` is not a valid workload SPIFFE ID: {e}",
                clip(text)
            ),
        )
    })
}

/// The domains whose Biscuit keys (their current set in `keys`) hold `key`, by index.
fn key_domains(keys: &KeyStore, key: &[u8; 32]) -> Vec<usize> {
    let holds = |i: &usize| {
        keys.with_domain(*i, |d| {
            d.biscuit()
                .keys()
                .iter()
                .any(|k| k.ed25519().is_some_and(|e| &e.to_bytes() == key))
        })
        .unwrap_or(false)
    };
    (0..keys.len()).filter(holds).collect()
}

/// A third-party block: one hop, attested by the domain whose key signed it.
fn hop_token(
    pack: &PolicyPack,
    keys: &KeyStore,
    limits: &Limits,
    block: &BlockView,
    key: ExternalKey,
    prev: &Token,
    hop: usize,
) -> Result<Token, Reason> {
    let at = Some(hop);
    let fail = |code, m: String| Err(Reason::new(code, at, m));
    let ExternalKey::Ed25519(key) = key else {
        return fail(
            ReasonCode::AlgNotAllowed,
            format!(
                "block {} is signed with a key that is not Ed25519",
                block.index
            ),
        );
    };
    let signers = key_domains(keys, &key);
    if signers.is_empty() {
        return fail(
            ReasonCode::UnknownKey,
            format!(
                "block {} is signed by a key that no domain lists in `biscuit_keys`",
                block.index
            ),
        );
    }
    no_rules(block, at)?;
    if block.facts.iter().any(|f| f.name == "issuer_domain") {
        return fail(
            ReasonCode::MalformedToken,
            format!("block {}: a hop's domain is its signing key's; `issuer_domain` belongs to the authority block", block.index),
        );
    }
    let actor = match strings(block, "actor", at)?.as_slice() {
        [one] => actor_id(one, limits, hop)?,
        other => {
            return fail(
                ReasonCode::ChainBroken,
                format!(
                    "block {} must name exactly one new `actor`, not {}",
                    block.index,
                    other.len()
                ),
            )
        }
    };
    // The actor's own domain when it holds the key; otherwise the key speaks for another
    // domain, and vouching will say `issuer_not_in_chain`.
    let own = pack
        .domains
        .iter()
        .position(|d| d.name.as_str() == actor.trust_domain_str());
    let domain = match own.filter(|i| signers.contains(i)) {
        Some(i) => i,
        None => signers.first().copied().unwrap_or_default(),
    };
    let aud = strings(block, "audience", at)?;
    if aud.is_empty() {
        return Err(missing("audience", at));
    }
    let scope = strings(block, "scope", at)?;
    let mut actors = prev.actors.clone();
    actors.push(actor);
    let sub = single_str(block, "sub", at)?;
    let txn = single_str(block, "txn", at)?;
    // no `scope` in the block: the previous hop's
    let scope: Vec<&str> = match scope.is_empty() {
        true => prev.scope().collect(),
        false => scope.iter().map(String::as_str).collect(),
    };
    let texts = Texts::new(
        sub.as_deref().unwrap_or_else(|| prev.sub()),
        // a Biscuit has no `jti`: revoke its actors, origin or `txn` instead
        None,
        txn.as_deref().or_else(|| prev.txn()),
        None,
        aud.iter().map(String::as_str),
        scope.iter().copied(),
    );
    Ok(Token {
        class: TokenClass::Access,
        domain,
        texts,
        iat: single_date(block, "issued_at", at)?.unwrap_or(prev.iat),
        exp: single_date(block, "expires", at)?.unwrap_or(prev.exp),
        nbf: None,
        actors,
        tctx: None,
        svid: false,
        iat_claimed: true,
        cnf: None,
    })
}

/// A hop's times, by the one time rule every token follows (`time::time_rule`).
fn check_times(pack: &PolicyPack, t: &Token, hop: usize, now: i64) -> Result<(), Reason> {
    time_rule(t, DatedAt::Now(now), pack).map_err(|(code, m)| Reason::new(code, Some(hop), m))
}

fn missing(name: &str, hop: Option<usize>) -> Reason {
    Reason::new(
        ReasonCode::MissingClaim,
        hop,
        format!("missing fact `{name}`"),
    )
}

fn required<T>(v: Option<T>, name: &str, hop: Option<usize>) -> Result<T, Reason> {
    v.ok_or_else(|| missing(name, hop))
}

fn facts<'b>(block: &'b BlockView, name: &'b str) -> impl Iterator<Item = &'b Fact> + 'b {
    block.facts.iter().filter(move |f| f.name == name)
}

fn wrong(block: &BlockView, name: &str, want: &str, hop: Option<usize>) -> Reason {
    Reason::new(
        ReasonCode::MalformedToken,
        hop,
        format!("block {}: fact `{name}` must have {want}", block.index),
    )
}

/// Every `name(<string>)` fact, in order, duplicates dropped.
fn strings(block: &BlockView, name: &str, hop: Option<usize>) -> Result<Vec<String>, Reason> {
    let mut all: Vec<&str> = Vec::new();
    for f in facts(block, name) {
        match f.terms.as_slice() {
            [Value::Str(s)] => all.push(s),
            _ => return Err(wrong(block, name, "one string", hop)),
        }
    }
    Ok(crate::items::unique(all)
        .into_iter()
        .map(str::to_owned)
        .collect())
}

fn single_str(block: &BlockView, name: &str, hop: Option<usize>) -> Result<Option<String>, Reason> {
    let mut all = strings(block, name, hop)?;
    if all.len() > 1 {
        return Err(wrong(block, name, "one value per block", hop));
    }
    Ok(all.pop())
}

/// A `name(<integer or date>)` fact: unix seconds from 0 to year 9999.
fn single_date(block: &BlockView, name: &str, hop: Option<usize>) -> Result<Option<i64>, Reason> {
    let mut found = None;
    for f in facts(block, name) {
        match f.terms.as_slice() {
            [Value::Int(n)] if custody_jose::in_date_range(*n) && found.is_none() => {
                found = Some(*n)
            }
            _ => {
                return Err(wrong(
                    block,
                    name,
                    "one value, whole seconds from 0 to year 9999",
                    hop,
                ))
            }
        }
    }
    Ok(found)
}

/// Refuses operators whose cost the budget cannot bound (regular expressions are compiled on
/// every evaluation; closures nest), and tokens whose checks could cost more than
/// [`EVAL_BUDGET`] or build values over [`MAX_VALUE_BYTES`] / [`MAX_QUERY_BYTES`], before any
/// evaluation (`budget`).
fn check_budget(blocks: &[BlockView], req: &Request, now: i64) -> Result<u64, Reason> {
    budget::check(blocks, &fact_sizes(&request_facts(req, now))).map_err(|r| match r {
        budget::Refusal::Operator { block, op } => Reason::new(
            ReasonCode::MalformedToken,
            None,
            format!("block {block}: operator {op} is not part of custody's Biscuit profile"),
        ),
        budget::Refusal::TooCostly { why, .. } => Reason::new(ReasonCode::TokenTooLarge, None, why),
    })
}

/// The budget's estimate of the work a token's checks may take for `req`, in work units, or the
/// denial the decision gives when the budget refuses them: the model the decision itself applies, for measurements and the fuzz
/// oracles (`crates/oracles`) that hold decisions to it.
pub fn work_estimate(raw: &str, req: &Request, limits: &Limits) -> Result<u64, Reason> {
    let bytes = b64(raw).ok_or_else(|| at0(ReasonCode::MalformedToken, "not base64url"))?;
    let blocks = read::decode(&bytes, limits).map_err(read_error)?;
    check_budget(&blocks, req, req.now.unwrap_or_default())
}

/// After the checks passed: every `check if` query with expressions is evaluated again on every
/// combination of the token's facts, and any evaluation error denies.
///
/// Why: biscuit-auth stops a `check if` at the first fact combination that either matches or
/// fails to evaluate (an ill-typed expression), and meets them in an order seeded per
/// authorizer (its facts live in hash sets). A check that is ill-typed for some combinations
/// could then pass in one run and fail in the next: the same request allowed, then denied. A
/// full query (`query_all`) visits every combination, so an error is met on every run. It sees
/// the authority block, every third-party block and the request's facts (first-party blocks
/// hold no facts in custody's profile): a superset of any one check's scope, so a check that is
/// ill-typed on facts outside its own scope also denies (the safer reading).
fn every_combination_evaluates(
    a: &mut biscuit_auth::Authorizer,
    biscuit: &Biscuit,
    start: Instant,
) -> Result<(), BError> {
    let (_, _, checks, _) = a.dump();
    let queries: Vec<BRule> = checks
        .into_iter()
        .filter(|c| matches!(c.kind, CheckKind::One))
        .flat_map(|c| c.queries)
        .filter(|q| !q.expressions.is_empty())
        .collect();
    if queries.is_empty() {
        return Ok(());
    }
    let mut scopes = vec![Scope::Authority];
    scopes.extend(
        biscuit
            .external_public_keys()
            .into_iter()
            .flatten()
            .map(Scope::PublicKey),
    );
    for q in queries {
        let rule = BRule::new(
            Predicate::new(
                "custody_every_combination".to_owned(),
                vec![BTerm::Bool(true)],
            ),
            q.body,
            q.expressions,
            scopes.clone(),
        );
        in_time(start)?;
        a.query_all::<BRule, (bool,), BError>(rule)?;
    }
    in_time(start)
}

/// The verifier's own clock: [`EVAL_TIME_LIMIT`] since `start`.
fn in_time(start: Instant) -> Result<(), BError> {
    if start.elapsed() > EVAL_TIME_LIMIT {
        return Err(BError::RunLimit(RunLimit::Timeout));
    }
    Ok(())
}

/// The Biscuit's own checks, with the request's facts: `operation(action)`, `resource(id)`,
/// `resource_type(type)`, `service(audience)`, `time(now)` and `peer(id)` when given.
pub(crate) fn authorize(biscuit: &Biscuit, req: &Request, now: i64) -> Result<(), Reason> {
    let fail = |code, m: String| Reason::new(code, None, m);
    let start = Instant::now();
    let build = || -> Result<biscuit_auth::Authorizer, BError> {
        let mut b = AuthorizerBuilder::new();
        for (name, term) in request_facts(req, now) {
            b = b.fact(fact(name, &[term]))?;
        }
        b.policy("allow if true")?
            .set_limits(run_limits(EVAL_TIME_LIMIT))
            .build(biscuit)
    };
    let result = build().and_then(|mut a| {
        in_time(start)?;
        a.authorize()?;
        in_time(start)?;
        every_combination_evaluates(&mut a, biscuit, start)
    });
    match result {
        Ok(_) => Ok(()),
        Err(BError::FailedLogic(Logic::Unauthorized { checks, .. })) => {
            let what = checks
                .first()
                .map_or_else(|| "a check".to_owned(), |c| clip(&c.to_string()));
            Err(fail(
                ReasonCode::PolicyDenied,
                format!("Biscuit check failed: {what}"),
            ))
        }
        Err(BError::RunLimit(RunLimit::Timeout)) => Err(fail(
            ReasonCode::TokenTooLarge,
            format!(
                "the Biscuit's checks hit the evaluation time limit ({} ms)",
                EVAL_TIME_LIMIT.as_millis()
            ),
        )),
        Err(BError::RunLimit(e)) => Err(fail(
            ReasonCode::TokenTooLarge,
            format!("the Biscuit's checks hit an evaluation limit: {e}"),
        )),
        Err(e) => Err(fail(
            ReasonCode::PolicyDenied,
            format!(
                "the Biscuit's checks could not be evaluated: {}",
                clip(&e.to_string())
            ),
        )),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    #[test]
    fn base64_forms() {
        assert_eq!(b64("AAAA").unwrap(), vec![0, 0, 0]);
        assert_eq!(b64("AA==").unwrap(), vec![0]);
        assert_eq!(b64("AA").unwrap(), vec![0]);
        assert!(b64("AA===").is_none());
        assert!(b64("").is_none());
        assert!(b64("A+A=").is_none());
    }
}
