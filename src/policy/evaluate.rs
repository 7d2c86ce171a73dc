//! Cedar's evaluator over a question's policies: what Cedar's
//! `Authorizer::is_authorized` answers, without what it rebuilds for every
//! question.
//!
//! The authorizer builds each policy's condition (scope and clauses as one
//! expression) before evaluating it, then builds a whole policy — its
//! condition and annotations copied — for each determining one, only to
//! report its id; together with the response's conversions that was as
//! much as the evaluation itself for a clerk's question (BENCHMARKS.md,
//! session 19). The conditions are built once per loaded set
//! ([`super::Prepared`]) and evaluated by Cedar's own evaluator,
//! with the authorizer's rules for what decides: any satisfied forbid
//! denies and determines; otherwise any satisfied permit allows and
//! determines; otherwise deny. A policy whose evaluation errs is skipped
//! and its error reported, worded as Cedar's authorizer words it (the
//! decision then fails closed: `decision::verdict`). A condition left
//! partial by an unknown, which the authorizer would set aside as neither,
//! is an error here; the service's requests have no unknowns.
//! Decisions (`crate::decision`, impact analysis) and policy test suites
//! ([`super::testing`]) decide with it. `tests/policy_index.rs` holds it to
//! Cedar's authorizer on random policies, entities and requests.

use cedar_policy::{Effect, Entities, PolicyId, Request};
use cedar_policy_core::ast::{Literal, ValueKind};
use cedar_policy_core::authorizer::AuthorizationError;
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;

use super::Prepared;

/// What Cedar's authorizer would answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluated<'a> {
    pub allowed: bool,
    /// The determining policies, in the set's order.
    pub reasons: Vec<&'a PolicyId>,
    /// Each policy whose evaluation erred, as Cedar's response words it,
    /// in the set's order.
    pub errors: Vec<String>,
}

/// `policies` decided for `request` over `entities`.
pub fn evaluate<'a>(
    request: &Request,
    policies: &'a [Prepared],
    entities: &Entities,
) -> Evaluated<'a> {
    let eval = Evaluator::new(
        request.as_ref().clone(),
        entities.as_ref(),
        Extensions::all_available(),
    );
    let (mut permits, mut forbids, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for p in policies {
        let satisfied = match eval.interpret(&p.condition, p.policy.env()) {
            Ok(v) => match v.value_kind() {
                ValueKind::Lit(Literal::Bool(b)) => Ok(*b),
                // A condition is `scope && clauses`, and `&&` yields a
                // boolean or an error; a validated set cannot get here.
                _ => Err(format!(
                    "while evaluating policy `{}`: its condition is not a boolean",
                    p.id
                )),
            },
            Err(error) => Err(cedar_policy::AuthorizationError::from(
                AuthorizationError::PolicyEvaluationError {
                    id: p.policy.id().clone(),
                    error,
                },
            )
            .to_string()),
        };
        match satisfied {
            Ok(true) if p.effect == Effect::Forbid => forbids.push(&p.id),
            Ok(true) => permits.push(&p.id),
            Ok(false) => {}
            Err(e) => errors.push(e),
        }
    }
    let allowed = forbids.is_empty() && !permits.is_empty();
    Evaluated {
        allowed,
        reasons: if forbids.is_empty() { permits } else { forbids },
        errors,
    }
}
