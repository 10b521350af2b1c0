//! SPIFFE X.509-SVID chain validation: a peer's certificate chain (leaf first) becomes the
//! SPIFFE ID it proves, or an [`SvidError`] (custody's `peer_invalid`).
//!
//! Path building and signatures are rustls-webpki's (ring algorithms); the leaf's and
//! intermediates' extensions are read with RustCrypto's `x509-cert`. Nothing here parses
//! ASN.1 by hand.
//!
//! # Rules, in the order [`validate`] checks them, and where each lives
//!
//! | rule | function (module `validate` unless noted) |
//! |---|---|
//! | `peer_certificates`: at most `max_certs` strings and `max_bytes` bytes, each exactly one PEM `CERTIFICATE` block | [`parse_pem_chain`] (`pem::one_certificate`) |
//! | at most [`MAX_CHAIN_CERTS`] certificates, at least one | `split_chain` |
//! | the leaf has exactly one URI SAN, a SPIFFE ID with a non-empty path | `leaf_id` |
//! | the leaf is not a CA (BasicConstraints cA=false or absent) | `leaf_not_ca` |
//! | the leaf has KeyUsage with `digitalSignature`, without `keyCertSign` and `cRLSign` | `leaf_key_usage` |
//! | the authorities are those of the leaf ID's own trust domain (a domain-A CA cannot vouch for a domain-B ID); none or empty refuses | [`validate`], through the `authorities` lookup |
//! | a trailing certificate byte-equal to an authority is the anchor itself and is ignored | `without_trusted_root` |
//! | each presented intermediate is a CA with `keyCertSign` | `intermediate_rules` |
//! | `now` within the tightest validity window of leaf and intermediates, `skew` allowed on both ends | `time_in_window` |
//! | a path to an authority: signatures, issuer CA flags, path length, name constraints, critical extensions, EKU clientAuth or none | `verify_path` (rustls-webpki `verify_for_usage`) |
//!
//! Authorities are trust anchors (name and key, RFC 5280 §6.1.1): their own validity and flags
//! are not checked, as in rustls-webpki. Intermediates the peer sent but the path did not need
//! must still pass the intermediate and time rules.
//!
//! # Limits
//!
//! [`MAX_CHAIN_CERTS`] certificates per chain; the PEM bounds are the caller's (`Limits`).
//! SPIFFE IDs are bounded by `custody-id` (2048 bytes).
//!
//! # Example
//!
//! ```
//! use custody_svid::{validate, parse_pem_chain, X509Authorities};
//! use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose, SanType};
//!
//! // An authority for `a.example` and a workload certificate it issued.
//! let ca_key = KeyPair::generate().unwrap();
//! let mut ca = CertificateParams::new(vec![]).unwrap();
//! ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
//! ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
//! let ca = ca.self_signed(&ca_key).unwrap();
//! let leaf_key = KeyPair::generate().unwrap();
//! let mut leaf = CertificateParams::new(vec![]).unwrap();
//! leaf.subject_alt_names = vec![SanType::URI("spiffe://a.example/agent/bob".try_into().unwrap())];
//! leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
//! let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
//!
//! let authorities = X509Authorities::from_pem(ca.pem().as_bytes()).unwrap();
//! let chain = parse_pem_chain(&[leaf.pem()], 8, 64 * 1024).unwrap();
//! let lookup = |td: &str| (td == "a.example").then_some(&authorities);
//! let now = 1_800_000_000; // rcgen's default validity runs from 1975 to 4096
//! let svid = validate(&chain, lookup, now, 60).unwrap();
//! assert_eq!(svid.id.as_str(), "spiffe://a.example/agent/bob");
//!
//! // The same certificate is no proof for another trust domain.
//! let err = validate(&chain, |_| None::<&X509Authorities>, now, 60).unwrap_err();
//! assert_eq!(err.to_string(), "no x509-svid authority for trust domain `a.example`");
//! ```
#![forbid(unsafe_code)]

mod authorities;
mod error;
mod pem;
mod validate;

pub use authorities::X509Authorities;
pub use error::SvidError;
pub use pem::parse_pem_chain;
pub use validate::{earliest_not_after, validate, ValidatedSvid, MAX_CHAIN_CERTS};
