//! Loading a policy pack: a directory of trust files, key files and Cedar files, read once into
//! the model (`model.rs`).

use std::path::{Path, PathBuf};

use custody_jose::Limits;

use crate::cedar::{self, CedarFiles, CedarReport};
use crate::error::{LoadError, LoadErrorKind, Warning};
use crate::files::{describe_io, utf8, FileLog};
use crate::keys::{load_domain_keys, load_domain_material, KeyReport};
use crate::merge::{Draft, Merger};
use crate::model::{CaFile, DomainConfig, PolicyPack};
use crate::syntax;

/// A loaded pack and the warnings `custody check` should show.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The pack.
    pub pack: PolicyPack,
    /// Legal but probably unintended things, sorted by file and position.
    pub warnings: Vec<Warning>,
}

impl PolicyPack {
    /// Loads and checks the pack in `dir`, collecting every problem found.
    ///
    /// Only the top level of `dir` is scanned: `*.trust` (at least one, merged as if one file),
    /// `*.cedar`, at most one `*.cedarschema`, and `entities.json`; other files and all
    /// subdirectories are ignored, except the key files the trust files name.
    pub fn load(dir: &Path, limits: &Limits) -> Result<Loaded, Vec<LoadError>> {
        let listing = list_dir(dir).map_err(|e| vec![e])?;
        let mut log = FileLog::default();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let draft = load_trust(
            dir,
            &listing.trust,
            limits,
            &mut log,
            &mut errors,
            &mut warnings,
        );
        let mut keys = KeyReport::default();
        let domains = draft
            .domains
            .iter()
            .map(|d| {
                (
                    d,
                    load_domain_material(d, &d.keys, limits, &mut log, &mut keys),
                )
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(d, material)| DomainConfig {
                name: d.name.clone(),
                issuers: d.issuers.clone(),
                keys: material.tokens,
                wit_keys: material.wit,
                x509_authorities: material.x509,
                key_files: d.keys.iter().map(|k| k.resolved.clone()).collect(),
                biscuit_keys: load_domain_keys(d, &d.biscuit_keys, limits, &mut log, &mut keys),
                biscuit_key_files: d.biscuit_keys.iter().map(|k| k.resolved.clone()).collect(),
                sources: d.sources.clone(),
                refresh: d.refresh,
                ca: d
                    .ca
                    .as_ref()
                    .and_then(|ca| read_ca(ca, limits, &mut log, &mut keys)),
            })
            .collect();
        let mut cedar = CedarReport::default();
        let cedar_pack = cedar::load(dir, &listing.cedar, limits, &mut log, &mut cedar);
        errors.extend(keys.errors.into_iter().chain(cedar.errors));
        warnings.extend(keys.warnings.into_iter().chain(cedar.warnings));
        let local = match draft.local {
            Some(local) if errors.is_empty() => local,
            _ if errors.is_empty() => {
                let msg = "no usable `local` declaration";
                return Err(vec![LoadError::new(LoadErrorKind::Local, dir, None, msg)]);
            }
            _ => {
                errors.sort_by(|a, b| (&a.path, a.location).cmp(&(&b.path, b.location)));
                return Err(errors);
            }
        };
        let pack = PolicyPack {
            local,
            domains,
            federation: draft.federation,
            chain: draft.chain,
            cedar: cedar_pack,
            resource: draft.resource,
            store: draft.store,
            version: log.version(dir),
            dir: dir.to_path_buf(),
        };
        warnings.sort_by(|a, b| (&a.path, a.location).cmp(&(&b.path, b.location)));
        Ok(Loaded { pack, warnings })
    }
}

/// Reads a domain's `ca` file: PEM text holding at least one certificate.
fn read_ca(
    ca: &crate::merge::KeyRef,
    limits: &Limits,
    log: &mut FileLog,
    report: &mut KeyReport,
) -> Option<CaFile> {
    let what = format!("ca file `{}`", ca.written);
    let pem = match log.read(&ca.resolved, limits.pack_file_bytes) {
        Ok(bytes) => bytes,
        Err(e) => {
            let e = e.into_load_error(&ca.at.path, Some(ca.at.location), &what);
            report.errors.push(e);
            return None;
        }
    };
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        let msg = format!("{what} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)");
        let e = LoadError::new(
            LoadErrorKind::KeySource,
            &ca.at.path,
            Some(ca.at.location),
            msg,
        );
        report.errors.push(e);
        return None;
    }
    Some(CaFile {
        path: ca.resolved.clone(),
        pem,
    })
}

/// Reads, parses and merges the trust files.
fn load_trust(
    dir: &Path,
    files: &[PathBuf],
    limits: &Limits,
    log: &mut FileLog,
    errors: &mut Vec<LoadError>,
    warnings: &mut Vec<Warning>,
) -> Draft {
    let mut merger = Merger::default();
    let (mut read_all, mut local_dropped) = (true, false);
    for path in files {
        let text = log
            .read(path, limits.pack_file_bytes)
            .map_err(|e| e.into_load_error(path, None, "trust file"))
            .and_then(|bytes| utf8(bytes, path));
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                errors.push(e);
                read_all = false;
                continue;
            }
        };
        let parsed = syntax::parse(&text, path, limits);
        errors.extend(parsed.errors);
        read_all &= !parsed.syntax_failed;
        local_dropped |= parsed.local_dropped;
        merger.add(&parsed.file);
    }
    let outcome = merger.finish(dir, read_all, local_dropped);
    errors.extend(outcome.errors);
    warnings.extend(outcome.warnings);
    outcome.draft
}

/// The files at the top of a pack directory, by role, each sorted by path.
struct Listing {
    trust: Vec<PathBuf>,
    cedar: CedarFiles,
}

/// What the loader makes of a file at the top level of a pack directory, by its name; `None`
/// for a file it ignores. (The sidecar's reload watches exactly these, and the key files.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackEntry {
    /// `*.trust`
    Trust,
    /// `*.cedar`
    Cedar,
    /// `*.cedarschema`
    CedarSchema,
    /// `entities.json`
    Entities,
}

impl PackEntry {
    /// The kind of the entry at `path`, by its file name.
    pub fn of(path: &Path) -> Option<PackEntry> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("trust") => Some(PackEntry::Trust),
            Some("cedar") => Some(PackEntry::Cedar),
            Some("cedarschema") => Some(PackEntry::CedarSchema),
            _ if path.file_name().is_some_and(|n| n == "entities.json") => {
                Some(PackEntry::Entities)
            }
            _ => None,
        }
    }
}

fn list_dir(dir: &Path) -> Result<Listing, LoadError> {
    let io_error = |e: std::io::Error| {
        let msg = format!("cannot read the pack directory: {}", describe_io(&e));
        LoadError::new(LoadErrorKind::Io, dir, None, msg)
    };
    let mut listing = Listing {
        trust: Vec::new(),
        cedar: CedarFiles::default(),
    };
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if !path.is_file() {
            continue;
        }
        match PackEntry::of(&path) {
            Some(PackEntry::Trust) => listing.trust.push(path),
            Some(PackEntry::Cedar) => listing.cedar.policies.push(path),
            Some(PackEntry::CedarSchema) => listing.cedar.schemas.push(path),
            Some(PackEntry::Entities) => listing.cedar.entities = Some(path),
            None => {}
        }
    }
    if listing.trust.is_empty() {
        let msg = "no `*.trust` file in the pack directory";
        return Err(LoadError::new(LoadErrorKind::PackLayout, dir, None, msg));
    }
    listing.trust.sort();
    listing.cedar.policies.sort();
    listing.cedar.schemas.sort();
    Ok(listing)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests;
