//! `custody mint-wit`, `mint-wpt` and `mint-dpop`: development proofs of the caller, so that
//! examples and tests never hand-write one.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::Args;
use custody_jose::{sign, sign_with_header, SigningKey, B64};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

#[derive(Args)]
pub(crate) struct MintWitArgs {
    /// The trust domain's WIT signing key (private JWK; its `kid` goes in the header).
    #[arg(long)]
    key: PathBuf,
    /// The workload's SPIFFE ID (`sub`).
    #[arg(long)]
    sub: String,
    /// The workload's key pair (private JWK): its public part, with its `alg`, becomes
    /// `cnf.jwk`, and it signs the WPTs.
    #[arg(long)]
    cnf_key: PathBuf,
    /// `iss`, if any (a WIT needs none).
    #[arg(long)]
    iss: Option<String>,
    /// `iat` (unix seconds; default now).
    #[arg(long)]
    iat: Option<i64>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: i64,
    /// `jti`, if any.
    #[arg(long)]
    jti: Option<String>,
}

#[derive(Args)]
pub(crate) struct MintWptArgs {
    /// The workload's key (private JWK): the key the WIT's `cnf.jwk` names.
    #[arg(long)]
    key: PathBuf,
    /// The WIT this proof goes with (the token, or `@FILE`).
    #[arg(long)]
    wit: String,
    /// `aud`: the target URI (without query or fragment).
    #[arg(long)]
    aud: String,
    /// The access token presented with it (`ath`; the token, or `@FILE`).
    #[arg(long)]
    token: Option<String>,
    /// The Txn-Token presented with it (`tth`; the token, or `@FILE`).
    #[arg(long)]
    txn_token: Option<String>,
    /// Another header the proof covers, `NAME=VALUE` (`oth`; repeat).
    #[arg(long = "oth")]
    oth: Vec<String>,
    /// `iat` (unix seconds; default now).
    #[arg(long)]
    iat: Option<i64>,
    /// Lifetime in seconds (a WPT is accepted with at most 300 s left).
    #[arg(long, default_value_t = 60)]
    ttl: i64,
    /// `jti` (default: 128 random bits).
    #[arg(long)]
    jti: Option<String>,
}

#[derive(Args)]
pub(crate) struct MintDpopArgs {
    /// The client's key (private JWK): its public part goes in the `jwk` header.
    #[arg(long)]
    key: PathBuf,
    /// `htm`: the HTTP method.
    #[arg(long)]
    htm: String,
    /// `htu`: the target URI.
    #[arg(long)]
    htu: String,
    /// The access token the proof goes with (`ath`; the token, or `@FILE`).
    #[arg(long)]
    token: Option<String>,
    /// `iat` (unix seconds; default now).
    #[arg(long)]
    iat: Option<i64>,
    /// `jti` (default: 128 random bits).
    #[arg(long)]
    jti: Option<String>,
    /// Print the key's RFC 7638 thumbprint (the `cnf.jkt` a token bound to it carries) instead
    /// of a proof.
    #[arg(long)]
    thumbprint: bool,
}

fn read_key(path: &Path) -> Result<SigningKey, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    SigningKey::from_jwk(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// A token given inline or as `@FILE`.
fn token_arg(v: &str) -> Result<String, String> {
    match v.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| t.trim().to_owned())
            .map_err(|e| format!("{path}: {e}")),
        None => Ok(v.trim().to_owned()),
    }
}

/// base64url(SHA-256(text)): a WPT's `wth`/`ath`/`tth`/`oth` value, a DPoP `ath`.
pub(crate) fn hash(text: &str) -> String {
    B64.encode(Sha256::digest(text.as_bytes()))
}

fn random_jti() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| format!("no randomness for a `jti`: {e}"))?;
    Ok(B64.encode(b))
}

/// The public JWK of `key` with its `alg` and without `kid` (as `cnf.jwk` and DPoP's `jwk`).
pub(crate) fn public_jwk(key: &SigningKey) -> Value {
    let mut jwk = key.public().to_jwk();
    if let Value::Object(m) = &mut jwk {
        m.remove("kid");
        m.insert("alg".into(), key.alg().name().into());
    }
    jwk
}

pub(crate) fn mint_wit(args: &MintWitArgs) -> Result<u8, String> {
    let key = read_key(&args.key)?;
    let cnf = read_key(&args.cnf_key)?;
    let iat = args.iat.unwrap_or_else(custody_verifier::system_now);
    let mut c = Map::new();
    if let Some(iss) = &args.iss {
        c.insert("iss".into(), iss.clone().into());
    }
    c.insert("sub".into(), args.sub.clone().into());
    c.insert("iat".into(), iat.into());
    c.insert("exp".into(), iat.saturating_add(args.ttl).into());
    if let Some(jti) = &args.jti {
        c.insert("jti".into(), jti.clone().into());
    }
    c.insert("cnf".into(), json!({ "jwk": public_jwk(&cnf) }));
    let token = sign(&key, Some("wit+jwt"), &Value::Object(c)).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(0)
}

pub(crate) fn mint_wpt(args: &MintWptArgs) -> Result<u8, String> {
    let key = read_key(&args.key)?;
    let wit = token_arg(&args.wit)?;
    let iat = args.iat.unwrap_or_else(custody_verifier::system_now);
    let mut c = Map::new();
    c.insert("aud".into(), args.aud.clone().into());
    c.insert("iat".into(), iat.into());
    c.insert("exp".into(), iat.saturating_add(args.ttl).into());
    let jti = match &args.jti {
        Some(j) => j.clone(),
        None => random_jti()?,
    };
    c.insert("jti".into(), jti.into());
    c.insert("wth".into(), hash(&wit).into());
    if let Some(t) = &args.token {
        c.insert("ath".into(), hash(&token_arg(t)?).into());
    }
    if let Some(t) = &args.txn_token {
        c.insert("tth".into(), hash(&token_arg(t)?).into());
    }
    if !args.oth.is_empty() {
        let mut oth = Map::new();
        for item in &args.oth {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("`--oth {item}`: expected NAME=VALUE"))?;
            oth.insert(name.to_ascii_lowercase(), hash(value.trim()).into());
        }
        c.insert("oth".into(), Value::Object(oth));
    }
    // the WPT's header names no key: the WIT's `cnf.jwk` is the key
    let header = json!({ "alg": key.alg().name(), "typ": "wpt+jwt" });
    let token = sign_with_header(&key, &header, &Value::Object(c)).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(0)
}

pub(crate) fn mint_dpop(args: &MintDpopArgs) -> Result<u8, String> {
    let key = read_key(&args.key)?;
    if args.thumbprint {
        println!("{}", B64.encode(key.public().thumbprint()));
        return Ok(0);
    }
    let iat = args.iat.unwrap_or_else(custody_verifier::system_now);
    let mut c = Map::new();
    c.insert("htm".into(), args.htm.clone().into());
    c.insert("htu".into(), args.htu.clone().into());
    c.insert("iat".into(), iat.into());
    let jti = match &args.jti {
        Some(j) => j.clone(),
        None => random_jti()?,
    };
    c.insert("jti".into(), jti.into());
    if let Some(t) = &args.token {
        c.insert("ath".into(), hash(&token_arg(t)?).into());
    }
    let header = json!({ "alg": key.alg().name(), "typ": "dpop+jwt", "jwk": public_jwk(&key) });
    let token = sign_with_header(&key, &header, &Value::Object(c)).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(0)
}
