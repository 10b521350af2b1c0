//! A verified token's strings in one allocation ([`Texts`]): `sub`, `jti`, `txn`, what the
//! token cache needs of a token it remembers (the token's exact text, its header's `kid` and
//! `typ`), the `aud` items and the scope items, one after another in one `String`, with where
//! each ends. A token the cache remembers keeps its strings for as long as it stays there, and
//! every allocation it keeps is one the allocator cannot hand to the next decision: one for all
//! of them instead of one a string and one a list (BENCHMARKS.md, 2026-12-06 fifth session).

/// Pieces whose ends are kept inline; a token with more `aud` and scope items than this
/// leaves room for keeps its ends in one allocation of their own.
const INLINE: usize = 12;

/// The pieces before the lists: `sub`, `jti`, `txn`, then the remembered token's text, `kid`
/// and `typ`.
const FIXED: usize = 6;

/// Where each piece ends in the text.
#[derive(Clone, Debug)]
enum Ends {
    Inline { len: u8, ends: [usize; INLINE] },
    Heap(Vec<usize>),
}

impl Default for Ends {
    fn default() -> Self {
        Ends::Inline {
            len: 0,
            ends: [0; INLINE],
        }
    }
}

impl Ends {
    fn push(&mut self, end: usize) {
        match self {
            Ends::Inline { len, ends } => match ends.get_mut(usize::from(*len)) {
                Some(slot) => {
                    *slot = end;
                    *len += 1;
                }
                None => {
                    let mut v = Vec::with_capacity(2 * INLINE);
                    v.extend_from_slice(ends);
                    v.push(end);
                    *self = Ends::Heap(v);
                }
            },
            Ends::Heap(v) => v.push(end),
        }
    }

    fn as_slice(&self) -> &[usize] {
        match self {
            Ends::Inline { len, ends } => ends.get(..usize::from(*len)).unwrap_or_default(),
            Ends::Heap(v) => v,
        }
    }
}

/// `sub`, `jti`, `txn`, what the cache keeps (the token's text, `kid`, `typ`; empty unless
/// the token is to be remembered), the `aud` items and the scope items of one token, in one
/// `String`.
#[derive(Clone, Default)]
pub(crate) struct Texts {
    text: String,
    ends: Ends,
    /// How many `aud` items there are (the scope items are the rest).
    aud: usize,
    jti: bool,
    txn: bool,
    typ: bool,
}

/// What the token cache keeps of a token it remembers, besides its parsed form: its exact text
/// (what a hit compares) and its header's `kid` and `typ`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CacheParts<'a> {
    pub raw: &'a str,
    pub kid: &'a str,
    pub typ: Option<&'a str>,
}

impl Texts {
    /// The token's strings, the lists in the order given, and what the cache keeps of it when
    /// it is to be remembered.
    pub fn new<'s>(
        sub: &str,
        jti: Option<&str>,
        txn: Option<&str>,
        remembered: Option<CacheParts<'_>>,
        aud: impl IntoIterator<Item = &'s str> + Clone,
        scope: impl IntoIterator<Item = &'s str> + Clone,
    ) -> Self {
        let (raw, kid, typ) = remembered.map_or(("", "", None), |r| (r.raw, r.kid, r.typ));
        let fixed = [Some(sub), jti, txn, Some(raw), Some(kid), typ];
        let len = |i: &mut dyn Iterator<Item = &'s str>| i.map(str::len).sum::<usize>();
        let capacity = fixed.iter().flatten().map(|p| p.len()).sum::<usize>()
            + len(&mut aud.clone().into_iter())
            + len(&mut scope.clone().into_iter());
        let mut t = Texts {
            text: String::with_capacity(capacity),
            jti: jti.is_some(),
            txn: txn.is_some(),
            typ: typ.is_some(),
            ..Texts::default()
        };
        for piece in fixed {
            t.push(piece.unwrap_or_default());
        }
        for a in aud {
            t.push(a);
            t.aud += 1;
        }
        for s in scope {
            t.push(s);
        }
        t
    }

    fn push(&mut self, piece: &str) {
        self.text.push_str(piece);
        self.ends.push(self.text.len());
    }

    /// Piece `i`.
    fn piece(&self, i: usize) -> &str {
        Strs::new(&self.text, self.ends.as_slice(), i, i + 1)
            .next()
            .unwrap_or_default()
    }

    pub fn sub(&self) -> &str {
        self.piece(0)
    }

    pub fn jti(&self) -> Option<&str> {
        self.jti.then(|| self.piece(1))
    }

    pub fn txn(&self) -> Option<&str> {
        self.txn.then(|| self.piece(2))
    }

    /// The token's exact text when it was built to be remembered (else empty).
    pub fn raw(&self) -> &str {
        self.piece(3)
    }

    /// The header's `kid` when the token was built to be remembered (else empty).
    pub fn kid(&self) -> &str {
        self.piece(4)
    }

    /// The header's `typ` when the token was built to be remembered and had one.
    pub fn typ(&self) -> Option<&str> {
        self.typ.then(|| self.piece(5))
    }

    pub fn aud(&self) -> Strs<'_> {
        Strs::new(&self.text, self.ends.as_slice(), FIXED, FIXED + self.aud)
    }

    pub fn scope(&self) -> Strs<'_> {
        let ends = self.ends.as_slice();
        Strs::new(&self.text, ends, FIXED + self.aud, ends.len())
    }

    /// The heap this owns: the text and, past the inline room, the ends.
    pub fn heap_parts(&self) -> [usize; 2] {
        let ends = match &self.ends {
            Ends::Inline { .. } => 0,
            Ends::Heap(v) => v.capacity() * std::mem::size_of::<usize>(),
        };
        [self.text.capacity(), ends]
    }
}

/// Shown as the fields it stands for (what `VerifiedToken`'s `Debug` showed before they shared
/// one allocation); not the remembered token's text, `kid` or `typ`.
impl std::fmt::Debug for Texts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Texts")
            .field("sub", &self.sub())
            .field("aud", &self.aud())
            .field("scope", &self.scope())
            .field("txn", &self.txn())
            .field("jti", &self.jti())
            .finish()
    }
}

/// A token's `aud` or scope items, in order: an iterator over string slices that can also be
/// asked whether it holds an item.
#[derive(Clone, Copy)]
pub struct Strs<'t> {
    text: &'t str,
    ends: &'t [usize],
    /// The next item's index in `ends`, and one past the last's.
    next: usize,
    stop: usize,
}

impl<'t> Strs<'t> {
    fn new(text: &'t str, ends: &'t [usize], next: usize, stop: usize) -> Self {
        Strs {
            text,
            ends,
            next,
            stop: stop.min(ends.len()),
        }
    }

    /// Whether `item` is one of the items.
    pub fn contains(self, item: &str) -> bool {
        self.into_iter().any(|s| s == item)
    }

    /// Whether there are no items.
    pub fn is_empty(self) -> bool {
        self.next >= self.stop
    }

    /// The items as owned strings.
    pub fn to_vec(self) -> Vec<String> {
        self.map(str::to_owned).collect()
    }
}

impl<'t> Iterator for Strs<'t> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        if self.next >= self.stop {
            return None;
        }
        let start = match self.next.checked_sub(1) {
            Some(before) => *self.ends.get(before)?,
            None => 0,
        };
        let end = *self.ends.get(self.next)?;
        self.next += 1;
        self.text.get(start..end)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.stop.saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Strs<'_> {}

/// Shown as the list of its items.
impl std::fmt::Debug for Strs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

impl PartialEq for Strs<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.zip(*other).all(|(a, b)| a == b)
    }
}

impl Eq for Strs<'_> {}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    /// Every piece reads back as given, whatever the list lengths (across the inline room),
    /// empty pieces and absent `jti`/`txn` included.
    #[test]
    fn pieces_read_back_as_given() {
        let words: Vec<String> = (0..20)
            .map(|i| "x".repeat(i % 3) + &i.to_string())
            .collect();
        for n_aud in 0..16 {
            for n_scope in 0..16 {
                for (jti, txn) in [(None, None), (Some(""), Some("t-1")), (Some("j"), None)] {
                    let aud: Vec<&str> = words.iter().take(n_aud).map(String::as_str).collect();
                    let scope: Vec<&str> = words
                        .iter()
                        .rev()
                        .take(n_scope)
                        .map(String::as_str)
                        .collect();
                    let sub = if n_aud % 2 == 0 { "user:carol" } else { "" };
                    let remembered = (n_scope % 2 == 1).then_some(CacheParts {
                        raw: "h.p.s",
                        kid: "k-1",
                        typ: jti.map(|_| "at+jwt"),
                    });
                    let t = Texts::new(sub, jti, txn, remembered, aud.clone(), scope.clone());
                    assert_eq!(t.sub(), sub);
                    assert_eq!(t.jti(), jti);
                    assert_eq!(t.txn(), txn);
                    assert_eq!(t.raw(), remembered.map_or("", |r| r.raw));
                    assert_eq!(t.kid(), remembered.map_or("", |r| r.kid));
                    assert_eq!(t.typ(), remembered.and_then(|r| r.typ));
                    assert_eq!(t.aud().collect::<Vec<_>>(), aud);
                    assert_eq!(t.scope().collect::<Vec<_>>(), scope);
                    assert_eq!(t.aud().len(), n_aud);
                    assert_eq!(t.scope().is_empty(), n_scope == 0);
                    for a in &aud {
                        assert!(t.aud().contains(a));
                    }
                    assert!(!t.aud().contains("absent"));
                    let c = t.clone();
                    assert!(c.aud() == t.aud() && c.scope() == t.scope());
                    assert_eq!(format!("{:?}", t.aud()), format!("{aud:?}"));
                }
            }
        }
    }

    /// Lists of different items, or of the same items in another order, are not equal.
    #[test]
    fn lists_compare_item_by_item() {
        let a = Texts::new("s", None, None, None, ["a", "bc"], ["x"]);
        let b = Texts::new("s", None, None, None, ["ab", "c"], ["x"]);
        let c = Texts::new("s", None, None, None, ["bc", "a"], ["x"]);
        assert!(a.aud() != b.aud());
        assert!(a.aud() != c.aud());
        assert!(a.scope() == b.scope());
    }
}
