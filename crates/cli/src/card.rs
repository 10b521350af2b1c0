//! `custody card verify CARD.json`: an A2A Agent Card's signatures checked against the pack's
//! trust domains (`custody_verifier::card`), optionally against a pinned card.

use std::path::PathBuf;

use custody_verifier::card::{report_json, verify_card, CardReport};
use custody_verifier::Verifier;

use crate::command::{fetch_sources, load_pack, read_input, warn_sources};

/// `custody card …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CardCommand {
    /// Verify an A2A Agent Card's `signatures` (JWS, detached RFC 8785 payload) with the key of
    /// the provider's trust domain; exit 0 verified (and unchanged from `--pin`), 1 not, 2
    /// unusable input.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The card (JSON), or `-` for standard input.
    card: String,
    /// The policy pack whose trust domains hold the providers' keys.
    #[arg(long, default_value = "policies/demo")]
    policies: PathBuf,
    /// The card verified before: report a changed `url`, `securitySchemes` or `security`.
    #[arg(long, value_name = "CARD")]
    pin: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: &CardCommand) -> Result<u8, String> {
    let CardCommand::Verify(args) = command;
    let pack = load_pack(&args.policies, true)?;
    let verifier = Verifier::new(pack);
    warn_sources(&fetch_sources(&verifier));
    let limit = custody_verifier::card::MAX_CARD_BYTES + 1;
    let card = read_input(&args.card, limit)?;
    let pinned = args
        .pin
        .as_deref()
        .map(|p| read_input(p, limit))
        .transpose()?;
    let report = verify_card(verifier.key_store(), &card, pinned.as_deref())
        .map_err(|e| format!("{}: {e}", args.card))?;
    if args.json {
        let text =
            serde_json::to_string_pretty(&report_json(&report)).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", human(&report));
    }
    Ok(if report.is_trusted() { 0 } else { 1 })
}

fn human(r: &CardReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let verdict = if r.is_trusted() {
        "verified"
    } else if r.is_verified() {
        "verified, but differs from the pinned card"
    } else {
        "NOT verified"
    };
    let _ = writeln!(
        out,
        "card {} ({}): {verdict}",
        r.name.as_deref().unwrap_or("<no name>"),
        r.url.as_deref().unwrap_or("<no url>")
    );
    let _ = writeln!(
        out,
        "  provider domain: {}",
        r.domain.as_deref().unwrap_or("<none declared>")
    );
    for (i, s) in r.signatures.iter().enumerate() {
        let what = match &s.outcome {
            Ok(()) => "verifies".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        let _ = writeln!(
            out,
            "  signature {i} (kid {}, alg {}): {what}",
            s.kid.as_deref().unwrap_or("-"),
            s.alg.as_deref().unwrap_or("-")
        );
    }
    if r.signatures.is_empty() {
        let _ = writeln!(out, "  no signatures");
    }
    let _ = writeln!(out, "  covers: {}", r.covered.join(", "));
    for w in &r.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    for d in &r.pin_differences {
        let _ = writeln!(out, "  changed since pinned: {d}");
    }
    out
}
