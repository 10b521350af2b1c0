//! custody inside a Rust gateway: a [`tower`](https://docs.rs/tower) Layer that decides every
//! call in process, before it reaches the service it wraps.
//!
//! [`Custody`] holds the policy pack in force (loaded from a directory, reloaded on demand
//! without dropping a call, remote key sources refreshed on the gateway's own runtime);
//! [`Custody::layer`] gives a [`CustodyLayer`] for any `tower::Service<http::Request<B>>`
//! (axum, hyper through `hyper_util::service::TowerToHyperService`, tonic).
//!
//! The Layer reads exactly what the Envoy sidecar reads and answers exactly as it answers: the
//! mapping and the answer are `custody-http`'s, shared by both doors.
//! - the tokens from `authorization: Bearer` (or `DPoP`) and `custody-chain`, a Txn-Token from
//!   `txn-token`, WIMSE and DPoP proofs from their headers;
//! - the action `METHOD:path` (the path without query), or the configured action header's value;
//! - the audience and target authority from [`MapSettings`], never from `Host`;
//! - the peer from a [`PeerSource`] the gateway supplies (by default a [`Peer`] the gateway put in
//!   the request's extensions, e.g. from its rustls acceptor; never from a header).
//!
//! An allowed call goes on with `x-custody-origin`, `x-custody-actor` and `x-custody-depth` set
//! (any a client sent are replaced or removed) and the [`Decision`] in the request's extensions
//! as an `Arc<Decision>`. A denied call never reaches the service: it is answered 401 (with
//! `www-authenticate`), 403 or 503 with the JSON body `{"decision":"deny","reasons":[...]}`; a
//! gRPC call (`content-type: application/grpc…`) gets a gRPC status instead (`UNAUTHENTICATED`,
//! `PERMISSION_DENIED` or `UNAVAILABLE`, the first reason code in `grpc-message`).
//!
//! # axum
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use custody_tower::{Custody, MapSettings};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let custody = Custody::load("policies")?;
//! custody.fetch_keys().await; // remote key sources, once, before serving
//! tokio::spawn(custody.clone().refresh()); // then in the background, on this runtime
//! let app = Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     .layer(custody.layer(MapSettings::for_audience("spiffe://c.example/orders")));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # hyper
//!
//! ```no_run
//! use std::convert::Infallible;
//! use custody_tower::{Custody, MapSettings};
//! use http_body_util::Full;
//! use hyper_util::rt::{TokioExecutor, TokioIo};
//! use hyper_util::service::TowerToHyperService;
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let custody = Custody::load("policies")?;
//! let service = ServiceBuilder::new()
//!     .layer(custody.layer(MapSettings::for_audience("spiffe://c.example/orders")))
//!     .service_fn(|_req: http::Request<hyper::body::Incoming>| async {
//!         Ok::<_, Infallible>(http::Response::new(Full::new(bytes::Bytes::from("order"))))
//!     });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let service = TowerToHyperService::new(service.clone());
//!     tokio::spawn(async move {
//!         let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
//!         let _ = builder.serve_connection(TokioIo::new(stream), service).await;
//!     });
//! }
//! # }
//! ```
//!
//! # tonic
//!
//! ```no_run
//! use custody_tower::{Custody, MapSettings};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let custody = Custody::load("policies")?;
//! let (_reporter, health) = tonic_health::server::health_reporter();
//! tonic::transport::Server::builder()
//!     .layer(custody.layer(MapSettings::for_audience("spiffe://c.example/orders")))
//!     .add_service(health)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! The peer from a TLS acceptor: put a [`Peer`] in the request's extensions (the default
//! [`PeerSource`] reads it there), or give [`CustodyLayer::peer_from`] a function of the request.

#![forbid(unsafe_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use custody_http::Call;
pub use custody_http::MapSettings;
pub use custody_http::Protocol;
use custody_policy::PolicyPack;
use custody_sources::KeySources;
pub use custody_verifier::Decision;
use custody_verifier::{Limits, ReasonCode, Request, Verifier, VerifierOptions};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use http_body_util::{BodyExt as _, Either, Full, Limited};
use tower_layer::Layer;
use tower_service::Service;

/// How long a call denied for a key its domain lacks waits for the shared refetch before its
/// denial stands (the refetch itself is bounded by the key source's 5 s fetch limit).
const KEY_WAIT: Duration = Duration::from_secs(6);

/// A pack that failed to load: every located error (`file:line:col: message`), one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The errors, as `custody check` prints them.
    pub errors: Vec<String>,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.errors.join("\n"))
    }
}

impl std::error::Error for LoadError {}

/// The policy pack a gateway enforces: the verifier on the pack in force (swapped atomically on
/// [`reload`](Custody::reload); calls in flight finish on the one they started with) and its
/// remote key sources. Cloning is cheap and shares everything.
#[derive(Clone, Debug)]
pub struct Custody {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    options: VerifierOptions,
    verifier: ArcSwap<Verifier>,
    sources: ArcSwap<KeySources>,
    sources_changed: tokio::sync::Notify,
    reloading: Mutex<()>,
}

impl Custody {
    /// Loads the pack in `dir` with the default limits and caches (blocking: file reads and
    /// Cedar parsing; call it before serving or from `spawn_blocking`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Custody, LoadError> {
        Custody::load_with(dir, VerifierOptions::default())
    }

    /// Loads the pack in `dir` with the given verifier options.
    pub fn load_with(
        dir: impl AsRef<Path>,
        options: VerifierOptions,
    ) -> Result<Custody, LoadError> {
        let dir = dir.as_ref().to_path_buf();
        let verifier = build(&dir, &options)?;
        let sources = KeySources::new(verifier.pack(), Arc::clone(verifier.key_store()), None);
        Ok(Custody {
            inner: Arc::new(Inner {
                dir,
                options,
                verifier: ArcSwap::from_pointee(verifier),
                sources: ArcSwap::from_pointee(sources),
                sources_changed: tokio::sync::Notify::new(),
                reloading: Mutex::new(()),
            }),
        })
    }

    /// The verifier on the pack in force.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.inner.verifier.load_full()
    }

    /// The version (digest) of the pack in force.
    pub fn pack_version(&self) -> String {
        self.inner.verifier.load().pack().version.clone()
    }

    /// The remote key sources of the pack in force (their status for a gateway's metrics).
    pub fn key_sources(&self) -> Arc<KeySources> {
        self.inner.sources.load_full()
    }

    /// Loads the pack directory again and swaps it in: `Ok(true)` when it changed, `Ok(false)`
    /// when it is the same pack. A pack that fails to load changes nothing (the old one keeps
    /// serving) and its errors are returned. Remote key sets the new pack still names are kept.
    /// Blocking: call it from `spawn_blocking` (one reload runs at a time).
    pub fn reload(&self) -> Result<bool, LoadError> {
        let inner = &self.inner;
        let _one_at_a_time = inner
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let verifier = build(&inner.dir, &inner.options)?;
        if verifier.pack().version == inner.verifier.load().pack().version {
            return Ok(false);
        }
        let previous = inner.sources.load_full();
        let sources = KeySources::new(
            verifier.pack(),
            Arc::clone(verifier.key_store()),
            Some(&previous),
        );
        inner.verifier.store(Arc::new(verifier));
        inner.sources.store(Arc::new(sources));
        inner.sources_changed.notify_one();
        Ok(true)
    }

    /// Fetches every remote key source of the pack in force once (before serving, so the first
    /// calls are not `keys_unavailable`).
    pub async fn fetch_keys(&self) {
        self.inner.sources.load_full().refresh_all().await;
    }

    /// Refreshes the remote key sources in the background for as long as it is polled, moving
    /// to the new pack's sources after a reload: spawn it on the gateway's runtime.
    pub async fn refresh(self) {
        loop {
            let sources = self.inner.sources.load_full();
            tokio::select! {
                () = (*sources).clone().run() => {}
                () = self.inner.sources_changed.notified() => {}
            }
        }
    }

    /// Decides one request, waiting (at most [`KEY_WAIT`]) for a shared refetch when the
    /// denial is for a key its domain's remote source may have just published.
    pub async fn decide(&self, request: &Request) -> Decision {
        let verifier = self.verifier();
        let generation = verifier.key_store().generation();
        let decision = verifier.verify(request);
        if !matches!(
            decision.code(),
            Some(ReasonCode::UnknownKey | ReasonCode::KeysUnavailable)
        ) {
            return decision;
        }
        let sources = self.key_sources();
        if sources.is_empty() || !Arc::ptr_eq(sources.store(), verifier.key_store()) {
            return decision;
        }
        if tokio::time::timeout(KEY_WAIT, sources.settle())
            .await
            .is_err()
            || verifier.key_store().generation() == generation
        {
            return decision;
        }
        verifier.verify(request)
    }

    /// The Layer deciding every call on this pack, mapped with `settings`.
    pub fn layer(&self, settings: MapSettings) -> CustodyLayer {
        CustodyLayer {
            custody: self.clone(),
            settings: Arc::new(settings),
            peer: FromExtensions,
        }
    }
}

fn build(dir: &Path, options: &VerifierOptions) -> Result<Verifier, LoadError> {
    match PolicyPack::load(dir, &options.limits) {
        Ok(loaded) => Ok(Verifier::with_options(
            Arc::new(loaded.pack),
            options.clone(),
        )),
        Err(errors) => Err(LoadError {
            errors: errors.iter().map(ToString::to_string).collect(),
        }),
    }
}

/// The caller as the gateway authenticated it (a TLS acceptor's client certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// An authenticated SPIFFE ID the gateway vouches for (it validated the certificate).
    pub id: Option<String>,
    /// The client's X.509-SVID chain (PEM, leaf first), for custody to validate itself
    /// against the pack's `x509-svid` authorities.
    pub certificates: Vec<String>,
}

impl Peer {
    /// A peer whose SPIFFE ID the gateway established.
    pub fn id(id: impl Into<String>) -> Peer {
        Peer {
            id: Some(id.into()),
            certificates: Vec::new(),
        }
    }

    /// A peer known by its certificate chain, which custody validates.
    pub fn certificates(pem: Vec<String>) -> Peer {
        Peer {
            id: None,
            certificates: pem,
        }
    }
}

/// Where the Layer learns the caller's identity.
pub trait PeerSource<B> {
    /// The authenticated peer of `request` (default: none).
    fn peer(&self, request: &http::Request<B>) -> Peer;
}

/// The default [`PeerSource`]: a [`Peer`] the gateway put in the request's extensions (a client
/// cannot put one there); none otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct FromExtensions;

impl<B> PeerSource<B> for FromExtensions {
    fn peer(&self, request: &http::Request<B>) -> Peer {
        request
            .extensions()
            .get::<Peer>()
            .cloned()
            .unwrap_or_default()
    }
}

/// A [`PeerSource`] from a function of the request.
#[derive(Clone)]
pub struct PeerFn<F>(F);

impl<F> std::fmt::Debug for PeerFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerFn")
    }
}

impl<B, F: Fn(&http::Request<B>) -> Peer> PeerSource<B> for PeerFn<F> {
    fn peer(&self, request: &http::Request<B>) -> Peer {
        (self.0)(request)
    }
}

/// The tower Layer: wraps a service so that only calls custody allows reach it.
#[derive(Debug, Clone)]
pub struct CustodyLayer<P = FromExtensions> {
    custody: Custody,
    settings: Arc<MapSettings>,
    peer: P,
}

impl<P> CustodyLayer<P> {
    /// The same Layer with the peer taken from `f` (instead of the request's extensions).
    pub fn peer_from<F>(self, f: F) -> CustodyLayer<PeerFn<F>> {
        CustodyLayer {
            custody: self.custody,
            settings: self.settings,
            peer: PeerFn(f),
        }
    }
}

impl<S, P: Clone> Layer<S> for CustodyLayer<P> {
    type Service = CustodyService<S, P>;

    fn layer(&self, inner: S) -> CustodyService<S, P> {
        CustodyService {
            inner,
            custody: self.custody.clone(),
            settings: Arc::clone(&self.settings),
            peer: self.peer.clone(),
        }
    }
}

/// The service [`CustodyLayer`] makes.
#[derive(Debug, Clone)]
pub struct CustodyService<S, P = FromExtensions> {
    inner: S,
    custody: Custody,
    settings: Arc<MapSettings>,
    peer: P,
}

/// The response body: the wrapped service's, or custody's denial.
pub type CustodyBody<B> = Either<B, Full<Bytes>>;

impl<S, P, B, ResBody> Service<http::Request<B>> for CustodyService<S, P>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    P: PeerSource<B>,
    B: Send + 'static,
{
    type Response = http::Response<CustodyBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // the service that was made ready serves this call; its clone waits for the next
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let custody = self.custody.clone();
        let peer = self.peer.peer(&request);
        let limits: Limits = custody.inner.options.limits.clone();
        // only this crate's ProtocolService can have put one there (the type is private)
        let derived = request.extensions_mut().remove::<DerivedAction>();
        let path = request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path(), |p| p.as_str());
        let mapped = custody_http::map_request(
            Call {
                method: request.method().as_str(),
                path,
                headers: request.headers(),
                peer: peer.id,
                peer_certificates: peer.certificates,
            },
            &self.settings,
            &limits,
        );
        // the header mapping's refusals (no bearer token first) come before the body's
        let mapped = match (mapped, derived) {
            (Ok(mut r), Some(DerivedAction(action))) => action.map(|a| {
                r.action = a;
                r
            }),
            (other, _) => other,
        };
        let grpc = is_grpc(request.headers());
        Box::pin(async move {
            let (decision, no_token, action) = match mapped {
                Ok(r) => (custody.decide(&r).await, false, Some(r.action)),
                Err(e) => (e.decision(), e.is_no_token(), None),
            };
            if !decision.is_allowed() {
                let metadata = custody
                    .verifier()
                    .pack()
                    .resource
                    .as_ref()
                    .map(custody_verifier::ProtectedResource::metadata_url);
                let challenge = custody_http::Challenge {
                    resource_metadata: metadata.as_deref(),
                    action: action.as_deref(),
                };
                return Ok(denied(&decision, no_token, &challenge, grpc).map(Either::Right));
            }
            let answer = custody_http::allow_headers(&decision);
            let headers = request.headers_mut();
            for name in custody_http::SET_HEADERS {
                headers.remove(name);
            }
            for (name, value) in answer.set {
                // header_safe values are always valid header values
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(HeaderName::from_static(name), v);
                }
            }
            request.extensions_mut().insert(Arc::new(decision));
            inner.call(request).await.map(|r| r.map(Either::Left))
        })
    }
}

/// The action [`ProtocolService`] derived from a call's JSON-RPC body (or why it could not),
/// handed to [`CustodyService`] in the request's extensions. Private: nothing else can put one.
#[derive(Clone)]
struct DerivedAction(Result<String, custody_http::MapError>);

impl<P> CustodyLayer<P> {
    /// The same Layer deriving the action of `POST` calls from their JSON-RPC body, as
    /// `custody serve --protocol mcp|a2a` does (`custody_http::protocol`): MCP `tools/call` →
    /// `tools/call:<tool>`, other methods by name. The body (at most `max_body_bytes`) is read,
    /// the action derived, and the call forwarded with the same bytes; a body over the limit,
    /// unreadable, empty, not strict JSON, a batch, or an unknown method is denied
    /// `invalid_request`. Other methods (an MCP `GET` event stream, `DELETE`) keep `METHOD:path`.
    /// The wrapped service's request body must be buildable from [`Bytes`] (axum's `Body`,
    /// `Full<Bytes>`).
    ///
    /// ```no_run
    /// # use custody_tower::{Custody, MapSettings, Protocol};
    /// # fn f(custody: Custody) {
    /// let mcp: axum::Router = axum::Router::new()
    ///     .route("/mcp", axum::routing::post(|body: String| async move { body }))
    ///     .layer(
    ///         custody
    ///             .layer(MapSettings::for_audience("https://mcp.example/mcp"))
    ///             .protocol(Protocol::Mcp, 65_536),
    ///     );
    /// # }
    /// ```
    pub fn protocol(self, protocol: Protocol, max_body_bytes: usize) -> ProtocolLayer<P> {
        ProtocolLayer {
            layer: self,
            protocol,
            max_body_bytes,
        }
    }
}

/// [`CustodyLayer::protocol`]: actions from MCP or A2A JSON-RPC bodies.
#[derive(Debug, Clone)]
pub struct ProtocolLayer<P = FromExtensions> {
    layer: CustodyLayer<P>,
    protocol: Protocol,
    max_body_bytes: usize,
}

impl<S, P: Clone> Layer<S> for ProtocolLayer<P> {
    type Service = ProtocolService<S, P>;

    fn layer(&self, inner: S) -> ProtocolService<S, P> {
        ProtocolService {
            inner: self.layer.layer(inner),
            protocol: self.protocol,
            max_body_bytes: self.max_body_bytes,
        }
    }
}

/// The service [`ProtocolLayer`] makes.
#[derive(Debug, Clone)]
pub struct ProtocolService<S, P = FromExtensions> {
    inner: CustodyService<S, P>,
    protocol: Protocol,
    max_body_bytes: usize,
}

impl<S, P, B, ResBody> Service<http::Request<B>> for ProtocolService<S, P>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    P: PeerSource<B> + Clone + Send + 'static,
    B: http_body::Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<CustodyBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        if request.method() != http::Method::POST {
            return inner.call(request);
        }
        let (protocol, max) = (self.protocol, self.max_body_bytes);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let refuse = |why: String| Err(protocol.refusal(&why));
            let declared = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let (bytes, action) = if declared.is_some_and(|n| n > max as u64) {
                (
                    Bytes::new(),
                    refuse(format!("the body is over the limit ({max} bytes)")),
                )
            } else {
                match Limited::new(body, max).collect().await {
                    Ok(c) => {
                        let bytes = c.to_bytes();
                        let action = if bytes.is_empty() {
                            refuse("no JSON-RPC body".into())
                        } else {
                            custody_http::protocol::action(protocol, &bytes)
                        };
                        (bytes, action)
                    }
                    Err(e) => (
                        Bytes::new(),
                        refuse(format!(
                            "the body is over the limit ({max} bytes) or could not be read: {e}"
                        )),
                    ),
                }
            };
            let mut request = http::Request::from_parts(parts, B::from(bytes));
            request.extensions_mut().insert(DerivedAction(action));
            inner.call(request).await
        })
    }
}

fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The answer to a denied call: the sidecar's (status, challenge, JSON body), or for a gRPC
/// call a trailers-only gRPC status.
fn denied(
    decision: &Decision,
    no_token: bool,
    challenge: &custody_http::Challenge<'_>,
    grpc: bool,
) -> http::Response<Full<Bytes>> {
    let answer = custody_http::denial(decision, no_token, challenge);
    let mut response = if grpc {
        let code = match answer.status {
            401 => "16",
            503 => "14",
            _ => "7",
        };
        let message = decision.code().unwrap_or(ReasonCode::InvalidRequest);
        let mut r = http::Response::new(Full::new(Bytes::new()));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from_static(code));
        if let Ok(v) = HeaderValue::from_str(message.as_str()) {
            h.insert("grpc-message", v);
        }
        r
    } else {
        let mut r = http::Response::new(Full::new(Bytes::from(answer.body)));
        *r.status_mut() =
            http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::FORBIDDEN);
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    };
    if let Some(c) = answer
        .www_authenticate
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        response.headers_mut().insert(WWW_AUTHENTICATE, c);
    }
    response
}
