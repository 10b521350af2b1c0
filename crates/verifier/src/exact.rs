//! A small bounded memory keyed by exact bytes: the validated X.509-SVID chains and the
//! verified WITs. A hit is the very bytes validated before (the whole key is compared), so it
//! is exactly as strong as the validation it stands for; what the caller must check again on
//! a hit (the key set it was validated under, the time) is in the value.
//!
//! Bounded by entries and by the bytes of keys and values' own reckoning; first in, first out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

/// What a value says it costs besides its key.
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

struct Inner<V> {
    map: HashMap<Box<[u8]>, Arc<V>>,
    order: VecDeque<Box<[u8]>>,
    bytes: usize,
}

/// See the module documentation.
pub(crate) struct ExactCache<V> {
    inner: Mutex<Inner<V>>,
    entries: usize,
    bytes: usize,
}

impl<V> std::fmt::Debug for ExactCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactCache")
            .field("entries", &self.entries)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<V: Weigh> ExactCache<V> {
    /// A cache of at most `entries` entries and `bytes` bytes (0 entries: always empty).
    pub fn new(entries: usize, bytes: usize) -> Self {
        ExactCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            entries,
            bytes,
        }
    }

    pub fn is_on(&self) -> bool {
        self.entries > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        // a poisoned lock (a panic elsewhere while holding it) still holds whole entries
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value remembered for exactly `key`.
    pub fn get(&self, key: &[u8]) -> Option<Arc<V>> {
        if !self.is_on() {
            return None;
        }
        self.lock().map.get(key).cloned()
    }

    /// Remembers `value` for `key`, forgetting the oldest entries while over a bound. An entry
    /// larger than the byte bound alone is not kept.
    pub fn insert(&self, key: &[u8], value: V) {
        let cost = 2 * key.len() + value.weight();
        if !self.is_on() || cost > self.bytes {
            return;
        }
        let mut c = self.lock();
        if let Some(old) = c.map.remove(key) {
            c.bytes = c.bytes.saturating_sub(2 * key.len() + old.weight());
            c.order.retain(|k| &**k != key);
        }
        while c.map.len() >= self.entries || c.bytes + cost > self.bytes {
            let Some(oldest) = c.order.pop_front() else {
                break;
            };
            if let Some(gone) = c.map.remove(&oldest) {
                c.bytes = c.bytes.saturating_sub(2 * oldest.len() + gone.weight());
            }
        }
        let key: Box<[u8]> = key.into();
        c.order.push_back(key.clone());
        c.map.insert(key, Arc::new(value));
        c.bytes += cost;
    }

    /// Entries held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for u32 {
        fn weight(&self) -> usize {
            16
        }
    }

    #[test]
    fn exact_keys_first_in_first_out_within_both_bounds() {
        let c: ExactCache<u32> = ExactCache::new(3, 1 << 20);
        for i in 0..5u32 {
            c.insert(format!("k{i}").as_bytes(), i);
        }
        assert_eq!(c.len(), 3);
        assert!(c.get(b"k0").is_none() && c.get(b"k1").is_none());
        assert_eq!(c.get(b"k4").as_deref(), Some(&4));
        // a prefix or an extension of a key is another key
        assert!(c.get(b"k").is_none() && c.get(b"k44").is_none());
        // the byte bound: each entry costs 2 * 2 + 16 = 20 bytes
        let c: ExactCache<u32> = ExactCache::new(100, 50);
        for i in 0..5u32 {
            c.insert(format!("k{i}").as_bytes(), i);
        }
        assert_eq!(c.len(), 2);
        // replacing a key keeps one entry
        c.insert(b"k4", 9);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(b"k4").as_deref(), Some(&9));
        // off
        let off: ExactCache<u32> = ExactCache::new(0, 50);
        off.insert(b"a", 1);
        assert!(off.get(b"a").is_none());
    }
}
