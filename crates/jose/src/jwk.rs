//! Verification keys from JWKS documents and SPIFFE trust bundles.
//!
//! A key set belongs to one trust domain and is never merged with another's. Keys of the kinds
//! custody verifies (OKP Ed25519, EC P-256 and P-384, RSA) are used; other kinds (`oct`, OKP
//! X25519, EC P-521, …) and keys bound to another `use`, to `key_ops` without `verify` or to
//! an `alg` their material does not fit are skipped and reported, so `custody check` can say
//! so. Some faults make the whole file unusable: a private part (`d`, `p`, `q`, `dp`, `dq`,
//! `qi`, `oth`) on any key, a usable key without `kid`, two usable keys with one `kid`, key
//! material that is not a valid key of its kind (an Ed25519 `x` not a full-order point, an EC
//! point off its curve or with short coordinates, an RSA modulus outside 2048 to 8192 bits or
//! an exponent other than 65537).

use std::fmt;

use base64::Engine as _;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::VerifyingKey;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};

use crate::b64::B64;
use crate::ec::{Curve, EcKey};
use crate::error::KeySetError;
use crate::rsa::RsaKey;
use crate::{json, Algorithm, Limits};

/// One usable verification key of a trust domain: its `kid`, the `alg` its JWK pinned, and
/// its key material. The type is algorithm-neutral: what a key can verify is in its
/// [`KeyMaterial`], narrowed by the pinned `alg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    kid: String,
    alg: Option<Algorithm>,
    material: KeyMaterial,
    /// The RFC 7638 JWK thumbprint (SHA-256 over the required members): the key's identity,
    /// whatever its algorithm and whatever `kid` it is published under.
    thumbprint: [u8; 32],
}

/// A verification key's material, one variant per kind of key custody verifies. The key
/// decides: each kind verifies only its own algorithms ([`fits`](Self::fits)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "Ed25519 is the hot path: its precomputed `-A` stays inline, no pointer to chase"
)]
pub enum KeyMaterial {
    /// An Ed25519 public key (`kty` `OKP`, `crv` `Ed25519`): `EdDSA` and `Ed25519`.
    Ed25519(Ed25519Key),
    /// An EC public key (`kty` `EC`): P-256 verifies `ES256` only, P-384 `ES384` only.
    Ec(EcKey),
    /// An RSA public key (`kty` `RSA`, 2048 to 8192 bits, e = 65537): `RS256`, `RS384`,
    /// `RS512`, `PS256`, `PS384`, `PS512`.
    Rsa(RsaKey),
}

impl KeyMaterial {
    /// Whether `alg` is an algorithm of this material.
    pub fn fits(&self, alg: Algorithm) -> bool {
        match self {
            KeyMaterial::Ed25519(_) => alg.is_ed25519(),
            KeyMaterial::Ec(k) => alg == k.curve().algorithm(),
            KeyMaterial::Rsa(_) => alg.is_rsa(),
        }
    }

    /// Whether header `alg` names an algorithm of this material (an unlisted name fits none).
    pub fn fits_alg(&self, alg: &str) -> bool {
        Algorithm::from_name(alg).is_some_and(|a| self.fits(a))
    }

    /// Verifies `signature` over `message` with `alg`, by the rule of this material (Ed25519:
    /// exactly `verify_strict`'s acceptance; ECDSA: fixed-length `r‖s` with `0 < r, s < n`;
    /// RSA: PKCS#1 v1.5 or PSS with the salt as long as the hash). `false` when `alg` does not
    /// fit the material.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match self {
            KeyMaterial::Ed25519(k) => k.verify_strict(message, signature),
            KeyMaterial::Ec(k) => k.verify(message, signature),
            KeyMaterial::Rsa(k) => k.verify(alg, message, signature),
        }
    }

    /// The RFC 7638 thumbprint input: the required public members, in lexicographic order,
    /// without whitespace.
    fn thumbprint_input(&self) -> String {
        match self {
            KeyMaterial::Ed25519(k) => format!(
                "{{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"{}\"}}",
                B64.encode(k.key.as_bytes())
            ),
            KeyMaterial::Ec(k) => k.thumbprint_input(),
            KeyMaterial::Rsa(k) => k.thumbprint_input(),
        }
    }
}

/// An Ed25519 public key, checked once: a valid point, not of small order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519Key {
    key: VerifyingKey,
    /// `-A`, the decompressed key negated once here rather than on every signature.
    minus_a: EdwardsPoint,
    /// Whether `A` has small order: `verify_strict` then refuses every signature.
    small_order: bool,
}

impl Ed25519Key {
    /// The key from its raw 32 bytes; refuses invalid and small-order points (`kid` names
    /// the key in the error).
    pub fn from_bytes(kid: &str, bytes: &[u8; 32]) -> Result<Self, KeySetError> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| KeySetError::BadKey(kid.to_owned(), "`x` is not an Ed25519 point"))?;
        if key.is_weak() {
            return Err(KeySetError::BadKey(
                kid.to_owned(),
                "`x` is a small-order point",
            ));
        }
        Ok(Ed25519Key::from_dalek(key))
    }

    pub(crate) fn from_dalek(key: VerifyingKey) -> Self {
        Ed25519Key {
            minus_a: -key.to_edwards(),
            small_order: key.is_weak(),
            key,
        }
    }

    /// The raw public key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The dalek key, for callers that batch or precompute.
    pub fn as_dalek(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verifies with exactly the acceptance of ed25519-dalek 2.2's `verify_strict`: canonical
    /// `S`, no small-order `R` or `A`, and the cofactorless equation `R = [S]B - [k]A` compared
    /// on encodings, with `k = SHA-512(R || A || M)` over the bytes as given.
    ///
    /// It reaches that answer without decompressing `R` (a field square root, about a tenth of
    /// a verification). dalek decompresses `R` to refuse small-order and undecodable values,
    /// then compares `compress([S]B - [k]A)` with `R`'s bytes. Here the comparison comes
    /// first: if the bytes are equal they are the canonical encoding of the computed point,
    /// so `R` decodes, and decodes to that point; its order is then checked on the point
    /// already in hand. If they differ, dalek refuses too. `tests/ed25519_acceptance.rs`
    /// checks the equality over the malleable and small-order cases.
    pub fn verify_strict(&self, message: &[u8], signature: &[u8]) -> bool {
        let Some((r, s)) = signature.split_first_chunk::<32>() else {
            return false;
        };
        let (r, Ok(s)) = (*r, <[u8; 32]>::try_from(s)) else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
            return false;
        };
        if self.small_order {
            return false;
        }
        let mut h = Sha512::new();
        h.update(r);
        h.update(self.key.as_bytes());
        h.update(message);
        let k = Scalar::from_hash(h);
        let expected = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &self.minus_a, &s);
        expected.compress() == CompressedEdwardsY(r) && !expected.is_small_order()
    }
}

impl PublicKey {
    /// A key of `material` published under `kid`, with no pinned `alg`.
    pub fn new(kid: &str, material: KeyMaterial) -> Self {
        let thumbprint = Sha256::digest(material.thumbprint_input().as_bytes()).into();
        PublicKey {
            kid: kid.to_owned(),
            alg: None,
            material,
            thumbprint,
        }
    }

    /// The same key pinned to `alg` (a JWK's own `alg`); `None` when `alg` does not fit the
    /// material, since such a key could verify nothing.
    pub fn pinned(mut self, alg: Algorithm) -> Option<Self> {
        self.material.fits(alg).then(|| {
            self.alg = Some(alg);
            self
        })
    }

    /// An Ed25519 key from its raw 32 bytes; refuses invalid and small-order points.
    pub fn from_bytes(kid: &str, bytes: &[u8; 32]) -> Result<Self, KeySetError> {
        let key = Ed25519Key::from_bytes(kid, bytes)?;
        Ok(PublicKey::new(kid, KeyMaterial::Ed25519(key)))
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `alg` the JWK pinned, if any.
    pub fn alg(&self) -> Option<&str> {
        self.alg.map(Algorithm::name)
    }

    /// The key material.
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// The Ed25519 key, when this is one.
    pub fn ed25519(&self) -> Option<&Ed25519Key> {
        match &self.material {
            KeyMaterial::Ed25519(k) => Some(k),
            _ => None,
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256): the key's identity, independent of its `kid`.
    pub fn thumbprint(&self) -> &[u8; 32] {
        &self.thumbprint
    }

    /// The algorithm header `alg` names, when this key may verify it: on the list, an
    /// algorithm of the key's material, and the JWK's own `alg` if it pinned one.
    pub fn algorithm_for(&self, alg: &str) -> Option<Algorithm> {
        let a = Algorithm::from_name(alg)?;
        (self.material.fits(a) && self.alg.is_none_or(|pinned| pinned == a)).then_some(a)
    }

    /// Whether header `alg` may be used with this key ([`algorithm_for`](Self::algorithm_for)).
    pub fn allows_alg(&self, alg: &str) -> bool {
        self.algorithm_for(alg).is_some()
    }

    /// Verifies `signature` over `message` under header `alg` by the rule of that algorithm
    /// (Ed25519: exactly `verify_strict`'s acceptance). `false` when the key does not allow
    /// `alg`; callers ask [`allows_alg`](Self::allows_alg) first to tell the two apart.
    pub fn verify_with(&self, alg: &str, message: &[u8], signature: &[u8]) -> bool {
        self.algorithm_for(alg)
            .is_some_and(|a| self.material.verify(a, message, signature))
    }

    /// The one algorithm this key verifies, when it has one: its pinned `alg`, else Ed25519's
    /// or its curve's; `None` for an RSA key without a pinned `alg` (six algorithms fit it).
    pub fn sole_algorithm(&self) -> Option<Algorithm> {
        self.alg.or(match &self.material {
            KeyMaterial::Ed25519(_) => Some(Algorithm::EdDsa),
            KeyMaterial::Ec(k) => Some(k.curve().algorithm()),
            KeyMaterial::Rsa(_) => None,
        })
    }

    /// Verifies `signature` over `message` by the key's [sole algorithm](Self::sole_algorithm)
    /// (Ed25519: exactly `verify_strict`'s acceptance); `false` for a key without one. A token's
    /// signature is checked with [`verify_with`](Self::verify_with) under its header `alg`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.sole_algorithm()
            .is_some_and(|a| self.material.verify(a, message, signature))
    }

    /// [`Ed25519Key::verify_strict`] for an Ed25519 key; `false` for a key of any other
    /// algorithm.
    pub fn verify_strict(&self, message: &[u8], signature: &[u8]) -> bool {
        self.ed25519()
            .is_some_and(|k| k.verify_strict(message, signature))
    }

    /// The public JWK form.
    pub fn to_jwk(&self) -> Value {
        let mut m = Map::new();
        match &self.material {
            KeyMaterial::Ed25519(k) => {
                m.insert("kty".into(), "OKP".into());
                m.insert("crv".into(), "Ed25519".into());
                m.insert("kid".into(), self.kid.clone().into());
                m.insert("x".into(), B64.encode(k.key.as_bytes()).into());
            }
            KeyMaterial::Ec(k) => {
                m.insert("kty".into(), "EC".into());
                m.insert("crv".into(), k.curve().crv().into());
                m.insert("kid".into(), self.kid.clone().into());
                m.insert("x".into(), B64.encode(k.x()).into());
                m.insert("y".into(), B64.encode(k.y()).into());
            }
            KeyMaterial::Rsa(k) => {
                m.insert("kty".into(), "RSA".into());
                m.insert("kid".into(), self.kid.clone().into());
                m.insert("n".into(), B64.encode(k.n()).into());
                m.insert("e".into(), "AQAB".into());
            }
        }
        if let Some(alg) = self.alg {
            m.insert("alg".into(), alg.name().into());
        }
        Value::Object(m)
    }
}

/// The usable keys of one trust domain, looked up by `kid`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<PublicKey>,
    /// Position of each key by `kid`, once the set is large enough for a table to beat a scan.
    by_kid: std::collections::HashMap<String, usize>,
}

/// Sets up to this size are scanned; larger ones are looked up in a table.
const SCAN: usize = 8;

impl KeySet {
    /// An empty set: every token of its domain fails with `unknown_key`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks a key up by exact, case-sensitive `kid`.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        if self.keys.len() <= SCAN {
            return self.keys.iter().find(|k| k.kid == kid);
        }
        self.keys.get(*self.by_kid.get(kid)?)
    }

    /// Adds a key; refuses a second key with the same `kid`.
    pub fn insert(&mut self, key: PublicKey) -> Result<(), KeySetError> {
        if self.get(&key.kid).is_some() {
            return Err(KeySetError::DuplicateKid(key.kid));
        }
        self.keys.push(key);
        match self.keys.len() {
            n if n <= SCAN => {}
            n if n == SCAN + 1 => {
                let index = self
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (k.kid.clone(), i));
                self.by_kid = index.collect();
            }
            n => {
                if let Some(k) = self.keys.last() {
                    self.by_kid.insert(k.kid.clone(), n - 1);
                }
            }
        }
        Ok(())
    }

    /// Moves every key of `other` in; refuses a `kid` both hold.
    pub fn merge(&mut self, other: KeySet) -> Result<(), KeySetError> {
        other.keys.into_iter().try_for_each(|k| self.insert(k))
    }

    /// The keys, in file order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The JWKS document for these keys.
    pub fn to_jwks(&self) -> Value {
        let keys = self.keys.iter().map(PublicKey::to_jwk).collect();
        let mut m = Map::new();
        m.insert("keys".into(), Value::Array(keys));
        Value::Object(m)
    }
}

/// A key that was present but not used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the `keys` array.
    pub index: usize,
    /// The key's `kid`, if it had a string one.
    pub kid: Option<String>,
    /// Why it was skipped, lowercase.
    pub reason: String,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key {} (`{kid}`) skipped: {}", self.index, self.reason),
            None => write!(f, "key {} skipped: {}", self.index, self.reason),
        }
    }
}

/// A parsed key set and the keys it passed over.
#[derive(Clone, Debug, Default)]
pub struct ParsedKeySet {
    /// The keys that verify tokens: `use` absent or `sig` in a plain JWKS, `jwt-svid` in a
    /// SPIFFE bundle.
    pub keys: KeySet,
    /// A SPIFFE bundle's `wit-svid` keys: they verify WIMSE workload identity tokens only.
    pub wit_keys: KeySet,
    /// A bundle's `x509-svid` authorities: the first certificate (DER) of each entry's `x5c`.
    pub x509: Vec<Vec<u8>>,
    /// The keys passed over.
    pub skipped: Vec<SkippedKey>,
    /// Whether the document is a SPIFFE bundle (it has `spiffe_sequence` or
    /// `spiffe_refresh_hint`, or a key whose `use` is `x509-svid`, `jwt-svid` or `wit-svid`).
    pub bundle: bool,
    /// A bundle's `spiffe_sequence`.
    pub sequence: Option<u64>,
    /// A bundle's `spiffe_refresh_hint`, in seconds.
    pub refresh_hint: Option<u64>,
}

/// Parses a JWKS (RFC 7517) or SPIFFE trust bundle document.
pub fn parse_key_set(bytes: &[u8], limits: &Limits) -> Result<ParsedKeySet, KeySetError> {
    if bytes.len() > limits.pack_file_bytes {
        return Err(KeySetError::TooLarge(limits.pack_file_bytes));
    }
    let doc = json::parse_object(bytes, limits.json_depth).map_err(KeySetError::Json)?;
    let keys = match doc.get("keys") {
        Some(Value::Array(keys)) => keys,
        Some(_) => return Err(KeySetError::Shape("`keys` must be an array".into())),
        None => return Err(KeySetError::Shape("missing `keys` array".into())),
    };
    if keys.len() > limits.keys_per_set {
        return Err(KeySetError::TooManyKeys(limits.keys_per_set));
    }
    let mut out = ParsedKeySet {
        sequence: bundle_member(&doc, "spiffe_sequence")?,
        refresh_hint: bundle_member(&doc, "spiffe_refresh_hint")?,
        ..ParsedKeySet::default()
    };
    out.bundle = out.sequence.is_some()
        || out.refresh_hint.is_some()
        || keys.iter().any(|k| {
            k.get("use")
                .and_then(Value::as_str)
                .is_some_and(|u| BUNDLE_USES.contains(&u))
        });
    for (index, jwk) in keys.iter().enumerate() {
        let Value::Object(jwk) = jwk else {
            return Err(KeySetError::Shape(format!("key {index} is not an object")));
        };
        if out.bundle && jwk.get("use").and_then(Value::as_str) == Some("x509-svid") {
            if let Some(der) = x509_authority(index, jwk)? {
                out.x509.push(der);
                continue;
            }
        }
        match classify(index, jwk, out.bundle)? {
            Classified::Token(key) => out.keys.insert(key)?,
            Classified::Wit(key) => out.wit_keys.insert(key)?,
            Classified::Skipped(skip) => out.skipped.push(skip),
        }
    }
    // One `kid` names one key of the document, whatever it verifies.
    if let Some(key) = out
        .wit_keys
        .keys()
        .iter()
        .find(|k| out.keys.get(&k.kid).is_some())
    {
        return Err(KeySetError::DuplicateKid(key.kid.clone()));
    }
    Ok(out)
}

/// One public JWK carried in a token rather than a key set: a WIT's `cnf.jwk`, a DPoP proof's
/// `jwk` header. The same material rules as a key set's keys (key types, curves, RSA bounds,
/// points on their curve), and: no private part, `kid` optional (the key is named `""`), an
/// `alg` member read as the key's pinned algorithm and required when `require_alg`. Nothing is
/// skipped here: a key that could verify nothing is an error.
pub fn parse_jwk(jwk: &Map<String, Value>, require_alg: bool) -> Result<PublicKey, KeySetError> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(KeySetError::PrivateKey(0));
    }
    let kty = str_member(jwk, "kty", 0)?.unwrap_or("");
    let crv = str_member(jwk, "crv", 0)?.unwrap_or("");
    let kind = kind(kty, crv).ok_or_else(|| {
        KeySetError::Shape(format!(
            "only OKP Ed25519, EC P-256, EC P-384 and RSA keys are used (`kty` `{kty}`, `crv` `{crv}`)"
        ))
    })?;
    let material = material(kind, "jwk", jwk, 0)?;
    let key = PublicKey::new("", material);
    match str_member(jwk, "alg", 0)? {
        None if require_alg => Err(KeySetError::Shape("the key has no `alg`".into())),
        None => Ok(key),
        Some(alg) => Algorithm::from_name(alg)
            .and_then(|a| key.pinned(a))
            .ok_or_else(|| {
                KeySetError::Shape(format!(
                    "`alg` `{alg}` is not an algorithm this key verifies"
                ))
            }),
    }
}

/// A bundle's `x509-svid` entry: its `x5c` holds exactly one certificate (standard base64 of
/// its DER, RFC 7517 §4.7), the authority; no private part. Whether the bytes are a usable
/// CA certificate is for the certificate validator to say when it loads them. An entry
/// without `x5c` is no authority (`None`: it is skipped as a key that verifies no token).
fn x509_authority(index: usize, jwk: &Map<String, Value>) -> Result<Option<Vec<u8>>, KeySetError> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(KeySetError::PrivateKey(index));
    }
    let certs = match jwk.get("x5c") {
        None => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(KeySetError::Shape(format!(
                "key {index}: `x5c` must be a list of one certificate"
            )))
        }
    };
    let [Value::String(cert)] = certs.as_slice() else {
        return Err(KeySetError::Shape(format!(
            "key {index}: an `x509-svid` entry's `x5c` must hold exactly one certificate"
        )));
    };
    base64::engine::general_purpose::STANDARD
        .decode(cert)
        .ok()
        .filter(|der| !der.is_empty())
        .map(Some)
        .ok_or_else(|| {
            KeySetError::Shape(format!(
                "key {index}: `x5c` is not standard base64 of a certificate"
            ))
        })
}

/// A SPIFFE bundle member (`spiffe_sequence`, `spiffe_refresh_hint`): a non-negative integer.
fn bundle_member(doc: &Map<String, Value>, name: &str) -> Result<Option<u64>, KeySetError> {
    match doc.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| KeySetError::Shape(format!("`{name}` must be a non-negative integer"))),
    }
}

fn str_member<'a>(
    jwk: &'a Map<String, Value>,
    name: &str,
    index: usize,
) -> Result<Option<&'a str>, KeySetError> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeySetError::Shape(format!(
            "key {index}: `{name}` must be a string"
        ))),
    }
}

/// The members of a JWK that belong to a private key (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// The `use` values that make a document a SPIFFE bundle (SPIFFE Trust Domain and Bundle §4.2).
const BUNDLE_USES: [&str; 3] = ["x509-svid", "jwt-svid", "wit-svid"];

/// What one JWK of a set is for.
enum Classified {
    /// It verifies tokens.
    Token(PublicKey),
    /// It verifies WIMSE workload identity tokens only (`wit-svid` in a bundle).
    Wit(PublicKey),
    /// It verifies nothing here.
    Skipped(SkippedKey),
}

/// The kinds of key custody verifies, told apart by `kty` and `crv`.
#[derive(Clone, Copy)]
enum Kind {
    Ed25519,
    Ec(Curve),
    Rsa,
}

fn kind(kty: &str, crv: &str) -> Option<Kind> {
    match kty {
        "OKP" if crv == "Ed25519" => Some(Kind::Ed25519),
        "EC" => Curve::from_crv(crv).map(Kind::Ec),
        "RSA" => Some(Kind::Rsa),
        _ => None,
    }
}

/// Either a usable key, a skipped one, or an error that spoils the whole set.
///
/// In order: a private part anywhere spoils the set; a kind custody does not verify is
/// skipped; the material of every key of a kind it does verify must be valid (else the set is
/// spoiled, whatever the key's `use`); then a key not for token signatures (`use`, `key_ops`)
/// is skipped; a usable key needs a `kid`; a pinned `alg` must be one its material fits, else
/// the key is skipped (it could verify nothing).
fn classify(
    index: usize,
    jwk: &Map<String, Value>,
    bundle: bool,
) -> Result<Classified, KeySetError> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(KeySetError::PrivateKey(index));
    }
    let kid = str_member(jwk, "kid", index)?;
    let skip = |reason: String| {
        Ok(Classified::Skipped(SkippedKey {
            index,
            kid: kid.map(str::to_owned),
            reason,
        }))
    };
    let kty = str_member(jwk, "kty", index)?.unwrap_or("");
    let crv = str_member(jwk, "crv", index)?.unwrap_or("");
    let Some(kind) = kind(kty, crv) else {
        return skip(format!(
            "only OKP Ed25519, EC P-256, EC P-384 and RSA keys are used (`kty` `{kty}`, `crv` `{crv}`)"
        ));
    };
    let name = kid.map_or_else(|| format!("#{index}"), str::to_owned);
    let material = material(kind, &name, jwk, index)?;
    let use_ = str_member(jwk, "use", index)?;
    let wit = match (bundle, use_) {
        (false, None | Some("sig")) | (true, Some("jwt-svid")) => false,
        (true, Some("wit-svid")) => true,
        (true, Some("x509-svid")) => {
            return skip("an `x509-svid` authority verifies certificates, not tokens".into())
        }
        (true, None) => return skip("a SPIFFE bundle key without `use` verifies nothing".into()),
        (false, Some(other)) => {
            return skip(format!(
                "`use` `{other}` is not for token signatures (a JWK Set key needs `sig`)"
            ))
        }
        (true, Some(other)) => {
            return skip(format!(
                "`use` `{other}` is not for token signatures (a SPIFFE bundle key needs `jwt-svid` or `wit-svid`)"
            ))
        }
    };
    if let Some(ops) = jwk.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("verify")));
        if !verify {
            return skip("`key_ops` does not allow `verify`".into());
        }
    }
    let Some(kid) = kid.filter(|k| !k.is_empty()) else {
        return Err(KeySetError::MissingKid(index));
    };
    let key = PublicKey::new(kid, material);
    let found = |key| {
        Ok(if wit {
            Classified::Wit(key)
        } else {
            Classified::Token(key)
        })
    };
    let Some(alg) = str_member(jwk, "alg", index)? else {
        return found(key);
    };
    match Algorithm::from_name(alg).and_then(|a| key.clone().pinned(a)) {
        Some(key) => found(key),
        None => skip(format!(
            "`alg` `{alg}` is not an algorithm this key verifies"
        )),
    }
}

/// The key material of a JWK of `kind`, checked (`kid` names the key in errors; it may be
/// `#index` for a key without one).
fn material(
    kind: Kind,
    kid: &str,
    jwk: &Map<String, Value>,
    index: usize,
) -> Result<KeyMaterial, KeySetError> {
    let bytes = |name: &'static str, missing: &'static str, not_b64: &'static str| {
        let text = str_member(jwk, name, index)?
            .ok_or_else(|| KeySetError::BadKey(kid.to_owned(), missing))?;
        B64.decode(text)
            .map_err(|_| KeySetError::BadKey(kid.to_owned(), not_b64))
    };
    Ok(match kind {
        Kind::Ed25519 => {
            let x = bytes("x", "missing `x`", "`x` is not base64url")?;
            let raw = <[u8; 32]>::try_from(x.as_slice())
                .map_err(|_| KeySetError::BadKey(kid.to_owned(), "`x` is not 32 bytes"))?;
            KeyMaterial::Ed25519(Ed25519Key::from_bytes(kid, &raw)?)
        }
        Kind::Ec(curve) => {
            let x = bytes("x", "missing `x`", "`x` is not base64url")?;
            let y = bytes("y", "missing `y`", "`y` is not base64url")?;
            KeyMaterial::Ec(EcKey::from_coordinates(kid, curve, &x, &y)?)
        }
        Kind::Rsa => {
            let n = bytes("n", "missing `n`", "`n` is not base64url")?;
            let e = bytes("e", "missing `e`", "`e` is not base64url")?;
            KeyMaterial::Rsa(RsaKey::from_components(kid, &n, &e)?)
        }
    })
}

impl PublicKey {
    pub(crate) fn from_dalek(kid: &str, key: VerifyingKey) -> Self {
        PublicKey::new(kid, KeyMaterial::Ed25519(Ed25519Key::from_dalek(key)))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;
    use crate::SigningKey;

    /// Lookups are the same below and above the size where the table takes over.
    #[test]
    fn key_set_lookup_by_kid_at_every_size() {
        let mut set = KeySet::new();
        for n in 0..20u8 {
            let key = SigningKey::from_seed(&format!("k{n}"), [n + 1; 32]).public();
            set.insert(key.clone()).unwrap();
            let again = SigningKey::from_seed(&format!("k{n}"), [n + 100; 32]).public();
            assert_eq!(
                set.insert(again),
                Err(KeySetError::DuplicateKid(format!("k{n}")))
            );
            assert_eq!(set.len(), usize::from(n) + 1);
            for m in 0..=n {
                assert_eq!(
                    set.get(&format!("k{m}")).map(PublicKey::kid),
                    Some(&*format!("k{m}"))
                );
            }
            assert!(set.get("K0").is_none() && set.get("k99").is_none() && set.get("").is_none());
        }
    }

    /// A small-order `A` that slipped past `from_bytes` (only `from_dalek` can build one) still
    /// verifies nothing, as with dalek: under the identity key, `R = [S]B` satisfies the
    /// equation for every message.
    #[test]
    fn small_order_key_verifies_nothing() {
        let mut one = [0u8; 32];
        one[0] = 1;
        let identity = VerifyingKey::from_bytes(&one).unwrap();
        assert!(identity.is_weak());
        let key = PublicKey::from_dalek("weak", identity);
        let r = Scalar::from(7u64);
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(EdwardsPoint::mul_base(&r).compress().as_bytes());
        sig[32..].copy_from_slice(r.as_bytes());
        let dalek = ed25519_dalek::Verifier::verify(
            &identity,
            b"m",
            &ed25519_dalek::Signature::from_bytes(&sig),
        );
        assert!(dalek.is_ok(), "the lax check accepts it");
        assert!(identity
            .verify_strict(b"m", &ed25519_dalek::Signature::from_bytes(&sig))
            .is_err());
        assert!(!key.verify_strict(b"m", &sig));
    }
}
