//! Issue 14's cases: EC and RSA keys, their attacks, and the RFC examples.
//!
//! The keys are the RFCs' published example keys (`crates/jose/testdata/`): RFC 7515 A.2's RSA
//! key and A.3's P-256 key. PKCS#1 v1.5 signatures are deterministic; ECDSA and PSS ones are
//! not, so each is made once and kept in `signatures.txt` beside this file (signing input,
//! signature), reused while it still verifies, so the generated files stay byte-identical.

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine as _;
use custody_jose::{Algorithm, KeySet, SigningKey, B64};
use serde_json::{json, Value};

use super::{hmac_sha256, payload_text, request, single_claims, Expect, Gen};

const A2_JWK: &str = include_str!("../../../../crates/jose/testdata/rfc7515-a2.key.jwk");
const A3_JWK: &str = include_str!("../../../../crates/jose/testdata/rfc7515-a3.key.jwk");
/// Where randomized signatures are remembered, next to this file.
pub const MEMO_FILE: &str = "src/bin/gen-conformance/signatures.txt";

/// RFC 7515 A.2's and A.3's example tokens, verbatim.
const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
/// RFC 8037 A.4: Ed25519 over a payload that is not JSON.
const RFC8037_A4_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
/// P-256's group order n, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

static MEMO: Mutex<Option<BTreeMap<String, String>>> = Mutex::new(None);

fn memo_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(MEMO_FILE)
}

/// The remembered signatures, as the generator writes them back (only those used this run).
pub fn memo_text() -> String {
    let memo = MEMO.lock().unwrap();
    let mut out = String::from(
        "# Randomized (ECDSA, PSS) signatures of the conformance suite: signing input, signature.\n\
         # Written by gen-conformance; a missing or stale line is re-signed on the next run.\n",
    );
    for (input, sig) in memo.iter().flatten() {
        out.push_str(&format!("{input} {sig}\n"));
    }
    out
}

/// Used this run: starts empty, filled from the file on first use.
fn remembered() -> BTreeMap<String, String> {
    std::fs::read_to_string(memo_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(i, s)| (i.to_owned(), s.to_owned()))
        .collect()
}

/// `key`'s signature of `input`: deterministic ones as made, randomized ones from the memo
/// while they verify.
fn signature(key: &SigningKey, input: &str) -> Vec<u8> {
    if matches!(key.alg(), Algorithm::EdDsa | Algorithm::Ed25519)
        || key.alg().name().starts_with("RS")
    {
        return key.sign_bytes(input.as_bytes());
    }
    static FILE: Mutex<Option<BTreeMap<String, String>>> = Mutex::new(None);
    let mut file = FILE.lock().unwrap();
    let known = file.get_or_insert_with(remembered);
    let public = key.public();
    let kept = known
        .get(input)
        .and_then(|s| B64.decode(s).ok())
        .filter(|s| public.verify_with(key.alg().name(), input.as_bytes(), s));
    let sig = kept.unwrap_or_else(|| key.sign_bytes(input.as_bytes()));
    MEMO.lock()
        .unwrap()
        .get_or_insert_with(BTreeMap::new)
        .insert(input.to_owned(), B64.encode(&sig));
    sig
}

fn token(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = B64.encode(signature(key, &input));
    format!("{input}.{sig}")
}

fn a2(kid: &str) -> SigningKey {
    SigningKey::from_jwk(A2_JWK.as_bytes())
        .unwrap()
        .with_kid(kid)
}

fn a3(kid: &str) -> SigningKey {
    SigningKey::from_jwk(A3_JWK.as_bytes())
        .unwrap()
        .with_kid(kid)
}

/// The public JWK of a test key, without its pinned `alg` unless `pin`.
fn jwk(key: &SigningKey, pin: bool, extra: Value) -> Value {
    let mut j = key.public().to_jwk();
    if !pin {
        j.as_object_mut().unwrap().remove("alg");
    }
    for (k, v) in extra.as_object().unwrap() {
        j[k] = v.clone();
    }
    j
}

/// b.example (its key file `b_keys`, issuer `b_issuer`) and c.example (local, its standard
/// Ed25519 key), federated for `orders:read`.
fn pack(g: &Gen, b_keys: Value, b_issuer: &str) -> Value {
    let lines = format!("  issuer \"{b_issuer}\"\n  keys \"keys/b.jwks\"\n");
    let p = b_and_c(g, &lines);
    let f = &p["files"];
    // the files in the order the committed cases have them
    json!({"files": {
        "pack.trust": f["pack.trust"],
        "keys/b.jwks": b_keys.to_string(),
        "keys/c.jwks": f["keys/c.jwks"],
    }})
}

/// b.example (its block's lines `b_lines`) and c.example (local, its standard Ed25519 key),
/// federated for `orders:read`.
fn b_and_c(g: &Gen, b_lines: &str) -> Value {
    let mut c = KeySet::new();
    c.insert(g.f.key("c.example").public()).unwrap();
    let trust = format!(
        "local \"c.example\"\n\
        domain \"b.example\" {{\n{b_lines}}}\n\
        domain \"c.example\" {{\n  issuer \"https://as.c.example\"\n  keys \"keys/c.jwks\"\n}}\n\
        federate \"b.example\" -> \"c.example\" {{ scopes [\"orders:read\"] }}\n"
    );
    json!({"files": {"pack.trust": trust, "keys/c.jwks": c.to_jwks().to_string()}})
}

fn keys(list: &[Value]) -> Value {
    json!({ "keys": list })
}

fn b_claims() -> Value {
    let mut c = single_claims();
    c["iss"] = "https://as.b.example".into();
    c
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "kid": kid, "typ": "at+jwt"})
}

pub(super) fn cases(g: &mut Gen) {
    baselines(g);
    confusion(g);
    ecdsa_signatures(g);
    key_sets(g);
    rfc_examples(g);
    remote_sources(g);
}

/// b.example (issuer `https://as.b.example`, then `b_lines`) and c.example, as [`b_and_c`].
fn remote_pack(g: &Gen, b_lines: &str) -> Value {
    b_and_c(g, &format!("  issuer \"https://as.b.example\"\n{b_lines}"))
}

/// Remote key sources as far as a pack alone decides them: which URLs load, and a domain whose
/// sources have not delivered yet (the conformance runner fetches nothing).
fn remote_sources(g: &mut Gen) {
    let t = g.single(json!({}));
    g.case("source-http-to-another-host", "key substitution", "b.example fetches its keys over plain `http` from a host that is not loopback: anyone on the path could substitute keys, so the pack does not load.", remote_pack(g, "  jwks_uri \"http://keys.b.example/jwks\"\n"), request(std::slice::from_ref(&t)), Expect::LoadError("`http` is allowed only to a loopback address"));
    g.case("source-discovery-not-an-issuer", "key substitution", "b.example's `discovery` URL is not one of its issuers: the metadata of another issuer must not name b.example's keys, so the pack does not load.", remote_pack(g, "  discovery \"https://as.evil.example\"\n"), request(std::slice::from_ref(&t)), Expect::LoadError("is not an `issuer` of domain `b.example`"));
    g.case("source-keys-unavailable-before-first-fetch", "resource exhaustion", "b.example takes its keys only from a JWKS URL that has not delivered a set: its token is neither accepted nor called forged, but `keys_unavailable` (the sidecar answers 503).", remote_pack(g, "  jwks_uri \"https://keys.b.example/jwks\"\n"), request(&[t]), Expect::Deny("keys_unavailable", Some(0)));
}

fn baselines(g: &mut Gen) {
    let rsa = a2("b.example-rsa");
    let ec = a3("b.example-ec");
    let rsa_pack = pack(
        g,
        keys(&[jwk(&rsa, false, json!({}))]),
        "https://as.b.example",
    );
    let ec_pack = pack(
        g,
        keys(&[jwk(&ec, false, json!({}))]),
        "https://as.b.example",
    );
    for (name, key, alg, p) in [
        ("alg-rs256-rsa-key", &rsa, "RS256", &rsa_pack),
        ("alg-ps256-rsa-key", &rsa, "PS256", &rsa_pack),
        ("alg-rs512-rsa-key", &rsa, "RS512", &rsa_pack),
        ("alg-es256-p256-key", &ec, "ES256", &ec_pack),
    ] {
        let signer = key.with_alg(Algorithm::from_name(alg).unwrap()).unwrap();
        let t = token(&signer, &header(alg, key.kid()), &b_claims());
        let desc = format!("Baseline: the standard token signed {alg} under b.example's key (RFC 7515 A.2's RSA key or A.3's P-256 key, no `alg` in the JWK): allowed.");
        g.case(
            name,
            "baseline",
            &desc,
            p.clone(),
            request(&[t]),
            Expect::Allow,
        );
    }
}

fn confusion(g: &mut Gen) {
    let rsa = a2("b.example-rsa");
    let ec = a3("b.example-ec");
    let rsa_pack = pack(
        g,
        keys(&[jwk(&rsa, false, json!({}))]),
        "https://as.b.example",
    );
    let ec_pack = pack(
        g,
        keys(&[jwk(&ec, false, json!({}))]),
        "https://as.b.example",
    );
    // HS256 keyed with the RSA public key, as text and as the modulus bytes
    let jwks_text = keys(&[jwk(&rsa, false, json!({}))]).to_string();
    let n = B64
        .decode(jwk(&rsa, false, json!({}))["n"].as_str().unwrap())
        .unwrap();
    for (name, secret, what) in [
        (
            "alg-hs256-rsa-jwks-text",
            jwks_text.into_bytes(),
            "the published JWKS text",
        ),
        ("alg-hs256-rsa-modulus", n, "the modulus bytes"),
    ] {
        let input = format!(
            "{}.{}",
            B64.encode(header("HS256", "b.example-rsa").to_string()),
            B64.encode(payload_text())
        );
        let mac = B64.encode(hmac_sha256(&secret, input.as_bytes()));
        let desc = format!("HS256 key confusion: an HMAC keyed with {what} of b.example's RSA key (the public key as a secret): `HS*` is never verified.");
        g.case(
            name,
            "algorithm confusion",
            &desc,
            rsa_pack.clone(),
            request(&[format!("{input}.{mac}")]),
            Expect::Deny("alg_not_allowed", Some(0)),
        );
    }
    let es_under_rsa = token(&ec, &header("ES256", "b.example-rsa"), &b_claims());
    g.case("alg-es256-token-under-rsa-key", "algorithm confusion", "A valid ES256 token (A.3's key) whose `kid` names b.example's RSA key: an RSA key verifies only RS*/PS*.", rsa_pack.clone(), request(&[es_under_rsa]), Expect::Deny("alg_not_allowed", Some(0)));
    let rs_under_ec = token(&rsa, &header("RS256", "b.example-ec"), &b_claims());
    g.case("alg-rs256-token-under-ec-key", "algorithm confusion", "A valid RS256 token (A.2's key) whose `kid` names b.example's P-256 key: a P-256 key verifies only ES256.", ec_pack.clone(), request(&[rs_under_ec]), Expect::Deny("alg_not_allowed", Some(0)));
    let ed_under_rsa = g.headed(header("EdDSA", "b.example-rsa"));
    g.case(
        "alg-eddsa-token-under-rsa-key",
        "algorithm confusion",
        "An EdDSA token whose `kid` names b.example's RSA key.",
        rsa_pack.clone(),
        request(&[ed_under_rsa]),
        Expect::Deny("alg_not_allowed", Some(0)),
    );
    let pinned = pack(
        g,
        keys(&[jwk(&rsa, true, json!({"alg": "RS256"}))]),
        "https://as.b.example",
    );
    let pss = rsa.with_alg(Algorithm::Ps256).unwrap();
    let ps_token = token(&pss, &header("PS256", "b.example-rsa"), &b_claims());
    g.case("alg-ps256-token-jwk-pinned-rs256", "algorithm confusion", "A valid PS256 token under b.example's RSA key whose JWK says `alg` `RS256`: the JWK's own `alg` is the only one it verifies.", pinned.clone(), request(&[ps_token]), Expect::Deny("alg_not_allowed", Some(0)));
    let rs_token = token(&rsa, &header("RS256", "b.example-rsa"), &b_claims());
    g.case(
        "alg-rs256-token-jwk-pinned-rs256",
        "baseline",
        "The same key pinned to `RS256`, an RS256 token: allowed.",
        pinned,
        request(&[rs_token]),
        Expect::Allow,
    );
    let es384 = token(&ec, &header("ES384", "b.example-ec"), &b_claims());
    g.case(
        "alg-es384-label-under-p256-key",
        "algorithm confusion",
        "`alg` `ES384` on a token whose `kid` names a P-256 key.",
        ec_pack.clone(),
        request(&[es384]),
        Expect::Deny("alg_not_allowed", Some(0)),
    );
    let es256k = token(&ec, &header("ES256K", "b.example-ec"), &b_claims());
    g.case(
        "alg-es256k-under-p256-key",
        "algorithm confusion",
        "`alg` `ES256K` (secp256k1), never on the list.",
        ec_pack,
        request(&[es256k]),
        Expect::Deny("alg_not_allowed", Some(0)),
    );
}

/// `r‖s` as an ASN.1 DER `ECDSA-Sig-Value`.
fn der(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    let int = |x: &[u8]| {
        let x = &x[x.iter().position(|&b| b != 0).unwrap_or(x.len() - 1)..];
        let pad = x[0] & 0x80 != 0;
        let mut out = vec![0x02, (x.len() + usize::from(pad)) as u8];
        if pad {
            out.push(0);
        }
        out.extend_from_slice(x);
        out
    };
    let body = [int(r), int(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

fn ecdsa_signatures(g: &mut Gen) {
    let ec = a3("b.example-ec");
    let p = pack(
        g,
        keys(&[jwk(&ec, false, json!({}))]),
        "https://as.b.example",
    );
    let valid = token(&ec, &header("ES256", "b.example-ec"), &b_claims());
    let (input, sig) = valid.rsplit_once('.').unwrap();
    let sig = B64.decode(sig).unwrap();
    let (r, s) = sig.split_at(32);
    let zero = [0u8; 32];
    let forged: [(&str, Vec<u8>, &str); 7] = [
        ("sig-ecdsa-der-encoded", der(&sig), "the same valid (r, s) DER-encoded (ASN.1 `ECDSA-Sig-Value`), as X.509 and most crypto APIs write it: JOSE takes only fixed-length r‖s"),
        ("sig-ecdsa-r-zero", [&zero[..], s].concat(), "r = 0"),
        ("sig-ecdsa-s-zero", [r, &zero[..]].concat(), "s = 0"),
        ("sig-ecdsa-r-equals-n", [&P256_N[..], s].concat(), "r = n, the group order"),
        ("sig-ecdsa-s-equals-n", [r, &P256_N[..]].concat(), "s = n, the group order"),
        ("sig-ecdsa-65-bytes", [&sig[..], &[0][..]].concat(), "a zero byte appended (65 bytes)"),
        ("sig-ecdsa-bit-flip", { let mut f = sig.clone(); f[40] ^= 1; f }, "one bit of s flipped"),
    ];
    for (name, bytes, what) in forged {
        let t = format!("{input}.{}", B64.encode(bytes));
        let desc = format!("An ES256 token under b.example's P-256 key with {what}.");
        g.case(
            name,
            "signature malleability",
            &desc,
            p.clone(),
            request(&[t]),
            Expect::Deny("bad_signature", Some(0)),
        );
    }
}

fn key_sets(g: &mut Gen) {
    let rsa = a2("b.example-rsa");
    let ec = a3("b.example-ec");
    let rsa_jwk = jwk(&rsa, false, json!({}));
    let n = B64.decode(rsa_jwk["n"].as_str().unwrap()).unwrap();
    let short = jwk(&rsa, false, json!({"n": B64.encode(&n[..128])}));
    g.case("key-rsa-1024-bit", "key substitution", "b.example's key file holds a 1024-bit RSA key: outside 2048 to 8192 bits, the pack does not load.", pack(g, keys(&[short]), "https://as.b.example"), request(&[g.single(json!({}))]), Expect::LoadError("RSA modulus of 1024 bits"));
    let e3 = jwk(&rsa, false, json!({"e": "Aw"}));
    g.case(
        "key-rsa-exponent-3",
        "key substitution",
        "An RSA key with e = 3: only 65537, the pack does not load.",
        pack(g, keys(&[e3]), "https://as.b.example"),
        request(&[g.single(json!({}))]),
        Expect::LoadError("`e` must be 65537"),
    );
    let mut y = B64
        .decode(jwk(&ec, false, json!({}))["y"].as_str().unwrap())
        .unwrap();
    y[31] ^= 1;
    let off = jwk(&ec, false, json!({"y": B64.encode(&y)}));
    g.case("key-ec-point-off-curve", "key substitution", "A P-256 key whose point is not on the curve (invalid-curve attacks start here): the pack does not load.", pack(g, keys(&[off]), "https://as.b.example"), request(&[g.single(json!({}))]), Expect::LoadError("not on the curve"));
    let private = serde_json::from_str::<Value>(A2_JWK).unwrap();
    let mut private = private;
    private["kid"] = "b.example-rsa".into();
    g.case(
        "key-rsa-private-jwk-published",
        "key substitution",
        "b.example's key file is the RSA private JWK: a private part is a load error.",
        pack(g, keys(&[private]), "https://as.b.example"),
        request(&[g.single(json!({}))]),
        Expect::LoadError("private part"),
    );
    let enc = jwk(&rsa, false, json!({"use": "enc"}));
    let t = token(&rsa, &header("RS256", "b.example-rsa"), &b_claims());
    g.case("key-rsa-use-enc", "key substitution", "b.example's RSA key is published with `use` `enc`: not a token key, so its `kid` is unknown.", pack(g, keys(&[enc]), "https://as.b.example"), request(std::slice::from_ref(&t)), Expect::Deny("unknown_key", Some(0)));
    let ops = jwk(&rsa, false, json!({"key_ops": ["encrypt"]}));
    g.case(
        "key-rsa-key-ops-without-verify",
        "key substitution",
        "b.example's RSA key has `key_ops` without `verify`: not a token key.",
        pack(g, keys(&[ops]), "https://as.b.example"),
        request(&[t]),
        Expect::Deny("unknown_key", Some(0)),
    );
    kid_collision(g);
}

/// The same `kid` in two domains: each domain's tokens verify only under its own key.
fn kid_collision(g: &mut Gen) {
    let key = |d: &str| g.f.key(d).with_kid("shared");
    let (a, b, c) = (key("a.example"), key("b.example"), key("c.example"));
    let set = |k: &SigningKey| {
        let mut s = KeySet::new();
        s.insert(k.public()).unwrap();
        s.to_jwks().to_string()
    };
    let trust = "local \"c.example\"\n\
        domain \"a.example\" {\n  issuer \"https://as.a.example\"\n  keys \"keys/a.jwks\"\n}\n\
        domain \"b.example\" {\n  issuer \"https://as.b.example\"\n  keys \"keys/b.jwks\"\n}\n\
        domain \"c.example\" {\n  issuer \"https://as.c.example\"\n  keys \"keys/c.jwks\"\n}\n\
        federate \"b.example\" -> \"c.example\" { scopes [\"orders:read\"] }\n";
    let p = json!({"files": {
        "pack.trust": trust,
        "keys/a.jwks": set(&a),
        "keys/b.jwks": set(&b),
        "keys/c.jwks": set(&c),
    }});
    let h = header("EdDSA", "shared");
    let own = token(&b, &h, &b_claims());
    g.case("kid-collision-across-domains-own-key", "baseline", "a.example and b.example both publish `kid` `shared` (different keys); b.example's token signed by b.example's key: allowed.", p.clone(), request(&[own]), Expect::Allow);
    let other = token(&a, &h, &b_claims());
    g.case("kid-collision-across-domains-other-key", "key substitution", "The same `kid` `shared` in a.example and b.example; a token claiming b.example's issuer but signed by a.example's `shared` key: each domain's `kid` names only its own key.", p, request(&[other]), Expect::Deny("bad_signature", Some(0)));
}

/// The RFC examples verbatim. Their headers carry no `kid` (RFC 8037's payload is not even
/// JSON), so in a custody request they stop before the signature; each signature is checked
/// byte for byte under the same key in custody-jose's unit tests (`src/algs_tests.rs`).
fn rfc_examples(g: &mut Gen) {
    let joe = |k: &SigningKey| pack(g, keys(&[jwk(k, false, json!({}))]), "joe");
    let a2_pack = joe(&a2("rfc7515-a2"));
    let a3_pack = joe(&a3("rfc7515-a3"));
    let req = |t: &str| {
        let mut r = request(&[t.to_owned()]);
        r["now"] = 1_300_819_000.into();
        r
    };
    g.case("rfc7515-a2-rs256-example", "baseline", "RFC 7515 A.2's RS256 token verbatim, its key in a domain whose issuer is `joe`, decided before its `exp`: custody needs a `kid` to choose the key and the RFC's header has none, so it stops at `unknown_key` before the signature (which custody-jose's unit tests verify under this key).", a2_pack, req(A2_TOKEN), Expect::Deny("unknown_key", Some(0)));
    g.case("rfc7515-a3-es256-example", "baseline", "RFC 7515 A.3's ES256 token verbatim, as A.2's case: `unknown_key` (no `kid`) before the signature (verified in custody-jose's unit tests).", a3_pack, req(A3_TOKEN), Expect::Deny("unknown_key", Some(0)));
    g.case("rfc8037-a4-ed25519-example", "baseline", "RFC 8037 A.4's EdDSA token verbatim: its payload is the text `Example of Ed25519 signing`, not a JSON claims set, so it is malformed before any key is looked up (its signature is verified in custody-jose's unit tests).", super::standard(), req(RFC8037_A4_TOKEN), Expect::Deny("malformed_token", Some(0)));
}
