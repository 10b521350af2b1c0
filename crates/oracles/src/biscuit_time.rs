//! The `biscuit_time` fuzz target: tokens with attacker-chosen, possibly costly checks, and the
//! oracle that no decision takes longer than the documented bound.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use custody_jose::Limits;

use custody_verifier::biscuit::{work_estimate, EVAL_TIME_LIMIT};
use custody_verifier::{Decision, ReasonCode, Request};

use crate::{
    decide_biscuit, fuzz_verifiers, FuzzAttenuation, FuzzBiscuit, FuzzBlock, FuzzCheck, Oracle,
    FACT_NAMES,
};

/// How much slower than [`EVAL_TIME_LIMIT`] a decision may be measured before the oracle
/// calls it a bug: 4. The decision covers more than the evaluation (signatures, chain
/// rules, Cedar), libFuzzer's coverage counters slow every instruction down, and the
/// machine may be busy: the oracle also takes the fastest of three runs before it fails.
pub const TIME_FACTOR: u32 = 4;

/// One operation of a check's expression, in postfix order (the harness writes Datalog).
#[derive(Arbitrary, Clone, Debug)]
pub enum FuzzOp {
    /// The body's `n`-th variable (a literal when the body is empty).
    Var(u8),
    /// A string of `len` (at most 4,000) copies of one character.
    Str(u16, u8),
    /// An integer.
    Int(i64),
    /// A set of the integers `0..n` (at most 400).
    Set(u16),
    /// `a + b`.
    Add,
    /// `a.union(b)`.
    Union,
    /// `a.intersection(b)`.
    Intersection,
    /// `a.contains(b)`.
    Contains,
    /// `a.starts_with(b)`.
    Prefix,
    /// `a == b`.
    Equal,
    /// `a.length()`.
    Length,
    /// `a.type()`.
    TypeOf,
}

/// A check: body predicates (indices into the fact names) and an expression.
#[derive(Arbitrary, Clone, Debug)]
pub struct FuzzCostlyCheck {
    /// Body predicates, each `name($vN)`.
    pub body: Vec<u8>,
    /// The expression, postfix; what is left on the stack becomes `(…).type() != ""`.
    pub ops: Vec<FuzzOp>,
}

/// A structured Biscuit ([`FuzzBiscuit`]) with an attenuation block of costly checks first.
#[derive(Arbitrary, Clone, Debug, Default)]
pub struct FuzzCostly {
    /// The chain.
    pub base: FuzzBiscuit,
    /// The checks of the first block after the authority block (at most 8).
    pub checks: Vec<FuzzCostlyCheck>,
}

/// The check's Datalog.
pub fn datalog(c: &FuzzCostlyCheck) -> String {
    let body: Vec<String> = c
        .body
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, p)| {
            let name = FACT_NAMES
                .get(usize::from(*p) % FACT_NAMES.len())
                .copied()
                .unwrap_or("scope");
            format!("{name}($v{i})")
        })
        .collect();
    let mut stack: Vec<String> = Vec::new();
    for op in c.ops.iter().take(300) {
        let unary = |f: &dyn Fn(String) -> String, stack: &mut Vec<String>| {
            if let Some(a) = stack.pop() {
                stack.push(f(a));
            }
        };
        let binary = |f: &dyn Fn(String, String) -> String, stack: &mut Vec<String>| {
            if stack.len() >= 2 {
                if let (Some(b), Some(a)) = (stack.pop(), stack.pop()) {
                    stack.push(f(a, b));
                }
            }
        };
        match op {
            FuzzOp::Var(n) if !body.is_empty() => {
                stack.push(format!("$v{}", usize::from(*n) % body.len()));
            }
            FuzzOp::Var(n) => stack.push(format!("\"v{n}\"")),
            FuzzOp::Str(len, ch) => {
                let ch = char::from(b'a' + ch % 26);
                let len = usize::from(*len) % 4001;
                stack.push(format!("\"{}\"", ch.to_string().repeat(len)));
            }
            FuzzOp::Int(i) => stack.push(i.to_string()),
            FuzzOp::Set(n) => {
                let items: Vec<String> =
                    (0..usize::from(*n) % 401).map(|i| i.to_string()).collect();
                stack.push(format!("{{{}}}", items.join(", ")));
            }
            FuzzOp::Add => binary(&|a, b| format!("({a} + {b})"), &mut stack),
            FuzzOp::Union => binary(&|a, b| format!("{a}.union({b})"), &mut stack),
            FuzzOp::Intersection => binary(&|a, b| format!("{a}.intersection({b})"), &mut stack),
            FuzzOp::Contains => binary(&|a, b| format!("{a}.contains({b})"), &mut stack),
            FuzzOp::Prefix => binary(&|a, b| format!("{a}.starts_with({b})"), &mut stack),
            FuzzOp::Equal => binary(&|a, b| format!("({a} == {b})"), &mut stack),
            FuzzOp::Length => unary(&|a| format!("{a}.length()"), &mut stack),
            FuzzOp::TypeOf => unary(&|a| format!("{a}.type()"), &mut stack),
        }
    }
    let exprs = stack.into_iter().map(|e| format!("({e}).type() != \"\""));
    let all: Vec<String> = body.into_iter().chain(exprs).collect();
    if all.is_empty() {
        "check if true".to_owned()
    } else {
        format!("check if {}", all.join(", "))
    }
}

/// The structured Biscuit the input stands for.
pub fn costly_biscuit(input: &FuzzCostly) -> FuzzBiscuit {
    let mut b = input.base.clone();
    let checks = input
        .checks
        .iter()
        .take(8)
        .map(|c| FuzzCheck::Raw(datalog(c)))
        .collect();
    let first = FuzzBlock::Attenuation(FuzzAttenuation {
        checks,
        ..FuzzAttenuation::default()
    });
    b.blocks.truncate(7);
    b.blocks.insert(0, first);
    b
}

/// Oracle: no input decides slower than the documented bound. The token is minted and
/// decided; if the budget refuses it, the decision is a denial; if the budget accepts it,
/// no run is denied for the evaluation time limit and the fastest of three decisions takes
/// at most [`TIME_FACTOR`] × [`EVAL_TIME_LIMIT`].
pub fn biscuit_time(data: &[u8]) -> Oracle {
    let mut u = Unstructured::new(data);
    let Ok(input) = FuzzCostly::arbitrary(&mut u) else {
        return Ok(());
    };
    costly_input(&input)
}

/// [`biscuit_time`] on an already built input.
pub fn costly_input(input: &FuzzCostly) -> Oracle {
    let biscuit = costly_biscuit(input);
    let Some((req, first)) = decide_biscuit(&biscuit) else {
        return Ok(());
    };
    let Some(token) = req.tokens.first() else {
        return Ok(());
    };
    let estimate = work_estimate(token, &req, &Limits::default());
    if estimate.is_err() {
        if first.is_allowed() {
            return Err(format!(
                "the budget refuses {estimate:?}, yet the token is allowed"
            ));
        }
        return Ok(());
    }
    let (verifier, _) = fuzz_verifiers().ok_or("world")?;
    let bound = EVAL_TIME_LIMIT.saturating_mul(TIME_FACTOR);
    let mut fastest = Duration::MAX;
    let mut decision = first;
    for _ in 0..3 {
        if !timed_out(&decision) && fastest <= bound {
            return Ok(());
        }
        let start = Instant::now();
        decision = verifier.verify(&req);
        fastest = fastest.min(start.elapsed());
    }
    if timed_out(&decision) {
        return Err(format!(
            "the budget accepts the token ({estimate:?} work units), yet its evaluation hit \
             the time limit three times: {:?}",
            decision.reasons
        ));
    }
    if fastest > bound {
        return Err(format!(
            "the budget accepts the token ({estimate:?} work units), yet the fastest of \
             three decisions took {fastest:?}, over {bound:?}"
        ));
    }
    Ok(())
}

fn timed_out(d: &Decision) -> bool {
    d.reasons
        .first()
        .is_some_and(|r| r.code == ReasonCode::TokenTooLarge && r.message.contains("time limit"))
}

/// The request and decision of an input (tests of the harness).
pub fn decide_costly(input: &FuzzCostly) -> Option<(Request, Decision)> {
    decide_biscuit(&costly_biscuit(input))
}
