//! Graceful shutdown with RPCs in flight: the RPCs are held by the gate after the server took
//! them, so "in flight" is a state the test reaches rather than a race it hopes to win.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::time::Duration;

use super::common::*;
use custody_sidecar::pb;
use custody_tests::{Fixture, AUD};

/// Shutdown while batches and Checks are being decided: every RPC in flight completes, then the
/// server stops, and new connections are refused from the moment the shutdown begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_rpcs_in_flight() {
    let f = Fixture::standard();
    let r = start(args(&f)).await;
    let addr = r.addr;
    let state = r.state_for_tests();
    let (t0, t1) = live_chain(&f);
    let one = pb::VerifyRequest {
        tokens: vec![t0.clone(), t1.clone()],
        audience: AUD.into(),
        action: "orders:read".into(),
        ..pb::VerifyRequest::default()
    };
    let batch = pb::VerifyBatchRequest {
        requests: vec![one.clone(); 1000],
    };
    state.gate.hold_next(54);
    let mut calls = Vec::new();
    for _ in 0..4 {
        let mut c = native(&r).await;
        let b = batch.clone();
        calls.push(tokio::spawn(async move { c.verify_batch(b).await }));
    }
    let a = authz(&r).await;
    let h = chain_headers(&[t0], &t1, "orders:read");
    let mut checks = Vec::new();
    for _ in 0..50 {
        let mut a = a.clone();
        let h = h.clone();
        checks.push(tokio::spawn(async move { check(&mut a, &h, "").await }));
    }
    // all 54 are in the server, past their pack snapshot
    tokio::time::timeout(Duration::from_secs(30), state.gate.wait_held(54))
        .await
        .expect("54 RPCs in flight");
    let shutdown = tokio::spawn(r.shutdown());
    // the listener closes as the shutdown begins, while the RPCs are still held
    let mut refused = false;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "new connections are refused once shutdown begins");
    assert!(
        !shutdown.is_finished(),
        "held RPCs keep the server draining"
    );
    state.gate.release();
    let drained = shutdown.await.unwrap().unwrap();
    assert!(drained, "drained within the timeout");
    for c in calls {
        let out = c
            .await
            .unwrap()
            .expect("in-flight batch completes")
            .into_inner();
        assert_eq!(out.decisions.len(), 1000);
        assert!(out.decisions.iter().all(|d| d.decision == "allow"));
    }
    for c in checks {
        assert_eq!(code(&c.await.unwrap()), "allow");
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
