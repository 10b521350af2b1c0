//! The one list of JWS algorithms custody verifies (DESIGN.md, "Algorithms").
//!
//! A token's `alg` is looked up here once: a name not on the list (`none`, `HS*`, `ES256K`,
//! `ES512`, a lowercase spelling, …) is `alg_not_allowed` before any key is consulted, and a
//! name on it still has to fit the key the token's `kid` selects ([`KeyMaterial::fits`]).
//!
//! [`KeyMaterial::fits`]: crate::KeyMaterial::fits

use std::fmt;

/// A signature algorithm custody verifies, by its JOSE name (RFC 7518 §3.1, RFC 8037, RFC 9864).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `EdDSA` over Ed25519 (the polymorphic name, RFC 8037), `verify_strict`'s acceptance.
    EdDsa,
    /// `Ed25519` (RFC 9864's fully specified name): the same check as `EdDSA`.
    Ed25519,
    /// `ES256`: ECDSA P-256 with SHA-256, fixed-length `r‖s` (64 bytes).
    Es256,
    /// `ES384`: ECDSA P-384 with SHA-384, fixed-length `r‖s` (96 bytes).
    Es384,
    /// `RS256`: RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// `RS384`: RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// `RS512`: RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// `PS256`: RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt.
    Ps256,
    /// `PS384`: RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-byte salt.
    Ps384,
    /// `PS512`: RSASSA-PSS, SHA-512, MGF1-SHA-512, 64-byte salt.
    Ps512,
}

impl Algorithm {
    /// Every algorithm, in the order DESIGN.md lists them.
    pub const ALL: [Algorithm; 10] = [
        Algorithm::EdDsa,
        Algorithm::Ed25519,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
    ];

    /// The algorithm a header `alg` names: exact, case-sensitive; `None` for everything custody
    /// refuses.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
        }
    }

    /// Whether this is one of the two names of Ed25519.
    pub fn is_ed25519(self) -> bool {
        matches!(self, Algorithm::EdDsa | Algorithm::Ed25519)
    }

    /// Whether this is an RSA algorithm (PKCS#1 v1.5 or PSS).
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            Algorithm::Rs256
                | Algorithm::Rs384
                | Algorithm::Rs512
                | Algorithm::Ps256
                | Algorithm::Ps384
                | Algorithm::Ps512
        )
    }
}

/// Whether `alg` names Ed25519 (`EdDSA`, the polymorphic name, or RFC 9864's `Ed25519`).
pub fn is_ed25519_alg(alg: &str) -> bool {
    Algorithm::from_name(alg).is_some_and(Algorithm::is_ed25519)
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_is_listed() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
        }
        for refused in [
            "none", "None", "HS256", "HS384", "HS512", "ES256K", "ES512", "Ed448", "eddsa",
            "es256", "RS1", "PS256 ", "", "EdDSA\0",
        ] {
            assert_eq!(Algorithm::from_name(refused), None, "{refused:?}");
        }
    }
}
