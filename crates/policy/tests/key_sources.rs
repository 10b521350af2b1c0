//! Remote key sources in the trust language: `jwks_uri`, `discovery`, `spiffe_bundle`,
//! `refresh`, `ca` and `chain { max_key_age }`, and the load errors DESIGN.md gives them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::path::Path;

use custody_jose::Limits;
use custody_policy::{LoadErrorKind, PolicyPack, SourceKind};

const KEYS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"c1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn pack_with(
    trust: &str,
) -> (
    tempfile::TempDir,
    Result<custody_policy::Loaded, Vec<custody_policy::LoadError>>,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.jwks"), KEYS).unwrap();
    std::fs::write(dir.path().join("ca.pem"), CA).unwrap();
    std::fs::write(dir.path().join("not-ca.pem"), "hello").unwrap();
    std::fs::write(dir.path().join("pack.trust"), trust).unwrap();
    let loaded = PolicyPack::load(dir.path(), &Limits::default());
    (dir, loaded)
}

const LOCAL: &str = "local \"c.example\"\ndomain \"c.example\" {\n  issuer \"https://c.example\"\n  keys \"c.jwks\"\n}\n";

fn errors(domain_block: &str) -> Vec<(LoadErrorKind, String)> {
    let (dir, loaded) = pack_with(&format!("{LOCAL}{domain_block}"));
    let errs = loaded
        .err()
        .unwrap_or_else(|| panic!("loaded:\n{domain_block}"));
    errs.iter()
        .map(|e| {
            let shown = e.to_string();
            let name = dir.path().join("pack.trust");
            (
                e.kind,
                shown.replace(&name.display().to_string(), "pack.trust"),
            )
        })
        .collect()
}

#[test]
fn a_domain_may_take_its_keys_from_remote_sources_only() {
    let trust = format!(
        "{LOCAL}domain \"idp.example\" {{\n  issuer \"https://idp.example\"\n  discovery \"https://idp.example\"\n  jwks_uri \"https://idp.example/other.jwks\"\n  spiffe_bundle \"http://127.0.0.1:8443/bundle\"\n  refresh 1m\n  ca \"ca.pem\"\n}}\nchain {{\n  max_key_age 2h\n}}\n"
    );
    let (dir, loaded) = pack_with(&trust);
    let pack = loaded.unwrap().pack;
    let idp = pack.domain("idp.example").unwrap();
    assert!(idp.keys.is_empty() && idp.key_files.is_empty());
    let kinds: Vec<(SourceKind, &str)> = idp
        .sources
        .iter()
        .map(|s| (s.kind, s.url.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (SourceKind::Discovery, "https://idp.example"),
            (SourceKind::JwksUri, "https://idp.example/other.jwks"),
            (SourceKind::SpiffeBundle, "http://127.0.0.1:8443/bundle"),
        ]
    );
    assert_eq!(idp.refresh, 60);
    let ca = idp.ca.as_ref().unwrap();
    assert_eq!(ca.path, dir.path().join("ca.pem"));
    assert_eq!(ca.pem, CA.as_bytes());
    assert_eq!(pack.chain.max_key_age, 7200);
    // defaults
    let c = pack.domain("c.example").unwrap();
    assert!(c.sources.is_empty() && c.ca.is_none());
    assert_eq!(c.refresh, 300);
    // the ca file is part of the pack's version: changing it changes the version
    std::fs::write(dir.path().join("ca.pem"), format!("{CA}{CA}")).unwrap();
    let again = PolicyPack::load(dir.path(), &Limits::default())
        .unwrap()
        .pack;
    assert_ne!(again.version, pack.version);
    assert_eq!(
        PolicyPack::load(Path::new(dir.path()), &Limits::default())
            .unwrap()
            .pack
            .chain
            .max_key_age,
        7200
    );
}

#[test]
fn unusable_sources_are_located_load_errors() {
    let cases: [(&str, LoadErrorKind, &str); 14] = [
        ("  jwks_uri \"http://idp.example/jwks\"\n", LoadErrorKind::KeySource, "pack.trust:8:12: `jwks_uri` `http://idp.example/jwks`: `http` is allowed only to a loopback address"),
        ("  spiffe_bundle \"http://10.1.2.3/b\"\n", LoadErrorKind::KeySource, "pack.trust:8:17: `spiffe_bundle`"),
        ("  jwks_uri \"ftp://idp.example/jwks\"\n", LoadErrorKind::KeySource, "scheme `ftp` is not `https`"),
        ("  jwks_uri \"https://u:p@idp.example/jwks\"\n", LoadErrorKind::KeySource, "credentials"),
        ("  jwks_uri \"not a url\"\n", LoadErrorKind::KeySource, "not a URL"),
        ("  discovery \"https://other.example\"\n", LoadErrorKind::KeySource, "pack.trust:8:13: `discovery` `https://other.example` is not an `issuer` of domain `idp.example`"),
        ("  jwks_uri \"https://idp.example/k\"\n  jwks_uri \"https://idp.example/k\"\n", LoadErrorKind::KeySource, "pack.trust:9:12: `jwks_uri` `https://idp.example/k` is listed twice"),
        ("  jwks_uri \"https://idp.example/k\"\n  refresh 29s\n", LoadErrorKind::OutOfRange, "pack.trust:9:11: `refresh` must be 30s to 24h, not `29s`"),
        ("  jwks_uri \"https://idp.example/k\"\n  refresh 25h\n", LoadErrorKind::OutOfRange, "`refresh` must be 30s to 24h, not `25h`"),
        ("  jwks_uri \"https://idp.example/k\"\n  refresh 1m\n  refresh 2m\n", LoadErrorKind::KeySource, "pack.trust:10:11: `refresh` is set twice"),
        ("  keys \"c.jwks\"\n  refresh 1m\n", LoadErrorKind::KeySource, "`refresh` applies to remote key sources, and domain `idp.example` has none"),
        ("  jwks_uri \"https://idp.example/k\"\n  ca \"not-ca.pem\"\n", LoadErrorKind::KeySource, "pack.trust:9:6: ca file `not-ca.pem` holds no PEM certificate"),
        ("  jwks_uri \"https://idp.example/k\"\n  ca \"missing.pem\"\n", LoadErrorKind::Io, "pack.trust:9:6: cannot read ca file `missing.pem`: not found"),
        ("", LoadErrorKind::IncompleteDomain, "has no `keys` and no remote key source"),
    ];
    for (lines, kind, text) in cases {
        let block =
            format!("domain \"idp.example\" {{\n  issuer \"https://idp.example\"\n{lines}}}\n");
        let errs = errors(&block);
        assert!(
            errs.iter()
                .any(|(k, shown)| *k == kind && shown.contains(text)),
            "{block}\nwanted {kind:?} `{text}`, got {errs:#?}"
        );
    }
    for age in ["29s", "169h"] {
        let errs = errors(&format!("chain {{\n  max_key_age {age}\n}}\n"));
        assert!(
            errs.iter().any(|(k, s)| *k == LoadErrorKind::OutOfRange
                && s.contains("`max_key_age` must be 30s to 168h")),
            "{errs:?}"
        );
    }
}
