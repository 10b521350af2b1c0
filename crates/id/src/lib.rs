//! SPIFFE IDs and trust domain names, parsed exactly as the SPIFFE specification writes them.
//!
//! Nothing here normalises: an identifier is accepted in its canonical form or refused with the
//! class of its first fault, the same classes go-spiffe and rust-spiffe report. A [`SpiffeId`] or
//! [`TrustDomain`] value proves the text it holds is valid, so code that receives one need not
//! check again.
//!
//! ```
//! use custody_id::{SpiffeId, IdError};
//!
//! let id = SpiffeId::parse("spiffe://a.example/agent/bob").unwrap();
//! assert_eq!(id.trust_domain().as_str(), "a.example");
//! assert_eq!(id.path(), "/agent/bob");
//! assert_eq!(SpiffeId::parse("spiffe://A.example/x"), Err(IdError::BadTrustDomainChar));
//! ```
//!
//! Limits: an ID is at most [`MAX_ID_BYTES`] bytes and a trust domain at most
//! [`MAX_TRUST_DOMAIN_BYTES`] (the SPIFFE spec asks for support up to these; longer input is
//! refused as [`IdError::TooLong`]).
#![forbid(unsafe_code)]

use std::fmt;

/// The SPIFFE spec requires support for IDs up to 2048 bytes and says not to generate longer.
pub const MAX_ID_BYTES: usize = 2048;
/// A trust domain is a URI host: RFC 3986 caps those at 255 bytes.
pub const MAX_TRUST_DOMAIN_BYTES: usize = 255;

const SCHEME: &str = "spiffe://";

/// Why a SPIFFE ID or trust domain name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// The input is empty.
    Empty,
    /// The input does not start with exactly `spiffe://`.
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    MissingTrustDomain,
    /// A trust domain byte outside `a-z 0-9 . - _`.
    BadTrustDomainChar,
    /// A path byte outside `a-z A-Z 0-9 . - _`.
    BadPathSegmentChar,
    /// Two slashes in a row in the path.
    EmptySegment,
    /// A path segment that is exactly `.` or `..`.
    DotSegment,
    /// The path ends with `/`.
    TrailingSlash,
    /// Longer than [`MAX_ID_BYTES`] or [`MAX_TRUST_DOMAIN_BYTES`].
    TooLong,
    /// A valid SPIFFE ID with an empty path where a workload (agent) ID is required.
    MissingPath,
}

impl IdError {
    /// A short lowercase description, without a trailing period.
    pub fn describe(self) -> &'static str {
        match self {
            IdError::Empty => "empty",
            IdError::WrongScheme => "scheme must be exactly `spiffe://`",
            IdError::MissingTrustDomain => "missing trust domain",
            IdError::BadTrustDomainChar => "trust domain characters are limited to a-z 0-9 . - _",
            IdError::BadPathSegmentChar => "path characters are limited to a-z A-Z 0-9 . - _",
            IdError::EmptySegment => "path has an empty segment",
            IdError::DotSegment => "path has a `.` or `..` segment",
            IdError::TrailingSlash => "path has a trailing slash",
            IdError::TooLong => "too long",
            IdError::MissingPath => "a workload ID needs a non-empty path",
        }
    }
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl std::error::Error for IdError {}

/// A SPIFFE trust domain name such as `a.example`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name (no scheme).
    pub fn parse(name: &str) -> Result<Self, IdError> {
        check_trust_domain(name)?;
        Ok(TrustDomain(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain's own SPIFFE ID, `spiffe://<name>`.
    pub fn id_string(&self) -> String {
        format!("{SCHEME}{}", self.0)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid SPIFFE ID, `spiffe://<trust domain><path>`, the path possibly empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    text: String,
    td_end: usize,
}

impl SpiffeId {
    /// Parses a SPIFFE ID; the path may be empty.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        if text.is_empty() {
            return Err(IdError::Empty);
        }
        let rest = text.strip_prefix(SCHEME).ok_or(IdError::WrongScheme)?;
        let (td, path) = match rest.bytes().position(|b| b == b'/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        check_trust_domain(td)?;
        check_path(path)?;
        if text.len() > MAX_ID_BYTES {
            return Err(IdError::TooLong);
        }
        Ok(SpiffeId {
            text: text.to_owned(),
            td_end: SCHEME.len() + td.len(),
        })
    }

    /// Parses a SPIFFE ID that names a workload: its path must be non-empty.
    pub fn parse_workload(text: &str) -> Result<Self, IdError> {
        let id = Self::parse(text)?;
        if id.path().is_empty() {
            return Err(IdError::MissingPath);
        }
        Ok(id)
    }

    /// [`parse_workload`](Self::parse_workload) under tighter bounds than SPIFFE's own: the
    /// whole ID at most `max_bytes`, its trust domain at most `max_trust_domain_bytes`
    /// ([`IdError::TooLong`] otherwise). The verifier's configured limits go through here.
    pub fn parse_workload_within(
        text: &str,
        max_bytes: usize,
        max_trust_domain_bytes: usize,
    ) -> Result<Self, IdError> {
        let id = Self::parse_workload(text)?;
        if text.len() > max_bytes || id.trust_domain_str().len() > max_trust_domain_bytes {
            return Err(IdError::TooLong);
        }
        Ok(id)
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The trust domain part.
    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain(self.trust_domain_str().to_owned())
    }

    /// The trust domain part, borrowed.
    pub fn trust_domain_str(&self) -> &str {
        self.text.get(SCHEME.len()..self.td_end).unwrap_or("")
    }

    /// Whether this ID belongs to `td` (string equality of trust domains).
    pub fn member_of(&self, td: &TrustDomain) -> bool {
        self.trust_domain_str() == td.as_str()
    }

    /// The path, empty or starting with `/`.
    pub fn path(&self) -> &str {
        self.text.get(self.td_end..).unwrap_or("")
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether `text` claims to be a SPIFFE ID: it starts with `spiffe:` in any ASCII case.
pub fn looks_like_spiffe(text: &str) -> bool {
    text.as_bytes()
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"spiffe:"))
}

fn check_trust_domain(td: &str) -> Result<(), IdError> {
    if td.is_empty() {
        return Err(IdError::MissingTrustDomain);
    }
    if !td.bytes().all(is_td_byte) {
        return Err(IdError::BadTrustDomainChar);
    }
    if td.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(IdError::TooLong);
    }
    Ok(())
}

/// The path's segments, in order, each checked as it ends: non-empty, not `.` or `..`, only
/// path characters. One pass over the bytes (every token's actors are parsed here).
fn check_path(path: &str) -> Result<(), IdError> {
    let Some(rest) = path.strip_prefix('/') else {
        // empty, or (never, from `parse`) not starting with '/'
        return Ok(());
    };
    let b = rest.as_bytes();
    let mut start = 0;
    let mut plain = true;
    for (i, &c) in b.iter().enumerate() {
        if c != b'/' {
            plain &= is_path_byte(c);
            continue;
        }
        check_segment(b.get(start..i).unwrap_or_default(), plain, false)?;
        start = i + 1;
        plain = true;
    }
    check_segment(b.get(start..).unwrap_or_default(), plain, true)
}

/// One path segment (`plain`: only path characters; `last`: no `/` after it).
fn check_segment(segment: &[u8], plain: bool, last: bool) -> Result<(), IdError> {
    match segment {
        [] if last => Err(IdError::TrailingSlash),
        [] => Err(IdError::EmptySegment),
        b"." | b".." => Err(IdError::DotSegment),
        _ if !plain => Err(IdError::BadPathSegmentChar),
        _ => Ok(()),
    }
}

fn is_td_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    /// The SPIFFE ID vectors of standards.md §14 (1–21), as (input, expected).
    fn vectors() -> Vec<(String, Result<(), IdError>)> {
        use IdError::*;
        let mut v: Vec<(String, Result<(), IdError>)> = [
            ("spiffe://example.org/ns/prod/sa/agent-1", Ok(())),
            ("spiffe://example.org", Ok(())),
            ("spiffe://td_1.example-2/a.b_c-D", Ok(())),
            ("spiffe://example.org/.path/..path/...", Ok(())),
            ("", Err(Empty)),
            ("Spiffe://example.org/x", Err(WrongScheme)),
            ("SPIFFE://example.org/x", Err(WrongScheme)),
            ("spiffe:/example.org/x", Err(WrongScheme)),
            ("spiffe:example.org/x", Err(WrongScheme)),
            ("http://example.org/x", Err(WrongScheme)),
            ("spiffe://", Err(MissingTrustDomain)),
            ("spiffe:///x", Err(MissingTrustDomain)),
            ("spiffe://Example.org/x", Err(BadTrustDomainChar)),
            ("spiffe://example.org:8443/x", Err(BadTrustDomainChar)),
            ("spiffe://user:pw@example.org/x", Err(BadTrustDomainChar)),
            ("spiffe://[::1]/x", Err(BadTrustDomainChar)),
            ("spiffe://ex\u{430}mple.org/x", Err(BadTrustDomainChar)),
            ("spiffe://%65xample.org/x", Err(BadTrustDomainChar)),
            ("spiffe://example.org/%41", Err(BadPathSegmentChar)),
            ("spiffe://example.org/", Err(TrailingSlash)),
            ("spiffe://example.org/a/", Err(TrailingSlash)),
            ("spiffe://example.org//a", Err(EmptySegment)),
            ("spiffe://example.org/a//b", Err(EmptySegment)),
            ("spiffe://example.org/a/./b", Err(DotSegment)),
            ("spiffe://example.org/..", Err(DotSegment)),
            ("spiffe://example.org/a?b=1", Err(BadPathSegmentChar)),
            ("spiffe://example.org/a#f", Err(BadPathSegmentChar)),
            ("spiffe://example.org?x", Err(BadTrustDomainChar)),
            ("spiffe://example.org/\u{ff41}", Err(BadPathSegmentChar)),
            ("spiffe://192.168.1.1/x", Ok(())),
        ]
        .into_iter()
        .map(|(s, r)| (s.to_owned(), r))
        .collect();
        let td255 = "a".repeat(255);
        let td256 = "a".repeat(256);
        v.push((format!("spiffe://{td255}/x"), Ok(())));
        v.push((format!("spiffe://{td256}/x"), Err(TooLong)));
        let base = "spiffe://example.org/";
        let fill = |n: usize| format!("{base}{}", "p".repeat(n - base.len()));
        v.push((fill(2048), Ok(())));
        v.push((fill(2049), Err(TooLong)));
        v
    }

    #[test]
    fn standards_vectors() {
        for (input, expected) in vectors() {
            let got = SpiffeId::parse(&input).map(|_| ());
            assert_eq!(got, expected, "input {input:?}");
        }
    }

    #[test]
    fn parts_and_membership() {
        let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa/agent-1").unwrap();
        assert_eq!(id.trust_domain_str(), "example.org");
        assert_eq!(id.path(), "/ns/prod/sa/agent-1");
        assert!(id.member_of(&TrustDomain::parse("example.org").unwrap()));
        assert!(!id.member_of(&TrustDomain::parse("example.com").unwrap()));
        let empty = SpiffeId::parse("spiffe://example.org").unwrap();
        assert_eq!(empty.path(), "");
        assert_eq!(
            SpiffeId::parse_workload("spiffe://example.org"),
            Err(IdError::MissingPath)
        );
        assert!(SpiffeId::parse_workload("spiffe://example.org/a").is_ok());
    }

    #[test]
    fn trust_domain_names() {
        assert!(TrustDomain::parse("a.example").is_ok());
        assert_eq!(TrustDomain::parse(""), Err(IdError::MissingTrustDomain));
        assert_eq!(
            TrustDomain::parse("A.example"),
            Err(IdError::BadTrustDomainChar)
        );
        assert_eq!(TrustDomain::parse("a/b"), Err(IdError::BadTrustDomainChar));
        assert_eq!(TrustDomain::parse(&"a".repeat(256)), Err(IdError::TooLong));
        assert_eq!(
            TrustDomain::parse("a.example").unwrap().id_string(),
            "spiffe://a.example"
        );
    }

    #[test]
    fn spiffe_prefix_detection() {
        assert!(looks_like_spiffe("spiffe://x/y"));
        assert!(looks_like_spiffe("SPIFFE:x"));
        assert!(looks_like_spiffe("Spiffe:"));
        assert!(!looks_like_spiffe("spiff"));
        assert!(!looks_like_spiffe("user:alice"));
    }
}
