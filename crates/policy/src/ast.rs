//! The typed syntax tree of one trust file, with spans, and its printer.
//!
//! Only [`crate::parse_trust`] builds these values, so a [`TrustFile`] proves its text followed
//! the grammar and every name and number in it was valid. Equality ignores spans: two files are
//! equal when they say the same thing, wherever they say it.

use std::fmt;
use std::path::PathBuf;

use custody_id::TrustDomain;

use crate::error::Location;

/// Where a node sits in its file: byte offsets `start..end` and the start's line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// Line and column of `start`.
    pub location: Location,
}

/// A node and its span. `==` compares the node only.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Spanned<T> {
    /// The node.
    pub node: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    pub(crate) fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node
    }
}

impl<T: Eq> Eq for Spanned<T> {}

/// One parsed `*.trust` file: its items in source order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustFile {
    /// The file the text came from (as given to [`crate::parse_trust`]).
    pub path: PathBuf,
    /// The top-level items, in order.
    pub items: Vec<Spanned<Item>>,
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Item {
    /// `local "td"`: this service's trust domain.
    Local(Spanned<TrustDomain>),
    /// `domain "td" { issuer "…" keys "…" }`.
    Domain(DomainDecl),
    /// `federate "a" -> "b" { scopes [...] }`.
    Federate(FederateDecl),
    /// `chain { … }`.
    Chain(ChainBlock),
    /// `resource "URL" { authorization_servers [...] scopes [...] }`.
    Resource(ResourceDecl),
    /// `store "redis://HOST:PORT"`: the fleet's shared state store, as written.
    Store(Spanned<String>),
}

/// A `resource` block: the protected resource this service is (RFC 9728).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceDecl {
    /// The resource identifier, as written (checked when the pack is merged).
    pub identifier: Spanned<String>,
    /// The authorization servers, every `authorization_servers` list in order.
    pub authorization_servers: Vec<Spanned<String>>,
    /// The scopes supported, every `scopes` list in order.
    pub scopes: Vec<Spanned<String>>,
}

/// A `domain` block.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DomainDecl {
    /// The trust domain.
    pub name: Spanned<TrustDomain>,
    /// The `iss` values, in order.
    pub issuers: Vec<Spanned<String>>,
    /// The key file paths as written (relative to the trust file), in order.
    pub keys: Vec<Spanned<String>>,
    /// The Biscuit key file paths (`biscuit_keys`), as written, in order: the domain's Biscuit
    /// root keys and the keys its third-party (attestation) blocks are signed with.
    pub biscuit_keys: Vec<Spanned<String>>,
    /// The remote key sources (`jwks_uri`, `discovery`, `spiffe_bundle`), as written, in order.
    pub sources: Vec<Spanned<SourceDecl>>,
    /// Each `refresh` given (more than one is a load error), in seconds.
    pub refresh: Vec<Spanned<u64>>,
    /// Each `ca` file given (more than one is a load error), as written.
    pub ca: Vec<Spanned<String>>,
}

/// A remote key source of a `domain` block: its kind and its URL as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceDecl {
    /// Which keyword named it.
    pub kind: crate::model::SourceKind,
    /// The URL, as written (checked when the pack is merged).
    pub url: String,
}

/// A `federate` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FederateDecl {
    /// The domain whose actors delegate.
    pub from: Spanned<TrustDomain>,
    /// The domain they delegate to.
    pub to: Spanned<TrustDomain>,
    /// The scope list as written (`"*"` included).
    pub scopes: Vec<Spanned<String>>,
}

/// A `chain` block: its settings in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainBlock {
    /// The settings, in order.
    pub settings: Vec<Spanned<Setting>>,
}

/// One setting of a `chain` block, its value already checked against its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// `max_depth N`, 1 to 8.
    MaxDepth(usize),
    /// `max_domains N`, 1 to 16.
    MaxDomains(usize),
    /// `clock_skew D`, in seconds, at most 120.
    ClockSkew(u64),
    /// `max_lifetime D`, in seconds.
    MaxLifetime(u64),
    /// `require_sender_binding true|false`.
    RequireSenderBinding(bool),
    /// `max_key_age D`, in seconds: a remote source's set older than this is dropped.
    MaxKeyAge(u64),
    /// `one_time_tokens true|false`: each access token's `jti` is accepted once.
    OneTimeTokens(bool),
    /// `fail_open_replay true|false`: a replay check the store cannot answer lets the call
    /// through (on this node's own memory) instead of `store_unavailable`.
    FailOpenReplay(bool),
}

impl Setting {
    /// The setting's keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Setting::MaxDepth(_) => "max_depth",
            Setting::MaxDomains(_) => "max_domains",
            Setting::ClockSkew(_) => "clock_skew",
            Setting::MaxLifetime(_) => "max_lifetime",
            Setting::RequireSenderBinding(_) => "require_sender_binding",
            Setting::MaxKeyAge(_) => "max_key_age",
            Setting::OneTimeTokens(_) => "one_time_tokens",
            Setting::FailOpenReplay(_) => "fail_open_replay",
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kw = self.keyword();
        match self {
            Setting::MaxDepth(n) | Setting::MaxDomains(n) => write!(f, "{kw} {n}"),
            Setting::ClockSkew(s) | Setting::MaxLifetime(s) | Setting::MaxKeyAge(s) => {
                write!(f, "{kw} {}", Duration(*s))
            }
            Setting::RequireSenderBinding(b)
            | Setting::OneTimeTokens(b)
            | Setting::FailOpenReplay(b) => write!(f, "{kw} {b}"),
        }
    }
}

/// Seconds, printed in the largest unit that is exact.
pub(crate) struct Duration(pub(crate) u64);

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("0s"),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

/// Prints the file in the language's canonical layout; the output parses back to an equal
/// [`TrustFile`]. Comments are not kept.
impl fmt::Display for TrustFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", item.node)?;
        }
        Ok(())
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Local(td) => writeln!(f, "local \"{}\"", td.node),
            Item::Domain(d) => {
                writeln!(f, "domain \"{}\" {{", d.name.node)?;
                for issuer in &d.issuers {
                    writeln!(f, "  issuer \"{}\"", issuer.node)?;
                }
                for keys in &d.keys {
                    writeln!(f, "  keys \"{}\"", keys.node)?;
                }
                for keys in &d.biscuit_keys {
                    writeln!(f, "  biscuit_keys \"{}\"", keys.node)?;
                }
                for source in &d.sources {
                    let kw = source.node.kind.keyword();
                    writeln!(f, "  {kw} \"{}\"", source.node.url)?;
                }
                for refresh in &d.refresh {
                    writeln!(f, "  refresh {}", Duration(refresh.node))?;
                }
                for ca in &d.ca {
                    writeln!(f, "  ca \"{}\"", ca.node)?;
                }
                writeln!(f, "}}")
            }
            Item::Federate(r) => {
                writeln!(f, "federate \"{}\" -> \"{}\" {{", r.from.node, r.to.node)?;
                let scopes: Vec<String> =
                    r.scopes.iter().map(|s| format!("\"{}\"", s.node)).collect();
                writeln!(f, "  scopes [{}]", scopes.join(", "))?;
                writeln!(f, "}}")
            }
            Item::Resource(r) => {
                writeln!(f, "resource \"{}\" {{", r.identifier.node)?;
                for (kw, list) in [
                    ("authorization_servers", &r.authorization_servers),
                    ("scopes", &r.scopes),
                ] {
                    if !list.is_empty() {
                        let quoted: Vec<String> =
                            list.iter().map(|s| format!("\"{}\"", s.node)).collect();
                        writeln!(f, "  {kw} [{}]", quoted.join(", "))?;
                    }
                }
                writeln!(f, "}}")
            }
            Item::Store(url) => writeln!(f, "store \"{}\"", url.node),
            Item::Chain(c) => {
                writeln!(f, "chain {{")?;
                for setting in &c.settings {
                    writeln!(f, "  {}", setting.node)?;
                }
                writeln!(f, "}}")
            }
        }
    }
}
