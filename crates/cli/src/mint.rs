//! `custody mint`: development tokens, so examples and tests never hand-write a JWS.

use std::path::PathBuf;

use clap::Args;
use custody_jose::{sign, Algorithm, SigningKey};
use serde_json::{json, Map, Value};

#[derive(Args)]
pub(crate) struct MintArgs {
    /// The private JWK to sign with (its `kid` goes in the header).
    #[arg(long)]
    key: PathBuf,
    /// The `alg` to sign with; default: the key's own (its JWK's `alg`, else `EdDSA`, the
    /// curve's, or `RS256`). An RSA key signs any RSA algorithm; other keys only their own.
    #[arg(long, value_parser = crate::keys::parse_alg)]
    alg: Option<Algorithm>,
    /// A JSON object of claims to start from; the flags below override its members.
    #[arg(long)]
    claims: Option<PathBuf>,
    /// `typ` header (`at+jwt`, `txntoken+jwt`, …); `none` leaves it out.
    #[arg(long, default_value = "at+jwt")]
    typ: String,
    /// `iss`.
    #[arg(long)]
    iss: Option<String>,
    /// `sub`.
    #[arg(long)]
    sub: Option<String>,
    /// `aud` (repeat for a list).
    #[arg(long)]
    aud: Vec<String>,
    /// `scope`, space-separated.
    #[arg(long)]
    scope: Option<String>,
    /// `txn`.
    #[arg(long)]
    txn: Option<String>,
    /// `client_id`.
    #[arg(long)]
    client_id: Option<String>,
    /// Actors for the `act` chain, earliest first; the last becomes the current actor.
    #[arg(long = "actor")]
    actors: Vec<String>,
    /// `req_wl` for Txn-Tokens (repeat; written comma-separated).
    #[arg(long = "req-wl")]
    req_wl: Vec<String>,
    /// Override the `kid` header (to build forged tokens for tests and demos).
    #[arg(long)]
    kid: Option<String>,
    /// `iat` (unix seconds; default now).
    #[arg(long)]
    iat: Option<i64>,
    /// `exp` (unix seconds; default `iat` + `--ttl`).
    #[arg(long)]
    exp: Option<i64>,
    /// Lifetime in seconds when `--exp` is not given.
    #[arg(long, default_value_t = 300)]
    ttl: i64,
    /// `nbf` (unix seconds).
    #[arg(long)]
    nbf: Option<i64>,
    /// Mint a Biscuit (custody's profile) instead of a JWS: an authority block stating
    /// `--domain`, `--sub`, `--txn`, `--scope`, `--aud`, at most one `--actor`, `--iat`,
    /// `--exp`, signed with `--key` (one of the domain's `biscuit_keys`).
    #[arg(long)]
    biscuit: bool,
    /// With `--biscuit`: the issuing trust domain (`issuer_domain`).
    #[arg(long, requires = "biscuit")]
    domain: Option<String>,
    /// With `--biscuit`: a Datalog check for the authority block (repeat).
    #[arg(long, requires = "biscuit")]
    check: Vec<String>,
}

pub(crate) fn mint(args: &MintArgs) -> Result<u8, String> {
    let key_bytes = std::fs::read(&args.key).map_err(|e| format!("{}: {e}", args.key.display()))?;
    let key =
        SigningKey::from_jwk(&key_bytes).map_err(|e| format!("{}: {e}", args.key.display()))?;
    let key = match &args.kid {
        Some(kid) => key.with_kid(kid),
        None => key,
    };
    let key = match args.alg {
        Some(alg) => key.with_alg(alg).ok_or_else(|| {
            format!(
                "{}: the key cannot sign `{alg}` (it signs `{}`)",
                args.key.display(),
                key.alg()
            )
        })?,
        None => key,
    };
    if args.biscuit {
        if !key.alg().is_ed25519() {
            return Err(format!(
                "{}: Biscuit keys are Ed25519; this key signs `{}`",
                args.key.display(),
                key.alg()
            ));
        }
        return mint_biscuit(args, &key);
    }
    let mut claims = base_claims(args)?;
    apply_flags(args, &mut claims);
    let typ = (args.typ != "none").then_some(args.typ.as_str());
    let token = sign(&key, typ, &Value::Object(claims)).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(0)
}

fn mint_biscuit(args: &MintArgs, key: &SigningKey) -> Result<u8, String> {
    let iat = args.iat.unwrap_or_else(now);
    let spec = crate::biscuit_cmds::MintSpec {
        domain: args.domain.clone(),
        sub: args.sub.clone(),
        txn: args.txn.clone(),
        scope: args.scope.clone(),
        aud: args.aud.clone(),
        actors: args.actors.clone(),
        iat,
        exp: args.exp.unwrap_or(iat.saturating_add(args.ttl)),
        checks: args.check.clone(),
    };
    crate::biscuit_cmds::mint(key, spec)
}

fn base_claims(args: &MintArgs) -> Result<Map<String, Value>, String> {
    let Some(path) = &args.claims else {
        return Ok(Map::new());
    };
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("{}: claims must be a JSON object", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn apply_flags(args: &MintArgs, c: &mut Map<String, Value>) {
    let mut set = |name: &str, v: Option<Value>| {
        if let Some(v) = v {
            c.insert(name.into(), v);
        }
    };
    set("iss", args.iss.clone().map(Value::from));
    set("sub", args.sub.clone().map(Value::from));
    set(
        "aud",
        match args.aud.as_slice() {
            [] => None,
            [one] => Some(one.clone().into()),
            many => Some(many.to_vec().into()),
        },
    );
    set("scope", args.scope.clone().map(Value::from));
    set("txn", args.txn.clone().map(Value::from));
    set("client_id", args.client_id.clone().map(Value::from));
    set("act", act_chain(&args.actors));
    set(
        "req_wl",
        (!args.req_wl.is_empty()).then(|| args.req_wl.join(",").into()),
    );
    set("nbf", args.nbf.map(Value::from));
    let iat = args
        .iat
        .or_else(|| c.get("iat").and_then(Value::as_i64))
        .unwrap_or_else(now);
    c.insert("iat".into(), iat.into());
    if args.exp.is_some() || !c.contains_key("exp") {
        c.insert("exp".into(), args.exp.unwrap_or(iat + args.ttl).into());
    }
}

/// `act` for actors earliest first: the outermost object is the last actor.
fn act_chain(actors: &[String]) -> Option<Value> {
    actors.iter().fold(None, |inner, a| {
        Some(match inner {
            None => json!({ "sub": a }),
            Some(inner) => json!({ "sub": a, "act": inner }),
        })
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
