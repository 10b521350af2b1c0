//! The quick reader: a token's JSON (a header, a claim set) read byte by byte when it is in the
//! form nearly every token takes, so that the common token is read without serde's machinery.
//!
//! It gives an answer only when it is sure the answer is [`crate::json::parse_object`]'s (and
//! the plain-header reader's): the text valid UTF-8, names and strings without escapes or
//! control characters, numbers that are integers of at most 18 digits (never `-0`), no name
//! twice in one object, no object wider than the caller's limit, nesting within the depth cap.
//! For anything else, valid or not, it gives `None`, and the caller reads the text with the
//! general reader, whose answer (and error message) is the one that counts. Its grammar is
//! serde_json's: the same four whitespace bytes, no trailing commas, nothing after the value.

use serde_json::{Map, Value};

/// The deepest nesting read here: a deeper document (a depth limit raised that far) is left to
/// the general reader, so that this reader's recursion stays shallow.
const MAX_LEVELS: usize = 32;

/// A value read at the top level of a claim set: a string without escapes as the text it is,
/// an object checked but not built as the text it is, anything else as a value.
pub(crate) enum Item<'p> {
    Text(&'p str),
    Object(&'p str),
    Value(Value),
}

/// The most members an object checked without being built ([`Quick::skip_object`]) may have:
/// its names are kept on the stack to find a repeated one. A wider object leaves the claim set
/// to the next reader.
const SKIPPED_MEMBERS: usize = 16;

/// The reader's place in the text.
#[derive(Clone, Debug)]
struct Quick<'p> {
    text: &'p str,
    at: usize,
    /// Containers may nest to this level (the top-level object is level 1).
    max_depth: usize,
    /// Members an object may have.
    max_members: usize,
}

impl<'p> Quick<'p> {
    fn new(text: &'p str, max_depth: usize, max_members: usize) -> Self {
        Quick {
            text,
            at: 0,
            max_depth: max_depth.min(MAX_LEVELS),
            max_members,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn next_token(&mut self) -> Option<u8> {
        self.ws();
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    /// Whitespace, then `c`, consumed.
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next_token()? == c).then_some(())
    }

    /// Whitespace, then the end of the text.
    fn end(&mut self) -> Option<()> {
        self.ws();
        (self.at == self.text.len()).then_some(())
    }

    /// A string without escapes or control characters, its opening quote next (after
    /// whitespace): its text.
    fn string(&mut self) -> Option<&'p str> {
        self.expect(b'"')?;
        let start = self.at;
        let end = plain_end(self.text.as_bytes(), start);
        if self.text.as_bytes().get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        // the quotes are ASCII, so the slice is on character boundaries
        self.text.get(start..end)
    }

    /// A literal (`true`, `false`, `null`) whose first byte is next.
    fn literal(&mut self, word: &str, v: Value) -> Option<Value> {
        let rest = self.text.as_bytes().get(self.at..)?;
        if !rest.starts_with(word.as_bytes()) {
            return None;
        }
        self.at += word.len();
        Some(v)
    }

    /// An integer of at most 18 digits, other than `-0` (serde_json reads `-0` as a float).
    fn integer(&mut self) -> Option<Value> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let digits = self.text.as_bytes().get(self.at..)?;
        let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
        // a leading zero is `0` alone; more than 18 digits might not fit
        if n == 0 || n > 18 || (n > 1 && digits.first() == Some(&b'0')) {
            return None;
        }
        // a fraction or an exponent makes a float: the general reader's to read
        if let Some(b'.' | b'e' | b'E') = digits.get(n) {
            return None;
        }
        let magnitude = digits
            .get(..n)?
            .iter()
            .fold(0u64, |acc, c| acc * 10 + u64::from(c - b'0'));
        self.at += n;
        match negative {
            false => Some(Value::from(magnitude)),
            true if magnitude == 0 => None,
            // at most 18 digits: within i64
            true => Some(Value::from(-i64::try_from(magnitude).ok()?)),
        }
    }

    /// A value, its first byte next (after whitespace); `level` is the level of the container
    /// it is in.
    fn value(&mut self, level: usize) -> Option<Value> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(|s| Value::String(s.to_owned())),
            b'{' => self.object(level + 1),
            b'[' => self.array(level + 1),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Null),
            _ => self.integer(),
        }
    }

    /// A top-level member's value: a string as its text, an object as its text (checked as
    /// [`Quick::object`] checks it, built only if asked for as a value).
    fn item(&mut self, level: usize) -> Option<Item<'p>> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(Item::Text),
            b'{' => self.object_text(level + 1).map(Item::Object),
            _ => self.value(level).map(Item::Value),
        }
    }

    /// An object at `level`, its `{` next, checked as [`Quick::object`] checks it: its text.
    fn object_text(&mut self, level: usize) -> Option<&'p str> {
        let start = self.at;
        self.skip_object(level)?;
        self.text.get(start..self.at)
    }

    /// A value as [`Quick::value`] reads it, checked the same way, an object or a string in it
    /// not built.
    fn skip_value(&mut self, level: usize) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.skip_object(level + 1),
            _ => self.value(level).map(drop),
        }
    }

    /// [`Quick::object`] without the object: the same text accepted (up to
    /// [`SKIPPED_MEMBERS`] members), nothing built.
    fn skip_object(&mut self, level: usize) -> Option<()> {
        let mut names = [""; SKIPPED_MEMBERS];
        let mut count = 0;
        self.members_of(level, |q, name| {
            q.skip_value(level)?;
            // a repeated name (which the general reader refuses, with its own message)
            if names.get(..count)?.contains(&name) {
                return None;
            }
            *names.get_mut(count)? = name;
            count += 1;
            Some(())
        })
    }

    /// An object at `level`, its `{` next.
    fn object(&mut self, level: usize) -> Option<Value> {
        let mut map = Map::new();
        self.members_of(level, |q, name| {
            let v = q.value(level)?;
            // a repeated name (which the general reader refuses, with its own message)
            map.insert(name.to_owned(), v).is_none().then_some(())
        })?;
        Some(Value::Object(map))
    }

    /// The one loop over an object's members, the object at `level` and its `{` next: for
    /// each member its name, then `each` reads the value after the `:` (and may refuse the
    /// member, `None`); the `,` between members, the closing `}` and the limit of
    /// `max_members` members (the one place it is kept) are read here.
    fn members_of(
        &mut self,
        level: usize,
        mut each: impl FnMut(&mut Self, &'p str) -> Option<()>,
    ) -> Option<()> {
        if level > self.max_depth {
            return None;
        }
        self.at += 1;
        if self.closes_at_once() {
            return Some(());
        }
        let mut count = 0usize;
        loop {
            count += 1;
            if count > self.max_members {
                return None;
            }
            let name = self.string()?;
            self.expect(b':')?;
            each(self, name)?;
            if !self.more()? {
                return Some(());
            }
        }
    }

    /// An array at `level`, its `[` next.
    fn array(&mut self, level: usize) -> Option<Value> {
        if level > self.max_depth {
            return None;
        }
        self.at += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(Value::Array(items));
        }
        loop {
            items.push(self.value(level)?);
            match self.next_token()? {
                b',' => {}
                b']' => return Some(Value::Array(items)),
                _ => return None,
            }
        }
    }

    /// The top-level object's `{`, when a top-level container is allowed at all.
    fn open_top(&mut self) -> Option<()> {
        self.ws();
        (self.peek()? == b'{').then_some(())
    }

    /// After a member: `Some(true)` at a `,`, `Some(false)` at the closing `}`.
    fn more(&mut self) -> Option<bool> {
        match self.next_token()? {
            b',' => Some(true),
            b'}' => Some(false),
            _ => None,
        }
    }

    /// Whether the object just opened is empty (its `}` then consumed).
    fn closes_at_once(&mut self) -> bool {
        self.ws();
        let empty = self.peek() == Some(b'}');
        if empty {
            self.at += 1;
        }
        empty
    }
}

/// The index of the first byte at or after `from` that ends a plain run of a string (`"`, `\`
/// or a control character), or the length of `b`: the first byte any of three masks flags.
fn plain_end(b: &[u8], from: usize) -> usize {
    use crate::swar::{below, first, ONES};
    first(
        b,
        from,
        |x| {
            below(x ^ (ONES * u64::from(b'"')), 1)
                | below(x ^ (ONES * u64::from(b'\\')), 1)
                | below(x, 0x20)
        },
        |c| c == b'"' || c == b'\\' || c < 0x20,
    )
}

/// `bytes` as a claim set, each member given to `each` in order (which may refuse it,
/// `None`), as [`crate::json::parse_object`] reads it, or `None` (the text is not in the quick
/// form, or is not valid): an object of at most `max_members` members, no object in it wider,
/// no deeper than `max_depth`. A string is given as its text, an object as its text (checked,
/// not built), anything else as a value; a repeated top-level name is `each`'s to refuse.
pub(crate) fn claims<'p>(
    bytes: &'p [u8],
    max_depth: usize,
    max_members: usize,
    mut each: impl FnMut(&'p str, Item<'p>) -> Option<()>,
) -> Option<()> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut q = Quick::new(text, max_depth, max_members);
    q.open_top()?;
    q.members_of(1, |q, name| each(name, q.item(1)?))?;
    q.end()
}

/// An object's text that [`Quick::object_text`] checked, as the value [`Quick::object`] builds
/// from it. `None` only for a text it did not check.
pub(crate) fn object_value(text: &str) -> Option<Value> {
    let mut q = Quick::new(text, MAX_LEVELS, usize::MAX);
    q.ws();
    let v = q.object(1)?;
    q.end()?;
    Some(v)
}

/// The members of an object's text that [`Quick::object_text`] checked, one at a time, in
/// document order: each name, and its value as a string's text, an object's text, or neither.
#[derive(Clone, Debug)]
pub(crate) struct TextMembers<'p> {
    q: Quick<'p>,
    /// The `{` read.
    open: bool,
    done: bool,
}

/// A member's value as [`TextMembers`] gives it.
pub(crate) enum TextValue<'p> {
    Str(&'p str),
    Object(&'p str),
    Other,
}

impl<'p> TextMembers<'p> {
    pub(crate) fn new(text: &'p str) -> Self {
        TextMembers {
            q: Quick::new(text, MAX_LEVELS, usize::MAX),
            open: false,
            done: false,
        }
    }

    /// The next member; `Some(None)` for a text that does not read back as a checked one did
    /// (never, for a text [`Quick::object_text`] gave), after which there are none.
    pub(crate) fn next_member(&mut self) -> Option<Option<(&'p str, TextValue<'p>)>> {
        if self.done {
            return None;
        }
        let next = self.read();
        if !matches!(next, Some(Some(_))) {
            self.done = true;
        }
        next
    }

    fn read(&mut self) -> Option<Option<(&'p str, TextValue<'p>)>> {
        let q = &mut self.q;
        let more = match self.open {
            false => {
                self.open = true;
                if q.expect(b'{').is_none() {
                    return Some(None);
                }
                !q.closes_at_once()
            }
            true => match q.more() {
                Some(more) => more,
                None => return Some(None),
            },
        };
        if !more {
            return None;
        }
        Some(q.text_member())
    }
}

impl<'p> Quick<'p> {
    /// A member of an object whose text [`Quick::object_text`] checked, as [`TextMembers`]
    /// gives it.
    fn text_member(&mut self) -> Option<(&'p str, TextValue<'p>)> {
        let name = self.string()?;
        self.expect(b':')?;
        self.ws();
        let v = match self.peek()? {
            b'"' => TextValue::Str(self.string()?),
            b'{' => TextValue::Object(self.object_text(1)?),
            _ => {
                self.skip_value(1)?;
                TextValue::Other
            }
        };
        Some((name, v))
    }
}

/// `bytes` as an object whose every value is a string without escapes, at most `max_members`
/// of them and no name twice: `each` is given each member in order and may refuse it (`None`).
pub(crate) fn strings<'p>(
    bytes: &'p [u8],
    max_depth: usize,
    max_members: usize,
    mut each: impl FnMut(&'p str, &'p str) -> Option<()>,
) -> Option<()> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut q = Quick::new(text, max_depth, max_members);
    q.open_top()?;
    q.members_of(1, |q, name| each(name, q.string()?))?;
    q.end()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    #[test]
    fn plain_end_finds_the_first_stop_from_any_start() {
        let stops = [b'"', b'\\', 0x00, 0x1f, b'\n'];
        let others = [
            b'a',
            b' ',
            0x21,
            0x5b,
            0x5d,
            0x7f,
            0x80,
            0xff,
            0x20,
            0x01 ^ 0x20,
        ];
        for len in 0..24 {
            for stop_at in 0..=len {
                for &stop in &stops {
                    for &other in &others {
                        let mut b = vec![other; len];
                        if let Some(c) = b.get_mut(stop_at) {
                            *c = stop;
                        }
                        for from in 0..=len {
                            let want = (from..len)
                                .find(|&i| matches!(b[i], b'"' | b'\\' | 0..=0x1f))
                                .unwrap_or(len);
                            assert_eq!(plain_end(&b, from), want, "{b:?} from {from}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn integers_it_reads_and_leaves() {
        let read = |s: &str| Quick::new(s, 16, 64).integer();
        assert_eq!(read("0"), Some(Value::from(0u64)));
        assert_eq!(read("-12"), Some(Value::from(-12i64)));
        assert_eq!(
            read("999999999999999999"),
            Some(Value::from(999_999_999_999_999_999u64))
        );
        for left in [
            "-0",
            "01",
            "1.5",
            "1e3",
            "1E3",
            "-",
            "",
            "1234567890123456789",
            "+1",
        ] {
            assert_eq!(read(left), None, "{left}");
        }
    }
}
