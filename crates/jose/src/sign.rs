//! Signing, for `custody mint`, `custody keygen` and tests. Never on the verification path.

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde_json::{Map, Value};

use crate::b64::B64;
use crate::{json, jwk::PublicKey, KeySetError};

/// An Ed25519 private key with its `kid`. Deliberately neither `Debug` nor `PartialEq`.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    key: ed25519_dalek::SigningKey,
}

/// Names the key, never shows it (STYLE.md: private keys derive neither `Debug` nor
/// `PartialEq`).
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("key", &"<private>")
            .finish()
    }
}

impl SigningKey {
    /// A key from a 32-byte seed.
    pub fn from_seed(kid: &str, seed: [u8; 32]) -> Self {
        SigningKey {
            kid: kid.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// The same key under another `kid` (tests and demos use it to build forged tokens).
    pub fn with_kid(&self, kid: &str) -> Self {
        SigningKey {
            kid: kid.to_owned(),
            key: self.key.clone(),
        }
    }

    /// The `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Reads a private OKP Ed25519 JWK (`kty`, `crv`, `kid`, `x`, `d`).
    pub fn from_jwk(bytes: &[u8]) -> Result<Self, KeySetError> {
        let jwk = json::parse_object(bytes, 4).map_err(KeySetError::Json)?;
        let get = |n: &str| jwk.get(n).and_then(Value::as_str);
        if get("kty") != Some("OKP") || get("crv") != Some("Ed25519") {
            return Err(KeySetError::Shape("not an OKP Ed25519 JWK".into()));
        }
        let kid = get("kid")
            .filter(|k| !k.is_empty())
            .ok_or(KeySetError::MissingKid(0))?;
        let d = get("d").ok_or_else(|| KeySetError::Shape("no private part `d`".into()))?;
        let seed = B64
            .decode(d)
            .ok()
            .and_then(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
            .ok_or_else(|| KeySetError::BadKey(kid.to_owned(), "`d` is not 32 base64url bytes"))?;
        let key = Self::from_seed(kid, seed);
        if let Some(x) = get("x") {
            if x != B64.encode(key.key.verifying_key().as_bytes()) {
                return Err(KeySetError::BadKey(
                    kid.to_owned(),
                    "`x` does not match `d`",
                ));
            }
        }
        Ok(key)
    }

    /// The private JWK document.
    pub fn to_private_jwk(&self) -> Value {
        let mut m = match self.public().to_jwk() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        m.insert("d".into(), B64.encode(self.key.to_bytes()).into());
        Value::Object(m)
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        // A key derived from a private scalar is never a small-order point in practice; if it
        // were, fall back to the raw dalek key so signing still works for tests.
        PublicKey::from_bytes(&self.kid, self.key.verifying_key().as_bytes())
            .unwrap_or_else(|_| PublicKey::from_dalek(&self.kid, self.key.verifying_key()))
    }

    /// Signs raw bytes.
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Signs `claims` with header `{"alg":"EdDSA","kid":…,"typ":…}`.
pub fn sign(
    key: &SigningKey,
    typ: Option<&str>,
    claims: &Value,
) -> Result<String, serde_json::Error> {
    let mut header = Map::new();
    header.insert("alg".into(), "EdDSA".into());
    header.insert("kid".into(), key.kid.clone().into());
    if let Some(typ) = typ {
        header.insert("typ".into(), typ.into());
    }
    sign_with_header(key, &Value::Object(header), claims)
}

/// Signs `claims` under an arbitrary header (tests use this to build hostile tokens).
pub fn sign_with_header(
    key: &SigningKey,
    header: &Value,
    claims: &Value,
) -> Result<String, serde_json::Error> {
    let h = B64.encode(serde_json::to_vec(header)?);
    let p = B64.encode(serde_json::to_vec(claims)?);
    let input = format!("{h}.{p}");
    let sig = B64.encode(key.sign_bytes(input.as_bytes()));
    Ok(format!("{input}.{sig}"))
}
