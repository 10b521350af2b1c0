//! The pack's `resource` block at the sidecar (RFC 9728, issue 16 part 2): its protected
//! resource metadata on the HTTP port, and the metadata URL in every Check challenge, so that a
//! client (an MCP client, for one) denied for a missing or invalid token can find where to get
//! one; a missing scope names the scope. Real server on loopback ports, real gRPC client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use crate::common;

use std::net::SocketAddr;

use common::*;
use custody_tests::{Fixture, PackBuilder};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ID: &str = "https://mcp.c.example/mcp";
const METADATA_URL: &str = "https://mcp.c.example/.well-known/oauth-protected-resource/mcp";
const RESOURCE: &str = "resource \"https://mcp.c.example/mcp\" {\n  authorization_servers [\"https://as.c.example\"]\n  scopes [\"orders:read\", \"orders:write\"]\n}\n";

/// One HTTP/1.1 exchange with `connection: close`: the status, the head and the body.
async fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_port_serves_the_packs_protected_resource_metadata() {
    let f = PackBuilder::default().extra_trust(RESOURCE).build();
    let r = start(args(&f)).await;
    let http = r.metrics_addr.unwrap();
    let want = json!({
        "resource": ID,
        "authorization_servers": ["https://as.c.example"],
        "scopes_supported": ["orders:read", "orders:write"],
        "bearer_methods_supported": ["header"],
    });
    // the path-suffixed form RFC 9728 §3.1 builds from the identifier, and the bare one
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let (status, head, body) = get(http, "GET", path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("access-control-allow-origin: *"), "{head}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            want,
            "{path}"
        );
    }
    // another resource's metadata is not this one's to give
    for path in [
        "/.well-known/oauth-protected-resource/other",
        "/.well-known/oauth-protected-resource/mcp/tools",
    ] {
        let (status, _, body) = get(http, "GET", path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains(METADATA_URL), "{body}");
    }
    let (status, head, _) = get(http, "POST", "/.well-known/oauth-protected-resource/mcp").await;
    assert_eq!(status, 405, "{head}");

    // a reload that drops the block drops the document; one that changes it serves the new one
    let trust = f.dir.path().join("pack.trust");
    let text = std::fs::read_to_string(&trust).unwrap();
    std::fs::write(&trust, text.replace(RESOURCE, "")).unwrap();
    assert!(r.reload().await.unwrap());
    let (status, _, body) = get(http, "GET", "/.well-known/oauth-protected-resource").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("declares no `resource`"), "{body}");
    let other = RESOURCE.replace("mcp.c.example/mcp", "api.c.example/v2/mcp");
    std::fs::write(&trust, format!("{}{other}", text.replace(RESOURCE, ""))).unwrap();
    assert!(r.reload().await.unwrap());
    let (status, _, body) = get(http, "GET", "/.well-known/oauth-protected-resource/v2/mcp").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["resource"],
        "https://api.c.example/v2/mcp"
    );
    // a reload that fails keeps the old pack, and its metadata
    std::fs::write(
        &trust,
        format!("{text}resource \"http://mcp.example/\" {{\n}}\n"),
    )
    .unwrap();
    assert!(r.reload().await.is_err());
    let (status, _, _) = get(http, "GET", "/.well-known/oauth-protected-resource/v2/mcp").await;
    assert_eq!(status, 200);
    r.shutdown().await.unwrap();
}

fn denial(r: &envoy_types::pb::envoy::service::auth::v3::CheckResponse) -> (i32, String, Value) {
    let Outcome::Deny {
        http,
        headers,
        body,
    } = outcome(r)
    else {
        panic!("allowed: {r:?}")
    };
    let challenge = headers.get("www-authenticate").cloned().unwrap_or_default();
    (http, challenge, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_challenges_name_the_metadata_url_and_the_missing_scope() {
    let f = PackBuilder::default().extra_trust(RESOURCE).build();
    let r = start(args(&f)).await;
    let mut a = authz(&r).await;
    let (t0, t1) = live_chain(&f);

    // no token: where to get one
    let none = check(&mut a, &[(ACTION_HEADER, "orders:read".to_owned())], "").await;
    assert_eq!(
        denial(&none).1,
        format!("Bearer realm=\"custody\", resource_metadata=\"{METADATA_URL}\"")
    );
    // an invalid token: the same, with the error
    let mut expired = t1_live();
    expired["exp"] = (unix_now() - 120).into();
    expired["iat"] = (unix_now() - 200).into();
    let old = check(
        &mut a,
        &chain_headers(
            std::slice::from_ref(&t0),
            &f.token("b.example", expired),
            "orders:read",
        ),
        "",
    )
    .await;
    let (http, challenge, _) = denial(&old);
    assert_eq!(http, 401);
    assert_eq!(
        challenge,
        format!("Bearer realm=\"custody\", error=\"invalid_token\", error_description=\"expired\", resource_metadata=\"{METADATA_URL}\"")
    );
    // a token without the action in its scope: the scope it lacks
    let short = check(
        &mut a,
        &chain_headers(std::slice::from_ref(&t0), &t1, "orders:write"),
        "",
    )
    .await;
    let (http, challenge, body) = denial(&short);
    assert_eq!(
        (http, body["reasons"][0]["code"].as_str()),
        (403, Some("scope_missing"))
    );
    assert_eq!(
        challenge,
        format!("Bearer realm=\"custody\", error=\"insufficient_scope\", scope=\"orders:write\", resource_metadata=\"{METADATA_URL}\"")
    );
    // a denial about the chain, not the credential, has no challenge
    let mut wide = t1_live();
    wide["scope"] = "orders:read orders:admin".into();
    let widened = check(
        &mut a,
        &chain_headers(
            std::slice::from_ref(&t0),
            &f.token("b.example", wide),
            "orders:read",
        ),
        "",
    )
    .await;
    assert_eq!(denial(&widened).1, "");
    // and an allowed call is as before
    let ok = check(
        &mut a,
        &chain_headers(std::slice::from_ref(&t0), &t1, "orders:read"),
        "",
    )
    .await;
    assert!(matches!(outcome(&ok), Outcome::Allow { .. }));
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_resource_the_challenges_are_as_before() {
    let f = Fixture::standard();
    let r = start(args(&f)).await;
    let mut a = authz(&r).await;
    let none = check(&mut a, &[(ACTION_HEADER, "orders:read".to_owned())], "").await;
    assert_eq!(denial(&none).1, "Bearer realm=\"custody\"");
    let (status, _, _) = get(
        r.metrics_addr.unwrap(),
        "GET",
        "/.well-known/oauth-protected-resource",
    )
    .await;
    assert_eq!(status, 404);
    r.shutdown().await.unwrap();
}
