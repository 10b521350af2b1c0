//! The sidecar as outsiders use it: the real server on a loopback port, generated clients over
//! real HTTP/2, every reason-code family, bad input, batches, health, metrics.
#![allow(
    clippy::cloned_ref_to_slice_refs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use crate::common;

use common::*;
use custody_sidecar::pb;
use custody_tests::{
    act, chain, t0_claims, t1_claims, Fixture, PackBuilder, ALICE, AUD, BOB, MALLORY, NOW,
};
use serde_json::json;
use tonic::Code;

fn verify_req(tokens: Vec<String>) -> pb::VerifyRequest {
    pb::VerifyRequest {
        tokens,
        audience: AUD.into(),
        action: "orders:read".into(),
        now: Some(NOW),
        ..pb::VerifyRequest::default()
    }
}

/// Flips one character in the middle of the signature.
fn tamper(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", sig.into_iter().collect::<String>())
}

/// Every reason-code family through custody.v1.Verify, at the kit's fixed time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_covers_every_reason_family() {
    let f = Fixture::standard();
    let r = start(custody_sidecar::ServeArgs {
        allow_request_time: true,
        ..args(&f)
    })
    .await;
    let mut c = native(&r).await;
    let t0 = f.token("a.example", t0_claims());
    let t1 = f.token("b.example", t1_claims());
    let with = |claims: serde_json::Value, domain: &str| f.token(domain, claims);
    let t1_claims_with = |k: &str, v: serde_json::Value| {
        let mut c = t1_claims();
        c[k] = v;
        c
    };
    let mut cases: Vec<(&str, pb::VerifyRequest)> = vec![
        ("allow", verify_req(chain(&f))),
        ("invalid_request", verify_req(vec![])),
        (
            "malformed_token",
            verify_req(vec![t0.clone(), "garbage".into()]),
        ),
        ("token_too_large", verify_req(vec!["a".repeat(9000)])),
        ("bad_signature", verify_req(vec![t0.clone(), tamper(&t1)])),
        (
            "unknown_issuer",
            verify_req(vec![
                t0.clone(),
                with(
                    t1_claims_with("iss", "https://as.x.example".into()),
                    "b.example",
                ),
            ]),
        ),
        (
            "expired",
            verify_req(vec![
                t0.clone(),
                with(t1_claims_with("exp", (NOW - 100).into()), "b.example"),
            ]),
        ),
        (
            "txn_mismatch",
            verify_req(vec![
                t0.clone(),
                with(t1_claims_with("txn", "txn-2".into()), "b.example"),
            ]),
        ),
        (
            "scope_escalation",
            verify_req(vec![
                t0.clone(),
                with(
                    t1_claims_with("scope", "orders:read admin:all".into()),
                    "b.example",
                ),
            ]),
        ),
        (
            "subject_mismatch",
            verify_req(vec![
                t0.clone(),
                with(t1_claims_with("sub", "user:eve".into()), "b.example"),
            ]),
        ),
        (
            "expiry_extended",
            verify_req(vec![
                t0.clone(),
                with(t1_claims_with("exp", (NOW + 601).into()), "b.example"),
            ]),
        ),
    ];
    // one b.example token whose actors loop, and one nested too deep
    let b = |n: &str| format!("spiffe://b.example/agent/{n}");
    let single = |actors: &[&str]| {
        let mut c = t1_claims();
        c["act"] = act(actors);
        verify_req(vec![f.token("b.example", c)])
    };
    cases.push(("delegation_loop", single(&[&b("x"), &b("y"), &b("x")])));
    let nine: Vec<String> = (0..9).map(|i| b(&format!("n{i}"))).collect();
    cases.push((
        "depth_exceeded",
        single(&nine.iter().map(String::as_str).collect::<Vec<_>>()),
    ));
    let mut foreign = verify_req(vec![t0.clone(), t1.clone()]);
    foreign.audience = "spiffe://c.example/billing".into();
    cases.push(("audience_mismatch", foreign));
    let mut scope = verify_req(vec![t0.clone(), t1.clone()]);
    scope.action = "orders:delete".into();
    cases.push(("scope_missing", scope));
    let mut peer = verify_req(vec![t0.clone(), t1.clone()]);
    peer.peer = Some(BOB.into());
    cases.push(("sender_mismatch", peer));
    let mut bad_peer = verify_req(vec![t0.clone(), t1.clone()]);
    bad_peer.peer = Some("not-a-spiffe-id".into());
    cases.push(("invalid_spiffe_id", bad_peer));
    // Mallory in the unfederated d.example relays for Bob
    let mut m0 = t0_claims();
    m0["aud"] = json!([MALLORY]);
    let mut m1 = t1_claims();
    m1["act"] = act(&[BOB, MALLORY]);
    cases.push((
        "domain_not_federated",
        verify_req(vec![f.token("a.example", m0), f.token("d.example", m1)]),
    ));
    for (want, req) in cases {
        let d = c.verify(req).await.unwrap().into_inner();
        let got = d
            .reasons
            .first()
            .map_or("allow", |r| r.code.as_str())
            .to_owned();
        assert_eq!(got, want, "{d:?}");
        assert_eq!(d.decision, if want == "allow" { "allow" } else { "deny" });
        assert_eq!(d.pack_version, r.pack_version());
    }
    r.shutdown().await.unwrap();
}

/// policy_denied: a Cedar pack that forbids writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cedar_denials_come_back_as_policy_denied() {
    let f = PackBuilder::default()
        .cedar("permit (principal, action, resource);\nforbid (principal, action == Action::\"orders:write\", resource);")
        .build();
    let r = start(args(&f)).await;
    let mut a = authz(&r).await;
    let (t0, t1) = live_chain(&f);
    let allowed = check(
        &mut a,
        &chain_headers(&[t0.clone()], &t1, "orders:read"),
        "",
    )
    .await;
    assert_eq!(code(&allowed), "allow");
    let mut w1 = t1_live();
    w1["scope"] = "orders:read orders:write".into();
    let t1w = f.token("b.example", w1);
    let denied = check(&mut a, &chain_headers(&[t0], &t1w, "orders:write"), "").await;
    match outcome(&denied) {
        Outcome::Deny { http, body, .. } => {
            assert_eq!(http, 403);
            assert_eq!(body["reasons"][0]["code"], "policy_denied");
        }
        o => panic!("{o:?}"),
    }
    r.shutdown().await.unwrap();
}

/// Check: an allowed two-domain chain gets the x-custody-* headers and the chain summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_allows_with_headers_and_metadata() {
    let f = Fixture::standard();
    let r = start(args(&f)).await;
    let mut a = authz(&r).await;
    let (t0, t1) = live_chain(&f);
    let resp = check(&mut a, &chain_headers(&[t0], &t1, "orders:read"), ALICE).await;
    let Outcome::Allow {
        headers,
        removed,
        metadata,
    } = outcome(&resp)
    else {
        panic!("{resp:?}")
    };
    assert_eq!(headers["x-custody-origin"], "a.example|user:alice");
    assert_eq!(headers["x-custody-actor"], ALICE);
    assert_eq!(headers["x-custody-depth"], "2");
    assert!(removed.is_empty());
    assert_eq!(metadata["actors"], json!([BOB, ALICE]));
    assert_eq!(
        metadata["domains"],
        json!(["a.example", "b.example", "c.example"])
    );
    assert_eq!(metadata["cross_domain"], json!(true));
    assert_eq!(metadata["pack_version"], json!(r.pack_version()));
    r.shutdown().await.unwrap();
}

/// Check: missing token 401 with a challenge, widened scope 403, foreign audience 401, wrong
/// peer 403, refused request time, the action from METHOD:path without a header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_denials_map_to_401_and_403() {
    let f = Fixture::standard();
    let r = start(args(&f)).await;
    let mut a = authz(&r).await;
    let (t0, t1) = live_chain(&f);

    let none = check(&mut a, &[(ACTION_HEADER, "orders:read".to_owned())], "").await;
    let Outcome::Deny {
        http,
        headers,
        body,
    } = outcome(&none)
    else {
        panic!()
    };
    assert_eq!(
        (http, body["reasons"][0]["code"].as_str()),
        (401, Some("invalid_request"))
    );
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"custody\"");
    assert_eq!(headers["content-type"], "application/json");

    let mut wide = t1_live();
    wide["scope"] = "orders:read orders:admin".into();
    let widened = check(
        &mut a,
        &chain_headers(&[t0.clone()], &f.token("b.example", wide), "orders:read"),
        "",
    )
    .await;
    let Outcome::Deny {
        http,
        headers,
        body,
    } = outcome(&widened)
    else {
        panic!()
    };
    assert_eq!(
        (http, body["reasons"][0]["code"].as_str()),
        (403, Some("scope_escalation"))
    );
    assert_eq!(body["reasons"][0]["hop"], 1);
    assert!(!headers.contains_key("www-authenticate"));

    let mut expired = t1_live();
    expired["exp"] = (unix_now() - 120).into();
    expired["iat"] = (unix_now() - 200).into();
    let exp = check(
        &mut a,
        &chain_headers(&[t0.clone()], &f.token("b.example", expired), "orders:read"),
        "",
    )
    .await;
    let Outcome::Deny { http, headers, .. } = outcome(&exp) else {
        panic!()
    };
    assert_eq!(http, 401);
    assert!(headers["www-authenticate"].contains("error=\"invalid_token\""));

    let wrong_peer = check(
        &mut a,
        &chain_headers(&[t0.clone()], &t1, "orders:read"),
        BOB,
    )
    .await;
    assert_eq!(code(&wrong_peer), "sender_mismatch");
    let bad_peer = check(
        &mut a,
        &chain_headers(&[t0.clone()], &t1, "orders:read"),
        "CN=alice",
    )
    .await;
    assert_eq!(code(&bad_peer), "invalid_spiffe_id");

    let mut h = chain_headers(&[t0.clone()], &t1, "orders:read");
    h.push(("custody-now", NOW.to_string()));
    assert_eq!(code(&check(&mut a, &h, "").await), "invalid_request");

    // a client-sent Host never becomes the audience
    let mut h = chain_headers(&[t0.clone()], &t1, "orders:read");
    h.push(("host", "spiffe://c.example/billing".into()));
    assert_eq!(code(&check(&mut a, &h, "").await), "allow");
    r.shutdown().await.unwrap();

    // a sidecar for another service: the same chain is for a foreign audience
    let other = start(custody_sidecar::ServeArgs {
        audience: Some("spiffe://c.example/billing".into()),
        ..args(&f)
    })
    .await;
    let mut a = authz(&other).await;
    let foreign = check(
        &mut a,
        &chain_headers(&[t0.clone()], &t1, "orders:read"),
        "",
    )
    .await;
    let Outcome::Deny { http, body, .. } = outcome(&foreign) else {
        panic!()
    };
    assert_eq!(
        (http, body["reasons"][0]["code"].as_str()),
        (401, Some("audience_mismatch"))
    );
    other.shutdown().await.unwrap();

    // without --action-header the action is `METHOD:path`, query string dropped
    let plain = start(custody_sidecar::ServeArgs {
        action_header: None,
        ..args(&f)
    })
    .await;
    let mut a = authz(&plain).await;
    let resp = check(&mut a, &chain_headers(&[t0], &t1, "orders:read"), "").await;
    let Outcome::Deny { body, .. } = outcome(&resp) else {
        panic!()
    };
    assert_eq!(body["reasons"][0]["code"], "scope_missing");
    assert!(
        body["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("GET:/orders/42`"),
        "{body}"
    );
    plain.shutdown().await.unwrap();
}

/// The decision cache answers repeated chains, and the metrics say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_cache_and_metrics() {
    let f = Fixture::standard();
    let r = start(args(&f)).await;
    let mut a = authz(&r).await;
    let (t0, t1) = live_chain(&f);
    for _ in 0..5 {
        let resp = check(
            &mut a,
            &chain_headers(&[t0.clone()], &t1, "orders:read"),
            "",
        )
        .await;
        assert_eq!(code(&resp), "allow");
    }
    // a different peer is a different key
    let resp = check(
        &mut a,
        &chain_headers(&[t0.clone()], &t1, "orders:read"),
        BOB,
    )
    .await;
    assert_eq!(code(&resp), "sender_mismatch");
    let m = metrics(&r).await;
    assert_eq!(metric(&m, "custody_decision_cache_hits_total"), 4.0, "{m}");
    assert_eq!(
        metric(&m, "custody_decision_cache_misses_total"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "custody_decisions_total{rpc=\"check\",result=\"allow\",code=\"\"}"
        ),
        5.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "custody_decisions_total{rpc=\"check\",result=\"deny\",code=\"sender_mismatch\"}"
        ),
        1.0
    );
    assert_eq!(metric(&m, "custody_decision_latency_seconds_count"), 6.0);
    assert!(m.contains(&format!(
        "custody_pack_info{{version=\"{}\"}} 1",
        r.pack_version()
    )));
    r.shutdown().await.unwrap();

    // off by a flag
    let r = start(custody_sidecar::ServeArgs {
        no_decision_cache: true,
        ..args(&f)
    })
    .await;
    let mut a = authz(&r).await;
    for _ in 0..3 {
        check(
            &mut a,
            &chain_headers(&[t0.clone()], &t1, "orders:read"),
            "",
        )
        .await;
    }
    let m = metrics(&r).await;
    assert_eq!(metric(&m, "custody_decision_cache_hits_total"), 0.0);
    assert_eq!(
        metric(
            &m,
            "custody_decisions_total{rpc=\"check\",result=\"allow\",code=\"\"}"
        ),
        3.0
    );
    r.shutdown().await.unwrap();
}

/// A cached allow never outlives the chain's earliest `exp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_allow_expires_with_the_chain() {
    let f = PackBuilder::default().chain("clock_skew 0s").build();
    let r = start(args(&f)).await;
    let mut a = authz(&r).await;
    let t0 = f.token("a.example", t0_live());
    let t1 = f.token("b.example", live(t1_claims(), 30, 2));
    let h = chain_headers(&[t0], &t1, "orders:read");
    assert_eq!(code(&check(&mut a, &h, "").await), "allow");
    assert_eq!(code(&check(&mut a, &h, "").await), "allow");
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(code(&check(&mut a, &h, "").await), "expired");
    r.shutdown().await.unwrap();
}

/// VerifyBatch: one decision per request in order, per-item invalid requests, a size limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_batch() {
    let f = Fixture::standard();
    let r = start(custody_sidecar::ServeArgs {
        max_batch: 100,
        ..args(&f)
    })
    .await;
    let mut c = native(&r).await;
    let (t0, t1) = live_chain(&f);
    let ok = pb::VerifyRequest {
        tokens: vec![t0.clone(), t1.clone()],
        audience: AUD.into(),
        action: "orders:read".into(),
        ..pb::VerifyRequest::default()
    };
    let timed = pb::VerifyRequest {
        now: Some(NOW),
        ..ok.clone()
    };
    let ctx = pb::VerifyRequest {
        context_json: Some("{\"x\": null}".into()),
        ..ok.clone()
    };
    let reqs = vec![
        ok.clone(),
        timed,
        ok.clone(),
        ctx,
        pb::VerifyRequest {
            tokens: vec![],
            ..ok.clone()
        },
    ];
    let out = c
        .verify_batch(pb::VerifyBatchRequest { requests: reqs })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<&str> = out
        .decisions
        .iter()
        .map(|d| d.reasons.first().map_or("allow", |r| r.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            "allow",
            "invalid_request",
            "allow",
            "invalid_request",
            "invalid_request"
        ]
    );
    assert!(out.decisions[1].reasons[0]
        .message
        .contains("--allow-request-time"));
    assert_eq!(out.pack_version, r.pack_version());
    assert_eq!(out.decisions[0].chain.as_ref().unwrap().depth, 2);

    let big = vec![ok; 101];
    let err = c
        .verify_batch(pb::VerifyBatchRequest { requests: big })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let f = Fixture::standard();
    let r = start(args(&f)).await;
    let mut h = HealthClient::new(channel(&r).await);
    for service in [
        "",
        "envoy.service.auth.v3.Authorization",
        "custody.v1.Verifier",
    ] {
        let resp = h
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status, 1, "{service}"); // SERVING
    }
    r.shutdown().await.unwrap();
}

/// A message whose field 1 (`attributes`) is not a valid AttributeContext.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(bytes = "vec", tag = "1")]
    junk: Vec<u8>,
}

/// Bad input: malformed protobuf, an oversized message, garbage headers, thousands of chain
/// entries, a huge batch. Each gets a clean status or a 4xx decision; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clean_answers() {
    let f = Fixture::standard();
    let r = start(custody_sidecar::ServeArgs {
        max_message_bytes: 64 * 1024,
        ..args(&f)
    })
    .await;
    let ch = channel(&r).await;
    let mut a =
        envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::new(
            ch.clone(),
        );

    // malformed protobuf
    let mut raw = tonic::client::Grpc::new(ch.clone());
    raw.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/envoy.service.auth.v3.Authorization/Check",
    );
    let codec: tonic_prost::ProstCodec<Garbage, Garbage> = tonic_prost::ProstCodec::default();
    let err = raw
        .unary(
            tonic::Request::new(Garbage {
                junk: vec![0xff; 64],
            }),
            path,
            codec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");

    // an oversized message
    let huge = "x".repeat(100 * 1024);
    let err = a
        .check(check_request(
            &[("authorization", "Bearer t"), ("x-pad", &huge)],
            "",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::Internal
        ),
        "{err:?}"
    );

    // thousands of chain entries: refused before splitting
    let (t0, t1) = live_chain(&f);
    let many = vec![t0.as_str(); 5000].join(",");
    let resp = a
        .check(check_request(
            &[
                ("authorization", "Bearer x"),
                (ACTION_HEADER, "orders:read"),
                ("custody-chain", &many),
            ],
            "",
        ))
        .await;
    // 5000 tokens exceed 64 KiB: a clean status; with short entries it is a 403 decision
    assert!(resp.is_err() || code(&resp.unwrap().into_inner()) == "invalid_request");
    let many = vec!["a"; 5000].join(",");
    let resp = check(
        &mut a,
        &[
            ("authorization", "Bearer x".into()),
            (ACTION_HEADER, "orders:read".into()),
            ("custody-chain", many),
        ],
        "",
    )
    .await;
    assert_eq!(code(&resp), "invalid_request");

    // garbage headers
    let garbage: Vec<(&str, String)> = vec![
        ("authorization", "Bearer \u{0}\u{7f}..".into()),
        (ACTION_HEADER, "orders:read".into()),
        ("custody-chain", ",,,".into()),
    ];
    assert_eq!(code(&check(&mut a, &garbage, "").await), "invalid_request");
    let garbage: Vec<(&str, String)> = vec![
        ("authorization", "Bearer ....".into()),
        (ACTION_HEADER, "orders:read".into()),
    ];
    assert_eq!(code(&check(&mut a, &garbage, "").await), "malformed_token");
    let garbage: Vec<(&str, String)> = vec![
        ("authorization", "Bearer a.b.c".into()),
        (ACTION_HEADER, "\u{202e}\u{0}".into()),
    ];
    assert!(matches!(
        outcome(&check(&mut a, &garbage, "spiffe://\u{0}").await),
        Outcome::Deny { .. }
    ));
    // raw header list with a duplicated authorization header (Envoy's encode_raw_headers)
    let mut dup = check_request(&[], "");
    let http = dup
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    let hv = |k: &str, v: &[u8]| envoy_types::pb::envoy::config::core::v3::HeaderValue {
        key: k.into(),
        raw_value: v.to_vec(),
        ..Default::default()
    };
    http.header_map = Some(envoy_types::pb::envoy::config::core::v3::HeaderMap {
        headers: vec![
            hv("authorization", b"Bearer a"),
            hv("authorization", b"Bearer b"),
            hv(ACTION_HEADER, b"orders:read"),
        ],
    });
    assert_eq!(
        code(&a.check(dup.clone()).await.unwrap().into_inner()),
        "invalid_request"
    );
    let http = dup
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.header_map = Some(envoy_types::pb::envoy::config::core::v3::HeaderMap {
        headers: vec![
            hv("authorization", b"Bearer \xff\xfe"),
            hv(ACTION_HEADER, b"orders:read"),
        ],
    });
    assert_eq!(
        code(&a.check(dup).await.unwrap().into_inner()),
        "invalid_request"
    );
    // no HTTP attributes at all
    let empty = a
        .check(envoy_types::pb::envoy::service::auth::v3::CheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&empty), "invalid_request");

    // still serving
    let ok = check(&mut a, &chain_headers(&[t0], &t1, "orders:read"), "").await;
    assert_eq!(code(&ok), "allow");
    r.shutdown().await.unwrap();
}

/// Without `--audience`, Check denies everything (custody.v1 still works, its requests carry
/// their own audience); a pack that does not load stops the start with its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_audience_denies_check_and_bad_pack_refuses_start() {
    let f = Fixture::standard();
    let r = start(custody_sidecar::ServeArgs {
        audience: None,
        ..args(&f)
    })
    .await;
    let mut a = authz(&r).await;
    let (t0, t1) = live_chain(&f);
    let denied = check(&mut a, &chain_headers(&[t0], &t1, "orders:read"), "").await;
    assert_eq!(code(&denied), "invalid_request");
    r.shutdown().await.unwrap();
    let empty = tempfile::tempdir().unwrap();
    let err = custody_sidecar::start(custody_sidecar::ServeArgs {
        policies: empty.path().into(),
        ..args(&f)
    })
    .await
    .unwrap_err();
    let err = err.to_string();
    assert!(err.contains("cannot load the pack"), "{err}");
}

/// `--token-cache-entries 0 --cedar-memo-entries 0`: every call goes the long way (signatures
/// checked, Cedar requests built each time) and the answers are the defaults' answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_caches_off_answer_the_same() {
    let f = Fixture::standard();
    let (t0, t1) = live_chain(&f);
    // one signature character changed, well inside the signature (still canonical base64url)
    let at = t1.rfind('.').unwrap() + 10;
    let was = &t1[at..=at];
    let forged = format!(
        "{}{}{}",
        &t1[..at],
        if was == "A" { "B" } else { "A" },
        &t1[at + 1..]
    );
    let widened = chain_headers(std::slice::from_ref(&t0), &t1, "orders:write");
    let cases = [
        chain_headers(std::slice::from_ref(&t0), &t1, "orders:read"),
        chain_headers(std::slice::from_ref(&t0), &forged, "orders:read"),
        widened,
    ];
    let mut answers = Vec::new();
    for caches in [true, false] {
        let r = start(custody_sidecar::ServeArgs {
            no_decision_cache: true,
            token_cache_entries: if caches { 16_384 } else { 0 },
            cedar_memo_entries: if caches { 1024 } else { 0 },
            ..args(&f)
        })
        .await;
        let mut a = authz(&r).await;
        let mut codes = Vec::new();
        // each case twice: the second call would be a cache hit where caches are on
        for h in cases.iter().chain(cases.iter()) {
            codes.push(code(&check(&mut a, h, ALICE).await));
        }
        // the verifier's token cache as the metrics endpoint reports it: the valid tokens
        // (t0 and t1) held and found again, or nothing held and every signature checked
        let text = metrics(&r).await;
        let hits = metric(&text, "custody_token_cache_hits_total");
        let misses = metric(&text, "custody_token_cache_misses_total");
        let held = metric(&text, "custody_token_cache_entries");
        if caches {
            assert!(hits >= 4.0 && held == 2.0, "{hits} {held}\n{text}");
        } else {
            assert!(
                hits == 0.0 && held == 0.0 && misses >= 10.0,
                "{hits} {held} {misses}"
            );
        }
        r.shutdown().await.unwrap();
        answers.push(codes);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1][0], "allow");
    assert_eq!(answers[1][1], "bad_signature");
    assert_ne!(answers[1][2], "allow");
    assert_eq!(answers[1][..3], answers[1][3..]);
}
