//! `custody check` and `custody verify` on a pack whose domain takes its keys from a JWKS URL
//! (a loopback document server): each fetches once, `check` lists the domain's sources and key
//! counts, and a failing source is a warning, not a crash.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use custody_tests::docserver::{Doc, DocServer};

fn custody(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_and_verify_fetch_remote_keys_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = DocServer::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("pack")).unwrap();
    for (kid, alg, public) in [
        ("idp-1", "RS256", "idp.jwks"),
        ("c1", "EdDSA", "pack/c.jwks"),
    ] {
        let o = custody(
            d,
            &[
                "keygen",
                "--kid",
                kid,
                "--alg",
                alg,
                "--private",
                &format!("{kid}.jwk"),
                "--public",
                public,
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    server.set("/jwks", Doc::ok(std::fs::read(d.join("idp.jwks")).unwrap()));
    let issuer = server.url("");
    std::fs::write(
        d.join("pack/pack.trust"),
        format!(
            "local \"c.example\"\n\
             domain \"c.example\" {{\n  issuer \"https://c.example\"\n  keys \"c.jwks\"\n}}\n\
             domain \"idp.example\" {{\n  issuer \"{issuer}\"\n  jwks_uri \"{issuer}/jwks\"\n  jwks_uri \"{issuer}/gone\"\n}}\n\
             federate \"idp.example\" -> \"c.example\" {{ scopes [\"orders:read\"] }}\n"
        ),
    )
    .unwrap();
    let o = custody(d, &["check", "--policies", "pack"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("keys: domain `idp.example`: 1 token key(s): 0 from 0 key file(s)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("jwks_uri `{issuer}/jwks`: 1 key(s)")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "warning: jwks_uri `{issuer}/gone` of domain `idp.example` failed: HTTP status 404"
        )),
        "{out}"
    );
    assert_eq!(server.hits("/jwks"), 1);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": issuer, "sub": "svc-a", "aud": "spiffe://c.example/orders",
        "scope": "orders:read", "iat": now - 5, "exp": now + 300,
    });
    std::fs::write(d.join("claims.json"), claims.to_string()).unwrap();
    let o = custody(
        d,
        &["mint", "--key", "idp-1.jwk", "--claims", "claims.json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    assert!(
        token.starts_with("eyJhbGciOiJSUzI1NiI"),
        "an RS256 token: {token}"
    );
    let request = serde_json::json!({
        "tokens": [token], "audience": "spiffe://c.example/orders", "action": "orders:read",
    });
    std::fs::write(d.join("request.json"), request.to_string()).unwrap();
    let o = custody(d, &["verify", "--policies", "pack", "request.json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("\"decision\": \"allow\""), "{}", text(&o));
    assert_eq!(server.hits("/jwks"), 2, "verify fetched once");
    // the source down: verify warns and the token's kid is not available
    server.set("/jwks", Doc::status(500));
    let o = custody(d, &["verify", "--policies", "pack", "request.json"]);
    let out = text(&o);
    assert!(out.contains("keys_unavailable"), "{out}");
    assert!(out.contains("HTTP status 500"), "{out}");
}
