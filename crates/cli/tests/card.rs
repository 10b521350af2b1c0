//! `custody card verify`: an A2A Agent Card signed with a demo domain's key, as an operator
//! checks one (exit 0 verified, 1 not or changed since pinned, 2 unusable input).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use custody_jose::{SigningKey, B64};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn custody(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn card() -> Value {
    json!({
        "name": "Travel agent", "description": "Books trips", "version": "1.0.0",
        "url": "https://travel.a.example/a2a", "protocolVersion": "0.3.0",
        "provider": {"organization": "A", "url": "https://a.example"},
        "capabilities": {}, "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "security": [{"bearer": []}], "skills": [],
    })
}

fn sign(mut card: Value) -> Value {
    let key =
        SigningKey::from_jwk(&std::fs::read(root().join("policies/demo/keys/a.key.jwk")).unwrap())
            .unwrap();
    let payload =
        B64.encode(custody_verifier::card::signing_payload(card.as_object().unwrap()).unwrap());
    let protected = B64.encode(json!({"alg": key.alg().name(), "kid": key.kid()}).to_string());
    let sig = key.sign_bytes(format!("{protected}.{payload}").as_bytes());
    card["signatures"] = json!([{"protected": protected, "signature": B64.encode(sig)}]);
    card
}

#[test]
fn verify_tampered_pinned_and_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let good = sign(card());
    let good_path = write("good.json", &good);
    let out = custody(&["card", "verify", &good_path]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("verified") && text.contains("provider domain: a.example"),
        "{text}"
    );

    let out = custody(&["card", "verify", "--json", &good_path]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["signatures"][0]["verified"], true);

    let mut tampered = good.clone();
    tampered["url"] = json!("https://evil.example/a2a");
    let out = custody(&["card", "verify", &write("tampered.json", &tampered)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT verified"));

    let mut moved = card();
    moved["url"] = json!("https://travel2.a.example/a2a");
    let moved_path = write("moved.json", &sign(moved));
    let out = custody(&["card", "verify", &moved_path, "--pin", &good_path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("changed since pinned: url"));

    std::fs::write(dir.path().join("bad.json"), b"{\"name\":").unwrap();
    let out = custody(&[
        "card",
        "verify",
        dir.path().join("bad.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not strict JSON"));
}
