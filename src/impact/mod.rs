//! Impact of a policy change (`etax-authz impact --candidate DIR`): before a
//! change goes live, who gains and who loses what.
//!
//! The data view decides every stored principal's questions
//! ([`questions`]) with the active and the candidate set, over one read
//! snapshot of the store, through the decision engine's own path
//! ([`crate::decision::batch`]), so a difference is exactly what the
//! service would answer differently today. The symbolic view ([`symbolic`])
//! asks the solver, for each action, whether any request at all — stored
//! or not — is decided differently, and shows one. [`report`] counts and
//! prints; [`command`] is the CLI.

pub mod command;
pub mod questions;
pub mod report;
pub mod symbolic;

use cedar_policy::EntityUid;

use crate::decision::batch::Batch;
use crate::decision::DecisionError;
use crate::policy::PolicySnapshot;
use crate::store::{StoreError, StoreReader};

#[derive(Debug, thiserror::Error)]
pub enum ImpactError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("deciding {question}: {source}")]
    Decision {
        question: String,
        source: DecisionError,
    },
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

/// One question the two sets answer differently.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    /// `gained` (the candidate allows what the active set denies) or `lost`.
    pub change: &'static str,
    pub principal: String,
    pub identity_type: &'static str,
    pub enterprise: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// The action's name (`useFunction`, `viewStaff`, …).
    pub action: String,
    pub resource: String,
    /// What changed, for counting: the function code for `useFunction`,
    /// else the action's name.
    pub what: String,
    /// The policies that decided, before and after.
    pub reasons_active: Vec<String>,
    pub reasons_candidate: Vec<String>,
}

/// Decides every question of every stored principal with `active` and
/// `candidate` over `reader`; `on_change` gets each difference and
/// `on_principal` counts progress. Returns the questions decided by both
/// sets (those of actions whose policies differ).
pub fn compare(
    reader: &StoreReader,
    active: &PolicySnapshot,
    candidate: &PolicySnapshot,
    mut on_change: impl FnMut(Change) -> Result<(), ImpactError>,
    mut on_principal: impl FnMut(),
) -> Result<u64, ImpactError> {
    let actions = questions::actions();
    // An action whose indexed policies are the same texts in both sets
    // decides every request alike (same policies, entities and request), so
    // its questions are not asked twice: only changed actions are.
    let changed: Vec<_> = actions
        .iter()
        .filter(|a| !same_policies(active, candidate, a))
        .cloned()
        .collect();
    let mut asked = 0u64;
    questions::for_each_group(reader, |group| {
        on_principal();
        let roots: Vec<_> = group.roots.iter().collect();
        let batch = Batch::gather(reader, active, &roots, &actions).map_err(|source| {
            ImpactError::Decision {
                question: crate::ids::mask_text(&group.principal.to_string()),
                source,
            }
        })?;
        for q in group
            .questions
            .iter()
            .filter(|q| changed.contains(&q.action))
        {
            asked += 1;
            let decide = |set: &PolicySnapshot| {
                batch
                    .decide(set, q)
                    .map_err(|source| ImpactError::Decision {
                        question: crate::ids::mask_text(&format!(
                            "{} {} {}",
                            q.principal, q.action, q.resource
                        )),
                        source,
                    })
            };
            let (before, after) = (decide(active)?, decide(candidate)?);
            if before.allowed != after.allowed {
                on_change(change(&group, q, before, after))?;
            }
        }
        Ok(())
    })?;
    Ok(asked)
}

/// Whether `action`'s indexed policies are the same texts (ids included)
/// in both sets.
pub fn same_policies(a: &PolicySnapshot, b: &PolicySnapshot, action: &EntityUid) -> bool {
    let texts = |s: &PolicySnapshot| {
        let mut t: Vec<String> = s
            .policies_for(action)
            .map(|p| p.policies().map(|p| format!("{}{p}", p.id())).collect())
            .unwrap_or_default();
        t.sort();
        t
    };
    texts(a) == texts(b)
}

fn change(
    group: &questions::Group,
    q: &crate::decision::Query,
    before: crate::decision::Verdict,
    after: crate::decision::Verdict,
) -> Change {
    let action = q.action.id().unescaped().to_owned();
    let what = if action == crate::domain::Action::UseFunction.as_str() {
        q.resource.id().unescaped().to_owned()
    } else {
        action.clone()
    };
    Change {
        change: if after.allowed { "gained" } else { "lost" },
        principal: crate::ids::mask_text(&q.principal.to_string()),
        identity_type: group.identity_type,
        enterprise: group.enterprise.clone(),
        acting_for: group.acting_for.clone(),
        action,
        resource: crate::ids::mask_text(&q.resource.to_string()),
        what,
        reasons_active: before.reasons,
        reasons_candidate: after.reasons,
    }
}
