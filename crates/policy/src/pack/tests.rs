//! Whole-pack loading: each test writes a small pack to a fresh temporary directory.

use std::sync::atomic::{AtomicUsize, Ordering};

use custody_jose::{KeySet, SigningKey};

use super::*;
use crate::error::WarningKind;
use crate::model::{ChainSettings, ScopeRule};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A pack directory under the system temp dir, removed when dropped.
struct TempPack {
    dir: PathBuf,
    limits: Limits,
}

impl TempPack {
    fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("custody-policy-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempPack {
            dir,
            limits: Limits::default(),
        }
    }

    /// A pack with `c.example` declared and local, its key file in place.
    fn minimal() -> Self {
        let pack = Self::new();
        pack.file("c.trust", &format!("local \"c.example\"\n{}", domain("c")));
        pack.file("keys/c.jwks", &jwks(&[("c1", 3)]));
        pack
    }

    fn file(&self, rel: &str, contents: &str) -> &Self {
        self.bytes(rel, contents.as_bytes())
    }

    fn bytes(&self, rel: &str, contents: &[u8]) -> &Self {
        let path = self.dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        self
    }

    fn load(&self) -> Result<Loaded, Vec<LoadError>> {
        PolicyPack::load(&self.dir, &self.limits)
    }

    fn loaded(&self) -> Loaded {
        match self.load() {
            Ok(l) => l,
            Err(errors) => panic!("{}", render(&errors)),
        }
    }

    /// Every error as `kind file:line:col: message` with the file relative to the pack.
    fn errors(&self) -> Vec<(LoadErrorKind, String)> {
        let Err(errors) = self.load() else {
            panic!("the pack loaded")
        };
        errors
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.to_string()
                        .replace(&format!("{}/", self.dir.display()), ""),
                )
            })
            .collect()
    }

    fn one_error(&self) -> (LoadErrorKind, String) {
        let errors = self.errors();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.into_iter().next().unwrap()
    }
}

impl Drop for TempPack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn render(errors: &[LoadError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn jwks(keys: &[(&str, u8)]) -> String {
    let mut set = KeySet::new();
    for (kid, seed) in keys {
        set.insert(SigningKey::from_seed(kid, [*seed; 32]).public())
            .unwrap();
    }
    set.to_jwks().to_string()
}

/// `domain "<n>.example"` with issuer `https://as.<n>.example` and key file `keys/<n>.jwks`.
fn domain(n: &str) -> String {
    format!("domain \"{n}.example\" {{\n  issuer \"https://as.{n}.example\"\n  keys \"keys/{n}.jwks\"\n}}\n")
}

// ---- loading -----------------------------------------------------------------------------

#[test]
fn minimal_pack_has_defaults_and_warns_about_bearer_tokens() {
    let pack = TempPack::minimal();
    let loaded = pack.loaded();
    assert_eq!(loaded.pack.local.as_str(), "c.example");
    assert_eq!(loaded.pack.chain, ChainSettings::default());
    assert_eq!(
        ChainSettings::default(),
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
    );
    assert!(loaded.pack.cedar.is_none());
    assert!(loaded.pack.federation.is_empty());
    assert_eq!(loaded.pack.dir, pack.dir);
    assert_eq!(loaded.warnings.len(), 1);
    let w = &loaded.warnings[0];
    assert_eq!(w.kind, WarningKind::SenderBindingOff);
    assert_eq!((w.path.as_path(), w.location), (pack.dir.as_path(), None));
    assert_eq!(
        w.message,
        "require_sender_binding is false: every token is a bearer token any holder can replay"
    );
}

#[test]
fn explicit_sender_binding_false_is_located() {
    let pack = TempPack::minimal();
    pack.file("z.trust", "chain {\n  require_sender_binding false\n}\n");
    let w = &pack.loaded().warnings[0];
    assert!(w.path.ends_with("z.trust"));
    assert_eq!(w.location.map(|l| l.line), Some(2));
    pack.file("z.trust", "chain { require_sender_binding true }");
    assert!(pack.loaded().warnings.is_empty());
}

#[test]
fn files_merge_as_one_and_subdirectories_are_not_scanned() {
    let pack = TempPack::new();
    pack.file("1.trust", &format!("local \"c.example\"\n{}", domain("c")))
        .file("2.trust", &domain("a"))
        .file("3.trust", "federate \"a.example\" -> \"c.example\" { scopes [\"*\"] }\nchain { require_sender_binding true }")
        .file("keys/a.jwks", &jwks(&[("a1", 1)]))
        .file("keys/c.jwks", &jwks(&[("c1", 3)]))
        .file("tests/broken.trust", "not a trust file {")
        .file("tests/x.cedar", "not cedar")
        .file("README.md", "# not read")
        .file("notes.txt", "ignored");
    std::fs::create_dir_all(pack.dir.join("sub.trust")).unwrap(); // a directory, not a file
    let loaded = pack.loaded();
    let p = &loaded.pack;
    assert_eq!(p.domains.len(), 2);
    assert_eq!(
        p.domain_for_issuer("https://as.a.example")
            .unwrap()
            .name
            .as_str(),
        "a.example"
    );
    let rule = p.federation_rule("a.example", "c.example").unwrap();
    assert_eq!(rule.scopes, ScopeRule::Any);
    assert!(rule.scopes.allows("anything:at-all"));
    assert!(p.federation_rule("c.example", "a.example").is_none());
    // the "*" warning, located at the star
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(loaded.warnings[0].kind, WarningKind::AnyScope);
    assert!(loaded.warnings[0].path.ends_with("3.trust"));
    assert_eq!(loaded.warnings[0].location.map(|l| l.column), Some(47));
}

#[test]
fn scope_rules_match_exactly() {
    let list = ScopeRule::List(vec!["orders:read".into()]);
    assert!(list.allows("orders:read"));
    assert!(!list.allows("orders:read "));
    assert!(!list.allows("orders:*"));
    assert!(!list.allows(""));
    assert!(!ScopeRule::List(vec![]).allows("x"));
    assert!(ScopeRule::Any.allows(""));
}

#[test]
fn empty_scope_list_warns() {
    let pack = TempPack::minimal();
    pack.file("keys/a.jwks", &jwks(&[("a1", 1)])).file(
        "a.trust",
        &format!(
            "{}federate \"a.example\" -> \"c.example\" {{ scopes [] }}",
            domain("a")
        ),
    );
    let loaded = pack.loaded();
    let w: Vec<_> = loaded
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::EmptyScopes)
        .collect();
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].message,
        "`federate` `a.example` -> `c.example` has an empty scope list: it allows no action"
    );
    let rule = loaded
        .pack
        .federation_rule("a.example", "c.example")
        .unwrap();
    assert!(!rule.scopes.allows("x"));
}

#[test]
fn version_covers_every_file_read() {
    let pack = TempPack::minimal();
    let v1 = pack.loaded().pack.version;
    assert_eq!(pack.loaded().pack.version, v1);
    // an ignored file does not change it
    pack.file("notes.txt", "x");
    assert_eq!(pack.loaded().pack.version, v1);
    // a key file does
    pack.file("keys/c.jwks", &jwks(&[("c2", 4)]));
    let v2 = pack.loaded().pack.version;
    assert_ne!(v2, v1);
    // and a trust file (a comment is contents too)
    pack.file(
        "c.trust",
        &format!("# v3\nlocal \"c.example\"\n{}", domain("c")),
    );
    assert_ne!(pack.loaded().pack.version, v2);
    // the same pack elsewhere has the same version: paths are relative
    let other = TempPack::new();
    other.file(
        "c.trust",
        &format!("# v3\nlocal \"c.example\"\n{}", domain("c")),
    );
    other.file("keys/c.jwks", &jwks(&[("c2", 4)]));
    assert_eq!(other.loaded().pack.version, pack.loaded().pack.version);
}

// ---- pack-level errors ---------------------------------------------------------------------

#[test]
fn directory_problems() {
    let pack = TempPack::new();
    let (kind, msg) = pack.one_error();
    assert_eq!(kind, LoadErrorKind::PackLayout);
    assert!(
        msg.ends_with(": no `*.trust` file in the pack directory"),
        "{msg}"
    );
    let missing = pack.dir.join("missing");
    let errors = PolicyPack::load(&missing, &Limits::default()).unwrap_err();
    assert_eq!(errors[0].kind, LoadErrorKind::Io);
    assert!(errors[0].message.contains("not found"), "{}", errors[0]);
}

#[test]
fn local_missing_repeated_or_undeclared() {
    let pack = TempPack::new();
    pack.file("a.trust", &domain("c"))
        .file("keys/c.jwks", &jwks(&[("c1", 3)]));
    let (kind, msg) = pack.one_error();
    assert_eq!(kind, LoadErrorKind::Local);
    assert!(msg.contains("no `local` declaration"), "{msg}");

    pack.file("b.trust", "local \"c.example\"\n")
        .file("c.trust", "\n  local \"c.example\"");
    assert_eq!(
        pack.one_error(),
        (
            LoadErrorKind::Local,
            format!(
                "c.trust:2:9: `local` is declared twice (first at {}/b.trust:1:7)",
                pack.dir.display()
            )
            .replace(&format!("{}/", pack.dir.display()), "")
        )
    );

    let pack = TempPack::minimal();
    pack.file("c.trust", &format!("local \"x.example\"\n{}", domain("c")));
    assert_eq!(
        pack.one_error(),
        (
            LoadErrorKind::Local,
            "c.trust:1:7: `local` names `x.example`, which no `domain` block declares".into()
        )
    );
}

#[test]
fn federate_must_name_declared_domains() {
    let pack = TempPack::minimal();
    pack.file("f.trust", "federate \"a.example\" -> \"c.example\" { scopes [\"x\"] }\nfederate \"c.example\" -> \"b.example\" { scopes [\"x\"] }");
    assert_eq!(
        pack.errors(),
        [
            (
                LoadErrorKind::UndeclaredDomain,
                "f.trust:1:10: `federate` names `a.example`, which no `domain` block declares"
                    .into()
            ),
            (
                LoadErrorKind::UndeclaredDomain,
                "f.trust:2:25: `federate` names `b.example`, which no `domain` block declares"
                    .into()
            ),
        ]
    );
}

#[test]
fn duplicates_across_files() {
    let pack = TempPack::minimal();
    pack.file("d.trust", &domain("c"));
    assert_eq!(pack.one_error().0, LoadErrorKind::DuplicateDomain);
    let msg = pack.one_error().1;
    assert!(
        msg.starts_with("d.trust:1:8: domain `c.example` is declared twice (first at "),
        "{msg}"
    );

    let pack = TempPack::minimal();
    pack.file("keys/a.jwks", &jwks(&[("a1", 1)])).file(
        "d.trust",
        "domain \"a.example\" {\n issuer \"https://as.c.example\"\n keys \"keys/a.jwks\"\n}",
    );
    let (kind, msg) = pack.one_error();
    assert_eq!(kind, LoadErrorKind::DuplicateIssuer);
    assert!(msg.starts_with("d.trust:2:9: issuer `https://as.c.example` is already declared by domain `c.example` at "), "{msg}");

    let pack = TempPack::minimal();
    pack.file("d.trust", "chain { max_depth 3 }")
        .file("e.trust", "chain { max_depth 3 }");
    assert_eq!(pack.one_error().0, LoadErrorKind::RepeatedChain);

    let pack = TempPack::minimal();
    pack.file("keys/a.jwks", &jwks(&[("a1", 1)]))
        .file("a.trust", &domain("a"))
        .file(
            "d.trust",
            "federate \"a.example\" -> \"c.example\" { scopes [\"x\"] }",
        )
        .file(
            "e.trust",
            "federate \"a.example\" -> \"c.example\" { scopes [\"x\"] }",
        );
    let (kind, msg) = pack.one_error();
    assert_eq!(kind, LoadErrorKind::DuplicateFederation);
    assert!(msg.starts_with("e.trust:1:1: "), "{msg}");
}

// ---- key files -----------------------------------------------------------------------------

#[test]
fn key_files_are_relative_to_the_trust_file_and_merged() {
    let pack = TempPack::new();
    pack.file(
        "c.trust",
        "local \"c.example\"\ndomain \"c.example\" { issuer \"i\" keys \"keys/one.jwks\" keys \"keys/two.jwks\" }",
    )
    .file("keys/one.jwks", &jwks(&[("k1", 1)]))
    .file("keys/two.jwks", &jwks(&[("k2", 2), ("k3", 3)]));
    let loaded = pack.loaded();
    let c = loaded.pack.domain("c.example").unwrap();
    assert_eq!(c.keys.len(), 3);
    assert_eq!(
        c.key_files,
        [
            pack.dir.join("keys/one.jwks"),
            pack.dir.join("keys/two.jwks")
        ]
    );
}

#[test]
fn unreadable_key_files() {
    let pack = TempPack::minimal();
    std::fs::remove_file(pack.dir.join("keys/c.jwks")).unwrap();
    assert_eq!(
        pack.one_error(),
        (
            LoadErrorKind::Io,
            "c.trust:4:8: cannot read key file `keys/c.jwks`: not found".into()
        )
    );
    std::fs::create_dir_all(pack.dir.join("keys/c.jwks")).unwrap();
    assert_eq!(pack.one_error().0, LoadErrorKind::Io);
}

#[test]
fn key_files_that_fail_to_parse() {
    let cases: &[(&str, LoadErrorKind, &str)] = &[
        (
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w","d":"AQ"}]}"#,
            LoadErrorKind::KeySet,
            "key file `keys/c.jwks`: key 0 has a private part (`d`, `p`, `q`, `dp`, `dq`, `qi` or `oth`): publish public keys only",
        ),
        (
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w"}]}"#,
            LoadErrorKind::KeySet,
            "key file `keys/c.jwks`: key 0 has no string `kid`",
        ),
        (
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w"},{"kty":"OKP","crv":"Ed25519","kid":"k","x":"gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5Q"}]}"#,
            LoadErrorKind::DuplicateKid,
            "key file `keys/c.jwks`: two keys with `kid` `k`",
        ),
        (
            "{\"keys\": [",
            LoadErrorKind::KeySet,
            "key file `keys/c.jwks`: invalid JSON",
        ),
        (
            "{\"keys\": [], \"keys\": []}",
            LoadErrorKind::KeySet,
            "key file `keys/c.jwks`: duplicate key `keys`",
        ),
        (
            "[]",
            LoadErrorKind::KeySet,
            "key file `keys/c.jwks`: invalid JSON: expected a JSON object",
        ),
    ];
    for (contents, kind, want) in cases {
        let pack = TempPack::minimal();
        pack.file("keys/c.jwks", contents);
        let (got_kind, msg) = pack.one_error();
        assert_eq!(got_kind, *kind, "{msg}");
        assert!(msg.starts_with(&format!("c.trust:4:8: {want}")), "{msg}");
    }
}

#[test]
fn the_same_kid_twice_in_one_domain() {
    let pack = TempPack::new();
    pack.file(
        "c.trust",
        "local \"c.example\"\ndomain \"c.example\" {\n issuer \"i\"\n keys \"keys/one.jwks\"\n keys \"keys/two.jwks\"\n}",
    )
    .file("keys/one.jwks", &jwks(&[("k1", 1)]))
    .file("keys/two.jwks", &jwks(&[("k1", 2)]));
    assert_eq!(
        pack.one_error(),
        (
            LoadErrorKind::DuplicateKid,
            "c.trust:5:7: kid `k1` appears twice in domain `c.example`: key file `keys/two.jwks` repeats a kid of an earlier key file".into()
        )
    );
    // one kid in two domains is fine: each domain has its own key set
    let pack = TempPack::minimal();
    pack.file("keys/a.jwks", &jwks(&[("c1", 1)]))
        .file("a.trust", &domain("a"));
    assert!(pack.load().is_ok());
}

#[test]
fn skipped_keys_are_warnings() {
    let pack = TempPack::minimal();
    let mixed = r#"{"keys":[
        {"kty":"oct","kid":"h1","k":"c2VjcmV0"},
        {"kty":"EC","crv":"P-521","kid":"e1","x":"AA","y":"AA"},
        {"kty":"OKP","crv":"Ed25519","kid":"c1","x":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w"}
    ]}"#;
    pack.file("keys/c.jwks", mixed);
    let loaded = pack.loaded();
    let skipped: Vec<&Warning> = loaded
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::SkippedKey)
        .collect();
    assert_eq!(skipped.len(), 2);
    assert_eq!(
        skipped[0].location.map(|l| (l.line, l.column)),
        Some((4, 8))
    );
    assert_eq!(
        skipped[0].message,
        "key file `keys/c.jwks`: key 0 (`h1`) skipped: only OKP Ed25519, EC P-256, EC P-384 and RSA keys are used (`kty` `oct`, `crv` ``)"
    );
    assert_eq!(loaded.pack.domain("c.example").unwrap().keys.len(), 1);

    // nothing usable at all: a warning says every token will fail
    pack.file(
        "keys/c.jwks",
        r#"{"keys":[{"kty":"oct","kid":"h1","k":"c2VjcmV0"}]}"#,
    );
    let loaded = pack.loaded();
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::NoUsableKeys));
}

/// An RSA or EC key custody verifies but whose material is unusable spoils its file (DESIGN.md,
/// "Algorithms"), located at the `keys` line that names the file.
#[test]
fn unusable_rsa_and_ec_keys_are_load_errors() {
    let pack = TempPack::minimal();
    pack.file(
        "keys/c.jwks",
        r#"{"keys":[{"kty":"RSA","kid":"r1","n":"AQAB","e":"AQAB"}]}"#,
    );
    assert_eq!(
        pack.one_error(),
        (
            LoadErrorKind::KeySet,
            "c.trust:4:8: key file `keys/c.jwks`: key `r1`: RSA modulus of 17 bits, outside 2048 to 8192".into()
        )
    );
    pack.file(
        "keys/c.jwks",
        r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"e1","x":"AA","y":"AA"}]}"#,
    );
    assert_eq!(
        pack.one_error(),
        (
            LoadErrorKind::KeySet,
            "c.trust:4:8: key file `keys/c.jwks`: key `e1`: `x` and `y` of a P-256 key are 32 bytes each".into()
        )
    );
}

#[test]
fn oversized_files() {
    let mut pack = TempPack::minimal();
    pack.limits.pack_file_bytes = 200;
    pack.file(
        "keys/c.jwks",
        &format!("{}{}", jwks(&[("c1", 3)]), " ".repeat(200)),
    );
    assert_eq!(
        pack.one_error(),
        (
            LoadErrorKind::TooLarge,
            "c.trust:4:8: key file `keys/c.jwks` is larger than 200 bytes".into()
        )
    );
    pack.file("big.trust", &"#".repeat(201));
    let errors = pack.errors();
    assert!(
        errors.contains(&(
            LoadErrorKind::TooLarge,
            "big.trust: trust file is larger than 200 bytes".into()
        )),
        "{errors:?}"
    );
}

#[test]
fn trust_file_not_utf8() {
    let pack = TempPack::minimal();
    pack.bytes("x.trust", b"# ok\n  \xff\xfe");
    assert_eq!(
        pack.one_error(),
        (
            LoadErrorKind::Io,
            "x.trust:2:3: file is not valid UTF-8".into()
        )
    );
}

// ---- collecting -------------------------------------------------------------------------

#[test]
fn every_problem_is_listed_sorted_by_file_and_line() {
    let pack = TempPack::new();
    pack.file(
        "a.trust",
        "local \"c.example\"\ndomain \"c.example\" {\n  keys \"keys/missing.jwks\"\n}\nchain {\n  max_depth 99\n  clock_skew 5m\n}\n",
    )
    .file(
        "b.trust",
        "domain \"B.example\" { issuer \"i\" keys \"k\" }\nfederate \"c.example\" -> \"c.example\" { scopes [\"x\"] }\nfederate \"c.example\" -> \"d.example\" { scopes [\"x\"] }\n",
    )
    .file("p.cedar", "permit (principal, action, resource) when { context.x ");
    let got: Vec<(LoadErrorKind, String)> = pack
        .errors()
        .into_iter()
        .map(|(k, m)| (k, m.split(": ").next().unwrap().to_owned()))
        .collect();
    assert_eq!(
        got,
        [
            (LoadErrorKind::IncompleteDomain, "a.trust:2:8".to_owned()),
            (LoadErrorKind::Io, "a.trust:3:8".to_owned()),
            (LoadErrorKind::OutOfRange, "a.trust:6:13".to_owned()),
            (LoadErrorKind::OutOfRange, "a.trust:7:14".to_owned()),
            (LoadErrorKind::InvalidTrustDomain, "b.trust:1:8".to_owned()),
            (LoadErrorKind::SelfFederation, "b.trust:2:25".to_owned()),
            (LoadErrorKind::UndeclaredDomain, "b.trust:3:25".to_owned()),
            (LoadErrorKind::CedarSyntax, "p.cedar:1:54".to_owned()),
        ]
    );
}

#[test]
fn a_syntax_error_does_not_add_noise() {
    // `local` is in the broken text: no "missing local" or "undeclared" on top
    let pack = TempPack::new();
    pack.file(
        "a.trust",
        "locl \"c.example\"\nfederate \"a.example\" -> \"c.example\" { scopes [] }",
    );
    let errors = pack.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, LoadErrorKind::UnknownKeyword);
    // nor does an invalid local name
    let pack = TempPack::new();
    pack.file("a.trust", "local \"C.example\"");
    assert_eq!(pack.one_error().0, LoadErrorKind::InvalidTrustDomain);
}

// ---- Cedar -------------------------------------------------------------------------------

const SCHEMA: &str = "entity User;\nentity Agent;\nentity Resource;\naction \"orders:read\" appliesTo {\n  principal: [Agent, User],\n  resource: [Resource],\n  context: { depth: Long },\n};\n";

fn cedar_pack() -> TempPack {
    let pack = TempPack::minimal();
    pack.file("z.trust", "chain { require_sender_binding true }");
    pack
}

#[test]
fn policy_ids_are_annotations_or_file_positions() {
    let pack = cedar_pack();
    pack.file("a.cedar", "permit (principal, action, resource);\n@id(\"named\")\nforbid (principal, action, resource) when { context.depth > 3 };\npermit (principal, action, resource);\n")
        .file("b.cedar", "// nothing but a comment\n");
    let loaded = pack.loaded();
    let cedar = loaded.pack.cedar.as_ref().unwrap();
    let mut ids: Vec<String> = cedar
        .policies
        .policies()
        .map(|p| p.id().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a.0", "a.2", "named"]);
    assert!(cedar.schema.is_none());
    assert!(cedar.entities.iter().next().is_none());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // an empty .cedar file still means "Cedar decides" (and denies everything)
    let pack = cedar_pack();
    pack.file("only.cedar", "");
    assert!(pack.loaded().pack.cedar.unwrap().policies.is_empty());
}

#[test]
fn cedar_syntax_errors_are_located() {
    let pack = cedar_pack();
    pack.file(
        "a.cedar",
        "permit (principal, action, resource);\n\npermit (principal, action, resourze);\n",
    );
    let (kind, msg) = pack.one_error();
    assert_eq!(kind, LoadErrorKind::CedarSyntax);
    assert!(msg.starts_with("a.cedar:3:"), "{msg}");
    // several errors in one file, and errors in two files
    pack.file(
        "b.cedar",
        "permit (principal, action, resource) when { 1 + };\n",
    );
    let errors = pack.errors();
    assert!(errors.len() >= 2, "{errors:?}");
    assert!(errors.iter().all(|(k, _)| *k == LoadErrorKind::CedarSyntax));
    assert!(
        errors.iter().any(|(_, m)| m.starts_with("b.cedar:1:")),
        "{errors:?}"
    );
}

#[test]
fn cedar_templates_are_refused() {
    let pack = cedar_pack();
    pack.file("a.cedar", "permit (principal, action, resource);\n\npermit (principal == ?principal, action, resource);\n");
    assert_eq!(
        pack.one_error(),
        (
            LoadErrorKind::CedarTemplate,
            "a.cedar:3:1: templates are not supported: write static policies".into()
        )
    );
}

#[test]
fn duplicate_policy_ids() {
    let pack = cedar_pack();
    pack.file("a.cedar", "@id(\"p\")\npermit (principal, action, resource);\n")
        .file("b.cedar", "permit (principal, action, resource);\n@id(\"p\")\nforbid (principal, action, resource);\n");
    let (kind, msg) = pack.one_error();
    assert_eq!(kind, LoadErrorKind::DuplicatePolicyId);
    assert!(
        msg.starts_with("b.cedar:2:1: duplicate policy id `p` (first at "),
        "{msg}"
    );
    assert!(msg.ends_with("a.cedar:1:1)"), "{msg}");
    // a generated id can collide with an annotation too
    let pack = cedar_pack();
    pack.file("a.cedar", "permit (principal, action, resource);\n")
        .file(
            "b.cedar",
            "@id(\"a.0\")\npermit (principal, action, resource);\n",
        );
    assert_eq!(pack.one_error().0, LoadErrorKind::DuplicatePolicyId);
}

#[test]
fn too_many_policies() {
    let mut pack = cedar_pack();
    pack.limits.policies = 2;
    pack.file(
        "a.cedar",
        &"permit (principal, action, resource);\n".repeat(3),
    );
    assert_eq!(
        pack.one_error(),
        (
            LoadErrorKind::TooManyPolicies,
            "a.cedar:3:1: more than 2 Cedar policies in the pack".into()
        )
    );
}

#[test]
fn strict_validation_against_the_schema() {
    let pack = cedar_pack();
    pack.file("schema.cedarschema", SCHEMA)
        .file("a.cedar", "permit (principal is Agent, action == Action::\"orders:read\", resource)\nwhen { context.depth < 3 };\n")
        .file("b.cedar", "// second file\npermit (principal, action == Action::\"orders:read\", resource)\nwhen { context.depth == \"deep\" };\n\npermit (principal is Robot, action, resource);\n");
    let errors = pack.errors();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors
        .iter()
        .all(|(k, _)| *k == LoadErrorKind::CedarValidation));
    assert!(errors[0].1.starts_with("b.cedar:3:"), "{errors:?}");
    assert!(errors[0].1.contains("policy `b.0`"), "{errors:?}");
    assert!(errors[1].1.starts_with("b.cedar:5:"), "{errors:?}");
    assert!(errors[1].1.contains("Robot"), "{errors:?}");

    // valid policies load, with the schema and its action entities
    pack.file("b.cedar", "");
    let loaded = pack.loaded();
    let cedar = loaded.pack.cedar.unwrap();
    assert!(cedar.schema.is_some());
    assert_eq!(cedar.entities.iter().count(), 1); // Action::"orders:read"
}

#[test]
fn schema_problems() {
    let pack = cedar_pack();
    pack.file("a.cedar", "permit (principal, action, resource);")
        .file("s.cedarschema", "entity User;\nentity Agent in [Nope];\n");
    let (kind, msg) = pack.one_error();
    assert_eq!(kind, LoadErrorKind::CedarSchema);
    assert!(msg.starts_with("s.cedarschema:"), "{msg}");

    pack.file("s.cedarschema", "entity User\nentity Agent;\n");
    let (kind, msg) = pack.one_error();
    assert_eq!(kind, LoadErrorKind::CedarSchema);
    assert!(msg.starts_with("s.cedarschema:2:1: "), "{msg}");

    pack.file("s.cedarschema", SCHEMA)
        .file("t.cedarschema", SCHEMA);
    let (kind, msg) = pack.one_error();
    assert_eq!(kind, LoadErrorKind::PackLayout);
    assert!(
        msg.ends_with("more than one `*.cedarschema` file: `s.cedarschema`, `t.cedarschema`"),
        "{msg}"
    );
}

#[test]
fn entities_json() {
    let pack = cedar_pack();
    pack.file("a.cedar", "permit (principal, action, resource);")
        .file("entities.json", r#"[{"uid": {"type": "Agent", "id": "spiffe://a.example/bob"}, "attrs": {"level": 3}, "parents": []}]"#);
    let cedar = pack.loaded().pack.cedar.unwrap();
    assert_eq!(cedar.entities.iter().count(), 1);

    for bad in [
        "[",
        r#"[{"uid": {"type": "Agent", "id": "x"}, "uid": {"type": "Agent", "id": "y"}, "attrs": {}, "parents": []}]"#,
        r#"[{"uid": {"type": "Agent"}, "attrs": {}, "parents": []}]"#,
        r#"{"not": "a list"}"#,
    ] {
        pack.file("entities.json", bad);
        let (kind, msg) = pack.one_error();
        assert_eq!(kind, LoadErrorKind::CedarEntities, "{msg}");
        assert!(msg.starts_with("entities.json: "), "{msg}");
    }

    // with a schema, entities must conform
    pack.file("s.cedarschema", SCHEMA).file(
        "entities.json",
        r#"[{"uid": {"type": "Agent", "id": "x"}, "attrs": {"level": 3}, "parents": []}]"#,
    );
    assert_eq!(pack.one_error().0, LoadErrorKind::CedarEntities);
}

#[test]
fn cedar_files_without_policies_are_unused() {
    let pack = cedar_pack();
    pack.file("s.cedarschema", SCHEMA)
        .file("entities.json", "[]");
    let loaded = pack.loaded();
    assert!(loaded.pack.cedar.is_none());
    let kinds: Vec<WarningKind> = loaded.warnings.iter().map(|w| w.kind).collect();
    assert_eq!(
        kinds,
        [WarningKind::UnusedCedarFile, WarningKind::UnusedCedarFile]
    );
    // and are still checked
    pack.file("s.cedarschema", "entity");
    assert_eq!(pack.one_error().0, LoadErrorKind::CedarSchema);
}

/// With a schema every Cedar request is validated: a schema whose action context cannot hold
/// custody's own fields would refuse every call, so the loader says so.
#[test]
fn a_schema_that_cannot_hold_custodys_context_is_warned() {
    let pack = cedar_pack();
    pack.file("s.cedarschema", SCHEMA)
        .file("a.cedar", "permit (principal, action, resource);\n");
    let loaded = pack.loaded();
    let msgs: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("action `orders:read`'s context cannot hold")
                && m.contains("is not declared in the schema")),
        "{msgs:?}"
    );
    let demo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/demo/demo.cedarschema"
    ))
    .unwrap();
    pack.file("s.cedarschema", &demo);
    let loaded = pack.loaded();
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|w| w.to_string().contains("cannot hold")),
        "{:?}",
        loaded.warnings
    );
}
