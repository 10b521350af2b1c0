//! A bounded, concurrent memory of signatures that verified.
//!
//! An entry is the SHA-256 digest of (public key bytes, `kid`, signing input, signature), so a
//! hit is exactly as strong as the `verify_strict` it replaces: forging a hit means finding a
//! SHA-256 collision with a signature that verified. Keys are part of the digest, so a key that
//! a reload removes or replaces can never again match what it verified. Only successes are
//! remembered: a failure is recomputed every time (and cannot be used to evict at will more than
//! any other traffic can).
//!
//! Bound: at most `capacity` entries of 32 bytes each, split over 16 shards, each evicting its
//! oldest entry first (FIFO). With the default 65,536 entries that is 2 MiB of digests plus the
//! table overhead, about 6 MiB in all.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use custody_jose::PublicKey;
use sha2::{Digest, Sha256};

const SHARDS: usize = 16;

/// The default number of remembered signatures.
pub const DEFAULT_CAPACITY: usize = 65_536;

type Entry = [u8; 32];

#[derive(Default)]
struct Shard {
    set: HashSet<Entry>,
    order: VecDeque<Entry>,
}

/// The cache. `capacity` 0 turns it off.
pub struct SigCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl std::fmt::Debug for SigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigCache")
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl SigCache {
    /// A cache holding at most `capacity` entries (rounded up to a multiple of 16).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        SigCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
        }
    }

    /// The bound on entries.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.set.len()).unwrap_or(0))
            .sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything.
    pub fn clear(&self) {
        for s in &self.shards {
            if let Ok(mut s) = s.lock() {
                s.set.clear();
                s.order.clear();
            }
        }
    }

    /// `key.verify_strict(message, signature)`, answered from memory when this exact triple
    /// verified before.
    pub fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
        if self.per_shard == 0 {
            return key.verify_strict(message, signature);
        }
        let entry = digest(key, message, signature);
        let Some(shard) = self
            .shards
            .get(usize::from(entry.first().copied().unwrap_or(0)) % SHARDS)
        else {
            return key.verify_strict(message, signature);
        };
        if shard.lock().is_ok_and(|s| s.set.contains(&entry)) {
            return true;
        }
        if !key.verify_strict(message, signature) {
            return false;
        }
        if let Ok(mut s) = shard.lock() {
            if s.set.insert(entry) {
                s.order.push_back(entry);
                while s.order.len() > self.per_shard {
                    if let Some(old) = s.order.pop_front() {
                        s.set.remove(&old);
                    }
                }
            }
        }
        true
    }
}

fn digest(key: &PublicKey, message: &[u8], signature: &[u8]) -> Entry {
    let mut h = Sha256::new();
    h.update(b"custody sig v1\0");
    h.update(key.bytes());
    h.update((key.kid().len() as u64).to_be_bytes());
    h.update(key.kid().as_bytes());
    h.update((message.len() as u64).to_be_bytes());
    h.update(message);
    h.update(signature);
    h.finalize().into()
}
