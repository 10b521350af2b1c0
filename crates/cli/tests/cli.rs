//! The `custody` binary as an operator uses it: the demo requests, exit statuses, key and
//! token tooling, located pack errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

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

fn custody_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The documented decision of every demo request: (file stem, first reason code or `allow`,
/// the determining Cedar policy if any).
const DEMO: [(&str, &str, &str); 13] = [
    ("allow-two-domain-chain", "allow", "orders-read"),
    ("allow-write", "allow", "orders-write"),
    ("allow-deep-chain-read", "allow", "orders-read"),
    ("allow-txn-token", "allow", "orders-read"),
    (
        "deny-deep-chain-write",
        "policy_denied",
        "deep-chains-read-only",
    ),
    ("deny-expired", "expired", ""),
    ("deny-forged-signature", "bad_signature", ""),
    ("deny-scope-escalation", "scope_escalation", ""),
    ("deny-sender-mismatch", "sender_mismatch", ""),
    ("deny-too-deep", "depth_exceeded", ""),
    ("deny-unfederated-pivot", "domain_not_federated", ""),
    ("deny-vouching", "issuer_not_in_chain", ""),
    ("deny-wrong-audience", "audience_mismatch", ""),
];

#[test]
fn demo_requests_decide_as_documented() {
    let dir = root().join("policies/demo/requests");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    files.sort();
    let mut documented: Vec<String> = DEMO.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    documented.sort();
    assert_eq!(files, documented, "every demo request is documented here");
    for (name, code, policy) in DEMO {
        let path = format!("policies/demo/requests/{name}.json");
        let out = custody(&["verify", "--policies", "policies/demo", &path]);
        let d = json(&out);
        let got = d["reasons"][0]["code"].as_str().unwrap_or("allow");
        assert_eq!(got, code, "{name}: {d}");
        let status = if code == "allow" { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(status), "{name}");
        assert_eq!(name.starts_with("allow"), code == "allow");
        let policies: Vec<&str> = d["policies"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if policy.is_empty() {
            assert!(policies.is_empty(), "{name}: {policies:?}");
        } else {
            assert_eq!(policies, vec![policy], "{name}");
        }
    }
}

#[test]
fn verify_reads_stdin_and_reports_exit_statuses() {
    let req =
        std::fs::read(root().join("policies/demo/requests/allow-two-domain-chain.json")).unwrap();
    let out = custody_stdin(&["verify", "--policies", "policies/demo", "-"], &req);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["decision"], "allow");
    // Not JSON: exit 2 and a message, no decision.
    let out = custody_stdin(&["verify", "--policies", "policies/demo", "-"], b"{tokens");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreadable"));
    // JSON but not a request: a denial.
    let out = custody_stdin(
        &["verify", "--policies", "policies/demo", "-"],
        br#"{"tokens": ["x"], "peers": "y"}"#,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["reasons"][0]["code"], "invalid_request");
    // An unusable pack: exit 2.
    let out = custody(&[
        "verify",
        "--policies",
        "/nonexistent/pack",
        "policies/demo/requests/allow-write.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_lists_located_problems() {
    let out = custody(&["check", "--policies", "policies/demo"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("require_sender_binding is false"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.trust"),
        "local \"c.example\"\ndomain \"c.example\" {\n  isuer \"https://x\"\n}\nfederate \"c.example\" -> \"z.example\" { scopes [\"*\"] }\n",
    )
    .unwrap();
    let out = custody(&["check", "--policies", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.trust:3:3"), "{text}");
}

#[test]
fn keygen_and_mint_make_tokens_the_verifier_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let out = custody(&[
        "keygen",
        "--kid",
        "k1",
        "--private",
        &p("k.jwk"),
        "--public",
        &p("k.jwks"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(p("k.jwk")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let public = std::fs::read_to_string(p("k.jwks")).unwrap();
    assert!(!public.contains("\"d\""));
    // Never overwrites a private key.
    let again = custody(&[
        "keygen",
        "--kid",
        "k2",
        "--private",
        &p("k.jwk"),
        "--public",
        &p("k2.jwks"),
    ]);
    assert_eq!(again.status.code(), Some(2));

    std::fs::write(
        p("pack.trust"),
        "local \"c.example\"\ndomain \"c.example\" {\n issuer \"https://as.c\"\n keys \"k.jwks\"\n}\n",
    )
    .unwrap();
    let out = custody(&[
        "mint",
        "--key",
        &p("k.jwk"),
        "--iss",
        "https://as.c",
        "--sub",
        "user:u",
        "--aud",
        "svc",
        "--scope",
        "read",
        "--actor",
        "spiffe://c.example/a",
        "--actor",
        "spiffe://c.example/b",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let req = serde_json::json!({"tokens": [token], "audience": "svc", "action": "read", "peer": "spiffe://c.example/b"});
    let out = custody_stdin(
        &["verify", "--policies", dir.path().to_str().unwrap()],
        req.to_string().as_bytes(),
    );
    let d = json(&out);
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(
        d["chain"]["actors"],
        serde_json::json!(["spiffe://c.example/a", "spiffe://c.example/b"])
    );
}
