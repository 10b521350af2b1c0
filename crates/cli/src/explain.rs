//! `custody explain`: a human account of one request and the verifier's decision on it.
//!
//! The decision is always the verifier's own ([`Verifier::verify_traced`]), and so is what the
//! account says was established: each token's domain and actors are those of the verifier's
//! [`VerifiedChain`]. The tokens are decoded here only to show what they say (issuer, key,
//! times, audience, scopes); a token that failed its own checks shows its claims and no actors.
//! Where the account compares things (a hop's scopes, a crossing's federation rule) it states
//! facts from the tokens and the pack, and the verdict printed is the verifier's.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use custody_jose::{decode, Limits};
use custody_policy::PolicyPack;
use custody_verifier::{
    Decision, ProofMethod, Request, RequestError, VerifiedChain, VerifiedToken, Verifier,
};
use serde_json::{Map, Value};

use crate::render::{self, chain_path, hint, relative, service_name, short_id, utc, Style};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ExplainFormat {
    /// Text for people (colour on a terminal).
    Text,
    /// A Mermaid flowchart of the chain and the decision.
    Mermaid,
}

#[derive(Args)]
pub(crate) struct ExplainArgs {
    /// The policy pack directory.
    #[arg(long, default_value = "policies/demo")]
    policies: PathBuf,
    /// The request JSON file, or `-` for standard input.
    #[arg(default_value = "-")]
    request: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: ExplainFormat,
}

pub(crate) fn run(args: &ExplainArgs) -> Result<u8, String> {
    let pack = crate::command::load_pack(&args.policies, true)?;
    let verifier = Verifier::new(pack);
    crate::command::warn_sources(&crate::command::fetch_sources(&verifier));
    let bytes = crate::command::read_input(&args.request, verifier.limits().request_bytes)?;
    let (request, decision, verified) = match Request::from_json(&bytes, verifier.limits()) {
        Ok(r) => {
            let (d, verified) = verifier.verify_traced(&r);
            (Some(r), d, verified)
        }
        Err(RequestError::Invalid(m)) => {
            (None, Decision::invalid_request(m), VerifiedChain::default())
        }
        Err(e) => return Err(format!("{}: {e}", args.request)),
    };
    let view = View::new(
        verifier.pack(),
        request.as_ref(),
        &decision,
        &verified,
        verifier.limits(),
    );
    let text = match args.format {
        ExplainFormat::Text => view.text(Style::detect()),
        ExplainFormat::Mermaid => view.mermaid(),
    };
    print!("{text}");
    Ok(if decision.is_allowed() {
        0
    } else {
        crate::command::EXIT_DENY
    })
}

/// One token as decoded for display.
struct Shown {
    label: String,
    claims: Map<String, Value>,
    kid: Option<String>,
    typ: Option<String>,
    domain: Option<String>,
    /// The actors the verifier established; `None` when the token failed its own checks.
    actors: Option<Vec<String>>,
}

/// Everything the account shows, gathered once.
pub(crate) struct View<'a> {
    pack: &'a PolicyPack,
    request: Option<&'a Request>,
    decision: &'a Decision,
    tokens: Vec<Result<Shown, String>>,
    /// How the caller was proven, as the verifier established it.
    caller: Vec<String>,
    now: i64,
}

impl<'a> View<'a> {
    pub(crate) fn new(
        pack: &'a PolicyPack,
        request: Option<&'a Request>,
        decision: &'a Decision,
        verified: &VerifiedChain,
        limits: &Limits,
    ) -> Self {
        let mut tokens = Vec::new();
        if let Some(r) = request {
            for (i, raw) in r.tokens.iter().enumerate() {
                let v = verified.tokens().get(i).map(|t| &**t);
                tokens.push(show(pack, raw, format!("t{i}"), v, limits));
            }
            if let Some(raw) = &r.txn_token {
                let v = verified.txn_token();
                tokens.push(show(pack, raw, "txn_token".into(), v, limits));
            }
        }
        View {
            pack,
            request,
            decision,
            tokens,
            caller: caller_lines(request, verified),
            now: request
                .and_then(|r| r.now)
                .unwrap_or_else(render::system_now),
        }
    }

    fn access_tokens(&self) -> impl Iterator<Item = &Shown> {
        self.tokens
            .iter()
            .filter_map(|t| t.as_ref().ok())
            .filter(|t| t.label != "txn_token")
    }

    /// The origin subject, actors and service, from the decision's chain when it has one.
    fn parts(&self) -> (String, Vec<String>, String) {
        let local = self.pack.local.as_str();
        let service = self
            .request
            .map_or_else(|| local.to_owned(), |r| service_name(&r.audience, local));
        if let Some(c) = &self.decision.chain {
            let origin = c
                .origin
                .split_once('|')
                .map_or(c.origin.as_str(), |(_, s)| s);
            return (origin.to_owned(), c.actors.clone(), service);
        }
        let origin = self
            .access_tokens()
            .next()
            .and_then(|t| t.claims.get("sub").and_then(Value::as_str))
            .unwrap_or("")
            .to_owned();
        let actors = self
            .access_tokens()
            .last()
            .and_then(|t| t.actors.clone())
            .unwrap_or_default();
        (origin, actors, service)
    }

    /// `user:alice → a.example/agent/bob → … → c.example orders`.
    pub(crate) fn path(&self) -> String {
        let (origin, actors, service) = self.parts();
        chain_path(&origin, &actors, &service)
    }

    /// The federation path as the tokens describe it: actors' domains, then `local`.
    fn domain_path(&self) -> Vec<String> {
        let mut path = Vec::new();
        let first = self.access_tokens().next();
        if first.is_some_and(|t| t.actors.as_ref().is_some_and(Vec::is_empty)) {
            path.extend(first.and_then(|t| t.domain.clone()));
        }
        let (_, actors, _) = self.parts();
        path.extend(actors.iter().map(|a| actor_domain(a).to_owned()));
        path.push(self.pack.local.as_str().to_owned());
        path
    }

    /// The decision and its reasons, each with what would have to change.
    /// How the caller was proven, one line each (empty when nothing proved it).
    pub(crate) fn caller_lines(&self) -> &[String] {
        &self.caller
    }

    pub(crate) fn verdict_lines(&self, style: Style) -> Vec<String> {
        let d = self.decision;
        let mut lines = Vec::new();
        if d.is_allowed() {
            let by = if d.policies.is_empty() {
                "no Cedar file: chain validity alone decides".to_owned()
            } else {
                format!("permitted by Cedar policy {}", d.policies.join(", "))
            };
            lines.push(format!("{}  {by}", style.good("allow")));
        }
        for r in &d.reasons {
            let hop = r.hop.map_or_else(String::new, |h| format!(" (hop {h})"));
            lines.push(format!(
                "{}  {}{hop}: {}",
                style.bad("deny"),
                style.bold(r.code.as_str()),
                r.message
            ));
            lines.push(format!(
                "      {} {}",
                style.dim("to change:"),
                hint(r.code)
            ));
        }
        lines
    }

    /// The text account.
    pub(crate) fn text(&self, style: Style) -> String {
        let mut out = String::new();
        self.write_header(&mut out, style);
        self.write_tokens(&mut out, style);
        self.write_hops(&mut out, style);
        self.write_crossings(&mut out, style);
        self.write_decision(&mut out, style);
        out
    }

    fn write_header(&self, out: &mut String, style: Style) {
        let Some(r) = self.request else {
            let _ = writeln!(
                out,
                "{}",
                style.bold("the request document is not a valid request")
            );
            return;
        };
        let _ = writeln!(
            out,
            "{} `{}` on `{}` at {}",
            style.bold("request"),
            r.action,
            r.audience,
            utc(self.now)
        );
        let peer = r.peer.as_deref().unwrap_or(if self.caller.is_empty() {
            "(none: the caller is not authenticated)"
        } else {
            "(none given)"
        });
        let _ = writeln!(out, "  peer    {peer}");
        for line in &self.caller {
            let _ = writeln!(out, "  caller  {line}");
        }
        let _ = writeln!(out, "  chain   {}", style.accent(&self.path()));
    }

    fn write_tokens(&self, out: &mut String, style: Style) {
        if self.tokens.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\n{}",
            style.bold("tokens (origin first; the last one is presented)")
        );
        for t in &self.tokens {
            match t {
                Ok(t) => self.write_token(out, t),
                Err(e) => {
                    let _ = writeln!(out, "  {e}");
                }
            }
        }
    }

    fn write_token(&self, out: &mut String, t: &Shown) {
        let c = &t.claims;
        let get = |n: &str| c.get(n).and_then(Value::as_str).unwrap_or("(absent)");
        let domain = t.domain.as_deref().unwrap_or("unknown issuer");
        let _ = writeln!(
            out,
            "  {:<3} {domain}: iss {}, key {}, typ {}",
            t.label,
            get("iss"),
            t.kid.as_deref().unwrap_or("(none)"),
            t.typ.as_deref().unwrap_or("(none)")
        );
        let _ = writeln!(out, "      {}", self.times(c));
        let _ = writeln!(out, "      sub {}, aud {}", get("sub"), list(c.get("aud")));
        let scope = c
            .get("scope")
            .and_then(Value::as_str)
            .map_or("(none)", |s| s);
        let _ = writeln!(out, "      scope {scope}, txn {}", get("txn"));
        if let Some(wl) = c.get("req_wl") {
            let _ = writeln!(out, "      requesting workloads {}", list(Some(wl)));
        }
        let actors = match &t.actors {
            None => "not established (the token failed its own checks)".to_owned(),
            Some(actors) => {
                let actors: Vec<&str> = actors.iter().map(|a| short_id(a)).collect();
                match actors.len() {
                    0 => "(none)".to_owned(),
                    1 => format!("{} (current)", actors.join("")),
                    _ => format!("{} (the last is current)", actors.join(" → ")),
                }
            }
        };
        let _ = writeln!(out, "      actors {actors}");
    }

    fn times(&self, c: &Map<String, Value>) -> String {
        let at = |n: &str| c.get(n).and_then(|v| custody_jose::numeric_date(v).ok());
        let mut parts = Vec::new();
        if let Some(iat) = at("iat") {
            parts.push(format!("issued {}", relative(iat, self.now)));
        }
        if let Some(nbf) = at("nbf") {
            parts.push(format!("valid from {}", relative(nbf, self.now)));
        }
        match at("exp") {
            Some(exp) if exp > self.now => {
                parts.push(format!("expires {}", relative(exp, self.now)))
            }
            Some(exp) => parts.push(format!("expired {}", relative(exp, self.now))),
            None => parts.push("no exp".into()),
        }
        if let (Some(iat), Some(exp)) = (at("iat"), at("exp")) {
            let life = u64::try_from(exp.saturating_sub(iat)).unwrap_or(0);
            parts.push(format!("lifetime {}", render::duration(life)));
        }
        parts.join(", ")
    }

    fn write_hops(&self, out: &mut String, style: Style) {
        let shown: Vec<&Shown> = self.access_tokens().collect();
        if shown.len() < 2 {
            return;
        }
        let _ = writeln!(
            out,
            "\n{}",
            style.bold("hops (each token exchanged for the next)")
        );
        for pair in shown.windows(2) {
            if let [a, b] = pair {
                write_hop(out, a, b);
            }
        }
    }

    fn write_crossings(&self, out: &mut String, style: Style) {
        let Some(r) = self.request else {
            return;
        };
        let path = self.domain_path();
        let _ = writeln!(
            out,
            "\n{} {}",
            style.bold("domain crossings"),
            style.dim(&format!("(federation path {})", path.join(" → ")))
        );
        let mut crossed = false;
        for pair in path.windows(2) {
            if let [from, to] = pair {
                if from != to {
                    crossed = true;
                    let _ = writeln!(out, "  {}", self.crossing(from, to, &r.action));
                }
            }
        }
        if !crossed {
            let _ = writeln!(
                out,
                "  none: the chain stays inside one domain, no federation rule needed"
            );
        }
    }

    fn crossing(&self, from: &str, to: &str, action: &str) -> String {
        match self.pack.federation_rule(from, to) {
            None => format!("{from} → {to}: no `federate \"{from}\" -> \"{to}\"` rule"),
            Some(rule) => {
                let scopes = match &rule.scopes {
                    custody_policy::ScopeRule::Any => "*".to_owned(),
                    custody_policy::ScopeRule::List(l) => l.join(", "),
                };
                let carries = if rule.scopes.allows(action) {
                    format!("carries `{action}`")
                } else {
                    format!("does not carry `{action}`")
                };
                format!("{from} → {to}: `federate \"{from}\" -> \"{to}\"` [{scopes}] {carries}")
            }
        }
    }

    fn write_decision(&self, out: &mut String, style: Style) {
        let _ = writeln!(out, "\n{}", style.bold("decision"));
        for line in self.verdict_lines(style) {
            let _ = writeln!(out, "  {line}");
        }
        let d = self.decision;
        if d.policies.is_empty() {
            let why = if self.pack.cedar.is_none() {
                "the pack has no Cedar policies"
            } else if d.is_allowed() {
                "no policy determined it"
            } else if d
                .reasons
                .first()
                .is_some_and(|r| r.code == custody_verifier::ReasonCode::PolicyDenied)
            {
                "no Cedar policy permits this call"
            } else {
                "did not run: a check before it failed"
            };
            let _ = writeln!(out, "  {} {why}", style.dim("cedar:"));
            return;
        }
        let _ = writeln!(
            out,
            "  {} the policies that determined it:",
            style.dim("cedar:")
        );
        for id in &d.policies {
            let text = self.policy_text(id);
            for line in text.lines() {
                let _ = writeln!(out, "    {}", style.dim(line));
            }
        }
    }

    fn policy_text(&self, id: &str) -> String {
        let Some(cedar) = &self.pack.cedar else {
            return id.to_owned();
        };
        let pid = cedar_policy::PolicyId::new(id);
        cedar
            .policies
            .policy(&pid)
            .map_or_else(|| id.to_owned(), ToString::to_string)
    }

    /// A Mermaid flowchart: origin, actors grouped by domain, the service, the decision.
    pub(crate) fn mermaid(&self) -> String {
        let (origin, actors, service) = self.parts();
        let action = self.request.map_or("", |r| r.action.as_str());
        let mut out = String::from("flowchart LR\n");
        let _ = writeln!(out, "  origin([\"{}\"])", esc(short_id(&origin)));
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, a) in actors.iter().enumerate() {
            let d = actor_domain(a).to_owned();
            match groups.last_mut() {
                Some((g, members)) if *g == d => members.push(i),
                _ => groups.push((d, vec![i])),
            }
        }
        for (gi, (domain, members)) in groups.iter().enumerate() {
            let _ = writeln!(out, "  subgraph g{gi}[\"{}\"]", esc(domain));
            for i in members {
                let name = actors.get(*i).map_or("", |a| short_id(a));
                let _ = writeln!(out, "    a{i}[\"{}\"]", esc(name));
            }
            let _ = writeln!(out, "  end");
        }
        let _ = writeln!(out, "  svc[[\"{}\"]]", esc(&service));
        self.mermaid_edges(&mut out, &actors, action);
        let (class, text) = match self.decision.reasons.first() {
            None => ("allow", "allow".to_owned()),
            Some(r) => ("deny", format!("deny: {}", r.code)),
        };
        let _ = writeln!(out, "  svc --- decision{{{{\"{}\"}}}}", esc(&text));
        let _ = writeln!(
            out,
            "  classDef allow fill:#d9f2d9,stroke:#2a7a2a,stroke-width:2px"
        );
        let _ = writeln!(
            out,
            "  classDef deny fill:#f8d7d7,stroke:#b22,stroke-width:2px"
        );
        let _ = writeln!(out, "  class decision {class}");
        out
    }

    fn mermaid_edges(&self, out: &mut String, actors: &[String], action: &str) {
        let mut prev = (
            "origin".to_owned(),
            self.domain_path().first().cloned().unwrap_or_default(),
        );
        for (i, a) in actors.iter().enumerate() {
            let d = actor_domain(a).to_owned();
            let label = self.edge_label(&prev.1, &d, action, "delegates");
            let _ = writeln!(out, "  {} -->|\"{}\"| a{i}", prev.0, esc(&label));
            prev = (format!("a{i}"), d);
        }
        let local = self.pack.local.as_str();
        let label = self.edge_label(&prev.1, local, action, action);
        let _ = writeln!(out, "  {} -->|\"{}\"| svc", prev.0, esc(&label));
    }

    fn edge_label(&self, from: &str, to: &str, action: &str, same: &str) -> String {
        if from == to || from.is_empty() {
            return same.to_owned();
        }
        match self.pack.federation_rule(from, to) {
            Some(r) if r.scopes.allows(action) => format!("{same} · federated"),
            Some(_) => format!("{same} · rule lacks {action}"),
            None => format!("{same} · not federated"),
        }
    }
}

fn write_hop(out: &mut String, a: &Shown, b: &Shown) {
    let current = b.actors.as_ref().and_then(|a| a.last());
    let new = current.map_or("(no actor)", |s| short_id(s));
    let aud_names = a.claims.get("aud").is_some_and(|aud| {
        aud_list(aud)
            .iter()
            .any(|x| Some(*x) == current.map(String::as_str))
    });
    let _ = writeln!(
        out,
        "  {} → {}: {new} becomes current; {}'s aud {} it",
        a.label,
        b.label,
        a.label,
        if aud_names { "names" } else { "does not name" }
    );
    let scopes = |t: &Shown| -> Vec<String> {
        t.claims
            .get("scope")
            .and_then(Value::as_str)
            .map(|s| {
                s.split(' ')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (sa, sb) = (scopes(a), scopes(b));
    let added: Vec<&str> = sb
        .iter()
        .filter(|s| !sa.contains(s))
        .map(String::as_str)
        .collect();
    let dropped: Vec<&str> = sa
        .iter()
        .filter(|s| !sb.contains(s))
        .map(String::as_str)
        .collect();
    let change = match (added.is_empty(), dropped.is_empty()) {
        (true, true) => "scope kept".to_owned(),
        (true, false) => format!("scope narrowed (drops {})", dropped.join(" ")),
        (false, _) => format!("scope WIDENED (adds {})", added.join(" ")),
    };
    let txn = if a.claims.get("txn") == b.claims.get("txn") {
        "same txn"
    } else {
        "txn differs"
    };
    let exp = |t: &Shown| {
        t.claims
            .get("exp")
            .and_then(|v| custody_jose::numeric_date(v).ok())
    };
    let expiry = match (exp(a), exp(b)) {
        (Some(x), Some(y)) if y > x => "outlives the earlier token",
        (Some(_), Some(_)) => "expires no later",
        _ => "expiry unknown",
    };
    let _ = writeln!(out, "        {change}; {txn}; {expiry}");
}

/// How the caller was proven: each method that held with the ID it proves, the one that
/// failed and why, or a bearer credential that proves nothing of its presenter.
fn caller_lines(request: Option<&Request>, verified: &VerifiedChain) -> Vec<String> {
    let mut out = Vec::new();
    let Some(r) = request else { return out };
    if let Some(c) = verified.caller() {
        for m in c.methods() {
            let who = match (m, c.peer(), c.dpop_jkt()) {
                (ProofMethod::Dpop, _, Some(jkt)) => format!(": key `{jkt}`"),
                (_, Some(p), _) => format!(": `{p}`"),
                _ => String::new(),
            };
            let how = match m {
                ProofMethod::TrustedPeer => "given as",
                _ => "proven by",
            };
            out.push(format!("{how} {}{who}", m.describe()));
        }
        if let Some((m, why)) = c.failure() {
            out.push(format!("NOT proven by {}: {why}", m.describe()));
        }
    } else if r.has_caller_proof() {
        out.push("its proofs were not reached: an earlier check failed".to_owned());
    }
    let svid = verified.tokens().last().is_some_and(|t| t.is_jwt_svid());
    if svid {
        out.push(
            "the presented token is a JWT-SVID: a bearer token that names the caller but does not prove who presents it"
                .to_owned(),
        );
    }
    if r.peer.is_none() && out.is_empty() {
        return out;
    }
    out
}

fn aud_list(aud: &Value) -> Vec<&str> {
    match aud {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn list(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// The trust domain of an actor ID (`spiffe://td/...`), for display.
fn actor_domain(actor: &str) -> &str {
    let rest = short_id(actor);
    rest.split_once('/').map_or(rest, |(td, _)| td)
}

fn esc(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// Decodes one token for display; never verifies anything. Its domain and actors are the
/// verifier's reading (`verified`) when the token passed its own checks.
fn show(
    pack: &PolicyPack,
    raw: &str,
    label: String,
    verified: Option<&VerifiedToken>,
    limits: &Limits,
) -> Result<Shown, String> {
    let jws = decode(raw, limits).map_err(|e| format!("{label}: cannot be decoded: {e}"))?;
    let claims = jws.claims;
    let domain = match verified {
        Some(v) => pack.domains.get(v.domain_index()),
        None => claims
            .get("iss")
            .and_then(Value::as_str)
            .and_then(|iss| pack.domain_for_issuer(iss)),
    }
    .map(|d| d.name.as_str().to_owned());
    let actors = verified.map(|v| v.actors().iter().map(|a| a.as_str().to_owned()).collect());
    Ok(Shown {
        label,
        kid: jws.header.kid,
        typ: jws.header.typ,
        claims,
        domain,
        actors,
    })
}
