//! What the active policies say, for the callers who are decided by them:
//! `GET /v1/policies?action=…` (the policies the index holds for an action)
//! and `POST /v1/authorize?explain=true` (the answer and, beside it, the
//! trace of every policy of the action's index).
//!
//! Both sit under the `authorize` scope: a caller that may ask a question
//! may learn why it was answered so. The bureau's policies are not secret
//! (they restate R1–R17); what must not leak is a person's identity, so
//! every error text in a trace is masked like the answer's `errors`.

use serde::Serialize;

use super::authorize::{self, AuthorizeRequest, AuthorizeResponse};
use super::error::ApiError;
use super::AppState;
use crate::policy::explain::Explanation;

/// An answer with its explanation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Explained {
    #[serde(flatten)]
    pub answer: AuthorizeResponse,
    pub explain: Explanation,
}

use super::routes::{Param, ParamKind};

pub const AUTHORIZE_PARAMS: &[Param] = &[Param::new(
    "explain",
    ParamKind::Boolean,
    "Answer with the trace of every policy of the action's index",
    "true",
)];

pub const LIST_PARAMS: &[Param] = &[Param::new(
    "action",
    ParamKind::String,
    "An action of the schema (useFunction, login, …)",
    "useFunction",
)
.required()];

/// Whether `POST /v1/authorize` was asked to explain: `explain=true` (or
/// `false`, the default) in the query string, once and spelled exactly so
/// (a repeated or loosely spelled flag is ambiguous, and an ambiguous
/// question gets a 400, not a guess); other parameters are left alone, as
/// before.
pub fn explain_wanted(query: Option<&str>) -> Result<bool, ApiError> {
    let values: Vec<String> = super::query_params::params(query)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == AUTHORIZE_PARAMS[0].name)
        .map(|(_, v)| v)
        .collect();
    match values.as_slice() {
        [] => Ok(false),
        [one] if one == "true" => Ok(true),
        [one] if one == "false" => Ok(false),
        [_] => Err(ApiError::invalid("explain", "must be true or false")),
        _ => Err(ApiError::invalid("explain", "given more than once")),
    }
}

/// `POST /v1/authorize/batch` does not explain: a caller asking it to must
/// hear so rather than get answers without the explanation it expects.
pub fn explain_refused(query: Option<&str>) -> Result<(), ApiError> {
    match query_param(query, "explain") {
        None => Ok(()),
        Some(_) => Err(ApiError::invalid(
            "explain",
            "not supported on /v1/authorize/batch; ask /v1/authorize?explain=true per question",
        )),
    }
}

/// `POST /v1/authorize?explain=true`. The decision goes through the one
/// decision path and is recorded as any other; the trace is computed on
/// the snapshot and entities that decision was made on, and changes
/// nothing.
pub async fn authorize_explained(
    state: &AppState,
    body: AuthorizeRequest,
) -> Result<Explained, ApiError> {
    let query = authorize::query_of(state, body).await?;
    let (asked, explain) = state.decider.ask_explained(query)?;
    let answer = authorize::answered(state, asked).await?;
    Ok(Explained {
        answer,
        explain: explain.masked(),
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyList {
    pub action: String,
    pub policy_version: String,
    pub policies: Vec<PolicyEntry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyEntry {
    pub id: String,
    pub effect: &'static str,
    pub file: String,
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The policy as written.
    pub text: String,
}

/// `GET /v1/policies?action=useFunction`: the policies a decision for that
/// action evaluates, in id order.
pub fn list(state: &AppState, query: Option<&str>) -> Result<PolicyList, ApiError> {
    let action = query_param(query, LIST_PARAMS[0].name)
        .ok_or_else(|| ApiError::invalid("action", "give ?action=<action name>"))?;
    let uid = authorize::parse_uid("action", &format!("Action::{:?}", action))?;
    let snap = state.engine.snapshot();
    let set = snap.policies_for(&uid).ok_or_else(|| {
        ApiError::invalid(
            "action",
            format!("{action:?} is not an action of the schema"),
        )
    })?;
    let mut policies: Vec<PolicyEntry> = set
        .policies()
        .map(|p| {
            let id = p.id().to_string();
            PolicyEntry {
                effect: match p.effect() {
                    cedar_policy::Effect::Permit => "permit",
                    cedar_policy::Effect::Forbid => "forbid",
                },
                file: snap.origins().get(&id).cloned().unwrap_or_default(),
                annotations: p
                    .annotations()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                text: p.to_string(),
                id,
            }
        })
        .collect();
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(PolicyList {
        action: uid.to_string(),
        policy_version: snap.version().to_owned(),
        policies,
    })
}

/// The first value of `name` in a query string, decoded as the audit
/// reads decode theirs.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    super::query_params::params(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}
