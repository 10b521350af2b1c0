//! Trust files merged as if they were one: duplicate and repeat checks across items and files,
//! then (for a whole pack) the checks that need every file: `local` and declared domains.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use custody_id::TrustDomain;

use crate::ast::{
    ChainBlock, DomainDecl, FederateDecl, Item, ResourceDecl, Setting, Span, Spanned, TrustFile,
};
use crate::error::{LoadError, LoadErrorKind, Location, Warning, WarningKind};
use crate::model::{
    is_scope_token, ChainSettings, FederationRule, KeySource, ProtectedResource, ScopeRule,
    SourceKind, DEFAULT_REFRESH,
};

/// A position in some trust file, for messages that point back at an earlier item.
#[derive(Clone, Debug)]
pub(crate) struct At {
    pub(crate) path: PathBuf,
    pub(crate) location: Location,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.location)
    }
}

/// A `keys` entry: as written, resolved against its trust file's directory, and where.
#[derive(Clone, Debug)]
pub(crate) struct KeyRef {
    pub(crate) written: String,
    pub(crate) resolved: PathBuf,
    pub(crate) at: At,
}

/// A declared domain before its keys are read.
#[derive(Clone, Debug)]
pub(crate) struct DraftDomain {
    pub(crate) name: TrustDomain,
    pub(crate) issuers: Vec<String>,
    pub(crate) keys: Vec<KeyRef>,
    /// `biscuit_keys` files (the Biscuit profile).
    pub(crate) biscuit_keys: Vec<KeyRef>,
    /// Remote key sources, their URLs checked.
    pub(crate) sources: Vec<KeySource>,
    /// `refresh`, in seconds.
    pub(crate) refresh: u64,
    /// The `ca` file, not read yet.
    pub(crate) ca: Option<KeyRef>,
}

/// The merged configuration, before key files are read.
pub(crate) struct Draft {
    pub(crate) local: Option<TrustDomain>,
    pub(crate) domains: Vec<DraftDomain>,
    pub(crate) federation: Vec<FederationRule>,
    pub(crate) chain: ChainSettings,
    pub(crate) resource: Option<ProtectedResource>,
    pub(crate) store: Option<String>,
}

/// What merging a pack's trust files gave.
pub(crate) struct Outcome {
    pub(crate) draft: Draft,
    pub(crate) errors: Vec<LoadError>,
    pub(crate) warnings: Vec<Warning>,
}

struct DraftRule {
    rule: FederationRule,
    from_at: At,
    to_at: At,
}

/// Accumulates trust files in order, reporting every conflict between their items.
#[derive(Default)]
pub(crate) struct Merger {
    pub(crate) errors: Vec<LoadError>,
    pub(crate) warnings: Vec<Warning>,
    local: Option<(TrustDomain, At)>,
    domains: Vec<DraftDomain>,
    domain_at: HashMap<TrustDomain, At>,
    issuers: HashMap<String, (TrustDomain, At)>,
    rules: Vec<DraftRule>,
    edges: HashMap<(TrustDomain, TrustDomain), At>,
    chain: ChainSettings,
    chain_at: Option<At>,
    sender_binding_at: Option<At>,
    resource: Option<ProtectedResource>,
    resource_at: Option<At>,
    store: Option<(String, At)>,
}

impl Merger {
    /// Adds every item of `file`.
    pub(crate) fn add(&mut self, file: &TrustFile) {
        for item in &file.items {
            match &item.node {
                Item::Local(td) => self.local(file, td),
                Item::Domain(d) => self.domain(file, d),
                Item::Federate(r) => self.federate(file, r, item.span),
                Item::Chain(c) => self.chain(file, c, item.span),
                Item::Resource(r) => self.resource(file, r),
                Item::Store(url) => self.store(file, url),
            }
        }
    }

    /// The checks that need the whole pack (skipped when some text could not be read, as they
    /// would only add noise), then the merged configuration.
    pub(crate) fn finish(mut self, dir: &Path, read_all: bool, local_dropped: bool) -> Outcome {
        let mut errors = Vec::new();
        if read_all {
            self.check_references(dir, local_dropped, &mut errors);
        }
        if !self.chain.require_sender_binding {
            let msg = "require_sender_binding is false: every token is a bearer token any holder can replay";
            self.warnings.push(match &self.sender_binding_at {
                Some(at) => warning_at(WarningKind::SenderBindingOff, at, msg.to_owned()),
                None => Warning::new(WarningKind::SenderBindingOff, dir, None, msg),
            });
        }
        self.errors.append(&mut errors);
        let draft = Draft {
            local: self.local.map(|(td, _)| td),
            domains: self.domains,
            federation: self.rules.into_iter().map(|r| r.rule).collect(),
            chain: self.chain,
            resource: self.resource,
            store: self.store.map(|(url, _)| url),
        };
        Outcome {
            draft,
            errors: self.errors,
            warnings: self.warnings,
        }
    }

    fn check_references(&self, dir: &Path, local_dropped: bool, errors: &mut Vec<LoadError>) {
        let declared = |td: &TrustDomain| self.domain_at.contains_key(td);
        match &self.local {
            None if !local_dropped => errors.push(LoadError::new(
                LoadErrorKind::Local,
                dir,
                None,
                "no `local` declaration: exactly one `local \"<trust domain>\"` is required",
            )),
            Some((td, at)) if !declared(td) => errors.push(error_at(
                LoadErrorKind::Local,
                at,
                format!("`local` names `{td}`, which no `domain` block declares"),
            )),
            _ => {}
        }
        for r in &self.rules {
            for (td, at) in [(&r.rule.from, &r.from_at), (&r.rule.to, &r.to_at)] {
                if !declared(td) {
                    let msg = format!("`federate` names `{td}`, which no `domain` block declares");
                    errors.push(error_at(LoadErrorKind::UndeclaredDomain, at, msg));
                }
            }
        }
    }

    fn local(&mut self, file: &TrustFile, td: &Spanned<TrustDomain>) {
        let at = at(file, td.span);
        match &self.local {
            Some((_, first)) => {
                let msg = format!("`local` is declared twice (first at {first})");
                self.errors.push(error_at(LoadErrorKind::Local, &at, msg));
            }
            None => self.local = Some((td.node.clone(), at)),
        }
    }

    fn domain(&mut self, file: &TrustFile, d: &DomainDecl) {
        let name = &d.name.node;
        let name_at = at(file, d.name.span);
        if let Some(first) = self.domain_at.get(name) {
            let msg = format!("domain `{name}` is declared twice (first at {first})");
            self.errors
                .push(error_at(LoadErrorKind::DuplicateDomain, &name_at, msg));
            return;
        }
        for (missing, what) in [
            (d.issuers.is_empty(), "no `issuer`"),
            (
                d.keys.is_empty() && d.sources.is_empty(),
                "no `keys` and no remote key source (`jwks_uri`, `discovery`, `spiffe_bundle`)",
            ),
        ] {
            if missing {
                let msg = format!("domain `{name}` has {what}");
                self.errors
                    .push(error_at(LoadErrorKind::IncompleteDomain, &name_at, msg));
            }
        }
        let mut draft = DraftDomain {
            name: name.clone(),
            issuers: Vec::new(),
            keys: Vec::new(),
            biscuit_keys: Vec::new(),
            sources: Vec::new(),
            refresh: DEFAULT_REFRESH,
            ca: None,
        };
        for issuer in &d.issuers {
            self.issuer(file, &mut draft, issuer);
        }
        for keys in &d.keys {
            self.keys(file, &mut draft, keys, false);
        }
        for keys in &d.biscuit_keys {
            self.keys(file, &mut draft, keys, true);
        }
        self.sources(file, &mut draft, d);
        self.domain_at.insert(name.clone(), name_at);
        self.domains.push(draft);
    }

    /// The remote key sources of `d`, with its `refresh` and `ca`.
    fn sources(&mut self, file: &TrustFile, draft: &mut DraftDomain, d: &DomainDecl) {
        for source in &d.sources {
            let here = at(file, source.span);
            let kw = source.node.kind.keyword();
            let url = &source.node.url;
            if let Err(why) = crate::url::check(url) {
                let msg = format!("`{kw}` `{url}`: {why}");
                self.errors
                    .push(error_at(LoadErrorKind::KeySource, &here, msg));
                continue;
            }
            if source.node.kind == SourceKind::Discovery && !draft.issuers.contains(url) {
                let msg = format!(
                    "`discovery` `{url}` is not an `issuer` of domain `{}`: the discovery URL is the issuer whose document is read",
                    draft.name
                );
                self.errors
                    .push(error_at(LoadErrorKind::KeySource, &here, msg));
                continue;
            }
            let key = KeySource {
                kind: source.node.kind,
                url: url.clone(),
            };
            if draft.sources.contains(&key) {
                let msg = format!("`{kw}` `{url}` is listed twice in domain `{}`", draft.name);
                self.errors
                    .push(error_at(LoadErrorKind::KeySource, &here, msg));
                continue;
            }
            draft.sources.push(key);
        }
        let name_at = at(file, d.name.span);
        for (kw, spans) in [
            (
                "refresh",
                d.refresh.iter().map(|r| r.span).collect::<Vec<_>>(),
            ),
            ("ca", d.ca.iter().map(|c| c.span).collect()),
        ] {
            if let Some(second) = spans.get(1) {
                let msg = format!("`{kw}` is set twice in domain `{}`", draft.name);
                self.errors
                    .push(error_at(LoadErrorKind::KeySource, &at(file, *second), msg));
            }
            if !spans.is_empty() && d.sources.is_empty() {
                let msg = format!(
                    "`{kw}` applies to remote key sources, and domain `{}` has none",
                    draft.name
                );
                self.errors
                    .push(error_at(LoadErrorKind::KeySource, &name_at, msg));
            }
        }
        if let Some(refresh) = d.refresh.first() {
            draft.refresh = refresh.node;
        }
        if let Some(ca) = d.ca.first() {
            let here = at(file, ca.span);
            if ca.node.is_empty() {
                self.errors.push(empty(&here, "ca"));
                return;
            }
            let base = file.path.parent().unwrap_or(Path::new(""));
            draft.ca = Some(KeyRef {
                written: ca.node.clone(),
                resolved: base.join(&ca.node),
                at: here,
            });
        }
    }

    fn issuer(&mut self, file: &TrustFile, draft: &mut DraftDomain, issuer: &Spanned<String>) {
        let here = at(file, issuer.span);
        let iss = &issuer.node;
        if iss.is_empty() {
            self.errors.push(empty(&here, "issuer"));
            return;
        }
        match self.issuers.get(iss) {
            Some((td, _)) if *td == draft.name => {
                let msg = format!("issuer `{iss}` is listed twice in domain `{td}`");
                self.errors
                    .push(error_at(LoadErrorKind::DuplicateIssuer, &here, msg));
            }
            Some((td, first)) => {
                let msg = format!("issuer `{iss}` is already declared by domain `{td}` at {first}");
                self.errors
                    .push(error_at(LoadErrorKind::DuplicateIssuer, &here, msg));
            }
            None => {
                self.issuers.insert(iss.clone(), (draft.name.clone(), here));
                draft.issuers.push(iss.clone());
            }
        }
    }

    /// A `keys` entry, or a `biscuit_keys` one when `biscuit` (each list is checked on its own:
    /// the same file may serve both).
    fn keys(
        &mut self,
        file: &TrustFile,
        draft: &mut DraftDomain,
        keys: &Spanned<String>,
        biscuit: bool,
    ) {
        let here = at(file, keys.span);
        let what = if biscuit { "biscuit_keys" } else { "keys" };
        if keys.node.is_empty() {
            self.errors.push(empty(&here, what));
            return;
        }
        let base = file.path.parent().unwrap_or(Path::new(""));
        let resolved = base.join(&keys.node);
        let list = if biscuit {
            &mut draft.biscuit_keys
        } else {
            &mut draft.keys
        };
        if list.iter().any(|k| k.resolved == resolved) {
            let msg = format!(
                "{} `{}` is listed twice in domain `{}`",
                if biscuit {
                    "biscuit_keys file"
                } else {
                    "key file"
                },
                keys.node,
                draft.name
            );
            self.errors
                .push(error_at(LoadErrorKind::DuplicateKeyFile, &here, msg));
            return;
        }
        list.push(KeyRef {
            written: keys.node.clone(),
            resolved,
            at: here,
        });
    }

    fn federate(&mut self, file: &TrustFile, r: &FederateDecl, span: Span) {
        let (from, to) = (&r.from.node, &r.to.node);
        let (from_at, to_at) = (at(file, r.from.span), at(file, r.to.span));
        let item_at = at(file, span);
        if from == to {
            let msg = format!(
                "`federate` from `{from}` to itself: a domain needs no rule for its own actors"
            );
            self.errors
                .push(error_at(LoadErrorKind::SelfFederation, &to_at, msg));
            return;
        }
        let edge = (from.clone(), to.clone());
        if let Some(first) = self.edges.get(&edge) {
            let msg = format!("`federate` `{from}` -> `{to}` is declared twice (first at {first})");
            self.errors
                .push(error_at(LoadErrorKind::DuplicateFederation, &item_at, msg));
            return;
        }
        let scopes = self.scopes(file, r, &item_at);
        self.edges.insert(edge, item_at);
        self.rules.push(DraftRule {
            rule: FederationRule {
                from: from.clone(),
                to: to.clone(),
                scopes,
            },
            from_at,
            to_at,
        });
    }

    fn scopes(&mut self, file: &TrustFile, r: &FederateDecl, item_at: &At) -> ScopeRule {
        let edge = format!("`federate` `{}` -> `{}`", r.from.node, r.to.node);
        for scope in r.scopes.iter().filter(|s| s.node.is_empty()) {
            self.errors.push(empty(&at(file, scope.span), "a scope"));
        }
        if r.scopes.is_empty() {
            let msg = format!("{edge} has an empty scope list: it allows no action");
            self.warnings
                .push(warning_at(WarningKind::EmptyScopes, item_at, msg));
        }
        if let Some(star) = r.scopes.iter().find(|s| s.node == "*") {
            let msg = format!("{edge} allows every action (`\"*\"`)");
            let star_at = at(file, star.span);
            self.warnings
                .push(warning_at(WarningKind::AnyScope, &star_at, msg));
            return ScopeRule::Any;
        }
        ScopeRule::List(r.scopes.iter().map(|s| s.node.clone()).collect())
    }

    fn chain(&mut self, file: &TrustFile, c: &ChainBlock, span: Span) {
        let block_at = at(file, span);
        if let Some(first) = &self.chain_at {
            let msg = format!("a second `chain` block (first at {first})");
            self.errors
                .push(error_at(LoadErrorKind::RepeatedChain, &block_at, msg));
            return;
        }
        self.chain_at = Some(block_at);
        let mut seen: HashMap<&'static str, At> = HashMap::new();
        for setting in &c.settings {
            let here = at(file, setting.span);
            let kw = setting.node.keyword();
            if let Some(first) = seen.get(kw) {
                let msg = format!("`{kw}` is set twice in `chain` (first at {first})");
                self.errors
                    .push(error_at(LoadErrorKind::RepeatedChain, &here, msg));
                continue;
            }
            self.apply(setting.node, &here);
            seen.insert(kw, here);
        }
    }

    fn apply(&mut self, setting: Setting, here: &At) {
        let chain = &mut self.chain;
        match setting {
            Setting::MaxDepth(n) => chain.max_depth = n,
            Setting::MaxDomains(n) => chain.max_domains = n,
            Setting::ClockSkew(s) => chain.clock_skew = s,
            Setting::MaxLifetime(s) => chain.max_lifetime = s,
            Setting::MaxKeyAge(s) => chain.max_key_age = s,
            Setting::OneTimeTokens(b) => chain.one_time_tokens = b,
            Setting::FailOpenReplay(b) => chain.fail_open_replay = b,
            Setting::RequireSenderBinding(b) => {
                chain.require_sender_binding = b;
                self.sender_binding_at = Some(here.clone());
            }
        }
    }
}

impl Merger {
    /// The `resource` block: one per pack, every URL checked, scopes valid and unique.
    fn resource(&mut self, file: &TrustFile, r: &ResourceDecl) {
        let here = at(file, r.identifier.span);
        if let Some(first) = &self.resource_at {
            let msg = format!("a second `resource` block (first at {first})");
            self.errors
                .push(error_at(LoadErrorKind::Resource, &here, msg));
            return;
        }
        self.resource_at = Some(here.clone());
        let id = &r.identifier.node;
        let mut ok = true;
        if let Err(why) = resource_identifier(id) {
            let msg = format!("`resource` `{id}`: {why}");
            self.errors
                .push(error_at(LoadErrorKind::Resource, &here, msg));
            ok = false;
        }
        if r.authorization_servers.is_empty() {
            let msg = format!(
                "`resource` `{id}` has no `authorization_servers`: a client reading its metadata would not know where to get a token"
            );
            self.errors
                .push(error_at(LoadErrorKind::Resource, &here, msg));
            ok = false;
        }
        let mut servers: Vec<String> = Vec::new();
        for server in &r.authorization_servers {
            let (url, server_at) = (&server.node, at(file, server.span));
            let problem = if servers.contains(url) {
                Some("listed twice".to_owned())
            } else {
                visible_ascii(url)
                    .and_then(|()| crate::url::check(url))
                    .err()
                    .or_else(|| {
                        url.contains('?')
                            .then(|| "an issuer has no query".to_owned())
                    })
            };
            match problem {
                Some(why) => {
                    let msg = format!("authorization server `{url}`: {why}");
                    self.errors
                        .push(error_at(LoadErrorKind::Resource, &server_at, msg));
                    ok = false;
                }
                None => servers.push(url.clone()),
            }
        }
        let mut scopes: Vec<String> = Vec::new();
        for scope in &r.scopes {
            let (text, scope_at) = (&scope.node, at(file, scope.span));
            let problem = if text.is_empty() {
                Some("a scope must not be empty")
            } else if !is_scope_token(text) {
                Some("not a scope token (RFC 6749 §3.3: printable ASCII without space, `\"` or `\\`)")
            } else if scopes.contains(text) {
                Some("listed twice")
            } else {
                None
            };
            match problem {
                Some(why) => {
                    let msg = format!("scope `{text}` of `resource`: {why}");
                    self.errors
                        .push(error_at(LoadErrorKind::Resource, &scope_at, msg));
                    ok = false;
                }
                None => scopes.push(text.clone()),
            }
        }
        if ok {
            self.resource = Some(ProtectedResource {
                identifier: id.clone(),
                authorization_servers: servers,
                scopes_supported: scopes,
            });
        }
    }
}

impl Merger {
    /// `store "URL"`: one per pack, `redis://` or `rediss://` with a host.
    fn store(&mut self, file: &TrustFile, url: &Spanned<String>) {
        let here = at(file, url.span);
        if let Some((_, first)) = &self.store {
            let msg = format!("a second `store` (first at {first})");
            self.errors.push(error_at(LoadErrorKind::Store, &here, msg));
            return;
        }
        match store_url(&url.node) {
            Ok(()) => self.store = Some((url.node.clone(), here)),
            Err(why) => {
                let msg = format!("`store` `{}`: {why}", url.node);
                self.errors.push(error_at(LoadErrorKind::Store, &here, msg));
            }
        }
    }
}

/// A store URL: `redis://` (or `rediss://`, TLS) with a host, an optional port and database
/// number, and no fragment or query.
fn store_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(format!(
            "scheme `{}` is not `redis` or `rediss`: the store is Redis",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("a store URL needs a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a store URL has no query or fragment".into());
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err(format!("`/{db}` is not a database number"));
    }
    Ok(())
}

/// A resource identifier (RFC 9728 §1.2): a key source's URL rules, and no query (custody
/// serves one metadata path per identifier, and RFC 9728 discourages queries).
fn resource_identifier(id: &str) -> Result<(), String> {
    visible_ascii(id)?;
    crate::url::check(id)?;
    if id.contains('?') {
        return Err("a resource identifier with a query is refused".into());
    }
    Ok(())
}

/// A URL custody writes into a header or a document as it was written: printable ASCII only
/// (anything else is percent-encoded by whoever writes the trust file).
fn visible_ascii(url: &str) -> Result<(), String> {
    if url.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
        Ok(())
    } else {
        Err("a URL here must be printable ASCII without spaces (percent-encode the rest)".into())
    }
}

fn at(file: &TrustFile, span: Span) -> At {
    At {
        path: file.path.clone(),
        location: span.location,
    }
}

fn error_at(kind: LoadErrorKind, at: &At, message: String) -> LoadError {
    LoadError::new(kind, &at.path, Some(at.location), message)
}

fn warning_at(kind: WarningKind, at: &At, message: String) -> Warning {
    Warning::new(kind, &at.path, Some(at.location), message)
}

fn empty(at: &At, what: &str) -> LoadError {
    error_at(
        LoadErrorKind::EmptyString,
        at,
        format!("{what} must not be empty"),
    )
}
