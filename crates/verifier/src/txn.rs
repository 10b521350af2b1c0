//! Txn-Token replacement chains (DESIGN.md, "Chain semantics"): `tokens` whose `t0` is a
//! Txn-Token are successive replacements of one Txn-Token, every one issued by `local`. This
//! module is the one home of what makes them differ from an access-token chain: which class
//! each position takes, when an earlier replacement's times are judged, and the link between
//! two replacements.

use custody_jose::{decode, numeric_date, Limits, TokenClass};

use crate::cache::TokenCache;
use crate::reason::clip;
use crate::time::DatedAt;
use crate::verified::VerifiedToken;
use crate::{Reason, ReasonCode};

/// Which token classes a position of `tokens` (or the `txn_token`) accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// `tokens[0]`: an access token or a Txn-Token (which makes the chain a Txn-Token chain).
    First,
    Access,
    Txn,
}

/// Whether a chain whose first token is `t0` is a replacement chain.
pub(crate) fn is_replacement_chain(t0: &VerifiedToken) -> bool {
    t0.class == TokenClass::TxnToken
}

/// The class position `i` of `tokens` accepts: `t0` either kind (it decides the chain's
/// kind), then Txn-Tokens in a replacement chain and access tokens otherwise.
pub(crate) fn expect_at(i: usize, replacement_chain: bool) -> Expect {
    match (i, replacement_chain) {
        (0, _) => Expect::First,
        (_, true) => Expect::Txn,
        (_, false) => Expect::Access,
    }
}

/// When a token's times are judged: a Txn-Token followed by another is an earlier token of a
/// replacement chain, judged at its replacement's `iat` (when that can be read; the
/// replacement gets all its own checks at its own hop); every other token at the request's
/// time.
pub(crate) fn dated_at(
    t: &VerifiedToken,
    now: i64,
    next: Option<&str>,
    cache: &TokenCache,
    limits: &Limits,
) -> DatedAt {
    match next {
        Some(next) if t.class == TokenClass::TxnToken => match next_iat(next, cache, limits) {
            Some(iat) => DatedAt::Replaced(iat),
            // the replacement has no readable `iat`: it is refused at its own hop
            None => DatedAt::ReplacementUnreadable,
        },
        _ => DatedAt::Now(now),
    }
}

/// [`peek_iat`], from the token cache when the token is there (the same bytes, the same
/// answer).
fn next_iat(raw: &str, cache: &TokenCache, limits: &Limits) -> Option<i64> {
    match cache.peek(raw).as_ref().and_then(|e| e.verified()) {
        Some(v) => v.raw_iat,
        None => peek_iat(raw, limits),
    }
}

/// Reads `iat` from a token without verifying it, to date a replacement, through the same
/// reader as every date ([`numeric_date`]). `None` when the replacement has no readable `iat`:
/// it then fails its own claims check at its own hop (`missing_claim` or `malformed_token`)
/// and the chain is denied there, so no date that one reader takes and another refuses can
/// skip the expiry check.
pub(crate) fn peek_iat(raw: &str, limits: &Limits) -> Option<i64> {
    let jws = decode(raw, limits).ok()?;
    numeric_date(jws.claims.get("iat")?).ok()
}

/// Each replacement against the one before it ([`replacement_link`]).
pub(crate) fn replacement_links(tokens: &[std::sync::Arc<VerifiedToken>]) -> Result<(), Reason> {
    for (i, pair) in tokens.windows(2).enumerate() {
        let (Some(prev), Some(next)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        replacement_link(i + 1, prev, next)?;
    }
    Ok(())
}

/// Replacement `i` keeps `txn`, `sub`, the `aud` set and every `tctx` member of the one
/// before, narrows (or keeps) its scope, and extends its requesting workloads.
fn replacement_link(i: usize, prev: &VerifiedToken, next: &VerifiedToken) -> Result<(), Reason> {
    let fail = |code, m: String| Err(Reason::new(code, Some(i), m));
    if next.txn() != prev.txn() {
        return fail(
            ReasonCode::TxnMismatch,
            format!("replacement {i} changes `txn`"),
        );
    }
    if next.sub() != prev.sub() {
        return fail(
            ReasonCode::SubjectMismatch,
            format!("replacement {i} changes `sub`"),
        );
    }
    fn set(t: &VerifiedToken) -> Vec<&str> {
        let mut a: Vec<&str> = t.aud().collect();
        a.sort_unstable();
        a.dedup();
        a
    }
    if set(next) != set(prev) {
        return fail(
            ReasonCode::AudienceMismatch,
            format!("replacement {i} changes `aud`"),
        );
    }
    if let Some(extra) = crate::items::first_missing(next.scope(), prev.scope()) {
        return fail(
            ReasonCode::ScopeEscalation,
            format!("replacement {i} widens scope: `{}`", clip(extra)),
        );
    }
    if let Some(prev_ctx) = prev.tctx() {
        for (k, v) in prev_ctx {
            if next.tctx().and_then(|c| c.get(k)) != Some(v) {
                return fail(
                    ReasonCode::ChainBroken,
                    format!("replacement {i} changes `tctx.{}`", clip(k)),
                );
            }
        }
    }
    let prefix = next.actors.len() >= prev.actors.len()
        && next.actors.iter().zip(&prev.actors).all(|(a, b)| a == b);
    if !prefix {
        return fail(
            ReasonCode::ChainBroken,
            format!(
                "replacement {i} does not extend the requesting workloads of token {}",
                i - 1
            ),
        );
    }
    Ok(())
}
