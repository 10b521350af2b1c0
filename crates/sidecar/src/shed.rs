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
//! `grpc.health.v1.Health` is exempt: a busy sidecar is still a healthy one, and a health probe
//! shed under load would get a working instance restarted.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::Status;

use crate::metrics::Metrics;

/// The path prefix of the health service, which is never shed.
const HEALTH: &str = "/grpc.health.v1.Health/";

/// Wraps the gRPC routes with the concurrency limit.
#[derive(Clone, Debug)]
pub(crate) struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl<S> Shed<S> {
    pub(crate) fn new(inner: S, max_concurrency: usize, metrics: Arc<Metrics>) -> Shed<S> {
        Shed {
            inner,
            permits: Arc::new(Semaphore::new(max_concurrency)),
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

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if req.uri().path().starts_with(HEALTH) {
            return Box::pin(self.inner.call(req));
        }
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => {
                let answer = self.inner.call(req);
                Box::pin(async move {
                    let r = answer.await;
                    drop(permit);
                    r
                })
            }
            Err(_) => {
                self.metrics.shed.fetch_add(1, Ordering::Relaxed);
                let busy = Status::resource_exhausted("custody is at its concurrency limit");
                Box::pin(std::future::ready(Ok(busy.into_http())))
            }
        }
    }
}
