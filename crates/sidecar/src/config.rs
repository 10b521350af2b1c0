//! `custody serve`'s options and the limits they set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// The decision cache's default entry bound, 100,000: with the 30 s TTL, room for the distinct
/// calls of 3,300 a second.
pub const DEFAULT_CACHE_ENTRIES: usize = 100_000;

/// The decision cache's default byte bound, 64 MiB: a budget a sidecar can spend beside the
/// proxy it serves. Ordinary decisions are charged 630 to 930 bytes each (measured: a
/// malformed-token denial 628, a two-domain allow 800, a scope or sender denial with its chain
/// about 920), so it holds some 70,000 to 100,000 of them, near the entry bound; decisions
/// with long actor or scope lists (tens of KiB and more each) meet it far sooner, which is what
/// it is for: without it, 100,000 of those would take gigabytes.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Options of `custody serve`. Every limit has a default here and is documented in the crate
/// root; `--help` prints them.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// The policy pack directory (reloaded on SIGHUP and when one of its files, or a key file
    /// it names, changes).
    #[arg(long, default_value = "policies/demo")]
    pub policies: PathBuf,
    /// The gRPC listen address (ext_authz v3, custody.v1, grpc.health.v1).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// This service's identifier (a SPIFFE ID or URL): the presented token's `aud` must contain
    /// it. Required: it is never taken from the `Host`/`:authority` header.
    #[arg(long, value_name = "ID")]
    pub audience: Option<String>,
    /// Take Check's action from this request header instead of `METHOD:path`. The proxy must set
    /// it and strip it from clients' requests.
    #[arg(long, value_name = "NAME")]
    pub action_header: Option<String>,
    /// The sidecar's HTTP port: Prometheus text metrics (`GET /metrics`) and the AuthZEN
    /// evaluation API (`POST /access/v1/evaluation`, `POST /access/v1/evaluations`,
    /// `GET /.well-known/authzen-configuration`); off when absent. `--http-listen` is the same
    /// option.
    #[arg(long, value_name = "ADDR", visible_alias = "http-listen")]
    pub metrics_listen: Option<SocketAddr>,
    /// The base URL PEPs reach the HTTP port by (e.g. `https://pdp.c.example`): the AuthZEN
    /// metadata names its endpoints under it. Never taken from `Host`; without it,
    /// `GET /.well-known/authzen-configuration` answers 404 (the evaluation endpoints still
    /// answer).
    #[arg(long, value_name = "URL")]
    pub authzen_base_url: Option<String>,
    /// Largest gRPC message accepted, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Most requests in one VerifyBatch call.
    #[arg(long, default_value_t = 1024)]
    pub max_batch: usize,
    /// Most RPCs in progress at once, over all connections; further ones get
    /// RESOURCE_EXHAUSTED at once, never a queue (health checks have 16 permits of their own).
    /// A decision that outlives its deadline keeps its permit until it finishes.
    #[arg(long, default_value_t = 1024)]
    pub max_concurrency: usize,
    /// Deadline of one RPC in milliseconds (a shorter `grpc-timeout` from the client wins). A
    /// decision still running a tenth of it (at most 50 ms) before it ends is denied
    /// `decision_timeout`.
    #[arg(long, default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight RPCs may take to finish, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
    /// Turn Check's decision cache off.
    #[arg(long)]
    pub no_decision_cache: bool,
    /// Decisions the Check cache holds at most.
    #[arg(long, default_value_t = DEFAULT_CACHE_ENTRIES)]
    pub decision_cache_entries: usize,
    /// Bytes the Check cache holds at most, each entry counted with everything its decision
    /// owns (a chain summary can be long).
    #[arg(long, default_value_t = DEFAULT_CACHE_BYTES)]
    pub decision_cache_bytes: usize,
    /// Longest life of a cached decision in seconds (an allow never outlives its chain's
    /// earliest `exp`).
    #[arg(long, default_value_t = 30)]
    pub decision_cache_ttl_secs: u64,
    /// Verified tokens each pack's verifier keeps (0: none; a token seen again then has its
    /// signature checked again). 16 MiB bounds the cache whatever this says.
    #[arg(long, default_value_t = custody_verifier::DEFAULT_CAPACITY)]
    pub token_cache_entries: usize,
    /// Cedar requests each pack's verifier keeps (0: none; Cedar still evaluates every call).
    #[arg(long, default_value_t = custody_verifier::MEMO_ENTRIES)]
    pub cedar_memo_entries: usize,
    /// How often the pack's files are checked for changes, in milliseconds (0: only SIGHUP). A
    /// change is loaded once unchanged over two checks.
    #[arg(long, default_value_t = 1000)]
    pub reload_interval_ms: u64,
    /// TESTING ONLY: accept a request-supplied time (`now` in custody.v1, the `custody-now`
    /// header in Check). A caller choosing the time can replay expired tokens.
    #[arg(long)]
    pub allow_request_time: bool,
    /// Do not write one log line per decision (start, reload and shutdown are still logged).
    #[arg(long)]
    pub no_decision_log: bool,
    /// Where Check takes the caller's identity from: `certificate` validates the client
    /// certificate Envoy forwards (`attributes.source.certificate`, with the listener's
    /// `include_peer_certificate: true`) against the pack's X.509-SVID authorities; `principal`
    /// trusts `attributes.source.principal`, that is Envoy's own validation of the client
    /// certificate; `none` takes neither. Default: the certificate when Envoy sends one, else
    /// the principal.
    #[arg(long, value_enum, value_name = "FROM")]
    pub peer_from: Option<PeerFrom>,
    /// The scheme and authority clients address this service by (e.g.
    /// `https://orders.c.example`): with the request's path (without query) it is the target
    /// URI a WPT's `aud` and a DPoP proof's `htu` must name. Never taken from `Host`. Without
    /// it, requests with a WPT or DPoP proof are denied `peer_invalid`.
    #[arg(long, value_name = "URL")]
    pub target_authority: Option<String>,
    /// How Check derives the action: `http` (`METHOD:path`, or `--action-header`), `mcp` or
    /// `a2a` (from the JSON-RPC body of a `POST`, which Envoy forwards with
    /// `with_request_body`; see `custody_http::protocol`).
    #[arg(long, value_name = "PROTOCOL", default_value = "http")]
    pub protocol: custody_http::Protocol,
    /// The largest request body read in `mcp`/`a2a` mode; a larger (or partial) body is denied.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,
    /// How long a one-time `jti` check may wait for the pack's shared `store` (Redis) before
    /// it is `store_unavailable` (or, under `fail_open_replay true`, this node's memory alone
    /// decides). Keep it well under the decision deadline.
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub store_timeout_ms: u64,
    /// Serve `custody.v1.Admin` (revoke, list revocations) on the gRPC port to calls with
    /// `authorization: Bearer <the first line of FILE>` (at least 16 bytes). Without it the
    /// Admin service is not served at all.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
}

/// Where Check takes the caller's identity from (`--peer-from`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PeerFrom {
    /// The client certificate Envoy forwards, validated by custody.
    Certificate,
    /// Envoy's `source.principal`, trusting Envoy's validation.
    Principal,
    /// Neither.
    None,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            policies: PathBuf::from("policies/demo"),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            audience: None,
            action_header: None,
            metrics_listen: None,
            authzen_base_url: None,
            max_message_bytes: 4 * 1024 * 1024,
            max_batch: 1024,
            max_concurrency: 1024,
            request_timeout_ms: 2000,
            drain_timeout_ms: 10_000,
            no_decision_cache: false,
            decision_cache_entries: DEFAULT_CACHE_ENTRIES,
            decision_cache_bytes: DEFAULT_CACHE_BYTES,
            decision_cache_ttl_secs: 30,
            token_cache_entries: custody_verifier::DEFAULT_CAPACITY,
            cedar_memo_entries: custody_verifier::MEMO_ENTRIES,
            reload_interval_ms: 1000,
            allow_request_time: false,
            no_decision_log: false,
            peer_from: None,
            target_authority: None,
            protocol: custody_http::Protocol::Http,
            max_body_bytes: 65_536,
            store_timeout_ms: 20,
            admin_token_file: None,
        }
    }
}

/// The validated settings the server runs with.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// How Check maps calls (`--audience`, `--action-header`, `--allow-request-time`,
    /// `--target-authority`, without a trailing `/`): the mapping the tower Layer shares. No
    /// audience: Check denies every request with `invalid_request` (custody.v1 requests carry
    /// their own audience).
    pub map: custody_http::MapSettings,
    pub max_batch: usize,
    pub max_concurrency: usize,
    pub request_timeout: Duration,
    pub drain_timeout: Duration,
    pub reload_interval: Option<Duration>,
    pub decision_log: bool,
    /// The verifier caches of every pack loaded (`--token-cache-entries`,
    /// `--cedar-memo-entries`).
    pub token_cache_entries: usize,
    pub cedar_memo_entries: usize,
    /// `--peer-from`; `None`: the certificate when present, else the principal.
    pub peer_from: Option<PeerFrom>,
    /// `--protocol` and `--max-body-bytes`.
    pub protocol: custody_http::Protocol,
    pub max_body_bytes: usize,
    /// `--authzen-base-url`, without a trailing `/`.
    pub authzen_base_url: Option<String>,
    /// `--store-timeout-ms`.
    pub store_timeout: Duration,
}

impl Settings {
    pub(crate) fn from_args(args: &ServeArgs) -> Result<Settings, String> {
        let audience = match args.audience.as_deref().map(str::trim) {
            None => None,
            Some(a) if !a.is_empty() => Some(a.to_owned()),
            Some(_) => return Err("`--audience` must not be empty".into()),
        };
        let action_header = match &args.action_header {
            None => None,
            Some(h) if valid_header_name(h) => Some(h.to_ascii_lowercase()),
            Some(h) => return Err(format!("`--action-header` `{h}` is not a header name")),
        };
        if args.max_concurrency == 0 || args.max_batch == 0 || args.max_message_bytes == 0 {
            return Err(
                "`--max-concurrency`, `--max-batch` and `--max-message-bytes` must be positive"
                    .into(),
            );
        }
        if !args.no_decision_cache
            && (args.decision_cache_entries == 0 || args.decision_cache_bytes == 0)
        {
            return Err(
                "`--decision-cache-entries` and `--decision-cache-bytes` must be positive \
                 (`--no-decision-cache` turns the cache off)"
                    .into(),
            );
        }
        if args.protocol != custody_http::Protocol::Http && action_header.is_some() {
            return Err(format!(
                "`--action-header` and `--protocol {}` both name the action: choose one",
                args.protocol.as_str()
            ));
        }
        if args.max_body_bytes == 0 {
            return Err("`--max-body-bytes` must be positive".into());
        }
        if args.request_timeout_ms == 0 {
            return Err("`--request-timeout-ms` must be positive".into());
        }
        let target_authority = match &args.target_authority {
            None => None,
            Some(t) => Some(check_authority(t, "--target-authority")?),
        };
        let authzen_base_url = match &args.authzen_base_url {
            None => None,
            Some(t) => Some(check_authority(t, "--authzen-base-url")?),
        };
        Ok(Settings {
            map: custody_http::MapSettings {
                audience,
                action_header,
                allow_request_time: args.allow_request_time,
                target_authority,
            },
            max_batch: args.max_batch,
            max_concurrency: args.max_concurrency,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            drain_timeout: Duration::from_millis(args.drain_timeout_ms),
            reload_interval: (args.reload_interval_ms > 0)
                .then(|| Duration::from_millis(args.reload_interval_ms)),
            decision_log: !args.no_decision_log,
            token_cache_entries: args.token_cache_entries,
            cedar_memo_entries: args.cedar_memo_entries,
            peer_from: args.peer_from,
            protocol: args.protocol,
            max_body_bytes: args.max_body_bytes,
            authzen_base_url,
            store_timeout: Duration::from_millis(args.store_timeout_ms.max(1)),
        })
    }
}

/// `--target-authority` and `--authzen-base-url` (`option`): `http` or `https`, a host, an
/// optional port, nothing else (no path, query or fragment).
fn check_authority(t: &str, option: &str) -> Result<String, String> {
    let bad = || format!("`{option}` `{t}` is not `https://HOST[:PORT]` (or `http://`)");
    let t = t.trim_end_matches('/');
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(bad())
    }
}

/// An HTTP field name (RFC 9110 `token`), not a pseudo-header.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_is_optional_but_never_empty() {
        assert_eq!(
            Settings::from_args(&ServeArgs::default())
                .unwrap()
                .map
                .audience,
            None
        );
        let empty = ServeArgs {
            audience: Some(" ".into()),
            ..ServeArgs::default()
        };
        assert!(Settings::from_args(&empty)
            .unwrap_err()
            .contains("--audience"));
        let args = ServeArgs {
            audience: Some("spiffe://c.example/orders".into()),
            ..ServeArgs::default()
        };
        assert_eq!(
            Settings::from_args(&args).unwrap().map.audience.as_deref(),
            Some("spiffe://c.example/orders")
        );
    }

    #[test]
    fn http_listen_is_metrics_listen() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        use clap::Parser as _;
        for flag in ["--http-listen", "--metrics-listen"] {
            let cli = Cli::try_parse_from(["custody", flag, "127.0.0.1:9090"]).unwrap();
            assert_eq!(
                cli.serve.metrics_listen,
                Some("127.0.0.1:9090".parse().unwrap()),
                "{flag}"
            );
        }
        let cli = Cli::try_parse_from(["custody", "--authzen-base-url", "https://pdp.c.example"])
            .unwrap();
        assert_eq!(
            cli.serve.authzen_base_url.as_deref(),
            Some("https://pdp.c.example")
        );
    }

    #[test]
    fn authzen_base_url_is_scheme_host_and_port() {
        let with = |u: &str| {
            Settings::from_args(&ServeArgs {
                authzen_base_url: Some(u.into()),
                ..ServeArgs::default()
            })
            .map(|s| s.authzen_base_url)
        };
        assert_eq!(
            with("https://pdp.c.example/").unwrap().as_deref(),
            Some("https://pdp.c.example")
        );
        assert_eq!(
            with("http://127.0.0.1:8181").unwrap().as_deref(),
            Some("http://127.0.0.1:8181")
        );
        for bad in [
            "pdp.c.example",
            "https://",
            "https://pdp.c.example/access",
            "https://pdp.c.example?x=1",
            "ftp://pdp.c.example",
        ] {
            let e = with(bad).unwrap_err();
            assert!(e.contains("--authzen-base-url"), "{bad}: {e}");
        }
    }

    #[test]
    fn action_header_is_a_header_name() {
        let mut args = ServeArgs {
            audience: Some("spiffe://c.example/orders".into()),
            action_header: Some("X-Custody-Action".into()),
            ..ServeArgs::default()
        };
        let s = Settings::from_args(&args).unwrap();
        assert_eq!(s.map.action_header.as_deref(), Some("x-custody-action"));
        args.action_header = Some(":path".into());
        assert!(Settings::from_args(&args).is_err());
    }
}
