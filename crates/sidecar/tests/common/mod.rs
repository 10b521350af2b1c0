//! Helpers shared by the sidecar's integration tests: a real server on a loopback port,
//! generated clients over real HTTP/2, and tokens minted for the current time.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a module shared with another target, which uses the items this one does not"
)]

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use custody_sidecar::pb;
use custody_sidecar::pb::verifier_client::VerifierClient;
use custody_sidecar::{Running, ServeArgs};
use custody_tests::{t0_claims, t1_claims, Fixture, AUD};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use serde_json::Value;
use tonic::transport::Channel;

pub const ACTION_HEADER: &str = "x-custody-action";

/// The system clock, as the server sees it.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The kit's standard claims moved to the current time.
pub fn live(mut claims: Value, iat_ago: i64, exp_in: i64) -> Value {
    let now = unix_now();
    claims["iat"] = (now - iat_ago).into();
    claims["exp"] = (now + exp_in).into();
    claims
}

pub fn t0_live() -> Value {
    live(t0_claims(), 60, 600)
}

pub fn t1_live() -> Value {
    live(t1_claims(), 30, 300)
}

/// The standard two-domain chain, valid now.
pub fn live_chain(f: &Fixture) -> (String, String) {
    (
        f.token("a.example", t0_live()),
        f.token("b.example", t1_live()),
    )
}

/// Removes the `b.example -> c.example` federation rule from the pack's trust file: the
/// standard chain is then `domain_not_federated`.
pub fn unfederate(f: &Fixture) {
    let path = f.dir.path().join("pack.trust");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"b.example\" -> \"c.example\""))
        .collect();
    assert_ne!(kept.len(), text.lines().count());
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
}

/// Server options for a test: the fixture's pack, a free port, the kit's audience, the action
/// from a proxy-set header, metrics on.
pub fn args(f: &Fixture) -> ServeArgs {
    ServeArgs {
        policies: f.dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        audience: Some(custody_tests::AUD.into()),
        action_header: Some(ACTION_HEADER.into()),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServeArgs::default()
    }
}

pub async fn start(args: ServeArgs) -> Running {
    custody_sidecar::start(args).await.unwrap()
}

pub async fn channel(r: &Running) -> Channel {
    Channel::from_shared(format!("http://{}", r.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub async fn authz(r: &Running) -> AuthorizationClient<Channel> {
    AuthorizationClient::new(channel(r).await)
}

pub async fn native(r: &Running) -> VerifierClient<Channel> {
    VerifierClient::new(channel(r).await)
}

/// A Check request as Envoy builds it.
pub fn check_request(headers: &[(&str, &str)], principal: &str) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                principal: principal.into(),
                ..Peer::default()
            }),
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/orders/42?expand=1".into(),
                    host: "orders.c.example".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    ..HttpRequest::default()
                }),
                ..AttrRequest::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// Headers of an allowed call with this chain (bearer = last token).
pub fn chain_headers<'a>(
    tokens: &'a [String],
    bearer: &'a str,
    action: &'a str,
) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("authorization", format!("Bearer {bearer}")),
        (ACTION_HEADER, action.to_owned()),
    ];
    if !tokens.is_empty() {
        h.push(("custody-chain", tokens.join(",")));
    }
    h
}

pub async fn check(
    client: &mut AuthorizationClient<Channel>,
    headers: &[(&str, String)],
    principal: &str,
) -> CheckResponse {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    client
        .check(check_request(&h, principal))
        .await
        .unwrap()
        .into_inner()
}

/// What Envoy would do with a Check answer.
#[derive(Debug)]
pub enum Outcome {
    Allow {
        headers: HashMap<String, String>,
        removed: Vec<String>,
        metadata: Value,
    },
    Deny {
        http: i32,
        headers: HashMap<String, String>,
        body: Value,
    },
}

pub fn outcome(r: &CheckResponse) -> Outcome {
    let grpc = r.status.as_ref().map_or(0, |s| s.code);
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => {
            assert_eq!(grpc, 0);
            let headers = ok
                .headers
                .iter()
                .map(|h| {
                    let h = h.header.as_ref().unwrap();
                    (h.key.clone(), h.value.clone())
                })
                .collect();
            let metadata = r.dynamic_metadata.as_ref().map_or(Value::Null, struct_json);
            Outcome::Allow {
                headers,
                removed: ok.headers_to_remove.clone(),
                metadata,
            }
        }
        Some(HttpResponse::DeniedResponse(d)) => {
            assert_eq!(grpc, 7, "denials are PERMISSION_DENIED");
            let headers = d
                .headers
                .iter()
                .map(|h| {
                    let h = h.header.as_ref().unwrap();
                    (h.key.clone(), h.value.clone())
                })
                .collect();
            Outcome::Deny {
                http: d.status.as_ref().unwrap().code,
                headers,
                body: serde_json::from_str(&d.body).unwrap(),
            }
        }
        other => panic!("no http response: {other:?}"),
    }
}

/// The first reason code of a denial, or `allow`.
pub fn code(r: &CheckResponse) -> String {
    match outcome(r) {
        Outcome::Allow { .. } => "allow".into(),
        Outcome::Deny { body, .. } => body["reasons"][0]["code"].as_str().unwrap().to_owned(),
    }
}

fn struct_json(s: &envoy_types::pb::google::protobuf::Struct) -> Value {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_json(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn value_json(v: &envoy_types::pb::google::protobuf::Value) -> Value {
    use envoy_types::pb::google::protobuf::value::Kind;
    match &v.kind {
        Some(Kind::StringValue(s)) => s.clone().into(),
        Some(Kind::NumberValue(n)) => (*n).into(),
        Some(Kind::BoolValue(b)) => (*b).into(),
        Some(Kind::ListValue(l)) => l.values.iter().map(value_json).collect::<Vec<_>>().into(),
        Some(Kind::StructValue(s)) => struct_json(s),
        _ => Value::Null,
    }
}

/// `GET /metrics` from the metrics endpoint.
pub async fn metrics(r: &Running) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(r.metrics_addr.unwrap())
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// A counter's value from the metrics text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A custody.v1 request for the standard chain, decided on the system clock.
pub fn verify_req(f: &Fixture) -> pb::VerifyRequest {
    let (t0, t1) = live_chain(f);
    pb::VerifyRequest {
        tokens: vec![t0, t1],
        audience: AUD.into(),
        action: "orders:read".into(),
        ..pb::VerifyRequest::default()
    }
}

/// A custody.v1 decision's first reason code, or `allow`.
pub fn first_code(d: &pb::Decision) -> &str {
    d.reasons.first().map_or("allow", |r| r.code.as_str())
}
