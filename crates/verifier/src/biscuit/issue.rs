//! Making Biscuits in custody's profile: `custody mint --biscuit`, `custody attest`,
//! `custody attenuate`, and the tests. Never on the verification path.

use std::fmt;

use base64::Engine as _;
use biscuit_auth::builder::{fact, int, string, BlockBuilder};
use biscuit_auth::format::schema::public_key::Algorithm;
use biscuit_auth::{Biscuit, KeyPair, UnverifiedBiscuit};
use custody_jose::{SigningKey, B64};

/// What the authority block states.
#[derive(Clone, Debug, Default)]
pub struct Authority {
    /// `issuer_domain`: the domain whose Biscuit root key signs.
    pub domain: String,
    /// `sub`: the origin subject.
    pub sub: String,
    /// `txn`.
    pub txn: Option<String>,
    /// `scope`, one fact each.
    pub scopes: Vec<String>,
    /// `audience`, one fact each: whom the token is for next.
    pub audience: Vec<String>,
    /// `actor`: the first actor, if any.
    pub actor: Option<String>,
    /// `issued_at`, unix seconds.
    pub issued_at: i64,
    /// `expires`, unix seconds.
    pub expires: i64,
    /// Extra Datalog checks (`check if …`).
    pub checks: Vec<String>,
}

/// What a hop's third-party block states.
#[derive(Clone, Debug, Default)]
pub struct Hop {
    /// `actor`: the new current actor, in the signing key's domain.
    pub actor: String,
    /// `scope`: narrower scopes; empty keeps the previous hop's.
    pub scopes: Vec<String>,
    /// `audience`: whom the token is for next.
    pub audience: Vec<String>,
    /// `expires`: an earlier expiry, if any.
    pub expires: Option<i64>,
    /// Extra Datalog checks.
    pub checks: Vec<String>,
}

/// Why a Biscuit could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueError(String);

impl fmt::Display for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IssueError {}

fn err(e: impl fmt::Display) -> IssueError {
    IssueError(e.to_string())
}

/// The biscuit-auth key pair of a custody signing key.
fn keypair(key: &SigningKey) -> Result<KeyPair, IssueError> {
    let jwk = key.to_private_jwk();
    let d = jwk
        .get("d")
        .and_then(|d| d.as_str())
        .ok_or_else(|| err("the signing key has no private part"))?;
    let seed = B64.decode(d).map_err(err)?;
    KeyPair::from_bytes(&seed, Algorithm::Ed25519).map_err(err)
}

fn add_facts(
    mut b: BlockBuilder,
    name: &str,
    values: &[String],
) -> Result<BlockBuilder, IssueError> {
    for v in values {
        b = b.fact(fact(name, &[string(v)])).map_err(err)?;
    }
    Ok(b)
}

fn add_checks(mut b: BlockBuilder, checks: &[String]) -> Result<BlockBuilder, IssueError> {
    for c in checks {
        b = b.check(c.as_str()).map_err(err)?;
    }
    Ok(b)
}

/// A new Biscuit whose authority block states `a`, signed with `root` (a `biscuit_keys` key of
/// `a.domain`). Returns base64url text.
pub fn mint(root: &SigningKey, a: &Authority) -> Result<String, IssueError> {
    let mut b = BlockBuilder::new();
    b = add_facts(b, "issuer_domain", std::slice::from_ref(&a.domain))?;
    b = add_facts(b, "sub", std::slice::from_ref(&a.sub))?;
    if let Some(txn) = &a.txn {
        b = add_facts(b, "txn", std::slice::from_ref(txn))?;
    }
    b = add_facts(b, "scope", &a.scopes)?;
    b = add_facts(b, "audience", &a.audience)?;
    if let Some(actor) = &a.actor {
        b = add_facts(b, "actor", std::slice::from_ref(actor))?;
    }
    b = b
        .fact(fact("issued_at", &[int(a.issued_at)]))
        .map_err(err)?
        .fact(fact("expires", &[int(a.expires)]))
        .map_err(err)?;
    b = add_checks(b, &a.checks)?;
    let token = Biscuit::builder()
        .merge(b)
        .build(&keypair(root)?)
        .map_err(err)?;
    token.to_base64().map_err(err)
}

/// Appends a hop: a third-party block stating `hop`, signed with `key` (a `biscuit_keys` key
/// of the new actor's domain).
pub fn attest(token: &str, key: &SigningKey, hop: &Hop) -> Result<String, IssueError> {
    let mut b = BlockBuilder::new();
    b = add_facts(b, "actor", std::slice::from_ref(&hop.actor))?;
    b = add_facts(b, "scope", &hop.scopes)?;
    b = add_facts(b, "audience", &hop.audience)?;
    if let Some(exp) = hop.expires {
        b = b.fact(fact("expires", &[int(exp)])).map_err(err)?;
    }
    b = add_checks(b, &hop.checks)?;
    append_third_party(token, key, b)
}

/// Appends a third-party block made of Datalog `code`, signed with `key` (tests use it to
/// build blocks outside the profile).
pub fn attest_code(token: &str, key: &SigningKey, code: &str) -> Result<String, IssueError> {
    let b = BlockBuilder::new().code(code).map_err(err)?;
    append_third_party(token, key, b)
}

fn append_third_party(
    token: &str,
    key: &SigningKey,
    b: BlockBuilder,
) -> Result<String, IssueError> {
    let unverified = UnverifiedBiscuit::from_base64(token).map_err(err)?;
    let request = unverified.third_party_request().map_err(err)?;
    let block = request
        .create_block(&keypair(key)?.private(), b)
        .map_err(err)?;
    let bytes = block.serialize().map_err(err)?;
    unverified
        .append_third_party(&bytes)
        .and_then(|t| t.to_base64())
        .map_err(err)
}

/// Appends a first-party block made of Datalog `code` (custody accepts checks only there).
/// Anyone holding the token can do this; it can only restrict.
pub fn attenuate(token: &str, code: &str) -> Result<String, IssueError> {
    let unverified = UnverifiedBiscuit::from_base64(token).map_err(err)?;
    let b = BlockBuilder::new().code(code).map_err(err)?;
    unverified
        .append(b)
        .and_then(|t| t.to_base64())
        .map_err(err)
}
