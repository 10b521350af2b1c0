//! custody's gRPC sidecar: `custody serve`.
//!
//! One tonic server on tokio answers three services:
//!
//! - `envoy.service.auth.v3.Authorization/Check`, so Envoy (and Istio, agentgateway, anything
//!   speaking ext_authz v3) can ask custody about each HTTP request; the mapping is in
//!   [`check`](crate::check) and below;
//! - `custody.v1.Verifier/{Verify,VerifyBatch}` (`proto/custody/v1/verifier.proto`), mirroring
//!   DESIGN.md's request and decision;
//! - `grpc.health.v1.Health`.
//!
//! and, on the HTTP port (`--metrics-listen`, alias `--http-listen`; see `web.rs`), Prometheus
//! metrics and the OpenID AuthZEN Authorization API 1.0 evaluation endpoints
//! (`POST /access/v1/evaluation`, `POST /access/v1/evaluations`,
//! `GET /.well-known/authzen-configuration`), decided exactly as custody.v1 Verify decides; the
//! mapping is in `authzen.rs` and README.md's "AuthZEN evaluation API".
//!
//! **Check mapping.** tokens = the `custody-chain` header (upstream tokens, origin first,
//! comma-separated) then the `authorization: Bearer` token; `txn_token` = the `txn-token`
//! header; `peer` = `attributes.source.principal` (the client certificate's URI SAN under
//! Envoy; a non-SPIFFE principal is `invalid_spiffe_id`, never ignored); `action` = `METHOD:path`
//! with the path as Envoy forwards it minus query string and fragment, or the value of the
//! `--action-header` header, which the proxy must set and strip from clients; `audience` =
//! `--audience`, never `Host`/`:authority`; without `--audience` every Check is denied with
//! `invalid_request` (the sidecar does not guess; custody.v1 requests carry their own audience). Allow: OK plus `x-custody-origin`, `x-custody-actor`,
//! `x-custody-depth` (overwriting any a client sent; non-visible-ASCII bytes percent-encoded)
//! and the chain summary as dynamic metadata. Deny: `PERMISSION_DENIED`, HTTP 403 with a JSON
//! body `{"decision":"deny","reasons":[…]}`, or 401 with `www-authenticate: Bearer …` when the
//! bearer token is missing or a token is invalid (the per-token codes and `audience_mismatch`).
//!
//! **Time.** Decisions use the system clock. `now` in custody.v1 (and the `custody-now` header
//! in Check) is refused with `invalid_request` unless the server runs with
//! `--allow-request-time`, a testing flag: a caller choosing the time could replay expired tokens.
//!
//! **Reload.** On SIGHUP, and when the pack's files change (polled every
//! `--reload-interval-ms`, default 1 s), the pack is loaded on a blocking thread and swapped in
//! atomically; each RPC takes the verifier in force when it starts and decides on it to the end
//! (a VerifyBatch: every item), reporting that pack's version; a pack that fails to load is
//! logged (`reload_failed`) and the old one keeps serving. The poll watches the directory's
//! entries the loader reads and every other file the pack in force read (its key files,
//! wherever they are); an unreadable entry (a dangling symlink) is skipped with one warning; a
//! change is loaded only once it is unchanged over two polls, each deferral logged (see
//! `reload.rs`; replace files by renaming complete ones into place when a writer may pause).
//!
//! **Limits** (flags, defaults): `--max-message-bytes` 4 MiB (one decoded gRPC message); gRPC
//! metadata (the HTTP/2 header list) 64 KiB, fixed; `--max-batch` 1024 requests;
//! `--max-concurrency` 1024 RPCs in progress at once over all connections, beyond which an RPC
//! of any service but health gets `RESOURCE_EXHAUSTED` at once, before its message is read,
//! never a queue (see `shed.rs`; each connection may open twice as many HTTP/2 streams, so a
//! client multiplexing on one connection meets the status too); health has its own 16 permits
//! and 1 KiB messages, fixed; `--request-timeout-ms` 2000 per RPC (a shorter `grpc-timeout`
//! wins): every decision runs on a blocking thread, off the async workers (a Check that does
//! not map to a request, or whose decision the cache holds, is answered on the worker: a
//! bounded lookup), and one still running when the deadline less a tenth (at most 50 ms)
//! passes is answered with a denial `decision_timeout` (Check: HTTP 503), never a gRPC error,
//! while it keeps its concurrency permit until it ends; `--drain-timeout-ms` 10000 on SIGTERM/SIGINT, after which the process
//! exits 0 (1 if the drain timed out); every request-level bound (16 tokens, 8 KiB per token,
//! JSON depth 16, …) is the verifier's `Limits`, and a `custody-chain` header with more entries
//! than that is refused before it is split.
//!
//! **Decision cache** (Check only; `--no-decision-cache` turns it off): keyed by a digest of the
//! pack version and every attribute the decision used, an allow lives until the earliest `exp`
//! of its chain at the latest, at most `--decision-cache-ttl-secs` (30); the cache holds at
//! most `--decision-cache-entries` (100,000) entries and `--decision-cache-bytes` (64 MiB)
//! bytes, each entry charged what its decision owns plus its share of the containers; when
//! full, expired entries go first, then the oldest inserted (see `cache.rs`). Below it, each
//! pack's verifier keeps its own token cache and Cedar request memo, sized by
//! `--token-cache-entries` (16,384) and `--cedar-memo-entries` (1,024), 0 for none.
//!
//! **Observability.** One JSON line per decision on standard error (origin, actors, action,
//! result, reason codes, latency, never a token; `--no-decision-log` to silence), and Prometheus
//! text on `--metrics-listen ADDR` (`custody_decisions_total`, `custody_decision_latency_seconds`,
//! cache hits, misses, entries, bytes and evictions, the verifier's token cache hits, misses and
//! entries, shed RPCs and health requests, reloads, polls, deferred changes, unreadable pack
//! entries, `custody_pack_info{version}`); AuthZEN evaluations count under `rpc="authzen"`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let args = custody_sidecar::ServeArgs {
//!     policies: "policies/demo".into(),
//!     listen: "127.0.0.1:0".parse().map_err(|_| "addr")?,
//!     audience: Some("spiffe://c.example/orders".into()),
//!     ..custody_sidecar::ServeArgs::default()
//! };
//! let running = custody_sidecar::start(args).await?;
//! println!("serving on {}", running.addr);
//! running.shutdown().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod admin;
mod authzen;
mod cache;
mod call;
pub mod check;
mod config;
mod error;
mod fleet;
#[cfg(test)]
mod held;
mod log;
mod metrics;
mod native;
mod reload;
mod server;
mod shed;
mod state;
#[cfg(test)]
mod testing;
mod web;
// The tests in `held` share the integration tests' helpers, which name this crate.
#[cfg(test)]
extern crate self as custody_sidecar;

/// The generated `custody.v1` messages, client and server.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::allow_attributes_without_reason,
    reason = "generated by tonic-prost-build from the proto: not ours to lint"
)]
pub mod pb {
    tonic::include_proto!("custody.v1");
}

pub use config::{PeerFrom, ServeArgs};
pub use error::ServeError;
pub use server::{run, start, Running};
#[cfg(test)]
pub use state::Stall;
