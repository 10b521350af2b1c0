//! Caller proofs under the fuzzer: a WIT with its WPT, or a DPoP-bound token with its proof,
//! minted honestly for the in-memory pack and then mutated (claims, headers, signer, target,
//! byte flips), decided by the verifier.
//!
//! The oracle (`caller_proofs`): whatever the input, when the verifier allows,
//! - a WPT was signed, as an independent check reads it (plain base64url, serde_json, the
//!   signature library's own verify), by the key the WIT binds, with `typ` `wpt+jwt` and that
//!   key's `alg`; it names the target URI without query, the WIT's hash, the presented token's
//!   hash, and expires within 300 s; and the WIT was signed by b.example's key for the workload
//!   with that key in `cnf.jwk`;
//! - a DPoP proof was signed by the key the token is bound to (its coordinates in the `jwk`
//!   header), with `typ` `dpop+jwt`, for `GET` on the target URI, over the presented token;
//! - the same request sent again is not allowed (`replayed`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use custody_jose::{sign_with_header, Algorithm, KeyMaterial, SigningKey, B64};
use custody_verifier::Request;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::raw_verify;
use crate::verify::{world, Oracle, FUZZ_AUD, FUZZ_NOW, SKEW};

const ALICE: &str = "spiffe://b.example/agent/alice";
const TARGET: &str = "https://orders.c.example/orders/7";

/// One fuzzed proof of the caller.
#[derive(Arbitrary, Debug, Default)]
pub struct FuzzProof {
    /// A DPoP-bound token and its proof, else a WIT with its WPT.
    pub dpop: bool,
    /// Changes to the WIT's claims.
    pub wit_edits: Vec<Edit>,
    /// Changes to the WPT's or DPoP proof's claims.
    pub proof_edits: Vec<Edit>,
    /// 0 the honest header; then a wrong `typ`, no `typ`, another `alg`, an extra member, a
    /// `jwk` where none belongs (or none where one does).
    pub header: u8,
    /// 0 the workload key signs the proof; else another key.
    pub signer: u8,
    /// 0 b.example's key signs the WIT; else a.example's.
    pub wit_signer: u8,
    /// The request's target URI: as minted, with a query, another path, none.
    pub target: u8,
    /// Byte changes to the proof's text (position, xor).
    pub flips: Vec<(u16, u8)>,
    /// Send the request twice.
    pub twice: bool,
}

/// One claim change.
#[derive(Arbitrary, Debug)]
pub struct Edit {
    /// Which claim (by index in the proof's claim list).
    pub claim: u8,
    /// Its new value.
    pub value: FuzzValue,
}

/// A claim's new value.
#[derive(Arbitrary, Debug)]
pub enum FuzzValue {
    /// The claim removed.
    Remove,
    /// A time, as an offset from now.
    Time(i16),
    /// One of a few strings (a hash of another text, another URI, empty, …).
    Text(u8),
    /// A value of another JSON type.
    Number(i64),
}

const WIT_CLAIMS: [&str; 7] = ["sub", "exp", "iat", "nbf", "aud", "cnf", "iss"];
const WPT_CLAIMS: [&str; 8] = ["aud", "exp", "iat", "jti", "wth", "ath", "tth", "oth"];
const DPOP_CLAIMS: [&str; 5] = ["htm", "htu", "iat", "jti", "ath"];

struct Keys {
    workload: SigningKey,
    other: SigningKey,
}

fn keys() -> Option<&'static Keys> {
    static KEYS: OnceLock<Option<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        Some(Keys {
            workload: SigningKey::generate("wl", Algorithm::Es256).ok()?,
            other: SigningKey::generate("other", Algorithm::Es256).ok()?,
        })
    })
    .as_ref()
}

fn hash(text: &str) -> String {
    B64.encode(Sha256::digest(text.as_bytes()))
}

fn public_jwk(key: &SigningKey) -> Value {
    let mut jwk = key.public().to_jwk();
    if let Some(m) = jwk.as_object_mut() {
        m.remove("kid");
        m.insert("alg".into(), key.alg().name().into());
    }
    jwk
}

fn text_value(n: u8, token: &str) -> Value {
    match n % 8 {
        0 => "".into(),
        1 => hash("something else").into(),
        2 => hash(token).into(),
        3 => "https://orders.c.example/orders/8".into(),
        4 => format!("{TARGET}?q=1").into(),
        5 => "spiffe://b.example/agent/helper".into(),
        6 => "GET".into(),
        _ => json!({"x-id": hash("a")}),
    }
}

fn apply(c: &mut Map<String, Value>, names: &[&str], edits: &[Edit], token: &str) {
    for e in edits.iter().take(8) {
        let Some(name) = names.get(usize::from(e.claim) % names.len()) else {
            continue;
        };
        let v = match &e.value {
            FuzzValue::Remove => {
                c.remove(*name);
                continue;
            }
            FuzzValue::Time(d) => (FUZZ_NOW + i64::from(*d)).into(),
            FuzzValue::Text(n) => text_value(*n, token),
            FuzzValue::Number(n) => (*n).into(),
        };
        c.insert((*name).to_owned(), v);
    }
}

fn header_for(base: Value, variant: u8, key: &SigningKey) -> Value {
    let Value::Object(mut h) = base else {
        return base;
    };
    let mut set = |name: &str, v: Value| h.insert(name.to_owned(), v);
    match variant % 6 {
        1 => drop(set("typ", "JWT".into())),
        3 => drop(set("alg", "ES384".into())),
        4 => drop(set("cty", "x".into())),
        2 => drop(h.remove("typ")),
        5 if h.remove("jwk").is_none() => drop(h.insert("jwk".into(), public_jwk(key))),
        _ => {}
    }
    Value::Object(h)
}

fn flip(token: String, flips: &[(u16, u8)]) -> String {
    let mut b = token.into_bytes();
    for (pos, x) in flips.iter().take(4) {
        let len = b.len();
        if len == 0 {
            break;
        }
        if let Some(byte) = b.get_mut(usize::from(*pos) % len) {
            *byte ^= x;
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// A fresh `jti` per run: the verifier's replay cache lives across runs.
fn fresh_jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("fuzz-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The request a [`FuzzProof`] describes.
pub fn proof_request(input: &FuzzProof) -> Option<Request> {
    let w = world()?;
    let k = keys()?;
    let b = w.keys.get(1)?;
    let domain_key = match input.wit_signer {
        0 => b,
        _ => w.keys.first()?,
    };
    let signer = match input.signer {
        0 => &k.workload,
        _ => &k.other,
    };
    let mut claims = Map::new();
    for (name, v) in [
        ("iss", json!("https://as.b.example")),
        ("sub", json!("user:alice")),
        ("aud", json!(FUZZ_AUD)),
        ("iat", json!(FUZZ_NOW - 30)),
        ("exp", json!(FUZZ_NOW + 300)),
        ("scope", json!("orders:read")),
        ("act", json!({"sub": ALICE})),
    ] {
        claims.insert(name.to_owned(), v);
    }
    if input.dpop {
        let jkt = B64.encode(k.workload.public().thumbprint());
        claims.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    let claims = Value::Object(claims);
    let token = sign_with_header(
        b,
        &json!({"alg": "EdDSA", "kid": b.kid(), "typ": "at+jwt"}),
        &claims,
    )
    .ok()?;
    let target = match input.target % 4 {
        0 => Some(TARGET.to_owned()),
        1 => Some(format!("{TARGET}?page=2")),
        2 => Some("https://orders.c.example/other".to_owned()),
        _ => None,
    };
    let mut req = Request {
        tokens: vec![token.clone()],
        audience: FUZZ_AUD.into(),
        action: "orders:read".into(),
        now: Some(FUZZ_NOW),
        target_uri: target,
        ..Request::default()
    };
    if input.dpop {
        let mut c = Map::new();
        c.insert("htm".into(), "GET".into());
        c.insert("htu".into(), TARGET.into());
        c.insert("iat".into(), FUZZ_NOW.into());
        c.insert("jti".into(), fresh_jti().into());
        c.insert("ath".into(), hash(&token).into());
        apply(&mut c, &DPOP_CLAIMS, &input.proof_edits, &token);
        let base = json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": public_jwk(&k.workload)});
        let h = header_for(base, input.header, &k.workload);
        let proof = sign_with_header(signer, &h, &Value::Object(c)).ok()?;
        req.dpop = Some(flip(proof, &input.flips));
        req.http_method = Some("GET".into());
    } else {
        let mut c = Map::new();
        c.insert("sub".into(), ALICE.into());
        c.insert("iat".into(), (FUZZ_NOW - 60).into());
        c.insert("exp".into(), (FUZZ_NOW + 600).into());
        c.insert("cnf".into(), json!({"jwk": public_jwk(&k.workload)}));
        apply(&mut c, &WIT_CLAIMS, &input.wit_edits, &token);
        let wh = json!({"alg": "EdDSA", "kid": domain_key.kid(), "typ": "wit+jwt"});
        let wit = sign_with_header(domain_key, &wh, &Value::Object(c)).ok()?;
        let mut c = Map::new();
        c.insert("aud".into(), TARGET.into());
        c.insert("exp".into(), (FUZZ_NOW + 60).into());
        c.insert("jti".into(), fresh_jti().into());
        c.insert("wth".into(), hash(&wit).into());
        c.insert("ath".into(), hash(&token).into());
        apply(&mut c, &WPT_CLAIMS, &input.proof_edits, &token);
        let h = header_for(
            json!({"alg": "ES256", "typ": "wpt+jwt"}),
            input.header,
            signer,
        );
        let wpt = sign_with_header(signer, &h, &Value::Object(c)).ok()?;
        req.wit = Some(wit);
        req.wpt = Some(flip(wpt, &input.flips));
    }
    Some(req)
}

/// The fuzz entry point: the bytes as a [`FuzzProof`], then [`proof_input`].
pub fn caller_proofs(data: &[u8]) -> Oracle {
    let Ok(input) = FuzzProof::arbitrary(&mut Unstructured::new(data)) else {
        return Ok(());
    };
    proof_input(&input)
}

/// Decides the request of `input` and checks the oracle (module documentation).
pub fn proof_input(input: &FuzzProof) -> Oracle {
    let (Some(w), Some(k), Some(req)) = (world(), keys(), proof_request(input)) else {
        return Ok(());
    };
    let d = w.proofs.verify(&req);
    if !d.is_allowed() {
        return Ok(());
    }
    let token = req.tokens.first().map_or("", String::as_str);
    let target = req.target_uri.as_deref().unwrap_or("");
    let target = target.split(['?', '#']).next().unwrap_or("");
    match (&req.dpop, &req.wit, &req.wpt) {
        (Some(p), _, _) => dpop_holds(p, k, token, target)?,
        (None, Some(wit), Some(wpt)) => {
            let b = w.keys.get(1).ok_or("no b.example key")?;
            wit_holds(wit, b, k)?;
            wpt_holds(wpt, wit, k, token, target)?;
        }
        _ => return Err("allowed with neither a DPoP proof nor a WIT and WPT".into()),
    }
    if input.twice {
        let again = w.proofs.verify(&req);
        if again.is_allowed() {
            return Err("the same one-time proof was allowed twice".into());
        }
    }
    Ok(())
}

/// A compact JWS read without custody's decoder: header, claims, signing input, signature.
fn split(token: &str) -> Result<(Value, Value, &str, Vec<u8>), String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("accepted proof is not three parts: {token}"));
    };
    let de = |part: &str| -> Result<Value, String> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|e| format!("accepted proof part not base64url: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("accepted proof part not JSON: {e}"))
    };
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| format!("accepted signature not base64url: {e}"))?;
    let input = token.get(..h.len() + 1 + p.len()).ok_or("truncated")?;
    Ok((de(h)?, de(p)?, input, sig))
}

fn typ_is(h: &Value, want: &str) -> bool {
    h.get("typ").and_then(Value::as_str).is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.strip_prefix("application/").unwrap_or(&t) == want
    })
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Oracle {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn wit_holds(wit: &str, b: &SigningKey, k: &Keys) -> Oracle {
    let (h, c, input, sig) = split(wit)?;
    ensure(typ_is(&h, "wit+jwt"), || format!("accepted WIT typ: {h}"))?;
    let material = b.public().material().clone();
    ensure(
        raw_verify(&material, "EdDSA", input.as_bytes(), &sig),
        || "accepted WIT not signed by b.example's key".into(),
    )?;
    ensure(c.get("sub") == Some(&json!(ALICE)), || {
        format!("accepted WIT sub: {c}")
    })?;
    ensure(c.get("aud").is_none(), || "accepted WIT with `aud`".into())?;
    let jwk = c.get("cnf").and_then(|v| v.get("jwk"));
    ensure(same_point(jwk, &public_jwk(&k.workload)), || {
        format!("accepted WIT binds another key: {jwk:?}")
    })
}

/// Whether `jwk` names the same EC point as `want`.
fn same_point(jwk: Option<&Value>, want: &Value) -> bool {
    let coord = |v: Option<&Value>, c: &str| v.and_then(|j| j.get(c)).cloned();
    coord(jwk, "x").is_some()
        && coord(jwk, "x") == coord(Some(want), "x")
        && coord(jwk, "y") == coord(Some(want), "y")
}

fn workload_signed(k: &Keys, input: &str, sig: &[u8]) -> bool {
    let material: KeyMaterial = k.workload.public().material().clone();
    raw_verify(&material, "ES256", input.as_bytes(), sig)
}

fn wpt_holds(wpt: &str, wit: &str, k: &Keys, token: &str, target: &str) -> Oracle {
    let (h, c, input, sig) = split(wpt)?;
    ensure(typ_is(&h, "wpt+jwt"), || format!("accepted WPT typ: {h}"))?;
    ensure(h.get("alg") == Some(&json!("ES256")), || {
        format!("accepted WPT alg: {h}")
    })?;
    ensure(workload_signed(k, input, &sig), || {
        "accepted WPT not signed by the WIT's cnf key".into()
    })?;
    ensure(c.get("wth") == Some(&json!(hash(wit))), || {
        format!("accepted WPT wth: {c}")
    })?;
    ensure(c.get("ath") == Some(&json!(hash(token))), || {
        format!("accepted WPT ath: {c}")
    })?;
    ensure(c.get("tth").is_none(), || {
        format!("accepted WPT tth without a Txn-Token: {c}")
    })?;
    ensure(c.get("aud") == Some(&json!(target)), || {
        format!("accepted WPT aud: {c}")
    })?;
    let exp = c
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("accepted WPT without exp")?;
    ensure(exp - FUZZ_NOW <= 300 && exp + SKEW > FUZZ_NOW, || {
        format!("accepted WPT exp {exp}")
    })?;
    ensure(
        c.get("jti")
            .and_then(Value::as_str)
            .is_some_and(|j| !j.is_empty()),
        || format!("accepted WPT jti: {c}"),
    )
}

fn dpop_holds(proof: &str, k: &Keys, token: &str, target: &str) -> Oracle {
    let (h, c, input, sig) = split(proof)?;
    ensure(typ_is(&h, "dpop+jwt"), || format!("accepted DPoP typ: {h}"))?;
    ensure(same_point(h.get("jwk"), &public_jwk(&k.workload)), || {
        format!("accepted DPoP proof names another key: {h}")
    })?;
    ensure(workload_signed(k, input, &sig), || {
        "accepted DPoP proof not signed by the bound key".into()
    })?;
    ensure(c.get("htm") == Some(&json!("GET")), || {
        format!("accepted DPoP htm: {c}")
    })?;
    let htu = c.get("htu").and_then(Value::as_str).unwrap_or("");
    ensure(htu.split(['?', '#']).next() == Some(target), || {
        format!("accepted DPoP htu: {c}")
    })?;
    ensure(c.get("ath") == Some(&json!(hash(token))), || {
        format!("accepted DPoP ath: {c}")
    })?;
    let iat = c
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or("accepted DPoP without iat")?;
    ensure((iat - FUZZ_NOW).abs() <= SKEW, || {
        format!("accepted DPoP iat {iat}")
    })
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    /// The honest inputs are allowed (so the oracle is reached), and each single mutation of
    /// a kind the oracle watches is not.
    #[test]
    fn honest_proofs_pass_and_the_oracle_is_reached() {
        let Some(v) = world().map(|w| &w.proofs) else {
            panic!("no world")
        };
        for dpop in [false, true] {
            let input = FuzzProof {
                dpop,
                twice: true,
                ..FuzzProof::default()
            };
            let req = proof_request(&input).expect("minted");
            assert!(v.verify(&req).is_allowed(), "dpop {dpop}");
            // and it was used up
            assert!(!v.verify(&req).is_allowed());
            assert_eq!(proof_input(&input), Ok(()));
            let bad = FuzzProof {
                dpop,
                signer: 1,
                ..FuzzProof::default()
            };
            let req = proof_request(&bad).expect("minted");
            assert!(!v.verify(&req).is_allowed(), "other signer, dpop {dpop}");
        }
    }
}
