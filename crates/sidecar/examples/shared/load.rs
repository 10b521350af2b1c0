//! What the load examples share (`custody_load`, `fleet_load`): each includes this file with
//! `#[path]`, so a percentile, a client or a BENCHMARKS.md section is written one way.
#![allow(dead_code, reason = "each example uses its own part of these helpers")]

use std::net::SocketAddr;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use tonic::transport::Channel;

/// The nearest-rank `p` percentile of `sorted` (ascending), if it holds anything.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let n = sorted.len();
    let rank = ((n as f64 * p).ceil() as usize).clamp(1, n.max(1));
    sorted.get(rank - 1).copied()
}

/// One HTTP/2 connection to a sidecar's gRPC port.
pub async fn connect(addr: SocketAddr) -> AuthorizationClient<Channel> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .expect("a loopback URL")
        .connect()
        .await
        .expect("the sidecar accepts a connection");
    AuthorizationClient::new(ch)
}

/// A Check of `GET /orders/1` carrying the 2-token chain `t0` (as `custody-chain`) then `t1`
/// (the bearer), action `orders:read` in the action header.
pub fn chain_check(t0: &str, t1: &str) -> CheckRequest {
    let headers = [
        ("authorization".to_owned(), format!("Bearer {t1}")),
        ("custody-chain".to_owned(), t0.to_owned()),
        ("x-custody-action".to_owned(), "orders:read".to_owned()),
    ];
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/orders/1".into(),
                    headers: headers.into_iter().collect(),
                    ..HttpRequest::default()
                }),
                ..AttrRequest::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// Replaces the section of the file at `path` that starts with `section`'s first line (its
/// `## ` heading), up to the next `## ` heading, with `section`, or appends it; every other
/// section is left alone.
pub fn write_section(path: &str, section: &str) {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
    let section = section.trim_end_matches('\n');
    let head = section
        .lines()
        .next()
        .expect("a section starts with its heading");
    let new = match old.find(head) {
        Some(start) => {
            let after = start + head.len();
            let end = old
                .get(after..)
                .and_then(|rest| rest.find("\n## "))
                .map_or(old.len(), |e| after + e + 1);
            // one blank line between this section and the next
            format!("{}{section}\n\n{}", &old[..start], &old[end..])
        }
        None => format!("{}\n\n{section}\n", old.trim_end_matches('\n')),
    };
    std::fs::write(path, new.trim_end_matches('\n').to_owned() + "\n").expect("write the file");
}
