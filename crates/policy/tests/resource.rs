//! The `resource` block (RFC 9728 protected resource metadata): what it loads to, the metadata
//! URL and document it gives, and its located load errors.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use custody_jose::Limits;
use custody_policy::{parse_trust, LoadErrorKind, PolicyPack, ProtectedResource};

const KEYS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"c1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
const LOCAL: &str = "local \"c.example\"\ndomain \"c.example\" {\n  issuer \"https://c.example\"\n  keys \"c.jwks\"\n}\n";

fn load(
    files: &[(&str, &str)],
) -> (
    tempfile::TempDir,
    Result<custody_policy::Loaded, Vec<custody_policy::LoadError>>,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.jwks"), KEYS).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let loaded = PolicyPack::load(dir.path(), &Limits::default());
    (dir, loaded)
}

fn errors(block: &str) -> Vec<(LoadErrorKind, String)> {
    let (dir, loaded) = load(&[("pack.trust", &format!("{LOCAL}{block}"))]);
    let errs = loaded.err().unwrap_or_else(|| panic!("loaded:\n{block}"));
    let name = dir.path().join("pack.trust").display().to_string();
    errs.iter()
        .map(|e| (e.kind, e.to_string().replace(&name, "pack.trust")))
        .collect()
}

fn resource(id: &str) -> ProtectedResource {
    ProtectedResource {
        identifier: id.into(),
        authorization_servers: vec!["https://as.example".into()],
        scopes_supported: Vec::new(),
    }
}

#[test]
fn a_resource_block_loads_into_the_pack() {
    let block = "resource \"https://mcp.example.com/mcp\" {\n  authorization_servers [\"https://as.example\", \"http://127.0.0.1:9000/tenant\"]\n  scopes [\"tools/call:echo\"]\n  scopes [\"tools/list\"]\n}\n";
    let (_dir, loaded) = load(&[("pack.trust", &format!("{LOCAL}{block}"))]);
    let pack = loaded.unwrap().pack;
    let r = pack.resource.unwrap();
    assert_eq!(r.identifier, "https://mcp.example.com/mcp");
    assert_eq!(
        r.authorization_servers,
        ["https://as.example", "http://127.0.0.1:9000/tenant"]
    );
    assert_eq!(r.scopes_supported, ["tools/call:echo", "tools/list"]);
    // a pack without the block has none
    let (_dir, loaded) = load(&[("pack.trust", LOCAL)]);
    assert_eq!(loaded.unwrap().pack.resource, None);
}

#[test]
fn the_block_prints_and_parses_back_the_same() {
    let text = "resource \"https://h.example/a\" {\n  authorization_servers [\"https://as.example\"]\n  scopes [\"x\", \"y\"]\n}\n";
    let file = parse_trust(text, "p.trust".as_ref(), &Limits::default()).unwrap();
    assert_eq!(file.to_string(), text);
    let again = parse_trust(&file.to_string(), "p.trust".as_ref(), &Limits::default()).unwrap();
    assert_eq!(again, file);
}

#[test]
fn the_metadata_url_inserts_the_well_known_path_between_host_and_path() {
    // RFC 9728 §3.1, and its example: a terminating slash after the host is dropped
    for (id, url, path) in [
        (
            "https://resource.example.com/resource1",
            "https://resource.example.com/.well-known/oauth-protected-resource/resource1",
            "/.well-known/oauth-protected-resource/resource1",
        ),
        (
            "https://resource.example.com",
            "https://resource.example.com/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource",
        ),
        (
            "https://resource.example.com/",
            "https://resource.example.com/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource",
        ),
        (
            "http://127.0.0.1:8080/api/mcp",
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/api/mcp",
            "/.well-known/oauth-protected-resource/api/mcp",
        ),
    ] {
        let r = resource(id);
        assert_eq!(
            (r.metadata_url().as_str(), r.metadata_path().as_str()),
            (url, path),
            "{id}"
        );
    }
}

#[test]
fn the_metadata_document_says_what_the_block_says() {
    let mut r = resource("https://h.example/mcp");
    assert_eq!(
        r.metadata(),
        serde_json::json!({
            "resource": "https://h.example/mcp",
            "authorization_servers": ["https://as.example"],
            "bearer_methods_supported": ["header"],
        })
    );
    r.scopes_supported = vec!["a".into(), "b".into()];
    assert_eq!(
        r.metadata()["scopes_supported"],
        serde_json::json!(["a", "b"])
    );
}

#[test]
fn a_resource_that_cannot_be_served_is_a_located_load_error() {
    let servers = "  authorization_servers [\"https://as.example\"]\n";
    #[rustfmt::skip]
    let cases: Vec<(String, LoadErrorKind, &str)> = vec![
        (format!("resource \"http://mcp.example.com/mcp\" {{\n{servers}}}\n"), LoadErrorKind::Resource, "pack.trust:6:10: `resource` `http://mcp.example.com/mcp`: `http` is allowed only to a loopback address"),
        (format!("resource \"https://mcp.example.com/mcp?x=1\" {{\n{servers}}}\n"), LoadErrorKind::Resource, "a resource identifier with a query is refused"),
        (format!("resource \"https://mcp.example.com/mcp#top\" {{\n{servers}}}\n"), LoadErrorKind::Resource, "a URL with a fragment is refused"),
        (format!("resource \"https://u:p@mcp.example.com/\" {{\n{servers}}}\n"), LoadErrorKind::Resource, "credentials"),
        (format!("resource \"mcp.example.com\" {{\n{servers}}}\n"), LoadErrorKind::Resource, "not a URL"),
        (format!("resource \"https://m.example/a\tb\" {{\n{servers}}}\n"), LoadErrorKind::Resource, "printable ASCII without spaces"),
        ("resource \"https://m.example\" {\n  authorization_servers [\"https://as.example/\u{e9}\"]\n}\n".into(), LoadErrorKind::Resource, "printable ASCII without spaces"),
        ("resource \"https://mcp.example.com/mcp\" {\n}\n".into(), LoadErrorKind::Resource, "pack.trust:6:10: `resource` `https://mcp.example.com/mcp` has no `authorization_servers`"),
        ("resource \"https://m.example\" {\n  authorization_servers [\"ftp://as.example\"]\n}\n".into(), LoadErrorKind::Resource, "pack.trust:7:26: authorization server `ftp://as.example`: scheme `ftp` is not `https`"),
        ("resource \"https://m.example\" {\n  authorization_servers [\"https://as.example\", \"https://as.example\"]\n}\n".into(), LoadErrorKind::Resource, "pack.trust:7:48: authorization server `https://as.example`: listed twice"),
        ("resource \"https://m.example\" {\n  authorization_servers [\"https://as.example?t=1\"]\n}\n".into(), LoadErrorKind::Resource, "an issuer has no query"),
        (format!("resource \"https://m.example\" {{\n{servers}  scopes [\"a\", \"a\"]\n}}\n"), LoadErrorKind::Resource, "pack.trust:8:16: scope `a` of `resource`: listed twice"),
        (format!("resource \"https://m.example\" {{\n{servers}  scopes [\"two words\"]\n}}\n"), LoadErrorKind::Resource, "scope `two words` of `resource`: not a scope token"),
        (format!("resource \"https://m.example\" {{\n{servers}  scopes [\"\"]\n}}\n"), LoadErrorKind::Resource, "a scope must not be empty"),
        (format!("resource \"https://a.example\" {{\n{servers}}}\nresource \"https://b.example\" {{\n{servers}}}\n"), LoadErrorKind::Resource, "pack.trust:9:10: a second `resource` block (first at "),
        ("resource \"https://m.example\" {\n  audience \"x\"\n}\n".into(), LoadErrorKind::UnknownKeyword, "pack.trust:7:3: unknown keyword `audience`: expected `}`, `scopes` or `authorization_servers`"),
    ];
    for (block, kind, text) in cases {
        let errs = errors(&block);
        assert!(
            errs.iter()
                .any(|(k, shown)| *k == kind && shown.contains(text)),
            "{block}\nwanted {kind:?} `{text}`, got {errs:#?}"
        );
    }
}

#[test]
fn two_files_with_a_resource_each_are_refused() {
    let block =
        "resource \"https://m.example\" {\n  authorization_servers [\"https://as.example\"]\n}\n";
    let (_dir, loaded) = load(&[("a.trust", &format!("{LOCAL}{block}")), ("b.trust", block)]);
    let errs = loaded.err().unwrap();
    assert!(
        errs.iter().any(|e| e.kind == LoadErrorKind::Resource
            && e.message.contains("a second `resource` block")),
        "{errs:?}"
    );
}
