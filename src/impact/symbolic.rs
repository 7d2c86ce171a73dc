//! The symbolic view: for each action (and principal and resource type)
//! whose decision can change for any data at all, one request that the
//! active and the candidate set decide differently, found by the solver
//! (`check_equivalent`). It covers what the store does not hold yet.

use cedar_policy::{Authorizer, Decision, RequestEnv};

use crate::policy::PolicySnapshot;
use crate::prove::{counterexample, ProveError, Prover};

/// One action whose decision can change, and a request that shows it.
pub struct Difference {
    pub env: String,
    pub request: String,
    pub context: String,
    /// `allow → deny` or `deny → allow`.
    pub direction: &'static str,
    /// The whole counterexample as a suite (entities included).
    pub suite: serde_json::Value,
}

/// Every request environment of the schema whose decision can differ
/// between `active` and `candidate`. Environments whose two policy lists
/// are the same texts are equivalent without asking.
pub async fn differences(
    active: &PolicySnapshot,
    candidate: &PolicySnapshot,
) -> Result<Vec<Difference>, ProveError> {
    let mut prover = Prover::start()?;
    let mut found = Vec::new();
    for env in active.schema().request_envs() {
        if super::same_policies(active, candidate, env.action()) {
            continue;
        }
        if let Some(cx) = prover.distinguish(active, candidate, &env).await? {
            let decide = |set: &PolicySnapshot| {
                let allowed = set.policies_for(env.action()).is_some_and(|p| {
                    Authorizer::new()
                        .is_authorized(&cx.request, p, &cx.entities)
                        .decision()
                        == Decision::Allow
                });
                if allowed {
                    "allow"
                } else {
                    "deny"
                }
            };
            let direction = match (decide(active), decide(candidate)) {
                ("allow", _) => "allow → deny",
                _ => "deny → allow",
            };
            let name = format!("distinguishes {}", env_name(&env));
            found.push(Difference {
                env: env_name(&env),
                request: counterexample::one_line(&cx),
                context: cx
                    .request
                    .context()
                    .and_then(|c| c.to_json_value().ok())
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                direction,
                suite: counterexample::as_suite(&name, &name, &cx),
            });
        }
    }
    Ok(found)
}

fn env_name(env: &RequestEnv) -> String {
    format!("{} {} {}", env.principal(), env.action(), env.resource())
}
