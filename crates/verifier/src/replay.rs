//! The per-node memory of one-time proofs: a WPT's or DPoP proof's `jti`, kept until the
//! proof could no longer be accepted anyway, so that the same proof is `replayed` the second
//! time it is seen on this node.
//!
//! **What is kept.** Not the `jti` itself: a 128-bit digest (SHA-256, truncated) of the proof
//! kind, the thumbprint of the key that signed it and its `jti`. Two workloads' proofs never
//! share an entry (their keys differ), so one workload cannot use up another's `jti`s, and a
//! collision would need a SHA-256 prefix collision.
//!
//! **Bound.** At most `capacity` entries over 16 shards (each a table and a queue in insertion
//! order). An entry lives until its proof's last acceptable second; a shard forgets expired
//! entries from the front of its queue as it goes, and sweeps the whole shard when it is
//! full. A shard full of live entries refuses new proofs ([`Seen::Full`]): forgetting a live
//! `jti` would let its proof be replayed, so the node fails closed (`store_unavailable`)
//! instead. Size it for the proofs a node accepts within the longest proof lifetime (WPTs at
//! most 5 minutes plus the skew; DPoP proofs twice the skew).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::fifo::Prehashed;
use crate::reason::clip;
use crate::{Reason, ReasonCode};

/// A record of one-time `jti`s shared by a fleet of nodes (the sidecar's Redis store): what
/// one node accepted, every other refuses. Called from the thread deciding the request; an
/// implementation answers within its own bound (the sidecar's: the request's deadline).
pub trait ReplayStore: Send + Sync + fmt::Debug {
    /// Records `id` (a proof's or token's 128-bit digest, as the per-node cache keys it) as
    /// used until `until` (unix seconds, inclusive). `Ok(true)` when no node recorded it
    /// before, `Ok(false)` when one did, `Err` when the store cannot answer.
    fn first_use(&self, id: u128, until: i64, now: i64) -> Result<bool, StoreDown>;
}

/// Why a [`ReplayStore`] could not answer (unreachable, slow, refusing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreDown(pub String);

impl fmt::Display for StoreDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The replay defence: this node's cache, then the fleet's store when there is one.
#[derive(Debug)]
pub(crate) struct Replay {
    pub(crate) local: ReplayCache,
    pub(crate) shared: Option<Arc<dyn ReplayStore>>,
}

impl Replay {
    /// Uses up a one-time `jti` (`kind`, signer `thumbprint`, `jti`, live until `until`):
    /// `replayed` if this node or (with a store) any node saw it; `store_unavailable` when
    /// this node's cache is full of live entries, or the store cannot answer and the pack does
    /// not say `fail_open_replay true` (then this node's own memory alone decides).
    pub(crate) fn consume(
        &self,
        kind: ProofKind,
        thumbprint: &[u8; 32],
        jti: &str,
        until: i64,
        now: i64,
        fail_open: bool,
    ) -> Result<(), Reason> {
        let what = kind.what();
        let id = digest(kind, thumbprint, jti);
        match self.local.note_id(id, until, now) {
            Seen::First => {}
            Seen::Again => {
                return Err(Reason::new(
                    ReasonCode::Replayed,
                    None,
                    format!("{what} `jti` `{}` was used before", clip(jti)),
                ))
            }
            Seen::Full => {
                return Err(Reason::new(
                    ReasonCode::StoreUnavailable,
                    None,
                    format!("the replay cache is full: the {what} cannot be checked for reuse"),
                ))
            }
        }
        let Some(store) = &self.shared else {
            return Ok(());
        };
        match store.first_use(id, until, now) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Reason::new(
                ReasonCode::Replayed,
                None,
                format!(
                    "{what} `jti` `{}` was used before at another node",
                    clip(jti)
                ),
            )),
            Err(_) if fail_open => Ok(()),
            Err(e) => Err(Reason::new(
                ReasonCode::StoreUnavailable,
                None,
                format!(
                    "the shared replay store cannot check the {what} for reuse ({})",
                    clip(&e.0)
                ),
            )),
        }
    }
}

/// The key of a one-time `jti`: SHA-256 over its kind, its signer's thumbprint and the `jti`,
/// truncated to 128 bits.
fn digest(kind: ProofKind, thumbprint: &[u8; 32], jti: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(match kind {
        ProofKind::Wpt => b"wpt\0",
        ProofKind::Dpop => b"dpop",
        ProofKind::Token => b"tok\0",
    });
    h.update(thumbprint);
    h.update(jti.as_bytes());
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
    u128::from_le_bytes(id)
}

/// The default bound on remembered proofs.
pub const REPLAY_ENTRIES: usize = 262_144;

const SHARDS: usize = 16;

/// What the cache says of a proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not seen within its lifetime: now remembered.
    First,
    /// Seen before, and still within its lifetime.
    Again,
    /// The cache is full of live proofs: this one cannot be checked.
    Full,
}

/// Which kind of proof a `jti` belongs to (a WPT's `jti` and a DPoP proof's never meet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProofKind {
    Wpt,
    Dpop,
    /// An access token's `jti` under `chain { one_time_tokens true }`.
    Token,
}

impl ProofKind {
    fn what(self) -> &'static str {
        match self {
            ProofKind::Wpt => "WPT",
            ProofKind::Dpop => "DPoP proof",
            ProofKind::Token => "access token",
        }
    }
}

#[derive(Default)]
struct Shard {
    until: HashMap<u128, i64, BuildHasherDefault<Prehashed>>,
    order: VecDeque<(u128, i64)>,
}

/// The per-node replay cache (see the module documentation).
pub(crate) struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl ReplayCache {
    /// A cache for at most `capacity` live proofs (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        ReplayCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
        }
    }

    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Live and expired-but-not-yet-swept entries held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.until.len()))
            .sum()
    }

    /// Records the proof (`kind`, signing key `thumbprint`, `jti`) as used until `until`
    /// (unix seconds, inclusive), unless it was seen before and is still live at `now`.
    #[cfg(test)]
    pub fn note(
        &self,
        kind: ProofKind,
        thumbprint: &[u8; 32],
        jti: &str,
        until: i64,
        now: i64,
    ) -> Seen {
        self.note_id(digest(kind, thumbprint, jti), until, now)
    }

    /// [`note`](Self::note) on the digest.
    pub fn note_id(&self, id: u128, until: i64, now: i64) -> Seen {
        // the low bits pick the shard; the table hashes the id as it is (`Prehashed`)
        let shard = usize::try_from(id % SHARDS as u128).unwrap_or(0);
        let Some(lock) = self.shards.get(shard) else {
            return Seen::Full;
        };
        // a poisoned shard (a panic elsewhere while holding it) still holds valid entries
        let mut s = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.forget_expired_front(now);
        if let Some(&t) = s.until.get(&id) {
            if t >= now {
                return Seen::Again;
            }
        }
        if s.until.len() >= self.per_shard && !s.until.contains_key(&id) {
            s.sweep(now);
            if s.until.len() >= self.per_shard {
                return Seen::Full;
            }
        }
        s.until.insert(id, until);
        s.order.push_back((id, until));
        Seen::First
    }
}

impl Shard {
    /// Forgets expired entries at the front of the queue (cheap, every call).
    fn forget_expired_front(&mut self, now: i64) {
        while let Some(&(id, until)) = self.order.front() {
            if until >= now {
                break;
            }
            self.order.pop_front();
            // the table may hold a newer lifetime for the same id (a proof seen again after
            // its first lifetime ended): forget it only if this queue entry is its latest
            if self.until.get(&id) == Some(&until) {
                self.until.remove(&id);
            }
        }
    }

    /// Forgets every expired entry, wherever it is in the queue.
    fn sweep(&mut self, now: i64) {
        self.until.retain(|_, until| *until >= now);
        let until = &self.until;
        self.order
            .retain(|(id, t)| until.get(id).is_some_and(|u| u == t));
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    const K: [u8; 32] = [7; 32];

    #[test]
    fn a_proof_is_accepted_once_within_its_lifetime() {
        let c = ReplayCache::new(64);
        assert_eq!(c.note(ProofKind::Wpt, &K, "a", 110, 100), Seen::First);
        assert_eq!(c.note(ProofKind::Wpt, &K, "a", 110, 105), Seen::Again);
        assert_eq!(c.note(ProofKind::Wpt, &K, "a", 110, 110), Seen::Again);
        // another key, another kind: another proof
        assert_eq!(c.note(ProofKind::Wpt, &[8; 32], "a", 110, 105), Seen::First);
        assert_eq!(c.note(ProofKind::Dpop, &K, "a", 110, 105), Seen::First);
        // after its lifetime the entry is gone (the proof itself would be expired by then)
        assert_eq!(c.note(ProofKind::Wpt, &K, "a", 200, 111), Seen::First);
        assert_eq!(c.note(ProofKind::Wpt, &K, "a", 200, 150), Seen::Again);
    }

    #[test]
    fn a_full_cache_fails_closed_and_recovers_when_entries_expire() {
        let c = ReplayCache::new(8 * SHARDS);
        let mut full = 0;
        for i in 0..500 {
            if c.note(ProofKind::Wpt, &K, &i.to_string(), 1_000, 100) == Seen::Full {
                full += 1;
            }
        }
        assert!(full > 0, "eight entries per shard must fill up");
        assert_eq!(c.len(), c.capacity());
        // a live proof is never forgotten to make room: every one is still `Again`
        let again = (0..500)
            .filter(|i| c.note(ProofKind::Wpt, &K, &i.to_string(), 1_000, 100) == Seen::Again)
            .count();
        assert_eq!(again, c.capacity());
        // once they expired, new proofs are remembered again
        for i in 500..516 {
            assert_ne!(
                c.note(ProofKind::Wpt, &K, &i.to_string(), 2_000, 1_001),
                Seen::Full
            );
        }
        assert!(c.len() <= c.capacity());
    }
}
