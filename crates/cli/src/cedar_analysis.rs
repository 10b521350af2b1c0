//! Cedar permits that the trust file makes dead, or nearly so.
//!
//! For each `permit` whose action scope names actions (`action == A` or `action in [A, B]`), the
//! `when` conditions are read for two facts, only from a top-level conjunction (`&&`) so that
//! the facts are certainly required: the origin domains (`context.origin_domain == "d"` or
//! `[...].contains(context.origin_domain)`) and a cross-domain requirement
//! (`context.cross_domain` or `context.cross_domain == true`). Then:
//!
//! - **never applies** (a warning) when no chain satisfying those facts can carry any of the
//!   actions: with origin domains given and `local` not among them, no usable federation path
//!   from an origin domain carries one of the actions (a chain's origin domain is the first
//!   domain of its path, unless `local` issued `t0`); with `local` among them, or no origin
//!   given, but `cross_domain` required, no usable path into `local` carries one of them;
//! - **only local chains** (a warning) when nothing restricts origin or cross-domain, but no
//!   federation path carries any of the actions: the permit then serves only chains that stay
//!   inside the local domain, which a single-domain chain always may, so it is not dead.
//!
//! Anything else (a `permit` on every action, conditions under `||`, `unless`, entity data) is
//! not analysed: those warnings are sound, not complete.

use std::collections::BTreeSet;

use cedar_policy::{ActionConstraint, Effect, Policy};
use custody_policy::PolicyPack;
use serde_json::Value;

use crate::analysis::Route;

/// What a permit's `when` conditions certainly require.
#[derive(Debug, Default, PartialEq, Eq)]
struct Facts {
    origins: Option<BTreeSet<String>>,
    cross_domain: bool,
}

pub(crate) fn warnings(pack: &PolicyPack, routes: &[Route]) -> Vec<String> {
    let Some(cedar) = &pack.cedar else {
        return Vec::new();
    };
    cedar
        .policies
        .policies()
        .filter_map(|p| permit_warning(pack, routes, p))
        .collect()
}

fn permit_warning(pack: &PolicyPack, routes: &[Route], policy: &Policy) -> Option<String> {
    if policy.effect() != Effect::Permit {
        return None;
    }
    let actions: Vec<String> = match policy.action_constraint() {
        ActionConstraint::Any => return None,
        ActionConstraint::Eq(uid) => vec![uid.id().unescaped().to_owned()],
        ActionConstraint::In(uids) => uids.iter().map(|u| u.id().unescaped().to_owned()).collect(),
    };
    let facts = policy.to_json().map(|j| facts(&j)).unwrap_or_default();
    let local = pack.local.as_str();
    let carried_from = |start: Option<&str>| {
        actions.iter().any(|a| {
            routes.iter().any(|r| {
                r.usable()
                    && r.carried.allows(a)
                    && start.is_none_or(|s| r.domains.first().is_some_and(|f| f == s))
            })
        })
    };
    let id = policy.id();
    let named = format!("`{}`", actions.join("`, `"));
    match &facts.origins {
        Some(origins) if !origins.contains(local) => {
            if origins.iter().any(|o| carried_from(Some(o))) {
                return None;
            }
            let from: Vec<&str> = origins.iter().map(String::as_str).collect();
            let undeclared: Vec<&str> = from
                .iter()
                .copied()
                .filter(|o| pack.domain(o).is_none())
                .collect();
            let note = if undeclared.is_empty() {
                String::new()
            } else {
                format!(" (`{}` is no declared domain)", undeclared.join("`, `"))
            };
            Some(format!(
                "Cedar policy `{id}` can never apply: it permits {named} only for chains from `{}`{note}, and no federation path from there into `{local}` carries it",
                from.join("`, `")
            ))
        }
        _ if facts.cross_domain => (!carried_from(None)).then(|| format!(
            "Cedar policy `{id}` can never apply: it permits {named} only for cross-domain chains, and no federation path into `{local}` carries it"
        )),
        Some(_) => None,
        None => (!carried_from(None)).then(|| format!(
            "Cedar policy `{id}` permits {named}, which no federation path into `{local}` carries: it can apply only to chains that stay inside `{local}`"
        )),
    }
}

/// The facts of a policy's JSON form (Cedar's EST): `conditions` of kind `when`.
fn facts(est: &Value) -> Facts {
    let mut out = Facts::default();
    let conditions = est.get("conditions").and_then(Value::as_array);
    let mut terms = Vec::new();
    for c in conditions.into_iter().flatten() {
        if c.get("kind").and_then(Value::as_str) == Some("when") {
            if let Some(body) = c.get("body") {
                conjuncts(body, &mut terms);
            }
        }
    }
    for t in terms {
        if is_context_attr(t, "cross_domain")
            || equals(t, "cross_domain") == Some(&Value::Bool(true))
        {
            out.cross_domain = true;
        }
        if let Some(set) = origin_set(t) {
            out.origins = Some(match out.origins.take() {
                None => set,
                Some(prev) => prev.intersection(&set).cloned().collect(),
            });
        }
    }
    out
}

fn conjuncts<'a>(e: &'a Value, out: &mut Vec<&'a Value>) {
    match e.get("&&") {
        Some(and) => {
            for side in ["left", "right"] {
                if let Some(s) = and.get(side) {
                    conjuncts(s, out);
                }
            }
        }
        None => out.push(e),
    }
}

/// `context.<attr>`.
fn is_context_attr(e: &Value, attr: &str) -> bool {
    e.get(".").is_some_and(|dot| {
        dot.get("attr").and_then(Value::as_str) == Some(attr)
            && dot
                .get("left")
                .and_then(|l| l.get("Var"))
                .and_then(Value::as_str)
                == Some("context")
    })
}

/// The literal that `context.<attr>` is compared with by `==`, either way round.
fn equals<'a>(e: &'a Value, attr: &str) -> Option<&'a Value> {
    let eq = e.get("==")?;
    let (l, r) = (eq.get("left")?, eq.get("right")?);
    let (_, lit) = if is_context_attr(l, attr) {
        (l, r)
    } else if is_context_attr(r, attr) {
        (r, l)
    } else {
        return None;
    };
    lit.get("Value")
}

/// The origin domains a term requires, if it is one of the recognised shapes.
fn origin_set(e: &Value) -> Option<BTreeSet<String>> {
    if let Some(v) = equals(e, "origin_domain") {
        return v.as_str().map(|s| BTreeSet::from([s.to_owned()]));
    }
    let contains = e.get("contains")?;
    if !is_context_attr(contains.get("right")?, "origin_domain") {
        return None;
    }
    contains
        .get("left")?
        .get("Set")?
        .as_array()?
        .iter()
        .map(|v| v.get("Value").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn facts_of(src: &str) -> Facts {
        let p = Policy::parse(None, src).unwrap();
        facts(&p.to_json().unwrap())
    }

    #[test]
    fn reads_origin_and_cross_domain_requirements() {
        let f = facts_of(
            r#"permit(principal, action == Action::"r", resource)
               when { ["a.example", "b.example"].contains(context.origin_domain) && context.cross_domain };"#,
        );
        assert_eq!(
            f.origins,
            Some(["a.example", "b.example"].map(String::from).into())
        );
        assert!(f.cross_domain);
        let f = facts_of(
            r#"permit(principal, action, resource)
               when { context.origin_domain == "a.example" } when { context.cross_domain == true };"#,
        );
        assert_eq!(f.origins, Some(["a.example".to_owned()].into()));
        assert!(f.cross_domain);
        // A disjunction proves nothing.
        let f = facts_of(
            r#"permit(principal, action, resource)
               when { context.origin_domain == "a.example" || context.cross_domain };"#,
        );
        assert_eq!(f, Facts::default());
    }
}
