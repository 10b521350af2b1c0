//! The one error type of this crate: every variant is a reason the peer is `peer_invalid`.

use std::fmt;

use custody_id::IdError;

/// Why a PEM chain, an authority set or an X.509-SVID chain was refused.
///
/// Messages start lowercase, have no trailing period and name the rule that failed;
/// certificate indexes count from 0, the leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SvidError {
    /// `peer_certificates` has no entry.
    NoCertificates,
    /// More PEM strings than allowed.
    TooManyPemCertificates { count: usize, max: usize },
    /// The PEM strings add up to more bytes than allowed.
    PemTooLarge { max: usize },
    /// PEM string `index` is not exactly one well-formed `CERTIFICATE` block.
    Pem { index: usize, reason: String },
    /// The DER chain is longer than [`MAX_CHAIN_CERTS`](crate::MAX_CHAIN_CERTS).
    ChainTooLong { count: usize, max: usize },
    /// Certificate `index` does not parse as an X.509 certificate.
    Malformed { index: usize, reason: String },
    /// The leaf does not carry exactly one URI SAN.
    UriSanCount { count: usize },
    /// The leaf's URI SAN is not a SPIFFE ID with a non-empty path.
    BadSpiffeId { uri: String, reason: IdError },
    /// The leaf's BasicConstraints say cA=true.
    LeafIsCa,
    /// The leaf has no KeyUsage extension.
    LeafKeyUsageMissing,
    /// The leaf's KeyUsage lacks `digitalSignature`.
    LeafNoDigitalSignature,
    /// The leaf's KeyUsage has `keyCertSign`.
    LeafKeyCertSign,
    /// The leaf's KeyUsage has `cRLSign`.
    LeafCrlSign,
    /// Intermediate `index` is not a CA (BasicConstraints missing or cA=false).
    IntermediateNotCa { index: usize },
    /// Intermediate `index` has no KeyUsage `keyCertSign`.
    IntermediateNoKeyCertSign { index: usize },
    /// No X.509 authority is known for the leaf's trust domain.
    NoAuthorities { trust_domain: String },
    /// The validity windows of the leaf and intermediates do not overlap.
    NoCommonValidity,
    /// `now + skew` is before the latest notBefore of the chain.
    NotYetValid { not_before: i64, now: i64 },
    /// `now - skew` is after the earliest notAfter of the chain.
    Expired { not_after: i64, now: i64 },
    /// rustls-webpki found no valid path to an authority of the leaf's trust domain.
    Path {
        trust_domain: String,
        reason: String,
    },
    /// An authority certificate could not be used as a trust anchor.
    BadAuthority { index: usize, reason: String },
}

impl fmt::Display for SvidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SvidError as E;
        match self {
            E::NoCertificates => f.write_str("no peer certificate was given"),
            E::TooManyPemCertificates { count, max } => {
                write!(f, "{count} peer certificates; at most {max} are allowed")
            }
            E::PemTooLarge { max } => write!(f, "peer certificates exceed {max} bytes"),
            E::Pem { index, reason } => write!(f, "peer certificate {index}: {reason}"),
            E::ChainTooLong { count, max } => {
                write!(
                    f,
                    "chain has {count} certificates; at most {max} are allowed"
                )
            }
            E::Malformed { index, reason } => {
                write!(
                    f,
                    "certificate {index} is not a valid X.509 certificate: {reason}"
                )
            }
            E::UriSanCount { count } => write!(
                f,
                "leaf certificate has {count} URI SANs; an X.509-SVID has exactly one"
            ),
            E::BadSpiffeId { uri, reason } => {
                write!(
                    f,
                    "leaf URI SAN `{uri}` is not a workload SPIFFE ID: {reason}"
                )
            }
            E::LeafIsCa => f.write_str("leaf certificate must not have the CA flag set"),
            E::LeafKeyUsageMissing => f.write_str("leaf certificate has no key usage extension"),
            E::LeafNoDigitalSignature => {
                f.write_str("leaf certificate must have `digitalSignature` key usage")
            }
            E::LeafKeyCertSign => {
                f.write_str("leaf certificate must not have `keyCertSign` key usage")
            }
            E::LeafCrlSign => f.write_str("leaf certificate must not have `cRLSign` key usage"),
            E::IntermediateNotCa { index } => {
                write!(f, "signing certificate {index} must have the CA flag set")
            }
            E::IntermediateNoKeyCertSign { index } => {
                write!(
                    f,
                    "signing certificate {index} must have `keyCertSign` key usage"
                )
            }
            E::NoAuthorities { trust_domain } => {
                write!(
                    f,
                    "no x509-svid authority for trust domain `{trust_domain}`"
                )
            }
            E::NoCommonValidity => f.write_str("the chain's validity periods do not overlap"),
            E::NotYetValid { not_before, now } => write!(
                f,
                "chain not valid before {not_before} (now {now}, beyond the allowed skew)"
            ),
            E::Expired { not_after, now } => write!(
                f,
                "chain expired at {not_after} (now {now}, beyond the allowed skew)"
            ),
            E::Path {
                trust_domain,
                reason,
            } => write!(
                f,
                "no valid path to an x509-svid authority of `{trust_domain}`: {reason}"
            ),
            E::BadAuthority { index, reason } => {
                write!(f, "authority certificate {index} is unusable: {reason}")
            }
        }
    }
}

impl std::error::Error for SvidError {}
