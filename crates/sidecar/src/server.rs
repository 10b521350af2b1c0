//! The gRPC server: the three services over one tonic router, the reload tasks, the metrics
//! endpoint, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_verifier::{Decision, Request, Verifier};
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Response, Status};

use crate::cache::{Bounds, DecisionCache};
use crate::check;
use crate::config::{ServeArgs, Settings};
use crate::log::{DecisionLine, Logger};
use crate::metrics::{self, Metrics, Rpc};
use crate::native;
use crate::pb;
use crate::pb::verifier_server::{Verifier as VerifierService, VerifierServer};
use crate::reload;
use crate::shed::Shed;
use crate::state::{self, State};

/// The largest HTTP/2 header list (gRPC metadata) accepted, 64 KiB: Envoy's own default limit
/// on request headers is 60 KiB, and here the metadata carries only transport fields (deadline,
/// tracing); the HTTP headers Envoy asks about travel inside the Check message, under
/// `--max-message-bytes`.
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Every way serving fails, mapped to a gRPC status in one place.
#[derive(Debug)]
enum ServeError {
    /// A batch larger than `--max-batch`.
    BatchTooLarge(usize),
    /// A worker task failed.
    Internal(String),
}

impl From<ServeError> for Status {
    fn from(e: ServeError) -> Status {
        match e {
            ServeError::BatchTooLarge(max) => {
                Status::invalid_argument(format!("a batch holds at most {max} requests"))
            }
            ServeError::Internal(m) => Status::internal(m),
        }
    }
}

#[derive(Clone, Debug)]
struct Service {
    state: Arc<State>,
}

impl Service {
    fn record(
        &self,
        rpc: Rpc,
        req: Option<&Request>,
        d: &Decision,
        started: Instant,
        cached: bool,
        pack: &str,
    ) {
        let latency = started.elapsed();
        let m = &self.state.metrics;
        m.decision(rpc, d.is_allowed(), d.code().map_or("", |c| c.as_str()));
        m.latency(latency);
        self.state.log.decision(&DecisionLine {
            rpc,
            action: req.map_or("", |r| r.action.as_str()),
            peer: req.and_then(|r| r.peer.as_deref()),
            decision: d,
            latency,
            cached,
            pack,
        });
    }

    /// The verifier on the pack in force when the RPC starts: the RPC decides on it to the
    /// end, whatever reloads happen meanwhile.
    async fn snapshot(&self) -> Arc<Verifier> {
        let verifier = self.state.verifier.load_full();
        #[cfg(feature = "test-hooks")]
        self.state.gate.pass().await;
        verifier
    }

    /// Decides one Check request (the mapping and Envoy's answer are [`check::answer`]'s).
    fn decide_check(&self, verifier: &Verifier, check: &CheckRequest) -> CheckResponse {
        let started = Instant::now();
        let st = &self.state;
        let pack = verifier.pack().version.as_str();
        let mut cached = false;
        let out = check::answer(check, &st.settings, &st.limits, pack, |req| {
            self.cached_decision(verifier, pack, req, &mut cached)
        });
        let req = out.request.as_ref();
        self.record(Rpc::Check, req, &out.decision, started, cached, pack);
        out.response
    }

    /// A Check request's decision: from the cache when it can, else the verifier's (cached).
    fn cached_decision(
        &self,
        verifier: &Verifier,
        pack: &str,
        req: &Request,
        cached: &mut bool,
    ) -> Arc<Decision> {
        let st = &self.state;
        let Some(cache) = &st.cache else {
            return Arc::new(verifier.verify(req));
        };
        let key = DecisionCache::key(pack, req);
        if let Some(d) = cache.get(&key) {
            st.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            *cached = true;
            return d;
        }
        st.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        let now = req.now.unwrap_or_else(unix_now);
        let d = verifier.verify(req);
        if let Some(u) = cache.put(key, req, &d, now, &st.limits) {
            let m = &st.metrics;
            m.cache_entries.store(u.entries as u64, Ordering::Relaxed);
            m.cache_bytes.store(u.bytes as u64, Ordering::Relaxed);
            m.cache_evictions
                .fetch_add(u.evicted as u64, Ordering::Relaxed);
        }
        Arc::new(d)
    }

    fn decide_one(&self, verifier: &Verifier, r: pb::VerifyRequest) -> pb::Decision {
        let started = Instant::now();
        let pack = verifier.pack().version.as_str();
        let (req, d) = match native::convert(
            r,
            self.state.settings.allow_request_time,
            &self.state.limits,
        ) {
            Ok(req) => {
                let d = verifier.verify(&req);
                (Some(req), d)
            }
            Err(m) => (None, Decision::invalid_request(m)),
        };
        self.record(Rpc::Verify, req.as_ref(), &d, started, false, pack);
        native::to_pb(&d, pack)
    }

    fn decide_batch(
        &self,
        verifier: &Verifier,
        reqs: Vec<pb::VerifyRequest>,
    ) -> pb::VerifyBatchResponse {
        let started = Instant::now();
        let pack = verifier.pack().version.as_str();
        let allow_time = self.state.settings.allow_request_time;
        let mapped: Vec<Result<Request, String>> = reqs
            .into_iter()
            .map(|r| native::convert(r, allow_time, &self.state.limits))
            .collect();
        let valid: Vec<Request> = mapped
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let mut decided = verifier.verify_batch(&valid).into_iter();
        let mut decisions = Vec::with_capacity(mapped.len());
        for m in &mapped {
            let (req, d) = match m {
                Ok(req) => (
                    Some(req),
                    decided
                        .next()
                        .unwrap_or_else(|| Decision::invalid_request("batch mismatch")),
                ),
                Err(m) => (None, Decision::invalid_request(m.clone())),
            };
            self.record(Rpc::VerifyBatch, req, &d, started, false, pack);
            decisions.push(native::to_pb(&d, pack));
        }
        pb::VerifyBatchResponse {
            decisions,
            pack_version: pack.to_owned(),
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[tonic::async_trait]
impl Authorization for Service {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let verifier = self.snapshot().await;
        Ok(Response::new(
            self.decide_check(&verifier, request.get_ref()),
        ))
    }
}

#[tonic::async_trait]
impl VerifierService for Service {
    async fn verify(
        &self,
        request: tonic::Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let verifier = self.snapshot().await;
        Ok(Response::new(
            self.decide_one(&verifier, request.into_inner()),
        ))
    }

    async fn verify_batch(
        &self,
        request: tonic::Request<pb::VerifyBatchRequest>,
    ) -> Result<Response<pb::VerifyBatchResponse>, Status> {
        let reqs = request.into_inner().requests;
        let max = self.state.settings.max_batch;
        if reqs.len() > max {
            return Err(ServeError::BatchTooLarge(max).into());
        }
        let verifier = self.snapshot().await;
        let this = self.clone();
        let out = tokio::task::spawn_blocking(move || this.decide_batch(&verifier, reqs))
            .await
            .map_err(|e| ServeError::Internal(format!("batch worker failed: {e}")))?;
        Ok(Response::new(out))
    }
}

/// A running sidecar (see [`start`]).
#[derive(Debug)]
pub struct Running {
    /// The gRPC address actually bound.
    pub addr: SocketAddr,
    /// The metrics address actually bound, if any.
    pub metrics_addr: Option<SocketAddr>,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), String>>,
    tasks: Vec<JoinHandle<()>>,
    drain_timeout: Duration,
}

impl Running {
    /// Reloads the pack now (what SIGHUP does); `Ok(true)` when a new pack was swapped in.
    pub async fn reload(&self) -> Result<bool, String> {
        self.state.reload("api").await
    }

    /// The gate that holds RPCs after their pack snapshot (feature `test-hooks`, tests only).
    #[cfg(feature = "test-hooks")]
    pub fn gate(&self) -> &crate::testing::Gate {
        &self.state.gate
    }

    /// The version of the pack in force.
    pub fn pack_version(&self) -> String {
        self.state.verifier.load().pack().version.clone()
    }

    /// Stops accepting connections, lets RPCs in flight finish (at most the drain timeout) and
    /// returns `Ok(true)` when everything drained in time.
    pub async fn shutdown(mut self) -> Result<bool, String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.state.log.event("info", "draining", json!({}));
        let drained = tokio::time::timeout(self.drain_timeout, &mut self.server).await;
        for t in &self.tasks {
            t.abort();
        }
        match drained {
            Ok(Ok(r)) => r.map(|()| true),
            Ok(Err(e)) => Err(format!("server task failed: {e}")),
            Err(_) => {
                self.server.abort();
                self.state.log.event("warn", "drain_timeout", json!({}));
                Ok(false)
            }
        }
    }
}

/// Loads the pack, binds the listeners and starts serving on the current tokio runtime.
pub async fn start(args: ServeArgs) -> Result<Running, String> {
    let settings = Settings::from_args(&args)?;
    let metrics = Arc::new(Metrics::default());
    let log = Logger::start(Arc::clone(&metrics), settings.decision_log);
    let limits = custody_verifier::Limits::default();
    let dir = args.policies.clone();
    let before = reload::fingerprint(&dir);
    let for_load = settings.clone();
    let loaded = tokio::task::spawn_blocking(move || state::load(&dir, &limits, &for_load))
        .await
        .map_err(|e| format!("pack loader failed: {e}"))?
        .map_err(|e| format!("cannot load the pack `{}`: {e}", args.policies.display()))?;
    for w in &loaded.warnings {
        log.event("warn", "pack_warning", json!({"warning": w}));
    }
    let cache = (!args.no_decision_cache).then(|| {
        DecisionCache::new(Bounds {
            entries: args.decision_cache_entries,
            bytes: args.decision_cache_bytes,
            ttl: Duration::from_secs(args.decision_cache_ttl_secs),
        })
    });
    let state = Arc::new(State::new(
        loaded.verifier,
        settings,
        args.policies.clone(),
        cache,
        metrics,
        log,
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on `{}`: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut tasks = Vec::new();
    let metrics_addr = match args.metrics_listen {
        Some(m) => {
            let l = metrics::bind(m).await?;
            let bound = l.local_addr().map_err(|e| e.to_string())?;
            let st = Arc::clone(&state);
            let stats: metrics::VerifierStats =
                Arc::new(move || metrics::token_cache_text(&st.verifier.load()));
            tasks.push(tokio::spawn(metrics::serve(
                l,
                Arc::clone(&state.metrics),
                stats,
            )));
            Some(bound)
        }
        None => None,
    };
    if let Some(every) = state.settings.reload_interval {
        tasks.push(tokio::spawn(reload::watch(
            Arc::clone(&state),
            every,
            before,
        )));
    }
    tasks.push(tokio::spawn(reload::on_sighup(Arc::clone(&state))));
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(serve(
        Arc::clone(&state),
        listener,
        args.max_message_bytes,
        rx,
    ));
    let s = &state.settings;
    state.log.event(
        "info",
        "start",
        json!({
            "listen": addr.to_string(),
            "metrics": metrics_addr.map(|a| a.to_string()),
            "pack": state.verifier.load().pack().version,
            "policies": state.policies.display().to_string(),
            "audience": s.audience,
            "action_header": s.action_header,
            "decision_cache": state.cache.is_some(),
            "max_concurrency": s.max_concurrency,
            "request_timeout_ms": s.request_timeout.as_millis() as u64,
            "max_message_bytes": args.max_message_bytes,
        }),
    );
    if s.allow_request_time {
        state.log.event(
            "warn",
            "allow_request_time",
            json!({"warning": "callers may choose the decision time (testing only): expired tokens can be replayed"}),
        );
    }
    let drain_timeout = s.drain_timeout;
    Ok(Running {
        addr,
        metrics_addr,
        state,
        shutdown: Some(tx),
        server,
        tasks,
        drain_timeout,
    })
}

async fn serve(
    state: Arc<State>,
    listener: tokio::net::TcpListener,
    max_message: usize,
    shutdown: oneshot::Receiver<()>,
) -> Result<(), String> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AuthorizationServer<Service>>().await;
    health.set_serving::<VerifierServer<Service>>().await;
    let service = Service {
        state: Arc::clone(&state),
    };
    let settings = &state.settings;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let routes = tonic::service::Routes::new(
        AuthorizationServer::new(service.clone()).max_decoding_message_size(max_message),
    )
    .add_service(VerifierServer::new(service).max_decoding_message_size(max_message))
    .add_service(health_service);
    let routes = Shed::new(routes, settings.max_concurrency, Arc::clone(&state.metrics));
    // twice the process-wide limit per connection: a client multiplexing everything over one
    // connection (Envoy does, per worker) meets the limit as RESOURCE_EXHAUSTED, not as a
    // silent wait in its HTTP/2 layer, and one connection still cannot open streams unbounded
    let max_streams = u32::try_from(settings.max_concurrency.saturating_mul(2)).unwrap_or(u32::MAX);
    tonic::transport::Server::builder()
        .timeout(settings.request_timeout)
        .max_concurrent_streams(Some(max_streams))
        .http2_max_header_list_size(Some(MAX_HEADER_LIST_BYTES))
        .serve_with_incoming_shutdown(routes, incoming, async move {
            let _ = shutdown.await;
            health
                .set_not_serving::<AuthorizationServer<Service>>()
                .await;
            health.set_not_serving::<VerifierServer<Service>>().await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        })
        .await
        .map_err(|e| format!("gRPC server failed: {e}"))
}

/// `custody serve`: runs the sidecar until SIGTERM or SIGINT, then drains. Exit status 0 after
/// a clean drain, 1 when the drain timed out.
pub fn run(args: ServeArgs) -> Result<u8, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("custody-serve")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    if args.audience.is_none() {
        eprintln!(
            "custody: warning: no `--audience ID`: every ext_authz Check will be denied with \
             `invalid_request` (custody.v1 requests carry their own audience)"
        );
    }
    runtime.block_on(async move {
        let running = start(args).await?;
        terminated().await;
        let drained = running.shutdown().await?;
        Ok(if drained { 0 } else { 1 })
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
