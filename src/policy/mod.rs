//! Cedar schema and policies: loading, strict validation, the per-action
//! index, and the version that names a loaded set; authoring tools
//! ([`testing`], [`format`]) and hot [`reload`] build on it.
//!
//! A [`PolicySnapshot`] is immutable once built; the server shares the active
//! one through an `ArcSwap`, so evaluation never waits on a reload.

pub mod archive;
pub mod changes;
mod diagnostics;
pub mod diff;
pub mod evaluate;
pub mod explain;
pub mod format;
pub mod lint;
pub mod reads;
mod refusal;
pub mod reload;
pub mod testing;
mod vocabulary;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Effect, Entity, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet,
    PrincipalConstraint, ResourceConstraint, Schema, ValidationMode, Validator,
};
use cedar_policy_core::ast;
use sha2::{Digest, Sha256};

pub use diagnostics::{Diagnostic, Severity};
pub use refusal::Refusal;

/// Attribute dereference depth the validator allows (`principal.person.realNameVerified`
/// is 2). Bounding it bounds which entities a request's slice must contain.
pub const MAX_DEREF_LEVEL: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{} error(s) in the policies or schema", .0.iter().filter(|d| d.severity == Severity::Error).count())]
    Invalid(Vec<Diagnostic>),
}

/// A validated schema and policy set, indexed by action.
pub struct PolicySnapshot {
    schema: Schema,
    policies: PolicySet,
    by_action: HashMap<EntityUid, ActionIndex>,
    version: String,
    loaded_at_ms: u64,
    /// The file each policy came from.
    origins: BTreeMap<String, String>,
    /// What each forbid answers a refused caller (`@code`, `@message`).
    refusals: refusal::Refusals,
    warnings: Vec<Diagnostic>,
    /// Question shapes this schema accepted (`decision::request_check`).
    accepted: crate::decision::request_check::Accepted,
}

impl PolicySnapshot {
    /// Loads `*.cedar` from `policies_dir` (not its subdirectories) and the
    /// schema, and validates them strictly. Every policy needs a unique
    /// `@id("…")`, which becomes its policy id; every forbid also needs
    /// `@code("…")` and `@message("…")`, the error it refuses with. A
    /// schema of the `Etax` namespace must declare exactly the actions
    /// [`crate::domain::Action`] names.
    pub fn load(policies_dir: &Path, schema_path: &Path) -> Result<Self, LoadError> {
        let sources = Sources::read(policies_dir, schema_path)?;
        Self::from_sources(&sources.schema_file, &sources.schema, &sources.policy_files)
    }

    /// Builds a snapshot from in-memory texts: `(file name, text)` per policy file.
    pub fn from_sources(
        schema_file: &str,
        schema_src: &str,
        policy_files: &[(String, String)],
    ) -> Result<Self, LoadError> {
        check_no_nul(schema_file, schema_src, policy_files)?;
        let mut problems = Vec::new();
        let schema = match Schema::from_cedarschema_str(schema_src) {
            Ok((schema, _warnings)) => {
                problems.extend(vocabulary::check(schema_file, schema_src, &schema));
                Some(schema)
            }
            Err(e) => {
                problems.push(Diagnostic::from_cedar(
                    schema_file,
                    schema_src,
                    &e,
                    Severity::Error,
                    None,
                ));
                None
            }
        };

        let mut set = Collected::default();
        for (file_index, (file, src)) in policy_files.iter().enumerate() {
            set.add_file(file_index, file, src);
        }
        let Collected {
            policies,
            origins,
            refusals,
            texts,
            problems: policy_problems,
        } = set;
        problems.extend(policy_problems);

        let Some(schema) = schema else {
            return Err(LoadError::Invalid(problems));
        };
        let validation = Validator::new(schema.clone()).validate_with_level(
            &policies,
            ValidationMode::Strict,
            MAX_DEREF_LEVEL,
        );
        let place = |id: &PolicyId, err: &dyn miette::Diagnostic, severity| {
            let (file, src) = texts.get(&id.to_string()).cloned().unwrap_or_default();
            Diagnostic::from_cedar(&file, &src, err, severity, Some(id.to_string()))
        };
        for e in validation.validation_errors() {
            problems.push(place(e.policy_id(), e, Severity::Error));
        }
        let warnings: Vec<Diagnostic> = validation
            .validation_warnings()
            .map(|w| place(w.policy_id(), w, Severity::Warning))
            .collect();
        if !problems.is_empty() {
            problems.extend(warnings);
            return Err(LoadError::Invalid(problems));
        }

        let by_action = index_by_action(&schema, &policies);
        Ok(Self {
            version: version_of(schema_src, policy_files),
            schema,
            policies,
            by_action,
            loaded_at_ms: crate::now_ms(),
            origins,
            refusals,
            warnings,
            accepted: Default::default(),
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Question shapes this snapshot's schema accepted.
    pub fn accepted_requests(&self) -> &crate::decision::request_check::Accepted {
        &self.accepted
    }

    /// Every policy.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The policies that can apply to `action`: those whose action scope
    /// names it or a group containing it, and those with no action
    /// constraint. `None` for an action the schema does not declare.
    pub fn policies_for(&self, action: &EntityUid) -> Option<&PolicySet> {
        self.by_action.get(action).map(|a| &a.all.policies)
    }

    /// Of [`Self::policies_for`], those a principal of type `principal`
    /// can match: without the policies whose principal scope names another
    /// type (`principal is T`, `principal == T::"…"`), which Cedar would
    /// build a condition for and find false at its first conjunct, the
    /// scope, without evaluating anything else (so no error either).
    pub fn policies_for_principal(
        &self,
        action: &EntityUid,
        principal: &EntityTypeName,
    ) -> Option<&PolicySet> {
        self.considered(action, principal).map(|c| c.policies)
    }

    /// What Cedar is given for a question of `action` by a principal of
    /// type `principal`, from one lookup (a decision asks for all of it):
    /// `None` for an action the schema does not declare.
    pub fn considered(
        &self,
        action: &EntityUid,
        principal: &EntityTypeName,
    ) -> Option<Considered<'_>> {
        let index = self.by_action.get(action)?;
        let entry = index.by_principal.get(principal).unwrap_or(&index.all);
        Some(Considered {
            all: &index.all.policies,
            policies: &entry.policies,
            prepared: &entry.prepared,
            only_roots: entry.only_roots,
        })
    }

    /// The action as an entity whose parents are all its action groups,
    /// transitively: the one action entity a request for it needs, so that
    /// a request's entities can be built without the schema.
    ///
    /// In Cedar's core form and shared: every request's set of entities
    /// holds it (`decision::cedar_entities`), and cloning it for each was
    /// a hash set of groups and a uid copied per question.
    pub fn action_entity(&self, action: &EntityUid) -> Option<&Arc<ast::Entity>> {
        self.by_action.get(action).map(|a| &a.entity)
    }

    /// SHA-256 of the schema and policy texts: names this exact rule set in
    /// decisions and the decision log.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn loaded_at_ms(&self) -> u64 {
        self.loaded_at_ms
    }

    /// Policy id → the file it came from.
    pub fn origins(&self) -> &BTreeMap<String, String> {
        &self.origins
    }

    /// The refusal a deny speaks with: of its determining policies (the
    /// forbids that fired), the first in load order. `None` when nothing
    /// forbade — a default deny, which has no rule to name.
    pub fn refusal(&self, determining: &[String]) -> Option<Arc<Refusal>> {
        self.refusals.first(determining)
    }

    /// Validator warnings (e.g. a policy that can never apply).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }
}

/// The policies of a set's files as they are read, each under its `@id`,
/// with what is wrong with them so far.
#[derive(Default)]
struct Collected {
    policies: PolicySet,
    /// Policy id → the file it came from.
    origins: BTreeMap<String, String>,
    refusals: refusal::Refusals,
    /// Policy id → (file, text), to place validation diagnostics.
    texts: HashMap<String, (String, String)>,
    problems: Vec<Diagnostic>,
}

impl Collected {
    /// Parses one policy file (`file_index` is its place among the sorted
    /// files) and adds its policies.
    fn add_file(&mut self, file_index: usize, file: &str, src: &str) {
        match PolicySet::from_str(src) {
            Ok(parsed) => {
                let mut located = Located::new(src);
                for policy in parsed.policies() {
                    let offset = located.offset(&policy.to_string());
                    self.add_policy(file_index, file, src, offset, policy);
                }
                self.problems.extend(refuse_templates(file, src, &parsed));
            }
            Err(e) => {
                self.problems
                    .push(Diagnostic::from_cedar(file, src, &e, Severity::Error, None))
            }
        }
    }

    /// Adds a policy under its `@id`, after checking it has a unique one and,
    /// for a forbid, says how it refuses.
    fn add_policy(
        &mut self,
        file_index: usize,
        file: &str,
        src: &str,
        offset: usize,
        policy: &Policy,
    ) {
        let mut problem = |id: Option<&String>, message: String| {
            self.problems.push(Diagnostic::at_offset(
                file,
                src,
                offset,
                Severity::Error,
                id.cloned(),
                message,
            ))
        };
        let Some(raw) = policy.annotation("id") else {
            return problem(
                None,
                "policy has no @id(\"…\") annotation; every policy needs a unique id".into(),
            );
        };
        let policy_id = PolicyId::new(raw);
        // Filed under the id as Cedar displays it (escaped like
        // `str::escape_debug`), the name every answer, record and lookup
        // uses: under the raw text, a forbid `@id("it's")` lost its
        // refusal and its file (red team, session 13).
        let id = policy_id.to_string();
        if let Some(first) = self.origins.get(&id) {
            let message = format!("duplicate policy id (first defined in {first})");
            return problem(Some(&id), message);
        }
        match refusal::of(policy, &id) {
            Ok(Some(r)) => self.refusals.insert((file_index, offset), r),
            Ok(None) => {}
            Err(message) => problem(Some(&id), message),
        }
        self.policies
            .add(policy.new_id(policy_id))
            .expect("ids are unique and these are static policies");
        self.origins.insert(id.clone(), file.to_owned());
        self.texts.insert(id, (file.to_owned(), src.to_owned()));
    }
}

/// Where each policy of a file stands: its text's first occurrence not
/// taken by an earlier policy of the same text (two such are both refused,
/// as duplicate ids, and each is shown where it is).
struct Located<'a> {
    src: &'a str,
    taken: HashMap<String, usize>,
}

impl<'a> Located<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            taken: HashMap::new(),
        }
    }

    /// The byte offset of `text`, or 0 when it is not found as written.
    fn offset(&mut self, text: &str) -> usize {
        let from = self.taken.get(text).copied().unwrap_or(0);
        match self.src.get(from..).and_then(|rest| rest.find(text)) {
            Some(at) => {
                self.taken.insert(text.to_owned(), from + at + text.len());
                from + at
            }
            None => 0,
        }
    }
}

/// An error per template of `parsed`, where it stands: nothing here links
/// a template, so one would load and never apply while its author believes
/// it in force. For rule files and property files alike.
pub(crate) fn refuse_templates(file: &str, src: &str, parsed: &PolicySet) -> Vec<Diagnostic> {
    let mut located = Located::new(src);
    parsed
        .templates()
        .map(|template| {
            Diagnostic::at_offset(
                file,
                src,
                located.offset(&template.to_string()),
                Severity::Error,
                template
                    .annotation("id")
                    .map(|id| PolicyId::new(id).to_string()),
                "policy is a template (its scope has ?principal or ?resource); \
                 etax-authz links no templates, so it would never apply: \
                 name the entities in its scope, or write `principal`/`resource` \
                 alone for any"
                    .into(),
            )
        })
        .collect()
}

/// The texts a snapshot is built from, read from disk in one pass.
#[derive(Debug, Clone)]
pub struct Sources {
    pub schema_file: String,
    pub schema: String,
    /// `(file name, text)` per `*.cedar` file, sorted by name.
    pub policy_files: Vec<(String, String)>,
}

impl Sources {
    /// Reads the schema and every `*.cedar` file of `policies_dir` (not its
    /// subdirectories).
    pub fn read(policies_dir: &Path, schema_path: &Path) -> Result<Self, LoadError> {
        let schema = read(schema_path)?;
        let mut policy_files = Vec::new();
        let mut total = 0u64;
        for path in policy_files_in(policies_dir)? {
            let text = read(&path)?;
            // Bounded as a set too: many files at the bound each would
            // take the memory, on every reload.
            total += text.len() as u64;
            if total > MAX_FILE_BYTES {
                return Err(LoadError::Io {
                    path: policies_dir.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "the policy files hold more than {} MiB together",
                            MAX_FILE_BYTES >> 20
                        ),
                    ),
                });
            }
            policy_files.push((path.display().to_string(), text));
        }
        Ok(Self {
            schema_file: schema_path.display().to_string(),
            schema,
            policy_files,
        })
    }

    /// The version a snapshot built from these texts would have.
    pub fn version(&self) -> String {
        version_of(&self.schema, &self.policy_files)
    }
}

/// The `*.cedar` files of `dir` (not its subdirectories), sorted.
pub fn policy_files_in(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |source| LoadError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        // Every `*.cedar` entry, a dangling link or a directory included:
        // reading it then fails by name, where leaving it out would take
        // its rules out of force with nothing said. Hidden entries are not
        // policy files, as the shell's `*.cedar` does not name them: an
        // editor's lock (`.#functions.cedar`, a dangling link) must not
        // refuse the set, nor a hidden copy add rules no listing shows.
        if path.extension().is_some_and(|e| e == "cedar") && !crate::files::hidden(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A diagnostic per entry of `dir` that looks meant as a policy file but is
/// read by no load: its extension is `cedar` in another case
/// (`functions.CEDAR`). `check` shows them; the server, reading exactly
/// what `check` reads, never sees them.
pub fn near_misses(dir: &Path, severity: Severity) -> Vec<Diagnostic> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| {
                e != "cedar" && e.to_string_lossy().trim().eq_ignore_ascii_case("cedar")
            })
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|path| {
            Diagnostic::at_offset(
                &path.display().to_string(),
                "",
                0,
                severity,
                None,
                "is not read: policy files end in `.cedar`, in lower case, with no space after"
                    .into(),
            )
        })
        .collect()
}

fn read(path: &Path) -> Result<String, LoadError> {
    read_regular(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The text of the policy, schema or property file `path` ([`crate::files`]).
pub(crate) fn read_regular(path: &Path) -> std::io::Result<String> {
    crate::files::read_text(path, MAX_FILE_BYTES)
}

/// The most a policy, schema or property file may hold: the bundled ones
/// are a few KB, and a file that grows without end must not take the
/// server's memory with it.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Refuses NUL in any text or file name of a set. The version joins
/// texts with NUL separators and no lengths: with NUL inside a text, a
/// policy file's text could move into the schema's and leave the version
/// as it was. Cedar never needs NUL, so refusing it keeps every existing
/// version value while making the join unambiguous.
pub(crate) fn check_no_nul(
    schema_file: &str,
    schema_src: &str,
    policy_files: &[(String, String)],
) -> Result<(), LoadError> {
    let texts = std::iter::once((schema_file, schema_src))
        .chain(policy_files.iter().map(|(f, t)| (f.as_str(), t.as_str())));
    let problems: Vec<Diagnostic> = texts
        .filter_map(|(file, text)| {
            let (source, offset, what) = match (file.find('\0'), text.find('\0')) {
                (Some(_), _) => ("", 0, "the file name holds NUL (U+0000)"),
                (None, Some(offset)) => (text, offset, "NUL (U+0000) in the text"),
                (None, None) => return None,
            };
            Some(Diagnostic::at_offset(
                &file.replace('\0', "\\0"),
                source,
                offset,
                Severity::Error,
                None,
                format!("{what}: no Cedar text holds NUL, and the policy version separates texts with it"),
            ))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LoadError::Invalid(problems))
    }
}

/// The file name of a path, without its directories (as the version hashes
/// it).
pub(crate) fn plain_name(file: &str) -> String {
    PathBuf::from(file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn version_of(schema_src: &str, policy_files: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    h.update(b"schema\0");
    h.update(schema_src.as_bytes());
    for (file, src) in policy_files {
        let name = plain_name(file);
        h.update(b"\0policy-file\0");
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(src.as_bytes());
    }
    hex::encode(h.finalize())
}

/// What one action needs at decision time.
struct ActionIndex {
    /// Every policy that can match the action.
    all: Entry,
    /// Of those, the ones each principal type the schema gives the action
    /// can match.
    by_principal: HashMap<EntityTypeName, Entry>,
    entity: Arc<ast::Entity>,
}

/// One set of policies of the index, ready to be decided with.
struct Entry {
    policies: PolicySet,
    /// `policies`, each with its condition built ([`Prepared`]), in the
    /// set's own order.
    prepared: Vec<Prepared>,
    /// Whether `policies` read only the roots ([`reads::only_roots`]).
    only_roots: bool,
}

impl Entry {
    fn of(policies: PolicySet) -> Self {
        Self {
            prepared: policies.policies().map(Prepared::of).collect(),
            only_roots: reads::only_roots(&policies),
            policies,
        }
    }
}

/// A policy as a decision evaluates it: its condition (the scope's
/// constraints and every clause, as one expression) built once per loaded
/// set. Cedar's authorizer builds it again for every policy of every
/// question, and builds a whole policy per determining one to report its
/// id ([`evaluate`]).
pub struct Prepared {
    pub id: PolicyId,
    pub effect: Effect,
    /// The policy, for its slots' values.
    pub policy: ast::Policy,
    pub condition: ast::Expr,
}

impl Prepared {
    fn of(policy: &Policy) -> Self {
        let core: &ast::Policy = policy.as_ref();
        Self {
            id: policy.id().clone(),
            effect: policy.effect(),
            policy: core.clone(),
            condition: core.condition(),
        }
    }
}

/// The policies of one question's index entry ([`PolicySnapshot::considered`]).
pub struct Considered<'a> {
    /// [`PolicySnapshot::policies_for`] the action.
    pub all: &'a PolicySet,
    /// [`PolicySnapshot::policies_for_principal`]: what Cedar evaluates.
    pub policies: &'a PolicySet,
    /// `policies`, prepared, in the set's order.
    pub prepared: &'a [Prepared],
    /// Whether `policies` read no entity's data but the request's
    /// principal's and resource's ([`reads`]): then a question needs only
    /// those two, not what their attributes name.
    pub only_roots: bool,
}

/// For every action the schema declares, the policies that can match it.
/// Cedar evaluates every policy of a set on every request, so this is what
/// keeps the cost of a decision independent of unrelated rules.
fn index_by_action(schema: &Schema, policies: &PolicySet) -> HashMap<EntityUid, ActionIndex> {
    let actions = schema
        .action_entities()
        .expect("a validated schema yields its action entities");
    let mut index = HashMap::new();
    for action in schema.actions() {
        let groups: Vec<&EntityUid> = actions
            .ancestors(action)
            .map(|a| a.collect())
            .unwrap_or_default();
        let mut set = PolicySet::new();
        for policy in policies.policies() {
            if applies_to(policy, action, &groups) {
                set.add(policy.clone())
                    .expect("policy ids are unique within the full set");
            }
        }
        // Cedar builds each policy's whole condition (its body copied)
        // before it evaluates the scope: for a clerk's business question,
        // five of the action's seven policies were an enterprise's or an
        // agent's (BENCHMARKS.md, session 13).
        let resources: Vec<&EntityTypeName> = schema
            .resources_for_action(action)
            .into_iter()
            .flatten()
            .collect();
        let by_principal = schema
            .principals_for_action(action)
            .into_iter()
            .flatten()
            .map(|principal| {
                let mut of_type = PolicySet::new();
                for policy in set.policies().filter(|p| can_match(p, principal)) {
                    of_type
                        .add(within_scope(policy, principal, &resources))
                        .expect("policy ids are unique within the action's set");
                }
                (principal.clone(), Entry::of(of_type))
            })
            .collect();
        let entity = Entity::new_no_attrs(action.clone(), groups.into_iter().cloned().collect());
        let entity = Arc::new(AsRef::<ast::Entity>::as_ref(&entity).clone());
        index.insert(
            action.clone(),
            ActionIndex {
                all: Entry::of(set),
                by_principal,
                entity,
            },
        );
    }
    index
}

/// Whether `policy`'s principal scope can hold for a principal of type
/// `principal`: `in` an entity can, for any type.
fn can_match(policy: &Policy, principal: &EntityTypeName) -> bool {
    match policy.principal_constraint() {
        PrincipalConstraint::Any | PrincipalConstraint::In(_) => true,
        PrincipalConstraint::Eq(uid) => uid.type_name() == principal,
        PrincipalConstraint::Is(t) | PrincipalConstraint::IsIn(t, _) => &t == principal,
    }
}

/// `policy` as Cedar is to evaluate it on the requests of one index entry:
/// the scope's conjuncts those requests always meet left out — the action
/// (the entry's policies are the ones whose action scope holds for it,
/// [`applies_to`]), `principal is T` for the entry's principal type, and
/// `resource is T` when T is the only resource type the schema gives the
/// action (a request of another type is refused before Cedar). Cedar
/// evaluates a policy as its scope and then its body, so dropping a
/// conjunct that is true changes no answer, reason or error; it spares
/// building `action in [...]`'s set for every question. Same id and
/// annotations; kept as it is if Cedar's JSON form refuses the copy.
fn within_scope(
    policy: &Policy,
    principal: &EntityTypeName,
    resources: &[&EntityTypeName],
) -> Policy {
    let any = || serde_json::json!({ "op": "All" });
    let Ok(mut est) = policy.to_json() else {
        return policy.clone();
    };
    est["action"] = any();
    if matches!(policy.principal_constraint(), PrincipalConstraint::Is(t) if &t == principal) {
        est["principal"] = any();
    }
    if matches!(policy.resource_constraint(), ResourceConstraint::Is(t) if resources == [&t]) {
        est["resource"] = any();
    }
    Policy::from_json(Some(policy.id().clone()), est).unwrap_or_else(|_| policy.clone())
}

fn applies_to(policy: &Policy, action: &EntityUid, groups: &[&EntityUid]) -> bool {
    match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => &a == action,
        ActionConstraint::In(list) => list.iter().any(|a| a == action || groups.contains(&a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"
        entity User;
        entity Doc;
        action read, write appliesTo { principal: User, resource: Doc };
        action manage;
        action delete in [manage] appliesTo { principal: User, resource: Doc };
    "#;

    fn load(policies: &str) -> Result<PolicySnapshot, LoadError> {
        PolicySnapshot::from_sources(
            "s.cedarschema",
            SCHEMA,
            &[("p.cedar".into(), policies.into())],
        )
    }

    #[test]
    fn a_policy_whose_id_cedar_escapes_keeps_its_refusal_and_file() {
        let snap = load(
            r#"@id("it's \"odd\"") @code("odd") @message("refused oddly")
               forbid(principal, action == Action::"read", resource);"#,
        )
        .unwrap();
        let policy = snap.policies().policies().next().unwrap();
        let shown = policy.id().to_string();
        assert_ne!(shown, "it's \"odd\"", "Cedar escapes it");
        let refusal = snap.refusal(std::slice::from_ref(&shown)).unwrap();
        assert_eq!(refusal.code, "odd");
        assert_eq!(
            snap.origins().get(&shown).map(String::as_str),
            Some("p.cedar")
        );
    }

    #[test]
    fn the_index_per_principal_type_leaves_out_only_scopes_naming_another_type() {
        let snap = PolicySnapshot::from_sources(
            "s.cedarschema",
            r#"
                entity Group;
                entity User in [Group];
                entity Robot in [Group];
                entity Doc;
                action read appliesTo { principal: [User, Robot], resource: Doc };
            "#,
            &[(
                "p.cedar".into(),
                r#"@id("any") permit(principal, action, resource);
                   @id("in") permit(principal in Group::"g", action, resource);
                   @id("is-user") permit(principal is User, action, resource);
                   @id("is-robot-in") permit(principal is Robot in Group::"g", action, resource);
                   @id("eq-user") permit(principal == User::"u", action, resource);"#
                    .into(),
            )],
        )
        .unwrap();
        let read = EntityUid::from_str(r#"Action::"read""#).unwrap();
        let ids = |principal: &str| {
            let t = EntityTypeName::from_str(principal).unwrap();
            let mut v: Vec<String> = snap
                .policies_for_principal(&read, &t)
                .unwrap()
                .policies()
                .map(|p| p.id().to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids("User"), ["any", "eq-user", "in", "is-user"]);
        assert_eq!(ids("Robot"), ["any", "in", "is-robot-in"]);
        // A type the action does not take: the action's whole set.
        assert_eq!(ids("Doc").len(), 5);
    }

    #[test]
    fn the_index_drops_only_scope_conjuncts_its_requests_always_meet() {
        use cedar_policy::{Authorizer, Context, Entities, Request};
        let snap = PolicySnapshot::from_sources(
            "s.cedarschema",
            r#"
                entity Group;
                entity User in [Group] { level: Long };
                entity Robot;
                entity Doc, Folder;
                action manage;
                action read appliesTo { principal: [User, Robot], resource: Doc };
                action delete in [manage] appliesTo { principal: User, resource: [Doc, Folder] };
            "#,
            &[(
                "p.cedar".into(),
                r#"@id("read-user-doc") permit(principal is User, action == Action::"read", resource is Doc)
                       when { principal.level > 1 };
                   @id("manage") @code("low") @message("too low")
                   forbid(principal is User in Group::"g", action in [Action::"read", Action::"manage"], resource)
                       when { principal.level < 3 };
                   @id("delete-folder") permit(principal, action == Action::"delete", resource is Folder);
                   @id("robot") permit(principal is Robot, action in [Action::"read", Action::"manage"], resource);
                   @id("erring") @code("overflow") @message("overflows")
                   forbid(principal == User::"e", action, resource)
                       when { principal.level + 9223372036854775807 > 0 };"#
                    .into(),
            )],
        )
        .unwrap();
        let entities = Entities::from_json_value(
            serde_json::json!([
                { "uid": { "type": "User", "id": "a" }, "attrs": { "level": 2 }, "parents": [{ "type": "Group", "id": "g" }] },
                { "uid": { "type": "User", "id": "b" }, "attrs": { "level": 5 }, "parents": [] },
                { "uid": { "type": "User", "id": "e" }, "attrs": { "level": 1 }, "parents": [] },
                { "uid": { "type": "Group", "id": "g" }, "attrs": {}, "parents": [] },
                { "uid": { "type": "Robot", "id": "r" }, "attrs": {}, "parents": [] },
                { "uid": { "type": "Doc", "id": "d" }, "attrs": {}, "parents": [] },
                { "uid": { "type": "Folder", "id": "f" }, "attrs": {}, "parents": [] },
                { "uid": { "type": "Action", "id": "read" }, "attrs": {}, "parents": [] },
                { "uid": { "type": "Action", "id": "delete" }, "attrs": {}, "parents": [{ "type": "Action", "id": "manage" }] }
            ]),
            None,
        )
        .unwrap();
        let uid = |s: &str| EntityUid::from_str(s).unwrap();
        let mut asked = 0;
        for action in [r#"Action::"read""#, r#"Action::"delete""#] {
            for principal in [
                r#"User::"a""#,
                r#"User::"b""#,
                r#"User::"e""#,
                r#"Robot::"r""#,
            ] {
                for resource in [r#"Doc::"d""#, r#"Folder::"f""#] {
                    let (a, p, r) = (uid(action), uid(principal), uid(resource));
                    let Ok(request) = Request::new(
                        p.clone(),
                        a.clone(),
                        r,
                        Context::empty(),
                        Some(snap.schema()),
                    ) else {
                        continue;
                    };
                    let answer = |set: &PolicySet| {
                        let response = Authorizer::new().is_authorized(&request, set, &entities);
                        let mut reasons: Vec<String> = response
                            .diagnostics()
                            .reason()
                            .map(ToString::to_string)
                            .collect();
                        reasons.sort();
                        let errors = response.diagnostics().errors().count();
                        (response.decision(), reasons, errors)
                    };
                    let whole = answer(snap.policies_for(&a).unwrap());
                    let indexed = answer(snap.policies_for_principal(&a, p.type_name()).unwrap());
                    assert_eq!(whole, indexed, "{principal} {action} {resource}");
                    asked += 1;
                }
            }
        }
        assert!(asked >= 8, "the schema admitted {asked} requests");
        // The copies keep their ids and annotations, and lose the scope.
        let read = uid(r#"Action::"read""#);
        let user = EntityTypeName::from_str("User").unwrap();
        let set = snap.policies_for_principal(&read, &user).unwrap();
        let manage = set.policy(&PolicyId::new("manage")).unwrap();
        assert_eq!(manage.annotation("code"), Some("low"));
        assert_eq!(manage.action_constraint(), ActionConstraint::Any);
        assert!(matches!(
            manage.principal_constraint(),
            PrincipalConstraint::IsIn(..)
        ));
        let read_user = set.policy(&PolicyId::new("read-user-doc")).unwrap();
        assert_eq!(read_user.principal_constraint(), PrincipalConstraint::Any);
        assert_eq!(read_user.resource_constraint(), ResourceConstraint::Any);
        let delete = uid(r#"Action::"delete""#);
        let folder = snap.policies_for_principal(&delete, &user).unwrap();
        let folder = folder.policy(&PolicyId::new("delete-folder")).unwrap();
        assert!(
            matches!(folder.resource_constraint(), ResourceConstraint::Is(_)),
            "delete takes two resource types: `is Folder` must stay"
        );
    }

    #[test]
    fn ids_come_from_annotations_and_index_follows_action_scope() {
        let snap = load(
            r#"@id("r") permit(principal, action == Action::"read", resource);
               @id("m") permit(principal, action in Action::"manage", resource);
               @id("any") @code("never") @message("never refuses")
               forbid(principal, action, resource) when { false };"#,
        );
        let snap = match snap {
            Ok(s) => s,
            // `when { false }` is an impossible policy: a warning, not an error.
            Err(e) => panic!("{e:?}"),
        };
        let ids = |a: &str| {
            let uid = EntityUid::from_str(&format!("Action::\"{a}\"")).unwrap();
            let mut v: Vec<String> = snap
                .policies_for(&uid)
                .unwrap()
                .policies()
                .map(|p| p.id().to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids("read"), ["any", "r"]);
        assert_eq!(ids("write"), ["any"]);
        assert_eq!(ids("delete"), ["any", "m"]);
        assert!(snap
            .warnings()
            .iter()
            .any(|w| w.policy_id.as_deref() == Some("any")));
    }

    #[test]
    fn missing_id_and_type_errors_are_located() {
        let err = load("permit(principal, action, resource);\n@id(\"x\")\npermit(principal is Nope, action, resource);")
            .err()
            .unwrap();
        let LoadError::Invalid(d) = err else { panic!() };
        assert!(
            d.iter()
                .any(|d| d.line == 1 && d.message.contains("no @id")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|d| d.line == 3 && d.policy_id.as_deref() == Some("x")),
            "{d:?}"
        );
    }

    /// Nothing links a template here, so one would load and never apply:
    /// an author who wrote `?principal` for "any principal" would believe
    /// a rule in force that is not.
    #[test]
    fn a_template_is_refused_where_it_stands() {
        let err = load(
            "@id(\"ok\")\npermit(principal, action == Action::\"read\", resource);\n\
             @id(\"t\")\nforbid(principal == ?principal, action, resource);",
        )
        .err()
        .expect("a template does not load");
        let LoadError::Invalid(d) = err else { panic!() };
        assert!(
            d.iter().any(|d| d.line == 3
                && d.policy_id.as_deref() == Some("t")
                && d.message.contains("template")),
            "{d:?}"
        );
    }

    /// A `*.cedar` entry that cannot be read is an error, not a file
    /// left out: a dangling link in place of `functions.cedar` took every
    /// function rule out of force with `check --strict` green (red team,
    /// session 20).
    #[test]
    fn a_cedar_entry_that_is_no_readable_file_fails_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let schema = dir.path().join("s.cedarschema");
        std::fs::write(&schema, SCHEMA).unwrap();
        let policies = dir.path().join("p");
        std::fs::create_dir(&policies).unwrap();
        std::fs::write(
            policies.join("a.cedar"),
            "@id(\"a\")\npermit(principal, action == Action::\"read\", resource);",
        )
        .unwrap();
        assert!(PolicySnapshot::load(&policies, &schema).is_ok());
        // The load's error, which must name `entry`.
        let refused = |entry: &str| {
            let err = PolicySnapshot::load(&policies, &schema)
                .err()
                .expect("refused");
            assert!(err.to_string().contains(entry), "{err}");
            err.to_string()
        };
        std::os::unix::fs::symlink(dir.path().join("gone.cedar"), policies.join("b.cedar"))
            .unwrap();
        refused("b.cedar");
        std::fs::remove_file(policies.join("b.cedar")).unwrap();
        std::fs::create_dir(policies.join("c.cedar")).unwrap();
        refused("c.cedar");
        std::fs::remove_dir(policies.join("c.cedar")).unwrap();
        // A FIFO is refused at once, not waited on for a writer.
        crate::files::make_fifo(&policies.join("d.cedar"));
        refused("d.cedar");
        std::fs::remove_file(policies.join("d.cedar")).unwrap();
        // Hidden entries are no policy files: an editor's lock is a
        // dangling link, and a hidden copy is in no listing.
        std::os::unix::fs::symlink("root@host.1234", policies.join(".#a.cedar")).unwrap();
        std::fs::write(
            policies.join(".hidden.cedar"),
            "@id(\"h\")\nforbid(principal, action, resource);",
        )
        .unwrap();
        let snap = PolicySnapshot::load(&policies, &schema).unwrap();
        assert_eq!(snap.policies().policies().count(), 1);
        // Nor is a file past the bound read whole.
        let big = std::fs::File::create(policies.join("e.cedar")).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = refused("e.cedar");
        assert!(err.contains("larger than"), "{err}");
        // And so is a set of files within the bound each.
        std::fs::remove_file(policies.join("e.cedar")).unwrap();
        for name in ["f.cedar", "g.cedar"] {
            let text = format!("// {}\n", "x".repeat((MAX_FILE_BYTES / 2) as usize));
            std::fs::write(policies.join(name), text).unwrap();
        }
        refused("together");
    }

    /// Two policies of the same text (so the same id: both refused) are
    /// each located where they stand.
    #[test]
    fn repeated_policy_texts_are_located_each_where_it_stands() {
        let one = "@id(\"x\")\npermit(principal, action == Action::\"read\", resource);\n";
        let err = load(&format!("{one}\n{one}")).err().unwrap();
        let LoadError::Invalid(d) = err else { panic!() };
        assert!(d.iter().any(|d| d.line == 4), "{d:?}");
    }

    #[test]
    fn version_changes_with_any_text() {
        let a = load(r#"@id("r") permit(principal, action == Action::"read", resource);"#).unwrap();
        let b =
            load(r#"@id("r") permit(principal, action == Action::"write", resource);"#).unwrap();
        assert_ne!(a.version(), b.version());
        assert_eq!(a.version().len(), 64);
    }

    #[test]
    fn a_forbid_needs_a_snake_case_code_and_a_message() {
        let diagnostics = |text: &str| match load(text) {
            Err(LoadError::Invalid(d)) => d,
            other => panic!(
                "expected a load error, got {:?}",
                other.map(|s| s.version().to_owned())
            ),
        };
        let d = diagnostics(
            "@id(\"ok\") permit(principal, action, resource);\n\
             @id(\"f\") @message(\"no\")\nforbid(principal, action, resource);",
        );
        assert!(
            d.iter().any(|d| d.line == 2
                && d.policy_id.as_deref() == Some("f")
                && d.message.contains("@code")),
            "{d:?}"
        );
        let d = diagnostics(r#"@id("f") @code("f") forbid(principal, action, resource);"#);
        assert!(d.iter().any(|d| d.message.contains("@message")), "{d:?}");
        let d = diagnostics(
            r#"@id("f") @code("Not-Snake") @message("m") forbid(principal, action, resource);"#,
        );
        assert!(d.iter().any(|d| d.message.contains("snake_case")), "{d:?}");
    }

    #[test]
    fn the_first_forbid_in_load_order_speaks_whatever_its_id() {
        let snap = load(
            r#"@id("z.first") @code("first_code") @message("first")
               forbid(principal, action == Action::"read", resource);
               @id("a.second") @code("second_code") @message("second")
               forbid(principal, action == Action::"read", resource);
               @id("p") permit(principal, action, resource);"#,
        )
        .unwrap();
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let r = snap.refusal(&ids(&["a.second", "z.first"])).unwrap();
        assert_eq!(
            (r.policy.as_str(), r.code.as_str()),
            ("z.first", "first_code")
        );
        assert_eq!(snap.refusal(&ids(&["a.second"])).unwrap().message, "second");
        assert!(
            snap.refusal(&ids(&["p"])).is_none(),
            "a permit never refuses"
        );
        assert!(snap.refusal(&[]).is_none());
    }
}
