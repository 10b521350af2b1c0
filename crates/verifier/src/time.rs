//! The time rule (DESIGN.md, "Each token"): one home for JWTs and Biscuit hops alike.

use custody_policy::PolicyPack;

use crate::verified::VerifiedToken;
use crate::ReasonCode;

/// The moment a token's times are judged at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DatedAt {
    /// The request's time: every token of an access chain, the last of a Txn-Token chain,
    /// every Biscuit hop.
    Now(i64),
    /// An earlier token of a Txn-Token replacement chain, at its replacement's `iat`
    /// (`txn::dated_at`).
    Replaced(i64),
    /// An earlier Txn-Token whose replacement has no readable `iat` (refused at its own hop).
    ReplacementUnreadable,
}

/// The time rule, with the pack's skew `s`: expired iff `now ≥ exp + s`; not yet valid iff
/// `now + s < nbf`; issued in the future iff `iat > now + s`; `exp − iat` at most
/// `max_lifetime`. An earlier token of a replacement chain must not be expired, skew
/// included, at its replacement's `iat`. Dates are at most year 9999 and the skew at most
/// 120 s, so the arithmetic saturates only on values no reader lets through.
pub(crate) fn time_rule(
    t: &VerifiedToken,
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
            if t.iat_claimed && t.iat > now.saturating_add(s) {
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
    // Without `iat` (a JWT-SVID may leave it out) the lifetime is what is left of it at the
    // request's time: a token good for longer than `max_lifetime` from now is too long either
    // way.
    let start = match at {
        DatedAt::Now(now) if !t.iat_claimed => now,
        _ => t.iat,
    };
    let lifetime = t.exp.saturating_sub(start);
    if lifetime > max {
        return Err((
            ReasonCode::LifetimeTooLong,
            format!("lifetime {lifetime}s exceeds {max}s"),
        ));
    }
    Ok(())
}
