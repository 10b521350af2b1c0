//! X.509-SVID rules over certificates generated per test with rcgen.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use crate::common;

use common::*;
use custody_svid::{parse_pem_chain, validate, SvidError, X509Authorities, MAX_CHAIN_CERTS};
use rcgen::{IsCa, KeyUsagePurpose};

const SKEW: u64 = 300;

/// Two trust domains, each with its own root.
struct World {
    a: Issuer,
    b: Issuer,
    a_auth: X509Authorities,
    b_auth: X509Authorities,
}

impl World {
    fn new() -> Self {
        let (a, b) = (root("a.example"), root("b.example"));
        let (a_auth, b_auth) = (a.authorities(), b.authorities());
        World {
            a,
            b,
            a_auth,
            b_auth,
        }
    }

    fn lookup<'s>(&'s self) -> impl FnOnce(&str) -> Option<&'s X509Authorities> + 's {
        move |td| match td {
            "a.example" => Some(&self.a_auth),
            "b.example" => Some(&self.b_auth),
            _ => None,
        }
    }

    fn check(&self, chain: &[Vec<u8>]) -> Result<custody_svid::ValidatedSvid, SvidError> {
        self.check_at(chain, NOW)
    }

    fn check_at(
        &self,
        chain: &[Vec<u8>],
        now: i64,
    ) -> Result<custody_svid::ValidatedSvid, SvidError> {
        validate(chain, self.lookup(), now, SKEW)
    }
}

fn intermediate_params() -> rcgen::CertificateParams {
    let mut p = ca_params("a.example intermediate");
    p.not_before = at(NOW - 10 * DAY);
    p.not_after = at(NOW + 10 * DAY);
    p
}

#[test]
fn leaf_directly_under_the_root() {
    let w = World::new();
    let leaf = issue_leaf(leaf_params("spiffe://a.example/agent/bob"), &w.a);
    let svid = w.check(&[leaf]).unwrap();
    assert_eq!(svid.id.as_str(), "spiffe://a.example/agent/bob");
    assert_eq!((svid.not_before, svid.not_after), (NOW - HOUR, NOW + HOUR));
}

#[test]
fn leaf_and_intermediate() {
    let w = World::new();
    let int = issue_ca(intermediate_params(), &w.a);
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &int);
    let svid = w.check(&[leaf, int.der()]).unwrap();
    assert_eq!(svid.id.as_str(), "spiffe://a.example/x");
}

#[test]
fn window_is_the_tightest_over_leaf_and_intermediates() {
    let w = World::new();
    let mut ip = intermediate_params();
    ip.not_after = at(NOW + 30 * 60);
    let int = issue_ca(ip, &w.a);
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &int);
    let svid = w.check(&[leaf, int.der()]).unwrap();
    assert_eq!(
        (svid.not_before, svid.not_after),
        (NOW - HOUR, NOW + 30 * 60)
    );
}

#[test]
fn another_domains_ca_cannot_vouch_for_an_id() {
    let w = World::new();
    let leaf = issue_leaf(leaf_params("spiffe://b.example/x"), &w.a);
    let err = w.check(std::slice::from_ref(&leaf)).unwrap_err();
    assert!(
        matches!(err, SvidError::Path { ref trust_domain, .. } if trust_domain == "b.example"),
        "{err}"
    );
    // and with the a.example root presented as a trailing "root": still only b.example's anchors
    assert!(w.check(&[leaf, w.a.der()]).is_err());
}

#[test]
fn expired_leaf() {
    let w = World::new();
    let mut p = leaf_params("spiffe://a.example/x");
    p.not_after = at(NOW - 1000);
    let err = w.check(&[issue_leaf(p, &w.a)]).unwrap_err();
    assert_eq!(
        err,
        SvidError::Expired {
            not_after: NOW - 1000,
            now: NOW
        }
    );
    assert!(err.to_string().starts_with("chain expired at"), "{err}");
}

#[test]
fn expired_within_skew() {
    let w = World::new();
    let mut p = leaf_params("spiffe://a.example/x");
    p.not_after = at(NOW - 100);
    let leaf = issue_leaf(p, &w.a);
    let svid = w.check(std::slice::from_ref(&leaf)).unwrap();
    assert_eq!(svid.not_after, NOW - 100);
    // exactly at the edge of the skew is still inside
    assert!(w
        .check_at(std::slice::from_ref(&leaf), NOW - 100 + SKEW as i64)
        .is_ok());
    assert!(w.check_at(&[leaf], NOW - 100 + SKEW as i64 + 1).is_err());
}

#[test]
fn not_yet_valid_within_and_beyond_skew() {
    let w = World::new();
    let mut p = leaf_params("spiffe://a.example/x");
    p.not_before = at(NOW + 100);
    let leaf = issue_leaf(p, &w.a);
    assert!(w.check(std::slice::from_ref(&leaf)).is_ok());
    let mut p = leaf_params("spiffe://a.example/x");
    p.not_before = at(NOW + 1000);
    let err = w.check(&[issue_leaf(p, &w.a)]).unwrap_err();
    assert_eq!(
        err,
        SvidError::NotYetValid {
            not_before: NOW + 1000,
            now: NOW
        }
    );
    assert!(w.check_at(&[leaf], NOW + 100 - SKEW as i64 - 1).is_err());
}

#[test]
fn expired_intermediate() {
    let w = World::new();
    let mut ip = intermediate_params();
    ip.not_after = at(NOW - DAY);
    let int = issue_ca(ip, &w.a);
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &int);
    assert!(matches!(
        w.check(&[leaf, int.der()]),
        Err(SvidError::NoCommonValidity | SvidError::Expired { .. })
    ));
}

#[test]
fn ca_certificate_as_leaf() {
    let w = World::new();
    let mut p = leaf_params("spiffe://a.example/x");
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    assert_eq!(w.check(&[issue_leaf(p, &w.a)]), Err(SvidError::LeafIsCa));
}

#[test]
fn leaf_key_usages() {
    let w = World::new();
    let with = |ku: Vec<KeyUsagePurpose>| {
        let mut p = leaf_params("spiffe://a.example/x");
        p.key_usages = ku;
        w.check(&[issue_leaf(p, &w.a)])
    };
    use KeyUsagePurpose::*;
    assert_eq!(
        with(vec![DigitalSignature, KeyCertSign]),
        Err(SvidError::LeafKeyCertSign)
    );
    assert_eq!(
        with(vec![DigitalSignature, CrlSign]),
        Err(SvidError::LeafCrlSign)
    );
    assert_eq!(
        with(vec![KeyEncipherment]),
        Err(SvidError::LeafNoDigitalSignature)
    );
    assert_eq!(with(vec![]), Err(SvidError::LeafKeyUsageMissing));
    assert!(with(vec![DigitalSignature, KeyEncipherment, KeyAgreement]).is_ok());
}

#[test]
fn keycertsign_message_names_the_rule() {
    assert_eq!(
        SvidError::LeafKeyCertSign.to_string(),
        "leaf certificate must not have `keyCertSign` key usage"
    );
}

#[test]
fn uri_san_count() {
    let w = World::new();
    let mut p = leaf_params("spiffe://a.example/x");
    p.subject_alt_names.push(uri("spiffe://a.example/y"));
    let err = w.check(&[issue_leaf(p, &w.a)]).unwrap_err();
    assert_eq!(err, SvidError::UriSanCount { count: 2 });
    assert_eq!(
        err.to_string(),
        "leaf certificate has 2 URI SANs; an X.509-SVID has exactly one"
    );

    let mut p = leaf_params("spiffe://a.example/x");
    p.subject_alt_names = vec![rcgen::SanType::DnsName("x.a.example".try_into().unwrap())];
    assert_eq!(
        w.check(&[issue_leaf(p, &w.a)]),
        Err(SvidError::UriSanCount { count: 0 })
    );

    let mut p = leaf_params("spiffe://a.example/x");
    p.subject_alt_names = vec![];
    assert_eq!(
        w.check(&[issue_leaf(p, &w.a)]),
        Err(SvidError::UriSanCount { count: 0 })
    );
}

#[test]
fn dns_san_beside_the_uri_is_allowed() {
    let w = World::new();
    let mut p = leaf_params("spiffe://a.example/x");
    p.subject_alt_names
        .push(rcgen::SanType::DnsName("x.a.example".try_into().unwrap()));
    assert!(w.check(&[issue_leaf(p, &w.a)]).is_ok());
}

#[test]
fn empty_path_and_non_spiffe_uris() {
    let w = World::new();
    for (text, reason) in [
        ("spiffe://a.example", custody_id::IdError::MissingPath),
        ("https://a.example/x", custody_id::IdError::WrongScheme),
        ("spiffe://a.example/x/", custody_id::IdError::TrailingSlash),
    ] {
        let leaf = issue_leaf(leaf_params(text), &w.a);
        assert_eq!(
            w.check(&[leaf]),
            Err(SvidError::BadSpiffeId {
                uri: text.to_owned(),
                reason
            }),
            "{text}"
        );
    }
}

#[test]
fn trailing_root_equal_to_the_authority_is_ignored() {
    let w = World::new();
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &w.a);
    assert!(w.check(&[leaf.clone(), w.a.der()]).is_ok());
    let int = issue_ca(intermediate_params(), &w.a);
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &int);
    assert!(w.check(&[leaf, int.der(), w.a.der()]).is_ok());
}

#[test]
fn trailing_root_not_an_authority_is_not_trusted() {
    let w = World::new();
    let rogue = root("a.example");
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &rogue);
    let err = w.check(&[leaf, rogue.der()]).unwrap_err();
    assert!(matches!(err, SvidError::Path { .. }), "{err}");
}

#[test]
fn unknown_or_empty_domain() {
    let w = World::new();
    let leaf = issue_leaf(leaf_params("spiffe://c.example/x"), &w.a);
    let err = w.check(std::slice::from_ref(&leaf)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no x509-svid authority for trust domain `c.example`"
    );
    let empty = X509Authorities::default();
    assert!(matches!(
        validate(&[leaf], |_| Some(&empty), NOW, SKEW),
        Err(SvidError::NoAuthorities { .. })
    ));
}

#[test]
fn arc_authorities_lookup() {
    let w = World::new();
    let shared = std::sync::Arc::new(w.a.authorities());
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &w.a);
    assert!(validate(&[leaf], |_| Some(shared.clone()), NOW, SKEW).is_ok());
}

#[test]
fn intermediate_without_ca_flag() {
    let w = World::new();
    let mut ip = intermediate_params();
    ip.is_ca = IsCa::ExplicitNoCa;
    let int = issue_ca(ip, &w.a);
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &int);
    assert_eq!(
        w.check(&[leaf, int.der()]),
        Err(SvidError::IntermediateNotCa { index: 1 })
    );
}

#[test]
fn intermediate_without_key_cert_sign() {
    let w = World::new();
    let mut ip = intermediate_params();
    ip.key_usages = vec![KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let int = issue_ca(ip, &w.a);
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &int);
    assert_eq!(
        w.check(&[leaf, int.der()]),
        Err(SvidError::IntermediateNoKeyCertSign { index: 1 })
    );
}

#[test]
fn wrong_intermediate_in_the_chain() {
    let w = World::new();
    let int = issue_ca(intermediate_params(), &w.a);
    let other = issue_ca(intermediate_params(), &w.a);
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &int);
    assert!(matches!(
        w.check(&[leaf, other.der()]),
        Err(SvidError::Path { .. })
    ));
}

#[test]
fn other_domains_root_cannot_stand_in() {
    let w = World::new();
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &w.b);
    assert!(matches!(
        w.check(std::slice::from_ref(&leaf)),
        Err(SvidError::Path { .. })
    ));
    assert!(matches!(
        w.check(&[leaf, w.b.der()]),
        Err(SvidError::Path { .. })
    ));
}

#[test]
fn chain_too_long() {
    let w = World::new();
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &w.a);
    let chain = vec![leaf; MAX_CHAIN_CERTS + 1];
    assert_eq!(
        w.check(&chain),
        Err(SvidError::ChainTooLong {
            count: MAX_CHAIN_CERTS + 1,
            max: MAX_CHAIN_CERTS
        })
    );
    assert_eq!(w.check(&[]), Err(SvidError::NoCertificates));
}

#[test]
fn garbage_der() {
    let w = World::new();
    assert!(matches!(
        w.check(&[b"garbage".to_vec()]),
        Err(SvidError::Malformed { index: 0, .. })
    ));
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &w.a);
    assert!(matches!(
        w.check(&[leaf.clone(), vec![0x30, 0x03, 0x02, 0x01, 0x01]]),
        Err(SvidError::Malformed { index: 1, .. })
    ));
    let mut trailing = leaf;
    trailing.push(0);
    assert!(matches!(
        w.check(&[trailing]),
        Err(SvidError::Malformed { index: 0, .. })
    ));
}

#[test]
fn authorities_from_pem_and_der() {
    let w = World::new();
    let text = format!("{}{}", w.a.cert.pem(), w.b.cert.pem());
    let both = X509Authorities::from_pem(text.as_bytes()).unwrap();
    assert_eq!(both.len(), 2);
    assert!(both.contains(&w.b.der()) && !both.is_empty());
    assert_eq!(both.ders(), &[w.a.der(), w.b.der()]);
    assert!(X509Authorities::from_pem(b"no pem here").is_err());
    assert!(matches!(
        X509Authorities::from_der(vec![w.a.der(), b"junk".to_vec()]),
        Err(SvidError::BadAuthority { index: 1, .. })
    ));
    assert!(X509Authorities::from_der(vec![]).unwrap().is_empty());
}

#[test]
fn pem_chain() {
    let w = World::new();
    let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &w.a);
    let pems = vec![pem(&leaf), w.a.cert.pem()];
    let ders = parse_pem_chain(&pems, 4, 1 << 16).unwrap();
    assert_eq!(ders, vec![leaf.clone(), w.a.der()]);
    assert!(w.check(&ders).is_ok());
    // surrounding whitespace is fine
    assert!(parse_pem_chain(&[format!("\n  {}\n\n", pem(&leaf))], 4, 1 << 16).is_ok());
}

#[test]
fn pem_chain_refusals() {
    let w = World::new();
    let leaf = pem(&issue_leaf(leaf_params("spiffe://a.example/x"), &w.a));
    let pem_err = |pems: &[String]| parse_pem_chain(pems, 4, 1 << 16).unwrap_err();

    let two = format!("{leaf}{}", w.a.cert.pem());
    assert!(matches!(pem_err(&[two]), SvidError::Pem { index: 0, .. }));
    assert!(matches!(
        pem_err(&["hello".to_owned()]),
        SvidError::Pem { index: 0, .. }
    ));
    assert!(matches!(
        pem_err(&[leaf.clone(), String::new()]),
        SvidError::Pem { index: 1, .. }
    ));
    let key = w.a.key.serialize_pem();
    assert!(key.contains("PRIVATE KEY"));
    assert!(matches!(
        pem_err(std::slice::from_ref(&key)),
        SvidError::Pem { .. }
    ));
    assert!(matches!(
        pem_err(&[format!("{leaf}{key}")]),
        SvidError::Pem { .. }
    ));
    assert!(matches!(
        pem_err(&[format!("subject=CN=x\n{leaf}")]),
        SvidError::Pem { .. }
    ));
    let bad_b64 = leaf.replacen("MII", "M!I", 1);
    assert!(matches!(pem_err(&[bad_b64]), SvidError::Pem { .. }));
    let empty = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----".to_owned();
    assert!(matches!(pem_err(&[empty]), SvidError::Pem { .. }));
    assert_eq!(pem_err(&[]), SvidError::NoCertificates);

    assert_eq!(
        parse_pem_chain(&vec![leaf.clone(); 5], 4, 1 << 16),
        Err(SvidError::TooManyPemCertificates { count: 5, max: 4 })
    );
    assert_eq!(
        parse_pem_chain(std::slice::from_ref(&leaf), 4, leaf.len() - 1),
        Err(SvidError::PemTooLarge {
            max: leaf.len() - 1
        })
    );
    assert!(parse_pem_chain(std::slice::from_ref(&leaf), 4, leaf.len()).is_ok());
}

#[test]
fn tampered_signature() {
    let w = World::new();
    let mut leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &w.a);
    let last = leaf.len() - 1;
    leaf[last] ^= 1;
    assert!(matches!(
        w.check(&[leaf]),
        Err(SvidError::Path { .. } | SvidError::Malformed { .. })
    ));
}
