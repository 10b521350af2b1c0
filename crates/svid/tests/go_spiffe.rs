//! go-spiffe's X.509-SVID parsing vectors (`tests/vectors/go-spiffe/`, see its README).
//!
//! go-spiffe's `x509svid.Parse(certs, key)` checks structure only; custody's [`validate`] also
//! chains to an authority and checks time, and has no private key (the TLS handshake proved
//! possession). So each certificate file gets custody's own expectation below, and the test
//! checks it agrees with go-spiffe wherever go-spiffe judged a certificate:
//!
//! - every case go-spiffe refuses for a certificate reason is refused here, for the same rule;
//! - every case go-spiffe accepts is accepted here, validated against its own root or
//!   intermediate as the only authority, at a fixed clock inside its validity — except
//!   `good-cert-and-key.pem` / `good-key-and-cert.pem`, whose issuer is not in the data: their
//!   leaf rules pass and only the path fails (difference noted);
//! - the private-key cases (missing, not PEM, corrupt, not matching) are about the key, which
//!   custody never sees: their certificate files give custody's usual result.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use crate::common;

use std::path::PathBuf;

use custody_svid::{parse_pem_chain, validate, SvidError, X509Authorities};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// 2020-03-24T14:30:00Z, inside the one-hour ECDSA leaves and their intermediate.
const ECDSA_CLOCK: i64 = 1_585_060_200;
/// 2021-01-01T00:00:00Z, inside every RSA certificate (2020-03-31 to 2025-03-29).
const RSA_CLOCK: i64 = 1_609_459_200;

/// Which certificate the test trusts as the authority of `example.org`.
#[derive(Clone, Copy)]
enum Anchor {
    /// The chain's first certificate (self-signed leaves; its key also signed the intermediates).
    Leaf,
    /// The chain's last certificate (presented root/intermediate, dropped as the anchor itself).
    Last,
    /// The intermediate of `good-leaf-and-intermediate.pem`: not the issuer.
    OtherIntermediate,
}

/// Custody's expected outcome for a certificate file.
enum Expect {
    Ok,
    Err(fn(&SvidError) -> bool),
}

fn custody(certs: &str) -> (Anchor, i64, Expect) {
    use Anchor::*;
    use Expect::Err as E;
    match certs {
        "good-leaf-only.pem" => (Leaf, RSA_CLOCK, Expect::Ok),
        "good-leaf-and-intermediate.pem" => (Last, ECDSA_CLOCK, Expect::Ok),
        // go-spiffe: ok (structure only). Here: the issuer (AKI d3:35:…) is not in the data.
        "good-cert-and-key.pem" | "good-key-and-cert.pem" => (
            OtherIntermediate,
            ECDSA_CLOCK,
            E(|e| matches!(e, SvidError::Path { .. })),
        ),
        "key-pkcs8-rsa.pem" | "not-pem" => {
            (Leaf, RSA_CLOCK, E(|e| *e == SvidError::NoCertificates))
        }
        "corrupt-cert.pem" => (
            Leaf,
            RSA_CLOCK,
            E(|e| matches!(e, SvidError::Malformed { index: 0, .. })),
        ),
        "wrong-leaf-empty-id.pem" => (
            Leaf,
            RSA_CLOCK,
            E(|e| *e == SvidError::UriSanCount { count: 0 }),
        ),
        "wrong-leaf-ca-true.pem" => (Leaf, RSA_CLOCK, E(|e| *e == SvidError::LeafIsCa)),
        "wrong-leaf-no-digital-signature.pem" => (
            Leaf,
            RSA_CLOCK,
            E(|e| *e == SvidError::LeafNoDigitalSignature),
        ),
        "wrong-leaf-cert-sign.pem" => (Leaf, RSA_CLOCK, E(|e| *e == SvidError::LeafKeyCertSign)),
        "wrong-leaf-crl-sign.pem" => (Leaf, RSA_CLOCK, E(|e| *e == SvidError::LeafCrlSign)),
        "wrong-intermediate-no-ca.pem" => (
            Leaf,
            RSA_CLOCK,
            E(|e| *e == SvidError::IntermediateNotCa { index: 1 }),
        ),
        "wrong-intermediate-no-key-cert-sign.pem" => (
            Leaf,
            RSA_CLOCK,
            E(|e| *e == SvidError::IntermediateNoKeyCertSign { index: 1 }),
        ),
        other => panic!("no custody expectation for {other}"),
    }
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/go-spiffe")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

/// Every `CERTIFICATE` block of a file, in order (other blocks skipped, as go-spiffe does).
fn ders(name: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(&read(name))
        .map(|c| c.unwrap().to_vec())
        .collect()
}

fn anchor(anchor: Anchor, chain: &[Vec<u8>]) -> Option<X509Authorities> {
    let der = match anchor {
        Anchor::Leaf => chain.first()?.clone(),
        Anchor::Last => chain.last()?.clone(),
        Anchor::OtherIntermediate => ders("good-leaf-and-intermediate.pem").pop()?,
    };
    X509Authorities::from_der(vec![der]).ok()
}

fn run(
    certs: &str,
    anchor_choice: Anchor,
    now: i64,
) -> Result<custody_svid::ValidatedSvid, SvidError> {
    let chain = ders(certs);
    // the chain also survives the request's PEM form, one block per string
    if !chain.is_empty() {
        let pems: Vec<String> = chain.iter().map(|d| common::pem(d)).collect();
        assert_eq!(
            parse_pem_chain(&pems, 8, 1 << 16).unwrap(),
            chain,
            "{certs}"
        );
    }
    let authorities = anchor(anchor_choice, &chain);
    validate(
        &chain,
        |td| {
            assert_eq!(td, "example.org");
            authorities
        },
        now,
        0,
    )
}

#[test]
fn go_spiffe_x509svid_parse_cases() {
    let expected: serde_json::Value = serde_json::from_slice(&read("EXPECTED.json")).unwrap();
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 18);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let certs = case["certs"].as_str().unwrap();
        let go_ok = case["expect"] == "ok";
        let go_error = case["go_spiffe_error_contains"].as_str().unwrap_or("");
        let key_case = go_error.contains("private key");
        let (anchor_choice, now, expect) = custody(certs);
        let got = run(certs, anchor_choice, now);
        match expect {
            Expect::Ok => {
                let svid = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    svid.id.as_str(),
                    "spiffe://example.org/workload-1",
                    "{name}"
                );
                if go_ok {
                    assert_eq!(case["spiffe_id"], svid.id.as_str(), "{name}");
                } else {
                    assert!(
                        key_case,
                        "{name}: go-spiffe refuses a certificate custody accepts"
                    );
                }
            }
            Expect::Err(is) => {
                let err = got.err().unwrap_or_else(|| panic!("{name}: accepted"));
                assert!(is(&err), "{name}: unexpected error {err:?}");
                assert!(
                    !go_ok || certs.starts_with("good-"),
                    "{name}: only the issuer-less good files may differ"
                );
            }
        }
    }
}

#[test]
fn whole_files_as_one_peer_certificate() {
    // one block and nothing else: accepted; keys, two blocks, no PEM: refused
    for (file, ok) in [
        ("good-leaf-only.pem", true),
        ("corrupt-cert.pem", true), // the PEM is fine; its DER is refused by validate
        ("good-leaf-and-intermediate.pem", false),
        ("good-cert-and-key.pem", false),
        ("key-pkcs8-rsa.pem", false),
        ("not-pem", false),
    ] {
        let text = String::from_utf8(read(file)).unwrap();
        assert_eq!(parse_pem_chain(&[text], 8, 1 << 16).is_ok(), ok, "{file}");
    }
}

#[test]
fn go_spiffe_certificates_have_expired() {
    let err = run("good-leaf-only.pem", Anchor::Leaf, 1_800_000_000).unwrap_err();
    assert!(matches!(err, SvidError::Expired { .. }), "{err}");
    let err = run("good-leaf-and-intermediate.pem", Anchor::Last, RSA_CLOCK).unwrap_err();
    assert!(matches!(err, SvidError::Expired { .. }), "{err}");
}

#[test]
fn go_spiffe_intermediate_is_not_dropped_unless_it_is_the_authority() {
    // With the leaf itself as the authority, the presented intermediate is checked and used.
    let err = run("good-leaf-and-intermediate.pem", Anchor::Leaf, ECDSA_CLOCK).unwrap_err();
    assert!(matches!(err, SvidError::Path { .. }), "{err}");
}
