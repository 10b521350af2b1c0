//! One trust domain's X.509 authorities, parsed once into webpki trust anchors.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor};

use crate::SvidError;

/// One trust domain's X.509 authorities (CA certificates, DER), parsed once into webpki trust
/// anchors so that [`validate`](crate::validate) does no anchor parsing per call.
///
/// An authority is a name and a key (RFC 5280 §6.1.1 (d)): its own validity, CA flag and key
/// usages are not checked, as in rustls-webpki.
#[derive(Clone, Debug, Default)]
pub struct X509Authorities {
    ders: Vec<Vec<u8>>,
    anchors: Vec<TrustAnchor<'static>>,
}

impl X509Authorities {
    /// Authorities from DER certificates; each must parse as a certificate usable as a trust
    /// anchor ([`SvidError::BadAuthority`] otherwise).
    pub fn from_der(certs: Vec<Vec<u8>>) -> Result<Self, SvidError> {
        let anchors = certs
            .iter()
            .enumerate()
            .map(|(index, der)| anchor(index, der))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(X509Authorities {
            ders: certs,
            anchors,
        })
    }

    /// Authorities from every `CERTIFICATE` block of a PEM file (other blocks are skipped); a
    /// file with none, or with a block that does not decode, is an error.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SvidError> {
        let ders = CertificateDer::pem_slice_iter(pem)
            .enumerate()
            .map(|(index, der)| match der {
                Ok(der) => Ok(der.to_vec()),
                Err(e) => Err(bad(index, e.to_string())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ders.is_empty() {
            return Err(bad(0, "no `CERTIFICATE` block in the PEM input".to_owned()));
        }
        Self::from_der(ders)
    }

    /// Whether there is no authority.
    pub fn is_empty(&self) -> bool {
        self.ders.is_empty()
    }

    /// The number of authorities.
    pub fn len(&self) -> usize {
        self.ders.len()
    }

    /// Whether `der` is, byte for byte, one of the authorities.
    pub fn contains(&self, der: &[u8]) -> bool {
        self.ders.iter().any(|d| d.as_slice() == der)
    }

    /// The authorities' DER certificates, in the order given.
    pub fn ders(&self) -> &[Vec<u8>] {
        &self.ders
    }

    pub(crate) fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }
}

fn anchor(index: usize, der: &[u8]) -> Result<TrustAnchor<'static>, SvidError> {
    webpki::anchor_from_trusted_cert(&CertificateDer::from(der))
        .map(|a| a.to_owned())
        .map_err(|e| bad(index, format!("{e:?}")))
}

fn bad(index: usize, reason: String) -> SvidError {
    SvidError::BadAuthority { index, reason }
}
