//! Decisions run off the async runtime, each against a deadline (security review, finding 2):
//! a slow decision never delays another, and one that outlives its deadline is answered with an
//! explicit `decision_timeout` denial, never a gRPC error a proxy could fail open on.
//!
//! The server runs on a runtime of its own (2 workers, like `custody serve` on a 2-core
//! machine), so a worker blocked by a decision shows as a stalled server, not as a stalled
//! test. Slow decisions are the `cfg(test)` stall (`state::Stall`): it blocks the thread that decides, as a
//! Biscuit with heavy checks would, until the test releases it.
#![allow(
    clippy::cloned_ref_to_slice_refs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::future::Future;
use std::time::{Duration, Instant};

use super::common::*;
use custody_sidecar::{pb, Running, ServeArgs};
use custody_tests::Fixture;
use tonic::Code;

/// Starts the server on a runtime of its own with 2 worker threads.
fn start_apart(args: ServeArgs) -> (tokio::runtime::Runtime, Running) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(custody_sidecar::start(args)).unwrap();
        (rt, r)
    })
    .join()
    .unwrap()
}

async fn stop(rt: tokio::runtime::Runtime, r: Running) {
    r.stall().release();
    let _ = tokio::time::timeout(Duration::from_secs(10), r.shutdown()).await;
    rt.shutdown_background();
}

/// `fut`, or a test failure after `secs` seconds.
async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done in {secs} s"),
    }
}

/// Four Checks whose decisions block their threads: a fifth Check, a Verify and a VerifyBatch
/// are still answered at once, and the four finish normally once released. (With decisions on
/// the runtime's two workers, two slow ones stall the whole server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_decision_does_not_delay_others() {
    let f = Fixture::standard();
    let (rt, r) = start_apart(ServeArgs {
        reload_interval_ms: 0,
        request_timeout_ms: 600_000,
        no_decision_log: true,
        no_decision_cache: true,
        ..args(&f)
    });
    let (t0, t1) = live_chain(&f);
    let h = chain_headers(&[t0], &t1, "orders:read");

    r.stall().hold_next(4);
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut a = authz(&r).await;
        let h = h.clone();
        slow.push(tokio::spawn(async move { check(&mut a, &h, "").await }));
    }
    within(10, "four decisions held", r.stall().wait_held(4)).await;

    let started = Instant::now();
    let mut a = authz(&r).await;
    let resp = within(5, "a Check beside four slow ones", check(&mut a, &h, "")).await;
    assert_eq!(code(&resp), "allow");
    let mut c = native(&r).await;
    let d = within(
        5,
        "a Verify beside four slow ones",
        c.verify(verify_req(&f)),
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(first_code(&d), "allow");
    let out = within(
        5,
        "a VerifyBatch beside four slow ones",
        c.verify_batch(pb::VerifyBatchRequest {
            requests: vec![verify_req(&f); 8],
        }),
    )
    .await
    .unwrap()
    .into_inner();
    assert!(out.decisions.iter().all(|d| first_code(d) == "allow"));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    r.stall().release();
    for s in slow {
        let resp = within(10, "a released decision", s).await.unwrap();
        assert_eq!(code(&resp), "allow");
    }
    stop(rt, r).await;
}

/// A decision that outlives its deadline (`--request-timeout-ms`, or the client's shorter
/// `grpc-timeout`) is answered before the RPC's own timeout with a denial `decision_timeout`:
/// Check a 503 with the reasons as JSON, Verify and VerifyBatch a deny decision. The late
/// decision keeps its concurrency permit until it finishes, and it is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_past_its_deadline_is_denied_decision_timeout() {
    let f = Fixture::standard();
    let (rt, r) = start_apart(ServeArgs {
        reload_interval_ms: 0,
        request_timeout_ms: 400,
        no_decision_log: true,
        ..args(&f)
    });
    let (t0, t1) = live_chain(&f);
    let h = chain_headers(&[t0], &t1, "orders:read");

    // Check
    r.stall().hold_next(1);
    let mut a = authz(&r).await;
    let started = Instant::now();
    let resp = within(5, "a stalled Check", check(&mut a, &h, "")).await;
    // before the RPC's own 400 ms timeout, which would have been a gRPC error instead (the
    // answer being a decision at all shows the deadline came first)
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    let Outcome::Deny {
        http,
        headers,
        body,
    } = outcome(&resp)
    else {
        panic!("{resp:?}")
    };
    assert_eq!(http, 503, "{resp:?}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["reasons"][0]["code"], "decision_timeout", "{body}");
    assert_eq!(resp.status.as_ref().unwrap().code, 7);
    r.stall().release();

    // Verify and VerifyBatch
    let mut c = native(&r).await;
    r.stall().hold_next(1);
    let d = within(5, "a stalled Verify", c.verify(verify_req(&f)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (d.decision.as_str(), first_code(&d)),
        ("deny", "decision_timeout")
    );
    assert_eq!(d.pack_version, r.pack_version());
    r.stall().release();
    r.stall().hold_next(1);
    let out = within(
        5,
        "a stalled VerifyBatch",
        c.verify_batch(pb::VerifyBatchRequest {
            requests: vec![verify_req(&f); 3],
        }),
    )
    .await
    .unwrap()
    .into_inner();
    let codes: Vec<&str> = out.decisions.iter().map(first_code).collect();
    assert_eq!(codes, ["decision_timeout"; 3]);
    r.stall().release();
    stop(rt, r).await;

    // the client's shorter grpc-timeout sets the deadline; --max-concurrency 1: the late
    // decision keeps the permit until it finishes
    let (rt, r) = start_apart(ServeArgs {
        reload_interval_ms: 0,
        request_timeout_ms: 600_000,
        max_concurrency: 1,
        no_decision_log: true,
        ..args(&f)
    });
    let mut c = native(&r).await;
    r.stall().hold_next(1);
    let mut req = tonic::Request::new(verify_req(&f));
    req.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let d = within(5, "a stalled Verify with grpc-timeout", c.verify(req))
        .await
        .unwrap()
        .into_inner();
    // the client's 300 ms less a tenth, not the server's 600 s
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(first_code(&d), "decision_timeout");
    let err = c.verify(verify_req(&f)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    r.stall().release();
    let mut served = false;
    for _ in 0..200 {
        match c.verify(verify_req(&f)).await {
            Ok(d) => {
                assert_eq!(first_code(&d.into_inner()), "allow");
                served = true;
                break;
            }
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        served,
        "the permit came back once the late decision finished"
    );
    let m = metrics(&r).await;
    let series = |result: &str, code: &str| {
        metric(
            &m,
            &format!(
                "custody_decisions_total{{rpc=\"verify\",result=\"{result}\",code=\"{code}\"}}"
            ),
        )
    };
    // the late decision was not counted as well
    assert_eq!(series("deny", "decision_timeout"), 1.0, "{m}");
    assert_eq!(series("allow", ""), 1.0, "{m}");
    stop(rt, r).await;
}

/// One AuthZEN call on the HTTP port (`connection: close`): status and JSON body.
async fn authzen_post(
    r: &Running,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut s = tokio::net::TcpStream::connect(r.metrics_addr.unwrap())
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let (_, json) = out.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(json).unwrap())
}

/// The AuthZEN endpoints decide on Verify's path: a stalled evaluation is answered
/// `decision_timeout` within the deadline (a batch: each item, cut by its semantic), the late
/// decision keeps its `--max-concurrency` permit (shared with the gRPC services) until it ends,
/// and it is counted once, under `rpc="authzen"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authzen_evaluation_past_its_deadline_is_denied_decision_timeout() {
    let f = Fixture::standard();
    let (rt, r) = start_apart(ServeArgs {
        reload_interval_ms: 0,
        request_timeout_ms: 400,
        max_concurrency: 1,
        no_decision_log: true,
        ..args(&f)
    });
    let (t0, t1) = live_chain(&f);
    let one = serde_json::json!({
        "subject": {"type": "agent", "id": custody_tests::ALICE},
        "action": {"name": "orders:read"},
        "resource": {"type": "Order", "id": "1"},
        "context": {"tokens": [t0, t1]}
    });
    r.stall().hold_next(1);
    let started = Instant::now();
    let (status, body) = within(
        5,
        "a stalled evaluation",
        authzen_post(&r, "/access/v1/evaluation", &one),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, 200);
    assert_eq!(body["decision"], false);
    assert_eq!(
        body["context"]["reason_codes"],
        serde_json::json!(["decision_timeout"])
    );
    // the late decision still holds the only permit: gRPC and HTTP calls are refused
    let err = native(&r).await.verify(verify_req(&f)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let (status, body) = authzen_post(&r, "/access/v1/evaluation", &one).await;
    assert_eq!(
        (status, &body["error"]["status"]),
        (503, &serde_json::json!(503)),
        "{body}"
    );
    r.stall().release();
    let mut served = false;
    for _ in 0..200 {
        let (status, body) = authzen_post(&r, "/access/v1/evaluation", &one).await;
        if status == 200 {
            assert_eq!(body["decision"], true, "{body}");
            served = true;
            break;
        }
        assert_eq!(status, 503);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        served,
        "the permit came back once the late decision finished"
    );

    // a batch: every item timed out, cut by the semantic
    let mut batch = one.clone();
    batch["evaluations"] = serde_json::json!([{}, {}, {}]);
    for (semantic, n) in [("execute_all", 3), ("deny_on_first_deny", 1)] {
        batch["options"] = serde_json::json!({"evaluations_semantic": semantic});
        r.stall().hold_next(1);
        let (status, body) = within(
            5,
            "a stalled batch",
            authzen_post(&r, "/access/v1/evaluations", &batch),
        )
        .await;
        assert_eq!(status, 200);
        let items = body["evaluations"].as_array().unwrap();
        assert_eq!(items.len(), n, "{semantic}: {body}");
        for i in items {
            assert_eq!(i["context"]["reason_codes"][0], "decision_timeout");
        }
        r.stall().release();
        // wait for the late batch to give the permit back
        for _ in 0..200 {
            if authzen_post(&r, "/access/v1/evaluation", &one).await.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let m = metrics(&r).await;
    let series = |result: &str, code: &str| {
        metric(
            &m,
            &format!(
                "custody_decisions_total{{rpc=\"authzen\",result=\"{result}\",code=\"{code}\"}}"
            ),
        )
    };
    // 1 + 3 + 1 timed out; the late decisions were not counted as well
    assert_eq!(series("deny", "decision_timeout"), 5.0, "{m}");
    assert_eq!(series("allow", ""), 3.0, "{m}");
    // the two refusals above, and any while waiting for the permit
    assert!(metric(&m, "custody_requests_shed_total") >= 2.0, "{m}");
    stop(rt, r).await;
}
