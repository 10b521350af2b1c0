//! The gRPC server: the three services over one tonic router, the reload tasks, the HTTP port
//! (metrics and AuthZEN, `web.rs`), and graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use custody_verifier::{Decision, Reason, ReasonCode, Request, Verifier};
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Response, Status};

use crate::authzen;
use crate::cache::{Bounds, DecisionCache};
use crate::call::{Mapped, Semantic};
use crate::check;
use crate::config::{ServeArgs, Settings};
use crate::error::ServeError;
use crate::log::{DecisionLine, Logger};
use crate::metrics::{self, Metrics, Rpc};
use crate::native;
use crate::pb;
use crate::pb::verifier_server::{Verifier as VerifierService, VerifierServer};
use crate::reload;
use crate::shed::{self, InFlight, Shed};
use crate::state::{self, State};
use crate::web;

/// The largest HTTP/2 header list (gRPC metadata) accepted, 64 KiB: Envoy's own default limit
/// on request headers is 60 KiB, and here the metadata carries only transport fields (deadline,
/// tracing); the HTTP headers Envoy asks about travel inside the Check message, under
/// `--max-message-bytes`.
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Every way an RPC fails (as opposed to being denied), mapped to a gRPC status in one place.
#[derive(Debug)]
enum RpcError {
    /// A batch larger than `--max-batch`.
    BatchTooLarge(usize),
}

impl From<RpcError> for Status {
    fn from(e: RpcError) -> Status {
        match e {
            RpcError::BatchTooLarge(max) => {
                Status::invalid_argument(format!("a batch holds at most {max} requests"))
            }
        }
    }
}

/// The client's `grpc-timeout` (gRPC over HTTP/2: 1 to 8 digits and a unit), when valid.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let v = metadata.get("grpc-timeout")?.to_str().ok()?;
    let digits = v.get(..v.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match v.get(digits.len()..)? {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The time a decision has: the RPC's deadline (`--request-timeout-ms`, or the client's
/// `grpc-timeout` when shorter) less a tenth of it, at least 1 ms and at most 50 ms, which
/// leaves time to send the `decision_timeout` denial before tonic's own timeout would answer a
/// gRPC error (which a proxy configured to fail open would turn into an allow).
pub(crate) fn decision_budget(
    request_timeout: Duration,
    grpc_timeout: Option<Duration>,
) -> Duration {
    let rpc = grpc_timeout.map_or(request_timeout, |t| t.min(request_timeout));
    let margin = (rpc / 10).clamp(Duration::from_millis(1), Duration::from_millis(50));
    rpc.saturating_sub(margin)
}

/// The denial of a decision that did not finish in time (or whose worker failed).
fn unfinished_decision(why: &Unfinished, budget: Duration) -> Decision {
    let message = match why {
        Unfinished::Deadline => format!(
            "the decision did not finish within its deadline ({} ms)",
            budget.as_millis()
        ),
        Unfinished::Failed(e) => format!("the decision did not finish: {e}"),
    };
    Decision::deny(
        Reason::new(ReasonCode::DecisionTimeout, None, message),
        None,
    )
}

/// Why a decision has no answer.
#[derive(Debug)]
enum Unfinished {
    /// Its deadline passed.
    Deadline,
    /// Its worker failed (a panic).
    Failed(String),
}

/// Who answers an RPC: its decision, when it finishes in time, or the deadline. Whichever
/// takes the claim first records the RPC (metrics, decision log), so a late decision is never
/// counted as well.
#[derive(Clone, Debug, Default)]
struct Claim(Arc<AtomicBool>);

impl Claim {
    /// `true` for the first caller only.
    fn take(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }

    /// Whether the answer is claimed already (by the deadline, while the decision works).
    fn is_taken(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The services' shared handle on the server state; the HTTP port (`web.rs`) decides through
/// it too.
#[derive(Clone, Debug)]
struct Service {
    state: Arc<State>,
}

impl Service {
    fn new(state: Arc<State>) -> Service {
        Service { state }
    }

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
        #[cfg(test)]
        self.state.gate.pass().await;
        verifier
    }

    /// Runs `decide` on a blocking thread, off the runtime's workers, and waits for it until
    /// `deadline`: `Err` when the deadline passes first (the decision goes on, holding `permit`
    /// until it ends, and its answer is dropped) or the worker fails. A decision whose deadline
    /// passed while it waited for a thread is not started.
    async fn off_runtime<T: Send + 'static>(
        &self,
        deadline: Instant,
        permit: Option<InFlight>,
        decide: impl FnOnce(&Claim) -> Option<T> + Send + 'static,
    ) -> Result<T, Unfinished> {
        let claim = Claim::default();
        let theirs = claim.clone();
        let mut task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if Instant::now() >= deadline {
                return None;
            }
            decide(&theirs)
        });
        let done = tokio::time::timeout_at(deadline.into(), &mut task).await;
        let done = match done {
            Ok(done) => done,
            // the deadline passed: unless the decision has just claimed the answer
            Err(_) if claim.take() => return Err(Unfinished::Deadline),
            Err(_) => task.await,
        };
        match done {
            Ok(Some(v)) => Ok(v),
            // not started (or, never both, claimed by the deadline)
            Ok(None) => {
                claim.take();
                Err(Unfinished::Deadline)
            }
            Err(e) => {
                claim.take();
                Err(Unfinished::Failed(format!("decision worker failed: {e}")))
            }
        }
    }

    /// The deadline of an RPC started at `started`, and the time its decision has.
    fn deadline<T>(&self, request: &tonic::Request<T>, started: Instant) -> (Instant, Duration) {
        let budget = decision_budget(
            self.state.settings.request_timeout,
            grpc_timeout(request.metadata()),
        );
        (started + budget, budget)
    }

    /// Records an RPC whose decision did not finish and returns its denial.
    fn unfinished(
        &self,
        rpc: Rpc,
        why: &Unfinished,
        budget: Duration,
        started: Instant,
        pack: &str,
    ) -> Decision {
        let d = unfinished_decision(why, budget);
        self.record(rpc, None, &d, started, false, pack);
        d
    }

    /// A decision that finished after its RPC was answered `decision_timeout`: logged, dropped.
    fn abandoned(&self, rpc: Rpc, started: Instant) {
        self.state.log.event(
            "warn",
            "decision_abandoned",
            json!({
                "rpc": rpc.as_str(),
                "latency_us": u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "note": "finished after its deadline; the RPC was denied with decision_timeout",
            }),
        );
    }

    /// The part of a Check that stays on the async worker, all of it bounded and cheap: the
    /// mapping ([`check::answer`]) and the decision cache lookup. `Ok` is the answer, when the
    /// request did not map or the cache held its decision; `Err` the mapped request, for the
    /// verifier to decide off the runtime ([`decide_check`](Service::decide_check)).
    fn check_inline(
        &self,
        check: &CheckRequest,
        verifier: &Verifier,
        keys: u64,
        started: Instant,
    ) -> Result<CheckResponse, Box<Request>> {
        let st = &self.state;
        let mut miss = None;
        let policy = verifier.pack();
        let revoked = verifier.revocations().generation();
        let (pack, resource) = (policy.version.as_str(), policy.resource.as_ref());
        let out = check::answer(check, &st.settings, &st.limits, pack, resource, |req| {
            if let Some(d) = st
                .cache
                .as_ref()
                .filter(|_| DecisionCache::cacheable(req, policy))
                .and_then(|c| c.get(&DecisionCache::key(pack, keys, revoked, req)))
            {
                st.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                return d;
            }
            miss = Some(Box::new(req.clone()));
            // never served: the verifier decides below
            Arc::new(Decision::invalid_request("not decided"))
        });
        match miss {
            Some(req) => Err(req),
            None => {
                let cached = out.request.is_some();
                let req = out.request.as_ref();
                self.record(Rpc::Check, req, &out.decision, started, cached, pack);
                Ok(out.response)
            }
        }
    }

    /// Decides a mapped Check request with the verifier (and caches the decision) and builds
    /// Envoy's answer as [`check::answer`] does; `None` when the deadline claimed the answer
    /// first.
    fn decide_check(
        &self,
        verifier: &Verifier,
        req: &Request,
        started: Instant,
        claim: &Claim,
    ) -> Option<CheckResponse> {
        #[cfg(test)]
        self.state.stall.pass();
        let st = &self.state;
        let pack = verifier.pack().version.as_str();
        // read before deciding: a revocation that lands meanwhile keys the entry out of reach
        let revoked = verifier.revocations().generation();
        let (d, keys) = self.verify_settled(verifier, req);
        if let Some(cache) = st
            .cache
            .as_ref()
            .filter(|_| DecisionCache::cacheable(req, verifier.pack()))
        {
            st.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
            let now = req.now.unwrap_or_else(custody_verifier::system_now);
            let key = DecisionCache::key(pack, keys, revoked, req);
            if let Some(u) = cache.put(key, req, &d, now, &st.limits) {
                let m = &st.metrics;
                m.cache_entries.store(u.entries as u64, Ordering::Relaxed);
                m.cache_bytes.store(u.bytes as u64, Ordering::Relaxed);
                m.cache_evictions
                    .fetch_add(u.evicted as u64, Ordering::Relaxed);
            }
        }
        if !claim.take() {
            self.abandoned(Rpc::Check, started);
            return None;
        }
        self.record(Rpc::Check, Some(req), &d, started, false, pack);
        let resource = verifier.pack().resource.as_ref();
        Some(check::response(
            &d,
            false,
            pack,
            resource,
            Some(&req.action),
        ))
    }

    /// Decides `req`; a denial for a `kid` its domain lacks (`unknown_key`, `keys_unavailable`)
    /// in a domain with remote key sources waits for the refetch it triggered (shared by every
    /// request waiting on it) and is decided again if the keys changed. Also returns the key
    /// store's generation the decision was made at (for the decision cache). Runs on a
    /// blocking thread.
    fn verify_settled(&self, verifier: &Verifier, req: &Request) -> (Decision, u64) {
        let keys = verifier.key_store().generation();
        let d = verifier.verify(req);
        if !awaits_keys(&d) {
            return (d, keys);
        }
        let sources = self.state.sources.load_full();
        if sources.is_empty() || !Arc::ptr_eq(sources.store(), verifier.key_store()) {
            return (d, keys);
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return (d, keys);
        };
        handle.block_on(sources.settle());
        let now = verifier.key_store().generation();
        if now == keys {
            return (d, keys);
        }
        (verifier.verify(req), now)
    }

    /// How custody.v1 Verify decides, shared with the AuthZEN endpoints (`web.rs`): the
    /// verifier in force when the call starts ([`snapshot`](Service::snapshot)), a blocking
    /// thread holding the call's concurrency permit ([`off_runtime`](Service::off_runtime)),
    /// the decision budget (`budget` from `started`, see [`decision_budget`]), each item mapped
    /// by `map` on that thread and decided with the key-refresh wait
    /// ([`verify_settled`](Service::verify_settled)), then [`authzen::check_subject`], each
    /// recorded under `rpc` (metrics and the decision log). Items are decided in order and the
    /// call stops after the first decision `semantic` stops at (Verify: one item,
    /// `execute_all`). A call whose decisions do not finish within the budget gets a
    /// `decision_timeout` denial per item, cut by `semantic` the same way. Returns the decisions
    /// and the version of the pack they were made on.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call's parts, each from a different source: a struct would only rename them"
    )]
    async fn decide_call<T: Send + 'static>(
        &self,
        rpc: Rpc,
        started: Instant,
        budget: Duration,
        permit: Option<InFlight>,
        items: Vec<T>,
        map: fn(&State, T) -> Mapped,
        semantic: Semantic,
    ) -> (Vec<Decision>, String) {
        let n = items.len();
        let deadline = started + budget;
        let verifier = self.snapshot().await;
        let pack = verifier.pack().version.clone();
        let this = self.clone();
        let out = self
            .off_runtime(deadline, permit, move |claim| {
                this.decide_items(rpc, &verifier, items, map, semantic, started, claim)
            })
            .await;
        match out {
            Ok(decided) => (decided, pack),
            Err(why) => {
                let timed_out = unfinished_decision(&why, budget);
                let decided = semantic.cut(vec![timed_out; n]);
                for d in &decided {
                    self.record(rpc, None, d, started, false, &pack);
                }
                (decided, pack)
            }
        }
    }

    /// The AuthZEN endpoints' evaluations (`web.rs`), mapped already (on the async worker,
    /// with the body): [`decide_call`](Service::decide_call) under `rpc="authzen"`, with the
    /// deadline a Verify without `grpc-timeout` has.
    async fn decide_authzen(
        &self,
        started: Instant,
        permit: InFlight,
        items: Vec<Mapped>,
        semantic: Semantic,
    ) -> (Vec<Decision>, String) {
        let budget = decision_budget(self.state.settings.request_timeout, None);
        self.decide_call(
            Rpc::Authzen,
            started,
            budget,
            Some(permit),
            items,
            |_, m| m,
            semantic,
        )
        .await
    }

    /// The part of [`decide_call`](Service::decide_call) on the blocking thread; `None` when
    /// the deadline claimed the answer first. Once the deadline has passed, no further item is
    /// started (the answer is the timeout's).
    #[allow(
        clippy::too_many_arguments,
        reason = "decide_call's parts, passed on to its blocking thread"
    )]
    fn decide_items<T>(
        &self,
        rpc: Rpc,
        verifier: &Verifier,
        items: Vec<T>,
        map: fn(&State, T) -> Mapped,
        semantic: Semantic,
        started: Instant,
        claim: &Claim,
    ) -> Option<Vec<Decision>> {
        #[cfg(test)]
        self.state.stall.pass();
        let pack = verifier.pack().version.as_str();
        let mut decided = Vec::with_capacity(items.len());
        for item in items {
            let m = map(&self.state, item);
            let (req, d) = match m.request {
                Ok(req) => {
                    let (d, _) = self.verify_settled(verifier, &req);
                    (Some(req), d)
                }
                Err(message) => (None, Decision::invalid_request(message)),
            };
            let d = authzen::check_subject(d, m.subject.as_deref());
            let stop = semantic.stops_after(d.is_allowed());
            decided.push((req, d));
            if stop || claim.is_taken() {
                break;
            }
        }
        if !claim.take() {
            self.abandoned(rpc, started);
            return None;
        }
        for (req, d) in &decided {
            self.record(rpc, req.as_ref(), d, started, false, pack);
        }
        Some(decided.into_iter().map(|(_, d)| d).collect())
    }

    fn decide_batch(
        &self,
        verifier: &Verifier,
        reqs: Vec<pb::VerifyRequest>,
        started: Instant,
        claim: &Claim,
    ) -> Option<pb::VerifyBatchResponse> {
        #[cfg(test)]
        self.state.stall.pass();
        let pack = verifier.pack().version.as_str();
        let allow_time = self.state.settings.map.allow_request_time;
        let mapped: Vec<Result<Request, String>> = reqs
            .into_iter()
            .map(|r| native::convert(r, allow_time, &self.state.limits))
            .collect();
        let valid: Vec<Request> = mapped
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let mut decided = verifier.verify_batch(&valid);
        // a request denied for a `kid` its domain lacks waits for the refetch, then again
        for (req, d) in valid.iter().zip(decided.iter_mut()) {
            if awaits_keys(d) {
                *d = self.verify_settled(verifier, req).0;
            }
        }
        let mut decided = decided.into_iter();
        if !claim.take() {
            self.abandoned(Rpc::VerifyBatch, started);
            return None;
        }
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
        Some(pb::VerifyBatchResponse {
            decisions,
            pack_version: pack.to_owned(),
        })
    }
}

#[tonic::async_trait]
impl Authorization for Service {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let started = Instant::now();
        let (deadline, budget) = self.deadline(&request, started);
        let permit = InFlight::of(request.extensions());
        let verifier = self.snapshot().await;
        let pack = verifier.pack().version.clone();
        let keys = verifier.key_store().generation();
        let req = match self.check_inline(request.get_ref(), &verifier, keys, started) {
            Ok(answered) => return Ok(Response::new(answered)),
            Err(req) => req,
        };
        drop(request);
        let this = self.clone();
        let out = self
            .off_runtime(deadline, permit, move |claim| {
                this.decide_check(&verifier, &req, started, claim)
            })
            .await;
        Ok(Response::new(match out {
            Ok(response) => response,
            Err(why) => {
                let d = self.unfinished(Rpc::Check, &why, budget, started, &pack);
                check::response(&d, false, &pack, None, None)
            }
        }))
    }
}

#[tonic::async_trait]
impl VerifierService for Service {
    async fn verify(
        &self,
        request: tonic::Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let started = Instant::now();
        let (_, budget) = self.deadline(&request, started);
        let permit = InFlight::of(request.extensions());
        let r = request.into_inner();
        let (decided, pack) = self
            .decide_call(
                Rpc::Verify,
                started,
                budget,
                permit,
                vec![r],
                verify_item,
                Semantic::ExecuteAll,
            )
            .await;
        let d = decided
            .into_iter()
            .next()
            .unwrap_or_else(|| Decision::invalid_request("no decision"));
        Ok(Response::new(native::to_pb(&d, &pack)))
    }

    async fn verify_batch(
        &self,
        request: tonic::Request<pb::VerifyBatchRequest>,
    ) -> Result<Response<pb::VerifyBatchResponse>, Status> {
        let started = Instant::now();
        let (deadline, budget) = self.deadline(&request, started);
        let permit = InFlight::of(request.extensions());
        let reqs = request.into_inner().requests;
        let max = self.state.settings.max_batch;
        if reqs.len() > max {
            return Err(RpcError::BatchTooLarge(max).into());
        }
        let n = reqs.len();
        let verifier = self.snapshot().await;
        let pack = verifier.pack().version.clone();
        let this = self.clone();
        let out = self
            .off_runtime(deadline, permit, move |claim| {
                this.decide_batch(&verifier, reqs, started, claim)
            })
            .await;
        Ok(Response::new(match out {
            Ok(out) => out,
            Err(why) => {
                let d = unfinished_decision(&why, budget);
                for _ in 0..n {
                    self.record(Rpc::VerifyBatch, None, &d, started, false, &pack);
                }
                pb::VerifyBatchResponse {
                    decisions: vec![native::to_pb(&d, &pack); n],
                    pack_version: pack,
                }
            }
        }))
    }
}

/// A custody.v1 request as [`Service::decide_call`] maps it, on the deciding thread.
fn verify_item(state: &State, r: pb::VerifyRequest) -> Mapped {
    Mapped {
        request: native::convert(r, state.settings.map.allow_request_time, &state.limits),
        subject: None,
    }
}

/// Whether a denial is for a `kid` the token's domain lacks, which a refetch may cure.
fn awaits_keys(d: &Decision) -> bool {
    matches!(
        d.code(),
        Some(ReasonCode::UnknownKey | ReasonCode::KeysUnavailable)
    )
}

/// A running sidecar (see [`start`]).
#[derive(Debug)]
pub struct Running {
    /// The gRPC address actually bound.
    pub addr: SocketAddr,
    /// The HTTP port actually bound (`--metrics-listen`/`--http-listen`: metrics and the
    /// AuthZEN evaluation API), if any.
    pub metrics_addr: Option<SocketAddr>,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), ServeError>>,
    tasks: Vec<JoinHandle<()>>,
    drain_timeout: Duration,
}

impl Running {
    /// Reloads the pack now (what SIGHUP does); `Ok(true)` when a new pack was swapped in.
    pub async fn reload(&self) -> Result<bool, ServeError> {
        self.state.reload("api").await
    }

    /// The gate that holds RPCs after their pack snapshot (`cfg(test)`: the crate's own tests only).
    #[cfg(test)]
    pub fn gate(&self) -> &crate::testing::Gate {
        &self.state.gate
    }

    /// The hook that blocks decisions on their thread (`cfg(test)`: the crate's own tests only).
    #[cfg(test)]
    pub fn stall(&self) -> &crate::state::Stall {
        &self.state.stall
    }

    /// The server's state, which outlives `shutdown` (`cfg(test)`: the crate's own tests only).
    #[cfg(test)]
    pub(crate) fn state_for_tests(&self) -> Arc<State> {
        Arc::clone(&self.state)
    }

    /// Fetches every remote key source of the pack in force now, as the background refresh
    /// does when one is due (a "refresh now" for an operator's hook or a load test; it does not
    /// count against the unknown-`kid` refetch budget). Calls keep being decided meanwhile.
    pub async fn refresh_keys(&self) {
        self.state.sources.load_full().refresh_all().await;
    }

    /// The version of the pack in force.
    pub fn pack_version(&self) -> String {
        self.state.verifier.load().pack().version.clone()
    }

    /// Stops accepting connections, lets RPCs in flight finish (at most the drain timeout) and
    /// returns `Ok(true)` when everything drained in time.
    pub async fn shutdown(mut self) -> Result<bool, ServeError> {
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
            Ok(Err(e)) => Err(ServeError::Task {
                task: "server task",
                message: e.to_string(),
            }),
            Err(_) => {
                self.server.abort();
                self.state.log.event("warn", "drain_timeout", json!({}));
                Ok(false)
            }
        }
    }
}

/// Loads the pack, binds the listeners and starts serving on the current tokio runtime.
pub async fn start(args: ServeArgs) -> Result<Running, ServeError> {
    let settings = Settings::from_args(&args).map_err(ServeError::Options)?;
    let metrics = Arc::new(Metrics::default());
    let log = Logger::start(Arc::clone(&metrics), settings.decision_log);
    let limits = custody_verifier::Limits::default();
    let dir = args.policies.clone();
    let for_load = settings.clone();
    let (loaded, watcher) = tokio::task::spawn_blocking(move || {
        // the files as they were before the load: a change during it is seen at the next poll
        let started = SystemTime::now();
        let before = reload::snapshot(&dir, &[]);
        let loaded = state::load(&dir, &limits, &for_load);
        let files = loaded
            .as_ref()
            .ok()
            .map(|l| reload::pack_files(l.verifier.pack()));
        let watcher = reload::Watcher::after_load(&dir, before, &[], files.as_deref(), started);
        (loaded, watcher)
    })
    .await
    .map_err(|e| ServeError::Task {
        task: "pack loader",
        message: e.to_string(),
    })?;
    let loaded = loaded.map_err(|errors| ServeError::Pack {
        dir: args.policies.clone(),
        errors,
    })?;
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
    let fleet = crate::fleet::Fleet::start(loaded.verifier.pack(), settings.store_timeout, &log)?;
    let verifier = fleet.attach(loaded.verifier);
    let state = Arc::new(State::new(
        verifier,
        settings,
        args.policies.clone(),
        cache,
        metrics,
        log,
        fleet,
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: args.listen,
            metrics: false,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Io)?;
    let mut tasks = Vec::new();
    let metrics_addr = match args.metrics_listen {
        Some(m) => {
            let l = metrics::bind(m).await?;
            let bound = l.local_addr().map_err(ServeError::Io)?;
            let st = Arc::clone(&state);
            let stats: metrics::VerifierStats = Arc::new(move || {
                let mut text = metrics::token_cache_text(&st.verifier.load());
                text.push_str(&metrics::key_sources_text(&st.sources.load().status()));
                text.push_str(&st.fleet.metrics_text());
                text
            });
            let service = Service::new(Arc::clone(&state));
            let decide: web::Decide = Arc::new(move |started, permit, items, semantic| {
                let service = service.clone();
                Box::pin(async move {
                    service
                        .decide_authzen(started, permit, items, semantic)
                        .await
                })
            });
            let routes = web::router(Arc::clone(&state), decide, stats);
            tasks.push(tokio::spawn(web::serve(l, routes)));
            Some(bound)
        }
        None => None,
    };
    if let Some(every) = state.settings.reload_interval {
        tasks.push(tokio::spawn(reload::watch(
            Arc::clone(&state),
            every,
            watcher,
        )));
    }
    tasks.push(tokio::spawn(reload::on_sighup(Arc::clone(&state))));
    // the first key sets before serving (each fetch is bounded), then in the background
    let sources = state.sources.load_full();
    if !sources.is_empty() {
        sources.refresh_all().await;
        tasks.push(tokio::spawn(state::refresh_sources(Arc::clone(&state))));
    }
    let admin = match &args.admin_token_file {
        Some(file) => Some(crate::admin::Admin::new(Arc::clone(&state), file)?),
        None => None,
    };
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(serve(
        Arc::clone(&state),
        listener,
        args.max_message_bytes,
        admin,
        rx,
    ));
    let s = &state.settings;
    state.log.event(
        "info",
        "start",
        json!({
            "listen": addr.to_string(),
            "metrics": metrics_addr.map(|a| a.to_string()),
            "authzen_base_url": s.authzen_base_url,
            "pack": state.verifier.load().pack().version,
            "policies": state.policies.display().to_string(),
            "audience": s.map.audience,
            "action_header": s.map.action_header,
            "protocol": s.protocol.as_str(),
            "decision_cache": state.cache.is_some(),
            "max_concurrency": s.max_concurrency,
            "request_timeout_ms": s.request_timeout.as_millis() as u64,
            "max_message_bytes": args.max_message_bytes,
        }),
    );
    // RFC 8707: a client asks its authorization server for tokens naming the resource
    // identifier, so an audience that is something else denies every one of them
    if let Some(r) = state.verifier.load().pack().resource.as_ref() {
        if s.map.audience.as_deref() != Some(r.identifier.as_str()) {
            state.log.event(
                "warn",
                "resource_not_audience",
                json!({
                    "resource": r.identifier,
                    "audience": s.map.audience,
                    "warning": "the pack's `resource` is not `--audience`: tokens clients request for the resource (RFC 8707) will be denied audience_mismatch",
                }),
            );
        }
    }
    if s.map.allow_request_time {
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
    admin: Option<crate::admin::Admin>,
    shutdown: oneshot::Receiver<()>,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AuthorizationServer<Service>>().await;
    health.set_serving::<VerifierServer<Service>>().await;
    let service = Service::new(Arc::clone(&state));
    let settings = &state.settings;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let routes = tonic::service::Routes::new(
        AuthorizationServer::new(service.clone()).max_decoding_message_size(max_message),
    )
    .add_service(VerifierServer::new(service).max_decoding_message_size(max_message))
    .add_service(health_service.max_decoding_message_size(shed::HEALTH_MESSAGE_BYTES));
    let routes = match admin {
        Some(a) => routes.add_service(crate::pb::admin_server::AdminServer::new(a)),
        None => routes,
    };
    let routes = Shed::new(
        routes,
        Arc::clone(&state.permits),
        Arc::clone(&state.metrics),
    );
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
        .map_err(ServeError::Server)
}

/// `custody serve`: runs the sidecar until SIGTERM or SIGINT, then drains. Exit status 0 after
/// a clean drain, 1 when the drain timed out.
pub fn run(args: ServeArgs) -> Result<u8, ServeError> {
    // decisions run on the blocking pool: a thread for each RPC `--max-concurrency` admits
    // (and a few for reloads), so an admitted decision never waits behind slow ones
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(args.max_concurrency.saturating_add(8))
        .thread_name("custody-serve")
        .build()
        .map_err(ServeError::Runtime)?;
    if args.audience.is_none() {
        eprintln!(
            "custody: warning: no `--audience ID`: every ext_authz Check and AuthZEN \
             evaluation will be denied with `invalid_request` (custody.v1 requests carry their \
             own audience)"
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    fn metadata(timeout: &str) -> tonic::metadata::MetadataMap {
        let mut m = tonic::metadata::MetadataMap::new();
        m.insert("grpc-timeout", timeout.parse().unwrap());
        m
    }

    #[test]
    fn grpc_timeout_values() {
        let ms = Duration::from_millis;
        assert_eq!(grpc_timeout(&metadata("200m")), Some(ms(200)));
        assert_eq!(grpc_timeout(&metadata("2S")), Some(ms(2000)));
        assert_eq!(grpc_timeout(&metadata("1M")), Some(ms(60_000)));
        assert_eq!(grpc_timeout(&metadata("1H")), Some(ms(3_600_000)));
        assert_eq!(
            grpc_timeout(&metadata("1500u")),
            Some(Duration::from_micros(1500))
        );
        assert_eq!(grpc_timeout(&metadata("7n")), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "123456789m", "10x", "-1S", "1.5S", "10 m"] {
            assert_eq!(grpc_timeout(&metadata(bad)), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&tonic::metadata::MetadataMap::new()), None);
    }

    #[test]
    fn the_decision_ends_before_the_rpc() {
        let ms = Duration::from_millis;
        // --request-timeout-ms 2000: 50 ms of margin at most
        assert_eq!(decision_budget(ms(2000), None), ms(1950));
        // Envoy's ext_authz default, 200 ms, as grpc-timeout: a tenth
        assert_eq!(decision_budget(ms(2000), Some(ms(200))), ms(180));
        // a longer grpc-timeout does not extend the server's deadline
        assert_eq!(decision_budget(ms(400), Some(ms(10_000))), ms(360));
        assert_eq!(decision_budget(ms(5), None), ms(4));
        assert_eq!(
            decision_budget(ms(2000), Some(Duration::ZERO)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_timed_out_check_is_a_503_denial() {
        let d = unfinished_decision(&Unfinished::Deadline, Duration::from_millis(1950));
        assert_eq!(d.code(), Some(ReasonCode::DecisionTimeout));
        let r = check::response(&d, false, "v1", None, None);
        assert_eq!(r.status.as_ref().map(|s| s.code), Some(7));
        let Some(envoy_types::ext_authz::v3::pb::HttpResponse::DeniedResponse(denied)) =
            &r.http_response
        else {
            panic!("not a denial: {r:?}")
        };
        assert_eq!(denied.status.as_ref().map(|s| s.code), Some(503));
        assert!(denied.body.contains("decision_timeout"), "{}", denied.body);
    }
}
