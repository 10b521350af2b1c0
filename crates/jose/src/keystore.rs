//! The key-source seam: every trust domain's current keys, each set with an epoch.
//!
//! A [`KeyStore`] holds, for each trust domain of a pack, its token keys (JWS) and its Biscuit
//! keys as one [`DomainKeys`] snapshot. A snapshot never changes; a key source (the pack's key
//! files today, a remote JWKS tomorrow) replaces a domain's snapshot whole with
//! [`KeyStore::replace`], and the new one gets a fresh epoch. Readers take the snapshot that is
//! current when they look ([`KeyStore::domain`]) and keep using it for the rest of their check.
//!
//! Epochs come from one process-wide counter, so two snapshots never share one, even across
//! stores: whoever remembers "this key of this domain at epoch `e`" (the verifier's token
//! cache) can tell with one comparison whether the domain's keys are still the ones it saw, and
//! otherwise looks the key up again by `kid` and thumbprint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use custody_id::TrustDomain;

use crate::{KeySet, PublicKey};

/// The next epoch of any snapshot in the process (0 is never handed out).
static EPOCHS: AtomicU64 = AtomicU64::new(1);

fn next_epoch() -> u64 {
    EPOCHS.fetch_add(1, Ordering::Relaxed)
}

/// One domain's keys at one moment. Immutable: a change is a new snapshot with a new epoch.
#[derive(Debug)]
pub struct DomainKeys {
    epoch: u64,
    tokens: KeySet,
    biscuit: KeySet,
    wit: KeySet,
    x509: Arc<[Vec<u8>]>,
    remote: Remote,
}

/// Everything a domain verifies with, as a key source hands it over: token keys, Biscuit keys,
/// WIT keys and X.509 authorities.
#[derive(Clone, Debug, Default)]
pub struct DomainMaterial {
    /// Keys of its JWS tokens (access tokens, Txn-Tokens, JWT-SVIDs).
    pub tokens: KeySet,
    /// Its Biscuit keys.
    pub biscuit: KeySet,
    /// Keys of its WIMSE workload identity tokens: a bundle's `wit-svid` keys and a plain JWK
    /// Set's keys (never a bundle's `jwt-svid` keys).
    pub wit: KeySet,
    /// Its X.509-SVID authorities: CA certificates (DER) from a bundle's `x509-svid` entries
    /// or a `x509_authorities` PEM file. Parsed where certificates are validated.
    pub x509: Vec<Vec<u8>>,
}

/// Whether a domain's keys come (partly) from remote sources, and whether any has delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Remote {
    /// Key files only.
    #[default]
    None,
    /// Remote sources that have never delivered a set: a `kid` absent from the files is
    /// `keys_unavailable`, not `unknown_key`.
    Awaiting,
    /// Remote sources, at least one of which has delivered a set.
    Delivered,
}

impl DomainKeys {
    /// The snapshot's epoch, unique in the process.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The keys the domain signs tokens (JWS) with, looked up by `kid`.
    pub fn tokens(&self) -> &KeySet {
        &self.tokens
    }

    /// The domain's Biscuit keys: roots of its Biscuits and the keys of the hops it attests.
    pub fn biscuit(&self) -> &KeySet {
        &self.biscuit
    }

    /// Whether the domain has remote key sources, and whether one has delivered.
    pub fn remote(&self) -> Remote {
        self.remote
    }

    /// The token key under `kid`.
    pub fn token_key(&self, kid: &str) -> Option<&PublicKey> {
        self.tokens.get(kid)
    }

    /// The domain's WIT keys.
    pub fn wit(&self) -> &KeySet {
        &self.wit
    }

    /// The domain's X.509-SVID authorities (DER certificates).
    pub fn x509(&self) -> &[Vec<u8>] {
        &self.x509
    }

    /// Whether the token key remembered as (`kid`, `thumbprint`) is still one of this
    /// snapshot's and still allows `alg`.
    pub fn still_holds(&self, kid: &str, thumbprint: &[u8; 32], alg: &str) -> bool {
        self.tokens
            .get(kid)
            .is_some_and(|k| k.thumbprint() == thumbprint && k.allows_alg(alg))
    }
}

/// A domain of the store: its name and its current snapshot.
#[derive(Debug)]
struct Slot {
    name: TrustDomain,
    current: ArcSwap<DomainKeys>,
}

/// Called with a domain's position when a token names a `kid` its current keys lack and the
/// domain has remote sources (a key source uses it to refetch; see [`KeyStore::on_miss`]).
pub type MissHook = Box<dyn Fn(usize) + Send + Sync>;

/// Every trust domain's current keys, by position (the pack's declaration order) and by name.
/// Shared across threads; replacing a domain's keys is atomic and never blocks readers.
#[derive(Default)]
pub struct KeyStore {
    slots: Vec<Slot>,
    /// Bumped on every replacement: a reader that saw generation `g` and sees another knows
    /// some domain's keys changed in between.
    generation: AtomicU64,
    miss: std::sync::OnceLock<MissHook>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("slots", &self.slots)
            .field("generation", &self.generation)
            .field("miss_hook", &self.miss.get().is_some())
            .finish()
    }
}

impl KeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a domain with its first keys; returns its position. A name added twice keeps
    /// both positions (the pack refuses a domain declared twice before it gets here).
    pub fn add_domain(&mut self, name: TrustDomain, tokens: KeySet, biscuit: KeySet) -> usize {
        self.add_domain_with(name, tokens, biscuit, Remote::None)
    }

    /// [`KeyStore::add_domain`] for a domain with remote key sources (`remote` says whether
    /// one has delivered yet).
    pub fn add_domain_with(
        &mut self,
        name: TrustDomain,
        tokens: KeySet,
        biscuit: KeySet,
        remote: Remote,
    ) -> usize {
        let material = DomainMaterial {
            tokens,
            biscuit,
            ..DomainMaterial::default()
        };
        self.add_domain_material(name, material, remote)
    }

    /// Adds a domain with all it verifies with; returns its position.
    pub fn add_domain_material(
        &mut self,
        name: TrustDomain,
        material: DomainMaterial,
        remote: Remote,
    ) -> usize {
        self.slots.push(Slot {
            name,
            current: ArcSwap::from_pointee(snapshot(material, remote)),
        });
        self.slots.len() - 1
    }

    /// Installs the hook called on a `kid` miss in a domain with remote sources; only the
    /// first installed hook is kept (returns whether this one was).
    pub fn on_miss(&self, hook: MissHook) -> bool {
        self.miss.set(hook).is_ok()
    }

    /// Reports that a token of the domain at `index` named a `kid` its keys lack. Calls the
    /// miss hook when the domain has remote sources; never blocks on a fetch.
    pub fn note_miss(&self, index: usize) {
        let remote = self.with_domain(index, |d| d.remote != Remote::None);
        if remote == Some(true) {
            if let Some(hook) = self.miss.get() {
                hook(index);
            }
        }
    }

    /// The count of replacements so far (see [`KeyStore::replace`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// How many domains the store holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The current keys of the domain at `index`.
    pub fn domain(&self, index: usize) -> Option<Arc<DomainKeys>> {
        self.slots.get(index).map(|s| s.current.load_full())
    }

    /// `f` on the current keys of the domain at `index`, without taking a reference count
    /// (the hot path of a token-cache hit).
    pub fn with_domain<R>(&self, index: usize, f: impl FnOnce(&DomainKeys) -> R) -> Option<R> {
        let slot = self.slots.get(index)?;
        Some(f(&slot.current.load()))
    }

    /// The name of the domain at `index`.
    pub fn name(&self, index: usize) -> Option<&TrustDomain> {
        self.slots.get(index).map(|s| &s.name)
    }

    /// The position of the domain called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.name.as_str() == name)
    }

    /// Replaces the domain's keys whole (a key source refreshed them); returns the new
    /// snapshot's epoch, or `None` when there is no domain at `index`. Checks that began
    /// before keep the snapshot they took; later ones see the new keys.
    pub fn replace(&self, index: usize, tokens: KeySet, biscuit: KeySet) -> Option<u64> {
        let remote = self.with_domain(index, |d| d.remote)?;
        self.replace_with(index, tokens, biscuit, remote)
    }

    /// [`KeyStore::replace`], also setting whether the domain's remote sources have delivered.
    /// The domain's WIT keys and X.509 authorities stay as they are.
    pub fn replace_with(
        &self,
        index: usize,
        tokens: KeySet,
        biscuit: KeySet,
        remote: Remote,
    ) -> Option<u64> {
        let current = self.domain(index)?;
        let material = DomainMaterial {
            tokens,
            biscuit,
            wit: current.wit.clone(),
            x509: current.x509.to_vec(),
        };
        self.replace_material(index, material, remote)
    }

    /// Replaces all the domain verifies with; returns the new snapshot's epoch.
    pub fn replace_material(
        &self,
        index: usize,
        material: DomainMaterial,
        remote: Remote,
    ) -> Option<u64> {
        let slot = self.slots.get(index)?;
        let next = snapshot(material, remote);
        let epoch = next.epoch;
        slot.current.store(Arc::new(next));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Some(epoch)
    }
}

fn snapshot(m: DomainMaterial, remote: Remote) -> DomainKeys {
    DomainKeys {
        epoch: next_epoch(),
        tokens: m.tokens,
        biscuit: m.biscuit,
        wit: m.wit,
        x509: m.x509.into(),
        remote,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use base64::Engine as _;

    fn set(keys: &[SigningKey]) -> KeySet {
        let mut s = KeySet::new();
        for k in keys {
            s.insert(k.public()).unwrap();
        }
        s
    }

    #[test]
    fn a_replacement_is_a_new_epoch_and_old_snapshots_stay_whole() {
        let a = SigningKey::from_seed("k", [1; 32]);
        let b = SigningKey::from_seed("k", [2; 32]);
        let mut store = KeyStore::new();
        let td = TrustDomain::parse("a.example").unwrap();
        let i = store.add_domain(td, set(std::slice::from_ref(&a)), KeySet::new());
        let before = store.domain(i).unwrap();
        let tp = *a.public().thumbprint();
        assert!(before.still_holds("k", &tp, "EdDSA"));
        let epoch = store.replace(i, set(std::slice::from_ref(&b)), KeySet::new());
        let after = store.domain(i).unwrap();
        assert_eq!(Some(after.epoch()), epoch);
        assert_ne!(before.epoch(), after.epoch());
        // the old snapshot is unchanged; the new one no longer holds `a` under `k`
        assert!(before.still_holds("k", &tp, "EdDSA"));
        assert!(!after.still_holds("k", &tp, "EdDSA"));
        assert!(after.still_holds("k", b.public().thumbprint(), "Ed25519"));
        assert!(!after.still_holds("k", b.public().thumbprint(), "ES256"));
        assert_eq!(store.index_of("a.example"), Some(i));
        assert!(store.replace(9, KeySet::new(), KeySet::new()).is_none());
    }

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key
        let x: [u8; 32] = crate::b64::B64
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap()
            .try_into()
            .unwrap();
        let key = PublicKey::from_bytes("any", &x).unwrap();
        assert_eq!(
            crate::b64::B64.encode(key.thumbprint()),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        // the identity is the key's, not its kid's
        let renamed = PublicKey::from_bytes("other", &x).unwrap();
        assert_eq!(key.thumbprint(), renamed.thumbprint());
    }
}
