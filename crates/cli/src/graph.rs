//! `custody graph`: the trust graph as Graphviz DOT or Mermaid. Domains are nodes (the local
//! domain highlighted, domains with no path into it greyed), federation rules are edges labelled
//! with their scopes (a wildcard in red, a rule no chain can use dashed).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use custody_policy::{PolicyPack, ScopeRule};

use crate::routes::{routes, Route};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// A Mermaid flowchart (renders in GitHub Markdown).
    Mermaid,
}

#[derive(Args)]
pub(crate) struct GraphArgs {
    /// The policy pack directory.
    #[arg(long, default_value = "policies/demo")]
    policies: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    format: GraphFormat,
}

pub(crate) fn run(args: &GraphArgs) -> Result<u8, String> {
    let pack = crate::command::load_pack(&args.policies, true)?;
    let text = match args.format {
        GraphFormat::Dot => dot(&pack),
        GraphFormat::Mermaid => mermaid(&pack),
    };
    print!("{text}");
    Ok(0)
}

/// What the picture needs to know beyond the pack: which domains and rules lead anywhere.
struct Reach {
    domains: BTreeSet<String>,
    rules: BTreeSet<usize>,
}

fn reach(pack: &PolicyPack) -> Reach {
    let usable: Vec<Route> = routes(pack).into_iter().filter(Route::usable).collect();
    Reach {
        domains: usable
            .iter()
            .flat_map(|r| r.domains.iter().cloned())
            .collect(),
        rules: usable
            .iter()
            .flat_map(|r| r.rules.iter().copied())
            .collect(),
    }
}

fn scope_label(rule: &ScopeRule, sep: &str, escape: fn(&str) -> String) -> String {
    match rule {
        ScopeRule::Any => "*".to_owned(),
        ScopeRule::List(l) if l.is_empty() => "(none)".to_owned(),
        ScopeRule::List(l) => l.iter().map(|s| escape(s)).collect::<Vec<_>>().join(sep),
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The Graphviz DOT form.
pub(crate) fn dot(pack: &PolicyPack) -> String {
    let reach = reach(pack);
    let local = pack.local.as_str();
    let mut out = String::new();
    let _ = writeln!(out, "digraph trust {{");
    let _ = writeln!(
        out,
        "  label=\"custody trust graph: federation into {}\";",
        dot_escape(local)
    );
    let _ = writeln!(out, "  labelloc=t; rankdir=LR; fontname=\"Helvetica\";");
    let _ = writeln!(
        out,
        "  node [shape=box, style=rounded, fontname=\"Helvetica\"];"
    );
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=10];");
    for d in &pack.domains {
        let name = dot_escape(d.name.as_str());
        let attrs = if d.name.as_str() == local {
            format!("label=\"{name}\\n(local)\", style=\"rounded,filled,bold\", fillcolor=\"#d9f2d9\", penwidth=2")
        } else if reach.domains.contains(d.name.as_str()) {
            format!("label=\"{name}\"")
        } else {
            format!("label=\"{name}\\n(no path to local)\", color=gray50, fontcolor=gray50")
        };
        let _ = writeln!(out, "  \"{name}\" [{attrs}];");
    }
    for (i, r) in pack.federation.iter().enumerate() {
        let label = scope_label(&r.scopes, "\\n", dot_escape);
        let mut attrs = format!("label=\"{label}\"");
        if r.scopes == ScopeRule::Any {
            attrs.push_str(", color=red, fontcolor=red");
        }
        if !reach.rules.contains(&i) {
            attrs.push_str(", style=dashed");
        }
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [{attrs}];",
            dot_escape(r.from.as_str()),
            dot_escape(r.to.as_str())
        );
    }
    let _ = writeln!(out, "}}");
    out
}

/// Mermaid text is quoted; `"` becomes the `#quot;` entity.
fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// The Mermaid flowchart form.
pub(crate) fn mermaid(pack: &PolicyPack) -> String {
    let reach = reach(pack);
    let local = pack.local.as_str();
    let id = |name: &str| {
        pack.domains
            .iter()
            .position(|d| d.name.as_str() == name)
            .map_or_else(|| "unknown".to_owned(), |i| format!("d{i}"))
    };
    let mut out = String::from("flowchart LR\n");
    for (i, d) in pack.domains.iter().enumerate() {
        let name = mermaid_escape(d.name.as_str());
        let label = if d.name.as_str() == local {
            format!("{name}<br/>(local)")
        } else if reach.domains.contains(d.name.as_str()) {
            name
        } else {
            format!("{name}<br/>(no path to local)")
        };
        let _ = writeln!(out, "  d{i}[\"{label}\"]");
    }
    for (i, r) in pack.federation.iter().enumerate() {
        let arrow = if reach.rules.contains(&i) {
            "-->"
        } else {
            "-.->"
        };
        let label = scope_label(&r.scopes, "<br/>", mermaid_escape);
        let _ = writeln!(
            out,
            "  {} {arrow}|\"{label}\"| {}",
            id(r.from.as_str()),
            id(r.to.as_str())
        );
    }
    let _ = writeln!(
        out,
        "  classDef local fill:#d9f2d9,stroke:#2a7a2a,stroke-width:3px"
    );
    let _ = writeln!(out, "  classDef unreachable color:#888,stroke:#888");
    let _ = writeln!(out, "  class {} local", id(local));
    for (i, r) in pack.federation.iter().enumerate() {
        if r.scopes == ScopeRule::Any {
            let _ = writeln!(out, "  linkStyle {i} stroke:#c00,color:#c00");
        }
    }
    let unreachable: Vec<String> = pack
        .domains
        .iter()
        .filter(|d| d.name.as_str() != local && !reach.domains.contains(d.name.as_str()))
        .map(|d| id(d.name.as_str()))
        .collect();
    if !unreachable.is_empty() {
        let _ = writeln!(out, "  class {} unreachable", unreachable.join(","));
    }
    out
}
