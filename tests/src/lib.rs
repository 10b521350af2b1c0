//! Test kit for custody's integration and conformance tests: a standard four-domain pack
//! written to a temporary directory with fresh keys, and helpers to mint tokens in it.
//!
//! The standard pack: `a.example` (a user's agent, Bob), `b.example` (the partner agent,
//! Alice), `c.example` (local: the orders service), `d.example` (declared but federated with
//! nobody). Federation `a -> b` and `b -> c` carry `orders:read` and `orders:write`.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use custody_jose::{sign, sign_with_header, KeySet, Limits, SigningKey};
use custody_policy::PolicyPack;
use custody_verifier::{Decision, Request, Verifier};
use serde_json::{json, Value};

/// The fixed time every test decides at: 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;
/// The orders service's audience.
pub const AUD: &str = "spiffe://c.example/orders";
/// Bob, the user's agent in `a.example`.
pub const BOB: &str = "spiffe://a.example/agent/bob";
/// Alice, the partner agent in `b.example`.
pub const ALICE: &str = "spiffe://b.example/agent/alice";
/// Mallory, an agent in the unfederated `d.example`.
pub const MALLORY: &str = "spiffe://d.example/agent/mallory";
/// The domains of the standard pack.
pub const DOMAINS: [&str; 4] = ["a.example", "b.example", "c.example", "d.example"];

/// The issuer URL of a domain in the standard pack.
pub fn issuer(domain: &str) -> String {
    format!("https://as.{domain}")
}

/// A pack under construction.
pub struct PackBuilder {
    federation: Vec<(String, String, String)>,
    chain: String,
    cedar: Option<String>,
    schema: Option<String>,
    entities: Option<String>,
    extra_trust: String,
    biscuit_keys: bool,
    keys: BTreeMap<String, SigningKey>,
    remote: BTreeMap<String, String>,
    bundles: BTreeMap<String, Vec<Value>>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        let scopes = r#"["orders:read", "orders:write"]"#.to_owned();
        PackBuilder {
            federation: vec![
                ("a.example".into(), "b.example".into(), scopes.clone()),
                ("b.example".into(), "c.example".into(), scopes),
            ],
            chain: String::new(),
            cedar: None,
            schema: None,
            entities: None,
            extra_trust: String::new(),
            biscuit_keys: false,
            keys: BTreeMap::new(),
            remote: BTreeMap::new(),
            bundles: BTreeMap::new(),
        }
    }
}

impl PackBuilder {
    /// Adds a federation rule; `scopes` is the trust-language list, e.g. `["*"]`.
    pub fn federate(mut self, from: &str, to: &str, scopes: &str) -> Self {
        self.federation
            .push((from.into(), to.into(), scopes.into()));
        self
    }

    /// Drops every federation rule.
    pub fn no_federation(mut self) -> Self {
        self.federation.clear();
        self
    }

    /// Settings for the `chain` block, e.g. `max_depth 2`.
    pub fn chain(mut self, settings: &str) -> Self {
        self.chain = settings.into();
        self
    }

    /// A Cedar policy file.
    pub fn cedar(mut self, policies: &str) -> Self {
        self.cedar = Some(policies.into());
        self
    }

    /// A Cedar schema file.
    pub fn schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// An `entities.json` file.
    pub fn entities(mut self, entities: &str) -> Self {
        self.entities = Some(entities.into());
        self
    }

    /// Extra trust-language text appended to the trust file.
    pub fn extra_trust(mut self, text: &str) -> Self {
        self.extra_trust.push_str(text);
        self
    }

    /// Declares each domain's key file as its `biscuit_keys` too (the Biscuit profile).
    pub fn biscuit_keys(mut self) -> Self {
        self.biscuit_keys = true;
        self
    }

    /// Signs for `domain` with `key` (any algorithm) instead of its standard Ed25519 key.
    pub fn key(mut self, domain: &str, key: SigningKey) -> Self {
        self.keys.insert(domain.into(), key);
        self
    }

    /// Writes `domain`'s key file as a SPIFFE bundle: its signing key with `use` `jwt-svid`,
    /// then `entries` (`x509-svid` authorities, `wit-svid` keys).
    pub fn bundle(mut self, domain: &str, entries: Vec<Value>) -> Self {
        self.bundles.insert(domain.into(), entries);
        self
    }

    /// Gives `domain` these trust-file lines (remote key sources, say) instead of its key
    /// file.
    pub fn remote(mut self, domain: &str, lines: &str) -> Self {
        self.remote.insert(domain.into(), lines.into());
        self
    }

    /// Writes the pack and builds a verifier on it.
    pub fn build(self) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        let mut keys = BTreeMap::new();
        let mut trust = String::from("# test pack\nlocal \"c.example\"\n");
        for (n, d) in DOMAINS.iter().enumerate() {
            let key =
                self.keys.get(*d).cloned().unwrap_or_else(|| {
                    SigningKey::from_seed(&format!("{d}-k1"), [n as u8 + 1; 32])
                });
            let mut set = KeySet::new();
            set.insert(key.public()).unwrap();
            let file = format!("keys/{d}.jwks");
            let doc = match self.bundles.get(*d) {
                None => set.to_jwks(),
                Some(entries) => {
                    let mut jwk = key.public().to_jwk();
                    jwk["use"] = "jwt-svid".into();
                    let mut keys = vec![jwk];
                    keys.extend(entries.iter().cloned());
                    json!({"spiffe_sequence": 1, "keys": keys})
                }
            };
            std::fs::write(dir.path().join(&file), doc.to_string()).unwrap();
            let biscuit = if self.biscuit_keys {
                format!("  biscuit_keys \"{file}\"\n")
            } else {
                String::new()
            };
            let keys_line = match self.remote.get(*d) {
                Some(lines) => lines.clone(),
                None => format!("  keys \"{file}\""),
            };
            writeln!(
                trust,
                "domain \"{d}\" {{\n  issuer \"{}\"\n{keys_line}\n{biscuit}}}",
                issuer(d)
            )
            .unwrap();
            keys.insert((*d).to_owned(), key);
        }
        for (from, to, scopes) in &self.federation {
            writeln!(
                trust,
                "federate \"{from}\" -> \"{to}\" {{ scopes {scopes} }}"
            )
            .unwrap();
        }
        if !self.chain.is_empty() {
            writeln!(trust, "chain {{\n  {}\n}}", self.chain).unwrap();
        }
        trust.push_str(&self.extra_trust);
        std::fs::write(dir.path().join("pack.trust"), trust).unwrap();
        if let Some(c) = &self.cedar {
            std::fs::write(dir.path().join("policies.cedar"), c).unwrap();
        }
        if let Some(s) = &self.schema {
            std::fs::write(dir.path().join("pack.cedarschema"), s).unwrap();
        }
        if let Some(e) = &self.entities {
            std::fs::write(dir.path().join("entities.json"), e).unwrap();
        }
        let pack = match PolicyPack::load(dir.path(), &Limits::default()) {
            Ok(l) => l.pack,
            Err(e) => panic!("test pack does not load: {e:?}"),
        };
        Fixture {
            verifier: Verifier::new(pack),
            keys,
            dir,
        }
    }
}

/// A loaded standard pack with its signing keys.
pub struct Fixture {
    /// The verifier on the pack.
    pub verifier: Verifier,
    keys: BTreeMap<String, SigningKey>,
    /// The pack directory (kept alive as long as the fixture).
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// The standard pack, no Cedar.
    pub fn standard() -> Fixture {
        PackBuilder::default().build()
    }

    /// The signing key of a domain.
    pub fn key(&self, domain: &str) -> &SigningKey {
        &self.keys[domain]
    }

    /// An access token (`typ` `at+jwt`) signed by `domain`'s key, `iss` filled in.
    pub fn token(&self, domain: &str, claims: Value) -> String {
        self.typed(domain, Some("at+jwt"), claims)
    }

    /// A token with a chosen `typ`, signed by `domain`'s key, `iss` filled in if absent.
    pub fn typed(&self, domain: &str, typ: Option<&str>, mut claims: Value) -> String {
        if claims.get("iss").is_none() {
            claims["iss"] = issuer(domain).into();
        }
        sign(self.key(domain), typ, &claims).unwrap()
    }

    /// A token under an arbitrary header, signed by `domain`'s key.
    pub fn with_header(&self, domain: &str, header: Value, claims: Value) -> String {
        sign_with_header(self.key(domain), &header, &claims).unwrap()
    }

    /// A Txn-Token from the local domain.
    pub fn txn_token(&self, claims: Value) -> String {
        self.typed("c.example", Some("txntoken+jwt"), claims)
    }

    /// Decides a request.
    pub fn verify(&self, req: &Request) -> Decision {
        self.verifier.verify(req)
    }
}

/// The standard claims of the origin token: Bob acting for user Alice, for Alice-agent.
pub fn t0_claims() -> Value {
    json!({
        "sub": "user:alice",
        "aud": [ALICE],
        "iat": NOW - 60,
        "exp": NOW + 600,
        "scope": "orders:read orders:write",
        "txn": "txn-1",
        "act": {"sub": BOB},
    })
}

/// The standard claims of the second token: Alice-agent for Bob, for the orders service.
pub fn t1_claims() -> Value {
    json!({
        "sub": "user:alice",
        "aud": AUD,
        "iat": NOW - 30,
        "exp": NOW + 300,
        "scope": "orders:read",
        "txn": "txn-1",
        "act": {"sub": ALICE, "act": {"sub": BOB}},
    })
}

/// `act` for actors earliest first.
pub fn act(actors: &[&str]) -> Value {
    actors.iter().fold(Value::Null, |inner, a| {
        if inner.is_null() {
            json!({"sub": a})
        } else {
            json!({"sub": a, "act": inner})
        }
    })
}

/// A request for `orders:read` at the orders service, at [`NOW`].
pub fn request(tokens: Vec<String>) -> Request {
    Request {
        tokens,
        audience: AUD.into(),
        action: "orders:read".into(),
        now: Some(NOW),
        ..Request::default()
    }
}

/// The standard allowed two-domain chain.
pub fn chain(f: &Fixture) -> Vec<String> {
    vec![
        f.token("a.example", t0_claims()),
        f.token("b.example", t1_claims()),
    ]
}

/// The first reason's code name, or `allow`.
pub fn outcome(d: &Decision) -> String {
    d.code()
        .map_or_else(|| "allow".to_owned(), |c| c.as_str().to_owned())
}

/// The first reason's hop.
pub fn hop(d: &Decision) -> Option<usize> {
    d.reasons.first().and_then(|r| r.hop)
}

/// A loopback HTTP/1.1 server of fixed documents, for remote key source tests: each path
/// answers what [`DocServer::set`] last gave it (status, body, headers, delay) and counts its
/// hits. One request per connection.
pub mod docserver {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What a path answers.
    #[derive(Clone, Debug)]
    pub struct Doc {
        /// HTTP status.
        pub status: u16,
        /// Body.
        pub body: Vec<u8>,
        /// Extra headers.
        pub headers: Vec<(String, String)>,
        /// Wait this long before answering.
        pub delay: Duration,
    }

    impl Doc {
        /// 200 with `body`.
        pub fn ok(body: impl Into<Vec<u8>>) -> Doc {
            Doc {
                status: 200,
                body: body.into(),
                headers: Vec::new(),
                delay: Duration::ZERO,
            }
        }

        /// `status` with an empty body.
        pub fn status(status: u16) -> Doc {
            Doc {
                status,
                ..Doc::ok("")
            }
        }
    }

    type Routes = Arc<Mutex<HashMap<String, Doc>>>;
    type Hits = Arc<Mutex<HashMap<String, u64>>>;

    /// The server; it stops when the runtime it was started on does.
    #[derive(Clone, Debug)]
    pub struct DocServer {
        /// Where it listens.
        pub addr: SocketAddr,
        routes: Routes,
        hits: Hits,
    }

    impl DocServer {
        /// Starts listening on 127.0.0.1 on the given runtime.
        pub fn start(rt: &tokio::runtime::Runtime) -> DocServer {
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let server = DocServer {
                addr,
                routes: Arc::default(),
                hits: Arc::default(),
            };
            let (routes, hits) = (Arc::clone(&server.routes), Arc::clone(&server.hits));
            rt.spawn(async move {
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(answer(conn, Arc::clone(&routes), Arc::clone(&hits)));
                }
            });
            server
        }

        /// `http://127.0.0.1:PORT{path}`.
        pub fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        /// Makes `path` answer `doc`.
        pub fn set(&self, path: &str, doc: Doc) {
            self.routes.lock().unwrap().insert(path.to_owned(), doc);
        }

        /// Requests for `path` so far.
        pub fn hits(&self, path: &str) -> u64 {
            self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
        }
    }

    async fn answer(mut conn: tokio::net::TcpStream, routes: Routes, hits: Hits) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16_384 {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let doc = routes
            .lock()
            .unwrap()
            .get(&path)
            .cloned()
            .unwrap_or_else(|| Doc::status(404));
        tokio::time::sleep(doc.delay).await;
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
            doc.status,
            doc.body.len()
        );
        for (k, v) in &doc.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let _ = conn.write_all(out.as_bytes()).await;
        let _ = conn.write_all(&doc.body).await;
        let _ = conn.shutdown().await;
    }
}

/// A real `redis-server` for the fleet tests (Debian's package; `.ci/run` installs it). Without
/// one on `PATH` (or `CUSTODY_REDIS_SERVER`) [`Redis::start`] fails under `CI=true` and
/// returns `None` (the test skips, saying so) elsewhere.
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test kit: a panic is how a broken expectation is reported"
)]
pub mod redis {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A `redis-server` of its own on a free loopback port, without persistence (stopped on drop).
    pub struct Redis {
        /// Its port.
        pub port: u16,
        child: Option<Child>,
    }

    fn redis_binary() -> Option<String> {
        if let Ok(b) = std::env::var("CUSTODY_REDIS_SERVER") {
            return Some(b);
        }
        let found = Command::new("sh")
            .args(["-c", "command -v redis-server"])
            .output()
            .ok()?;
        let path = String::from_utf8(found.stdout).ok()?.trim().to_owned();
        (!path.is_empty()).then_some(path)
    }

    impl Redis {
        /// A fresh server, or `None` (skip) when there is none to run outside CI.
        pub fn start() -> Option<Redis> {
            let Some(_) = redis_binary() else {
                assert!(
                    std::env::var("CI").map(|v| v != "true").unwrap_or(true),
                    "CI=true and no redis-server: .ci/run installs it (apt-get install redis-server)"
                );
                eprintln!("skipped: no redis-server on PATH (set CUSTODY_REDIS_SERVER)");
                return None;
            };
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut r = Redis { port, child: None };
            r.up();
            Some(r)
        }

        /// `redis://127.0.0.1:PORT`.
        pub fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.port)
        }

        /// Starts it (again, empty) on its port.
        pub fn up(&mut self) {
            let child = Command::new(redis_binary().unwrap())
                .args([
                    "--port",
                    &self.port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            self.child = Some(child);
            let until = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(Instant::now() < until, "redis-server did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        /// Kills it.
        pub fn down(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }

        /// A command by a plain client.
        pub async fn cmd(&self, args: &[&str]) -> redis::Value {
            let client = redis::Client::open(self.url()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let mut cmd = redis::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(*a);
            }
            cmd.query_async(&mut c).await.unwrap()
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            self.down();
        }
    }
}
