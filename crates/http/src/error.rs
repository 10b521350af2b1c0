//! Why a call could not become a custody request, and the denial that is.

use custody_verifier::{Decision, Reason, ReasonCode};

/// Why a call could not become a custody request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapError {
    /// No `authorization: Bearer` token: `invalid_request`, 401.
    NoToken(String),
    /// A Txn-Token where a bearer credential goes (its index in `tokens`, the message):
    /// `wrong_token_type`, 401.
    TxnAsBearer(usize, String),
    /// Anything else: `invalid_request`, 403.
    Invalid(String),
}

impl MapError {
    /// The denial this error is.
    pub fn decision(&self) -> Decision {
        match self {
            MapError::NoToken(m) | MapError::Invalid(m) => Decision::invalid_request(m.clone()),
            MapError::TxnAsBearer(hop, m) => Decision::deny(
                Reason::new(ReasonCode::WrongTokenType, Some(*hop), m.clone()),
                None,
            ),
        }
    }

    /// Whether this is the missing-bearer denial (a bare challenge, no `error`).
    pub fn is_no_token(&self) -> bool {
        matches!(self, MapError::NoToken(_))
    }
}
