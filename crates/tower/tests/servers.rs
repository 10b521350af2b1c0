//! The Layer in real servers over loopback: axum and tonic (hyper is the example gateway's, run
//! by tests/e2e/test_gateway.py), and remote key sources driven on the server's runtime.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests: a panic is the failure report"
)]

use std::net::SocketAddr;

use bytes::Bytes;
use custody_jose::{sign, Algorithm, KeySet, SigningKey};
use custody_tests::docserver::{Doc, DocServer};
use custody_tests::{t0_claims, t1_claims, Fixture, PackBuilder, AUD, NOW};
use custody_tower::{Custody, MapSettings};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn settings() -> MapSettings {
    MapSettings {
        allow_request_time: true,
        ..MapSettings::for_audience(AUD)
    }
}

/// A local (c.example) token whose scope is `scope`, at [`NOW`].
fn local(f: &Fixture, scope: &str) -> String {
    f.token(
        "c.example",
        json!({"sub": "user:carol", "aud": AUD, "scope": scope, "iat": NOW - 10, "exp": NOW + 300}),
    )
}

/// One HTTP/1.1 GET: the status and body.
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut b = http::Request::get(path).header("host", "orders");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    let r = send
        .send_request(b.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn an_axum_router_behind_the_layer() {
    let f = Fixture::standard();
    let custody = Custody::load(f.dir.path()).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let app = axum::Router::new()
            .route(
                "/orders/{id}",
                axum::routing::get(
                    |axum::extract::Path(id): axum::extract::Path<String>,
                     axum::Extension(d): axum::Extension<
                        std::sync::Arc<custody_tower::Decision>,
                    >,
                     headers: http::HeaderMap| async move {
                        let origin = headers["x-custody-origin"].to_str().unwrap().to_owned();
                        format!("order {id} for {origin}, {} policies", d.policies.len())
                    },
                ),
            )
            .layer(custody.layer(settings()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let now = ("custody-now", NOW.to_string());
        let ok = (
            "authorization",
            format!("Bearer {}", local(&f, "GET:/orders/7")),
        );
        let (status, body) = get(addr, "/orders/7?x=1", &[ok.clone(), now.clone()]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, "order 7 for c.example|user:carol, 0 policies");
        let (status, body) = get(addr, "/orders/8", &[ok, now.clone()]).await;
        assert_eq!(status, 403);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["reasons"][0]["code"], "scope_missing");
        let (status, _) = get(addr, "/orders/7", &[now]).await;
        assert_eq!(status, 401);
    });
}

#[test]
fn a_tonic_server_behind_the_layer_answers_grpc_statuses() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let f = Fixture::standard();
    let custody = Custody::load(f.dir.path()).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let (_reporter, health) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let layer = custody.layer(settings());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .layer(layer)
                .add_service(health)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
        });
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        let call = |token: Option<String>| {
            let mut r = tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            });
            r.metadata_mut()
                .insert("custody-now", NOW.to_string().parse().unwrap());
            if let Some(t) = token {
                r.metadata_mut()
                    .insert("authorization", format!("Bearer {t}").parse().unwrap());
            }
            r
        };
        let allowed = local(&f, "POST:/grpc.health.v1.Health/Check");
        let r = client.check(call(Some(allowed))).await.unwrap();
        assert_eq!(r.into_inner().status, 1, "SERVING");
        let e = client.check(call(None)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert_eq!(e.message(), "invalid_request");
        let e = client
            .check(call(Some(local(&f, "POST:/grpc.health.v1.Health/Watch"))))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert_eq!(e.message(), "scope_missing");
    });
}

fn rsa(kid: &str) -> SigningKey {
    SigningKey::generate(kid, Algorithm::Rs256).unwrap()
}

fn jwks(keys: &[&SigningKey]) -> String {
    let mut set = KeySet::new();
    for k in keys {
        set.insert(k.public()).unwrap();
    }
    set.to_jwks().to_string()
}

#[test]
fn remote_keys_are_fetched_refetched_and_kept_across_a_reload_on_the_gateways_runtime() {
    let rt = runtime();
    let server = DocServer::start(&rt);
    let f = PackBuilder::default()
        .key("a.example", rsa("a-1"))
        .remote(
            "a.example",
            &format!("  jwks_uri \"{}\"", server.url("/jwks")),
        )
        .cedar("permit(principal, action, resource);")
        .build();
    let (a1, a2) = (rsa("a-1"), rsa("a-2"));
    let chain = |origin: &SigningKey| {
        let mut t0 = t0_claims();
        t0["iss"] = "https://as.a.example".into();
        vec![
            sign(origin, Some("at+jwt"), &t0).unwrap(),
            f.token("b.example", t1_claims()),
        ]
    };
    let headers = |tokens: Vec<String>| {
        vec![
            ("authorization", format!("Bearer {}", tokens[1])),
            ("custody-chain", tokens[0].clone()),
            ("x-custody-action", "orders:read".to_owned()),
            ("custody-now", NOW.to_string()),
        ]
    };
    let custody = Custody::load(f.dir.path()).unwrap();
    let layered = MapSettings {
        action_header: Some("x-custody-action".into()),
        ..settings()
    };
    rt.block_on(async {
        let app = axum::Router::new()
            .route("/orders/{id}", axum::routing::get(|| async { "order" }))
            .layer(custody.layer(layered));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        server.set("/jwks", Doc::ok(jwks(&[&a1])));
        custody.fetch_keys().await;
        tokio::spawn(custody.clone().refresh());
        assert_eq!(get(addr, "/orders/7", &headers(chain(&a1))).await.0, 200);

        // the provider rotates to a-2: the call that misses waits for one shared refetch and
        // is decided again on the new set
        let before = server.hits("/jwks");
        server.set("/jwks", Doc::ok(jwks(&[&a1, &a2])));
        let (status, body) = get(addr, "/orders/7", &headers(chain(&a2))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(server.hits("/jwks"), before + 1);

        // a reload to a changed pack keeps the fetched set: no fetch needed to allow a-2
        std::fs::write(
            f.dir.path().join("policies.cedar"),
            "permit(principal, action, resource);\n// changed\n",
        )
        .unwrap();
        server.set("/jwks", Doc::status(500));
        let c = custody.clone();
        assert!(tokio::task::spawn_blocking(move || c.reload())
            .await
            .unwrap()
            .unwrap());
        assert_eq!(get(addr, "/orders/7", &headers(chain(&a2))).await.0, 200);

        // a gateway that never got a set (the source failing): keys_unavailable, a 503
        let fresh = Custody::load(f.dir.path()).unwrap();
        let d = fresh.decide(&custody_tests::request(chain(&a1))).await;
        assert_eq!(d.code().map(|c| c.as_str()), Some("keys_unavailable"));
        let app = axum::Router::new()
            .route("/orders/{id}", axum::routing::get(|| async { "order" }))
            .layer(fresh.layer(MapSettings {
                action_header: Some("x-custody-action".into()),
                ..settings()
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (status, body) = get(addr, "/orders/7", &headers(chain(&a1))).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("keys_unavailable"), "{body}");
    });
}
