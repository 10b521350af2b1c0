//! One boundary test per field of `Limits`: at the limit passes, one over fails with the right
//! reason code or error. Where a default is cheap to reach it is tested as shipped; each limit
//! is also tested lowered, to show the configured value (not a constant) is what is enforced.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use custody_id::{IdError, SpiffeId, TrustDomain};
use custody_jose::{json, parse_key_set, JwsError, KeySetError, Limits, SigningKey, B64};
use custody_policy::{parse_trust, LoadErrorKind, PolicyPack};
use custody_tests::*;
use custody_verifier::{Decision, Request, Verifier, VerifierOptions};
use serde_json::{json, Value};

fn single_claims() -> Value {
    json!({
        "iss": issuer("b.example"), "sub": "user:carol", "aud": AUD, "iat": NOW - 10,
        "exp": NOW + 300, "scope": "orders:read", "act": {"sub": ALICE},
    })
}

fn with_limits(f: &Fixture, limits: Limits) -> Verifier {
    let options = VerifierOptions {
        limits,
        ..VerifierOptions::default()
    };
    Verifier::with_options(Arc::clone(f.verifier.pack()), options)
}

fn decide(v: &Verifier, tokens: Vec<String>) -> Decision {
    v.verify(&request(tokens))
}

/// A token signed by b.example's key, its `pad` claim and the spaces in its header sized so
/// the compact form is exactly `len` bytes.
fn token_of_len(f: &Fixture, len: usize) -> String {
    let key = f.key("b.example");
    for spaces in 0..3 {
        let header = format!(
            r#"{{"alg":"EdDSA","kid":"{}","typ":"at+jwt"{}}}"#,
            key.kid(),
            " ".repeat(spaces)
        );
        for pad in 0..len {
            let mut c = single_claims();
            c["pad"] = "x".repeat(pad).into();
            let input = format!("{}.{}", B64.encode(&header), B64.encode(c.to_string()));
            let t = format!("{input}.{}", B64.encode(key.sign_bytes(input.as_bytes())));
            if t.len() == len {
                return t;
            }
            if t.len() > len {
                break;
            }
        }
    }
    panic!("no token of {len} bytes");
}

#[test]
fn token_bytes() {
    let f = Fixture::standard();
    let d = Limits::default();
    assert_eq!(d.token_bytes, 8 * 1024);
    let at = token_of_len(&f, d.token_bytes);
    assert_eq!(outcome(&f.verify(&request(vec![at.clone()]))), "allow");
    let over = token_of_len(&f, d.token_bytes + 1);
    let dec = f.verify(&request(vec![over.clone()]));
    assert_eq!(
        (outcome(&dec), hop(&dec)),
        ("token_too_large".into(), Some(0))
    );
    assert_eq!(
        custody_jose::decode(&over, &d).unwrap_err(),
        JwsError::TooLarge(d.token_bytes)
    );
    // Lowered: the same tokens against a limit set to the shorter one's length.
    let small = token_of_len(&f, 600);
    let v = with_limits(
        &f,
        Limits {
            token_bytes: 600,
            ..Limits::default()
        },
    );
    assert_eq!(outcome(&decide(&v, vec![small])), "allow");
    assert_eq!(
        outcome(&decide(&v, vec![token_of_len(&f, 601)])),
        "token_too_large"
    );
}

fn nested_array(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!([inner]))
}

#[test]
fn json_depth() {
    let f = Fixture::standard();
    let d = Limits::default();
    assert_eq!(d.json_depth, 16);
    // The claim set is level 1, so a claim may nest 15 more.
    let mut c = single_claims();
    c["nested"] = nested_array(15);
    assert_eq!(
        outcome(&f.verify(&request(vec![f.token("b.example", c.clone())]))),
        "allow"
    );
    c["nested"] = nested_array(16);
    let dec = f.verify(&request(vec![f.token("b.example", c)]));
    assert_eq!(
        (outcome(&dec), hop(&dec)),
        ("malformed_token".into(), Some(0))
    );
    // The strict parser itself, and the request document.
    let text = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(json::parse(text(16).as_bytes(), d.json_depth).is_ok());
    assert_eq!(
        json::parse(text(17).as_bytes(), d.json_depth),
        Err(json::JsonError::TooDeep(16))
    );
    let doc = |n: usize| {
        let mut r = request(chain(&f)).to_json();
        r["context"] = json!({"a": nested_array(n)});
        serde_json::to_vec(&r).unwrap()
    };
    // request (1) > context (2) > `a`: 14 arrays reach level 16.
    assert_eq!(outcome(&f.verifier.verify_json(&doc(14)).unwrap()), "allow");
    assert_eq!(
        outcome(&f.verifier.verify_json(&doc(15)).unwrap()),
        "invalid_request"
    );
    // Lowered.
    let v = with_limits(
        &f,
        Limits {
            json_depth: 4,
            ..Limits::default()
        },
    );
    let mut c = single_claims();
    c["nested"] = nested_array(3);
    assert_eq!(
        outcome(&decide(&v, vec![f.token("b.example", c.clone())])),
        "allow"
    );
    c["nested"] = nested_array(4);
    assert_eq!(
        outcome(&decide(&v, vec![f.token("b.example", c)])),
        "malformed_token"
    );
}

fn agents(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("spiffe://b.example/agent/a{i}"))
        .collect()
}

fn act_token(f: &Fixture, n: usize) -> String {
    let ids = agents(n);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut c = single_claims();
    c["act"] = act(&refs);
    f.token("b.example", c)
}

#[test]
fn act_depth() {
    let f = PackBuilder::default().chain("max_depth 8").build();
    let d = Limits::default();
    assert_eq!(d.act_depth, 8);
    assert_eq!(
        outcome(&f.verify(&request(vec![act_token(&f, 8)]))),
        "allow"
    );
    let dec = f.verify(&request(vec![act_token(&f, 9)]));
    assert_eq!(
        (outcome(&dec), hop(&dec)),
        ("depth_exceeded".into(), Some(0))
    );
    let v = with_limits(
        &f,
        Limits {
            act_depth: 3,
            ..Limits::default()
        },
    );
    assert_eq!(outcome(&decide(&v, vec![act_token(&f, 3)])), "allow");
    assert_eq!(
        outcome(&decide(&v, vec![act_token(&f, 4)])),
        "depth_exceeded"
    );
}

/// A valid chain of `n` access tokens, all issued by b.example, each adding one b.example agent
/// (so at most `act_depth` long).
fn long_chain(f: &Fixture, n: usize) -> Vec<String> {
    let ids = agents(n);
    (0..n)
        .map(|i| {
            let refs: Vec<&str> = ids[..=i].iter().map(String::as_str).collect();
            let aud = ids.get(i + 1).map_or(AUD.to_owned(), Clone::clone);
            f.token(
                "b.example",
                json!({
                    "sub": "user:carol", "aud": [aud], "iat": NOW - 100 + i as i64,
                    "exp": NOW + 300 - i as i64, "scope": "orders:read", "txn": "txn-1",
                    "act": act(&refs),
                }),
            )
        })
        .collect()
}

const GATEWAY: &str = "spiffe://c.example/gateway";

/// A valid Txn-Token replacement chain of `n` tokens (the only kind of chain that can reach 16
/// tokens: an access-token chain adds an `act` level per hop, capped at `act_depth` 8).
fn txn_chain(f: &Fixture, n: usize) -> Request {
    let tokens = (0..n)
        .map(|i| {
            f.txn_token(json!({
                "sub": "user:carol", "aud": "c.example", "txn": "txn-9", "scope": "orders:read",
                "req_wl": [GATEWAY], "iat": NOW - 100 + i as i64, "exp": NOW + 200,
            }))
        })
        .collect();
    let mut req = request(tokens);
    req.peer = Some(GATEWAY.into());
    req
}

#[test]
fn tokens_per_request() {
    let f = PackBuilder::default().chain("max_depth 8").build();
    let d = Limits::default();
    assert_eq!(d.tokens_per_request, 16);
    let dec = f.verify(&txn_chain(&f, 16));
    assert!(dec.is_allowed(), "{:?}", dec.reasons);
    let dec = f.verify(&txn_chain(&f, 17));
    assert_eq!((outcome(&dec), hop(&dec)), ("invalid_request".into(), None));
    // An access-token chain as long as `act_depth` allows.
    let dec = f.verify(&request(long_chain(&f, 8)));
    assert!(dec.is_allowed(), "{:?}", dec.reasons);
    let v = with_limits(
        &f,
        Limits {
            tokens_per_request: 3,
            ..Limits::default()
        },
    );
    assert_eq!(outcome(&decide(&v, long_chain(&f, 3))), "allow");
    assert_eq!(outcome(&decide(&v, long_chain(&f, 4))), "invalid_request");
}

/// `spiffe://b.example/<path>` exactly `len` bytes long.
fn id_of_len(len: usize) -> String {
    let head = "spiffe://b.example/agent/";
    format!("{head}{}", "x".repeat(len - head.len()))
}

#[test]
fn spiffe_id_bytes() {
    let d = Limits::default();
    assert_eq!(d.spiffe_id_bytes, 2048);
    assert!(SpiffeId::parse(&id_of_len(2048)).is_ok());
    assert_eq!(SpiffeId::parse(&id_of_len(2049)), Err(IdError::TooLong));
    let f = Fixture::standard();
    let actor = |id: String| {
        let mut c = single_claims();
        c["act"] = json!({"sub": id});
        f.token("b.example", c)
    };
    assert_eq!(
        outcome(&f.verify(&request(vec![actor(id_of_len(2048))]))),
        "allow"
    );
    let dec = f.verify(&request(vec![actor(id_of_len(2049))]));
    assert_eq!(
        (outcome(&dec), hop(&dec)),
        ("invalid_spiffe_id".into(), Some(0))
    );
    // Lowered: actors and `peer` alike.
    let v = with_limits(
        &f,
        Limits {
            spiffe_id_bytes: 64,
            ..Limits::default()
        },
    );
    assert_eq!(outcome(&decide(&v, vec![actor(id_of_len(64))])), "allow");
    assert_eq!(
        outcome(&decide(&v, vec![actor(id_of_len(65))])),
        "invalid_spiffe_id"
    );
    let mut req = request(vec![actor(id_of_len(65))]);
    req.peer = Some(id_of_len(65));
    let dec = v.verify(&req);
    assert_eq!(
        (outcome(&dec), hop(&dec)),
        ("invalid_spiffe_id".into(), None)
    );
}

fn td_of_len(len: usize) -> String {
    format!("{}.example", "t".repeat(len - ".example".len()))
}

#[test]
fn trust_domain_bytes() {
    let d = Limits::default();
    assert_eq!(d.trust_domain_bytes, 255);
    assert!(TrustDomain::parse(&td_of_len(255)).is_ok());
    assert_eq!(TrustDomain::parse(&td_of_len(256)), Err(IdError::TooLong));
    assert!(SpiffeId::parse(&format!("spiffe://{}/a", td_of_len(255))).is_ok());
    assert_eq!(
        SpiffeId::parse(&format!("spiffe://{}/a", td_of_len(256))),
        Err(IdError::TooLong)
    );
    // In the trust language.
    let trust =
        |td: &str| format!("domain \"{td}\" {{\n  issuer \"https://as\"\n  keys \"k.jwks\"\n}}\n");
    assert!(parse_trust(&trust(&td_of_len(255)), Path::new("t.trust"), &d).is_ok());
    let errors = parse_trust(&trust(&td_of_len(256)), Path::new("t.trust"), &d).unwrap_err();
    assert_eq!(
        errors[0].kind,
        LoadErrorKind::InvalidTrustDomain,
        "{errors:?}"
    );
    // Lowered, on an actor of a real token: b.example is 9 bytes.
    let f = Fixture::standard();
    let t = f.token("b.example", single_claims());
    let v = with_limits(
        &f,
        Limits {
            trust_domain_bytes: 9,
            ..Limits::default()
        },
    );
    assert_eq!(outcome(&decide(&v, vec![t.clone()])), "allow");
    let v = with_limits(
        &f,
        Limits {
            trust_domain_bytes: 8,
            ..Limits::default()
        },
    );
    assert_eq!(outcome(&decide(&v, vec![t])), "invalid_spiffe_id");
}

fn claims_with(members: usize) -> Value {
    let mut c = single_claims();
    let base = c.as_object().unwrap().len();
    for i in base..members {
        c[format!("c{i:03}")] = (i as i64).into();
    }
    assert_eq!(c.as_object().unwrap().len(), members);
    c
}

#[test]
fn claims_per_object() {
    let f = Fixture::standard();
    let d = Limits::default();
    assert_eq!(d.claims_per_object, 64);
    assert_eq!(
        outcome(&f.verify(&request(vec![f.token("b.example", claims_with(64))]))),
        "allow"
    );
    let dec = f.verify(&request(vec![f.token("b.example", claims_with(65))]));
    assert_eq!(
        (outcome(&dec), hop(&dec)),
        ("malformed_token".into(), Some(0))
    );
    // A nested object counts on its own.
    let wide = |n: usize| {
        let mut c = single_claims();
        c["ext"] = (0..n)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        f.token("b.example", c)
    };
    assert_eq!(outcome(&f.verify(&request(vec![wide(64)]))), "allow");
    assert_eq!(
        outcome(&f.verify(&request(vec![wide(65)]))),
        "malformed_token"
    );
    let v = with_limits(
        &f,
        Limits {
            claims_per_object: 10,
            ..Limits::default()
        },
    );
    assert_eq!(
        outcome(&decide(&v, vec![f.token("b.example", claims_with(10))])),
        "allow"
    );
    assert_eq!(
        outcome(&decide(&v, vec![f.token("b.example", claims_with(11))])),
        "malformed_token"
    );
}

/// A request document of exactly `len` bytes (padded in `context`).
fn request_doc(f: &Fixture, len: usize) -> Vec<u8> {
    let mut r = request(chain(f)).to_json();
    r["context"] = json!({"pad": ""});
    let base = serde_json::to_vec(&r).unwrap().len();
    r["context"]["pad"] = "x".repeat(len - base).into();
    let bytes = serde_json::to_vec(&r).unwrap();
    assert_eq!(bytes.len(), len);
    bytes
}

#[test]
fn request_bytes() {
    let f = Fixture::standard();
    let d = Limits::default();
    assert_eq!(d.request_bytes, 256 * 1024);
    let at = request_doc(&f, d.request_bytes);
    assert!(Request::from_json(&at, &d).is_ok());
    assert_eq!(outcome(&f.verifier.verify_json(&at).unwrap()), "allow");
    let over = request_doc(&f, d.request_bytes + 1);
    let dec = f.verifier.verify_json(&over).unwrap();
    assert_eq!((outcome(&dec), hop(&dec)), ("invalid_request".into(), None));
    let v = with_limits(
        &f,
        Limits {
            request_bytes: 4000,
            ..Limits::default()
        },
    );
    assert_eq!(
        outcome(&v.verify_json(&request_doc(&f, 4000)).unwrap()),
        "allow"
    );
    assert_eq!(
        outcome(&v.verify_json(&request_doc(&f, 4001)).unwrap()),
        "invalid_request"
    );
}

/// Copies a built pack's directory, then lets `edit` change it.
fn pack_copy(f: &Fixture, edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    for sub in ["", "keys"] {
        for e in std::fs::read_dir(f.dir.path().join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, dir.path().join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    edit(dir.path());
    dir
}

fn load_kinds(dir: &Path, limits: &Limits) -> Result<(), Vec<LoadErrorKind>> {
    PolicyPack::load(dir, limits)
        .map(|_| ())
        .map_err(|e| e.iter().map(|e| e.kind).collect())
}

/// Pads `pack.trust` with a trailing comment to exactly `len` bytes.
fn pad_trust(dir: &Path, len: usize) {
    let path = dir.join("pack.trust");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push('#');
    let pad = len - text.len() - 1;
    text.push_str(&"x".repeat(pad));
    text.push('\n');
    assert_eq!(text.len(), len);
    std::fs::write(path, text).unwrap();
}

#[test]
fn pack_file_bytes() {
    let f = Fixture::standard();
    let d = Limits::default();
    assert_eq!(d.pack_file_bytes, 1024 * 1024);
    let at = pack_copy(&f, |p| pad_trust(p, d.pack_file_bytes));
    assert_eq!(load_kinds(at.path(), &d), Ok(()));
    let over = pack_copy(&f, |p| pad_trust(p, d.pack_file_bytes + 1));
    assert_eq!(
        load_kinds(over.path(), &d),
        Err(vec![LoadErrorKind::TooLarge])
    );
    // Key sets read on their own follow the same limit.
    let jwks = std::fs::read_to_string(f.dir.path().join("keys/b.example.jwks")).unwrap();
    let padded = |len: usize| format!("{jwks}{}", " ".repeat(len - jwks.len()));
    assert!(parse_key_set(padded(d.pack_file_bytes).as_bytes(), &d).is_ok());
    assert_eq!(
        parse_key_set(padded(d.pack_file_bytes + 1).as_bytes(), &d).unwrap_err(),
        KeySetError::TooLarge(d.pack_file_bytes)
    );
    // Lowered.
    let small = Limits {
        pack_file_bytes: 4096,
        ..Limits::default()
    };
    let at = pack_copy(&f, |p| pad_trust(p, 4096));
    assert_eq!(load_kinds(at.path(), &small), Ok(()));
    let over = pack_copy(&f, |p| pad_trust(p, 4097));
    assert_eq!(
        load_kinds(over.path(), &small),
        Err(vec![LoadErrorKind::TooLarge])
    );
}

fn policies(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("@id(\"p{i}\")\npermit(principal, action == Action::\"a{i}\", resource);\n")
        })
        .collect()
}

#[test]
fn policies_count() {
    let f = Fixture::standard();
    let d = Limits::default();
    assert_eq!(d.policies, 10_000);
    let at = pack_copy(&f, |p| {
        std::fs::write(p.join("policies.cedar"), policies(10_000)).unwrap()
    });
    assert_eq!(load_kinds(at.path(), &d), Ok(()));
    let over = pack_copy(&f, |p| {
        std::fs::write(p.join("policies.cedar"), policies(10_001)).unwrap()
    });
    assert_eq!(
        load_kinds(over.path(), &d),
        Err(vec![LoadErrorKind::TooManyPolicies])
    );
    let small = Limits {
        policies: 3,
        ..Limits::default()
    };
    let at = pack_copy(&f, |p| {
        std::fs::write(p.join("policies.cedar"), policies(3)).unwrap()
    });
    assert_eq!(load_kinds(at.path(), &small), Ok(()));
    let over = pack_copy(&f, |p| {
        std::fs::write(p.join("policies.cedar"), policies(4)).unwrap()
    });
    assert_eq!(
        load_kinds(over.path(), &small),
        Err(vec![LoadErrorKind::TooManyPolicies])
    );
}

fn key_set_of(n: usize) -> String {
    let keys: Vec<Value> = (0..n)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SigningKey::from_seed(&format!("k{i}"), seed)
                .public()
                .to_jwk()
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

#[test]
fn keys_per_set() {
    let d = Limits::default();
    assert_eq!(d.keys_per_set, 1024);
    assert_eq!(
        parse_key_set(key_set_of(1024).as_bytes(), &d)
            .unwrap()
            .keys
            .len(),
        1024
    );
    assert_eq!(
        parse_key_set(key_set_of(1025).as_bytes(), &d).unwrap_err(),
        KeySetError::TooManyKeys(1024)
    );
    // Through a pack: b.example's key file with too many keys is a load error.
    let f = Fixture::standard();
    let small = Limits {
        keys_per_set: 2,
        ..Limits::default()
    };
    let two = pack_copy(&f, |_| {});
    assert_eq!(load_kinds(two.path(), &small), Ok(()));
    let three = pack_copy(&f, |p| {
        std::fs::write(p.join("keys/b.example.jwks"), key_set_of(3)).unwrap()
    });
    assert_eq!(
        load_kinds(three.path(), &small),
        Err(vec![LoadErrorKind::KeySet])
    );
    assert!(parse_key_set(key_set_of(2).as_bytes(), &small).is_ok());
}

#[test]
fn trust_nesting() {
    let d = Limits::default();
    assert_eq!(d.trust_nesting, 8);
    // Nesting is checked before the grammar: at the limit the error (if any) is the grammar's.
    let text = |n: usize| {
        format!(
            "federate \"a.example\" -> \"b.example\" {}{}",
            "{".repeat(n),
            "}".repeat(n)
        )
    };
    let kinds = |n: usize, l: &Limits| -> Vec<LoadErrorKind> {
        match parse_trust(&text(n), Path::new("t.trust"), l) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.kind).collect(),
        }
    };
    assert!(
        !kinds(8, &d).contains(&LoadErrorKind::TooComplex),
        "{:?}",
        kinds(8, &d)
    );
    assert_eq!(kinds(9, &d), vec![LoadErrorKind::TooComplex]);
    // Far past the limit: still one clean error, never a stack overflow.
    assert_eq!(kinds(100_000, &d), vec![LoadErrorKind::TooComplex]);
    // The language needs two levels: a `federate` block with its scope list.
    let two = Limits {
        trust_nesting: 2,
        ..Limits::default()
    };
    let valid = "federate \"a.example\" -> \"b.example\" { scopes [\"x\"] }\n";
    assert!(parse_trust(valid, Path::new("t.trust"), &two).is_ok());
    let one = Limits {
        trust_nesting: 1,
        ..Limits::default()
    };
    let errors = parse_trust(valid, Path::new("t.trust"), &one).unwrap_err();
    assert_eq!(errors[0].kind, LoadErrorKind::TooComplex);
}

#[test]
fn every_limit_has_a_test() {
    // If a field is added to `Limits`, this destructuring stops compiling: add its test.
    let Limits {
        token_bytes: _,
        json_depth: _,
        act_depth: _,
        tokens_per_request: _,
        spiffe_id_bytes: _,
        trust_domain_bytes: _,
        claims_per_object: _,
        request_bytes: _,
        pack_file_bytes: _,
        policies: _,
        keys_per_set: _,
        trust_nesting: _,
    } = Limits::default();
}
