//! The memory bound holds for grpc.health.v1 too (security review, finding 5): health
//! requests are limited to 1 KiB each and to 16 in progress at once, with permits of their
//! own, so a health probe is never shed by the main `--max-concurrency` limit and a flood of
//! oversized health requests is refused without being buffered.
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
use custody_sidecar::{pb, Running, ServeArgs};
use custody_tests::{Fixture, AUD};
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const CHECK: &str = "/grpc.health.v1.Health/Check";

async fn health(r: &Running, service: String) -> Result<i32, tonic::Status> {
    let mut h = HealthClient::new(channel(r).await);
    h.check(HealthCheckRequest { service })
        .await
        .map(|r| r.into_inner().status)
}

/// A health Check whose request message never comes: the server waits for it, holding a
/// health permit, until the task is aborted.
async fn held_health(r: &Running) -> tokio::task::JoinHandle<()> {
    let mut raw = tonic::client::Grpc::new(channel(r).await);
    raw.ready().await.unwrap();
    tokio::spawn(async move {
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(CHECK);
        let codec: tonic_prost::ProstCodec<
            HealthCheckRequest,
            tonic_health::pb::HealthCheckResponse,
        > = tonic_prost::ProstCodec::default();
        let never = tonic::codegen::tokio_stream::pending::<HealthCheckRequest>();
        let _ = raw
            .client_streaming(tonic::Request::new(never), path, codec)
            .await;
    })
}

/// `--max-concurrency 4 --max-message-bytes 65536` (the review's setting): 64 concurrent
/// health Checks and Watches of 3 MiB each are all refused, OUT_OF_RANGE (over the 1 KiB health
/// message limit) or RESOURCE_EXHAUSTED (over the health permits), and health still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_health_requests_are_refused() {
    let f = Fixture::standard();
    let r = start(ServeArgs {
        max_concurrency: 4,
        max_message_bytes: 64 * 1024,
        reload_interval_ms: 0,
        no_decision_log: true,
        ..args(&f)
    })
    .await;
    // under tonic's 4 MiB default, which health kept
    let huge = "x".repeat(3 * 1024 * 1024);
    let mut calls = Vec::new();
    for i in 0..64 {
        // a connection each: one carries at most 2 × --max-concurrency streams
        let mut h = HealthClient::new(channel(&r).await);
        let service = huge.clone();
        calls.push(tokio::spawn(async move {
            if i % 2 == 0 {
                h.check(HealthCheckRequest { service }).await.map(|_| ())
            } else {
                h.watch(HealthCheckRequest { service }).await.map(|_| ())
            }
        }));
    }
    for c in calls {
        let err = c.await.unwrap().unwrap_err();
        assert!(
            matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted),
            "{err:?}"
        );
    }
    // a service name just under the limit is answered (unknown service), one over it refused
    let err = health(&r, "s".repeat(900)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = health(&r, "s".repeat(2048)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(health(&r, String::new()).await.unwrap(), 1);
    r.shutdown().await.unwrap();
}

/// Sixteen health requests in progress take every health permit: the next one is refused
/// with RESOURCE_EXHAUSTED (and counted), while the other services, under their own limit,
/// still answer; once they end, health answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_has_bounded_permits_of_its_own() {
    let f = Fixture::standard();
    let r = start(ServeArgs {
        reload_interval_ms: 0,
        no_decision_log: true,
        // the held requests must outlive setting them all up: under the default 2 s request
        // timeout, a loaded machine (a CI run) released the first ones before the 16th was held
        request_timeout_ms: 120_000,
        ..args(&f)
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(held_health(&r).await);
    }
    let mut refused = None;
    for _ in 0..500 {
        // a probe that reached the server before a held request did took that one's permit,
        // and the held request was refused and ended (seen on a loaded CI machine): hold
        // another in its place, so that sixteen are held again
        for h in held.iter_mut().filter(|h| h.is_finished()) {
            *h = held_health(&r).await;
        }
        match health(&r, String::new()).await {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let err = refused.expect("a 17th health request is refused");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let m = metrics(&r).await;
    assert!(
        metric(&m, "custody_health_requests_shed_total") >= 1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "custody_requests_shed_total"), 0.0, "{m}");

    // the other services do not share health's permits
    let (t0, t1) = live_chain(&f);
    let d = native(&r)
        .await
        .verify(pb::VerifyRequest {
            tokens: vec![t0, t1],
            audience: AUD.into(),
            action: "orders:read".into(),
            ..pb::VerifyRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.decision, "allow");

    for h in held {
        h.abort();
    }
    let mut answered = false;
    for _ in 0..500 {
        if health(&r, String::new()).await.ok() == Some(1) {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(answered, "health answers once the held requests end");
    r.shutdown().await.unwrap();
}
