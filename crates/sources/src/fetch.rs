//! One HTTP fetch of a key source: a capped, timed GET with a real client (reqwest on
//! rustls), and the documents it can answer: a JWK Set or SPIFFE bundle, an OpenID Connect or
//! RFC 8414 metadata document.

use std::time::Duration;

use custody_jose::{json, parse_key_set, Limits, ParsedKeySet};
use reqwest::{redirect, Client, StatusCode};
use serde_json::Value;

/// Largest response body read: 1 MiB (DESIGN.md).
pub const MAX_BODY: usize = 1 << 20;
/// Longest a fetch may take, connection to last byte: 5 s (DESIGN.md).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed, each to a URL a trust file could name itself.
const MAX_REDIRECTS: usize = 3;

/// Why a fetch delivered nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError(pub String);

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, FetchError> {
    Err(FetchError(msg.into()))
}

/// The HTTP client of one domain's sources: its roots are the system's, or only the
/// certificates of the domain's `ca` file.
pub fn client(ca_pem: Option<&[u8]>) -> Result<Client, FetchError> {
    let policy = redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match custody_policy::check_source_url(attempt.url().as_str()) {
            Ok(()) => attempt.follow(),
            Err(why) => attempt.error(format!("redirect refused: {why}")),
        }
    });
    let mut builder = Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(policy)
        .user_agent(concat!("custody/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .https_only(false);
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| FetchError(format!("the `ca` file holds no usable certificate: {e}")))?;
        if certs.is_empty() {
            return fail("the `ca` file holds no certificate");
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| FetchError(format!("cannot build the HTTP client: {e}")))
}

/// A fetched body and what the response said about caching it.
pub struct Body {
    pub bytes: Vec<u8>,
    /// `Cache-Control: max-age`, in seconds.
    pub max_age: Option<u64>,
}

/// GETs `url`: status 200, at most [`MAX_BODY`] bytes, within [`FETCH_TIMEOUT`]. A 404 is
/// `Ok(None)` (discovery falls back on it).
pub async fn get(client: &Client, url: &str) -> Result<Option<Body>, FetchError> {
    custody_policy::check_source_url(url).map_err(FetchError)?;
    let fetch = async {
        let mut response = client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| FetchError(describe(&e)))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            other => return fail(format!("HTTP status {other}")),
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return fail(format!("response larger than {MAX_BODY} bytes"));
        }
        let max_age = max_age(response.headers());
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError(describe(&e)))?
        {
            if bytes.len() + chunk.len() > MAX_BODY {
                return fail(format!("response larger than {MAX_BODY} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(Body { bytes, max_age }))
    };
    // reqwest's own timeout covers the request; this one also covers reading the body
    match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
        Ok(result) => result,
        Err(_) => fail(no_answer()),
    }
}

/// What a fetch past [`FETCH_TIMEOUT`] failed with.
fn no_answer() -> String {
    format!("no complete answer within {} s", FETCH_TIMEOUT.as_secs())
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    if e.is_timeout() {
        // the client's own deadline is FETCH_TIMEOUT too: whichever of the two fires first,
        // the failure reads the same
        text = format!("{}: {text}", no_answer());
    }
    text
}

/// `max-age` of a `Cache-Control` header (`no-store`/`no-cache` read as 0).
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').map(str::trim).find_map(|d| {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        lower
            .strip_prefix("max-age=")?
            .trim_matches('"')
            .parse()
            .ok()
    })
}

/// Reads a key set document strictly (the token JSON rules).
pub fn key_set(bytes: &[u8]) -> Result<ParsedKeySet, FetchError> {
    let limits = Limits {
        pack_file_bytes: MAX_BODY,
        ..Limits::default()
    };
    parse_key_set(bytes, &limits).map_err(|e| FetchError(format!("refused key set: {e}")))
}

/// The `jwks_uri` of the metadata of `issuer`: OpenID Connect discovery
/// (`ISSUER/.well-known/openid-configuration`), and on 404 RFC 8414
/// (`/.well-known/oauth-authorization-server` inserted before the issuer's path). The
/// document's `issuer` must be exactly `issuer`.
pub async fn discover(client: &Client, issuer: &str) -> Result<String, FetchError> {
    let oidc = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let body = match get(client, &oidc).await? {
        Some(body) => body,
        None => {
            let rfc8414 = rfc8414_url(issuer)?;
            get(client, &rfc8414).await?.ok_or_else(|| {
                FetchError(format!("no metadata: 404 at `{oidc}` and at `{rfc8414}`"))
            })?
        }
    };
    let doc = json::parse_object(&body.bytes, Limits::default().json_depth)
        .map_err(|e| FetchError(format!("refused metadata document: {e}")))?;
    match doc.get("issuer") {
        Some(Value::String(s)) if s == issuer => {}
        Some(Value::String(s)) => {
            return fail(format!(
                "metadata `issuer` `{}` differs from `{issuer}`: no keys taken",
                clip(s)
            ))
        }
        _ => return fail("metadata document has no string `issuer`"),
    }
    let Some(Value::String(jwks_uri)) = doc.get("jwks_uri") else {
        return fail("metadata document has no string `jwks_uri`");
    };
    custody_policy::check_source_url(jwks_uri)
        .map_err(|why| FetchError(format!("metadata `jwks_uri` `{}`: {why}", clip(jwks_uri))))?;
    Ok(jwks_uri.clone())
}

/// RFC 8414 §3.1: the well-known suffix goes between the host and the issuer's path.
fn rfc8414_url(issuer: &str) -> Result<String, FetchError> {
    let url = url::Url::parse(issuer).map_err(|e| FetchError(format!("issuer URL: {e}")))?;
    let path = url.path().trim_end_matches('/');
    let mut out = url.clone();
    out.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    Ok(out.to_string())
}

fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_inserts_the_suffix_before_the_path() {
        assert_eq!(
            rfc8414_url("https://as.example.com").unwrap(),
            "https://as.example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            rfc8414_url("https://as.example.com/issuer1").unwrap(),
            "https://as.example.com/.well-known/oauth-authorization-server/issuer1"
        );
    }

    #[test]
    fn cache_control_max_age() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(max_age(&h), None);
        h.insert("cache-control", "public, max-age=600".parse().unwrap());
        assert_eq!(max_age(&h), Some(600));
        h.insert("cache-control", "no-store".parse().unwrap());
        assert_eq!(max_age(&h), Some(0));
        h.insert("cache-control", "max-age=abc".parse().unwrap());
        assert_eq!(max_age(&h), None);
    }
}
