//! Why a question was decided so: for every policy the action's index holds,
//! whether its scope matched and whether each `when`/`unless` clause held,
//! evaluated against the very request and entities the decision used.
//!
//! It decides nothing: the decision is Cedar's over the whole index
//! (`crate::decision`), and this trace is computed beside it, so a mistake
//! here can mislead an author but never change an answer. Each part is
//! evaluated by Cedar itself, as a one-policy set: the scope as a permit
//! without conditions, each clause as a permit with an open scope and that
//! one `when` — so the trace uses Cedar's semantics (entity hierarchy,
//! extension functions, errors) rather than a second evaluator of ours.

use cedar_policy::{Authorizer, Decision, Effect, Entities, Policy, PolicyId, PolicySet, Request};
use serde::Serialize;
use serde_json::{json, Value};

use super::PolicySnapshot;

/// The trace of one question.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// The snapshot the trace was computed on.
    pub policy_version: String,
    /// Every policy the action's index holds, in id order.
    pub policies: Vec<PolicyTrace>,
}

/// How one policy fared.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyTrace {
    pub id: String,
    pub effect: &'static str,
    /// The file the policy came from.
    pub file: String,
    pub scope_matched: bool,
    /// In the policy's order; empty when the scope did not match (Cedar
    /// does not look at the conditions then).
    pub clauses: Vec<ClauseTrace>,
    /// Scope matched and every clause went the policy's way: a permit that
    /// applies allows, a forbid that applies denies.
    pub applies: bool,
}

/// One `when` or `unless` clause.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClauseTrace {
    /// `when` or `unless`.
    pub kind: String,
    /// The clause's expression, in Cedar's own rendering.
    pub text: String,
    /// `true`, `false`, or `error` (then `error` says why).
    pub result: ClauseResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether Cedar evaluated it: it stops at the first clause that goes
    /// against the policy, so a clause after that one is shown with what it
    /// would give (an `error` there is not among the decision's errors).
    pub reached: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClauseResult {
    True,
    False,
    Error,
}

/// The trace of `request` (built by the caller exactly as its decision
/// was) over the policies `snap` indexes for its action.
pub fn explain(snap: &PolicySnapshot, request: &Request, entities: &Entities) -> Explanation {
    let policies = request
        .action()
        .and_then(|a| snap.policies_for(a))
        .map(|set| set.policies().collect::<Vec<_>>())
        .unwrap_or_default();
    let mut traces: Vec<PolicyTrace> = policies
        .into_iter()
        .map(|p| trace(snap, p, request, entities))
        .collect();
    traces.sort_by(|a, b| a.id.cmp(&b.id));
    Explanation {
        policy_version: snap.version().to_owned(),
        policies: traces,
    }
}

fn trace(
    snap: &PolicySnapshot,
    policy: &Policy,
    request: &Request,
    entities: &Entities,
) -> PolicyTrace {
    let id = policy.id().to_string();
    let est = policy
        .to_json()
        .expect("a static policy of a loaded set has a JSON form");
    let scope_matched = holds(scope_only(&est), request, entities) == Ok(true);
    let mut clauses: Vec<ClauseTrace> = if scope_matched {
        conditions(&est)
            .iter()
            .map(|c| clause(c, request, entities))
            .collect()
    } else {
        Vec::new()
    };
    let goes_its_way = |c: &ClauseTrace| match (c.kind.as_str(), c.result) {
        ("unless", r) => r == ClauseResult::False,
        (_, r) => r == ClauseResult::True,
    };
    let stopped_at = clauses.iter().position(|c| !goes_its_way(c));
    for (i, c) in clauses.iter_mut().enumerate() {
        c.reached = stopped_at.is_none_or(|at| i <= at);
    }
    let applies = scope_matched && stopped_at.is_none();
    PolicyTrace {
        effect: match policy.effect() {
            Effect::Permit => "permit",
            Effect::Forbid => "forbid",
        },
        file: snap.origins().get(&id).cloned().unwrap_or_default(),
        id,
        scope_matched,
        clauses,
        applies,
    }
}

/// The policy's `conditions` in its JSON form (`[{kind, body}]`).
fn conditions(est: &Value) -> Vec<Value> {
    est.get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The policy's scope as a permit with no conditions.
fn scope_only(est: &Value) -> Value {
    let mut scope = est.clone();
    scope["effect"] = json!("permit");
    scope["conditions"] = json!([]);
    scope["annotations"] = json!({});
    scope
}

fn clause(condition: &Value, request: &Request, entities: &Entities) -> ClauseTrace {
    let kind = condition
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("when")
        .to_owned();
    let body = condition.get("body").cloned().unwrap_or(json!(true));
    let open = |body| {
        json!({
            "effect": "permit",
            "principal": { "op": "All" },
            "action": { "op": "All" },
            "resource": { "op": "All" },
            "conditions": [{ "kind": "when", "body": body }]
        })
    };
    let text = Policy::from_json(None, open(body.clone()))
        .map(|p| condition_text(&p.to_string()))
        .unwrap_or_default();
    let (result, error) = match holds(open(body), request, entities) {
        Ok(true) => (ClauseResult::True, None),
        Ok(false) => (ClauseResult::False, None),
        Err(e) => (ClauseResult::Error, Some(e)),
    };
    ClauseTrace {
        kind,
        text,
        result,
        error,
        // Set once the clauses before it are known.
        reached: true,
    }
}

/// The expression inside `when { … }` of Cedar's rendering of a
/// one-condition policy.
fn condition_text(policy: &str) -> String {
    let inner = policy
        .split_once("when {")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.rsplit_once('}'))
        .map(|(inner, _)| inner)
        .unwrap_or(policy);
    inner.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a one-policy permit (given in Cedar's JSON policy form) allows
/// the request; `Err` with Cedar's message when evaluating it errs.
fn holds(policy_json: Value, request: &Request, entities: &Entities) -> Result<bool, String> {
    let policy = Policy::from_json(Some(PolicyId::new("explain")), policy_json)
        .map_err(|e| e.to_string())?;
    let set = PolicySet::from_policies([policy]).map_err(|e| e.to_string())?;
    let response = Authorizer::new().is_authorized(request, &set, entities);
    let errors = evaluation_errors(&response);
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(response.decision() == Decision::Allow)
}

/// Cedar's evaluation errors of a response, as text.
pub(super) fn evaluation_errors(response: &cedar_policy::Response) -> Vec<String> {
    response
        .diagnostics()
        .errors()
        .map(|e| e.to_string())
        .collect()
}

impl Explanation {
    /// The trace as lines for a terminal: one per policy, one per clause.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.policies {
            let verdict = match (p.scope_matched, p.applies) {
                (false, _) => "scope did not match",
                (true, true) => "APPLIES",
                (true, false) => "does not apply",
            };
            out.push(format!("{} {} ({}): {verdict}", p.effect, p.id, p.file));
            for c in &p.clauses {
                let result = match (c.result, &c.error) {
                    (ClauseResult::Error, Some(e)) => format!("error: {e}"),
                    (r, _) => format!("{r:?}").to_lowercase(),
                };
                let reached = if c.reached { "" } else { " (not reached)" };
                out.push(format!(
                    "    {} {{ {} }} → {result}{reached}",
                    c.kind, c.text
                ));
            }
        }
        out
    }

    /// Every error text, masked: errors quote the entities they concern, and
    /// a person's id holds an ID number.
    pub fn masked(mut self) -> Self {
        for p in &mut self.policies {
            for c in &mut p.clauses {
                if let Some(e) = &mut c.error {
                    *e = crate::ids::mask_text(e);
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cedar_policy::{Context, EntityUid};
    use std::str::FromStr;

    const SCHEMA: &str = r#"
        entity Group;
        entity User in [Group] { admin: Bool, level: Long };
        entity Doc;
        action read appliesTo { principal: User, resource: Doc };
    "#;

    /// `User::"u"` reads `Doc::"d"`, checked against `snap`'s schema.
    fn user_reads_doc(snap: &PolicySnapshot) -> Request {
        let uid = |s: &str| EntityUid::from_str(s).unwrap();
        Request::new(
            uid(r#"User::"u""#),
            uid(r#"Action::"read""#),
            uid(r#"Doc::"d""#),
            Context::empty(),
            Some(snap.schema()),
        )
        .unwrap()
    }

    #[test]
    fn scope_and_each_clause_are_reported() {
        let snap = PolicySnapshot::from_sources(
            "s.cedarschema",
            SCHEMA,
            &[(
                "p.cedar".into(),
                r#"@id("admins") permit(principal in Group::"staff", action == Action::"read", resource)
                     when { principal.admin } when { principal.level > 2 };
                   @id("low") @code("too_low") @message("level too low")
                   forbid(principal, action, resource) unless { principal.level > 3 };
                   @id("other-group") permit(principal in Group::"other", action, resource);"#
                    .into(),
            )],
        )
        .unwrap();
        let entities = Entities::from_json_value(
            json!([
                { "uid": { "type": "Group", "id": "staff" }, "attrs": {}, "parents": [] },
                { "uid": { "type": "User", "id": "u" }, "attrs": { "admin": true, "level": 2 },
                  "parents": [{ "type": "Group", "id": "staff" }] },
                { "uid": { "type": "Doc", "id": "d" }, "attrs": {}, "parents": [] }
            ]),
            Some(snap.schema()),
        )
        .unwrap();
        let request = user_reads_doc(&snap);
        let e = explain(&snap, &request, &entities);
        let ids: Vec<&str> = e.policies.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["admins", "low", "other-group"]);
        let admins = &e.policies[0];
        assert!(admins.scope_matched && !admins.applies);
        let results: Vec<_> = admins.clauses.iter().map(|c| c.result).collect();
        assert_eq!(results, [ClauseResult::True, ClauseResult::False]);
        assert_eq!(admins.clauses[1].text, "principal.level > 2");
        let low = &e.policies[1];
        assert_eq!(low.clauses[0].kind, "unless");
        assert!(
            low.applies,
            "level 2 is not above 3, so the forbid applies: {low:?}"
        );
        assert!(!e.policies[2].scope_matched && e.policies[2].clauses.is_empty());
    }

    /// Cedar stops at the first clause that goes against a policy: a later
    /// clause that would err was never evaluated, and the decision has no
    /// error. The trace still shows what it would give, marked unreached.
    #[test]
    fn clauses_past_the_first_that_fails_are_marked_unreached() {
        let snap = PolicySnapshot::from_sources(
            "s.cedarschema",
            SCHEMA,
            &[(
                "p.cedar".into(),
                r#"@id("p") permit(principal, action == Action::"read", resource)
                     when { principal.admin } unless { principal.level + 9223372036854775807 > 0 };"#
                    .into(),
            )],
        )
        .unwrap();
        let entities = Entities::from_json_value(
            json!([
                { "uid": { "type": "User", "id": "u" }, "attrs": { "admin": false, "level": 2 },
                  "parents": [] },
                { "uid": { "type": "Doc", "id": "d" }, "attrs": {}, "parents": [] }
            ]),
            Some(snap.schema()),
        )
        .unwrap();
        let request = user_reads_doc(&snap);
        let e = explain(&snap, &request, &entities);
        let p = &e.policies[0];
        let seen: Vec<_> = p.clauses.iter().map(|c| (c.result, c.reached)).collect();
        assert_eq!(
            seen,
            [(ClauseResult::False, true), (ClauseResult::Error, false)]
        );
        assert!(
            e.lines().iter().any(|l| l.ends_with("(not reached)")),
            "{:?}",
            e.lines()
        );
    }
}
