//! X.509-SVID peers: each domain's authorities parsed once per key-set epoch, and validated
//! chains remembered by their exact bytes. The rules themselves are `custody-svid`'s (one URI
//! SAN, leaf not a CA, key usage, a path to an authority of the leaf's own trust domain,
//! validity with the skew), on rustls-webpki.
//!
//! A remembered chain is honoured only while its domain's key set is the one it was validated
//! against (the same epoch) and the request's time is within its validity: otherwise it is
//! validated again.

use std::sync::{Arc, Mutex, PoisonError};

use custody_id::SpiffeId;
use custody_jose::KeyStore;
use custody_policy::PolicyPack;
use custody_svid::{parse_pem_chain, validate, ValidatedSvid, X509Authorities};

use crate::exact::{ExactCache, Weigh};
use crate::index::PackIndex;
use crate::request::{MAX_PEER_CERTIFICATES, MAX_PEER_CERTIFICATE_BYTES};

/// The default bound on remembered chains.
pub const CACHE_ENTRIES: usize = 4_096;

/// The most bytes of remembered chains (their PEM text and leaf DER) held at once.
pub const CACHE_BYTES: usize = 8 << 20;

/// A validated chain as remembered.
struct Known {
    svid: ValidatedSvid,
    leaf: Vec<u8>,
    domain: usize,
    epoch: u64,
}

impl Weigh for Known {
    fn weight(&self) -> usize {
        self.leaf.len() + self.svid.id.as_str().len() + 128
    }
}

/// A domain's authorities as parsed from the key set of one epoch.
type Parsed = (u64, Arc<X509Authorities>);

/// The verifier's X.509 state (see the module documentation).
pub(crate) struct X509State {
    /// Per domain: the epoch of the key set its authorities were parsed from, and them.
    anchors: Mutex<Vec<Option<Parsed>>>,
    chains: ExactCache<Known>,
}

impl std::fmt::Debug for X509State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509State")
            .field("chains", &self.chains)
            .finish()
    }
}

/// The cache key: every certificate's length and text, in order.
fn key_of(pems: &[String]) -> Vec<u8> {
    let mut k = Vec::with_capacity(pems.iter().map(|p| p.len() + 8).sum());
    for p in pems {
        k.extend_from_slice(&(p.len() as u64).to_le_bytes());
        k.extend_from_slice(p.as_bytes());
    }
    k
}

impl X509State {
    pub fn new(domains: usize, capacity: usize) -> Self {
        X509State {
            anchors: Mutex::new(vec![None; domains]),
            chains: ExactCache::new(capacity, CACHE_BYTES),
        }
    }

    /// The authorities of domain `index` as its current key set holds them, and that set's
    /// epoch.
    fn authorities(&self, keys: &KeyStore, index: usize) -> Option<Parsed> {
        let current = keys.domain(index)?;
        let epoch = current.epoch();
        let mut anchors = self.anchors.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Some((e, a))) = anchors.get(index) {
            if *e == epoch {
                return Some((epoch, Arc::clone(a)));
            }
        }
        // authorities that do not parse as certificates verify nothing (the pack loader
        // refuses them before they get here)
        let parsed =
            Arc::new(X509Authorities::from_der(current.x509().to_vec()).unwrap_or_default());
        if let Some(slot) = anchors.get_mut(index) {
            *slot = Some((epoch, Arc::clone(&parsed)));
        }
        Some((epoch, parsed))
    }

    /// Validates `pems` (leaf first) at `now`; returns the proven ID and the leaf's DER.
    pub fn validate(
        &self,
        pack: &PolicyPack,
        index: &PackIndex,
        keys: &KeyStore,
        pems: &[String],
        now: i64,
    ) -> Result<(SpiffeId, Vec<u8>), String> {
        let skew = pack.chain.clock_skew;
        let s = i64::try_from(skew).unwrap_or(i64::MAX);
        let key = self.chains.is_on().then(|| key_of(pems));
        if let Some(known) = key.as_deref().and_then(|k| self.chains.get(k)) {
            let same_keys = keys.with_domain(known.domain, |d| d.epoch()) == Some(known.epoch);
            let in_time = now.saturating_add(s) >= known.svid.not_before
                && now <= known.svid.not_after.saturating_add(s);
            if same_keys && in_time {
                return Ok((known.svid.id.clone(), known.leaf.clone()));
            }
        }
        let ders = parse_pem_chain(pems, MAX_PEER_CERTIFICATES, MAX_PEER_CERTIFICATE_BYTES)
            .map_err(|e| e.to_string())?;
        let mut found = None;
        let svid = validate(
            &ders,
            |td: &str| {
                let (i, _) = index.domain_named(pack, td)?;
                let (epoch, a) = self.authorities(keys, i)?;
                found = Some((i, epoch));
                Some(a)
            },
            now,
            skew,
        )
        .map_err(|e| e.to_string())?;
        let (domain, epoch) = found.ok_or("the trust domain is not declared")?;
        let leaf = ders.into_iter().next().unwrap_or_default();
        if let Some(k) = key {
            let known = Known {
                svid: svid.clone(),
                leaf: leaf.clone(),
                domain,
                epoch,
            };
            self.chains.insert(&k, known);
        }
        Ok((svid.id, leaf))
    }
}
