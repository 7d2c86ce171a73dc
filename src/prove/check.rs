//! Asking the SMT solver: one property against one policy set, one request
//! environment at a time, stopping at the first counterexample.

use cedar_policy::{PolicySet, RequestEnv};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet, Env};

use crate::policy::PolicySnapshot;

use super::property::{CheckKind, Property};
use super::ProveError;

/// The solver behind every check of one run.
pub struct Prover {
    compiler: CedarSymCompiler<LocalSolver>,
}

/// Why a property does not hold: the request that shows it.
#[derive(Debug, Clone)]
pub struct Violation {
    pub env: Env,
    /// For `never_errors`: the policy that errors.
    pub policy: Option<String>,
}

impl Prover {
    /// Starts cvc5 (the `CVC5` variable, else `cvc5` on the `PATH`) with
    /// symcc's default limit of a minute.
    pub fn start() -> Result<Self, ProveError> {
        Self::start_with_limit(std::time::Duration::from_secs(60))
    }

    /// Starts cvc5 limited to `limit` of wall-clock time in all.
    pub fn start_with_limit(limit: std::time::Duration) -> Result<Self, ProveError> {
        let tlimit = format!("--tlimit={}", limit.as_millis().max(1));
        let solver = LocalSolver::cvc5_with_args([tlimit]).map_err(|e| match e {
            cedar_policy_symcc::solver::SolverError::Io(io)
                if io.kind() == std::io::ErrorKind::NotFound =>
            {
                ProveError::SolverMissing
            }
            other => ProveError::Solver(other.to_string()),
        })?;
        let compiler = CedarSymCompiler::new(solver).map_err(solver_error)?;
        Ok(Self { compiler })
    }

    /// `Ok(None)` when `property` holds for `set`, else the first
    /// counterexample found.
    ///
    /// An `implies` property whose policies allow every request of one of
    /// the actions it names, or a `disjoint` one whose policies allow none
    /// of them, holds of any set for that action: it is refused, naming
    /// the action, as checking nothing there rather than reported proved.
    /// Judged per action, so another action that does ask something cannot
    /// hide it, and per principal and resource type where a scope names
    /// them (`principal is Etax::AgentStaff`), so another type cannot
    /// either.
    pub async fn check(
        &mut self,
        set: &PolicySnapshot,
        property: &Property,
    ) -> Result<Option<Violation>, ProveError> {
        let schema = set.schema();
        let may_be_vacuous = matches!(property.check, CheckKind::Implies | CheckKind::Disjoint);
        let named = property.named_types(schema);
        // What must ask something (an action; within it, the types a
        // scope names) → whether some request environment of it does.
        let mut asks: std::collections::BTreeMap<(String, String), bool> = Default::default();
        for env in property.envs(schema) {
            if may_be_vacuous {
                let action = env.action().to_string();
                let mut owed = vec![(action.clone(), String::new())];
                owed.extend(
                    named
                        .iter()
                        .filter(|n| n.holds(&env))
                        .map(|n| (action.clone(), n.shown())),
                );
                owed.retain(|k| asks.get(k) != Some(&true));
                if !owed.is_empty() {
                    let vacuous = self.vacuous_in(set, property, &env).await?;
                    for k in owed {
                        *asks.entry(k).or_default() |= !vacuous;
                    }
                }
            }
            if let Some(v) = self.check_env(set, property, &env).await? {
                return Ok(Some(v));
            }
        }
        // An idle action is named alone, not again with its types.
        let idle_actions: std::collections::BTreeSet<String> = asks
            .iter()
            .filter(|((_, typed), asks)| typed.is_empty() && !**asks)
            .map(|((action, _), _)| action.clone())
            .collect();
        let idle: Vec<String> = asks
            .into_iter()
            .filter(|((action, typed), asks)| {
                !asks && (typed.is_empty() || !idle_actions.contains(action))
            })
            .map(|((action, typed), _)| if typed.is_empty() { action } else { typed })
            .collect();
        if !idle.is_empty() {
            let allows = match property.check {
                CheckKind::Implies => "every request",
                _ => "no request",
            };
            return Err(ProveError::Properties {
                problems: vec![format!(
                    "{}: checks nothing for {}: its policies allow {allows} there, \
                     so it holds there of any policy set ({})",
                    property.file,
                    idle.join("; "),
                    property.check.as_str()
                )],
            });
        }
        Ok(None)
    }

    /// Whether `property` (implies or disjoint) holds in `env` whatever
    /// the rules: its policies allow every request there (implies) or none
    /// (disjoint).
    async fn vacuous_in(
        &mut self,
        set: &PolicySnapshot,
        property: &Property,
        env: &RequestEnv,
    ) -> Result<bool, ProveError> {
        let theirs = compile_set(&property.policies, env, set.schema())?;
        let c = &mut self.compiler;
        let result = if property.check == CheckKind::Implies {
            c.check_always_allows_opt(&theirs).await
        } else {
            c.check_always_denies_opt(&theirs).await
        };
        result.map_err(solver_error)
    }

    async fn check_env(
        &mut self,
        set: &PolicySnapshot,
        property: &Property,
        env: &RequestEnv,
    ) -> Result<Option<Violation>, ProveError> {
        let schema = set.schema();
        // The per-action index holds every policy that can apply, so the
        // answer is the one the full set would give.
        let empty = PolicySet::new();
        let bundled = set.policies_for(env.action()).unwrap_or(&empty);
        let found = |env: Option<Env>| env.map(|env| Violation { env, policy: None });
        let c = &mut self.compiler;
        match property.check {
            CheckKind::Implies | CheckKind::Disjoint => {
                let ours = compile_set(bundled, env, schema)?;
                let theirs = compile_set(&property.policies, env, schema)?;
                let result = if property.check == CheckKind::Implies {
                    c.check_implies_with_counterexample_opt(&ours, &theirs)
                        .await
                } else {
                    c.check_disjoint_with_counterexample_opt(&ours, &theirs)
                        .await
                };
                Ok(found(result.map_err(solver_error)?))
            }
            CheckKind::AlwaysDenies => {
                let ours = compile_set(bundled, env, schema)?;
                let result = c.check_always_denies_with_counterexample_opt(&ours).await;
                Ok(found(result.map_err(solver_error)?))
            }
            CheckKind::NeverErrors => {
                for policy in bundled.policies() {
                    let compiled = CompiledPolicy::compile(policy, env, schema)
                        .map_err(|e| compile_error(env, e))?;
                    let result = c
                        .check_never_errors_with_counterexample_opt(&compiled)
                        .await
                        .map_err(solver_error)?;
                    if let Some(env) = result {
                        return Ok(Some(Violation {
                            env,
                            policy: Some(policy.id().to_string()),
                        }));
                    }
                }
                Ok(None)
            }
        }
    }

    /// A request on which `old` and `new` decide differently, if any.
    pub async fn distinguish(
        &mut self,
        old: &PolicySnapshot,
        new: &PolicySnapshot,
        env: &RequestEnv,
    ) -> Result<Option<Env>, ProveError> {
        let empty = PolicySet::new();
        let a = compile_set(
            old.policies_for(env.action()).unwrap_or(&empty),
            env,
            old.schema(),
        )?;
        let b = compile_set(
            new.policies_for(env.action()).unwrap_or(&empty),
            env,
            new.schema(),
        )?;
        self.compiler
            .check_equivalent_with_counterexample_opt(&a, &b)
            .await
            .map_err(solver_error)
    }
}

fn compile_set(
    set: &PolicySet,
    env: &RequestEnv,
    schema: &cedar_policy::Schema,
) -> Result<CompiledPolicySet, ProveError> {
    CompiledPolicySet::compile(set, env, schema).map_err(|e| compile_error(env, e))
}

fn compile_error(env: &RequestEnv, e: cedar_policy_symcc::err::Error) -> ProveError {
    ProveError::Compile {
        action: env.action().to_string(),
        message: e.to_string(),
    }
}

fn solver_error(e: cedar_policy_symcc::err::Error) -> ProveError {
    ProveError::Solver(e.to_string())
}
