//! Writes the attack conformance suite, `tests/conformance/*.json`, one file per case.
//!
//! ```sh
//! cargo run -p custody-tests --bin gen-conformance            # into tests/conformance
//! cargo run -p custody-tests --bin gen-conformance -- OUT_DIR
//! ```
//!
//! Keys are the test kit's deterministic ones and Ed25519 signatures are deterministic, so a
//! run on unchanged code rewrites identical files; `tests/tests/conformance.rs` checks that the
//! committed files are exactly this generator's output. Stale `*.json` files are removed.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

mod cases;

use std::path::PathBuf;

fn main() {
    let dir = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("output directory");
    let cases = cases::all();
    let names: Vec<String> = cases.iter().map(|c| format!("{}.json", c.name)).collect();
    for entry in std::fs::read_dir(&dir).expect("output directory") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        if name.ends_with(".json") && !names.contains(&name) {
            std::fs::remove_file(&path).expect("remove a stale case");
        }
    }
    for case in &cases {
        std::fs::write(
            dir.join(format!("{}.json", case.name)),
            cases::render(&case.doc),
        )
        .expect("write a case");
    }
    std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(cases::algorithms::MEMO_FILE),
        cases::algorithms::memo_text(),
    )
    .expect("write the signature memo");
    println!("{} cases written to {}", cases.len(), dir.display());
}
