//! Remote key sources end to end in-process: a loopback HTTP server (tests/src `docserver`)
//! serves JWK Sets, discovery documents and SPIFFE bundles; `custody_sources::KeySources`
//! fetches them into the verifier's key store. Covers DESIGN.md "Remote key sources": the
//! first set (`keys_unavailable` before it), rotation with a single-flight, rate-limited
//! unknown-`kid` refetch, a removed key verifying nothing (token cache included), failures
//! keeping the last good set, sequence rollback, discovery (OIDC, RFC 8414, a differing
//! `issuer`), redirects, `max_key_age`, and a reload keeping what was fetched.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use custody_jose::{sign, Algorithm, KeySet, SigningKey};
use custody_sources::KeySources;
use custody_tests::docserver::{Doc, DocServer};
use custody_tests::{outcome, request, t0_claims, t1_claims, Fixture, PackBuilder};
use custody_verifier::Verifier;
use serde_json::{json, Value};

struct World {
    rt: tokio::runtime::Runtime,
    server: DocServer,
    f: Fixture,
    sources: KeySources,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The standard pack with `a.example` (the origin's domain) given `lines` (with `{url}` the
/// server's base URL) instead of its key file.
fn world(lines: &str, chain: &str) -> World {
    let rt = runtime();
    let server = DocServer::start(&rt);
    let base = server.url("");
    let f = PackBuilder::default()
        .key("a.example", rsa("a-1"))
        .remote("a.example", &lines.replace("{url}", &base))
        .chain(chain)
        .build();
    let sources = KeySources::new(f.verifier.pack(), Arc::clone(f.verifier.key_store()), None);
    World {
        rt,
        server,
        f,
        sources,
    }
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

/// The standard chain with its origin token signed by `origin`.
fn chain_by(w: &World, origin: &SigningKey) -> Vec<String> {
    let mut t0 = t0_claims();
    t0["iss"] = "https://as.a.example".into();
    vec![
        sign(origin, Some("at+jwt"), &t0).unwrap(),
        w.f.token("b.example", t1_claims()),
    ]
}

fn decide(w: &World, origin: &SigningKey) -> String {
    outcome(&w.f.verifier.verify(&request(chain_by(w, origin))))
}

impl World {
    fn refresh(&self) {
        self.rt.block_on(self.sources.refresh_all());
    }

    fn status(&self) -> custody_sources::SourceStatus {
        self.sources.status().remove(0)
    }
}

#[test]
fn keys_unavailable_until_the_first_set_then_allowed() {
    let w = world("  jwks_uri \"{url}/jwks\"", "");
    let a1 = rsa("a-1");
    w.server.set("/jwks", Doc::status(503));
    w.refresh();
    let d = w.f.verifier.verify(&request(chain_by(&w, &a1)));
    assert_eq!(outcome(&d), "keys_unavailable");
    assert_eq!(d.reasons[0].hop, Some(0));
    let st = w.status();
    assert_eq!((st.keys, st.failures), (None, 1));
    assert!(st.last_error.unwrap().contains("503"));
    w.server.set("/jwks", Doc::ok(jwks(&[&a1])));
    w.refresh();
    assert_eq!(decide(&w, &a1), "allow");
    assert_eq!(w.status().keys, Some(1));
    // once a source has delivered, a kid it lacks is `unknown_key`
    assert_eq!(decide(&w, &rsa("a-9")), "unknown_key");
}

#[test]
fn file_keys_verify_whatever_the_sources_do() {
    let w = world(
        "  keys \"keys/a.example.jwks\"\n  jwks_uri \"{url}/jwks\"",
        "",
    );
    // the builder wrote a.example's key file with the key it signs with (kid `a-1`)
    let a1 = rsa("a-1");
    w.server.set("/jwks", Doc::status(500));
    w.refresh();
    // a-1 sits in the file (the builder signs with it): allowed though no source delivered
    let f_key = w.f.key("a.example").clone();
    assert_eq!(decide(&w, &f_key), "allow");
    // a kid absent from the file while no source has delivered: keys_unavailable
    assert_eq!(decide(&w, &a1.with_kid("a-2")), "keys_unavailable");
}

#[test]
fn a_rotation_is_picked_up_by_one_shared_refetch_at_most_every_30_s() {
    let w = world("  jwks_uri \"{url}/jwks\"", "");
    let (a1, a2, a3) = (rsa("a-1"), rsa("a-2"), rsa("a-3"));
    w.server.set("/jwks", Doc::ok(jwks(&[&a1])));
    w.refresh();
    assert_eq!(decide(&w, &a1), "allow");
    let before = w.server.hits("/jwks");
    // the provider publishes a-2 and signs with it: eight requests miss at once
    w.server.set("/jwks", Doc::ok(jwks(&[&a1, &a2])));
    let req = request(chain_by(&w, &a2));
    let misses: Vec<String> = (0..8)
        .map(|_| outcome(&w.f.verifier.verify(&req)))
        .collect();
    assert!(misses.iter().all(|o| o == "unknown_key"), "{misses:?}");
    let waits = (0..8).map(|_| {
        let s = w.sources.clone();
        w.rt.spawn(async move { s.settle().await })
    });
    let waits: Vec<_> = waits.collect();
    w.rt.block_on(async {
        for t in waits {
            t.await.unwrap();
        }
    });
    assert_eq!(
        w.server.hits("/jwks"),
        before + 1,
        "one fetch for every waiter"
    );
    assert_eq!(outcome(&w.f.verifier.verify(&req)), "allow");
    // a third key within 30 s: no second unknown-kid refetch
    w.server.set("/jwks", Doc::ok(jwks(&[&a1, &a2, &a3])));
    assert_eq!(decide(&w, &a3), "unknown_key");
    w.rt.block_on(w.sources.settle());
    assert_eq!(w.server.hits("/jwks"), before + 1, "rate-limited");
    assert_eq!(decide(&w, &a3), "unknown_key");
}

#[test]
fn a_removed_key_verifies_nothing_afterwards_not_even_from_the_token_cache() {
    let w = world("  jwks_uri \"{url}/jwks\"", "");
    let (a1, a2) = (rsa("a-1"), rsa("a-2"));
    w.server.set("/jwks", Doc::ok(jwks(&[&a1, &a2])));
    w.refresh();
    let req = request(chain_by(&w, &a1));
    assert_eq!(outcome(&w.f.verifier.verify(&req)), "allow");
    let hits = w.f.verifier.token_cache().stats().hits;
    assert_eq!(outcome(&w.f.verifier.verify(&req)), "allow");
    assert!(
        w.f.verifier.token_cache().stats().hits > hits,
        "served from the cache"
    );
    // the provider removes a-1
    w.server.set("/jwks", Doc::ok(jwks(&[&a2])));
    w.refresh();
    let d = w.f.verifier.verify(&req);
    assert_eq!(outcome(&d), "unknown_key");
    assert_eq!(d.reasons[0].hop, Some(0));
    // and a rogue key published under the removed kid verifies nothing signed by the old one
    let rogue = rsa("a-1");
    w.server.set("/jwks", Doc::ok(jwks(&[&rogue, &a2])));
    w.refresh();
    assert_eq!(outcome(&w.f.verifier.verify(&req)), "bad_signature");
}

#[test]
fn a_failed_or_refused_fetch_keeps_the_last_good_set() {
    let w = world("  jwks_uri \"{url}/jwks\"", "");
    let a1 = rsa("a-1");
    w.server.set("/jwks", Doc::ok(jwks(&[&a1])));
    w.refresh();
    let private = {
        let mut jwk = SigningKey::generate("a-2", Algorithm::Es256)
            .unwrap()
            .to_private_jwk();
        jwk["kid"] = "a-2".into();
        json!({ "keys": [jwk] }).to_string()
    };
    let mut big = jwks(&[&a1]).into_bytes();
    big.truncate(big.len() - 1);
    big.extend(format!(",\"pad\":\"{}\"}}", "x".repeat(1 << 20)).into_bytes());
    let mut redirect = Doc::status(302);
    redirect
        .headers
        .push(("location".into(), "http://keys.example.net/jwks".into()));
    let cases: Vec<(Doc, &str)> = vec![
        (Doc::ok(r#"{"keys":["#), "refused key set"),
        (Doc::ok(r#"{"keys":[],"keys":[]}"#), "refused key set"),
        (Doc::ok("[]"), "refused key set"),
        (Doc::ok(private), "private"),
        (Doc::ok(big), "larger than 1048576 bytes"),
        (Doc::status(500), "500"),
        (Doc::status(404), "404"),
        (redirect, "redirect refused"),
    ];
    for (n, (doc, why)) in cases.into_iter().enumerate() {
        w.server.set("/jwks", doc);
        w.refresh();
        let st = w.status();
        let error = st.last_error.clone().unwrap_or_default();
        assert!(error.contains(why), "case {n}: {error}");
        assert_eq!(st.failures, n as u64 + 1);
        assert_eq!(st.keys, Some(1), "case {n}: the last good set is kept");
        assert_eq!(decide(&w, &a1), "allow", "case {n}");
    }
    // a source that does not answer within 5 s
    let mut slow = Doc::ok(jwks(&[]));
    slow.delay = Duration::from_secs(7);
    w.server.set("/jwks", slow);
    let started = std::time::Instant::now();
    w.refresh();
    assert!(started.elapsed() < Duration::from_secs(7));
    let st = w.status();
    assert_eq!(st.failures, 9);
    // one message whichever deadline fires first, the client's or the fetch's own (both 5 s:
    // under load either can be first)
    assert!(
        st.last_error
            .unwrap()
            .starts_with("no complete answer within 5 s"),
        "{:?}",
        w.status()
    );
    assert_eq!(decide(&w, &a1), "allow");
}

fn bundle(sequence: u64, keys: &[&SigningKey]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut jwk = k.public().to_jwk();
            jwk["use"] = "jwt-svid".into();
            jwk
        })
        .collect();
    json!({"spiffe_sequence": sequence, "spiffe_refresh_hint": 60, "keys": keys}).to_string()
}

#[test]
fn a_bundle_whose_sequence_goes_backwards_is_refused() {
    let w = world("  spiffe_bundle \"{url}/bundle\"", "");
    let (a1, a2) = (rsa("a-1"), rsa("a-2"));
    w.server.set("/bundle", Doc::ok(bundle(5, &[&a1])));
    w.refresh();
    assert_eq!(decide(&w, &a1), "allow");
    assert_eq!(w.status().sequence, Some(5));
    // a rollback to 4, which would drop a-1: refused
    w.server.set("/bundle", Doc::ok(bundle(4, &[&a2])));
    w.refresh();
    assert!(w.status().last_error.unwrap().contains("went backwards"));
    assert_eq!(decide(&w, &a1), "allow");
    assert_eq!(decide(&w, &a2), "unknown_key");
    // 6 is taken
    w.server.set("/bundle", Doc::ok(bundle(6, &[&a2])));
    w.refresh();
    assert_eq!(w.status().sequence, Some(6));
    assert_eq!(decide(&w, &a1), "unknown_key");
    assert_eq!(decide(&w, &a2), "allow");
}

#[test]
fn discovery_reads_the_issuers_metadata_and_refuses_another_issuer() {
    let w = world("  issuer \"{url}\"\n  discovery \"{url}\"", "");
    let base = w.server.url("");
    let a1 = rsa("a-1");
    let meta =
        |issuer: &str| json!({"issuer": issuer, "jwks_uri": format!("{base}/keys")}).to_string();
    w.server
        .set("/.well-known/openid-configuration", Doc::ok(meta(&base)));
    w.server.set("/keys", Doc::ok(jwks(&[&a1])));
    w.refresh();
    assert_eq!(decide(&w, &a1), "allow");
    assert_eq!(w.status().jwks_uri, Some(format!("{base}/keys")));
    // a document naming another issuer delivers nothing; the last good set stays
    w.server.set(
        "/.well-known/openid-configuration",
        Doc::ok(meta("https://evil.example")),
    );
    w.server.set("/keys", Doc::ok(jwks(&[])));
    w.refresh();
    assert!(w.status().last_error.unwrap().contains("differs"));
    assert_eq!(decide(&w, &a1), "allow");

    // on a fresh pack it stays keys_unavailable
    let fresh = world("  issuer \"{url}\"\n  discovery \"{url}\"", "");
    let base = fresh.server.url("");
    fresh.server.set(
        "/.well-known/openid-configuration",
        Doc::ok(
            json!({"issuer": "https://evil.example", "jwks_uri": format!("{base}/keys")})
                .to_string(),
        ),
    );
    fresh.server.set("/keys", Doc::ok(jwks(&[&a1])));
    fresh.refresh();
    assert_eq!(decide(&fresh, &a1), "keys_unavailable");
    assert_eq!(
        fresh.server.hits("/keys"),
        0,
        "no keys fetched for another issuer"
    );
}

#[test]
fn discovery_falls_back_to_rfc_8414_for_an_issuer_with_a_path() {
    let w = world(
        "  issuer \"{url}/tenant\"\n  discovery \"{url}/tenant\"",
        "",
    );
    let base = w.server.url("");
    let a1 = rsa("a-1");
    w.server.set(
        "/.well-known/oauth-authorization-server/tenant",
        Doc::ok(
            json!({"issuer": format!("{base}/tenant"), "jwks_uri": format!("{base}/k")})
                .to_string(),
        ),
    );
    w.server.set("/k", Doc::ok(jwks(&[&a1])));
    w.refresh();
    assert_eq!(w.server.hits("/tenant/.well-known/openid-configuration"), 1);
    assert_eq!(decide(&w, &a1), "allow");
}

#[test]
fn a_reload_keeps_the_fetched_sets_it_still_needs() {
    let w = world("  jwks_uri \"{url}/jwks\"", "");
    let a1 = rsa("a-1");
    w.server.set("/jwks", Doc::ok(jwks(&[&a1])));
    w.refresh();
    let hits = w.server.hits("/jwks");
    // the same pack loaded again: a new verifier and store, keys carried over, no fetch
    let pack = (**w.f.verifier.pack()).clone();
    let v = Verifier::new(pack);
    let carried = KeySources::new(v.pack(), Arc::clone(v.key_store()), Some(&w.sources));
    assert_eq!(outcome(&v.verify(&request(chain_by(&w, &a1)))), "allow");
    assert_eq!(w.server.hits("/jwks"), hits);
    assert_eq!(carried.status()[0].keys, Some(1));
    // without the previous sources it would wait for a fetch
    let v2 = Verifier::new((**w.f.verifier.pack()).clone());
    let _fresh = KeySources::new(v2.pack(), Arc::clone(v2.key_store()), None);
    assert_eq!(
        outcome(&v2.verify(&request(chain_by(&w, &a1)))),
        "keys_unavailable"
    );
}

#[test]
fn a_set_older_than_max_key_age_is_dropped() {
    let w = world("  jwks_uri \"{url}/jwks\"", "max_key_age 30s");
    let a1 = rsa("a-1");
    w.server.set("/jwks", Doc::ok(jwks(&[&a1])));
    w.refresh();
    assert_eq!(decide(&w, &a1), "allow");
    w.server.set("/jwks", Doc::status(500));
    std::thread::sleep(Duration::from_secs(31));
    w.refresh();
    assert_eq!(decide(&w, &a1), "unknown_key");
    assert_eq!(w.status().keys, None);
}

/// A SPIFFE bundle endpoint (as SPIRE serves one) brings the domain's WIT keys and X.509
/// authorities along with its JWT keys; a bundle whose authority is not a certificate is
/// refused as a whole and the last good one kept.
#[test]
fn a_remote_bundle_brings_wit_keys_and_x509_authorities() {
    let w = world("  spiffe_bundle \"{url}/bundle\"", "");
    let a1 = rsa("a-1");
    let wit_key = SigningKey::generate("wit-1", Algorithm::Es256).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let std_b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let doc = |sequence: u64, x5c: &str| {
        let mut jwt = a1.public().to_jwk();
        jwt["use"] = "jwt-svid".into();
        let mut wit = wit_key.public().to_jwk();
        wit["use"] = "wit-svid".into();
        let x509 = json!({"use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": [x5c]});
        json!({"spiffe_sequence": sequence, "keys": [jwt, wit, x509]}).to_string()
    };
    let counts = |w: &World| {
        let keys = w.f.verifier.key_store();
        let a = keys.domain(keys.index_of("a.example").unwrap()).unwrap();
        (a.tokens().len(), a.wit().len(), a.x509().len())
    };
    w.server.set("/bundle", Doc::ok(doc(1, &std_b64(ca.der()))));
    w.refresh();
    assert_eq!(decide(&w, &a1), "allow");
    assert_eq!(counts(&w), (1, 1, 1));
    // an authority that is no certificate: the whole update is refused
    w.server
        .set("/bundle", Doc::ok(doc(2, &std_b64(b"not a certificate"))));
    w.refresh();
    assert!(
        w.status().last_error.unwrap().contains("x509-svid"),
        "{:?}",
        w.status()
    );
    assert_eq!(counts(&w), (1, 1, 1));
    // a bundle without them takes them away
    let mut only_jwt = a1.public().to_jwk();
    only_jwt["use"] = "jwt-svid".into();
    w.server.set(
        "/bundle",
        Doc::ok(json!({"spiffe_sequence": 3, "keys": [only_jwt]}).to_string()),
    );
    w.refresh();
    assert_eq!(counts(&w), (1, 0, 0));
}
