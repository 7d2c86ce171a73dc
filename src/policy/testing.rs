//! Policy test suites (`etax-authz test`): named requests with the decision
//! the authors expect, run against a [`PolicySnapshot`] exactly as the server
//! decides — only the policies [`PolicySnapshot::policies_for`] the action,
//! and any evaluation error denies (fail closed, like `crate::decision`).
//!
//! A suite is a JSON file (YAML is not supported: `serde_yaml` is deprecated
//! and unmaintained, and no well-kept successor is in our dependency set):
//!
//! ```json
//! {
//!   "name": "login",
//!   "namespace": "Etax",
//!   "entities": "fixtures/demo-entities.json",
//!   "cases": [
//!     { "name": "legal rep logs in by SMS",
//!       "principal": "Staff::\"91…/resident_id:21…\"",
//!       "action": "Action::\"loginNormal\"",
//!       "resource": "Enterprise::\"91…\"",
//!       "context": { "factors": ["enterprise_password", "sms_otp"] },
//!       "decision": "allow",
//!       "reasons": ["login.normal"] }
//!   ]
//! }
//! ```
//!
//! `entities` is either an array in Cedar's JSON entity format or the path of
//! a file holding one, relative to the suite. `namespace`, when set, is put in
//! front of entity references that leave it out. `reasons`, when present,
//! must equal the determining policy ids (in any order).
//!
//! Coverage: a `permit` is covered when some case allowed because of it and
//! some case that evaluated it (its action) was denied; a `forbid` when some
//! case was denied because of it and some case that evaluated it was allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{Context, Effect, Entities, EntityUid, Request, Schema};
use serde::Deserialize;

use super::PolicySnapshot;

/// One suite file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The JSON Schema editors check the file against
    /// (`suite.schema.json`); ignored here.
    #[serde(default, rename = "$schema")]
    pub json_schema: Option<String>,
    /// Shown in the output; the file stem when absent.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Namespace put in front of references that leave it out (`Etax`).
    #[serde(default)]
    pub namespace: Option<String>,
    pub entities: EntitySource,
    pub cases: Vec<Case>,
}

/// Where a suite's entities come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EntitySource {
    /// A fixture file in Cedar's JSON entity format, relative to the suite.
    File(String),
    /// A list of fixture file paths (strings, relative to the suite) and
    /// entities in Cedar's JSON format (objects), read in order: an entity
    /// whose uid an earlier item already gave replaces it, so a suite can
    /// take a shared fixture and add or change a few entities.
    List(Vec<serde_json::Value>),
}

/// The decision a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    Allow,
    Deny,
}

impl Expected {
    fn as_str(self) -> &'static str {
        match self {
            Expected::Allow => "allow",
            Expected::Deny => "deny",
        }
    }
}

/// One request and what the authors expect of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub principal: String,
    pub action: String,
    pub resource: String,
    #[serde(default = "empty_object")]
    pub context: serde_json::Value,
    pub decision: Expected,
    /// The determining policy ids, when the case pins them.
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A suite that could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Only the place and the expected shape: serde's own message quotes
    /// the offending value, which may be anything the file holds.
    #[error("{path}:{line}:{column}: {problem}; expected {expected}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        problem: &'static str,
        expected: &'static str,
    },
    #[error("{path}: entities do not match the schema: {message}")]
    Entities { path: String, message: String },
    #[error(
        "{suite}: entities: a fixture must be a relative path inside the suite's directory \
         ({reason})"
    )]
    FixtureOutside { suite: String, reason: &'static str },
}

/// How one case went.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub suite: String,
    pub name: String,
    /// The suite file, and the case's index in its `cases` (from 0).
    pub file: String,
    pub index: usize,
    /// `None` when the case passed; otherwise what differed.
    pub failure: Option<String>,
    /// For a failed case: its context, and the explain trace of every
    /// policy the action's index holds (`super::explain`).
    pub context: serde_json::Value,
    pub trace: Vec<String>,
}

/// What one case's evaluation produced.
#[derive(Debug, Clone)]
struct Outcome {
    action: EntityUid,
    allowed: bool,
    reasons: BTreeSet<String>,
}

/// The result of running suites: every case, and policy coverage.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: Vec<CaseResult>,
    /// Suites that could not be loaded.
    pub errors: Vec<SuiteError>,
    pub coverage: BTreeMap<String, PolicyCoverage>,
}

/// How the cases exercised one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyCoverage {
    pub file: String,
    pub forbid: bool,
    /// Cases this policy determined.
    pub determined: usize,
    /// Allowed cases that evaluated this policy.
    pub allow_cases: usize,
    /// Denied cases that evaluated this policy.
    pub deny_cases: usize,
}

impl PolicyCoverage {
    /// What is missing, or `None` when the policy is covered both ways.
    pub fn gap(&self) -> Option<&'static str> {
        if self.determined == 0 {
            return Some("no case exercised it (it never determined a decision)");
        }
        let (decided_by_it, other) = if self.forbid {
            (self.deny_cases, self.allow_cases)
        } else {
            (self.allow_cases, self.deny_cases)
        };
        debug_assert!(decided_by_it > 0);
        if other == 0 {
            return Some(if self.forbid {
                "no allowed case evaluated it (only cases it denied)"
            } else {
                "no denied case evaluated it (only cases it allowed)"
            });
        }
        None
    }
}

impl Report {
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_none()).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed() + self.errors.len()
    }

    /// Keeps the coverage of the policies some case evaluated: when only
    /// some suites or cases ran, the others' policies are not this run's
    /// gaps.
    pub fn keep_coverage_of_what_ran(&mut self) {
        self.coverage
            .retain(|_, c| c.allow_cases + c.deny_cases > 0);
    }

    /// Policies not covered both ways, with what is missing.
    pub fn gaps(&self) -> impl Iterator<Item = (&str, &PolicyCoverage, &'static str)> {
        self.coverage
            .iter()
            .filter_map(|(id, c)| c.gap().map(|g| (id.as_str(), c, g)))
    }
}

/// The suite files (`*.json`) of `dir`, sorted; not its subdirectories, so
/// fixtures can live in `dir/fixtures/`.
pub fn suite_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // `*.schema.json` is the suites' JSON Schema, not a suite. Every
        // other `*.json` entry is a suite, a dangling link or a FIFO
        // included: reading it then fails by name, where leaving it out
        // would run fewer cases with nothing said. Hidden entries are not.
        // `login.JSON` and `login.json ` are suites too: a near miss run,
        // not left out.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().trim().to_ascii_lowercase())
            .unwrap_or_default();
        let schema = name.ends_with(".schema.json");
        if name.ends_with(".json") && !schema && !crate::files::hidden(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Runs suite files against `snapshot`, calling `on_case` as each case
/// finishes (the CLI prints from it). With `filter`, only the cases whose
/// `suite :: name` contains it run.
pub fn run_files(
    snapshot: &PolicySnapshot,
    files: &[PathBuf],
    filter: Option<&str>,
    mut on_case: impl FnMut(&CaseResult),
) -> Report {
    let mut report = Report {
        coverage: snapshot
            .policies()
            .policies()
            .map(|p| {
                let id = p.id().to_string();
                let coverage = PolicyCoverage {
                    file: snapshot.origins().get(&id).cloned().unwrap_or_default(),
                    forbid: p.effect() == Effect::Forbid,
                    determined: 0,
                    allow_cases: 0,
                    deny_cases: 0,
                };
                (id, coverage)
            })
            .collect(),
        ..Report::default()
    };
    for file in files {
        match load_suite(file) {
            Ok(suite) => run_suite(snapshot, file, &suite, filter, &mut report, &mut on_case),
            Err(e) => report.errors.push(e),
        }
    }
    report
}

/// Reads and parses one suite file.
pub fn load_suite(path: &Path) -> Result<Suite, SuiteError> {
    read_json(
        path,
        "a suite object (see policies/tests/suite.schema.json)",
    )
}

/// Reads and parses a suite or fixture file, errors naming it.
fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    expected: &'static str,
) -> Result<T, SuiteError> {
    let text =
        crate::files::read_text(path, crate::files::MAX_DOCUMENT_BYTES).map_err(|source| {
            SuiteError::Io {
                path: path.display().to_string(),
                source,
            }
        })?;
    serde_json::from_str(&text).map_err(|e| SuiteError::Syntax {
        path: path.display().to_string(),
        line: e.line(),
        column: e.column(),
        problem: match e.classify() {
            serde_json::error::Category::Io => "cannot read",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "wrong shape",
            serde_json::error::Category::Eof => "ends early",
        },
        expected,
    })
}

/// Where fixture `rel` of the suite at `suite` is. Refused unless it is
/// relative and, symlinks resolved, inside the suite's directory tree: a
/// suite is test data, and must not become a way to read (and have errors
/// echo) any file the process can open.
fn fixture_path(suite: &Path, rel: &str) -> Result<PathBuf, SuiteError> {
    let outside = |reason| SuiteError::FixtureOutside {
        suite: suite.display().to_string(),
        reason,
    };
    if Path::new(rel).is_absolute() {
        return Err(outside("an absolute path"));
    }
    let dir = suite.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let base = dir.canonicalize().map_err(|source| SuiteError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let fixture = dir.join(rel);
    let real = fixture.canonicalize().map_err(|source| SuiteError::Io {
        path: fixture.display().to_string(),
        source,
    })?;
    if !real.starts_with(&base) {
        return Err(outside("it leads out of it"));
    }
    Ok(real)
}

/// Runs one parsed suite (the cases `filter` selects); `path` names it and
/// anchors its fixture files.
pub fn run_suite(
    snapshot: &PolicySnapshot,
    path: &Path,
    suite: &Suite,
    filter: Option<&str>,
    report: &mut Report,
    on_case: &mut dyn FnMut(&CaseResult),
) {
    let suite_name = suite.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let selected =
        |case: &Case| filter.is_none_or(|f| format!("{suite_name} :: {}", case.name).contains(f));
    // A suite the filter leaves nothing of is not even loaded; one without
    // cases still has its entities checked.
    if filter.is_some() && !suite.cases.iter().any(selected) {
        return;
    }
    let entities = match suite_entities(path, suite, snapshot.schema()) {
        Ok(e) => e,
        Err(e) => {
            report.errors.push(e);
            return;
        }
    };
    for (index, case) in suite.cases.iter().enumerate().filter(|(_, c)| selected(c)) {
        let request = request_of(snapshot, suite, case);
        let outcome = request
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|r| evaluate(snapshot, &entities, r));
        let failure = match &outcome {
            Ok(outcome) => {
                record_coverage(snapshot, outcome, &mut report.coverage);
                compare(case, outcome)
            }
            Err(message) => Some(format!("request could not be evaluated: {message}")),
        };
        let trace = match (&failure, &request) {
            (Some(_), Ok(r)) => super::explain::explain(snapshot, r, &entities).lines(),
            _ => Vec::new(),
        };
        let result = CaseResult {
            suite: suite_name.clone(),
            name: case.name.clone(),
            file: path.display().to_string(),
            index,
            failure,
            context: case.context.clone(),
            trace,
        };
        on_case(&result);
        report.cases.push(result);
    }
}

/// The suite's entities: its fixture files and inline entities, in order,
/// a later entity replacing an earlier one of the same uid.
fn suite_entities(path: &Path, suite: &Suite, schema: &Schema) -> Result<Entities, SuiteError> {
    let items = match &suite.entities {
        EntitySource::File(rel) => vec![serde_json::Value::String(rel.clone())],
        EntitySource::List(items) => items.clone(),
    };
    let mut by_uid: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut origin = path.display().to_string();
    for item in items {
        let entities = match item {
            serde_json::Value::String(rel) => {
                let fixture = fixture_path(path, &rel)?;
                origin = fixture.display().to_string();
                read_json::<Vec<serde_json::Map<String, serde_json::Value>>>(
                    &fixture,
                    "an array of entity objects in Cedar's JSON format",
                )?
                .into_iter()
                .map(serde_json::Value::Object)
                .collect()
            }
            entity => vec![entity],
        };
        for e in entities {
            by_uid.insert(e.get("uid").map(|u| u.to_string()).unwrap_or_default(), e);
        }
    }
    let json = serde_json::Value::Array(by_uid.into_values().collect());
    Entities::from_json_value(json, Some(schema)).map_err(|e| SuiteError::Entities {
        path: origin,
        // Cedar's messages quote uids and values: ID numbers are masked.
        message: crate::ids::mask_text(&error_chain(&e)),
    })
}

/// The case as a Cedar request, checked against the schema.
fn request_of(snapshot: &PolicySnapshot, suite: &Suite, case: &Case) -> Result<Request, String> {
    let ns = suite.namespace.as_deref();
    let principal = parse_uid(ns, "principal", &case.principal)?;
    let action = parse_uid(ns, "action", &case.action)?;
    let resource = parse_uid(ns, "resource", &case.resource)?;
    let schema = snapshot.schema();
    if snapshot.policies_for(&action).is_none() {
        return Err(format!("action: {action} is not an action of the schema"));
    }
    let context = Context::from_json_value(case.context.clone(), Some((schema, &action)))
        .map_err(|e| format!("context: {}", error_chain(&e)))?;
    Request::new(principal, action, resource, context, Some(schema)).map_err(|e| error_chain(&e))
}

fn evaluate(
    snapshot: &PolicySnapshot,
    entities: &Entities,
    request: &Request,
) -> Result<Outcome, String> {
    let action = request.action().cloned().ok_or("action: unknown")?;
    let principal = request.principal().ok_or("principal: unknown")?;
    // The server's path: the policies indexed under this action and the
    // principal's type, evaluated as a decision evaluates them.
    let considered = snapshot
        .considered(&action, principal.type_name())
        .ok_or_else(|| format!("action: {action} is not an action of the schema"))?;
    let evaluated = super::evaluate::evaluate(request, considered.prepared, entities);
    if !evaluated.errors.is_empty() {
        // Fail closed, as the server does; the author must see why.
        return Err(format!(
            "evaluation errors (the server would deny): {}",
            evaluated.errors.join("; ")
        ));
    }
    Ok(Outcome {
        action,
        allowed: evaluated.allowed,
        reasons: evaluated.reasons.iter().map(|id| id.to_string()).collect(),
    })
}

fn compare(case: &Case, outcome: &Outcome) -> Option<String> {
    let actual = if outcome.allowed { "allow" } else { "deny" };
    let show = |set: &BTreeSet<String>| {
        if set.is_empty() {
            "no policy".to_owned()
        } else {
            set.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let mut problems = Vec::new();
    if actual != case.decision.as_str() {
        problems.push(format!(
            "expected {}, got {actual} (determined by: {})",
            case.decision.as_str(),
            show(&outcome.reasons)
        ));
    }
    if let Some(expected) = &case.reasons {
        let expected: BTreeSet<String> = expected.iter().cloned().collect();
        if expected != outcome.reasons {
            problems.push(format!(
                "expected determining policies [{}], got [{}]",
                show(&expected),
                show(&outcome.reasons)
            ));
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn record_coverage(
    snapshot: &PolicySnapshot,
    outcome: &Outcome,
    coverage: &mut BTreeMap<String, PolicyCoverage>,
) {
    for id in &outcome.reasons {
        if let Some(c) = coverage.get_mut(id) {
            c.determined += 1;
        }
    }
    let Some(evaluated) = snapshot.policies_for(&outcome.action) else {
        return;
    };
    for p in evaluated.policies() {
        if let Some(c) = coverage.get_mut(&p.id().to_string()) {
            if outcome.allowed {
                c.allow_cases += 1;
            } else {
                c.deny_cases += 1;
            }
        }
    }
}

/// `Type::"id"`, with `namespace::` put in front when it is left out.
pub fn parse_uid(namespace: Option<&str>, field: &str, text: &str) -> Result<EntityUid, String> {
    let full = match namespace {
        Some(ns) if !text.starts_with(&format!("{ns}::")) => format!("{ns}::{text}"),
        _ => text.to_owned(),
    };
    EntityUid::from_str(&full)
        .map_err(|e| format!("{field}: not an entity reference {text:?}: {e}"))
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
#[path = "testing_tests.rs"]
mod tests;
