//! Lists of items a token carries (scope items, a Biscuit block's string facts), deduplicated
//! and compared in linear time.
//!
//! A token's lists are as long as its size cap lets them be: about 1,500 distinct scope items
//! fit in an 8 KiB token. Comparing two such lists item by item costs a million string
//! comparisons, and a hop's signer chooses its list: a compromised agent holding a valid key
//! could make every call it forwards cost milliseconds at the gateway (measured before this
//! module: 4.6 ms a decision for two tokens of 1,000 items, against 0.8 µs for the standard
//! chain). Short lists are still scanned; past [`SCAN`] items a hash set (std's randomly
//! keyed SipHash, so the signer cannot choose colliding items) does the finding. The answer is
//! the same either way: the tests compare both against the plain scan.

use std::collections::HashSet;

use smallvec::SmallVec;

use crate::texts::Strs;

/// Up to this many items a plain scan is used: no allocation, and cheaper than hashing.
const SCAN: usize = 16;

/// `items` in their order, each kept at its first occurrence only.
pub(crate) fn unique<'a>(items: impl IntoIterator<Item = &'a str>) -> SmallVec<[&'a str; 8]> {
    let mut out = SmallVec::<[&str; 8]>::new();
    let mut seen: Option<HashSet<&str>> = None;
    for item in items {
        let new = match &mut seen {
            Some(set) => set.insert(item),
            None if out.len() < SCAN => !out.contains(&item),
            None => {
                let mut set: HashSet<&str> = out.iter().copied().collect();
                let new = set.insert(item);
                seen = Some(set);
                new
            }
        };
        if new {
            out.push(item);
        }
    }
    out
}

/// The first of `items`, in their order, that `set` does not hold.
pub(crate) fn first_missing<'a>(items: Strs<'a>, set: Strs<'_>) -> Option<&'a str> {
    if items.len().min(set.len()) <= SCAN {
        return items.into_iter().find(|i| !set.contains(i));
    }
    let held: HashSet<&str> = set.collect();
    items.into_iter().find(|i| !held.contains(i))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        reason = "test code: a panic is how a broken expectation is reported"
    )]

    use super::*;
    use crate::texts::Texts;

    /// The plain definitions the functions must agree with.
    fn unique_plain<'a>(items: &[&'a str]) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for i in items {
            if !out.contains(i) {
                out.push(i);
            }
        }
        out
    }

    fn scope(items: &[&str]) -> Texts {
        Texts::new("s", None, None, None, ["aud"], items.iter().copied())
    }

    /// Lists of every length around the switch from scanning to hashing, with repeats placed
    /// before, at and after it, and items that differ only late or only in length.
    fn lists() -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for n in [0usize, 1, 2, 15, 16, 17, 18, 40, 300] {
            let distinct: Vec<String> = (0..n).map(|i| format!("orders:{i}")).collect();
            out.push(distinct.clone());
            for at in [0, SCAN - 1, SCAN, SCAN + 1, n.saturating_sub(1)] {
                let mut v = distinct.clone();
                if let Some(first) = distinct.first() {
                    v.insert(at.min(v.len()), first.clone());
                    v.push(distinct[n / 2].clone());
                }
                out.push(v);
            }
            out.push(distinct.iter().map(|s| format!("{s}x")).collect());
            out.push(distinct.iter().rev().cloned().collect());
        }
        out.push(vec!["a".into(); 40]);
        out.push(vec!["".into(), "a".into(), "".into()]);
        out
    }

    #[test]
    fn unique_agrees_with_the_plain_scan() {
        for list in lists() {
            let items: Vec<&str> = list.iter().map(String::as_str).collect();
            assert_eq!(
                unique(items.iter().copied()).to_vec(),
                unique_plain(&items),
                "{items:?}"
            );
        }
    }

    #[test]
    fn first_missing_agrees_with_the_plain_scan() {
        let all = lists();
        for a in &all {
            for b in &all {
                let ta = scope(&a.iter().map(String::as_str).collect::<Vec<_>>());
                let tb = scope(&b.iter().map(String::as_str).collect::<Vec<_>>());
                let plain = ta.scope().find(|i| !tb.scope().contains(i));
                assert_eq!(
                    first_missing(ta.scope(), tb.scope()),
                    plain,
                    "{a:?} in {b:?}"
                );
            }
        }
    }

    #[test]
    fn the_first_missing_item_is_the_earliest_in_order() {
        let held: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
        let mut asked = held.clone();
        asked.insert(60, "late".into());
        asked.insert(30, "early".into());
        let held = scope(&held.iter().map(String::as_str).collect::<Vec<_>>());
        let asked = scope(&asked.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(first_missing(asked.scope(), held.scope()), Some("early"));
        assert_eq!(first_missing(held.scope(), asked.scope()), None);
    }
}
