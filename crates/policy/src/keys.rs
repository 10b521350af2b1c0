//! Each domain's key files, read and merged into the domain's one key set.

use custody_jose::{parse_key_set, KeySet, KeySetError, Limits};

use crate::error::{LoadError, LoadErrorKind, Warning, WarningKind};
use crate::files::FileLog;
use crate::merge::{DraftDomain, KeyRef};

/// Problems found while reading key files.
#[derive(Default)]
pub(crate) struct KeyReport {
    pub(crate) errors: Vec<LoadError>,
    pub(crate) warnings: Vec<Warning>,
}

/// Reads the key files `refs` of `domain` (its `keys` or its `biscuit_keys`) and merges their
/// keys; problems go to `report`.
pub(crate) fn load_domain_keys(
    domain: &DraftDomain,
    refs: &[KeyRef],
    limits: &Limits,
    log: &mut FileLog,
    report: &mut KeyReport,
) -> KeySet {
    let mut keys = KeySet::new();
    let errors_before = report.errors.len();
    for key_ref in refs {
        let Some(set) = load_file(key_ref, limits, log, report) else {
            continue;
        };
        if let Err(e) = keys.merge(set) {
            let msg = match e {
                KeySetError::DuplicateKid(kid) => format!(
                    "kid `{kid}` appears twice in domain `{}`: key file `{}` repeats a kid of an earlier key file",
                    domain.name, key_ref.written
                ),
                other => format!("key file `{}`: {other}", key_ref.written),
            };
            report
                .errors
                .push(error(LoadErrorKind::DuplicateKid, key_ref, msg));
        }
    }
    let clean = report.errors.len() == errors_before;
    if let Some(first) = refs.first().filter(|_| clean && keys.is_empty()) {
        let msg = format!(
            "domain `{}` has no usable key: every token it issues fails with `unknown_key`",
            domain.name
        );
        let (path, at) = (&first.at.path, Some(first.at.location));
        report
            .warnings
            .push(Warning::new(WarningKind::NoUsableKeys, path, at, msg));
    }
    keys
}

fn load_file(
    key_ref: &KeyRef,
    limits: &Limits,
    log: &mut FileLog,
    report: &mut KeyReport,
) -> Option<KeySet> {
    let what = format!("key file `{}`", key_ref.written);
    let bytes = match log.read(&key_ref.resolved, limits.pack_file_bytes) {
        Ok(bytes) => bytes,
        Err(e) => {
            let e = e.into_load_error(&key_ref.at.path, Some(key_ref.at.location), &what);
            report.errors.push(e);
            return None;
        }
    };
    match parse_key_set(&bytes, limits) {
        Ok(parsed) => {
            for skipped in parsed.skipped {
                let msg = format!("{what}: {skipped}");
                report.warnings.push(Warning::new(
                    WarningKind::SkippedKey,
                    &key_ref.at.path,
                    Some(key_ref.at.location),
                    msg,
                ));
            }
            if !parsed.wit_keys.is_empty() {
                let kids: Vec<&str> = parsed.wit_keys.keys().iter().map(|k| k.kid()).collect();
                let msg = format!(
                    "{what}: `wit-svid` key(s) {} verify WIMSE workload identity tokens only, not access tokens",
                    kids.join(", ")
                );
                report.warnings.push(Warning::new(
                    WarningKind::SkippedKey,
                    &key_ref.at.path,
                    Some(key_ref.at.location),
                    msg,
                ));
            }
            Some(parsed.keys)
        }
        Err(e) => {
            let kind = match e {
                KeySetError::DuplicateKid(_) => LoadErrorKind::DuplicateKid,
                KeySetError::TooLarge(_) => LoadErrorKind::TooLarge,
                _ => LoadErrorKind::KeySet,
            };
            report
                .errors
                .push(error(kind, key_ref, format!("{what}: {e}")));
            None
        }
    }
}

fn error(kind: LoadErrorKind, key_ref: &KeyRef, message: String) -> LoadError {
    LoadError::new(kind, &key_ref.at.path, Some(key_ref.at.location), message)
}
