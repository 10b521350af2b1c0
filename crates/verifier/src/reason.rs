//! Reason codes: stable names for every way a call can be denied.

use std::fmt;

/// Why a call was denied. The string forms are a stable contract (README, DESIGN.md); new codes
/// may be added, existing ones keep their meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ReasonCode {
    /// The request itself is missing, ill-typed or unknown fields.
    InvalidRequest,
    /// A token is not a strict compact JWS, or a claim has the wrong JSON type.
    MalformedToken,
    /// A token is larger than the limit.
    TokenTooLarge,
    /// A token's `typ` does not fit its position.
    WrongTokenType,
    /// `alg` is not `EdDSA`/`Ed25519`, or not the one the key is pinned to.
    AlgNotAllowed,
    /// `iss` names no declared domain.
    UnknownIssuer,
    /// `kid` missing or not in the issuer's domain key set.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// A required claim is absent.
    MissingClaim,
    /// `now ≥ exp + skew`.
    Expired,
    /// `now + skew < nbf`.
    NotYetValid,
    /// `iat > now + skew`.
    IssuedInFuture,
    /// `exp − iat` longer than `max_lifetime`.
    LifetimeTooLong,
    /// The presented token is not for this audience.
    AudienceMismatch,
    /// A SPIFFE ID is invalid where one is required.
    InvalidSpiffeId,
    /// Subjects differ along a chain.
    SubjectMismatch,
    /// Transaction ids differ along a chain.
    TxnMismatch,
    /// Hops do not link up.
    ChainBroken,
    /// A later token outlives an earlier one.
    ExpiryExtended,
    /// A later token has a scope the earlier one did not.
    ScopeEscalation,
    /// The action is not in the presented scope.
    ScopeMissing,
    /// Too many actors.
    DepthExceeded,
    /// The same actor twice.
    DelegationLoop,
    /// A domain crossing with no `federate` rule.
    DomainNotFederated,
    /// A domain crossing whose rule does not carry the action.
    FederationScopeDenied,
    /// More distinct domains than `max_domains`.
    TooManyDomains,
    /// A token's issuer vouches for what it does not own.
    IssuerNotInChain,
    /// `peer` is not the caller.
    SenderMismatch,
    /// `peer` is required and absent.
    SenderBindingRequired,
    /// Cedar did not allow the call (or a Biscuit check failed).
    PolicyDenied,
    /// A Cedar policy failed to evaluate: the call is denied whatever the other policies say
    /// (Cedar alone would skip the erroring policy, so an erroring `forbid` would allow).
    PolicyError,
    /// The decision did not finish within its deadline (the sidecar's `--request-timeout-ms`):
    /// denied, never let through.
    DecisionTimeout,
    /// The token's domain takes keys from remote sources, none of which has delivered a set
    /// yet, and its `kid` is not in the domain's key files (the sidecar answers 503).
    KeysUnavailable,
    /// The caller's proof of identity failed: an X.509-SVID chain, a WIT or its WPT, or a
    /// DPoP proof that does not hold (DESIGN.md, "Proving the caller").
    PeerInvalid,
    /// A one-time proof (a WPT's or DPoP proof's `jti`) was seen before within its lifetime.
    Replayed,
    /// A check needed the replay store and could not have it (the per-node cache full of
    /// live proofs): denied, never let through; the sidecar answers 503.
    StoreUnavailable,
    /// An item of the chain (a token's `jti`, an actor, the origin, a `txn`) is revoked
    /// (DESIGN.md, "Revocation and replay across a fleet"); checked after the chain rules and
    /// before Cedar.
    Revoked,
}

impl ReasonCode {
    /// Every code, in the order DESIGN.md lists them.
    pub const ALL: [ReasonCode; 37] = [
        ReasonCode::InvalidRequest,
        ReasonCode::MalformedToken,
        ReasonCode::TokenTooLarge,
        ReasonCode::WrongTokenType,
        ReasonCode::AlgNotAllowed,
        ReasonCode::UnknownIssuer,
        ReasonCode::UnknownKey,
        ReasonCode::BadSignature,
        ReasonCode::MissingClaim,
        ReasonCode::Expired,
        ReasonCode::NotYetValid,
        ReasonCode::IssuedInFuture,
        ReasonCode::LifetimeTooLong,
        ReasonCode::AudienceMismatch,
        ReasonCode::InvalidSpiffeId,
        ReasonCode::SubjectMismatch,
        ReasonCode::TxnMismatch,
        ReasonCode::ChainBroken,
        ReasonCode::ExpiryExtended,
        ReasonCode::ScopeEscalation,
        ReasonCode::ScopeMissing,
        ReasonCode::DepthExceeded,
        ReasonCode::DelegationLoop,
        ReasonCode::DomainNotFederated,
        ReasonCode::FederationScopeDenied,
        ReasonCode::TooManyDomains,
        ReasonCode::IssuerNotInChain,
        ReasonCode::SenderMismatch,
        ReasonCode::SenderBindingRequired,
        ReasonCode::PolicyDenied,
        ReasonCode::PolicyError,
        ReasonCode::DecisionTimeout,
        ReasonCode::KeysUnavailable,
        ReasonCode::PeerInvalid,
        ReasonCode::Replayed,
        ReasonCode::StoreUnavailable,
        ReasonCode::Revoked,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::InvalidRequest => "invalid_request",
            ReasonCode::MalformedToken => "malformed_token",
            ReasonCode::TokenTooLarge => "token_too_large",
            ReasonCode::WrongTokenType => "wrong_token_type",
            ReasonCode::AlgNotAllowed => "alg_not_allowed",
            ReasonCode::UnknownIssuer => "unknown_issuer",
            ReasonCode::UnknownKey => "unknown_key",
            ReasonCode::KeysUnavailable => "keys_unavailable",
            ReasonCode::BadSignature => "bad_signature",
            ReasonCode::MissingClaim => "missing_claim",
            ReasonCode::Expired => "expired",
            ReasonCode::NotYetValid => "not_yet_valid",
            ReasonCode::IssuedInFuture => "issued_in_future",
            ReasonCode::LifetimeTooLong => "lifetime_too_long",
            ReasonCode::AudienceMismatch => "audience_mismatch",
            ReasonCode::InvalidSpiffeId => "invalid_spiffe_id",
            ReasonCode::SubjectMismatch => "subject_mismatch",
            ReasonCode::TxnMismatch => "txn_mismatch",
            ReasonCode::ChainBroken => "chain_broken",
            ReasonCode::ExpiryExtended => "expiry_extended",
            ReasonCode::ScopeEscalation => "scope_escalation",
            ReasonCode::ScopeMissing => "scope_missing",
            ReasonCode::DepthExceeded => "depth_exceeded",
            ReasonCode::DelegationLoop => "delegation_loop",
            ReasonCode::DomainNotFederated => "domain_not_federated",
            ReasonCode::FederationScopeDenied => "federation_scope_denied",
            ReasonCode::TooManyDomains => "too_many_domains",
            ReasonCode::IssuerNotInChain => "issuer_not_in_chain",
            ReasonCode::SenderMismatch => "sender_mismatch",
            ReasonCode::SenderBindingRequired => "sender_binding_required",
            ReasonCode::PolicyDenied => "policy_denied",
            ReasonCode::PolicyError => "policy_error",
            ReasonCode::DecisionTimeout => "decision_timeout",
            ReasonCode::PeerInvalid => "peer_invalid",
            ReasonCode::Replayed => "replayed",
            ReasonCode::StoreUnavailable => "store_unavailable",
            ReasonCode::Revoked => "revoked",
        }
    }

    /// Parses a stable name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed check: its code, where in the request it failed, and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    /// The stable code.
    pub code: ReasonCode,
    /// Index into `tokens` (or actor index for a single token, see DESIGN.md); `None` for the
    /// `txn_token` and where no single hop is at fault.
    pub hop: Option<usize>,
    /// Lowercase, no trailing period, user input in backticks.
    pub message: String,
}

impl Reason {
    /// A reason.
    pub fn new(code: ReasonCode, hop: Option<usize>, message: impl Into<String>) -> Self {
        Reason {
            code,
            hop,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.hop {
            Some(h) => write!(f, "{} (hop {h}): {}", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

/// Cuts attacker-controlled text down to a size fit for a reason's message: at most 96 bytes,
/// escaped, an ellipsis where it was cut.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 96;
    if s.len() <= MAX {
        return s.escape_debug().to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or("").escape_debug())
}
