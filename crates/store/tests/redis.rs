//! custody-store against a real `redis-server` (Debian's package; `.ci/run` installs it): each
//! test starts its own on a free loopback port, without persistence, and stops, kills, pauses
//! or restarts it. Without a `redis-server` on `PATH` (or `CUSTODY_REDIS_SERVER`) the tests
//! fail under `CI=true` and are skipped, saying so, elsewhere.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_store::{follow, OnEvent, RedisReplay, Store, StoreStatus};
use custody_tests::redis::Redis;
use custody_verifier::{ReplayStore, Revocation, RevocationKind, Revocations};

fn now() -> i64 {
    custody_verifier::system_now()
}

fn revocation(kind: RevocationKind, value: &str) -> Revocation {
    Revocation::new(kind, value, now() + 600).unwrap()
}

/// A follower on its own set, as a node runs it.
fn node(store: &Store) -> (Arc<Revocations>, Arc<StoreStatus>) {
    let set = Arc::new(Revocations::new());
    let status = Arc::new(StoreStatus::default());
    let quiet: OnEvent = Arc::new(|_| {});
    tokio::spawn(follow(
        store.clone(),
        Arc::clone(&set),
        Arc::clone(&status),
        quiet,
    ));
    (set, status)
}

async fn eventually(what: &str, within: Duration, f: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

fn holds(set: &Revocations, r: &Revocation) -> bool {
    set.find(r.kind, &r.value, now()).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_every_follower_and_a_late_one_resyncs() {
    let Some(redis) = Redis::start() else { return };
    let store = Store::open(&redis.url()).unwrap();
    // one revocation from before any node started: the resync brings it
    let before = revocation(RevocationKind::Txn, "txn-early");
    store.revoke(&before).await.unwrap();
    let nodes: Vec<_> = (0..3).map(|_| node(&store)).collect();
    for (set, status) in &nodes {
        eventually("resync", Duration::from_secs(5), || {
            status.up.load(Ordering::Acquire) && holds(set, &before)
        })
        .await;
    }
    // a quiet subscription stays up: the liveness pings (every 2 s) are answered, not failures
    tokio::time::sleep(Duration::from_millis(4500)).await;
    for (_, status) in &nodes {
        assert_eq!(
            status.failures.load(Ordering::Relaxed),
            0,
            "a follower reconnected"
        );
        assert_eq!(status.resyncs.load(Ordering::Relaxed), 1);
    }
    let r = revocation(RevocationKind::Actor, "spiffe://b.example/agent/alice");
    let receivers = store.revoke(&r).await.unwrap();
    assert_eq!(receivers, 3, "every follower is subscribed");
    for (set, status) in &nodes {
        let took = eventually("propagation", Duration::from_secs(2), || holds(set, &r)).await;
        assert!(status.applied.load(Ordering::Relaxed) >= 1);
        eprintln!("propagated in {took:?}");
    }
    // a later `until` wins in the store, an earlier one changes nothing
    let mut shorter = r.clone();
    shorter.until = now() + 5;
    store.revoke(&shorter).await.unwrap();
    let (listed, bad) = store.list(now()).await.unwrap();
    assert_eq!(bad, 0);
    assert!(
        listed.contains(&r) && listed.contains(&before),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_published_while_a_node_is_disconnected_applies_when_it_reconnects() {
    let Some(redis) = Redis::start() else { return };
    let store = Store::open(&redis.url()).unwrap();
    let (set, status) = node(&store);
    eventually("connected", Duration::from_secs(5), || {
        status.up.load(Ordering::Acquire)
    })
    .await;
    // cut the subscription and publish at once: nobody is listening
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    let r = revocation(RevocationKind::Jti, "t1-while-away");
    let receivers = store.revoke(&r).await.unwrap();
    assert_eq!(receivers, 0, "published while the node was away");
    eventually("resync after reconnect", Duration::from_secs(5), || {
        holds(&set, &r)
    })
    .await;
    assert!(status.resyncs.load(Ordering::Relaxed) >= 2);
    assert!(status.failures.load(Ordering::Relaxed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_down_mid_run_and_back() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    redis.down();
    let store = Store::open(&redis.url()).unwrap();
    let (set, status) = node(&store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!status.up.load(Ordering::Acquire), "no store to follow yet");
    assert!(status.failures.load(Ordering::Relaxed) >= 1);
    redis.up();
    eventually(
        "connected once the store is up",
        Duration::from_secs(8),
        || status.up.load(Ordering::Acquire),
    )
    .await;
    let r = revocation(RevocationKind::Origin, "a.example|user:mallory");
    store.revoke(&r).await.unwrap();
    eventually("propagation", Duration::from_secs(2), || holds(&set, &r)).await;
    // killed mid-run (and it loses its data: no persistence): what the node holds still holds
    redis.down();
    eventually("marked down", Duration::from_secs(5), || {
        !status.up.load(Ordering::Acquire)
    })
    .await;
    assert!(holds(&set, &r));
    redis.up();
    eventually("reconnected", Duration::from_secs(8), || {
        status.up.load(Ordering::Acquire)
    })
    .await;
    assert!(holds(&set, &r), "a store that lost its data lifts nothing");
    assert!(Revocations::len(&set) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_jtis_are_first_used_once_across_nodes() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let store = Store::open(&redis.url()).unwrap();
    let status = Arc::new(StoreStatus::default());
    let a = Arc::new(RedisReplay::start(
        store.clone(),
        Duration::from_millis(500),
        Arc::clone(&status),
    ));
    let b = Arc::new(RedisReplay::start(
        store.clone(),
        Duration::from_millis(500),
        Arc::clone(&status),
    ));
    let t = now();
    let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
    // called from blocking threads, as the sidecar's decisions are
    let (first, second, other) = tokio::task::spawn_blocking(move || {
        (
            a2.first_use(1, t + 60, t),
            b2.first_use(1, t + 60, t),
            b2.first_use(2, t + 60, t),
        )
    })
    .await
    .unwrap();
    assert_eq!((first, second, other), (Ok(true), Ok(false), Ok(true)));
    // many at once go as pipelines, each answered
    let many: Vec<_> = (0..200u128)
        .map(|i| {
            let a = Arc::clone(&a);
            tokio::task::spawn_blocking(move || a.first_use(1000 + i, t + 60, t))
        })
        .collect();
    for h in many {
        assert_eq!(h.await.unwrap(), Ok(true));
    }
    let batches = status.replay_batches.load(Ordering::Relaxed);
    assert!(batches < 203, "batched: {batches} pipelines for 203 checks");
    // the key lives as long as the proof could be accepted
    let ttl = redis
        .cmd(&["PTTL", &format!("custody:replay:{:032x}", 1u128)])
        .await;
    let redis::Value::Int(ms) = ttl else {
        panic!("{ttl:?}")
    };
    assert!((59_000..=61_000).contains(&ms), "{ms}");
    // slow store (every client paused for a second): an answer that does not come in time
    // is an error, not a wait
    redis.cmd(&["CLIENT", "PAUSE", "1000", "ALL"]).await;
    let a3 = Arc::clone(&a);
    let started = Instant::now();
    let slow = tokio::task::spawn_blocking(move || a3.first_use(5000, t + 60, t))
        .await
        .unwrap();
    assert!(slow.is_err(), "{slow:?}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // down: an error at once; back: answers again
    redis.down();
    let a4 = Arc::clone(&a);
    assert!(
        tokio::task::spawn_blocking(move || a4.first_use(6000, t + 60, t))
            .await
            .unwrap()
            .is_err()
    );
    redis.up();
    let a5 = Arc::clone(&a);
    let back = tokio::task::spawn_blocking(move || {
        let until = Instant::now() + Duration::from_secs(8);
        loop {
            match a5.first_use(7000, t + 60, t) {
                Ok(v) => return Ok(v),
                Err(e) if Instant::now() > until => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(back, Ok(true));
    assert!(status.replay_errors.load(Ordering::Relaxed) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_replay_check_after_redis_restarts_is_answered() {
    // the batcher's connection died with the old Redis: the follower's reconnection tells it
    // to open a new one before its next pipeline, so no check fails on the dead one
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let store = Store::open(&redis.url()).unwrap();
    let set = Arc::new(Revocations::new());
    let status = Arc::new(StoreStatus::default());
    let quiet: OnEvent = Arc::new(|_| {});
    tokio::spawn(follow(
        store.clone(),
        Arc::clone(&set),
        Arc::clone(&status),
        quiet,
    ));
    let replay = Arc::new(RedisReplay::start(
        store.clone(),
        Duration::from_millis(500),
        Arc::clone(&status),
    ));
    eventually("connected", Duration::from_secs(5), || {
        status.up.load(Ordering::Acquire)
    })
    .await;
    let t = now();
    let r = Arc::clone(&replay);
    assert_eq!(
        tokio::task::spawn_blocking(move || r.first_use(1, t + 60, t))
            .await
            .unwrap(),
        Ok(true)
    );
    redis.down();
    eventually("marked down", Duration::from_secs(5), || {
        !status.up.load(Ordering::Acquire)
    })
    .await;
    redis.up();
    eventually("reconnected", Duration::from_secs(8), || {
        status.up.load(Ordering::Acquire)
    })
    .await;
    let r = Arc::clone(&replay);
    assert_eq!(
        tokio::task::spawn_blocking(move || r.first_use(2, t + 60, t))
            .await
            .unwrap(),
        Ok(true)
    );
    assert_eq!(status.replay_errors.load(Ordering::Relaxed), 0);
}
