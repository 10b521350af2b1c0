//! Lookups into the pack that the hot path makes on every token, indexed once per verifier.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use custody_jose::{DomainMaterial, KeyStore, Remote};
use custody_policy::{DomainConfig, PolicyPack};

use crate::fifo::Prehashed;

/// The pack's issuers, by exact `iss` value.
#[derive(Debug, Default)]
pub(crate) struct PackIndex {
    issuers: HashMap<String, usize, BuildHasherDefault<Prehashed>>,
    /// The pack's domains by name (JWT-SVIDs and WITs are keyed by their `sub`'s domain).
    names: HashMap<String, usize, BuildHasherDefault<Prehashed>>,
}

impl PackIndex {
    pub fn new(pack: &PolicyPack) -> Self {
        let mut issuers = HashMap::default();
        let mut names = HashMap::default();
        for (i, d) in pack.domains.iter().enumerate() {
            names.entry(d.name.as_str().to_owned()).or_insert(i);
            for iss in &d.issuers {
                // the first domain declaring an issuer wins, as in a scan (the loader refuses
                // an issuer declared twice anyway)
                issuers.entry(iss.clone()).or_insert(i);
            }
        }
        PackIndex { issuers, names }
    }

    /// The domain called `name` and its index.
    pub fn domain_named<'p>(
        &self,
        pack: &'p PolicyPack,
        name: &str,
    ) -> Option<(usize, &'p DomainConfig)> {
        let i = *self.names.get(name)?;
        Some((i, pack.domains.get(i)?))
    }

    /// The domain declaring `iss` (the same match as `PolicyPack::domain_for_issuer`) and its
    /// index.
    pub fn domain_for_issuer<'p>(
        &self,
        pack: &'p PolicyPack,
        iss: &str,
    ) -> Option<(usize, &'p DomainConfig)> {
        let i = *self.issuers.get(iss)?;
        Some((i, pack.domains.get(i)?))
    }
}

/// A key store seeded with the pack's keys (its key files, as loaded): one slot per domain, in
/// the pack's order, so a domain's index in `pack.domains` is its slot.
pub fn key_store(pack: &PolicyPack) -> KeyStore {
    let mut store = KeyStore::new();
    for d in &pack.domains {
        // a domain with remote sources awaits their first set (`keys_unavailable` until then)
        let remote = if d.sources.is_empty() {
            Remote::None
        } else {
            Remote::Awaiting
        };
        let material = DomainMaterial {
            tokens: d.keys.clone(),
            biscuit: d.biscuit_keys.clone(),
            wit: d.wit_keys.clone(),
            x509: d.x509_authorities.clone(),
        };
        store.add_domain_material(d.name.clone(), material, remote);
    }
    store
}
