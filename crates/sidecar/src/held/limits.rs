//! The sidecar's limits as outsiders meet them: the concurrency limit, RPCs in flight across a
//! reload, the decision cache's bounds and hostile input. The real server on a loopback port,
//! generated clients over real HTTP/2; RPCs "in flight" are held by the test gate (`testing::Gate`,
//! compiled only for the crate's own tests) after their pack snapshot, so no test sleeps to synchronise.
#![allow(
    clippy::cloned_ref_to_slice_refs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use super::common::*;
use custody_sidecar::pb;
use custody_sidecar::{Running, ServeArgs};
use custody_tests::Fixture;
use tonic::Code;

/// Server options for the tests that hold RPCs: no reload but the explicit one, and a deadline
/// far longer than any hold, so only the gate decides when a held RPC goes on.
fn held_args(f: &Fixture) -> ServeArgs {
    ServeArgs {
        reload_interval_ms: 0,
        request_timeout_ms: 600_000,
        no_decision_log: true,
        ..args(f)
    }
}

fn metadata_pack(r: &envoy_types::pb::envoy::service::auth::v3::CheckResponse) -> String {
    let fields = &r.dynamic_metadata.as_ref().unwrap().fields;
    match &fields["pack_version"].kind {
        Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(v)) => v.clone(),
        other => panic!("{other:?}"),
    }
}

async fn health_status(r: &Running, service: &str) -> i32 {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let mut h = HealthClient::new(channel(r).await);
    h.check(HealthCheckRequest {
        service: service.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .status
}

/// `--max-concurrency 2` with two RPCs in progress: a third one, on the same connection or
/// another, of any service, is refused at once with RESOURCE_EXHAUSTED and counted; health
/// checks are still answered; once the two finish, the server serves as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_concurrency_limit_is_resource_exhausted() {
    let f = Fixture::standard();
    let r = start(ServeArgs {
        max_concurrency: 2,
        ..held_args(&f)
    })
    .await;
    let req = verify_req(&f);
    let mut c = native(&r).await;

    r.gate().hold_next(2);
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut c = c.clone();
            let req = req.clone();
            tokio::spawn(async move { c.verify(req).await })
        })
        .collect();
    r.gate().wait_held(2).await;

    // the same connection
    let err = c.verify(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // another connection, the other services
    let mut other = native(&r).await;
    let err = other
        .verify_batch(pb::VerifyBatchRequest {
            requests: vec![req.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let mut a = authz(&r).await;
    let (t0, t1) = live_chain(&f);
    let h = chain_headers(&[t0], &t1, "orders:read");
    let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let err = a.check(check_request(&hv, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("concurrency limit"), "{err:?}");
    // health is exempt
    assert_eq!(health_status(&r, "").await, 1);
    let m = metrics(&r).await;
    assert_eq!(metric(&m, "custody_requests_shed_total"), 3.0, "{m}");

    r.gate().release();
    for h in held {
        let d = h.await.unwrap().unwrap().into_inner();
        assert_eq!(first_code(&d), "allow", "{d:?}");
    }
    // the permits came back: both slots serve again, on both connections
    let d = c.verify(req.clone()).await.unwrap().into_inner();
    assert_eq!(first_code(&d), "allow");
    let d = other.verify(req).await.unwrap().into_inner();
    assert_eq!(first_code(&d), "allow");
    assert_eq!(code(&check(&mut a, &h, "").await), "allow");
    let m = metrics(&r).await;
    assert_eq!(metric(&m, "custody_requests_shed_total"), 3.0, "{m}");
    r.shutdown().await.unwrap();
}

/// A reload while RPCs of every kind are in flight: the held ones finish on the pack they
/// started with (its decision and its version), new ones use the new pack, and the cache never
/// answers a new RPC with an old pack's decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_in_flight_finish_on_the_pack_they_started_with() {
    let f = Fixture::standard();
    let r = start(held_args(&f)).await;
    let v1 = r.pack_version();
    let req = verify_req(&f);
    let (t0, t1) = live_chain(&f);
    let h = chain_headers(&[t0], &t1, "orders:read");
    let mut c = native(&r).await;
    let mut a = authz(&r).await;

    r.gate().hold_next(3);
    let one = {
        let mut c = c.clone();
        let req = req.clone();
        tokio::spawn(async move { c.verify(req).await })
    };
    let batch = {
        let mut c = c.clone();
        let requests = vec![req.clone(); 64];
        tokio::spawn(async move { c.verify_batch(pb::VerifyBatchRequest { requests }).await })
    };
    let checked = {
        let mut a = a.clone();
        let h = h.clone();
        tokio::spawn(async move { check(&mut a, &h, "").await })
    };
    r.gate().wait_held(3).await;

    // a pack that decides the same chain differently
    unfederate(&f);
    assert!(r.reload().await.unwrap(), "a new pack was swapped in");
    let v2 = r.pack_version();
    assert_ne!(v1, v2);

    // new RPCs: the new pack
    let d = c.verify(req.clone()).await.unwrap().into_inner();
    assert_eq!(
        (first_code(&d), d.pack_version.as_str()),
        ("domain_not_federated", v2.as_str())
    );
    let resp = check(&mut a, &h, "").await;
    assert_eq!(code(&resp), "domain_not_federated");
    assert_eq!(metadata_pack(&resp), v2);

    // the held RPCs: the old pack
    r.gate().release();
    let d = one.await.unwrap().unwrap().into_inner();
    assert_eq!(
        (first_code(&d), d.pack_version.as_str()),
        ("allow", v1.as_str())
    );
    let out = batch.await.unwrap().unwrap().into_inner();
    assert_eq!(out.pack_version, v1);
    assert_eq!(out.decisions.len(), 64);
    for d in &out.decisions {
        assert_eq!(
            (first_code(d), d.pack_version.as_str()),
            ("allow", v1.as_str())
        );
    }
    let resp = checked.await.unwrap();
    assert_eq!(code(&resp), "allow");
    assert_eq!(metadata_pack(&resp), v1);

    // the held Check cached its allow under the old pack's version: new RPCs never see it
    let resp = check(&mut a, &h, "").await;
    assert_eq!(code(&resp), "domain_not_federated");
    assert_eq!(metadata_pack(&resp), v2);
    r.shutdown().await.unwrap();
}

/// Sends `n` distinct cacheable Check requests (each a malformed bearer token, denied with
/// `malformed_token` and cached for the TTL), four at a time.
async fn distinct_checks(r: &Running, from: usize, n: usize) {
    let mut tasks = Vec::new();
    for lane in 0..4 {
        let mut a = authz(r).await;
        tasks.push(tokio::spawn(async move {
            for i in (from + lane..from + n).step_by(4) {
                let h = vec![
                    ("authorization", format!("Bearer garbage-{i}")),
                    (ACTION_HEADER, "orders:read".to_owned()),
                ];
                assert_eq!(code(&check(&mut a, &h, "").await), "malformed_token");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// 10,000 distinct cacheable requests leave the cache at its entry bound, and a tight byte
/// bound holds too; each bound evicts (the oldest first) and the evictions are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_cache_stays_within_its_bounds() {
    let f = Fixture::standard();
    let r = start(ServeArgs {
        decision_cache_entries: 100,
        no_decision_log: true,
        ..args(&f)
    })
    .await;
    distinct_checks(&r, 0, 10_000).await;
    let m = metrics(&r).await;
    assert_eq!(metric(&m, "custody_decision_cache_misses_total"), 10_000.0);
    assert_eq!(metric(&m, "custody_decision_cache_entries"), 100.0, "{m}");
    assert_eq!(
        metric(&m, "custody_decision_cache_evictions_total"),
        9_900.0,
        "{m}"
    );
    // each entry is charged what it holds: hundreds of bytes for a denial with its message
    let per_entry = metric(&m, "custody_decision_cache_bytes") / 100.0;
    assert!((400.0..2_000.0).contains(&per_entry), "{m}");
    // the newest entry answers, the oldest went (the newest is sent after the four lanes end:
    // they end in no fixed order, so `garbage-9999` may already be 100 inserts old)
    distinct_checks(&r, 10_000, 1).await;
    distinct_checks(&r, 10_000, 1).await;
    distinct_checks(&r, 0, 1).await;
    let m = metrics(&r).await;
    assert_eq!(metric(&m, "custody_decision_cache_hits_total"), 1.0, "{m}");
    r.shutdown().await.unwrap();

    // a byte bound far below 100,000 small entries: it binds instead
    let max_bytes = 64 * 1024;
    let r = start(ServeArgs {
        decision_cache_entries: 100_000,
        decision_cache_bytes: max_bytes,
        no_decision_log: true,
        ..args(&f)
    })
    .await;
    distinct_checks(&r, 0, 2_000).await;
    let m = metrics(&r).await;
    let entries = metric(&m, "custody_decision_cache_entries");
    let bytes = metric(&m, "custody_decision_cache_bytes");
    assert!(entries > 0.0 && entries < 2_000.0, "{m}");
    assert!(bytes <= max_bytes as f64, "{m}");
    assert_eq!(
        metric(&m, "custody_decision_cache_evictions_total"),
        2_000.0 - entries,
        "{m}"
    );
    // one more entry than fits: the byte bound is the binding one
    assert!(bytes + bytes / entries > max_bytes as f64, "{m}");
    r.shutdown().await.unwrap();
}

/// A message whose field 1 holds whatever bytes a test wants.
#[derive(Clone, PartialEq, prost::Message)]
struct Raw {
    #[prost(bytes = "vec", tag = "1")]
    field1: Vec<u8>,
}

/// Sends `body` as the request message of `method` (a custody.v1 or ext_authz path).
async fn raw_call(r: &Running, method: &'static str, body: Raw) -> tonic::Status {
    let mut raw = tonic::client::Grpc::new(channel(r).await);
    raw.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    let codec: tonic_prost::ProstCodec<Raw, Raw> = tonic_prost::ProstCodec::default();
    raw.unary(tonic::Request::new(body), path, codec)
        .await
        .unwrap_err()
}

/// Hostile input on the custody.v1 side and in the gRPC metadata (the Check side is
/// `grpc.rs`'s `bad_input_gets_clean_answers`): each gets a clean status or an
/// `invalid_request` decision, and with `--max-concurrency 1` a valid request right after
/// each one succeeds, so none of them kept its permit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_native_input_gets_clean_answers() {
    let f = Fixture::standard();
    let r = start(ServeArgs {
        max_message_bytes: 64 * 1024,
        max_concurrency: 1,
        no_decision_log: true,
        ..args(&f)
    })
    .await;
    let mut c = native(&r).await;
    let ok = verify_req(&f);
    let still_serving = |c: &mut pb::verifier_client::VerifierClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        let ok = ok.clone();
        async move {
            let d = c.verify(ok).await.unwrap().into_inner();
            assert_eq!(first_code(&d), "allow", "{d:?}");
        }
    };

    // thousands of chain entries: refused by count, before any is decoded
    let many = pb::VerifyRequest {
        tokens: vec!["a".into(); 5_000],
        ..ok.clone()
    };
    let d = c.verify(many.clone()).await.unwrap().into_inner();
    assert_eq!(first_code(&d), "invalid_request");
    assert!(
        d.reasons[0].message.contains("more than 16 tokens"),
        "{d:?}"
    );
    let out = c
        .verify_batch(pb::VerifyBatchRequest {
            requests: vec![many, ok.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<&str> = out.decisions.iter().map(first_code).collect();
    assert_eq!(codes, ["invalid_request", "allow"]);
    still_serving(&mut c).await;

    // an oversized message, for each service
    let huge = pb::VerifyRequest {
        tokens: vec!["x".repeat(100 * 1024)],
        ..ok.clone()
    };
    let err = c.verify(huge.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let err = c
        .verify_batch(pb::VerifyBatchRequest {
            requests: vec![huge],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    still_serving(&mut c).await;

    // malformed protobuf: a string that is not UTF-8, a nested message that is not one, a
    // length running past the end
    let not_utf8 = Raw {
        field1: vec![0xff, 0xfe, 0xfd],
    };
    let err = raw_call(&r, "/custody.v1.Verifier/Verify", not_utf8).await;
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    let not_a_message = Raw {
        field1: vec![0xff; 64],
    };
    let err = raw_call(&r, "/custody.v1.Verifier/VerifyBatch", not_a_message).await;
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    let past_the_end = Raw {
        field1: vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, b'x'],
    };
    let err = raw_call(&r, "/custody.v1.Verifier/VerifyBatch", past_the_end).await;
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    still_serving(&mut c).await;

    // gRPC metadata: 60 KiB passes, 100 KiB is over the 64 KiB header-list limit and the
    // server's HTTP/2 layer answers 431
    let padded = |n: usize| {
        let mut r = tonic::Request::new(ok.clone());
        r.metadata_mut()
            .insert("x-pad", "x".repeat(n).parse().unwrap());
        r
    };
    let d = c.verify(padded(60 * 1024)).await.unwrap().into_inner();
    assert_eq!(first_code(&d), "allow");
    let err = c.verify(padded(100 * 1024)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown, "{err:?}");
    assert!(err.message().contains("431"), "{err:?}");
    still_serving(&mut c).await;
    // and on a fresh connection
    still_serving(&mut native(&r).await).await;

    let m = metrics(&r).await;
    assert_eq!(metric(&m, "custody_requests_shed_total"), 0.0, "{m}");
    r.shutdown().await.unwrap();
}
