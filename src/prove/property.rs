//! Property files (`policies/properties/*.cedar`): one file is one
//! property, a small Cedar policy set whose annotations say which check it
//! asks for. Its name is the file stem; its actions are the request
//! environments its policies' scopes name.
//!
//! ```cedar
//! @check("implies")
//! @description("R13: only officers maintain staff")
//! permit (principal is Etax::Staff, action in Etax::Action::"maintainStaff", resource)
//! when { principal.identityType == Etax::IdentityType::"legal_rep" };
//! ```
//!
//! Every policy of a file may state `@check`; those that do must agree and
//! at least one must. `@description` is taken from the first policy stating
//! it. For `never_errors` and `always_denies` only the scope counts, so a
//! `when`/`unless` clause there is refused rather than silently ignored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{PolicySet, RequestEnv, Schema, ValidationMode, Validator};

use crate::policy::{Diagnostic, Severity, MAX_DEREF_LEVEL};

use super::ProveError;

/// What a property asks of the policy set under proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// Every request the set allows, the property allows too.
    Implies,
    /// No request is allowed by both the set and the property.
    Disjoint,
    /// No policy of the set errors on any request of the named actions.
    NeverErrors,
    /// The set allows no request of the named actions.
    AlwaysDenies,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Implies => "implies",
            CheckKind::Disjoint => "disjoint",
            CheckKind::NeverErrors => "never_errors",
            CheckKind::AlwaysDenies => "always_denies",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            CheckKind::Implies,
            CheckKind::Disjoint,
            CheckKind::NeverErrors,
            CheckKind::AlwaysDenies,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether the property's conditions take part in the check.
    fn uses_conditions(self) -> bool {
        matches!(self, CheckKind::Implies | CheckKind::Disjoint)
    }
}

/// One property, parsed and validated against the schema.
#[derive(Debug, Clone)]
pub struct Property {
    pub name: String,
    pub file: String,
    pub check: CheckKind,
    pub description: Option<String>,
    pub policies: PolicySet,
}

impl Property {
    /// The (principal type, action, resource type) combinations it covers
    /// under `schema`, in a stable order. Computed from the schema of the
    /// set under proof, not the one the property was loaded with: a
    /// candidate schema that lets a new principal type into an action must
    /// have that type proved too.
    ///
    /// Only the scope decides: the validator drops the environments where a
    /// condition is false by type (`principal is Etax::Staff && …` for an
    /// agent), and those are exactly where an `implies` property must still
    /// be checked.
    pub fn envs(&self, schema: &Schema) -> Vec<RequestEnv> {
        let mut envs: Vec<RequestEnv> = Vec::new();
        for policy in self.policies.policies().map(scope_only) {
            for env in policy.get_valid_request_envs(schema) {
                if !envs.contains(&env) {
                    envs.push(env);
                }
            }
        }
        envs.sort_by_key(|e| {
            (
                e.action().to_string(),
                e.principal().to_string(),
                e.resource().to_string(),
            )
        });
        envs
    }
}

impl Property {
    /// What its scopes name the type of, per action: (action, principal
    /// type if named, resource type if named) for each scope naming either
    /// (`principal is T`, `resource == T::"…"`). A property says something
    /// of each; an open `principal` or `resource` whose type a condition
    /// tests may leave some types free on purpose.
    pub fn named_types(&self, schema: &Schema) -> BTreeSet<Named> {
        use cedar_policy::{PrincipalConstraint as P, ResourceConstraint as R};
        let mut named = BTreeSet::new();
        for policy in self.policies.policies() {
            let principal = matches!(
                policy.principal_constraint(),
                P::Is(_) | P::IsIn(_, _) | P::Eq(_)
            );
            let resource = matches!(
                policy.resource_constraint(),
                R::Is(_) | R::IsIn(_, _) | R::Eq(_)
            );
            if !principal && !resource {
                continue;
            }
            for env in scope_only(policy).get_valid_request_envs(schema) {
                named.insert(Named {
                    action: env.action().to_string(),
                    principal: principal.then(|| env.principal().to_string()),
                    resource: resource.then(|| env.resource().to_string()),
                });
            }
        }
        named
    }
}

/// An action, and the principal and resource types a property's scope
/// names within it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Named {
    pub action: String,
    pub principal: Option<String>,
    pub resource: Option<String>,
}

impl Named {
    pub fn holds(&self, env: &RequestEnv) -> bool {
        self.action == env.action().to_string()
            && self
                .principal
                .as_ref()
                .is_none_or(|p| *p == env.principal().to_string())
            && self
                .resource
                .as_ref()
                .is_none_or(|r| *r == env.resource().to_string())
    }

    pub fn shown(&self) -> String {
        let mut s = self.action.clone();
        if let Some(p) = &self.principal {
            s.push_str(&format!(" for {p}"));
        }
        if let Some(r) = &self.resource {
            s.push_str(&format!(" on {r}"));
        }
        s
    }
}

/// The property directory beside a policy directory.
pub fn properties_dir(policies_dir: &Path) -> PathBuf {
    policies_dir.join("properties")
}

/// Loads every `*.cedar` file of `dir` as a property. A missing directory
/// is an error: proving nothing must not look like proving everything.
pub fn load_all(dir: &Path, schema: &Schema) -> Result<Vec<Property>, ProveError> {
    let files = crate::policy::policy_files_in(dir).map_err(|e| ProveError::Properties {
        problems: vec![e.to_string()],
    })?;
    if files.is_empty() {
        return Err(ProveError::Properties {
            problems: vec![format!("{}: no property files (*.cedar)", dir.display())],
        });
    }
    let mut properties = Vec::new();
    // A property file no load reads (`r12.CEDAR`) is an invariant dropped:
    // refused, where `check` only warns of a rule file so named.
    let mut problems: Vec<String> = crate::policy::near_misses(dir, crate::policy::Severity::Error)
        .iter()
        .map(ToString::to_string)
        .collect();
    for file in files {
        match load_one(&file, schema) {
            Ok(p) => properties.push(p),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(properties)
    } else {
        Err(ProveError::Properties { problems })
    }
}

/// Parses one property file; every problem as a `file:line:col` line.
fn load_one(path: &Path, schema: &Schema) -> Result<Property, Vec<String>> {
    let file = path.display().to_string();
    let src = crate::policy::read_regular(path).map_err(|e| vec![format!("{file}: {e}")])?;
    let here = |message: String| vec![format!("{file}: {message}")];
    let policies = PolicySet::from_str(&src).map_err(|e| {
        vec![Diagnostic::from_cedar(&file, &src, &e, Severity::Error, None).to_string()]
    })?;
    let templates = crate::policy::refuse_templates(&file, &src, &policies);
    if !templates.is_empty() {
        return Err(templates.iter().map(ToString::to_string).collect());
    }
    let validation = Validator::new(schema.clone()).validate_with_level(
        &policies,
        ValidationMode::Strict,
        MAX_DEREF_LEVEL,
    );
    let errors: Vec<String> = validation
        .validation_errors()
        .map(|e| Diagnostic::from_cedar(&file, &src, e, Severity::Error, None).to_string())
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let stated: BTreeSet<&str> = policies
        .policies()
        .filter_map(|p| p.annotation("check"))
        .collect();
    let check = match stated.iter().collect::<Vec<_>>().as_slice() {
        [one] => CheckKind::parse(one).ok_or_else(|| {
            here(format!(
                "unknown @check(\"{one}\"); use implies, disjoint, never_errors or always_denies"
            ))
        })?,
        [] => return Err(here("no policy states @check(\"…\")".into())),
        _ => return Err(here(format!("policies state different checks: {stated:?}"))),
    };
    if !check.uses_conditions() && policies.policies().any(has_conditions) {
        return Err(here(format!(
            "a {} property names actions by its scope only; remove its when/unless clauses",
            check.as_str()
        )));
    }
    if policies
        .policies()
        .map(scope_only)
        .all(|p| p.get_valid_request_envs(schema).next().is_none())
    {
        return Err(here("its scope matches no action of the schema".into()));
    }
    let description = policies
        .policies()
        .find_map(|p| p.annotation("description"))
        .map(str::to_owned);
    Ok(Property {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        description,
        file,
        check,
        policies,
    })
}

/// `policy` without its `when`/`unless` clauses (itself if that fails,
/// which cannot happen for a policy that parsed).
fn scope_only(policy: &cedar_policy::Policy) -> cedar_policy::Policy {
    policy
        .to_json()
        .ok()
        .and_then(|mut j| {
            j["conditions"] = serde_json::Value::Array(Vec::new());
            cedar_policy::Policy::from_json(Some(policy.id().clone()), j).ok()
        })
        .unwrap_or_else(|| policy.clone())
}

fn has_conditions(policy: &cedar_policy::Policy) -> bool {
    policy
        .to_json()
        .ok()
        .and_then(|j| {
            j.get("conditions")
                .and_then(|c| c.as_array())
                .map(|c| !c.is_empty())
        })
        .unwrap_or(true)
}
