//! Each domain's key files, read and merged into the domain's one key set.

use custody_jose::{parse_key_set, KeySet, KeySetError, Limits, ParsedKeySet};

use crate::error::{LoadError, LoadErrorKind, Warning, WarningKind};
use crate::files::FileLog;
use crate::merge::{DraftDomain, KeyRef};

/// Problems found while reading key files.
#[derive(Default)]
pub(crate) struct KeyReport {
    pub(crate) errors: Vec<LoadError>,
    pub(crate) warnings: Vec<Warning>,
}

/// What a domain's key files hold: token keys, WIT keys, X.509 authorities.
#[derive(Default)]
pub(crate) struct LoadedKeys {
    pub(crate) tokens: KeySet,
    pub(crate) wit: KeySet,
    pub(crate) x509: Vec<Vec<u8>>,
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
    load_domain_material(domain, refs, limits, log, report).tokens
}

/// [`load_domain_keys`], with the WIT keys (a bundle's `wit-svid` keys and a plain JWK Set's
/// keys) and the X.509 authorities (a bundle's `x509-svid` entries) as well.
pub(crate) fn load_domain_material(
    domain: &DraftDomain,
    refs: &[KeyRef],
    limits: &Limits,
    log: &mut FileLog,
    report: &mut KeyReport,
) -> LoadedKeys {
    let mut keys = KeySet::new();
    let mut wit = KeySet::new();
    let mut x509 = Vec::new();
    let errors_before = report.errors.len();
    for key_ref in refs {
        let Some(parsed) = load_file(key_ref, limits, log, report) else {
            continue;
        };
        let wit_part = match parsed.bundle {
            true => parsed.wit_keys,
            false => parsed.keys.clone(),
        };
        if let Err(e) = custody_svid::X509Authorities::from_der(parsed.x509.clone()) {
            let msg = format!(
                "key file `{}`: an `x509-svid` authority: {e}",
                key_ref.written
            );
            report
                .errors
                .push(error(LoadErrorKind::KeySet, key_ref, msg));
        }
        x509.extend(parsed.x509);
        let set = parsed.keys;
        // a plain JWK Set's keys are its WIT keys too: a clash is reported once
        if let Err(e) = keys.merge(set).and_then(|()| wit.merge(wit_part)) {
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
    let empty = keys.is_empty() && wit.is_empty() && x509.is_empty();
    if let Some(first) = refs.first().filter(|_| clean && empty) {
        let msg = format!(
            "domain `{}` has no usable key: every token it issues fails with `unknown_key`",
            domain.name
        );
        let (path, at) = (&first.at.path, Some(first.at.location));
        report
            .warnings
            .push(Warning::new(WarningKind::NoUsableKeys, path, at, msg));
    }
    LoadedKeys {
        tokens: keys,
        wit,
        x509,
    }
}

fn load_file(
    key_ref: &KeyRef,
    limits: &Limits,
    log: &mut FileLog,
    report: &mut KeyReport,
) -> Option<ParsedKeySet> {
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
            for skipped in &parsed.skipped {
                let msg = format!("{what}: {skipped}");
                report.warnings.push(Warning::new(
                    WarningKind::SkippedKey,
                    &key_ref.at.path,
                    Some(key_ref.at.location),
                    msg,
                ));
            }
            Some(parsed)
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
