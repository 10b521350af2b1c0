//! Trust-graph analysis for `custody check`: what the routes (`routes.rs`) let reach the local
//! domain, and what in the trust file or the Cedar policies can never take effect.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use custody_policy::{parse_trust, Item, Location, PolicyPack, ScopeRule};

use crate::routes::{routes, Carried, Route};

/// The analysis' report lines and warnings.
pub(crate) struct Report {
    pub(crate) lines: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

/// Analyses the trust graph and the Cedar policies against it.
pub(crate) fn analyse(pack: &PolicyPack) -> Report {
    let routes = routes(pack);
    let located = rule_locations(pack);
    let at = |i: usize| -> String {
        pack.federation.get(i).map_or_else(String::new, |r| {
            located
                .get(&(r.from.as_str().to_owned(), r.to.as_str().to_owned()))
                .map_or_else(String::new, |(p, l)| format!("{}:{l}: ", p.display()))
        })
    };
    let mut warnings = Vec::new();
    wildcard_warnings(pack, &routes, &at, &mut warnings);
    indirect_warnings(pack, &routes, &mut warnings);
    unused_rule_warnings(pack, &routes, &at, &mut warnings);
    warnings.extend(crate::cedar_analysis::warnings(pack, &routes));
    warnings.extend(crate::cedar_errors::warnings(pack));
    Report {
        lines: reach_lines(pack, &routes),
        warnings,
    }
}

fn reach_lines(pack: &PolicyPack, routes: &[Route]) -> Vec<String> {
    let local = pack.local.as_str();
    let c = &pack.chain;
    let mut lines = vec![format!(
        "trust graph: local `{local}`, max_depth {}, max_domains {}",
        c.max_depth, c.max_domains
    )];
    lines.push(format!(
        "  {local}: chains inside {local} need no federation rule; any action its tokens grant"
    ));
    for d in &pack.domains {
        let name = d.name.as_str();
        let mine: Vec<&Route> = routes.iter().filter(|r| r.start() == name).collect();
        if mine.is_empty() && name != local {
            lines.push(format!("  {name}: no federation path reaches {local}"));
        }
        for r in mine {
            let path = r.domains.join(" → ");
            lines.push(match &r.blocked {
                None => format!(
                    "  {path}: {}; {} to {} actors",
                    r.carried.describe(),
                    r.min_actors(),
                    c.max_depth
                ),
                Some(why) => format!("  {path}: unusable, {why}"),
            });
        }
    }
    lines
}

/// The loader already warns on every `*` rule; this adds the paths on which a wildcard is not
/// narrowed by any other rule, so that every action of the first domain reaches `local`.
fn wildcard_warnings(
    pack: &PolicyPack,
    routes: &[Route],
    at: &dyn Fn(usize) -> String,
    out: &mut Vec<String>,
) {
    let local = pack.local.as_str();
    for r in routes
        .iter()
        .filter(|r| r.usable() && r.carried == Carried::Any)
    {
        let Some(first) = r.rules.first() else {
            continue;
        };
        out.push(format!(
            "{}every action of `{}`'s chains reaches `{local}`: every rule on {} is `*`",
            at(*first),
            r.start(),
            r.domains.join(" → ")
        ));
    }
}

/// Domains whose every usable path into `local` goes through another domain's grant.
fn indirect_warnings(pack: &PolicyPack, routes: &[Route], out: &mut Vec<String>) {
    let local = pack.local.as_str();
    let mut by_start: BTreeMap<&str, Vec<&Route>> = BTreeMap::new();
    for r in routes.iter().filter(|r| r.usable() && r.start() != local) {
        by_start.entry(r.start()).or_default().push(r);
    }
    for (start, rs) in by_start {
        if rs.iter().any(|r| r.domains.len() == 2) {
            continue;
        }
        let paths: Vec<String> = rs.iter().map(|r| r.domains.join(" → ")).collect();
        let via: BTreeSet<String> = rs
            .iter()
            .filter_map(|r| r.domains.get(r.domains.len().saturating_sub(2)))
            .map(|d| format!("`federate \"{d}\" -> \"{local}\"`"))
            .collect();
        out.push(format!(
            "`{start}` reaches `{local}` only through another domain's grant ({}): `{local}` never federated `{start}` itself; its chains get in on {}",
            paths.join(", "),
            via.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
}

fn unused_rule_warnings(
    pack: &PolicyPack,
    routes: &[Route],
    at: &dyn Fn(usize) -> String,
    out: &mut Vec<String>,
) {
    let local = pack.local.as_str();
    for (i, rule) in pack.federation.iter().enumerate() {
        let through: Vec<&Route> = routes.iter().filter(|r| r.rules.contains(&i)).collect();
        let usable: Vec<&&Route> = through.iter().filter(|r| r.usable()).collect();
        let name = format!("`federate \"{}\" -> \"{}\"`", rule.from, rule.to);
        if usable.is_empty() {
            let why = match through.first() {
                None => format!(
                    "no federation path leads on from `{}` to `{local}`",
                    rule.to
                ),
                Some(r) => format!(
                    "every path through it is unusable ({}: {})",
                    r.domains.join(" → "),
                    r.blocked.as_deref().unwrap_or("")
                ),
            };
            out.push(format!(
                "{}{name} can never be used on a path into `{local}`: {why}",
                at(i)
            ));
            continue;
        }
        if let ScopeRule::List(scopes) = &rule.scopes {
            let dead: Vec<&str> = scopes
                .iter()
                .filter(|s| !usable.iter().any(|r| r.carried.allows(s)))
                .map(String::as_str)
                .collect();
            if !dead.is_empty() {
                out.push(format!(
                    "{}{name}: `{}` never reaches `{local}`: no rule after it carries it",
                    at(i),
                    dead.join("`, `")
                ));
            }
        }
    }
}

/// Where each `federate` rule is written, from the pack's trust files (best effort).
fn rule_locations(pack: &PolicyPack) -> BTreeMap<(String, String), (PathBuf, Location)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&pack.dir) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "trust"))
        .collect();
    files.sort();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(file) = parse_trust(&text, &path, &custody_verifier::Limits::default()) else {
            continue;
        };
        for item in &file.items {
            if let Item::Federate(f) = &item.node {
                let key = (
                    f.from.node.as_str().to_owned(),
                    f.to.node.as_str().to_owned(),
                );
                out.insert(key, (path.clone(), item.span.location));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    fn demo() -> PolicyPack {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/demo");
        PolicyPack::load(dir.as_ref(), &custody_verifier::Limits::default())
            .unwrap()
            .pack
    }

    #[test]
    fn demo_routes_are_two_usable_paths_and_one_too_wide() {
        let routes = routes(&demo());
        let mut paths: Vec<(String, bool)> = routes
            .iter()
            .map(|r| (r.domains.join(">"), r.usable()))
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                ("a.example>b.example>c.example".to_owned(), true),
                ("b.example>c.example".to_owned(), true),
                ("e.example>a.example>b.example>c.example".to_owned(), false),
            ]
        );
        let two: BTreeSet<String> = ["orders:read", "orders:write"].map(String::from).into();
        assert!(routes
            .iter()
            .filter(|r| r.usable())
            .all(|r| r.carried == Carried::Only(two.clone())));
    }

    #[test]
    fn demo_warns_about_indirect_reach_and_the_unusable_rule() {
        let report = analyse(&demo());
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        assert!(report.warnings[0].starts_with("`a.example` reaches `c.example` only through"));
        assert!(report.warnings[1].contains(
            "`federate \"e.example\" -> \"a.example\"` can never be used on a path into `c.example`"
        ));
        assert!(report
            .lines
            .iter()
            .any(|l| l.contains("d.example: no federation path")));
    }
}
