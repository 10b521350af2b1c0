//! The sidecar in a fleet (issue 17): `custody.v1.Admin` guarded by its own credential, a
//! revocation denying a chain the decision cache had allowed, and two nodes sharing a real
//! `redis-server` (the kit's `custody_tests::redis`): what one node is told, the other denies;
//! `/metrics` shows the store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use custody_sidecar::pb;
use custody_sidecar::pb::admin_client::AdminClient;
use custody_tests::redis::Redis;
use custody_tests::{Fixture, PackBuilder, ALICE};
use tonic::transport::Channel;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn with_token(f: &Fixture) -> custody_sidecar::ServeArgs {
    let file = f.dir.path().join("admin.token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    custody_sidecar::ServeArgs {
        admin_token_file: Some(file),
        ..args(f)
    }
}

fn revoke_req(kind: &str, value: &str, token: Option<&str>) -> tonic::Request<pb::RevokeRequest> {
    let mut r = tonic::Request::new(pb::RevokeRequest {
        kind: kind.into(),
        value: value.into(),
        until: 0,
    });
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

async fn admin(r: &custody_sidecar::Running) -> AdminClient<Channel> {
    AdminClient::new(channel(r).await)
}

async fn allowed_chain(
    a: &mut envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient<
        Channel,
    >,
    f: &Fixture,
) -> String {
    let (t0, t1) = live_chain(f);
    code(&check(a, &chain_headers(&[t0], &t1, "orders:read"), "").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_service_needs_its_own_credential() {
    // not served at all without the flag
    let f = Fixture::standard();
    let r = start(args(&f)).await;
    let e = admin(&r)
        .await
        .revoke(revoke_req("actor", ALICE, Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unimplemented, "{e}");
    r.shutdown().await.unwrap();

    // with it: no token, a wrong one, a right one
    let f = Fixture::standard();
    let r = start(with_token(&f)).await;
    let mut c = admin(&r).await;
    for token in [None, Some("0123456789abcdef0123456789abcdeX"), Some("")] {
        let e = c
            .revoke(revoke_req("actor", ALICE, token))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{token:?}: {e}");
    }
    let e = c
        .revoke(revoke_req("nope", ALICE, Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let mut list = tonic::Request::new(pb::ListRevocationsRequest {});
    assert_eq!(
        c.list_revocations(tonic::Request::new(pb::ListRevocationsRequest {}))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );
    list.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    assert!(c
        .list_revocations(list)
        .await
        .unwrap()
        .into_inner()
        .revocations
        .is_empty());
    r.shutdown().await.unwrap();

    // a token file too short refuses to start
    let f = Fixture::standard();
    let file = f.dir.path().join("short.token");
    std::fs::write(&file, "short\n").unwrap();
    let refused = custody_sidecar::start(custody_sidecar::ServeArgs {
        admin_token_file: Some(file),
        ..args(&f)
    })
    .await;
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_denies_what_the_decision_cache_had_allowed() {
    let f = Fixture::standard();
    let r = start(with_token(&f)).await;
    let mut a = authz(&r).await;
    let (t0, t1) = live_chain(&f);
    let headers = chain_headers(&[t0], &t1, "orders:read");
    for _ in 0..3 {
        assert_eq!(code(&check(&mut a, &headers, "").await), "allow");
    }
    let hits = metric(&metrics(&r).await, "custody_decision_cache_hits_total");
    assert!(hits >= 1.0, "the allow came from the cache");
    let answer = admin(&r)
        .await
        .revoke(revoke_req("actor", ALICE, Some(TOKEN)))
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.shared, "no store: this node only");
    let denied = check(&mut a, &headers, "").await;
    assert_eq!(code(&denied), "revoked");
    let Outcome::Deny { http, body, .. } = outcome(&denied) else {
        panic!()
    };
    assert_eq!((http, body["reasons"][0]["hop"].as_u64()), (403, Some(1)));
    assert!(metric(&metrics(&r).await, "custody_revocations_held") >= 1.0);
    // a reload keeps it
    std::fs::write(
        f.dir.path().join("pack.trust"),
        std::fs::read_to_string(f.dir.path().join("pack.trust")).unwrap() + "\n# changed\n",
    )
    .unwrap();
    assert!(r.reload().await.unwrap());
    assert_eq!(code(&check(&mut a, &headers, "").await), "revoked");
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_revocations_through_redis() {
    let Some(redis) = Redis::start() else { return };
    let f = PackBuilder::default()
        .extra_trust(&format!("store \"{}\"\n", redis.url()))
        .build();
    let (one, two) = (start(with_token(&f)).await, start(args(&f)).await);
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (m1, m2) = (metrics(&one).await, metrics(&two).await);
        if metric(&m1, "custody_store_up") == 1.0 && metric(&m2, "custody_store_up") == 1.0 {
            break;
        }
        assert!(Instant::now() < until, "{m1}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut a1, mut a2) = (authz(&one).await, authz(&two).await);
    assert_eq!(allowed_chain(&mut a2, &f).await, "allow");
    let answer = admin(&one)
        .await
        .revoke(revoke_req("origin", "a.example|user:alice", Some(TOKEN)))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.shared);
    assert_eq!(answer.receivers, 2, "both nodes subscribed");
    assert_eq!(
        allowed_chain(&mut a1, &f).await,
        "revoked",
        "held at once on the node told"
    );
    let started = Instant::now();
    while allowed_chain(&mut a2, &f).await != "revoked" {
        assert!(started.elapsed() < Duration::from_secs(2), "not propagated");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let m2 = metrics(&two).await;
    assert_eq!(
        metric(&m2, "custody_revocations_applied_total"),
        1.0,
        "{m2}"
    );
    assert!(metric(&m2, "custody_store_resyncs_total") >= 1.0);
    one.shutdown().await.unwrap();
    two.shutdown().await.unwrap();
}
