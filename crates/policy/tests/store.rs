//! `store "redis://…"` and the `chain` settings of a fleet (`one_time_tokens`,
//! `fail_open_replay`): what they load to and their located load errors.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use custody_jose::Limits;
use custody_policy::{parse_trust, LoadErrorKind, PolicyPack};

const KEYS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"c1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
const LOCAL: &str = "local \"c.example\"\ndomain \"c.example\" {\n  issuer \"https://c.example\"\n  keys \"c.jwks\"\n}\n";

fn load(text: &str) -> Result<custody_policy::Loaded, Vec<(LoadErrorKind, String)>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.jwks"), KEYS).unwrap();
    std::fs::write(dir.path().join("pack.trust"), format!("{LOCAL}{text}")).unwrap();
    let name = dir.path().join("pack.trust").display().to_string();
    PolicyPack::load(dir.path(), &Limits::default()).map_err(|errs| {
        errs.iter()
            .map(|e| (e.kind, e.to_string().replace(&name, "pack.trust")))
            .collect()
    })
}

#[test]
fn a_store_and_the_fleet_settings_load() {
    let pack = load("store \"redis://127.0.0.1:6379/2\"\nchain {\n  one_time_tokens true\n  fail_open_replay true\n}\n")
        .unwrap()
        .pack;
    assert_eq!(pack.store.as_deref(), Some("redis://127.0.0.1:6379/2"));
    assert!(pack.chain.one_time_tokens && pack.chain.fail_open_replay);
    let plain = load("").unwrap().pack;
    assert_eq!(plain.store, None);
    assert!(!plain.chain.one_time_tokens && !plain.chain.fail_open_replay);
    let text = "store \"rediss://redis.internal\"\n\nchain {\n  one_time_tokens false\n  fail_open_replay true\n}\n";
    let file = parse_trust(text, "p.trust".as_ref(), &Limits::default()).unwrap();
    assert_eq!(file.to_string(), text);
}

#[test]
fn a_store_that_cannot_be_used_is_a_located_load_error() {
    for (text, kind, want) in [
        ("store \"http://127.0.0.1:6379\"\n", LoadErrorKind::Store, "pack.trust:6:7: `store` `http://127.0.0.1:6379`: scheme `http` is not `redis` or `rediss`"),
        ("store \"redis://\"\n", LoadErrorKind::Store, "a store URL needs a host"),
        ("store \"redis://h/x\"\n", LoadErrorKind::Store, "`/x` is not a database number"),
        ("store \"redis://h/0?timeout=1\"\n", LoadErrorKind::Store, "no query or fragment"),
        ("store \"redis://a\"\nstore \"redis://b\"\n", LoadErrorKind::Store, "pack.trust:7:7: a second `store` (first at "),
        ("chain {\n  one_time_tokens yes\n}\n", LoadErrorKind::Syntax, "pack.trust:7:19: expected `true` or `false`"),
        ("chain {\n  fail_open_replay true\n  fail_open_replay false\n}\n", LoadErrorKind::RepeatedChain, "`fail_open_replay` is set twice"),
    ] {
        let errs = load(text).err().unwrap_or_else(|| panic!("loaded: {text}"));
        assert!(
            errs.iter().any(|(k, s)| *k == kind && s.contains(want)),
            "{text}\nwanted {kind:?} `{want}`, got {errs:#?}"
        );
    }
}
