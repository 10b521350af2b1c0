//! Load generator for `custody serve`'s Check: drives an in-process sidecar over loopback
//! HTTP/2 at fixed request rates with 2-token chains (open loop: latency is measured from the
//! moment each request was due, so a stalled server cannot hide its queueing), then measures
//! closed-loop throughput: with the decision cache, without it, and with no cache at all (the
//! verifier's token cache and Cedar memo off too).
//!
//! ```text
//! cargo run --release -p custody-sidecar --example custody_load -- [--secs 10] [--rates 1000,5000,10000]
//!     [--chains 64] [--connections 4] [--client-threads 2] [--write BENCHMARKS.md]
//! ```
//!
//! `--refresh` instead measures keys refreshing under load: the origin domain's keys come from a
//! `jwks_uri` on a loopback server (RS256), and the same open-loop load runs twice at the first
//! rate, once with the key set left alone and once with `Running::refresh_keys` fetching it every
//! second while the served set alternates (so every refresh publishes a new key-store epoch,
//! which makes every cached token and decision re-check against the new snapshot).
//!
//! `--write FILE` replaces the `## Sidecar load (issue 7)` section of FILE (creating it if
//! needed) with the results. Decision logs are off during the run (`--no-decision-log`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use custody_sidecar::ServeArgs;
use custody_tests::{t0_claims, t1_claims, Fixture, AUD};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use tonic::transport::Channel;

#[path = "shared/load.rs"]
mod load;

struct Opts {
    secs: u64,
    rates: Vec<u64>,
    chains: usize,
    connections: usize,
    client_threads: usize,
    write: Option<String>,
    refresh: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        secs: 10,
        rates: vec![1000, 5000, 10_000],
        chains: 64,
        connections: 4,
        client_threads: 2,
        write: None,
        refresh: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--secs" => o.secs = v.parse().unwrap(),
            "--rates" => o.rates = v.split(',').map(|r| r.parse().unwrap()).collect(),
            "--chains" => o.chains = v.parse().unwrap(),
            "--connections" => o.connections = v.parse().unwrap(),
            "--client-threads" => o.client_threads = v.parse().unwrap(),
            "--write" => o.write = Some(v),
            "--refresh" => {
                o.refresh = true;
                i += 1;
                continue;
            }
            "--bench" => {
                i += 1;
                continue;
            }
            other => panic!("unknown option `{other}`"),
        }
        i += 2;
    }
    o
}

/// `chains` distinct valid 2-token chains (a.example -> b.example -> c.example), as Check requests.
fn requests(f: &Fixture, chains: usize) -> Vec<CheckRequest> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (0..chains)
        .map(|i| {
            let mut c0 = t0_claims();
            c0["iat"] = (now - 60).into();
            c0["exp"] = (now + 3000).into();
            c0["txn"] = format!("txn-{i}").into();
            c0["sub"] = format!("user:{i}").into();
            let mut c1 = t1_claims();
            c1["iat"] = (now - 30).into();
            c1["exp"] = (now + 2400).into();
            c1["txn"] = format!("txn-{i}").into();
            c1["sub"] = format!("user:{i}").into();
            load::chain_check(&f.token("a.example", c0), &f.token("b.example", c1))
        })
        .collect()
}

struct RateResult {
    rate: u64,
    sent: u64,
    achieved: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    errors: u64,
}

/// A latency percentile in milliseconds from `sorted` microseconds.
fn pct(sorted: &[u64], p: f64) -> f64 {
    load::percentile(sorted, p).map_or(f64::NAN, |us| us as f64 / 1000.0)
}

async fn clients(addr: std::net::SocketAddr, n: usize) -> Vec<AuthorizationClient<Channel>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(load::connect(addr).await);
    }
    out
}

fn allowed(r: &envoy_types::pb::envoy::service::auth::v3::CheckResponse) -> bool {
    r.status.as_ref().is_some_and(|s| s.code == 0)
}

/// Open loop at `rate` requests per second for `secs`. A pacer thread releases each request
/// at its due time (thread sleeps are precise to tens of microseconds, tokio timers only to a
/// millisecond); latency runs from the due time to the answer.
async fn fixed_rate(
    conns: &[AuthorizationClient<Channel>],
    reqs: &Arc<Vec<CheckRequest>>,
    rate: u64,
    secs: u64,
) -> RateResult {
    let total = rate * secs;
    let lat = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(AtomicU64::new(0));
    let handle = tokio::runtime::Handle::current();
    let conns = conns.to_vec();
    let reqs2 = Arc::clone(reqs);
    let (lat2, errors2) = (Arc::clone(&lat), Arc::clone(&errors));
    let start = Instant::now();
    let pacer = std::thread::spawn(move || {
        let mut tasks = Vec::with_capacity(total as usize);
        for sent in 0..total {
            let intended = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            let mut c = conns[sent as usize % conns.len()].clone();
            let req = reqs2[sent as usize % reqs2.len()].clone();
            let (lat, errors) = (Arc::clone(&lat2), Arc::clone(&errors2));
            tasks.push(handle.spawn(async move {
                let ok = match tokio::time::timeout(Duration::from_secs(5), c.check(req)).await {
                    Ok(Ok(r)) => allowed(r.get_ref()),
                    _ => false,
                };
                let us = intended.elapsed().as_micros() as u64;
                if ok {
                    lat.lock().unwrap().push(us);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tasks
    });
    let tasks = tokio::task::spawn_blocking(move || pacer.join().unwrap())
        .await
        .unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut l = std::mem::take(&mut *lat.lock().unwrap());
    l.sort_unstable();
    RateResult {
        rate,
        sent: total,
        achieved: l.len() as f64 / elapsed,
        p50: pct(&l, 0.50),
        p99: pct(&l, 0.99),
        p999: pct(&l, 0.999),
        max: l.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Mean in-server decision time (µs) from the metrics endpoint: Check decoded to answer built,
/// transport excluded.
async fn decision_cost(metrics: std::net::SocketAddr) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let get = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    };
    let count = get("custody_decision_latency_seconds_count");
    if count == 0.0 {
        return f64::NAN;
    }
    get("custody_decision_latency_seconds_sum") / count * 1e6
}

/// Closed loop: `workers` callers back to back for `secs`; completed requests per second.
async fn max_throughput(
    conns: &[AuthorizationClient<Channel>],
    reqs: &Arc<Vec<CheckRequest>>,
    workers: usize,
    secs: u64,
) -> (f64, u64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let cpu_before = server_cpu_secs();
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let mut c = conns[w % conns.len()].clone();
        let reqs = Arc::clone(reqs);
        let (done, errors) = (Arc::clone(&done), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while Instant::now() < stop {
                match c.check(reqs[i % reqs.len()].clone()).await {
                    Ok(r) if allowed(r.get_ref()) => done.fetch_add(1, Ordering::Relaxed),
                    _ => errors.fetch_add(1, Ordering::Relaxed),
                };
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = server_cpu_secs() - cpu_before;
    let completed = done.load(Ordering::Relaxed);
    (
        completed as f64 / elapsed,
        errors.load(Ordering::Relaxed),
        cpu / completed.max(1) as f64 * 1e6,
    )
}

/// The name of the server's threads, so their CPU time can be told from the load generator's.
const SERVER_THREAD: &str = "custody-srv";

/// CPU time (user + system) of this process's server threads so far, in seconds, from
/// `/proc/self/task/*/stat` (clock ticks of 1/100 s, Linux's `USER_HZ`).
fn server_cpu_secs() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ticks = 0u64;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != SERVER_THREAD {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // after the `)` closing the command name: state is field 3, utime 14, stime 15
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        for i in [11, 12] {
            ticks += fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ticks as f64 / 100.0
}

fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(SERVER_THREAD)
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Which caches a run has: the decision cache, and the verifier's own (token cache, Cedar memo).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caches {
    All,
    NoDecisionCache,
    None,
}

impl Caches {
    fn label(self) -> &'static str {
        match self {
            Caches::All => "on",
            Caches::NoDecisionCache => "off",
            Caches::None => "off, verifier caches off too",
        }
    }
}

struct Run {
    caches: Caches,
    rates: Vec<RateResult>,
    cost_us: f64,
    throughput: f64,
    throughput_errors: u64,
    /// Server threads' CPU time per completed request in the closed loop, µs.
    server_cpu_us: f64,
}

fn run_one(f: &Fixture, o: &Opts, caches: Caches) -> Run {
    let cache = caches == Caches::All;
    let verifier_caches = caches != Caches::None;
    let server_rt = server_runtime();
    let args = ServeArgs {
        policies: f.dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        audience: Some(AUD.into()),
        action_header: Some("x-custody-action".into()),
        no_decision_cache: !cache,
        no_decision_log: true,
        reload_interval_ms: 0,
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        max_concurrency: 100_000,
        ..ServeArgs::default()
    };
    let args = if verifier_caches {
        args
    } else {
        ServeArgs {
            token_cache_entries: 0,
            cedar_memo_entries: 0,
            ..args
        }
    };
    let running = server_rt.block_on(custody_sidecar::start(args)).unwrap();
    let addr = running.addr;
    let metrics = running.metrics_addr.unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.client_threads)
        .enable_all()
        .build()
        .unwrap();
    let reqs = Arc::new(requests(f, o.chains));
    let (rates, cost_us, throughput, throughput_errors, server_cpu_us) = client_rt.block_on(async {
        let conns = clients(addr, o.connections).await;
        // warm up: every chain once, so signatures and (if on) decisions are cached
        let _ = fixed_rate(&conns, &reqs, 1000, 1).await;
        let mut rates = Vec::new();
        for &r in &o.rates {
            let res = fixed_rate(&conns, &reqs, r, o.secs).await;
            eprintln!(
                "caches={} rate={r}: achieved {:.0}/s p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms max {:.3} ms errors {}",
                caches.label(), res.achieved, res.p50, res.p99, res.p999, res.max, res.errors
            );
            rates.push(res);
        }
        let cost = decision_cost(metrics).await;
        let (tp, errs, cpu) = max_throughput(&conns, &reqs, 64, o.secs.min(5)).await;
        eprintln!(
            "caches={} closed loop (64 callers): {tp:.0}/s errors {errs}; server CPU {cpu:.1} us/request; mean decision {cost:.1} us",
            caches.label()
        );
        (rates, cost, tp, errs, cpu)
    });
    server_rt.block_on(running.shutdown()).unwrap();
    Run {
        caches,
        rates,
        cost_us,
        throughput,
        throughput_errors,
        server_cpu_us,
    }
}

fn table(runs: &[Run], o: &Opts) -> String {
    let mut s = String::new();
    s.push_str("## Sidecar load (issue 7)\n\n");
    s.push_str(&format!(
        "`cargo run --release -p custody-sidecar --example custody_load -- --secs {} --write BENCHMARKS.md`: \
         Check (ext_authz v3) over loopback HTTP/2 against an in-process `custody serve` (2 tokio workers; the \
         load generator runs on {} more tokio thread(s) and a pacer thread of the same {}-core machine), {} distinct valid 2-token chains \
         (a.example → b.example → c.example) round-robin over {} connections, open loop (latency measured from \
         each request's due time), {} s per rate after a 1 s warm-up; decision logs off. Errors = RPC failures, \
         timeouts (5 s) and any non-allow answer.\n\n",
        o.secs,
        o.client_threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.chains,
        o.connections,
        o.secs
    ));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.push_str(&format!(
        "Load average when the table was written (`/proc/loadavg`): `{}` — other work on the machine shares the cores \
         and shows in the tails.\n\n",
        load.trim()
    ));
    s.push_str("| decision cache | target rps | sent | achieved rps | p50 ms | p99 ms | p99.9 ms | max ms | errors |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for run in runs {
        for r in &run.rates {
            s.push_str(&format!(
                "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} |\n",
                run.caches.label(),
                r.rate,
                r.sent,
                r.achieved,
                r.p50,
                r.p99,
                r.p999,
                r.max,
                r.errors
            ));
        }
    }
    s.push_str(
        "\nClosed loop (64 concurrent callers: the throughput ceiling, client and server sharing the \
         cores), the server threads' CPU time per request in that loop (`/proc/self/task/*/stat`: \
         the sidecar's cost, transport included, the load generator's excluded; its inverse is what \
         one core serves), and the mean in-server decision time over the fixed-rate runs \
         (`custody_decision_latency_seconds` sum / count: Check decoded to answer built, transport \
         excluded):\n\n| decision cache | requests/s | errors | server CPU µs / request | mean decision µs |\n|---|---:|---:|---:|---:|\n",
    );
    for run in runs {
        s.push_str(&format!(
            "| {} | {:.0} | {} | {:.1} | {:.1} |\n",
            run.caches.label(),
            run.throughput,
            run.throughput_errors,
            run.server_cpu_us,
            run.cost_us
        ));
    }
    let find = |c: Caches| runs.iter().find(|r| r.caches == c);
    if let Some(on) = find(Caches::All) {
        for (other, what) in [
            (
                Caches::NoDecisionCache,
                "over the verifier's own caches alone",
            ),
            (Caches::None, "over no cache at all"),
        ] {
            if let Some(off) = find(other).filter(|o| o.throughput > 0.0 && on.cost_us > 0.0) {
                s.push_str(&format!(
                    "\nDecision-cache lift on repeated chains {what}: {:.1}× end to end (closed loop, client and server on the same cores), {:.1}× in the server's CPU per request (requests one core serves), {:.1}× in decision cost.\n",
                    on.throughput / off.throughput,
                    off.server_cpu_us / on.server_cpu_us,
                    off.cost_us / on.cost_us
                ));
            }
        }
    }
    s
}

fn main() {
    let o = opts();
    if o.refresh {
        refresh_runs(&o);
        return;
    }
    let f = Fixture::standard();
    let runs: Vec<Run> = [Caches::All, Caches::NoDecisionCache, Caches::None]
        .into_iter()
        .map(|c| run_one(&f, &o, c))
        .collect();
    let t = table(&runs, &o);
    println!("{t}");
    if let Some(path) = &o.write {
        load::write_section(path, &t);
        eprintln!("wrote the section into {path}");
    }
}

fn rsa(kid: &str) -> custody_jose::SigningKey {
    custody_jose::SigningKey::generate(kid, custody_jose::Algorithm::Rs256).unwrap()
}

fn jwks(keys: &[&custody_jose::SigningKey]) -> String {
    let mut set = custody_jose::KeySet::new();
    for k in keys {
        set.insert(k.public()).unwrap();
    }
    set.to_jwks().to_string()
}

/// The same load with and without the origin domain's remote key set refreshing every second.
fn refresh_runs(o: &Opts) {
    use custody_tests::docserver::{Doc, DocServer};
    let rate = o.rates.first().copied().unwrap_or(1000);
    let server_rt = server_runtime();
    let docs = DocServer::start(&server_rt);
    let (a1, spare) = (rsa("a-1"), rsa("a-spare"));
    docs.set("/jwks", Doc::ok(jwks(&[&a1])));
    let f = custody_tests::PackBuilder::default()
        .key("a.example", a1.clone())
        .remote(
            "a.example",
            &format!("  jwks_uri \"{}\"", docs.url("/jwks")),
        )
        .build();
    let args = ServeArgs {
        policies: f.dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        audience: Some(AUD.into()),
        action_header: Some("x-custody-action".into()),
        no_decision_log: true,
        reload_interval_ms: 0,
        max_concurrency: 100_000,
        ..ServeArgs::default()
    };
    let running = Arc::new(server_rt.block_on(custody_sidecar::start(args)).unwrap());
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.client_threads)
        .enable_all()
        .build()
        .unwrap();
    let reqs = Arc::new(requests(&f, o.chains));
    let mut rows = Vec::new();
    for refreshing in [false, true, false, true] {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refresher = refreshing.then(|| {
            let (running, stop) = (Arc::clone(&running), Arc::clone(&stop));
            let docs = docs.clone();
            let (a1, spare) = (a1.clone(), spare.clone());
            server_rt.spawn(async move {
                let mut n = 0u64;
                let mut refreshes = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    n += 1;
                    let set = if n % 2 == 1 {
                        jwks(&[&a1, &spare])
                    } else {
                        jwks(&[&a1])
                    };
                    docs.set("/jwks", Doc::ok(set));
                    running.refresh_keys().await;
                    refreshes += 1;
                }
                refreshes
            })
        });
        let res = client_rt.block_on(async {
            let conns = clients(running.addr, o.connections).await;
            let _ = fixed_rate(&conns, &reqs, 1000, 1).await;
            fixed_rate(&conns, &reqs, rate, o.secs).await
        });
        stop.store(true, Ordering::Relaxed);
        let refreshes = refresher.map_or(0, |t| server_rt.block_on(t).unwrap());
        eprintln!(
            "refresh={refreshing} rate={rate}: achieved {:.0}/s p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms errors {} refreshes {refreshes}",
            res.achieved, res.p50, res.p99, res.p999, res.errors
        );
        rows.push((refreshing, res, refreshes));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "`custody_load --refresh --rates {rate} --secs {}` ({} chains, {} connections; load average `{}`):\n",
        o.secs,
        o.chains,
        o.connections,
        load.trim()
    );
    println!("| keys refreshing every 1 s | rps | sent | p50 ms | p99 ms | p99.9 ms | errors | refreshes |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (refreshing, r, n) in &rows {
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {} | {n} |",
            if *refreshing { "yes" } else { "no" },
            r.rate,
            r.sent,
            r.p50,
            r.p99,
            r.p999,
            r.errors
        );
    }
    let p99 = |on: bool| {
        let v: Vec<f64> = rows.iter().filter(|r| r.0 == on).map(|r| r.1.p99).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    println!(
        "\nmean p99 with refresh ÷ without: {:.2} (target ≤ 1.2)",
        p99(true) / p99(false)
    );
    let running = Arc::try_unwrap(running).ok().unwrap();
    server_rt.block_on(running.shutdown()).unwrap();
}
