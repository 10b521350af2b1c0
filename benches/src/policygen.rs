//! A deterministic generator of large Cedar packs and of requests against them, for the
//! 200-policy bench and the slicing differential test (`tests/tests/perf_equivalence.rs`
//! includes this file by path, so it uses nothing but `std`).
//!
//! The policies mix permit and forbid; action scopes `==`, `in [..]` lists, `in` an action
//! group, and unconstrained; principal scopes `==`, `is`, `in` a team, `is … in`; resource
//! scopes `==`, `is`, `in` a folder; `when`/`unless` clauses on the context, some of which
//! error when `context.request.level` is absent. `entities.json` gives the action groups,
//! team membership and folders.

use std::fmt::Write as _;

/// splitmix64: small, fast, deterministic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// One of `items` (non-empty).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = self.below(items.len());
        items.get(i).copied().unwrap_or("")
    }
}

/// The concrete actions policies name.
pub const ACTIONS: [&str; 12] = [
    "orders:read",
    "orders:write",
    "orders:delete",
    "invoices:read",
    "invoices:write",
    "tools/call:search",
    "tools/call:fetch",
    "tools/call:exec",
    "users:read",
    "users:write",
    "admin:audit",
    "admin:purge",
];

/// Action groups (entities with children in `entities.json`).
pub const GROUPS: [&str; 3] = ["readers", "writers", "tools"];

/// Agents (some in teams, per `entities.json`).
pub const AGENTS: [&str; 6] = [
    "spiffe://a.example/agent/bob",
    "spiffe://b.example/agent/alice",
    "spiffe://c.example/agent/carol",
    "spiffe://a.example/agent/dave",
    "spiffe://b.example/agent/erin",
    "spiffe://d.example/agent/mallory",
];

const TEAMS: [&str; 2] = ["ops", "partners"];
const DOMAINS: [&str; 4] = ["a.example", "b.example", "c.example", "d.example"];

/// The orders service, the default resource.
pub const ORDERS: &str = "spiffe://c.example/orders";

fn group_of(action: &str) -> Option<&'static str> {
    if action.starts_with("tools/") {
        Some("tools")
    } else if action.ends_with(":read") {
        Some("readers")
    } else if action.ends_with(":write") {
        Some("writers")
    } else {
        None
    }
}

/// `entities.json`: action groups, team membership of the first four agents, two folders.
pub fn entities_json() -> String {
    let mut items = Vec::new();
    for a in ACTIONS {
        let parents = match group_of(a) {
            Some(g) => format!(r#"[{{"type": "Action", "id": "{g}"}}]"#),
            None => "[]".to_owned(),
        };
        items.push(format!(
            r#"{{"uid": {{"type": "Action", "id": "{a}"}}, "attrs": {{}}, "parents": {parents}}}"#
        ));
    }
    for g in GROUPS {
        items.push(format!(
            r#"{{"uid": {{"type": "Action", "id": "{g}"}}, "attrs": {{}}, "parents": []}}"#
        ));
    }
    for (i, a) in AGENTS.iter().take(4).enumerate() {
        let team = TEAMS.get(i % 2).copied().unwrap_or("ops");
        items.push(format!(
            r#"{{"uid": {{"type": "Agent", "id": "{a}"}}, "attrs": {{}}, "parents": [{{"type": "Team", "id": "{team}"}}]}}"#
        ));
    }
    items.push(
        r#"{"uid": {"type": "Doc", "id": "d1"}, "attrs": {}, "parents": [{"type": "Folder", "id": "f1"}]}"#
            .to_owned(),
    );
    items.push(
        r#"{"uid": {"type": "Resource", "id": "spiffe://c.example/orders"}, "attrs": {}, "parents": [{"type": "Folder", "id": "f2"}]}"#
            .to_owned(),
    );
    format!("[\n{}\n]\n", items.join(",\n"))
}

fn principal_scope(r: &mut Rng) -> String {
    match r.below(10) {
        0..=3 => "principal".to_owned(),
        4 | 5 => format!("principal == Agent::\"{}\"", r.pick(&AGENTS)),
        6 => "principal is Agent".to_owned(),
        7 => "principal is User".to_owned(),
        8 => format!("principal in Team::\"{}\"", r.pick(&TEAMS)),
        _ => format!("principal is Agent in Team::\"{}\"", r.pick(&TEAMS)),
    }
}

fn action_scope(r: &mut Rng) -> String {
    match r.below(20) {
        0..=8 => format!("action == Action::\"{}\"", r.pick(&ACTIONS)),
        9..=12 => {
            let n = 1 + r.below(3);
            let list: Vec<String> = (0..n)
                .map(|_| format!("Action::\"{}\"", r.pick(&ACTIONS)))
                .collect();
            format!("action in [{}]", list.join(", "))
        }
        13 | 14 => format!("action in Action::\"{}\"", r.pick(&GROUPS)),
        15 => format!(
            "action in [Action::\"{}\", Action::\"{}\"]",
            r.pick(&GROUPS),
            r.pick(&ACTIONS)
        ),
        _ => "action".to_owned(),
    }
}

fn resource_scope(r: &mut Rng) -> String {
    match r.below(10) {
        0..=4 => "resource".to_owned(),
        5 => format!("resource == Resource::\"{ORDERS}\""),
        6 => "resource is Resource".to_owned(),
        7 => "resource is Doc".to_owned(),
        8 => "resource in Folder::\"f1\"".to_owned(),
        _ => "resource is Resource in Folder::\"f2\"".to_owned(),
    }
}

fn condition(r: &mut Rng) -> String {
    match r.below(8) {
        0 => format!("context.depth > {}", r.below(4)),
        1 => "context.cross_domain".to_owned(),
        2 => format!("context.origin_domain == \"{}\"", r.pick(&DOMAINS)),
        3 => format!("context.scopes.contains(\"{}\")", r.pick(&ACTIONS)),
        // errors when the request carries no `level`
        4 => format!("context.request.level > {}", r.below(5)),
        5 => format!("context.actors.contains(\"{}\")", r.pick(&AGENTS)),
        6 => "context.peer == \"\"".to_owned(),
        _ => format!(
            "context has request && context.request has level && context.request.level < {}",
            r.below(6)
        ),
    }
}

/// `n` policies, `@id("gen-<i>")`, from `seed`.
pub fn policies(n: usize, seed: u64) -> String {
    let mut r = Rng::new(seed);
    let mut out = String::new();
    for i in 0..n {
        // forbids are fewer and narrower (one action, at least one condition), as in real packs
        let forbid = r.below(10) < 2;
        let effect = if forbid { "forbid" } else { "permit" };
        let action = if forbid {
            format!("action == Action::\"{}\"", r.pick(&ACTIONS))
        } else {
            action_scope(&mut r)
        };
        let _ = write!(
            out,
            "@id(\"gen-{i}\")\n{effect} ({}, {action}, {})",
            principal_scope(&mut r),
            resource_scope(&mut r)
        );
        for _ in 0..r.below(3) + usize::from(forbid) {
            let _ = write!(out, "\nwhen {{ {} }}", condition(&mut r));
        }
        if r.below(6) == 0 {
            let _ = write!(out, "\nunless {{ {} }}", condition(&mut r));
        }
        out.push_str(";\n\n");
    }
    out
}

/// One generated request, as Cedar text.
#[derive(Clone, Debug)]
pub struct GenRequest {
    /// e.g. `Agent::"spiffe://a.example/agent/bob"`.
    pub principal: String,
    /// e.g. `Action::"orders:read"`.
    pub action: String,
    /// e.g. `Resource::"spiffe://c.example/orders"`.
    pub resource: String,
    /// The context record as JSON text (custody's context shape).
    pub context: String,
}

fn json_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A request: known and unknown agents and users, concrete actions, groups and unknown
/// actions, several resource types, contexts with and without `request.level`.
pub fn request(r: &mut Rng) -> GenRequest {
    let principal = match r.below(10) {
        0..=6 => format!("Agent::\"{}\"", r.pick(&AGENTS)),
        7 => format!("Agent::\"spiffe://b.example/agent/n{}\"", r.below(5)),
        _ => format!("User::\"a.example|user:{}\"", r.pick(&["alice", "bob"])),
    };
    let action = match r.below(20) {
        0..=16 => r.pick(&ACTIONS).to_owned(),
        17 => r.pick(&GROUPS).to_owned(),
        _ => format!("misc:op{}", r.below(3)),
    };
    let resource = match r.below(6) {
        0..=2 => format!("Resource::\"{ORDERS}\""),
        3 => "Doc::\"d1\"".to_owned(),
        4 => "Doc::\"d2\"".to_owned(),
        _ => "Resource::\"spiffe://c.example/invoices\"".to_owned(),
    };
    let depth = 1 + r.below(4);
    let actors: Vec<&str> = (0..depth).map(|_| r.pick(&AGENTS)).collect();
    let scopes: Vec<&str> = (0..1 + r.below(3)).map(|_| r.pick(&ACTIONS)).collect();
    let origin_domain = r.pick(&DOMAINS);
    let request = match r.below(3) {
        0 => "{}".to_owned(),
        _ => format!("{{\"level\": {}}}", r.below(6)),
    };
    let context = format!(
        concat!(
            r#"{{"origin": "{od}|user:alice", "origin_domain": "{od}", "depth": {depth}, "#,
            r#""actors": {actors}, "domains": ["{od}", "c.example"], "scopes": {scopes}, "#,
            r#""txn": "", "cross_domain": {cross}, "peer": "{peer}", "request": {request}}}"#
        ),
        od = origin_domain,
        depth = depth,
        actors = json_list(&actors),
        scopes = json_list(&scopes),
        cross = origin_domain != "c.example",
        peer = if r.below(2) == 0 { "" } else { r.pick(&AGENTS) },
        request = request,
    );
    GenRequest {
        principal,
        action: format!("Action::\"{action}\""),
        resource,
        context,
    }
}
