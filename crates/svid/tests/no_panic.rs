//! Arbitrary, truncated and bit-flipped input never panics `validate` or `parse_pem_chain`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use crate::common;

use std::sync::OnceLock;

use common::*;
use custody_svid::{parse_pem_chain, validate, X509Authorities};
use proptest::prelude::*;

/// A valid leaf + intermediate chain and its root's authorities, made once.
fn fixture() -> &'static (Vec<Vec<u8>>, X509Authorities) {
    static FIXTURE: OnceLock<(Vec<Vec<u8>>, X509Authorities)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = root("a.example");
        let int = issue_ca(ca_params("a.example intermediate"), &root);
        let leaf = issue_leaf(leaf_params("spiffe://a.example/x"), &int);
        let chain = vec![leaf, int.der(), root.der()];
        assert!(validate(&chain, |_| Some(root.authorities()), NOW, 0).is_ok());
        (chain, root.authorities())
    })
}

fn check(chain: &[Vec<u8>]) {
    let (_, authorities) = fixture();
    let _ = validate(chain, |_| Some(authorities), NOW, 60);
}

proptest! {
    #[test]
    fn random_der(chain in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..10)) {
        check(&chain);
        let _ = X509Authorities::from_der(chain);
    }

    #[test]
    fn truncated_certificate(which in 0usize..3, cut in any::<prop::sample::Index>()) {
        let mut chain = fixture().0.clone();
        let cert = &mut chain[which];
        cert.truncate(cut.index(cert.len()));
        check(&chain);
        check(&chain[which..which + 1]);
    }

    #[test]
    fn flipped_bytes(which in 0usize..3, at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut chain = fixture().0.clone();
        let cert = &mut chain[which];
        let i = at.index(cert.len());
        cert[i] ^= mask;
        check(&chain);
    }

    #[test]
    fn random_pem(pems in proptest::collection::vec(".{0,300}", 0..4)) {
        let _ = parse_pem_chain(&pems, 3, 1000);
        let _ = X509Authorities::from_pem(pems.concat().as_bytes());
    }

    #[test]
    fn truncated_pem(cut in any::<prop::sample::Index>(), which in 0usize..3) {
        let text = pem(&fixture().0[which]);
        let end = cut.index(text.len());
        let cut_text = text[..end].to_owned();
        if let Ok(chain) = parse_pem_chain(std::slice::from_ref(&cut_text), 8, 1 << 16) {
            check(&chain);
        }
        let noisy = format!("-----BEGIN CERTIFICATE-----\n{}", &text[end..]);
        let _ = parse_pem_chain(&[noisy], 8, 1 << 16);
        let _ = X509Authorities::from_pem(cut_text.as_bytes());
    }
}
