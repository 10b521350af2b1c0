//! The Biscuit profile's commands: `custody mint --biscuit` (an authority block),
//! `custody attest` (a hop: a third-party block signed with a domain key) and
//! `custody attenuate` (a first-party block of checks). README "Biscuit profile".

use std::path::PathBuf;

use clap::Args;
use custody_jose::SigningKey;
use custody_verifier::biscuit::{self, Authority, Hop};

/// What `custody mint --biscuit` states, from `mint`'s flags.
pub(crate) struct MintSpec {
    pub domain: Option<String>,
    pub sub: Option<String>,
    pub txn: Option<String>,
    pub scope: Option<String>,
    pub aud: Vec<String>,
    pub actors: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub checks: Vec<String>,
}

/// `custody mint --biscuit`: prints a new Biscuit (base64url).
pub(crate) fn mint(key: &SigningKey, spec: MintSpec) -> Result<u8, String> {
    let actor = match spec.actors.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        _ => return Err("a Biscuit's authority block names at most one `--actor`: later actors are added with `custody attest`".into()),
    };
    let a = Authority {
        domain: spec
            .domain
            .ok_or("`--biscuit` needs `--domain`: the trust domain whose root key signs")?,
        sub: spec.sub.ok_or("`--biscuit` needs `--sub`")?,
        txn: spec.txn,
        scopes: split(spec.scope.as_deref()),
        audience: spec.aud,
        actor,
        issued_at: spec.iat,
        expires: spec.exp,
        checks: spec.checks,
    };
    let token = biscuit::mint(key, &a).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(0)
}

fn split(scope: Option<&str>) -> Vec<String> {
    scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn read_key(path: &PathBuf) -> Result<SigningKey, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    SigningKey::from_jwk(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_token(token: &str) -> Result<String, String> {
    let text = match token.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?,
        None => token.to_owned(),
    };
    Ok(text.trim().to_owned())
}

#[derive(Args)]
pub(crate) struct AttestArgs {
    /// The Biscuit to extend (base64url text, or `@FILE`).
    #[arg(long)]
    token: String,
    /// The private JWK of the new actor's domain (one of its `biscuit_keys`).
    #[arg(long)]
    key: PathBuf,
    /// The new current actor (a SPIFFE ID in the key's domain).
    #[arg(long)]
    actor: String,
    /// Narrower scopes, space-separated (none: the previous hop's).
    #[arg(long)]
    scope: Option<String>,
    /// Whom the token is for next (repeat for several).
    #[arg(long, required = true)]
    aud: Vec<String>,
    /// An earlier expiry (unix seconds).
    #[arg(long)]
    exp: Option<i64>,
    /// Extra Datalog checks for the block (repeat).
    #[arg(long)]
    check: Vec<String>,
}

/// `custody attest`: appends a hop and prints the token.
pub(crate) fn attest(args: &AttestArgs) -> Result<u8, String> {
    let key = read_key(&args.key)?;
    let hop = Hop {
        actor: args.actor.clone(),
        scopes: split(args.scope.as_deref()),
        audience: args.aud.clone(),
        expires: args.exp,
        checks: args.check.clone(),
    };
    let token =
        biscuit::attest(&read_token(&args.token)?, &key, &hop).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(0)
}

#[derive(Args)]
pub(crate) struct AttenuateArgs {
    /// The Biscuit to restrict (base64url text, or `@FILE`).
    #[arg(long)]
    token: String,
    /// A Datalog check, e.g. `check if operation("orders:read")` (repeat).
    #[arg(long, required = true)]
    check: Vec<String>,
}

/// `custody attenuate`: appends a first-party block of checks and prints the token.
pub(crate) fn attenuate(args: &AttenuateArgs) -> Result<u8, String> {
    let mut code = String::new();
    for c in &args.check {
        let c = c.trim().trim_end_matches(';');
        if !c.starts_with("check ") && !c.starts_with("reject ") {
            return Err(format!(
                "`{c}` is not a check: a first-party block holds `check if …` or `reject if …` only"
            ));
        }
        code.push_str(c);
        code.push_str(";\n");
    }
    let token = biscuit::attenuate(&read_token(&args.token)?, &code).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(0)
}
