//! Hot reload's blind spots (security review, finding 4): key files outside the pack
//! directory are watched, an unreadable entry (a dangling symlink: an editor's lock file) is
//! skipped with a warning instead of stopping every poll, and a change is loaded only once it
//! is unchanged over two polls, so a trust file caught half-written is never served.
//!
//! Waiting is on the server's state (pack version, metrics), never a fixed sleep.
#![allow(
    clippy::cloned_ref_to_slice_refs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use crate::common;

use std::future::Future;
use std::time::Duration;

use common::*;
use custody_sidecar::{pb, Running, ServeArgs};
use custody_tests::{Fixture, AUD};

/// Polls `cond` every 10 ms, failing after 10 s.
async fn wait_until<F: Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    for _ in 0..1000 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not reached in 10 s");
}

async fn counter(r: &Running, series: &str) -> f64 {
    metric(&metrics(r).await, series)
}

/// Waits until the watcher has polled `n` more times (at most 5 s).
async fn polls(r: &Running, n: f64) {
    let from = counter(r, "custody_pack_polls_total").await;
    for _ in 0..500 {
        if counter(r, "custody_pack_polls_total").await >= from + n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn watch_args(f: &Fixture, interval_ms: u64) -> ServeArgs {
    ServeArgs {
        reload_interval_ms: interval_ms,
        no_decision_log: true,
        ..args(f)
    }
}

async fn verify_code(r: &Running, f: &Fixture, peer: &str) -> String {
    let (t0, t1) = live_chain(f);
    let d = native(r)
        .await
        .verify(pb::VerifyRequest {
            tokens: vec![t0, t1],
            audience: AUD.into(),
            action: "orders:read".into(),
            peer: (!peer.is_empty()).then(|| peer.to_owned()),
            ..pb::VerifyRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    d.reasons
        .first()
        .map_or("allow".to_owned(), |r| r.code.clone())
}

/// (a) `a.example`'s key file lives outside the pack directory; replacing its key (a
/// rotation that drops the old key) is picked up without SIGHUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_files_outside_the_pack_directory_are_watched() {
    let f = Fixture::standard();
    let outside = tempfile::tempdir().unwrap();
    let key = outside.path().join("a.jwks");
    std::fs::copy(f.dir.path().join("keys/a.example.jwks"), &key).unwrap();
    let trust = f.dir.path().join("pack.trust");
    let text = std::fs::read_to_string(&trust).unwrap();
    let moved = text.replace(
        "keys \"keys/a.example.jwks\"",
        &format!("keys \"{}\"", key.display()),
    );
    assert_ne!(moved, text);
    std::fs::write(&trust, moved).unwrap();
    std::fs::remove_file(f.dir.path().join("keys/a.example.jwks")).unwrap();

    let r = start(watch_args(&f, 100)).await;
    assert_eq!(verify_code(&r, &f, "").await, "allow");
    let v1 = r.pack_version();

    // the old key removed: the file now holds only another domain's key
    std::fs::copy(f.dir.path().join("keys/d.example.jwks"), &key).unwrap();
    wait_until("the key change is loaded", || async {
        r.pack_version() != v1
    })
    .await;
    assert_eq!(verify_code(&r, &f, "").await, "unknown_key");
    r.shutdown().await.unwrap();
}

/// (b) A dangling symbolic link in the pack directory (Emacs' `.#pack.trust` lock) is skipped
/// and reported once; edits made meanwhile are still loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dangling_symlink_does_not_stop_reloads() {
    let f = Fixture::standard();
    let r = start(watch_args(&f, 100)).await;
    let v1 = r.pack_version();
    assert_eq!(verify_code(&r, &f, "").await, "allow");

    let lock = f.dir.path().join(".#pack.trust");
    std::os::unix::fs::symlink("root@host.12345:1700000000", &lock).unwrap();
    wait_until("the entry is reported", || async {
        counter(&r, "custody_pack_watch_unreadable_entries").await == 1.0
    })
    .await;
    unfederate(&f);
    wait_until("the edit is loaded", || async { r.pack_version() != v1 }).await;
    assert_eq!(verify_code(&r, &f, "").await, "domain_not_federated");

    // the lock goes away: nothing left to report
    std::fs::remove_file(&lock).unwrap();
    wait_until("the entry is no longer reported", || async {
        counter(&r, "custody_pack_watch_unreadable_entries").await == 0.0
    })
    .await;
    r.shutdown().await.unwrap();
}

/// (c) The trust file is rewritten in two steps, a poll seeing the first: the half-written
/// file, which parses (everything but the `chain` block that turns sender binding on), is
/// never loaded; the complete one is, and calls without a peer are then refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_trust_file_is_never_served() {
    let f = Fixture::standard();
    let r = start(watch_args(&f, 400)).await;
    let v1 = r.pack_version();
    // the start may re-check files written just before it: let the watcher settle first
    polls(&r, 3.0).await;
    let deferred = counter(&r, "custody_pack_changes_deferred_total").await;
    let reloads = counter(&r, "custody_pack_reloads_total{result=\"ok\"}").await;
    assert_eq!(verify_code(&r, &f, "").await, "allow");

    let trust = f.dir.path().join("pack.trust");
    let old = std::fs::read_to_string(&trust).unwrap();
    let half = format!("{old}# v2: calls must name their peer\n");
    let full = format!("{half}chain {{\n  require_sender_binding true\n}}\n");
    std::fs::write(&trust, &half).unwrap();
    // a poll saw the change and deferred it (today's code: loaded it)
    wait_until("a poll sees the half-written file", || async {
        counter(&r, "custody_pack_changes_deferred_total").await > deferred
            || r.pack_version() != v1
    })
    .await;
    assert_eq!(r.pack_version(), v1, "the half-written file was loaded");
    std::fs::write(&trust, &full).unwrap();

    let expected = custody_policy::PolicyPack::load(f.dir.path(), &custody_jose::Limits::default())
        .unwrap()
        .pack
        .version;
    wait_until("the complete file is loaded", || async {
        r.pack_version() != v1
    })
    .await;
    assert_eq!(r.pack_version(), expected);
    let m = metrics(&r).await;
    assert_eq!(
        metric(&m, "custody_pack_reloads_total{result=\"ok\"}"),
        reloads + 1.0,
        "one reload, of the complete file: {m}"
    );
    assert_eq!(verify_code(&r, &f, "").await, "sender_binding_required");
    assert_eq!(
        verify_code(&r, &f, "spiffe://b.example/agent/alice").await,
        "allow"
    );
    r.shutdown().await.unwrap();
}
