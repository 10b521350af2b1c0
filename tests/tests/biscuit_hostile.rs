//! Hostile Biscuits: truncated or corrupted protobuf, unknown versions, huge fact sets, costly
//! checks, too many blocks. Each is a denial with a reason code, never a panic or a long run;
//! and a property test that appended blocks never widen a token's rights.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::time::Instant;

use base64::Engine as _;
use biscuit_auth::format::schema;
use custody_tests::*;
use custody_verifier::biscuit::{self, Authority, Hop};
use custody_verifier::Decision;
use proptest::prelude::*;
use prost_biscuit::Message as _;

const READ: &str = "orders:read";
const WRITE: &str = "orders:write";
const DELETE: &str = "orders:delete";
const CAROL: &str = "spiffe://b.example/agent/carol";
const GATEWAY: &str = "spiffe://c.example/gateway";

fn fixture() -> Fixture {
    PackBuilder::default()
        .federate(
            "a.example",
            "c.example",
            r#"["orders:read", "orders:write", "orders:delete"]"#,
        )
        .federate(
            "b.example",
            "a.example",
            r#"["orders:read", "orders:write", "orders:delete"]"#,
        )
        .federate("c.example", "b.example", r#"["orders:read"]"#)
        .biscuit_keys()
        .build()
}

fn authority(scopes: &[&str], aud: &[&str]) -> Authority {
    Authority {
        domain: "a.example".into(),
        sub: "user:alice".into(),
        txn: Some("txn-1".into()),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        audience: aud.iter().map(|s| (*s).to_owned()).collect(),
        actor: Some(BOB.into()),
        issued_at: NOW - 60,
        expires: NOW + 600,
        checks: Vec::new(),
    }
}

fn good(f: &Fixture) -> String {
    let t = biscuit::mint(f.key("a.example"), &authority(&[READ], &[ALICE])).unwrap();
    let h = Hop {
        actor: ALICE.into(),
        audience: vec![AUD.into()],
        ..Hop::default()
    };
    biscuit::attest(&t, f.key("b.example"), &h).unwrap()
}

fn decide(f: &Fixture, token: &str) -> Decision {
    f.verify(&request(vec![token.to_owned()]))
}

fn bytes(token: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn the_baseline_allows() {
    let f = fixture();
    let d = decide(&f, &good(&f));
    assert!(d.is_allowed(), "{:?}", d.reasons);
}

#[test]
fn truncated_and_corrupted_protobuf() {
    let f = fixture();
    let raw = bytes(&good(&f));
    for cut in (0..raw.len()).step_by(7) {
        let d = decide(&f, &text(&raw[..cut]));
        assert!(!d.is_allowed(), "cut at {cut}");
    }
    for i in (0..raw.len()).step_by(3) {
        for bit in [0x01u8, 0x80] {
            let mut b = raw.clone();
            b[i] ^= bit;
            let d = decide(&f, &text(&b));
            assert!(!d.is_allowed(), "flip {bit:#x} at {i}");
            let code = outcome(&d);
            assert!(
                [
                    "malformed_token",
                    "bad_signature",
                    "unknown_key",
                    "unknown_issuer",
                    "token_too_large",
                    "missing_claim",
                    "chain_broken",
                    "alg_not_allowed",
                ]
                .contains(&code.as_str()),
                "flip at {i}: {code} {:?}",
                d.reasons
            );
        }
    }
    for junk in ["A", "AAAA", "____", "=", "AA===", "not-a-token", "é"] {
        assert!(!decide(&f, junk).is_allowed(), "{junk}");
    }
}

/// Re-encodes the token with block `index` changed by `edit` (the signatures no longer match,
/// but version and size checks come first).
fn rebuild(token: &str, index: usize, edit: impl Fn(&mut schema::Block)) -> String {
    let mut t = schema::Biscuit::decode(bytes(token).as_slice()).unwrap();
    let signed = if index == 0 {
        &mut t.authority
    } else {
        &mut t.blocks[index - 1]
    };
    let mut block = schema::Block::decode(signed.block.as_slice()).unwrap();
    edit(&mut block);
    signed.block = block.encode_to_vec();
    text(&t.encode_to_vec())
}

#[test]
fn unknown_block_versions() {
    let f = fixture();
    let t = good(&f);
    for index in [0, 1] {
        for v in [0u32, 2, 7, 99, u32::MAX] {
            let hostile = rebuild(&t, index, |b| b.version = Some(v));
            let d = decide(&f, &hostile);
            assert_eq!(
                outcome(&d),
                "malformed_token",
                "block {index} v{v}: {:?}",
                d.reasons
            );
        }
    }
}

#[test]
fn huge_fact_sets_are_refused_before_evaluation() {
    let f = fixture();
    let t = good(&f);
    // 65 facts in one block: over the per-block limit, before any signature work
    let hostile = rebuild(&t, 0, |b| {
        let one = b.facts[0].clone();
        b.facts = vec![one; 65];
    });
    assert_eq!(outcome(&decide(&f, &hostile)), "token_too_large");
    // signed tokens with many facts: 57 (64 in all) are read, 60 are refused
    let mut a = authority(&[READ], &[ALICE]);
    a.scopes = (0..57).map(|i| format!("orders:s{i}")).collect();
    let t = biscuit::mint(f.key("a.example"), &a).unwrap();
    let d = decide(&f, &t);
    assert_eq!(outcome(&d), "audience_mismatch", "{:?}", d.reasons);
    a.scopes = (0..60).map(|i| format!("orders:s{i}")).collect();
    let t = biscuit::mint(f.key("a.example"), &a).unwrap();
    assert_eq!(outcome(&decide(&f, &t)), "token_too_large");
    // text over 8 KiB
    assert_eq!(
        outcome(&decide(&f, &"A".repeat(8 * 1024 + 4))),
        "token_too_large"
    );
}

#[test]
fn too_many_blocks() {
    let f = fixture();
    let mut t = good(&f);
    for _ in 0..15 {
        t = biscuit::attenuate(&t, r#"check if operation("orders:read");"#).unwrap();
    }
    assert_eq!(outcome(&decide(&f, &t)), "token_too_large");
}

#[test]
fn costly_checks_are_refused_before_evaluation() {
    let f = fixture();
    let t = good(&f);
    // a join of eight predicates over ten scopes (10^8 combinations): refused by the budget,
    // at once
    let join = "check if scope($a), scope($b), scope($c), scope($d), scope($e), scope($f), scope($g), scope($h);";
    let hostile = biscuit::attenuate(&chain_with_scopes(&f, &scopes(10)), join).unwrap();
    let start = Instant::now();
    let d = decide(&f, &hostile);
    assert_eq!(outcome(&d), "token_too_large", "{:?}", d.reasons);
    assert!(start.elapsed().as_secs() < 2);
    // regular expressions and closures are outside the profile
    for check in [
        r#"check if operation($o), $o.matches("^(a+)+$");"#,
        r#"check if operation($o), ["orders:read"].any($x -> $x == $o);"#,
    ] {
        let d = decide(&f, &biscuit::attenuate(&t, check).unwrap());
        assert_eq!(outcome(&d), "malformed_token", "{check}: {:?}", d.reasons);
    }
    // an ordinary two-predicate check is fine
    let ok = biscuit::attenuate(
        &t,
        r#"check if operation($o), service($s), $o == "orders:read";"#,
    )
    .unwrap();
    assert!(decide(&f, &ok).is_allowed());
}

#[test]
fn valid_tokens_decide_well_within_the_time_limit() {
    // the evaluation time limit (5 ms; 250 ms in debug builds) is a backstop far above what a
    // valid token takes: the same token decided many times on every thread is always allowed
    let f = fixture();
    let t = good(&f);
    let reqs: Vec<_> = (0..256).map(|_| request(vec![t.clone()])).collect();
    for d in f.verifier.verify_batch(&reqs) {
        assert!(d.is_allowed(), "{:?}", d.reasons);
    }
}

/// One appended block.
#[derive(Clone, Debug)]
enum Step {
    /// A third-party block signed by `signer`'s key stating `actor`, `scopes`, `aud`, `exp`.
    Attest {
        signer: usize,
        actor: usize,
        scopes: Vec<usize>,
        aud: Vec<usize>,
        exp: Option<i64>,
    },
    /// A first-party block: a check on the operation, or a self-asserted fact.
    Check(usize),
    Assert(usize),
}

const SIGNERS: [&str; 4] = ["a.example", "b.example", "c.example", "d.example"];
const ACTORS: [&str; 5] = [BOB, ALICE, CAROL, GATEWAY, MALLORY];
const SCOPES: [&str; 3] = [READ, WRITE, DELETE];
const AUDS: [&str; 6] = [BOB, ALICE, CAROL, GATEWAY, MALLORY, AUD];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (
            0..SIGNERS.len(),
            0..ACTORS.len(),
            prop::collection::vec(0..SCOPES.len(), 0..3),
            prop::collection::vec(0..AUDS.len(), 1..3),
            prop::option::of(-100i64..1200),
        )
            .prop_map(|(signer, actor, scopes, aud, exp)| Step::Attest {
                signer,
                actor,
                scopes,
                aud,
                exp: exp.map(|e| NOW + e),
            }),
        1 => (0..SCOPES.len()).prop_map(Step::Check),
        1 => (0..SCOPES.len()).prop_map(Step::Assert),
    ]
}

fn apply(f: &Fixture, token: &str, s: &Step) -> String {
    match s {
        Step::Attest {
            signer,
            actor,
            scopes,
            aud,
            exp,
        } => {
            let h = Hop {
                actor: ACTORS[*actor].into(),
                scopes: scopes.iter().map(|i| SCOPES[*i].to_owned()).collect(),
                audience: aud.iter().map(|i| AUDS[*i].to_owned()).collect(),
                expires: *exp,
                checks: Vec::new(),
            };
            biscuit::attest(token, f.key(SIGNERS[*signer]), &h).unwrap()
        }
        Step::Check(i) => {
            biscuit::attenuate(token, &format!("check if operation(\"{}\");", SCOPES[*i])).unwrap()
        }
        Step::Assert(i) => {
            biscuit::attenuate(token, &format!("scope(\"{}\");", SCOPES[*i])).unwrap()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever blocks are appended, an allowed call is within the authority block's rights:
    /// an action among its scopes, before its expiry, for its origin, and the presented scopes
    /// a subset of its scopes.
    #[test]
    fn appended_blocks_never_widen_rights(
        base in prop::collection::vec(0..SCOPES.len(), 1..3),
        aud in prop::collection::vec(0..AUDS.len(), 1..3),
        steps in prop::collection::vec(step(), 0..4),
    ) {
        let f = fixture();
        let base: Vec<&str> = base.iter().map(|i| SCOPES[*i]).collect();
        let aud: Vec<&str> = aud.iter().map(|i| AUDS[*i]).collect();
        let mut token = biscuit::mint(f.key("a.example"), &authority(&base, &aud)).unwrap();
        for s in &steps {
            token = apply(&f, &token, s);
        }
        for action in SCOPES {
            for (now, peer) in [(NOW, None), (NOW + 700, None), (NOW, Some(ALICE)), (NOW, Some(GATEWAY))] {
                let mut req = request(vec![token.clone()]);
                req.action = action.into();
                req.now = Some(now);
                req.peer = peer.map(Into::into);
                let d = f.verify(&req);
                if d.is_allowed() {
                    prop_assert!(base.contains(&action), "{action} allowed beyond {base:?}: {steps:?}");
                    prop_assert!(now < NOW + 600 + 30);
                    let c = d.chain.unwrap();
                    prop_assert_eq!(c.origin.as_str(), "a.example|user:alice");
                    prop_assert!(c.scopes.iter().all(|s| base.contains(&s.as_str())), "{:?}", c.scopes);
                    prop_assert!(!steps.iter().any(|s| matches!(s, Step::Assert(_))));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks that cost CPU or memory: the cost model (README "Biscuit profile", Limits)

/// A string literal of `n` bytes, in Datalog.
fn literal(n: usize, c: char) -> String {
    format!("\"{}\"", c.to_string().repeat(n))
}

/// The standard two-hop chain whose authority block holds `scopes` (the action among them).
fn chain_with_scopes(f: &Fixture, scopes: &[String]) -> String {
    let mut a = authority(&[READ], &[ALICE]);
    a.scopes = scopes.to_vec();
    let t = biscuit::mint(f.key("a.example"), &a).unwrap();
    let h = Hop {
        actor: ALICE.into(),
        audience: vec![AUD.into()],
        ..Hop::default()
    };
    biscuit::attest(&t, f.key("b.example"), &h).unwrap()
}

/// `n` scopes, `orders:read` the first.
fn scopes(n: usize) -> Vec<String> {
    std::iter::once(READ.to_owned())
        .chain((1..n).map(|i| format!("orders:s{i}")))
        .collect()
}

/// `base` followed by `+ lit` `times` times, then `!= ""`.
fn concatenation(base: &str, lit: &str, times: usize) -> String {
    let mut e = base.to_owned();
    for _ in 0..times {
        e.push_str(" + ");
        e.push_str(lit);
    }
    e.push_str(" != \"\"");
    e
}

/// Finding 2, first token: 50 `scope` facts and an attenuation check concatenating a
/// 1,000-byte string 118 times (about 5 KB; 5–6 s per decision before the cost model).
fn concat_attack(f: &Fixture) -> String {
    let t = chain_with_scopes(f, &scopes(50));
    let check = format!(
        "check if scope($s), {};",
        concatenation("$s", &literal(1000, 'a'), 118)
    );
    biscuit::attenuate(&t, &check).unwrap()
}

/// Concatenations in each of the holder's two checks.
const HOLDER_CONCATENATIONS: usize = 60;

/// Finding 2, second token: a plain holder adds two attenuation checks to a 4-scope token
/// (tens of milliseconds per decision before the cost model).
fn holder_attack(f: &Fixture) -> String {
    let mut t = chain_with_scopes(f, &scopes(4));
    for c in ['a', 'b'] {
        let check = format!(
            "check if scope($a), scope($b), {};",
            concatenation("$a", &literal(1000, c), HOLDER_CONCATENATIONS)
        );
        t = biscuit::attenuate(&t, &check).unwrap();
    }
    t
}

/// Set growth: a hop's 300-element set united with itself 120 times, on each of 40 scopes (the
/// check trusts the previous blocks, so it sees the hop's fact).
fn union_attack(f: &Fixture) -> String {
    let mut a = authority(&[READ], &[ALICE]);
    a.scopes = scopes(40);
    let t = biscuit::mint(f.key("a.example"), &a).unwrap();
    let set = (0..300).map(|i| i.to_string()).collect::<Vec<_>>();
    let code = format!(
        r#"actor("{ALICE}"); audience("{AUD}"); big({{{}}});"#,
        set.join(", ")
    );
    let t = biscuit::attest_code(&t, f.key("b.example"), &code).unwrap();
    let mut e = "$x".to_owned();
    for _ in 0..120 {
        e.push_str(".union($x)");
    }
    biscuit::attenuate(
        &t,
        &format!("check if scope($s), big($x), {e}.contains(1) trusting previous;"),
    )
    .unwrap()
}

/// A long literal read again and again: 40 `contains` of a 2,500-byte string on each of the
/// 2,500 pairs of 50 scopes.
fn literal_attack(f: &Fixture) -> String {
    let t = chain_with_scopes(f, &scopes(50));
    let lit = literal(2500, 'o');
    let tests: Vec<String> = (0..40).map(|_| format!("!{lit}.contains($a)")).collect();
    let check = format!("check if scope($a), scope($b), {};", tests.join(", "));
    biscuit::attenuate(&t, &check).unwrap()
}

/// Checks the demo and the other tests use: they all fit easily.
fn ordinary_checks() -> Vec<&'static str> {
    vec![
        r#"check if operation("orders:read");"#,
        r#"check if operation($o), service($s), $o == "orders:read";"#,
        r#"check if time($t), $t < 2030-01-01T00:00:00Z;"#,
        r#"check if resource($r), $r.starts_with("spiffe://c.example/");"#,
        r#"check if scope($s), operation($o), $s == $o;"#,
        r#"check if operation($o), ["orders:read", "orders:write"].contains($o);"#,
        r#"check if service($s), $s.length() < 200, $s + "/x" != "";"#,
        r#"reject if operation("orders:delete");"#,
        r#"check all operation($o), $o.starts_with("orders:");"#,
    ]
}

fn refused_before_evaluation(f: &Fixture, token: &str, what: &str) {
    let start = Instant::now();
    let d = decide(f, token);
    assert_eq!(outcome(&d), "token_too_large", "{what}: {:?}", d.reasons);
    assert_eq!(hop(&d), None, "{what}");
    let message = &d.reasons[0].message;
    assert!(
        message.contains("budget") || message.contains("bytes"),
        "{what}: refused by the cost model, not by the clock: {message}"
    );
    // the refusal happens before any evaluation: no timing is asserted beyond "not seconds"
    assert!(start.elapsed().as_secs() < 2, "{what}");
}

#[test]
fn the_findings_attack_tokens_are_refused_before_evaluation() {
    let f = fixture();
    let t = concat_attack(&f);
    assert!(t.len() < 8 * 1024, "{}", t.len());
    refused_before_evaluation(&f, &t, "concatenation of a 1,000-byte string 118 times");
    refused_before_evaluation(&f, &holder_attack(&f), "two attenuation checks on 4 scopes");
}

#[test]
fn set_growth_and_long_literals_are_refused_before_evaluation() {
    let f = fixture();
    refused_before_evaluation(&f, &union_attack(&f), "set union in a loop");
    refused_before_evaluation(&f, &literal_attack(&f), "a long literal read on every pair");
}

#[test]
fn the_value_and_memory_caps() {
    let f = fixture();
    let t = chain_with_scopes(&f, &scopes(2));
    // 30 × 2,000 bytes: 60,000 bytes, under 64 KiB, and the values made add up to 930 KB: over
    // the 256 KiB a query may make
    let check = format!(
        "check if {};",
        concatenation("\"\"", &literal(2000, 'x'), 30)
    );
    let d = decide(&f, &biscuit::attenuate(&t, &check).unwrap());
    assert_eq!(outcome(&d), "token_too_large", "{:?}", d.reasons);
    assert!(d.reasons[0].message.contains("together"), "{:?}", d.reasons);
    // one value over 64 KiB: a hop's 1,000-element set (24 KB in the model's bytes: 24 per
    // element) united with itself twice (48 KB, then 72 KB)
    let a = authority(&[READ], &[ALICE]);
    let big = biscuit::mint(f.key("a.example"), &a).unwrap();
    let set = (0..1000).map(|i| i.to_string()).collect::<Vec<_>>();
    let code = format!(
        r#"actor("{ALICE}"); audience("{AUD}"); big({{{}}});"#,
        set.join(", ")
    );
    let big = biscuit::attest_code(&big, f.key("b.example"), &code).unwrap();
    let d = decide(
        &f,
        &biscuit::attenuate(
            &big,
            "check if big($x), $x.union($x).union($x).contains(1);",
        )
        .unwrap(),
    );
    assert_eq!(outcome(&d), "token_too_large", "{:?}", d.reasons);
    assert!(d.reasons[0].message.contains("a value"), "{:?}", d.reasons);
    // a few concatenations of a short string are fine
    let check = format!(
        "check if service($s), {};",
        concatenation("$s", "\"/x\"", 8)
    );
    let d = decide(&f, &biscuit::attenuate(&t, &check).unwrap());
    assert!(d.is_allowed(), "{:?}", d.reasons);
}

#[test]
fn ordinary_tokens_still_allow() {
    let f = fixture();
    let mut t = good(&f);
    for c in ordinary_checks() {
        t = biscuit::attenuate(&t, c).unwrap();
        let d = decide(&f, &t);
        assert!(d.is_allowed(), "{c}: {:?}", d.reasons);
    }
    // the demo's chain: two hops, each with a check, then an attenuation
    let mut a = authority(&[READ, WRITE], &[ALICE]);
    a.checks = vec![r#"check if time($t), $t < 2030-01-01T00:00:00Z"#.into()];
    let t = biscuit::mint(f.key("a.example"), &a).unwrap();
    let h = Hop {
        actor: ALICE.into(),
        scopes: vec![READ.into()],
        audience: vec![AUD.into()],
        checks: vec![r#"check if service("spiffe://c.example/orders")"#.into()],
        ..Hop::default()
    };
    let t = biscuit::attest(&t, f.key("b.example"), &h).unwrap();
    let t = biscuit::attenuate(&t, r#"check if operation("orders:read")"#).unwrap();
    let d = decide(&f, &t);
    assert!(d.is_allowed(), "{:?}", d.reasons);
    // many scopes, every pair of them compared: 20 × 20 combinations fit
    let t = chain_with_scopes(&f, &scopes(20));
    let t = biscuit::attenuate(&t, "check if scope($a), scope($b), $a != $b || true;");
    // (`||` is a closure: outside the profile)
    assert!(t.is_err() || outcome(&decide(&f, &t.unwrap())) == "malformed_token");
    let t = chain_with_scopes(&f, &scopes(20));
    let t = biscuit::attenuate(&t, "check if scope($a), scope($b), $a.length() > 0;").unwrap();
    let d = decide(&f, &t);
    assert!(d.is_allowed(), "{:?}", d.reasons);
}

/// Release-mode timings for the README and the constants in `biscuit/budget.rs`; prints, asserts
/// nothing about time. `cargo test --release -p custody-tests --test integration --
/// --ignored --nocapture biscuit_hostile::measure`
#[test]
#[ignore = "a measurement, run by hand in release mode"]
fn measure_decision_times() {
    let f = fixture();
    let mut cases: Vec<(String, String)> = vec![
        ("baseline two-hop chain".into(), good(&f)),
        ("finding: concatenation x118".into(), concat_attack(&f)),
        ("finding: holder's two checks".into(), holder_attack(&f)),
        ("set union in a loop".into(), union_attack(&f)),
        ("long literal on every pair".into(), literal_attack(&f)),
    ];
    cases.extend(worst_accepted(&f));
    for (name, token) in cases {
        let req = request(vec![token.clone()]);
        let estimate = biscuit::work_estimate(&token, &req, &custody_jose::Limits::default());
        let mut times = Vec::new();
        let mut d = decide(&f, &token);
        for _ in 0..15 {
            let start = Instant::now();
            d = decide(&f, &token);
            times.push(start.elapsed());
            if start.elapsed().as_secs() > 2 {
                break;
            }
        }
        times.sort();
        println!(
            "{name:40} {:>6} B  estimate {estimate:?}  min {:?}  median {:?}  {} {}",
            token.len(),
            times[0],
            times[times.len() / 2],
            outcome(&d),
            d.reasons.first().map(|r| r.message.as_str()).unwrap_or("")
        );
    }
}

/// Tokens built to cost as much as the budget lets them, each a different way.
fn worst_accepted(f: &Fixture) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let limits = custody_jose::Limits::default();
    let fits = |t: &str| {
        let req = request(vec![t.to_owned()]);
        t.len() <= limits.token_bytes && biscuit::work_estimate(t, &req, &limits).is_ok()
    };
    // the largest `n` for which `make(n)` fits the budget
    let largest = |make: &dyn Fn(usize) -> Option<String>| {
        let mut best = None;
        for n in 1..400 {
            match make(n) {
                Some(t) if fits(&t) => best = Some((n, t)),
                _ => break,
            }
        }
        best
    };
    // combinations: a three-way join over scopes
    if let Some((n, t)) = largest(&|n| {
        let t = chain_with_scopes(f, &scopes(n));
        biscuit::attenuate(&t, "check if scope($a), scope($b), scope($c), $a != \"x\";").ok()
    }) {
        out.push((format!("worst: 3-way join over {n} scopes"), t));
    }
    // bytes: one combination, a concatenation chain of 1,000-byte strings
    if let Some((n, t)) = largest(&|n| {
        let t = good(f);
        let check = format!(
            "check if {};",
            concatenation("\"\"", &literal(1000, 'c'), n)
        );
        biscuit::attenuate(&t, &check).ok()
    }) {
        out.push((format!("worst: {n} concatenations, 1 combination"), t));
    }
    // bytes on many combinations: 50 scopes, a concatenation per scope
    if let Some((n, t)) = largest(&|n| {
        let t = chain_with_scopes(f, &scopes(50));
        let check = format!(
            "check if scope($s), {};",
            concatenation("$s", &literal(100, 'd'), n)
        );
        biscuit::attenuate(&t, &check).ok()
    }) {
        out.push((format!("worst: 50 scopes x {n} concatenations"), t));
    }
    // interning: many symbols of one length, strings of that length built again and again
    if let Some((n, t)) = largest(&|n| {
        let mut a = authority(&[READ], &[ALICE]);
        a.scopes = std::iter::once(READ.to_owned())
            .chain((0..30).map(|i| format!("{}{i:03}", "p".repeat(96))))
            .collect();
        let t = biscuit::mint(f.key("a.example"), &a).unwrap();
        let h = Hop {
            actor: ALICE.into(),
            audience: vec![AUD.into()],
            ..Hop::default()
        };
        let t = biscuit::attest(&t, f.key("b.example"), &h).unwrap();
        let tests: Vec<String> = (0..n)
            .map(|i| format!("{} + \"{i:03}\" != $s", literal(96, 'p')))
            .collect();
        biscuit::attenuate(&t, &format!("check if scope($s), {};", tests.join(", "))).ok()
    }) {
        out.push((format!("worst: {n} same-length interned strings"), t));
    }
    // scanning: 15 blocks of checks on a predicate no fact has, over 60 facts
    if let Some((n, t)) = largest(&|n| {
        let mut t = chain_with_scopes(f, &scopes(50));
        let per = n.min(64);
        let mut left = n;
        while left > 0 {
            let k = left.min(per);
            let checks: Vec<String> = (0..k)
                .map(|i| format!("check if scope($s), nothing{i}($s, $t);"))
                .collect();
            t = biscuit::attenuate(&t, &checks.join("\n")).ok()?;
            left -= k;
        }
        Some(t)
    }) {
        out.push((format!("worst: {n} scans of a predicate no fact has"), t));
    }
    out
}
