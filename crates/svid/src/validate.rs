//! X.509-SVID chain validation: the leaf's SPIFFE rules, the intermediates' CA rules, the
//! validity window with skew, then a rustls-webpki path to an authority of the ID's own domain.

use std::borrow::Borrow;
use std::time::Duration;

use custody_id::SpiffeId;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};
use x509_cert::Certificate;

use crate::{SvidError, X509Authorities};

/// At most this many certificates in a chain (leaf, intermediates and an optional trailing
/// root). SPIRE issues leaf + at most a few intermediates; webpki's own path depth limit is 6
/// issuers, so 8 leaves room for a trailing root without letting a peer make us parse more.
pub const MAX_CHAIN_CERTS: usize = 8;

/// What a valid chain proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedSvid {
    /// The leaf's SPIFFE ID (its single URI SAN), with a non-empty path.
    pub id: SpiffeId,
    /// The latest notBefore over the leaf and the presented intermediates, unix seconds.
    pub not_before: i64,
    /// The earliest notAfter over the leaf and the presented intermediates, unix seconds.
    pub not_after: i64,
}

/// Validates a DER chain (leaf first) as an X.509-SVID.
///
/// `authorities(trust_domain)` is asked once, for the trust domain of the leaf's SPIFFE ID, after
/// the leaf's own rules passed; returning `None` or an empty set refuses the chain. It may
/// return `X509Authorities`, `&X509Authorities` or `Arc<X509Authorities>`. `now` is unix seconds;
/// `skew` seconds are allowed on both notBefore and notAfter. See the crate docs for the rules
/// in the order they are checked.
pub fn validate<A: Borrow<X509Authorities>>(
    chain: &[Vec<u8>],
    authorities: impl FnOnce(&str) -> Option<A>,
    now: i64,
    skew: u64,
) -> Result<ValidatedSvid, SvidError> {
    let (leaf_der, rest) = split_chain(chain)?;
    let leaf = parse(0, leaf_der)?;
    let id = leaf_id(&leaf)?;
    leaf_not_ca(&leaf)?;
    leaf_key_usage(&leaf)?;
    let trust_domain = id.trust_domain_str();
    let found = authorities(trust_domain)
        .filter(|a| !a.borrow().is_empty())
        .ok_or_else(|| SvidError::NoAuthorities {
            trust_domain: trust_domain.to_owned(),
        })?;
    let authorities = found.borrow();
    let intermediates = without_trusted_root(rest, authorities);
    let mut window = validity(&leaf);
    for (i, der) in intermediates.iter().enumerate() {
        let cert = parse(i + 1, der)?;
        intermediate_rules(i + 1, &cert)?;
        window = overlap(window, validity(&cert));
    }
    let time = time_in_window(window, now, skew)?;
    verify_path(leaf_der, intermediates, authorities, time, trust_domain)?;
    Ok(ValidatedSvid {
        id,
        not_before: window.0,
        not_after: window.1,
    })
}

/// The leaf and the rest, after the length cap.
fn split_chain(chain: &[Vec<u8>]) -> Result<(&[u8], &[Vec<u8>]), SvidError> {
    if chain.len() > MAX_CHAIN_CERTS {
        return Err(SvidError::ChainTooLong {
            count: chain.len(),
            max: MAX_CHAIN_CERTS,
        });
    }
    let (leaf, rest) = chain.split_first().ok_or(SvidError::NoCertificates)?;
    Ok((leaf, rest))
}

fn parse(index: usize, der: &[u8]) -> Result<Certificate, SvidError> {
    Certificate::from_der(der).map_err(|e| SvidError::Malformed {
        index,
        reason: e.to_string(),
    })
}

/// One extension of a type; present twice or undecodable is malformed.
fn extension<'a, T: Decode<'a> + AssociatedOid>(
    index: usize,
    cert: &'a Certificate,
) -> Result<Option<T>, SvidError> {
    match cert.tbs_certificate.get::<T>() {
        Ok(found) => Ok(found.map(|(_critical, value)| value)),
        Err(e) => Err(SvidError::Malformed {
            index,
            reason: format!("extension {}: {e}", T::OID),
        }),
    }
}

/// Exactly one URI SAN, a SPIFFE ID with a non-empty path (other SAN types are allowed).
fn leaf_id(leaf: &Certificate) -> Result<SpiffeId, SvidError> {
    let san = extension::<SubjectAltName>(0, leaf)?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|san| san.0.iter())
        .filter_map(|name| match name {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str()),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [uri] => SpiffeId::parse_workload(uri).map_err(|reason| SvidError::BadSpiffeId {
            uri: uri.chars().take(256).collect(),
            reason,
        }),
        other => Err(SvidError::UriSanCount { count: other.len() }),
    }
}

/// The leaf must not be a CA (absent BasicConstraints means not a CA).
fn leaf_not_ca(leaf: &Certificate) -> Result<(), SvidError> {
    match extension::<BasicConstraints>(0, leaf)? {
        Some(bc) if bc.ca => Err(SvidError::LeafIsCa),
        _ => Ok(()),
    }
}

/// KeyUsage present, with `digitalSignature`, without `keyCertSign` and `cRLSign`.
fn leaf_key_usage(leaf: &Certificate) -> Result<(), SvidError> {
    let ku = extension::<KeyUsage>(0, leaf)?.ok_or(SvidError::LeafKeyUsageMissing)?;
    if !ku.digital_signature() {
        Err(SvidError::LeafNoDigitalSignature)
    } else if ku.key_cert_sign() {
        Err(SvidError::LeafKeyCertSign)
    } else if ku.crl_sign() {
        Err(SvidError::LeafCrlSign)
    } else {
        Ok(())
    }
}

/// Every presented intermediate, used on the path or not, is a CA with `keyCertSign` (as in
/// go-spiffe); webpki checks the CA flag again on the ones it uses.
fn intermediate_rules(index: usize, cert: &Certificate) -> Result<(), SvidError> {
    match extension::<BasicConstraints>(index, cert)? {
        Some(bc) if bc.ca => {}
        _ => return Err(SvidError::IntermediateNotCa { index }),
    }
    match extension::<KeyUsage>(index, cert)? {
        Some(ku) if ku.key_cert_sign() => Ok(()),
        _ => Err(SvidError::IntermediateNoKeyCertSign { index }),
    }
}

/// Drops a trailing certificate that is byte-equal to one of the authorities: a peer may send
/// its root, which is then the trust anchor itself and not an intermediate. The leaf is never
/// dropped (`rest` excludes it).
fn without_trusted_root<'c>(rest: &'c [Vec<u8>], authorities: &X509Authorities) -> &'c [Vec<u8>] {
    match rest.split_last() {
        Some((last, init)) if authorities.contains(last) => init,
        _ => rest,
    }
}

/// The earliest notAfter (unix seconds) among the certificates of a DER chain; `None` when one
/// does not parse. For a cache of decisions: a decision made on the chain must not outlive it.
pub fn earliest_not_after(chain: &[Vec<u8>]) -> Option<i64> {
    chain
        .iter()
        .map(|der| Certificate::from_der(der).ok().map(|c| validity(&c).1))
        .try_fold(i64::MAX, |acc, t| t.map(|t| acc.min(t)))
}

/// (notBefore, notAfter) in unix seconds.
fn validity(cert: &Certificate) -> (i64, i64) {
    let v = &cert.tbs_certificate.validity;
    (unix(v.not_before), unix(v.not_after))
}

fn unix(time: x509_cert::time::Time) -> i64 {
    i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn overlap(a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
    (a.0.max(b.0), a.1.min(b.1))
}

/// The time rule, with skew, and the time handed to webpki.
///
/// The chain is acceptable when `now` is within `[not_before - skew, not_after + skew]` of the
/// tightest window over the leaf and every presented intermediate. webpki checks validity at a
/// single instant with no skew, on the leaf and the intermediates it puts on the path (never
/// the trust anchor); all of those are among the certificates in `window`. So we give it `now`
/// clamped into `window`: inside every one of their validity periods, so webpki's own time
/// check always passes and the skewed check here is the one that decides. Nothing else in
/// webpki depends on the time (no CRLs are passed).
fn time_in_window(window: (i64, i64), now: i64, skew: u64) -> Result<UnixTime, SvidError> {
    let (not_before, not_after) = window;
    if not_before > not_after {
        return Err(SvidError::NoCommonValidity);
    }
    let skew = i64::try_from(skew).unwrap_or(i64::MAX);
    if now.saturating_add(skew) < not_before {
        return Err(SvidError::NotYetValid { not_before, now });
    }
    if now.saturating_sub(skew) > not_after {
        return Err(SvidError::Expired { not_after, now });
    }
    let at = now.max(not_before).min(not_after);
    let secs = u64::try_from(at).unwrap_or(0);
    Ok(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
}

/// rustls-webpki: signatures, issuer names, the CA flag and path length of each issuer, name
/// constraints, critical extensions and the EKU (clientAuth, or none) on a path from the leaf
/// through the presented intermediates to one of `authorities`.
fn verify_path(
    leaf_der: &[u8],
    intermediates: &[Vec<u8>],
    authorities: &X509Authorities,
    time: UnixTime,
    trust_domain: &str,
) -> Result<(), SvidError> {
    let path_error = |e: webpki::Error| SvidError::Path {
        trust_domain: trust_domain.to_owned(),
        reason: webpki_reason(&e),
    };
    let leaf = CertificateDer::from(leaf_der);
    let leaf = webpki::EndEntityCert::try_from(&leaf).map_err(path_error)?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        authorities.anchors(),
        &intermediates,
        time,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_path| ())
    .map_err(path_error)
}

fn webpki_reason(e: &webpki::Error) -> String {
    use webpki::Error as W;
    match e {
        W::UnknownIssuer => "no authority or presented intermediate issued it".to_owned(),
        W::InvalidSignatureForPublicKey => "a signature does not verify".to_owned(),
        W::EndEntityUsedAsCa => "an issuer is not a CA".to_owned(),
        W::RequiredEkuNotFoundContext(_) => {
            "extended key usage does not allow client authentication".to_owned()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_window_edges_and_extremes() {
        let w = (100, 200);
        assert!(time_in_window(w, 100, 0).is_ok());
        assert!(time_in_window(w, 200, 0).is_ok());
        assert!(time_in_window(w, 99, 0).is_err());
        assert!(time_in_window(w, 201, 0).is_err());
        assert!(time_in_window(w, 90, 10).is_ok());
        assert!(time_in_window(w, 210, 10).is_ok());
        assert_eq!(
            time_in_window((5, 4), 5, 0),
            Err(SvidError::NoCommonValidity)
        );
        for now in [i64::MIN, -1, 0, i64::MAX] {
            for skew in [0, 1, u64::MAX] {
                let _ = time_in_window(w, now, skew);
            }
        }
        // the time handed to webpki stays inside the window
        let at = time_in_window(w, 0, u64::MAX).unwrap();
        assert_eq!(at.as_secs(), 100);
        let at = time_in_window(w, i64::MAX, u64::MAX).unwrap();
        assert_eq!(at.as_secs(), 200);
    }
}
