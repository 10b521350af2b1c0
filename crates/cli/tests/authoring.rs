//! The policy-authoring commands as an operator uses them: `demo`, `explain`, `test`, `graph`
//! and the trust-graph analysis of `check`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn custody(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn demo_requests() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("policies/demo/requests"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then(|| p.file_name().unwrap().to_string_lossy().into())
        })
        .collect();
    names.sort();
    names
}

/// A copy of the demo pack (trust file, Cedar files, keys) in a temporary directory.
fn demo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let demo = root().join("policies/demo");
    for f in ["demo.trust", "orders.cedar", "demo.cedarschema"] {
        std::fs::copy(demo.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    for e in std::fs::read_dir(demo.join("keys")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join("keys").join(p.file_name().unwrap())).unwrap();
    }
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    dir
}

#[test]
fn demo_walks_through_every_step_plainly_when_piped() {
    let out = custody(&["demo"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains('\x1b'), "no colour when piped: {text:?}");
    for n in 1..=8 {
        assert!(text.contains(&format!("{n}/8  ")), "step {n}: {text}");
    }
    // the stolen token, presented by a workload that proved itself
    assert!(
        text.contains("caller proven by WIMSE WIT and WPT: `spiffe://b.example/agent/helper`"),
        "{text}"
    );
    assert!(text.contains(
        "user:alice → a.example/agent/bob → b.example/agent/alice → c.example orders  [orders:read]"
    ));
    assert!(
        text.contains("allow  permitted by Cedar policy orders-read"),
        "{text}"
    );
    for code in [
        "scope_escalation",
        "domain_not_federated",
        "depth_exceeded",
        "too_many_domains",
        "audience_mismatch",
        "policy_denied",
        "sender_mismatch",
    ] {
        assert!(text.contains(&format!("deny  {code}")), "{code}: {text}");
    }
    assert!(text.contains("d.example/agent/mallory"));
    assert!(text.contains("demo-only keys"));
    assert!(text.contains("2026-01-01T00:00:00Z"));
}

#[test]
fn explain_tells_the_verifiers_decision_for_every_demo_request() {
    for name in demo_requests() {
        let path = format!("policies/demo/requests/{name}");
        let verify = custody(&["verify", "--policies", "policies/demo", "--compact", &path]);
        let decision: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
        let out = custody(&["explain", "--policies", "policies/demo", &path]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), verify.status.code(), "{name}: {text}");
        assert!(text.contains("\ndecision\n"), "{name}: {text}");
        assert!(text.contains("  chain   user:"), "{name}: {text}");
        match decision["reasons"][0]["code"].as_str() {
            None => assert!(
                text.contains("allow  permitted by Cedar policy"),
                "{name}: {text}"
            ),
            Some(code) => {
                assert!(text.contains(&format!("deny  {code}")), "{name}: {text}");
                assert!(text.contains("to change: "), "{name}: {text}");
            }
        }
    }
}

#[test]
fn explain_shows_tokens_crossings_and_policies() {
    let out = custody(&[
        "explain",
        "policies/demo/requests/allow-two-domain-chain.json",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for want in [
        "t0  a.example: iss https://as.a.example, key a-demo-1, typ at+jwt",
        "issued 60s ago, expires in 14m, lifetime 15m",
        "t0 → t1: b.example/agent/alice becomes current; t0's aud names it",
        "scope narrowed (drops orders:write)",
        "a.example → b.example: `federate \"a.example\" -> \"b.example\"` [orders:read, orders:write] carries `orders:read`",
        "@id(\"orders-read\")",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let out = custody(&[
        "explain",
        "policies/demo/requests/deny-unfederated-pivot.json",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("a.example → d.example: no `federate \"a.example\" -> \"d.example\"` rule")
    );
    assert!(text.contains("cedar: did not run"), "{text}");
}

#[test]
fn explain_draws_a_chain_in_mermaid() {
    let out = custody(&[
        "explain",
        "--format",
        "mermaid",
        "policies/demo/requests/deny-scope-escalation.json",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.starts_with("flowchart LR\n"), "{text}");
    for want in [
        "origin([\"user:alice\"])",
        "subgraph g0[\"a.example\"]",
        "a1[\"b.example/agent/alice\"]",
        "a0 -->|\"delegates · federated\"| a1",
        "decision{{\"deny: scope_escalation\"}}",
        "class decision deny",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let out = custody(&[
        "explain",
        "--format",
        "mermaid",
        "policies/demo/requests/allow-write.json",
    ]);
    assert!(stdout(&out).contains("class decision allow"));
}

#[test]
fn explain_reports_unreadable_and_invalid_requests() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{tokens").unwrap();
    let out = custody(&["explain", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(
        &bad,
        r#"{"tokens": ["x"], "audience": "a", "action": "b", "peers": "c"}"#,
    )
    .unwrap();
    let out = custody(&["explain", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("deny  invalid_request"));
}

#[test]
fn the_demo_pack_tests_pass_and_cover_every_rule() {
    let out = custody(&["test", "--policies", "policies/demo"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let cases = std::fs::read_dir(root().join("policies/demo/tests"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert!(cases >= 36, "{cases}");
    assert_eq!(
        text.lines().last(),
        Some(format!("{cases} passed, 0 failed").as_str())
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("pass  ")).count(),
        cases
    );
    // The demo pack produces every reason code (too_many_domains through e -> a -> b -> c).
    assert!(text.contains("reason codes exercised: all 31"), "{text}");
    assert!(
        text.contains("pass  demo-5-too-many-domains: deny too_many_domains"),
        "{text}"
    );
    // Every demo step is a pack test.
    for n in 1..=7 {
        assert!(text.contains(&format!("pass  demo-{n}-")), "{text}");
    }
}

#[test]
fn a_failing_pack_test_fails_the_run() {
    let pack = demo_copy();
    let tests = pack.path().join("tests");
    // A literal request kept beside the case.
    std::fs::copy(
        root().join("policies/demo/requests/deny-scope-escalation.json"),
        tests.join("escalation.request"),
    )
    .unwrap();
    std::fs::write(
        tests.join("wrong.json"),
        r#"{"description": "expects the wrong thing", "request": "escalation.request",
            "expect": {"decision": "allow"}}"#,
    )
    .unwrap();
    std::fs::write(
        tests.join("typo.json"),
        r#"{"request": "escalation.request", "expect": {"decison": "deny"}}"#,
    )
    .unwrap();
    std::fs::write(
        tests.join("right.json"),
        r#"{"request": "escalation.request",
            "expect": {"decision": "deny", "codes": ["scope_escalation"], "hop": 1}}"#,
    )
    .unwrap();
    let out = custody(&["test", "--policies", pack.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.lines().last(), Some("1 passed, 2 failed"), "{text}");
    assert!(
        text.contains("FAIL  wrong: expected allow; got deny scope_escalation (hop 1)"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  typo: `expect`: unknown member `decison`"),
        "{text}"
    );
    assert!(
        text.contains("pass  right: deny scope_escalation"),
        "{text}"
    );
}

#[test]
fn chains_are_minted_with_throwaway_keys_when_the_pack_ships_none() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    for d in ["a", "c"] {
        let out = custody(&[
            "keygen",
            "--kid",
            &format!("{d}-k"),
            "--private",
            &p(&format!("{d}.private")),
            "--public",
            &p(&format!("{d}.jwks")),
        ]);
        assert_eq!(out.status.code(), Some(0));
        // The pack ships public keys only.
        std::fs::remove_file(p(&format!("{d}.private"))).unwrap();
    }
    std::fs::write(
        p("pack.trust"),
        r#"local "c.example"
domain "a.example" { issuer "https://as.a" keys "a.jwks" }
domain "c.example" { issuer "https://as.c" keys "c.jwks" }
federate "a.example" -> "c.example" { scopes ["read"] }
"#,
    )
    .unwrap();
    std::fs::create_dir(p("tests")).unwrap();
    let case = |scope: &str, expect: &str| {
        format!(
            r#"{{"claims": {{"sub": "user:u"}},
                "chain": [{{"domain": "a.example", "claims": {{"aud": "svc", "scope": "{scope}"}},
                           "actors": ["spiffe://a.example/agent/x"]}}],
                "audience": "svc", "action": "{scope}", "expect": {expect}}}"#
        )
    };
    std::fs::write(
        p("tests/read.json"),
        case("read", r#"{"decision": "allow"}"#),
    )
    .unwrap();
    std::fs::write(
        p("tests/write.json"),
        case(
            "write",
            r#"{"decision": "deny", "codes": ["federation_scope_denied"]}"#,
        ),
    )
    .unwrap();
    let out = custody(&["test", "--policies", dir.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("throw-away keys made for this run for a.example, c.example"),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("2 passed, 0 failed"));
    // Nothing was written into the pack.
    assert!(!dir.path().join("a.private").exists());
}

#[test]
fn graph_draws_domains_and_federation_rules() {
    let out = custody(&["graph", "--policies", "policies/demo"]);
    let dot = stdout(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(dot.starts_with("digraph trust {"), "{dot}");
    assert!(
        dot.contains("\"c.example\" [label=\"c.example\\n(local)\""),
        "{dot}"
    );
    assert!(dot.contains("\"a.example\" -> \"b.example\" [label=\"orders:read\\norders:write\"]"));
    assert!(dot.contains("\"d.example\" [label=\"d.example\\n(no path to local)\""));
    let out = custody(&[
        "graph",
        "--policies",
        "policies/demo",
        "--format",
        "mermaid",
    ]);
    let m = stdout(&out);
    assert!(m.starts_with("flowchart LR\n"), "{m}");
    assert!(m.contains("d2[\"c.example<br/>(local)\"]"), "{m}");
    assert!(
        m.contains("d0 -->|\"orders:read<br/>orders:write\"| d1"),
        "{m}"
    );
    assert!(m.contains("class d2 local"));
}

/// A pack with every kind of finding the analysis reports.
fn crafted_pack() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let keys = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
        "x": "iKAidOkiKWkypUz7zJJRbQ4AwHnEGj1LKwxXnRqld0k"}]});
    std::fs::write(dir.path().join("k.jwks"), keys.to_string()).unwrap();
    let mut trust = String::from("local \"c.example\"\n");
    for d in ["a", "b", "c", "d", "e"] {
        trust.push_str(&format!(
            "domain \"{d}.example\" {{ issuer \"https://as.{d}\" keys \"k.jwks\" }}\n"
        ));
    }
    trust.push_str(
        r#"federate "a.example" -> "b.example" { scopes ["orders:read", "orders:delete"] }
federate "b.example" -> "c.example" { scopes ["orders:read", "orders:refund"] }
federate "d.example" -> "c.example" { scopes ["*"] }
federate "c.example" -> "e.example" { scopes ["orders:read"] }
federate "e.example" -> "a.example" { scopes ["orders:read"] }
chain { max_domains 3 require_sender_binding true }
"#,
    );
    std::fs::write(dir.path().join("pack.trust"), trust).unwrap();
    std::fs::write(
        dir.path().join("p.cedar"),
        r#"@id("delete-from-a")
permit (principal, action == Action::"orders:delete", resource) when { context.origin_domain == "a.example" };
@id("refund-from-b")
permit (principal, action == Action::"orders:refund", resource) when { context.origin_domain == "b.example" };
@id("read-from-x")
permit (principal, action == Action::"orders:read", resource) when { context.origin_domain == "x.example" };
@id("read")
permit (principal, action == Action::"orders:read", resource) when { ["a.example", "b.example"].contains(context.origin_domain) };
@id("read-from-x-or-y")
permit (principal, action == Action::"orders:read", resource) when { context.origin_domain == "x.example" || (context.cross_domain && context.origin_domain == "y.example") };
@id("read-from-x-or-a")
permit (principal, action == Action::"orders:read", resource) when { context.origin_domain == "x.example" || context.origin_domain == "a.example" };
"#,
    )
    .unwrap();
    dir
}

#[test]
fn check_analyses_the_trust_graph() {
    let dir = crafted_pack();
    let out = custody(&["check", "--policies", dir.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text
        .lines()
        .last()
        .unwrap()
        .starts_with("ok: 5 domains, 5 federation rules"));
    for want in [
        "trust graph: local `c.example`, max_depth 5, max_domains 3",
        "  a.example → b.example → c.example: orders:read; 1 to 5 actors",
        "  d.example → c.example: any action (`*`); 0 to 5 actors",
        "  e.example → a.example → b.example → c.example: unusable, crosses 4 domains, over max_domains 3",
        // a wildcard nobody narrows
        "every action of `d.example`'s chains reaches `c.example`: every rule on d.example → c.example is `*`",
        // reach through another domain's grant
        "warning: `a.example` reaches `c.example` only through another domain's grant (a.example → b.example → c.example)",
        // a rule no usable path takes
        "`federate \"e.example\" -> \"a.example\"` can never be used on a path into `c.example`",
        // a scope that never gets through
        "`federate \"a.example\" -> \"b.example\"`: `orders:delete` never reaches `c.example`",
        // Cedar permits the trust file makes dead
        "warning: Cedar policy `delete-from-a` can never apply",
        "warning: Cedar policy `read-from-x` can never apply: it permits `orders:read` only for chains from `x.example` (`x.example` is no declared domain)",
        // through `||`: the union of both sides' origins
        "warning: Cedar policy `read-from-x-or-y` can never apply: it permits `orders:read` only for chains from `x.example`, `y.example` (`x.example`, `y.example` are no declared domains)",
    ] {
        assert!(text.contains(want), "{want}\n---\n{text}");
    }
    assert!(
        text.contains("pack.trust:11:1: `federate \"e.example\" -> \"a.example\"`"),
        "{text}"
    );
    // b.example's own chains may refund; a.example reads through b.example.
    assert!(!text.contains("refund-from-b"), "{text}");
    assert!(!text.contains("`read`"), "{text}");
    // One side of the `||` is reachable, so the permit can apply.
    assert!(!text.contains("read-from-x-or-a"), "{text}");
}

#[test]
fn check_warns_on_permits_only_local_chains_can_use() {
    let dir = crafted_pack();
    std::fs::write(
        dir.path().join("p.cedar"),
        "@id(\"archive\")\npermit (principal, action == Action::\"orders:archive\", resource);\n",
    )
    .unwrap();
    // Without the wildcard rule nothing carries `orders:archive` into c.example.
    let trust = std::fs::read_to_string(dir.path().join("pack.trust")).unwrap();
    let trust = trust.replace(
        "federate \"d.example\" -> \"c.example\" { scopes [\"*\"] }\n",
        "",
    );
    std::fs::write(dir.path().join("pack.trust"), trust).unwrap();
    let out = custody(&["check", "--policies", dir.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert!(
        text.contains("warning: Cedar policy `archive` permits `orders:archive`, which no federation path into `c.example` carries: it can apply only to chains that stay inside `c.example`"),
        "{text}"
    );
}

#[test]
fn check_on_the_demo_pack_keeps_its_lines() {
    let out = custody(&["check", "--policies", "policies/demo"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(text
        .contains("  a.example → b.example → c.example: orders:read, orders:write; 1 to 3 actors"));
    assert!(text.contains("  d.example: no federation path reaches c.example"));
    assert!(text.contains(
        "  e.example → a.example → b.example → c.example: unusable, crosses 4 domains, over max_domains 3"
    ));
    assert!(text
        .lines()
        .last()
        .unwrap()
        .starts_with("ok: 5 domains, 3 federation rules, 3 Cedar policies"));
    assert!(text.contains("keys: domain `a.example`: 1 token key(s): 1 from 1 key file(s)"));
    assert!(text.lines().all(|l| l.starts_with("warning: ")
        || l.starts_with("ok: ")
        || l.starts_with("trust graph: ")
        || l.starts_with("keys: ")
        || l.starts_with("  ")));
}

/// The lines of `custody check` that warn about policies that can fail to evaluate.
fn failure_warnings(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("warning: policy `") && l.contains("can fail to evaluate"))
        .collect()
}

#[test]
fn check_warns_on_every_policy_that_can_fail_to_evaluate() {
    let pack = demo_copy();
    std::fs::remove_file(pack.path().join("demo.cedarschema")).unwrap();
    std::fs::write(
        pack.path().join("orders.cedar"),
        r#"@id("block-flagged")
forbid (principal, action, resource) when { context.request.blocked };
@id("block-guarded")
forbid (principal, action, resource) when { context.request has blocked && context.request.blocked == true };
@id("level")
permit (principal, action, resource) when { principal.level > 3 };
@id("deep")
forbid (principal, action, resource) when { context.depth + 1 > 2 };
@id("overflow")
forbid (principal, action, resource) when { context.depth * 9223372036854775807 > 2 };
"#,
    )
    .unwrap();
    let out = custody(&["check", "--policies", pack.path().to_str().unwrap()]);
    let text = stdout(&out);
    // Warnings only: the pack is usable.
    assert_eq!(out.status.code(), Some(0), "{text}");
    let warned = failure_warnings(&text);
    assert_eq!(
        warned,
        [
            "warning: policy `block-flagged` can fail to evaluate (a failing policy now denies the call with `policy_error`): `context.request.blocked` may be missing or not a Bool (no schema declares it); guard it with `context.request has blocked` or declare it in a schema",
            "warning: policy `level` can fail to evaluate (a failing policy now denies the call with `policy_error`): `principal.level` may be missing or not a Long (no schema declares it); guard it with `principal has level` or declare it in a schema",
            "warning: policy `overflow` can fail to evaluate (a failing policy now denies the call with `policy_error`): `context.depth * 9223372036854775807` can overflow (its operands' ranges are not known to keep it within 64 bits)",
        ],
        "{text}"
    );
    // `has` guards the read and `==` never fails; `context.depth` is at most 16, so `+ 1` fits.
    assert!(!text.contains("`block-guarded`"), "{text}");
    assert!(!text.contains("`deep`"), "{text}");
}

#[test]
fn with_a_schema_check_warns_only_on_entity_reads_that_can_fail() {
    let pack = demo_copy();
    let schema = std::fs::read_to_string(pack.path().join("demo.cedarschema")).unwrap();
    let schema = schema
        .replace("  request: {},", "  request: { blocked: Bool },")
        .replace("entity Agent;", "entity Agent { level: Long };");
    std::fs::write(pack.path().join("demo.cedarschema"), schema).unwrap();
    std::fs::write(
        pack.path().join("orders.cedar"),
        r#"@id("block-flagged")
forbid (principal, action, resource) when { context.request.blocked };
@id("level")
forbid (principal is Agent, action, resource) when { principal.level > 3 };
@id("level-guarded")
forbid (principal is Agent, action, resource) when { principal has level && principal.level > 3 };
"#,
    )
    .unwrap();
    let out = custody(&["check", "--policies", pack.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // The schema types `context.request.blocked` and requests are validated against it; an
    // agent may still be missing from the pack's entities.
    assert_eq!(
        failure_warnings(&text),
        ["warning: policy `level` can fail to evaluate (a failing policy now denies the call with `policy_error`): `principal.level` may be missing (its entity may be absent from the pack's entities); guard it with `principal has level`"],
        "{text}"
    );
}

#[test]
fn check_finds_no_policy_of_the_demo_pack_that_can_fail() {
    let out = custody(&["check", "--policies", "policies/demo"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(failure_warnings(&text), Vec::<&str>::new(), "{text}");
    assert!(!text.contains("can fail to evaluate"), "{text}");
}

#[test]
fn check_reports_schema_validation_errors_with_the_policy_and_its_place() {
    let pack = demo_copy();
    // The demo schema declares `request: {}`: strict validation refuses the read.
    std::fs::write(
        pack.path().join("orders.cedar"),
        "// flagged calls\n@id(\"block-flagged\")\nforbid (principal, action, resource) when { context.request.blocked };\n",
    )
    .unwrap();
    let out = custody(&["check", "--policies", pack.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let at = format!("error: {}:3:45: for policy `block-flagged`, attribute `request.blocked` in context for Action::\"orders:read\" not found", pack.path().join("orders.cedar").display());
    assert!(text.contains(&at), "{at}\n---\n{text}");
    assert!(
        text.contains("problem(s): the pack cannot be used"),
        "{text}"
    );
}

#[test]
fn the_mcp_example_pack_loads_and_its_tests_pass() {
    let out = custody(&["check", "--policies", "policies/mcp"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = custody(&["test", "--policies", "policies/mcp"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().last(), Some("6 passed, 0 failed"), "{text}");
    // one tool allowed, another denied, per Cedar and per federation rule
    assert!(text.contains("pass  allow-partner-agent-search-docs"));
    assert!(text.contains("pass  deny-partner-agent-delete-repo"));
}
