//! Cedar permits that the trust file makes dead, or nearly so.
//!
//! For each `permit` whose action scope names actions (`action == A` or `action in [A, B]`), the
//! `when` conditions are read for two facts that a condition being true certainly requires,
//! through `&&` (both sides' facts), `||` (only what both sides require: the union of their
//! origin domains) and `if c then t else e` (read as `(c && t) || e`): the origin domains (`context.origin_domain == "d"` or
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
//! Anything else (a `permit` on every action, negations, `unless`, entity data) is not analysed:
//! those warnings are sound, not complete.

use std::collections::BTreeSet;

use cedar_policy::{ActionConstraint, Effect, Policy};
use custody_policy::PolicyPack;
use serde_json::Value;

use crate::routes::Route;

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
                let verb = if undeclared.len() == 1 {
                    "is no declared domain"
                } else {
                    "are no declared domains"
                };
                format!(" (`{}` {verb})", undeclared.join("`, `"))
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

/// The facts of a policy's JSON form (Cedar's EST): its `when` conditions, all of which must
/// hold (`unless` conditions are not read).
fn facts(est: &Value) -> Facts {
    let conditions = est.get("conditions").and_then(Value::as_array);
    conditions
        .into_iter()
        .flatten()
        .filter(|c| c.get("kind").and_then(Value::as_str) == Some("when"))
        .filter_map(|c| c.get("body"))
        .fold(Facts::default(), |acc, body| acc.and(expr_facts(body, 0)))
}

/// How deep `expr_facts` follows nested `&&`, `||` and `if`; below that an expression proves
/// nothing (sound: fewer facts only means fewer warnings). Cedar's own parser bounds nesting too.
const MAX_EXPR_DEPTH: usize = 64;

/// What an expression being true certainly requires.
fn expr_facts(e: &Value, depth: usize) -> Facts {
    if depth > MAX_EXPR_DEPTH {
        return Facts::default();
    }
    let sides = |op: &Value| {
        (
            op.get("left")
                .map(|l| expr_facts(l, depth + 1))
                .unwrap_or_default(),
            op.get("right")
                .map(|r| expr_facts(r, depth + 1))
                .unwrap_or_default(),
        )
    };
    if let Some(and) = e.get("&&") {
        let (l, r) = sides(and);
        return l.and(r);
    }
    if let Some(or) = e.get("||") {
        let (l, r) = sides(or);
        return l.or(r);
    }
    if let Some(ite) = e.get("if-then-else") {
        // True iff (c && t) || (!c && e); `!c` proves nothing here, so (c && t) || e.
        let part = |k: &str| {
            ite.get(k)
                .map(|x| expr_facts(x, depth + 1))
                .unwrap_or_default()
        };
        return part("if").and(part("then")).or(part("else"));
    }
    Facts {
        origins: origin_set(e),
        cross_domain: is_context_attr(e, "cross_domain")
            || equals(e, "cross_domain") == Some(&Value::Bool(true)),
    }
}

impl Facts {
    /// Both hold: every requirement of either.
    fn and(self, other: Facts) -> Facts {
        Facts {
            origins: match (self.origins, other.origins) {
                (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
                (a, b) => a.or(b),
            },
            cross_domain: self.cross_domain || other.cross_domain,
        }
    }

    /// One of them holds: only what both require.
    fn or(self, other: Facts) -> Facts {
        Facts {
            origins: match (self.origins, other.origins) {
                (Some(a), Some(b)) => Some(a.union(&b).cloned().collect()),
                _ => None,
            },
            cross_domain: self.cross_domain && other.cross_domain,
        }
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
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]
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
        // A disjunction requires only what both sides require.
        let f = facts_of(
            r#"permit(principal, action, resource)
               when { context.origin_domain == "a.example" || context.cross_domain };"#,
        );
        assert_eq!(f, Facts::default());
        let f = facts_of(
            r#"permit(principal, action, resource)
               when { (context.origin_domain == "a.example" && context.cross_domain)
                      || (context.origin_domain == "b.example" && context.cross_domain == true) };"#,
        );
        assert_eq!(
            f.origins,
            Some(["a.example", "b.example"].map(String::from).into())
        );
        assert!(f.cross_domain);
        // `if c then t else e` is (c && t) || e.
        let f = facts_of(
            r#"permit(principal, action, resource)
               when { if context.cross_domain then context.origin_domain == "a.example"
                      else context.origin_domain == "b.example" };"#,
        );
        assert_eq!(
            f.origins,
            Some(["a.example", "b.example"].map(String::from).into())
        );
        assert!(!f.cross_domain);
        // `unless` is not read: no facts from it.
        let f = facts_of(
            r#"permit(principal, action, resource)
               unless { context.origin_domain == "a.example" };"#,
        );
        assert_eq!(f, Facts::default());
    }
}
