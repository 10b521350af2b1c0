//! The trust graph's routes: which domains can reach the local domain, along which federation
//! paths, carrying which actions, at which depth. `custody check` (`analysis.rs`,
//! `cedar_analysis.rs`) and `custody graph` read them.
//!
//! A chain's federation path is the domains of its actors in order, then `local` (with `t0`'s
//! issuer first when `t0` has no actor). Every step between two different domains needs its own
//! `federate` rule carrying the action, so a path `a → b → c` carries the intersection of the
//! scopes of `a -> b` and `b -> c`. Only simple paths are listed (a domain at most once, except
//! that a path may start at `local` and come back): a path that repeats a domain carries no more
//! than the simple path it contains. A path with `k` domains needs at least `k − 2` actors (its
//! first domain may be the issuer of an actor-less `t0`) and at most `max_domains` domains.

use std::collections::BTreeSet;

use custody_policy::{PolicyPack, ScopeRule};

/// The actions a path carries: any, or exactly these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Carried {
    Any,
    Only(BTreeSet<String>),
}

impl Carried {
    pub(crate) fn narrow(&self, rule: &ScopeRule) -> Carried {
        match (self, rule) {
            (c, ScopeRule::Any) => c.clone(),
            (Carried::Any, ScopeRule::List(l)) => Carried::Only(l.iter().cloned().collect()),
            (Carried::Only(s), ScopeRule::List(l)) => {
                Carried::Only(s.iter().filter(|x| l.contains(x)).cloned().collect())
            }
        }
    }

    pub(crate) fn allows(&self, action: &str) -> bool {
        match self {
            Carried::Any => true,
            Carried::Only(s) => s.contains(action),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Carried::Only(s) if s.is_empty())
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Carried::Any => "any action (`*`)".to_owned(),
            Carried::Only(s) if s.is_empty() => "no action".to_owned(),
            Carried::Only(s) => s.iter().map(String::as_str).collect::<Vec<_>>().join(", "),
        }
    }
}

/// One federation path into `local`.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// The domains in order, ending with `local`.
    pub(crate) domains: Vec<String>,
    /// Indices into `pack.federation` of the rules it uses, in order.
    pub(crate) rules: Vec<usize>,
    /// The actions it carries.
    pub(crate) carried: Carried,
    /// Why no chain can take it, if none can.
    pub(crate) blocked: Option<String>,
}

impl Route {
    fn distinct(&self) -> usize {
        self.domains.iter().collect::<BTreeSet<_>>().len()
    }

    pub(crate) fn min_actors(&self) -> usize {
        self.domains.len().saturating_sub(2)
    }

    pub(crate) fn usable(&self) -> bool {
        self.blocked.is_none()
    }

    pub(crate) fn start(&self) -> &str {
        self.domains.first().map_or("", String::as_str)
    }
}

/// Every simple federation path into the pack's `local` domain.
pub(crate) fn routes(pack: &PolicyPack) -> Vec<Route> {
    let local = pack.local.as_str();
    let mut out = Vec::new();
    for d in &pack.domains {
        let start = Route {
            domains: vec![d.name.as_str().to_owned()],
            rules: Vec::new(),
            carried: Carried::Any,
            blocked: None,
        };
        extend(pack, local, start, &mut out);
    }
    for r in &mut out {
        r.blocked = blocked(pack, r);
    }
    out
}

fn extend(pack: &PolicyPack, local: &str, route: Route, out: &mut Vec<Route>) {
    let Some(last) = route.domains.last().cloned() else {
        return;
    };
    for (i, rule) in pack.federation.iter().enumerate() {
        let to = rule.to.as_str();
        let revisits = to != local && route.domains.iter().any(|d| d == to);
        if rule.from.as_str() != last || rule.from == rule.to || revisits {
            continue;
        }
        let mut next = route.clone();
        next.domains.push(to.to_owned());
        next.rules.push(i);
        next.carried = route.carried.narrow(&rule.scopes);
        if to == local {
            out.push(next);
        } else {
            extend(pack, local, next, out);
        }
    }
}

fn blocked(pack: &PolicyPack, r: &Route) -> Option<String> {
    let c = &pack.chain;
    if r.distinct() > c.max_domains {
        Some(format!(
            "crosses {} domains, over max_domains {}",
            r.distinct(),
            c.max_domains
        ))
    } else if r.min_actors() > c.max_depth {
        Some(format!(
            "needs at least {} actors, over max_depth {}",
            r.min_actors(),
            c.max_depth
        ))
    } else if r.carried.is_empty() {
        Some("its rules have no action in common".to_owned())
    } else {
        None
    }
}
