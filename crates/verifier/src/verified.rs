//! What the verifier established: each token that passed its own checks
//! ([`VerifiedToken`]), and the chain they make ([`VerifiedChain`]). Read-only values: the
//! verifier builds them, callers (`custody explain`, `custody demo`, a gateway's logs) read
//! them, and nothing outside this crate can make one.

use std::mem::size_of;
use std::sync::Arc;

use custody_id::SpiffeId;
use custody_jose::TokenClass;
use serde_json::{Map, Value};

use crate::fifo::alloc_cost;
use crate::texts::{Strs, Texts};

/// A token whose every single-token check passed (signature, claims, times, identifiers): a
/// JWT, or one hop of a Biscuit (the authority block is `t0`, the k-th third-party block `tk`).
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    pub(crate) class: TokenClass,
    /// Index of the issuer's domain in `pack.domains`.
    pub(crate) domain: usize,
    /// `sub`, `jti` (when a string: what a `jti` revocation matches), `txn`, `aud` (empty for a
    /// Txn-Token without one) and the scope items (none when the token has no `scope`: it
    /// grants nothing), in one allocation; for a token the cache remembers, also its exact
    /// text and its header's `kid` and `typ`.
    pub(crate) texts: Texts,
    pub(crate) iat: i64,
    pub(crate) exp: i64,
    pub(crate) nbf: Option<i64>,
    /// Earliest first: the `act` chain for access tokens, `req_wl` for Txn-Tokens.
    pub(crate) actors: Vec<SpiffeId>,
    /// Boxed: few tokens carry it, and every remembered token is kept (a smaller token is
    /// fewer cache lines written for each cold one).
    pub(crate) tctx: Option<Box<Map<String, Value>>>,
    /// A JWT-SVID (no `iss`, a SPIFFE ID as `sub`): a chain of its own, its `sub` the actor.
    pub(crate) svid: bool,
    /// Whether `iat` was in the token (a JWT-SVID may leave it out; `iat` is then `exp`'s
    /// lower bound for nothing and the lifetime is counted from the request's time).
    pub(crate) iat_claimed: bool,
    /// `cnf`: what the token is bound to (RFC 7800), when it is bound.
    pub(crate) cnf: Option<Confirmation>,
}

/// A token's confirmation claim (`cnf`, RFC 7800): the proof its presenter must give.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confirmation {
    /// `jkt` (RFC 9449): a DPoP proof signed by the key with this RFC 7638 thumbprint
    /// (base64url).
    Jkt(String),
    /// `x5t#S256` (RFC 8705): the caller's certificate, by the base64url SHA-256 of its DER.
    X5t(String),
    /// A confirmation method custody cannot check (its member names): such a token is never
    /// usable as a bearer token.
    Unsupported(String),
}

impl VerifiedToken {
    /// Access token or Txn-Token.
    pub fn class(&self) -> TokenClass {
        self.class
    }

    /// The position of the issuer's trust domain in the pack's `domains`.
    pub fn domain_index(&self) -> usize {
        self.domain
    }

    /// `jti`, when it is a string.
    pub fn jti(&self) -> Option<&str> {
        self.texts.jti()
    }

    /// `sub`.
    pub fn sub(&self) -> &str {
        self.texts.sub()
    }

    /// `aud`, as a list (empty for a Txn-Token without one).
    pub fn aud(&self) -> Strs<'_> {
        self.texts.aud()
    }

    /// `iat`, unix seconds.
    pub fn iat(&self) -> i64 {
        self.iat
    }

    /// `exp`, unix seconds.
    pub fn exp(&self) -> i64 {
        self.exp
    }

    /// `nbf`, when present.
    pub fn nbf(&self) -> Option<i64> {
        self.nbf
    }

    /// The scope items, duplicates removed, in order.
    pub fn scope(&self) -> Strs<'_> {
        self.texts.scope()
    }

    /// `txn`, when present.
    pub fn txn(&self) -> Option<&str> {
        self.texts.txn()
    }

    /// The actors, earliest first: the `act` chain (or a SPIFFE `client_id`/`sub`) of an
    /// access token, the requesting workloads (`req_wl`) of a Txn-Token.
    pub fn actors(&self) -> &[SpiffeId] {
        &self.actors
    }

    /// The current actor: the last one.
    pub fn current_actor(&self) -> Option<&SpiffeId> {
        self.actors.last()
    }

    /// A Txn-Token's `tctx`.
    pub fn tctx(&self) -> Option<&Map<String, Value>> {
        self.tctx.as_deref()
    }

    /// Whether the token is a JWT-SVID.
    pub fn is_jwt_svid(&self) -> bool {
        self.svid
    }

    /// What the token is bound to (`cnf`), if anything.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.cnf.as_ref()
    }

    /// An upper estimate of the heap this token owns (allocator rounding included).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.texts
            .heap_parts()
            .into_iter()
            .map(alloc_cost)
            .sum::<usize>()
            + alloc_cost(self.actors.capacity() * size_of::<SpiffeId>())
            + self
                .actors
                .iter()
                .map(|a| alloc_cost(a.as_str().len()))
                .sum::<usize>()
            + self.tctx.as_deref().map_or(0, |m| {
                alloc_cost(size_of::<Map<String, Value>>()) + map_bytes(m)
            })
            + match &self.cnf {
                Some(
                    Confirmation::Jkt(s) | Confirmation::X5t(s) | Confirmation::Unsupported(s),
                ) => alloc_cost(s.capacity()),
                None => 0,
            }
    }
}

/// An upper estimate of the heap a JSON object owns: its entry and index tables at twice
/// their length (growth slack), its keys and its values.
fn map_bytes(m: &Map<String, Value>) -> usize {
    let entry = 8 + size_of::<String>() + size_of::<Value>();
    2 * alloc_cost(m.len() * entry)
        + 2 * alloc_cost(m.len() * 16)
        + m.iter()
            .map(|(k, v)| alloc_cost(k.len()) + value_bytes(v))
            .sum::<usize>()
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => alloc_cost(s.len()),
        Value::Array(a) => {
            2 * alloc_cost(a.len() * size_of::<Value>()) + a.iter().map(value_bytes).sum::<usize>()
        }
        Value::Object(m) => map_bytes(m),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// What the verifier established about one request's tokens, whatever the decision: each
/// element of `tokens` that passed its own checks, in order, up to the first that did not
/// (a Biscuit: each of its hops), and the `txn_token` if it passed. Like webpki's verified
/// path, it is the verifier's own reading: callers display it, they do not re-derive it.
#[derive(Clone, Debug, Default)]
pub struct VerifiedChain {
    pub(crate) tokens: smallvec::SmallVec<[Arc<VerifiedToken>; 4]>,
    pub(crate) txn_token: Option<Arc<VerifiedToken>>,
    pub(crate) biscuit: bool,
    /// `t0` is a Txn-Token: `tokens` are a replacement chain (`txn::is_replacement_chain`).
    pub(crate) replacement: bool,
    pub(crate) complete: bool,
    /// How the caller was proven, once the proof step ran.
    pub(crate) caller: Option<crate::proof::CallerProof>,
}

impl VerifiedChain {
    /// The tokens that passed their own checks, in request order (a Biscuit: its hops).
    pub fn tokens(&self) -> &[Arc<VerifiedToken>] {
        &self.tokens
    }

    /// The `txn_token`, when the request had one and it passed its own checks.
    pub fn txn_token(&self) -> Option<&VerifiedToken> {
        self.txn_token.as_deref()
    }

    /// Whether the chain was one Biscuit.
    pub fn is_biscuit(&self) -> bool {
        self.biscuit
    }

    /// Whether `tokens` are a Txn-Token replacement chain (`t0` is a Txn-Token).
    pub fn is_replacement_chain(&self) -> bool {
        self.replacement
    }

    /// Whether every token (and the `txn_token`) passed its own checks, so the chain rules
    /// ran on all of them.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// How the caller was proven (or why its proof failed), when the proof step ran.
    pub fn caller(&self) -> Option<&crate::proof::CallerProof> {
        self.caller.as_ref()
    }
}
