//! What a Biscuit's checks may cost, bounded before any evaluation (README "Biscuit profile",
//! Limits).
//!
//! biscuit-auth evaluates a check query by enumerating fact combinations (for each body
//! predicate in turn it scans every fact in scope) and running the query's expressions, a stack
//! machine, on each complete combination; the strings an expression builds are interned in a
//! table that lives for that combination, each insertion comparing the new string with every
//! symbol already known. Its wall-clock limit is looked at only between queries, never inside
//! one. So the bound here is the real guarantee; the evaluation time limit
//! ([`EVAL_TIME_LIMIT`]) is a backstop.
//!
//! The model, in work units (about a nanosecond each on the machine it was calibrated on):
//!
//! - **combinations**: a query with body predicates `p1 … pk` tries at most `m1 × … × mk`
//!   combinations, `mi` the number of facts named `pi` (the token's, in every block, and the
//!   request's six); the profile has no rules, so no fact is derived. Reaching them takes
//!   `1 + m1 + m1·m2 + … + m1⋯m(k-1)` partial bindings, each a scan of every fact
//!   ([`SCAN`] per fact, [`BIND`] per binding).
//! - **bytes**: each expression is interpreted over upper bounds of its values' sizes: a
//!   variable weighs as much as the largest term of any fact (the request's included), a
//!   literal its own size, `+` and `union` the sum of their operands, `intersection` the
//!   smaller one, `get` its container, anything else (comparisons, `contains`, `length`, …) a
//!   scalar. An operation costs [`OP`] plus the bytes it reads and writes; one that interns a
//!   string (`+`, `type()`) also pays for the symbol comparisons ([`SYMBOL`] each, and the
//!   longest run of same-length bytes it may have to compare).
//! - **total**: the sum over every query of partial bindings plus combinations × (the cost of
//!   one combination), counted twice: the authorizer's run and the full re-evaluation of every
//!   `check if` (`every_combination_evaluates`). Over [`EVAL_BUDGET`] is `token_too_large`.
//! - **memory**: no value may be larger than [`MAX_VALUE_BYTES`], and the values of one query's
//!   evaluation of one combination (every operation's result: the interned strings live until
//!   the combination is done) may not add up to more than [`MAX_QUERY_BYTES`].

use std::collections::HashMap;
use std::time::Duration;

use biscuit_auth::datalog::{Binary, MapKey, Op, Rule, SymbolTable, Term, Unary};

use super::read::BlockView;

/// Work allowed for all of a token's checks together, in work units (about a nanosecond each
/// on a 2024 x86-64 core). 1,000,000: the costliest token the budget accepts is decided (the
/// whole `verify`) in about 2 ms in release builds; ordinary checks need a few thousand units.
pub const EVAL_BUDGET: u64 = 1_000_000;
/// Operations in one check query's expressions. 256: a check rarely needs ten.
pub const MAX_EXPRESSION_OPS: usize = 256;
/// Largest value any expression may build: 64 KiB (a string concatenation or a set union).
pub const MAX_VALUE_BYTES: u64 = 64 * 1024;
/// Largest total of the values one query builds for one fact combination: 256 KiB. With the
/// budget it bounds an evaluation's memory.
pub const MAX_QUERY_BYTES: u64 = 256 * 1024;
/// The wall-clock limit of the whole evaluation of a Biscuit's checks (loading the token into
/// an authorizer, its run and the full re-evaluation of every `check if`): 5 ms, about twice
/// the time of the costliest token the budget accepts. Hitting it is a denial,
/// `token_too_large`. Debug builds (unoptimised Datalog, 10 to 30 times slower) allow 250 ms.
pub const EVAL_TIME_LIMIT: Duration = if cfg!(debug_assertions) {
    Duration::from_millis(250)
} else {
    Duration::from_millis(5)
};

/// How many times each query may be evaluated: the authorizer's run, then `query_all`.
const RUNS: u64 = 2;
/// Work per fact looked at while binding a body predicate.
const SCAN: u64 = 4;
/// Work per (partial or complete) binding of a query's body: an iterator, a variables map.
const BIND: u64 = 150;
/// Work per expression operation, besides the bytes it reads and writes.
const OP: u64 = 30;
/// Work per symbol an interned string is compared with (a length check).
const SYMBOL: u64 = 2;
/// Bytes of a scalar (integer, date, boolean, null) and of any value's fixed part.
const SCALAR: u64 = 8;
/// Bytes per element of a set, array or map, besides the element's own.
const ELEMENT: u64 = 16;
/// Symbols biscuit-auth knows without a table (`read`, `write`, …) and the verifier's own
/// (`allow`, `custody_every_combination`, …), an upper bound.
const OTHER_SYMBOLS: u64 = 48;

/// Why the checks are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// An operator outside the profile (`malformed_token`).
    Operator { block: usize, op: String },
    /// Could cost more than the budget or the memory caps allow (`token_too_large`).
    TooCostly { block: usize, why: String },
}

/// The size of a term, in the budget's bytes: a string or byte string its length, a scalar
/// [`SCALAR`], a collection [`SCALAR`] plus [`ELEMENT`] and the size of each element.
pub(crate) fn term_bytes(table: &SymbolTable, t: &Term) -> u64 {
    let each = |n: u64| n.saturating_add(ELEMENT);
    match t {
        Term::Str(i) => table.get_symbol(*i).map_or(0, |s| s.len() as u64),
        Term::Bytes(b) => b.len() as u64,
        Term::Set(s) => s.iter().fold(SCALAR, |acc, e| {
            acc.saturating_add(each(term_bytes(table, e)))
        }),
        Term::Array(a) => a.iter().fold(SCALAR, |acc, e| {
            acc.saturating_add(each(term_bytes(table, e)))
        }),
        Term::Map(m) => m.iter().fold(SCALAR, |acc, (k, v)| {
            let key = match k {
                MapKey::Integer(_) => SCALAR,
                MapKey::Str(i) => table.get_symbol(*i).map_or(0, |s| s.len() as u64),
            };
            acc.saturating_add(each(key.saturating_add(term_bytes(table, v))))
        }),
        Term::Variable(_) | Term::Integer(_) | Term::Date(_) | Term::Bool(_) | Term::Null => SCALAR,
    }
}

/// What the evaluation runs on, besides the checks: fact counts and sizes, symbols.
struct World<'a> {
    /// Facts per predicate name.
    counts: HashMap<&'a str, u64>,
    /// All facts.
    facts: u64,
    /// The largest term of any fact.
    var_bytes: u64,
    /// Symbols in the authorizer's table (an upper bound).
    symbols: u64,
    /// Most bytes an interned string may have to compare with the table's symbols: only those
    /// of its own length are compared byte by byte, so the largest `length × count` of a length.
    same_length: u64,
}

impl<'a> World<'a> {
    fn new(blocks: &'a [BlockView], request: &[(&'a str, u64)]) -> Self {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        let mut facts = 0u64;
        let mut var_bytes = 0u64;
        let token_facts = blocks.iter().flat_map(|b| b.facts.iter());
        for (name, bytes) in token_facts
            .map(|f| (f.name.as_str(), f.bytes))
            .chain(request.iter().copied())
        {
            *counts.entry(name).or_default() += 1;
            facts = facts.saturating_add(1);
            var_bytes = var_bytes.max(bytes);
        }
        // The shared table is the last first-party block's (it only grows); each third-party
        // block has its own; the request adds its names and values.
        let shared = blocks.iter().rev().find(|b| !b.own_symbols);
        let own = blocks.iter().filter(|b| b.own_symbols);
        let mut lengths: HashMap<u64, u64> = HashMap::new();
        let mut symbols = OTHER_SYMBOLS;
        for table in shared.into_iter().chain(own).map(|b| &b.symbols) {
            for s in table.strings() {
                *lengths.entry(s.len() as u64).or_default() += 1;
                symbols = symbols.saturating_add(1);
            }
        }
        for (name, bytes) in request {
            *lengths.entry(name.len() as u64).or_default() += 1;
            *lengths.entry(*bytes).or_default() += 1;
            symbols = symbols.saturating_add(2);
        }
        let same_length = lengths
            .iter()
            .map(|(len, n)| len.saturating_mul(*n))
            .max()
            .unwrap_or(0);
        World {
            counts,
            facts,
            var_bytes,
            symbols,
            same_length,
        }
    }
}

/// The work the checks of `blocks` may take, given the request's facts (name and the size of
/// the one term of each), or why they are refused.
pub(crate) fn check(blocks: &[BlockView], request: &[(&str, u64)]) -> Result<u64, Refusal> {
    let world = World::new(blocks, request);
    let mut total: u64 = 0;
    for block in blocks {
        for query in block.checks.iter().flat_map(|c| c.queries.iter()) {
            let cost = query_cost(&world, block, query)?;
            total = total.saturating_add(cost.saturating_mul(RUNS));
            if total > EVAL_BUDGET {
                return Err(Refusal::TooCostly {
                    block: block.index,
                    why: format!(
                        "the checks up to block {} could take more than the evaluation budget \
                         ({EVAL_BUDGET} work units)",
                        block.index
                    ),
                });
            }
        }
    }
    Ok(total)
}

fn refused(op: &Op) -> bool {
    matches!(
        op,
        Op::Closure(..)
            | Op::Unary(Unary::Ffi(_))
            | Op::Binary(Binary::Regex | Binary::All | Binary::Any | Binary::Ffi(_))
    )
}

fn query_cost(world: &World, block: &BlockView, query: &Rule) -> Result<u64, Refusal> {
    let too_costly = |why: String| Refusal::TooCostly {
        block: block.index,
        why: format!("block {}: {why}", block.index),
    };
    let ops = query.expressions.iter().flat_map(|e| e.ops.iter());
    if let Some(op) = ops.clone().find(|op| refused(op)) {
        return Err(Refusal::Operator {
            block: block.index,
            op: format!("{op:?}"),
        });
    }
    let count = ops.count();
    if count > MAX_EXPRESSION_OPS {
        return Err(too_costly(format!(
            "a check query has {count} expression operations, more than {MAX_EXPRESSION_OPS}"
        )));
    }
    // Partial bindings and combinations.
    let mut partial: u64 = 0;
    let mut combinations: u64 = 1;
    for p in &query.body {
        partial = partial.saturating_add(combinations);
        let name = block.symbols.get_symbol(p.name).unwrap_or_default();
        let m = world.counts.get(name).copied().unwrap_or(0);
        combinations = combinations.saturating_mul(m);
    }
    let scan = partial.saturating_mul(BIND.saturating_add(world.facts.saturating_mul(SCAN)));
    let mut run = Interpreter::new(world);
    for e in &query.expressions {
        run.stack.clear();
        for op in &e.ops {
            run.op(&block.symbols, op).map_err(too_costly)?;
        }
    }
    let each = BIND.saturating_add(run.cost);
    Ok(scan.saturating_add(combinations.saturating_mul(each)))
}

/// One query's expressions on one combination, over upper bounds of the values' sizes.
struct Interpreter<'w> {
    world: &'w World<'w>,
    stack: Vec<u64>,
    /// Bytes of every value made so far.
    made: u64,
    /// Strings interned so far, and their bytes.
    interned: u64,
    interned_bytes: u64,
    cost: u64,
}

impl<'w> Interpreter<'w> {
    fn new(world: &'w World<'w>) -> Self {
        Interpreter {
            world,
            stack: Vec::new(),
            made: 0,
            interned: 0,
            interned_bytes: 0,
            cost: 0,
        }
    }

    fn pay(&mut self, work: u64) {
        self.cost = self.cost.saturating_add(work);
    }

    fn push(&mut self, bytes: u64) -> Result<(), String> {
        if bytes > MAX_VALUE_BYTES {
            return Err(format!(
                "a check could build a value of more than {MAX_VALUE_BYTES} bytes"
            ));
        }
        self.made = self.made.saturating_add(bytes);
        if self.made > MAX_QUERY_BYTES {
            return Err(format!(
                "a check query's values could take more than {MAX_QUERY_BYTES} bytes together"
            ));
        }
        self.stack.push(bytes);
        Ok(())
    }

    /// An ill-formed stack fails the evaluation at once; a scalar is as good a guess as any.
    fn pop(&mut self) -> u64 {
        self.stack.pop().unwrap_or(SCALAR)
    }

    /// Interning a string of at most `bytes`: compared with every symbol of the authorizer's
    /// table and those interned before, byte by byte with those of the same length.
    fn intern(&mut self, bytes: u64) {
        let symbols = self.world.symbols.saturating_add(self.interned);
        let same = self
            .world
            .same_length
            .saturating_add(self.interned_bytes.min(self.interned.saturating_mul(bytes)));
        self.pay(symbols.saturating_mul(SYMBOL).saturating_add(same));
        self.interned = self.interned.saturating_add(1);
        self.interned_bytes = self.interned_bytes.saturating_add(bytes);
    }

    fn op(&mut self, table: &SymbolTable, op: &Op) -> Result<(), String> {
        match op {
            Op::Value(Term::Variable(_)) => {
                let b = self.world.var_bytes;
                self.pay(OP.saturating_add(b));
                self.push(b)
            }
            Op::Value(t) => {
                let b = term_bytes(table, t);
                self.pay(OP.saturating_add(b));
                self.push(b)
            }
            Op::Unary(u) => {
                let a = self.pop();
                self.pay(OP);
                match u {
                    Unary::Parens => self.push(a),
                    Unary::TypeOf => {
                        self.intern(SCALAR);
                        self.push(SCALAR)
                    }
                    Unary::Negate | Unary::Length | Unary::Ffi(_) => self.push(SCALAR),
                }
            }
            Op::Binary(b) => {
                let r = self.pop();
                let l = self.pop();
                let read = l.saturating_add(r);
                let (out, work) = match b {
                    Binary::Add => {
                        let out = read;
                        self.intern(out);
                        (out, read.saturating_add(out))
                    }
                    Binary::Union => (read, read.saturating_mul(2)),
                    Binary::Intersection => (l.min(r), read.saturating_add(l.min(r))),
                    Binary::Get => (l, r.saturating_add(l)),
                    Binary::Contains => (SCALAR, read.saturating_mul(2)),
                    _ => (SCALAR, read),
                };
                self.pay(OP.saturating_add(work));
                self.push(out)
            }
            Op::Closure(..) => {
                self.pay(OP);
                self.push(SCALAR)
            }
        }
    }
}
