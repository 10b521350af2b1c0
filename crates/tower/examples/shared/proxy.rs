//! A small HTTP reverse proxy on hyper, with or without custody's Layer in front of it: the
//! `gateway` example serves it, the `door_latency` example measures it.

use std::convert::Infallible;

use bytes::Bytes;
use custody_tower::{Custody, MapSettings};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Headers of one connection, which a proxy never forwards (RFC 9110 §7.6.1), and `host`,
/// which the client sets for the upstream.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Forwards one request to `upstream` (`http://host:port`), answering 502 if it cannot.
pub async fn forward(
    client: Client<HttpConnector, Incoming>,
    upstream: http::uri::Authority,
    mut req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let uri = http::Uri::builder()
        .scheme("http")
        .authority(upstream)
        .path_and_query(path)
        .build();
    let Ok(uri) = uri else {
        return Ok(bad_gateway("the request target is not a path"));
    };
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    headers.remove(http::header::HOST);
    match client.request(req).await {
        Ok(response) => Ok(response.map(BodyExt::boxed)),
        Err(_) => Ok(bad_gateway("the upstream did not answer")),
    }
}

fn bad_gateway(why: &'static str) -> http::Response<Body> {
    let mut r = http::Response::new(
        Full::new(Bytes::from_static(why.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = http::StatusCode::BAD_GATEWAY;
    r
}

/// Serves the proxy on `listener` until the task is dropped: through custody's Layer when
/// `custody` is given, straight to the upstream otherwise.
pub async fn serve(
    listener: TcpListener,
    upstream: http::uri::Authority,
    custody: Option<(Custody, MapSettings)>,
) {
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build_http();
    let proxy = tower::service_fn(move |req: http::Request<Incoming>| {
        forward(client.clone(), upstream.clone(), req)
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        match &custody {
            Some((c, settings)) => {
                let service = ServiceBuilder::new()
                    .layer(c.layer(settings.clone()))
                    .service(proxy.clone());
                tokio::spawn(async move {
                    let io = TokioIo::new(stream);
                    let _ = builder
                        .serve_connection(io, TowerToHyperService::new(service))
                        .await;
                });
            }
            None => {
                let service = proxy.clone();
                tokio::spawn(async move {
                    let io = TokioIo::new(stream);
                    let _ = builder
                        .serve_connection(io, TowerToHyperService::new(service))
                        .await;
                });
            }
        }
    }
}
