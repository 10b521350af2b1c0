//! A bounded, sharded, first-in-first-out map from a 64-bit bucket hash to shared values: the
//! storage under the token cache (`cache.rs`) and the Cedar request memo (`cedar.rs`).
//!
//! The hash only buckets: a caller finds an entry by its hash *and* a full comparison of what
//! the entry stands for (the exact token bytes, every Cedar input), so two keys whose hashes
//! collide are told apart, and a collision costs one comparison, never a wrong answer. A hash
//! shared by two live entries keeps only the newer one.
//!
//! **Bound.** At most `entries` values, and at most `bytes` bytes for the tables and the values
//! together: the shards' tables and queues are allocated whole up front (their size, computed
//! the way the table computes its bucket count and rounded like an allocation, comes out of
//! the byte bound first) and each value says what it costs. Both bounds are split evenly over
//! [`SHARDS`] shards, each a reader-writer lock over a table and a queue, on its own cache
//! lines (lookups on two cores take read locks and do not wait for each other; neighbouring
//! shards do not share a line). A value costing more than one shard's share is not kept.
//!
//! **Eviction.** First in, first out, per shard: a new value goes to the back of its shard's
//! queue and, while the shard is over either bound, the oldest is dropped. A hit does not move
//! an entry.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Shards (independent locks).
pub(crate) const SHARDS: usize = 16;

/// What a stored value is accounted at, in bytes, everything it owns included.
pub(crate) trait Cost {
    fn cost(&self) -> usize;
}

struct Shard<V> {
    map: HashMap<u64, Arc<V>, BuildHasherDefault<Prehashed>>,
    /// Insertion order (a hash may linger here after its entry was replaced or removed).
    order: VecDeque<u64>,
    bytes: usize,
}

/// `T` alone on its cache lines (128 bytes: two lines, for CPUs that fetch them in pairs), so
/// that writes to one do not evict its neighbours from another core's cache.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub T);

/// A counter bumped from many threads: each thread adds to one of a few padded stripes (its
/// own, while there are no more threads than stripes), and a read sums them.
pub(crate) struct Striped([Padded<AtomicU64>; STRIPES]);

const STRIPES: usize = 8;

impl Striped {
    pub fn new() -> Self {
        Striped(std::array::from_fn(|_| Padded(AtomicU64::new(0))))
    }

    pub fn add(&self, n: u64) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        }
        let i = STRIPE.with(|s| *s);
        if let Some(c) = self.0.get(i) {
            c.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// The map. `entries` 0 (or `bytes` too small for one entry) turns it off.
pub(crate) struct Fifo<V> {
    shards: Vec<Padded<RwLock<Shard<V>>>>,
    per_shard: usize,
    /// A shard's share of the byte bound, its table included.
    shard_bytes: usize,
    /// What a shard's values may cost together (its share, less its table).
    per_shard_bytes: usize,
}

/// What the table and the queue of a shard of `n` entries allocate: the table's buckets (a
/// power of two at most 7/8 full, at least 4) of a hash and a pointer each, plus a control
/// byte each and a group's worth more; the queue's `n` hashes.
fn table_bytes(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let buckets = match n {
        0..4 => 4,
        4..8 => 8,
        _ => (n * 8 / 7).next_power_of_two(),
    };
    let slot = std::mem::size_of::<(u64, usize)>();
    alloc_cost(buckets * slot + buckets + 16) + alloc_cost(n * 8)
}

impl<V: Cost> Fifo<V> {
    /// At most `entries` (rounded up to a multiple of [`SHARDS`]) values, at most `bytes`
    /// bytes for tables and values together, every value counted at `min_cost` at least.
    pub fn new(entries: usize, bytes: usize, min_cost: usize) -> Self {
        let shard_bytes = bytes / SHARDS;
        let min_cost = min_cost.max(1);
        let mut per_shard = entries.div_ceil(SHARDS).min(shard_bytes / min_cost);
        // the most entries whose table and values (at their least) fit the share
        while per_shard > 0 && per_shard * min_cost + table_bytes(per_shard) > shard_bytes {
            let room = shard_bytes.saturating_sub(table_bytes(per_shard));
            per_shard = (room / min_cost).min(per_shard - 1);
        }
        let per_shard_bytes = shard_bytes - table_bytes(per_shard);
        let shards = (0..SHARDS)
            .map(|_| {
                Padded(RwLock::new(Shard {
                    map: HashMap::with_capacity_and_hasher(per_shard, Default::default()),
                    order: VecDeque::with_capacity(per_shard),
                    bytes: 0,
                }))
            })
            .collect();
        Fifo {
            shards,
            per_shard,
            shard_bytes,
            per_shard_bytes,
        }
    }

    /// The bound on entries.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// The bound on bytes, tables and values together.
    pub fn capacity_bytes(&self) -> usize {
        if self.per_shard == 0 {
            return 0;
        }
        self.shard_bytes * SHARDS
    }

    /// What the tables take (allocated up front).
    pub fn table_bytes(&self) -> usize {
        table_bytes(self.per_shard) * SHARDS
    }

    /// What one shard's values may cost together.
    #[cfg(test)]
    pub fn shard_budget(&self) -> usize {
        self.per_shard_bytes
    }

    pub fn is_off(&self) -> bool {
        self.per_shard == 0
    }

    fn shard(&self, hash: u64) -> Option<&RwLock<Shard<V>>> {
        // middle bits: the table uses the low bits for the bucket and the top ones for its tag
        self.shards
            .get((hash >> 32) as usize % SHARDS)
            .map(|p| &p.0)
    }

    /// The value stored under `hash`, if `is_it` says it is the one wanted.
    pub fn get(&self, hash: u64, is_it: impl FnOnce(&V) -> bool) -> Option<Arc<V>> {
        if self.is_off() {
            return None;
        }
        let found = self
            .shard(hash)?
            .read()
            .ok()
            .and_then(|s| s.map.get(&hash).cloned())?;
        is_it(&found).then_some(found)
    }

    /// Stores `value` under `hash`, evicting the oldest entries of its shard until it fits.
    pub fn insert(&self, hash: u64, value: Arc<V>) {
        let cost = value.cost();
        if self.is_off() || cost > self.per_shard_bytes {
            return;
        }
        let Some(Ok(mut s)) = self.shard(hash).map(RwLock::write) else {
            return;
        };
        if let Some(old) = s.map.remove(&hash) {
            s.bytes = s.bytes.saturating_sub(old.cost());
        }
        while s.order.len() >= self.per_shard || s.bytes + cost > self.per_shard_bytes {
            let Some(oldest) = s.order.pop_front() else {
                break;
            };
            if let Some(old) = s.map.remove(&oldest) {
                s.bytes = s.bytes.saturating_sub(old.cost());
            }
        }
        s.bytes += cost;
        s.map.insert(hash, value);
        s.order.push_back(hash);
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.sum(|s| s.map.len())
    }

    /// Accounted bytes of the values held now (the tables not included).
    pub fn bytes(&self) -> usize {
        self.sum(|s| s.bytes)
    }

    fn sum(&self, f: impl Fn(&Shard<V>) -> usize) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().map(|s| f(&s)).unwrap_or(0))
            .sum()
    }

    /// Forgets everything (the tables keep their allocation).
    pub fn clear(&self) {
        for s in &self.shards {
            if let Ok(mut s) = s.0.write() {
                s.map.clear();
                s.order.clear();
                s.bytes = 0;
            }
        }
    }
}

/// The hasher of the tables: their keys are already hashes.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(self.0, bytes);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// A fast, seeded, non-cryptographic hash for bucketing (never for deciding equality): four
/// independent multiply-rotate lanes over 8-byte words, then a 64-bit finaliser.
pub(crate) fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    fmix(absorb(seed, bytes))
}

/// [`hash_bytes`] without the finaliser: `bytes` folded into the state `h`.
fn absorb(h: u64, bytes: &[u8]) -> u64 {
    let mut blocks = bytes.chunks_exact(32);
    let mut h = h ^ (bytes.len() as u64).wrapping_mul(K);
    if bytes.len() >= 32 {
        let mut lanes = [h, h ^ K, h.rotate_left(17), h.rotate_left(41) ^ K];
        for block in &mut blocks {
            for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
                *lane = mix(*lane, word_of(word));
            }
        }
        for lane in lanes {
            h = mix(h, lane);
        }
    }
    let rest = blocks.remainder();
    let mut words = rest.chunks_exact(8);
    for word in &mut words {
        h = mix(h, word_of(word));
    }
    if !words.remainder().is_empty() {
        h = mix(h, word_of(words.remainder()));
    }
    h
}

fn mix(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(K).rotate_left(31)
}

/// Up to 8 bytes as a little-endian word.
fn word_of(bytes: &[u8]) -> u64 {
    if let Ok(w) = <[u8; 8]>::try_from(bytes) {
        return u64::from_le_bytes(w);
    }
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(bytes) {
        *d = *s;
    }
    u64::from_le_bytes(w)
}

/// MurmurHash3's 64-bit finaliser: every input bit reaches every output bit.
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A random seed per table, so that bucket collisions cannot be planned offline.
pub(crate) fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x0063_7573_746f_6479_u64)
}

/// A streaming form of [`hash_bytes`] for keys made of several parts (the Cedar memo): each
/// part is folded in (its length too), the finaliser runs once at the end.
pub(crate) struct Streaming(pub u64);

impl Hasher for Streaming {
    fn finish(&self) -> u64 {
        fmix(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = absorb(self.0, bytes);
    }
    fn write_u8(&mut self, n: u8) {
        self.0 = mix(self.0, u64::from(n) | 0x100);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0, n);
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = mix(self.0, n as u64);
    }
}

/// A stored value's size plus a quarter: what the allocator holds for it under a full table's
/// first-in-first-out churn, freed values leaving holes that later allocations of other sizes
/// fill only in part (measured by `benches/src/bin/rss.rs` against a run without caches:
/// glibc malloc, two threads, a million distinct tokens: about a fifth for tokens, a tenth for
/// Cedar requests).
pub(crate) fn with_churn(bytes: usize) -> usize {
    bytes + bytes / 4
}

/// What one allocation of `n` bytes takes from a glibc-style allocator: the size plus an
/// 8-byte header, rounded up to 16, at least 32; nothing for `n` = 0.
pub(crate) fn alloc_cost(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (n + 8).div_ceil(16).max(2) * 16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds from many threads (more threads than stripes) all land in the sum.
    #[test]
    fn striped_counter_sums_every_thread() {
        let c = Striped::new();
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        c.add(1);
                    }
                });
            }
        });
        c.add(5);
        assert_eq!(c.get(), 120_005);
        assert!(std::mem::align_of::<Padded<AtomicU64>>() >= 128);
    }

    struct Sized(usize);
    impl Cost for Sized {
        fn cost(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn bounded_in_entries_and_bytes_fifo() {
        let f: Fifo<Sized> = Fifo::new(32, 1 << 20, 1);
        assert_eq!(f.capacity(), 32);
        for h in 0..1000u64 {
            f.insert(h << 32 | h, Arc::new(Sized(10)));
            assert!(f.len() <= 32);
        }
        assert_eq!(f.len(), 32);
        // the newest of each shard are kept, the oldest went first
        assert!(f.get(999 << 32 | 999, |_| true).is_some());
        assert!(f.get(0, |_| true).is_none());
        let small: Fifo<Sized> = Fifo::new(1000, SHARDS * 4096, 1);
        let budget = small.shard_budget();
        assert_eq!(budget, 4096 - table_bytes(63));
        for h in 0..1000u64 {
            small.insert(h << 32, Arc::new(Sized(300)));
            assert!(small.bytes() <= SHARDS * budget);
            assert!(small.bytes() + small.table_bytes() <= small.capacity_bytes());
        }
        assert_eq!(small.bytes(), SHARDS * (budget / 300 * 300));
        // too big for a shard: not kept
        small.insert(5 << 32, Arc::new(Sized(budget + 1)));
        assert!(small.get(5 << 32, |_| true).is_none());
    }

    #[test]
    fn the_tables_come_out_of_the_byte_bound() {
        for (entries, bytes, min_cost) in [(1000, 16 * 4096, 128), (16_384, 16 << 20, 128)] {
            let f: Fifo<Sized> = Fifo::new(entries, bytes, min_cost);
            let per_shard = f.capacity() / SHARDS;
            assert!(per_shard > 0);
            assert!(per_shard * min_cost + table_bytes(per_shard) <= bytes / SHARDS);
            assert_eq!(
                f.table_bytes() + SHARDS * f.shard_budget(),
                f.capacity_bytes()
            );
        }
        // 16 MiB holds 16,384 entries of 128 bytes and their tables
        let f: Fifo<Sized> = Fifo::new(16_384, 16 << 20, 128);
        assert_eq!(f.capacity(), 16_384);
        // a bound too tight for the table and one entry is off
        let off: Fifo<Sized> = Fifo::new(100, SHARDS * 200, 128);
        assert_eq!((off.capacity(), off.capacity_bytes()), (0, 0));
    }

    #[test]
    fn the_caller_decides_what_matches() {
        let f: Fifo<Sized> = Fifo::new(64, 1 << 20, 1);
        f.insert(7, Arc::new(Sized(1)));
        assert!(f.get(7, |v| v.0 == 1).is_some());
        assert!(f.get(7, |v| v.0 == 2).is_none());
        // same hash again: replaced, counted once
        f.insert(7, Arc::new(Sized(2)));
        assert_eq!((f.len(), f.bytes()), (1, 2));
        f.clear();
        assert_eq!((f.len(), f.bytes()), (0, 0));
    }

    #[test]
    fn off_when_nothing_fits() {
        let f: Fifo<Sized> = Fifo::new(0, 1 << 20, 1);
        f.insert(1, Arc::new(Sized(1)));
        assert_eq!((f.capacity(), f.capacity_bytes(), f.len()), (0, 0, 0));
        let g: Fifo<Sized> = Fifo::new(100, 10, 128);
        assert_eq!(g.capacity(), 0);
    }

    #[test]
    fn hash_spreads_and_depends_on_every_byte() {
        let base = vec![b'a'; 100];
        let h0 = hash_bytes(1, &base);
        for i in 0..base.len() {
            let mut b = base.clone();
            b[i] = b'b';
            assert_ne!(hash_bytes(1, &b), h0, "byte {i}");
        }
        assert_ne!(hash_bytes(2, &base), h0);
        assert_ne!(hash_bytes(1, &base[..99]), h0);
        let mut shards = [0usize; SHARDS];
        for i in 0..1600u32 {
            shards[(hash_bytes(3, &i.to_le_bytes()) >> 32) as usize % SHARDS] += 1;
        }
        assert!(shards.iter().all(|&n| n > 50), "{shards:?}");
    }

    #[test]
    fn alloc_cost_rounds_like_glibc() {
        assert_eq!(alloc_cost(0), 0);
        assert_eq!(alloc_cost(1), 32);
        assert_eq!(alloc_cost(24), 32);
        assert_eq!(alloc_cost(25), 48);
        assert_eq!(alloc_cost(700), 720);
    }
}
