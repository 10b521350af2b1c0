//! Proving the caller (DESIGN.md, "Identity from the outside world", "Proving the caller"):
//! an X.509-SVID chain (`peer_certificates`), a WIMSE WIT with its WPT (`wit`, `wpt`), a DPoP
//! proof (`dpop`) for a token bound by `cnf.jkt`, and a certificate for a token bound by
//! `cnf.x5t#S256`. Run at the start of the sender-binding step, after the audience; every
//! failure is `peer_invalid` with `hop` null, a reused proof `replayed`, two proofs (or a
//! proof and `peer`) naming different callers `sender_mismatch`.
//!
//! One function per proof: [`Prover::certificate`], [`Prover::wit`], [`Prover::wpt`],
//! [`Prover::dpop`]; the confirmations of the chain's tokens in [`Prover::confirmations`]; the
//! one-time `jti`s last of all, in [`Prover::consume`], so that a request denied for any other
//! reason does not use its proof up.

use std::sync::Arc;

use base64::Engine as _;
use custody_id::SpiffeId;
use custody_jose::{
    decode, decode_with_jwk, media_type_is, numeric_date, parse_jwk, KeyStore, Limits, PublicKey,
    B64,
};
use custody_policy::PolicyPack;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::exact::{ExactCache, Weigh};
use crate::index::PackIndex;
use crate::reason::clip;
use crate::replay::{ProofKind, Replay};
use crate::verified::{Confirmation, VerifiedToken};
use crate::x509::X509State;
use crate::{Reason, ReasonCode, Request};

/// The longest a WPT may still be valid for when it is checked (draft-ietf-wimse-wpt: its
/// `exp` is short; DESIGN.md: at most 5 minutes).
pub const WPT_MAX_REMAINING: i64 = 300;

/// A way the caller was proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofMethod {
    /// `peer`: a SPIFFE ID the transport authenticated, taken on trust.
    TrustedPeer,
    /// `peer_certificates`: an X.509-SVID chain that custody validated.
    Certificate,
    /// `wit` and `wpt`: a WIMSE workload identity token and its proof of possession.
    WitWpt,
    /// `dpop`: a DPoP proof by the key a token is bound to (`cnf.jkt`).
    Dpop,
}

impl ProofMethod {
    /// A short name for people.
    pub fn describe(self) -> &'static str {
        match self {
            ProofMethod::TrustedPeer => "`peer` (taken on trust from the transport)",
            ProofMethod::Certificate => "X.509-SVID certificate chain (mTLS)",
            ProofMethod::WitWpt => "WIMSE WIT and WPT",
            ProofMethod::Dpop => "DPoP proof of the token's key",
        }
    }
}

/// What the proof step established: the methods that held, the SPIFFE ID they prove, the
/// key a DPoP proof showed, and the failure that denied the call, if one did.
#[derive(Clone, Debug, Default)]
pub struct CallerProof {
    pub(crate) methods: Vec<ProofMethod>,
    pub(crate) peer: Option<SpiffeId>,
    pub(crate) dpop_jkt: Option<String>,
    pub(crate) failure: Option<(ProofMethod, String)>,
}

impl CallerProof {
    /// The methods that held, in the order they were checked.
    pub fn methods(&self) -> &[ProofMethod] {
        &self.methods
    }

    /// The caller's SPIFFE ID, proven or (for [`ProofMethod::TrustedPeer`]) given.
    pub fn peer(&self) -> Option<&SpiffeId> {
        self.peer.as_ref()
    }

    /// The RFC 7638 thumbprint (base64url) of the key a DPoP proof was signed with.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.dpop_jkt.as_deref()
    }

    /// The proof that failed and why.
    pub fn failure(&self) -> Option<(ProofMethod, &str)> {
        self.failure.as_ref().map(|(m, s)| (*m, s.as_str()))
    }
}

/// What the chain rules go on with.
#[derive(Clone, Debug, Default)]
pub(crate) struct Proven {
    /// The caller: proven, else the request's `peer`.
    pub peer: Option<SpiffeId>,
    /// A token of the chain is bound to a key its presenter proved (DPoP or certificate): no
    /// bearer token, so sender binding is satisfied even without a `peer`.
    pub key_bound: bool,
}

/// A WIT that passed every check but its times, as the WIT cache keeps it.
#[derive(Clone, Debug)]
pub(crate) struct KnownWit {
    id: SpiffeId,
    /// Its `cnf.jwk`.
    key: PublicKey,
    /// The domain whose key verified it, and that key set's epoch.
    domain: usize,
    epoch: u64,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
}

impl Weigh for KnownWit {
    fn weight(&self) -> usize {
        // the ID, the key (an RSA modulus at most 1 KiB) and the fixed parts, generously
        self.id.as_str().len() + 1024 + 256
    }
}

impl Weigh for PublicKey {
    fn weight(&self) -> usize {
        // an RSA modulus at most 1 KiB, and the fixed parts
        1024 + 256
    }
}

/// The default bound on remembered WITs.
pub const WIT_CACHE_ENTRIES: usize = 4_096;

/// The most bytes of remembered WITs (their text and what is kept of them).
pub const WIT_CACHE_BYTES: usize = 8 << 20;

/// A one-time proof to record once everything else held.
struct OneTime {
    kind: ProofKind,
    thumbprint: [u8; 32],
    jti: String,
    until: i64,
}

/// What the proof step needs from the verifier.
pub(crate) struct Prover<'a> {
    pub pack: &'a PolicyPack,
    pub index: &'a PackIndex,
    pub keys: &'a KeyStore,
    pub limits: &'a Limits,
    pub replay: &'a Replay,
    pub x509: &'a X509State,
    pub wits: &'a ExactCache<KnownWit>,
    pub dpop_keys: &'a ExactCache<PublicKey>,
}

fn invalid(message: impl Into<String>) -> Reason {
    Reason::new(ReasonCode::PeerInvalid, None, message)
}

/// base64url(SHA-256(ASCII text)): `wth`, `ath`, `tth`, `oth` values, certificate thumbprints.
pub(crate) fn hash_b64(bytes: &[u8]) -> String {
    B64.encode(Sha256::digest(bytes))
}

/// A URI (or a request path) without its query and fragment: a WPT's `aud` and a DPoP `htu`
/// are compared so, and the sidecar builds `target_uri` and its default action from it.
pub fn without_query(uri: &str) -> &str {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    uri.get(..end).unwrap_or(uri)
}

impl Prover<'_> {
    fn skew(&self) -> i64 {
        i64::try_from(self.pack.chain.clock_skew).unwrap_or(i64::MAX)
    }

    /// Whether the request needs the proof step at all: a proof, or a bound token.
    pub fn needed(
        req: &Request,
        tokens: &[Arc<VerifiedToken>],
        txn: Option<&VerifiedToken>,
    ) -> bool {
        req.has_caller_proof()
            || tokens.iter().any(|t| t.cnf.is_some())
            || txn.is_some_and(|t| t.cnf.is_some())
    }

    /// Every proof of the request, then the tokens' confirmations, then the one-time `jti`s.
    pub fn prove(
        &self,
        req: &Request,
        peer: Option<SpiffeId>,
        tokens: &[Arc<VerifiedToken>],
        txn: Option<&VerifiedToken>,
        now: i64,
        out: &mut CallerProof,
    ) -> Result<Proven, Reason> {
        if peer.is_some() {
            out.methods.push(ProofMethod::TrustedPeer);
        }
        let fail = |out: &mut CallerProof, method: ProofMethod, r: Reason| {
            out.failure = Some((method, r.message.clone()));
            r
        };
        let mut once = Vec::new();
        let mut leaf = None;
        let cert_id = match req.peer_certificates.is_empty() {
            true => None,
            false => {
                let (id, der) = self
                    .certificate(&req.peer_certificates, now)
                    .map_err(|r| fail(out, ProofMethod::Certificate, r))?;
                out.methods.push(ProofMethod::Certificate);
                leaf = Some(der);
                Some(id)
            }
        };
        let wit_id = match (&req.wit, &req.wpt) {
            (None, None) => None,
            (Some(wit), Some(wpt)) => {
                let (id, key) = self
                    .wit(wit, now)
                    .map_err(|r| fail(out, ProofMethod::WitWpt, r))?;
                let one = self
                    .wpt(req, wit, wpt, &key, now)
                    .map_err(|r| fail(out, ProofMethod::WitWpt, r))?;
                once.push(one);
                out.methods.push(ProofMethod::WitWpt);
                Some(id)
            }
            (Some(_), None) => {
                let r = invalid(
                    "a WIT is never a bearer credential: the request has no `wpt` proving it",
                );
                return Err(fail(out, ProofMethod::WitWpt, r));
            }
            (None, Some(_)) => {
                let r = invalid("the request has a `wpt` but no `wit` for it to prove");
                return Err(fail(out, ProofMethod::WitWpt, r));
            }
        };
        let method = match wit_id {
            Some(_) => ProofMethod::WitWpt,
            None => ProofMethod::Certificate,
        };
        let proven = match (cert_id, wit_id) {
            (Some(c), Some(w)) if c != w => {
                let r = Reason::new(
                    ReasonCode::SenderMismatch,
                    None,
                    format!("the certificate proves `{c}` but the WIT proves `{w}`"),
                );
                return Err(fail(out, method, r));
            }
            (c, w) => c.or(w),
        };
        if let (Some(given), Some(proven)) = (&peer, &proven) {
            if given != proven {
                let r = Reason::new(
                    ReasonCode::SenderMismatch,
                    None,
                    format!("`peer` `{given}` is not the proven caller `{proven}`"),
                );
                return Err(fail(out, method, r));
            }
        }
        out.peer = proven.clone().or_else(|| peer.clone());
        let key_bound =
            self.confirmations(req, tokens, txn, leaf.as_deref(), now, &mut once, out)?;
        self.consume(&once, now)?;
        Ok(Proven {
            peer: proven.or(peer),
            key_bound,
        })
    }

    /// The X.509-SVID chain: parsed, validated against the authorities of its leaf's trust
    /// domain (`x509.rs`). Returns the ID and the leaf's DER.
    fn certificate(&self, pems: &[String], now: i64) -> Result<(SpiffeId, Vec<u8>), Reason> {
        self.x509
            .validate(self.pack, self.index, self.keys, pems, now)
            .map_err(|m| invalid(format!("X.509-SVID: {m}")))
    }

    /// The WIT: `typ` `wit+jwt`; keys of its `sub`'s trust domain (`wit-svid` in bundles);
    /// `sub`, `exp` and `cnf.jwk` (with `alg`) required; no `aud`; times with the skew. A WIT
    /// verified before (its exact bytes) is taken from the cache while its domain's keys are
    /// the ones it verified under; its times are checked again.
    fn wit(&self, raw: &str, now: i64) -> Result<(SpiffeId, PublicKey), Reason> {
        let bad = |m: String| invalid(format!("WIT: {m}"));
        let known = match self.wits.get(raw.as_bytes()) {
            Some(k) if self.keys.with_domain(k.domain, |d| d.epoch()) == Some(k.epoch) => k,
            _ => {
                let k = Arc::new(self.wit_fresh(raw).map_err(&bad)?);
                self.wits.insert(raw.as_bytes(), KnownWit::clone(&k));
                k
            }
        };
        let s = self.skew();
        if now >= known.exp.saturating_add(s) {
            return Err(bad(format!(
                "expired at {} (now {now}, skew {s}s)",
                known.exp
            )));
        }
        if let Some(nbf) = known.nbf {
            if now.saturating_add(s) < nbf {
                return Err(bad(format!(
                    "not valid before {nbf} (now {now}, skew {s}s)"
                )));
            }
        }
        if let Some(iat) = known.iat {
            if iat > now.saturating_add(s) {
                return Err(bad(format!("issued at {iat} after now {now} (skew {s}s)")));
            }
        }
        Ok((known.id.clone(), known.key.clone()))
    }

    /// Every check of a WIT that does not depend on the time: what the cache keeps.
    fn wit_fresh(&self, raw: &str) -> Result<KnownWit, String> {
        let jws = decode(raw, self.limits).map_err(|e| e.to_string())?;
        match jws.header.typ.as_deref() {
            Some(t) if media_type_is(t, "wit+jwt") => {}
            t => {
                return Err(format!(
                    "`typ` `{}` is not `wit+jwt`",
                    clip(t.unwrap_or(""))
                ))
            }
        }
        let c = &jws.claims;
        let sub = match c.get("sub") {
            Some(Value::String(s)) => s,
            Some(_) => return Err("`sub` must be a string".into()),
            None => return Err("missing claim `sub`".into()),
        };
        let id = self
            .limits
            .workload_id(sub)
            .map_err(|e| format!("`sub` `{}` is not a workload SPIFFE ID: {e}", clip(sub)))?;
        let td = id.trust_domain_str();
        let (index, _) = self
            .index
            .domain_named(self.pack, td)
            .ok_or_else(|| format!("trust domain `{}` is not declared", clip(td)))?;
        let kid = jws
            .header
            .kid
            .as_deref()
            .ok_or_else(|| "header has no `kid`".to_owned())?;
        let keys = self.keys.domain(index);
        let Some(key) = keys.as_ref().and_then(|k| k.wit().get(kid)) else {
            self.keys.note_miss(index);
            return Err(format!(
                "`kid` `{}` is not a WIT key of domain `{td}`",
                clip(kid)
            ));
        };
        if !key.allows_alg(&jws.header.alg) {
            return Err(format!(
                "`alg` `{}` is not an algorithm key `{}` verifies",
                clip(&jws.header.alg),
                clip(kid)
            ));
        }
        if !key.verify_with(&jws.header.alg, jws.signing_input, &jws.signature) {
            return Err(format!(
                "signature does not verify with key `{}` of `{td}`",
                clip(kid)
            ));
        }
        if c.contains_key("aud") {
            return Err("a WIT must not carry `aud`".into());
        }
        let exp = date(c, "exp")?.ok_or_else(|| "missing claim `exp`".to_owned())?;
        let nbf = date(c, "nbf")?;
        let iat = date(c, "iat")?;
        if let Some(iat) = iat {
            let max = i64::try_from(self.pack.chain.max_lifetime).unwrap_or(i64::MAX);
            if exp.saturating_sub(iat) > max {
                return Err(format!(
                    "lifetime {}s exceeds {max}s",
                    exp.saturating_sub(iat)
                ));
            }
        }
        let jwk = match c.get("cnf") {
            Some(Value::Object(cnf)) => match cnf.get("jwk") {
                Some(Value::Object(jwk)) => jwk,
                _ => return Err("`cnf` has no `jwk` object".into()),
            },
            Some(_) => return Err("`cnf` must be an object".into()),
            None => return Err("missing claim `cnf`".into()),
        };
        let cnf = parse_jwk(jwk, true).map_err(|e| format!("`cnf.jwk`: {e}"))?;
        Ok(KnownWit {
            id,
            key: cnf,
            domain: index,
            epoch: keys.map_or(0, |k| k.epoch()),
            exp,
            nbf,
            iat,
        })
    }

    /// The WPT (draft-ietf-wimse-wpt-02): `typ` `wpt+jwt`, signed by the WIT's `cnf.jwk` with
    /// exactly its `alg`; `aud` the target URI; unexpired, at most 5 minutes left; `jti`;
    /// `wth`; `ath` and `tth` exactly when the request has those tokens; every `oth` entry
    /// a given header with that hash.
    fn wpt(
        &self,
        req: &Request,
        wit: &str,
        raw: &str,
        cnf: &PublicKey,
        now: i64,
    ) -> Result<OneTime, Reason> {
        let bad = |m: String| invalid(format!("WPT: {m}"));
        let jws = decode(raw, self.limits).map_err(|e| bad(e.to_string()))?;
        match jws.header.typ.as_deref() {
            Some(t) if media_type_is(t, "wpt+jwt") => {}
            t => {
                return Err(bad(format!(
                    "`typ` `{}` is not `wpt+jwt`",
                    clip(t.unwrap_or(""))
                )))
            }
        }
        let want = cnf.alg().unwrap_or("");
        if jws.header.alg != want {
            return Err(bad(format!(
                "`alg` `{}` is not the WIT key's `alg` `{want}`",
                clip(&jws.header.alg)
            )));
        }
        if !cnf.verify_with(&jws.header.alg, jws.signing_input, &jws.signature) {
            return Err(bad(
                "signature does not verify with the WIT's `cnf.jwk`".into()
            ));
        }
        let c = &jws.claims;
        let target = req
            .target_uri
            .as_deref()
            .ok_or_else(|| bad("the request has no `target_uri` to check `aud` against".into()))?;
        match c.get("aud") {
            Some(Value::String(aud)) if aud == without_query(target) => {}
            Some(Value::String(aud)) => {
                return Err(bad(format!(
                    "`aud` `{}` is not this target `{}`",
                    clip(aud),
                    clip(without_query(target))
                )))
            }
            Some(_) => return Err(bad("`aud` must be a string".into())),
            None => return Err(bad("missing claim `aud`".into())),
        }
        let exp = date(c, "exp")
            .map_err(&bad)?
            .ok_or_else(|| bad("missing claim `exp`".into()))?;
        let s = self.skew();
        if now >= exp.saturating_add(s) {
            return Err(bad(format!("expired at {exp} (now {now}, skew {s}s)")));
        }
        if exp.saturating_sub(now) > WPT_MAX_REMAINING {
            return Err(bad(format!(
                "`exp` {exp} is more than {WPT_MAX_REMAINING}s after now {now}"
            )));
        }
        if let Some(iat) = date(c, "iat").map_err(&bad)? {
            if iat > now.saturating_add(s) {
                return Err(bad(format!("issued at {iat} after now {now} (skew {s}s)")));
            }
        }
        let jti = match c.get("jti") {
            Some(Value::String(j)) if !j.is_empty() => j.clone(),
            Some(_) => return Err(bad("`jti` must be a non-empty string".into())),
            None => return Err(bad("missing claim `jti`".into())),
        };
        hash_claim(c, "wth", Some(wit)).map_err(&bad)?;
        hash_claim(c, "ath", req.tokens.last().map(String::as_str)).map_err(&bad)?;
        hash_claim(c, "tth", req.txn_token.as_deref()).map_err(&bad)?;
        match c.get("oth") {
            None => {}
            Some(Value::Object(oth)) => {
                for (name, want) in oth {
                    let Value::String(want) = want else {
                        return Err(bad(format!("`oth.{}` must be a string", clip(name))));
                    };
                    let given = req
                        .proof_headers
                        .as_ref()
                        .and_then(|h| h.get(name))
                        .ok_or_else(|| {
                            bad(format!(
                                "`oth` covers header `{}`, which the request does not have",
                                clip(name)
                            ))
                        })?;
                    if hash_b64(given.trim().as_bytes()) != *want {
                        return Err(bad(format!(
                            "`oth.{}` is not the hash of the request's header",
                            clip(name)
                        )));
                    }
                }
            }
            Some(_) => return Err(bad("`oth` must be an object".into())),
        }
        Ok(OneTime {
            kind: ProofKind::Wpt,
            thumbprint: *cnf.thumbprint(),
            jti,
            until: exp.saturating_add(s),
        })
    }

    /// Every bound token of the chain with its proof: `cnf.jkt` a DPoP proof by that key over
    /// that token, `cnf.x5t#S256` the caller's certificate; any other `cnf` is unusable. A
    /// `dpop` proof with no bound token is checked against the presented token all the same.
    /// Returns whether a token was bound (so no bearer token).
    #[expect(
        clippy::too_many_arguments,
        reason = "the request, its verified tokens, the proven leaf and the outputs: one step's inputs"
    )]
    fn confirmations(
        &self,
        req: &Request,
        tokens: &[Arc<VerifiedToken>],
        txn: Option<&VerifiedToken>,
        leaf: Option<&[u8]>,
        now: i64,
        once: &mut Vec<OneTime>,
        out: &mut CallerProof,
    ) -> Result<bool, Reason> {
        let bound = tokens
            .iter()
            .map(|t| &**t)
            .zip(req.tokens.iter().map(String::as_str))
            .chain(txn.zip(req.txn_token.as_deref()));
        let mut key_bound = false;
        let mut dpop_for: Option<(&str, &str)> = None;
        for (i, (t, raw)) in bound.enumerate() {
            let what = match i < req.tokens.len() {
                true => format!("token {i}"),
                false => "the `txn_token`".to_owned(),
            };
            match &t.cnf {
                None => {}
                Some(Confirmation::Jkt(jkt)) => {
                    if dpop_for.is_some() {
                        return Err(invalid(format!(
                            "{what} is DPoP-bound too: one `dpop` proof covers one token"
                        )));
                    }
                    dpop_for = Some((jkt, raw));
                }
                Some(Confirmation::X5t(x5t)) => {
                    let Some(leaf) = leaf else {
                        return Err(invalid(format!(
                            "{what} is bound to a certificate (`cnf.x5t#S256`) and the request has no `peer_certificates`"
                        )));
                    };
                    if hash_b64(leaf) != *x5t {
                        return Err(invalid(format!(
                            "{what} is bound to another certificate than the caller's (`cnf.x5t#S256`)"
                        )));
                    }
                    key_bound = true;
                }
                Some(Confirmation::Unsupported(members)) => {
                    return Err(invalid(format!(
                        "{what} is bound by a confirmation custody cannot check (`cnf` members `{members}`)"
                    )));
                }
            }
        }
        let fail = |out: &mut CallerProof, r: Reason| {
            out.failure = Some((ProofMethod::Dpop, r.message.clone()));
            r
        };
        match (&req.dpop, dpop_for) {
            (None, None) => {}
            (None, Some(_)) => {
                let r = invalid("the presented token is DPoP-bound (`cnf.jkt`) and the request has no `dpop` proof");
                return Err(fail(out, r));
            }
            (Some(proof), bound) => {
                let raw = match bound {
                    Some((_, raw)) => raw,
                    None => req.tokens.last().map_or("", String::as_str),
                };
                let (one, jkt) = self.dpop(req, proof, raw, now).map_err(|r| fail(out, r))?;
                if let Some((want, _)) = bound {
                    if jkt != want {
                        let r = invalid(format!(
                            "DPoP: the proof's key (thumbprint `{}`) is not the one the token is bound to (`cnf.jkt` `{}`)",
                            clip(&jkt),
                            clip(want)
                        ));
                        return Err(fail(out, r));
                    }
                    key_bound = true;
                }
                out.methods.push(ProofMethod::Dpop);
                out.dpop_jkt = Some(jkt);
                once.push(one);
            }
        }
        Ok(key_bound)
    }

    /// A DPoP proof (RFC 9449 §4.3) over the access token `token`: `typ` `dpop+jwt`; its
    /// `jwk` header a public key that verifies it; `htm` the method, `htu` the target URI
    /// (both without query and fragment), `iat` within the skew of now, `ath` the token's
    /// hash, `jti`. Returns the proof to record and its key's thumbprint (base64url).
    fn dpop(
        &self,
        req: &Request,
        raw: &str,
        token: &str,
        now: i64,
    ) -> Result<(OneTime, String), Reason> {
        let bad = |m: String| invalid(format!("DPoP: {m}"));
        let (jws, jwk) = decode_with_jwk(raw, self.limits).map_err(|e| bad(e.to_string()))?;
        match jws.header.typ.as_deref() {
            Some(t) if media_type_is(t, "dpop+jwt") => {}
            t => {
                return Err(bad(format!(
                    "`typ` `{}` is not `dpop+jwt`",
                    clip(t.unwrap_or(""))
                )))
            }
        }
        // a client signs every proof with the same key under the same header: its parsed key
        // is remembered by the header's exact bytes (a curve point is checked once)
        let header_b64 = raw.split('.').next().unwrap_or_default().as_bytes();
        let key = match self.dpop_keys.get(header_b64) {
            Some(k) => PublicKey::clone(&k),
            None => {
                let k = parse_jwk(&jwk, false).map_err(|e| bad(format!("header `jwk`: {e}")))?;
                self.dpop_keys.insert(header_b64, k.clone());
                k
            }
        };
        if !key.allows_alg(&jws.header.alg) {
            return Err(bad(format!(
                "`alg` `{}` is not an algorithm of the header's `jwk`",
                clip(&jws.header.alg)
            )));
        }
        if !key.verify_with(&jws.header.alg, jws.signing_input, &jws.signature) {
            return Err(bad(
                "signature does not verify with the header's `jwk`".into()
            ));
        }
        let c = &jws.claims;
        let text = |name: &str| match c.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
            Some(_) => Err(bad(format!("`{name}` must be a non-empty string"))),
            None => Err(bad(format!("missing claim `{name}`"))),
        };
        let method = req
            .http_method
            .as_deref()
            .ok_or_else(|| bad("the request has no `http_method` to check `htm` against".into()))?;
        let htm = text("htm")?;
        if htm != method {
            return Err(bad(format!(
                "`htm` `{}` is not this request's method `{}`",
                clip(htm),
                clip(method)
            )));
        }
        let target = req
            .target_uri
            .as_deref()
            .ok_or_else(|| bad("the request has no `target_uri` to check `htu` against".into()))?;
        let htu = text("htu")?;
        if without_query(htu) != without_query(target) {
            return Err(bad(format!(
                "`htu` `{}` is not this target `{}`",
                clip(htu),
                clip(without_query(target))
            )));
        }
        let iat = date(c, "iat")
            .map_err(&bad)?
            .ok_or_else(|| bad("missing claim `iat`".into()))?;
        let s = self.skew();
        if iat > now.saturating_add(s) || iat < now.saturating_sub(s) {
            return Err(bad(format!("`iat` {iat} is not within {s}s of now {now}")));
        }
        hash_claim(c, "ath", Some(token)).map_err(&bad)?;
        let jti = text("jti")?.to_owned();
        let jkt = B64.encode(key.thumbprint());
        Ok((
            OneTime {
                kind: ProofKind::Dpop,
                thumbprint: *key.thumbprint(),
                jti,
                until: iat.saturating_add(s),
            },
            jkt,
        ))
    }

    /// Records the one-time proofs; the first seen before is `replayed`.
    fn consume(&self, once: &[OneTime], now: i64) -> Result<(), Reason> {
        let fail_open = self.pack.chain.fail_open_replay;
        for p in once {
            self.replay
                .consume(p.kind, &p.thumbprint, &p.jti, p.until, now, fail_open)?;
        }
        Ok(())
    }
}

/// A NumericDate claim by the one reader (`custody_jose::numeric_date`).
fn date(c: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match c.get(name).map(numeric_date) {
        None => Ok(None),
        Some(Ok(d)) => Ok(Some(d)),
        Some(Err(e)) => Err(format!(
            "claim `{name}` must be a whole number of seconds from 0 to year 9999: {e}"
        )),
    }
}

/// A hash claim (`wth`, `ath`, `tth`) present exactly when `of` is, and then its hash.
fn hash_claim(c: &Map<String, Value>, name: &str, of: Option<&str>) -> Result<(), String> {
    match (c.get(name), of) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(format!(
            "`{name}` is present but the request has no token for it to cover"
        )),
        (None, Some(_)) => Err(format!("missing claim `{name}`")),
        (Some(Value::String(h)), Some(t)) if *h == hash_b64(t.as_bytes()) => Ok(()),
        (Some(Value::String(_)), Some(_)) => {
            Err(format!("`{name}` is not the hash of the request's token"))
        }
        (Some(_), Some(_)) => Err(format!("`{name}` must be a string")),
    }
}
