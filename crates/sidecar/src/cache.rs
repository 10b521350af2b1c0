//! Check's decision cache (Envoy's ext_authz has none).
//!
//! The key is a SHA-256 digest of the pack version and every request attribute the decision
//! used: the tokens (the whole chain, origin first), the Txn-Token, the audience, the action,
//! the peer and, only under `--allow-request-time`, the request-supplied time. An allow lives
//! at most until the earliest `exp` of its chain (skew not added) and at most the configured
//! TTL; a denial lives at most the TTL and is not cached when time alone could turn it into an
//! allow (`not_yet_valid`, `issued_in_future`). The cache holds at most `capacity` entries,
//! expired ones are dropped first, then the oldest.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custody_jose::Limits;
use custody_verifier::{Decision, ReasonCode, Request};
use sha2::{Digest as _, Sha256};

/// A cache key.
pub(crate) type Key = [u8; 32];

#[derive(Debug)]
struct Entry {
    decision: Arc<Decision>,
    expires: Instant,
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    order: VecDeque<(Key, u64)>,
    seq: u64,
}

/// A bounded map from request digests to decisions.
#[derive(Debug)]
pub(crate) struct DecisionCache {
    inner: Mutex<Inner>,
    capacity: usize,
    max_ttl: Duration,
}

impl DecisionCache {
    pub(crate) fn new(capacity: usize, max_ttl: Duration) -> DecisionCache {
        DecisionCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            max_ttl,
        }
    }

    /// The key for `req` decided on pack `version`.
    pub(crate) fn key(version: &str, req: &Request) -> Key {
        let mut h = Sha256::new();
        let mut field = |tag: u8, bytes: &[u8]| {
            h.update([tag]);
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(b'v', version.as_bytes());
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
        h.finalize().into()
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Arc<Decision>> {
        let mut inner = self.inner.lock().ok()?;
        let now = Instant::now();
        match inner.map.get(key) {
            Some(e) if e.expires > now => Some(Arc::clone(&e.decision)),
            Some(_) => {
                inner.map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `decision` for `req` if it may be cached; `now` is the unix time it was
    /// decided at.
    pub(crate) fn put(
        &self,
        key: Key,
        req: &Request,
        decision: &Decision,
        now: i64,
        limits: &Limits,
    ) {
        let Some(ttl) = self.ttl(req, decision, now, limits) else {
            return;
        };
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let now = Instant::now();
        if inner.map.len() >= self.capacity {
            evict(&mut inner, self.capacity, now);
        }
        inner.seq += 1;
        let seq = inner.seq;
        inner.order.push_back((key, seq));
        inner.map.insert(
            key,
            Entry {
                decision: Arc::new(decision.clone()),
                expires: now + ttl,
                seq,
            },
        );
        if inner.order.len() > self.capacity.saturating_mul(2) {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or(0)
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.map.clear();
            inner.order.clear();
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
            return Some(self.max_ttl.min(Duration::from_secs(left)));
        }
        match decision.code() {
            Some(ReasonCode::NotYetValid | ReasonCode::IssuedInFuture) | None => None,
            Some(_) => Some(self.max_ttl),
        }
    }
}

/// Drops expired entries, then the oldest, until there is room for one more.
fn evict(inner: &mut Inner, capacity: usize, now: Instant) {
    inner.map.retain(|_, e| e.expires > now);
    while inner.map.len() >= capacity {
        let Some((k, seq)) = inner.order.pop_front() else {
            break;
        };
        if inner.map.get(&k).is_some_and(|e| e.seq == seq) {
            inner.map.remove(&k);
        }
    }
}

/// The earliest `exp` among the request's tokens. Only called for an allow, so every token
/// decoded and verified already; `None` (not cacheable) when one has no readable `exp`.
fn earliest_exp(req: &Request, limits: &Limits) -> Option<i64> {
    req.tokens
        .iter()
        .chain(req.txn_token.as_ref())
        .map(|t| {
            let jws = custody_jose::decode(t, limits).ok()?;
            jws.claims.get("exp")?.as_i64()
        })
        .try_fold(i64::MAX, |acc, exp| exp.map(|e| acc.min(e)))
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
        let k = DecisionCache::key("v1", &base);
        assert_ne!(k, DecisionCache::key("v2", &base));
        let mut other = base.clone();
        other.peer = Some("spiffe://b.example/x".into());
        assert_ne!(k, DecisionCache::key("v1", &other));
        let mut other = base.clone();
        other.action = "orders:write".into();
        assert_ne!(k, DecisionCache::key("v1", &other));
        // field boundaries matter: ["ab"] differs from ["a", "b"]
        assert_ne!(
            DecisionCache::key("v1", &req(&["ab"])),
            DecisionCache::key("v1", &req(&["a", "b"]))
        );
    }

    #[test]
    fn denials_are_cached_but_not_time_healable_ones() {
        let c = DecisionCache::new(10, Duration::from_secs(30));
        let r = req(&["a"]);
        let limits = Limits::default();
        c.put([1; 32], &r, &deny(ReasonCode::BadSignature), 0, &limits);
        c.put([2; 32], &r, &deny(ReasonCode::NotYetValid), 0, &limits);
        assert!(c.get(&[1; 32]).is_some());
        assert!(c.get(&[2; 32]).is_none());
    }

    #[test]
    fn bounded() {
        let c = DecisionCache::new(3, Duration::from_secs(30));
        let r = req(&["a"]);
        let limits = Limits::default();
        for i in 0..10u8 {
            c.put([i; 32], &r, &deny(ReasonCode::BadSignature), 0, &limits);
            assert!(c.len() <= 3);
        }
        assert!(c.get(&[9; 32]).is_some());
        assert!(c.get(&[0; 32]).is_none());
    }
}
