//! Certificates made with rcgen for the tests: a CA per trust domain, intermediates, leaves.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers: each test file uses a different part, and a panic is the failure report"
)]

use custody_svid::X509Authorities;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use time::OffsetDateTime;

/// The tests' clock.
pub const NOW: i64 = 1_800_000_000;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 24 * HOUR;

pub fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

/// A certificate with its key, able to issue others.
pub struct Issuer {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Issuer {
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    pub fn authorities(&self) -> X509Authorities {
        X509Authorities::from_der(vec![self.der()]).unwrap()
    }
}

fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// CA parameters: cA=true, keyCertSign + cRLSign, valid a year either side of [`NOW`].
pub fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = named(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(NOW - 365 * DAY);
    p.not_after = at(NOW + 365 * DAY);
    p
}

/// A self-signed root CA for a trust domain.
pub fn root(trust_domain: &str) -> Issuer {
    let key = KeyPair::generate().unwrap();
    let mut p = ca_params(&format!("{trust_domain} root"));
    p.subject_alt_names = vec![uri(&format!("spiffe://{trust_domain}"))];
    let cert = p.self_signed(&key).unwrap();
    Issuer { cert, key }
}

/// An intermediate issued by `issuer` from `params`.
pub fn issue_ca(params: CertificateParams, issuer: &Issuer) -> Issuer {
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer.cert, &issuer.key).unwrap();
    Issuer { cert, key }
}

pub fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

/// Leaf parameters: the given URI SAN, cA=false, digitalSignature, valid an hour either side of
/// [`NOW`].
pub fn leaf_params(id: &str) -> CertificateParams {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = named("workload");
    p.subject_alt_names = vec![uri(id)];
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = at(NOW - HOUR);
    p.not_after = at(NOW + HOUR);
    p
}

/// A leaf's DER, issued by `issuer` from `params`.
pub fn issue_leaf(params: CertificateParams, issuer: &Issuer) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    params
        .signed_by(&key, &issuer.cert, &issuer.key)
        .unwrap()
        .der()
        .to_vec()
}

/// PEM text of a DER certificate.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
