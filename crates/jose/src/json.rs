//! Strict JSON: UTF-8, no duplicate member names at any depth, nesting capped.
//!
//! `serde_json::Value` keeps the last of two duplicate keys without a word (serde-rs/json#1112),
//! so this parser walks the document itself through a seeded visitor, refusing the first
//! duplicate and the first container deeper than the cap before building anything below it.

use std::cell::Cell;
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
