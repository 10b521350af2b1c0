//! Loads the committed fixture pack `tests/fixtures/good` and checks what the verifier sees.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::path::{Path, PathBuf};

use custody_jose::Limits;
use custody_policy::{ChainSettings, PolicyPack, ScopeRule, WarningKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn loads_the_good_pack() {
    let loaded = match PolicyPack::load(&fixture("good"), &Limits::default()) {
        Ok(l) => l,
        Err(errors) => panic!(
            "{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    let pack = &loaded.pack;
    assert_eq!(pack.local.as_str(), "c.example");
    let names: Vec<&str> = pack.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a.example", "b.example", "c.example"]);
    assert_eq!(
        pack.chain,
        ChainSettings {
            max_depth: 4,
            max_domains: 3,
            clock_skew: 60,
            max_lifetime: 7200,
            require_sender_binding: true,
            max_key_age: 86_400,
            one_time_tokens: false,
            fail_open_replay: false,
        }
    );

    // keys: two files merged for a.example, the RSA key of b.example skipped
    let a = pack.domain("a.example").unwrap();
    assert_eq!(a.keys.len(), 2);
    assert!(a.keys.get("a1").is_some() && a.keys.get("a2").is_some());
    assert_eq!(a.key_files.len(), 2);
    assert!(a.key_files[0].ends_with("keys/a.jwks"));
    assert_eq!(pack.domain("b.example").unwrap().keys.len(), 1);
    assert!(pack.domain("c.example").unwrap().keys.get("c1").is_some());
    assert!(pack.domain("d.example").is_none());

    // issuers: exact match only
    let b = pack.domain_for_issuer("https://legacy.b.example").unwrap();
    assert_eq!(b.name.as_str(), "b.example");
    assert!(pack.domain_for_issuer("https://as.a.example/").is_none());
    assert!(pack.domain_for_issuer("HTTPS://as.a.example").is_none());

    // federation: not transitive, not symmetric
    let ab = pack.federation_rule("a.example", "b.example").unwrap();
    assert_eq!(
        ab.scopes,
        ScopeRule::List(vec!["orders:read".into(), "orders:write".into()])
    );
    assert!(ab.scopes.allows("orders:write"));
    assert!(!ab.scopes.allows("orders:Write"));
    assert!(pack.federation_rule("b.example", "a.example").is_none());
    assert!(pack.federation_rule("c.example", "a.example").is_none());

    // cedar: three policies with stable ids, schema and entities
    let cedar = pack.cedar.as_ref().unwrap();
    let mut ids: Vec<String> = cedar
        .policies
        .policies()
        .map(|p| p.id().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["agents-read", "orders.1", "orders.2"]);
    assert!(cedar.schema.is_some());
    assert_eq!(
        cedar
            .entities
            .iter()
            .filter(|e| e.uid().type_name().to_string() == "Agent")
            .count(),
        1
    );

    // version: lowercase hex sha-256
    assert_eq!(pack.version.len(), 64);
    assert!(pack
        .version
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

    // the only warning: the skipped RSA key (an encryption key), located at its `keys` line
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert_eq!(w.kind, WarningKind::SkippedKey);
    assert!(w.path.ends_with("10-domains.trust"));
    assert_eq!(w.location.map(|l| (l.line, l.column)), Some((13, 8)));
    assert!(
        w.message.contains("keys/b.jwks") && w.message.contains("legacy-rsa"),
        "{w}"
    );
}

#[test]
fn version_is_stable_and_tracks_contents() {
    let one = PolicyPack::load(&fixture("good"), &Limits::default()).unwrap();
    let two = PolicyPack::load(&fixture("good"), &Limits::default()).unwrap();
    assert_eq!(one.pack.version, two.pack.version);
}

#[test]
fn pack_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicyPack>();
    assert_send_sync::<custody_policy::CedarPack>();
    assert_send_sync::<custody_policy::LoadError>();
}
