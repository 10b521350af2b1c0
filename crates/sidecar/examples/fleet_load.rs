//! Load scenario for a fleet (issue 17): three in-process sidecars and one real `redis-server`
//! (a subprocess on a free port) on this machine.
//!
//! ```text
//! cargo run --release -p custody-sidecar --example fleet_load -- [--rate 5000] [--secs 10]
//!     [--revocations 30] [--workers 32] [--write BENCHMARKS.md]
//! ```
//!
//! 1. **Propagation.** An open-loop load of `--rate` Check calls a second in total, round robin
//!    over the three nodes (64 distinct valid chains; decision cache on). During it, every
//!    `secs / revocations` seconds one chain's origin is revoked with `Store::revoke`; from the
//!    moment it returns, a prober per node sends that chain to its node back to back until the
//!    node answers `revoked`. The propagation time of a node is that wait (a Check round trip
//!    included). Reported: p50, p99, max over all revocations × nodes, and the load's own p99
//!    and errors (denials of chains not revoked yet).
//! 2. **Redis killed and restarted mid-run.** The load goes on while Redis is killed, the
//!    revoked chains stay revoked at every node, and after Redis restarts a new revocation
//!    propagates again.
//! 3. **Replay checks pipelined.** Closed-loop throughput (`--workers` callers) of one sidecar
//!    deciding fresh single-use tokens (`chain { one_time_tokens true }`, each request a new
//!    `jti`, so every decision is cold and every one needs a replay check through Redis),
//!    against the same requests on the same pack without `store` and `one_time_tokens`.
//!    Reported: the ratio (goal ≥ 0.8).
//!
//! `--write FILE` replaces (or appends) the `## Fleet (issue 17)` section of FILE.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a development tool: a panic with its message is the right report of a broken set-up"
)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custody_sidecar::{Running, ServeArgs};
use custody_store::Store;
use custody_tests::redis::Redis;
use custody_tests::{t0_claims, t1_claims, Fixture, PackBuilder, AUD};
use custody_verifier::{Revocation, RevocationKind};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tonic::transport::Channel;

#[path = "shared/load.rs"]
mod load;

struct Opts {
    rate: u64,
    secs: u64,
    revocations: usize,
    workers: usize,
    write: Option<String>,
}

fn opts() -> Opts {
    let mut o = Opts {
        rate: 5000,
        secs: 10,
        revocations: 30,
        workers: 32,
        write: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--rate" => o.rate = v.parse().unwrap(),
            "--secs" => o.secs = v.parse().unwrap(),
            "--revocations" => o.revocations = v.parse().unwrap(),
            "--workers" => o.workers = v.parse().unwrap(),
            "--write" => o.write = Some(v),
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

fn now() -> i64 {
    custody_verifier::system_now()
}

/// Chain `i`: origin `a.example|user:<i>`; `jti` on the presented token when given.
fn chain(f: &Fixture, i: usize, jti: Option<String>) -> CheckRequest {
    let t = now();
    let mut c0 = t0_claims();
    c0["iat"] = (t - 60).into();
    c0["exp"] = (t + 3000).into();
    c0["sub"] = format!("user:{i}").into();
    let mut c1 = t1_claims();
    c1["iat"] = (t - 30).into();
    c1["exp"] = (t + 2400).into();
    c1["sub"] = format!("user:{i}").into();
    if let Some(j) = jti {
        c1["jti"] = j.into();
    }
    load::chain_check(&f.token("a.example", c0), &f.token("b.example", c1))
}

fn code(r: &CheckResponse) -> String {
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    match &r.http_response {
        Some(HttpResponse::OkResponse(_)) => "allow".into(),
        Some(HttpResponse::DeniedResponse(d)) => serde_json::from_str::<serde_json::Value>(&d.body)
            .ok()
            .and_then(|v| v["reasons"][0]["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "deny".into()),
        _ => "none".into(),
    }
}

fn args(f: &Fixture, cache: bool) -> ServeArgs {
    ServeArgs {
        policies: f.dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        audience: Some(AUD.into()),
        action_header: Some("x-custody-action".into()),
        no_decision_cache: !cache,
        no_decision_log: true,
        reload_interval_ms: 0,
        max_concurrency: 100_000,
        // one node's Redis round trip must not be this run's bottleneck on 2 shared cores
        store_timeout_ms: 200,
        ..ServeArgs::default()
    }
}

async fn client(r: &Running) -> AuthorizationClient<Channel> {
    load::connect(r.addr).await
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    load::percentile(sorted, p).unwrap_or(f64::NAN)
}

struct Load {
    stop: Arc<AtomicBool>,
    lat_us: Arc<Mutex<Vec<u64>>>,
    unexpected: Arc<AtomicU64>,
    pacer: std::thread::JoinHandle<()>,
}

/// Open loop at `rate` over `conns` (round robin) until stopped; chains in `revoked` may be
/// denied `revoked`, any other denial counts as unexpected.
fn start_load(
    handle: tokio::runtime::Handle,
    conns: Vec<AuthorizationClient<Channel>>,
    reqs: Arc<Vec<CheckRequest>>,
    revoked: Arc<Mutex<Vec<bool>>>,
    rate: u64,
) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let lat_us = Arc::new(Mutex::new(Vec::new()));
    let unexpected = Arc::new(AtomicU64::new(0));
    let (stop2, lat2, unexpected2) = (
        Arc::clone(&stop),
        Arc::clone(&lat_us),
        Arc::clone(&unexpected),
    );
    let pacer = std::thread::spawn(move || {
        let start = Instant::now();
        let mut sent: u64 = 0;
        while !stop2.load(Ordering::Relaxed) {
            let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            let n = Instant::now();
            if due > n {
                std::thread::sleep(due - n);
            }
            let k = sent as usize % reqs.len();
            let mut c = conns[sent as usize % conns.len()].clone();
            let req = reqs[k].clone();
            let (lat, unexpected, revoked) = (
                Arc::clone(&lat2),
                Arc::clone(&unexpected2),
                Arc::clone(&revoked),
            );
            handle.spawn(async move {
                let answer = tokio::time::timeout(Duration::from_secs(5), c.check(req)).await;
                let us = due.elapsed().as_micros() as u64;
                let ok = match answer {
                    Ok(Ok(r)) => {
                        let got = code(r.get_ref());
                        got == "allow" || (got == "revoked" && revoked.lock().unwrap()[k])
                    }
                    _ => false,
                };
                if ok {
                    lat.lock().unwrap().push(us);
                } else {
                    unexpected.fetch_add(1, Ordering::Relaxed);
                }
            });
            sent += 1;
        }
    });
    Load {
        stop,
        lat_us,
        unexpected,
        pacer,
    }
}

/// Revokes chain `k`'s origin and returns, per node, how long after `revoke` returned the node
/// first answered `revoked`.
async fn revoke_and_probe(
    store: &Store,
    nodes: &[AuthorizationClient<Channel>],
    req: &CheckRequest,
    k: usize,
    revoked: &Mutex<Vec<bool>>,
) -> Vec<f64> {
    revoked.lock().unwrap()[k] = true;
    let r = Revocation::new(
        RevocationKind::Origin,
        format!("a.example|user:{k}"),
        now() + 600,
    )
    .unwrap();
    store.revoke(&r).await.unwrap();
    let returned = Instant::now();
    // each node probed by a task of its own, all at once: a node's time is not the time spent
    // probing the nodes before it
    let probes: Vec<_> = nodes
        .iter()
        .map(|c| {
            let mut c = c.clone();
            let req = req.clone();
            tokio::spawn(async move {
                loop {
                    let r = c.check(req.clone()).await.unwrap();
                    if code(r.get_ref()) == "revoked" {
                        return returned.elapsed().as_secs_f64() * 1000.0;
                    }
                    assert!(
                        returned.elapsed() < Duration::from_secs(10),
                        "chain {k} not revoked after 10 s"
                    );
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for p in probes {
        out.push(p.await.expect("a probe task"));
    }
    out
}

struct Propagation {
    samples: Vec<f64>,
    load_p99_ms: f64,
    load_achieved: f64,
    unexpected: u64,
    after_restart_ms: Vec<f64>,
    held_while_down: bool,
}

fn propagation(o: &Opts, redis: &mut Redis) -> Propagation {
    let f = PackBuilder::default()
        .extra_trust(&format!("store \"{}\"\n", redis.url()))
        .build();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running: Vec<Running> = (0..3)
        .map(|_| {
            server_rt
                .block_on(custody_sidecar::start(args(&f, true)))
                .unwrap()
        })
        .collect();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = Store::open(&redis.url()).unwrap();
    let chains = 64;
    let reqs = Arc::new((0..chains).map(|i| chain(&f, i, None)).collect::<Vec<_>>());
    let revoked = Arc::new(Mutex::new(vec![false; chains]));
    let (load_conns, probe_conns) = client_rt.block_on(async {
        let mut load = Vec::new();
        let mut probe = Vec::new();
        for r in &running {
            for _ in 0..2 {
                load.push(client(r).await);
            }
            probe.push(client(r).await);
        }
        (load, probe)
    });
    // warm: every chain once at every node
    client_rt.block_on(async {
        for c in &probe_conns {
            for r in reqs.iter() {
                assert_eq!(
                    code(c.clone().check(r.clone()).await.unwrap().get_ref()),
                    "allow"
                );
            }
        }
    });
    let load = start_load(
        client_rt.handle().clone(),
        load_conns,
        Arc::clone(&reqs),
        Arc::clone(&revoked),
        o.rate,
    );
    let started = Instant::now();
    let every = Duration::from_secs_f64(o.secs as f64 / o.revocations.max(1) as f64);
    let mut samples = Vec::new();
    for n in 0..o.revocations.min(chains - 8) {
        std::thread::sleep(every);
        let s = client_rt.block_on(revoke_and_probe(
            &store,
            &probe_conns,
            &reqs[n],
            n,
            &revoked,
        ));
        eprintln!("revocation {n}: {s:?} ms");
        samples.extend(s);
    }
    // Redis killed mid-run: the load goes on, what is held stays revoked
    redis.down();
    std::thread::sleep(Duration::from_secs(3));
    let held_while_down = client_rt.block_on(async {
        let mut all = true;
        for c in &probe_conns {
            all &= code(c.clone().check(reqs[0].clone()).await.unwrap().get_ref()) == "revoked";
            all &= code(
                c.clone()
                    .check(reqs[chains - 1].clone())
                    .await
                    .unwrap()
                    .get_ref(),
            ) == "allow";
        }
        all
    });
    redis.up();
    // the followers reconnect (back-off at most 5 s), then a new revocation propagates again
    std::thread::sleep(Duration::from_secs(6));
    let k = chains - 2;
    let after_restart_ms = client_rt.block_on(revoke_and_probe(
        &store,
        &probe_conns,
        &reqs[k],
        k,
        &revoked,
    ));
    eprintln!("after the restart: {after_restart_ms:?} ms");
    load.stop.store(true, Ordering::Relaxed);
    load.pacer.join().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat: Vec<f64> = load
        .lat_us
        .lock()
        .unwrap()
        .iter()
        .map(|u| *u as f64 / 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    let unexpected = load.unexpected.load(Ordering::Relaxed);
    for r in running {
        server_rt.block_on(r.shutdown()).unwrap();
    }
    samples.sort_by(f64::total_cmp);
    Propagation {
        samples,
        load_p99_ms: pct(&lat, 0.99),
        load_achieved: lat.len() as f64 / elapsed,
        unexpected,
        after_restart_ms,
        held_while_down,
    }
}

/// Closed-loop throughput of one sidecar deciding `reqs` once each.
fn throughput(f: &Fixture, reqs: Vec<CheckRequest>, workers: usize) -> (f64, u64) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running = server_rt
        .block_on(custody_sidecar::start(args(f, false)))
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let reqs = Arc::new(reqs);
    let (rate, bad) = client_rt.block_on(async {
        let c = client(&running).await;
        let next = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let (mut c, reqs, next, bad) = (
                    c.clone(),
                    Arc::clone(&reqs),
                    Arc::clone(&next),
                    Arc::clone(&bad),
                );
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(r) = reqs.get(i) else { break };
                        let a = c.check(r.clone()).await.unwrap();
                        let got = code(a.get_ref());
                        // the first few denials are shown; all are counted
                        if got != "allow" && bad.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("denied: {got}: {:?}", a.get_ref().http_response);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        (
            reqs.len() as f64 / start.elapsed().as_secs_f64(),
            bad.load(Ordering::Relaxed),
        )
    });
    server_rt.block_on(running.shutdown()).unwrap();
    (rate, bad)
}

fn main() {
    let o = opts();
    let mut redis = Redis::start()
        .expect("fleet_load needs redis-server on PATH (apt-get install redis-server)");
    let p = propagation(&o, &mut redis);
    // replay: fresh single-use tokens, the same requests with and without the store
    let n = 6000;
    let with = PackBuilder::default()
        .extra_trust(&format!("store \"{}\"\n", redis.url()))
        .chain("one_time_tokens true")
        .build();
    let without = PackBuilder::default().build();
    let mint = |f: &Fixture, tag: &str| -> Vec<CheckRequest> {
        (0..n)
            .map(|i| chain(f, 1000 + i % 64, Some(format!("{tag}-{i}"))))
            .collect()
    };
    // alternate, twice each, to spread the machine's drift over both
    let mut on = Vec::new();
    let mut off = Vec::new();
    for round in 0..2 {
        let (r, bad) = throughput(&without, mint(&without, &format!("off{round}")), o.workers);
        assert_eq!(bad, 0, "denials without the store");
        off.push(r);
        let (r, bad) = throughput(&with, mint(&with, &format!("on{round}")), o.workers);
        assert_eq!(bad, 0, "denials with the store");
        on.push(r);
        eprintln!(
            "round {round}: without {:.0}/s, with replay checks {:.0}/s",
            off[round], on[round]
        );
    }
    let (on_mean, off_mean) = (on.iter().sum::<f64>() / 2.0, off.iter().sum::<f64>() / 2.0);
    let ratio = on_mean / off_mean;
    let uptime = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let section = format!(
        "## Fleet (issue 17)\n\n\
         `cargo run --release -p custody-sidecar --example fleet_load -- --rate {rate} --secs {secs} --revocations {revs} --write BENCHMARKS.md`: three sidecars in one process and one `redis-server` {redis} on this machine (2 cores; load average at the end: {load}).\n\n\
         **Propagation** under an open-loop load of {rate} Check calls/s in total (round robin over the three nodes, 64 chains, decision cache on): a chain's origin revoked with `Store::revoke` {revs} times during the run; for each node, the time from `revoke` returning to that node's first `revoked` answer (a prober per node sending the chain back to back, its Check round trip included; the three probers run at once, each on its own task, so a node's time does not include probing the others{few}).\n\n\
         | samples | p50 | p99 | max | goal |\n|---:|---:|---:|---:|---|\n\
         | {ns} | {p50:.2} ms | {p99:.2} ms | {max:.2} ms | p99 under 100 ms: {met} |\n\n\
         The load meanwhile: {achieved:.0} answers/s, p99 {lp99:.2} ms, {unexpected} unexpected answers (errors, or a denial of a chain not revoked).\n\n\
         **Redis killed mid-run** (SIGKILL, 3 s, restarted empty on the same port): every node kept denying the revoked chains and allowing the others while it was down ({held}); after the followers reconnected, a new revocation reached the three nodes in {after}.\n\n\
         **Replay checks pipelined:** closed-loop throughput ({workers} callers, one sidecar) on {n} fresh single-use tokens (every decision cold), with `store` + `chain {{ one_time_tokens true }}` (every decision a `SET NX` through the node's pipeline) against the same requests on the pack without them, alternated twice: {on_mean:.0}/s vs {off_mean:.0}/s = **{ratio:.2}** (goal ≥ 0.8: {met2}).\n",
        rate = o.rate,
        secs = o.secs,
        revs = o.revocations,
        redis = std::process::Command::new("redis-server").arg("--version").output().map(|v| String::from_utf8_lossy(&v.stdout).split_whitespace().nth(2).unwrap_or("").to_owned()).unwrap_or_default(),
        load = uptime.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        ns = p.samples.len(),
        // under 100 samples the nearest-rank p99 is the largest
        few = if p.samples.len() < 100 {
            format!("; with {} samples the p99 is the largest", p.samples.len())
        } else {
            String::new()
        },
        p50 = pct(&p.samples, 0.5),
        p99 = pct(&p.samples, 0.99),
        max = p.samples.last().copied().unwrap_or(f64::NAN),
        met = if pct(&p.samples, 0.99) < 100.0 { "met" } else { "missed" },
        achieved = p.load_achieved,
        lp99 = p.load_p99_ms,
        unexpected = p.unexpected,
        held = if p.held_while_down { "checked at every node" } else { "FAILED at some node" },
        after = p.after_restart_ms.iter().map(|m| format!("{m:.1} ms")).collect::<Vec<_>>().join(", "),
        workers = o.workers,
        met2 = if ratio >= 0.8 { "met" } else { "missed" },
    );
    println!("{section}");
    if let Some(path) = &o.write {
        load::write_section(path, &section);
        eprintln!("wrote the section into {path}");
    }
    assert!(
        p.held_while_down,
        "a revocation held was not applied while Redis was down"
    );
}
