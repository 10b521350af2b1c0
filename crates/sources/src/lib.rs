//! Remote key sources for custody: the `jwks_uri`, `discovery` and `spiffe_bundle` entries of
//! a pack's `domain` blocks, fetched into the verifier's [`KeyStore`] (DESIGN.md, "Remote key
//! sources").
//!
//! The verifier stays synchronous: it only reads the key store. [`KeySources`] fills it, on
//! whatever tokio runtime the embedder drives it from:
//!
//! - [`KeySources::refresh_all`] fetches every source once (at start; `custody check` and
//!   `custody verify` do it and nothing else);
//! - [`KeySources::run`] refreshes in the background for as long as it is polled: each source
//!   at its `refresh` (shortened or lengthened, within 30 s to 24 h, by a bundle's
//!   `spiffe_refresh_hint` and by `Cache-Control: max-age`), a failed one again after a
//!   back-off (1 s doubling up to `refresh`), and a domain at once when a token names a `kid` it
//!   lacks (at most once per 30 s per domain; the fetch at start does not count);
//! - [`KeySources::settle`] waits for such an unknown-`kid` refetch: every request that missed
//!   waits on the same fetch (single flight), then may decide again.
//!
//! A domain's token keys are the union of its key files and its sources' last good sets. A
//! fetch that fails or is refused (not 200, over 1 MiB, over 5 s, not strict JSON, a key set
//! error, a `kid` that another of the domain's sources or files holds as a different key, a
//! bundle whose `spiffe_sequence` goes backwards, a metadata document whose `issuer` differs)
//! keeps the last good set; a set older than `max_key_age` is dropped. When a key leaves the
//! union, the store's new snapshot no longer holds it, so nothing verified under it (the
//! verifier's token cache included) is accepted again.
//!
//! ```no_run
//! # async fn gateway(pack: custody_policy::PolicyPack) {
//! use std::sync::Arc;
//! let verifier = Arc::new(custody_verifier::Verifier::new(pack.clone()));
//! let sources = custody_sources::KeySources::new(&pack, verifier.key_store().clone(), None);
//! sources.refresh_all().await;          // the first sets, before serving
//! tokio::spawn(sources.clone().run());  // then in the background, on the gateway's runtime
//! # }
//! ```
#![forbid(unsafe_code)]

mod fetch;
mod status;

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use custody_jose::{DomainMaterial, KeySet, KeyStore, ParsedKeySet, Remote};
use custody_policy::{PolicyPack, SourceKind, MAX_REFRESH, MIN_REFRESH};
use reqwest::Client;

pub use fetch::{FetchError, FETCH_TIMEOUT, MAX_BODY};
pub use status::{SourceEvent, SourceStatus};

/// At most one unknown-`kid` refetch of a domain per this long (DESIGN.md).
pub const MISS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// The first retry after a failure; each further failure doubles it, up to `refresh`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Called with each fetch's outcome (the sidecar logs them).
pub type EventSink = Arc<dyn Fn(&SourceEvent) + Send + Sync>;

/// A pack's remote key sources, feeding one key store. Cheap to clone (shared).
#[derive(Clone)]
pub struct KeySources {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeySources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySources")
            .field("sources", &self.status())
            .finish()
    }
}

struct Inner {
    store: Arc<KeyStore>,
    domains: Vec<Domain>,
    max_key_age: Duration,
    wake: tokio::sync::Notify,
    events: Mutex<Option<EventSink>>,
}

struct Domain {
    /// Position in the key store.
    index: usize,
    name: String,
    file_tokens: KeySet,
    file_biscuit: KeySet,
    /// The WIT keys and X.509 authorities of its key files.
    file_wit: KeySet,
    file_x509: Vec<Vec<u8>>,
    refresh: Duration,
    ca: Option<Vec<u8>>,
    client: Result<Client, FetchError>,
    sources: Vec<Source>,
    /// Held for the length of a fetch round: one round per domain at a time.
    round: tokio::sync::Mutex<()>,
    miss: Mutex<Miss>,
}

#[derive(Default)]
struct Miss {
    /// When the last unknown-`kid` refetch was granted.
    last: Option<Instant>,
    /// A refetch was granted and has not started yet.
    pending: bool,
}

struct Source {
    kind: SourceKind,
    url: String,
    state: Mutex<State>,
}

#[derive(Clone)]
struct State {
    good: Option<Good>,
    /// Whether a set was ever taken from this source (since the pack first named it).
    delivered: bool,
    failures: u64,
    consecutive: u32,
    last_error: Option<String>,
    last_success: Option<SystemTime>,
    next_due: Instant,
    /// A `discovery` source's `jwks_uri`, from its last metadata document.
    resolved: Option<String>,
    /// Fetches so far.
    fetches: u64,
}

#[derive(Clone)]
struct Good {
    keys: KeySet,
    /// Its WIT keys (a bundle's `wit-svid` keys; a plain JWK Set's keys) and X.509
    /// authorities (a bundle's `x509-svid` entries).
    wit: KeySet,
    x509: Vec<Vec<u8>>,
    taken: Instant,
    sequence: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KeySources {
    /// The sources of `pack`, feeding `store` (built from `pack`, so its domains are the pack's
    /// in order: `custody_verifier::Verifier::key_store`). With `previous` (the sources of the
    /// pack this one replaces), each source the new pack still names (same domain, kind, URL
    /// and `ca`) keeps its last good set and schedule: a reload loses no fetched key it still
    /// needs. The store is updated at once with what is carried over.
    pub fn new(pack: &PolicyPack, store: Arc<KeyStore>, previous: Option<&KeySources>) -> Self {
        let now = Instant::now();
        let domains = pack
            .domains
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.sources.is_empty())
            .map(|(index, d)| {
                let ca = d.ca.as_ref().map(|c| c.pem.clone());
                let old = previous.and_then(|p| {
                    p.inner
                        .domains
                        .iter()
                        .find(|o| o.name == d.name.as_str() && o.ca == ca)
                });
                let sources = d
                    .sources
                    .iter()
                    .map(|s| {
                        let carried = old
                            .and_then(|o| {
                                o.sources
                                    .iter()
                                    .find(|x| x.kind == s.kind && x.url == s.url)
                            })
                            .map(|x| lock(&x.state).clone());
                        Source {
                            kind: s.kind,
                            url: s.url.clone(),
                            state: Mutex::new(carried.unwrap_or(State {
                                good: None,
                                delivered: false,
                                failures: 0,
                                consecutive: 0,
                                last_error: None,
                                last_success: None,
                                next_due: now,
                                resolved: None,
                                fetches: 0,
                            })),
                        }
                    })
                    .collect();
                Domain {
                    index,
                    name: d.name.as_str().to_owned(),
                    file_tokens: d.keys.clone(),
                    file_biscuit: d.biscuit_keys.clone(),
                    file_wit: d.wit_keys.clone(),
                    file_x509: d.x509_authorities.clone(),
                    refresh: Duration::from_secs(d.refresh),
                    client: fetch::client(ca.as_deref()),
                    ca,
                    sources,
                    round: tokio::sync::Mutex::new(()),
                    miss: Mutex::new(Miss::default()),
                }
            })
            .collect();
        let inner = Arc::new(Inner {
            store,
            domains,
            max_key_age: Duration::from_secs(pack.chain.max_key_age),
            wake: tokio::sync::Notify::new(),
            events: Mutex::new(None),
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        inner.store.on_miss(Box::new(move |index| {
            if let Some(inner) = weak.upgrade() {
                inner.miss(index);
            }
        }));
        for d in &inner.domains {
            inner.publish(d);
        }
        KeySources { inner }
    }

    /// Sends every fetch's outcome to `sink` from now on.
    pub fn on_event(&self, sink: EventSink) {
        *lock(&self.inner.events) = Some(sink);
    }

    /// Whether the pack names any remote source.
    pub fn is_empty(&self) -> bool {
        self.inner.domains.is_empty()
    }

    /// The key store fed.
    pub fn store(&self) -> &Arc<KeyStore> {
        &self.inner.store
    }

    /// Fetches every source once, each domain's concurrently, and updates the store. Does not
    /// count against the unknown-`kid` refetch budget.
    pub async fn refresh_all(&self) {
        let rounds = self.inner.domains.iter().map(|d| self.inner.round(d, true));
        join_all(rounds).await;
    }

    /// Refreshes in the background, for as long as it is polled (spawn it on the runtime that
    /// should do the fetching; drop or abort the task to stop).
    pub async fn run(self) {
        loop {
            let now = Instant::now();
            let due = self
                .inner
                .domains
                .iter()
                .filter(|d| d.pending() || d.due(now));
            join_all(due.map(|d| self.inner.round(d, false))).await;
            // sets past `max_key_age` leave the store on time
            for d in &self.inner.domains {
                self.inner.publish(d);
            }
            let next = self.inner.next_wake(Instant::now());
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                () = self.inner.wake.notified() => {}
            }
        }
    }

    /// Waits for the unknown-`kid` refetches granted so far, and any round in progress, to
    /// end: the caller of a request denied `unknown_key` or `keys_unavailable` then decides
    /// again if [`KeyStore::generation`] moved. Runs a granted refetch itself when nothing else
    /// has started it, so it works without [`KeySources::run`] too. Bounded by the fetch
    /// timeout.
    pub async fn settle(&self) {
        let waits = self
            .inner
            .domains
            .iter()
            .filter(|d| d.pending() || d.round.try_lock().is_err())
            .map(|d| self.inner.round(d, false));
        join_all(waits).await;
    }

    /// Each source's state, for `/metrics`, logs and `custody check`.
    pub fn status(&self) -> Vec<SourceStatus> {
        let mut out = Vec::new();
        for d in &self.inner.domains {
            for s in &d.sources {
                let st = lock(&s.state);
                out.push(SourceStatus {
                    domain: d.name.clone(),
                    kind: s.kind,
                    url: s.url.clone(),
                    keys: st.good.as_ref().map(|g| g.keys.len()),
                    sequence: st.good.as_ref().and_then(|g| g.sequence),
                    last_success: st.last_success,
                    failures: st.failures,
                    consecutive_failures: st.consecutive,
                    last_error: st.last_error.clone(),
                    jwks_uri: st.resolved.clone(),
                    fetches: st.fetches,
                });
            }
        }
        out
    }
}

/// Runs the futures concurrently (on the current task) and waits for all.
async fn join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    futures_util::future::join_all(futures).await;
}

impl Domain {
    fn pending(&self) -> bool {
        lock(&self.miss).pending
    }

    fn due(&self, now: Instant) -> bool {
        self.sources.iter().any(|s| lock(&s.state).next_due <= now)
    }
}

impl Inner {
    /// A token named a `kid` the domain at store position `index` lacks: grant a refetch
    /// unless one was granted in the last 30 s.
    fn miss(&self, index: usize) {
        let Some(d) = self.domains.iter().find(|d| d.index == index) else {
            return;
        };
        let mut miss = lock(&d.miss);
        if miss.pending
            || miss
                .last
                .is_some_and(|t| t.elapsed() < MISS_REFETCH_INTERVAL)
        {
            return;
        }
        miss.pending = true;
        miss.last = Some(Instant::now());
        drop(miss);
        self.wake.notify_one();
    }

    /// One fetch round of `d`: every source when `all` or a refetch was granted, else the due
    /// ones. A round already under way is waited for instead (single flight).
    async fn round(&self, d: &Domain, all: bool) {
        let _guard = match d.round.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // another round is fetching: wait for it, and its keys
                let _wait = d.round.lock().await;
                if !d.pending() {
                    return;
                }
                // a refetch granted while that round was already past its fetches: run it
                drop(_wait);
                return Box::pin(self.round(d, all)).await;
            }
        };
        let all = {
            let mut miss = lock(&d.miss);
            let granted = miss.pending;
            miss.pending = false;
            all || granted
        };
        let now = Instant::now();
        let mut fetches = Vec::new();
        for s in &d.sources {
            if all || lock(&s.state).next_due <= now {
                fetches.push(self.fetch_source(d, s));
            }
        }
        join_all(fetches.into_iter()).await;
        self.publish(d);
    }

    async fn fetch_source(&self, d: &Domain, s: &Source) {
        let result = match &d.client {
            Ok(client) => fetch_keys(client, s).await,
            Err(e) => Err(e.clone()),
        };
        let result = result.and_then(|(parsed, max_age, resolved)| {
            let keys = self.accept(d, s, &parsed)?;
            Ok((keys, parsed, max_age, resolved))
        });
        let now = Instant::now();
        let event = {
            let mut st = lock(&s.state);
            st.fetches += 1;
            match result {
                Ok((keys, parsed, max_age, resolved)) => {
                    let interval = interval(d.refresh, parsed.refresh_hint, max_age);
                    let count = keys.len();
                    let (wit, x509) = match parsed.bundle {
                        true => (parsed.wit_keys.clone(), parsed.x509.clone()),
                        false => (keys.clone(), Vec::new()),
                    };
                    st.good = Some(Good {
                        keys,
                        wit,
                        x509,
                        taken: now,
                        sequence: parsed.sequence,
                    });
                    st.delivered = true;
                    st.consecutive = 0;
                    st.last_error = None;
                    st.last_success = Some(SystemTime::now());
                    st.next_due = now + interval;
                    if resolved.is_some() {
                        st.resolved = resolved;
                    }
                    SourceEvent::fetched(&d.name, s.kind, &s.url, count, parsed.sequence, interval)
                }
                Err(e) => {
                    st.failures += 1;
                    st.consecutive = st.consecutive.saturating_add(1);
                    let backoff = FIRST_BACKOFF
                        .saturating_mul(1u32 << st.consecutive.saturating_sub(1).min(16))
                        .min(d.refresh);
                    st.next_due = now + backoff;
                    st.last_error = Some(e.0.clone());
                    SourceEvent::failed(&d.name, s.kind, &s.url, e.0, st.good.is_some(), backoff)
                }
            }
        };
        let sink = lock(&self.events).clone();
        if let Some(sink) = sink {
            sink(&event);
        }
    }

    /// The token keys of a fetched set, if the domain can take them: its sequence must not go
    /// backwards, and no `kid` may name a different key in the domain's files or other
    /// sources.
    fn accept(&self, d: &Domain, s: &Source, parsed: &ParsedKeySet) -> Result<KeySet, FetchError> {
        let previous = lock(&s.state).good.as_ref().and_then(|g| g.sequence);
        match (previous, parsed.sequence) {
            (Some(old), Some(new)) if new < old => {
                return Err(FetchError(format!(
                    "refused bundle: `spiffe_sequence` went backwards ({new} after {old})"
                )))
            }
            (Some(old), None) => {
                return Err(FetchError(format!(
                    "refused bundle: it had `spiffe_sequence` {old} and now has none"
                )))
            }
            _ => {}
        }
        for key in parsed.keys.keys() {
            let clash = |set: &KeySet| {
                set.get(key.kid())
                    .is_some_and(|other| other.thumbprint() != key.thumbprint())
            };
            if clash(&d.file_tokens) {
                return Err(FetchError(format!(
                    "refused key set: `kid` `{}` is a different key in the domain's key files",
                    key.kid()
                )));
            }
            for other in d.sources.iter().filter(|o| !std::ptr::eq(*o, s)) {
                let st = lock(&other.state);
                if st.good.as_ref().is_some_and(|g| clash(&g.keys)) {
                    return Err(FetchError(format!(
                        "refused key set: `kid` `{}` is a different key at `{}`",
                        key.kid(),
                        other.url
                    )));
                }
            }
        }
        if let Err(e) = custody_svid::X509Authorities::from_der(parsed.x509.clone()) {
            return Err(FetchError(format!(
                "refused bundle: an `x509-svid` authority: {e}"
            )));
        }
        Ok(parsed.keys.clone())
    }

    /// Puts the domain's current union in the store (when it changed): files first, then each
    /// source's last good set younger than `max_key_age` (older ones are dropped here).
    fn publish(&self, d: &Domain) {
        let mut tokens = d.file_tokens.clone();
        let mut wit = d.file_wit.clone();
        let mut x509 = d.file_x509.clone();
        let mut delivered = false;
        for s in &d.sources {
            let mut st = lock(&s.state);
            delivered |= st.delivered;
            if st
                .good
                .as_ref()
                .is_some_and(|g| g.taken.elapsed() > self.max_key_age)
            {
                st.good = None;
                st.last_error = Some(format!(
                    "last good key set dropped: older than `max_key_age` ({} s)",
                    self.max_key_age.as_secs()
                ));
            }
            let Some(good) = &st.good else { continue };
            for key in good.keys.keys() {
                if tokens.get(key.kid()).is_none() {
                    // `accept` refused any clash, so a kid present is the same key
                    let _ = tokens.insert(key.clone());
                }
            }
            for key in good.wit.keys() {
                // a WIT `kid` another source or file already names keeps the first key
                if wit.get(key.kid()).is_none() {
                    let _ = wit.insert(key.clone());
                }
            }
            for der in &good.x509 {
                if !x509.contains(der) {
                    x509.push(der.clone());
                }
            }
        }
        let remote = if delivered {
            Remote::Delivered
        } else {
            Remote::Awaiting
        };
        let same = self.store.with_domain(d.index, |cur| {
            cur.tokens() == &tokens
                && cur.wit() == &wit
                && cur.x509() == x509.as_slice()
                && cur.remote() == remote
        });
        if same == Some(false) {
            let material = DomainMaterial {
                tokens,
                biscuit: d.file_biscuit.clone(),
                wit,
                x509,
            };
            self.store.replace_material(d.index, material, remote);
        }
    }

    /// When the background loop must look again: the next source due, or the next set to
    /// pass `max_key_age`; at most `MIN_REFRESH` away.
    fn next_wake(&self, now: Instant) -> Instant {
        let mut next = now + Duration::from_secs(MIN_REFRESH);
        for d in &self.domains {
            for s in &d.sources {
                let st = lock(&s.state);
                next = next.min(st.next_due);
                if let Some(g) = &st.good {
                    next = next.min(g.taken + self.max_key_age + Duration::from_millis(1));
                }
            }
        }
        next.max(now + Duration::from_millis(10))
    }
}

/// The refresh interval after a success: `refresh`, or the smaller of the bundle's hint and
/// the response's `max-age` when given, within 30 s to 24 h.
fn interval(refresh: Duration, hint: Option<u64>, max_age: Option<u64>) -> Duration {
    let given = match (hint, max_age) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let secs = given.unwrap_or(refresh.as_secs());
    Duration::from_secs(secs.clamp(MIN_REFRESH, MAX_REFRESH))
}

/// Fetches one source's key set: the set, the response's `max-age`, and for `discovery` the
/// `jwks_uri` its metadata named.
async fn fetch_keys(
    client: &Client,
    s: &Source,
) -> Result<(ParsedKeySet, Option<u64>, Option<String>), FetchError> {
    let (url, resolved) = match s.kind {
        SourceKind::Discovery => {
            let jwks_uri = fetch::discover(client, &s.url).await?;
            (jwks_uri.clone(), Some(jwks_uri))
        }
        SourceKind::JwksUri | SourceKind::SpiffeBundle => (s.url.clone(), None),
    };
    let body = fetch::get(client, &url)
        .await?
        .ok_or_else(|| FetchError(format!("HTTP status 404 Not Found at `{url}`")))?;
    let parsed = fetch::key_set(&body.bytes)?;
    Ok((parsed, body.max_age, resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_stay_within_bounds() {
        let five = Duration::from_secs(300);
        assert_eq!(interval(five, None, None), five);
        assert_eq!(interval(five, Some(60), None), Duration::from_secs(60));
        assert_eq!(interval(five, Some(600), Some(90)), Duration::from_secs(90));
        assert_eq!(interval(five, None, Some(0)), Duration::from_secs(30));
        assert_eq!(
            interval(five, Some(10_000_000), None),
            Duration::from_secs(86_400)
        );
    }
}
