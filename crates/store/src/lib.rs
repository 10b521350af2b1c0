//! The shared state of a fleet of custody nodes, on Redis (DESIGN.md, "Revocation and replay
//! across a fleet"): what one node must know because another was told.
//!
//! - **Revocations** live in one Redis hash, [`REVOCATIONS_KEY`] (field `"<kind>\t<value>"`,
//!   value the unix second it holds until), and every change is published on
//!   [`REVOCATIONS_CHANNEL`] (`"<kind>\t<until>\t<value>"`). [`Store::revoke`] writes both in
//!   one script, so a later `until` always wins. A node's [`follow`] subscribes first, then reads
//!   the whole hash into its [`Revocations`] (a full resync, merged into what it holds, so
//!   nothing published while it was away is missed, and a store that lost its data lifts
//!   nothing: a revocation ends only at its time), then applies each message as it comes; on
//!   any failure it reconnects with back-off and resyncs. The verifier only ever reads the node's own copy: a decision never
//!   waits on the network for a revocation, and a node that lost Redis keeps denying what it
//!   holds.
//! - **One-time `jti`s** (WPTs, DPoP proofs, and access tokens under `one_time_tokens`) are
//!   recorded with `SET key 1 NX PX <ms left>` ([`RedisReplay`]), the key
//!   `"custody:replay:<digest>"`. Requests from every decision thread are queued to one task
//!   that sends whatever is waiting as one pipeline, so a node under load pays one round trip
//!   per batch, not one per request. A request that gets no answer within its bound is the
//!   verifier's `store_unavailable` (or, with `fail_open_replay true`, the node's own memory).
//!
//! Values are checked by [`Revocation::new`] whichever way they arrive; a hash field or
//! message that does not parse is skipped and counted, never applied in part.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use custody_verifier::{ReplayStore, Revocation, RevocationKind, Revocations, StoreDown};
use futures_util::StreamExt as _;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

/// The hash holding every revocation of the fleet.
pub const REVOCATIONS_KEY: &str = "custody:revocations";
/// The channel every revocation is published on.
pub const REVOCATIONS_CHANNEL: &str = "custody:revocations";
/// The prefix of one-time `jti` keys.
pub const REPLAY_PREFIX: &str = "custody:replay:";

/// How long connecting or one command may take before the store counts as down.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a follower checks that its subscription is alive (a paused or partitioned
/// Redis sends nothing, which looks like quiet).
const PING_EVERY: Duration = Duration::from_secs(2);
/// Back-off between reconnections: from this, doubling, to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a follower drops revocations that expired from its own copy.
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// The most one-time `jti`s sent in one pipeline.
const BATCH: usize = 512;
/// The most requests waiting for the batcher; more are refused at once (`store_unavailable`).
const QUEUE: usize = 16_384;

/// Why the store could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError(e.to_string())
    }
}

/// A Redis store, by its URL (`redis://HOST:PORT[/DB]`, `rediss://` for TLS).
#[derive(Clone, Debug)]
pub struct Store {
    client: redis::Client,
    url: String,
}

/// `"<kind>\t<value>"`: a revocation's hash field.
fn field(kind: RevocationKind, value: &str) -> String {
    format!("{}\t{value}", kind.as_str())
}

/// A hash field and its value back to a revocation; `None` when either does not parse.
fn from_field(field: &str, until: &str) -> Option<Revocation> {
    let (kind, value) = field.split_once('\t')?;
    let kind = RevocationKind::from_name(kind)?;
    Revocation::new(kind, value, until.parse().ok()?).ok()
}

/// A published message back to a revocation.
fn from_message(text: &str) -> Option<Revocation> {
    let (kind, rest) = text.split_once('\t')?;
    let (until, value) = rest.split_once('\t')?;
    Revocation::new(RevocationKind::from_name(kind)?, value, until.parse().ok()?).ok()
}

/// Sets the field to the later of its `until` and ARGV[2], then publishes ARGV[3].
const REVOKE_SCRIPT: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (not cur) or (tonumber(cur) < tonumber(ARGV[2])) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return redis.call('PUBLISH', ARGV[4], ARGV[3])
";

impl Store {
    /// The store at `url` (nothing is connected yet).
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::from)?;
        Ok(Store {
            client,
            url: url.to_owned(),
        })
    }

    /// The URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection, bounded in time.
    pub async fn connect(&self) -> Result<MultiplexedConnection, StoreError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(IO_TIMEOUT))
            .set_response_timeout(Some(IO_TIMEOUT));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    /// Records `r` for every node and publishes it; returns how many nodes' followers were
    /// subscribed when it was published.
    pub async fn revoke(&self, r: &Revocation) -> Result<u64, StoreError> {
        let mut conn = self.connect().await?;
        let message = format!("{}\t{}\t{}", r.kind.as_str(), r.until, r.value);
        let receivers: u64 = redis::cmd("EVAL")
            .arg(REVOKE_SCRIPT)
            .arg(1)
            .arg(REVOCATIONS_KEY)
            .arg(field(r.kind, &r.value))
            .arg(r.until)
            .arg(message)
            .arg(REVOCATIONS_CHANNEL)
            .query_async(&mut conn)
            .await?;
        Ok(receivers)
    }

    /// Every revocation in the store that has not expired at `now`, and how many fields did
    /// not parse (skipped).
    pub async fn list(&self, now: i64) -> Result<(Vec<Revocation>, usize), StoreError> {
        let mut conn = self.connect().await?;
        list_on(&mut conn, now).await
    }

    /// Removes the fields that expired before `now` (what [`list`](Self::list) no longer
    /// returns); returns how many.
    pub async fn prune(&self, now: i64) -> Result<usize, StoreError> {
        let mut conn = self.connect().await?;
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(REVOCATIONS_KEY)
            .query_async(&mut conn)
            .await?;
        let expired: Vec<&String> = all
            .iter()
            .filter(|(f, u)| from_field(f, u).is_none_or(|r| r.until < now))
            .map(|(f, _)| f)
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let removed: usize = redis::cmd("HDEL")
            .arg(REVOCATIONS_KEY)
            .arg(expired)
            .query_async(&mut conn)
            .await?;
        Ok(removed)
    }
}

async fn list_on(
    conn: &mut MultiplexedConnection,
    now: i64,
) -> Result<(Vec<Revocation>, usize), StoreError> {
    let all: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(REVOCATIONS_KEY)
        .query_async(conn)
        .await?;
    let mut bad = 0;
    let mut out = Vec::with_capacity(all.len());
    for (f, u) in &all {
        match from_field(f, u) {
            Some(r) if r.until >= now => out.push(r),
            Some(_) => {}
            None => bad += 1,
        }
    }
    Ok((out, bad))
}

/// What a follower and a replay store report (for `/metrics` and the logs).
#[derive(Debug, Default)]
pub struct StoreStatus {
    /// Whether the follower is subscribed and resynced now.
    pub up: AtomicBool,
    /// Full resyncs done (one per (re)connection).
    pub resyncs: AtomicU64,
    /// Connections lost or refused.
    pub failures: AtomicU64,
    /// Revocations applied from messages.
    pub applied: AtomicU64,
    /// Hash fields or messages skipped because they did not parse.
    pub skipped: AtomicU64,
    /// One-time `jti` checks answered by the store.
    pub replay_checks: AtomicU64,
    /// One-time `jti` checks the store could not answer (down, slow, queue full).
    pub replay_errors: AtomicU64,
    /// Pipelines sent.
    pub replay_batches: AtomicU64,
    /// Bumped by the follower each time its connection to the store ends: the replay batcher
    /// then opens a new connection before its next pipeline instead of finding out, with a
    /// failed batch, that its old one died with the store.
    pub connection_epoch: AtomicU64,
}

/// What a follower tells its owner as it goes (the sidecar logs these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// Subscribed and resynced: `held` revocations now.
    Connected {
        /// Revocations held after the resync.
        held: usize,
        /// Hash fields skipped.
        skipped: usize,
    },
    /// The connection failed or was lost; retrying after `retry_ms`.
    Failed {
        /// Why.
        error: String,
        /// When the next attempt is.
        retry_ms: u64,
    },
    /// A revocation arrived and is held.
    Revoked(Revocation),
}

/// A callback for [`StoreEvent`]s.
pub type OnEvent = Arc<dyn Fn(StoreEvent) + Send + Sync>;

/// Follows the store's revocations into `revocations` forever (run it as a task): subscribe,
/// resync, apply messages; on failure mark the store down, back off, and start again.
pub async fn follow(
    store: Store,
    revocations: Arc<Revocations>,
    status: Arc<StoreStatus>,
    on_event: OnEvent,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let outcome = session(&store, &revocations, &status, &on_event).await;
        status.up.store(false, Ordering::Release);
        status.connection_epoch.fetch_add(1, Ordering::AcqRel);
        status.failures.fetch_add(1, Ordering::Relaxed);
        let (error, connected) = match outcome {
            Err((e, connected)) => (e.0, connected),
        };
        if connected {
            backoff = MIN_BACKOFF;
        }
        on_event(StoreEvent::Failed {
            error,
            retry_ms: backoff.as_millis() as u64,
        });
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: returns why it ended, and whether it got as far as a resync.
async fn session(
    store: &Store,
    revocations: &Revocations,
    status: &StoreStatus,
    on_event: &OnEvent,
) -> Result<std::convert::Infallible, (StoreError, bool)> {
    let fail = |e: StoreError| (e, false);
    let pubsub = tokio::time::timeout(IO_TIMEOUT, store.client.get_async_pubsub())
        .await
        .map_err(|_| fail(StoreError("connecting timed out".into())))?
        .map_err(|e| fail(e.into()))?;
    let (mut sink, mut stream) = pubsub.split();
    tokio::time::timeout(IO_TIMEOUT, sink.subscribe(REVOCATIONS_CHANNEL))
        .await
        .map_err(|_| fail(StoreError("subscribing timed out".into())))?
        .map_err(|e| fail(e.into()))?;
    // subscribed first, then read: a revocation published in between is in both, never lost
    let mut conn = store.connect().await.map_err(fail)?;
    let (all, skipped) = tokio::time::timeout(IO_TIMEOUT, list_on(&mut conn, now()))
        .await
        .map_err(|_| fail(StoreError("the resync timed out".into())))?
        .map_err(fail)?;
    // merged, never replaced: a store that lost its data (a restart without persistence)
    // must not lift what this node holds; a revocation ends only at its time
    revocations.extend(all);
    status.skipped.fetch_add(skipped as u64, Ordering::Relaxed);
    status.resyncs.fetch_add(1, Ordering::Relaxed);
    status.up.store(true, Ordering::Release);
    on_event(StoreEvent::Connected {
        held: revocations.len(),
        skipped,
    });
    let lost = |e: StoreError| (e, true);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err(lost(StoreError("the subscription was closed".into())));
                };
                let text = String::from_utf8_lossy(msg.get_payload_bytes());
                match from_message(&text) {
                    Some(r) => {
                        revocations.revoke(r.clone());
                        status.applied.fetch_add(1, Ordering::Relaxed);
                        on_event(StoreEvent::Revoked(r));
                    }
                    None => {
                        status.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(IO_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(lost(e.into())),
                    Err(_) => return Err(lost(StoreError("no answer to a ping within 2 s".into()))),
                }
            }
            _ = prune.tick() => {
                revocations.prune(now());
            }
        }
    }
}

/// The system clock, unix seconds.
fn now() -> i64 {
    custody_verifier::system_now()
}

/// One-time `jti`s recorded in Redis (see the crate documentation): a [`ReplayStore`] for the
/// verifier. Build it inside a tokio runtime (it spawns its batcher there); call it from
/// threads that may block (the sidecar's decision threads), never from an async task.
#[derive(Debug)]
pub struct RedisReplay {
    jobs: tokio::sync::mpsc::Sender<Job>,
    timeout: Duration,
    status: Arc<StoreStatus>,
}

#[derive(Debug)]
struct Job {
    key: String,
    ttl_ms: u64,
    reply: std::sync::mpsc::SyncSender<Result<bool, String>>,
}

impl RedisReplay {
    /// A replay store on `store`, each check answered within `timeout` or failed; counts in
    /// `status`.
    pub fn start(store: Store, timeout: Duration, status: Arc<StoreStatus>) -> RedisReplay {
        let (jobs, rx) = tokio::sync::mpsc::channel(QUEUE);
        tokio::spawn(batcher(store, rx, Arc::clone(&status)));
        RedisReplay {
            jobs,
            timeout,
            status,
        }
    }
}

impl ReplayStore for RedisReplay {
    fn first_use(&self, id: u128, until: i64, now: i64) -> Result<bool, StoreDown> {
        let left = until.saturating_sub(now).saturating_add(1).max(1);
        let ttl_ms = u64::try_from(left).unwrap_or(1).saturating_mul(1000);
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let job = Job {
            key: format!("{REPLAY_PREFIX}{id:032x}"),
            ttl_ms,
            reply,
        };
        let fail = |why: String| {
            self.status.replay_errors.fetch_add(1, Ordering::Relaxed);
            Err(StoreDown(why))
        };
        if self.jobs.try_send(job).is_err() {
            return fail("the replay store's queue is full".into());
        }
        match answer.recv_timeout(self.timeout) {
            Ok(Ok(first)) => {
                self.status.replay_checks.fetch_add(1, Ordering::Relaxed);
                Ok(first)
            }
            Ok(Err(e)) => fail(e),
            Err(_) => fail(format!(
                "no answer from the store within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

/// Sends whatever checks are waiting as one pipeline, answers each, and goes on; a failed
/// pipeline fails its checks and drops the connection (the next batch reconnects).
async fn batcher(store: Store, mut rx: tokio::sync::mpsc::Receiver<Job>, status: Arc<StoreStatus>) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut opened_at = 0;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        // the follower saw the store go away since this connection opened: it died with it
        let epoch = status.connection_epoch.load(Ordering::Acquire);
        if epoch != opened_at {
            conn = None;
        }
        if conn.is_none() {
            opened_at = epoch;
            conn = store.connect().await.ok();
        }
        let Some(c) = conn.as_mut() else {
            for j in jobs {
                let _ = j.reply.send(Err("the replay store is unreachable".into()));
            }
            continue;
        };
        let mut pipe = redis::pipe();
        for j in &jobs {
            pipe.cmd("SET")
                .arg(&j.key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(j.ttl_ms);
        }
        status.replay_batches.fetch_add(1, Ordering::Relaxed);
        let answers: Result<Vec<Option<String>>, _> =
            tokio::time::timeout(IO_TIMEOUT, pipe.query_async(c))
                .await
                .unwrap_or_else(|_| {
                    Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out")))
                });
        match answers {
            Ok(answers) if answers.len() == jobs.len() => {
                for (j, a) in jobs.into_iter().zip(answers) {
                    let _ = j.reply.send(Ok(a.is_some()));
                }
            }
            Ok(_) => {
                for j in jobs {
                    let _ = j
                        .reply
                        .send(Err("the store answered a pipeline short".into()));
                }
            }
            Err(e) => {
                conn = None;
                let why = format!("the replay store failed: {e}");
                for j in jobs {
                    let _ = j.reply.send(Err(why.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_messages_read_back_what_was_written() {
        let r = Revocation::new(
            RevocationKind::Origin,
            "a.example|user:alice",
            1_800_000_000,
        )
        .unwrap();
        let f = field(r.kind, &r.value);
        assert_eq!(from_field(&f, "1800000000"), Some(r.clone()));
        let m = format!("{}\t{}\t{}", r.kind.as_str(), r.until, r.value);
        assert_eq!(from_message(&m), Some(r));
        // a value may hold tabs' neighbours but not control characters; junk is refused whole
        for bad in [
            "",
            "jti",
            "jti\t",
            "nope\t1\tx",
            "jti\tsoon\tx",
            "origin\t1\tno-bar",
            "jti\t1\t",
        ] {
            assert_eq!(from_message(bad), None, "{bad:?}");
        }
        assert_eq!(from_field("jti\tx", "later"), None);
        assert_eq!(from_field("actor", "1"), None);
    }
}
