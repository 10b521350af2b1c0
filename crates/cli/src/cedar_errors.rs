//! Cedar policies that can fail to evaluate at request time.
//!
//! Cedar skips a policy whose evaluation errors, so an erroring `forbid` used to let the call
//! through; the verifier now denies any call in which a policy errored (`policy_error`). This
//! analysis, run by `custody check`, warns for every policy that **can** error, naming each
//! expression that can fail and why. It is sound (a policy it does not warn about never errors
//! on a request custody builds) but not complete: a warning may be a false alarm.
//!
//! It reads each policy's JSON form (Cedar's EST) with a small type inference. What custody
//! knows before any request:
//!
//! | expression | type |
//! |---|---|
//! | literals, `[…]`, `{…}` | their own (a Long literal is an exact range) |
//! | `principal`, `action`, `resource` | entity (possibly absent from the pack's entities) |
//! | `context` | custody's record: `origin`, `origin_domain`, `txn`, `peer` String; `depth` Long in 0..=16 (a request has at most 16 tokens and `max_depth` ≤ 8); `actors`, `domains`, `scopes` Set<String>; `cross_domain` Bool; `request` a record of unknown attributes |
//! | `context.request.*`, `e.attr` of an entity, `e.getTag(t)` | unknown: may be missing, any type |
//! | a comparison, `==`, `has`, `in`, `like`, `is`, … | Bool; `+ - *`: a Long range |
//!
//! Without a schema, an expression can fail when:
//!
//! | operator | fails unless |
//! |---|---|
//! | `e.a` | `e` is a record that certainly has `a`, or a `has` test on `e` for `a` is true where it runs |
//! | `e.a` on an entity, `e.getTag(t)` | a `has` (`hasTag`) test on the same expression guards it (the entity may not exist, or lack the attribute) |
//! | `&&`, `\|\|`, `!`, `if` condition, a `when`/`unless` body | the operand is a Bool |
//! | `<`, `<=`, `>`, `>=` | both are Longs (or both datetimes, or both durations) |
//! | `+`, `-`, `*`, unary `-` | both are Longs and the result of their ranges fits in 64 bits (so `context.depth + 1` is safe) |
//! | `.contains`, `.containsAll`, `.containsAny`, `.isEmpty` | the receiver (and the argument of the last two) is a set |
//! | `in`, `is … in` | the left is an entity, the right an entity or a set of entities |
//! | `is`, `.hasTag`, `.getTag` | the left is an entity (and the tag a String) |
//! | `has` | the left is a record or an entity (each step of `e has a.b`) |
//! | `like` | the left is a String |
//! | extension functions | the arguments have the right types, and the function cannot fail on them: `decimal`, `ip`, `datetime`, `duration` (parsing), `offset`, `durationSince`, `toDate` (overflow) always can |
//! | `==`, `!=`, literals, variables, `[…]`, `{…}` | never fail by themselves |
//!
//! A `has` (or `hasTag`) test guards an expression where it is known true: on the right of an
//! `&&` whose left requires it, in the `then` branch of an `if` whose condition requires it, in
//! later `when` clauses (Cedar joins a policy's clauses with `&&`, in order); a known-false test
//! (`!(e has a) || …`, `else`, earlier `unless` clauses) guards the same way.
//!
//! With a `*.cedarschema`, the pack is strictly validated at load and every request is validated
//! against the schema before Cedar runs (`invalid_request`), so no type error and no missing
//! record attribute can occur: only attribute and tag reads on anything not known to be a record
//! (it may be an entity missing from the pack's entities), arithmetic overflow and the failing
//! extension functions are reported.
//!
//! An expression with no variable (`1 + 2`, `decimal("1.5")`, `Team::"a".size`) always evaluates
//! the same way against the pack's entities: when the rules above flag it, Cedar evaluates it
//! once and only a real failure is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr as _;

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Entities, EntityUid, Policy, PolicySet, Request,
};
use custody_policy::PolicyPack;
use serde_json::{json, Value};

/// How deep the analysis follows nested expressions; below that, an expression is reported as
/// possibly failing (sound). Cedar's parser bounds nesting too.
const MAX_EXPR_DEPTH: usize = 128;

/// `context.depth`: the presented chain's actor count, at most `max_depth` (≤ 8) once Cedar
/// runs; the analysis assumes no more than 16 (the tokens a request may hold).
const DEPTH_RANGE: (i128, i128) = (0, 16);

const LONG_MIN: i128 = i64::MIN as i128;
const LONG_MAX: i128 = i64::MAX as i128;

/// What a missing operand reads as.
static NULL: Value = Value::Null;

/// How many failing expressions one warning names before "and N more".
const MAX_NAMED: usize = 6;

/// The warnings for every policy of the pack that can fail to evaluate.
pub(crate) fn warnings(pack: &PolicyPack) -> Vec<String> {
    let Some(cedar) = &pack.cedar else {
        return Vec::new();
    };
    let typed = cedar.schema.is_some();
    let mut policies: Vec<&Policy> = cedar.policies.policies().collect();
    policies.sort_by_key(|p| p.id().to_string());
    policies
        .into_iter()
        .filter_map(|p| {
            let found = policy_failures(p, typed, &cedar.entities);
            (!found.is_empty()).then(|| {
                format!(
                    "policy `{}` can fail to evaluate (a failing policy now denies the call with `policy_error`): {}",
                    p.id(),
                    found.join("; ")
                )
            })
        })
        .collect()
}

/// Why `policy` can fail to evaluate, one sentence per expression; empty when it cannot.
/// `typed`: the pack has a schema (policies strictly validated, requests validated).
pub(crate) fn policy_failures(policy: &Policy, typed: bool, entities: &Entities) -> Vec<String> {
    let est = match policy.to_json() {
        Ok(est) => est,
        Err(e) => {
            return vec![format!(
                "its JSON form cannot be read ({e}), so it is not analysed"
            )]
        }
    };
    let mut a = Analyser {
        typed,
        entities,
        issues: Vec::new(),
        in_closed: false,
    };
    let mut facts = Facts::new();
    let conditions = est.get("conditions").and_then(Value::as_array);
    for clause in conditions.into_iter().flatten() {
        let Some(body) = clause.get("body") else {
            continue;
        };
        let ty = a.infer(body, &facts, 0);
        a.need(body, &ty, Want::Bool);
        let known = if clause.get("kind").and_then(Value::as_str) == Some("unless") {
            falsehoods(body)
        } else {
            truths(body)
        };
        facts.extend(known);
    }
    let sentences: Vec<String> = group(&a.issues).iter().map(|g| g.sentence(typed)).collect();
    if sentences.len() > MAX_NAMED {
        let more = sentences.len() - MAX_NAMED;
        let mut named: Vec<String> = sentences.into_iter().take(MAX_NAMED).collect();
        named.push(format!("and {more} more"));
        return named;
    }
    sentences
}

/// What the analysis knows about a value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ty {
    Bool,
    /// A Long within this range.
    Long(i128, i128),
    Str,
    Entity,
    Set(Box<Ty>),
    /// A record with these attributes, all present.
    Record(BTreeMap<String, Ty>),
    /// A record whose attributes are not known (`context.request`).
    Open,
    /// An extension value: `decimal`, `ipaddr`, `datetime` or `duration`.
    Ext(&'static str),
    /// Anything (without a schema); of the right type but unknown (with one).
    Any,
}

/// The type an operator needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Bool,
    Long,
    Str,
    Entity,
    Set,
    /// An entity or a set of entities (`in`).
    EntityOrSet,
    /// A record or an entity (`.`, `has`).
    RecordOrEntity,
    Ext(&'static str),
}

impl Want {
    fn met_by(self, ty: &Ty) -> bool {
        match (self, ty) {
            (Want::Bool, Ty::Bool)
            | (Want::Long, Ty::Long(..))
            | (Want::Str, Ty::Str)
            | (Want::Entity | Want::EntityOrSet, Ty::Entity)
            | (Want::Set, Ty::Set(_))
            | (Want::RecordOrEntity, Ty::Record(_) | Ty::Open | Ty::Entity) => true,
            (Want::EntityOrSet, Ty::Set(elem)) => **elem == Ty::Entity,
            (Want::Ext(w), Ty::Ext(t)) => w == *t,
            _ => false,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Want::Bool => "a Bool",
            Want::Long => "a Long",
            Want::Str => "a String",
            Want::Entity => "an entity",
            Want::Set => "a set",
            Want::EntityOrSet => "an entity or a set of entities",
            Want::RecordOrEntity => "a record or an entity",
            Want::Ext("decimal") => "a decimal",
            Want::Ext("ipaddr") => "an ipaddr",
            Want::Ext("datetime") => "a datetime",
            Want::Ext(_) => "a duration",
        }
    }
}

/// An extension function's result.
#[derive(Clone, Copy)]
enum Ret {
    Bool,
    Long,
    Ext(&'static str),
}

/// An extension function or method (the receiver is the first argument).
struct ExtFn {
    name: &'static str,
    args: &'static [Want],
    ret: Ret,
    /// Whether it can fail on arguments of the right types.
    fails: Option<&'static str>,
}

const DEC: Want = Want::Ext("decimal");
const IP: Want = Want::Ext("ipaddr");
const DT: Want = Want::Ext("datetime");
const DUR: Want = Want::Ext("duration");
const PARSE: Option<&str> = Some("can fail to parse a value known only at request time");
const OVERFLOW: Option<&str> = Some("can overflow");

/// Cedar's extension functions and what they need.
#[rustfmt::skip]
const EXT_FNS: &[ExtFn] = &[
    ExtFn { name: "decimal", args: &[Want::Str], ret: Ret::Ext("decimal"), fails: PARSE },
    ExtFn { name: "ip", args: &[Want::Str], ret: Ret::Ext("ipaddr"), fails: PARSE },
    ExtFn { name: "datetime", args: &[Want::Str], ret: Ret::Ext("datetime"), fails: PARSE },
    ExtFn { name: "duration", args: &[Want::Str], ret: Ret::Ext("duration"), fails: PARSE },
    ExtFn { name: "lessThan", args: &[DEC, DEC], ret: Ret::Bool, fails: None },
    ExtFn { name: "lessThanOrEqual", args: &[DEC, DEC], ret: Ret::Bool, fails: None },
    ExtFn { name: "greaterThan", args: &[DEC, DEC], ret: Ret::Bool, fails: None },
    ExtFn { name: "greaterThanOrEqual", args: &[DEC, DEC], ret: Ret::Bool, fails: None },
    ExtFn { name: "isIpv4", args: &[IP], ret: Ret::Bool, fails: None },
    ExtFn { name: "isIpv6", args: &[IP], ret: Ret::Bool, fails: None },
    ExtFn { name: "isLoopback", args: &[IP], ret: Ret::Bool, fails: None },
    ExtFn { name: "isMulticast", args: &[IP], ret: Ret::Bool, fails: None },
    ExtFn { name: "isInRange", args: &[IP, IP], ret: Ret::Bool, fails: None },
    ExtFn { name: "offset", args: &[DT, DUR], ret: Ret::Ext("datetime"), fails: OVERFLOW },
    ExtFn { name: "durationSince", args: &[DT, DT], ret: Ret::Ext("duration"), fails: OVERFLOW },
    ExtFn { name: "toDate", args: &[DT], ret: Ret::Ext("datetime"), fails: OVERFLOW },
    ExtFn { name: "toTime", args: &[DT], ret: Ret::Ext("duration"), fails: None },
    ExtFn { name: "toMilliseconds", args: &[DUR], ret: Ret::Long, fails: None },
    ExtFn { name: "toSeconds", args: &[DUR], ret: Ret::Long, fails: None },
    ExtFn { name: "toMinutes", args: &[DUR], ret: Ret::Long, fails: None },
    ExtFn { name: "toHours", args: &[DUR], ret: Ret::Long, fails: None },
    ExtFn { name: "toDays", args: &[DUR], ret: Ret::Long, fails: None },
];

/// Functions written `f(x)`; every other extension function is a method `x.f(…)`.
const EXT_CONSTRUCTORS: &[&str] = &["decimal", "ip", "datetime", "duration"];

/// Guards known to hold: `has` tests (`<expr JSON>\0<attr>`) and `hasTag` tests
/// (`<expr JSON>\u{1}<tag JSON>`).
type Facts = BTreeSet<String>;

fn attr_key(left: &Value, attr: &str) -> String {
    format!("{left}\u{0}{attr}")
}

fn tag_key(left: &Value, tag: &Value) -> String {
    format!("{left}\u{1}{tag}")
}

/// One reason an expression can fail.
#[derive(Debug)]
struct Issue {
    expr: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// An attribute or tag read that may find nothing; `guard` is the test that would guard it.
    Missing {
        guard: String,
        entity: bool,
    },
    /// An operand that may not have the type the operator needs.
    NotA(&'static str),
    Overflow,
    /// Anything else, said in full.
    Fails(String),
}

struct Analyser<'a> {
    typed: bool,
    entities: &'a Entities,
    issues: Vec<Issue>,
    /// Inside a variable-free expression that Cedar will evaluate as a whole.
    in_closed: bool,
}

impl Analyser<'_> {
    fn push(&mut self, e: &Value, kind: Kind) {
        self.issues.push(Issue {
            expr: show(e),
            kind,
        });
    }

    /// Without a schema: reports `e` unless `ty` is what the operator needs.
    fn need(&mut self, e: &Value, ty: &Ty, want: Want) {
        if !self.typed && !want.met_by(ty) {
            self.push(e, Kind::NotA(want.describe()));
        }
    }

    fn operand(&mut self, e: &Value, facts: &Facts, depth: usize, want: Want) -> Ty {
        let ty = self.infer(e, facts, depth + 1);
        self.need(e, &ty, want);
        ty
    }

    /// The type of `e`, recording every way it can fail.
    fn infer(&mut self, e: &Value, facts: &Facts, depth: usize) -> Ty {
        if depth > MAX_EXPR_DEPTH {
            self.push(
                e,
                Kind::Fails("is nested too deeply to be analysed".to_owned()),
            );
            return Ty::Any;
        }
        if !self.in_closed && e.get("Value").is_none() && is_closed(e, 0) {
            return self.closed(e, facts, depth);
        }
        let Some((op, body)) = single(e) else {
            self.push(
                e,
                Kind::Fails("is not understood by the analysis".to_owned()),
            );
            return Ty::Any;
        };
        let side = |k: &str| body.get(k).unwrap_or(&NULL);
        match op {
            "Value" => literal(body),
            "Var" => match body.as_str() {
                Some("principal" | "action" | "resource") => Ty::Entity,
                Some("context") => context_type(),
                _ => {
                    self.push(e, Kind::Fails("is not a Cedar variable".to_owned()));
                    Ty::Any
                }
            },
            "Slot" => Ty::Entity,
            "!" => {
                self.operand(side("arg"), facts, depth, Want::Bool);
                Ty::Bool
            }
            "neg" => {
                let ty = self.operand(side("arg"), facts, depth, Want::Long);
                let (lo, hi) = range(&ty);
                self.long(e, -hi, -lo)
            }
            "==" | "!=" => {
                self.infer(side("left"), facts, depth + 1);
                self.infer(side("right"), facts, depth + 1);
                Ty::Bool
            }
            "&&" | "||" => {
                let left = side("left");
                self.operand(left, facts, depth, Want::Bool);
                let mut more = facts.clone();
                more.extend(if op == "&&" {
                    truths(left)
                } else {
                    falsehoods(left)
                });
                self.operand(side("right"), &more, depth, Want::Bool);
                Ty::Bool
            }
            "<" | "<=" | ">" | ">=" => {
                let l = self.infer(side("left"), facts, depth + 1);
                let r = self.infer(side("right"), facts, depth + 1);
                let want = match (&l, &r) {
                    (Ty::Ext(k @ ("datetime" | "duration")), _)
                    | (_, Ty::Ext(k @ ("datetime" | "duration"))) => Want::Ext(k),
                    _ => Want::Long,
                };
                self.need(side("left"), &l, want);
                self.need(side("right"), &r, want);
                Ty::Bool
            }
            "+" | "-" | "*" => {
                let l = self.operand(side("left"), facts, depth, Want::Long);
                let r = self.operand(side("right"), facts, depth, Want::Long);
                let ((a, b), (c, d)) = (range(&l), range(&r));
                match op {
                    "+" => self.long(e, a + c, b + d),
                    "-" => self.long(e, a - d, b - c),
                    _ => {
                        let p = [a * c, a * d, b * c, b * d];
                        let lo = p.iter().copied().min().unwrap_or(LONG_MIN);
                        let hi = p.iter().copied().max().unwrap_or(LONG_MAX);
                        self.long(e, lo, hi)
                    }
                }
            }
            "in" => {
                self.operand(side("left"), facts, depth, Want::Entity);
                self.operand(side("right"), facts, depth, Want::EntityOrSet);
                Ty::Bool
            }
            "contains" => {
                self.operand(side("left"), facts, depth, Want::Set);
                self.infer(side("right"), facts, depth + 1);
                Ty::Bool
            }
            "containsAll" | "containsAny" => {
                self.operand(side("left"), facts, depth, Want::Set);
                self.operand(side("right"), facts, depth, Want::Set);
                Ty::Bool
            }
            "isEmpty" => {
                self.operand(side("arg"), facts, depth, Want::Set);
                Ty::Bool
            }
            "hasTag" | "getTag" => {
                let (left, tag) = (side("left"), side("right"));
                self.operand(left, facts, depth, Want::Entity);
                self.operand(tag, facts, depth, Want::Str);
                if op == "hasTag" {
                    return Ty::Bool;
                }
                if !facts.contains(&tag_key(left, tag)) {
                    let guard = format!("{}.hasTag({})", atom(left), show(tag));
                    self.push(
                        e,
                        Kind::Missing {
                            guard,
                            entity: true,
                        },
                    );
                }
                Ty::Any
            }
            "." => self.attr(e, body, facts, depth),
            "has" => self.has(body, facts, depth),
            "like" => {
                self.operand(side("left"), facts, depth, Want::Str);
                Ty::Bool
            }
            "is" => {
                self.operand(side("left"), facts, depth, Want::Entity);
                if let Some(within) = body.get("in") {
                    self.operand(within, facts, depth, Want::EntityOrSet);
                }
                Ty::Bool
            }
            "if-then-else" => {
                let cond = side("if");
                self.operand(cond, facts, depth, Want::Bool);
                let mut yes = facts.clone();
                yes.extend(truths(cond));
                let mut no = facts.clone();
                no.extend(falsehoods(cond));
                let t = self.infer(side("then"), &yes, depth + 1);
                let f = self.infer(side("else"), &no, depth + 1);
                join(t, f)
            }
            "Set" => {
                let items = body.as_array().map_or(&[][..], Vec::as_slice);
                let types: Vec<Ty> = items
                    .iter()
                    .map(|i| self.infer(i, facts, depth + 1))
                    .collect();
                Ty::Set(Box::new(join_all(types)))
            }
            "Record" => {
                let mut fields = BTreeMap::new();
                for (k, v) in body.as_object().into_iter().flatten() {
                    fields.insert(k.clone(), self.infer(v, facts, depth + 1));
                }
                Ty::Record(fields)
            }
            name => match EXT_FNS.iter().find(|f| f.name == name) {
                Some(f) => self.ext_call(e, f, body, facts, depth),
                None => {
                    self.push(
                        e,
                        Kind::Fails("is not understood by the analysis".to_owned()),
                    );
                    Ty::Any
                }
            },
        }
    }

    /// A Long in `lo..=hi`, or an overflow.
    fn long(&mut self, e: &Value, lo: i128, hi: i128) -> Ty {
        if lo < LONG_MIN || hi > LONG_MAX {
            self.push(e, Kind::Overflow);
            Ty::Long(LONG_MIN, LONG_MAX)
        } else {
            Ty::Long(lo, hi)
        }
    }

    fn attr(&mut self, e: &Value, body: &Value, facts: &Facts, depth: usize) -> Ty {
        let left = body.get("left").unwrap_or(&NULL);
        let attr = body.get("attr").and_then(Value::as_str).unwrap_or("");
        let ty = self.infer(left, facts, depth + 1);
        let guarded = facts.contains(&attr_key(left, attr));
        let guard = format!("{} has {}", atom(left), name(attr));
        match ty {
            Ty::Record(fields) => match fields.get(attr) {
                Some(t) => t.clone(),
                None => {
                    if !guarded {
                        let why = if is_var(left, "context") {
                            "is not part of the context custody builds: reading it always fails"
                        } else {
                            "reads an attribute the record does not have"
                        };
                        self.push(e, Kind::Fails(why.to_owned()));
                    }
                    Ty::Any
                }
            },
            Ty::Open => {
                if !guarded && !self.typed {
                    self.push(
                        e,
                        Kind::Missing {
                            guard,
                            entity: false,
                        },
                    );
                }
                Ty::Any
            }
            Ty::Entity | Ty::Any => {
                if ty == Ty::Any {
                    self.need(left, &ty, Want::RecordOrEntity);
                }
                if !guarded {
                    let entity = ty == Ty::Entity || self.typed;
                    self.push(e, Kind::Missing { guard, entity });
                }
                Ty::Any
            }
            other => {
                self.need(left, &other, Want::RecordOrEntity);
                Ty::Any
            }
        }
    }

    fn has(&mut self, body: &Value, facts: &Facts, depth: usize) -> Ty {
        let left = body.get("left").unwrap_or(&NULL);
        let mut ty = self.operand(left, facts, depth, Want::RecordOrEntity);
        // `e has a.b.c`: every step but the last must be a record or an entity where present.
        let path = attr_path(body);
        let mut at = left.clone();
        for attr in path.iter().take(path.len().saturating_sub(1)) {
            at = json!({".": {"left": at, "attr": attr}});
            ty = match ty {
                Ty::Record(fields) => fields.get(attr).cloned().unwrap_or(Ty::Any),
                _ => Ty::Any,
            };
            self.need(&at, &ty, Want::RecordOrEntity);
        }
        Ty::Bool
    }

    fn ext_call(&mut self, e: &Value, f: &ExtFn, body: &Value, facts: &Facts, depth: usize) -> Ty {
        let args = body.as_array().map_or(&[][..], Vec::as_slice);
        if args.len() != f.args.len() {
            self.push(
                e,
                Kind::Fails("has the wrong number of arguments".to_owned()),
            );
        }
        for (arg, want) in args.iter().zip(f.args) {
            self.operand(arg, facts, depth, *want);
        }
        if let Some(why) = f.fails {
            self.push(e, Kind::Fails(why.to_owned()));
        }
        match f.ret {
            Ret::Bool => Ty::Bool,
            Ret::Long => Ty::Long(LONG_MIN, LONG_MAX),
            Ret::Ext(k) => Ty::Ext(k),
        }
    }

    /// A variable-free expression: if the rules flag it, Cedar evaluates it once, against the
    /// pack's entities, and only a real failure is kept.
    fn closed(&mut self, e: &Value, facts: &Facts, depth: usize) -> Ty {
        let before = self.issues.len();
        self.in_closed = true;
        let ty = self.infer(e, facts, depth);
        self.in_closed = false;
        if self.issues.len() > before {
            let outcome = evaluate_closed(e, self.entities);
            self.issues.truncate(before);
            if let Err(why) = outcome {
                self.push(e, Kind::Fails(format!("always fails: {why}")));
            }
        }
        ty
    }
}

/// Evaluates a variable-free expression with Cedar; `Err` with Cedar's message if it fails.
fn evaluate_closed(e: &Value, entities: &Entities) -> Result<(), String> {
    let est = json!({
        "effect": "permit",
        "principal": {"op": "All"},
        "action": {"op": "All"},
        "resource": {"op": "All"},
        "conditions": [{"kind": "when", "body": {"==": {"left": e, "right": {"Value": true}}}}],
    });
    let policy = Policy::from_json(None, est).map_err(|e| e.to_string())?;
    let set = PolicySet::from_policies([policy]).map_err(|e| e.to_string())?;
    let uid = |t: &str| {
        EntityUid::from_str(&format!("{t}::\"custody-check\"")).map_err(|e| e.to_string())
    };
    let request = Request::new(
        uid("User")?,
        uid("Action")?,
        uid("Resource")?,
        Context::empty(),
        None,
    )
    .map_err(|e| e.to_string())?;
    let response = Authorizer::new().is_authorized(&request, &set, entities);
    let failed = match response.diagnostics().errors().next() {
        Some(AuthorizationError::PolicyEvaluationError(p)) => Err(p.inner().to_string()),
        None => Ok(()),
    };
    failed
}

/// The only member of an EST expression object.
fn single(e: &Value) -> Option<(&str, &Value)> {
    let obj = e.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.iter().next().map(|(k, v)| (k.as_str(), v))
}

fn is_var(e: &Value, name: &str) -> bool {
    e.get("Var").and_then(Value::as_str) == Some(name)
}

/// Whether `e` holds no variable (and so always evaluates the same way).
fn is_closed(e: &Value, depth: usize) -> bool {
    if depth > MAX_EXPR_DEPTH {
        return false;
    }
    match e {
        Value::Object(m) => m.iter().all(|(k, v)| {
            !matches!(k.as_str(), "Var" | "Slot" | "Unknown") && is_closed(v, depth + 1)
        }),
        Value::Array(a) => a.iter().all(|v| is_closed(v, depth + 1)),
        _ => true,
    }
}

/// The attributes a `has` tests: `"attr": "a"` or `"attr": ["a", "b"]`.
fn attr_path(body: &Value) -> Vec<String> {
    match body.get("attr") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The guards `e` being true establishes.
fn truths(e: &Value) -> Facts {
    let side = |op: &Value, k: &str| op.get(k).cloned().unwrap_or(Value::Null);
    let mut out = Facts::new();
    if let Some(has) = e.get("has") {
        let mut at = side(has, "left");
        for attr in attr_path(has) {
            out.insert(attr_key(&at, &attr));
            at = json!({".": {"left": at, "attr": attr}});
        }
    } else if let Some(t) = e.get("hasTag") {
        out.insert(tag_key(&side(t, "left"), &side(t, "right")));
    } else if let Some(and) = e.get("&&") {
        out.extend(truths(&side(and, "left")));
        out.extend(truths(&side(and, "right")));
    } else if let Some(or) = e.get("||") {
        let l = truths(&side(or, "left"));
        let r = truths(&side(or, "right"));
        out.extend(l.intersection(&r).cloned());
    } else if let Some(not) = e.get("!") {
        out.extend(falsehoods(&side(not, "arg")));
    }
    out
}

/// The guards `e` being false establishes.
fn falsehoods(e: &Value) -> Facts {
    let side = |op: &Value, k: &str| op.get(k).cloned().unwrap_or(Value::Null);
    let mut out = Facts::new();
    if let Some(or) = e.get("||") {
        out.extend(falsehoods(&side(or, "left")));
        out.extend(falsehoods(&side(or, "right")));
    } else if let Some(and) = e.get("&&") {
        let l = falsehoods(&side(and, "left"));
        let r = falsehoods(&side(and, "right"));
        out.extend(l.intersection(&r).cloned());
    } else if let Some(not) = e.get("!") {
        out.extend(truths(&side(not, "arg")));
    }
    out
}

/// custody's own context record (README "The request"; DESIGN "Chain semantics").
fn context_type() -> Ty {
    let strings = || Ty::Set(Box::new(Ty::Str));
    Ty::Record(BTreeMap::from([
        ("origin".to_owned(), Ty::Str),
        ("origin_domain".to_owned(), Ty::Str),
        ("depth".to_owned(), Ty::Long(DEPTH_RANGE.0, DEPTH_RANGE.1)),
        ("actors".to_owned(), strings()),
        ("domains".to_owned(), strings()),
        ("scopes".to_owned(), strings()),
        ("txn".to_owned(), Ty::Str),
        ("cross_domain".to_owned(), Ty::Bool),
        ("peer".to_owned(), Ty::Str),
        ("request".to_owned(), Ty::Open),
    ]))
}

/// A literal's type (`{"Value": …}`).
fn literal(v: &Value) -> Ty {
    match v {
        Value::Bool(_) => Ty::Bool,
        Value::Number(n) => n
            .as_i64()
            .map_or(Ty::Any, |n| Ty::Long(i128::from(n), i128::from(n))),
        Value::String(_) => Ty::Str,
        Value::Array(items) => Ty::Set(Box::new(join_all(items.iter().map(literal).collect()))),
        Value::Object(m) if m.contains_key("__entity") => Ty::Entity,
        Value::Object(m) if m.contains_key("__extn") || m.contains_key("__expr") => Ty::Any,
        Value::Object(m) => Ty::Record(m.iter().map(|(k, v)| (k.clone(), literal(v))).collect()),
        Value::Null => Ty::Any,
    }
}

/// A Long's range (the whole 64 bits when not known to be a Long).
fn range(ty: &Ty) -> (i128, i128) {
    match ty {
        Ty::Long(lo, hi) => (*lo, *hi),
        _ => (LONG_MIN, LONG_MAX),
    }
}

/// What a value that is one of two types is known to be.
fn join(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (Ty::Long(a, b), Ty::Long(c, d)) => Ty::Long(a.min(c), b.max(d)),
        (Ty::Set(a), Ty::Set(b)) => Ty::Set(Box::new(join(*a, *b))),
        (a, b) if a == b => a,
        _ => Ty::Any,
    }
}

fn join_all(types: Vec<Ty>) -> Ty {
    let mut it = types.into_iter();
    match it.next() {
        Some(first) => it.fold(first, join),
        None => Ty::Any,
    }
}

/// The issues grouped by expression, in order of first appearance.
#[derive(Default)]
struct Group {
    expr: String,
    missing: Option<(String, bool)>,
    types: Vec<&'static str>,
    overflow: bool,
    fails: Vec<String>,
}

fn group(issues: &[Issue]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for issue in issues {
        let at = match groups.iter().position(|g| g.expr == issue.expr) {
            Some(i) => i,
            None => {
                groups.push(Group {
                    expr: issue.expr.clone(),
                    ..Group::default()
                });
                groups.len() - 1
            }
        };
        let Some(g) = groups.get_mut(at) else {
            continue;
        };
        match &issue.kind {
            Kind::Missing { guard, entity } => {
                if g.missing.is_none() {
                    g.missing = Some((guard.clone(), *entity));
                }
            }
            Kind::NotA(t) => {
                if !g.types.contains(t) {
                    g.types.push(t);
                }
            }
            Kind::Overflow => g.overflow = true,
            Kind::Fails(why) => {
                if !g.fails.contains(why) {
                    g.fails.push(why.clone());
                }
            }
        }
    }
    groups
}

impl Group {
    fn sentence(&self, typed: bool) -> String {
        let expr = &self.expr;
        let mut parts = Vec::new();
        if self.missing.is_some() || !self.types.is_empty() {
            let types = self.types.join(" or ");
            let may = match (&self.missing, types.is_empty()) {
                (Some(_), true) => "be missing".to_owned(),
                (Some(_), false) => format!("be missing or not {types}"),
                (None, _) => format!("not be {types}"),
            };
            let cause = match &self.missing {
                _ if !typed => " (no schema declares it)",
                Some((_, true)) => " (its entity may be absent from the pack's entities)",
                _ => "",
            };
            let mut fixes = Vec::new();
            if let Some((guard, _)) = &self.missing {
                fixes.push(format!("guard it with `{guard}`"));
            }
            if !typed {
                fixes.push("declare it in a schema".to_owned());
            }
            parts.push(format!("`{expr}` may {may}{cause}; {}", fixes.join(" or ")));
        }
        if self.overflow {
            parts.push(format!(
                "`{expr}` can overflow (its operands' ranges are not known to keep it within 64 bits)"
            ));
        }
        for why in &self.fails {
            parts.push(format!("`{expr}` {why}"));
        }
        parts.join("; ")
    }
}

/// An attribute name as Cedar writes it after `.` or `has`.
fn name(attr: &str) -> String {
    let ident = attr
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        attr.to_owned()
    } else {
        Value::String(attr.to_owned()).to_string()
    }
}

/// `e`, parenthesised unless it is a primary expression.
fn atom(e: &Value) -> String {
    let primary = single(e).is_some_and(|(op, _)| {
        matches!(
            op,
            "Value"
                | "Var"
                | "Slot"
                | "."
                | "Set"
                | "Record"
                | "isEmpty"
                | "getTag"
                | "hasTag"
                | "contains"
                | "containsAll"
                | "containsAny"
        ) || EXT_FNS.iter().any(|f| f.name == op)
    });
    if primary {
        show(e)
    } else {
        format!("({})", show(e))
    }
}

fn show_literal(v: &Value) -> String {
    match v {
        Value::Object(m) => match m.get("__entity") {
            Some(uid) => format!(
                "{}::{}",
                uid.get("type").and_then(Value::as_str).unwrap_or("?"),
                uid.get("id").cloned().unwrap_or(Value::Null)
            ),
            None => {
                let fields: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{}: {}", name(k), show_literal(v)))
                    .collect();
                format!("{{{}}}", fields.join(", "))
            }
        },
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(show_literal).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// An EST expression written back in Cedar syntax, for messages.
fn show(e: &Value) -> String {
    let Some((op, body)) = single(e) else {
        return "…".to_owned();
    };
    let side = |k: &str| body.get(k).unwrap_or(&NULL);
    match op {
        "Value" => show_literal(body),
        "Var" | "Slot" => body.as_str().unwrap_or("?").to_owned(),
        "!" => format!("!{}", atom(side("arg"))),
        "neg" => format!("-{}", atom(side("arg"))),
        "==" | "!=" | "<" | "<=" | ">" | ">=" | "&&" | "||" | "+" | "-" | "*" | "in" => {
            format!("{} {op} {}", atom(side("left")), atom(side("right")))
        }
        "contains" | "containsAll" | "containsAny" | "getTag" | "hasTag" => {
            format!("{}.{op}({})", atom(side("left")), show(side("right")))
        }
        "isEmpty" => format!("{}.isEmpty()", atom(side("arg"))),
        "." => {
            let attr = side("attr").as_str().unwrap_or("");
            let n = name(attr);
            if n == attr {
                format!("{}.{attr}", atom(side("left")))
            } else {
                format!("{}[{n}]", atom(side("left")))
            }
        }
        "has" => {
            let path: Vec<String> = attr_path(body).iter().map(|a| name(a)).collect();
            format!("{} has {}", atom(side("left")), path.join("."))
        }
        "like" => {
            let pattern: String = side("pattern")
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| match p.get("Literal").and_then(Value::as_str) {
                    Some(s) => s.replace('*', "\\*"),
                    None => "*".to_owned(),
                })
                .collect();
            format!("{} like {}", atom(side("left")), Value::String(pattern))
        }
        "is" => {
            let t = side("entity_type").as_str().unwrap_or("?");
            match body.get("in") {
                Some(within) => format!("{} is {t} in {}", atom(side("left")), atom(within)),
                None => format!("{} is {t}", atom(side("left"))),
            }
        }
        "if-then-else" => format!(
            "if {} then {} else {}",
            show(side("if")),
            show(side("then")),
            show(side("else"))
        ),
        "Set" => {
            let items: Vec<String> = body.as_array().into_iter().flatten().map(show).collect();
            format!("[{}]", items.join(", "))
        }
        "Record" => {
            let fields: Vec<String> = body
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{}: {}", name(k), show(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        f => {
            let args: Vec<&Value> = body.as_array().into_iter().flatten().collect();
            if EXT_CONSTRUCTORS.contains(&f) {
                let args: Vec<String> = args.iter().map(|a| show(a)).collect();
                format!("{f}({})", args.join(", "))
            } else {
                let mut it = args.into_iter();
                let receiver = it.next().map_or_else(String::new, atom);
                let rest: Vec<String> = it.map(show).collect();
                format!("{receiver}.{f}({})", rest.join(", "))
            }
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use super::*;

    fn failures(src: &str, typed: bool) -> Vec<String> {
        let p = Policy::parse(None, src).unwrap();
        policy_failures(&p, typed, &Entities::empty())
    }

    fn when(cond: &str) -> String {
        format!("forbid (principal, action, resource) when {{ {cond} }};")
    }

    #[test]
    fn custodys_own_context_fields_never_fail() {
        for cond in [
            r#"["a.example", "b.example"].contains(context.origin_domain)"#,
            r#"context.depth > 2 && action != Action::"orders:read""#,
            "context.cross_domain && context.actors.containsAny(context.domains)",
            "context.depth + 1 > 2 && -context.depth < 0 && context.depth * 1000 < 5",
            r#"context.scopes.isEmpty() || context.peer like "spiffe://*""#,
            r#"principal is Agent in [Team::"a"] && resource in Resource::"r""#,
            "if context.cross_domain then context.depth > 1 else !context.cross_domain",
            "context.request has blocked && context.request.blocked == true",
            "context.request == {} || context.request has a",
            r#"decimal("1.5").lessThan(decimal("2.5")) && 1 + 2 == 3"#,
        ] {
            assert_eq!(failures(&when(cond), false), Vec::<String>::new(), "{cond}");
        }
    }

    #[test]
    fn names_the_expression_and_why() {
        let f = failures(&when("context.request.blocked"), false);
        assert_eq!(
            f,
            ["`context.request.blocked` may be missing or not a Bool (no schema declares it); guard it with `context.request has blocked` or declare it in a schema"]
        );
        let f = failures(&when("principal.level > 3"), false);
        assert_eq!(
            f,
            ["`principal.level` may be missing or not a Long (no schema declares it); guard it with `principal has level` or declare it in a schema"]
        );
        let f = failures(&when("context.depth * 9223372036854775807 > 2"), false);
        assert!(
            f[0].starts_with("`context.depth * 9223372036854775807` can overflow"),
            "{f:?}"
        );
        let f = failures(
            &when("context.request has n && context.request.n + 1 > 2"),
            true,
        );
        assert!(
            f[0].starts_with("`context.request.n + 1` can overflow"),
            "{f:?}"
        );
        let f = failures(&when(r#"decimal("x") == decimal("1.0")"#), false);
        assert!(
            f[0].starts_with(r#"`decimal("x") == decimal("1.0")` always fails: "#),
            "{f:?}"
        );
        let f = failures(&when("context.nope == 1"), true);
        assert!(
            f[0].contains("not part of the context custody builds"),
            "{f:?}"
        );
    }

    #[test]
    fn has_guards_where_it_is_known_true_or_false() {
        for cond in [
            "context.request has x && context.request.x == 1",
            "!(context.request has x) || context.request.x == 1",
            "if context.request has x then context.request.x == 1 else false",
            r#"principal.hasTag("t") && principal.getTag("t") == 1"#,
            "principal has a.b && principal.a.b == 1 && principal.a has b",
        ] {
            assert_eq!(failures(&when(cond), true), Vec::<String>::new(), "{cond}");
        }
        // A later clause is guarded by an earlier one (Cedar joins them with `&&`, in order).
        let p = "forbid (principal, action, resource) unless { !(principal has n) } when { principal.n == 1 };";
        assert_eq!(failures(p, true), Vec::<String>::new());
        // Not where the test may be false.
        for cond in [
            "context.request has x || context.request.x == 1",
            "if context.request has x then false else context.request.x == 1",
            "(context.request has x || context.cross_domain) && context.request.x == 1",
        ] {
            assert_eq!(failures(&when(cond), false).len(), 1, "{cond}");
        }
        // Without a schema `principal.a` may be a string: `has` on it can fail.
        let f = failures(&when("principal has a.b"), false);
        assert!(
            f[0].starts_with("`principal.a` may not be a record or an entity"),
            "{f:?}"
        );
    }

    #[test]
    fn with_a_schema_only_entity_reads_overflow_and_extensions_fail() {
        assert!(failures(&when("context.request.blocked"), true).is_empty());
        assert!(failures(&when("context.request.a.b > 1"), true).len() == 1);
        let f = failures(&when("principal.level > 3"), true);
        assert_eq!(
            f,
            ["`principal.level` may be missing (its entity may be absent from the pack's entities); guard it with `principal has level`"]
        );
        let f = failures(
            &when("decimal(context.request.d).lessThan(decimal(\"1.0\"))"),
            true,
        );
        assert!(f[0].contains("can fail to parse"), "{f:?}");
    }

    /// A small, seeded generator (xorshift), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    /// What a generated expression is meant to be (a risky leaf may break it).
    #[derive(Clone, Copy)]
    enum G {
        Bool,
        Long,
        Str,
        Set,
        Entity,
        Record,
        Any,
    }

    /// Values whose presence or type custody does not know, and literal extremes.
    const RISKY: &[&str] = &[
        "context.request.blocked",
        "context.request.n",
        "context.request.s",
        "context.request.set",
        "context.request.a",
        "principal.level",
        r#"principal.getTag("t")"#,
        r#"Team::"t".size"#,
        r#"Agent::"x".level"#,
        "9223372036854775807",
        r#"decimal("1.5")"#,
    ];

    fn leaf(rng: &mut Rng, g: G) -> String {
        let pool: &[&str] = match g {
            G::Bool => &[
                "true",
                "context.cross_domain",
                "(context.request has blocked)",
                "(principal has level)",
                r#"principal.hasTag("t")"#,
                "(context.request has a.b)",
            ],
            G::Long => &["1", "-3", "context.depth", "9223372036854775807"],
            G::Str => &[r#""x""#, "context.origin_domain"],
            G::Set => &["context.actors", "[1, 2]", r#"[Agent::"x"]"#, "[]"],
            G::Entity => &["principal", "resource", r#"Agent::"x""#, r#"Team::"t""#],
            G::Record => &["context", "{a: 1}", "context.request"],
            G::Any => RISKY,
        };
        rng.pick(pool).to_owned()
    }

    /// A random expression, mostly of type `g`; one leaf in eight is risky.
    fn gen(rng: &mut Rng, g: G, depth: usize) -> String {
        if rng.below(8) == 0 {
            return leaf(rng, G::Any);
        }
        if depth == 0 || rng.below(3) == 0 {
            let g = match g {
                G::Any => [G::Bool, G::Long, G::Str, G::Set, G::Entity, G::Record][rng.below(6)],
                g => g,
            };
            return leaf(rng, g);
        }
        let d = depth - 1;
        match g {
            G::Bool => match rng.below(19) {
                16 | 17 => {
                    // A guard and a read it may or may not protect.
                    let (guard, read) = [
                        ("(context.request has blocked)", "context.request.blocked"),
                        ("(context.request has n)", "(context.request.n == 1)"),
                        ("(principal has level)", "(principal.level == 1)"),
                        ("(context.request has a.b)", "(context.request.a.b == 1)"),
                        (
                            r#"principal.hasTag("t")"#,
                            r#"(principal.getTag("t") == 1)"#,
                        ),
                    ][rng.below(5)];
                    let other = gen(rng, G::Bool, d);
                    match rng.below(5) {
                        0 => format!("({guard} && {read})"),
                        1 => format!("({guard} || {read})"),
                        2 => format!("((!{guard}) || {read})"),
                        3 => format!("(if {guard} then {read} else {other})"),
                        _ => format!("(if {guard} then {other} else {read})"),
                    }
                }
                0 => format!("({} && {})", gen(rng, G::Bool, d), gen(rng, G::Bool, d)),
                1 => format!("({} || {})", gen(rng, G::Bool, d), gen(rng, G::Bool, d)),
                2 => format!("(!{})", gen(rng, G::Bool, d)),
                3 => format!("({} == {})", gen(rng, G::Any, d), gen(rng, G::Any, d)),
                4 => format!("({} < {})", gen(rng, G::Long, d), gen(rng, G::Long, d)),
                5 => format!("({} >= {})", gen(rng, G::Long, d), gen(rng, G::Long, d)),
                6 => format!("({} in {})", gen(rng, G::Entity, d), gen(rng, G::Entity, d)),
                7 => format!("({} in {})", gen(rng, G::Entity, d), gen(rng, G::Set, d)),
                8 => format!("{}.contains({})", gen(rng, G::Set, d), gen(rng, G::Any, d)),
                9 => format!(
                    "{}.containsAny({})",
                    gen(rng, G::Set, d),
                    gen(rng, G::Set, d)
                ),
                10 => format!("{}.isEmpty()", gen(rng, G::Set, d)),
                11 => format!(r#"({} like "x*")"#, gen(rng, G::Str, d)),
                12 => format!("({} is Agent)", gen(rng, G::Entity, d)),
                13 => format!("({} has level)", gen(rng, G::Record, d)),
                14 => format!(
                    "(if {} then {} else {})",
                    gen(rng, G::Bool, d),
                    gen(rng, G::Bool, d),
                    gen(rng, G::Bool, d)
                ),
                15 => format!(
                    "(context.request has n && context.request.n == {})",
                    gen(rng, G::Any, d)
                ),
                _ => format!(
                    r#"(principal.hasTag("t") && principal.getTag("t") != {})"#,
                    gen(rng, G::Any, d)
                ),
            },
            G::Long => match rng.below(5) {
                0 => format!("({} + {})", gen(rng, G::Long, d), gen(rng, G::Long, d)),
                1 => format!("({} - {})", gen(rng, G::Long, d), gen(rng, G::Long, d)),
                2 => format!("({} * {})", gen(rng, G::Long, d), gen(rng, G::Long, d)),
                3 => format!("(-{})", gen(rng, G::Long, d)),
                _ => format!(
                    "(if {} then {} else {})",
                    gen(rng, G::Bool, d),
                    gen(rng, G::Long, d),
                    gen(rng, G::Long, d)
                ),
            },
            G::Set => format!("[{}, {}]", gen(rng, G::Any, d), gen(rng, G::Any, d)),
            G::Record => match rng.below(3) {
                0 => format!("{{f: {}}}", gen(rng, G::Any, d)),
                1 => "context.request".to_owned(),
                _ => "principal".to_owned(),
            },
            G::Str | G::Entity => leaf(rng, g),
            G::Any => {
                let g = [G::Bool, G::Long, G::Set, G::Record][rng.below(4)];
                gen(rng, g, depth)
            }
        }
    }

    fn entity_sets() -> Vec<Entities> {
        let agent = |attrs: serde_json::Value, tags: serde_json::Value| json!({"uid": {"type": "Agent", "id": "x"}, "attrs": attrs, "parents": [], "tags": tags});
        let team = |size: serde_json::Value| json!({"uid": {"type": "Team", "id": "t"}, "attrs": {"size": size}, "parents": []});
        [
            json!([]),
            json!([
                agent(json!({"level": 5, "a": {"b": 1}}), json!({"t": 1})),
                team(json!(3))
            ]),
            json!([
                agent(json!({"level": "high", "a": "s"}), json!({"t": "u"})),
                team(json!("big"))
            ]),
            json!([
                agent(json!({"level": 9223372036854775807_i64}), json!({})),
                team(json!({"b": 1}))
            ]),
        ]
        .into_iter()
        .map(|j| Entities::from_json_value(j, None).unwrap())
        .collect()
    }

    fn random_value(rng: &mut Rng) -> serde_json::Value {
        let pool = [
            json!(true),
            json!(7),
            json!(-1),
            json!(i64::MAX),
            json!(i64::MIN),
            json!("x"),
            json!([1, 2]),
            json!(["x"]),
            json!({"b": 1}),
            json!({"b": "y"}),
            json!({}),
        ];
        pool[rng.below(pool.len())].clone()
    }

    fn random_request(rng: &mut Rng) -> Request {
        let mut request = serde_json::Map::new();
        for key in ["blocked", "n", "s", "set", "a"] {
            if rng.below(3) != 0 {
                request.insert(key.to_owned(), random_value(rng));
            }
        }
        let context = json!({
            "origin": "a.example|user:alice", "origin_domain": "a.example",
            "depth": rng.below(17), "actors": ["spiffe://a.example/agent/bob"],
            "domains": ["a.example", "c.example"], "scopes": ["orders:read"], "txn": "",
            "cross_domain": rng.below(2) == 0, "peer": "", "request": request,
        });
        let principal = [r#"Agent::"x""#, r#"Agent::"y""#, r#"User::"u""#][rng.below(3)];
        let resource = [r#"Resource::"r""#, r#"Doc::"d""#][rng.below(2)];
        Request::new(
            EntityUid::from_str(principal).unwrap(),
            EntityUid::from_str(r#"Action::"a""#).unwrap(),
            EntityUid::from_str(resource).unwrap(),
            Context::from_json_value(context, None).unwrap(),
            None,
        )
        .unwrap()
    }

    /// The soundness oracle: a generated policy the analysis says cannot fail never fails
    /// when Cedar evaluates it on random custody contexts, principals and entities.
    #[test]
    fn policies_said_not_to_fail_never_fail() {
        let mut rng = Rng(0x5eed_c0de_1234_5678);
        let sets = entity_sets();
        let (mut clean, mut caught) = (0, 0);
        for _ in 0..2000 {
            let mut src = format!(
                "permit (principal, action, resource) when {{ {} }}",
                gen(&mut rng, G::Bool, 4)
            );
            if rng.below(3) == 0 {
                src.push_str(&format!(" unless {{ {} }}", gen(&mut rng, G::Bool, 2)));
            }
            src.push(';');
            let Ok(policy) = Policy::parse(None, &src) else {
                continue;
            };
            let entities = &sets[rng.below(sets.len())];
            let said = policy_failures(&policy, false, entities);
            let set = PolicySet::from_policies([policy]).unwrap();
            let mut failed = false;
            // Every request for a policy said not to fail; a few for the others (to count them).
            let runs = if said.is_empty() { 25 } else { 3 };
            for _ in 0..runs {
                let request = random_request(&mut rng);
                let response = Authorizer::new().is_authorized(&request, &set, entities);
                let errors: Vec<String> = response
                    .diagnostics()
                    .errors()
                    .map(ToString::to_string)
                    .collect();
                assert!(
                    !said.is_empty() || errors.is_empty(),
                    "said it cannot fail, but it did: {src}\n{errors:?}\n{request:?}"
                );
                failed |= !errors.is_empty();
            }
            if said.is_empty() {
                clean += 1;
            } else if failed {
                caught += 1;
            }
        }
        assert!(clean >= 500, "only {clean} policies said not to fail");
        assert!(caught >= 500, "only {caught} failing policies caught");
    }
}
