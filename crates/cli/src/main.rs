//! `custody`: decide agent-to-agent calls from the command line.
#![forbid(unsafe_code)]

mod analysis;
mod biscuit_cmds;
mod card;
mod cedar_analysis;
mod cedar_errors;
mod chainspec;
mod command;
mod demo;
mod explain;
mod graph;
mod keys;
mod mint;
mod packtest;
mod proofs;
mod render;
mod revoke;
mod routes;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use command::{load_pack, read_input, EXIT_DENY, EXIT_UNUSABLE};
use custody_policy::PolicyPack;
use custody_verifier::{Limits, Verifier};

#[derive(Parser)]
#[command(
    name = "custody",
    version,
    about = "Delegation-chain verifier and policy engine for agent-to-agent calls"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decide one request and print the Decision JSON (exit 0 allow, 1 deny, 2 unusable input).
    Verify {
        /// The policy pack directory.
        #[arg(long, default_value = "policies/demo")]
        policies: PathBuf,
        /// The request JSON file, or `-` for standard input.
        #[arg(default_value = "-")]
        request: String,
        /// Print the JSON on one line.
        #[arg(long)]
        compact: bool,
    },
    /// Load a policy pack, list every problem found (exit 2 when it cannot be used) and analyse
    /// its trust graph: which domains reach the local one, how, with which actions.
    Check {
        /// The policy pack directory.
        #[arg(long, default_value = "policies/demo")]
        policies: PathBuf,
    },
    /// Write a new Ed25519 key pair: a private JWK (mode 0600) and a public JWKS.
    Keygen(keys::KeygenArgs),
    /// Sign a development token.
    Mint(mint::MintArgs),
    /// Sign a development WIMSE workload identity token (WIT) binding a workload's key.
    MintWit(proofs::MintWitArgs),
    /// Sign a development WIMSE workload proof token (WPT) with the key a WIT binds.
    MintWpt(proofs::MintWptArgs),
    /// Sign a development DPoP proof (RFC 9449), or print a key's `jkt`.
    MintDpop(proofs::MintDpopArgs),
    /// Append a hop to a Biscuit: a third-party block signed with the new actor's domain key.
    Attest(biscuit_cmds::AttestArgs),
    /// Append a first-party block of checks to a Biscuit (anyone holding it may restrict it).
    Attenuate(biscuit_cmds::AttenuateArgs),
    /// A narrated walkthrough of the demo pack: chains minted live, decided, explained.
    Demo(demo::DemoArgs),
    /// Explain one request: its tokens, hops, domain crossings, the decision and what would
    /// have to change (exit 0 allow, 1 deny, 2 unusable input).
    Explain(explain::ExplainArgs),
    /// Run the pack's tests (`DIR/tests/*.json`); prints `N passed, N failed` (exit 1 on failure).
    Test(packtest::TestArgs),
    /// Draw the trust graph: domains and federation rules, as Graphviz DOT or Mermaid.
    Graph(graph::GraphArgs),
    /// Run the gRPC sidecar (Envoy ext_authz v3, custody.v1.Verifier, grpc.health.v1).
    Serve(custody_sidecar::ServeArgs),
    /// A2A Agent Cards: verify their signatures against the pack's trust domains.
    #[command(subcommand)]
    Card(card::CardCommand),
    /// Revoke a token (`jti`), an actor, an origin or a transaction (`txn`) in the fleet's
    /// shared store: every node following it denies `revoked` until the revocation ends.
    Revoke(revoke::RevokeArgs),
    /// List the revocations in force in the fleet's shared store.
    Revocations(revoke::ListArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify {
            policies,
            request,
            compact,
        } => verify(&policies, &request, compact),
        Command::Check { policies } => check(&policies),
        Command::Keygen(args) => keys::keygen(&args),
        Command::Mint(args) => mint::mint(&args),
        Command::MintWit(args) => proofs::mint_wit(&args),
        Command::MintWpt(args) => proofs::mint_wpt(&args),
        Command::MintDpop(args) => proofs::mint_dpop(&args),
        Command::Attest(args) => biscuit_cmds::attest(&args),
        Command::Attenuate(args) => biscuit_cmds::attenuate(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Test(args) => packtest::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Serve(args) => custody_sidecar::run(args).map_err(|e| e.to_string()),
        Command::Card(command) => card::run(&command),
        Command::Revoke(args) => revoke::revoke(&args),
        Command::Revocations(args) => revoke::list(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("custody: {message}");
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}

fn verify(policies: &Path, request: &str, compact: bool) -> Result<u8, String> {
    let pack = load_pack(policies, true)?;
    let verifier = Verifier::new(pack);
    command::warn_sources(&command::fetch_sources(&verifier));
    let bytes = read_input(request, verifier.limits().request_bytes)?;
    let decision = verifier
        .verify_json(&bytes)
        .map_err(|e| format!("{request}: {e}"))?;
    let json = decision.to_json();
    let text = if compact {
        serde_json::to_string(&json)
    } else {
        serde_json::to_string_pretty(&json)
    }
    .map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(if decision.is_allowed() { 0 } else { EXIT_DENY })
}

/// Each domain's key sources and key counts, after fetching the remote ones once.
/// With `require_sender_binding` on, a pack whose domains have no X.509-SVID authority gives
/// the sidecar no way to check a client certificate itself: the caller is then whatever
/// Envoy's principal says (or what a WIT+WPT or DPoP proof shows).
fn caller_proof_warning(pack: &custody_policy::PolicyPack, verifier: &Verifier) {
    if !pack.chain.require_sender_binding {
        return;
    }
    let authorities = (0..pack.domains.len()).any(|i| {
        verifier
            .key_store()
            .domain(i)
            .is_some_and(|k| !k.x509().is_empty())
    });
    if !authorities {
        println!(
            "warning: require_sender_binding is on but no domain has an X.509-SVID authority (`x509-svid` in a SPIFFE bundle): the sidecar cannot validate a client certificate itself, and proves a caller only by a WIT with its WPT or a DPoP proof, or takes `peer` on trust from Envoy's `source.principal`"
        );
    }
}

fn key_counts(pack: &custody_policy::PolicyPack) {
    let verifier = Verifier::new(pack.clone());
    let status = command::fetch_sources(&verifier);
    caller_proof_warning(pack, &verifier);
    for (i, d) in pack.domains.iter().enumerate() {
        let total = verifier
            .key_store()
            .domain(i)
            .map_or(0, |k| k.tokens().len());
        println!(
            "keys: domain `{}`: {total} token key(s): {} from {} key file(s)",
            d.name,
            d.keys.len(),
            d.key_files.len()
        );
        let (wit, x509) = verifier
            .key_store()
            .domain(i)
            .map_or((0, 0), |k| (k.wit().len(), k.x509().len()));
        if wit > 0 || x509 > 0 {
            println!("keys:   proving callers: {wit} WIT key(s), {x509} X.509-SVID authority(ies)");
        }
        for s in status.iter().filter(|s| s.domain == d.name.as_str()) {
            let via = s
                .jwks_uri
                .as_ref()
                .map_or_else(String::new, |u| format!(" (jwks_uri `{u}`)"));
            let seq = s
                .sequence
                .map_or_else(String::new, |n| format!(", spiffe_sequence {n}"));
            match (&s.keys, &s.last_error) {
                (Some(n), None) => println!(
                    "keys:   {} `{}`{via}: {n} key(s){seq}, refresh every {}s",
                    s.kind.keyword(),
                    s.url,
                    d.refresh
                ),
                (_, Some(e)) => println!(
                    "warning: {} `{}` of domain `{}` failed: {e}",
                    s.kind.keyword(),
                    s.url,
                    d.name
                ),
                (None, None) => {}
            }
        }
    }
}

fn check(policies: &Path) -> Result<u8, String> {
    match PolicyPack::load(policies, &Limits::default()) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            let pack = &loaded.pack;
            let analysis = analysis::analyse(pack);
            for line in &analysis.lines {
                println!("{line}");
            }
            for w in &analysis.warnings {
                println!("warning: {w}");
            }
            key_counts(pack);
            if let Some(r) = &pack.resource {
                println!(
                    "resource: `{}`: metadata at `{}` ({} authorization server(s), {} scope(s)); the sidecar's `--audience` must be it",
                    r.identifier,
                    r.metadata_url(),
                    r.authorization_servers.len(),
                    r.scopes_supported.len()
                );
            }
            println!(
                "ok: {} domains, {} federation rules, {} Cedar policies, local `{}`",
                pack.domains.len(),
                pack.federation.len(),
                pack.cedar
                    .as_ref()
                    .map_or(0, |c| c.policies.policies().count()),
                pack.local
            );
            Ok(0)
        }
        Err(errors) => {
            for e in &errors {
                println!("error: {e}");
            }
            println!("{} problem(s): the pack cannot be used", errors.len());
            Ok(EXIT_UNUSABLE)
        }
    }
}
