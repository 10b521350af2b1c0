//! Writes what the end-to-end tests (tests/e2e) need: the kit's standard four-domain pack
//! (`<out>/pack`) and tokens minted for the current time (`<out>/fixture.json`).
//!
//! `cargo run -p custody-sidecar --example e2e_fixture -- OUT_DIR`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use custody_tests::{act, t0_claims, t1_claims, Fixture, ALICE, AUD, BOB, MALLORY};
use serde_json::{json, Value};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn main() {
    let out = std::env::args().nth(1).expect("usage: e2e_fixture OUT_DIR");
    let out = Path::new(&out);
    let f = Fixture::standard();
    let pack = out.join("pack");
    if pack.exists() {
        std::fs::remove_dir_all(&pack).unwrap();
    }
    copy_dir(f.dir.path(), &pack);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let timed = |mut c: Value, iat: i64, exp: i64| {
        c["iat"] = (now - iat).into();
        c["exp"] = (now + exp).into();
        c
    };
    let t0 = timed(t0_claims(), 60, 1800);
    let t1 = timed(t1_claims(), 30, 1200);
    let with = |mut c: Value, k: &str, v: Value| {
        c[k] = v;
        c
    };
    let mut mallory0 = t0.clone();
    mallory0["aud"] = json!([MALLORY]);
    let fixture = json!({
        "pack": pack.canonicalize().unwrap(),
        "audience": AUD,
        "alice": ALICE,
        "bob": BOB,
        "t0": f.token("a.example", t0.clone()),
        "t1": f.token("b.example", t1.clone()),
        "t1_wide": f.token("b.example", with(t1.clone(), "scope", "orders:read orders:admin".into())),
        "t1_foreign": f.token("b.example", with(t1.clone(), "aud", "spiffe://c.example/billing".into())),
        "t1_expired": f.token("b.example", with(with(t1.clone(), "iat", (now - 900).into()), "exp", (now - 600).into())),
        "mallory_t0": f.token("a.example", mallory0),
        "mallory_t1": f.token("d.example", with(t1, "act", act(&[BOB, MALLORY]))),
        "exp_min": now + 1200,
    });
    std::fs::write(
        out.join("fixture.json"),
        serde_json::to_string_pretty(&fixture).unwrap(),
    )
    .unwrap();
    println!("{}", out.join("fixture.json").display());
}
