//! Hot reload (file change, SIGHUP, a broken pack). Graceful shutdown with RPCs in flight is
//! `src/held/drain.rs` (it holds them with the crate's `cfg(test)` gate).
#![allow(
    clippy::cloned_ref_to_slice_refs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use crate::common;

use std::time::Duration;

use common::*;
use custody_tests::Fixture;

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_change_reloads_and_broken_pack_keeps_the_old_one() {
    let f = Fixture::standard();
    let r = start(custody_sidecar::ServeArgs {
        reload_interval_ms: 100,
        ..args(&f)
    })
    .await;
    let mut a = authz(&r).await;
    let (t0, t1) = live_chain(&f);
    let h = chain_headers(&[t0], &t1, "orders:read");
    assert_eq!(code(&check(&mut a, &h, "").await), "allow");
    let v1 = r.pack_version();

    // a broken pack: reported, the old one keeps serving
    let trust = f.dir.path().join("pack.trust");
    let good = std::fs::read_to_string(&trust).unwrap();
    std::fs::write(&trust, "local \"c.example\"\ndomian {\n").unwrap();
    let mut m = String::new();
    for _ in 0..100 {
        m = metrics(&r).await;
        if metric(&m, "custody_pack_reloads_total{result=\"error\"}") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metric(&m, "custody_pack_reloads_total{result=\"error\"}") >= 1.0,
        "{m}"
    );
    assert_eq!(r.pack_version(), v1);
    assert_eq!(code(&check(&mut a, &h, "").await), "allow");

    // a valid change: swapped in, the cache does not answer for the old pack
    std::fs::write(&trust, &good).unwrap();
    unfederate(&f);
    wait_for(|| r.pack_version() != v1).await;
    assert_eq!(code(&check(&mut a, &h, "").await), "domain_not_federated");
    let m = metrics(&r).await;
    assert!(m.contains(&format!(
        "custody_pack_info{{version=\"{}\"}} 1",
        r.pack_version()
    )));
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads() {
    let f = Fixture::standard();
    // no polling: only the signal reloads
    let r = start(custody_sidecar::ServeArgs {
        reload_interval_ms: 0,
        ..args(&f)
    })
    .await;
    let v1 = r.pack_version();
    unfederate(&f);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.pack_version(), v1, "no reload without a trigger");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for(|| r.pack_version() != v1).await;
    // the API trigger reports "unchanged" when nothing changed
    assert!(!r.reload().await.unwrap());
    r.shutdown().await.unwrap();
}
