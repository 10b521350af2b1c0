//! The Layer around a plain tower service: what reaches the service, what is answered instead,
//! reloads, the peer, and that it decides as the Envoy sidecar does on the same call.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests: a panic is the failure report"
)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use custody_tests::{chain, t1_claims, Fixture, PackBuilder, ALICE, MALLORY, NOW};
use custody_tower::{Custody, Decision, MapSettings, Peer};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{service_fn, Layer, ServiceExt};

const ACTION: &str = "x-custody-action";

fn settings() -> MapSettings {
    MapSettings {
        action_header: Some(ACTION.into()),
        allow_request_time: true,
        ..MapSettings::for_audience(custody_tests::AUD)
    }
}

/// What the wrapped service saw: its headers and the decision in the extensions.
async fn echo(req: http::Request<Full<Bytes>>) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
        .collect();
    let decision = req.extensions().get::<Arc<Decision>>().map(|d| {
        let c = d.chain.as_ref().unwrap();
        json!({"allowed": d.is_allowed(), "origin": c.origin, "depth": c.depth})
    });
    let body = json!({"headers": headers, "decision": decision}).to_string();
    Ok(http::Response::new(Full::new(Bytes::from(body))))
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

async fn call(custody: &Custody, settings: MapSettings, req: http::Request<Full<Bytes>>) -> Answer {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let inner = service_fn(move |r| {
        seen.fetch_add(1, Ordering::SeqCst);
        echo(r)
    });
    let service = custody.layer(settings).layer(inner);
    let response = service.oneshot(req).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    // the service is reached exactly when the call is allowed (a gRPC denial is a 200 with a
    // grpc-status)
    let allowed = status == 200 && !headers.contains_key("grpc-status");
    assert_eq!(calls.load(Ordering::SeqCst), usize::from(allowed));
    Answer {
        status,
        headers,
        body,
    }
}

fn request(tokens: &[String]) -> http::request::Builder {
    let (presented, upstream) = tokens.split_last().unwrap();
    let mut b = http::Request::get("/orders/7?x=1")
        .header("authorization", format!("Bearer {presented}"))
        .header(ACTION, "orders:read")
        .header("custody-now", NOW.to_string());
    if !upstream.is_empty() {
        b = b.header("custody-chain", upstream.join(","));
    }
    b
}

fn empty(b: http::request::Builder) -> http::Request<Full<Bytes>> {
    b.body(Full::new(Bytes::new())).unwrap()
}

fn codes(body: &Value) -> Vec<String> {
    body["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn an_allowed_call_reaches_the_service_with_custody_headers_and_the_decision() {
    let f = Fixture::standard();
    let custody = Custody::load(f.dir.path()).unwrap();
    runtime().block_on(async {
        let forged = request(&chain(&f))
            .header("x-custody-origin", "a.example|user:root")
            .header("x-custody-actor", MALLORY)
            .header("x-custody-depth", "0");
        let a = call(&custody, settings(), empty(forged)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let seen = &a.body["headers"];
        assert_eq!(seen["x-custody-origin"], "a.example|user:alice");
        assert_eq!(seen["x-custody-actor"], ALICE);
        assert_eq!(seen["x-custody-depth"], "2");
        assert_eq!(a.body["decision"]["allowed"], true);
        assert_eq!(a.body["decision"]["origin"], "a.example|user:alice");
    });
}

#[test]
fn denials_never_reach_the_service_and_answer_as_the_sidecar_does() {
    let f = Fixture::standard();
    let custody = Custody::load(f.dir.path()).unwrap();
    runtime().block_on(async {
        // no bearer token: 401 with a bare challenge
        let a = call(
            &custody,
            settings(),
            empty(http::Request::get("/orders/7").header(ACTION, "orders:read")),
        )
        .await;
        assert_eq!(a.status, 401);
        assert_eq!(a.headers["www-authenticate"], "Bearer realm=\"custody\"");
        assert_eq!(codes(&a.body), ["invalid_request"]);
        assert_eq!(a.headers["content-type"], "application/json");

        // a widened scope: 403, the reason's code and hop
        let mut wide = chain(&f);
        let mut claims = t1_claims();
        claims["scope"] = "orders:read orders:admin".into();
        wide[1] = f.token("b.example", claims);
        let a = call(&custody, settings(), empty(request(&wide))).await;
        assert_eq!(a.status, 403);
        assert_eq!(codes(&a.body)[0], "scope_escalation");
        assert_eq!(a.body["reasons"][0]["hop"], 1);
        assert!(a.headers.get("www-authenticate").is_none());

        // a bad signature: 401 invalid_token
        let mut forged = chain(&f);
        let last = forged[1].pop().unwrap();
        forged[1].push(if last == 'A' { 'B' } else { 'A' });
        let a = call(&custody, settings(), empty(request(&forged))).await;
        assert_eq!(a.status, 401);
        assert!(a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\""));

        // request time is refused unless the settings allow it (the fixture's tokens are
        // stamped at a fixed past time, so the system clock finds them expired)
        let strict = MapSettings {
            allow_request_time: false,
            ..settings()
        };
        let a = call(&custody, strict.clone(), empty(request(&chain(&f)))).await;
        assert_eq!(
            (a.status, codes(&a.body)),
            (403, vec!["invalid_request".to_owned()])
        );
        let mut no_time = request(&chain(&f));
        no_time.headers_mut().unwrap().remove("custody-now");
        let a = call(&custody, strict, empty(no_time)).await;
        assert_eq!(a.status, 401);
        assert_eq!(codes(&a.body)[0], "expired");

        // without an audience nothing is allowed
        let a = call(
            &custody,
            MapSettings {
                audience: None,
                ..settings()
            },
            empty(request(&chain(&f))),
        )
        .await;
        assert_eq!(a.status, 403);
    });
}

#[test]
fn a_grpc_call_is_denied_with_a_grpc_status() {
    let f = Fixture::standard();
    let custody = Custody::load(f.dir.path()).unwrap();
    runtime().block_on(async {
        let b = http::Request::post("/orders.Orders/Get")
            .header("content-type", "application/grpc")
            .header(ACTION, "orders:read");
        let a = call(&custody, settings(), empty(b)).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["grpc-status"], "16");
        assert_eq!(a.headers["grpc-message"], "invalid_request");
        let mut wide = chain(&f);
        let mut claims = t1_claims();
        claims["scope"] = "orders:read orders:admin".into();
        wide[1] = f.token("b.example", claims);
        let b = request(&wide).header("content-type", "application/grpc+proto");
        let a = call(&custody, settings(), empty(b)).await;
        assert_eq!(a.headers["grpc-status"], "7");
        assert_eq!(a.headers["grpc-message"], "scope_escalation");
    });
}

#[test]
fn the_peer_comes_from_the_gateway_never_from_a_header() {
    let f = Fixture::standard();
    let custody = Custody::load(f.dir.path()).unwrap();
    runtime().block_on(async {
        // the presented token's actor is Alice: a peer that is someone else is sender_mismatch
        let mut r = empty(request(&chain(&f)));
        r.extensions_mut().insert(Peer::id(MALLORY));
        let a = call(&custody, settings(), r).await;
        assert_eq!(codes(&a.body)[0], "sender_mismatch");
        let mut r = empty(request(&chain(&f)));
        r.extensions_mut().insert(Peer::id(ALICE));
        assert_eq!(call(&custody, settings(), r).await.status, 200);

        // a function of the request, e.g. a TLS acceptor's connection info
        let service = custody
            .layer(settings())
            .peer_from(|_: &http::Request<Full<Bytes>>| Peer::id(MALLORY))
            .layer(service_fn(echo));
        let response = service.oneshot(empty(request(&chain(&f)))).await.unwrap();
        assert_eq!(response.status(), 403);

        // headers a client could send name no peer
        let r = empty(request(&chain(&f)).header("x-forwarded-client-cert", MALLORY));
        assert_eq!(call(&custody, settings(), r).await.status, 200);
    });
}

#[test]
fn a_reload_swaps_the_pack_and_a_broken_one_keeps_the_old() {
    let f = PackBuilder::default()
        .cedar("permit(principal, action, resource);")
        .build();
    let custody = Custody::load(f.dir.path()).unwrap();
    let rt = runtime();
    let status = |custody: &Custody| {
        rt.block_on(async {
            call(custody, settings(), empty(request(&chain(&f))))
                .await
                .status
        })
    };
    assert_eq!(status(&custody), 200);
    let before = custody.pack_version();
    assert!(!custody.reload().unwrap(), "the same pack is no change");

    let policies = f.dir.path().join("policies.cedar");
    std::fs::write(
        &policies,
        "permit(principal, action, resource);\nforbid(principal, action, resource);",
    )
    .unwrap();
    assert!(custody.reload().unwrap());
    assert_ne!(custody.pack_version(), before);
    assert_eq!(status(&custody), 403);

    std::fs::write(&policies, "permit(principal, action resource);").unwrap();
    let err = custody.reload().unwrap_err();
    assert!(err.to_string().contains("policies.cedar"), "{err}");
    assert_eq!(status(&custody), 403, "the pack in force still serves");

    std::fs::write(&policies, "permit(principal, action, resource);").unwrap();
    assert!(custody.reload().unwrap());
    assert_eq!(status(&custody), 200);
}

#[test]
fn a_verifier_taken_before_a_reload_finishes_on_its_own_pack() {
    let f = PackBuilder::default()
        .cedar("permit(principal, action, resource);")
        .build();
    let custody = Custody::load(f.dir.path()).unwrap();
    let old = custody.verifier();
    std::fs::write(
        f.dir.path().join("policies.cedar"),
        "forbid(principal, action, resource);",
    )
    .unwrap();
    assert!(custody.reload().unwrap());
    let req = custody_tests::request(chain(&f));
    assert!(old.verify(&req).is_allowed());
    assert!(!custody.verifier().verify(&req).is_allowed());
}

#[test]
fn with_a_resource_the_challenges_name_its_metadata_and_the_missing_scope() {
    let f = PackBuilder::default()
        .extra_trust("resource \"https://orders.c.example/api\" {\n  authorization_servers [\"https://as.c.example\"]\n}\n")
        .build();
    let custody = Custody::load(f.dir.path()).unwrap();
    let metadata =
        "resource_metadata=\"https://orders.c.example/.well-known/oauth-protected-resource/api\"";
    runtime().block_on(async {
        let a = call(
            &custody,
            settings(),
            empty(http::Request::get("/orders/7").header(ACTION, "orders:read")),
        )
        .await;
        assert_eq!(
            (a.status, a.headers["www-authenticate"].to_str().unwrap()),
            (401, format!("Bearer realm=\"custody\", {metadata}").as_str())
        );
        // the chain's scope holds orders:read only
        let tokens = chain(&f);
        let write = http::Request::get("/orders/7")
            .header("authorization", format!("Bearer {}", tokens[1]))
            .header("custody-chain", &tokens[0])
            .header(ACTION, "orders:write")
            .header("custody-now", NOW.to_string());
        let a = call(&custody, settings(), empty(write)).await;
        assert_eq!(codes(&a.body)[0], "scope_missing");
        assert_eq!(
            (a.status, a.headers["www-authenticate"].to_str().unwrap()),
            (
                403,
                format!("Bearer realm=\"custody\", error=\"insufficient_scope\", scope=\"orders:write\", {metadata}").as_str()
            )
        );
    });
}

/// What the wrapped service read of the body, and the action custody derived (its header).
async fn body_echo(
    req: http::Request<Full<Bytes>>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let seen = req.extensions().get::<Arc<Decision>>().is_some();
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    let body = json!({"decided": seen, "body": String::from_utf8(bytes.to_vec()).unwrap()});
    Ok(http::Response::new(Full::new(Bytes::from(
        body.to_string(),
    ))))
}

async fn mcp_call(custody: &Custody, req: http::Request<Full<Bytes>>, max: usize) -> Answer {
    let service = custody
        .layer(MapSettings {
            allow_request_time: true,
            ..MapSettings::for_audience(custody_tests::AUD)
        })
        .protocol(custody_tower::Protocol::Mcp, max)
        .layer(service_fn(body_echo));
    let response = service.oneshot(req).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

#[test]
fn the_protocol_layer_takes_the_action_from_the_json_rpc_body() {
    let f = Fixture::standard();
    let custody = Custody::load(f.dir.path()).unwrap();
    let token = f.token(
        "c.example",
        json!({"sub": "user:carol", "aud": custody_tests::AUD, "iat": NOW - 10, "exp": NOW + 300,
               "scope": "tools/call:get_weather tools/list"}),
    );
    let post = |body: &str| {
        http::Request::post("/mcp")
            .header("authorization", format!("Bearer {token}"))
            .header("custody-now", NOW.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    let call = |tool: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": tool, "arguments": {"city": "Oslo"}}})
        .to_string()
    };
    runtime().block_on(async {
        // allowed: the service gets the very bytes custody read
        let weather = call("get_weather");
        let a = mcp_call(&custody, post(&weather), 4096).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["body"], weather.as_str());
        assert_eq!(a.body["decided"], true);
        // another tool: the scope holds it not
        let a = mcp_call(&custody, post(&call("delete_repo")), 4096).await;
        assert_eq!(
            (a.status, codes(&a.body)[0].as_str()),
            (403, "scope_missing")
        );
        assert!(a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"tools/call:delete_repo\""));
        // a method by name
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
        assert_eq!(mcp_call(&custody, post(&list), 4096).await.status, 200);
        // refused, never guessed: a batch, not JSON, unknown method, empty, over the limit
        let batch = format!("[{weather}]");
        let unknown = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/destroy"}).to_string();
        for (body, max) in [
            (batch.as_str(), 4096),
            ("{\"jsonrpc\":", 4096),
            (unknown.as_str(), 4096),
            ("", 4096),
            (weather.as_str(), 16),
        ] {
            let a = mcp_call(&custody, post(body), max).await;
            assert_eq!(
                (a.status, codes(&a.body)[0].as_str()),
                (403, "invalid_request"),
                "{body:?} {}",
                a.body
            );
        }
        // no token is the 401 first, whatever the body
        let bare = http::Request::post("/mcp")
            .body(Full::new(Bytes::from(weather.clone())))
            .unwrap();
        assert_eq!(mcp_call(&custody, bare, 4096).await.status, 401);
        // a GET (the MCP event stream) keeps METHOD:path, which this token's scope lacks
        let get = http::Request::get("/mcp")
            .header("authorization", format!("Bearer {token}"))
            .header("custody-now", NOW.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let a = mcp_call(&custody, get, 4096).await;
        assert_eq!(
            (a.status, codes(&a.body)[0].as_str()),
            (403, "scope_missing")
        );
        assert!(a.body["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("GET:/mcp"));
    });
}
