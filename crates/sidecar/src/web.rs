//! The sidecar's HTTP port (`--metrics-listen`, alias `--http-listen`): an axum router on
//! hyper's HTTP/1.1 server, one task per connection.
//!
//! | route | answer |
//! |---|---|
//! | `GET /metrics` (and `GET /`) | the Prometheus text, with `connection: close`, as the port always answered |
//! | `POST /access/v1/evaluation`, `POST /access/v1/evaluations` | AuthZEN evaluations (`authzen.rs`), decided as custody.v1 Verify decides |
//! | `GET /.well-known/authzen-configuration` | the AuthZEN PDP metadata under `--authzen-base-url`; 404 without it (never derived from `Host`) |
//! | `GET /.well-known/oauth-protected-resource` and that path followed by the resource identifier's path | the pack's `resource` as RFC 9728 protected resource metadata (`access-control-allow-origin: *`: a public document); 404 when the pack declares none or the path names another resource |
//! | anything else | 404; a known path with another method: 405 with `allow` |
//!
//! An evaluation call needs `content-type: application/json` (parameters allowed, a `charset`
//! only `utf-8`; else 415), a body of at most the custody request limit, 256 KiB (else 413,
//! before reading it when `content-length` says so), read within `--request-timeout-ms`
//! (else 408), and a `--max-concurrency` permit, taken from the gRPC services' own before the
//! body is read (none free: 503, counted in `custody_requests_shed_total`). Its decisions have
//! the call's deadline as Verify's have (`--request-timeout-ms` less a tenth, at most 50 ms:
//! `decision_timeout` beyond) and are counted under `rpc="authzen"`. Every AuthZEN answer,
//! refusals included, echoes the request's `x-request-id`. A connection must send its request
//! head within 5 s.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request as HttpRequest, State as Shared};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::Value;
use tokio::net::TcpListener;

use custody_policy::RESOURCE_METADATA_PATH;
use custody_verifier::Decision;

use crate::authzen::{self, Mapping, Parsed};
use crate::call::{Mapped, Semantic};
use crate::metrics::VerifierStats;
use crate::shed::InFlight;
use crate::state::State;

/// How long a connection may take to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The request header AuthZEN identifies a call by, echoed in the answer.
const REQUEST_ID: &str = "x-request-id";

/// How the port has evaluations decided: custody.v1 Verify's path (`server.rs`,
/// `Service::decide_call` under `rpc="authzen"`), from the call's start, with its permit; the
/// decisions and the version of the pack they were made on.
pub(crate) type Decide = Arc<
    dyn Fn(
            Instant,
            InFlight,
            Vec<Mapped>,
            Semantic,
        ) -> Pin<Box<dyn Future<Output = Decided> + Send>>
        + Send
        + Sync,
>;

/// The decisions of one call and the version of the pack they were made on.
pub(crate) type Decided = (Vec<Decision>, String);

/// What the routes share.
#[derive(Clone)]
struct Web {
    state: Arc<State>,
    decide: Decide,
    stats: VerifierStats,
}

/// The HTTP port's routes.
pub(crate) fn router(state: Arc<State>, decide: Decide, stats: VerifierStats) -> Router {
    let web = Web {
        state,
        decide,
        stats,
    };
    Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(metrics))
        .route(authzen::EVALUATION_PATH, post(evaluation))
        .route(authzen::EVALUATIONS_PATH, post(evaluations))
        .route(authzen::METADATA_PATH, get(pdp_metadata))
        .route(RESOURCE_METADATA_PATH, get(resource_metadata))
        .route(
            &format!("{RESOURCE_METADATA_PATH}/{{*resource_path}}"),
            get(resource_metadata),
        )
        .fallback(not_found)
        .with_state(web)
}

/// Serves `routes` on `listener` (HTTP/1.1, keep-alive) until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, routes: Router) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |req: axum::http::Request<hyper::body::Incoming>| {
                    let routes = routes.clone();
                    async move { tower::ServiceExt::oneshot(routes, req.map(Body::new)).await }
                },
            );
            let mut conn = hyper::server::conn::http1::Builder::new();
            conn.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT);
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = conn.serve_connection(io, service).await;
        });
    }
}

/// `GET /metrics`: the text exposition, exactly as the port has always served it.
async fn metrics(Shared(web): Shared<Web>) -> Response {
    let text = web.state.metrics.render() + &(web.stats)();
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CONNECTION, "close"),
        ],
        text,
    )
        .into_response()
}

async fn not_found(headers: HeaderMap) -> Response {
    let answer = json(
        StatusCode::NOT_FOUND,
        &authzen::error(
            404,
            "not found: the routes are GET /metrics, POST /access/v1/evaluation, \
             POST /access/v1/evaluations, GET /.well-known/authzen-configuration and \
             GET /.well-known/oauth-protected-resource",
        ),
    );
    echo_request_id(answer, &headers)
}

/// `GET /.well-known/oauth-protected-resource[/path]`: the pack in force's `resource` (RFC 9728
/// §3), at the well-known path with the identifier's path appended, and at the bare well-known
/// path (where clients look when the path-suffixed form fails). Any other suffix is another
/// resource's metadata, which this one does not answer for.
async fn resource_metadata(Shared(web): Shared<Web>, req: HttpRequest) -> Response {
    let verifier = web.state.verifier.load();
    let path = req.uri().path();
    let found = verifier.pack().resource.as_ref().filter(|r| {
        let own = r.metadata_path();
        path == own || path == RESOURCE_METADATA_PATH
    });
    match found {
        Some(r) => {
            let mut answer = json(StatusCode::OK, &r.metadata());
            answer.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            answer
        }
        None => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({
                "error": "not_found",
                "error_description": match verifier.pack().resource.as_ref() {
                    Some(r) => format!("this service is the protected resource `{}`; its metadata is at `{}`", r.identifier, r.metadata_url()),
                    None => "the policy pack declares no `resource`".to_owned(),
                },
            }),
        ),
    }
}

/// `GET /.well-known/authzen-configuration`.
async fn pdp_metadata(Shared(web): Shared<Web>, headers: HeaderMap) -> Response {
    let answer = match &web.state.settings.authzen_base_url {
        Some(base) => json(StatusCode::OK, &authzen::metadata(base)),
        None => json(
            StatusCode::NOT_FOUND,
            &authzen::error(
                404,
                "no AuthZEN metadata: the sidecar runs without `--authzen-base-url` (its \
                 endpoints' absolute URLs are never derived from `Host`)",
            ),
        ),
    };
    echo_request_id(answer, &headers)
}

async fn evaluation(Shared(web): Shared<Web>, req: HttpRequest) -> Response {
    web.evaluate(req, false).await
}

async fn evaluations(Shared(web): Shared<Web>, req: HttpRequest) -> Response {
    web.evaluate(req, true).await
}

impl Web {
    /// One AuthZEN call: the checks before the body, the body, the mapping, the decisions.
    async fn evaluate(&self, req: HttpRequest, batch: bool) -> Response {
        let started = Instant::now();
        let headers = req.headers().clone();
        let answer = match self.evaluate_checked(req, batch, started).await {
            Ok(answer) => json(StatusCode::OK, &answer),
            Err((status, message)) => json(status, &authzen::error(status.as_u16(), &message)),
        };
        echo_request_id(answer, &headers)
    }

    async fn evaluate_checked(
        &self,
        req: HttpRequest,
        batch: bool,
        started: Instant,
    ) -> Result<Value, (StatusCode, String)> {
        let st = &self.state;
        let max = st.limits.request_bytes;
        json_content_type(req.headers())?;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large(max));
        }
        // the permit before the body, as the gRPC services take theirs before the message
        let Some(permit) = InFlight::try_take(&st.permits) else {
            st.metrics.shed.fetch_add(1, Ordering::Relaxed);
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "custody is at its concurrency limit".into(),
            ));
        };
        let body = read_body(req.into_body(), max, st.settings.request_timeout).await?;
        let mapping = Mapping {
            audience: st.settings.map.audience.as_deref(),
            allow_request_time: st.settings.map.allow_request_time,
            limits: &st.limits,
        };
        let bad = |e: authzen::BadRequest| (StatusCode::BAD_REQUEST, e.0);
        let (items, semantic, single) = if batch {
            match authzen::parse_evaluations(&body, &mapping).map_err(bad)? {
                Parsed::Single(m) => (vec![*m], Semantic::ExecuteAll, true),
                Parsed::Batch(items, semantic) => (items, semantic, false),
            }
        } else {
            let m = authzen::parse_evaluation(&body, &mapping).map_err(bad)?;
            (vec![m], Semantic::ExecuteAll, true)
        };
        drop(body);
        let (decided, pack) = (self.decide)(started, permit, items, semantic).await;
        Ok(match (single, decided.first()) {
            (true, Some(d)) => authzen::answer(d, &pack),
            _ => authzen::answers(&decided, &pack),
        })
    }
}

/// `content-type: application/json`, with parameters; a `charset` other than `utf-8` is
/// refused (JSON is UTF-8).
fn json_content_type(headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let refused = || {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an evaluation request is `content-type: application/json`".to_owned(),
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refused)?;
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(refused());
    }
    for p in parts {
        let (name, v) = p.split_once('=').unwrap_or((p, ""));
        if name.trim().eq_ignore_ascii_case("charset")
            && !v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(refused());
        }
    }
    Ok(())
}

fn too_large(max: usize) -> (StatusCode, String) {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {max} bytes"),
    )
}

/// The whole body, at most `max` bytes, within `timeout`.
async fn read_body(
    body: Body,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, (StatusCode, String)> {
    let read = tokio::time::timeout(timeout, Limited::new(body, max).collect()).await;
    match read {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive within the request timeout".into(),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(max)),
        Ok(Err(e)) => Err((
            StatusCode::BAD_REQUEST,
            format!("the body could not be read: {e}"),
        )),
    }
}

fn json(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// AuthZEN: a PDP answering a request with an `x-request-id` sends the same one back.
fn echo_request_id(mut r: Response, headers: &HeaderMap) -> Response {
    if let Some(id) = headers.get(REQUEST_ID) {
        let id: HeaderValue = id.clone();
        r.headers_mut().insert(REQUEST_ID, id);
    }
    r
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    fn ctype(v: &str) -> Result<(), (StatusCode, String)> {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
        json_content_type(&h)
    }

    #[test]
    fn content_type_is_application_json() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(ctype(ok).is_ok(), "{ok}");
        }
        for no in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin1",
            "",
        ] {
            assert_eq!(
                ctype(no).unwrap_err().0,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{no}"
            );
        }
        assert!(json_content_type(&HeaderMap::new()).is_err());
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let big = Body::from(vec![b' '; 1025]);
        let e = read_body(big, 1024, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(e.0, StatusCode::PAYLOAD_TOO_LARGE);
        let fits = read_body(Body::from(vec![b' '; 1024]), 1024, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(fits.len(), 1024);
    }
}
