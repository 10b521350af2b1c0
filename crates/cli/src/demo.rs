//! `custody demo`: a narrated walkthrough of the demo pack. Every step is a chain description
//! (the format of `custody test`), minted live with the pack's demo-only keys at a fixed time so
//! the demo never goes stale, decided by the verifier, and printed as a path with the decision.
//! Each step is also a pack test: `policies/demo/tests/demo-<n>-<slug>.json` holds exactly the
//! step's description (a unit test below keeps them equal; `CUSTODY_BLESS=1` rewrites them).

use std::path::PathBuf;

use clap::Args;
use custody_verifier::{Request, Verifier};
use serde_json::{json, Map, Value};

use crate::chainspec::{mint_request, Keyring};
use crate::explain::View;
use crate::render::{utc, Style};

/// The demo's clock: 2026-01-01T00:00:00Z, the time the demo requests were minted at.
pub(crate) const DEMO_NOW: i64 = 1_767_225_600;

const BOB: &str = "spiffe://a.example/agent/bob";
const ALICE: &str = "spiffe://b.example/agent/alice";
const HELPER: &str = "spiffe://b.example/agent/helper";
const WORKER: &str = "spiffe://b.example/agent/worker";
const MALLORY: &str = "spiffe://d.example/agent/mallory";
const CAROL: &str = "spiffe://e.example/agent/carol";
const ORDERS: &str = "spiffe://c.example/orders";
const BILLING: &str = "spiffe://c.example/billing";

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// The policy pack directory (the demo's story is written for `policies/demo`).
    #[arg(long, default_value = "policies/demo")]
    policies: PathBuf,
}

/// One step of the walkthrough.
pub(crate) struct Step {
    pub(crate) slug: &'static str,
    pub(crate) title: &'static str,
    pub(crate) story: &'static str,
    /// The chain description and `expect`, as in a pack test.
    pub(crate) case: Value,
}

impl Step {
    /// The pack test file's content.
    #[cfg(test)]
    pub(crate) fn test_case(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "description".into(),
            format!("demo step: {}", self.title).into(),
        );
        if let Value::Object(case) = &self.case {
            m.extend(case.clone());
        }
        Value::Object(m)
    }
}

fn tok(domain: &str, aud: &str, scope: &str, actors: &[&str]) -> Value {
    json!({"domain": domain, "claims": {"aud": aud, "scope": scope}, "actors": actors})
}

fn case(chain: Vec<Value>, action: &str, peer: &str, expect: Value) -> Value {
    json!({
        "claims": {"sub": "user:alice", "txn": "txn-demo-1"},
        "chain": chain,
        "audience": ORDERS,
        "action": action,
        "peer": peer,
        "now": DEMO_NOW,
        "expect": expect,
    })
}

/// The walkthrough, in order.
pub(crate) fn steps() -> Vec<Step> {
    const RW: &str = "orders:read orders:write";
    const R: &str = "orders:read";
    let t0 = tok("a.example", ALICE, RW, &[BOB]);
    let deep = |aud: &str, scope: &str, more: &[&str]| {
        let mut actors = vec![BOB, ALICE];
        actors.extend_from_slice(more);
        tok("b.example", aud, scope, &actors)
    };
    vec![
        Step {
            slug: "two-domain-delegation",
            title: "a user's agent delegates to a partner's agent across two domains",
            story: "Bob, Alice's agent at a.example, asks Alice-agent at the partner b.example to read her orders.\n\
                    a.example issues Bob a token for Alice-agent; b.example exchanges it for the token she presents.",
            case: case(
                vec![t0.clone(), tok("b.example", ORDERS, R, &[BOB, ALICE])],
                R,
                ALICE,
                json!({"decision": "allow", "policies": ["orders-read"]}),
            ),
        },
        Step {
            slug: "scope-widening",
            title: "the same chain widens its scope on the way",
            story: "Bob was only given orders:read; b.example's exchange hands out orders:write as well.\n\
                    A token exchange may narrow rights, never add to them.",
            case: case(
                vec![tok("a.example", ALICE, R, &[BOB]), tok("b.example", ORDERS, RW, &[BOB, ALICE])],
                "orders:write",
                ALICE,
                json!({"decision": "deny", "codes": ["scope_escalation"], "hop": 1}),
            ),
        },
        Step {
            slug: "compromised-pivot",
            title: "a compromised agent pivots through a third domain",
            story: "Mallory, an agent of d.example, holds a valid identity and a token d.example really signed.\n\
                    But nobody federated d.example: a domain the pack trusts with nothing cannot reach the orders service.",
            case: case(
                vec![
                    tok("a.example", MALLORY, RW, &[BOB]),
                    tok("d.example", ORDERS, R, &[BOB, MALLORY]),
                ],
                R,
                MALLORY,
                json!({"decision": "deny", "codes": ["domain_not_federated"]}),
            ),
        },
        Step {
            slug: "too-deep",
            title: "a chain too deep",
            story: "Alice-agent delegates to a helper, who delegates to a worker: four agents between Alice and her orders.\n\
                    The pack allows at most three (max_depth 3): the further a call travels, the less anyone can vouch for it.",
            case: case(
                vec![
                    t0.clone(),
                    deep(HELPER, RW, &[]),
                    deep(WORKER, RW, &[HELPER]),
                    deep(ORDERS, R, &[HELPER, WORKER]),
                ],
                R,
                WORKER,
                json!({"decision": "deny", "codes": ["depth_exceeded"]}),
            ),
        },
        Step {
            slug: "too-many-domains",
            title: "a chain across four companies",
            story: "Carol, an agent of e.example (a partner of a.example), asks Bob, who asks Alice-agent, who calls the orders service.\n\
                    Every hop is federated, but the chain crosses four trust domains and the pack allows three (max_domains 3).",
            case: case(
                vec![
                    tok("e.example", BOB, R, &[CAROL]),
                    tok("a.example", ALICE, R, &[CAROL, BOB]),
                    tok("b.example", ORDERS, R, &[CAROL, BOB, ALICE]),
                ],
                R,
                ALICE,
                json!({"decision": "deny", "codes": ["too_many_domains"]}),
            ),
        },
        Step {
            slug: "wrong-audience",
            title: "a token minted for another service",
            story: "Alice-agent got a token for the billing service of c.example and replays it at the orders service.\n\
                    A token is good only for the audience it names.",
            case: case(
                vec![t0.clone(), tok("b.example", BILLING, R, &[BOB, ALICE])],
                R,
                ALICE,
                json!({"decision": "deny", "codes": ["audience_mismatch"], "hop": 1}),
            ),
        },
        Step {
            slug: "cedar-has-the-last-word",
            title: "a valid chain that Cedar still refuses",
            story: "Three agents deep (within max_depth), every check passes, and the helper asks to write.\n\
                    The pack's Cedar policy `deep-chains-read-only` lets deep chains read but never write.",
            case: case(
                vec![t0.clone(), deep(HELPER, RW, &[]), deep(ORDERS, RW, &[HELPER])],
                "orders:write",
                HELPER,
                json!({"decision": "deny", "codes": ["policy_denied"], "policies": ["deep-chains-read-only"]}),
            ),
        },
        Step {
            slug: "stolen-token-proven-caller",
            title: "a stolen token replayed by another workload that proves who it is",
            story: "The helper, another workload of b.example, copies Alice-agent's tokens and calls the orders service with them.
                    It proves its own identity properly (a WIT from b.example and a fresh WPT for this call), so custody knows the caller is the helper, not Alice-agent: sender binding refuses it.",
            case: {
                let mut c = case(
                    vec![t0, tok("b.example", ORDERS, R, &[BOB, ALICE])],
                    R,
                    ALICE,
                    json!({"decision": "deny", "codes": ["sender_mismatch"], "hop": 1}),
                );
                if let Value::Object(m) = &mut c {
                    m.remove("peer");
                    m.insert(
                        "prove".into(),
                        json!({"wit_domain": "b.example", "workload": HELPER,
                            "target": "https://orders.c.example/orders"}),
                    );
                }
                c
            },
        },
    ]
}

pub(crate) fn run(args: &DemoArgs) -> Result<u8, String> {
    let style = Style::detect();
    let mut pack = crate::command::load_pack(&args.policies, true)?;
    let ring = Keyring::for_pack(&mut pack)?;
    let verifier = Verifier::new(pack);
    intro(args, &ring, style);
    let steps = steps();
    let mut surprises = 0;
    for (i, step) in steps.iter().enumerate() {
        println!();
        println!(
            "{}",
            style.bold(&format!("{}/{}  {}", i + 1, steps.len(), step.title))
        );
        for line in step.story.lines() {
            println!("     {}", line.trim());
        }
        if !run_step(step, &verifier, &ring, style)? {
            surprises += 1;
        }
    }
    outro(args, surprises);
    Ok(if surprises == 0 {
        0
    } else {
        crate::command::EXIT_DENY
    })
}

fn intro(args: &DemoArgs, ring: &Keyring, style: Style) {
    println!(
        "{} on {}, at {} (a fixed time, so the demo never goes stale)",
        style.bold("custody demo"),
        args.policies.display(),
        utc(DEMO_NOW)
    );
    let keys = if ring.throwaway.is_empty() {
        format!(
            "tokens are signed with the pack's private keys ({}/keys/*.key.jwk): demo-only keys, never trust them anywhere else",
            args.policies.display()
        )
    } else {
        ring.describe()
    };
    println!("{}", style.dim(&keys));
    println!();
    println!("Alice, a user of a.example, has an agent: Bob (a.example/agent/bob). The orders service of");
    println!("c.example (this pack's local domain) trusts a.example -> b.example -> c.example for orders:read");
    println!("and orders:write. d.example is a domain custody knows the keys of, and trusts with nothing.");
    println!("Each step mints a chain of tokens now, with the demo keys, and asks the verifier.");
}

/// Mints, decides and prints one step; whether the decision was the expected one.
fn run_step(
    step: &Step,
    verifier: &Verifier,
    ring: &Keyring,
    style: Style,
) -> Result<bool, String> {
    let Value::Object(case) = &step.case else {
        return Err(format!("demo step `{}` is not an object", step.slug));
    };
    let doc = mint_request(case, verifier.pack(), ring, DEMO_NOW)
        .map_err(|e| format!("demo step `{}`: {e}", step.slug))?;
    let request =
        Request::from_value(doc).map_err(|e| format!("demo step `{}`: {e}", step.slug))?;
    let (decision, verified) = verifier.verify_traced(&request);
    let view = View::new(
        verifier.pack(),
        Some(&request),
        &decision,
        &verified,
        verifier.limits(),
    );
    println!();
    println!(
        "     {}  {}",
        style.accent(&view.path()),
        style.dim(&format!("[{}]", request.action))
    );
    if request.has_caller_proof() {
        for line in view.caller_lines() {
            println!("     {}", style.dim(&format!("caller {line}")));
        }
    }
    for line in view.verdict_lines(style) {
        println!("     {line}");
    }
    let expected = expected_code(case);
    let got = decision.code().map_or("allow", |c| c.as_str());
    if got != expected {
        println!(
            "     {}",
            style.bad(&format!("unexpected: the demo expected {expected}"))
        );
        return Ok(false);
    }
    Ok(true)
}

fn expected_code(case: &Map<String, Value>) -> &str {
    let expect = case.get("expect");
    expect
        .and_then(|e| e.get("codes"))
        .and_then(|c| c.get(0))
        .and_then(Value::as_str)
        .unwrap_or("allow")
}

fn outro(args: &DemoArgs, surprises: usize) {
    let dir = args.policies.display();
    println!();
    if surprises > 0 {
        println!("{surprises} step(s) did not decide as the demo expects: has the pack changed?");
    }
    println!("Next:");
    println!("  custody explain --policies {dir} {dir}/requests/deny-scope-escalation.json");
    println!(
        "  custody test --policies {dir}      # every demo step and every rule, as pack tests"
    );
    println!("  custody check --policies {dir}     # the trust graph: who reaches c.example, how");
    println!("  custody graph --policies {dir} --format mermaid");
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    /// Every demo step is a pack test, byte for byte what the step says.
    #[test]
    fn every_step_is_a_pack_test() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/demo/tests");
        for (i, step) in steps().iter().enumerate() {
            let path = dir.join(format!("demo-{}-{}.json", i + 1, step.slug));
            let want = step.test_case();
            if std::env::var_os("CUSTODY_BLESS").is_some() {
                let text = serde_json::to_string_pretty(&want).unwrap();
                std::fs::write(&path, format!("{text}\n")).unwrap();
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (run with CUSTODY_BLESS=1)", path.display()));
            let got: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(got, want, "{} differs from the demo step", path.display());
        }
    }
}
