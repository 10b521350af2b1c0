//! Chain descriptions: a delegation chain written as data (which domain issues each token, its
//! claims, its actors) and minted into a request. `custody test` and `custody demo` use them so
//! that a pack's tests never hold hand-made, soon-stale tokens.
//!
//! Keys: a domain is signed for with the pack's own private key when one is found (a
//! `*.key.jwk` file beside the domain's key files or under `DIR/keys/` whose public half is in
//! the domain's key set, as in the demo pack); every other domain gets a fresh throw-away key,
//! generated for this run and added to that domain's key set in memory only. No file is written
//! and the pack on disk is never changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use custody_jose::{sign, sign_with_header, SigningKey};
use custody_policy::PolicyPack;
use custody_verifier::REQUEST_FIELDS;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::proofs::{hash, public_jwk};

/// Who signs for each domain in this run.
pub(crate) struct Keyring {
    keys: BTreeMap<String, SigningKey>,
    /// Domains signed with a key generated for this run.
    pub(crate) throwaway: Vec<String>,
    /// Domains signed with a private key the pack ships, and where it came from.
    pub(crate) shipped: Vec<(String, PathBuf)>,
}

impl Keyring {
    /// Finds or makes a signing key for every domain of `pack`, adding throw-away public keys
    /// to `pack`'s key sets.
    pub(crate) fn for_pack(pack: &mut PolicyPack) -> Result<Keyring, String> {
        let candidates = private_keys(pack);
        let mut ring = Keyring {
            keys: BTreeMap::new(),
            throwaway: Vec::new(),
            shipped: Vec::new(),
        };
        for domain in &mut pack.domains {
            let name = domain.name.as_str().to_owned();
            let found = candidates.iter().find(|(_, k)| {
                domain
                    .keys
                    .get(k.kid())
                    .is_some_and(|p| p.thumbprint() == k.public().thumbprint())
            });
            if let Some((path, key)) = found {
                ring.shipped.push((name.clone(), path.clone()));
                ring.keys.insert(name, key.clone());
                continue;
            }
            let key = fresh_key(&name, |kid| domain.keys.get(kid).is_none())?;
            domain
                .keys
                .insert(key.public())
                .map_err(|e| format!("throw-away key for `{name}`: {e}"))?;
            ring.throwaway.push(name.clone());
            ring.keys.insert(name, key);
        }
        Ok(ring)
    }

    fn key(&self, domain: &str) -> Result<&SigningKey, String> {
        self.keys
            .get(domain)
            .ok_or_else(|| format!("no domain `{domain}` in the pack"))
    }

    /// One line saying which keys sign.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.shipped.is_empty() {
            let files: Vec<String> = self
                .shipped
                .iter()
                .map(|(d, p)| format!("{d} ({})", p.display()))
                .collect();
            parts.push(format!("the pack's private keys for {}", files.join(", ")));
        }
        if !self.throwaway.is_empty() {
            parts.push(format!(
                "throw-away keys made for this run for {}",
                self.throwaway.join(", ")
            ));
        }
        format!("signing with {}", parts.join("; "))
    }
}

/// Every readable `*.key.jwk` beside the pack's key files or under `DIR/keys/`, sorted by path.
fn private_keys(pack: &PolicyPack) -> Vec<(PathBuf, SigningKey)> {
    let mut dirs: Vec<PathBuf> = pack
        .domains
        .iter()
        .flat_map(|d| {
            d.key_files
                .iter()
                .filter_map(|f| f.parent().map(Path::to_path_buf))
        })
        .collect();
    dirs.push(pack.dir.join("keys"));
    dirs.sort();
    dirs.dedup();
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())))
        .filter(|p| p.to_string_lossy().ends_with(".key.jwk"))
        .collect();
    files.sort();
    files.dedup();
    files
        .into_iter()
        .filter_map(|p| {
            let key = SigningKey::from_jwk(&std::fs::read(&p).ok()?).ok()?;
            Some((p, key))
        })
        .collect()
}

fn fresh_key(domain: &str, free: impl Fn(&str) -> bool) -> Result<SigningKey, String> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let kid = (0..)
        .map(|n| format!("custody-test-{domain}-{n}"))
        .find(|k| free(k))
        .unwrap_or_default();
    Ok(SigningKey::from_seed(&kid, seed))
}

/// The members a chain description may have besides the request's own fields.
const SPEC_ONLY: [&str; 4] = ["chain", "claims", "txn_token", "prove"];
/// The request fields a chain description passes through unchanged: every field of the
/// request document but the tokens, which it mints.
fn pass_through() -> impl Iterator<Item = &'static str> {
    REQUEST_FIELDS
        .into_iter()
        .filter(|f| !["tokens", "txn_token"].contains(f))
}
/// The members of one token description.
const TOKEN_FIELDS: [&str; 9] = [
    "domain",
    "claims",
    "actors",
    "typ",
    "kid",
    "sign_with",
    "header",
    "omit",
    "ttl",
];

/// Mints the tokens a chain description names and returns the request document.
///
/// `spec` holds `chain` (a list of token descriptions or literal token strings, origin first),
/// optionally `txn_token` (one such item, `typ` `txntoken+jwt` by default), `claims` (defaults
/// for every minted token) and the request fields `audience`, `action`, `resource`, `peer`,
/// `now`, `context`. A missing `now` becomes `default_now`, so minting and deciding agree.
pub(crate) fn mint_request(
    spec: &Map<String, Value>,
    pack: &PolicyPack,
    ring: &Keyring,
    default_now: i64,
) -> Result<Value, String> {
    let now = match spec.get("now") {
        None => default_now,
        Some(v) => v.as_i64().ok_or("`now` must be an integer")?,
    };
    let defaults = match spec.get("claims") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("`claims` must be an object".into()),
    };
    let minter = Minter {
        pack,
        ring,
        now,
        defaults: &defaults,
    };
    let Some(Value::Array(items)) = spec.get("chain") else {
        return Err("`chain` must be a list of tokens".into());
    };
    let tokens = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            minter
                .item(item, "at+jwt")
                .map_err(|e| format!("chain[{i}]: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut request = Map::new();
    request.insert("tokens".into(), tokens.into());
    if let Some(item) = spec.get("txn_token") {
        let t = minter
            .item(item, "txntoken+jwt")
            .map_err(|e| format!("txn_token: {e}"))?;
        request.insert("txn_token".into(), t.into());
    }
    for name in pass_through() {
        if let Some(v) = spec.get(name) {
            request.insert(name.into(), v.clone());
        }
    }
    request.insert("now".into(), now.into());
    if let Some(prove) = spec.get("prove") {
        minter
            .wimse(prove, &mut request)
            .map_err(|e| format!("prove: {e}"))?;
    }
    Ok(Value::Object(request))
}

/// Whether `name` may appear at the top of a chain description.
pub(crate) fn is_spec_field(name: &str) -> bool {
    SPEC_ONLY.contains(&name) || pass_through().any(|f| f == name)
}

struct Minter<'a> {
    pack: &'a PolicyPack,
    ring: &'a Keyring,
    now: i64,
    defaults: &'a Map<String, Value>,
}

impl Minter<'_> {
    /// `prove: {"wit_domain": D, "workload": ID, "target": URI}`: a WIT for the workload signed
    /// with domain D's key, binding the workload's own key (an Ed25519 key derived from its ID,
    /// so the same workload always has the same key), and a WPT by that key for the target and
    /// the request's presented token; sets `wit`, `wpt` and `target_uri`.
    fn wimse(&self, prove: &Value, request: &mut Map<String, Value>) -> Result<(), String> {
        let Value::Object(p) = prove else {
            return Err("must be an object".into());
        };
        if let Some(unknown) = p
            .keys()
            .find(|k| !["wit_domain", "workload", "target"].contains(&k.as_str()))
        {
            return Err(format!("unknown field `{unknown}`"));
        }
        let domain = str_field(p, "wit_domain")?.ok_or("missing `wit_domain`")?;
        let workload = str_field(p, "workload")?.ok_or("missing `workload`")?;
        let target = str_field(p, "target")?.ok_or("missing `target`")?;
        let issuer = self.ring.key(domain)?;
        let seed: [u8; 32] = Sha256::digest(workload.as_bytes()).into();
        let own = SigningKey::from_seed("workload", seed);
        let jwk = public_jwk(&own);
        let wit = sign(
            issuer,
            Some("wit+jwt"),
            &json!({"sub": workload, "iat": self.now - 60, "exp": self.now + 3000,
                "cnf": {"jwk": jwk}}),
        )
        .map_err(|e| e.to_string())?;
        let presented = request
            .get("tokens")
            .and_then(Value::as_array)
            .and_then(|t| t.last())
            .and_then(Value::as_str)
            .unwrap_or_default();
        let header = json!({"alg": own.alg().name(), "typ": "wpt+jwt"});
        let wpt = sign_with_header(
            &own,
            &header,
            &json!({"aud": target, "exp": self.now + 60, "jti": format!("wpt-{}", self.now),
                "wth": hash(&wit), "ath": hash(presented)}),
        )
        .map_err(|e| e.to_string())?;
        request.insert("wit".into(), wit.into());
        request.insert("wpt".into(), wpt.into());
        request.insert("target_uri".into(), target.into());
        Ok(())
    }

    /// A literal token string as is, or a token description minted.
    fn item(&self, item: &Value, default_typ: &str) -> Result<String, String> {
        match item {
            Value::String(raw) => Ok(raw.clone()),
            Value::Object(spec) => self.token(spec, default_typ),
            _ => Err("a token is a string or a description object".into()),
        }
    }

    fn token(&self, spec: &Map<String, Value>, default_typ: &str) -> Result<String, String> {
        if let Some(unknown) = spec.keys().find(|k| !TOKEN_FIELDS.contains(&k.as_str())) {
            return Err(format!("unknown token field `{unknown}`"));
        }
        let domain = str_field(spec, "domain")?.ok_or("missing `domain`")?;
        let config = self
            .pack
            .domain(domain)
            .ok_or_else(|| format!("no domain `{domain}` in the pack"))?;
        let claims = self.claims(spec, config.issuers.first().map(String::as_str))?;
        let signer = str_field(spec, "sign_with")?.unwrap_or(domain);
        let mut key = self.ring.key(signer)?.clone();
        if let Some(kid) = str_field(spec, "kid")? {
            key = key.with_kid(kid);
        }
        let signed = match spec.get("header") {
            Some(header) => sign_with_header(&key, header, &claims),
            None => {
                let typ = match spec.get("typ") {
                    None => Some(default_typ),
                    Some(Value::Null) => None,
                    Some(Value::String(t)) => Some(t.as_str()),
                    Some(_) => return Err("`typ` must be a string or null".into()),
                };
                sign(&key, typ, &claims)
            }
        };
        signed.map_err(|e| e.to_string())
    }

    /// `iss` (the domain's first issuer), `iat` (`now` − 60) and `exp` (`iat` + `ttl`, default
    /// 600), then the description's `claims` defaults, the token's `claims`, `act` from
    /// `actors` (earliest first), and finally `omit` removes claims.
    fn claims(&self, spec: &Map<String, Value>, issuer: Option<&str>) -> Result<Value, String> {
        let mut c = Map::new();
        if let Some(iss) = issuer {
            c.insert("iss".into(), iss.into());
        }
        for (k, v) in self.defaults {
            c.insert(k.clone(), v.clone());
        }
        match spec.get("claims") {
            None => {}
            Some(Value::Object(m)) => c.extend(m.clone()),
            Some(_) => return Err("`claims` must be an object".into()),
        }
        let iat = c
            .entry("iat")
            .or_insert_with(|| self.now.saturating_sub(60).into())
            .as_i64();
        let ttl = match spec.get("ttl") {
            None => 600,
            Some(v) => v.as_i64().ok_or("`ttl` must be an integer")?,
        };
        if let Some(iat) = iat {
            c.entry("exp")
                .or_insert_with(|| iat.saturating_add(ttl).into());
        }
        if let Some(act) = act_chain(spec.get("actors"))? {
            c.insert("act".into(), act);
        }
        if let Some(omit) = spec.get("omit") {
            let names = omit
                .as_array()
                .ok_or("`omit` must be a list of claim names")?;
            for name in names {
                c.remove(
                    name.as_str()
                        .ok_or("`omit` must be a list of claim names")?,
                );
            }
        }
        Ok(Value::Object(c))
    }
}

fn str_field<'a>(spec: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match spec.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

/// `act` for actors earliest first: the outermost object is the last (current) actor.
fn act_chain(actors: Option<&Value>) -> Result<Option<Value>, String> {
    let Some(actors) = actors else {
        return Ok(None);
    };
    let list = actors.as_array().ok_or("`actors` must be a list")?;
    let mut act: Option<Value> = None;
    for a in list {
        let a = a.as_str().ok_or("`actors` must be a list of strings")?;
        act = Some(match act {
            None => json!({ "sub": a }),
            Some(inner) => json!({ "sub": a, "act": inner }),
        });
    }
    Ok(act)
}
