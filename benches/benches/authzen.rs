//! Issue 18: the sidecar's AuthZEN evaluation endpoint against its custody.v1 Verify RPC, in
//! one run: one in-process sidecar (`custody_sidecar::start`, decision log off), both called
//! over loopback, one call at a time, on the same warm two-domain chain (the verifier's token
//! cache and Cedar memo hold it after the first call). `cargo bench -p custody-benches --bench
//! authzen`.
//!
//! - `authzen/evaluation`: `POST /access/v1/evaluation` (hyper's HTTP/1.1 client, keep-alive),
//!   the chain in `context.tokens`, `subject.id` the current actor;
//! - `authzen/verify_rpc`: `custody.v1.Verifier/Verify` (tonic, HTTP/2) with the same request.
//!
//! After criterion's rows the bench measures both again interleaved (rounds of
//! [`CALLS_PER_ROUND`] calls each) and prints the throughput ratio AuthZEN / Verify. Goal: ≥ 0.8.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use custody_sidecar::pb::verifier_client::VerifierClient;
use custody_sidecar::{pb, ServeArgs};
use custody_tests::{t0_claims, t1_claims, Fixture, ALICE, AUD};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tonic::transport::Channel;

/// Calls per side in each interleaved round of the ratio measurement.
const CALLS_PER_ROUND: u32 = 1500;
/// Interleaved rounds.
const ROUNDS: u32 = 4;

fn live(mut claims: Value) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    claims["iat"] = (now - 30).into();
    claims["exp"] = (now + 1800).into();
    claims
}

struct Callers {
    http: Client<HttpConnector, Full<Bytes>>,
    url: String,
    body: Bytes,
    grpc: VerifierClient<Channel>,
    verify: pb::VerifyRequest,
}

impl Callers {
    async fn authzen(&self) {
        let req = hyper::Request::post(&self.url)
            .header("content-type", "application/json")
            .body(Full::new(self.body.clone()))
            .unwrap();
        let res = self.http.request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        // the allow, without parsing the answer in the timed loop
        assert!(
            body.windows(15).any(|w| w == b"\"decision\":true"),
            "{body:?}"
        );
    }

    async fn verify(&mut self) {
        let d = self
            .grpc
            .verify(self.verify.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.decision, "allow", "{d:?}");
    }
}

fn authzen(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = Fixture::standard();
    let running = rt
        .block_on(custody_sidecar::start(ServeArgs {
            policies: f.dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            audience: Some(AUD.into()),
            no_decision_log: true,
            reload_interval_ms: 0,
            ..ServeArgs::default()
        }))
        .unwrap();
    let tokens = vec![
        f.token("a.example", live(t0_claims())),
        f.token("b.example", live(t1_claims())),
    ];
    let body = json!({
        "subject": {"type": "agent", "id": ALICE},
        "action": {"name": "orders:read"},
        "resource": {"type": "Order", "id": "42"},
        "context": {"tokens": tokens},
    });
    let verify = pb::VerifyRequest {
        tokens: tokens.clone(),
        audience: AUD.into(),
        action: "orders:read".into(),
        resource: Some(pb::Resource {
            r#type: "Order".into(),
            id: "42".into(),
        }),
        ..pb::VerifyRequest::default()
    };
    let mut callers = rt.block_on(async {
        Callers {
            http: Client::builder(TokioExecutor::new()).build_http(),
            url: format!(
                "http://{}/access/v1/evaluation",
                running.metrics_addr.unwrap()
            ),
            body: Bytes::from(body.to_string()),
            grpc: VerifierClient::connect(format!("http://{}", running.addr))
                .await
                .unwrap(),
            verify,
        }
    });
    // warm: the token cache, the Cedar memo, both connections
    rt.block_on(async {
        for _ in 0..200 {
            callers.authzen().await;
            callers.verify().await;
        }
    });

    let mut g = c.benchmark_group("authzen");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    g.bench_function("evaluation", |b| {
        b.iter(|| rt.block_on(callers.authzen()));
    });
    g.bench_function("verify_rpc", |b| {
        b.iter(|| rt.block_on(callers.verify()));
    });
    g.finish();

    // the ratio, both sides interleaved so a change in the machine's load hits both alike
    let (mut authzen_time, mut verify_time) = (Duration::ZERO, Duration::ZERO);
    rt.block_on(async {
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for _ in 0..CALLS_PER_ROUND {
                callers.authzen().await;
            }
            authzen_time += start.elapsed();
            let start = Instant::now();
            for _ in 0..CALLS_PER_ROUND {
                callers.verify().await;
            }
            verify_time += start.elapsed();
        }
    });
    let calls = f64::from(CALLS_PER_ROUND * ROUNDS);
    let authzen_rate = calls / authzen_time.as_secs_f64();
    let verify_rate = calls / verify_time.as_secs_f64();
    let ratio = authzen_rate / verify_rate;
    println!(
        "authzen throughput {authzen_rate:.0}/s ({:.1} µs/call), verify_rpc {verify_rate:.0}/s \
         ({:.1} µs/call): ratio {ratio:.2} (goal >= 0.80, {})",
        1e6 / authzen_rate,
        1e6 / verify_rate,
        if ratio >= 0.8 { "met" } else { "missed" }
    );
    rt.block_on(async {
        running.shutdown().await.unwrap();
    });
}

criterion_group!(benches, authzen);
criterion_main!(benches);
