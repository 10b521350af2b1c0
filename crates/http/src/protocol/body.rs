//! Reading a JSON-RPC call: the envelope and `params` are decoded (each member name at most
//! once), everything else is checked and skipped without building anything.
//!
//! The whole body must be RFC 8259 JSON: string escapes and numbers by its grammar, no control
//! character in a string, no trailing bytes, and no `\u` escape that is a lone surrogate
//! (I-JSON, RFC 7493 §2.1), wherever it stands. Containers nest at most [`MAX_LEVELS`] deep,
//! the top-level object being level 1 (serde_json's own parser stops at the same depth), and
//! the skipper keeps its open containers in a fixed array of flags, so no input can exhaust a
//! stack.
//!
//! Two stages. The first ([`Stops`]) flags, for the whole body, every byte that ends a plain
//! run of a string (`"`, `\` and a control character), in a loop the compiler vectorizes. The
//! second is the skipper, free functions over the bytes and a position that stays in a
//! register: a string's end is a lookup in the first stage's table, the only work most of a
//! tool's `arguments` needs. The table is a word for every eight bytes of the body (as large
//! as the body itself; the sidecar refuses a body over its `max_body_bytes` before this).

use std::borrow::Cow;

/// The deepest nesting read: the envelope object is level 1.
pub const MAX_LEVELS: usize = 127;

/// The refusal of nesting past [`MAX_LEVELS`] (a test ties the number to it).
const TOO_DEEP: &str = "JSON nested deeper than 127 levels";

/// A `params` member custody reads.
#[derive(Debug, Default)]
pub(super) enum Param<'a> {
    /// Not there.
    #[default]
    Absent,
    /// A string.
    Text(Cow<'a, str>),
    /// Any other value.
    Other,
}

/// What custody reads of a JSON-RPC message.
#[derive(Debug, Default)]
pub(super) struct Call<'a> {
    pub(super) jsonrpc: Option<Cow<'a, str>>,
    pub(super) method: Option<Cow<'a, str>>,
    pub(super) name: Param<'a>,
    pub(super) uri: Param<'a>,
}

/// Reads `body` as one JSON-RPC object; the error says what is wrong and at which byte.
pub(super) fn read(body: &str) -> Result<Call<'_>, String> {
    let mut s = Scan {
        text: body,
        b: body.as_bytes(),
        stops: Stops::new(body.as_bytes()),
        i: 0,
    };
    s.call()
}

/// Where a read stopped and why.
#[derive(Debug)]
struct Stop {
    at: usize,
    why: Why,
}

/// Why a read stopped: a byte-sized code, so the skipper's error path holds no pointers in
/// registers (the text is looked up only when a refusal is written).
#[derive(Debug, Clone, Copy)]
enum Why {
    Control,
    Unterminated,
    Escape,
    BadUnicode,
    Hex,
    LeadingZero,
    Fraction,
    Exponent,
    Number,
    Value,
    Name,
    Colon,
    ObjectNext,
    ArrayNext,
    Lone,
    Deep,
}

impl Why {
    fn text(self) -> &'static str {
        match self {
            Why::Control => "a control character in a string",
            Why::Unterminated => "an unterminated string",
            Why::Escape => "an invalid escape",
            Why::BadUnicode => "an invalid `\\u` escape",
            Why::Hex => "expected four hex digits after `\\u`",
            Why::LeadingZero => "a number with a leading zero",
            Why::Fraction => "an invalid number (no digit after `.`)",
            Why::Exponent => "an invalid number (no digit in the exponent)",
            Why::Number => "an invalid number",
            Why::Value => "expected a JSON value",
            Why::Name => "expected a member name",
            Why::Colon => "expected `:`",
            Why::ObjectNext => "expected `,` or `}`",
            Why::ArrayNext => "expected `,` or `]`",
            Why::Lone => "a lone surrogate `\\u` escape",
            Why::Deep => TOO_DEEP,
        }
    }
}

/// The position after what was read, or where and why it stopped.
type At = Result<usize, Stop>;

fn stop(at: usize, why: Why) -> At {
    Err(Stop { at, why })
}

/// A refusal at `at` of `b`, naming the byte found there.
fn message(b: &[u8], at: usize, what: &str) -> String {
    match b.get(at) {
        Some(&c) if c.is_ascii_graphic() => {
            format!("{what} at byte {at}, found `{}`", char::from(c))
        }
        Some(c) => format!("{what} at byte {at}, found byte 0x{c:02x}"),
        None => format!("{what} at byte {at} (the end of the body)"),
    }
}

/// The member names one object has shown so far: eight without allocating, more on the heap.
#[derive(Default)]
struct Names<'a> {
    few: [Option<Cow<'a, str>>; 8],
    more: Vec<Cow<'a, str>>,
}

impl<'a> Names<'a> {
    fn contains(&self, name: &str) -> bool {
        self.few.iter().flatten().any(|n| n == name) || self.more.iter().any(|n| n == name)
    }

    fn push(&mut self, name: Cow<'a, str>) {
        match self.few.iter_mut().find(|n| n.is_none()) {
            Some(free) => *free = Some(name),
            None => self.more.push(name),
        }
    }
}

/// The envelope reader: decodes what custody reads, hands the rest to [`skip_value`].
struct Scan<'a> {
    text: &'a str,
    b: &'a [u8],
    stops: Stops,
    i: usize,
}

impl<'a> Scan<'a> {
    fn call(&mut self) -> Result<Call<'a>, String> {
        self.i = ws(self.b, 0);
        match self.b.get(self.i) {
            Some(b'{') => self.i += 1,
            Some(b'[') => return Err("a JSON-RPC batch (an array) is refused".into()),
            _ => return Err(self.fail("expected one JSON-RPC object")),
        }
        let mut call = Call::default();
        self.members("", |s, key| {
            match key {
                "jsonrpc" => call.jsonrpc = Some(s.string_value("jsonrpc")?),
                "method" => call.method = Some(s.string_value("method")?),
                "params" => s.params(&mut call)?,
                _ => s.skip(1)?,
            }
            Ok(())
        })?;
        self.i = ws(self.b, self.i);
        if self.i != self.b.len() {
            return Err(self.fail("trailing bytes after the JSON-RPC object"));
        }
        Ok(call)
    }

    fn fail(&self, what: &str) -> String {
        message(self.b, self.i, what)
    }

    /// One value inside `level` open containers, checked and skipped.
    fn skip(&mut self, level: usize) -> Result<(), String> {
        match skip_value(self.b, &self.stops, self.i, level) {
            Ok(i) => {
                self.i = i;
                Ok(())
            }
            Err(s) => Err(message(self.b, s.at, s.why.text())),
        }
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<(), String> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.fail(&format!("expected {what}")))
        }
    }

    /// The members of an object whose `{` was read, each handed to `each` with its decoded
    /// name (the reader at its value); the closing `}` read. A name given twice is refused,
    /// named with `path` before it (`params.` for the members of `params`).
    fn members(
        &mut self,
        path: &str,
        mut each: impl FnMut(&mut Self, &str) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut seen = Names::default();
        self.i = ws(self.b, self.i);
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.expect(b'"', "a member name")?;
            let key = self.string()?;
            if seen.contains(&key) {
                return Err(format!("`{path}{}` appears twice", super::printable(&key)));
            }
            self.i = ws(self.b, self.i);
            self.expect(b':', "`:`")?;
            self.i = ws(self.b, self.i);
            each(self, &key)?;
            seen.push(key);
            self.i = ws(self.b, self.i);
            match self.b.get(self.i) {
                Some(b',') => self.i = ws(self.b, self.i + 1),
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.fail("expected `,` or `}`")),
            }
        }
    }

    /// `params`: an object (its `name` and `uri` read) or an array (skipped).
    fn params(&mut self, call: &mut Call<'a>) -> Result<(), String> {
        match self.b.get(self.i) {
            Some(b'{') => self.i += 1,
            Some(b'[') => return self.skip(1),
            _ => return Err(self.fail("`params` must be an object or an array")),
        }
        self.members("params.", |s, key| {
            match key {
                "name" => call.name = s.member()?,
                "uri" => call.uri = s.member()?,
                _ => s.skip(2)?,
            }
            Ok(())
        })
    }

    /// A member of `params` custody reads: a string, or any other value (skipped).
    fn member(&mut self) -> Result<Param<'a>, String> {
        if self.b.get(self.i) == Some(&b'"') {
            self.i += 1;
            Ok(Param::Text(self.string()?))
        } else {
            self.skip(2)?;
            Ok(Param::Other)
        }
    }

    fn string_value(&mut self, member: &str) -> Result<Cow<'a, str>, String> {
        if self.b.get(self.i) != Some(&b'"') {
            return Err(self.fail(&format!("`{member}` must be a string")));
        }
        self.i += 1;
        self.string()
    }

    /// The rest of a string whose `"` was read, decoded.
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        let start = self.i;
        self.i = self.stops.plain(self.b, self.i).0;
        if self.b.get(self.i) == Some(&b'"') {
            let s = self.slice(start)?;
            self.i += 1;
            return Ok(Cow::Borrowed(s));
        }
        let mut out = self.slice(start)?.to_owned();
        loop {
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => match escape(self.b, self.i + 1) {
                    Ok((c, i)) => {
                        out.push(c);
                        self.i = i;
                    }
                    Err(s) => return Err(message(self.b, s.at, s.why.text())),
                },
                Some(c) if *c < 0x20 => return Err(self.fail(Why::Control.text())),
                Some(_) => {
                    let from = self.i;
                    self.i = self.stops.plain(self.b, self.i).0;
                    out.push_str(self.slice(from)?);
                }
                None => return Err(self.fail(Why::Unterminated.text())),
            }
        }
    }

    /// The text from `start` to here (both at ASCII bytes of the UTF-8 body).
    fn slice(&self, start: usize) -> Result<&'a str, String> {
        self.text
            .get(start..self.i)
            .ok_or_else(|| self.fail("a string cut inside a character"))
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each of the eight bytes of `x` (little-endian) that is `"`, `\` or below
/// 0x20 (a byte that ends a plain run of a string), exactly: no sum carries out of its byte, so
/// each flag is true wherever it stands.
#[inline(always)]
fn stops(x: u64) -> u64 {
    const LOW: u64 = ONES * 0x7f;
    // whether each byte of v is below n: its low seven bits plus 0x80 - n reach the high bit
    // exactly when they are n or more (a byte with its own high bit set is never below)
    let below = |v: u64, n: u64| !(((v & LOW) + ONES * (0x80 - n)) | v) & HIGH;
    // `"` (0x22) xor 0x02 is 0x20, and xor 0x02 keeps the control characters below 0x20 while
    // sending 0x20 and 0x21 above: one "below 0x21" test finds both kinds
    below(x ^ (ONES * 0x02), 0x21) | below(x ^ (ONES * u64::from(b'\\')), 1)
}

/// The first stage of a read: for each eight bytes of the body, [`stops`] of them, computed
/// once in a loop where no word waits on another (so the compiler does two or more words at a
/// time). Finding where a string's plain run ends is then a shift and a count of zeros, which
/// the skipper does for every string of a tool's `arguments`.
struct Stops(Vec<u64>);

impl Stops {
    fn new(b: &[u8]) -> Stops {
        let mut words = Vec::with_capacity(b.len().div_ceil(8));
        let chunks = b.chunks_exact(8);
        let rest = chunks.remainder();
        words.extend(chunks.map(|c| match <[u8; 8]>::try_from(c) {
            Ok(eight) => stops(u64::from_le_bytes(eight)),
            Err(_) => 0,
        }));
        if !rest.is_empty() {
            // past the end, spaces: they end no run
            let mut last = SPACES;
            for (to, from) in last.iter_mut().zip(rest) {
                *to = *from;
            }
            words.push(stops(u64::from_le_bytes(last)));
        }
        Stops(words)
    }

    /// The first position from `i` of a byte a string must look at (`"`, `\`, a control
    /// character) and that byte, or the end of `b` (the body these stops are of) and `None`.
    #[inline(always)]
    fn plain(&self, b: &[u8], i: usize) -> (usize, Option<u8>) {
        let mut k = i / 8;
        let Some(first) = self.0.get(k) else {
            return (b.len(), None);
        };
        let mut w = first >> (i % 8 * 8);
        let mut base = i;
        while w == 0 {
            k += 1;
            let Some(&next) = self.0.get(k) else {
                return (b.len(), None);
            };
            w = next;
            base = k * 8;
        }
        let at = base + (w.trailing_zeros() / 8) as usize;
        (at, b.get(at).copied())
    }
}

/// Eight spaces, as a word: no stops.
const SPACES: [u8; 8] = [b' '; 8];

#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The rest of a string from `i` (after its `"`), checked; the position after its closing `"`.
#[inline(always)]
fn skip_string(b: &[u8], stops: &Stops, i: usize) -> At {
    match stops.plain(b, i) {
        (at, Some(b'"')) => Ok(at + 1),
        (at, _) => string_rest(b, stops, at),
    }
}

/// The rest of a string from `i`, a byte that is not its closing `"` (an escape, most
/// often): out of the skipper's loop, so that its call to [`escape`] costs the plain strings
/// nothing.
#[cold]
#[inline(never)]
fn string_rest(b: &[u8], stops: &Stops, mut i: usize) -> At {
    loop {
        let (at, c) = stops.plain(b, i);
        i = at;
        match c {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => i = escape(b, i + 1)?.1,
            Some(_) => return stop(i, Why::Control),
            None => return stop(i, Why::Unterminated),
        }
    }
}

/// The escape from `i` (after a `\`): the character it stands for, and the position after it.
fn escape(b: &[u8], i: usize) -> Result<(char, usize), Stop> {
    let c = match b.get(i) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => return unicode(b, i + 1),
        _ => {
            return Err(Stop {
                at: i,
                why: Why::Escape,
            })
        }
    };
    Ok((c, i + 1))
}

/// The four hex digits from `i` (after `\u`), and a low surrogate's escape after a high one.
fn unicode(b: &[u8], i: usize) -> Result<(char, usize), Stop> {
    let (unit, i) = hex4(b, i)?;
    let (code, i) = match unit {
        0xD800..=0xDBFF => {
            if b.get(i..i + 2) != Some(b"\\u") {
                return Err(Stop {
                    at: i,
                    why: Why::Lone,
                });
            }
            let (low, next) = hex4(b, i + 2)?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return Err(Stop {
                    at: i,
                    why: Why::Lone,
                });
            }
            let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
            (code, next)
        }
        0xDC00..=0xDFFF => {
            return Err(Stop {
                at: i,
                why: Why::Lone,
            })
        }
        _ => (u32::from(unit), i),
    };
    match char::from_u32(code) {
        Some(c) => Ok((c, i)),
        None => Err(Stop {
            at: i,
            why: Why::BadUnicode,
        }),
    }
}

fn hex4(b: &[u8], mut i: usize) -> Result<(u16, usize), Stop> {
    let mut v = 0u16;
    for _ in 0..4 {
        let d = match b.get(i) {
            Some(c @ b'0'..=b'9') => c - b'0',
            Some(c @ b'a'..=b'f') => c - b'a' + 10,
            Some(c @ b'A'..=b'F') => c - b'A' + 10,
            _ => {
                return Err(Stop {
                    at: i,
                    why: Why::Hex,
                })
            }
        };
        v = v << 4 | u16::from(d);
        i += 1;
    }
    Ok((v, i))
}

#[inline(always)]
fn digits(b: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// A number from `i` by RFC 8259's grammar (its value is not read, so not range-checked).
#[inline(always)]
fn number(b: &[u8], mut i: usize) -> At {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => {
            i += 1;
            if let Some(b'0'..=b'9') = b.get(i) {
                return stop(i, Why::LeadingZero);
            }
        }
        Some(b'1'..=b'9') => i = digits(b, i + 1),
        _ => return stop(i, Why::Number),
    }
    if b.get(i) == Some(&b'.') {
        let after = digits(b, i + 1);
        if after == i + 1 {
            return stop(after, Why::Fraction);
        }
        i = after;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let after = digits(b, i);
        if after == i {
            return stop(i, Why::Exponent);
        }
        i = after;
    }
    Ok(i)
}

#[inline(always)]
fn literal(b: &[u8], i: usize, word: &[u8]) -> At {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        stop(i, Why::Value)
    }
}

/// A member name and its `:` from `i` (at the name's `"`) inside a skipped object; the
/// position of the value.
#[inline(always)]
fn skip_name(b: &[u8], stops: &Stops, mut i: usize) -> At {
    // compact JSON has the name right here: whitespace only when it is not
    if b.get(i) != Some(&b'"') {
        i = ws(b, i);
        if b.get(i) != Some(&b'"') {
            return stop(i, Why::Name);
        }
    }
    let mut i = skip_string(b, stops, i + 1)?;
    if b.get(i) != Some(&b':') {
        i = ws(b, i);
        if b.get(i) != Some(&b':') {
            return stop(i, Why::Colon);
        }
    }
    // the value's whitespace is the value reader's
    Ok(i + 1)
}

/// One value from `i`, inside `level` open containers, checked and skipped; the position after
/// it. Iterative: the containers it opens are a stack of flags on the stack frame (set for an
/// object), as deep as the levels left, so the stack's own bound is the depth limit.
fn skip_value(b: &[u8], stops: &Stops, mut i: usize, level: usize) -> At {
    let mut stack = [false; MAX_LEVELS];
    let kinds = stack
        .get_mut(..MAX_LEVELS.saturating_sub(level))
        .unwrap_or_default();
    let mut open = 0usize;
    // whether the innermost open container is an object
    let mut object = false;
    loop {
        // a value starts at i (a string most often: tested before the jump table)
        let c = b.get(i);
        if c == Some(&b'"') {
            i = skip_string(b, stops, i + 1)?;
        } else {
            match c {
                Some(&c @ (b'{' | b'[')) => {
                    let Some(kind) = kinds.get_mut(open) else {
                        return stop(i, Why::Deep);
                    };
                    object = c == b'{';
                    *kind = object;
                    open += 1;
                    i = ws(b, i + 1);
                    if b.get(i) != Some(if object { &b'}' } else { &b']' }) {
                        if object {
                            i = skip_name(b, stops, i)?;
                        }
                        continue;
                    }
                    i += 1;
                    open -= 1;
                    object = open > 0 && kinds.get(open - 1) == Some(&true);
                }
                Some(b't') => i = literal(b, i, b"true")?,
                Some(b'f') => i = literal(b, i, b"false")?,
                Some(b'n') => i = literal(b, i, b"null")?,
                Some(b'-' | b'0'..=b'9') => i = number(b, i)?,
                Some(b' ' | b'\t' | b'\n' | b'\r') => {
                    i = ws(b, i);
                    continue;
                }
                _ => return stop(i, Why::Value),
            }
        }
        // after a value: close containers, or go on to the next element
        loop {
            if open == 0 {
                return Ok(i);
            }
            // compact JSON has the `,` right here: whitespace only when it is not
            let mut c = b.get(i);
            if c != Some(&b',') {
                i = ws(b, i);
                c = b.get(i);
            }
            match c {
                Some(b',') => {
                    // the whitespace after it is the name's or the value's reader's
                    i += 1;
                    if object {
                        i = skip_name(b, stops, i)?;
                    }
                    break;
                }
                Some(b'}') if object => {}
                Some(b']') if !object => {}
                _ => {
                    return stop(
                        i,
                        if object {
                            Why::ObjectNext
                        } else {
                            Why::ArrayNext
                        },
                    )
                }
            }
            i += 1;
            open -= 1;
            object = open > 0 && kinds.get(open - 1) == Some(&true);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn is_stop(c: u8) -> bool {
        c == b'"' || c == b'\\' || c < 0x20
    }

    /// The flags `stops` should give, byte by byte.
    fn stops_by_byte(eight: [u8; 8]) -> u64 {
        eight
            .iter()
            .enumerate()
            .filter(|(_, &c)| is_stop(c))
            .map(|(k, _)| 0x80u64 << (8 * k))
            .sum()
    }

    #[test]
    fn stops_flags_exactly_the_stop_bytes() {
        // every byte value at every position, among neighbours that are stops, plain, high
        // or at the edges of the tests' ranges (a borrow or carry out of one byte would show
        // as a wrong flag on the next)
        let neighbours = [
            b'a', b'"', b'\\', 0, 0x1f, 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff,
        ];
        for pos in 0..8 {
            for c in 0..=255u8 {
                for &n in &neighbours {
                    let mut eight = [n; 8];
                    eight[pos] = c;
                    let x = u64::from_le_bytes(eight);
                    assert_eq!(
                        stops(x),
                        stops_by_byte(eight),
                        "{pos} {c:#04x} among {n:#04x}"
                    );
                }
            }
        }
    }

    #[test]
    fn plain_finds_the_first_stop_from_any_start() {
        // bodies of every length to 40 with stops at a few places, read from every start:
        // the answer is the first stop byte at or after the start, or the end
        for len in 0..=40usize {
            for stop_at in [
                None,
                Some(0),
                Some(7),
                Some(8),
                Some(len / 2),
                Some(len.saturating_sub(1)),
            ] {
                let mut body = vec![b'x'; len];
                for k in [Some(3usize), stop_at].into_iter().flatten() {
                    if let Some(c) = body.get_mut(k) {
                        *c = if k == 3 { b'\\' } else { b'"' };
                    }
                }
                let stops = Stops::new(&body);
                for i in 0..=len {
                    let want = (i..len).find(|&k| is_stop(body[k]));
                    let got = stops.plain(&body, i);
                    match want {
                        Some(k) => assert_eq!(got, (k, Some(body[k])), "{len} {stop_at:?} {i}"),
                        None => assert_eq!(got, (len, None), "{len} {stop_at:?} {i}"),
                    }
                }
            }
        }
    }

    fn depth_body(levels: usize) -> String {
        // envelope (1) + params (2) + the rest in arguments
        let inner = levels - 2;
        format!(
            r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"a","arguments":{}1{}}}}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        )
    }

    #[test]
    fn depth_is_serde_jsons() {
        assert!(TOO_DEEP.contains(&format!(" {MAX_LEVELS} ")));
        for levels in [MAX_LEVELS - 1, MAX_LEVELS, MAX_LEVELS + 1, MAX_LEVELS + 2] {
            let body = depth_body(levels);
            let ours = read(&body).is_ok();
            let serde = serde_json::from_str::<serde_json::Value>(&body).is_ok();
            assert_eq!(ours, serde, "{levels} levels");
            assert_eq!(ours, levels <= MAX_LEVELS, "{levels} levels");
        }
    }

    #[test]
    fn strings_decode_like_serde_json() {
        for s in [
            r#""plain""#,
            r#""a\"b\\c\/d\be\ff\ng\rh\ti""#,
            r#""\u0041\u00e9\u20AC\ud83d\ude00 ok""#,
            "\"non-ascii: é 日本 😀, long enough to take the eight-byte path twice\"",
            r#""x\u0000y""#,
        ] {
            let want: String = serde_json::from_str(s).unwrap();
            let mut scan = Scan {
                text: s,
                b: s.as_bytes(),
                stops: Stops::new(s.as_bytes()),
                i: 1,
            };
            assert_eq!(scan.string().unwrap(), want, "{s}");
            assert_eq!(scan.i, s.len());
            assert_eq!(
                skip_string(s.as_bytes(), &Stops::new(s.as_bytes()), 1).unwrap(),
                s.len()
            );
        }
        for bad in [
            "\"a\u{1}b\"",
            r#""\ud800""#,
            r#""\udc00x""#,
            r#""\ud800\u0041""#,
            r#""\x""#,
            r#""\u12g4""#,
            r#""open"#,
        ] {
            let mut scan = Scan {
                text: bad,
                b: bad.as_bytes(),
                stops: Stops::new(bad.as_bytes()),
                i: 1,
            };
            assert!(scan.string().is_err(), "{bad}");
            assert!(
                skip_string(bad.as_bytes(), &Stops::new(bad.as_bytes()), 1).is_err(),
                "{bad}"
            );
            assert!(serde_json::from_str::<String>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_and_values_by_the_grammar() {
        let ok = [
            "0",
            "-0",
            "1.5",
            "-12e+3",
            "1E-2",
            "123456789012345678901234567890",
            "1e400",
            "true",
            "false",
            "null",
            "[]",
            "{}",
            "[1,[2,{}],{\"a\":[]}]",
            " [ 1 , 2 ] ",
            "{\"a\" : {\"a\":1,\"a\":2} }",
        ];
        let bad = [
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "tru",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "[1 2]",
            "{\"a\"}",
            "{a:1}",
            "[",
            "{\"a\":1",
            "]",
            "NaN",
            "Infinity",
            "'a'",
        ];
        for (v, want) in ok
            .iter()
            .map(|v| (v, true))
            .chain(bad.iter().map(|v| (v, false)))
        {
            let body = format!(r#"{{"jsonrpc":"2.0","method":"ping","params":{{"x":{v}}}}}"#);
            assert_eq!(read(&body).is_ok(), want, "{v}");
            // serde_json agrees on the grammar (it range-checks numbers it builds: 1e400)
            if *v != "1e400" {
                assert_eq!(
                    serde_json::from_str::<serde_json::Value>(&body).is_ok(),
                    want,
                    "{v}"
                );
            }
        }
    }
}
