//! Text to typed syntax tree: guards against hostile input, drives the pest parser one item at a
//! time (so one syntax error does not hide the rest of the file), and turns pest's pairs into
//! [`crate::ast`] values. Nothing pest-specific leaves this module.

use std::num::NonZeroUsize;
use std::path::Path;

use custody_id::TrustDomain;
use custody_jose::Limits;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser as _;

use crate::ast::{
    ChainBlock, DomainDecl, FederateDecl, Item, ResourceDecl, Setting, SourceDecl, Span, Spanned,
    TrustFile,
};
use crate::error::{LineIndex, LoadError, LoadErrorKind};
use crate::model::{SourceKind, MAX_REFRESH, MIN_REFRESH};

#[derive(pest_derive::Parser)]
#[grammar = "trust.pest"]
struct TrustParser;

/// Syntax errors reported per file before giving up on it.
const MAX_SYNTAX_ERRORS: usize = 20;
/// Parser calls allowed per byte of the largest accepted file. A valid file needs at most eight
/// (measured on dense input: scope lists of empty strings); this bounds the time hostile text
/// can take.
const CALLS_PER_BYTE: usize = 32;
/// The largest duration: JWT times are signed 64-bit seconds.
const MAX_SECONDS: u64 = i64::MAX as u64;
/// RFC 7519 leaves leeway at "a few minutes"; custody caps it at 120 s (standards digest §2).
const MAX_CLOCK_SKEW: u64 = 120;
/// The range of `max_depth`: at most 8 actors, the `act` nesting limit (`Limits::act_depth`),
/// so a chain the pack allows can always be carried in one token (DESIGN.md, Clarifications).
const DEPTH_RANGE: std::ops::RangeInclusive<usize> = 1..=8;
/// The range of `max_domains`: at most 16, the tokens a request may hold
/// (`Limits::tokens_per_request`), each of which can enter one new domain (DESIGN.md,
/// Clarifications).
const DOMAINS_RANGE: std::ops::RangeInclusive<usize> = 1..=16;

/// The range of `max_key_age`: from one refresh at the shortest (30 s) to a week.
const KEY_AGE_RANGE: std::ops::RangeInclusive<u64> = 30..=604_800;

const KEYWORDS: [&str; 24] = [
    "local",
    "domain",
    "issuer",
    "keys",
    "biscuit_keys",
    "federate",
    "scopes",
    "chain",
    "max_depth",
    "max_domains",
    "clock_skew",
    "max_lifetime",
    "require_sender_binding",
    "max_key_age",
    "jwks_uri",
    "discovery",
    "spiffe_bundle",
    "refresh",
    "ca",
    "resource",
    "authorization_servers",
    "store",
    "one_time_tokens",
    "fail_open_replay",
];
const TOP_LEVEL: [&str; 6] = ["local", "domain", "federate", "chain", "resource", "store"];

/// One file's parse: the items that could be read, and every problem found on the way.
pub(crate) struct Parsed {
    pub(crate) file: TrustFile,
    pub(crate) errors: Vec<LoadError>,
    /// Some text could not be read at all: cross-file checks would only add noise.
    pub(crate) syntax_failed: bool,
    /// A `local` item was present but refused, so "no `local`" would be noise.
    pub(crate) local_dropped: bool,
}

/// Parses one trust file's text. Never panics; hostile input gives errors.
pub(crate) fn parse(source: &str, path: &Path, limits: &Limits) -> Parsed {
    let mut out = Parsed {
        file: TrustFile {
            path: path.to_path_buf(),
            items: Vec::new(),
        },
        errors: Vec::new(),
        syntax_failed: false,
        local_dropped: false,
    };
    let lines = LineIndex::new(source);
    if let Some(error) = precheck(source, path, limits, &lines) {
        out.errors.push(error);
        out.syntax_failed = true;
        return out;
    }
    pest::set_call_limit(NonZeroUsize::new(
        limits
            .pack_file_bytes
            .saturating_mul(CALLS_PER_BYTE)
            .max(100_000),
    ));
    let mut cx = Converter {
        path,
        lines: &lines,
        base: 0,
        out: &mut out,
    };
    cx.run(source);
    out
}

/// Size and nesting, checked before pest sees the text.
fn precheck(source: &str, path: &Path, limits: &Limits, lines: &LineIndex) -> Option<LoadError> {
    if source.len() > limits.pack_file_bytes {
        let msg = format!("file is larger than {} bytes", limits.pack_file_bytes);
        return Some(LoadError::new(LoadErrorKind::TooLarge, path, None, msg));
    }
    let offset = too_deep(source.as_bytes(), limits.trust_nesting)?;
    let msg = format!(
        "brackets nest deeper than {} levels (the language nests two deep)",
        limits.trust_nesting
    );
    Some(LoadError::new(
        LoadErrorKind::TooComplex,
        path,
        Some(lines.locate(offset)),
        msg,
    ))
}

/// The offset of the first `{` or `[` nested deeper than `max`, outside strings and comments.
fn too_deep(bytes: &[u8], max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let next = bytes.get(i + 1).copied();
        match b {
            b'#' => i = line_end(bytes, i),
            b'/' if next == Some(b'/') => i = line_end(bytes, i),
            b'"' => i = string_end(bytes, i + 1),
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    let rest = bytes.get(from..).unwrap_or_default();
    rest.iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| from + p)
}

fn string_end(bytes: &[u8], from: usize) -> usize {
    let rest = bytes.get(from..).unwrap_or_default();
    let stop = rest.iter().position(|&b| b == b'"' || b == b'\n');
    stop.map_or(bytes.len(), |p| from + p)
}

/// Walks the items of one file and builds the tree.
struct Converter<'a> {
    path: &'a Path,
    lines: &'a LineIndex<'a>,
    /// Offset of the text pest is currently given, within the file.
    base: usize,
    out: &'a mut Parsed,
}

impl Converter<'_> {
    fn run(&mut self, source: &str) {
        let mut syntax_errors = 0;
        loop {
            // pest's errors cost time linear in the rest of the input, so the end is found here
            self.base = skip_trivia(source, self.base);
            let rest = source.get(self.base..).unwrap_or_default();
            if rest.is_empty() {
                return;
            }
            let failed_at = match TrustParser::parse(Rule::item, rest) {
                Ok(pairs) => {
                    let consumed = self.items(pairs);
                    if consumed == 0 {
                        return; // cannot happen: every item consumes its keyword
                    }
                    self.base += consumed;
                    continue;
                }
                Err(e) => self.syntax_error(source, &e),
            };
            self.out.syntax_failed = true;
            syntax_errors += 1;
            if syntax_errors >= MAX_SYNTAX_ERRORS {
                return;
            }
            match resume_point(source, self.base, failed_at) {
                Some(next) => self.base = next,
                None => return,
            }
        }
    }

    /// Converts the pairs of one item and returns how many bytes it consumed.
    fn items(&mut self, pairs: pest::iterators::Pairs<'_, Rule>) -> usize {
        let mut end = 0;
        for pair in pairs {
            end = end.max(pair.as_span().end());
            let span = self.span(&pair);
            if let Some(item) = self.item(pair) {
                self.out.file.items.push(Spanned::new(item, span));
            }
        }
        end
    }

    /// Records a syntax error and returns its offset in the file.
    fn syntax_error(&mut self, source: &str, e: &pest::error::Error<Rule>) -> usize {
        let offset = self.base
            + match e.location {
                InputLocation::Pos(p) => p,
                InputLocation::Span((s, _)) => s,
            };
        let (kind, message) = match &e.variant {
            ErrorVariant::ParsingError { positives, .. } => describe(source, offset, positives),
            ErrorVariant::CustomError { .. } => (
                LoadErrorKind::TooComplex,
                "text too complex to parse: the parser's budget ran out".to_owned(),
            ),
        };
        let at = Some(self.lines.locate(offset));
        self.out
            .errors
            .push(LoadError::new(kind, self.path, at, message));
        offset
    }

    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        let start = self.base + s.start();
        Span {
            start,
            end: self.base + s.end(),
            location: self.lines.locate(start),
        }
    }

    fn error(&mut self, kind: LoadErrorKind, span: Span, message: String) {
        let e = LoadError::new(kind, self.path, Some(span.location), message);
        self.out.errors.push(e);
    }

    fn item(&mut self, pair: Pair<'_, Rule>) -> Option<Item> {
        match pair.as_rule() {
            Rule::local => self.local(pair),
            Rule::domain => self.domain(pair),
            Rule::federate => self.federate(pair),
            Rule::chain => Some(self.chain(pair)),
            Rule::resource => self.resource(pair),
            Rule::store => self.strings(pair).next().map(Item::Store),
            _ => None,
        }
    }

    fn resource(&mut self, pair: Pair<'_, Rule>) -> Option<Item> {
        let mut identifier = None;
        let (mut authorization_servers, mut scopes) = (Vec::new(), Vec::new());
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::string => identifier = Some(self.string(inner)),
                Rule::authorization_servers => authorization_servers.extend(self.strings(inner)),
                Rule::scopes => scopes.extend(self.strings(inner)),
                _ => {}
            }
        }
        Some(Item::Resource(ResourceDecl {
            identifier: identifier?,
            authorization_servers,
            scopes,
        }))
    }

    fn local(&mut self, pair: Pair<'_, Rule>) -> Option<Item> {
        let name = self.strings(pair).next();
        match name.and_then(|n| self.trust_domain(n)) {
            Some(td) => Some(Item::Local(td)),
            None => {
                self.out.local_dropped = true;
                None
            }
        }
    }

    fn domain(&mut self, pair: Pair<'_, Rule>) -> Option<Item> {
        let mut name = None;
        let mut issuers = Vec::new();
        let mut keys = Vec::new();
        let mut biscuit_keys = Vec::new();
        let (mut sources, mut refresh, mut ca) = (Vec::new(), Vec::new(), Vec::new());
        for inner in pair.into_inner() {
            let kind = match inner.as_rule() {
                Rule::jwks_uri => Some(SourceKind::JwksUri),
                Rule::discovery => Some(SourceKind::Discovery),
                Rule::spiffe_bundle => Some(SourceKind::SpiffeBundle),
                _ => None,
            };
            match inner.as_rule() {
                Rule::string => name = Some(self.string(inner)),
                Rule::issuer => issuers.extend(self.strings(inner).next()),
                Rule::keys => keys.extend(self.strings(inner).next()),
                Rule::biscuit_keys => biscuit_keys.extend(self.strings(inner).next()),
                Rule::jwks_uri | Rule::discovery | Rule::spiffe_bundle => {
                    if let (Some(kind), Some(url)) = (kind, self.strings(inner).next()) {
                        let decl = SourceDecl {
                            kind,
                            url: url.node,
                        };
                        sources.push(Spanned::new(decl, url.span));
                    }
                }
                Rule::refresh => refresh.extend(self.refresh(inner)),
                Rule::ca => ca.extend(self.strings(inner).next()),
                _ => {}
            }
        }
        let name = self.trust_domain(name?)?;
        Some(Item::Domain(DomainDecl {
            name,
            issuers,
            keys,
            biscuit_keys,
            sources,
            refresh,
            ca,
        }))
    }

    /// A `refresh` duration, 30 s to 24 h.
    fn refresh(&mut self, pair: Pair<'_, Rule>) -> Option<Spanned<u64>> {
        let value = pair.into_inner().find(|p| p.as_rule() == Rule::duration)?;
        let span = self.span(&value);
        let seconds = self.duration("refresh", &value)?;
        if !(MIN_REFRESH..=MAX_REFRESH).contains(&seconds) {
            let msg = format!("`refresh` must be 30s to 24h, not `{}`", value.as_str());
            self.error(LoadErrorKind::OutOfRange, span, msg);
            return None;
        }
        Some(Spanned::new(seconds, span))
    }

    fn federate(&mut self, pair: Pair<'_, Rule>) -> Option<Item> {
        let mut names = Vec::new();
        let mut scopes = Vec::new();
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::string => names.push(self.string(inner)),
                Rule::scopes => scopes = self.strings(inner).collect(),
                _ => {}
            }
        }
        let mut names = names.into_iter();
        let (from, to) = (names.next()?, names.next()?);
        // convert both, so both names' errors are reported
        let (from, to) = (self.trust_domain(from), self.trust_domain(to));
        Some(Item::Federate(FederateDecl {
            from: from?,
            to: to?,
            scopes,
        }))
    }

    fn chain(&mut self, pair: Pair<'_, Rule>) -> Item {
        let settings = pair
            .into_inner()
            .filter_map(|inner| self.setting(inner))
            .collect();
        Item::Chain(ChainBlock { settings })
    }

    fn setting(&mut self, pair: Pair<'_, Rule>) -> Option<Spanned<Setting>> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let value = pair
            .into_inner()
            .find(|p| matches!(p.as_rule(), Rule::integer | Rule::duration | Rule::boolean))?;
        let setting = match rule {
            Rule::max_depth => Setting::MaxDepth(self.count("max_depth", DEPTH_RANGE, &value)?),
            Rule::max_domains => {
                Setting::MaxDomains(self.count("max_domains", DOMAINS_RANGE, &value)?)
            }
            Rule::clock_skew => Setting::ClockSkew(self.clock_skew(&value)?),
            Rule::max_lifetime => Setting::MaxLifetime(self.duration("max_lifetime", &value)?),
            Rule::sender_binding => Setting::RequireSenderBinding(value.as_str() == "true"),
            Rule::one_time_tokens => Setting::OneTimeTokens(value.as_str() == "true"),
            Rule::fail_open_replay => Setting::FailOpenReplay(value.as_str() == "true"),
            Rule::max_key_age => {
                let seconds = self.duration("max_key_age", &value)?;
                if !KEY_AGE_RANGE.contains(&seconds) {
                    let msg = format!(
                        "`max_key_age` must be 30s to 168h, not `{}`",
                        value.as_str()
                    );
                    self.error(LoadErrorKind::OutOfRange, self.span(&value), msg);
                    return None;
                }
                Setting::MaxKeyAge(seconds)
            }
            _ => return None,
        };
        Some(Spanned::new(setting, span))
    }

    fn count(
        &mut self,
        keyword: &str,
        range: std::ops::RangeInclusive<usize>,
        value: &Pair<'_, Rule>,
    ) -> Option<usize> {
        let text = value.as_str();
        match text.parse::<usize>() {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                let (lo, hi) = range.into_inner();
                let msg = format!("`{keyword}` must be {lo} to {hi}, not `{text}`");
                self.error(LoadErrorKind::OutOfRange, self.span(value), msg);
                None
            }
        }
    }

    fn duration(&mut self, keyword: &str, value: &Pair<'_, Rule>) -> Option<u64> {
        let text = value.as_str();
        let seconds = parse_duration(text);
        if seconds.is_none() {
            let msg =
                format!("`{keyword}` `{text}` overflows: durations are at most 2^63-1 seconds");
            self.error(LoadErrorKind::OutOfRange, self.span(value), msg);
        }
        seconds
    }

    fn clock_skew(&mut self, value: &Pair<'_, Rule>) -> Option<u64> {
        let seconds = self.duration("clock_skew", value)?;
        if seconds > MAX_CLOCK_SKEW {
            let msg = format!(
                "`clock_skew` is at most 120s (RFC 7519 leeway is a few minutes), not `{}`",
                value.as_str()
            );
            self.error(LoadErrorKind::OutOfRange, self.span(value), msg);
            return None;
        }
        Some(seconds)
    }

    /// The `string` children of `pair`, as spanned text.
    fn strings<'p>(
        &self,
        pair: Pair<'p, Rule>,
    ) -> impl Iterator<Item = Spanned<String>> + use<'_, 'p> {
        pair.into_inner()
            .filter(|p| p.as_rule() == Rule::string)
            .map(|p| self.string(p))
    }

    fn string(&self, pair: Pair<'_, Rule>) -> Spanned<String> {
        let span = self.span(&pair);
        let text = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::text)
            .map_or("", |p| p.as_str());
        Spanned::new(text.to_owned(), span)
    }

    fn trust_domain(&mut self, name: Spanned<String>) -> Option<Spanned<TrustDomain>> {
        match TrustDomain::parse(&name.node) {
            Ok(td) => Some(Spanned::new(td, name.span)),
            Err(e) => {
                let msg = format!("invalid trust domain `{}`: {e}", name.node);
                self.error(LoadErrorKind::InvalidTrustDomain, name.span, msg);
                None
            }
        }
    }
}

/// The offset of the first byte at or after `from` that is not whitespace or in a comment.
fn skip_trivia(source: &str, mut from: usize) -> usize {
    let bytes = source.as_bytes();
    loop {
        match bytes.get(from) {
            Some(b' ' | b'\t' | b'\r' | b'\n') => from += 1,
            Some(b'#') => from = line_end(bytes, from),
            Some(b'/') if bytes.get(from + 1) == Some(&b'/') => from = line_end(bytes, from),
            _ => return from,
        }
    }
}

/// Seconds in a `duration` (`30s`, `5m`, `1h`), or `None` on overflow.
fn parse_duration(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at_checked(text.len().checked_sub(1)?)?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(scale).filter(|s| *s <= MAX_SECONDS)
}

/// Where to start again after a syntax error: the next line at or after the error's line (and
/// after the failed item's start) whose first word is a top-level keyword.
fn resume_point(source: &str, item_start: usize, error_at: usize) -> Option<usize> {
    let before = source.get(..error_at)?;
    let mut line = before.rfind('\n').map_or(0, |i| i + 1);
    loop {
        let text = source.get(line..)?;
        if line > item_start && starts_with_top_level(text) {
            return Some(line);
        }
        line += text.find('\n')? + 1;
    }
}

fn starts_with_top_level(line: &str) -> bool {
    let line = line.trim_start_matches([' ', '\t']);
    TOP_LEVEL.iter().any(|kw| {
        line.strip_prefix(kw)
            .is_some_and(|rest| !rest.starts_with(is_word_char))
    })
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The error kind and message for a failed parse at `offset`, in words.
fn describe(source: &str, offset: usize, positives: &[Rule]) -> (LoadErrorKind, String) {
    let next = source.get(offset..).and_then(|s| s.chars().next());
    if positives.contains(&Rule::string_end) {
        let msg = match next {
            Some('\\') => "strings have no escapes: `\\` is not allowed in a string",
            _ => "unterminated string: the closing `\"` must be on the same line",
        };
        return (LoadErrorKind::Syntax, msg.to_owned());
    }
    let word = source.get(offset..).map(found_word).unwrap_or_default();
    if positives == [Rule::unit] {
        let mut msg = "a duration needs a unit right after the number: `s`, `m` or `h`".to_owned();
        if !word.is_empty() {
            msg = format!("{msg}, not `{word}`");
        }
        return (LoadErrorKind::Syntax, msg);
    }
    let mut expected: Vec<&str> = Vec::new();
    for word in positives.iter().map(|r| expected_words(*r)) {
        if !expected.contains(&word) {
            expected.push(word);
        }
    }
    let unknown = !word.is_empty()
        && word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && !KEYWORDS.contains(&word)
        && !positives.is_empty()
        && positives.iter().all(|r| is_keyword_position(*r));
    let expected = join_or(&expected);
    if unknown {
        let msg = format!("unknown keyword `{word}`: expected {expected}");
        return (LoadErrorKind::UnknownKeyword, msg);
    }
    let found = match next {
        None => "end of file".to_owned(),
        Some('\n' | '\r') => "end of line".to_owned(),
        Some('"') => "a string".to_owned(),
        Some(c) if word.is_empty() => format!("`{c}`"),
        Some(_) => format!("`{word}`"),
    };
    if positives.is_empty() {
        return (LoadErrorKind::Syntax, format!("unexpected {found}"));
    }
    (
        LoadErrorKind::Syntax,
        format!("expected {expected}, found {found}"),
    )
}

/// The word at the start of `text` (letters, digits and `_-.:/*`), at most 40 characters.
fn found_word(text: &str) -> &str {
    let is_token = |c: char| is_word_char(c) || matches!(c, '.' | ':' | '/' | '*');
    let end = text.find(|c: char| !is_token(c)).unwrap_or(text.len());
    let end = text.char_indices().nth(40).map_or(end, |(i, _)| i.min(end));
    text.get(..end).unwrap_or_default()
}

/// Whether a rule expected at some position is a keyword (or the end of a block or file), so
/// that an unknown word there is an unknown keyword rather than a misplaced value.
fn is_keyword_position(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::local
            | Rule::domain
            | Rule::federate
            | Rule::chain
            | Rule::resource
            | Rule::authorization_servers
            | Rule::store
            | Rule::kw_store
            | Rule::one_time_tokens
            | Rule::kw_one_time_tokens
            | Rule::fail_open_replay
            | Rule::kw_fail_open_replay
            | Rule::kw_resource
            | Rule::kw_authorization_servers
            | Rule::issuer
            | Rule::keys
            | Rule::biscuit_keys
            | Rule::scopes
            | Rule::max_depth
            | Rule::max_domains
            | Rule::clock_skew
            | Rule::max_lifetime
            | Rule::sender_binding
            | Rule::max_key_age
            | Rule::jwks_uri
            | Rule::discovery
            | Rule::spiffe_bundle
            | Rule::refresh
            | Rule::ca
            | Rule::kw_max_key_age
            | Rule::kw_jwks_uri
            | Rule::kw_discovery
            | Rule::kw_spiffe_bundle
            | Rule::kw_refresh
            | Rule::kw_ca
            | Rule::kw_local
            | Rule::kw_domain
            | Rule::kw_federate
            | Rule::kw_chain
            | Rule::kw_issuer
            | Rule::kw_keys
            | Rule::kw_biscuit_keys
            | Rule::kw_scopes
            | Rule::kw_max_depth
            | Rule::kw_max_domains
            | Rule::kw_clock_skew
            | Rule::kw_max_lifetime
            | Rule::kw_require_sender_binding
            | Rule::close
            | Rule::EOI
    )
}

fn expected_words(rule: Rule) -> &'static str {
    match rule {
        Rule::local | Rule::kw_local => "`local`",
        Rule::domain | Rule::kw_domain => "`domain`",
        Rule::federate | Rule::kw_federate => "`federate`",
        Rule::chain | Rule::kw_chain => "`chain`",
        Rule::resource | Rule::kw_resource => "`resource`",
        Rule::store | Rule::kw_store => "`store`",
        Rule::one_time_tokens | Rule::kw_one_time_tokens => "`one_time_tokens`",
        Rule::fail_open_replay | Rule::kw_fail_open_replay => "`fail_open_replay`",
        Rule::authorization_servers | Rule::kw_authorization_servers => "`authorization_servers`",
        Rule::issuer | Rule::kw_issuer => "`issuer`",
        Rule::keys | Rule::kw_keys => "`keys`",
        Rule::biscuit_keys | Rule::kw_biscuit_keys => "`biscuit_keys`",
        Rule::scopes | Rule::kw_scopes => "`scopes`",
        Rule::max_depth | Rule::kw_max_depth => "`max_depth`",
        Rule::max_domains | Rule::kw_max_domains => "`max_domains`",
        Rule::clock_skew | Rule::kw_clock_skew => "`clock_skew`",
        Rule::max_lifetime | Rule::kw_max_lifetime => "`max_lifetime`",
        Rule::sender_binding | Rule::kw_require_sender_binding => "`require_sender_binding`",
        Rule::max_key_age | Rule::kw_max_key_age => "`max_key_age`",
        Rule::jwks_uri | Rule::kw_jwks_uri => "`jwks_uri`",
        Rule::discovery | Rule::kw_discovery => "`discovery`",
        Rule::spiffe_bundle | Rule::kw_spiffe_bundle => "`spiffe_bundle`",
        Rule::refresh | Rule::kw_refresh => "`refresh`",
        Rule::ca | Rule::kw_ca => "`ca`",
        Rule::string | Rule::text => "a quoted string",
        Rule::string_end => "`\"`",
        Rule::integer => "a whole number",
        Rule::duration | Rule::digits => "a duration such as `30s`, `5m` or `1h`",
        Rule::unit => "a duration unit `s`, `m` or `h`",
        Rule::boolean => "`true` or `false`",
        Rule::arrow => "`->`",
        Rule::open => "`{`",
        Rule::close => "`}`",
        Rule::open_list => "`[`",
        Rule::close_list => "`]`",
        Rule::comma => "`,`",
        Rule::EOI => "end of file",
        _ => "valid trust language",
    }
}

/// `a`, `a or b`, `a, b or c`.
fn join_or(words: &[&str]) -> String {
    match words.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests;
