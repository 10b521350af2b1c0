//! base64url, the one encoding of JOSE (token parts, JWK members).

/// base64url without padding, refusing padding and non-canonical trailing bits.
pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
