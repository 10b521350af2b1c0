//! Signing, for `custody mint`, `custody keygen` and tests. Never on the verification path.
//!
//! Ed25519 keys are ed25519-dalek's (deterministic signatures); EC and RSA keys are aws-lc-rs's
//! (ECDSA and PSS signatures are randomized, PKCS#1 v1.5 ones deterministic).

use std::sync::Arc;

use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPairComponents, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self as aws, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde_json::{Map, Value};

use crate::b64::B64;
use crate::ec::{Curve, EcKey};
use crate::error::KeySetError;
use crate::jwk::{KeyMaterial, PublicKey};
use crate::rsa::RsaKey;
use crate::{json, Algorithm};

/// A private key with its `kid` and the algorithm it signs with. Deliberately neither `Debug`
/// (a hand-written one names the key, never shows it) nor `PartialEq`.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    key: Secret,
}

#[derive(Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "a development key, one or a few per process: size does not matter"
)]
enum Secret {
    Ed25519(ed25519_dalek::SigningKey),
    Ec(Curve, Arc<EcdsaKeyPair>),
    Rsa(Arc<RsaKeyPair>, Arc<RsaParts>),
}

/// An RSA private key's JWK members (RFC 7518 §6.3), big-endian, kept to write the JWK back.
struct RsaParts {
    n: Vec<u8>,
    e: Vec<u8>,
    d: Vec<u8>,
    p: Vec<u8>,
    q: Vec<u8>,
    dp: Vec<u8>,
    dq: Vec<u8>,
    qi: Vec<u8>,
}

/// Names the key, never shows it (STYLE.md: private keys derive neither `Debug` nor
/// `PartialEq`).
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("key", &"<private>")
            .finish()
    }
}

fn bad(kid: &str, why: &'static str) -> KeySetError {
    KeySetError::BadKey(kid.to_owned(), why)
}

fn ecdsa_signing(curve: Curve) -> &'static aws::EcdsaSigningAlgorithm {
    match curve {
        Curve::P256 => &aws::ECDSA_P256_SHA256_FIXED_SIGNING,
        Curve::P384 => &aws::ECDSA_P384_SHA384_FIXED_SIGNING,
    }
}

fn rsa_encoding(alg: Algorithm) -> Option<&'static aws::RsaSignatureEncoding> {
    Some(match alg {
        Algorithm::Rs256 => &aws::RSA_PKCS1_SHA256,
        Algorithm::Rs384 => &aws::RSA_PKCS1_SHA384,
        Algorithm::Rs512 => &aws::RSA_PKCS1_SHA512,
        Algorithm::Ps256 => &aws::RSA_PSS_SHA256,
        Algorithm::Ps384 => &aws::RSA_PSS_SHA384,
        Algorithm::Ps512 => &aws::RSA_PSS_SHA512,
        _ => return None,
    })
}

impl SigningKey {
    /// An Ed25519 key from a 32-byte seed; it signs `EdDSA`.
    pub fn from_seed(kid: &str, seed: [u8; 32]) -> Self {
        SigningKey {
            kid: kid.to_owned(),
            alg: Algorithm::EdDsa,
            key: Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed)),
        }
    }

    /// A fresh random key for `alg` (Ed25519 for `EdDSA`/`Ed25519`, P-256 for `ES256`, P-384
    /// for `ES384`, RSA 2048 bits for the RSA algorithms).
    pub fn generate(kid: &str, alg: Algorithm) -> Result<Self, KeySetError> {
        let rng = SystemRandom::new();
        let failed = || bad(kid, "key generation failed");
        let key = match alg {
            Algorithm::EdDsa | Algorithm::Ed25519 => {
                let mut seed = [0u8; 32];
                aws_lc_rs::rand::SecureRandom::fill(&rng, &mut seed).map_err(|_| failed())?;
                Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            Algorithm::Es256 | Algorithm::Es384 => {
                let curve = if alg == Algorithm::Es256 {
                    Curve::P256
                } else {
                    Curve::P384
                };
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(ecdsa_signing(curve), &rng)
                    .map_err(|_| failed())?;
                let pair = EcdsaKeyPair::from_pkcs8(ecdsa_signing(curve), pkcs8.as_ref())
                    .map_err(|_| failed())?;
                Secret::Ec(curve, Arc::new(pair))
            }
            _ => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| failed())?;
                let der = pair.as_der().map_err(|_| failed())?;
                let parts = pkcs8_rsa_parts(der.as_ref()).ok_or_else(failed)?;
                Secret::Rsa(Arc::new(pair), Arc::new(parts))
            }
        };
        Ok(SigningKey {
            kid: kid.to_owned(),
            alg,
            key,
        })
    }

    /// The same key under another `kid` (tests and demos use it to build forged tokens).
    pub fn with_kid(&self, kid: &str) -> Self {
        SigningKey {
            kid: kid.to_owned(),
            ..self.clone()
        }
    }

    /// The same key signing with `alg` instead; `None` when `alg` does not fit the key (an
    /// RSA key signs any RSA algorithm, an Ed25519 key `EdDSA` or `Ed25519`).
    pub fn with_alg(&self, alg: Algorithm) -> Option<Self> {
        let fits = match &self.key {
            Secret::Ed25519(_) => alg.is_ed25519(),
            Secret::Ec(curve, _) => alg == curve.algorithm(),
            Secret::Rsa(..) => alg.is_rsa(),
        };
        fits.then(|| SigningKey {
            alg,
            ..self.clone()
        })
    }

    /// The `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm it signs with (the header `alg` of [`sign`]).
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Reads a private JWK: OKP Ed25519 (`kty`, `crv`, `kid`, `x`, `d`), EC P-256 or P-384
    /// (`x`, `y`, `d`) or RSA (`n`, `e`, `d`, `p`, `q`, `dp`, `dq`, `qi`). Its `alg`, when
    /// present, must fit the key and is the algorithm it signs with; else `EdDSA`, the curve's
    /// or `RS256`.
    pub fn from_jwk(bytes: &[u8]) -> Result<Self, KeySetError> {
        let jwk = json::parse_object(bytes, 4).map_err(KeySetError::Json)?;
        let get = |n: &str| jwk.get(n).and_then(Value::as_str);
        let kid = get("kid")
            .filter(|k| !k.is_empty())
            .ok_or(KeySetError::MissingKid(0))?;
        let member = |n: &'static str, why: &'static str| {
            get(n)
                .and_then(|v| B64.decode(v).ok())
                .ok_or_else(|| bad(kid, why))
        };
        let key = match (get("kty"), get("crv")) {
            (Some("OKP"), Some("Ed25519")) => ed25519_from_jwk(kid, &member)?,
            (Some("EC"), Some(crv)) => {
                let curve = Curve::from_crv(crv)
                    .ok_or_else(|| KeySetError::Shape("not a P-256 or P-384 EC JWK".into()))?;
                let d = member("d", "`d` is missing or not base64url")?;
                let x = member("x", "`x` is missing or not base64url")?;
                let y = member("y", "`y` is missing or not base64url")?;
                EcKey::from_coordinates(kid, curve, &x, &y)?;
                let point = [&[0x04][..], &x, &y].concat();
                let pair =
                    EcdsaKeyPair::from_private_key_and_public_key(ecdsa_signing(curve), &d, &point)
                        .map_err(|_| bad(kid, "`d` does not match `x` and `y`"))?;
                Secret::Ec(curve, Arc::new(pair))
            }
            (Some("RSA"), _) => rsa_from_jwk(kid, &member)?,
            _ => {
                return Err(KeySetError::Shape(
                    "not an OKP Ed25519, EC P-256, EC P-384 or RSA JWK".into(),
                ))
            }
        };
        let mut signing = SigningKey {
            kid: kid.to_owned(),
            alg: Algorithm::EdDsa,
            key,
        };
        signing.alg = match &signing.key {
            Secret::Ed25519(_) => Algorithm::EdDsa,
            Secret::Ec(curve, _) => curve.algorithm(),
            Secret::Rsa(..) => Algorithm::Rs256,
        };
        match get("alg") {
            None => Ok(signing),
            Some(alg) => Algorithm::from_name(alg)
                .and_then(|a| signing.with_alg(a))
                .ok_or_else(|| bad(kid, "`alg` is not an algorithm of this key")),
        }
    }

    /// The private JWK document.
    pub fn to_private_jwk(&self) -> Value {
        let mut m = match self.public().to_jwk() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        match &self.key {
            Secret::Ed25519(k) => {
                m.insert("d".into(), B64.encode(k.to_bytes()).into());
            }
            Secret::Ec(_, pair) => {
                if let Ok(d) = pair.private_key().as_be_bytes() {
                    m.insert("d".into(), B64.encode(d.as_ref()).into());
                }
            }
            Secret::Rsa(_, parts) => {
                for (name, value) in [
                    ("d", &parts.d),
                    ("p", &parts.p),
                    ("q", &parts.q),
                    ("dp", &parts.dp),
                    ("dq", &parts.dq),
                    ("qi", &parts.qi),
                ] {
                    m.insert(name.into(), B64.encode(value).into());
                }
            }
        }
        Value::Object(m)
    }

    /// The public half. An Ed25519 key's has no pinned `alg` (as custody has always written
    /// it); an EC or RSA key's is pinned to the algorithm this key signs with.
    pub fn public(&self) -> PublicKey {
        match &self.key {
            // A key derived from a private scalar is never a small-order point in practice;
            // if it were, fall back to the raw dalek key so signing still works for tests.
            Secret::Ed25519(k) => PublicKey::from_bytes(&self.kid, k.verifying_key().as_bytes())
                .unwrap_or_else(|_| PublicKey::from_dalek(&self.kid, k.verifying_key())),
            Secret::Ec(curve, pair) => {
                let point = pair.public_key().as_ref();
                let n = curve.field_len();
                let x = point.get(1..1 + n).unwrap_or_default();
                let y = point.get(1 + n..).unwrap_or_default();
                let material =
                    EcKey::from_coordinates(&self.kid, *curve, x, y).map(KeyMaterial::Ec);
                self.pinned(material)
            }
            Secret::Rsa(_, parts) => {
                let material =
                    RsaKey::from_components(&self.kid, &parts.n, &parts.e).map(KeyMaterial::Rsa);
                self.pinned(material)
            }
        }
    }

    fn pinned(&self, material: Result<KeyMaterial, KeySetError>) -> PublicKey {
        match material {
            Ok(m) => {
                let key = PublicKey::new(&self.kid, m);
                key.clone().pinned(self.alg).unwrap_or(key)
            }
            // Only a key this type refused to build could get here: sign-only keys in tests.
            Err(_) => PublicKey::from_dalek(
                &self.kid,
                ed25519_dalek::SigningKey::from_bytes(&[0; 32]).verifying_key(),
            ),
        }
    }

    /// Signs raw bytes with the key's algorithm (Ed25519: 64 bytes; ECDSA: `r‖s`, 64 or 96
    /// bytes; RSA: the modulus's length). Empty only if the library failed to sign.
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
            Secret::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            Secret::Ec(_, pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default(),
            Secret::Rsa(pair, _) => {
                let Some(encoding) = rsa_encoding(self.alg) else {
                    return Vec::new();
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                match pair.sign(encoding, &SystemRandom::new(), message, &mut sig) {
                    Ok(()) => sig,
                    Err(_) => Vec::new(),
                }
            }
        }
    }
}

fn ed25519_from_jwk(
    kid: &str,
    member: &dyn Fn(&'static str, &'static str) -> Result<Vec<u8>, KeySetError>,
) -> Result<Secret, KeySetError> {
    let seed = member("d", "`d` is not 32 base64url bytes")?;
    let seed = <[u8; 32]>::try_from(seed.as_slice())
        .map_err(|_| bad(kid, "`d` is not 32 base64url bytes"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    if let Ok(x) = member("x", "") {
        if x != key.verifying_key().as_bytes() {
            return Err(bad(kid, "`x` does not match `d`"));
        }
    }
    Ok(Secret::Ed25519(key))
}

fn rsa_from_jwk(
    kid: &str,
    member: &dyn Fn(&'static str, &'static str) -> Result<Vec<u8>, KeySetError>,
) -> Result<Secret, KeySetError> {
    let missing = "an RSA private JWK needs `n`, `e`, `d`, `p`, `q`, `dp`, `dq` and `qi`";
    let parts = RsaParts {
        n: member("n", missing)?,
        e: member("e", missing)?,
        d: member("d", missing)?,
        p: member("p", missing)?,
        q: member("q", missing)?,
        dp: member("dp", missing)?,
        dq: member("dq", missing)?,
        qi: member("qi", missing)?,
    };
    RsaKey::from_components(kid, &parts.n, &parts.e)?;
    let components = KeyPairComponents {
        public_key: PublicKeyComponents {
            n: parts.n.as_slice(),
            e: parts.e.as_slice(),
        },
        d: parts.d.as_slice(),
        p: parts.p.as_slice(),
        q: parts.q.as_slice(),
        dP: parts.dp.as_slice(),
        dQ: parts.dq.as_slice(),
        qInv: parts.qi.as_slice(),
    };
    let pair = RsaKeyPair::from_components(&components)
        .map_err(|_| bad(kid, "the RSA private members do not form one key"))?;
    Ok(Secret::Rsa(Arc::new(pair), Arc::new(parts)))
}

/// The RSA private key members of a PKCS#8 document (RFC 5208) holding a PKCS#1
/// `RSAPrivateKey` (RFC 8017 A.1.2): what aws-lc-rs writes for a generated key.
fn pkcs8_rsa_parts(der: &[u8]) -> Option<RsaParts> {
    let (outer, _) = der_take(der, 0x30)?;
    let (_version, rest) = der_take(outer, 0x02)?;
    let (_algorithm, rest) = der_take(rest, 0x30)?;
    let (octets, _) = der_take(rest, 0x04)?;
    let (mut key, _) = der_take(octets, 0x30)?;
    let mut ints = Vec::with_capacity(9);
    while !key.is_empty() {
        let (int, rest) = der_take(key, 0x02)?;
        ints.push(strip_zeros(int).to_vec());
        key = rest;
    }
    let [_version, n, e, d, p, q, dp, dq, qi]: [Vec<u8>; 9] = ints.try_into().ok()?;
    Some(RsaParts {
        n,
        e,
        d,
        p,
        q,
        dp,
        dq,
        qi,
    })
}

/// One DER element of `tag` at the start of `input`: its contents and what follows.
fn der_take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if t != tag {
        return None;
    }
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        let (bytes, rest) = (rest.get(..count)?, rest.get(count..)?);
        let len = bytes.iter().try_fold(0usize, |acc, &b| {
            acc.checked_mul(256)?.checked_add(usize::from(b))
        })?;
        (len, rest)
    };
    Some((rest.get(..len)?, rest.get(len..)?))
}

fn strip_zeros(int: &[u8]) -> &[u8] {
    let start = int.iter().position(|&b| b != 0).unwrap_or(int.len());
    int.get(start..).unwrap_or_default()
}

/// Signs `claims` with header `{"alg":…,"kid":…,"typ":…}`, `alg` the key's.
pub fn sign(
    key: &SigningKey,
    typ: Option<&str>,
    claims: &Value,
) -> Result<String, serde_json::Error> {
    let mut header = Map::new();
    header.insert("alg".into(), key.alg.name().into());
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
