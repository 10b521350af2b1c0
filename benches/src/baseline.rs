//! The peer a gateway team would write by hand: `jsonwebtoken` (EdDSA decode, signature and
//! claims validation) for each token, a few chain checks, and a plain Cedar `is_authorized` on
//! the whole policy set. It checks less than custody (no strict JSON, no duplicate-key or depth
//! limits, no vouching or federation rules, no sender binding) and so is an upper bound on what
//! that approach costs, not a correct verifier.

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request as CedarRequest};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{err, FixtureError, NOW, ORDERS};

#[derive(Deserialize)]
struct Act {
    sub: String,
    act: Option<Box<Act>>,
}

/// The claims the hand-written gateway reads.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    scope: Option<String>,
    txn: Option<String>,
    act: Option<Act>,
    iat: i64,
    exp: i64,
}

impl Claims {
    fn actors(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut level = self.act.as_ref();
        while let Some(a) = level {
            out.push(a.sub.clone());
            level = a.act.as_deref();
        }
        out.reverse();
        out
    }

    fn scopes(&self) -> Vec<&str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// The hand-written verifier.
pub struct Baseline {
    keys: HashMap<String, (DecodingKey, String)>,
    policies: PolicySet,
    entities: Entities,
    authorizer: Authorizer,
}

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline")
            .field("keys", &self.keys.len())
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

const SKEW: i64 = 30;

impl Baseline {
    /// Reads the demo pack's JWKS files and a Cedar policy text.
    pub fn new(policies: &str) -> Result<Self, FixtureError> {
        let mut keys = HashMap::new();
        for d in ["a", "b", "c", "d"] {
            let text = std::fs::read_to_string(crate::demo_dir().join(format!("keys/{d}.jwks")))
                .map_err(err)?;
            let jwks: Value = serde_json::from_str(&text).map_err(err)?;
            for k in jwks
                .get("keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(kid), Some(x)) = (
                    k.get("kid").and_then(Value::as_str),
                    k.get("x").and_then(Value::as_str),
                ) else {
                    continue;
                };
                let key = DecodingKey::from_ed_components(x).map_err(err)?;
                keys.insert(kid.to_owned(), (key, format!("https://as.{d}.example")));
            }
        }
        Ok(Baseline {
            keys,
            policies: PolicySet::from_str(policies).map_err(err)?,
            entities: Entities::empty(),
            authorizer: Authorizer::new(),
        })
    }

    /// The demo pack's policies.
    pub fn demo() -> Result<Self, FixtureError> {
        let text = std::fs::read_to_string(crate::demo_dir().join("orders.cedar")).map_err(err)?;
        Self::new(&text)
    }

    /// Decode, verify and validate one token for `audience`.
    fn token(&self, token: &str, audience: &str) -> Option<Claims> {
        let header = decode_header(token).ok()?;
        let (key, iss) = self.keys.get(header.kid.as_deref()?)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[audience]);
        v.set_issuer(&[iss]);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        // the clock is the request's (fixed) time, checked below: jsonwebtoken reads the system's
        v.validate_exp = false;
        let claims = decode::<Claims>(token, key, &v).ok()?.claims;
        let fresh = NOW < claims.exp + SKEW && claims.iat <= NOW + SKEW;
        fresh.then_some(claims)
    }

    /// A single-token call: decode + verify + claims + scope.
    pub fn single(&self, token: &str, action: &str) -> bool {
        self.token(token, ORDERS)
            .is_some_and(|c| c.scopes().contains(&action))
    }

    /// A two-token chain and Cedar: both tokens validated, the links a hand-written gateway
    /// checks (same `txn` and `sub`, the new actor in the earlier `aud`, scope narrowing),
    /// then the Cedar request built from the claims and evaluated on the whole set.
    pub fn chain(&self, t0: &str, t1: &str, action: &str) -> bool {
        let Some(c1) = self.token(t1, ORDERS) else {
            return false;
        };
        let actors = c1.actors();
        let Some(current) = actors.last() else {
            return false;
        };
        let Some(c0) = self.token(t0, current) else {
            return false;
        };
        let linked = c0.txn == c1.txn
            && c0.sub == c1.sub
            && c1.scopes().iter().all(|s| c0.scopes().contains(s))
            && c1.scopes().contains(&action);
        if !linked {
            return false;
        }
        self.cedar(&c0, &c1, current, action)
    }

    fn cedar(&self, c0: &Claims, c1: &Claims, current: &str, action: &str) -> bool {
        let origin_domain = c0
            .iss
            .strip_prefix("https://as.")
            .unwrap_or(&c0.iss)
            .to_owned();
        let actors = c1.actors();
        let context = json!({
            "origin": format!("{origin_domain}|{}", c0.sub),
            "origin_domain": origin_domain,
            "depth": actors.len() as i64,
            "actors": actors,
            "domains": ["a.example", "b.example", "c.example"],
            "scopes": c1.scopes(),
            "txn": "",
            "cross_domain": true,
            "peer": current,
            "request": {},
        });
        let request = (|| {
            let principal = EntityUid::from_str(&format!("Agent::{current:?}")).ok()?;
            let action = EntityUid::from_str(&format!("Action::{action:?}")).ok()?;
            let resource = EntityUid::from_str(&format!("Resource::{ORDERS:?}")).ok()?;
            let context = Context::from_json_value(context, None).ok()?;
            CedarRequest::new(principal, action, resource, context, None).ok()
        })();
        request.is_some_and(|r| {
            self.authorizer
                .is_authorized(&r, &self.policies, &self.entities)
                .decision()
                == cedar_policy::Decision::Allow
        })
    }

    /// The prebuilt Cedar request of the demo chain (for the "plain Cedar alone" row).
    pub fn demo_cedar_request() -> Result<CedarRequest, FixtureError> {
        let context = json!({
            "origin": "a.example|user:alice", "origin_domain": "a.example", "depth": 2,
            "actors": [crate::BOB, crate::ALICE], "domains": ["a.example", "b.example", "c.example"],
            "scopes": ["orders:read"], "txn": "", "cross_domain": true, "peer": crate::ALICE,
            "request": {},
        });
        CedarRequest::new(
            EntityUid::from_str(&format!("Agent::{:?}", crate::ALICE)).map_err(err)?,
            EntityUid::from_str("Action::\"orders:read\"").map_err(err)?,
            EntityUid::from_str(&format!("Resource::{ORDERS:?}")).map_err(err)?,
            Context::from_json_value(context, None).map_err(err)?,
            None,
        )
        .map_err(err)
    }

    /// `is_authorized` on the whole set, nothing else.
    pub fn is_authorized(&self, request: &CedarRequest) -> bool {
        self.authorizer
            .is_authorized(request, &self.policies, &self.entities)
            .decision()
            == cedar_policy::Decision::Allow
    }
}
