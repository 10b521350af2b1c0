//! Writes the fuzz targets' committed seed corpora, `fuzz/seeds/<target>/seed-*`.
//!
//! ```sh
//! cargo run -p custody-tests --bin gen-fuzz-seeds
//! ```
//!
//! Seeds come from the conformance catalogue (its tokens, requests and packs), the test kit's
//! standard pack, the policy crate's fixture pack and the standards digest's SPIFFE ID vectors.
//! Everything is deterministic; stale `seed-*` files are removed. Other files in `fuzz/seeds/`
//! (`grown-*`: a campaign's corpus, minimised with libFuzzer's `-merge=1`) are kept. Files
//! fuzzing adds to `fuzz/corpus/` are not touched (and not committed).
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "gen-conformance/cases.rs"]
#[allow(dead_code)]
mod cases;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use custody_jose::B64;
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
