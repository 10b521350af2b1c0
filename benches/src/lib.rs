//! Fixtures shared by custody's benches (`benches/verify.rs`), the memory run (`src/bin/rss.rs`)
//! and the table writer (`src/bin/report.rs`): the demo pack and its demo-only signing keys,
//! token minting for every scenario, the hand-written `jsonwebtoken` + Cedar baseline a
//! gateway would write, and generated large packs (`policygen`).
#![forbid(unsafe_code)]

pub mod baseline;
pub mod policygen;

use std::path::{Path, PathBuf};

use custody_jose::{sign, Limits, SigningKey};
use custody_policy::PolicyPack;
use custody_verifier::Request;
use serde_json::{json, Value};

/// The demo requests' time: 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;
/// The orders service.
pub const ORDERS: &str = "spiffe://c.example/orders";
/// The user's agent in `a.example`.
pub const BOB: &str = "spiffe://a.example/agent/bob";
/// The partner agent in `b.example`.
pub const ALICE: &str = "spiffe://b.example/agent/alice";

/// Why a fixture could not be set up.
#[derive(Debug)]
pub struct FixtureError(pub String);

impl std::fmt::Display for FixtureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FixtureError {}

fn err(e: impl std::fmt::Display) -> FixtureError {
    FixtureError(e.to_string())
}

/// `policies/demo`.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/demo")
}

/// Loads a pack directory.
pub fn load(dir: &Path) -> Result<PolicyPack, FixtureError> {
    PolicyPack::load(dir, &Limits::default())
        .map(|l| l.pack)
        .map_err(|e| FixtureError(format!("{e:?}")))
}

/// The demo pack.
pub fn demo_pack() -> Result<PolicyPack, FixtureError> {
    load(&demo_dir())
}

/// The demo-only signing key of `a`, `b`, `c` or `d`.
pub fn demo_key(domain: &str) -> Result<SigningKey, FixtureError> {
    let path = demo_dir().join(format!("keys/{domain}.key.jwk"));
    let bytes = std::fs::read(&path).map_err(err)?;
    SigningKey::from_jwk(&bytes).map_err(err)
}

/// Mints the demo scenario's tokens; `n` makes each token distinct (`jti`).
#[derive(Debug)]
pub struct Minter {
    a: SigningKey,
    b: SigningKey,
}

impl Minter {
    /// With the demo keys.
    pub fn new() -> Result<Self, FixtureError> {
        Ok(Minter {
            a: demo_key("a")?,
            b: demo_key("b")?,
        })
    }

    fn mint(key: &SigningKey, claims: &Value) -> Result<String, FixtureError> {
        sign(key, Some("at+jwt"), claims).map_err(err)
    }

    /// `t0`: a.example's token for Bob acting for user Alice, audience Alice-agent.
    pub fn upstream(&self, n: u64) -> Result<String, FixtureError> {
        self.upstream_for("user:alice", n)
    }

    /// `t0` for another user of a.example (a distinct origin, so a distinct Cedar request).
    pub fn upstream_for(&self, user: &str, n: u64) -> Result<String, FixtureError> {
        let claims = json!({
            "iss": "https://as.a.example", "sub": user, "aud": ALICE,
            "scope": "orders:read orders:write", "txn": format!("txn-{n}"),
            "act": {"sub": BOB}, "iat": NOW - 60, "exp": NOW + 840, "jti": format!("t0-{n}"),
        });
        Self::mint(&self.a, &claims)
    }

    /// `t1`: b.example's token for Alice-agent (after Bob), audience the orders service,
    /// continuing the upstream token of transaction `txn`.
    pub fn presented(&self, txn: u64, n: u64) -> Result<String, FixtureError> {
        self.presented_for("user:alice", txn, n)
    }

    /// `t1` for another user (see [`Minter::upstream_for`]).
    pub fn presented_for(&self, user: &str, txn: u64, n: u64) -> Result<String, FixtureError> {
        let claims = json!({
            "iss": "https://as.b.example", "sub": user, "aud": ORDERS,
            "scope": "orders:read", "txn": format!("txn-{txn}"),
            "act": {"sub": ALICE, "act": {"sub": BOB}}, "iat": NOW - 30, "exp": NOW + 540,
            "jti": format!("t1-{n}"),
        });
        Self::mint(&self.b, &claims)
    }

    /// A single-token call: b.example's token for Alice-agent, audience the orders service.
    pub fn single(&self, n: u64) -> Result<String, FixtureError> {
        let claims = json!({
            "iss": "https://as.b.example", "sub": "user:alice", "aud": ORDERS,
            "scope": "orders:read", "act": {"sub": ALICE}, "iat": NOW - 30, "exp": NOW + 540,
            "jti": format!("s-{n}"),
        });
        Self::mint(&self.b, &claims)
    }

    /// The signing key of `b.example` (for the raw `verify_strict` row).
    pub fn b_key(&self) -> &SigningKey {
        &self.b
    }
}

/// A call at [`NOW`] reading orders with `tokens`.
pub fn request(tokens: Vec<String>) -> Request {
    Request {
        tokens,
        audience: ORDERS.into(),
        action: "orders:read".into(),
        peer: Some(ALICE.into()),
        now: Some(NOW),
        ..Request::default()
    }
}

/// `n` single-token calls, each with its own token.
pub fn single_requests(m: &Minter, n: u64) -> Result<Vec<Request>, FixtureError> {
    (0..n).map(|i| Ok(request(vec![m.single(i)?]))).collect()
}

/// `n` two-token chains; `upstream` distinct upstream tokens shared round-robin (`n` for
/// all distinct), every presented token distinct.
pub fn chain_requests(m: &Minter, n: u64, upstream: u64) -> Result<Vec<Request>, FixtureError> {
    let ups: Vec<String> = (0..upstream.max(1))
        .map(|u| m.upstream(u))
        .collect::<Result<_, _>>()?;
    (0..n)
        .map(|i| {
            let u = i % upstream.max(1);
            let t0 = ups.get(u as usize).cloned().unwrap_or_default();
            Ok(request(vec![t0, m.presented(u, i)?]))
        })
        .collect()
}

/// A pack directory: the demo trust file and keys with `policies` generated Cedar policies
/// (and their `entities.json`) in place of the demo's, plus an allow-all policy for the
/// demo scenario's reads, so a call's decision is not decided by the generator alone.
pub fn generated_pack_dir(policies: usize) -> Result<tempfile::TempDir, FixtureError> {
    let dir = tempfile::tempdir().map_err(err)?;
    let src = demo_dir();
    std::fs::copy(src.join("demo.trust"), dir.path().join("demo.trust")).map_err(err)?;
    std::fs::create_dir(dir.path().join("keys")).map_err(err)?;
    // every public key set the trust file may name (never the demo's private `.key.jwk`s)
    for entry in std::fs::read_dir(src.join("keys")).map_err(err)? {
        let name = entry.map_err(err)?.file_name();
        if name.to_string_lossy().ends_with(".jwks") {
            let f = Path::new("keys").join(&name);
            std::fs::copy(src.join(&f), dir.path().join(&f)).map_err(err)?;
        }
    }
    let text = policygen::policies(policies, 42);
    std::fs::write(dir.path().join("generated.cedar"), text).map_err(err)?;
    std::fs::write(dir.path().join("entities.json"), policygen::entities_json()).map_err(err)?;
    Ok(dir)
}

/// Peak resident memory of this process so far (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Current resident memory (`VmRSS`), in KiB.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
