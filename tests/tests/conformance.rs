//! The attack conformance suite: every `tests/conformance/*.json` case is loaded, its pack built
//! and its request decided; the decision, first reason code and hop must be the expected ones,
//! and deciding it again (cached) or without caches must give the same decision.
//! The case files are data; `src/bin/gen-conformance` mints them (see the README beside them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

#[path = "../src/bin/gen-conformance/cases.rs"]
#[allow(
    dead_code,
    reason = "a module shared with another target, which uses the items this one does not"
)]
mod cases;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use custody_jose::Limits;
use custody_policy::PolicyPack;
use custody_tests::{hop, PackBuilder};
use custody_verifier::{Decision, Verifier, VerifierOptions};
use serde_json::Value;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// Every case file, sorted by name.
fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(suite_dir())
        .expect("tests/conformance exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The pack a case names: `{"variant": "standard", …PackBuilder settings}` or
/// `{"files": {"relative/path": "text", …}}` loaded as is.
fn load_pack(pack: &Value) -> Result<(Verifier, Option<tempfile::TempDir>), String> {
    if let Some(files) = pack.get("files").and_then(Value::as_object) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text.as_str().expect("file text")).unwrap();
        }
        return match PolicyPack::load(dir.path(), &Limits::default()) {
            Ok(loaded) => Ok((Verifier::new(loaded.pack), Some(dir))),
            Err(errors) => Err(errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")),
        };
    }
    assert_eq!(pack["variant"], "standard", "unknown pack variant: {pack}");
    let mut b = PackBuilder::default();
    if pack["no_federation"] == true {
        b = b.no_federation();
    }
    if let Some(chain) = pack["chain"].as_str() {
        b = b.chain(chain);
    }
    for edge in pack["federate"].as_array().into_iter().flatten() {
        let s = |i: usize| edge[i].as_str().expect("federate [from, to, scopes]");
        b = b.federate(s(0), s(1), s(2));
    }
    if let Some(cedar) = pack["cedar"].as_str() {
        b = b.cedar(cedar);
    }
    for (domain, entries) in pack["bundles"].as_object().into_iter().flatten() {
        let entries = entries.as_array().expect("bundle entries").clone();
        b = b.bundle(domain, entries);
    }
    let fixture = b.build();
    Ok((fixture.verifier, Some(fixture.dir)))
}

fn decide(verifier: &Verifier, case: &Value) -> Decision {
    let bytes = match (&case["request"], &case["request_text"]) {
        (Value::Object(_), _) => serde_json::to_vec(&case["request"]).unwrap(),
        (_, Value::String(text)) => text.clone().into_bytes(),
        _ => panic!("a case needs `request` or `request_text`"),
    };
    verifier.verify_json(&bytes).expect("the request is JSON")
}

/// Runs one case; `Err` describes the mismatch.
fn run(path: &Path) -> Result<(), String> {
    let case: Value = serde_json::from_slice(&std::fs::read(path).unwrap())
        .map_err(|e| format!("not JSON: {e}"))?;
    for field in ["description", "attack", "pack", "expected"] {
        if case.get(field).is_none() {
            return Err(format!("no `{field}`"));
        }
    }
    let expected = &case["expected"];
    let loaded = load_pack(&case["pack"]);
    if let Some(text) = expected["load_error"].as_str() {
        return match loaded {
            Ok(_) => Err(format!(
                "the pack loaded; expected an error containing `{text}`"
            )),
            Err(e) if e.contains(text) => Ok(()),
            Err(e) => Err(format!("load error without `{text}`: {e}")),
        };
    }
    let (verifier, _dir) = loaded.map_err(|e| format!("the pack does not load: {e}"))?;
    let d = decide(&verifier, &case);
    // the same case again (its tokens and Cedar request now remembered), and on the same pack
    // without caches: the same decision, to the message
    let uncached = Verifier::with_options(
        Arc::clone(verifier.pack()),
        VerifierOptions {
            sig_cache_entries: 0,
            cedar_memo_entries: 0,
            ..VerifierOptions::default()
        },
    );
    // a one-time proof that passed its own checks the first time is `replayed` on the same
    // verifier; a fresh one decides as the first did
    let one_time = case["request"].get("wpt").is_some() || case["request"].get("dpop").is_some();
    for (how, other) in [("again", &verifier), ("uncached", &uncached)] {
        let again = decide(other, &case);
        let replayed = again.code() == Some(custody_verifier::ReasonCode::Replayed);
        if one_time && how == "again" && d.is_allowed() && !replayed {
            return Err(format!(
                "an allowed one-time proof decided again: {again:?}"
            ));
        }
        if again != d && !(one_time && how == "again" && replayed) {
            return Err(format!("decided {how}: {again:?}, first {d:?}"));
        }
    }
    let got = (
        if d.is_allowed() { "allow" } else { "deny" },
        d.code().map(|c| c.as_str().to_owned()),
        hop(&d),
    );
    let want = (
        expected["decision"].as_str().unwrap_or("?"),
        expected["code"].as_str().map(str::to_owned),
        expected["hop"].as_u64().map(|h| h as usize),
    );
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "expected {} {:?} hop {:?}, got {} {:?} hop {:?} ({})",
            want.0,
            want.1,
            want.2,
            got.0,
            got.1,
            got.2,
            d.reasons.first().map_or("", |r| r.message.as_str())
        ))
    }
}

#[test]
fn every_case_decides_as_expected() {
    let files = case_files();
    assert!(
        !files.is_empty(),
        "no conformance cases in {}",
        suite_dir().display()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            run(p).err().map(|e| format!("{name}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn committed_cases_are_the_generators_output() {
    let generated = cases::all();
    let mut names: Vec<String> = generated
        .iter()
        .map(|c| format!("{}.json", c.name))
        .collect();
    names.sort();
    let committed: Vec<String> = case_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        committed, names,
        "tests/conformance differs from the generator: run `cargo run -p custody-tests --bin gen-conformance`"
    );
    for case in &generated {
        let path = suite_dir().join(format!("{}.json", case.name));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text == cases::render(&case.doc),
            "{} is not what the generator writes: rerun it",
            path.display()
        );
    }
}

#[test]
fn the_catalogue_covers_every_attack_class() {
    let attacks: std::collections::BTreeSet<String> = case_files()
        .iter()
        .map(|p| {
            let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            v["attack"].as_str().unwrap().to_owned()
        })
        .collect();
    for class in [
        "algorithm confusion",
        "key substitution",
        "duplicate keys",
        "signature malleability",
        "time",
        "audience confusion",
        "scope escalation",
        "actor rewriting",
        "delegation loop",
        "depth",
        "federation",
        "sender binding",
        "identifier confusion",
        "resource exhaustion",
    ] {
        assert!(attacks.contains(class), "no case for `{class}`");
    }
}
