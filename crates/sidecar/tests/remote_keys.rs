//! The sidecar with a remote key source (a loopback JWKS server): it starts while the source
//! fails, answers `keys_unavailable` with 503, picks the keys up by one refetch inside the RPC
//! that missed (decided again, allowed), caches the decision under the new keys, and reports
//! the source on `/metrics`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use crate::common;

use common::*;
use custody_jose::{sign, Algorithm, KeySet, SigningKey};
use custody_tests::docserver::{Doc, DocServer};
use custody_tests::PackBuilder;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn jwks(keys: &[&SigningKey]) -> String {
    let mut set = KeySet::new();
    for k in keys {
        set.insert(k.public()).unwrap();
    }
    set.to_jwks().to_string()
}

/// The standard chain, valid now, its origin token signed by `origin` (a.example's IdP): the
/// earlier tokens (for `custody-chain`) and the bearer.
fn chain_by(f: &custody_tests::Fixture, origin: &SigningKey) -> (Vec<String>, String) {
    let mut c = t0_live();
    c["iss"] = "https://as.a.example".into();
    let t0 = sign(origin, Some("at+jwt"), &c).unwrap();
    (vec![t0], f.token("b.example", t1_live()))
}

fn pack(server: &DocServer, idp: &SigningKey) -> custody_tests::Fixture {
    PackBuilder::default()
        .key("a.example", idp.clone())
        .remote(
            "a.example",
            &format!("  jwks_uri \"{}\"", server.url("/jwks")),
        )
        .build()
}

#[test]
fn unavailable_keys_are_503_until_the_background_retry_fetches_them() {
    let doc_rt = runtime();
    let server = DocServer::start(&doc_rt);
    server.set("/jwks", Doc::status(503));
    let idp = SigningKey::generate("idp-1", Algorithm::Rs256).unwrap();
    let f = pack(&server, &idp);
    let rt = runtime();
    rt.block_on(async {
        let running = start(args(&f)).await;
        assert_eq!(server.hits("/jwks"), 1, "fetched once before serving");
        let mut client = authz(&running).await;
        let (tokens, bearer) = chain_by(&f, &idp);
        let headers = chain_headers(&tokens, &bearer, "orders:read");
        let r = check(&mut client, &headers, "").await;
        match outcome(&r) {
            Outcome::Deny { http, body, .. } => {
                assert_eq!(http, 503);
                assert_eq!(body["reasons"][0]["code"], "keys_unavailable");
                assert_eq!(body["reasons"][0]["hop"], 0);
            }
            other => panic!("{other:?}"),
        }
        let series = format!(
            "custody_key_source_failures_total{{domain=\"a.example\",source=\"jwks_uri\",url=\"{}\"}}",
            server.url("/jwks")
        );
        assert!(metric(&metrics(&running).await, &series) >= 1.0);
        // the IdP comes up: the background retry (back-off from 1 s) takes the set
        server.set("/jwks", Doc::ok(jwks(&[&idp])));
        let up = series.replace("failures_total", "up");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while metric(&metrics(&running).await, &up) != 1.0 {
            assert!(std::time::Instant::now() < deadline, "not refetched in 20 s");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(code(&check(&mut client, &headers, "").await), "allow");
        running.shutdown().await.unwrap();
    });
}

#[test]
fn a_rotated_in_key_is_fetched_inside_the_rpc_that_needs_it() {
    let doc_rt = runtime();
    let server = DocServer::start(&doc_rt);
    let idp = SigningKey::generate("idp-1", Algorithm::Rs256).unwrap();
    let next = SigningKey::generate("idp-2", Algorithm::Rs256).unwrap();
    server.set("/jwks", Doc::ok(jwks(&[&idp])));
    let f = pack(&server, &idp);
    let rt = runtime();
    rt.block_on(async {
        let running = start(args(&f)).await;
        let mut client = authz(&running).await;
        let (tokens, bearer) = chain_by(&f, &idp);
        let headers = chain_headers(&tokens, &bearer, "orders:read");
        assert_eq!(code(&check(&mut client, &headers, "").await), "allow");
        // the IdP publishes idp-2 and signs with it: one refetch, inside the RPC, allowed
        server.set("/jwks", Doc::ok(jwks(&[&idp, &next])));
        let before = server.hits("/jwks");
        let (tokens, bearer) = chain_by(&f, &next);
        let headers = chain_headers(&tokens, &bearer, "orders:read");
        assert_eq!(code(&check(&mut client, &headers, "").await), "allow");
        assert_eq!(server.hits("/jwks"), before + 1);
        // the allow is cached under the new keys and served without another fetch
        assert_eq!(code(&check(&mut client, &headers, "").await), "allow");
        assert_eq!(server.hits("/jwks"), before + 1);
        let text = metrics(&running).await;
        let keys = format!(
            "custody_key_source_keys{{domain=\"a.example\",source=\"jwks_uri\",url=\"{}\"}}",
            server.url("/jwks")
        );
        assert_eq!(metric(&text, &keys), 2.0, "{text}");
        assert!(text.contains("custody_key_source_last_success_timestamp_seconds{"));
        // a reload keeps the fetched set of a source the new pack still names: no fetch
        std::fs::write(
            f.dir.path().join("extra.cedar"),
            "permit(principal, action, resource);\n",
        )
        .unwrap();
        assert!(running.reload().await.unwrap());
        assert_eq!(code(&check(&mut client, &headers, "").await), "allow");
        assert_eq!(
            server.hits("/jwks"),
            before + 1,
            "the reload kept the fetched set"
        );
        running.shutdown().await.unwrap();
    });
}
