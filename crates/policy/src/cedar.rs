//! The pack's Cedar side: policy files, the optional schema (strict validation) and entities.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use cedar_policy::{
    Entities, Policy, PolicyId, PolicySet, Schema, SchemaFragment, ValidationMode, Validator,
};
use custody_jose::Limits;
use miette::Diagnostic;

use crate::error::{LineIndex, LoadError, LoadErrorKind, Location, Warning, WarningKind};
use crate::files::{utf8, FileLog};
use crate::model::CedarPack;

/// The Cedar files found at the top of a pack directory, each list sorted by path.
#[derive(Default)]
pub(crate) struct CedarFiles {
    pub(crate) policies: Vec<PathBuf>,
    pub(crate) schemas: Vec<PathBuf>,
    pub(crate) entities: Option<PathBuf>,
}

/// Problems found on the Cedar side.
#[derive(Default)]
pub(crate) struct CedarReport {
    pub(crate) errors: Vec<LoadError>,
    pub(crate) warnings: Vec<Warning>,
}

/// Loads the Cedar side of a pack; `None` when the pack has no `*.cedar` file.
pub(crate) fn load(
    dir: &Path,
    files: &CedarFiles,
    limits: &Limits,
    log: &mut FileLog,
    report: &mut CedarReport,
) -> Option<CedarPack> {
    let (schema, schema_json) = match load_schema(dir, &files.schemas, limits, log, report) {
        Some((s, j)) => (Some(s), j),
        None => (None, None),
    };
    let mut policies = Policies::default();
    for path in &files.policies {
        if let Some(text) = read_text(path, limits, log, report) {
            policies.add_file(path, text, limits, report);
        }
    }
    if let Some(schema) = &schema {
        policies.validate(schema, report);
    }
    let entities = load_entities(
        files.entities.as_deref(),
        schema.as_ref(),
        limits,
        log,
        report,
    );
    if files.policies.is_empty() {
        unused(files, report);
        return None;
    }
    if let (Some(path), Some(json)) = (files.schemas.first(), &schema_json) {
        context_warnings(path, json, report);
    }
    Some(CedarPack {
        policies: policies.set,
        schema,
        schema_json,
        entities,
    })
}

fn unused(files: &CedarFiles, report: &mut CedarReport) {
    let unused = files.schemas.iter().chain(&files.entities);
    for path in unused {
        let msg = "no `*.cedar` policy file in the pack, so this file is not used";
        report
            .warnings
            .push(Warning::new(WarningKind::UnusedCedarFile, path, None, msg));
    }
}

fn read_text(
    path: &Path,
    limits: &Limits,
    log: &mut FileLog,
    report: &mut CedarReport,
) -> Option<String> {
    let bytes = log
        .read(path, limits.pack_file_bytes)
        .map_err(|e| report.errors.push(e.into_load_error(path, None, "file")))
        .ok()?;
    utf8(bytes, path).map_err(|e| report.errors.push(e)).ok()
}

/// The location of a Cedar diagnostic's first label, in `text`.
fn diagnostic_location(diag: &dyn Diagnostic, text: &str) -> Option<Location> {
    let offset = diag.labels()?.next()?.offset();
    Some(LineIndex::new(text).locate(offset))
}

/// A Cedar error's message, the errors it wraps, and its help, in one line.
fn diagnostic_message(diag: &(impl Diagnostic + ?Sized)) -> String {
    let mut msg = diag.to_string();
    let mut source = diag.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        source = inner.source();
    }
    if let Some(help) = diag.help() {
        msg = format!("{msg}: {help}");
    }
    msg
}

/// The merged policy set and, for each policy id, the file it came from.
#[derive(Default)]
struct Policies {
    set: PolicySet,
    origin: HashMap<String, usize>,
    first_at: HashMap<String, (PathBuf, Option<Location>)>,
    files: Vec<(PathBuf, String)>,
    count: usize,
}

/// One policy or template of a file, in source order.
struct Entry {
    index: usize,
    text: Option<String>,
    policy: Option<Policy>,
}

impl Policies {
    fn add_file(&mut self, path: &Path, text: String, limits: &Limits, report: &mut CedarReport) {
        let parsed = match PolicySet::from_str(&text) {
            Ok(parsed) => parsed,
            Err(errors) => {
                for e in errors.iter() {
                    let at = diagnostic_location(e, &text);
                    let msg = diagnostic_message(e);
                    report
                        .errors
                        .push(LoadError::new(LoadErrorKind::CedarSyntax, path, at, msg));
                }
                return;
            }
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lines = LineIndex::new(&text);
        let mut cursor = 0;
        for entry in entries(&parsed) {
            let at = entry.text.as_deref().and_then(|t| {
                let found = text.get(cursor..)?.find(t)? + cursor;
                cursor = found + t.len();
                Some(lines.locate(found))
            });
            match entry.policy {
                None => report.errors.push(LoadError::new(
                    LoadErrorKind::CedarTemplate,
                    path,
                    at,
                    "templates are not supported: write static policies",
                )),
                Some(policy) => self.add(path, &stem, entry.index, policy, at, limits, report),
            }
        }
        self.files.push((path.to_path_buf(), text));
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one argument per part of a parsed policy file; a struct would only rename them"
    )]
    fn add(
        &mut self,
        path: &Path,
        stem: &str,
        index: usize,
        policy: Policy,
        at: Option<Location>,
        limits: &Limits,
        report: &mut CedarReport,
    ) {
        let id = policy
            .annotation("id")
            .map_or_else(|| format!("{stem}.{index}"), str::to_owned);
        if let Some((first, first_at)) = self.first_at.get(&id) {
            let first = match first_at {
                Some(l) => format!("{}:{l}", first.display()),
                None => first.display().to_string(),
            };
            let msg = format!("duplicate policy id `{id}` (first at {first})");
            report.errors.push(LoadError::new(
                LoadErrorKind::DuplicatePolicyId,
                path,
                at,
                msg,
            ));
            return;
        }
        self.count += 1;
        if self.count > limits.policies {
            if self.count == limits.policies + 1 {
                let msg = format!("more than {} Cedar policies in the pack", limits.policies);
                report.errors.push(LoadError::new(
                    LoadErrorKind::TooManyPolicies,
                    path,
                    at,
                    msg,
                ));
            }
            return;
        }
        self.first_at.insert(id.clone(), (path.to_path_buf(), at));
        if let Err(e) = self.set.add(policy.new_id(PolicyId::new(&id))) {
            let msg = format!("policy `{id}`: {e}");
            report.errors.push(LoadError::new(
                LoadErrorKind::DuplicatePolicyId,
                path,
                at,
                msg,
            ));
            return;
        }
        self.origin.insert(id, self.files.len());
    }

    /// Strict validation against the schema; every error is a load error.
    fn validate(&self, schema: &Schema, report: &mut CedarReport) {
        let result = Validator::new(schema.clone()).validate(&self.set, ValidationMode::Strict);
        for e in result.validation_errors() {
            let (path, at) = self.locate(e.policy_id(), e);
            let msg = diagnostic_message(e);
            report.errors.push(LoadError::new(
                LoadErrorKind::CedarValidation,
                &path,
                at,
                msg,
            ));
        }
        for w in result.validation_warnings() {
            let (path, at) = self.locate(w.policy_id(), w);
            let msg = diagnostic_message(w);
            report
                .warnings
                .push(Warning::new(WarningKind::Cedar, &path, at, msg));
        }
    }

    fn locate(&self, id: &PolicyId, diag: &dyn Diagnostic) -> (PathBuf, Option<Location>) {
        let file = self
            .origin
            .get(AsRef::<str>::as_ref(id))
            .and_then(|i| self.files.get(*i));
        match file {
            Some((path, text)) => (path.clone(), diagnostic_location(diag, text)),
            None => (PathBuf::new(), None),
        }
    }
}

/// The static policies and templates of a freshly parsed set, in source order (Cedar numbers
/// them `policy0`, `policy1`, … as they appear).
fn entries(parsed: &PolicySet) -> Vec<Entry> {
    let index = |id: &PolicyId| -> usize {
        let n = AsRef::<str>::as_ref(id)
            .strip_prefix("policy")
            .and_then(|n| n.parse().ok());
        n.unwrap_or(usize::MAX)
    };
    let statics = parsed.policies().map(|p| Entry {
        index: index(p.id()),
        text: p.to_cedar(),
        policy: Some(p.clone()),
    });
    let templates = parsed.templates().map(|t| Entry {
        index: index(t.id()),
        text: Some(t.to_cedar()),
        policy: None,
    });
    let mut all: Vec<Entry> = statics.chain(templates).collect();
    all.sort_by_key(|e| e.index);
    all
}

/// A warning for every action whose declared context cannot hold custody's own context
/// record: with a schema every Cedar request is validated, so each such action's calls would
/// all be refused (`invalid_request`).
fn context_warnings(path: &Path, json: &serde_json::Value, report: &mut CedarReport) {
    for action in crate::schema_actions(json) {
        if let Some(why) = crate::custody_context_mismatch(json, &action) {
            let msg = format!(
                "action `{action}`'s context cannot hold what custody sends ({why}): every call \
                 for it will be refused as `invalid_request`; declare custody's context as \
                 policies/demo/demo.cedarschema does"
            );
            report
                .warnings
                .push(Warning::new(WarningKind::Cedar, path, None, msg));
        }
    }
}

fn load_schema(
    dir: &Path,
    schemas: &[PathBuf],
    limits: &Limits,
    log: &mut FileLog,
    report: &mut CedarReport,
) -> Option<(Schema, Option<serde_json::Value>)> {
    if schemas.len() > 1 {
        let names: Vec<String> = schemas
            .iter()
            .map(|p| format!("`{}`", p.file_name().unwrap_or_default().to_string_lossy()))
            .collect();
        let msg = format!("more than one `*.cedarschema` file: {}", names.join(", "));
        report
            .errors
            .push(LoadError::new(LoadErrorKind::PackLayout, dir, None, msg));
        return None;
    }
    let path = schemas.first()?;
    let text = read_text(path, limits, log, report)?;
    match Schema::from_cedarschema_str(&text) {
        Ok((schema, warnings)) => {
            for w in warnings {
                let at = diagnostic_location(&w, &text);
                let msg = diagnostic_message(&w);
                report
                    .warnings
                    .push(Warning::new(WarningKind::Cedar, path, at, msg));
            }
            let json = SchemaFragment::from_cedarschema_str(&text)
                .ok()
                .and_then(|(f, _)| f.to_json_value().ok());
            Some((schema, json))
        }
        Err(e) => {
            let at = diagnostic_location(&e, &text);
            let msg = diagnostic_message(&e);
            report
                .errors
                .push(LoadError::new(LoadErrorKind::CedarSchema, path, at, msg));
            None
        }
    }
}

fn load_entities(
    path: Option<&Path>,
    schema: Option<&Schema>,
    limits: &Limits,
    log: &mut FileLog,
    report: &mut CedarReport,
) -> Entities {
    let Some(path) = path else {
        // without entities.json, the schema's action hierarchy is still known
        return schema
            .and_then(|s| s.action_entities().ok())
            .unwrap_or_else(Entities::empty);
    };
    let parsed = log
        .read(path, limits.pack_file_bytes)
        .map_err(|e| e.into_load_error(path, None, "file"))
        .and_then(|bytes| {
            let json = custody_jose::json::parse(&bytes, limits.json_depth).map_err(|e| {
                LoadError::new(LoadErrorKind::CedarEntities, path, None, e.to_string())
            })?;
            Entities::from_json_value(json, schema).map_err(|e| {
                LoadError::new(
                    LoadErrorKind::CedarEntities,
                    path,
                    None,
                    diagnostic_message(&e),
                )
            })
        });
    parsed.unwrap_or_else(|e| {
        report.errors.push(e);
        Entities::empty()
    })
}
