//! The Biscuit profile's commands as README "Biscuit profile" shows them: `mint --biscuit`,
//! `attest`, `attenuate`, then `verify`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::path::Path;
use std::process::{Command, Output};

fn custody(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const TRUST: &str = r#"local "c.example"
domain "a.example" {
  issuer "https://as.a.example"
  keys "keys/a.jwks"
  biscuit_keys "keys/a.jwks"
}
domain "b.example" {
  issuer "https://as.b.example"
  keys "keys/b.jwks"
  biscuit_keys "keys/b.jwks"
}
domain "c.example" {
  issuer "https://as.c.example"
  keys "keys/c.jwks"
}
federate "a.example" -> "b.example" { scopes ["orders:read", "orders:write"] }
federate "b.example" -> "c.example" { scopes ["orders:read"] }
"#;

fn verify(dir: &Path, token: &str, action: &str, peer: &str) -> (i32, String) {
    let req = format!(
        r#"{{"tokens":["{token}"],"audience":"spiffe://c.example/orders","action":"{action}","peer":"{peer}"}}"#
    );
    std::fs::write(dir.join("req.json"), req).unwrap();
    let out = custody(dir, &["verify", "--policies", ".", "--compact", "req.json"]);
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn mint_attest_attenuate_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("keys")).unwrap();
    for d in ["a", "b", "c"] {
        let (private, public) = (format!("keys/{d}.key.jwk"), format!("keys/{d}.jwks"));
        let kid = format!("{d}-k1");
        let args = [
            "keygen",
            "--kid",
            &kid,
            "--private",
            &private,
            "--public",
            &public,
        ];
        ok(custody(dir, &args));
    }
    std::fs::write(dir.join("pack.trust"), TRUST).unwrap();
    let t0 = ok(custody(
        dir,
        &[
            "mint",
            "--biscuit",
            "--key",
            "keys/a.key.jwk",
            "--domain",
            "a.example",
            "--sub",
            "user:alice",
            "--txn",
            "txn-1",
            "--scope",
            "orders:read orders:write",
            "--aud",
            "spiffe://b.example/agent/alice",
            "--actor",
            "spiffe://a.example/agent/bob",
            "--ttl",
            "600",
        ],
    ));
    let t1 = ok(custody(
        dir,
        &[
            "attest",
            "--token",
            &t0,
            "--key",
            "keys/b.key.jwk",
            "--actor",
            "spiffe://b.example/agent/alice",
            "--scope",
            "orders:read",
            "--aud",
            "spiffe://c.example/orders",
        ],
    ));
    let alice = "spiffe://b.example/agent/alice";
    let (code, json) = verify(dir, &t1, "orders:read", alice);
    assert_eq!(code, 0, "{json}");
    assert!(json
        .contains(r#""actors":["spiffe://a.example/agent/bob","spiffe://b.example/agent/alice"]"#));
    let (code, json) = verify(dir, &t1, "orders:write", alice);
    assert_eq!(code, 1);
    assert!(json.contains("scope_missing"), "{json}");
    // attenuation restricts; the token from a file works too
    std::fs::write(dir.join("t1.txt"), &t1).unwrap();
    let t2 = ok(custody(
        dir,
        &[
            "attenuate",
            "--token",
            "@t1.txt",
            "--check",
            r#"check if time($t), $t < 2000-01-01T00:00:00Z"#,
        ],
    ));
    let (code, json) = verify(dir, &t2, "orders:read", alice);
    assert_eq!(code, 1);
    assert!(json.contains("policy_denied"), "{json}");
    // a hop attested with the wrong domain's key
    let forged = ok(custody(
        dir,
        &[
            "attest",
            "--token",
            &t0,
            "--key",
            "keys/a.key.jwk",
            "--actor",
            alice,
            "--aud",
            "spiffe://c.example/orders",
        ],
    ));
    let (_, json) = verify(dir, &forged, "orders:read", alice);
    assert!(json.contains("issuer_not_in_chain"), "{json}");
    // attenuate takes checks only
    let out = custody(
        dir,
        &["attenuate", "--token", &t1, "--check", r#"actor("x")"#],
    );
    assert_eq!(out.status.code(), Some(2));
    // `--domain` belongs to `--biscuit`; JWT minting is unchanged
    let out = custody(
        dir,
        &["mint", "--key", "keys/a.key.jwk", "--domain", "a.example"],
    );
    assert!(!out.status.success());
    let jwt = ok(custody(
        dir,
        &["mint", "--key", "keys/a.key.jwk", "--sub", "u"],
    ));
    assert_eq!(jwt.matches('.').count(), 2);
}
