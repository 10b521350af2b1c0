//! Which attribute of a Cedar request's context does not fit the pack's schema.
//!
//! Cedar refuses such a request with the whole context in its message and no attribute
//! named. custody's denial names the first attribute at fault (`context.request.blocked` is
//! missing, `context.request.level` is a string where the schema declares `Long`, …), found
//! by walking the context against the action's declared context type in the schema's JSON
//! form. This only explains a refusal Cedar already made; it never decides one.
//!
//! The same walk checks, at load, that each action's declared context can hold the record
//! custody builds (its fields and their types): a schema that cannot would refuse every call.

use serde_json::{Map, Value};

/// The first place where `context` departs from `action`'s declared context type, if this
/// walk can tell (entity and extension types, and anything it does not know, are left to
/// Cedar).
pub fn context_mismatch(schema: &Value, action: &str, context: &Value) -> Option<String> {
    mismatch(schema, action, context, None)
}

fn mismatch(schema: &Value, action: &str, context: &Value, ignore: Option<&str>) -> Option<String> {
    let namespaces = schema.as_object()?;
    let (ns, declared) = namespaces.iter().find_map(|(ns, n)| {
        let applies = n.get("actions")?.get(action)?.get("appliesTo")?;
        Some((ns.as_str(), applies.get("context")))
    })?;
    let empty = Value::Object(Map::from_iter([
        ("type".to_owned(), Value::from("Record")),
        ("attributes".to_owned(), Value::Object(Map::new())),
    ]));
    let walk = Walk { schema, ns, ignore };
    walk.value(context, declared.unwrap_or(&empty), "context", 0)
}

struct Walk<'a> {
    schema: &'a Value,
    ns: &'a str,
    /// A path left out of the walk, declared or not (the caller's `context.request` when the
    /// load-time check looks at custody's own fields).
    ignore: Option<&'a str>,
}

/// Where custody's own context (every field but the caller's `request`) does not fit the
/// context that `action` declares: the field and why, or `None` when it fits or when the walk
/// cannot tell.
pub fn custody_context_mismatch(schema: &Value, action: &str) -> Option<String> {
    let sample = serde_json::json!({
        "origin": "a.example|user:alice", "origin_domain": "a.example", "depth": 1,
        "actors": ["spiffe://a.example/agent"], "domains": ["a.example"],
        "scopes": ["read"], "txn": "", "cross_domain": false, "peer": "",
    });
    // the caller's part is the caller's: only custody's own fields are checked here
    mismatch(schema, action, &sample, Some("context.request"))
}

/// The actions the schema declares, with their namespace's name.
pub fn schema_actions(schema: &Value) -> Vec<String> {
    let Some(namespaces) = schema.as_object() else {
        return Vec::new();
    };
    namespaces
        .values()
        .filter_map(|n| n.get("actions")?.as_object())
        .flat_map(|a| a.keys().cloned())
        .collect()
}

/// Type references followed at most this deep (a schema's common types cannot recurse, but
/// the walk does not rely on it).
const MAX_LEVELS: usize = 32;

impl Walk<'_> {
    /// A named type: a common type of the action's namespace or the empty one, else a
    /// primitive's name as the JSON form writes it.
    fn resolve<'t>(&'t self, name: &'t str) -> Result<&'t Value, &'t str> {
        let common = |ns: &str| self.schema.get(ns)?.get("commonTypes")?.get(name);
        common(self.ns).or_else(|| common("")).ok_or(name)
    }

    fn value(&self, v: &Value, ty: &Value, path: &str, level: usize) -> Option<String> {
        if level > MAX_LEVELS {
            return None;
        }
        let kind = ty.get("type")?.as_str()?;
        let named = match kind {
            "EntityOrCommon" => ty.get("name")?.as_str()?,
            "Record" => return self.record(v, ty, path, level),
            "Set" => return self.set(v, ty, path, level),
            other => other,
        };
        match self.resolve(named) {
            Ok(t) => self.value(v, t, path, level + 1),
            Err(primitive) => primitive_mismatch(v, primitive, path),
        }
    }

    fn record(&self, v: &Value, ty: &Value, path: &str, level: usize) -> Option<String> {
        let Value::Object(m) = v else {
            return Some(format!(
                "`{path}` is {} where the schema declares a record",
                kind(v)
            ));
        };
        let empty = Map::new();
        let attrs = ty
            .get("attributes")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (name, a) in attrs {
            let required = a.get("required").and_then(Value::as_bool).unwrap_or(true);
            let at = format!("{path}.{name}");
            if self.ignore == Some(at.as_str()) {
                continue;
            }
            match m.get(name) {
                None if required => {
                    return Some(format!("`{at}` is missing (the schema requires it)"))
                }
                None => {}
                Some(x) => {
                    if let Some(found) = self.value(x, a, &at, level + 1) {
                        return Some(found);
                    }
                }
            }
        }
        let open = ty.get("additionalAttributes").and_then(Value::as_bool) == Some(true);
        let ignored = |k: &str| self.ignore == Some(format!("{path}.{k}").as_str());
        match m.keys().find(|k| !attrs.contains_key(*k) && !ignored(k)) {
            Some(extra) if !open => Some(format!("`{path}.{extra}` is not declared in the schema")),
            _ => None,
        }
    }

    fn set(&self, v: &Value, ty: &Value, path: &str, level: usize) -> Option<String> {
        let Value::Array(items) = v else {
            return Some(format!(
                "`{path}` is {} where the schema declares a set",
                kind(v)
            ));
        };
        let element = ty.get("element")?;
        items
            .iter()
            .find_map(|x| self.value(x, element, &format!("{path}[]"), level + 1))
    }
}

fn primitive_mismatch(v: &Value, primitive: &str, path: &str) -> Option<String> {
    let fits = match primitive {
        "String" => v.is_string(),
        "Long" => v.is_i64(),
        "Bool" | "Boolean" => v.is_boolean(),
        // entity and extension types: Cedar's own message stands
        _ => return None,
    };
    (!fits).then(|| {
        format!(
            "`{path}` is {} where the schema declares `{primitive}`",
            kind(v)
        )
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a record",
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"": {
            "commonTypes": {"Req": {"type": "Record", "attributes": {
                "blocked": {"type": "EntityOrCommon", "name": "Bool"},
                "tags": {"type": "Set", "element": {"type": "EntityOrCommon", "name": "String"}},
                "note": {"type": "EntityOrCommon", "name": "String", "required": false}}}},
            "entityTypes": {},
            "actions": {"read": {"appliesTo": {"context": {"type": "Record", "attributes": {
                "request": {"type": "EntityOrCommon", "name": "Req"}}}}}}
        }})
    }

    #[test]
    fn custody_fields_must_fit() {
        let s = schema();
        // `read` declares only `request`: custody's fields are not declared
        assert_eq!(
            custody_context_mismatch(&s, "read").unwrap(),
            "`context.origin` is not declared in the schema"
        );
        assert_eq!(schema_actions(&s), ["read"]);
    }

    #[test]
    fn names_the_first_attribute_at_fault() {
        let s = schema();
        let check = |c: Value| context_mismatch(&s, "read", &c);
        assert_eq!(
            check(json!({"request": {"blocked": true, "tags": []}})),
            None
        );
        assert_eq!(
            check(json!({"request": {"tags": []}})).unwrap(),
            "`context.request.blocked` is missing (the schema requires it)"
        );
        assert_eq!(
            check(json!({"request": {"blocked": "yes", "tags": []}})).unwrap(),
            "`context.request.blocked` is a string where the schema declares `Bool`"
        );
        assert_eq!(
            check(json!({"request": {"blocked": true, "tags": [1]}})).unwrap(),
            "`context.request.tags[]` is a number where the schema declares `String`"
        );
        assert_eq!(
            check(json!({"request": {"blocked": true, "tags": [], "x": 1}})).unwrap(),
            "`context.request.x` is not declared in the schema"
        );
        assert_eq!(
            check(json!({"request": {"blocked": true, "tags": [], "note": "n"}})),
            None
        );
        assert_eq!(context_mismatch(&s, "write", &json!({})), None);
    }
}
