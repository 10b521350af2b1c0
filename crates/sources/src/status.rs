//! What the sources report: per-source state and per-fetch events.

use std::time::{Duration, SystemTime};

use custody_policy::SourceKind;

/// One source's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceStatus {
    /// Its trust domain.
    pub domain: String,
    /// What it serves.
    pub kind: SourceKind,
    /// Its URL, as declared.
    pub url: String,
    /// Token keys in its last good set; `None` when it holds none (never delivered, or dropped
    /// past `max_key_age`).
    pub keys: Option<usize>,
    /// The last good bundle's `spiffe_sequence`.
    pub sequence: Option<u64>,
    /// When a fetch last delivered a set.
    pub last_success: Option<SystemTime>,
    /// Failed or refused fetches so far.
    pub failures: u64,
    /// Failed or refused fetches since the last success.
    pub consecutive_failures: u32,
    /// Why the last fetch failed, while it has not succeeded since.
    pub last_error: Option<String>,
    /// For `discovery`, the `jwks_uri` its metadata named.
    pub jwks_uri: Option<String>,
    /// Fetches so far.
    pub fetches: u64,
}

/// The outcome of one fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEvent {
    /// Its trust domain.
    pub domain: String,
    /// What it serves.
    pub kind: SourceKind,
    /// Its URL.
    pub url: String,
    /// Token keys delivered, or why nothing was.
    pub outcome: Result<usize, String>,
    /// The bundle's `spiffe_sequence`, on success.
    pub sequence: Option<u64>,
    /// On failure, whether the last good set is still served.
    pub kept_last_good: bool,
    /// When the source is fetched again.
    pub next_in: Duration,
}

impl SourceEvent {
    pub(crate) fn fetched(
        domain: &str,
        kind: SourceKind,
        url: &str,
        keys: usize,
        sequence: Option<u64>,
        next_in: Duration,
    ) -> Self {
        SourceEvent {
            domain: domain.to_owned(),
            kind,
            url: url.to_owned(),
            outcome: Ok(keys),
            sequence,
            kept_last_good: false,
            next_in,
        }
    }

    pub(crate) fn failed(
        domain: &str,
        kind: SourceKind,
        url: &str,
        error: String,
        kept_last_good: bool,
        next_in: Duration,
    ) -> Self {
        SourceEvent {
            domain: domain.to_owned(),
            kind,
            url: url.to_owned(),
            outcome: Err(error),
            sequence: None,
            kept_last_good,
            next_in,
        }
    }
}
