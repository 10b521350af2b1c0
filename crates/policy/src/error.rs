//! Load errors and warnings, each naming the file and, where there is one, the line and column.

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based line and column in a file; columns count characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What kind of problem a [`LoadError`] reports. The message says the details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// A file or directory could not be read, or a trust file is not UTF-8.
    Io,
    /// A file is larger than `Limits::pack_file_bytes`.
    TooLarge,
    /// Blocks nest deeper than `Limits::trust_nesting`, or the parser's budget ran out.
    TooComplex,
    /// The pack has no `*.trust` file, or more than one `*.cedarschema` file.
    PackLayout,
    /// The text does not follow the trust language's grammar.
    Syntax,
    /// A word where a keyword was expected is none of the keywords allowed there.
    UnknownKeyword,
    /// A string that must be a trust domain name is not a valid one.
    InvalidTrustDomain,
    /// A number or duration outside its allowed range, or one that overflows.
    OutOfRange,
    /// `local` is missing, repeated, or names an undeclared domain.
    Local,
    /// An `issuer`, `keys` path or scope that is the empty string.
    EmptyString,
    /// A domain is declared twice.
    DuplicateDomain,
    /// A domain has no `issuer` or no `keys`.
    IncompleteDomain,
    /// An issuer is declared twice (by two domains, or twice by one).
    DuplicateIssuer,
    /// A key file is named twice in one domain.
    DuplicateKeyFile,
    /// A second `chain` block, or a setting repeated inside `chain`.
    RepeatedChain,
    /// A `federate` edge declared twice.
    DuplicateFederation,
    /// A `federate` rule from a domain to itself.
    SelfFederation,
    /// A `federate` rule naming a domain no `domain` block declares.
    UndeclaredDomain,
    /// A key file is not a usable JWKS or SPIFFE bundle.
    KeySet,
    /// Two keys of one domain share a `kid`, across its key files.
    DuplicateKid,
    /// A remote key source that cannot be used: a URL that is not `https` (or `http` to a
    /// loopback address), a `discovery` URL that is not an issuer of its domain, a source
    /// listed twice, `refresh` or `ca` repeated or without a source, an unreadable `ca` file.
    KeySource,
    /// A `resource` block that cannot be served: a second one, an identifier that is not an
    /// `https` URL (or `http` to a loopback address) or has a query, no or a bad authorization
    /// server, a scope listed twice or not a valid scope token (RFC 6749 §3.3).
    Resource,
    /// A `store` that cannot be used: a second one, or a URL that is not `redis://` or
    /// `rediss://` with a host.
    Store,
    /// A Cedar policy file does not parse.
    CedarSyntax,
    /// A Cedar policy template (policies with slots are not supported).
    CedarTemplate,
    /// Two Cedar policies with one id.
    DuplicatePolicyId,
    /// More Cedar policies than `Limits::policies`.
    TooManyPolicies,
    /// The Cedar schema does not parse.
    CedarSchema,
    /// A Cedar policy fails strict validation against the schema.
    CedarValidation,
    /// `entities.json` is not valid Cedar entity JSON (or not strict JSON).
    CedarEntities,
}

/// One problem that makes a policy pack unusable, located as precisely as the source allows.
///
/// Displays as `path:line:col: message`, or `path: message` when there is no position.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadError {
    /// The file (or pack directory) at fault.
    pub path: PathBuf,
    /// Where in the file, when the problem has a position.
    pub location: Option<Location>,
    /// What kind of problem.
    pub kind: LoadErrorKind,
    /// Lowercase, no trailing period, user input in backticks.
    pub message: String,
}

impl LoadError {
    pub(crate) fn new(
        kind: LoadErrorKind,
        path: &Path,
        location: Option<Location>,
        message: impl Into<String>,
    ) -> Self {
        LoadError {
            path: path.to_path_buf(),
            location,
            kind,
            message: message.into(),
        }
    }

    /// The 1-based line, if the error has a position.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }

    /// The 1-based column, if the error has a position.
    pub fn column(&self) -> Option<usize> {
        self.location.map(|l| l.column)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.path, self.location, &self.message)
    }
}

impl std::error::Error for LoadError {}

/// What a [`Warning`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// A key in a key file was skipped (RSA, EC, X.509 bundle entries, other uses).
    SkippedKey,
    /// A domain whose key files hold no usable key: its tokens all fail.
    NoUsableKeys,
    /// `require_sender_binding` is false: tokens are bearer tokens.
    SenderBindingOff,
    /// A `federate` rule with an empty scope list allows nothing.
    EmptyScopes,
    /// A `federate` rule with `"*"` allows every action.
    AnyScope,
    /// Cedar reported a warning for the schema or a policy.
    Cedar,
    /// A Cedar schema or `entities.json` without any `*.cedar` policy is not used.
    UnusedCedarFile,
}

/// Something legal but probably unintended, which `custody check` reports.
///
/// Displays like a [`LoadError`]: `path:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// The file (or pack directory) concerned.
    pub path: PathBuf,
    /// Where in the file, when there is a position.
    pub location: Option<Location>,
    /// What the warning is about.
    pub kind: WarningKind,
    /// Lowercase, no trailing period.
    pub message: String,
}

impl Warning {
    pub(crate) fn new(
        kind: WarningKind,
        path: &Path,
        location: Option<Location>,
        message: impl Into<String>,
    ) -> Self {
        Warning {
            path: path.to_path_buf(),
            location,
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.path, self.location, &self.message)
    }
}

fn write_located(
    f: &mut fmt::Formatter<'_>,
    path: &Path,
    location: Option<Location>,
    message: &str,
) -> fmt::Result {
    match location {
        Some(at) => write!(f, "{}:{at}: {message}", path.display()),
        None => write!(f, "{}: {message}", path.display()),
    }
}

/// Byte offsets to line and column, for one source text, in logarithmic time plus a block
/// scan: a hostile file of one very long line must not make every lookup linear.
pub(crate) struct LineIndex<'s> {
    bytes: &'s [u8],
    /// Offsets where lines start.
    starts: Vec<usize>,
    /// `blocks[i]`: characters in the first `i * BLOCK` bytes.
    blocks: Vec<usize>,
}

const BLOCK: usize = 256;

impl<'s> LineIndex<'s> {
    pub(crate) fn new(source: &'s str) -> Self {
        let bytes = source.as_bytes();
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let blocks = std::iter::once(0)
            .chain(bytes.chunks(BLOCK).scan(0, |n, chunk| {
                *n += char_starts(chunk);
                Some(*n)
            }))
            .collect();
        LineIndex {
            bytes,
            starts,
            blocks,
        }
    }

    /// The location of byte `offset` (clamped to the text; a column counts characters).
    pub(crate) fn locate(&self, offset: usize) -> Location {
        let offset = offset.min(self.bytes.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self.chars_before(offset) - self.chars_before(start) + 1;
        Location { line, column }
    }

    fn chars_before(&self, offset: usize) -> usize {
        let block = offset / BLOCK;
        let counted = self.blocks.get(block).copied().unwrap_or(0);
        let rest = self.bytes.get(block * BLOCK..offset).unwrap_or_default();
        counted + char_starts(rest)
    }
}

/// Characters starting in `bytes` (bytes that are not UTF-8 continuation bytes).
fn char_starts(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_columns() {
        let idx = LineIndex::new("ab\ncé d\n");
        assert_eq!(idx.locate(0), Location { line: 1, column: 1 });
        assert_eq!(idx.locate(2), Location { line: 1, column: 3 });
        assert_eq!(idx.locate(3), Location { line: 2, column: 1 });
        // `d` is after the two-byte `é`: byte 7, character column 4
        assert_eq!(idx.locate(7), Location { line: 2, column: 4 });
        assert_eq!(idx.locate(999), Location { line: 3, column: 1 });
    }

    #[test]
    fn locates_on_long_lines_across_blocks() {
        let text = format!("x\n{}", "é".repeat(1000));
        let idx = LineIndex::new(&text);
        for n in [0, 1, 127, 128, 129, 500, 999] {
            let offset = 2 + 2 * n;
            assert_eq!(
                idx.locate(offset),
                Location {
                    line: 2,
                    column: n + 1
                }
            );
        }
    }

    #[test]
    fn displays_with_and_without_position() {
        let e = LoadError::new(
            LoadErrorKind::Syntax,
            Path::new("p/a.trust"),
            Some(Location { line: 3, column: 7 }),
            "expected `{`",
        );
        assert_eq!(e.to_string(), "p/a.trust:3:7: expected `{`");
        let e = LoadError::new(
            LoadErrorKind::PackLayout,
            Path::new("p"),
            None,
            "no trust file",
        );
        assert_eq!(e.to_string(), "p: no trust file");
    }
}
