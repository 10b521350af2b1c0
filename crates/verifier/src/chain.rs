//! Checks across tokens: audience, sender binding, links, actors, scope, federation path and
//! vouching, in DESIGN.md's order. Every token here already passed its own checks.

use std::sync::Arc;

use smallvec::SmallVec;

use custody_id::{looks_like_spiffe, SpiffeId};
use custody_jose::TokenClass;
use custody_policy::PolicyPack;

use crate::decision::ChainSummary;
use crate::reason::clip;
use crate::verified::{VerifiedChain, VerifiedToken as Token};
use crate::{Reason, ReasonCode, Request};

/// The verified tokens of one request and what follows from them.
pub(crate) struct Chain<'a> {
    pub pack: &'a PolicyPack,
    pub req: &'a Request,
    pub tokens: &'a [Arc<Token>],
    pub txn_token: Option<&'a Token>,
    pub peer: Option<SpiffeId>,
    /// `tokens` are Txn-Tokens (a replacement chain).
    pub txn_chain: bool,
    /// The federation path, as the steps its domains come from.
    pub path: SmallVec<[Step; 8]>,
    /// A token of the chain is bound to a key its presenter proved (`proof.rs`): sender
    /// binding holds without a `peer`.
    pub key_bound: bool,
}

/// Where a domain on the federation path comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// `t0`'s issuer, when `t0` has no actor.
    Issuer,
    /// Actor `j`.
    Actor(usize),
    /// The pack's `local` domain.
    Local,
}

type Check = Result<(), Reason>;

impl<'a> Chain<'a> {
    /// The chain of `verified`'s tokens; `None` when there are none.
    pub fn new(
        pack: &'a PolicyPack,
        req: &'a Request,
        verified: &'a VerifiedChain,
        peer: Option<SpiffeId>,
    ) -> Option<Self> {
        let tokens = verified.tokens.as_slice();
        let t0 = tokens.first()?;
        let presented = tokens.last()?;
        let mut path = SmallVec::with_capacity(presented.actors.len() + 2);
        if t0.actors.is_empty() {
            path.push(Step::Issuer);
        }
        path.extend((0..presented.actors.len()).map(Step::Actor));
        path.push(Step::Local);
        Some(Chain {
            pack,
            req,
            tokens,
            txn_token: verified.txn_token.as_deref(),
            peer,
            txn_chain: verified.replacement,
            path,
            key_bound: false,
        })
    }

    fn t0(&self) -> Option<&Token> {
        self.tokens.first().map(|t| &**t)
    }

    fn presented(&self) -> Option<&Token> {
        self.tokens.last().map(|t| &**t)
    }

    /// The domain a step of the path stands for.
    fn step_domain(&self, step: Step) -> &str {
        match step {
            Step::Issuer => self.t0().map_or("", |t| domain_name(self.pack, t.domain)),
            Step::Actor(j) => self
                .presented()
                .and_then(|t| t.actors.get(j))
                .map_or("", SpiffeId::trust_domain_str),
            Step::Local => self.pack.local.as_str(),
        }
    }

    fn presented_hop(&self) -> Option<usize> {
        Some(self.tokens.len().saturating_sub(1))
    }

    pub fn origin_domain(&self) -> &str {
        self.t0().map_or("", |t| domain_name(self.pack, t.domain))
    }

    /// The current actor (Cedar's principal), if the chain has one.
    pub fn current_actor(&self) -> Option<&SpiffeId> {
        self.presented().and_then(Token::current_actor)
    }

    /// How many distinct domains the path has.
    fn domain_count(&self) -> usize {
        self.path
            .iter()
            .enumerate()
            .filter(|&(i, &step)| {
                let d = self.step_domain(step);
                let before = self.path.get(..i).unwrap_or_default();
                !before.iter().any(|&b| self.step_domain(b) == d)
            })
            .count()
    }

    /// Whether `domain` is on the path.
    fn on_path(&self, domain: &str) -> bool {
        self.path
            .iter()
            .any(|&step| self.step_domain(step) == domain)
    }

    /// The path's distinct domains in path order, each as `own` makes it (the summary's list
    /// is built owned at once, with no borrowed list first).
    fn distinct_domains<'s, T: AsRef<str>>(&'s self, own: impl Fn(&'s str) -> T) -> Vec<T> {
        let mut out: Vec<T> = Vec::with_capacity(self.path.len());
        for step in &self.path {
            let d = self.step_domain(*step);
            if !out.iter().any(|o| o.as_ref() == d) {
                out.push(own(d));
            }
        }
        out
    }

    pub fn summary(&self) -> ChainSummary {
        let presented = self.presented();
        let actors: Vec<String> = presented
            .map(|t| t.actors.iter().map(|a| a.as_str().to_owned()).collect())
            .unwrap_or_default();
        let domains = self.distinct_domains(str::to_owned);
        let (origin_domain, sub) = (self.origin_domain(), self.t0().map_or("", Token::sub));
        let mut origin = String::with_capacity(origin_domain.len() + 1 + sub.len());
        origin.push_str(origin_domain);
        origin.push('|');
        origin.push_str(sub);
        ChainSummary {
            origin,
            depth: actors.len(),
            actors,
            cross_domain: domains.len() > 1,
            domains,
            scopes: presented.map(|t| t.scope().to_vec()).unwrap_or_default(),
            txn: self
                .t0()
                .and_then(Token::txn)
                .map(str::to_owned)
                .unwrap_or_default(),
        }
    }

    /// `txn` as Cedar sees it: only a `local` Txn-Token's.
    pub fn local_txn(&self) -> &str {
        fn from_local<'t>(pack: &PolicyPack, t: &'t Token) -> Option<&'t str> {
            (domain_name(pack, t.domain) == pack.local.as_str())
                .then_some(t.txn())
                .flatten()
        }
        let pack = self.pack;
        self.txn_token
            .and_then(|t| from_local(pack, t))
            .or_else(|| {
                self.txn_chain
                    .then(|| self.t0().and_then(|t| from_local(pack, t)))
                    .flatten()
            })
            .unwrap_or_default()
    }

    /// Every cross-token check, in order, the caller's proofs (`prove`, which sets the
    /// proven peer) run after the audience and before sender binding.
    pub fn check(
        &mut self,
        prove: impl FnOnce(&Self) -> Result<crate::proof::Proven, Reason>,
    ) -> Check {
        self.audience()?;
        let proven = prove(self)?;
        self.peer = proven.peer;
        self.key_bound = proven.key_bound;
        self.sender_binding()?;
        self.links()?;
        self.actors()?;
        self.scope()?;
        self.federation()?;
        self.vouching()
    }

    fn audience(&self) -> Check {
        let Some(p) = self.presented() else {
            return Ok(());
        };
        let local = self.pack.local.as_str();
        if self.txn_chain {
            if !p.aud().contains(local) {
                return Err(Reason::new(
                    ReasonCode::AudienceMismatch,
                    self.presented_hop(),
                    format!("Txn-Token `aud` does not contain the local domain `{local}`"),
                ));
            }
            let aud = &self.req.audience;
            if looks_like_spiffe(aud) {
                let ok = SpiffeId::parse(aud).is_ok_and(|id| id.member_of(&self.pack.local));
                if !ok {
                    return Err(Reason::new(
                        ReasonCode::AudienceMismatch,
                        self.presented_hop(),
                        format!(
                            "audience `{}` is not a SPIFFE ID in the local domain `{local}`",
                            clip(aud)
                        ),
                    ));
                }
            }
        } else if !p.aud().contains(&self.req.audience) {
            return Err(Reason::new(
                ReasonCode::AudienceMismatch,
                self.presented_hop(),
                format!(
                    "presented token is not for audience `{}`",
                    clip(&self.req.audience)
                ),
            ));
        }
        match &self.txn_token {
            Some(t) if !t.aud().contains(local) => Err(Reason::new(
                ReasonCode::AudienceMismatch,
                None,
                format!("`txn_token` `aud` does not contain the local domain `{local}`"),
            )),
            _ => Ok(()),
        }
    }

    fn sender_binding(&self) -> Check {
        let (caller, hop) = match &self.txn_token {
            Some(t) => (t.current_actor(), None),
            None => (self.current_actor(), self.presented_hop()),
        };
        match (&self.peer, caller) {
            (Some(peer), Some(caller)) if peer == caller => Ok(()),
            (Some(peer), Some(caller)) => Err(Reason::new(
                ReasonCode::SenderMismatch,
                hop,
                format!("peer `{peer}` is not the caller `{caller}`"),
            )),
            (Some(peer), None) => Err(Reason::new(
                ReasonCode::SenderMismatch,
                hop,
                format!("peer `{peer}` presented a token that names no actor"),
            )),
            // a token bound to a key its presenter proved is no bearer token
            (None, _) if self.key_bound && !self.txn_chain => Ok(()),
            (None, _) if self.pack.chain.require_sender_binding || self.txn_chain => {
                Err(Reason::new(
                    ReasonCode::SenderBindingRequired,
                    hop,
                    if self.txn_chain {
                        "a Txn-Token chain needs the caller's authenticated `peer`"
                    } else {
                        "the pack requires sender binding and the request has no `peer`"
                    },
                ))
            }
            (None, _) => Ok(()),
        }
    }

    fn links(&self) -> Check {
        if self.txn_chain {
            crate::txn::replacement_links(self.tokens)?;
        } else if self.tokens.len() > 1 {
            self.explicit_links()?;
        }
        self.txn_token_link()
    }

    fn explicit_links(&self) -> Check {
        if let Some(i) = self.tokens.iter().position(|t| t.txn().is_none()) {
            return Err(Reason::new(
                ReasonCode::MissingClaim,
                Some(i),
                "missing claim `txn`: every token of an explicit chain carries the transaction id",
            ));
        }
        let t0_sub = self.t0().map_or("", Token::sub);
        for (i, pair) in self.tokens.windows(2).enumerate() {
            let (Some(prev), Some(next)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            explicit_link(self.pack, i + 1, prev, next, t0_sub)?;
        }
        Ok(())
    }

    fn txn_token_link(&self) -> Check {
        let (Some(t), Some(t0)) = (&self.txn_token, self.t0()) else {
            return Ok(());
        };
        if t.sub() != t0.sub() {
            return Err(Reason::new(
                ReasonCode::SubjectMismatch,
                None,
                "`txn_token` `sub` differs from the origin token's",
            ));
        }
        let Some(t0_txn) = t0.txn() else {
            return Err(Reason::new(
                ReasonCode::MissingClaim,
                Some(0),
                "missing claim `txn`: the origin token must carry the transaction the `txn_token` continues",
            ));
        };
        if t.txn() != Some(t0_txn) {
            return Err(Reason::new(
                ReasonCode::TxnMismatch,
                None,
                "`txn_token` `txn` differs from the origin token's",
            ));
        }
        Ok(())
    }

    /// The hop for a rule about actor `j` of the presented chain.
    fn actor_hop(&self, j: usize) -> Option<usize> {
        if self.tokens.len() == 1 {
            return Some(j);
        }
        self.tokens.iter().position(|t| t.actors.len() > j)
    }

    fn actors(&self) -> Check {
        let Some(p) = self.presented() else {
            return Ok(());
        };
        let max = self.pack.chain.max_depth;
        if p.actors.len() > max {
            return Err(Reason::new(
                ReasonCode::DepthExceeded,
                self.actor_hop(max),
                format!("{} actors, more than `max_depth` {max}", p.actors.len()),
            ));
        }
        for (j, a) in p.actors.iter().enumerate() {
            if p.actors.iter().take(j).any(|b| b == a) {
                return Err(Reason::new(
                    ReasonCode::DelegationLoop,
                    self.actor_hop(j),
                    format!("actor `{a}` appears twice"),
                ));
            }
        }
        Ok(())
    }

    fn scope(&self) -> Check {
        let action = &self.req.action;
        // a JWT-SVID carries no scope: Cedar alone decides what it may do
        if let Some(p) = self.presented().filter(|p| !p.svid) {
            if !p.scope().contains(action) {
                return Err(Reason::new(
                    ReasonCode::ScopeMissing,
                    self.presented_hop(),
                    format!(
                        "action `{}` is not in the presented token's scope",
                        clip(action)
                    ),
                ));
            }
        }
        match &self.txn_token {
            Some(t) if !t.scope().contains(action) => Err(Reason::new(
                ReasonCode::ScopeMissing,
                None,
                format!("action `{}` is not in the `txn_token` scope", clip(action)),
            )),
            _ => Ok(()),
        }
    }

    fn step_hop(&self, step: Step) -> Option<usize> {
        match step {
            Step::Actor(j) => self.actor_hop(j),
            Step::Issuer | Step::Local => None,
        }
    }

    fn federation(&self) -> Check {
        let action = &self.req.action;
        for pair in self.path.windows(2) {
            let (Some(&from), Some(&step)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            let (from, to) = (self.step_domain(from), self.step_domain(step));
            if from == to {
                continue;
            }
            let hop = self.step_hop(step);
            match self.pack.federation_rule(from, to) {
                None => {
                    return Err(Reason::new(
                        ReasonCode::DomainNotFederated,
                        hop,
                        format!("no `federate \"{from}\" -> \"{to}\"` rule"),
                    ))
                }
                Some(rule) if !rule.scopes.allows(action) => {
                    return Err(Reason::new(
                        ReasonCode::FederationScopeDenied,
                        hop,
                        format!(
                            "`federate \"{from}\" -> \"{to}\"` does not carry `{}`",
                            clip(action)
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        let max = self.pack.chain.max_domains;
        let count = self.domain_count();
        if count > max {
            return Err(Reason::new(
                ReasonCode::TooManyDomains,
                None,
                format!("{count} domains on the path, more than `max_domains` {max}"),
            ));
        }
        Ok(())
    }

    /// A domain speaks only for what it owns (DESIGN.md, "Vouching").
    fn vouching(&self) -> Check {
        let local = self.pack.local.as_str();
        let on_path = |d: &str| self.on_path(d);
        for (i, t) in self.tokens.iter().enumerate() {
            // the actors counted so far: those of the tokens before this one
            let earlier = self.tokens.get(..i).unwrap_or_default();
            vouch(self.pack, on_path, earlier, Some(i), t)?;
            if i == 0 {
                let issuer = domain_name(self.pack, t.domain);
                if issuer != local && looks_like_spiffe(t.sub()) {
                    let owned =
                        SpiffeId::parse(t.sub()).is_ok_and(|s| s.trust_domain_str() == issuer);
                    if !owned {
                        return Err(Reason::new(
                            ReasonCode::IssuerNotInChain,
                            Some(0),
                            format!(
                                "`{issuer}` vouches for subject `{}` of another domain",
                                clip(t.sub())
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(t) = &self.txn_token {
            vouch(self.pack, on_path, self.tokens, None, t)?;
        }
        Ok(())
    }
}

fn domain_name(pack: &PolicyPack, index: usize) -> &str {
    pack.domains.get(index).map_or("", |d| d.name.as_str())
}

/// Whether token `t` (at `hop`) vouches only for what its issuer owns: its issuer on the path
/// (`on_path`), and each earlier actor of another domain counted by one of the tokens before
/// it (`before`).
fn vouch(
    pack: &PolicyPack,
    on_path: impl Fn(&str) -> bool,
    before: &[Arc<Token>],
    hop: Option<usize>,
    t: &Token,
) -> Check {
    let issuer = domain_name(pack, t.domain);
    let local = pack.local.as_str();
    let fail = |m: String| Err(Reason::new(ReasonCode::IssuerNotInChain, hop, m));
    if !on_path(issuer) {
        return fail(format!(
            "issuer domain `{issuer}` is not on the federation path"
        ));
    }
    if t.class == TokenClass::TxnToken {
        if issuer != local {
            return fail(format!(
                "a Txn-Token must be issued by the local domain, not `{issuer}`"
            ));
        }
        return Ok(());
    }
    if issuer == local {
        return Ok(());
    }
    if let Some(current) = t.current_actor() {
        if current.trust_domain_str() != issuer {
            return fail(format!(
                "`{issuer}` issued a token making `{current}` of another domain current"
            ));
        }
    }
    let earlier = t.actors.len().saturating_sub(1);
    for a in t.actors.iter().take(earlier) {
        let counted = || before.iter().any(|b| b.actors.contains(a));
        if a.trust_domain_str() != issuer && !counted() {
            return fail(format!("`{issuer}` vouches for earlier actor `{a}` that no token of its own domain counted"));
        }
    }
    Ok(())
}

fn explicit_link(pack: &PolicyPack, i: usize, prev: &Token, next: &Token, t0_sub: &str) -> Check {
    let fail = |code, m: String| Err(Reason::new(code, Some(i), m));
    if next.txn() != prev.txn() {
        return fail(
            ReasonCode::TxnMismatch,
            format!("token {i} `txn` differs from token {}", i - 1),
        );
    }
    if next.sub() != t0_sub {
        return fail(
            ReasonCode::SubjectMismatch,
            format!("token {i} `sub` differs from the origin's"),
        );
    }
    let grows_by_one = next.actors.len() == prev.actors.len() + 1
        && next.actors.iter().zip(&prev.actors).all(|(a, b)| a == b);
    let Some(new_actor) = next.current_actor().filter(|_| grows_by_one) else {
        return fail(
            ReasonCode::ChainBroken,
            format!(
                "token {i} must keep the actors of token {} and add exactly one",
                i - 1
            ),
        );
    };
    if !prev.aud().contains(new_actor.as_str()) {
        return fail(
            ReasonCode::ChainBroken,
            format!("token {} was not issued to `{new_actor}`", i - 1),
        );
    }
    let s = pack.chain.clock_skew as i64;
    if next.iat + s < prev.iat {
        return fail(
            ReasonCode::ChainBroken,
            format!("token {i} was issued before token {}", i - 1),
        );
    }
    if let Some(extra) = crate::items::first_missing(next.scope(), prev.scope()) {
        return fail(
            ReasonCode::ScopeEscalation,
            format!("token {i} widens scope: `{}`", clip(extra)),
        );
    }
    if next.exp > prev.exp {
        return fail(
            ReasonCode::ExpiryExtended,
            format!("token {i} outlives token {}", i - 1),
        );
    }
    Ok(())
}
