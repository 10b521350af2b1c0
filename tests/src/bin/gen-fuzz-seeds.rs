//! Writes the fuzz targets' committed seed corpora, `fuzz/seeds/<target>/seed-*`.
//!
//! ```sh
//! cargo run -p custody-tests --bin gen-fuzz-seeds
//! ```
//!
//! Seeds come from the conformance catalogue (its tokens, requests and packs), the test kit's
//! standard pack, the policy crate's fixture pack, the standards digest's SPIFFE ID vectors, and
//! the fuzzing modules' own structured inputs (Check requests encoded as protobuf, Biscuits
//! minted with the in-memory pack's keys; minting is deterministic).
//! Everything is deterministic; stale `seed-*` files are removed. Other files in `fuzz/seeds/`
//! (`grown-*`: a campaign's corpus, minimised with libFuzzer's `-merge=1`) are kept. Files
//! fuzzing adds to `fuzz/corpus/` are not touched (and not committed).
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

#[path = "gen-conformance/cases.rs"]
#[allow(
    dead_code,
    reason = "a module shared with another target, which uses the items this one does not"
)]
mod cases;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use custody_jose::B64;
use custody_oracles::check::{check_bytes, FuzzCheckRequest, HeaderName};
use custody_oracles::{
    biscuit_bytes, FuzzAttenuation, FuzzBiscuit, FuzzBlock, FuzzCheck, FuzzHop, FuzzRequest,
    FuzzToken, Ident,
};
use custody_tests::{Fixture, PackBuilder};
use serde_json::Value;

/// Seeds larger than this are left out (the oversized cases are in the conformance suite).
const MAX_SEED: usize = 16 * 1024;

type Seeds = BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>;

fn add(seeds: &mut Seeds, target: &'static str, name: &str, bytes: &[u8]) {
    if bytes.len() <= MAX_SEED {
        seeds
            .entry(target)
            .or_default()
            .insert(name.to_owned(), bytes.to_vec());
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seeds = Seeds::new();
    from_conformance(&mut seeds);
    let standard = Fixture::standard();
    from_pack(&mut seeds, "standard", standard.dir.path());
    let cedar = PackBuilder::default()
        .cedar("@id(\"read\")\npermit(principal, action == Action::\"orders:read\", resource)\nwhen { context.depth <= 2 };\n")
        .chain("max_depth 3\n  clock_skew 1m\n  require_sender_binding true")
        .build();
    from_pack(&mut seeds, "cedar", cedar.dir.path());
    for (name, dir) in [
        (
            "fixture-good",
            root.join("crates/policy/tests/fixtures/good"),
        ),
        ("demo", root.join("policies/demo")),
    ] {
        if dir.is_dir() {
            from_pack(&mut seeds, name, &dir);
        }
    }
    spiffe_ids(&mut seeds);
    structured(&mut seeds);
    check_requests(&mut seeds);
    biscuits(&mut seeds);
    algorithms(&mut seeds, &root);
    let out = root.join("fuzz/seeds");
    for (target, files) in &seeds {
        write_target(&out.join(target), files);
    }
    let total: usize = seeds.values().map(BTreeMap::len).sum();
    println!("{total} seeds written to {}", out.display());
}

fn write_target(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("seed-") && !files.contains_key(&name) {
            std::fs::remove_file(&path).unwrap();
        }
    }
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn from_conformance(seeds: &mut Seeds) {
    for case in cases::all() {
        let doc = &case.doc;
        let name = format!("seed-{}", case.name);
        let request = match (&doc["request"], &doc["request_text"]) {
            (Value::Object(_), _) => serde_json::to_vec(&doc["request"]).unwrap(),
            (_, Value::String(t)) => t.clone().into_bytes(),
            _ => Vec::new(),
        };
        add(seeds, "request_json", &name, &request);
        if case.name == "baseline-two-domain-chain" {
            for (i, ctx) in [
                serde_json::json!({"level": "gold"}),
                serde_json::json!({"level": "gold", "block": true, "n": [1, -2, {"k": "v"}]}),
            ]
            .into_iter()
            .enumerate()
            {
                let mut r = doc["request"].clone();
                r["context"] = ctx;
                r["peer"] = "spiffe://b.example/agent/alice".into();
                let bytes = serde_json::to_vec(&r).unwrap();
                add(
                    seeds,
                    "request_json",
                    &format!("{name}-context-{i}"),
                    &bytes,
                );
            }
        }
        add(seeds, "strict_json", &name, &request);
        for (i, token) in doc["request"]["tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let token = token.as_str().unwrap_or("");
            add(
                seeds,
                "jws_decode",
                &format!("{name}-{i}"),
                token.as_bytes(),
            );
            for (part, text) in token.split('.').take(2).enumerate() {
                if let Ok(json) = B64.decode(text) {
                    add(seeds, "strict_json", &format!("{name}-{i}-{part}"), &json);
                }
            }
        }
        if let Some(files) = doc["pack"]["files"].as_object() {
            let text: String = files
                .iter()
                .map(|(n, t)| format!("--- {n}\n{}\n", t.as_str().unwrap_or("")))
                .collect();
            add(seeds, "pack_load", &name, text.as_bytes());
            for (n, t) in files {
                let t = t.as_str().unwrap_or("").as_bytes();
                if n.ends_with(".jwks") {
                    add(
                        seeds,
                        "key_set",
                        &format!("{name}-{}", n.replace('/', "-")),
                        t,
                    );
                }
            }
        }
    }
}

/// Every file of a pack directory (top level and `keys/`), as one `pack_load` seed and as
/// seeds of the per-file targets.
fn from_pack(seeds: &mut Seeds, name: &str, dir: &Path) {
    let mut files = BTreeMap::new();
    for sub in ["", "keys"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_file() {
                let rel = Path::new(sub).join(path.file_name().unwrap());
                files.insert(
                    rel.to_string_lossy().into_owned(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut all = Vec::new();
    for (rel, bytes) in &files {
        all.extend_from_slice(format!("--- {rel}\n").as_bytes());
        all.extend_from_slice(bytes);
        if !bytes.ends_with(b"\n") {
            all.push(b'\n');
        }
        let seed = format!("seed-{name}-{}", rel.replace('/', "-"));
        if rel.ends_with(".trust") {
            add(seeds, "trust", &seed, bytes);
        } else if rel.ends_with(".jwks") || rel.ends_with(".json") {
            add(seeds, "key_set", &seed, bytes);
            add(seeds, "strict_json", &seed, bytes);
        }
    }
    add(seeds, "pack_load", &format!("seed-{name}"), &all);
}

/// The EC/RSA key-set target starts from every key set seed and the RFC example keys (public
/// parts); the signature target from each (key, `alg`) pair with a genuine and a raw
/// signature.
fn algorithms(seeds: &mut Seeds, root: &Path) {
    let sets: Vec<(String, Vec<u8>)> = seeds
        .get("key_set")
        .map(|m| m.iter().map(|(n, b)| (n.clone(), b.clone())).collect())
        .unwrap_or_default();
    for (name, bytes) in sets {
        add(seeds, "jwk_set_algorithms", &name, &bytes);
    }
    let mut public = Vec::new();
    for file in ["rfc7515-a2.key.jwk", "rfc7515-a3.key.jwk"] {
        let text = std::fs::read(root.join("crates/jose/testdata").join(file)).unwrap();
        let mut jwk: Value = serde_json::from_slice(&text).unwrap();
        for p in ["d", "p", "q", "dp", "dq", "qi"] {
            jwk.as_object_mut().unwrap().remove(p);
        }
        public.push(jwk);
    }
    let doc = serde_json::json!({ "keys": public }).to_string();
    add(
        seeds,
        "jwk_set_algorithms",
        "seed-rfc7515-a2-a3",
        doc.as_bytes(),
    );
    let bundle = serde_json::json!({"spiffe_sequence": 1, "keys": public.iter().map(|k| {
        let mut k = k.clone();
        k["use"] = "jwt-svid".into();
        k
    }).collect::<Vec<_>>()})
    .to_string();
    add(
        seeds,
        "jwk_set_algorithms",
        "seed-rfc7515-bundle",
        bundle.as_bytes(),
    );
    for pick in 0u8..4 {
        for alg in 0u8..12 {
            for shape in [0x40u8, 0x41] {
                let mut input = vec![pick, alg, shape];
                input.extend_from_slice(b"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UifQ and some more");
                add(
                    seeds,
                    "signature_algorithms",
                    &format!("seed-key{pick}-alg{alg}-shape{shape:02x}"),
                    &input,
                );
            }
        }
    }
}

fn spiffe_ids(seeds: &mut Seeds) {
    // standards digest §14, vectors 1-21, and a few more.
    let ids = [
        "spiffe://example.org/ns/prod/sa/agent-1",
        "spiffe://example.org",
        "spiffe://td_1.example-2/a.b_c-D",
        "spiffe://example.org/.path/..path/...",
        "",
        "Spiffe://example.org/x",
        "SPIFFE://example.org/x",
        "spiffe:/example.org/x",
        "spiffe:example.org/x",
        "http://example.org/x",
        "spiffe://",
        "spiffe:///x",
        "spiffe://Example.org/x",
        "spiffe://example.org:8443/x",
        "spiffe://user:pw@example.org/x",
        "spiffe://[::1]/x",
        "spiffe://ex\u{0430}mple.org/x",
        "spiffe://%65xample.org/x",
        "spiffe://example.org/%41",
        "spiffe://example.org/",
        "spiffe://example.org/a/",
        "spiffe://example.org//a",
        "spiffe://example.org/a//b",
        "spiffe://example.org/a/./b",
        "spiffe://example.org/..",
        "spiffe://example.org/a?b=1",
        "spiffe://example.org/a#f",
        "spiffe://example.org?x",
        "spiffe://example.org/\u{ff41}",
        "spiffe://192.168.1.1/x",
        "example.org",
        "a.example",
    ];
    for (i, id) in ids.iter().enumerate() {
        add(seeds, "spiffe_id", &format!("seed-{i:02}"), id.as_bytes());
    }
    let td = format!("spiffe://{}/x", "t".repeat(255));
    add(seeds, "spiffe_id", "seed-td-255", td.as_bytes());
    let long = format!("spiffe://a.example/{}", "x".repeat(2048 - 19));
    add(seeds, "spiffe_id", "seed-id-2048", long.as_bytes());
}

fn structured(seeds: &mut Seeds) {
    // Empty input is the standard allowed chain; the rest nudge single fields.
    add(seeds, "verify_structured", "seed-empty", b"");
    add(seeds, "verify_structured", "seed-zeros", &[0u8; 64]);
    add(seeds, "verify_structured", "seed-ones", &[1u8; 64]);
    let ramp: Vec<u8> = (0u8..=255).collect();
    add(seeds, "verify_structured", "seed-ramp", &ramp);
    let mut two_hops = vec![0u8; 96];
    two_hops[0] = 1;
    add(seeds, "verify_structured", "seed-two-hops", &two_hops);
}

/// Arbitrary-driven targets start from the defaults (an allowed request) and a few byte
/// patterns.
fn byte_patterns(seeds: &mut Seeds, target: &'static str) {
    add(seeds, target, "seed-empty", b"");
    add(seeds, target, "seed-zeros", &[0u8; 64]);
    add(seeds, target, "seed-ones", &[1u8; 64]);
    let ramp: Vec<u8> = (0u8..=255).collect();
    add(seeds, target, "seed-ramp", &ramp);
}

/// `check_request`: protobuf `CheckRequest`s, allowed and denied; `check_structured`: bytes.
fn check_requests(seeds: &mut Seeds) {
    byte_patterns(seeds, "check_structured");
    let alice = Some(Ident::Known(1));
    let two = FuzzRequest {
        hops: 1,
        peer: alice.clone(),
        ..FuzzRequest::default()
    };
    let with = |f: &dyn Fn(&mut FuzzCheckRequest)| {
        let mut c = FuzzCheckRequest {
            chain: two.clone(),
            ..FuzzCheckRequest::default()
        };
        f(&mut c);
        c
    };
    let mut huge = "x,".repeat(4000);
    huge.push('x');
    let cases: Vec<(&str, FuzzCheckRequest)> = vec![
        ("allow-two-tokens", with(&|_| {})),
        ("allow-raw-headers", with(&|c| c.raw = true)),
        ("allow-three-tokens", with(&|c| c.chain.hops = 2)),
        ("allow-single-token", FuzzCheckRequest::default()),
        (
            "allow-biscuit",
            with(&|c| c.biscuit = Some(FuzzBiscuit::default())),
        ),
        ("deny-no-bearer", with(&|c| c.bearer = 5)),
        ("deny-basic-scheme", with(&|c| c.bearer = 2)),
        (
            "deny-two-bearers-raw",
            with(&|c| (c.bearer, c.raw) = (6, true)),
        ),
        ("deny-method-path", with(&|c| c.method_path = true)),
        (
            "deny-sender",
            with(&|c| c.chain.peer = Some(Ident::Known(3))),
        ),
        ("deny-empty-chain-entry", with(&|c| c.chain_form = 3)),
        ("deny-no-http", with(&|c| c.no_http = true)),
        (
            "deny-expired",
            with(&|c| {
                c.chain.tokens = vec![
                    FuzzToken::default(),
                    FuzzToken {
                        exp: Some(-1000),
                        ..FuzzToken::default()
                    },
                ]
            }),
        ),
        (
            "deny-bad-signature",
            with(&|c| {
                c.chain.tokens = vec![
                    FuzzToken::default(),
                    FuzzToken {
                        tamper: 1,
                        ..FuzzToken::default()
                    },
                ]
            }),
        ),
        (
            "deny-now-header",
            with(&|c| c.extra = vec![(HeaderName::Known(3), b"1767225600".to_vec())]),
        ),
        (
            "deny-token-for-host",
            with(&|c| {
                c.chain.audience = Some(Ident::Raw("orders.evil.example".into()));
                c.host = Some(Ident::Raw("orders.evil.example".into()));
            }),
        ),
        (
            "garbage-headers",
            with(&|c| {
                c.raw = true;
                c.method = Some(String::new());
                c.path = Some("orders?#".into());
                c.extra = vec![
                    (HeaderName::Known(7), b"user:eve\r\nx-injected: 1".to_vec()),
                    (HeaderName::Known(8), vec![0xff, 0xfe, 0]),
                    (
                        HeaderName::Raw("X-Custody-Actor".into()),
                        b"spiffe://evil".to_vec(),
                    ),
                    (HeaderName::Raw(String::new()), Vec::new()),
                    (HeaderName::Known(10), b"Bearer \x00".to_vec()),
                ];
            }),
        ),
        (
            "huge-chain-header",
            with(&|c| {
                c.chain_form = 2;
                c.extra = vec![(HeaderName::Known(1), huge.clone().into_bytes())];
            }),
        ),
    ];
    for (name, input) in cases {
        let bytes = check_bytes(&input).unwrap();
        add(seeds, "check_request", &format!("seed-{name}"), &bytes);
    }
    add(seeds, "check_request", "seed-empty", b"");
}

/// `biscuit`: minted Biscuits' bytes (and one as text); `biscuit_structured`: bytes.
fn biscuits(seeds: &mut Seeds) {
    byte_patterns(seeds, "biscuit_structured");
    let attenuated = FuzzBiscuit {
        blocks: vec![
            FuzzBlock::Hop(FuzzHop::default()),
            FuzzBlock::Attenuation(FuzzAttenuation {
                checks: vec![FuzzCheck::Operation(0), FuzzCheck::Before(300)],
                ..FuzzAttenuation::default()
            }),
        ],
        ..FuzzBiscuit::default()
    };
    let cases = [
        ("two-hops", FuzzBiscuit::default()),
        (
            "three-hops",
            FuzzBiscuit {
                hops: 1,
                ..FuzzBiscuit::default()
            },
        ),
        (
            "authority-only",
            FuzzBiscuit {
                hops: 2,
                ..FuzzBiscuit::default()
            },
        ),
        ("attenuated", attenuated),
        (
            "expired",
            FuzzBiscuit {
                now: 2000,
                ..FuzzBiscuit::default()
            },
        ),
    ];
    for (name, input) in cases {
        let bytes = biscuit_bytes(&input).unwrap();
        if name == "two-hops" {
            add(
                seeds,
                "biscuit",
                "seed-two-hops-text",
                B64.encode(&bytes).as_bytes(),
            );
        }
        add(seeds, "biscuit", &format!("seed-{name}"), &bytes);
    }
}
