//! X.509-SVID chains under the fuzzer: go-spiffe's own good leaf (its issuing intermediate the
//! one authority of `example.org`, at a fixed clock inside their validity), its DER mutated or
//! replaced by arbitrary PEM text, validated by `custody_svid`.
//!
//! The oracle (`x509_svid`): nothing panics, and a chain custody accepts is one that
//! rustls-webpki alone accepts against the same authority at the same time, proving the very
//! SPIFFE ID of the honest leaf (the ID is inside the signed part: a mutation that changes it
//! breaks the signature).

use std::sync::OnceLock;

use rustls_pki_types::{CertificateDer, UnixTime};

use crate::verify::Oracle;

const VECTOR: &str =
    include_str!("../../svid/tests/vectors/go-spiffe/good-leaf-and-intermediate.pem");
/// Inside the leaf's and intermediate's validity (2020-03-24 14:30 UTC).
const CLOCK: i64 = 1_585_060_200;

struct Honest {
    leaf: Vec<u8>,
    authority: custody_svid::X509Authorities,
    anchor_der: Vec<u8>,
    id: String,
}

fn honest() -> Option<&'static Honest> {
    static H: OnceLock<Option<Honest>> = OnceLock::new();
    H.get_or_init(|| {
        let blocks: Vec<String> = VECTOR
            .split_inclusive("-----END CERTIFICATE-----")
            .map(|b| b.trim().to_owned())
            .filter(|b| b.starts_with("-----BEGIN"))
            .collect();
        let ders = custody_svid::parse_pem_chain(&blocks, 8, 64 << 10).ok()?;
        let leaf = ders.first()?.clone();
        let anchor_der = ders.get(1)?.clone();
        let authority = custody_svid::X509Authorities::from_der(vec![anchor_der.clone()]).ok()?;
        let id =
            custody_svid::validate(std::slice::from_ref(&leaf), |_| Some(&authority), CLOCK, 0)
                .ok()?
                .id
                .as_str()
                .to_owned();
        Some(Honest {
            leaf,
            authority,
            anchor_der,
            id,
        })
    })
    .as_ref()
}

/// The fuzz entry point. The first byte chooses: even, the honest leaf's DER with the rest of
/// the input as (position, xor) pairs; odd, the rest as PEM text of one certificate.
pub fn x509_svid(data: &[u8]) -> Oracle {
    let Some(h) = honest() else {
        return Err("the go-spiffe vector does not validate".into());
    };
    let (mode, rest) = data.split_first().unwrap_or((&0, &[]));
    let chain = if mode % 2 == 0 {
        let mut der = h.leaf.clone();
        for pair in rest.chunks(3).take(8) {
            if let [hi, lo, x] = pair {
                let len = der.len();
                let at = usize::from(u16::from_be_bytes([*hi, *lo])) % len.max(1);
                if let Some(b) = der.get_mut(at) {
                    *b ^= x;
                }
            }
        }
        vec![der]
    } else {
        let text = String::from_utf8_lossy(rest).into_owned();
        match custody_svid::parse_pem_chain(&[text], 8, 64 << 10) {
            Ok(ders) => ders,
            Err(_) => return Ok(()),
        }
    };
    let Ok(svid) = custody_svid::validate(&chain, |_| Some(&h.authority), CLOCK, 30) else {
        return Ok(());
    };
    if svid.id.as_str() != h.id {
        return Err(format!("accepted a chain proving `{}`", svid.id));
    }
    let leaf = CertificateDer::from(chain.first().map_or(&[][..], Vec::as_slice));
    let anchor = CertificateDer::from(h.anchor_der.as_slice());
    let anchors = match webpki::anchor_from_trusted_cert(&anchor) {
        Ok(a) => vec![a],
        Err(e) => return Err(format!("the vector's authority is no anchor: {e:?}")),
    };
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(CLOCK.unsigned_abs()));
    let alone = webpki::EndEntityCert::try_from(&leaf).is_ok_and(|ee| {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &[],
            time,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .is_ok()
    });
    if !alone {
        return Err("custody accepted a chain rustls-webpki alone refuses".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The honest leaf is accepted (the oracle is reached), a flipped signature byte is not.
    #[test]
    fn the_honest_leaf_reaches_the_oracle() {
        assert_eq!(x509_svid(&[0]), Ok(()));
        let h = honest().map(|h| h.leaf.len()).unwrap_or_default();
        assert!(h > 0);
        let last = u16::try_from(h - 1).unwrap_or_default().to_be_bytes();
        assert_eq!(x509_svid(&[0, last[0], last[1], 1]), Ok(()));
        let accepted = honest().is_some_and(|h| {
            let mut der = h.leaf.clone();
            if let Some(b) = der.last_mut() {
                *b ^= 1;
            }
            custody_svid::validate(&[der], |_| Some(&h.authority), CLOCK, 30).is_ok()
        });
        assert!(!accepted, "a flipped signature byte was accepted");
    }
}
