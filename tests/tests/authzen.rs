//! The sidecar's OpenID AuthZEN Authorization API 1.0 endpoints (issue 18, part 3), over plain
//! HTTP/1.1 with hyper's client against a real server on a loopback port: the spec's request
//! shapes, allowed and denied evaluations, the same decisions as custody.v1 Verify, batch
//! defaults and semantics, the refusals (400, 404, 405, 413, 415), the PDP metadata, and the
//! AuthZEN Todo interop scenario (`tests/data/authzen/`, see its README) as a custody pack.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use custody_sidecar::{pb, Running, ServeArgs};
use custody_tests::{t0_claims, t1_claims, Fixture, PackBuilder, ALICE, AUD, BOB};
use http_body_util::{BodyExt as _, Full};
use hyper::header::HeaderMap;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const EVALUATION: &str = "/access/v1/evaluation";
const EVALUATIONS: &str = "/access/v1/evaluations";

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `claims` moved to the current time (the server decides on its clock).
fn live(mut claims: Value) -> Value {
    let now = unix_now();
    claims["iat"] = (now - 30).into();
    claims["exp"] = (now + 600).into();
    claims
}

/// The kit's two-domain chain (Bob for user Alice, then Alice-agent), valid now.
fn live_chain(f: &Fixture) -> Vec<String> {
    vec![
        f.token("a.example", live(t0_claims())),
        f.token("b.example", live(t1_claims())),
    ]
}

fn serve_args(f: &Fixture) -> ServeArgs {
    ServeArgs {
        policies: f.dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        audience: Some(AUD.into()),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        reload_interval_ms: 0,
        no_decision_log: true,
        ..ServeArgs::default()
    }
}

/// An answer from the HTTP port.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A plain HTTP/1.1 client (hyper's, keep-alive) on the sidecar's HTTP port.
struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
}

impl Http {
    fn new(r: &Running) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            addr: r.metrics_addr.unwrap(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let res = self
            .client
            .request(b.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }

    async fn metrics(&self) -> String {
        let a = self.call("GET", "/metrics", &[], "").await;
        assert_eq!(a.status, 200);
        String::from_utf8(a.body).unwrap()
    }
}

/// A counter's value in the metrics text (0 when absent).
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// A raw HTTP/1.1 exchange (`connection: close`), for bodies a client library would not send.
async fn raw(addr: SocketAddr, head: &str, body: Vec<u8>) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let send = async {
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(&body).await;
    };
    let mut out = Vec::new();
    let read = rd.read_to_end(&mut out);
    let (_, read) = tokio::join!(send, read);
    let _ = read;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    (status, text)
}

/// The spec's single-evaluation shape, with the chain in `context.tokens`.
fn evaluation(subject: &str, action: &str, tokens: &[String]) -> Value {
    json!({
        "subject": {"type": "agent", "id": subject},
        "action": {"name": action},
        "resource": {"type": "Order", "id": "42"},
        "context": {"tokens": tokens, "time": "1985-10-26T01:22-07:00"}
    })
}

fn codes(answer: &Value) -> Vec<String> {
    answer["context"]["reason_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_and_denied_evaluations() {
    let f = Fixture::standard();
    let r = custody_sidecar::start(serve_args(&f)).await.unwrap();
    let http = Http::new(&r);
    let chain = live_chain(&f);

    let a = http
        .call(
            "POST",
            EVALUATION,
            &[
                ("content-type", "application/json"),
                ("x-request-id", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"),
            ],
            evaluation(ALICE, "orders:read", &chain).to_string(),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(
        a.header("x-request-id"),
        Some("bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
    );
    let body = a.json();
    assert_eq!(body["decision"], true, "{body}");
    assert_eq!(body["context"]["reason_codes"], json!([]));
    assert_eq!(body["context"]["reasons"], json!([]));
    assert_eq!(body["context"]["pack_version"], r.pack_version());
    assert_eq!(
        body["context"]["chain"],
        json!({"origin": "a.example|user:alice", "actors": [BOB, ALICE], "depth": 2,
               "domains": ["a.example", "b.example", "c.example"]})
    );

    // denied by the verifier: 200 all the same, the reasons in `context`, no chain
    let denied = http
        .post(EVALUATION, &evaluation(ALICE, "orders:write", &chain))
        .await;
    assert_eq!(denied.status, 200);
    let body = denied.json();
    assert_eq!(body["decision"], false);
    assert_eq!(codes(&body), ["scope_missing"]);
    assert_eq!(body["context"]["reasons"][0]["code"], "scope_missing");
    assert!(body["context"]["reasons"][0]["message"].is_string());
    assert!(body["context"].get("chain").is_none());
    assert!(denied.header("x-request-id").is_none());

    // `subject.id` must be the caller: Alice-agent, not Bob or the user
    for other in [BOB, "user:alice"] {
        let body = http
            .post(EVALUATION, &evaluation(other, "orders:read", &chain))
            .await
            .json();
        assert_eq!(body["decision"], false, "{other}");
        assert_eq!(codes(&body), ["subject_mismatch"]);
        assert_eq!(body["context"]["reasons"][0]["hop"], Value::Null);
    }

    // the same credentials from `subject.properties`
    let mut props = evaluation(ALICE, "orders:read", &[]);
    props["context"] = json!({"time": "now"});
    props["subject"]["properties"] = json!({"tokens": chain, "department": "sales"});
    assert_eq!(http.post(EVALUATION, &props).await.json()["decision"], true);
    // ... but never from both places
    props["context"]["txn_token"] = "x".into();
    let body = http.post(EVALUATION, &props).await.json();
    assert_eq!(codes(&body), ["invalid_request"]);
    assert!(body["context"]["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .contains("both"));

    // no `subject.id`: the chain alone decides
    let mut anonymous = evaluation(ALICE, "orders:read", &chain);
    anonymous["subject"] = json!({"type": "agent"});
    assert_eq!(
        http.post(EVALUATION, &anonymous).await.json()["decision"],
        true
    );

    // a request-supplied time needs --allow-request-time; the audience is never the request's
    for (name, v) in [("now", json!(unix_now())), ("audience", json!(AUD))] {
        let mut b = evaluation(ALICE, "orders:read", &chain);
        b["context"][name] = v;
        let body = http.post(EVALUATION, &b).await.json();
        assert_eq!(body["decision"], false, "{name}");
        assert_eq!(codes(&body), ["invalid_request"], "{name}");
    }
    // a context value custody refuses (`null`) is the verifier's invalid_request
    let mut b = evaluation(ALICE, "orders:read", &chain);
    b["context"]["x"] = Value::Null;
    assert_eq!(
        codes(&http.post(EVALUATION, &b).await.json()),
        ["invalid_request"]
    );
    // a forged token
    let mut forged = chain.clone();
    forged[1].push('A');
    let body = http
        .post(EVALUATION, &evaluation(ALICE, "orders:read", &forged))
        .await
        .json();
    assert_eq!(body["decision"], false);
    assert_eq!(body["context"]["reasons"][0]["hop"], 1);

    r.shutdown().await.unwrap();
}

/// AuthZEN decides as custody.v1 Verify does (same reasons, same hops) and is counted under
/// its own `rpc` label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_decisions_as_verify() {
    let f = Fixture::standard();
    let r = custody_sidecar::start(serve_args(&f)).await.unwrap();
    let http = Http::new(&r);
    let mut verify = pb::verifier_client::VerifierClient::connect(format!("http://{}", r.addr))
        .await
        .unwrap();
    let chain = live_chain(&f);
    let mut wide = t1_claims();
    wide["scope"] = "orders:read orders:admin".into();
    let escalated = vec![chain[0].clone(), f.token("b.example", live(wide))];
    let mut expired = live(t1_claims());
    expired["exp"] = (unix_now() - 100).into();
    let cases: Vec<(Vec<String>, &str, Option<&str>)> = vec![
        (chain.clone(), "orders:read", None),
        (chain.clone(), "orders:write", None),
        (escalated, "orders:read", None),
        (
            vec![chain[0].clone(), f.token("b.example", expired)],
            "orders:read",
            None,
        ),
        (
            vec![chain[1].clone(), chain[0].clone()],
            "orders:read",
            None,
        ),
        (chain.clone(), "orders:read", Some(BOB)),
        (chain.clone(), "orders:read", Some(ALICE)),
    ];
    let mut allowed = 0;
    for (tokens, action, peer) in &cases {
        let mut body = evaluation(ALICE, action, tokens);
        if let Some(p) = peer {
            body["context"]["peer"] = (*p).into();
        }
        let a = http.post(EVALUATION, &body).await.json();
        let v = verify
            .verify(pb::VerifyRequest {
                tokens: tokens.clone(),
                audience: AUD.into(),
                action: (*action).into(),
                resource: Some(pb::Resource {
                    r#type: "Order".into(),
                    id: "42".into(),
                }),
                peer: peer.map(str::to_owned),
                context_json: Some(json!({"time": "1985-10-26T01:22-07:00"}).to_string()),
                ..pb::VerifyRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(a["decision"], v.decision == "allow", "{action} {peer:?}");
        // the same reasons, messages included but for the clock's second they may quote
        let clock = |m: &str| m.split(" (now ").next().unwrap_or_default().to_owned();
        let theirs: Vec<Value> = v
            .reasons
            .iter()
            .map(|r| json!({"code": r.code, "hop": r.hop, "message": clock(&r.message)}))
            .collect();
        let ours: Vec<Value> = a["context"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                json!({"code": r["code"], "hop": r["hop"],
                       "message": clock(r["message"].as_str().unwrap())})
            })
            .collect();
        assert_eq!(ours, theirs, "{action} {peer:?}");
        allowed += usize::from(v.decision == "allow");
    }
    assert_eq!(allowed, 2, "the plain chain and the right peer");
    let m = http.metrics().await;
    let allow = metric(
        &m,
        "custody_decisions_total{rpc=\"authzen\",result=\"allow\",code=\"\"}",
    );
    let deny_total: u64 = m
        .lines()
        .filter(|l| l.starts_with("custody_decisions_total{rpc=\"authzen\",result=\"deny\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        (allow, deny_total),
        (allowed as u64, (cases.len() - allowed) as u64)
    );
    assert_eq!(
        metric(
            &m,
            "custody_decisions_total{rpc=\"verify\",result=\"allow\",code=\"\"}"
        ),
        allowed as u64
    );
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_take_defaults_and_semantics() {
    let f = Fixture::standard();
    let r = custody_sidecar::start(serve_args(&f)).await.unwrap();
    let http = Http::new(&r);
    let chain = live_chain(&f);
    let batch = |semantic: Option<&str>, actions: &[&str]| {
        let mut b = json!({
            "subject": {"type": "agent", "id": ALICE},
            "resource": {"type": "Order", "id": "42"},
            "context": {"tokens": chain},
            "evaluations": actions.iter().map(|a| json!({"action": {"name": a}})).collect::<Vec<_>>(),
        });
        if let Some(s) = semantic {
            b["options"] = json!({"evaluations_semantic": s});
        }
        b
    };
    let decisions = |answer: &Answer| -> Vec<bool> {
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["decision"].as_bool().unwrap())
            .collect()
    };
    let mixed = ["orders:read", "orders:write", "orders:read"];
    for (semantic, want) in [
        (None, vec![true, false, true]),
        (Some("execute_all"), vec![true, false, true]),
        (Some("deny_on_first_deny"), vec![true, false]),
        (Some("permit_on_first_permit"), vec![true]),
    ] {
        let a = http.post(EVALUATIONS, &batch(semantic, &mixed)).await;
        assert_eq!(decisions(&a), want, "{semantic:?}");
    }
    let a = http
        .post(
            EVALUATIONS,
            &batch(
                Some("permit_on_first_permit"),
                &[
                    "orders:write",
                    "orders:delete",
                    "orders:read",
                    "orders:write",
                ],
            ),
        )
        .await;
    assert_eq!(decisions(&a), [false, false, true]);
    let a = http
        .post(
            EVALUATIONS,
            &batch(Some("deny_on_first_deny"), &["orders:read", "orders:read"]),
        )
        .await;
    assert_eq!(decisions(&a), [true, true]);

    // items override defaults whole; an item that is no evaluation is that item's denial
    let body = json!({
        "subject": {"type": "agent", "id": ALICE},
        "action": {"name": "orders:read"},
        "context": {"tokens": chain},
        "evaluations": [
            {"resource": {"type": "Order", "id": "1"}},
            {"resource": {"type": "Order", "id": "2"}, "subject": {"type": "agent", "id": BOB}},
            {"resource": {"type": "Order", "id": "3"}, "context": {"tenant": "t"}},
            {"action": {"name": "orders:read"}},
            {"resource": {"type": "Order"}},
            {"resource": {"type": "Order", "id": "6"}, "action": {"name": "orders:write"}}
        ]
    });
    let a = http.post(EVALUATIONS, &body).await;
    assert_eq!(decisions(&a), [true, false, false, false, false, false]);
    let items = a.json()["evaluations"].clone();
    let code = |i: usize| {
        items[i]["context"]["reason_codes"][0]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(code(1), "subject_mismatch");
    assert_eq!(code(2), "invalid_request"); // its own context has no tokens
    assert_eq!(code(3), "invalid_request"); // no resource anywhere
    assert!(items[4]["context"]["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .contains("evaluations[4].resource.id"));
    assert_eq!(code(5), "scope_missing");
    assert_eq!(items[0]["context"]["chain"]["depth"], 2);

    // without `evaluations`: one evaluation, the single answer's shape
    let single = http
        .post(EVALUATIONS, &evaluation(ALICE, "orders:read", &chain))
        .await
        .json();
    assert_eq!(single["decision"], true);
    assert!(single.get("evaluations").is_none());

    // every decided item is counted, the items after a short-circuit are not
    let before = http.metrics().await;
    let series = "custody_decisions_total{rpc=\"authzen\",result=\"allow\",code=\"\"}";
    http.post(
        EVALUATIONS,
        &batch(
            Some("deny_on_first_deny"),
            &["orders:read", "orders:write", "orders:read"],
        ),
    )
    .await;
    let after = http.metrics().await;
    assert_eq!(metric(&after, series) - metric(&before, series), 1);

    // the cap: 64 items are decided, 65 are refused
    let many: Vec<&str> = vec!["orders:read"; 64];
    assert_eq!(
        decisions(&http.post(EVALUATIONS, &batch(None, &many)).await).len(),
        64
    );
    let too_many: Vec<&str> = vec!["orders:read"; 65];
    let a = http.post(EVALUATIONS, &batch(None, &too_many)).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"]["status"], 400);
    // an unknown semantic (the spec draft's own typo included) is refused, not defaulted
    let mut typo = batch(None, &mixed);
    typo["options"] = json!({"evaluation_semantics": "deny_on_first_deny"});
    assert_eq!(http.post(EVALUATIONS, &typo).await.status, 400);
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals() {
    let f = Fixture::standard();
    let r = custody_sidecar::start(serve_args(&f)).await.unwrap();
    let http = Http::new(&r);
    let chain = live_chain(&f);
    let good = evaluation(ALICE, "orders:read", &chain).to_string();
    let id = ("x-request-id", "req-7");

    // 415: the media type
    for ct in [
        None,
        Some("text/plain"),
        Some("application/json; charset=latin1"),
    ] {
        let mut h = vec![id];
        if let Some(ct) = ct {
            h.push(("content-type", ct));
        }
        let a = http.call("POST", EVALUATION, &h, good.clone()).await;
        assert_eq!(a.status, 415, "{ct:?}");
        assert_eq!(a.json()["error"]["status"], 415);
        assert_eq!(a.header("x-request-id"), Some("req-7"));
    }
    let a = http
        .call(
            "POST",
            EVALUATION,
            &[("content-type", "application/json; charset=utf-8")],
            good.clone(),
        )
        .await;
    assert_eq!(a.json()["decision"], true);

    // 400: not an evaluation request, with a JSON error body
    let json_ct = [("content-type", "application/json"), id];
    for bad in [
        "not json".to_owned(),
        "[]".to_owned(),
        r#"{"subject": {"type": "a", "type": "b"}, "action": {"name": "x"}, "resource": {"type": "t", "id": "i"}}"#.to_owned(),
        json!({"action": {"name": "orders:read"}, "resource": {"type": "Order", "id": "1"}}).to_string(),
        json!({"subject": {"type": "agent"}, "action": {"name": "orders:read"},
               "resource": {"type": "Order", "id": "1"}, "evaluations": []}).to_string(),
        format!("{good} {{}}"),
    ] {
        let a = http.call("POST", EVALUATION, &json_ct, bad.clone()).await;
        assert_eq!(a.status, 400, "{bad}");
        let e = a.json();
        assert_eq!(e["error"]["status"], 400);
        assert!(e["error"]["message"].as_str().unwrap().len() > 5);
        assert_eq!(a.header("x-request-id"), Some("req-7"));
    }

    // 413: declared too large (refused before the body), or too large as it streams
    let max = custody_verifier::Limits::default().request_bytes;
    let addr = r.metrics_addr.unwrap();
    let (status, text) = raw(
        addr,
        &format!(
            "POST {EVALUATION} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            max + 1
        ),
        Vec::new(),
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("\"status\":413"), "{text}");
    // (no last chunk: the server reads all that is sent before it answers, so closing the
    // connection leaves nothing unread to reset it)
    let mut chunked = Vec::new();
    for _ in 0..(max / 4096 + 1) {
        chunked.extend_from_slice(format!("1000\r\n{}\r\n", " ".repeat(4096)).as_bytes());
    }
    let (status, _) = raw(
        addr,
        &format!(
            "POST {EVALUATIONS} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        ),
        chunked,
    )
    .await;
    assert_eq!(status, 413);
    // the largest body accepted: padding up to the limit still decides
    let mut padded = evaluation(ALICE, "orders:read", &chain);
    let text = padded.to_string();
    padded["context"]["pad"] = " ".repeat(max - text.len() - 12).into();
    let text = padded.to_string();
    assert!(text.len() <= max && text.len() > max - 16, "{}", text.len());
    let a = http.post(EVALUATION, &padded).await;
    assert_eq!(a.status, 200);

    // 404 and 405
    let a = http.call("GET", "/access/v1/nothing", &[], "").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["status"], 404);
    assert_eq!(
        http.call("POST", "/access/v2/evaluation", &json_ct, good.clone())
            .await
            .status,
        404
    );
    let a = http.call("GET", EVALUATION, &[], "").await;
    assert_eq!(a.status, 405);
    assert!(a.header("allow").unwrap().contains("POST"));
    assert_eq!(
        http.call("PUT", EVALUATIONS, &json_ct, good.clone())
            .await
            .status,
        405
    );
    assert_eq!(
        http.call("POST", "/metrics", &json_ct, good.clone())
            .await
            .status,
        405
    );
    assert_eq!(
        http.call("POST", "/.well-known/authzen-configuration", &json_ct, "")
            .await
            .status,
        405
    );

    // /metrics as always: text, the connection closed after it
    let m = http.call("GET", "/metrics", &[], "").await;
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(m.header("connection"), Some("close"));
    assert!(String::from_utf8(m.body)
        .unwrap()
        .contains("custody_decisions_total"));
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_under_a_configured_base_url() {
    let f = Fixture::standard();
    let r = custody_sidecar::start(ServeArgs {
        authzen_base_url: Some("https://pdp.c.example/".into()),
        ..serve_args(&f)
    })
    .await
    .unwrap();
    let http = Http::new(&r);
    let a = http
        .call(
            "GET",
            "/.well-known/authzen-configuration",
            &[("host", "evil.example"), ("x-request-id", "m-1")],
            "",
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("x-request-id"), Some("m-1"));
    assert_eq!(
        a.json(),
        json!({"policy_decision_point": "https://pdp.c.example",
               "access_evaluation_endpoint": "https://pdp.c.example/access/v1/evaluation",
               "access_evaluations_endpoint": "https://pdp.c.example/access/v1/evaluations"})
    );
    r.shutdown().await.unwrap();

    // without --authzen-base-url: no metadata (never derived from Host), evaluations still work
    let r = custody_sidecar::start(serve_args(&f)).await.unwrap();
    let http = Http::new(&r);
    let a = http
        .call("GET", "/.well-known/authzen-configuration", &[], "")
        .await;
    assert_eq!(a.status, 404);
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--authzen-base-url"));
    let chain = live_chain(&f);
    let d = http
        .post(EVALUATION, &evaluation(ALICE, "orders:read", &chain))
        .await
        .json();
    assert_eq!(d["decision"], true);
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_audience_every_evaluation_is_invalid() {
    let f = Fixture::standard();
    let r = custody_sidecar::start(ServeArgs {
        audience: None,
        ..serve_args(&f)
    })
    .await
    .unwrap();
    let http = Http::new(&r);
    let chain = live_chain(&f);
    let d = http
        .post(EVALUATION, &evaluation(ALICE, "orders:read", &chain))
        .await
        .json();
    assert_eq!(d["decision"], false);
    assert_eq!(codes(&d), ["invalid_request"]);
    assert!(d["context"]["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .contains("--audience"));
    r.shutdown().await.unwrap();
}

/// The AuthZEN Todo interop scenario (draft 02 of the 1.0 decisions): the subjects' emails and
/// roles as Cedar entities, the four rules as Cedar policies (`resource.properties.ownerID` is
/// `context.request.authzen.resource.ownerID`), one token per subject (`sub` = its PID), every
/// case sent with its subject's token in `context.tokens`. Every case maps: the scenario's
/// attributes are PIP data, which a custody pack holds as entities.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authzen_todo_interop() {
    // (PID, email, roles), from the scenario page (tests/data/authzen/README.md)
    let users = [
        (
            "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
            "rick@the-citadel.com",
            &["admin", "evil_genius"][..],
        ),
        (
            "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
            "morty@the-citadel.com",
            &["editor"][..],
        ),
        (
            "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
            "summer@the-smiths.com",
            &["editor"][..],
        ),
        (
            "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
            "beth@the-smiths.com",
            &["viewer"][..],
        ),
        (
            "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
            "jerry@the-smiths.com",
            &["viewer"][..],
        ),
    ];
    let entities: Vec<Value> = users
        .iter()
        .map(|(pid, email, roles)| {
            json!({"uid": {"type": "User", "id": format!("c.example|{pid}")},
                   "attrs": {"email": email, "roles": roles}, "parents": []})
        })
        .collect();
    let policies = r#"
        // can_read_user, can_read_todos: always
        permit (principal, action in [Action::"can_read_user", Action::"can_read_todos"], resource);
        // can_create_todo: admin or editor
        permit (principal is User, action == Action::"can_create_todo", resource)
        when { principal has roles && (principal.roles.contains("admin") || principal.roles.contains("editor")) };
        // can_update_todo: evil_genius
        permit (principal is User, action == Action::"can_update_todo", resource)
        when { principal has roles && principal.roles.contains("evil_genius") };
        // can_delete_todo: admin
        permit (principal is User, action == Action::"can_delete_todo", resource)
        when { principal has roles && principal.roles.contains("admin") };
        // can_update_todo, can_delete_todo: an editor who owns the todo
        permit (principal is User, action in [Action::"can_update_todo", Action::"can_delete_todo"], resource)
        when {
            principal has roles && principal.roles.contains("editor") && principal has email &&
            context.request has authzen && context.request.authzen has resource &&
            context.request.authzen.resource has ownerID &&
            context.request.authzen.resource.ownerID == principal.email
        };
    "#;
    let f = PackBuilder::default()
        .cedar(policies)
        .entities(&Value::from(entities).to_string())
        .build();
    let r = custody_sidecar::start(serve_args(&f)).await.unwrap();
    let http = Http::new(&r);
    let scope = "can_read_user can_read_todos can_create_todo can_update_todo can_delete_todo";
    let token = |pid: &str| {
        f.token(
            "c.example",
            live(json!({"sub": pid, "aud": AUD, "scope": scope})),
        )
    };
    let tokens: std::collections::BTreeMap<&str, String> =
        users.iter().map(|(pid, ..)| (*pid, token(pid))).collect();
    let with_token = |mut request: Value| {
        let pid = request["subject"]["id"].as_str().unwrap().to_owned();
        let t = tokens
            .get(pid.as_str())
            .unwrap_or_else(|| panic!("no such subject {pid}"));
        request["context"] = json!({ "tokens": [t] });
        request
    };
    let cases: Value = serde_json::from_str(include_str!(
        "../data/authzen/decisions-authorization-api-1_0-02.json"
    ))
    .unwrap();

    let single = cases["evaluation"].as_array().unwrap();
    assert_eq!(single.len(), 40);
    let (mut allowed, mut mismatches) = (0, Vec::new());
    for (i, case) in single.iter().enumerate() {
        let a = http
            .post(EVALUATION, &with_token(case["request"].clone()))
            .await;
        assert_eq!(a.status, 200);
        let got = a.json();
        if got["decision"] != case["expected"] {
            mismatches.push(format!("case {i}: {} -> {got}", case["request"]));
        }
        allowed += usize::from(got["decision"] == true);
        // a denial is Cedar's, never a broken mapping
        if got["decision"] == false {
            assert_eq!(codes(&got), ["policy_denied"], "case {i}: {got}");
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert_eq!(allowed, 26);

    let batches = cases["evaluations"].as_array().unwrap();
    assert_eq!(batches.len(), 3);
    for (i, case) in batches.iter().enumerate() {
        let a = http
            .post(EVALUATIONS, &with_token(case["request"].clone()))
            .await;
        assert_eq!(a.status, 200);
        let got: Vec<Value> = a.json()["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!({"decision": e["decision"]}))
            .collect();
        assert_eq!(json!(got), case["expected"], "batch {i}");
    }

    // the subject must be the token's: Rick's (allowed) request carrying Morty's token is not
    assert_eq!(single[0]["expected"], true);
    let mut swapped = with_token(single[0]["request"].clone());
    swapped["context"]["tokens"] = json!([tokens[users[1].0]]);
    let got = http.post(EVALUATION, &swapped).await.json();
    assert_eq!(got["decision"], false);
    assert_eq!(codes(&got), ["subject_mismatch"]);
    r.shutdown().await.unwrap();
}
