//! A Biscuit's blocks read one by one from their protobuf, so that every fact is attributed to
//! the block that holds it (and so to the key that signed that block).
//!
//! Why not Datalog queries: a `trusting ed25519/…` scope sees every block signed by that key at
//! once, so two hops attested by the same domain key could not be told apart, and printing a
//! block as Datalog source does not escape strings. Reading the protobuf is exact. It runs on
//! the same bytes `Biscuit::from` verifies, and its result is used only after that verification
//! succeeded.

use biscuit_auth::datalog::{self, SymbolTable, Term};
use biscuit_auth::format::{convert, schema};
use custody_jose::Limits;
use prost_biscuit::Message as _;

/// A term of a fact, as far as the profile cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    /// Any other term (bytes, booleans, sets, …).
    Other,
}

/// A ground fact of one block.
#[derive(Clone, Debug)]
pub(crate) struct Fact {
    pub name: String,
    pub terms: Vec<Value>,
    /// The largest of its terms, in the budget's bytes ([`super::budget::term_bytes`]): what a
    /// check's variable bound to one of them can weigh.
    pub bytes: u64,
}

/// The key of a third-party block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExternalKey {
    Ed25519([u8; 32]),
    /// Another algorithm (P-256): no custody domain key can match it.
    Other,
}

/// One block: its facts, the heads of its rules, its checks.
#[derive(Clone, Debug)]
pub(crate) struct BlockView {
    /// 0 for the authority block.
    pub index: usize,
    /// `Some` for a third-party block: the key that signed it.
    pub external: Option<ExternalKey>,
    pub facts: Vec<Fact>,
    pub rule_heads: Vec<String>,
    pub checks: Vec<datalog::Check>,
    /// The symbol table its facts and checks are written with (for a first-party block, the
    /// one shared with the authority block and the earlier first-party blocks, so far).
    pub symbols: SymbolTable,
    /// Whether `symbols` is a third-party block's own table (else the shared one).
    pub own_symbols: bool,
}

/// Why the bytes could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Malformed(String),
    TooLarge(String),
}

/// Every block of the token in `bytes`.
pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<Vec<BlockView>, ReadError> {
    let token = schema::Biscuit::decode(bytes)
        .map_err(|e| ReadError::Malformed(format!("not a Biscuit: {e}")))?;
    let count = 1 + token.blocks.len();
    if count > limits.tokens_per_request {
        return Err(ReadError::TooLarge(format!(
            "{count} blocks, more than {}",
            limits.tokens_per_request
        )));
    }
    // The authority block and first-party blocks share one symbol table; a third-party block
    // has its own.
    let mut shared: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(count);
    for (index, signed) in std::iter::once(&token.authority)
        .chain(token.blocks.iter())
        .enumerate()
    {
        let block = schema::Block::decode(signed.block.as_slice())
            .map_err(|e| ReadError::Malformed(format!("block {index} is not a block: {e}")))?;
        check_counts(index, &block, limits)?;
        let external = signed
            .external_signature
            .as_ref()
            .map(|e| key(&e.public_key));
        let symbols = match external {
            Some(_) => block.symbols.clone(),
            None => {
                shared.extend(block.symbols.iter().cloned());
                shared.clone()
            }
        };
        out.push(view(index, &block, external, symbols)?);
    }
    Ok(out)
}

fn key(k: &schema::PublicKey) -> ExternalKey {
    let ed25519 = schema::public_key::Algorithm::Ed25519 as i32;
    match <[u8; 32]>::try_from(k.key.as_slice()) {
        Ok(bytes) if k.algorithm == ed25519 => ExternalKey::Ed25519(bytes),
        _ => ExternalKey::Other,
    }
}

/// Facts, rules and checks per block, each at most `claims_per_object` (a token's claim count
/// limit: a block is this profile's claim set).
fn check_counts(index: usize, b: &schema::Block, limits: &Limits) -> Result<(), ReadError> {
    let max = limits.claims_per_object;
    for (what, n) in [
        ("facts", b.facts.len()),
        ("rules", b.rules.len()),
        ("checks", b.checks.len()),
        ("public keys", b.public_keys.len()),
    ] {
        if n > max {
            return Err(ReadError::TooLarge(format!(
                "block {index} has {n} {what}, more than {max}"
            )));
        }
    }
    Ok(())
}

fn view(
    index: usize,
    block: &schema::Block,
    external: Option<ExternalKey>,
    symbols: Vec<String>,
) -> Result<BlockView, ReadError> {
    let malformed = |m: String| ReadError::Malformed(format!("block {index}: {m}"));
    let table = SymbolTable::from(symbols).map_err(|e| malformed(e.to_string()))?;
    let token_block =
        convert::proto_block_to_token_block(block, None).map_err(|e| malformed(e.to_string()))?;
    let name = |i: u64| {
        table
            .get_symbol(i)
            .map(str::to_owned)
            .ok_or_else(|| malformed(format!("unknown symbol {i}")))
    };
    let mut facts = Vec::with_capacity(token_block.facts.len());
    for f in &token_block.facts {
        let terms = f
            .predicate
            .terms
            .iter()
            .map(|t| value(&table, t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(malformed)?;
        let bytes = f
            .predicate
            .terms
            .iter()
            .map(|t| super::budget::term_bytes(&table, t))
            .max()
            .unwrap_or(0);
        facts.push(Fact {
            name: name(f.predicate.name)?,
            terms,
            bytes,
        });
    }
    let rule_heads = token_block
        .rules
        .iter()
        .map(|r| name(r.head.name))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BlockView {
        index,
        external,
        facts,
        rule_heads,
        checks: token_block.checks,
        symbols: table,
        own_symbols: external.is_some(),
    })
}

fn value(table: &SymbolTable, t: &Term) -> Result<Value, String> {
    Ok(match t {
        Term::Str(i) => Value::Str(
            table
                .get_symbol(*i)
                .ok_or_else(|| format!("unknown symbol {i}"))?
                .to_owned(),
        ),
        Term::Integer(n) => Value::Int(*n),
        Term::Date(d) => i64::try_from(*d).map_or(Value::Other, Value::Int),
        _ => Value::Other,
    })
}
