//! The attack catalogue: every conformance case, minted with the test kit's deterministic keys.
//!
//! Shared by the generator (`main.rs` beside this file, which writes `tests/conformance/`) and
//! the conformance test (which checks that the committed files are exactly what this produces).
//! Ed25519 signatures are deterministic and `serde_json` prints object members sorted, so the
//! output is byte-identical on every run.

#[path = "algorithms.rs"]
pub mod algorithms;
#[path = "proofs.rs"]
pub mod proofs;

use base64::Engine as _;
use custody_jose::{sign_with_header, KeySet, SigningKey, B64};
use custody_oracles::tamper;
use custody_tests::{act, issuer, Fixture, ALICE, AUD, BOB, MALLORY, NOW};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Another agent of `b.example`.
const CAROL: &str = "spiffe://b.example/agent/carol";
/// The local gateway agent, `c.example`.
const GATEWAY: &str = "spiffe://c.example/gateway";

/// What a case expects.
pub enum Expect {
    /// The decision is allow.
    Allow,
    /// Deny, with `reasons[0]` of this code and hop.
    Deny(&'static str, Option<usize>),
    /// The pack does not load; an error message contains this text.
    LoadError(&'static str),
}

/// One case: file name (without `.json`) and document.
pub struct Case {
    /// The file stem.
    pub name: String,
    /// The document written to `<name>.json`.
    pub doc: Value,
}

struct Gen {
    f: Fixture,
    out: Vec<Case>,
}

/// Every case, in catalogue order.
pub fn all() -> Vec<Case> {
    let mut g = Gen {
        f: Fixture::standard(),
        out: Vec::new(),
    };
    baselines(&mut g);
    algorithms(&mut g);
    algorithms::cases(&mut g);
    key_selection(&mut g);
    duplicates(&mut g);
    signatures(&mut g);
    times(&mut g);
    audiences(&mut g);
    attenuation(&mut g);
    actors(&mut g);
    federation(&mut g);
    cedar_errors(&mut g);
    sender(&mut g);
    txn_tokens(&mut g);
    identifiers(&mut g);
    oversized(&mut g);
    proofs::cases(&mut g);
    g.out
}

fn standard() -> Value {
    json!({"variant": "standard"})
}

fn request(tokens: &[String]) -> Value {
    json!({"tokens": tokens, "audience": AUD, "action": "orders:read", "now": NOW})
}

fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn expected(e: Expect) -> Value {
    match e {
        Expect::Allow => json!({"decision": "allow", "code": null, "hop": null}),
        Expect::Deny(code, hop) => json!({"decision": "deny", "code": code, "hop": hop}),
        Expect::LoadError(text) => json!({"load_error": text}),
    }
}

impl Gen {
    fn case(
        &mut self,
        name: &str,
        attack: &str,
        description: &str,
        pack: Value,
        req: Value,
        e: Expect,
    ) {
        let mut doc = Map::new();
        doc.insert("description".into(), description.into());
        doc.insert("attack".into(), attack.into());
        doc.insert("pack".into(), pack);
        match req {
            Value::String(text) => doc.insert("request_text".into(), text.into()),
            other => doc.insert("request".into(), other),
        };
        doc.insert("expected".into(), expected(e));
        self.out.push(Case {
            name: name.into(),
            doc: Value::Object(doc),
        });
    }

    /// A single token from `b.example`: Alice-agent acting for user Carol.
    fn single(&self, patch: Value) -> String {
        self.f.token("b.example", with(single_claims(), patch))
    }

    fn t0(&self, patch: Value) -> String {
        self.f.token("a.example", with(t0(), patch))
    }

    fn t1(&self, patch: Value) -> String {
        self.f.token("b.example", with(t1(), patch))
    }

    /// `b.example`'s standard token under `header`, signed by `b.example`'s key.
    fn headed(&self, header: Value) -> String {
        let mut claims = single_claims();
        claims["iss"] = issuer("b.example").into();
        self.f.with_header("b.example", header, claims)
    }

    /// A token whose header and payload are given as raw JSON text, signed by `domain`.
    fn raw(&self, domain: &str, header: &str, payload: &str) -> String {
        raw_token(self.f.key(domain), header, payload)
    }
}

fn raw_token(key: &SigningKey, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = B64.encode(key.sign_bytes(input.as_bytes()));
    format!("{input}.{sig}")
}

fn single_claims() -> Value {
    json!({
        "sub": "user:carol", "aud": AUD, "iat": NOW - 10, "exp": NOW + 300,
        "scope": "orders:read", "act": {"sub": ALICE},
    })
}

fn t0() -> Value {
    custody_tests::t0_claims()
}

fn t1() -> Value {
    custody_tests::t1_claims()
}

fn b_header() -> Value {
    json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt"})
}

fn payload_text() -> String {
    let mut c = single_claims();
    c["iss"] = issuer("b.example").into();
    c.to_string()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn baselines(g: &mut Gen) {
    let single = g.single(json!({}));
    let chain = vec![g.t0(json!({})), g.t1(json!({}))];
    let three = three_hop(g, json!({}), json!({}), json!({}));
    g.case("baseline-single-token", "baseline", "A single token of b.example's agent for its own user: allowed. Every attack below changes one thing about a baseline.", standard(), request(&[single]), Expect::Allow);
    g.case("baseline-two-domain-chain", "baseline", "Bob (a.example) delegates to Alice (b.example), who calls the orders service (c.example): allowed.", standard(), request(&chain), Expect::Allow);
    g.case(
        "baseline-three-hop-chain",
        "baseline",
        "Bob, then Alice, then the local gateway: three tokens, three domains, allowed.",
        standard(),
        request(&three),
        Expect::Allow,
    );
}

/// Bob -> Alice -> the local gateway, each patch applied to its hop.
fn three_hop(g: &Gen, p0: Value, p1: Value, p2: Value) -> Vec<String> {
    let t1c = with(t1(), json!({"aud": [GATEWAY]}));
    let t2c = json!({
        "sub": "user:alice", "aud": AUD, "iat": NOW - 20, "exp": NOW + 200,
        "scope": "orders:read", "txn": "txn-1", "act": act(&[BOB, ALICE, GATEWAY]),
    });
    vec![
        g.t0(p0),
        g.f.token("b.example", with(t1c, p1)),
        g.f.token("c.example", with(t2c, p2)),
    ]
}

fn algorithms(g: &mut Gen) {
    let none_header = json!({"alg": "none", "kid": "b.example-k1", "typ": "at+jwt"});
    let unsigned = {
        let h = B64.encode(none_header.to_string());
        let p = B64.encode(payload_text());
        format!("{h}.{p}.")
    };
    g.case(
        "alg-none-unsigned",
        "algorithm confusion",
        "`alg` `none` with an empty signature (RFC 8725 §3.1).",
        standard(),
        request(&[unsigned]),
        Expect::Deny("alg_not_allowed", Some(0)),
    );
    let signed_none = g.headed(none_header);
    g.case("alg-none-signed", "algorithm confusion", "`alg` `none` but a valid Ed25519 signature: the header alone decides, and `none` is refused.", standard(), request(&[signed_none]), Expect::Deny("alg_not_allowed", Some(0)));
    let public = g.f.key("b.example").public();
    let mut set = KeySet::new();
    set.insert(public.clone()).unwrap();
    let secrets: [(&str, Vec<u8>, &str); 3] = [
        (
            "alg-hs256-raw-public-key",
            public.ed25519().unwrap().to_bytes().to_vec(),
            "the raw 32-byte public key",
        ),
        (
            "alg-hs256-public-jwk-x",
            B64.encode(public.ed25519().unwrap().to_bytes())
                .into_bytes(),
            "the JWK's base64url `x` text",
        ),
        (
            "alg-hs256-public-jwks-text",
            set.to_jwks().to_string().into_bytes(),
            "the published JWKS document",
        ),
    ];
    for (name, secret, what) in secrets {
        let h =
            B64.encode(json!({"alg": "HS256", "kid": "b.example-k1", "typ": "at+jwt"}).to_string());
        let p = B64.encode(payload_text());
        let input = format!("{h}.{p}");
        let mac = B64.encode(hmac_sha256(&secret, input.as_bytes()));
        let desc = format!("HS256 key confusion: an HMAC keyed with {what} of `b.example`'s key.");
        g.case(
            name,
            "algorithm confusion",
            &desc,
            standard(),
            request(&[format!("{input}.{mac}")]),
            Expect::Deny("alg_not_allowed", Some(0)),
        );
    }
    for (name, alg) in [
        ("alg-rs256-label", "RS256"),
        ("alg-es256-label", "ES256"),
        ("alg-eddsa-lowercase", "eddsa"),
        ("alg-ed448", "Ed448"),
    ] {
        let t = g.headed(json!({"alg": alg, "kid": "b.example-k1", "typ": "at+jwt"}));
        let desc = format!(
            "`alg` `{alg}` on an Ed25519-signed token: only `EdDSA` and `Ed25519`, case-sensitive."
        );
        g.case(
            name,
            "algorithm confusion",
            &desc,
            standard(),
            request(&[t]),
            Expect::Deny("alg_not_allowed", Some(0)),
        );
    }
    let t = g.headed(json!({"kid": "b.example-k1", "typ": "at+jwt"}));
    g.case(
        "alg-absent",
        "algorithm confusion",
        "No `alg` at all.",
        standard(),
        request(&[t]),
        Expect::Deny("alg_not_allowed", Some(0)),
    );
}

fn key_selection(g: &mut Gen) {
    let a_key_a_kid = {
        let mut c = single_claims();
        c["iss"] = issuer("b.example").into();
        sign_with_header(
            g.f.key("a.example"),
            &json!({"alg": "EdDSA", "kid": "a.example-k1", "typ": "at+jwt"}),
            &c,
        )
        .unwrap()
    };
    g.case("kid-from-another-domain", "key substitution", "A token claiming `iss` b.example signed with a.example's key under a.example's `kid`: `kid` is looked up only in the issuer's domain.", standard(), request(&[a_key_a_kid]), Expect::Deny("unknown_key", Some(0)));
    let b_key_a_kid = g.headed(json!({"alg": "EdDSA", "kid": "a.example-k1", "typ": "at+jwt"}));
    g.case(
        "kid-of-another-domain-own-signature",
        "key substitution",
        "b.example's own signature but a.example's `kid`.",
        standard(),
        request(&[b_key_a_kid]),
        Expect::Deny("unknown_key", Some(0)),
    );
    let no_kid = g.headed(json!({"alg": "EdDSA", "typ": "at+jwt"}));
    g.case(
        "kid-absent",
        "key substitution",
        "No `kid`: custody never tries every key.",
        standard(),
        request(&[no_kid]),
        Expect::Deny("unknown_key", Some(0)),
    );
    let rogue = SigningKey::from_seed("b.example-k1", [0x66; 32]);
    let forged = sign_with_header(
        &rogue,
        &b_header(),
        &serde_json::from_str::<Value>(&payload_text()).unwrap(),
    )
    .unwrap();
    g.case(
        "kid-right-key-wrong",
        "key substitution",
        "An attacker's key under b.example's `kid`.",
        standard(),
        request(&[forged]),
        Expect::Deny("bad_signature", Some(0)),
    );
    let rogue_jwk = rogue.public().to_jwk();
    let smuggling = [
        (
            "header-jwk-embedded",
            json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt", "jwk": rogue_jwk}),
            "the attacker's public key embedded as `jwk`",
        ),
        (
            "header-jku-url",
            json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt", "jku": "https://evil.example/jwks"}),
            "a `jku` key-set URL",
        ),
        (
            "header-x5u-url",
            json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt", "x5u": "https://evil.example/cert.pem"}),
            "an `x5u` certificate URL",
        ),
        (
            "header-x5c-chain",
            json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt", "x5c": ["MIIBfake"]}),
            "an `x5c` certificate chain",
        ),
        (
            "header-crit-exp",
            json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt", "crit": ["exp"]}),
            "`crit` naming a claim",
        ),
        (
            "header-crit-empty",
            json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt", "crit": []}),
            "an empty `crit`",
        ),
        (
            "header-crit-unknown",
            json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt", "crit": ["x-custom"], "x-custom": true}),
            "`crit` naming an unknown extension",
        ),
        (
            "header-b64-false",
            json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt", "b64": false, "crit": ["b64"]}),
            "RFC 7797 `b64: false`",
        ),
        (
            "header-cty-nested",
            json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "at+jwt", "cty": "JWT"}),
            "`cty` `JWT` (a nested token)",
        ),
    ];
    for (name, header, what) in smuggling {
        let key = if name == "header-jwk-embedded" {
            &rogue
        } else {
            g.f.key("b.example")
        };
        let t = sign_with_header(
            key,
            &header,
            &serde_json::from_str::<Value>(&payload_text()).unwrap(),
        )
        .unwrap();
        let desc = format!("A header carrying {what}: refused, never followed.");
        g.case(
            name,
            "key substitution",
            &desc,
            standard(),
            request(&[t]),
            Expect::Deny("malformed_token", Some(0)),
        );
    }
    let wit = g.headed(json!({"alg": "EdDSA", "kid": "b.example-k1", "typ": "wit+jwt"}));
    g.case(
        "typ-wit-as-access-token",
        "token-class confusion",
        "A workload identity token (`wit+jwt`) presented as an access token.",
        standard(),
        request(&[wit]),
        Expect::Deny("wrong_token_type", Some(0)),
    );
    let txn_as_hop1 = g.f.typed("b.example", Some("txntoken+jwt"), t1());
    g.case(
        "typ-txntoken-in-access-chain",
        "token-class confusion",
        "A Txn-Token typed hop inside an access-token chain.",
        standard(),
        request(&[g.t0(json!({})), txn_as_hop1]),
        Expect::Deny("wrong_token_type", Some(1)),
    );
}

fn duplicates(g: &mut Gen) {
    let p = payload_text();
    let dup_alg = g.raw(
        "b.example",
        r#"{"alg":"EdDSA","alg":"none","kid":"b.example-k1","typ":"at+jwt"}"#,
        &p,
    );
    g.case("duplicate-header-alg", "duplicate keys", "`alg` twice in the header: libraries that keep the first and libraries that keep the last disagree.", standard(), request(&[dup_alg]), Expect::Deny("malformed_token", Some(0)));
    let dup_kid = g.raw(
        "b.example",
        r#"{"alg":"EdDSA","kid":"a.example-k1","kid":"b.example-k1","typ":"at+jwt"}"#,
        &p,
    );
    g.case(
        "duplicate-header-kid",
        "duplicate keys",
        "`kid` twice in the header.",
        standard(),
        request(&[dup_kid]),
        Expect::Deny("malformed_token", Some(0)),
    );
    let h = b_header().to_string();
    let dup_sub = p.replacen(
        r#""sub":"user:carol""#,
        r#""sub":"user:carol","sub":"user:admin""#,
        1,
    );
    let t = g.raw("b.example", &h, &dup_sub);
    g.case(
        "duplicate-payload-sub",
        "duplicate keys",
        "`sub` twice in the payload.",
        standard(),
        request(&[t]),
        Expect::Deny("malformed_token", Some(0)),
    );
    let dup_aud = p.replacen(
        r#""aud":"spiffe://c.example/orders""#,
        r#""aud":"spiffe://c.example/other","aud":"spiffe://c.example/orders""#,
        1,
    );
    let t = g.raw("b.example", &h, &dup_aud);
    g.case(
        "duplicate-payload-aud",
        "duplicate keys",
        "`aud` twice in the payload, the last one ours.",
        standard(),
        request(&[t]),
        Expect::Deny("malformed_token", Some(0)),
    );
    let dup_act = p.replacen(
        &format!(r#""act":{{"sub":"{ALICE}"}}"#),
        &format!(r#""act":{{"sub":"{MALLORY}","sub":"{ALICE}"}}"#),
        1,
    );
    assert_ne!(dup_act, p);
    let t = g.raw("b.example", &h, &dup_act);
    g.case(
        "duplicate-nested-act-sub",
        "duplicate keys",
        "`act.sub` twice in the nested `act` object.",
        standard(),
        request(&[t]),
        Expect::Deny("malformed_token", Some(0)),
    );
    let dup_escaped = p.replacen(
        r#""sub":"user:carol""#,
        r#""sub":"user:carol","s\u0075b":"user:admin""#,
        1,
    );
    let t = g.raw("b.example", &h, &dup_escaped);
    g.case(
        "duplicate-payload-escaped-name",
        "duplicate keys",
        "`sub` and `s\\u0075b`: the same member name once unescaped.",
        standard(),
        request(&[t]),
        Expect::Deny("malformed_token", Some(0)),
    );
    let single = g.single(json!({}));
    let text = format!(
        r#"{{"tokens":["{single}"],"audience":"{AUD}","audience":"spiffe://c.example/other","action":"orders:read","now":{NOW}}}"#
    );
    g.case(
        "duplicate-request-audience",
        "duplicate keys",
        "`audience` twice in the request document.",
        standard(),
        Value::String(text),
        Expect::Deny("invalid_request", None),
    );
}

fn signatures(g: &mut Gen) {
    let base = g.single(json!({}));
    let cases = [
        ("sig-bit-flip", 1, "one bit of the signature flipped"),
        ("sig-s-plus-order", 2, "`S` replaced by `S + L`: the same scalar mod L, a malleated non-canonical signature that cofactored or lax verifiers accept"),
        ("sig-63-bytes", 3, "the signature one byte short"),
        ("sig-small-order-r", 4, "`R` replaced by the identity point (small order)"),
    ];
    for (name, mode, what) in cases {
        let desc = format!("The standard token with {what}.");
        g.case(
            name,
            "signature malleability",
            &desc,
            standard(),
            request(&[tamper(&base, mode)]),
            Expect::Deny("bad_signature", Some(0)),
        );
    }
    let padded = format!("{base}==");
    g.case(
        "sig-base64-padding",
        "signature malleability",
        "The signature with base64 padding: not the canonical unpadded form.",
        standard(),
        request(&[padded]),
        Expect::Deny("malformed_token", Some(0)),
    );
    let (input, sig) = base.rsplit_once('.').unwrap();
    let mut chars: Vec<char> = sig.chars().collect();
    let last = chars.pop().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    chars.push(alphabet.chars().nth(idx | 1).unwrap());
    let malleated: String = chars.into_iter().collect();
    g.case("sig-base64-trailing-bits", "signature malleability", "The signature's last base64url character with non-zero trailing bits: the same bytes in a second spelling.", standard(), request(&[format!("{input}.{malleated}")]), Expect::Deny("malformed_token", Some(0)));
    // Small-order public keys never make it into a pack.
    for (name, x, what) in [
        (
            "key-small-order-identity",
            identity_point(),
            "the identity point",
        ),
        (
            "key-small-order-order-2",
            order_two_point(),
            "the point of order 2",
        ),
    ] {
        let desc = format!("b.example's key set publishes {what} as an Ed25519 key: with a small-order `A`, one signature verifies for many messages, so the loader refuses the key.");
        g.case(
            name,
            "signature malleability",
            &desc,
            small_order_pack(&g.f, x),
            request(std::slice::from_ref(&base)),
            Expect::LoadError("small-order"),
        );
    }
}

fn identity_point() -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = 1;
    p
}

fn order_two_point() -> [u8; 32] {
    // y = -1 mod p: 2^255 - 20, little-endian.
    let mut p = [0xffu8; 32];
    p[0] = 0xec;
    p[31] = 0x7f;
    p
}

/// A pack whose `b.example` key set holds the raw point `x`.
fn small_order_pack(f: &Fixture, x: [u8; 32]) -> Value {
    let mut c = KeySet::new();
    c.insert(f.key("c.example").public()).unwrap();
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "b.example-k1", "x": B64.encode(x)}]});
    let trust = "local \"c.example\"\n\
        domain \"b.example\" {\n  issuer \"https://as.b.example\"\n  keys \"keys/b.jwks\"\n}\n\
        domain \"c.example\" {\n  issuer \"https://as.c.example\"\n  keys \"keys/c.jwks\"\n}\n\
        federate \"b.example\" -> \"c.example\" { scopes [\"orders:read\"] }\n";
    json!({"files": {
        "pack.trust": trust,
        "keys/b.jwks": jwks.to_string(),
        "keys/c.jwks": c.to_jwks().to_string(),
    }})
}

/// b.example and c.example (local) with their keys, and a `chain` block holding `setting`.
fn chain_pack(f: &Fixture, setting: &str) -> Value {
    let keys = |d: &str| {
        let mut k = KeySet::new();
        k.insert(f.key(d).public()).unwrap();
        k.to_jwks().to_string()
    };
    let trust = format!(
        "local \"c.example\"\n\
        domain \"b.example\" {{\n  issuer \"https://as.b.example\"\n  keys \"keys/b.jwks\"\n}}\n\
        domain \"c.example\" {{\n  issuer \"https://as.c.example\"\n  keys \"keys/c.jwks\"\n}}\n\
        federate \"b.example\" -> \"c.example\" {{ scopes [\"orders:read\"] }}\n\
        chain {{\n  {setting}\n}}\n"
    );
    json!({"files": {
        "pack.trust": trust,
        "keys/b.jwks": keys("b.example"),
        "keys/c.jwks": keys("c.example"),
    }})
}

fn times(g: &mut Gen) {
    let base = json!({"iat": NOW - 100});
    let cases: [(&str, Value, Expect, &str); 9] = [
        (
            "time-expired-at-skew-boundary",
            json!({"exp": NOW - 30}),
            Expect::Deny("expired", Some(0)),
            "`exp` = now − 30 with 30 s skew: now ≥ exp + skew, expired",
        ),
        (
            "time-expired-one-second-past",
            json!({"exp": NOW - 31}),
            Expect::Deny("expired", Some(0)),
            "`exp` = now − 31: expired",
        ),
        (
            "time-expiry-one-second-inside",
            json!({"exp": NOW - 29}),
            Expect::Allow,
            "`exp` = now − 29: still inside the skew, allowed",
        ),
        (
            "time-nbf-at-skew-boundary",
            json!({"nbf": NOW + 30, "exp": NOW + 300}),
            Expect::Allow,
            "`nbf` = now + 30: now + skew = nbf, allowed",
        ),
        (
            "time-nbf-one-second-past",
            json!({"nbf": NOW + 31, "exp": NOW + 300}),
            Expect::Deny("not_yet_valid", Some(0)),
            "`nbf` = now + 31: not yet valid",
        ),
        (
            "time-iat-at-skew-boundary",
            json!({"iat": NOW + 30, "exp": NOW + 300}),
            Expect::Allow,
            "`iat` = now + 30: allowed",
        ),
        (
            "time-iat-one-second-future",
            json!({"iat": NOW + 31, "exp": NOW + 300}),
            Expect::Deny("issued_in_future", Some(0)),
            "`iat` = now + 31: issued in the future",
        ),
        (
            "time-lifetime-at-limit",
            json!({"iat": NOW - 10, "exp": NOW - 10 + 3600}),
            Expect::Allow,
            "`exp − iat` = 3600 s, the default `max_lifetime`: allowed",
        ),
        (
            "time-lifetime-one-over",
            json!({"iat": NOW - 10, "exp": NOW - 10 + 3601}),
            Expect::Deny("lifetime_too_long", Some(0)),
            "`exp − iat` = 3601 s: too long",
        ),
    ];
    for (name, patch, e, what) in cases {
        let t = g.single(with(base.clone(), patch));
        g.case(
            name,
            "time",
            &format!("{what}."),
            standard(),
            request(&[t]),
            e,
        );
    }
    let t = g.single(json!({"exp": "1767225900"}));
    g.case(
        "time-exp-as-string",
        "time",
        "`exp` as a string: a claim of the wrong type.",
        standard(),
        request(&[t]),
        Expect::Deny("malformed_token", Some(0)),
    );
    let t = g.single(json!({"exp": 1.0e30}));
    g.case(
        "time-exp-huge-float",
        "time",
        "`exp` = 1e30: not a whole number of seconds in range.",
        standard(),
        request(&[t]),
        Expect::Deny("malformed_token", Some(0)),
    );
    // Whole-valued dates written as a fraction or with an exponent: one reader refuses them
    // everywhere (DESIGN.md, Clarifications), so no check can read them one way and another
    // check the other.
    let written = [
        (
            "time-iat-whole-float",
            "iat",
            format!("{}.0", NOW - 10),
            "`iat` written `…590.0`",
        ),
        (
            "time-exp-exponent",
            "exp",
            "1.7672259e9".to_owned(),
            "`exp` written `1.7672259e9`",
        ),
        (
            "time-nbf-whole-float",
            "nbf",
            format!("{}.0", NOW - 10),
            "`nbf` written `…590.0`",
        ),
        (
            "time-iat-integer-exponent",
            "iat",
            "1767225590e0".to_owned(),
            "`iat` written `1767225590e0`",
        ),
    ];
    for (name, claim, text, what) in written {
        let mut c = single_claims();
        c["iss"] = issuer("b.example").into();
        c[claim] = json!(0);
        let payload = c
            .to_string()
            .replace(&format!("\"{claim}\":0"), &format!("\"{claim}\":{text}"));
        let t = g.raw("b.example", &b_header().to_string(), &payload);
        g.case(
            name,
            "time",
            &format!("{what}: a whole number of seconds, but not written as an integer."),
            standard(),
            request(&[t]),
            Expect::Deny("malformed_token", Some(0)),
        );
    }
}

fn audiences(g: &mut Gen) {
    let cases: [(&str, Value, &str); 7] = [
        (
            "aud-another-service",
            json!("spiffe://c.example/payments"),
            "a token for another service of the same domain",
        ),
        (
            "aud-array-near-misses",
            json!([
                "spiffe://c.example/order",
                "spiffe://c.example/orders/",
                "spiffe://c.example/orders/admin",
                " spiffe://c.example/orders"
            ]),
            "a list of near misses (prefix, trailing slash, sub-path, leading space)",
        ),
        (
            "aud-case-change-domain",
            json!("spiffe://C.example/orders"),
            "the trust domain upper-cased",
        ),
        (
            "aud-case-change-path",
            json!("spiffe://c.example/Orders"),
            "the path capitalised",
        ),
        (
            "aud-case-change-scheme",
            json!("SPIFFE://c.example/orders"),
            "the scheme upper-cased",
        ),
        (
            "aud-confusable-domain",
            json!("spiffe://c.ex\u{0430}mple/orders"),
            "a Cyrillic `а` in the trust domain",
        ),
        (
            "aud-trust-domain-only",
            json!("spiffe://c.example"),
            "the whole trust domain instead of the service",
        ),
    ];
    for (name, aud, what) in cases {
        let t = g.single(json!({"aud": aud}));
        let desc =
            format!("Audience confusion: `aud` is {what}; it must contain the audience exactly.");
        g.case(
            name,
            "audience confusion",
            &desc,
            standard(),
            request(&[t]),
            Expect::Deny("audience_mismatch", Some(0)),
        );
    }
    let t = g.single(json!({"aud": [ "spiffe://c.example/payments", AUD]}));
    g.case(
        "aud-list-containing-ours",
        "audience confusion",
        "A list holding our audience among others: allowed (RFC 7519 §4.1.3).",
        standard(),
        request(&[t]),
        Expect::Allow,
    );
    let chain = vec![
        g.t0(json!({})),
        g.t1(json!({"aud": "spiffe://c.example/payments"})),
    ];
    g.case(
        "aud-chain-presented-elsewhere",
        "audience confusion",
        "A valid chain whose presented token was issued for another service, replayed here.",
        standard(),
        request(&chain),
        Expect::Deny("audience_mismatch", Some(1)),
    );
}

fn attenuation(g: &mut Gen) {
    let chain = vec![
        g.t0(json!({"scope": "orders:read"})),
        g.t1(json!({"scope": "orders:read orders:write"})),
    ];
    g.case(
        "scope-widening-hop-1",
        "scope escalation",
        "t1 adds `orders:write` that t0 did not grant.",
        standard(),
        request(&chain),
        Expect::Deny("scope_escalation", Some(1)),
    );
    let three = three_hop(
        g,
        json!({}),
        json!({"scope": "orders:read"}),
        json!({"scope": "orders:read orders:write"}),
    );
    g.case(
        "scope-widening-hop-2",
        "scope escalation",
        "A three-hop chain whose last hop widens `orders:read` back to `orders:write`.",
        standard(),
        request(&three),
        Expect::Deny("scope_escalation", Some(2)),
    );
    let three = three_hop(
        g,
        json!({"scope": "orders:read"}),
        json!({"scope": "orders:read orders:write"}),
        json!({}),
    );
    g.case(
        "scope-widening-hop-1-of-3",
        "scope escalation",
        "A three-hop chain whose middle hop widens the origin's scope.",
        standard(),
        request(&three),
        Expect::Deny("scope_escalation", Some(1)),
    );
    let chain = vec![
        g.t0(json!({"scope": "orders:read"})),
        g.t1(json!({"scope": "orders:read *"})),
    ];
    g.case(
        "scope-widening-wildcard",
        "scope escalation",
        "t1 adds a literal `*` scope.",
        standard(),
        request(&chain),
        Expect::Deny("scope_escalation", Some(1)),
    );
    let chain = vec![g.t0(json!({})), g.t1(json!({"exp": NOW + 601}))];
    g.case(
        "expiry-extended-hop-1",
        "scope escalation",
        "t1 outlives t0 by a second.",
        standard(),
        request(&chain),
        Expect::Deny("expiry_extended", Some(1)),
    );
    let three = three_hop(g, json!({}), json!({}), json!({"exp": NOW + 301}));
    g.case(
        "expiry-extended-hop-2",
        "scope escalation",
        "The last of three hops outlives its predecessor by a second.",
        standard(),
        request(&three),
        Expect::Deny("expiry_extended", Some(2)),
    );
    let chain = vec![
        g.t0(json!({"scope": "orders:write"})),
        g.t1(json!({"scope": "orders:write"})),
    ];
    g.case(
        "scope-missing-action",
        "scope escalation",
        "A chain granting `orders:write` used for `orders:read`.",
        standard(),
        request(&chain),
        Expect::Deny("scope_missing", Some(1)),
    );
}

fn actors(g: &mut Gen) {
    let rewrite = vec![
        g.t0(json!({})),
        g.t1(json!({"act": act(&[MALLORY, ALICE])})),
    ];
    g.case(
        "actor-rewritten",
        "actor rewriting",
        "t1 replaces Bob, the earlier actor, with Mallory.",
        standard(),
        request(&rewrite),
        Expect::Deny("chain_broken", Some(1)),
    );
    let dropped = vec![g.t0(json!({})), g.t1(json!({"act": act(&[ALICE])}))];
    g.case(
        "actor-dropped",
        "actor rewriting",
        "t1 drops Bob from the actor chain.",
        standard(),
        request(&dropped),
        Expect::Deny("chain_broken", Some(1)),
    );
    let two = vec![
        g.t0(json!({})),
        g.t1(json!({"act": act(&[BOB, CAROL, ALICE])})),
    ];
    g.case(
        "actor-two-added",
        "actor rewriting",
        "t1 adds two actors at once (Carol smuggled in).",
        standard(),
        request(&two),
        Expect::Deny("chain_broken", Some(1)),
    );
    let not_aud = vec![g.t0(json!({"aud": [CAROL]})), g.t1(json!({}))];
    g.case(
        "actor-not-in-previous-aud",
        "actor rewriting",
        "t0 was issued for Carol, but Alice continues the chain with it.",
        standard(),
        request(&not_aud),
        Expect::Deny("chain_broken", Some(1)),
    );
    let sub = vec![g.t0(json!({})), g.t1(json!({"sub": "user:admin"}))];
    g.case(
        "subject-rewritten",
        "actor rewriting",
        "t1 changes the user the chain acts for.",
        standard(),
        request(&sub),
        Expect::Deny("subject_mismatch", Some(1)),
    );
    let txn = vec![g.t0(json!({})), g.t1(json!({"txn": "txn-2"}))];
    g.case(
        "txn-spliced",
        "actor rewriting",
        "t1 comes from another transaction: hops spliced together.",
        standard(),
        request(&txn),
        Expect::Deny("txn_mismatch", Some(1)),
    );
    let client = g.single(json!({"client_id": CAROL}));
    g.case(
        "client-id-not-current-actor",
        "actor rewriting",
        "A SPIFFE `client_id` naming an agent other than the current actor.",
        standard(),
        request(&[client]),
        Expect::Deny("chain_broken", Some(0)),
    );
    let earlier = vec![g.t0(json!({})), g.t1(json!({"iat": NOW - 91}))];
    g.case(
        "hop-issued-before-previous",
        "actor rewriting",
        "t1 issued 31 s before t0 (skew 30): a hop cannot predate the token it continues.",
        standard(),
        request(&earlier),
        Expect::Deny("chain_broken", Some(1)),
    );

    let looped = g.f.token(
        "a.example",
        with(
            single_claims(),
            json!({"iss": issuer("a.example"), "act": act(&[BOB, CAROL, BOB])}),
        ),
    );
    g.case(
        "loop-single-token",
        "delegation loop",
        "One token whose `act` chain is Bob → Carol → Bob.",
        standard(),
        request(&[looped]),
        Expect::Deny("delegation_loop", Some(2)),
    );
    let three = vec![
        g.t0(json!({})),
        g.t1(json!({"aud": [BOB]})),
        g.f.token("a.example", json!({"sub": "user:alice", "aud": AUD, "iat": NOW - 20, "exp": NOW + 200, "scope": "orders:read", "txn": "txn-1", "act": act(&[BOB, ALICE, BOB])})),
    ];
    g.case(
        "loop-across-hops",
        "delegation loop",
        "Bob → Alice → Bob across three tokens.",
        standard(),
        request(&three),
        Expect::Deny("delegation_loop", Some(2)),
    );

    let deep = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("spiffe://b.example/agent/a{i}"))
            .collect()
    };
    for (name, n, e, what) in [
        (
            "depth-at-max",
            5,
            Expect::Allow,
            "five actors, the default `max_depth`: allowed",
        ),
        (
            "depth-one-over-max",
            6,
            Expect::Deny("depth_exceeded", Some(5)),
            "six actors with `max_depth` 5",
        ),
    ] {
        let ids = deep(n);
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let t = g.single(json!({"act": act(&refs)}));
        g.case(
            name,
            "depth",
            &format!("A single b.example token with {what}."),
            standard(),
            request(&[t]),
            e,
        );
    }
    for (name, setting, what) in [
        (
            "depth-max-depth-over-8",
            "max_depth 9",
            "`max_depth 9`: more actors than `act` may nest",
        ),
        (
            "domains-max-domains-over-16",
            "max_domains 17",
            "`max_domains 17`: more domains than a request has tokens",
        ),
    ] {
        let t = g.single(json!({}));
        g.case(
            name,
            "depth",
            &format!("A pack with {what}: `max_depth` is 1 to 8 and `max_domains` 1 to 16, so the pack does not load."),
            chain_pack(&g.f, setting),
            request(&[t]),
            Expect::LoadError(if setting.starts_with("max_depth") { "must be 1 to 8" } else { "must be 1 to 16" }),
        );
    }
    let ids = deep(9);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let t = g.single(json!({"act": act(&refs)}));
    let deep_pack = json!({"variant": "standard", "chain": "max_depth 8"});
    g.case(
        "act-nesting-over-8",
        "depth",
        "`act` nested nine deep (the `act_depth` limit is 8), even with `max_depth 8`, the most a pack may allow.",
        deep_pack,
        request(&[t]),
        Expect::Deny("depth_exceeded", Some(0)),
    );
    let three = three_hop(g, json!({}), json!({}), json!({}));
    g.case(
        "depth-chain-over-max",
        "depth",
        "The three-hop chain under `max_depth 2`.",
        json!({"variant": "standard", "chain": "max_depth 2"}),
        request(&three),
        Expect::Deny("depth_exceeded", Some(2)),
    );
}

/// Cedar policies that fail to evaluate (security review finding 1): Cedar skips them, custody
/// denies `policy_error`.
fn cedar_errors(g: &mut Gen) {
    let policies = "@id(\"read\")\npermit (principal, action == Action::\"orders:read\", resource);\n\
        @id(\"block-flagged\")\nforbid (principal, action, resource) when { context.request.blocked };\n";
    let pack = json!({"variant": "standard", "cedar": policies});
    let chain = vec![g.t0(json!({})), g.t1(json!({}))];
    let cases = [
        (
            "cedar-forbid-attribute-missing",
            None,
            "a request without `blocked`",
            Expect::Deny("policy_error", None),
        ),
        (
            "cedar-forbid-attribute-string",
            Some(json!({"blocked": "yes"})),
            "`blocked` sent as a string",
            Expect::Deny("policy_error", None),
        ),
        (
            "cedar-forbid-attribute-true",
            Some(json!({"blocked": true})),
            "`blocked: true`",
            Expect::Deny("policy_denied", None),
        ),
        (
            "cedar-forbid-attribute-false",
            Some(json!({"blocked": false})),
            "`blocked: false`",
            Expect::Allow,
        ),
    ];
    for (name, context, what, e) in cases {
        let mut req = request(&chain);
        if let Some(c) = context {
            req["context"] = c;
        }
        g.case(
            name,
            "policy evaluation",
            &format!("A `forbid` on `context.request.blocked` with no schema, {what}: a policy that fails to evaluate denies the call instead of being skipped by Cedar."),
            pack.clone(),
            req,
            e,
        );
    }
}

fn federation(g: &mut Gen) {
    let three = three_hop(g, json!({}), json!({}), json!({}));
    g.case(
        "domains-over-max",
        "federation",
        "The three-domain chain under `max_domains 2`.",
        json!({"variant": "standard", "chain": "max_domains 2"}),
        request(&three),
        Expect::Deny("too_many_domains", None),
    );
    let pivot = vec![
        g.t0(json!({"aud": [MALLORY]})),
        g.f.token("d.example", json!({"sub": "user:alice", "aud": AUD, "iat": NOW - 30, "exp": NOW + 300, "scope": "orders:read", "txn": "txn-1", "act": act(&[BOB, MALLORY])})),
    ];
    g.case("pivot-unfederated-domain", "federation", "Bob's token handed to Mallory in d.example, which no domain federates with, who calls the service.", standard(), request(&pivot), Expect::Deny("domain_not_federated", Some(1)));
    let through = vec![
        g.t0(json!({"aud": [MALLORY]})),
        g.f.token("d.example", json!({"sub": "user:alice", "aud": [ALICE], "iat": NOW - 40, "exp": NOW + 500, "scope": "orders:read", "txn": "txn-1", "act": act(&[BOB, MALLORY])})),
        g.f.token("b.example", json!({"sub": "user:alice", "aud": AUD, "iat": NOW - 30, "exp": NOW + 300, "scope": "orders:read", "txn": "txn-1", "act": act(&[BOB, MALLORY, ALICE])})),
    ];
    g.case("pivot-through-unfederated-domain", "federation", "A compromised agent in d.example relays Bob's chain on to Alice: a → d is not federated, even though b → c is.", standard(), request(&through), Expect::Deny("domain_not_federated", Some(1)));
    let delete = vec![
        g.t0(json!({"scope": "orders:read orders:delete"})),
        g.t1(json!({"scope": "orders:delete"})),
    ];
    let mut req = request(&delete);
    req["action"] = "orders:delete".into();
    g.case(
        "federation-scope-not-carried",
        "federation",
        "`orders:delete` across a → b, which carries only read and write.",
        standard(),
        req,
        Expect::Deny("federation_scope_denied", Some(1)),
    );
    let vouch = g.single(json!({"act": act(&[BOB, ALICE])}));
    g.case("vouching-for-foreign-actor", "federation", "b.example alone vouches that Bob of a.example delegated to Alice: no a.example token counted Bob.", standard(), request(&[vouch]), Expect::Deny("issuer_not_in_chain", Some(0)));
    let outsider = vec![
        g.t0(json!({})),
        g.f.token("d.example", with(t1(), json!({"iss": issuer("d.example")}))),
    ];
    g.case("vouching-issuer-off-path", "federation", "d.example, which no actor of the chain belongs to, issues the hop that makes Alice current.", json!({"variant": "standard", "federate": [["d.example", "c.example", "[\"*\"]"]]}), request(&outsider), Expect::Deny("issuer_not_in_chain", Some(1)));
    let foreign_origin = g.single(json!({"sub": BOB, "act": null}));
    g.case("vouching-for-foreign-subject", "federation", "b.example issues a token whose subject (and so only actor) is Bob of a.example. With `a -> c` federated the path is a.example, c.example: b.example vouches for a chain it is not part of.", json!({"variant": "standard", "federate": [["a.example", "c.example", "[\"*\"]"]]}), request(&[foreign_origin]), Expect::Deny("issuer_not_in_chain", Some(0)));
    let unfederated = g.single(json!({"sub": BOB, "act": null}));
    g.case("foreign-subject-unfederated", "federation", "The same token in the standard pack: Bob's domain a.example has no `federate a -> c` rule, so the step into local fails first (hop null: the step into `local`).", standard(), request(&[unfederated]), Expect::Deny("domain_not_federated", None));
}

fn sender(g: &mut Gen) {
    let chain = vec![g.t0(json!({})), g.t1(json!({}))];
    let mut req = request(&chain);
    req["peer"] = MALLORY.into();
    g.case(
        "sender-mismatch-stranger",
        "sender binding",
        "A stolen chain presented by Mallory over mTLS.",
        standard(),
        req,
        Expect::Deny("sender_mismatch", Some(1)),
    );
    let mut req = request(&chain);
    req["peer"] = BOB.into();
    g.case(
        "sender-mismatch-earlier-actor",
        "sender binding",
        "Bob, an earlier actor, presents the token issued to Alice.",
        standard(),
        req,
        Expect::Deny("sender_mismatch", Some(1)),
    );
    let mut req = request(&chain);
    req["peer"] = ALICE.into();
    g.case(
        "sender-match",
        "sender binding",
        "Alice, the current actor, presents her token: allowed.",
        standard(),
        req,
        Expect::Allow,
    );
    g.case(
        "sender-binding-required-absent",
        "sender binding",
        "No `peer` under `require_sender_binding true`.",
        json!({"variant": "standard", "chain": "require_sender_binding true"}),
        request(&chain),
        Expect::Deny("sender_binding_required", Some(1)),
    );
}

fn txn_claims() -> Value {
    json!({
        "sub": "user:alice", "aud": "c.example", "txn": "txn-1", "scope": "orders:read",
        "req_wl": [GATEWAY], "iat": NOW - 10, "exp": NOW + 200,
    })
}

fn txn_tokens(g: &mut Gen) {
    let chain = vec![g.t0(json!({})), g.t1(json!({}))];
    let with_txn = |g: &Gen, patch: Value| {
        let mut req = request(&chain);
        req["txn_token"] = g.f.txn_token(with(txn_claims(), patch)).into();
        req
    };
    g.case("txn-token-baseline", "baseline", "The two-domain chain with a local Txn-Token naming the gateway as the requesting workload: allowed.", standard(), with_txn(g, json!({})), Expect::Allow);
    g.case(
        "txn-token-audience-other-domain",
        "token-class confusion",
        "A Txn-Token whose `aud` is another trust domain.",
        standard(),
        with_txn(g, json!({"aud": "b.example"})),
        Expect::Deny("audience_mismatch", None),
    );
    g.case(
        "txn-token-subject-swapped",
        "token-class confusion",
        "A Txn-Token for another user than the chain's.",
        standard(),
        with_txn(g, json!({"sub": "user:mallory"})),
        Expect::Deny("subject_mismatch", None),
    );
    g.case(
        "txn-token-other-transaction",
        "token-class confusion",
        "A Txn-Token of another transaction.",
        standard(),
        with_txn(g, json!({"txn": "txn-2"})),
        Expect::Deny("txn_mismatch", None),
    );
    let mut req = request(&chain);
    req["txn_token"] = g.f.typed("c.example", Some("JWT"), txn_claims()).into();
    g.case(
        "txn-token-typed-jwt",
        "token-class confusion",
        "An access-token-typed (`JWT`) token in the `txn_token` field.",
        standard(),
        req,
        Expect::Deny("wrong_token_type", None),
    );
    let mut req = request(&chain);
    req["txn_token"] =
        g.f.typed("b.example", Some("txntoken+jwt"), txn_claims())
            .into();
    g.case(
        "txn-token-issued-by-partner",
        "token-class confusion",
        "A Txn-Token minted by federated b.example: only `local` issues Txn-Tokens.",
        standard(),
        req,
        Expect::Deny("issuer_not_in_chain", None),
    );
    let lone = g.f.txn_token(txn_claims());
    g.case("txn-token-as-bearer", "sender binding", "A Txn-Token presented alone with no authenticated peer: a Txn-Token is no credential by itself.", standard(), request(&[lone]), Expect::Deny("sender_binding_required", Some(0)));
    let widened = vec![
        g.f.txn_token(txn_claims()),
        g.f.txn_token(with(
            txn_claims(),
            json!({"scope": "orders:read orders:write", "iat": NOW - 5}),
        )),
    ];
    txn_replacement_dates(g);
    let mut req = request(&widened);
    req["peer"] = GATEWAY.into();
    g.case(
        "txn-replacement-widening",
        "scope escalation",
        "A replacement Txn-Token that adds `orders:write`.",
        standard(),
        req,
        Expect::Deny("scope_escalation", Some(1)),
    );
}

/// A Txn-Token replacement chain whose original expired (skew included) before the
/// replacement was issued, the replacement's `iat` written three ways: as an integer it is
/// `expired` at the original; written `….0`, with an exponent or out of range, the replacement
/// itself is refused (security review: a float `iat` skipped the expiry check).
fn txn_replacement_dates(g: &mut Gen) {
    let header = json!({"alg": "EdDSA", "kid": "c.example-k1", "typ": "txntoken+jwt"}).to_string();
    let original = with(txn_claims(), json!({"iat": NOW - 400, "exp": NOW - 100}));
    let iat = NOW - 60;
    let cases = [
        (
            "txn-replacement-after-expiry",
            iat.to_string(),
            Expect::Deny("expired", Some(0)),
            "an integer",
        ),
        (
            "txn-replacement-iat-whole-float",
            format!("{iat}.0"),
            Expect::Deny("malformed_token", Some(1)),
            "`….0`",
        ),
        (
            "txn-replacement-iat-exponent",
            "1.76722554e9".to_owned(),
            Expect::Deny("malformed_token", Some(1)),
            "`1.76722554e9`",
        ),
        (
            "txn-replacement-iat-out-of-range",
            "253402300800".to_owned(),
            Expect::Deny("malformed_token", Some(1)),
            "past year 9999",
        ),
    ];
    for (name, text, e, what) in cases {
        let mut c = with(txn_claims(), json!({"iat": 0}));
        c["iss"] = issuer("c.example").into();
        let payload = c
            .to_string()
            .replace("\"iat\":0", &format!("\"iat\":{text}"));
        let tokens = vec![
            g.f.txn_token(original.clone()),
            g.raw("c.example", &header, &payload),
        ];
        let mut req = request(&tokens);
        req["peer"] = GATEWAY.into();
        g.case(
            name,
            "time",
            &format!("A Txn-Token replaced 40 s after it expired (skew 30 s), the replacement's `iat` written as {what}."),
            standard(),
            req,
            e,
        );
    }
}

fn identifiers(g: &mut Gen) {
    let chain = vec![g.t0(json!({})), g.t1(json!({}))];
    let peers = [
        (
            "id-peer-cyrillic-domain",
            "spiffe://b.ex\u{0430}mple/agent/alice",
            "a Cyrillic `а` in the peer's trust domain",
        ),
        (
            "id-peer-fullwidth-path",
            "spiffe://b.example/agent/\u{ff41}lice",
            "a fullwidth `ａ` in the peer's path",
        ),
        (
            "id-peer-percent-path",
            "spiffe://b.example/agent/%61lice",
            "a percent escape in the peer's path",
        ),
        (
            "id-peer-percent-domain",
            "spiffe://b%2eexample/agent/alice",
            "a percent escape in the peer's trust domain",
        ),
        (
            "id-peer-uppercase-domain",
            "spiffe://B.example/agent/alice",
            "an upper-case trust domain",
        ),
        (
            "id-peer-no-path",
            "spiffe://b.example",
            "a trust domain ID with no path",
        ),
        (
            "id-peer-dot-segment",
            "spiffe://b.example/agent/../agent/alice",
            "a `..` segment",
        ),
        (
            "id-peer-port",
            "spiffe://b.example:443/agent/alice",
            "a port",
        ),
    ];
    for (name, peer, what) in peers {
        let mut req = request(&chain);
        req["peer"] = peer.into();
        let desc = format!("`peer` with {what}: refused, never normalised.");
        g.case(
            name,
            "identifier confusion",
            &desc,
            standard(),
            req,
            Expect::Deny("invalid_spiffe_id", None),
        );
    }
    let actors = [
        (
            "id-actor-cyrillic-domain",
            "spiffe://b.ex\u{0430}mple/agent/alice",
            "a Cyrillic `а` in the trust domain",
        ),
        (
            "id-actor-percent-path",
            "spiffe://b.example/agent/%61lice",
            "a percent escape in the path",
        ),
        (
            "id-actor-trailing-slash",
            "spiffe://b.example/agent/alice/",
            "a trailing slash",
        ),
        (
            "id-actor-query",
            "spiffe://b.example/agent/alice?admin=1",
            "a query",
        ),
        (
            "id-actor-uppercase-scheme",
            "SPIFFE://b.example/agent/alice",
            "an upper-case scheme",
        ),
    ];
    for (name, id, what) in actors {
        let t = g.single(json!({"act": {"sub": id}}));
        let desc = format!("The token's actor has {what}.");
        g.case(
            name,
            "identifier confusion",
            &desc,
            standard(),
            request(&[t]),
            Expect::Deny("invalid_spiffe_id", Some(0)),
        );
    }
    let t = g.single(json!({"sub": "Spiffe://b.example/agent/alice", "act": null}));
    g.case(
        "id-sub-mixed-case-scheme",
        "identifier confusion",
        "A `sub` starting with `Spiffe:`: it looks like an actor, so it must be a valid one.",
        standard(),
        request(&[t]),
        Expect::Deny("invalid_spiffe_id", Some(0)),
    );
}

fn oversized(g: &mut Gen) {
    let big = g.single(json!({"pad": "x".repeat(8 * 1024)}));
    g.case(
        "oversized-token",
        "resource exhaustion",
        "A token over 8 KiB: refused before decoding.",
        standard(),
        request(&[big]),
        Expect::Deny("token_too_large", Some(0)),
    );
    let deep = (0..16).fold(json!(1), |inner, _| json!([inner]));
    let t = g.single(json!({"nested": deep}));
    g.case(
        "deep-claim-17-levels",
        "resource exhaustion",
        "A claim nesting 17 levels (the claim set being level 1): over the JSON depth limit.",
        standard(),
        request(&[t]),
        Expect::Deny("malformed_token", Some(0)),
    );
    let header = format!(
        r#"{{"alg":"EdDSA","kid":"b.example-k1","typ":"at+jwt","x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let t = g.raw("b.example", &header, &payload_text());
    g.case(
        "deep-header-200-levels",
        "resource exhaustion",
        "A header nesting 200 levels.",
        standard(),
        request(&[t]),
        Expect::Deny("malformed_token", Some(0)),
    );
    let mut c = single_claims();
    for i in 0..60 {
        c[format!("c{i:02}")] = i.into();
    }
    let t = g.single(c);
    g.case(
        "claims-over-64",
        "resource exhaustion",
        "A claim set of 67 members (limit 64).",
        standard(),
        request(&[t]),
        Expect::Deny("malformed_token", Some(0)),
    );
    let single = g.single(json!({}));
    let many: Vec<String> = vec![single.clone(); 17];
    g.case(
        "tokens-over-16",
        "resource exhaustion",
        "Seventeen tokens in one request.",
        standard(),
        request(&many),
        Expect::Deny("invalid_request", None),
    );
    let text = format!(
        r#"{{"tokens":["{single}"],"audience":"{AUD}","action":"orders:read","now":{NOW},"context":{{"a":{}1{}}}}}"#,
        "[".repeat(15),
        "]".repeat(15)
    );
    g.case(
        "deep-request-context",
        "resource exhaustion",
        "A request whose `context` nests 17 levels in all.",
        standard(),
        Value::String(text),
        Expect::Deny("invalid_request", None),
    );
    let deep_act = (0..40).fold(
        json!({"sub": ALICE}),
        |inner, i| json!({"sub": format!("spiffe://b.example/agent/x{i}"), "act": inner}),
    );
    let t = g.single(json!({"act": deep_act}));
    g.case(
        "deep-act-41-levels",
        "resource exhaustion",
        "`act` nested 41 deep, past the JSON depth limit too.",
        standard(),
        request(&[t]),
        Expect::Deny("malformed_token", Some(0)),
    );
}

/// A case document as committed: pretty JSON and a final newline.
pub fn render(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(doc).unwrap();
    text.push('\n');
    text
}
