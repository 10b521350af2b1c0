//! `custody test`: a pack's own test cases, one JSON file each under `DIR/tests/`.
//!
//! A case is a literal request (`"request": {…}` or `"request": "path/relative/to/the/case.json"`)
//! or a chain description that is minted for this run (see [`crate::chainspec`]), plus
//! `"expect": {"decision": "allow"|"deny", "codes": [...], "hop": N|null, "policies": [...]}`.
//! `codes` must be the first reason codes of the decision, in order; `hop` is the first reason's
//! hop; `policies` the determining Cedar policies (any order). Case files are read strictly:
//! unknown members and duplicate keys are errors, so a typo cannot turn a check off.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Args;
use custody_jose::json;
use custody_verifier::{Decision, ReasonCode, Verifier};
use serde_json::{Map, Value};

use crate::chainspec::{self, Keyring};

#[derive(Args)]
pub(crate) struct TestArgs {
    /// The policy pack directory; its cases are the `*.json` files of `DIR/tests/`.
    #[arg(long, default_value = "policies/demo")]
    policies: PathBuf,
    /// Print each failing case's request document.
    #[arg(long)]
    verbose: bool,
}

/// The case file members besides the chain description's.
const CASE_ONLY: [&str; 3] = ["description", "request", "expect"];

/// What a case expects.
struct Expect {
    allow: bool,
    codes: Vec<ReasonCode>,
    hop: Option<Option<usize>>,
    policies: Option<BTreeSet<String>>,
}

/// A case's result: the expected and actual decisions agree, or why not.
struct Outcome {
    failures: Vec<String>,
    got: String,
    codes: Vec<ReasonCode>,
}

pub(crate) fn run(args: &TestArgs) -> Result<u8, String> {
    let mut pack = crate::command::load_pack(&args.policies, true)?;
    let ring = Keyring::for_pack(&mut pack)?;
    let unreachable = unreachable_codes(&pack);
    let verifier = Verifier::new(pack);
    let dir = args.policies.join("tests");
    let cases = list_cases(&dir)?;
    println!(
        "{} cases in {}; {}",
        cases.len(),
        dir.display(),
        ring.describe()
    );
    let now = crate::render::system_now();
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut expected_codes = BTreeSet::new();
    for path in &cases {
        let name = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        match run_case(path, &verifier, &ring, now) {
            Ok((expect, outcome, _)) if outcome.failures.is_empty() => {
                passed += 1;
                expected_codes.extend(expect.codes.iter().copied());
                expected_codes.extend(outcome.codes.first().copied());
                println!("pass  {name}: {}", outcome.got);
            }
            Ok((_, outcome, request)) => {
                failed += 1;
                println!(
                    "FAIL  {name}: {}; got {}",
                    outcome.failures.join("; "),
                    outcome.got
                );
                if args.verbose {
                    println!("      request: {}", String::from_utf8_lossy(&request));
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL  {name}: {e}");
            }
        }
    }
    print_coverage(&expected_codes, &unreachable);
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        0
    } else {
        crate::command::EXIT_DENY
    })
}

fn list_cases(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cases: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    cases.sort();
    Ok(cases)
}

/// Codes no pack test can produce for this pack, with why: `decision_timeout` is the
/// sidecar's, and `policy_error` needs a policy that can fail to evaluate (`custody check`
/// names them).
fn unreachable_codes(pack: &custody_policy::PolicyPack) -> Vec<(ReasonCode, &'static str)> {
    let mut out = vec![
        (ReasonCode::DecisionTimeout, "the sidecar's deadline"),
        (
            ReasonCode::Replayed,
            "a replay takes the same proof in two requests to one verifier",
        ),
        (
            ReasonCode::StoreUnavailable,
            "a replay store that cannot take another proof",
        ),
        (
            ReasonCode::Revoked,
            "revocations are held by the node (`custody revoke`), not the pack",
        ),
    ];
    if pack.domains.iter().all(|d| d.sources.is_empty()) {
        out.push((
            ReasonCode::KeysUnavailable,
            "no domain of this pack has remote key sources",
        ));
    }
    if crate::cedar_errors::warnings(pack).is_empty() {
        out.push((
            ReasonCode::PolicyError,
            "no policy of this pack can fail to evaluate",
        ));
    }
    out
}

/// Which reason codes the passing cases exercise, and which none does (of those this pack's
/// tests can produce).
fn print_coverage(seen: &BTreeSet<ReasonCode>, unreachable: &[(ReasonCode, &str)]) {
    let reachable = |c: &ReasonCode| !unreachable.iter().any(|(u, _)| u == c);
    let missing: Vec<&str> = ReasonCode::ALL
        .iter()
        .filter(|c| reachable(c) && !seen.contains(c))
        .map(|c| c.as_str())
        .collect();
    let total = ReasonCode::ALL.iter().filter(|c| reachable(c)).count();
    let covered = total.saturating_sub(missing.len());
    let aside: Vec<String> = unreachable
        .iter()
        .map(|(c, why)| format!("{c}: {why}"))
        .collect();
    let aside = if aside.is_empty() {
        String::new()
    } else {
        format!(" (not counted: {})", aside.join("; "))
    };
    if missing.is_empty() {
        println!("reason codes exercised: all {total}{aside}");
    } else {
        println!(
            "reason codes exercised: {covered} of {total}; none for {}{aside}",
            missing.join(", ")
        );
    }
}

fn run_case(
    path: &Path,
    verifier: &Verifier,
    ring: &Keyring,
    now: i64,
) -> Result<(Expect, Outcome, Vec<u8>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let case = json::parse_object(&bytes, verifier.limits().json_depth)
        .map_err(|e| format!("case file: {e}"))?;
    if let Some(unknown) = case
        .keys()
        .find(|k| !CASE_ONLY.contains(&k.as_str()) && !chainspec::is_spec_field(k))
    {
        return Err(format!("case file: unknown member `{unknown}`"));
    }
    let expect = parse_expect(case.get("expect").ok_or("case file: no `expect`")?)?;
    let request = request_bytes(path, &case, verifier, ring, now)?;
    let decision = verifier
        .verify_json(&request)
        .map_err(|e| format!("request: {e}"))?;
    let outcome = compare(&expect, &decision);
    Ok((expect, outcome, request))
}

/// The request document: literal (inline or a file), or minted from the chain description.
fn request_bytes(
    path: &Path,
    case: &Map<String, Value>,
    verifier: &Verifier,
    ring: &Keyring,
    now: i64,
) -> Result<Vec<u8>, String> {
    match case.get("request") {
        Some(Value::String(file)) => {
            let at = path.parent().unwrap_or(Path::new(".")).join(file);
            std::fs::read(&at).map_err(|e| format!("{}: {e}", at.display()))
        }
        Some(doc @ Value::Object(_)) => serde_json::to_vec(doc).map_err(|e| e.to_string()),
        Some(_) => Err("`request` must be an object or a file name".into()),
        None => {
            let doc = chainspec::mint_request(case, verifier.pack(), ring, now)?;
            serde_json::to_vec(&doc).map_err(|e| e.to_string())
        }
    }
}

fn parse_expect(v: &Value) -> Result<Expect, String> {
    let Value::Object(m) = v else {
        return Err("`expect` must be an object".into());
    };
    if let Some(k) = m
        .keys()
        .find(|k| !["decision", "codes", "hop", "policies"].contains(&k.as_str()))
    {
        return Err(format!("`expect`: unknown member `{k}`"));
    }
    let allow = match m.get("decision").and_then(Value::as_str) {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err("`expect.decision` must be \"allow\" or \"deny\"".into()),
    };
    let codes = strings(m.get("codes"), "codes")?
        .unwrap_or_default()
        .iter()
        .map(|c| ReasonCode::from_name(c).ok_or_else(|| format!("unknown reason code `{c}`")))
        .collect::<Result<Vec<_>, _>>()?;
    let hop = match m.get("hop") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(h) => Some(Some(
            h.as_u64()
                .and_then(|h| usize::try_from(h).ok())
                .ok_or("`expect.hop` must be a number or null")?,
        )),
    };
    let policies = strings(m.get("policies"), "policies")?.map(|p| p.into_iter().collect());
    Ok(Expect {
        allow,
        codes,
        hop,
        policies,
    })
}

fn strings(v: Option<&Value>, name: &str) -> Result<Option<Vec<String>>, String> {
    let Some(v) = v else {
        return Ok(None);
    };
    v.as_array()
        .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect())
        .map(Some)
        .ok_or_else(|| format!("`expect.{name}` must be a list of strings"))
}

fn compare(expect: &Expect, d: &Decision) -> Outcome {
    let codes: Vec<ReasonCode> = d.reasons.iter().map(|r| r.code).collect();
    let mut failures = Vec::new();
    if d.is_allowed() != expect.allow {
        failures.push(format!(
            "expected {}",
            if expect.allow { "allow" } else { "deny" }
        ));
    }
    if !codes.starts_with(&expect.codes) {
        let want: Vec<&str> = expect.codes.iter().map(|c| c.as_str()).collect();
        failures.push(format!("expected codes {}", want.join(", ")));
    }
    let first_hop = d.reasons.first().and_then(|r| r.hop);
    if let Some(hop) = expect.hop {
        if hop != first_hop {
            failures.push(format!("expected hop {}", show_hop(hop)));
        }
    }
    if let Some(want) = &expect.policies {
        let got: BTreeSet<String> = d.policies.iter().cloned().collect();
        if &got != want {
            let want: Vec<&str> = want.iter().map(String::as_str).collect();
            failures.push(format!("expected policies [{}]", want.join(", ")));
        }
    }
    Outcome {
        failures,
        got: summary(d),
        codes,
    }
}

fn show_hop(hop: Option<usize>) -> String {
    hop.map_or_else(|| "null".to_owned(), |h| h.to_string())
}

/// `allow (orders-read)` or `deny scope_escalation (hop 1): token 1 widens scope`.
pub(crate) fn summary(d: &Decision) -> String {
    let policies = if d.policies.is_empty() {
        String::new()
    } else {
        format!(" ({})", d.policies.join(", "))
    };
    match d.reasons.first() {
        None => format!("allow{policies}"),
        Some(r) => format!("deny {} (hop {}): {}", r.code, show_hop(r.hop), r.message),
    }
}
