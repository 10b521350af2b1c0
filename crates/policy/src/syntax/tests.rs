use std::time::{Duration as StdDuration, Instant};

use proptest::prelude::*;

use super::*;
use crate::ast::{Item, Setting, SourceDecl};
use crate::model::SourceKind;
use crate::{parse_trust, LoadError};

const OK_DOMAIN: &str =
    "domain \"a.example\" { issuer \"https://as.a.example\" keys \"a.jwks\" }\n";

fn parse(src: &str) -> Result<TrustFile, Vec<LoadError>> {
    parse_trust(src, Path::new("t.trust"), &Limits::default())
}

fn ok(src: &str) -> TrustFile {
    match parse(src) {
        Ok(f) => f,
        Err(e) => panic!("{src:?}: {}", render(&e)),
    }
}

fn render(errors: &[LoadError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The only error of `src`: its kind and `line:col: message`.
fn one_error(src: &str) -> (LoadErrorKind, String) {
    let errors = parse(src).err().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{src:?}: {}", render(&errors));
    let e = &errors[0];
    assert_eq!(e.path, Path::new("t.trust"));
    let at = e
        .location
        .map(|l| format!("{}:{}: ", l.line, l.column))
        .unwrap_or_default();
    (e.kind, format!("{at}{}", e.message))
}

fn kinds(src: &str) -> Vec<LoadErrorKind> {
    parse(src)
        .err()
        .unwrap_or_default()
        .iter()
        .map(|e| e.kind)
        .collect()
}

fn settings(src: &str) -> Vec<Setting> {
    let file = ok(src);
    let Some(Item::Chain(c)) = file.items.first().map(|i| &i.node) else {
        panic!("no chain block")
    };
    c.settings.iter().map(|s| s.node).collect()
}

// ---- the language, accepted -------------------------------------------------------------

#[test]
fn parses_the_design_example() {
    let src = r#"
# comments start with # or //
local "c.example"                      # this service's trust domain

domain "a.example" {
  issuer "https://as.a.example"        # one or more
  keys "keys/a.jwks"                   # one or more
}

federate "a.example" -> "b.example" {  # actors of a may delegate to actors/services of b
  scopes ["orders:read", "orders:write"]   # required; ["*"] means any
}

chain {                                # all optional; defaults shown
  max_depth 5
  max_domains 3
  clock_skew 30s                       # durations: s, m, h
  max_lifetime 1h
  require_sender_binding false
}
"#;
    let file = ok(src);
    assert_eq!(file.items.len(), 4);
    let Item::Domain(d) = &file.items[1].node else {
        panic!()
    };
    assert_eq!(d.name.node.as_str(), "a.example");
    assert_eq!(d.issuers[0].node, "https://as.a.example");
    assert_eq!(d.keys[0].node, "keys/a.jwks");
    let Item::Federate(r) = &file.items[2].node else {
        panic!()
    };
    assert_eq!(
        (r.from.node.as_str(), r.to.node.as_str()),
        ("a.example", "b.example")
    );
    let scopes: Vec<&str> = r.scopes.iter().map(|s| s.node.as_str()).collect();
    assert_eq!(scopes, ["orders:read", "orders:write"]);
    let Item::Chain(c) = &file.items[3].node else {
        panic!()
    };
    let got: Vec<Setting> = c.settings.iter().map(|s| s.node).collect();
    assert_eq!(
        got,
        [
            Setting::MaxDepth(5),
            Setting::MaxDomains(3),
            Setting::ClockSkew(30),
            Setting::MaxLifetime(3600),
            Setting::RequireSenderBinding(false),
        ]
    );
}

#[test]
fn spans_point_at_items_and_names() {
    let file = ok("\n  local \"c.example\"\ndomain \"c.example\" {\n issuer \"i\"\n keys \"k\" }");
    let local = &file.items[0];
    assert_eq!(
        (local.span.location.line, local.span.location.column),
        (2, 3)
    );
    let Item::Local(td) = &local.node else {
        panic!()
    };
    assert_eq!((td.span.location.line, td.span.location.column), (2, 9));
    assert_eq!(td.span.end - td.span.start, "\"c.example\"".len());
    let Item::Domain(d) = &file.items[1].node else {
        panic!()
    };
    assert_eq!(
        (
            d.issuers[0].span.location.line,
            d.issuers[0].span.location.column
        ),
        (4, 9)
    );
    assert_eq!(
        (d.keys[0].span.location.line, d.keys[0].span.location.column),
        (5, 7)
    );
}

#[test]
fn comments_everywhere() {
    let src = "# head\n// also\nlocal \"c.example\" # trailing\ndomain \"c.example\" { // open\n  # inside\n  issuer \"https://x.example/#not-a-comment\" // after\n  keys \"k//not-a-comment\"\n} # end\nchain { # c\n max_depth 2 // d\n }\n# last line without newline";
    let file = ok(src);
    assert_eq!(file.items.len(), 3);
    let Item::Domain(d) = &file.items[1].node else {
        panic!()
    };
    assert_eq!(d.issuers[0].node, "https://x.example/#not-a-comment");
    assert_eq!(d.keys[0].node, "k//not-a-comment");
    // a comment runs to LF: a lone CR does not end it
    assert!(ok("# a\rlocal \"x\"\n").items.is_empty());
}

#[test]
fn layout_is_free() {
    // one line, no optional spaces, CRLF line ends
    let one_line = ok("local \"c.example\" domain \"c.example\"{issuer\"i\" keys\"k\"}chain{max_depth 2 clock_skew 0s}");
    assert_eq!(one_line.items.len(), 3);
    let crlf = ok(
        "local \"c.example\"\r\ndomain \"c.example\" {\r\n  issuer \"i\"\r\n  keys \"k\"\r\n}\r\n",
    );
    assert_eq!(crlf.items.len(), 2);
    assert!(ok("").items.is_empty());
    assert!(ok("  # only a comment\n\n").items.is_empty());
}

#[test]
fn durations_and_booleans() {
    assert_eq!(
        settings("chain { clock_skew 2m max_lifetime 90s }"),
        [Setting::ClockSkew(120), Setting::MaxLifetime(90)]
    );
    assert_eq!(
        settings("chain { max_lifetime 24h }"),
        [Setting::MaxLifetime(86_400)]
    );
    assert_eq!(settings("chain { clock_skew 0s }"), [Setting::ClockSkew(0)]);
    assert_eq!(
        settings("chain { clock_skew 120s }"),
        [Setting::ClockSkew(120)]
    );
    assert_eq!(
        settings("chain { require_sender_binding true }"),
        [Setting::RequireSenderBinding(true)]
    );
    assert_eq!(
        settings("chain { max_depth 8 max_domains 16 }"),
        [Setting::MaxDepth(8), Setting::MaxDomains(16)]
    );
    assert_eq!(settings("chain { max_depth 007 }"), [Setting::MaxDepth(7)]);
}

#[test]
fn empty_scope_list_and_star_parse() {
    let file = ok("federate \"a.example\" -> \"b.example\" { scopes [] }\nfederate \"b.example\" -> \"a.example\" { scopes [\"*\"] }");
    let Item::Federate(r) = &file.items[0].node else {
        panic!()
    };
    assert!(r.scopes.is_empty());
    let Item::Federate(r) = &file.items[1].node else {
        panic!()
    };
    assert_eq!(r.scopes[0].node, "*");
}

// ---- syntax errors, in words and located -------------------------------------------------

#[test]
fn unknown_keywords_say_what_was_expected() {
    assert_eq!(
        one_error("local \"c.example\"\ndomian \"a\" {}"),
        (
            LoadErrorKind::UnknownKeyword,
            "2:1: unknown keyword `domian`: expected `local`, `domain`, `federate`, `chain`, `resource` or `store`"
                .into()
        )
    );
    assert_eq!(
        one_error("domain \"a.example\" {\n  isuer \"x\"\n}"),
        (
            LoadErrorKind::UnknownKeyword,
            "2:3: unknown keyword `isuer`: expected `}`, `issuer`, `keys`, `biscuit_keys`, `jwks_uri`, `discovery`, `spiffe_bundle`, `refresh` or `ca`".into()
        )
    );
    assert_eq!(
        one_error("chain {\n  max_hops 3\n}").0,
        LoadErrorKind::UnknownKeyword
    );
    let (_, msg) = one_error("chain { max_hops 3 }");
    assert!(
        msg.contains("`max_depth`") && msg.contains("`require_sender_binding`"),
        "{msg}"
    );
    // a keyword is a whole word
    assert_eq!(one_error("localx \"a\"").0, LoadErrorKind::UnknownKeyword);
    // a known keyword in the wrong place is a syntax error, not an unknown keyword
    assert_eq!(
        one_error("domain \"a.example\" { local \"x\" }"),
        (
            LoadErrorKind::Syntax,
            "1:22: expected `}`, `issuer`, `keys`, `biscuit_keys`, `jwks_uri`, `discovery`, `spiffe_bundle`, `refresh` or `ca`, found `local`".into()
        )
    );
}

#[test]
fn syntax_errors_are_located_and_worded() {
    let cases: &[(&str, &str)] = &[
        ("local", "1:6: expected a quoted string, found end of file"),
        ("local c.example", "1:7: expected a quoted string, found `c.example`"),
        ("local \"a\" }", "1:11: expected `local`, `domain`, `federate`, `chain`, `resource` or `store`, found `}`"),
        ("federate \"a\" \"b\" { scopes [] }", "1:14: expected `->`, found a string"),
        ("federate \"a\" -> \"b\" { }", "1:23: expected `scopes`, found `}`"),
        ("federate \"a\" -> \"b\" { scopes \"x\" }", "1:30: expected `[`, found a string"),
        ("federate \"a\" -> \"b\" { scopes [\"x\" \"y\"] }", "1:35: expected `]` or `,`, found a string"),
        ("federate \"a\" -> \"b\" { scopes [\"x\",] }", "1:35: expected a quoted string, found `]`"),
        ("chain { max_depth 5x }", "1:19: expected a whole number, found `5x`"),
        ("chain { max_depth -1 }", "1:19: expected a whole number, found `-1`"),
        ("chain { max_depth 1.5 }", "1:19: expected a whole number, found `1.5`"),
        ("chain { clock_skew abc }", "1:20: expected a duration such as `30s`, `5m` or `1h`, found `abc`"),
        ("chain { clock_skew 30 }", "1:22: a duration needs a unit right after the number: `s`, `m` or `h`"),
        ("chain { clock_skew 30sec }", "1:22: a duration needs a unit right after the number: `s`, `m` or `h`, not `sec`"),
        ("chain { clock_skew 30 s }", "1:22: a duration needs a unit right after the number: `s`, `m` or `h`"),
        ("chain { clock_skew 1d }", "1:21: a duration needs a unit right after the number: `s`, `m` or `h`, not `d`"),
        ("chain { require_sender_binding yes }", "1:32: expected `true` or `false`, found `yes`"),
        ("chain { require_sender_binding True }", "1:32: expected `true` or `false`, found `True`"),
        ("chain { max_depth 5", "1:20: expected `}`, `max_depth`, `max_domains`, `clock_skew`, `max_lifetime`, `require_sender_binding`, `max_key_age`, `one_time_tokens` or `fail_open_replay`, found end of file"),
        ("domain \"a.example\" { issuer \"x\n\" }", "1:31: unterminated string: the closing `\"` must be on the same line"),
        ("domain \"a.example\" { issuer \"x", "1:31: unterminated string: the closing `\"` must be on the same line"),
        ("domain \"a.example\" { issuer \"x\\\"y\" }", "1:31: strings have no escapes: `\\` is not allowed in a string"),
        ("domain \"a.example\" { issuer 'x' }", "1:29: expected a quoted string, found `'`"),
        ("local \"a\" ;", "1:11: expected `local`, `domain`, `federate`, `chain`, `resource` or `store`, found `;`"),
    ];
    for (src, want) in cases {
        let (kind, got) = one_error(src);
        assert!(
            matches!(kind, LoadErrorKind::Syntax | LoadErrorKind::UnknownKeyword),
            "{src:?}: {kind:?}"
        );
        assert_eq!(&got, want, "{src:?}");
    }
}

#[test]
fn recovers_after_a_syntax_error() {
    let src = "domain \"a.example\" { isuer \"x\" }\nlocal c\ndomain \"b.example\" { issuer \"y\" keys \"k\" }\nchain { max_depth 0 }\nfederate \"b.example\" -> \"b.example\" { scopes [] }\n";
    let errors = parse(src).unwrap_err();
    let got: Vec<(usize, LoadErrorKind)> =
        errors.iter().map(|e| (e.line().unwrap(), e.kind)).collect();
    assert_eq!(
        got,
        [
            (1, LoadErrorKind::UnknownKeyword),
            (2, LoadErrorKind::Syntax),
            (4, LoadErrorKind::OutOfRange),
            (5, LoadErrorKind::SelfFederation),
        ],
        "{}",
        render(&errors)
    );
    // a missing `}` is reported where the next item starts, and that item still parses
    let errors = parse("domain \"a.example\" { issuer \"x\" keys \"k\"\ndomain \"a.example\" { issuer \"y\" keys \"k\" }").unwrap_err();
    let got: Vec<LoadErrorKind> = errors.iter().map(|e| e.kind).collect();
    assert_eq!(got, [LoadErrorKind::Syntax], "{}", render(&errors));
}

#[test]
fn syntax_errors_are_capped_per_file() {
    let src = "local x\n".repeat(100);
    assert_eq!(parse(&src).unwrap_err().len(), MAX_SYNTAX_ERRORS);
}

// ---- checks on names and numbers -------------------------------------------------------

#[test]
fn invalid_trust_domains() {
    assert_eq!(
        one_error("local \"A.example\""),
        (
            LoadErrorKind::InvalidTrustDomain,
            "1:7: invalid trust domain `A.example`: trust domain characters are limited to a-z 0-9 . - _".into()
        )
    );
    assert_eq!(
        one_error("domain \"spiffe://a.example\" { issuer \"i\" keys \"k\" }").0,
        LoadErrorKind::InvalidTrustDomain
    );
    assert_eq!(
        one_error("domain \"\" { issuer \"i\" keys \"k\" }").0,
        LoadErrorKind::InvalidTrustDomain
    );
    let long = format!("local \"{}\"", "a".repeat(256));
    assert_eq!(one_error(&long).0, LoadErrorKind::InvalidTrustDomain);
    // both names of a federate rule are checked
    let errors = parse("federate \"A\" -> \"b c\" { scopes [] }").unwrap_err();
    let cols: Vec<usize> = errors.iter().map(|e| e.column().unwrap()).collect();
    assert_eq!(cols, [10, 17], "{}", render(&errors));
}

#[test]
fn numbers_out_of_range() {
    let cases: &[(&str, &str)] = &[
        ("chain { max_depth 0 }", "1:19: `max_depth` must be 1 to 8, not `0`"),
        ("chain { max_depth 9 }", "1:19: `max_depth` must be 1 to 8, not `9`"),
        ("chain { max_depth 65 }", "1:19: `max_depth` must be 1 to 8, not `65`"),
        ("chain { max_domains 0 }", "1:21: `max_domains` must be 1 to 16, not `0`"),
        ("chain { max_domains 17 }", "1:21: `max_domains` must be 1 to 16, not `17`"),
        ("chain { max_domains 99999999999999999999999 }", "1:21: `max_domains` must be 1 to 16, not `99999999999999999999999`"),
        ("chain { clock_skew 121s }", "1:20: `clock_skew` is at most 120s (RFC 7519 leeway is a few minutes), not `121s`"),
        ("chain { clock_skew 3m }", "1:20: `clock_skew` is at most 120s (RFC 7519 leeway is a few minutes), not `3m`"),
        ("chain { clock_skew 99999999999999999999999h }", "1:20: `clock_skew` `99999999999999999999999h` overflows: durations are at most 2^63-1 seconds"),
        ("chain { max_lifetime 9223372036854775808s }", "1:22: `max_lifetime` `9223372036854775808s` overflows: durations are at most 2^63-1 seconds"),
        ("chain { max_lifetime 3000000000000000h }", "1:22: `max_lifetime` `3000000000000000h` overflows: durations are at most 2^63-1 seconds"),
    ];
    for (src, want) in cases {
        assert_eq!(
            one_error(src),
            (LoadErrorKind::OutOfRange, (*want).to_owned()),
            "{src:?}"
        );
    }
    assert_eq!(
        settings("chain { max_lifetime 9223372036854775807s }"),
        [Setting::MaxLifetime(i64::MAX as u64)]
    );
}

// ---- checks within one file --------------------------------------------------------------

#[test]
fn duplicates_and_repeats_in_one_file() {
    let cases: &[(&str, LoadErrorKind, &str)] = &[
        (
            "local \"a.example\"\nlocal \"a.example\"",
            LoadErrorKind::Local,
            "2:7: `local` is declared twice (first at t.trust:1:7)",
        ),
        (
            &format!("{OK_DOMAIN}{OK_DOMAIN}"),
            LoadErrorKind::DuplicateDomain,
            "2:8: domain `a.example` is declared twice (first at t.trust:1:8)",
        ),
        (
            "chain { max_depth 2 }\nchain { }",
            LoadErrorKind::RepeatedChain,
            "2:1: a second `chain` block (first at t.trust:1:1)",
        ),
        (
            "chain {\n max_depth 2\n max_depth 2\n}",
            LoadErrorKind::RepeatedChain,
            "3:2: `max_depth` is set twice in `chain` (first at t.trust:2:2)",
        ),
        (
            "federate \"a.example\" -> \"b.example\" { scopes [\"x\"] }\nfederate \"a.example\" -> \"b.example\" { scopes [\"y\"] }",
            LoadErrorKind::DuplicateFederation,
            "2:1: `federate` `a.example` -> `b.example` is declared twice (first at t.trust:1:1)",
        ),
        (
            "federate \"a.example\" -> \"a.example\" { scopes [\"x\"] }",
            LoadErrorKind::SelfFederation,
            "1:25: `federate` from `a.example` to itself: a domain needs no rule for its own actors",
        ),
        (
            "domain \"a.example\" { issuer \"i\" issuer \"i\" keys \"k\" }",
            LoadErrorKind::DuplicateIssuer,
            "1:40: issuer `i` is listed twice in domain `a.example`",
        ),
        (
            "domain \"a.example\" { issuer \"i\" keys \"k\" }\ndomain \"b.example\" { issuer \"i\" keys \"k\" }",
            LoadErrorKind::DuplicateIssuer,
            "2:29: issuer `i` is already declared by domain `a.example` at t.trust:1:29",
        ),
        (
            "domain \"a.example\" { issuer \"i\" keys \"k\" keys \"k\" }",
            LoadErrorKind::DuplicateKeyFile,
            "1:47: key file `k` is listed twice in domain `a.example`",
        ),
        (
            "domain \"a.example\" { keys \"k\" }",
            LoadErrorKind::IncompleteDomain,
            "1:8: domain `a.example` has no `issuer`",
        ),
        (
            "domain \"a.example\" { issuer \"i\" }",
            LoadErrorKind::IncompleteDomain,
            "1:8: domain `a.example` has no `keys` and no remote key source (`jwks_uri`, `discovery`, `spiffe_bundle`)",
        ),
        (
            "domain \"a.example\" { issuer \"\" issuer \"i\" keys \"k\" }",
            LoadErrorKind::EmptyString,
            "1:29: issuer must not be empty",
        ),
        (
            "domain \"a.example\" { issuer \"i\" keys \"\" }",
            LoadErrorKind::EmptyString,
            "1:38: keys must not be empty",
        ),
        (
            "federate \"a.example\" -> \"b.example\" { scopes [\"x\", \"\"] }",
            LoadErrorKind::EmptyString,
            "1:52: a scope must not be empty",
        ),
    ];
    for (src, kind, want) in cases {
        assert_eq!(one_error(src), (*kind, (*want).to_owned()), "{src:?}");
    }
    assert_eq!(
        kinds("domain \"a.example\" { }"),
        [
            LoadErrorKind::IncompleteDomain,
            LoadErrorKind::IncompleteDomain
        ]
    );
}

#[test]
fn one_file_needs_no_local_and_may_name_other_files_domains() {
    // whole-pack checks are PolicyPack::load's
    ok("federate \"x.example\" -> \"y.example\" { scopes [\"a\"] }");
    ok("local \"elsewhere.example\"");
}

// ---- hostile input -----------------------------------------------------------------------

fn assert_fails_quickly(src: &str, limits: &Limits) -> Vec<LoadError> {
    let start = Instant::now();
    let result = parse_trust(src, Path::new("t.trust"), limits);
    assert!(
        start.elapsed() < StdDuration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    let errors = result.err().unwrap_or_default();
    assert!(!errors.is_empty());
    errors
}

#[test]
fn hostile_nesting() {
    let limits = Limits::default();
    let errors = assert_fails_quickly(&"{".repeat(1_000_000), &limits);
    assert_eq!(errors[0].kind, LoadErrorKind::TooComplex);
    assert_eq!(errors[0].column(), Some(9));
    let errors = assert_fails_quickly(&"[".repeat(100), &limits);
    assert_eq!(errors[0].kind, LoadErrorKind::TooComplex);
    // brackets inside strings and comments do not count
    ok("domain \"a.example\" { issuer \"{{{{{{{{{{[[[[[[[[[\" keys \"k\" } # {{{{{{{{{{{{\n// [[[[[[[[[[[[[");
    // unbalanced closers do not underflow
    assert_eq!(one_error("}}}}").0, LoadErrorKind::Syntax);
}

#[test]
fn hostile_size() {
    let limits = Limits {
        pack_file_bytes: 1000,
        ..Limits::default()
    };
    let errors = assert_fails_quickly(&" ".repeat(1001), &limits);
    assert_eq!(errors[0].kind, LoadErrorKind::TooLarge);
    assert_eq!(errors[0].location, None);
    assert_eq!(
        errors[0].to_string(),
        "t.trust: file is larger than 1000 bytes"
    );
}

#[test]
fn hostile_garbage() {
    let limits = Limits::default();
    // a megabyte of pseudo-random printable garbage
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let garbage: String = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b' ' + (x % 95) as u8)
        })
        .collect();
    assert_fails_quickly(&garbage, &limits);
    // the same with line breaks and keywords sprinkled in, so that recovery runs
    let lines: String = garbage
        .as_bytes()
        .chunks(50)
        .map(|c| format!("domain {}\n", String::from_utf8_lossy(c)))
        .collect();
    let errors = assert_fails_quickly(&lines, &limits);
    assert!(errors.len() <= MAX_SYNTAX_ERRORS + 1);
    // unterminated strings, one long and many
    assert_fails_quickly(&format!("local \"{}", "a".repeat(900_000)), &limits);
    assert_fails_quickly(&"local \"a\nlocal \"".repeat(50_000), &limits);
    // a megabyte of words
    assert_fails_quickly(&"word ".repeat(200_000), &limits);
    // one long line of many non-ASCII items: locating each must not scan the line
    let scopes = ",\"é\"".repeat(150_000);
    let src = format!("federate \"a.example\" -> \"a.example\" {{ scopes [\"é\"{scopes}] }} x");
    assert_fails_quickly(&src, &limits);
    // a long valid-looking but unclosed block
    let open_block = format!("domain \"a.example\" {{ {}", "issuer \"i\" ".repeat(90_000));
    assert_fails_quickly(&open_block, &limits);
}

#[test]
fn a_large_valid_file_parses() {
    let mut src = String::from("local \"a.example\"\n");
    for i in 0..10_000 {
        src.push_str(&format!(
            "domain \"d{i}.example\" {{ issuer \"https://as.d{i}.example\" keys \"k\" }}\n"
        ));
    }
    assert!(src.len() < Limits::default().pack_file_bytes);
    assert_eq!(ok(&src).items.len(), 10_001);
}

#[test]
fn dense_valid_input_fits_the_call_budget() {
    // the densest text for parser calls: scope lists of empty strings (about 8 calls a byte)
    let limits = Limits::default();
    let body = ",\"\"".repeat((limits.pack_file_bytes - 100) / 3);
    let src = format!("federate \"a.example\" -> \"b.example\" {{ scopes [\"\"{body}] }}");
    let errors = parse_trust(&src, Path::new("t.trust"), &limits).unwrap_err();
    // every error is about the empty scopes, none about the budget
    assert!(errors.iter().all(|e| e.kind == LoadErrorKind::EmptyString));
}

#[test]
fn durations_parse_exactly() {
    assert_eq!(parse_duration("0s"), Some(0));
    assert_eq!(parse_duration("5m"), Some(300));
    assert_eq!(parse_duration("2h"), Some(7200));
    assert_eq!(parse_duration("2d"), None);
    assert_eq!(parse_duration("s"), None);
    assert_eq!(parse_duration(""), None);
    assert_eq!(parse_duration("2562047788015216h"), None);
}

// ---- printer and round trip --------------------------------------------------------------

#[test]
fn prints_canonically() {
    let file = ok("local \"c.example\" domain \"c.example\" { keys \"k\" issuer \"i\" }\nfederate \"a.example\" -> \"c.example\" { scopes [\"x\", \"y\"] } chain { clock_skew 60s max_lifetime 5400s max_depth 3 require_sender_binding true }");
    let want = "local \"c.example\"\n\ndomain \"c.example\" {\n  issuer \"i\"\n  keys \"k\"\n}\n\nfederate \"a.example\" -> \"c.example\" {\n  scopes [\"x\", \"y\"]\n}\n\nchain {\n  clock_skew 1m\n  max_lifetime 90m\n  max_depth 3\n  require_sender_binding true\n}\n";
    assert_eq!(file.to_string(), want);
    assert_eq!(ok(want), file);
}

fn span0() -> Span {
    Span {
        start: 0,
        end: 0,
        location: crate::Location { line: 1, column: 1 },
    }
}

fn spanned<T>(node: T) -> Spanned<T> {
    Spanned::new(node, span0())
}

fn td_strategy() -> impl Strategy<Value = TrustDomain> {
    "[a-z0-9][a-z0-9._-]{0,20}"
        .prop_filter_map("valid trust domain", |s| TrustDomain::parse(&s).ok())
}

/// Strings the language can hold: no `"`, `\`, CR or LF, and not empty.
fn text_strategy() -> impl Strategy<Value = String> {
    "[^\"\\\\\r\n]{1,24}"
}

fn setting_strategy() -> impl Strategy<Value = Setting> {
    prop_oneof![
        (1usize..=8).prop_map(Setting::MaxDepth),
        (1usize..=16).prop_map(Setting::MaxDomains),
        (0u64..=120).prop_map(Setting::ClockSkew),
        (0u64..=MAX_SECONDS).prop_map(Setting::MaxLifetime),
        any::<bool>().prop_map(Setting::RequireSenderBinding),
        (30u64..=604_800).prop_map(Setting::MaxKeyAge),
    ]
}

/// Any valid file: unique domains and edges, one `local` and one `chain` at most.
fn file_strategy() -> impl Strategy<Value = TrustFile> {
    let domains = prop::collection::btree_map(
        td_strategy(),
        (
            prop::collection::btree_set(text_strategy(), 1..3),
            prop::collection::btree_set(text_strategy(), 1..3),
            prop::collection::btree_set(text_strategy(), 0..3),
            prop::collection::btree_set("https://[a-z]{1,10}\\.example/[a-z]{0,5}", 0..3),
            prop::option::of(MIN_REFRESH..=MAX_REFRESH),
            prop::option::of(text_strategy()),
        ),
        0..4,
    );
    let edges = prop::collection::btree_map(
        (td_strategy(), td_strategy()).prop_filter("no self edge", |(a, b)| a != b),
        prop::collection::vec(prop_oneof![Just("*".to_owned()), text_strategy()], 0..4),
        0..4,
    );
    let chain = prop::option::of(prop::collection::btree_map(
        0usize..5,
        setting_strategy(),
        0..5,
    ));
    (prop::option::of(td_strategy()), domains, edges, chain).prop_map(
        |(local, domains, edges, chain)| {
            let mut items = Vec::new();
            let mut issuers_seen = std::collections::BTreeSet::new();
            items.extend(local.map(|td| spanned(Item::Local(spanned(td)))));
            for (name, (issuers, keys, biscuit_keys, sources, refresh, ca)) in domains {
                // an issuer belongs to one domain only
                let issuers: Vec<_> = issuers
                    .into_iter()
                    .filter(|i| issuers_seen.insert(i.clone()))
                    .collect();
                if issuers.is_empty() {
                    continue;
                }
                items.push(spanned(Item::Domain(DomainDecl {
                    name: spanned(name),
                    issuers: issuers.into_iter().map(spanned).collect(),
                    keys: keys.into_iter().map(spanned).collect(),
                    biscuit_keys: biscuit_keys.into_iter().map(spanned).collect(),
                    // `refresh` and `ca` need a source; a `discovery` URL must be an issuer
                    refresh: refresh
                        .filter(|_| !sources.is_empty())
                        .into_iter()
                        .map(spanned)
                        .collect(),
                    ca: ca
                        .filter(|_| !sources.is_empty())
                        .into_iter()
                        .map(spanned)
                        .collect(),
                    sources: sources
                        .into_iter()
                        .enumerate()
                        .map(|(i, url)| {
                            let kind = if i % 2 == 0 {
                                SourceKind::JwksUri
                            } else {
                                SourceKind::SpiffeBundle
                            };
                            spanned(SourceDecl { kind, url })
                        })
                        .collect(),
                })));
            }
            for ((from, to), scopes) in edges {
                items.push(spanned(Item::Federate(FederateDecl {
                    from: spanned(from),
                    to: spanned(to),
                    scopes: scopes.into_iter().map(spanned).collect(),
                })));
            }
            if let Some(chain) = chain {
                // one setting of each kind at most
                let mut seen = std::collections::BTreeSet::new();
                let settings = chain
                    .into_values()
                    .filter(|s| seen.insert(s.keyword()))
                    .map(spanned)
                    .collect();
                items.push(spanned(Item::Chain(ChainBlock { settings })));
            }
            TrustFile {
                path: "t.trust".into(),
                items,
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn print_then_parse_round_trips(file in file_strategy()) {
        let printed = file.to_string();
        let parsed = parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed}\n{}", render(&e))))?;
        prop_assert_eq!(&parsed, &file);
        // and printing is a fixed point
        prop_assert_eq!(parsed.to_string(), printed);
    }

    #[test]
    fn parse_then_print_then_parse_round_trips(file in file_strategy(), noise in prop::collection::vec("[ \t\n]|#[^\n]*\n|//[^\n]*\n", 1..8)) {
        // the same file written with other layout and comments between items
        let mut src = String::new();
        for (i, item) in file.items.iter().enumerate() {
            src.push_str(&noise[i % noise.len()]);
            src.push_str(&item.node.to_string().replace("\n  ", &noise[(i + 1) % noise.len()].replace('\n', "\n ")));
        }
        let first = parse(&src).map_err(|e| TestCaseError::fail(format!("{src:?}\n{}", render(&e))))?;
        let second = parse(&first.to_string()).map_err(|e| TestCaseError::fail(render(&e)))?;
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(first, file);
    }

    #[test]
    fn arbitrary_text_never_panics(src in "(local|domain|federate|chain|scopes|issuer|keys|max_depth|clock_skew|\"[a-z.]*\"?|[0-9]+[smh]?|[{}\\[\\],\\->#/\n \\\\]|true|x){0,40}") {
        let _ = parse(&src);
    }

    #[test]
    fn arbitrary_unicode_never_panics(src in "\\PC{0,200}") {
        let _ = parse(&src);
    }
}
