//! The policy pack's model: what a loaded pack is, and the lookups the verifier makes in it.
//! Loading is `pack.rs`'s; nothing here reads a file.

use std::path::PathBuf;

use custody_id::TrustDomain;
use custody_jose::KeySet;

/// A loaded, checked policy pack. Build it with [`PolicyPack::load`]; share it across threads.
#[derive(Clone, Debug)]
pub struct PolicyPack {
    /// This service's trust domain (`local`), always one of `domains`.
    pub local: TrustDomain,
    /// The declared domains, in declaration order.
    pub domains: Vec<DomainConfig>,
    /// The `federate` rules, in declaration order; edges are unique.
    pub federation: Vec<FederationRule>,
    /// The `chain` settings (defaults where unset).
    pub chain: ChainSettings,
    /// The Cedar side; `None` when the pack has no `*.cedar` file.
    pub cedar: Option<CedarPack>,
    /// The protected resource this service is (`resource` block, RFC 9728), if declared.
    pub resource: Option<ProtectedResource>,
    /// The fleet's shared state store (`store "redis://HOST:PORT"`), if declared: where
    /// revocations come from and one-time `jti`s are recorded across nodes.
    pub store: Option<String>,
    /// Lowercase hex SHA-256 over every file read (relative path and contents, sorted by path).
    pub version: String,
    /// The pack directory, as given.
    pub dir: PathBuf,
}

/// One trust domain: the issuers it signs as and its keys.
#[derive(Clone, Debug)]
pub struct DomainConfig {
    /// The trust domain.
    pub name: TrustDomain,
    /// The exact `iss` values of its tokens (at least one; unique across the pack).
    pub issuers: Vec<String>,
    /// Its usable Ed25519 keys, from all its key files.
    pub keys: KeySet,
    /// Its WIT keys, from its key files: SPIFFE bundles' `wit-svid` keys and plain JWK Sets'
    /// keys (a bundle's `jwt-svid` keys never verify a WIT).
    pub wit_keys: KeySet,
    /// Its X.509-SVID authorities (DER certificates), from its SPIFFE bundles' `x509-svid`
    /// entries.
    pub x509_authorities: Vec<Vec<u8>>,
    /// Its key files, resolved against the trust file's directory.
    pub key_files: Vec<PathBuf>,
    /// Its Biscuit keys (`biscuit_keys`): roots of the Biscuit tokens it issues and the keys
    /// of the third-party blocks with which it attests a hop. Empty when none are declared.
    pub biscuit_keys: KeySet,
    /// Its `biscuit_keys` files, resolved against the trust file's directory.
    pub biscuit_key_files: Vec<PathBuf>,
    /// Its remote key sources, in declaration order (each URL checked: `https`, or `http` to
    /// a loopback address; a `discovery` URL is one of `issuers`).
    pub sources: Vec<KeySource>,
    /// How often its remote sources are refetched, in seconds (30 s to 24 h; default 5 min).
    pub refresh: u64,
    /// The CA certificates (PEM) its remote sources' TLS is checked against instead of the
    /// system roots (`ca "FILE"`).
    pub ca: Option<CaFile>,
}

/// Where a domain fetches keys from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// `jwks_uri "URL"`: a JWK Set (RFC 7517).
    JwksUri,
    /// `discovery "ISSUER"`: OpenID Connect discovery, then RFC 8414 metadata; its `jwks_uri`.
    Discovery,
    /// `spiffe_bundle "URL"`: a SPIFFE bundle endpoint (`https_web` profile).
    SpiffeBundle,
}

impl SourceKind {
    /// The trust-language keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            SourceKind::JwksUri => "jwks_uri",
            SourceKind::Discovery => "discovery",
            SourceKind::SpiffeBundle => "spiffe_bundle",
        }
    }
}

/// A remote key source of a domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeySource {
    /// What the URL serves.
    pub kind: SourceKind,
    /// The URL, exactly as declared.
    pub url: String,
}

/// A `ca` file: its path and contents, read when the pack loads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CaFile {
    /// The file, resolved against the trust file's directory.
    pub path: PathBuf,
    /// Its contents (PEM certificates).
    pub pem: Vec<u8>,
}

/// The path RFC 9728 §3 registers for protected resource metadata.
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The protected resource this service is: the `resource` block (RFC 9728). The sidecar serves
/// its metadata and names the metadata URL in its `www-authenticate` challenges, so a client
/// (an MCP client, for one) can find where to get a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedResource {
    /// The resource identifier, exactly as written: an `https` URL (or `http` to a loopback
    /// address) without query, fragment or credentials. Tokens for this service name it as `aud`
    /// (RFC 8707).
    pub identifier: String,
    /// The authorization servers' issuer identifiers (at least one), in order.
    pub authorization_servers: Vec<String>,
    /// `scopes_supported` (possibly none), in order.
    pub scopes_supported: Vec<String>,
}

impl ProtectedResource {
    /// The identifier split into its origin (`scheme://authority`) and its path (`""` for none
    /// or `/`: RFC 9728 §3.1 drops a terminating slash after the host).
    fn split(&self) -> (&str, &str) {
        let id = self.identifier.as_str();
        let after_scheme = id.find("://").map_or(0, |i| i + 3);
        let tail = id.get(after_scheme..).unwrap_or_default();
        let cut = tail.find('/').map_or(id.len(), |i| after_scheme + i);
        let (origin, path) = id.split_at_checked(cut).unwrap_or((id, ""));
        (origin, if path == "/" { "" } else { path })
    }

    /// The path, on this service's host, of its metadata: the well-known path followed by the
    /// identifier's path (`/.well-known/oauth-protected-resource/mcp` for `https://h/mcp`).
    pub fn metadata_path(&self) -> String {
        format!("{RESOURCE_METADATA_PATH}{}", self.split().1)
    }

    /// The metadata URL (RFC 9728 §3.1): the well-known path inserted between the identifier's
    /// authority and its path.
    pub fn metadata_url(&self) -> String {
        let (origin, path) = self.split();
        format!("{origin}{RESOURCE_METADATA_PATH}{path}")
    }

    /// The metadata document (RFC 9728 §2): `resource`, `authorization_servers`,
    /// `scopes_supported` when declared, and `bearer_methods_supported` (`header`: custody
    /// reads tokens from headers only).
    pub fn metadata(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "resource": self.identifier,
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !self.scopes_supported.is_empty() {
            if let Some(map) = doc.as_object_mut() {
                map.insert(
                    "scopes_supported".into(),
                    serde_json::json!(self.scopes_supported),
                );
            }
        }
        doc
    }
}

/// The default `refresh`: five minutes (DESIGN.md).
pub const DEFAULT_REFRESH: u64 = 300;
/// The shortest `refresh`: 30 s.
pub const MIN_REFRESH: u64 = 30;
/// The longest `refresh`: 24 h.
pub const MAX_REFRESH: u64 = 86_400;

/// `federate from -> to { scopes [...] }`: actors of `from` may delegate to `to` for `scopes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederationRule {
    /// The delegating domain.
    pub from: TrustDomain,
    /// The domain delegated to.
    pub to: TrustDomain,
    /// The actions the edge carries.
    pub scopes: ScopeRule,
}

/// The actions a federation edge carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeRule {
    /// `["*"]` (a `"*"` anywhere in the list): any action.
    Any,
    /// Exactly these actions (possibly none).
    List(Vec<String>),
}

impl ScopeRule {
    /// Whether `action` may cross the edge: exact, case-sensitive string match.
    pub fn allows(&self, action: &str) -> bool {
        match self {
            ScopeRule::Any => true,
            ScopeRule::List(scopes) => scopes.iter().any(|s| s == action),
        }
    }
}

/// The `chain` block's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainSettings {
    /// Most actors in a chain (1 to 8). Default 5: DESIGN.md; AuthPlane caps `act` at 5.
    pub max_depth: usize,
    /// Most distinct trust domains on the federation path (1 to 16). Default 3: DESIGN.md.
    pub max_domains: usize,
    /// Clock skew allowed on `exp`, `nbf`, `iat`, in seconds (at most 120). Default 30:
    /// standards digest §2.
    pub clock_skew: u64,
    /// Longest `exp - iat` accepted, in seconds. Default 3600 (1h): DESIGN.md.
    pub max_lifetime: u64,
    /// Whether a missing `peer` denies. Default false: DESIGN.md (a warning says so).
    pub require_sender_binding: bool,
    /// Age, in seconds, past which a remote source's last good key set is dropped. Default
    /// 86400 (24 h): DESIGN.md.
    pub max_key_age: u64,
    /// Whether each access token's `jti` is accepted once (the presented token's, through the
    /// replay defence). Default false.
    pub one_time_tokens: bool,
    /// Whether a replay check the store cannot answer lets the call through on this node's
    /// own memory instead of denying it `store_unavailable`. Default false (fail closed).
    pub fail_open_replay: bool,
}

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            max_depth: 5,
            max_domains: 3,
            clock_skew: 30,
            max_lifetime: 3600,
            require_sender_binding: false,
            max_key_age: 86_400,
            one_time_tokens: false,
            fail_open_replay: false,
        }
    }
}

/// The pack's Cedar policies, schema and entities.
#[derive(Clone, Debug)]
pub struct CedarPack {
    /// Every static policy, each with its stable id (`@id("…")`, else `<file stem>.<n>`).
    pub policies: cedar_policy::PolicySet,
    /// The `*.cedarschema` schema, if the pack has one (policies are then strictly validated).
    pub schema: Option<cedar_policy::Schema>,
    /// The same schema in Cedar's JSON schema form, to say which attribute of a refused
    /// request does not fit it (Cedar's own message does not name it).
    pub schema_json: Option<serde_json::Value>,
    /// `entities.json`, if present (with the schema's action entities when there is a schema).
    pub entities: cedar_policy::Entities,
}

impl PolicyPack {
    /// The declared domain named `td` (exact match).
    pub fn domain(&self, td: &str) -> Option<&DomainConfig> {
        self.domains.iter().find(|d| d.name.as_str() == td)
    }

    /// The domain that declares issuer `iss` (exact string match).
    pub fn domain_for_issuer(&self, iss: &str) -> Option<&DomainConfig> {
        self.domains
            .iter()
            .find(|d| d.issuers.iter().any(|i| i == iss))
    }

    /// The `federate from -> to` rule, if declared. Federation is not transitive.
    pub fn federation_rule(&self, from: &str, to: &str) -> Option<&FederationRule> {
        self.federation
            .iter()
            .find(|r| r.from.as_str() == from && r.to.as_str() == to)
    }
}

/// An RFC 6749 §3.3 scope token: one or more of `%x21 / %x23-5B / %x5D-7E` (printable ASCII
/// without space, `"` or `\`). The one rule for `resource` scopes a pack declares and the scope a
/// challenge names.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[cfg(test)]
mod scope_token_tests {
    use super::is_scope_token;

    #[test]
    fn scope_tokens_by_rfc_6749() {
        for ok in ["read", "tools/call:get_weather", "!#$[]^~", "a]b[c"] {
            assert!(is_scope_token(ok), "{ok}");
        }
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb", "a\u{7f}"] {
            assert!(!is_scope_token(bad), "{bad:?}");
        }
        // every byte by the grammar's three ranges
        for b in 0..=255u8 {
            let want = b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b);
            assert_eq!(
                is_scope_token(&char::from(b).to_string()),
                want && b < 0x80,
                "{b}"
            );
        }
    }
}
