//! What one decision call asks, whoever asks it (custody.v1 Verify, the AuthZEN endpoints):
//! its items before the verifier, and where a batch stops.

use custody_verifier::{Decision, Request};

/// One item of a decision call before the verifier: the custody request (or the
/// `invalid_request` message saying why there is none) and, for AuthZEN, the `subject.id` the
/// decision must be about (`authzen::check_subject`).
#[derive(Debug)]
pub(crate) struct Mapped {
    pub request: Result<Request, String>,
    pub subject: Option<String>,
}

/// `options.evaluations_semantic`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Semantic {
    /// Decide and answer every item (the default).
    #[default]
    ExecuteAll,
    /// Stop after the first denial.
    DenyOnFirstDeny,
    /// Stop after the first permit.
    PermitOnFirstPermit,
}

impl Semantic {
    /// The semantic `options.evaluations_semantic` names.
    pub(crate) fn parse(name: &str) -> Option<Semantic> {
        match name {
            "execute_all" => Some(Semantic::ExecuteAll),
            "deny_on_first_deny" => Some(Semantic::DenyOnFirstDeny),
            "permit_on_first_permit" => Some(Semantic::PermitOnFirstPermit),
            _ => None,
        }
    }

    /// Whether a batch stops after an item decided `allowed`.
    pub(crate) fn stops_after(self, allowed: bool) -> bool {
        match self {
            Semantic::ExecuteAll => false,
            Semantic::DenyOnFirstDeny => !allowed,
            Semantic::PermitOnFirstPermit => allowed,
        }
    }

    /// The decisions up to and including the first one the semantic stops at.
    pub(crate) fn cut(self, mut decisions: Vec<Decision>) -> Vec<Decision> {
        if let Some(at) = decisions
            .iter()
            .position(|d| self.stops_after(d.is_allowed()))
        {
            decisions.truncate(at + 1);
        }
        decisions
    }
}
