//! The verifier's bounded, concurrent memory of tokens that verified.
//!
//! **What is remembered.** A token whose signature verified (`verify_strict`) under a key of
//! the verifier's pack, and whose time-independent checks passed (strict decoding, header,
//! claims, identifiers), is kept with its parsed form, keyed by its **exact bytes**: a fast
//! seeded hash of its length and last bytes (signature bytes) only picks the bucket, and a
//! hit compares the whole token byte for byte, so a hit is exactly as strong as the decoding
//! and the `verify_strict` it replaces. A hit skips
//! base64, strict JSON and the signature, and nothing else: the caller still checks the
//! token's class for its position, that its key is still in its domain's current key set
//! ([`KeyBinding::holds`]: the same snapshot epoch, or else the same `kid`, thumbprint and an
//! `alg` the key allows; anything else goes the long way; its issuer's domain is the pack's to
//! say, and the pack never changes under one verifier and its cache), its times against
//! the request's clock, and then audience, links, actors, scope, federation, vouching and
//! Cedar, as for any token. Failures are never kept: a token that fails is decoded and
//! checked again, and denied with the same reason, every time. A token whose signature
//! verified but whose claims did not is not kept either (no issuer should sign one).
//!
//! The cache belongs to one [`Verifier`](crate::Verifier), built from one pack; a reload
//! builds a new verifier with a new, empty cache. Within one verifier a key source may
//! replace a domain's keys ([`custody_jose::KeyStore::replace`]): an entry verified under a
//! key that is no longer in its domain's set is not honoured.
//!
//! [`TokenCache::verify`] remembers bare signatures the same way (the exact key, `kid`,
//! message and signature bytes), for callers outside the verifier.
//!
//! **Bound.** At most [`capacity`](TokenCache::capacity) entries and
//! [`capacity_bytes`](TokenCache::capacity_bytes) bytes, split over 16 shards (a mutex over a
//! table and a queue, both allocated whole when the cache is built and counted in the byte
//! bound). Each entry is accounted at an upper estimate of what it holds: [`ENTRY_BYTES`] for
//! its fixed parts, plus every heap allocation it owns (the token bytes, the parsed claims),
//! each rounded up the way the allocator rounds it, plus a quarter of that for the
//! allocator's fragmentation under the cache's churn. The defaults are [`DEFAULT_CAPACITY`]
//! entries and [`DEFAULT_CAPACITY_BYTES`] bytes (16 MiB: about 7,800 two-actor demo tokens of
//! 650 bytes, accounted at about 2 KiB each).
//!
//! **Eviction.** First in, first out, per shard: a new token goes to the back of its shard's
//! queue and, while the shard is over either bound, the oldest is forgotten. A hit does not
//! move an entry (tokens are short-lived; one that keeps being used is decoded and verified
//! again once per trip through the queue).

use std::sync::Arc;

use std::mem::size_of;

use custody_jose::{Algorithm, KeyStore, PublicKey};

use crate::fifo::{alloc_cost, hash_bytes, random_seed, with_churn, Cost, Fifo, Striped};
use crate::verified::VerifiedToken;

/// The default bound on entries.
pub const DEFAULT_CAPACITY: usize = 16_384;

/// What every entry is accounted at besides the heap it owns (its table and queue slots are
/// counted with the tables): the shared entry's own allocation, with its reference counts and
/// handles (64 bytes as the allocator rounds it), rounded up to twice that. The least any entry
/// is accounted at, so a cache never holds more than `bytes / ENTRY_BYTES` entries.
pub const ENTRY_BYTES: usize = 128;

/// The default memory bound, 16 MiB.
pub const DEFAULT_CAPACITY_BYTES: usize = 16 << 20;

/// How many of an entry's last bytes its bucket hash reads.
const BUCKET_TAIL: usize = 64;

/// The most one entry may be accounted at when a cache is bounded by entries alone
/// ([`TokenCache::new`]).
const MAX_ENTRY_BYTES: usize = 64 << 10;

/// A token that passed every check that does not depend on the request: decoding, header,
/// issuer and key, signature, claims, identifiers. What the cache keeps of it: its parsed form
/// and what a hit needs to check again (its class's `typ`, its key binding). Not its issuer:
/// which domain an issuer names comes from the pack, which never changes under one verifier
/// (and so under one cache), so the domain found when the token was verified
/// (`VerifiedToken::domain`, the key binding's) is the one a hit would find.
pub(crate) struct Verified {
    pub token: Arc<VerifiedToken>,
    /// The header's `alg` (one of custody's names: the decoder refuses any other). Its `kid`
    /// and `typ`, and the token's exact text, are in the token's own text
    /// (`VerifiedToken::texts`, built for the cache).
    pub alg: Algorithm,
    /// The key the signature verified under.
    pub key: KeyBinding,
    /// `iat` as `txn::peek_iat` reads it (always `Some` for a token that passed its checks).
    pub raw_iat: Option<i64>,
}

impl Verified {
    /// An upper estimate of the heap this entry owns, itself and its token included.
    fn heap_bytes(&self) -> usize {
        // `Verified` lives inside the entry's allocation, which it makes larger than the
        // fixed parts `ENTRY_BYTES` stands for: counted here as if it were its own
        let arc = 2 * size_of::<usize>();
        alloc_cost(arc + size_of::<Verified>())
            + alloc_cost(arc + size_of::<VerifiedToken>())
            + self.token.heap_bytes()
    }
}

/// The key a remembered token verified under: its domain, identity (RFC 7638 thumbprint) and
/// the epoch of the domain's key set it was found in (its `kid` is the token's header's).
pub(crate) struct KeyBinding {
    pub domain: usize,
    pub thumbprint: [u8; 32],
    pub epoch: u64,
}

impl KeyBinding {
    /// Whether the key is still in its domain's current set and still allows `alg`: the same
    /// snapshot (one comparison), or else a key under the same `kid` with the same thumbprint.
    pub fn holds(&self, keys: &KeyStore, kid: &str, alg: Algorithm) -> bool {
        keys.with_domain(self.domain, |d| {
            d.epoch() == self.epoch || d.still_holds(kid, &self.thumbprint, alg.name())
        })
        .unwrap_or(false)
    }
}

/// A remembered token, as [`TokenCache::peek`] finds it: its entry, shared.
pub(crate) struct Remembered(Arc<Entry>);

impl Remembered {
    /// What was remembered of the token; `None` for a bare signature's entry.
    pub(crate) fn verified(&self) -> Option<&Verified> {
        match &self.0.kind {
            Kind::Token(v) => Some(v),
            Kind::Signature(_) => None,
        }
    }
}

/// One remembered thing, with the exact bytes it stands for.
pub(crate) struct Entry {
    kind: Kind,
    /// What the entry is accounted at (computed once).
    cost: usize,
}

impl Entry {
    fn new(kind: Kind) -> Self {
        let owned = match &kind {
            Kind::Token(v) => v.heap_bytes(),
            Kind::Signature(bytes) => alloc_cost(bytes.len()),
        };
        let cost = with_churn(ENTRY_BYTES + owned);
        Entry { kind, cost }
    }

    /// The exact bytes the entry stands for: a token's text (kept in its own text), or a bare
    /// signature's framed bytes.
    fn bytes(&self) -> &[u8] {
        match &self.kind {
            Kind::Token(v) => v.token.texts.raw().as_bytes(),
            Kind::Signature(bytes) => bytes,
        }
    }
}

enum Kind {
    /// A verified token and its parsed form, its text among its strings.
    Token(Verified),
    /// A bare signature ([`TokenCache::verify`]), as [`frame`] frames it.
    Signature(Box<[u8]>),
}

impl Cost for Entry {
    fn cost(&self) -> usize {
        self.cost
    }
}

/// Counters since the cache was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Signatures answered from memory (a token found, or a bare signature).
    pub hits: u64,
    /// Signatures that went to `verify_strict` (valid or not).
    pub misses: u64,
}

/// The cache. A capacity of 0 turns it off.
pub struct TokenCache {
    table: Fifo<Entry>,
    seed: u64,
    hits: Striped,
    misses: Striped,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity())
            .field("capacity_bytes", &self.capacity_bytes())
            .finish()
    }
}

impl TokenCache {
    /// A cache holding at most `capacity` entries (rounded up to a multiple of 16), with a
    /// memory bound lifted to fit them at the largest size an entry may take (64 KiB).
    pub fn new(capacity: usize) -> Self {
        Self::with_bound(capacity, capacity.saturating_mul(MAX_ENTRY_BYTES))
    }

    /// A cache bounded by `entries` (rounded up to a multiple of 16) and by `bytes`, whichever
    /// is tighter; it never holds more than `bytes / ENTRY_BYTES` entries.
    pub fn with_bound(entries: usize, bytes: usize) -> Self {
        TokenCache {
            table: Fifo::new(entries, bytes, ENTRY_BYTES),
            seed: random_seed(),
            hits: Striped::new(),
            misses: Striped::new(),
        }
    }

    /// The bound on entries.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// The bound on the memory the cache takes, in bytes: its tables (allocated up front) and
    /// its entries, each accounted as described in the module documentation.
    pub fn capacity_bytes(&self) -> usize {
        self.table.capacity_bytes()
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Accounted bytes of the entries held now (the tables not included).
    pub fn bytes(&self) -> usize {
        self.table.bytes()
    }

    /// What the tables take, allocated whole when the cache is built.
    pub fn table_bytes(&self) -> usize {
        self.table.table_bytes()
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
        }
    }

    /// Forgets everything (the counters stay).
    pub fn clear(&self) {
        self.table.clear();
    }

    /// The bucket of an entry: a seeded hash of its length and its last [`BUCKET_TAIL`] bytes,
    /// which end every token and bare signature with signature bytes (random for every signed
    /// token, so the buckets spread; bytes made up by a caller only ever cost a comparison,
    /// since nothing that fails is kept). Only the bucket: a hit compares every byte.
    fn bucket(&self, bytes: &[u8]) -> u64 {
        let tail = bytes.len().saturating_sub(BUCKET_TAIL);
        hash_bytes(
            self.seed ^ bytes.len() as u64,
            bytes.get(tail..).unwrap_or(bytes),
        )
    }

    /// Whether anything can be kept.
    pub(crate) fn is_on(&self) -> bool {
        !self.table.is_off()
    }

    /// Counts a signature answered from memory (a token found and used).
    pub(crate) fn note_hit(&self) {
        self.hits.add(1);
    }

    /// The entry whose exact bytes are `raw`, whose [`Remembered::verified`] is the token
    /// (not counted: the caller counts the hit when it uses the token).
    pub(crate) fn peek(&self, raw: &str) -> Option<Remembered> {
        let raw = raw.as_bytes();
        self.table
            .get(self.bucket(raw), |e| e.bytes() == raw)
            .map(Remembered)
    }

    /// Remembers a token that passed every time-independent check, built to be remembered
    /// (its text among its strings: a token built without is not remembered).
    pub(crate) fn insert_token(&self, verified: Verified) {
        let raw = verified.token.texts.raw().as_bytes();
        if raw.is_empty() {
            return;
        }
        let hash = self.bucket(raw);
        self.table
            .insert(hash, Arc::new(Entry::new(Kind::Token(verified))));
    }

    /// Counts a signature that went to its algorithm's check (a token not found).
    pub(crate) fn note_miss(&self) {
        self.misses.add(1);
    }

    /// `key.verify(message, signature)`, answered from memory when this exact
    /// (key, `kid`, message, signature) verified before.
    pub fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
        let framed = frame(key, message, signature);
        let hash = self.bucket(&framed);
        if self.table.get(hash, |e| e.bytes() == framed).is_some() {
            self.hits.add(1);
            return true;
        }
        self.note_miss();
        if !key.verify(message, signature) {
            return false;
        }
        let entry = Entry::new(Kind::Signature(framed.into_boxed_slice()));
        self.table.insert(hash, Arc::new(entry));
        true
    }
}

/// The exact bytes of a bare signature entry: a leading 0xff (never the first byte of UTF-8
/// text, so never a token's bytes), then the key's identity (its RFC 7638 thumbprint), the
/// `kid` and the message, each length-framed, then the signature.
fn frame(key: &PublicKey, message: &[u8], signature: &[u8]) -> Vec<u8> {
    let kid = key.kid().as_bytes();
    let mut out = Vec::with_capacity(1 + 32 + 16 + kid.len() + message.len() + signature.len());
    out.push(0xff);
    out.extend_from_slice(key.thumbprint());
    out.extend_from_slice(&(kid.len() as u64).to_be_bytes());
    out.extend_from_slice(kid);
    out.extend_from_slice(&(message.len() as u64).to_be_bytes());
    out.extend_from_slice(message);
    out.extend_from_slice(signature);
    out
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
        let cache = TokenCache::new(64);
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
        // a bare signature is no token
        assert!(cache.peek("hello").is_none());
    }

    #[test]
    fn failures_are_not_remembered() {
        let cache = TokenCache::new(64);
        let k = key(3);
        let mut sig = k.sign_bytes(b"m");
        sig[5] ^= 1;
        assert!(!cache.verify(&k.public(), b"m", &sig));
        assert!(!cache.verify(&k.public(), b"m", &sig));
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded_in_entries_and_bytes_fifo() {
        let bound = 16 * 4096;
        let cache = TokenCache::with_bound(1_000, bound);
        assert_eq!(cache.capacity_bytes(), bound);
        assert!(cache.capacity() < 1_000);
        let k = key(4);
        let msgs: Vec<Vec<u8>> = (0..400u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for m in &msgs {
            assert!(cache.verify(&k.public(), m, &k.sign_bytes(m)));
            assert!(cache.len() <= cache.capacity());
            assert!(cache.bytes() + cache.table.table_bytes() <= bound);
        }
        // each entry: 128 + the 1 + 32 + 8 + 2 + 8 + 4 + 64 = 119 framed bytes (128
        // allocated), and a quarter more; so as many per shard as the shard's budget holds
        assert_eq!(cache.bytes() / cache.len(), 320);
        assert_eq!(cache.len(), 16 * (cache.table.shard_budget() / 320));
        // the first message was evicted long ago: it is verified again (a miss), not refused
        let before = cache.stats().misses;
        assert!(cache.verify(&k.public(), &msgs[0], &k.sign_bytes(&msgs[0])));
        assert_eq!(cache.stats().misses, before + 1);
        assert_eq!(TokenCache::new(1000).capacity(), 1008);
    }

    #[test]
    fn capacity_zero_is_off() {
        let cache = TokenCache::with_bound(0, DEFAULT_CAPACITY_BYTES);
        let k = key(5);
        assert!(cache.verify(&k.public(), b"x", &k.sign_bytes(b"x")));
        assert!(cache.is_empty());
        assert_eq!(TokenCache::with_bound(100, 0).capacity(), 0);
    }
}
