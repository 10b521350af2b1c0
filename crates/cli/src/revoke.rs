//! `custody revoke` and `custody revocations`: the fleet's revocations in its shared store
//! (the `store` a pack names; every node following it applies a revocation within the
//! propagation time and holds it until its `until`).

use std::path::PathBuf;

use custody_policy::PolicyPack;
use custody_store::Store;
use custody_verifier::{Limits, Revocation, RevocationKind};

/// The longest a revocation is made to last without `--until` or `--for` when no pack says
/// how long its tokens live: a day.
const DEFAULT_FOR: i64 = 86_400;

#[derive(clap::Args)]
pub(crate) struct RevokeArgs {
    /// The store (`redis://HOST:PORT[/DB]`); default: the `store` of `--policies`.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// A pack: its `store` when `--store` is not given, and its `max_lifetime` plus
    /// `clock_skew` as the default duration (the longest a token it accepts can live).
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// What to revoke: `jti`, `actor` (a SPIFFE ID), `origin` (`<domain>|<sub>`) or `txn`.
    kind: String,
    /// The item, exactly as it appears in tokens (or, for an origin, in a decision's chain).
    value: String,
    /// Until when (unix seconds) the revocation holds.
    #[arg(long, value_name = "UNIX", conflicts_with = "for_")]
    until: Option<i64>,
    /// For how long from now it holds (`30s`, `15m`, `2h`, `7d`); default: the pack's
    /// `max_lifetime` + `clock_skew` with `--policies`, else 24h.
    #[arg(long = "for", id = "for_", value_name = "DURATION")]
    for_: Option<String>,
}

#[derive(clap::Args)]
pub(crate) struct ListArgs {
    /// The store (`redis://HOST:PORT[/DB]`); default: the `store` of `--policies`.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// A pack whose `store` to read.
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// Also remove the expired entries from the store.
    #[arg(long)]
    prune: bool,
}

fn seconds(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a duration such as 30s, 15m, 2h or 7d");
    let (digits, unit) = text
        .split_at_checked(text.len().checked_sub(1).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let n: i64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(scale).filter(|s| *s > 0).ok_or_else(bad)
}

/// The store to use and the pack, if one was given.
fn store_and_pack(
    store: Option<&str>,
    policies: Option<&PathBuf>,
) -> Result<(Store, Option<PolicyPack>), String> {
    let pack = match policies {
        Some(dir) => Some(PolicyPack::load(dir, &Limits::default()).map_err(|errors| {
            let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
            format!("the pack cannot be used:\n{}", shown.join("\n"))
        })?),
        None => None,
    }
    .map(|l| l.pack);
    let url = match (store, pack.as_ref().and_then(|p| p.store.as_deref())) {
        (Some(u), _) | (None, Some(u)) => u.to_owned(),
        (None, None) => return Err(
            "no store: give `--store redis://HOST:PORT`, or `--policies` of a pack that names one"
                .into(),
        ),
    };
    let store = Store::open(&url).map_err(|e| format!("store `{url}`: {e}"))?;
    Ok((store, pack))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

pub(crate) fn revoke(args: &RevokeArgs) -> Result<u8, String> {
    let kind = RevocationKind::from_name(&args.kind)
        .ok_or_else(|| format!("`{}` is not a kind: jti, actor, origin or txn", args.kind))?;
    let (store, pack) = store_and_pack(args.store.as_deref(), args.policies.as_ref())?;
    let now = custody_verifier::system_now();
    let until = match (args.until, &args.for_) {
        (Some(u), _) => u,
        (None, Some(d)) => now.saturating_add(seconds(d)?),
        (None, None) => now.saturating_add(pack.as_ref().map_or(DEFAULT_FOR, |p| {
            (p.chain.max_lifetime.saturating_add(p.chain.clock_skew)).min(i64::MAX as u64) as i64
        })),
    };
    if until < now {
        return Err(format!("`--until` {until} is in the past (now {now})"));
    }
    let r = Revocation::new(kind, args.value.clone(), until).map_err(|e| e.to_string())?;
    let receivers = runtime()?
        .block_on(store.revoke(&r))
        .map_err(|e| format!("store `{}`: {e}", store.url()))?;
    println!(
        "revoked {} `{}` until {until} ({}s from now) in `{}`: published to {receivers} subscribed node(s)",
        kind.as_str(),
        r.value,
        until - now,
        store.url()
    );
    Ok(0)
}

pub(crate) fn list(args: &ListArgs) -> Result<u8, String> {
    let (store, _) = store_and_pack(args.store.as_deref(), args.policies.as_ref())?;
    let now = custody_verifier::system_now();
    let rt = runtime()?;
    let (all, bad) = rt
        .block_on(store.list(now))
        .map_err(|e| format!("store `{}`: {e}", store.url()))?;
    for r in &all {
        println!(
            "{}\t{}\tuntil {} ({}s left)",
            r.kind.as_str(),
            r.value,
            r.until,
            r.until - now
        );
    }
    println!("{} revocation(s) in force in `{}`", all.len(), store.url());
    if bad > 0 {
        println!(
            "warning: {bad} entry(ies) of the store do not parse and are ignored by every node"
        );
    }
    if args.prune {
        let removed = rt
            .block_on(store.prune(now))
            .map_err(|e| format!("store `{}`: {e}", store.url()))?;
        println!("pruned {removed} expired or unreadable entry(ies)");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn durations() {
        assert_eq!(seconds("30s"), Ok(30));
        assert_eq!(seconds("15m"), Ok(900));
        assert_eq!(seconds("2h"), Ok(7200));
        assert_eq!(seconds("7d"), Ok(604_800));
        for bad in ["", "s", "0s", "-5m", "1w", "10", "9999999999999999999d"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }
}
