//! Check's decision cache (Envoy's ext_authz has none).
//!
//! The key is a SHA-256 digest of the pack version and every request attribute the decision
//! used: the tokens (the whole chain, origin first), the Txn-Token, the audience, the action,
//! the peer, the caller's proofs (certificates, WIT, target URI, method, proof headers) and,
//! only under `--allow-request-time`, the request-supplied time. A request with a one-time
//! proof (a WPT or a DPoP proof) is never answered from the cache nor put in it. An allow lives
//! at most until the earliest `exp` of its chain and `notAfter` of the caller's certificates
//! (skew not added) and at most the configured
//! TTL; a denial lives at most the TTL and is not cached when time alone could turn it into an
//! allow (`not_yet_valid`, `issued_in_future`). A cached entry holds the digest and the
//! decision, never a token.
//!
//! **Bounds.** At most [`Bounds::entries`] entries and [`Bounds::bytes`] bytes, the bytes
//! counted per entry by [`entry_bytes`]: the decision with every string and list it owns (by
//! capacity), plus the entry's share of the two containers at their emptiest ([`TABLE_SHARE`]
//! and [`QUEUE_SHARE`], 327 bytes on 64-bit targets). The containers keep the capacity of the
//! most entries they held since the last reload, so after many small entries have made way for
//! a few large ones the footprint can pass the byte bound by up to that many entries' shares.
//!
//! **Eviction.** When an insert would cross either bound: first the expired entries go (a
//! sweep of the whole cache, run at most once per half a cache of inserts, so its cost is
//! constant per insert), then the oldest inserted entries (FIFO; a hit does not renew an entry,
//! whose life the TTL bounds anyway) until the new entry fits. A decision larger than the byte
//! bound on its own is not cached. A reload empties the cache.

use std::collections::{HashMap, VecDeque};
use std::mem::size_of;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custody_jose::Limits;
use custody_verifier::{ChainSummary, Decision, PolicyPack, Reason, ReasonCode, Request};
use sha2::{Digest as _, Sha256};

/// A cache key.
pub(crate) type Key = [u8; 32];

/// How much the cache holds at most, and for how long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// Entries, at least 1.
    pub entries: usize,
    /// Bytes as [`entry_bytes`] counts them.
    pub bytes: usize,
    /// The longest life of an entry.
    pub ttl: Duration,
}

/// The cache's size after an insert, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub entries: usize,
    pub bytes: usize,
    /// Live entries dropped to make room (expired ones not counted).
    pub evicted: usize,
}

#[derive(Debug)]
struct Entry {
    decision: Arc<Decision>,
    expires: Instant,
    seq: u64,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    /// Keys in insertion order, with the `seq` of the insert; a slot whose entry was removed
    /// or replaced is stale and skipped.
    order: VecDeque<(Key, u64)>,
    seq: u64,
    bytes: usize,
    inserts_since_sweep: usize,
}

/// A bounded map from request digests to decisions.
#[derive(Debug)]
pub(crate) struct DecisionCache {
    inner: Mutex<Inner>,
    bounds: Bounds,
}

impl DecisionCache {
    pub(crate) fn new(bounds: Bounds) -> DecisionCache {
        DecisionCache {
            inner: Mutex::new(Inner::default()),
            bounds: Bounds {
                entries: bounds.entries.max(1),
                ..bounds
            },
        }
    }

    /// The key for `req` decided on pack `version`.
    /// The key of `req` decided on pack `version` with the key store at `keys` (its
    /// generation: a remote source that changes a domain's keys makes earlier entries
    /// unreachable, so no decision outlives the keys it was made with).
    pub(crate) fn key(version: &str, keys: u64, revocations: u64, req: &Request) -> Key {
        let mut h = Sha256::new();
        let mut field = |tag: u8, bytes: &[u8]| {
            h.update([tag]);
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(b'v', version.as_bytes());
        field(b'g', &keys.to_be_bytes());
        // a revocation changes the generation: nothing decided before it is served after it
        field(b'R', &revocations.to_be_bytes());
        for t in &req.tokens {
            field(b't', t.as_bytes());
        }
        if let Some(t) = &req.txn_token {
            field(b'x', t.as_bytes());
        }
        field(b'a', req.audience.as_bytes());
        field(b'o', req.action.as_bytes());
        if let Some(p) = &req.peer {
            field(b'p', p.as_bytes());
        }
        if let Some(n) = req.now {
            field(b'n', &n.to_be_bytes());
        }
        if let Some(r) = &req.resource {
            field(b'r', r.type_name.as_bytes());
            field(b'i', r.id.as_bytes());
        }
        if let Some(c) = &req.context {
            field(b'c', c.to_string().as_bytes());
        }
        for c in &req.peer_certificates {
            field(b'C', c.as_bytes());
        }
        for (tag, v) in [
            (b'W', &req.wit),
            (b'P', &req.wpt),
            (b'D', &req.dpop),
            (b'U', &req.target_uri),
            (b'M', &req.http_method),
        ] {
            if let Some(v) = v {
                field(tag, v.as_bytes());
            }
        }
        if let Some(hs) = &req.proof_headers {
            for (k, v) in hs {
                field(b'H', k.as_bytes());
                field(b'h', v.as_bytes());
            }
        }
        h.finalize().into()
    }

    /// Whether a decision on `req` may be remembered and served again: never for a request
    /// carrying a one-time proof (a WPT, a DPoP proof), nor under a pack whose access tokens
    /// are one-time (`one_time_tokens`), which the verifier must see every time to refuse
    /// their reuse.
    pub(crate) fn cacheable(req: &Request, pack: &PolicyPack) -> bool {
        req.wpt.is_none() && req.dpop.is_none() && !pack.chain.one_time_tokens
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Arc<Decision>> {
        let mut inner = self.inner.lock().ok()?;
        let now = Instant::now();
        match inner.map.get(key) {
            Some(e) if e.expires > now => Some(Arc::clone(&e.decision)),
            Some(_) => {
                inner.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `decision` for `req` if it may be cached; `now` is the unix time it was
    /// decided at. `None` when nothing was stored.
    pub(crate) fn put(
        &self,
        key: Key,
        req: &Request,
        decision: &Decision,
        now: i64,
        limits: &Limits,
    ) -> Option<Usage> {
        let ttl = self.ttl(req, decision, now, limits)?;
        let decision = Arc::new(decision.clone());
        let bytes = entry_bytes(&decision);
        if bytes > self.bounds.bytes {
            return None;
        }
        let mut inner = self.inner.lock().ok()?;
        let now = Instant::now();
        // a replaced entry gives its room back first
        inner.remove(&key);
        let evicted = inner.make_room(bytes, &self.bounds, now);
        inner.insert(key, decision, now + ttl, bytes);
        Some(Usage {
            entries: inner.map.len(),
            bytes: inner.bytes,
            evicted,
        })
    }

    /// Entries and bytes held now.
    #[cfg(test)]
    pub(crate) fn usage(&self) -> Usage {
        self.inner.lock().map_or_else(
            |_| Usage::default(),
            |i| Usage {
                entries: i.map.len(),
                bytes: i.bytes,
                evicted: 0,
            },
        )
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            *inner = Inner::default();
        }
    }

    fn ttl(
        &self,
        req: &Request,
        decision: &Decision,
        now: i64,
        limits: &Limits,
    ) -> Option<Duration> {
        if decision.is_allowed() {
            let exp = earliest_exp(req, limits)?;
            let left = u64::try_from(exp.checked_sub(now)?)
                .ok()
                .filter(|s| *s > 0)?;
            return Some(self.bounds.ttl.min(Duration::from_secs(left)));
        }
        match decision.code() {
            // denials that time lifts are never remembered: a token that becomes valid, a
            // revocation that ends (at its `until`, which bumps no generation)
            Some(ReasonCode::NotYetValid | ReasonCode::IssuedInFuture | ReasonCode::Revoked)
            | None => None,
            Some(_) => Some(self.bounds.ttl),
        }
    }
}

impl Inner {
    fn remove(&mut self, key: &Key) -> bool {
        match self.map.remove(key) {
            Some(e) => {
                self.bytes = self.bytes.saturating_sub(e.bytes);
                true
            }
            None => false,
        }
    }

    fn fits(&self, bytes: usize, bounds: &Bounds) -> bool {
        self.map.len() < bounds.entries && self.bytes.saturating_add(bytes) <= bounds.bytes
    }

    /// Drops expired entries (at most once per half a cache of inserts), then the oldest,
    /// until an entry of `bytes` fits; returns how many live entries were dropped.
    fn make_room(&mut self, bytes: usize, bounds: &Bounds, now: Instant) -> usize {
        if self.fits(bytes, bounds) {
            return 0;
        }
        if self.inserts_since_sweep >= self.map.len() / 2 {
            self.sweep(now);
        }
        let mut evicted = 0;
        while !self.fits(bytes, bounds) {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&key).is_some_and(|e| e.seq == seq) && self.remove(&key) {
                evicted += 1;
            }
        }
        evicted
    }

    fn sweep(&mut self, now: Instant) {
        let mut freed = 0;
        self.map.retain(|_, e| {
            let keep = e.expires > now;
            if !keep {
                freed += e.bytes;
            }
            keep
        });
        self.bytes = self.bytes.saturating_sub(freed);
        self.inserts_since_sweep = 0;
    }

    fn insert(&mut self, key: Key, decision: Arc<Decision>, expires: Instant, bytes: usize) {
        self.seq += 1;
        self.inserts_since_sweep += 1;
        let seq = self.seq;
        self.order.push_back((key, seq));
        self.map.insert(
            key,
            Entry {
                decision,
                expires,
                seq,
                bytes,
            },
        );
        self.bytes = self.bytes.saturating_add(bytes);
        // stale slots are compacted away once they could outnumber the live ones
        if self.order.len() > self.map.len().saturating_mul(2).saturating_add(16) {
            let Inner { map, order, .. } = self;
            order.retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }
}

/// One entry's share of the hash table at its emptiest: hashbrown grows to the next power of
/// two past 8/7 of its entries, so right after growing it holds 16/7 buckets per entry, each
/// the key, the record and a control byte.
pub(crate) const TABLE_SHARE: usize = (size_of::<(Key, Entry)>() + 1) * 16 / 7 + 1;

/// One entry's share of the insertion queue: the queue holds at most twice the live entries
/// (plus 16) before stale slots are compacted away, in a buffer at most twice its length.
pub(crate) const QUEUE_SHARE: usize = 4 * size_of::<(Key, u64)>();

/// The bytes one entry holding `d` is charged: its shares of the table and the queue, the
/// decision's shared allocation (two reference counts and the value) and every string and list
/// the decision owns, by capacity.
pub(crate) fn entry_bytes(d: &Decision) -> usize {
    let fixed = TABLE_SHARE + QUEUE_SHARE + 2 * size_of::<usize>() + size_of::<Decision>();
    let reasons = d.reasons.capacity() * size_of::<Reason>()
        + d.reasons
            .iter()
            .map(|r| {
                let Reason {
                    code: _,
                    hop: _,
                    message,
                } = r;
                message.capacity()
            })
            .sum::<usize>();
    // destructured in full, so a new field fails to compile here until it is counted
    let chain = d.chain.as_ref().map_or(0, |c| {
        let ChainSummary {
            origin,
            actors,
            domains,
            scopes,
            depth: _,
            txn,
            cross_domain: _,
        } = c;
        origin.capacity() + strings(actors) + strings(domains) + strings(scopes) + txn.capacity()
    });
    fixed + reasons + chain + strings(&d.policies)
}

/// A list of strings' heap bytes: the list's buffer and each string's.
fn strings(v: &Vec<String>) -> usize {
    v.capacity() * size_of::<String>() + v.iter().map(String::capacity).sum::<usize>()
}

/// The earliest `exp` among the request's tokens. Only called for an allow, so every token
/// decoded and verified already; `None` (not cacheable) when one has no readable `exp`.
fn earliest_exp(req: &Request, limits: &Limits) -> Option<i64> {
    let tokens = req
        .tokens
        .iter()
        .chain(req.txn_token.as_ref())
        .map(|t| {
            let jws = custody_jose::decode(t, limits).ok()?;
            custody_jose::numeric_date(jws.claims.get("exp")?).ok()
        })
        .try_fold(i64::MAX, |acc, exp| exp.map(|e| acc.min(e)))?;
    if req.peer_certificates.is_empty() {
        return Some(tokens);
    }
    // the caller's certificates too: an allow must not outlive the certificate that proved it
    let ders = custody_svid::parse_pem_chain(
        &req.peer_certificates,
        custody_verifier::MAX_PEER_CERTIFICATES,
        custody_verifier::MAX_PEER_CERTIFICATE_BYTES,
    )
    .ok()?;
    Some(tokens.min(custody_svid::earliest_not_after(&ders)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_verifier::Reason;

    fn deny(code: ReasonCode) -> Decision {
        Decision::deny(Reason::new(code, None, "x"), None)
    }

    fn req(tokens: &[&str]) -> Request {
        Request {
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
            audience: "spiffe://c.example/orders".into(),
            action: "orders:read".into(),
            ..Request::default()
        }
    }

    #[test]
    fn keys_cover_every_attribute() {
        let base = req(&["a"]);
        let k = DecisionCache::key("v1", 0, 0, &base);
        assert_ne!(k, DecisionCache::key("v2", 0, 0, &base));
        assert_ne!(
            k,
            DecisionCache::key("v1", 1, 0, &base),
            "keys changed since"
        );
        assert_ne!(
            k,
            DecisionCache::key("v1", 0, 1, &base),
            "a revocation since"
        );
        let mut other = base.clone();
        other.peer = Some("spiffe://b.example/x".into());
        assert_ne!(k, DecisionCache::key("v1", 0, 0, &other));
        let mut other = base.clone();
        other.action = "orders:write".into();
        assert_ne!(k, DecisionCache::key("v1", 0, 0, &other));
        // field boundaries matter: ["ab"] differs from ["a", "b"]
        assert_ne!(
            DecisionCache::key("v1", 0, 0, &req(&["ab"])),
            DecisionCache::key("v1", 0, 0, &req(&["a", "b"]))
        );
    }

    /// An allow made on a client certificate lives no longer than the certificate: its
    /// `notAfter` bounds the entry as a token's `exp` does; a certificate that cannot be read
    /// keeps the decision out of the cache.
    #[test]
    fn an_allow_does_not_outlive_the_callers_certificate() {
        let c = cache(10, 1 << 20);
        let now = 1_800_000_000;
        let key = custody_jose::SigningKey::from_seed("k", [3; 32]);
        let token = custody_jose::sign(&key, None, &serde_json::json!({"exp": now + 300})).unwrap();
        let cert = |not_after: i64| {
            let k = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
            p.not_before = time::OffsetDateTime::from_unix_timestamp(now - 60).unwrap();
            p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
            p.self_signed(&k).unwrap().pem()
        };
        let f = custody_tests::Fixture::standard();
        let allow = f.verify(&custody_tests::request(custody_tests::chain(&f)));
        assert!(allow.is_allowed());
        let limits = Limits::default();
        let mut r = req(&[token.as_str()]);
        assert_eq!(
            c.ttl(&r, &allow, now, &limits),
            Some(Duration::from_secs(30))
        );
        r.peer_certificates = vec![cert(now + 5)];
        assert_eq!(
            c.ttl(&r, &allow, now, &limits),
            Some(Duration::from_secs(5))
        );
        r.peer_certificates = vec![cert(now + 3600), cert(now + 7)];
        assert_eq!(
            c.ttl(&r, &allow, now, &limits),
            Some(Duration::from_secs(7))
        );
        r.peer_certificates =
            vec!["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----".into()];
        assert_eq!(c.ttl(&r, &allow, now, &limits), None);
    }

    fn cache(entries: usize, bytes: usize) -> DecisionCache {
        DecisionCache::new(Bounds {
            entries,
            bytes,
            ttl: Duration::from_secs(30),
        })
    }

    /// What one cached bad_signature denial is charged (as stored: a clone).
    fn unit() -> usize {
        entry_bytes(&deny(ReasonCode::BadSignature).clone())
    }

    fn put(c: &DecisionCache, i: u8) -> Option<Usage> {
        c.put(
            [i; 32],
            &req(&["a"]),
            &deny(ReasonCode::BadSignature),
            0,
            &Limits::default(),
        )
    }

    #[test]
    fn denials_are_cached_but_not_time_healable_ones() {
        let c = cache(10, 1 << 20);
        let r = req(&["a"]);
        let limits = Limits::default();
        c.put([1; 32], &r, &deny(ReasonCode::BadSignature), 0, &limits);
        c.put([2; 32], &r, &deny(ReasonCode::NotYetValid), 0, &limits);
        c.put([3; 32], &r, &deny(ReasonCode::Revoked), 0, &limits);
        assert!(c.get(&[1; 32]).is_some());
        assert!(c.get(&[2; 32]).is_none());
        assert!(c.get(&[3; 32]).is_none(), "a revocation ends at its time");
    }

    #[test]
    fn the_entry_bound_evicts_the_oldest() {
        let c = cache(3, 1 << 20);
        for i in 0..3u8 {
            assert_eq!(put(&c, i).unwrap().evicted, 0);
        }
        let u = put(&c, 3).unwrap();
        assert_eq!((u.entries, u.bytes, u.evicted), (3, 3 * unit(), 1));
        assert!(c.get(&[0; 32]).is_none());
        for i in 1..4u8 {
            assert!(c.get(&[i; 32]).is_some(), "{i}");
        }
        for i in 4..100u8 {
            assert_eq!(put(&c, i).unwrap().entries, 3);
        }
        assert!(c.get(&[99; 32]).is_some());
    }

    #[test]
    fn the_byte_bound_evicts_the_oldest() {
        // exactly three entries' worth: three fit, the fourth pushes the first out
        let c = cache(100, 3 * unit());
        for i in 0..3u8 {
            assert_eq!(put(&c, i).unwrap().evicted, 0);
        }
        assert_eq!(c.usage().bytes, 3 * unit());
        let u = put(&c, 3).unwrap();
        assert_eq!((u.entries, u.bytes, u.evicted), (3, 3 * unit(), 1));
        assert!(c.get(&[0; 32]).is_none());
        assert!(c.get(&[3; 32]).is_some());
        // one byte less: only two fit
        let c = cache(100, 3 * unit() - 1);
        for i in 0..3u8 {
            put(&c, i);
        }
        assert_eq!(c.usage().entries, 2);
        assert!(c.get(&[0; 32]).is_none());
    }

    #[test]
    fn a_decision_larger_than_the_byte_bound_is_not_cached() {
        let c = cache(100, unit() - 1);
        assert_eq!(put(&c, 1), None);
        assert_eq!(c.usage(), Usage::default());
        assert!(c.get(&[1; 32]).is_none());
    }

    #[test]
    fn bytes_follow_what_a_decision_owns() {
        let short = deny(ReasonCode::BadSignature);
        let long = Decision::deny(
            Reason::new(ReasonCode::BadSignature, None, "m".repeat(10_000)),
            None,
        );
        let grown = entry_bytes(&long.clone()) - entry_bytes(&short.clone());
        assert_eq!(grown, 10_000 - 1);
        let c = cache(100, 1 << 20);
        let r = req(&["a"]);
        let u = c.put([1; 32], &r, &long, 0, &Limits::default()).unwrap();
        assert_eq!(u.bytes, entry_bytes(&long.clone()));
        // the same key again replaces the entry and its bytes
        let u = c.put([1; 32], &r, &short, 0, &Limits::default()).unwrap();
        assert_eq!((u.entries, u.bytes), (1, unit()));
        c.clear();
        assert_eq!(c.usage(), Usage::default());
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn container_shares_are_as_documented() {
        assert_eq!(TABLE_SHARE + QUEUE_SHARE, 327);
    }

    #[test]
    fn expired_entries_go_before_live_ones() {
        let bounds = Bounds {
            entries: 2,
            bytes: 1 << 20,
            ttl: Duration::from_secs(30),
        };
        let mut inner = Inner::default();
        let t0 = Instant::now();
        let d = Arc::new(deny(ReasonCode::BadSignature));
        // the older entry is live, the newer one has expired
        inner.insert([1; 32], Arc::clone(&d), t0 + Duration::from_secs(60), 10);
        inner.insert([2; 32], Arc::clone(&d), t0 + Duration::from_secs(1), 10);
        let evicted = inner.make_room(10, &bounds, t0 + Duration::from_secs(10));
        assert_eq!(evicted, 0);
        assert!(inner.map.contains_key(&[1; 32]));
        assert!(!inner.map.contains_key(&[2; 32]));
        assert_eq!(inner.bytes, 10);
    }
}
