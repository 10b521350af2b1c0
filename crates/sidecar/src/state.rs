//! What every RPC shares: the verifier on the pack in force (swapped atomically on reload), the
//! settings, the decision cache, metrics and the log. (The concurrency permits live in front of
//! the services, in [`shed`](crate::shed).)

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwap;
use custody_policy::PolicyPack;
use custody_sources::{KeySources, SourceEvent};
use custody_verifier::{Limits, Verifier, VerifierOptions};
use serde_json::json;

use crate::cache::DecisionCache;
use crate::config::Settings;
use crate::error::ServeError;
use crate::log::Logger;
use crate::metrics::Metrics;

/// Shared server state.
#[derive(Debug)]
pub(crate) struct State {
    pub verifier: ArcSwap<Verifier>,
    /// The remote key sources of the pack in force, feeding its verifier's key store.
    pub sources: ArcSwap<KeySources>,
    /// Woken when `sources` is swapped, so the background refresh moves to the new ones.
    pub sources_changed: tokio::sync::Notify,
    pub settings: Settings,
    pub policies: PathBuf,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub log: Logger,
    pub cache: Option<DecisionCache>,
    /// The revocations and replay store every verifier of this node shares.
    pub fleet: crate::fleet::Fleet,
    /// The `--max-concurrency` permits every decision call takes (`shed.rs`): the gRPC services'
    /// and the HTTP port's AuthZEN calls alike.
    pub permits: Arc<tokio::sync::Semaphore>,
    /// Holds RPCs after their pack snapshot when a test asks (`cfg(test)` only).
    #[cfg(test)]
    pub gate: crate::testing::Gate,
    /// Holds decisions on the thread that decides them when a test asks (`cfg(test)` only).
    #[cfg(test)]
    pub stall: Stall,
    reloading: tokio::sync::Mutex<()>,
}

/// A loaded pack, ready to serve.
pub(crate) struct Loaded {
    pub verifier: Verifier,
    pub warnings: Vec<String>,
}

/// Loads a pack and builds a verifier on it (blocking: file reads, Cedar parsing).
pub(crate) fn load(
    dir: &Path,
    limits: &Limits,
    settings: &Settings,
) -> Result<Loaded, Vec<custody_policy::LoadError>> {
    match PolicyPack::load(dir, limits) {
        Ok(l) => Ok(Loaded {
            verifier: Verifier::with_options(
                Arc::new(l.pack),
                VerifierOptions {
                    limits: limits.clone(),
                    sig_cache_entries: settings.token_cache_entries,
                    cedar_memo_entries: settings.cedar_memo_entries,
                    ..VerifierOptions::default()
                },
            ),
            warnings: l.warnings.iter().map(ToString::to_string).collect(),
        }),
        Err(errors) => Err(errors),
    }
}

impl State {
    pub(crate) fn new(
        verifier: Verifier,
        settings: Settings,
        policies: PathBuf,
        cache: Option<DecisionCache>,
        metrics: Arc<Metrics>,
        log: Logger,
        fleet: crate::fleet::Fleet,
    ) -> State {
        metrics.set_pack_version(&verifier.pack().version);
        let sources = KeySources::new(verifier.pack(), Arc::clone(verifier.key_store()), None);
        sources.on_event(source_logger(log.clone()));
        State {
            permits: Arc::new(tokio::sync::Semaphore::new(settings.max_concurrency)),
            limits: verifier.limits().clone(),
            verifier: ArcSwap::from_pointee(verifier),
            sources: ArcSwap::from_pointee(sources),
            sources_changed: tokio::sync::Notify::new(),
            settings,
            policies,
            metrics,
            log,
            cache,
            fleet,
            #[cfg(test)]
            gate: crate::testing::Gate::default(),
            #[cfg(test)]
            stall: Stall::default(),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads the pack again off the request path and swaps it in; a pack that fails to load is
    /// logged and the old one keeps serving. RPCs in flight keep the verifier they started with.
    pub(crate) async fn reload(&self, trigger: &str) -> Result<bool, ServeError> {
        let _one_at_a_time = self.reloading.lock().await;
        let dir = self.policies.clone();
        let limits = self.limits.clone();
        let settings = self.settings.clone();
        let loaded = match tokio::task::spawn_blocking(move || load(&dir, &limits, &settings)).await
        {
            Ok(r) => r.map_err(ServeError::Reload),
            Err(e) => Err(ServeError::Task {
                task: "pack loader",
                message: e.to_string(),
            }),
        };
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                self.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                let current = self.verifier.load().pack().version.clone();
                self.log.event(
                    "error",
                    "reload_failed",
                    json!({"trigger": trigger, "error": e.to_string(), "serving": current}),
                );
                return Err(e);
            }
        };
        let old = self.verifier.load().pack().version.clone();
        let new = loaded.verifier.pack().version.clone();
        if !self.fleet.same_store(loaded.verifier.pack()) {
            self.log.event(
                "warn",
                "store_change_needs_restart",
                json!({
                    "running": self.fleet.store.as_ref().map(|s| s.url.clone()),
                    "pack": loaded.verifier.pack().store,
                    "warning": "the pack names another store: this node keeps following the one it started with until it restarts",
                }),
            );
        }
        let loaded = Loaded {
            verifier: self.fleet.attach(loaded.verifier),
            warnings: loaded.warnings,
        };
        for w in &loaded.warnings {
            self.log
                .event("warn", "pack_warning", json!({"warning": w}));
        }
        self.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
        if old == new {
            self.log.event(
                "info",
                "reload_unchanged",
                json!({"trigger": trigger, "pack": new}),
            );
            return Ok(false);
        }
        // the sources the new pack still names keep their last good sets
        let previous = self.sources.load_full();
        let sources = KeySources::new(
            loaded.verifier.pack(),
            Arc::clone(loaded.verifier.key_store()),
            Some(&previous),
        );
        sources.on_event(source_logger(self.log.clone()));
        self.verifier.store(Arc::new(loaded.verifier));
        self.sources.store(Arc::new(sources));
        self.sources_changed.notify_one();
        self.metrics.set_pack_version(&new);
        if let Some(c) = &self.cache {
            c.clear();
            self.metrics.cache_entries.store(0, Ordering::Relaxed);
            self.metrics.cache_bytes.store(0, Ordering::Relaxed);
        }
        self.log.event(
            "info",
            "reload",
            json!({"trigger": trigger, "pack": new, "previous": old}),
        );
        Ok(true)
    }
}

/// Logs each key source fetch: a success at `info`, a failure at `warn` (with whether the
/// last good set keeps serving).
fn source_logger(log: Logger) -> custody_sources::EventSink {
    Arc::new(move |e: &SourceEvent| {
        let next = e.next_in.as_secs();
        match &e.outcome {
            Ok(keys) => log.event(
                "info",
                "key_source_fetched",
                json!({"domain": e.domain, "source": e.kind.keyword(), "url": e.url,
                       "keys": keys, "sequence": e.sequence, "next_in_s": next}),
            ),
            Err(error) => log.event(
                "warn",
                "key_source_failed",
                json!({"domain": e.domain, "source": e.kind.keyword(), "url": e.url,
                       "error": error, "kept_last_good": e.kept_last_good, "retry_in_s": next}),
            ),
        }
    })
}

/// Refreshes the key sources in force in the background, moving to the new ones when a
/// reload swaps them.
pub(crate) async fn refresh_sources(state: Arc<State>) {
    loop {
        let sources = state.sources.load_full();
        tokio::select! {
            () = (*sources).clone().run() => {}
            () = state.sources_changed.notified() => {}
        }
    }
}

/// A test hook (`cfg(test)` only): holds the next decisions on the thread that decides
/// them, blocking it as a slow decision (a Biscuit with heavy checks, a huge pack) would, until
/// released. Unlike [`Gate`](crate::testing::Gate), which waits asynchronously before the
/// decision, this one blocks the deciding thread itself.
#[cfg(test)]
#[derive(Debug)]
pub struct Stall {
    /// (decisions still to hold, whether held decisions may go on)
    inner: std::sync::Mutex<(usize, bool)>,
    wake: std::sync::Condvar,
    /// Decisions held since the server started.
    held: tokio::sync::watch::Sender<usize>,
}

#[cfg(test)]
impl Default for Stall {
    fn default() -> Self {
        Stall {
            inner: std::sync::Mutex::new((0, true)),
            wake: std::sync::Condvar::new(),
            held: tokio::sync::watch::Sender::new(0),
        }
    }
}

#[cfg(test)]
impl Stall {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, bool)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds the next `n` decisions until [`release`](Stall::release).
    pub fn hold_next(&self, n: usize) {
        *self.lock() = (n, false);
    }

    /// Resolves once `n` decisions in all have been held since the server started.
    pub async fn wait_held(&self, n: usize) {
        let mut rx = self.held.subscribe();
        let _ = rx.wait_for(|held| *held >= n).await;
    }

    /// Lets every held decision go on.
    pub fn release(&self) {
        *self.lock() = (0, true);
        self.wake.notify_all();
    }

    /// Called on the deciding thread before each decision: blocks while it is a held one.
    pub(crate) fn pass(&self) {
        let mut g = self.lock();
        if g.0 == 0 {
            return;
        }
        g.0 -= 1;
        self.held.send_modify(|h| *h += 1);
        while !g.1 {
            g = self
                .wake
                .wait(g)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}
