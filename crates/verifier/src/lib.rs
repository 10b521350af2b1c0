//! The custody verifier: given a policy pack and one call's delegation evidence, decide.
//!
//! A [`Verifier`] is built once from a [`PolicyPack`] and shared: [`Verifier::verify`] and
//! [`Verifier::verify_batch`] take `&self`, the type is `Send + Sync`, and no input makes them
//! panic. Checks run in DESIGN.md's order (the request; each token's size, decoding, header,
//! issuer and key, signature, claims, times, identifiers; then audience, sender binding, links,
//! actors, scope, federation path and vouching; then Cedar) and the first failure is
//! `reasons[0]` of the [`Decision`].
//!
//! ```
//! use custody_verifier::{Request, Verifier};
//! use custody_policy::PolicyPack;
//! use custody_jose::Limits;
//!
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/demo");
//! let pack = PolicyPack::load(dir.as_ref(), &Limits::default()).unwrap().pack;
//! let verifier = Verifier::new(pack);
//! let request = Request {
//!     tokens: vec!["not-a-token".into()],
//!     audience: "spiffe://c.example/orders".into(),
//!     action: "orders:read".into(),
//!     ..Request::default()
//! };
//! let decision = verifier.verify(&request);
//! assert!(!decision.is_allowed());
//! assert_eq!(decision.reasons[0].code.as_str(), "malformed_token");
//! ```
//!
//! Limits: every input bound is in [`Limits`] (re-exported from `custody-jose`). Memory kept
//! between calls is bounded too: the token cache ([`TokenCache`]) holds at most
//! [`VerifierOptions::sig_cache_entries`] tokens and [`VerifierOptions::sig_cache_bytes`]
//! accounted bytes (16 MiB by default), the Cedar request memo at most
//! [`VerifierOptions::cedar_memo_entries`] requests and [`VerifierOptions::cedar_memo_bytes`]
//! bytes (4 MiB), and at most [`MAX_SLICES`] Cedar slices are kept.
//!
//! # Where each rule lives
//!
//! One rule of DESIGN.md ("Chain semantics", "Decision", "Clarifications"), one function. The
//! order of the table is the order of the checks, all run by one pipeline (`Verifier::decide`,
//! behind [`Verifier::verify`]) for JWS chains and Biscuits alike.
//!
//! | rule | enforced by |
//! |---|---|
//! | request shape: fields, types, unknown or duplicate keys, `context` values, `peer` | `request::Request::from_json`, `Request::check` (`request.rs`) |
//! | a sole Biscuit is the whole chain; a Biscuit among JWTs is `wrong_token_type` | `biscuit::is_sole_biscuit`, `biscuit::not_alone` (`biscuit.rs`) |
//! | token size, strict compact JWS, strict JSON, refused headers | `custody_jose::decode` (`crates/jose/src/jws.rs`, `json.rs`) |
//! | `typ` fits the position: `t0` either kind, then Txn-Tokens after a Txn-Token `t0`, access tokens otherwise | `txn::expect_at` (`txn.rs`), `token::check_class` (`token.rs`) |
//! | issuer, `kid` in that domain's current key set, `alg` the key allows, signature | `token::check_signature`; keys from `custody_jose::KeyStore` (`crates/jose/src/keystore.rs`); the algorithm's rule in `custody_jose::KeyMaterial::verify` (Ed25519: `verify_strict`'s acceptance, `jwk.rs`) |
//! | required claims and their JSON types; `act` members and nesting | `token::read_claims`, `token::check_act_shape` |
//! | NumericDate: integers 0 to year 9999, one reader | `custody_jose::numeric_date` (`crates/jose/src/date.rs`) |
//! | time: `exp`, `nbf`, `iat`, `max_lifetime` (JWTs and Biscuit hops alike) | `time::time_rule` (`time.rs`) |
//! | an earlier Txn-Token of a replacement chain is judged at its replacement's `iat` | `txn::dated_at`, `txn::peek_iat` (`txn.rs`) |
//! | identifiers: actors from `act`/`client_id`/`sub`, `req_wl`; workload SPIFFE IDs within the limits | `token::identifiers`, `token::requesting_workloads`; `custody_jose::Limits::workload_id` → `custody_id::SpiffeId::parse_workload_within` |
//! | a verified token remembered, honoured only while its issuer's domain and its key (`kid`, thumbprint, key-set epoch) still hold | `cache::TokenCache`, `cache::KeyBinding::holds`, `token::check_cached` |
//! | the presented token's audience; a Txn-Token's `aud` holds `local` | `chain::Chain::audience` (`chain.rs`) |
//! | sender binding: `peer` is the caller | `chain::Chain::sender_binding` |
//! | links of an explicit chain: `txn`, `sub`, actors, `aud`, `iat`, scope, `exp` | `chain::explicit_link` |
//! | links of a Txn-Token replacement chain: `txn`, `sub`, `aud`, scope, `tctx`, requesting workloads | `txn::replacement_link` (`txn.rs`) |
//! | the `txn_token` against `t0` | `chain::Chain::txn_token_link` |
//! | actors: `max_depth`, loops | `chain::Chain::actors` |
//! | scope: the action in the presented scope (and the `txn_token`'s) | `chain::Chain::scope` |
//! | federation path: `federate` per crossing, its scopes, `max_domains` | `chain::Chain::federation` |
//! | vouching: a domain speaks only for what it owns | `chain::Chain::vouching`, `chain::vouch` |
//! | Biscuit profile: blocks, signatures (the domain's current Biscuit keys), hops as tokens, cost budget, its own checks | `biscuit::check`, `biscuit::budget`, `biscuit::authorize` |
//! | Cedar request: principal, action, resource, context; schema validation | `cedar::Engine::build` (`cedar.rs`), from the one `cedar::Input` built in `Verifier::cedar`; the attribute named by `custody_policy::context_mismatch` |
//! | Cedar decision; an evaluation error denies (`policy_error`) | `cedar::Engine::evaluate`, `policy_error` (`lib.rs`) |
//! | the order of it all and the first failure as `reasons[0]` | `Verifier::decide` ([`Verifier::verify`], [`Verifier::verify_traced`]) |
//!
//! What the pipeline established is a read-only [`VerifiedChain`] of [`VerifiedToken`]s
//! ([`Verifier::verify_traced`]): `custody explain` and `custody demo` show that, not their
//! own reading of the tokens.
//!
//! # Keys
//!
//! Keys are looked up in a [`KeyStore`] (`custody-jose`): per trust domain, an immutable
//! snapshot of its token keys and Biscuit keys with a process-unique epoch. By default the
//! store holds the pack's key files ([`Verifier::pack_key_store`]); a key source that changes
//! keys while the verifier runs passes its own store to [`Verifier::with_key_store`] and
//! replaces a domain's snapshot with [`KeyStore::replace`]. Checks in flight keep the snapshot
//! they took; the token cache stops honouring a token as soon as its key leaves its domain's set.
#![forbid(unsafe_code)]

pub mod biscuit;
mod cache;
pub mod card;
mod cedar;
mod chain;
mod decision;
mod exact;
mod fifo;
mod index;
mod items;
mod proof;
mod reason;
mod replay;
mod request;
pub mod revoke;
mod slice;
mod texts;
mod time;
mod token;
mod txn;
mod verified;
mod x509;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use cache::{CacheStats, TokenCache, DEFAULT_CAPACITY, DEFAULT_CAPACITY_BYTES, ENTRY_BYTES};
pub use cedar::{MEMO_BYTES, MEMO_ENTRIES};
pub use custody_jose::{KeyStore, Limits};
pub use custody_policy::{is_scope_token, PolicyPack, ProtectedResource};
pub use decision::{ChainSummary, Decision};
pub use proof::{
    without_query, CallerProof, ProofMethod, WIT_CACHE_BYTES, WIT_CACHE_ENTRIES, WPT_MAX_REMAINING,
};
pub use reason::{Reason, ReasonCode};
pub use replay::{ReplayStore, StoreDown, REPLAY_ENTRIES};
pub use request::{
    InvalidRequest, Request, RequestError, ResourceRef, DEFAULT_RESOURCE_TYPE,
    MAX_PEER_CERTIFICATES, MAX_PEER_CERTIFICATE_BYTES, REQUEST_FIELDS,
};
pub use revoke::{Revocation, RevocationKind, Revocations};
pub use slice::{SlicedPolicySet, MAX_SLICES};
pub use texts::Strs;
pub use verified::{Confirmation, VerifiedChain, VerifiedToken};

use chain::Chain;
use index::PackIndex;
use token::{Clock, Ctx};
use txn::Expect;

/// How a verifier is built.
#[derive(Clone, Debug)]
pub struct VerifierOptions {
    /// Input limits.
    pub limits: Limits,
    /// Verified tokens remembered by the token cache ([`TokenCache`]; 0 turns it off). The
    /// name is the cache's first one, when it kept signatures only.
    pub sig_cache_entries: usize,
    /// Memory the token cache may use, in accounted bytes (each entry at [`ENTRY_BYTES`] plus
    /// an upper estimate of the heap it owns); the tighter of this and `sig_cache_entries`
    /// holds.
    pub sig_cache_bytes: usize,
    /// Cedar requests remembered by their inputs (0 turns the memo off): Cedar evaluates every
    /// call, but a request built from the same agents, origin, action, resource, peer and
    /// context as an earlier one is not built again.
    pub cedar_memo_entries: usize,
    /// Memory the Cedar request memo may use, in accounted bytes.
    pub cedar_memo_bytes: usize,
    /// Threads of [`Verifier::verify_batch`]'s own rayon pool; `None` (the default) uses rayon's
    /// global pool (one thread per core unless `RAYON_NUM_THREADS` says otherwise).
    pub batch_threads: Option<usize>,
    /// Evaluate each request against only the Cedar policies whose scope can match it
    /// ([`SlicedPolicySet`]); same decisions and policy ids, fewer policies evaluated.
    pub cedar_slicing: bool,
    /// One-time proofs (WPT and DPoP `jti`s) remembered within their lifetimes; a node with
    /// this many live proofs denies new ones (`store_unavailable`) rather than forget one.
    pub replay_entries: usize,
    /// Validated X.509-SVID chains remembered by their exact bytes (0 turns it off).
    pub x509_cache_entries: usize,
    /// Verified WITs remembered by their exact bytes, and as many DPoP proof keys by their
    /// header's bytes (0 turns both off); a WPT or DPoP proof is never remembered.
    pub wit_cache_entries: usize,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        VerifierOptions {
            limits: Limits::default(),
            sig_cache_entries: DEFAULT_CAPACITY,
            sig_cache_bytes: DEFAULT_CAPACITY_BYTES,
            cedar_memo_entries: MEMO_ENTRIES,
            cedar_memo_bytes: MEMO_BYTES,
            batch_threads: None,
            cedar_slicing: true,
            replay_entries: REPLAY_ENTRIES,
            x509_cache_entries: x509::CACHE_ENTRIES,
            wit_cache_entries: proof::WIT_CACHE_ENTRIES,
        }
    }
}

/// Decides calls against one policy pack.
#[derive(Debug)]
pub struct Verifier {
    pack: Arc<PolicyPack>,
    index: PackIndex,
    /// Every domain's current keys: seeded from the pack's key files, or given by the caller
    /// ([`Verifier::with_key_store`]) when other sources feed it.
    keys: Arc<KeyStore>,
    limits: Limits,
    cache: TokenCache,
    /// The pack's Cedar policies, sliced by scope, and the request memo (absent without Cedar).
    cedar: Option<cedar::Engine>,
    /// `verify_batch`'s own pool, when one was asked for.
    pool: Option<rayon::ThreadPool>,
    /// One-time proofs seen on this node.
    replay: replay::Replay,
    /// Each domain's X.509 authorities, parsed, and the chains validated against them.
    x509: x509::X509State,
    /// WITs verified before, by their exact bytes.
    wits: exact::ExactCache<proof::KnownWit>,
    /// DPoP proofs' public keys, by their header's exact bytes (the key parsed and its point
    /// checked once per client key).
    dpop_keys: exact::ExactCache<custody_jose::PublicKey>,
    /// The revocations this node holds (shared with whatever feeds them, and with the
    /// verifiers of later packs).
    revocations: Arc<Revocations>,
}

impl Verifier {
    /// A verifier with default options.
    pub fn new(pack: PolicyPack) -> Self {
        Self::with_options(Arc::new(pack), VerifierOptions::default())
    }

    /// A verifier with explicit options, its keys those of the pack's key files.
    pub fn with_options(pack: Arc<PolicyPack>, options: VerifierOptions) -> Self {
        let keys = Arc::new(index::key_store(&pack));
        Self::with_key_store(pack, keys, options)
    }

    /// A verifier whose keys come from `keys` rather than from the pack's key files: the seam
    /// for key sources that change while the verifier runs (a remote JWKS, a rotation). The
    /// store's domains must be the pack's, in its order ([`Verifier::pack_key_store`] builds
    /// one); a token whose domain has no slot fails with `unknown_key`.
    pub fn with_key_store(
        pack: Arc<PolicyPack>,
        keys: Arc<KeyStore>,
        options: VerifierOptions,
    ) -> Self {
        let cedar = pack.cedar.as_ref().map(|c| {
            let policies = match options.cedar_slicing {
                true => SlicedPolicySet::new(c.policies.clone()),
                false => SlicedPolicySet::unsliced(c.policies.clone()),
            };
            cedar::Engine::new(
                policies,
                options.cedar_memo_entries,
                options.cedar_memo_bytes,
            )
        });
        // A pool that cannot be built (no threads to spare) leaves the global pool in charge.
        let pool = options.batch_threads.and_then(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n.max(1))
                .thread_name(|i| format!("custody-batch-{i}"))
                .build()
                .ok()
        });
        Verifier {
            index: PackIndex::new(&pack),
            x509: x509::X509State::new(pack.domains.len(), options.x509_cache_entries),
            keys,
            pack,
            limits: options.limits,
            cache: TokenCache::with_bound(options.sig_cache_entries, options.sig_cache_bytes),
            cedar,
            pool,
            replay: replay::Replay {
                local: replay::ReplayCache::new(options.replay_entries),
                shared: None,
            },
            wits: exact::ExactCache::new(options.wit_cache_entries, proof::WIT_CACHE_BYTES),
            dpop_keys: exact::ExactCache::new(options.wit_cache_entries, proof::WIT_CACHE_BYTES),
            revocations: Arc::new(Revocations::new()),
        }
    }

    /// This verifier denying what `revocations` holds (`revoked`), instead of its own empty
    /// set: the seam a store follower, or a gateway's own revocation feed, writes through.
    /// Give the verifier of every later pack the same set.
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = revocations;
        self
    }

    /// This verifier recording one-time `jti`s (WPTs, DPoP proofs, and access tokens under
    /// `one_time_tokens`) in `store` as well as in its own cache, so that what one node of a
    /// fleet accepted every other refuses (`replayed`).
    pub fn with_replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay.shared = Some(store);
        self
    }

    /// The revocations this verifier denies.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// The pack this verifier decides with.
    pub fn pack(&self) -> &Arc<PolicyPack> {
        &self.pack
    }

    /// A key store seeded with `pack`'s keys, one slot per domain in the pack's order.
    pub fn pack_key_store(pack: &PolicyPack) -> KeyStore {
        index::key_store(pack)
    }

    /// The key store this verifier looks keys up in.
    pub fn key_store(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The token cache (verified tokens, by their exact bytes).
    pub fn token_cache(&self) -> &TokenCache {
        &self.cache
    }

    /// One-time proofs (WPT and DPoP `jti`s) remembered now, expired ones not yet swept
    /// included.
    pub fn replay_cache_len(&self) -> usize {
        self.replay.local.len()
    }

    /// Cedar requests remembered now (0 without Cedar).
    pub fn cedar_memo_len(&self) -> usize {
        self.cedar.as_ref().map_or(0, cedar::Engine::memo_len)
    }

    /// The Cedar request memo's `(entries, bytes)` bounds (zeros without Cedar).
    pub fn cedar_memo_capacity(&self) -> (usize, usize) {
        self.cedar
            .as_ref()
            .map_or((0, 0), cedar::Engine::memo_capacity)
    }

    /// Forgets every remembered token and Cedar request (the counters stay): the next calls
    /// are decided as if for the first time.
    pub fn clear_caches(&self) {
        self.cache.clear();
        if let Some(c) = &self.cedar {
            c.memo_clear();
        }
    }

    /// Parses a request document and decides it. `Err` only for text that is not JSON.
    pub fn verify_json(&self, bytes: &[u8]) -> Result<Decision, RequestError> {
        match Request::from_json(bytes, &self.limits) {
            Ok(req) => Ok(self.verify(&req)),
            Err(RequestError::Invalid(m)) => Ok(Decision::invalid_request(m)),
            Err(e) => Err(e),
        }
    }

    /// Decides one call.
    pub fn verify(&self, req: &Request) -> Decision {
        let mut verified = VerifiedChain::default();
        self.decide(req, &mut verified)
    }

    /// Decides one call, and returns with the decision what the verifier established on the
    /// way: the tokens that passed their own checks, as it read them ([`VerifiedChain`]).
    pub fn verify_traced(&self, req: &Request) -> (Decision, VerifiedChain) {
        let mut verified = VerifiedChain::default();
        let decision = self.decide(req, &mut verified);
        (decision, verified)
    }

    /// The one decision pipeline, for JWS chains and Biscuits alike, in DESIGN.md's order: the
    /// request; each token's own checks (a Biscuit's: its blocks, as hops); the `txn_token`;
    /// the chain rules (audience, sender binding, links, actors, scope, federation path,
    /// vouching); a Biscuit's own checks; Cedar. What passed is left in `verified`.
    fn decide(&self, req: &Request, verified: &mut VerifiedChain) -> Decision {
        let peer = match req.check(&self.limits) {
            Ok(p) => p,
            Err(r) => return Decision::deny(r, None),
        };
        let now = req.now.unwrap_or_else(system_now);
        let biscuit = match biscuit::is_sole_biscuit(req) {
            Some(raw) => {
                match biscuit::check(&self.pack, &self.keys, &self.limits, raw, req, now) {
                    Ok((hops, b)) => {
                        verified.biscuit = true;
                        verified.tokens = hops.into_iter().map(Arc::new).collect();
                        Some(b)
                    }
                    Err(r) => return Decision::deny(r, None),
                }
            }
            None => {
                if let Err(r) = self.check_tokens(req, now, verified) {
                    return Decision::deny(r, None);
                }
                None
            }
        };
        if let Some(raw) = &req.txn_token {
            let ctx = self.ctx(false, None);
            match token::check(&ctx, raw, Expect::Txn, Clock { now, next: None }) {
                Ok(t) => verified.txn_token = Some(t),
                Err(r) => return Decision::deny(r, None),
            }
        }
        verified.complete = true;
        let mut caller = None;
        let decision = self.decide_chain(req, verified, peer, now, biscuit.as_ref(), &mut caller);
        verified.caller = caller;
        decision
    }

    /// The chain rules (with the caller's proofs), a Biscuit's own checks and Cedar, on tokens
    /// that each passed their own checks.
    fn decide_chain(
        &self,
        req: &Request,
        verified: &VerifiedChain,
        peer: Option<custody_id::SpiffeId>,
        now: i64,
        biscuit: Option<&biscuit_auth::Biscuit>,
        caller: &mut Option<CallerProof>,
    ) -> Decision {
        let Some(mut chain) = Chain::new(&self.pack, req, verified, peer.clone()) else {
            return Decision::invalid_request("`tokens` must hold at least one token");
        };
        let summary = chain.summary();
        let prove = |_: &Chain<'_>| {
            let mut out = CallerProof::default();
            let tokens = verified.tokens.as_slice();
            let txn = verified.txn_token.as_deref();
            if !proof::Prover::needed(req, tokens, txn) {
                if peer.is_some() {
                    out.methods.push(ProofMethod::TrustedPeer);
                    out.peer = peer.clone();
                }
                *caller = Some(out);
                return Ok(proof::Proven {
                    peer: peer.clone(),
                    key_bound: false,
                });
            }
            let prover = proof::Prover {
                pack: &self.pack,
                index: &self.index,
                keys: &self.keys,
                limits: &self.limits,
                replay: &self.replay,
                x509: &self.x509,
                wits: &self.wits,
                dpop_keys: &self.dpop_keys,
            };
            let proven = prover.prove(req, peer.clone(), tokens, txn, now, &mut out);
            *caller = Some(out);
            proven
        };
        if let Err(r) = chain.check(prove) {
            return Decision::deny(r, Some(summary));
        }
        if let Some(b) = biscuit {
            if let Err(r) = biscuit::authorize(b, req, now) {
                return Decision::deny(r, Some(summary));
            }
        }
        if let Err(r) = self.revocations.check(verified, &summary.origin, now) {
            return Decision::deny(r, Some(summary));
        }
        let decision = self.cedar(req, &chain, summary);
        if decision.is_allowed() && self.pack.chain.one_time_tokens {
            // used up only by a call that would be allowed: a denied call burns nothing
            if let Err(r) = self.use_up_token(verified, now) {
                return Decision::deny(r, decision.chain);
            }
        }
        decision
    }

    /// `one_time_tokens`: the presented token's `jti`, through the replay defence, live until
    /// the token's `exp` plus the skew. A presented token without a `jti` is `missing_claim`.
    fn use_up_token(&self, verified: &VerifiedChain, now: i64) -> Result<(), Reason> {
        let hop = verified.tokens.len().checked_sub(1);
        let Some(t) = verified.tokens.last() else {
            return Ok(());
        };
        let Some(jti) = t.jti() else {
            return Err(Reason::new(
                ReasonCode::MissingClaim,
                hop,
                "`one_time_tokens` is on and the presented token has no string `jti`",
            ));
        };
        // the token's issuer domain stands for its signer: two domains' `jti`s never meet
        let domain = self
            .pack
            .domains
            .get(t.domain)
            .map_or("", |d| d.name.as_str());
        let signer: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(domain.as_bytes()).into();
        let until = t.exp.saturating_add(self.pack.chain.clock_skew as i64);
        let fail_open = self.pack.chain.fail_open_replay;
        self.replay
            .consume(
                replay::ProofKind::Token,
                &signer,
                jti,
                until,
                now,
                fail_open,
            )
            .map_err(|mut r| {
                r.hop = hop;
                r
            })
    }

    /// Decides many calls on the rayon pool (the verifier's own if
    /// [`VerifierOptions::batch_threads`] asked for one, else the global pool); the result is
    /// exactly `verify` on each, in order. Upstream tokens shared by many requests are
    /// verified once and then found in the token cache.
    pub fn verify_batch(&self, reqs: &[Request]) -> Vec<Decision> {
        use rayon::prelude::*;
        let run = || reqs.par_iter().map(|r| self.verify(r)).collect();
        match &self.pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
    }

    /// Threads `verify_batch` runs on.
    pub fn batch_threads(&self) -> usize {
        self.pool.as_ref().map_or_else(
            rayon::current_num_threads,
            rayon::ThreadPool::current_num_threads,
        )
    }

    /// What a token check needs: this verifier's pack, keys, limits and cache.
    fn ctx(&self, single: bool, hop: Option<usize>) -> Ctx<'_> {
        Ctx {
            pack: &self.pack,
            index: &self.index,
            keys: &self.keys,
            limits: &self.limits,
            cache: &self.cache,
            single,
            hop,
        }
    }

    /// Each JWS of `tokens` through its own checks, in order, into `verified`.
    fn check_tokens(
        &self,
        req: &Request,
        now: i64,
        verified: &mut VerifiedChain,
    ) -> Result<(), Reason> {
        let mut ctx = self.ctx(req.tokens.len() == 1, Some(0));
        verified.tokens.reserve(req.tokens.len());
        for (i, raw) in req.tokens.iter().enumerate() {
            ctx.hop = Some(i);
            if biscuit::looks_like_biscuit(raw, &self.limits) {
                return Err(biscuit::not_alone(i));
            }
            let expect = txn::expect_at(i, verified.replacement);
            let next = req.tokens.get(i + 1).map(String::as_str);
            let t = token::check(&ctx, raw, expect, Clock { now, next })?;
            if i == 0 {
                verified.replacement = txn::is_replacement_chain(&t);
            }
            verified.tokens.push(t);
        }
        Ok(())
    }

    fn cedar(&self, req: &Request, chain: &Chain<'_>, summary: ChainSummary) -> Decision {
        let (Some(pack), Some(engine)) = (&self.pack.cedar, &self.cedar) else {
            if chain.tokens.last().is_some_and(|t| t.svid) {
                // a JWT-SVID carries no scope: only a Cedar policy can permit it
                return Decision::deny(
                    Reason::new(
                        ReasonCode::ScopeMissing,
                        Some(0),
                        "a JWT-SVID carries no scope, and the pack has no Cedar policy to permit it",
                    ),
                    Some(summary),
                );
            }
            return Decision::allow(summary, Vec::new());
        };
        let input = cedar::Input {
            actor: chain.current_actor().map(custody_id::SpiffeId::as_str),
            summary: &summary,
            origin_domain: chain.origin_domain(),
            action: &req.action,
            resource: req.resource.as_ref(),
            audience: &req.audience,
            txn: chain.local_txn(),
            peer: chain.peer.as_ref().map_or("", custody_id::SpiffeId::as_str),
            request: req.context.as_ref(),
        };
        match engine.evaluate(pack, &input) {
            Ok(o) if !o.errors.is_empty() => policy_error(o, summary),
            Ok(o) if o.allowed => Decision::allow(summary, o.policies),
            Ok(o) => {
                let message = if o.policies.is_empty() {
                    "no Cedar policy permits this call".to_owned()
                } else {
                    format!("forbidden by Cedar policy `{}`", o.policies.join("`, `"))
                };
                let mut d = Decision::deny(
                    Reason::new(ReasonCode::PolicyDenied, None, message),
                    Some(summary),
                );
                d.policies = o.policies;
                d
            }
            Err(e) => Decision::deny(
                Reason::new(ReasonCode::InvalidRequest, None, e.0),
                Some(summary),
            ),
        }
    }
}

/// A Cedar answer in which a policy failed to evaluate: denied whatever Cedar decided (Cedar
/// skips an erroring policy, so an erroring `forbid` would let the call through). The
/// decision names the erroring policies.
fn policy_error(o: cedar::Outcome, summary: ChainSummary) -> Decision {
    let mut ids: Vec<String> = o.errors.iter().map(|(id, _)| id.clone()).collect();
    ids.dedup();
    let message = match o.errors.first() {
        Some((id, e)) if ids.len() == 1 => {
            format!("Cedar policy `{id}` failed to evaluate: {e}")
        }
        Some((id, e)) => format!(
            "Cedar policies `{}` failed to evaluate; `{id}`: {e}",
            ids.join("`, `")
        ),
        None => "a Cedar policy failed to evaluate".to_owned(),
    };
    let mut d = Decision::deny(
        Reason::new(ReasonCode::PolicyError, None, message),
        Some(summary),
    );
    d.policies = ids;
    d
}

/// The system clock in unix seconds: the one clock custody decides by when a request gives no
/// `now` (the sidecar's decision cache and the CLI read it here too).
pub fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The README's Rust examples, run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn verifier_is_send_and_sync() {
        assert_send_sync::<Verifier>();
        assert_send_sync::<Decision>();
        assert_send_sync::<Request>();
    }

    #[test]
    fn reason_codes_round_trip() {
        for c in ReasonCode::ALL {
            assert_eq!(ReasonCode::from_name(c.as_str()), Some(c));
        }
    }
}
