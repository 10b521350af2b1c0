//! X.509-SVID peers through the verifier: `peer_certificates` validated against the
//! `x509-svid` authorities in the pack's SPIFFE bundles, the proven ID as `peer`, sender
//! binding on it, certificate-bound tokens, and a remembered chain that stops holding when its
//! authority leaves the key set.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use base64::Engine as _;
use custody_jose::{DomainMaterial, Remote, B64};
use custody_tests::{act, outcome, request, Fixture, PackBuilder, ALICE, AUD, BOB, NOW};
use custody_verifier::{ProofMethod, Request};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn at(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = named(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(NOW - 86_400);
    p.not_after = at(NOW + 86_400);
    p
}

fn root(td: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let cert = ca_params(&format!("{td} root")).self_signed(&key).unwrap();
    Ca { cert, key }
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

fn leaf_params(ids: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = named("workload");
    p.subject_alt_names = ids.iter().map(|i| uri(i)).collect();
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = at(NOW - 3600);
    p.not_after = at(NOW + 3600);
    p
}

fn issue(params: CertificateParams, ca: &Ca) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    params
        .signed_by(&key, &ca.cert, &ca.key)
        .unwrap()
        .der()
        .to_vec()
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// A bundle's `x509-svid` entry for `ca`.
fn authority(ca: &Ca) -> Value {
    json!({"use": "x509-svid", "kty": "EC", "crv": "P-256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(ca.cert.der())]})
}

struct World {
    f: Fixture,
    a: Ca,
    b: Ca,
}

fn world(chain: &str) -> World {
    let (a, b) = (root("a.example"), root("b.example"));
    let f = PackBuilder::default()
        .bundle("a.example", vec![authority(&a)])
        .bundle("b.example", vec![authority(&b)])
        .chain(chain)
        .build();
    World { f, a, b }
}

/// Alice-agent's one token for the orders service.
fn alice_token(f: &Fixture, extra: Value) -> String {
    let mut c = json!({"sub": "user:carol", "aud": AUD, "iat": NOW - 30, "exp": NOW + 300,
        "scope": "orders:read", "act": act(&[ALICE])});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    f.token("b.example", c)
}

fn with_certs(token: &str, certs: &[Vec<u8>]) -> Request {
    Request {
        peer_certificates: certs.iter().map(|d| pem(d)).collect(),
        ..request(vec![token.to_owned()])
    }
}

fn code(f: &Fixture, req: &Request) -> String {
    outcome(&f.verify(req))
}

#[test]
fn a_valid_x509_svid_proves_the_caller() {
    let w = world("require_sender_binding true");
    let token = alice_token(&w.f, json!({}));
    let alice = issue(leaf_params(&[ALICE]), &w.b);
    let (d, verified) =
        w.f.verifier
            .verify_traced(&with_certs(&token, std::slice::from_ref(&alice)));
    assert_eq!(outcome(&d), "allow", "{d:?}");
    let caller = verified.caller().unwrap();
    assert_eq!(caller.methods(), [ProofMethod::Certificate]);
    assert_eq!(caller.peer().unwrap().as_str(), ALICE);
    // a trailing root that is the authority itself is ignored
    let with_root = with_certs(&token, &[alice.clone(), w.b.cert.der().to_vec()]);
    assert_eq!(code(&w.f, &with_root), "allow");
    // through an intermediate of b.example's
    let mid_key = KeyPair::generate().unwrap();
    let mid = ca_params("b.example intermediate")
        .signed_by(&mid_key, &w.b.cert, &w.b.key)
        .unwrap();
    let mid_ca = Ca {
        cert: mid,
        key: mid_key,
    };
    let leaf = issue(leaf_params(&[ALICE]), &mid_ca);
    let chained = with_certs(&token, &[leaf, mid_ca.cert.der().to_vec()]);
    assert_eq!(code(&w.f, &chained), "allow");
    // without a certificate the pack's sender binding is not met
    assert_eq!(
        code(&w.f, &request(vec![token.clone()])),
        "sender_binding_required"
    );
}

#[test]
fn every_x509_svid_rule_denies_peer_invalid() {
    let w = world("require_sender_binding true");
    let token = alice_token(&w.f, json!({}));
    let case = |der: Vec<u8>| code(&w.f, &with_certs(&token, &[der]));
    // a.example's CA vouching for a b.example ID
    assert_eq!(case(issue(leaf_params(&[ALICE]), &w.a)), "peer_invalid");
    // expired, beyond the skew (30 s) and within it
    let mut old = leaf_params(&[ALICE]);
    old.not_after = at(NOW - 60);
    assert_eq!(case(issue(old, &w.b)), "peer_invalid");
    let mut just = leaf_params(&[ALICE]);
    just.not_after = at(NOW - 10);
    assert_eq!(case(issue(just, &w.b)), "allow");
    let mut early = leaf_params(&[ALICE]);
    early.not_before = at(NOW + 600);
    assert_eq!(case(issue(early, &w.b)), "peer_invalid");
    // a CA certificate as the leaf
    let mut as_ca = ca_params("rogue");
    as_ca.subject_alt_names = vec![uri(ALICE)];
    assert_eq!(case(issue(as_ca, &w.b)), "peer_invalid");
    // two URI SANs, none, an ID without a path, a key usage for certificates
    assert_eq!(
        case(issue(
            leaf_params(&[ALICE, "spiffe://b.example/agent/other"]),
            &w.b
        )),
        "peer_invalid"
    );
    assert_eq!(case(issue(leaf_params(&[]), &w.b)), "peer_invalid");
    assert_eq!(
        case(issue(leaf_params(&["spiffe://b.example"]), &w.b)),
        "peer_invalid"
    );
    let mut signer = leaf_params(&[ALICE]);
    signer.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    assert_eq!(case(issue(signer, &w.b)), "peer_invalid");
    let mut no_sig = leaf_params(&[ALICE]);
    no_sig.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    assert_eq!(case(issue(no_sig, &w.b)), "peer_invalid");
    // a self-made root claiming b.example's ID, and a trust domain the pack does not declare
    let rogue = root("b.example");
    assert_eq!(case(issue(leaf_params(&[ALICE]), &rogue)), "peer_invalid");
    let z = root("z.example");
    assert_eq!(
        case(issue(leaf_params(&["spiffe://z.example/x"]), &z)),
        "peer_invalid"
    );
    // text that is not one PEM certificate
    let mut req = with_certs(&token, &[]);
    req.peer_certificates =
        vec!["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----".into()];
    assert_eq!(code(&w.f, &req), "peer_invalid");
}

#[test]
fn sender_binding_holds_on_the_proven_certificate() {
    let w = world("require_sender_binding true");
    let token = alice_token(&w.f, json!({}));
    // Bob's own valid certificate with Alice-agent's token: a stolen token replayed by another
    // workload over its own mTLS connection
    let bob = issue(leaf_params(&[BOB]), &w.a);
    assert_eq!(code(&w.f, &with_certs(&token, &[bob])), "sender_mismatch");
    // a `peer` that disagrees with the certificate
    let alice = issue(leaf_params(&[ALICE]), &w.b);
    let mut req = with_certs(&token, std::slice::from_ref(&alice));
    req.peer = Some(BOB.into());
    assert_eq!(code(&w.f, &req), "sender_mismatch");
    req.peer = Some(ALICE.into());
    assert_eq!(code(&w.f, &req), "allow");
    // a token bound to the certificate (`cnf.x5t#S256`), with it and with another
    let x5t = B64.encode(Sha256::digest(&alice));
    let bound = alice_token(&w.f, json!({"cnf": {"x5t#S256": x5t}}));
    assert_eq!(code(&w.f, &with_certs(&bound, &[alice])), "allow");
    let other = issue(leaf_params(&[ALICE]), &w.b);
    assert_eq!(code(&w.f, &with_certs(&bound, &[other])), "peer_invalid");
}

#[test]
fn a_remembered_chain_stops_holding_when_its_authority_goes() {
    let w = world("");
    let token = alice_token(&w.f, json!({}));
    let alice = issue(leaf_params(&[ALICE]), &w.b);
    let req = with_certs(&token, &[alice]);
    assert_eq!(code(&w.f, &req), "allow");
    assert_eq!(code(&w.f, &req), "allow");
    // past the leaf's validity the remembered chain is expired
    let mut late = req.clone();
    late.now = Some(NOW + 3700);
    late.tokens = vec![alice_token(
        &w.f,
        json!({"iat": NOW + 3600, "exp": NOW + 3900}),
    )];
    assert_eq!(code(&w.f, &late), "peer_invalid");
    // b.example's authority leaves its key set: nothing validated under it holds
    let store = w.f.verifier.key_store();
    let b = store.index_of("b.example").unwrap();
    let current = store.domain(b).unwrap();
    let material = DomainMaterial {
        tokens: current.tokens().clone(),
        biscuit: current.biscuit().clone(),
        wit: current.wit().clone(),
        x509: Vec::new(),
    };
    store.replace_material(b, material, Remote::None);
    let d = w.f.verify(&req);
    assert_eq!(outcome(&d), "peer_invalid", "{d:?}");
}

#[test]
fn bundles_keep_their_keys_apart() {
    // b.example's key file is a bundle: its `jwt-svid` key signs access tokens (and JWT-SVIDs),
    // not WITs; its `x509-svid` entry is an authority, not a token key
    let w = world("");
    let token = alice_token(&w.f, json!({}));
    assert_eq!(code(&w.f, &request(vec![token])), "allow");
    let keys = w.f.verifier.key_store();
    let b = keys.domain(keys.index_of("b.example").unwrap()).unwrap();
    assert_eq!((b.tokens().len(), b.wit().len(), b.x509().len()), (1, 0, 1));
    // a bundle entry whose `x5c` is not a certificate does not load
    let broken = PackBuilder::default().bundle(
        "b.example",
        vec![json!({"use": "x509-svid", "kty": "EC", "crv": "P-256",
                "x5c": [base64::engine::general_purpose::STANDARD.encode(b"not a certificate")]})],
    );
    let result = std::panic::catch_unwind(move || broken.build());
    assert!(result.is_err(), "a pack with a broken authority loaded");
}
