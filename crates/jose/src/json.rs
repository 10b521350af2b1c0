//! Strict JSON: UTF-8, no duplicate member names at any depth, nesting capped.
//!
//! `serde_json::Value` keeps the last of two duplicate keys without a word (serde-rs/json#1112),
//! so this parser walks the document itself through a seeded visitor, refusing the first
//! duplicate and the first container deeper than the cap before building anything below it.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Value};

/// Why a JSON text was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonError {
    /// Not JSON (or not UTF-8): the parser's message.
    Syntax(String),
    /// A member name appears twice in one object.
    DuplicateKey(String),
    /// Containers nest deeper than the cap (the top-level container is level 1).
    TooDeep(usize),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax(m) => write!(f, "invalid JSON: {m}"),
            JsonError::DuplicateKey(k) => write!(f, "duplicate key `{k}`"),
            JsonError::TooDeep(n) => write!(f, "JSON nests deeper than {n} levels"),
        }
    }
}

impl std::error::Error for JsonError {}

#[derive(Clone)]
enum Fault {
    Duplicate(String),
    TooDeep,
}

/// Parses `bytes` as one JSON value with no duplicate keys and at most `max_depth` levels.
pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let fault = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = Seed {
        level: 0,
        max: max_depth,
        fault: &fault,
    };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => Err(match fault.take() {
            Some(Fault::Duplicate(k)) => JsonError::DuplicateKey(k),
            Some(Fault::TooDeep) => JsonError::TooDeep(max_depth),
            None => JsonError::Syntax(e.to_string()),
        }),
    }
}

/// Parses a JSON object (the form every JOSE header, claim set and key set takes).
pub fn parse_object(bytes: &[u8], max_depth: usize) -> Result<Map<String, Value>, JsonError> {
    match parse(bytes, max_depth)? {
        Value::Object(m) => Ok(m),
        _ => Err(JsonError::Syntax("expected a JSON object".into())),
    }
}

/// A JSON object's members, read for quick lookups: each member a caller's `slot` function
/// places (a name it returns `Some(i)` for, `i < N`) found through its slot, every other by
/// its name. A string written without escapes is kept as the text it is in `'p` (the
/// object's own bytes), and built as a [`Value`] only if asked for as one. What
/// [`crate::decode_members`] gives for a token's claims.
#[derive(Clone, Debug)]
pub struct Members<'p, const N: usize> {
    /// For each slot, 1 + the index in `entries` of its member, or 0.
    known: [u32; N],
    /// Every member, in document order.
    entries: Vec<Member<'p>>,
    /// The values of the members that are not a text.
    values: Vec<Value>,
    slot: fn(&str) -> Option<usize>,
}

/// One member: its name, and its text (a string without escapes) or where its value is.
/// Small, so that a claim set's members fit one small allocation.
#[derive(Clone, Debug)]
struct Member<'p> {
    name: Cow<'p, str>,
    /// A string's text, or (`object`) an object's text as the quick reader checked it.
    text: Option<&'p str>,
    object: bool,
    /// 1 + the index of the value in `values`, or 0 for a text.
    value: u32,
    /// A text's value, built when it is asked for as a value.
    made: OnceCell<Box<Value>>,
}

impl<'p, const N: usize> Members<'p, N> {
    pub(crate) fn new(slot: fn(&str) -> Option<usize>, capacity: usize) -> Self {
        Members {
            known: [0; N],
            entries: Vec::with_capacity(capacity),
            values: Vec::new(),
            slot,
        }
    }

    /// The slot `name` goes in, if it has one.
    fn slot_of(&self, name: &str) -> Option<usize> {
        (self.slot)(name).filter(|&i| i < N)
    }

    /// The member named `name`.
    fn entry(&self, name: &str) -> Option<&Member<'p>> {
        match self.slot_of(name) {
            Some(i) => self.placed(i),
            None => self.entries.iter().find(|e| e.name == name),
        }
    }

    /// The member in slot `i`.
    fn placed(&self, i: usize) -> Option<&Member<'p>> {
        let at = self.known.get(i).copied().unwrap_or(0);
        let at = usize::try_from(at).ok()?.checked_sub(1)?;
        self.entries.get(at)
    }

    /// Adds member `name`; `false` (nothing added) if the object already has one so named.
    pub(crate) fn add(
        &mut self,
        name: Cow<'p, str>,
        text: Option<&'p str>,
        value: Option<Value>,
    ) -> bool {
        let at = u32::try_from(self.entries.len() + 1).unwrap_or(u32::MAX);
        // the slot is found once: a placed name is taken if its slot is, any other if an
        // earlier member has it
        match self.slot_of(&name).map(|i| self.known.get_mut(i)) {
            Some(Some(cell)) if *cell == 0 => *cell = at,
            Some(_) => return false,
            None if self.entries.iter().any(|e| e.name == name) => return false,
            None => {}
        }
        let value = match value {
            Some(v) => {
                self.values.push(v);
                u32::try_from(self.values.len()).unwrap_or(0)
            }
            None => 0,
        };
        self.entries.push(Member {
            name,
            text,
            object: false,
            value,
            made: OnceCell::new(),
        });
        true
    }

    /// Adds member `name`, an object the quick reader checked, kept as its text; `false`
    /// (nothing added) if the object already has a member so named.
    pub(crate) fn add_object(&mut self, name: Cow<'p, str>, text: &'p str) -> bool {
        let added = self.add(name, Some(text), None);
        if let (true, Some(e)) = (added, self.entries.last_mut()) {
            e.object = true;
        }
        added
    }

    /// The object's members as `parse_object` gives them, placed.
    pub(crate) fn from_map(map: Map<String, Value>, slot: fn(&str) -> Option<usize>) -> Self {
        let mut out = Members::new(slot, map.len());
        for (name, v) in map {
            out.add(Cow::Owned(name), None, Some(v));
        }
        out
    }

    /// The value of member `e` that is not a text.
    fn value_of(&self, e: &Member<'p>) -> Option<&Value> {
        let at = usize::try_from(e.value).ok()?.checked_sub(1)?;
        self.values.get(at)
    }

    /// Member `name`, as `Map::get` on the same object gives it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.value(self.entry(name)?)
    }

    /// Member `name` read as a string without building a value: `Some(Ok(text))` for a
    /// string, `Some(Err(value))` for any other value, `None` when absent.
    pub fn get_str(&self, name: &str) -> Option<Result<&str, &Value>> {
        self.str_of(self.entry(name)?)
    }

    /// [`Members::get`] for a member the slot function places in slot `slot` (what it returns
    /// for the member's name), without asking it again: for a caller that knows the slot of
    /// the name it looks up. A slot the slot function never returns finds nothing.
    pub fn get_placed(&self, slot: usize) -> Option<&Value> {
        self.value(self.placed(slot)?)
    }

    /// [`Members::get_str`] for the member in slot `slot`, as [`Members::get_placed`].
    pub fn get_str_placed(&self, slot: usize) -> Option<Result<&str, &Value>> {
        self.str_of(self.placed(slot)?)
    }

    /// Member `e`'s value (built, for a text, the first time it is asked for).
    fn value<'s>(&'s self, e: &'s Member<'p>) -> Option<&'s Value> {
        let Some(t) = e.text else {
            return self.value_of(e);
        };
        let made = e.made.get_or_init(|| {
            Box::new(match e.object {
                // the quick reader checked the text: it builds (`Null` is never reached)
                true => crate::quick::object_value(t).unwrap_or(Value::Null),
                false => Value::String(t.to_owned()),
            })
        });
        Some(made)
    }

    /// Member `e` read as [`Members::get_str`] reads it.
    fn str_of<'s>(&'s self, e: &'s Member<'p>) -> Option<Result<&'s str, &'s Value>> {
        if let (Some(t), false) = (e.text, e.object) {
            return Some(Ok(t));
        }
        self.value(e).map(|v| match v {
            Value::String(s) => Ok(s.as_str()),
            other => Err(other),
        })
    }

    /// Member `name` as [`Peek`] shows it, nothing built.
    pub fn peek(&self, name: &str) -> Option<Peek<'_>> {
        self.peek_of(self.entry(name)?)
    }

    /// [`Members::peek`] for the member in slot `slot`, as [`Members::get_placed`].
    pub fn peek_placed(&self, slot: usize) -> Option<Peek<'_>> {
        self.peek_of(self.placed(slot)?)
    }

    fn peek_of<'s>(&'s self, e: &'s Member<'p>) -> Option<Peek<'s>> {
        Some(match (e.text, e.object) {
            (Some(t), false) => Peek::Str(t),
            (Some(t), true) => Peek::Object(Object(ObjectRepr::Text(t))),
            (None, _) => Peek::of(self.value_of(e)?),
        })
    }

    /// How many members the object has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the object has no members.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The members' values that are containers (a string or scalar holds no object), in
    /// document order: what the width of an object's widest object is found in. An object
    /// kept as its text is not among them: the quick reader that kept it refused any object
    /// in it wider than its limit.
    pub fn containers(&self) -> impl Iterator<Item = &Value> {
        self.values.iter().filter(|v| v.is_object() || v.is_array())
    }
}

/// A claim's value as read, nothing built for it: what [`Members::peek`] gives, for a reader
/// that only looks (at strings, and at objects' members).
#[derive(Clone, Copy, Debug)]
pub enum Peek<'v> {
    /// A string.
    Str(&'v str),
    /// An object.
    Object(Object<'v>),
    /// Any other value.
    Other,
}

impl<'v> Peek<'v> {
    /// `v` as a [`Peek`].
    pub fn of(v: &'v Value) -> Self {
        match v {
            Value::String(s) => Peek::Str(s),
            Value::Object(m) => Peek::Object(Object(ObjectRepr::Map(m))),
            _ => Peek::Other,
        }
    }
}

/// An object as [`Peek`] shows it: its members, in document order (an object built into a
/// `serde_json` map: in the map's order).
#[derive(Clone, Copy, Debug)]
pub struct Object<'v>(ObjectRepr<'v>);

#[derive(Clone, Copy, Debug)]
enum ObjectRepr<'v> {
    Map(&'v Map<String, Value>),
    /// The text of an object the quick reader checked.
    Text(&'v str),
}

impl<'v> Object<'v> {
    /// The members, in [`Object`]'s order. A text that does not read back as the quick reader
    /// checked it (never) ends with one member named `""` that is no string and no object,
    /// so that a reader refusing unknown members refuses it.
    pub fn members(&self) -> ObjectMembers<'v> {
        ObjectMembers(match self.0 {
            ObjectRepr::Map(m) => MembersRepr::Map(m.iter()),
            ObjectRepr::Text(t) => MembersRepr::Text(crate::quick::TextMembers::new(t)),
        })
    }
}

/// The iterator of [`Object::members`].
#[derive(Clone, Debug)]
pub struct ObjectMembers<'v>(MembersRepr<'v>);

#[derive(Clone, Debug)]
enum MembersRepr<'v> {
    Map(serde_json::map::Iter<'v>),
    Text(crate::quick::TextMembers<'v>),
}

impl<'v> Iterator for ObjectMembers<'v> {
    type Item = (&'v str, Peek<'v>);

    fn next(&mut self) -> Option<Self::Item> {
        use crate::quick::TextValue;
        match &mut self.0 {
            MembersRepr::Map(it) => it.next().map(|(k, v)| (k.as_str(), Peek::of(v))),
            MembersRepr::Text(it) => Some(match it.next_member()? {
                Some((name, TextValue::Str(s))) => (name, Peek::Str(s)),
                Some((name, TextValue::Object(t))) => {
                    (name, Peek::Object(Object(ObjectRepr::Text(t))))
                }
                Some((name, TextValue::Other)) => (name, Peek::Other),
                None => ("", Peek::Other),
            }),
        }
    }
}

/// `bytes` as a claim set read into [`Members`] by the quick reader ([`crate::quick::claims`]),
/// as [`members`] reads it, or `None` (the text is not in the quick form, or is not valid, or
/// has more than [`FAST_MEMBERS`] members).
pub(crate) fn quick_members<const N: usize>(
    bytes: &[u8],
    max_depth: usize,
    max_members: usize,
    slot: fn(&str) -> Option<usize>,
) -> Option<Members<'_, N>> {
    use crate::quick::Item;
    let mut out = Members::new(slot, 12);
    crate::quick::claims(bytes, max_depth, max_members, |name, item| {
        // past `max_members` the quick reader itself refuses
        if out.len() >= FAST_MEMBERS {
            return None;
        }
        let added = match item {
            Item::Text(t) => out.add(Cow::Borrowed(name), Some(t), None),
            Item::Object(t) => out.add_object(Cow::Borrowed(name), t),
            Item::Value(v) => out.add(Cow::Borrowed(name), None, Some(v)),
        };
        added.then_some(())
    })?;
    Some(out)
}

/// The most members [`members`] reads itself: a name is looked for among those before it, so a
/// wider object (a limit raised past its default) is left to `parse_object`'s hashing.
pub(crate) const FAST_MEMBERS: usize = 64;

/// `bytes` as [`parse_object`] reads them, into [`Members`], when that is quick and sure: the
/// object's own member names written without escapes, at most `max_members` of them (and at
/// most [`FAST_MEMBERS`]). `None`
/// for anything else, valid or not (a name with an escape, a repeated name, any error): the
/// caller then reads the text with [`parse_object`], whose answer is the one that counts.
/// Below the top level the values are read by the same visitor as [`parse`]'s.
pub(crate) fn members<const N: usize>(
    bytes: &[u8],
    max_depth: usize,
    max_members: usize,
    slot: fn(&str) -> Option<usize>,
) -> Option<Members<'_, N>> {
    let fault = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let top = TopLevel {
        seed: Seed {
            level: 0,
            max: max_depth,
            fault: &fault,
        },
        max_members,
        slot,
    };
    let m = de.deserialize_map(top).ok()?;
    de.end().ok()?;
    Some(m)
}

/// The visitor of [`members`]: the top-level object, its values through [`Seed`].
struct TopLevel<'f, const N: usize> {
    seed: Seed<'f>,
    max_members: usize,
    slot: fn(&str) -> Option<usize>,
}

impl<'de, const N: usize> Visitor<'de> for TopLevel<'_, N> {
    type Value = Members<'de, N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de, N>, A::Error> {
        let inner = self.seed.enter()?;
        // a claim set: room for a typical one up front
        let mut out = Members::new(self.slot, 12);
        out.values.reserve(4);
        // `&str` is borrowed from the text: a name with an escape is an error here, and read
        // by `parse_object`
        while let Some(name) = map.next_key::<&'de str>()? {
            if out.len() >= self.max_members.min(FAST_MEMBERS) {
                return Err(serde::de::Error::custom("too many members"));
            }
            let added = match map.next_value_seed(PlacedSeed(inner.copy()))? {
                Placed::Text(t) => out.add(Cow::Borrowed(name), Some(t), None),
                Placed::Value(v) => out.add(Cow::Borrowed(name), None, Some(v)),
            };
            if !added {
                return Err(serde::de::Error::custom("repeated"));
            }
        }
        Ok(out)
    }
}

/// A placed member's value: a string without escapes as its text, anything else as
/// [`Seed`] reads it.
enum Placed<'de> {
    Text(&'de str),
    Value(Value),
}

/// Reads a placed member's value ([`Placed`]) with the rules of the [`Seed`] it holds.
struct PlacedSeed<'f>(Seed<'f>);

impl<'de> DeserializeSeed<'de> for PlacedSeed<'_> {
    type Value = Placed<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Placed<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PlacedSeed<'_> {
    type Value = Placed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Placed<'de>, E> {
        Ok(Placed::Text(v))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Placed<'de>, E> {
        self.0.visit_bool(v).map(Placed::Value)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Placed<'de>, E> {
        self.0.visit_i64(v).map(Placed::Value)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Placed<'de>, E> {
        self.0.visit_u64(v).map(Placed::Value)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Placed<'de>, E> {
        self.0.visit_f64(v).map(Placed::Value)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Placed<'de>, E> {
        self.0.visit_str(v).map(Placed::Value)
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Placed<'de>, E> {
        self.0.visit_string(v).map(Placed::Value)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Placed<'de>, E> {
        self.0.visit_unit().map(Placed::Value)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Placed<'de>, A::Error> {
        self.0.visit_seq(seq).map(Placed::Value)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Placed<'de>, A::Error> {
        self.0.visit_map(map).map(Placed::Value)
    }
}

struct Seed<'f> {
    level: usize,
    max: usize,
    fault: &'f Cell<Option<Fault>>,
}

impl Seed<'_> {
    fn enter<E: serde::de::Error>(&self) -> Result<Seed<'_>, E> {
        let level = self.level + 1;
        if level > self.max {
            self.fault.set(Some(Fault::TooDeep));
            return Err(E::custom("too deep"));
        }
        Ok(Seed {
            level,
            max: self.max,
            fault: self.fault,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner.copy())? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        // a top-level object is a header, a claim set or a request: room for a typical one up
        // front instead of three regrowths (capacity changes nothing else)
        let mut out = match self.level {
            0 => Map::with_capacity(16),
            _ => Map::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            // one lookup per member: the slot is found (or the duplicate refused) before the
            // value is read
            match out.entry(key) {
                Entry::Occupied(o) => {
                    self.fault.set(Some(Fault::Duplicate(o.key().clone())));
                    return Err(serde::de::Error::custom("duplicate key"));
                }
                Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(inner.copy())?);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

impl Seed<'_> {
    fn copy(&self) -> Seed<'_> {
        Seed {
            level: self.level,
            max: self.max,
            fault: self.fault,
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_json() {
        let v = parse(br#"{"a":[1,{"b":true}],"c":null,"d":"x"}"#, 16).unwrap();
        assert_eq!(v["a"][1]["b"], Value::Bool(true));
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        assert_eq!(
            parse(br#"{"a":1,"a":2}"#, 16),
            Err(JsonError::DuplicateKey("a".into()))
        );
        assert_eq!(
            parse(br#"{"x":[{"act":{"sub":"a","sub":"b"}}]}"#, 16),
            Err(JsonError::DuplicateKey("sub".into()))
        );
        // Escapes that decode to the same name are the same name.
        assert_eq!(
            parse(br#"{"a":1,"\u0061":2}"#, 16),
            Err(JsonError::DuplicateKey("a".into()))
        );
    }

    #[test]
    fn depth_boundary() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(nest(16).as_bytes(), 16).is_ok());
        assert_eq!(parse(nest(17).as_bytes(), 16), Err(JsonError::TooDeep(16)));
        // Far past serde_json's own recursion limit: still a clean error.
        assert_eq!(
            parse(nest(100_000).as_bytes(), 16),
            Err(JsonError::TooDeep(16))
        );
    }

    #[test]
    fn refuses_trailing_data_and_bad_utf8() {
        assert!(matches!(parse(b"{} {}", 16), Err(JsonError::Syntax(_))));
        assert!(matches!(parse(b"\"\xff\"", 16), Err(JsonError::Syntax(_))));
        assert!(matches!(
            parse(br#""\ud800""#, 16),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(parse_object(b"[]", 16), Err(JsonError::Syntax(_))));
    }
}
