//! The request's `peer_certificates`: one PEM certificate per string.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::SvidError;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Decodes the request's `peer_certificates`, leaf first, into DER.
///
/// Each string must be exactly one PEM `CERTIFICATE` block, with nothing but whitespace around
/// it: no block, two blocks, another kind of block, text outside the block or bad base64 is
/// [`SvidError::Pem`]. The bounds are checked first: at most `max_certs` strings and `max_bytes`
/// bytes over all of them. An empty list is [`SvidError::NoCertificates`]. The DER is not
/// parsed here; [`validate`](crate::validate) does that.
pub fn parse_pem_chain(
    pems: &[String],
    max_certs: usize,
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, SvidError> {
    if pems.len() > max_certs {
        return Err(SvidError::TooManyPemCertificates {
            count: pems.len(),
            max: max_certs,
        });
    }
    let total = pems.iter().fold(0usize, |n, p| n.saturating_add(p.len()));
    if total > max_bytes {
        return Err(SvidError::PemTooLarge { max: max_bytes });
    }
    if pems.is_empty() {
        return Err(SvidError::NoCertificates);
    }
    pems.iter()
        .enumerate()
        .map(|(index, pem)| one_certificate(pem).map_err(|reason| SvidError::Pem { index, reason }))
        .collect()
}

/// The DER of the single `CERTIFICATE` block that is all of `pem` (whitespace aside).
fn one_certificate(pem: &str) -> Result<Vec<u8>, String> {
    let text = pem.trim();
    let blocks = text.matches("-----BEGIN ").count();
    if blocks == 0 {
        return Err("no PEM block".to_owned());
    }
    if blocks > 1 || text.matches("-----END ").count() > 1 {
        return Err(format!(
            "{blocks} PEM blocks; exactly one `CERTIFICATE` block is allowed"
        ));
    }
    if !text.starts_with(BEGIN) || !text.ends_with(END) {
        return Err(
            "not exactly one `CERTIFICATE` block (another block type, or text around it)"
                .to_owned(),
        );
    }
    let der = CertificateDer::from_pem_slice(text.as_bytes())
        .map_err(|e| format!("bad PEM `CERTIFICATE` block: {e}"))?;
    if der.is_empty() {
        return Err("empty `CERTIFICATE` block".to_owned());
    }
    Ok(der.to_vec())
}
