//! Revocations held on this node: `jti`s, actors (SPIFFE IDs), origins (`"<domain>|<sub>"`) and
//! transactions (`txn`), each until a time. A decision whose chain contains a revoked item is
//! denied `revoked` after the chain rules and before Cedar (DESIGN.md, "Revocation and replay
//! across a fleet"), naming the hop that matched.
//!
//! The set is shared ([`Revocations`] behind an `Arc`): a verifier built for a new pack is
//! given the same one, and whatever feeds it (the sidecar's store follower, a gateway's own
//! code) writes to it while decisions read it. Reads take a read lock only when the set is not
//! empty; every change bumps [`Revocations::generation`], which decision caches key on, so no
//! cached allow outlives a revocation.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;

use crate::reason::clip;
use crate::verified::VerifiedChain;
use crate::{Reason, ReasonCode};

/// What a revocation names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RevocationKind {
    /// A token's `jti` (any token of the chain, and the `txn_token`).
    Jti,
    /// An actor: a SPIFFE ID anywhere in the chain's actors.
    Actor,
    /// The chain's origin, `"<origin domain>|<t0.sub>"`.
    Origin,
    /// A transaction: any token's `txn`, and the `txn_token`'s.
    Txn,
}

impl RevocationKind {
    /// Every kind.
    pub const ALL: [RevocationKind; 4] = [
        RevocationKind::Jti,
        RevocationKind::Actor,
        RevocationKind::Origin,
        RevocationKind::Txn,
    ];

    /// `jti`, `actor`, `origin` or `txn`.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Jti => "jti",
            RevocationKind::Actor => "actor",
            RevocationKind::Origin => "origin",
            RevocationKind::Txn => "txn",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn slot(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RevocationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One revocation: what it names and until when (unix seconds) it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Revocation {
    /// What kind of item.
    pub kind: RevocationKind,
    /// The item, compared exactly.
    pub value: String,
    /// The last second (unix) it holds; after it the item is accepted again.
    pub until: i64,
}

/// The most items one value may be (bytes): a longer one cannot match any token custody
/// accepts, and would only take memory.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Why a revocation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRevocation(pub String);

impl fmt::Display for InvalidRevocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidRevocation {}

impl Revocation {
    /// A revocation, its value checked: not empty, at most [`MAX_VALUE_BYTES`], no control
    /// characters; an origin has the `|` that separates domain and subject.
    pub fn new(
        kind: RevocationKind,
        value: impl Into<String>,
        until: i64,
    ) -> Result<Revocation, InvalidRevocation> {
        let value = value.into();
        if value.is_empty() || value.len() > MAX_VALUE_BYTES {
            return Err(InvalidRevocation(format!(
                "a revoked {kind} must be 1 to {MAX_VALUE_BYTES} bytes"
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(InvalidRevocation(format!(
                "a revoked {kind} has no control characters"
            )));
        }
        if kind == RevocationKind::Origin && !value.contains('|') {
            return Err(InvalidRevocation(
                "an origin is `<domain>|<sub>`, as in the decision's chain summary".into(),
            ));
        }
        Ok(Revocation { kind, value, until })
    }
}

/// The revocations this node holds (see the module documentation).
#[derive(Default)]
pub struct Revocations {
    /// One table per kind: value → until.
    tables: RwLock<[HashMap<String, i64>; 4]>,
    len: AtomicUsize,
    generation: AtomicU64,
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocations")
            .field("len", &self.len())
            .field("generation", &self.generation())
            .finish()
    }
}

/// Adds `items` to `tables` (a later `until` for an item already held wins).
fn hold(tables: &mut [HashMap<String, i64>; 4], items: impl IntoIterator<Item = Revocation>) {
    for r in items {
        if let Some(table) = tables.get_mut(r.kind.slot()) {
            let until = table.entry(r.value).or_insert(r.until);
            *until = (*until).max(r.until);
        }
    }
}

impl Revocations {
    /// An empty set.
    pub fn new() -> Revocations {
        Revocations::default()
    }

    /// Items held (expired ones included until [`prune`](Self::prune) drops them).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes so far: bumped by every change, so a cache keyed on it forgets what it decided
    /// before.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Changes the tables under the write lock; `f` says whether it changed anything, and
    /// only a change moves the length and the generation.
    fn write(&self, f: impl FnOnce(&mut [HashMap<String, i64>; 4]) -> bool) {
        let mut tables = self
            .tables
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if f(&mut tables) {
            let len = tables.iter().map(HashMap::len).sum();
            self.len.store(len, Ordering::Release);
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Holds `r` (a later `until` for an item already held wins).
    pub fn revoke(&self, r: Revocation) {
        self.extend(std::iter::once(r));
    }

    /// Holds every revocation of `items` (one change).
    pub fn extend(&self, items: impl IntoIterator<Item = Revocation>) {
        self.write(|tables| {
            hold(tables, items);
            true
        });
    }

    /// Replaces everything held with `items` (a full resync from a store).
    pub fn replace(&self, items: impl IntoIterator<Item = Revocation>) {
        let mut fresh: [HashMap<String, i64>; 4] = Default::default();
        hold(&mut fresh, items);
        self.write(|tables| {
            *tables = fresh;
            true
        });
    }

    /// Drops what expired before `now`; returns how many. The generation moves only when
    /// something was dropped: a decision cache keyed on it keeps its entries otherwise.
    pub fn prune(&self, now: i64) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut dropped = 0;
        self.write(|tables| {
            for t in tables.iter_mut() {
                let before = t.len();
                t.retain(|_, until| *until >= now);
                dropped += before.saturating_sub(t.len());
            }
            dropped > 0
        });
        dropped
    }

    /// Until when `value` is revoked as `kind`, if it is at `now`.
    pub fn find(&self, kind: RevocationKind, value: &str, now: i64) -> Option<i64> {
        if self.is_empty() {
            return None;
        }
        let tables = self
            .tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = *tables.get(kind.slot())?.get(value)?;
        (until >= now).then_some(until)
    }

    /// Everything held, sorted (for `custody explain` and tests).
    pub fn list(&self) -> Vec<Revocation> {
        let tables = self
            .tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<Revocation> = RevocationKind::ALL
            .into_iter()
            .flat_map(|kind| {
                tables
                    .get(kind.slot())
                    .into_iter()
                    .flatten()
                    .map(move |(value, until)| Revocation {
                        kind,
                        value: value.clone(),
                        until: *until,
                    })
            })
            .collect();
        out.sort_by(|a, b| (a.kind, &a.value).cmp(&(b.kind, &b.value)));
        out
    }

    /// The first revoked item of a verified chain at `now`, as the denial: each token in order
    /// (its `jti`, its actors, its `txn`), the origin (hop 0), then the `txn_token` (no hop).
    pub(crate) fn check(
        &self,
        verified: &VerifiedChain,
        origin: &str,
        now: i64,
    ) -> Result<(), Reason> {
        if self.is_empty() {
            return Ok(());
        }
        let tables = self
            .tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let hit = |kind: RevocationKind, value: &str| -> Option<i64> {
            let until = *tables.get(kind.slot())?.get(value)?;
            (until >= now).then_some(until)
        };
        let deny = |kind: RevocationKind, value: &str, hop: Option<usize>, until: i64| {
            let at = match hop {
                Some(i) => format!("token {i}"),
                None => "the `txn_token`".to_owned(),
            };
            Reason::new(
                ReasonCode::Revoked,
                hop,
                format!("{kind} `{}` of {at} is revoked until {until}", clip(value)),
            )
        };
        for (i, t) in verified.tokens.iter().enumerate() {
            if let Some(jti) = t.jti() {
                if let Some(u) = hit(RevocationKind::Jti, jti) {
                    return Err(deny(RevocationKind::Jti, jti, Some(i), u));
                }
            }
            let actors = t.actors.iter().map(custody_id::SpiffeId::as_str);
            // a JWT-SVID's actor is its `sub`
            let svid = t.svid.then_some(t.sub());
            for actor in actors.chain(svid) {
                if let Some(u) = hit(RevocationKind::Actor, actor) {
                    return Err(deny(RevocationKind::Actor, actor, Some(i), u));
                }
            }
            if let Some(txn) = t.txn() {
                if let Some(u) = hit(RevocationKind::Txn, txn) {
                    return Err(deny(RevocationKind::Txn, txn, Some(i), u));
                }
            }
        }
        if let Some(u) = hit(RevocationKind::Origin, origin) {
            return Err(Reason::new(
                ReasonCode::Revoked,
                Some(0),
                format!("origin `{}` is revoked until {u}", clip(origin)),
            ));
        }
        if let Some(t) = verified.txn_token.as_deref() {
            if let Some(jti) = t.jti() {
                if let Some(u) = hit(RevocationKind::Jti, jti) {
                    return Err(deny(RevocationKind::Jti, jti, None, u));
                }
            }
            if let Some(txn) = t.txn() {
                if let Some(u) = hit(RevocationKind::Txn, txn) {
                    return Err(deny(RevocationKind::Txn, txn, None, u));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    fn r(kind: RevocationKind, v: &str, until: i64) -> Revocation {
        Revocation::new(kind, v, until).unwrap()
    }

    #[test]
    fn held_until_their_time_and_later_until_wins() {
        let set = Revocations::new();
        assert_eq!(set.find(RevocationKind::Jti, "a", 0), None);
        let g = set.generation();
        set.revoke(r(RevocationKind::Jti, "a", 100));
        assert!(set.generation() > g);
        assert_eq!(set.find(RevocationKind::Jti, "a", 100), Some(100));
        assert_eq!(set.find(RevocationKind::Jti, "a", 101), None);
        // kinds never meet
        assert_eq!(set.find(RevocationKind::Txn, "a", 0), None);
        set.revoke(r(RevocationKind::Jti, "a", 50));
        assert_eq!(set.find(RevocationKind::Jti, "a", 60), Some(100));
        set.revoke(r(RevocationKind::Jti, "a", 200));
        assert_eq!(set.find(RevocationKind::Jti, "a", 150), Some(200));
        assert_eq!(set.len(), 1);
        // nothing expired: nothing changes, the generation included
        let g = set.generation();
        assert_eq!(set.prune(150), 0);
        assert_eq!(set.generation(), g);
        assert_eq!(set.prune(201), 1);
        assert!(set.is_empty());
        assert!(set.generation() > g);
    }

    #[test]
    fn replace_is_a_resync() {
        let set = Revocations::new();
        set.revoke(r(RevocationKind::Actor, "spiffe://a.example/x", 10));
        set.replace([r(RevocationKind::Origin, "a.example|alice", 10)]);
        assert_eq!(
            set.find(RevocationKind::Actor, "spiffe://a.example/x", 0),
            None
        );
        assert_eq!(
            set.find(RevocationKind::Origin, "a.example|alice", 0),
            Some(10)
        );
        assert_eq!(set.list().len(), 1);
    }

    #[test]
    fn values_are_checked() {
        for (kind, v) in [
            (RevocationKind::Jti, ""),
            (RevocationKind::Jti, "a\nb"),
            (RevocationKind::Origin, "no-bar"),
        ] {
            assert!(Revocation::new(kind, v, 0).is_err(), "{v:?}");
        }
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(Revocation::new(RevocationKind::Txn, long, 0).is_err());
        assert_eq!(
            RevocationKind::from_name("actor"),
            Some(RevocationKind::Actor)
        );
        assert_eq!(RevocationKind::from_name("Actor"), None);
    }
}
