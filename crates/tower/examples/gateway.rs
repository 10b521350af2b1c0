//! An HTTP reverse proxy that links custody through its tower Layer: every request is decided in
//! process and only allowed ones are forwarded to the upstream, with the `x-custody-*` headers.
//!
//! ```text
//! cargo run -p custody-tower --example gateway -- \
//!     --policies examples/demo/pack --audience spiffe://c.example/orders \
//!     --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000
//! ```
//!
//! SIGHUP reloads the pack (a pack that fails to load is reported and the old one keeps
//! serving); remote key sources are fetched before listening and refreshed in the background on
//! the proxy's own runtime. Prints `listening on ADDR` when ready; logs are JSON lines on stderr.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program: its output is what it prints"
)]

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use custody_tower::{Custody, MapSettings};
use serde_json::json;

#[path = "shared/proxy.rs"]
mod proxy;

#[derive(Debug, Parser)]
struct Args {
    /// The policy pack directory.
    #[arg(long)]
    policies: std::path::PathBuf,
    /// This service's identifier (the presented token's `aud` must hold it).
    #[arg(long)]
    audience: String,
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The upstream's `host:port` (plain HTTP).
    #[arg(long)]
    upstream: http::uri::Authority,
    /// A header whose value is the action (set by a trusted hop), instead of `METHOD:path`.
    #[arg(long)]
    action_header: Option<String>,
    /// `https://HOST[:PORT]`: the target URI WPT and DPoP proofs must name.
    #[arg(long)]
    target_authority: Option<String>,
    /// Take the decision time from `custody-now` (tests only).
    #[arg(long)]
    allow_request_time: bool,
    /// Forward without custody (for latency comparisons).
    #[arg(long)]
    no_custody: bool,
}

fn log(event: &str, fields: serde_json::Value) {
    let mut line = json!({"event": event});
    if let (Some(l), serde_json::Value::Object(f)) = (line.as_object_mut(), fields) {
        l.extend(f);
    }
    eprintln!("{line}");
}

fn main() -> ExitCode {
    let args = Args::parse();
    let custody = match Custody::load(&args.policies) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let settings = MapSettings {
        audience: Some(args.audience.clone()),
        action_header: args.action_header.as_ref().map(|h| h.to_ascii_lowercase()),
        allow_request_time: args.allow_request_time,
        target_authority: args
            .target_authority
            .as_ref()
            .map(|t| t.trim_end_matches('/').to_owned()),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        custody.fetch_keys().await;
        tokio::spawn(custody.clone().refresh());
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().map_or(args.listen, |a| a);
        log(
            "start",
            json!({"listen": addr.to_string(), "pack": custody.pack_version()}),
        );
        println!("listening on {addr}");
        let door = (!args.no_custody).then(|| (custody.clone(), settings));
        tokio::spawn(proxy::serve(listener, args.upstream, door));
        on_signals(custody).await;
        ExitCode::SUCCESS
    })
}

/// SIGHUP reloads (off the async threads); SIGTERM or Ctrl-C stops.
#[cfg(unix)]
async fn on_signals(custody: Custody) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut term)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let c = custody.clone();
                match tokio::task::spawn_blocking(move || c.reload()).await {
                    Ok(Ok(changed)) => log("reload", json!({"changed": changed, "pack": custody.pack_version()})),
                    Ok(Err(e)) => log("reload_failed", json!({"error": e.to_string(), "serving": custody.pack_version()})),
                    Err(e) => log("reload_failed", json!({"error": e.to_string()})),
                }
            }
            _ = term.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

#[cfg(not(unix))]
async fn on_signals(_custody: Custody) {
    let _ = tokio::signal::ctrl_c().await;
}
