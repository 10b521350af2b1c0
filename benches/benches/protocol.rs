//! Issue 16: deriving the action from an MCP `tools/call` body, against the cold single-token
//! decision it precedes, in one run. `cargo bench -p custody-benches --bench protocol`.
//!
//! - `protocol/mcp_action_4k`: `custody_http::protocol::action` on a 4 KiB `tools/call` body
//!   (nested `arguments`: strings, numbers, arrays, objects).
//! - `protocol/mcp_action_4k_text`: the same on a 4 KiB `tools/call` whose `arguments` are one
//!   text (prose with escaped quotes and newlines, as a tool handed a document gets it); for
//!   context, the dense body is the row the goal is about.
//! - `protocol/decision_cold`: one whole decision on a single Ed25519 token not seen before (the
//!   verifier's caches cleared each time the pool of 512 distinct tokens wraps, untimed).
//!
//! Goal: action ≤ 10% of the decision.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use custody_http::protocol::{action, Protocol};
use custody_tests::{Fixture, AUD, NOW};
use custody_verifier::Request;
use serde_json::json;

#[path = "shared/cold.rs"]
mod cold;

/// A `tools/call` body of exactly `size` bytes.
fn body(size: usize) -> Vec<u8> {
    let mut rows = Vec::new();
    let mut b = Vec::new();
    for i in 0.. {
        rows.push(json!({"id": i, "city": "Oslo", "temp": 3.5, "tags": ["a", "b"], "ok": true}));
        let v = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                       "params": {"name": "get_weather", "arguments": {"rows": rows, "pad": ""}}});
        b = serde_json::to_vec(&v).unwrap();
        if b.len() + 80 > size {
            break;
        }
    }
    let pad = size - b.len();
    let v = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": "get_weather", "arguments": {"rows": rows, "pad": "x".repeat(pad)}}});
    let b = serde_json::to_vec(&v).unwrap();
    assert_eq!(b.len(), size);
    b
}

/// A `tools/call` body of exactly `size` bytes whose `arguments` hold one long text.
fn text_body(size: usize) -> Vec<u8> {
    let line = r#"The committee met on Tuesday; \"quorum\" was reached.\n"#;
    let head = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"summarize","arguments":{"text":""#;
    let tail = r#""}}}"#;
    let mut text = String::new();
    while head.len() + text.len() + line.len() + tail.len() <= size {
        text.push_str(line);
    }
    text.push_str(&"x".repeat(size - head.len() - text.len() - tail.len()));
    let b = format!("{head}{text}{tail}").into_bytes();
    assert_eq!(b.len(), size);
    b
}

fn protocol(c: &mut Criterion) {
    let f = Fixture::standard();
    let reqs: Vec<Request> = (0..512)
        .map(|i| Request {
            tokens: vec![f.token(
                "c.example",
                json!({"sub": "user:carol", "aud": AUD, "iat": NOW - 10, "exp": NOW + 300,
                       "scope": "tools/call:get_weather", "jti": format!("t{i}")}),
            )],
            audience: AUD.into(),
            action: "tools/call:get_weather".into(),
            now: Some(NOW),
            ..Request::default()
        })
        .collect();
    assert!(f.verifier.verify(&reqs[0]).is_allowed());
    let b = body(4096);
    assert_eq!(action(Protocol::Mcp, &b).unwrap(), "tools/call:get_weather");
    let text = text_body(4096);
    assert_eq!(
        action(Protocol::Mcp, &text).unwrap(),
        "tools/call:summarize"
    );
    let mut g = c.benchmark_group("protocol");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("mcp_action_4k", |bn| {
        bn.iter(|| action(Protocol::Mcp, black_box(&b)).unwrap())
    });
    g.bench_function("mcp_action_4k_text", |bn| {
        bn.iter(|| action(Protocol::Mcp, black_box(&text)).unwrap())
    });
    cold::cold_one_by_one(&mut g, "decision_cold", &f.verifier, &reqs);
    g.finish();
}

criterion_group!(benches, protocol);
criterion_main!(benches);
