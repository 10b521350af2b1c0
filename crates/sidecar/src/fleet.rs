//! The node's part in a fleet (DESIGN.md, "Revocation and replay across a fleet"): the
//! revocations it holds, followed from the pack's `store` when it names one, and the shared
//! record of one-time `jti`s. Every verifier the node builds (at start and on each reload) is
//! given both, so a reload keeps every revocation and the replay defence.
//!
//! The store is the one the pack named at start: a reload that names another (or adds or
//! drops one) is logged (`store_change_needs_restart`) and the running store stays.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use custody_policy::PolicyPack;
use custody_store::{RedisReplay, Store, StoreEvent, StoreStatus};
use custody_verifier::{ReplayStore, Revocations, Verifier};
use serde_json::json;

use crate::error::ServeError;
use crate::log::Logger;

/// The store a node follows.
#[derive(Debug)]
pub(crate) struct FleetStore {
    pub url: String,
    pub store: Store,
    pub status: Arc<StoreStatus>,
}

/// What every verifier of this node shares.
#[derive(Debug)]
pub(crate) struct Fleet {
    pub revocations: Arc<Revocations>,
    pub replay: Option<Arc<dyn ReplayStore>>,
    pub store: Option<FleetStore>,
}

impl Fleet {
    /// The fleet part of a node serving `pack`: without a `store`, revocations held by this
    /// node only (the library API) and the per-node replay cache; with one, a follower task
    /// and the Redis replay store. Call inside the runtime.
    pub(crate) fn start(
        pack: &PolicyPack,
        timeout: Duration,
        log: &Logger,
    ) -> Result<Fleet, ServeError> {
        let revocations = Arc::new(Revocations::new());
        let Some(url) = pack.store.clone() else {
            return Ok(Fleet {
                revocations,
                replay: None,
                store: None,
            });
        };
        let store =
            Store::open(&url).map_err(|e| ServeError::Options(format!("store `{url}`: {e}")))?;
        let status = Arc::new(StoreStatus::default());
        let logger = log.clone();
        let shown = url.clone();
        let on_event: custody_store::OnEvent = Arc::new(move |e| {
            match e {
            StoreEvent::Connected { held, skipped } => logger.event(
                "info",
                "store_connected",
                json!({"store": shown, "revocations": held, "skipped": skipped}),
            ),
            StoreEvent::Failed { error, retry_ms } => logger.event(
                "warn",
                "store_failed",
                json!({"store": shown, "error": error, "retry_ms": retry_ms, "revocations_kept": true}),
            ),
            StoreEvent::Revoked(r) => logger.event(
                "info",
                "revocation",
                json!({"kind": r.kind.as_str(), "value": r.value, "until": r.until}),
            ),
        }
        });
        tokio::spawn(custody_store::follow(
            store.clone(),
            Arc::clone(&revocations),
            Arc::clone(&status),
            on_event,
        ));
        let replay: Arc<dyn ReplayStore> = Arc::new(RedisReplay::start(
            store.clone(),
            timeout,
            Arc::clone(&status),
        ));
        Ok(Fleet {
            revocations,
            replay: Some(replay),
            store: Some(FleetStore { url, store, status }),
        })
    }

    /// `verifier` sharing this node's revocations and replay store.
    pub(crate) fn attach(&self, verifier: Verifier) -> Verifier {
        let v = verifier.with_revocations(Arc::clone(&self.revocations));
        match &self.replay {
            Some(r) => v.with_replay_store(Arc::clone(r)),
            None => v,
        }
    }

    /// Whether `pack` names the store this node follows (a change needs a restart).
    pub(crate) fn same_store(&self, pack: &PolicyPack) -> bool {
        pack.store.as_deref() == self.store.as_ref().map(|s| s.url.as_str())
    }

    /// The `/metrics` families of the fleet part.
    pub(crate) fn metrics_text(&self) -> String {
        let mut out = format!(
            "# HELP custody_revocations_held Revocations this node holds (expired ones until pruned).\n\
             # TYPE custody_revocations_held gauge\n\
             custody_revocations_held {}\n",
            self.revocations.len()
        );
        let Some(s) = &self.store else {
            return out;
        };
        let st = &s.status;
        let families: [(&str, &str, &str, u64); 8] = [
            (
                "custody_store_up",
                "gauge",
                "1 while the node is subscribed to the store and resynced, else 0.",
                u64::from(st.up.load(Ordering::Acquire)),
            ),
            (
                "custody_store_resyncs_total",
                "counter",
                "Full resyncs of the revocations from the store (one per connection).",
                st.resyncs.load(Ordering::Relaxed),
            ),
            (
                "custody_store_failures_total",
                "counter",
                "Store connections refused or lost.",
                st.failures.load(Ordering::Relaxed),
            ),
            (
                "custody_revocations_applied_total",
                "counter",
                "Revocations applied from the store's messages.",
                st.applied.load(Ordering::Relaxed),
            ),
            (
                "custody_store_skipped_total",
                "counter",
                "Store entries or messages skipped because they did not parse.",
                st.skipped.load(Ordering::Relaxed),
            ),
            (
                "custody_replay_store_checks_total",
                "counter",
                "One-time jti checks the store answered.",
                st.replay_checks.load(Ordering::Relaxed),
            ),
            (
                "custody_replay_store_errors_total",
                "counter",
                "One-time jti checks the store could not answer in time.",
                st.replay_errors.load(Ordering::Relaxed),
            ),
            (
                "custody_replay_store_batches_total",
                "counter",
                "Pipelines of one-time jti checks sent to the store.",
                st.replay_batches.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in families {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        out
    }
}
