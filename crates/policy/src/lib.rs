//! The policy pack: custody's trust language (`*.trust`, parsed with pest), the operator's
//! Cedar policies, and the key files of every trust domain, loaded and checked once.
//!
//! A pack is a directory. Its `*.trust` files say which trust domains exist, which issuers and
//! keys each one signs with, which domains may delegate to which (and for which actions), and
//! the chain limits; its `*.cedar` files (with an optional `*.cedarschema` and `entities.json`)
//! are the final authorization step. [`PolicyPack::load`] reads it all and reports every
//! problem it finds, each with `file:line:col`, so `custody check` can list them at once;
//! [`parse_trust`] parses one trust file without touching the file system.
//!
//! ```
//! use std::path::Path;
//! use custody_jose::Limits;
//! use custody_policy::{parse_trust, Item};
//!
//! let source = r#"
//! // this service (`#` comments work too)
//! local "c.example"
//! domain "c.example" {
//!   issuer "https://as.c.example"
//!   keys "keys/c.jwks"
//! }
//! federate "a.example" -> "c.example" { scopes ["orders:read"] }
//! chain { max_depth 4  clock_skew 1m }
//! "#;
//! let file = parse_trust(source, Path::new("demo.trust"), &Limits::default()).unwrap();
//! assert_eq!(file.items.len(), 4);
//! assert!(matches!(&file.items[0].node, Item::Local(td) if td.node.as_str() == "c.example"));
//!
//! // the printer's output parses back to the same file
//! let again = parse_trust(&file.to_string(), Path::new("demo.trust"), &Limits::default()).unwrap();
//! assert_eq!(again, file);
//!
//! // errors name the file, line and column
//! let errors = parse_trust("domian \"a\" {}", Path::new("x.trust"), &Limits::default()).unwrap_err();
//! assert_eq!(
//!     errors[0].to_string(),
//!     "x.trust:1:1: unknown keyword `domian`: expected `local`, `domain`, `federate`, `chain`, `resource` or `store`"
//! );
//! ```
//!
//! Limits (all from [`custody_jose::Limits`]): every pack file is at most `pack_file_bytes`
//! (checked before reading it whole); a trust file's brackets nest at most `trust_nesting` deep
//! (checked before pest runs; the grammar itself does not recurse) and pest gets a call budget
//! proportional to `pack_file_bytes`, so hostile text ends in an error, never a panic, a stack
//! overflow or a hang; at most 20 syntax errors are reported per file; key sets follow
//! `keys_per_set` and `json_depth`; a pack holds at most `policies` Cedar policies. The parser
//! sets pest's process-wide call limit (`pest::set_call_limit`).
#![forbid(unsafe_code)]

mod ast;
mod cedar;
mod cedar_schema;
mod error;
mod files;
mod keys;
mod merge;
mod model;
mod pack;
mod syntax;
mod url;

use std::path::Path;

use custody_jose::Limits;

pub use ast::{
    ChainBlock, DomainDecl, FederateDecl, Item, ResourceDecl, Setting, SourceDecl, Span, Spanned,
    TrustFile,
};
pub use cedar_schema::{context_mismatch, custody_context_mismatch, schema_actions};
pub use error::{LoadError, LoadErrorKind, Location, Warning, WarningKind};
pub use model::{
    is_scope_token, CaFile, CedarPack, ChainSettings, DomainConfig, FederationRule, KeySource,
    PolicyPack, ProtectedResource, ScopeRule, SourceKind, DEFAULT_REFRESH, MAX_REFRESH,
    MIN_REFRESH, RESOURCE_METADATA_PATH,
};
pub use pack::{Loaded, PackEntry};

/// Whether `url` may be fetched as a remote key source (or followed in a redirect from one):
/// `https`, or `http` to a loopback address, with a host and without credentials or fragment.
/// The error says why not.
pub fn check_source_url(url: &str) -> Result<(), String> {
    url::check(url)
}

/// Parses one trust file's text: the grammar, names, numbers, and the checks one file allows
/// (duplicates, repeats, incomplete domains). Checks that need the whole pack (`local` present
/// and declared, `federate` naming declared domains) and key files are [`PolicyPack::load`]'s.
pub fn parse_trust(
    source: &str,
    file: &Path,
    limits: &Limits,
) -> Result<TrustFile, Vec<LoadError>> {
    let parsed = syntax::parse(source, file, limits);
    let mut merger = merge::Merger::default();
    merger.add(&parsed.file);
    let mut errors = parsed.errors;
    errors.append(&mut merger.errors);
    if errors.is_empty() {
        return Ok(parsed.file);
    }
    errors.sort_by_key(|e| e.location);
    Err(errors)
}
