//! Hostile Biscuits: truncated or corrupted protobuf, unknown versions, huge fact sets, costly
//! checks, too many blocks. Each is a denial with a reason code, never a panic or a long run;
//! and a property test that appended blocks never widen a token's rights.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
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
    // a join of eight predicates over every fact: refused by the budget, at once
    let join = "check if sub($a), scope($b), audience($c), actor($d), txn($e), issued_at($f), expires($g), issuer_domain($h);";
    let hostile = biscuit::attenuate(&t, join).unwrap();
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
fn evaluation_has_no_wall_clock_limit() {
    // the decision for a valid token does not depend on how busy the machine is: the same
    // token decided many times on every thread gives the same answer
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
