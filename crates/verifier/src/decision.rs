//! The answer to one call: allow or deny, why, and what chain was established.

use serde_json::{json, Map, Value};

use crate::{Reason, ReasonCode};

/// What was established about the chain before the decision (DESIGN.md, "Decision").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainSummary {
    /// `"<origin domain>|<t0.sub>"`.
    pub origin: String,
    /// The presented token's actors, earliest first.
    pub actors: Vec<String>,
    /// The federation path's distinct domains in path order, `local` included.
    pub domains: Vec<String>,
    /// The presented token's scopes.
    pub scopes: Vec<String>,
    /// The number of actors.
    pub depth: usize,
    /// `t0`'s `txn`, or empty.
    pub txn: String,
    /// More than one domain on the path.
    pub cross_domain: bool,
}

impl ChainSummary {
    /// The JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "origin": self.origin,
            "actors": self.actors,
            "domains": self.domains,
            "scopes": self.scopes,
            "depth": self.depth,
            "txn": self.txn,
            "cross_domain": self.cross_domain,
        })
    }
}

/// The decision for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    allowed: bool,
    /// Empty on allow; on deny, the first failed check first.
    pub reasons: Vec<Reason>,
    /// The chain as far as it was established (absent on an early denial).
    pub chain: Option<ChainSummary>,
    /// The Cedar policies that determined the decision; empty when Cedar did not run.
    pub policies: Vec<String>,
}

impl Decision {
    pub(crate) fn allow(chain: ChainSummary, policies: Vec<String>) -> Self {
        Decision {
            allowed: true,
            reasons: Vec::new(),
            chain: Some(chain),
            policies,
        }
    }

    /// A denial for `reason`.
    pub fn deny(reason: Reason, chain: Option<ChainSummary>) -> Self {
        Decision {
            allowed: false,
            reasons: vec![reason],
            chain,
            policies: Vec::new(),
        }
    }

    /// The denial for a request document that is not a valid request.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::deny(Reason::new(ReasonCode::InvalidRequest, None, message), None)
    }

    /// Whether the call may proceed.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// The first reason's code, on deny.
    pub fn code(&self) -> Option<ReasonCode> {
        self.reasons.first().map(|r| r.code)
    }

    /// The JSON form printed by `custody verify` and returned by the sidecar.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "decision".into(),
            if self.allowed { "allow" } else { "deny" }.into(),
        );
        let reasons = self
            .reasons
            .iter()
            .map(|r| json!({"code": r.code.as_str(), "hop": r.hop, "message": r.message}))
            .collect();
        m.insert("reasons".into(), Value::Array(reasons));
        if let Some(c) = &self.chain {
            m.insert("chain".into(), c.to_json());
        }
        m.insert("policies".into(), self.policies.clone().into());
        Value::Object(m)
    }
}
