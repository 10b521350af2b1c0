//! A bounded, concurrent memory of signatures that verified.
//!
//! An entry is the SHA-256 digest of (public key bytes, `kid`, signing input, signature), with
//! lengths framing the variable parts, so a hit is exactly as strong as the `verify_strict` it
//! replaces: forging a hit means finding a SHA-256 collision with a signature that verified.
//! Keys are part of the digest, so a key that a reload removes or replaces can never again
//! match what it verified (and a reload builds a new verifier, with a new, empty cache). Only
//! successes are remembered: a failure is recomputed every time, and only valid signatures of
//! trusted keys can take a place. A hit skips the signature check and nothing else: the caller
//! still runs every claim, time, audience and chain check on the token.
//!
//! SHA-256 rather than BLAKE3: this machine class has the SHA extensions, where SHA-256 of a
//! ~600-byte signing input takes a few hundred nanoseconds, against ~50 µs for `verify_strict`.
//!
//! **Bound.** The cache holds at most `min(entries, bytes / ENTRY_BYTES)` digests, split over
//! 16 shards (a shard is a mutex over a hash set and a queue). Each shard's table is allocated
//! whole when the cache is built and never grows: [`ENTRY_BYTES`] (128) bounds what one entry
//! costs with the table's spare buckets and the queue counted, so the cache never takes more
//! than `capacity() × ENTRY_BYTES` bytes. The defaults, 65,536 entries and 8 MiB, agree.
//!
//! **Eviction.** First in, first out, per shard: a new digest goes to the back of its shard's
//! queue and, when the shard is full, the oldest one is forgotten first. A hit does not move an
//! entry (a token is short-lived; an entry that keeps being hit is re-verified once per trip
//! through the queue, which costs one `verify_strict`).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use custody_jose::PublicKey;
use sha2::{Digest, Sha256};

const SHARDS: usize = 16;

/// The default number of remembered signatures.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// What one entry is accounted at, in bytes: its 32-byte digest in the queue, and in the hash
/// table 33 bytes (digest and control byte) per bucket with at most two buckets per entry
/// (hashbrown's 7/8 load factor rounded up to a power of two) — 98 bytes, rounded up.
pub const ENTRY_BYTES: usize = 128;

/// The default memory bound: [`DEFAULT_CAPACITY`] entries.
pub const DEFAULT_CAPACITY_BYTES: usize = DEFAULT_CAPACITY * ENTRY_BYTES;

type Entry = [u8; 32];

struct Shard {
    set: HashSet<Entry>,
    order: VecDeque<Entry>,
}

impl Shard {
    fn new(capacity: usize) -> Self {
        Shard {
            set: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
        }
    }
}

/// The cache. A capacity of 0 turns it off.
pub struct SigCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for SigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigCache")
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// Counters since the cache was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Signatures answered from memory.
    pub hits: u64,
    /// Signatures that went to `verify_strict` (valid or not).
    pub misses: u64,
}

impl SigCache {
    /// A cache holding at most `capacity` entries (rounded up to a multiple of 16), with the
    /// default memory bound lifted to fit them.
    pub fn new(capacity: usize) -> Self {
        Self::with_bound(
            capacity,
            capacity.saturating_mul(ENTRY_BYTES) + SHARDS * ENTRY_BYTES,
        )
    }

    /// A cache bounded by `entries` (rounded up to a multiple of 16) and by `bytes` (rounded
    /// down to a multiple of 16 entries), whichever is tighter.
    pub fn with_bound(entries: usize, bytes: usize) -> Self {
        let per_shard = entries.div_ceil(SHARDS).min(bytes / ENTRY_BYTES / SHARDS);
        SigCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
            per_shard,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The bound on entries.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// The bound on the memory the cache takes, in bytes (`capacity() × ENTRY_BYTES`).
    pub fn capacity_bytes(&self) -> usize {
        self.capacity() * ENTRY_BYTES
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

    /// Hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Forgets everything (the counters stay).
    pub fn clear(&self) {
        for s in &self.shards {
            if let Ok(mut s) = s.lock() {
                s.set.clear();
                s.order.clear();
            }
        }
    }

    /// `key.verify_strict(message, signature)`, answered from memory when this exact
    /// (key, `kid`, message, signature) verified before.
    pub fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
        if self.per_shard == 0 {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return key.verify_strict(message, signature);
        }
        let entry = digest(key, message, signature);
        let index = usize::from(entry.first().copied().unwrap_or(0)) % SHARDS;
        let Some(shard) = self.shards.get(index) else {
            return key.verify_strict(message, signature);
        };
        if shard.lock().is_ok_and(|s| s.set.contains(&entry)) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        if !key.verify_strict(message, signature) {
            return false;
        }
        if let Ok(mut s) = shard.lock() {
            self.insert(&mut s, entry);
        }
        true
    }

    /// Adds `entry`, evicting the oldest first so the table never outgrows its allocation.
    fn insert(&self, s: &mut Shard, entry: Entry) {
        if s.set.contains(&entry) {
            return;
        }
        while s.order.len() >= self.per_shard {
            match s.order.pop_front() {
                Some(old) => s.set.remove(&old),
                None => break,
            };
        }
        s.set.insert(entry);
        s.order.push_back(entry);
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

#[cfg(test)]
mod tests {
    use super::*;
    use custody_jose::SigningKey;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed(&format!("k{n}"), [n; 32])
    }

    #[test]
    fn hits_only_for_the_exact_triple() {
        let cache = SigCache::new(64);
        let k = key(1);
        let sig = k.sign_bytes(b"hello");
        assert!(cache.verify(&k.public(), b"hello", &sig));
        assert!(cache.verify(&k.public(), b"hello", &sig));
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 1 });
        assert!(!cache.verify(&k.public(), b"hellO", &sig));
        // same key bytes under another kid: a different entry
        let renamed = k.with_kid("other").public();
        assert!(cache.verify(&renamed, b"hello", &sig));
        assert_eq!(cache.stats().misses, 3);
        // another key never hits an entry of the first
        assert!(!cache.verify(&key(2).public(), b"hello", &sig));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn failures_are_not_remembered() {
        let cache = SigCache::new(64);
        let k = key(3);
        let mut sig = k.sign_bytes(b"m");
        sig[5] ^= 1;
        assert!(!cache.verify(&k.public(), b"m", &sig));
        assert!(!cache.verify(&k.public(), b"m", &sig));
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded_in_entries_and_bytes_fifo() {
        let cache = SigCache::with_bound(1_000, 32 * ENTRY_BYTES);
        assert_eq!(cache.capacity(), 32);
        assert_eq!(cache.capacity_bytes(), 32 * ENTRY_BYTES);
        let k = key(4);
        let msgs: Vec<Vec<u8>> = (0..400u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for m in &msgs {
            assert!(cache.verify(&k.public(), m, &k.sign_bytes(m)));
            assert!(cache.len() <= 32);
        }
        assert_eq!(cache.len(), 32);
        // the first message was evicted long ago: it is verified again (a miss), not refused
        let before = cache.stats().misses;
        assert!(cache.verify(&k.public(), &msgs[0], &k.sign_bytes(&msgs[0])));
        assert_eq!(cache.stats().misses, before + 1);
        assert_eq!(SigCache::new(1000).capacity(), 1008);
    }

    #[test]
    fn capacity_zero_is_off() {
        let cache = SigCache::with_bound(0, DEFAULT_CAPACITY_BYTES);
        let k = key(5);
        assert!(cache.verify(&k.public(), b"x", &k.sign_bytes(b"x")));
        assert!(cache.is_empty());
        assert_eq!(SigCache::with_bound(100, 0).capacity(), 0);
    }
}
