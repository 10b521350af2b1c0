//! The latency each door adds to a proxied request, measured in one run on one machine:
//! a hyper reverse proxy without and with custody's Layer (in process), and Envoy without and
//! with its ext_authz filter calling `custody serve` (the sidecar in process, Envoy a separate
//! process with one worker). Same upstream (a hyper server answering `200 ok`), same warm
//! two-token chain (a.example → b.example → c.example), same closed-loop load: `--connections`
//! HTTP/1.1 keep-alive connections each sending one request after another. Each door runs
//! `--rounds` times for `--secs` seconds after a 1 s warm-up, in alternating order, and the
//! samples of its rounds are merged.
//!
//! ```text
//! cargo run --release -p custody-tower --example door_latency -- [--secs 5] [--rounds 2]
//!     [--connections 2] [--envoy .venv/bin/envoy]
//! ```
//!
//! Without an Envoy binary (`--envoy`, `$CUSTODY_ENVOY` or `.venv/bin/envoy`) only the proxy rows
//! are measured. Prints a Markdown table and the ratio the issue sets a goal for: p99 added by
//! the Layer ÷ p99 added by ext_authz (goal ≤ 0.10).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use custody_tests::{t0_claims, t1_claims, Fixture, AUD};
use custody_tower::{Custody, MapSettings};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

#[path = "shared/proxy.rs"]
mod proxy;

const ACTION: &str = "x-custody-action";

#[derive(Debug, Parser)]
struct Args {
    /// Seconds measured per door and round.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Rounds (alternating the order of the doors).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Keep-alive connections, each one request at a time.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// The Envoy binary.
    #[arg(long)]
    envoy: Option<PathBuf>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The upstream: `200 ok` to everything.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cluster(name: &str, port: u16, http2: bool) -> serde_json::Value {
    let mut c = json!({"name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}});
    if http2 {
        c["typed_extension_protocol_options"] = json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}});
    }
    c
}

/// An Envoy process, killed when dropped (also when the run panics).
struct Envoy(Child);

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Envoy listening on a free port in front of `upstream`, with ext_authz to `custody` when
/// given; returns the process and the port once its admin endpoint says LIVE.
fn envoy(
    bin: &PathBuf,
    dir: &std::path::Path,
    name: &str,
    upstream: u16,
    custody: Option<u16>,
) -> (Envoy, u16) {
    let (port, admin) = (free_port(), free_port());
    let router = json!({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}});
    let mut filters = Vec::new();
    let mut clusters = vec![cluster("upstream", upstream, false)];
    if let Some(c) = custody {
        filters.push(
            json!({"name": "envoy.filters.http.ext_authz", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3", "failure_mode_allow": false,
            "grpc_service": {"envoy_grpc": {"cluster_name": "custody"}, "timeout": "2s"}}}),
        );
        clusters.push(cluster("custody", c, true));
    }
    filters.push(router);
    let config = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": "in", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": name,
                    "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                        {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
                    "http_filters": filters}}]}]}],
            "clusters": clusters}});
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    let base_id = u32::from(port);
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Envoy(
        Command::new(bin)
            .args([
                "-c",
                path.to_str().unwrap(),
                "--disable-hot-restart",
                "--log-level",
                "error",
                "--concurrency",
                "1",
                "--base-id",
                &base_id.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = std::net::TcpStream::connect(("127.0.0.1", admin))
            .ok()
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.write_all(b"GET /ready HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
                    .ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                out.contains("LIVE").then_some(())
            });
        if ready.is_some() {
            return (child, port);
        }
        let exited = child.0.try_wait().unwrap();
        if exited.is_some() || Instant::now() > deadline {
            panic!(
                "envoy {name} not ready ({exited:?}): {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One connection's requests for `secs` (after `warm`), their latencies in microseconds.
async fn drive(
    port: u16,
    headers: Vec<(String, String)>,
    warm: Duration,
    secs: Duration,
) -> Vec<u32> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < warm + secs {
        let mut b = http::Request::get("/orders/7").header("host", "orders");
        for (k, v) in &headers {
            b = b.header(k, v);
        }
        let req = b.body(Empty::<Bytes>::new()).unwrap();
        let t = Instant::now();
        send.ready().await.unwrap();
        let r = send.send_request(req).await.unwrap();
        let status = r.status();
        r.into_body().collect().await.unwrap();
        let took = t.elapsed();
        assert_eq!(status, 200, "a request was not allowed through");
        if start.elapsed() > warm {
            out.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        }
    }
    out
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args = Args::parse();
    let envoy_bin = args
        .envoy
        .clone()
        .or_else(|| std::env::var_os("CUSTODY_ENVOY").map(PathBuf::from))
        .or_else(|| {
            let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/envoy");
            p.exists().then_some(p)
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = Fixture::standard();
    let n = now();
    let timed = |mut c: serde_json::Value| {
        c["iat"] = (n - 30).into();
        c["exp"] = (n + 3000).into();
        c
    };
    let t0 = f.token("a.example", timed(t0_claims()));
    let t1 = f.token("b.example", timed(t1_claims()));
    let headers = vec![
        ("authorization".to_owned(), format!("Bearer {t1}")),
        ("custody-chain".to_owned(), t0),
        (ACTION.to_owned(), "orders:read".to_owned()),
    ];
    let dir = tempfile::tempdir().unwrap();

    let (doors, _keep) = rt.block_on(async {
        let up = upstream().await;
        let up_auth: http::uri::Authority = up.to_string().parse().unwrap();
        let custody = Custody::load(f.dir.path()).unwrap();
        let settings = MapSettings {
            action_header: Some(ACTION.into()),
            ..MapSettings::for_audience(AUD)
        };
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let layered = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut doors = vec![
            ("hyper proxy".to_owned(), plain.local_addr().unwrap().port()),
            (
                "hyper proxy + custody Layer".to_owned(),
                layered.local_addr().unwrap().port(),
            ),
        ];
        tokio::spawn(proxy::serve(plain, up_auth.clone(), None));
        tokio::spawn(proxy::serve(layered, up_auth, Some((custody, settings))));
        let mut keep: (Vec<Envoy>, Option<custody_sidecar::Running>) = (Vec::new(), None);
        if let Some(bin) = &envoy_bin {
            let running = custody_sidecar::start(custody_sidecar::ServeArgs {
                policies: f.dir.path().to_path_buf(),
                listen: "127.0.0.1:0".parse().unwrap(),
                audience: Some(AUD.into()),
                action_header: Some(ACTION.into()),
                no_decision_log: true,
                reload_interval_ms: 0,
                ..custody_sidecar::ServeArgs::default()
            })
            .await
            .unwrap();
            let (e1, p1) = envoy(bin, dir.path(), "envoy-plain", up.port(), None);
            let (e2, p2) = envoy(
                bin,
                dir.path(),
                "envoy-authz",
                up.port(),
                Some(running.addr.port()),
            );
            doors.push(("Envoy".to_owned(), p1));
            doors.push(("Envoy + ext_authz → custody serve".to_owned(), p2));
            keep = (vec![e1, e2], Some(running));
        }
        (doors, keep)
    });

    let mut samples: Vec<Vec<u32>> = vec![Vec::new(); doors.len()];
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..doors.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let port = doors[i].1;
            let got = rt.block_on(async {
                let tasks: Vec<_> = (0..args.connections)
                    .map(|_| {
                        tokio::spawn(drive(
                            port,
                            headers.clone(),
                            Duration::from_secs(1),
                            Duration::from_secs(args.secs),
                        ))
                    })
                    .collect();
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.unwrap());
                }
                all
            });
            samples[i].extend(got);
        }
    }
    let mut rows = Vec::new();
    println!("| door | requests | p50 µs | p99 µs |\n|---|---:|---:|---:|");
    for (i, s) in samples.iter_mut().enumerate() {
        s.sort_unstable();
        let (p50, p99) = (pct(s, 0.50), pct(s, 0.99));
        rows.push((p50, p99));
        println!("| {} | {} | {p50} | {p99} |", doors[i].0, s.len());
    }
    let added = |with: usize, without: usize| {
        (
            i64::from(rows[with].0) - i64::from(rows[without].0),
            i64::from(rows[with].1) - i64::from(rows[without].1),
        )
    };
    let (l50, l99) = added(1, 0);
    println!("\nadded by the Layer: p50 {l50} µs, p99 {l99} µs");
    if rows.len() == 4 {
        let (e50, e99) = added(3, 2);
        println!("added by ext_authz: p50 {e50} µs, p99 {e99} µs");
        println!(
            "p99 added, Layer ÷ ext_authz: {:.3} (goal ≤ 0.10); p50: {:.3}",
            l99 as f64 / e99 as f64,
            l50 as f64 / e50 as f64
        );
    }
}
