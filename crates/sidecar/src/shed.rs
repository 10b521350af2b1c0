//! The process-wide concurrency limit (`--max-concurrency`), enforced in front of every
//! service before a request's message is read.
//!
//! An RPC that arrives while `--max-concurrency` RPCs are in progress, on any connection, is
//! answered at once with `RESOURCE_EXHAUSTED` and counted (`custody_requests_shed_total`); it
//! is never queued. An authorizer that queues turns overload into timeouts for every caller
//! (Envoy's ext_authz default timeout is 200 ms), while an immediate status lets the proxy
//! apply its own policy (`failure_mode_allow`, `status_on_error`) and tells the operator what
//! happened. Because the permit is taken before the message is read, the messages held in
//! memory at once are at most `--max-concurrency` × `--max-message-bytes`.
//!
//! A permit goes back when both the RPC and the decision it started are done ([`InFlight`]):
//! a decision that outlives its deadline (the RPC was answered `decision_timeout`) still holds
//! its permit while its thread works, so slow decisions cannot pile up beyond the limit.
//!
//! `grpc.health.v1.Health` is never shed by that limit (a busy sidecar is still a healthy one,
//! and a health probe shed under load would get a working instance restarted), but it has a
//! bound of its own: [`HEALTH_CONCURRENCY`] requests in progress at once, each message at most
//! [`HEALTH_MESSAGE_BYTES`] (a health request is a service name), beyond which it gets
//! `RESOURCE_EXHAUSTED` (counted in `custody_health_requests_shed_total`) or `OUT_OF_RANGE`.
//! So the memory bound holds for every service on the port: at most `--max-concurrency` ×
//! `--max-message-bytes` plus 16 KiB of request messages at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::Status;

use crate::metrics::Metrics;

/// The path prefix of the health service, which has permits of its own.
const HEALTH: &str = "/grpc.health.v1.Health/";

/// Health requests in progress at once, 16: probes come from a kubelet and a proxy or two, a
/// few a second, each answered in microseconds. (A `Watch` stream holds its permit only until
/// its request is read.)
pub(crate) const HEALTH_CONCURRENCY: usize = 16;

/// The largest health request message, 1 KiB: it holds a service name
/// (`envoy.service.auth.v3.Authorization` is 36 bytes).
pub(crate) const HEALTH_MESSAGE_BYTES: usize = 1024;

/// One RPC's concurrency permit, shared by the RPC (in [`Shed`]) and, through the request's
/// extensions, by the decision it runs on a blocking thread: it goes back when both are done.
#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    _permit: Arc<OwnedSemaphorePermit>,
}

impl InFlight {
    /// The permit of the RPC whose request extensions these are.
    pub(crate) fn of(extensions: &tonic::Extensions) -> Option<InFlight> {
        extensions.get::<InFlight>().cloned()
    }

    /// A permit from `permits` now, or `None` when every one is taken (the caller refuses the
    /// call and counts it in `custody_requests_shed_total`). The HTTP port's AuthZEN calls take
    /// theirs here, from the same permits as the gRPC services.
    pub(crate) fn try_take(permits: &Arc<Semaphore>) -> Option<InFlight> {
        Arc::clone(permits)
            .try_acquire_owned()
            .ok()
            .map(|permit| InFlight {
                _permit: Arc::new(permit),
            })
    }
}

/// Wraps the gRPC routes with the concurrency limits.
#[derive(Clone, Debug)]
pub(crate) struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
    health: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl<S> Shed<S> {
    /// `permits` holds `--max-concurrency` permits, shared with the HTTP port's AuthZEN calls.
    pub(crate) fn new(inner: S, permits: Arc<Semaphore>, metrics: Arc<Metrics>) -> Shed<S> {
        Shed {
            inner,
            permits,
            health: Arc::new(Semaphore::new(HEALTH_CONCURRENCY)),
            metrics,
        }
    }
}

impl<S> Service<Request<Body>> for Shed<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let health = req.uri().path().starts_with(HEALTH);
        let permits = if health { &self.health } else { &self.permits };
        match Arc::clone(permits).try_acquire_owned() {
            Ok(permit) => {
                let held = InFlight {
                    _permit: Arc::new(permit),
                };
                req.extensions_mut().insert(held.clone());
                let answer = self.inner.call(req);
                Box::pin(async move {
                    let r = answer.await;
                    drop(held);
                    r
                })
            }
            Err(_) => {
                let (counter, message) = if health {
                    (
                        &self.metrics.health_shed,
                        "custody is at its health-check concurrency limit",
                    )
                } else {
                    (&self.metrics.shed, "custody is at its concurrency limit")
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let busy = Status::resource_exhausted(message);
                Box::pin(std::future::ready(Ok(busy.into_http())))
            }
        }
    }
}
