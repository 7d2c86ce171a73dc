//! A solver's counterexample written as a policy test suite (the format of
//! `policies/tests/`, see [`crate::policy::testing`]): one case with its
//! entities inline, ready to paste into a suite and fail there until the
//! policies are fixed.

use cedar_policy_symcc::Env;
use serde_json::{json, Value};

/// `env` as a whole suite: `name` names it and its one case. The case
/// expects `deny`: every check that finds a request finds one the policies
/// allow and should not (`implies`, `disjoint`, `always_denies`); for
/// `never_errors`, an erring policy denies (fail closed), and the
/// description names it.
pub fn as_suite(name: &str, description: &str, env: &Env) -> Value {
    let request = &env.request;
    let context = request
        .context()
        .and_then(|c| c.to_json_value().ok())
        .unwrap_or_else(|| json!({}));
    let entities = env
        .entities
        .to_json_value()
        .unwrap_or_else(|_| Value::Array(Vec::new()));
    json!({
        "name": name,
        "description": description,
        "entities": without_actions(entities),
        "cases": [{
            "name": name,
            "principal": uid_text(request.principal()),
            "action": uid_text(request.action()),
            "resource": uid_text(request.resource()),
            "context": context,
            "decision": "deny",
        }],
    })
}

/// Drops action entities: the suite runner takes them from the schema, and
/// a suite's entities are only the stored kinds.
fn without_actions(entities: Value) -> Value {
    match entities {
        Value::Array(list) => Value::Array(
            list.into_iter()
                .filter(|e| {
                    !e.pointer("/uid/type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t == "Action" || t.ends_with("::Action"))
                })
                .collect(),
        ),
        other => other,
    }
}

/// One line for the request, for summaries: `principal action resource`.
pub fn one_line(env: &Env) -> String {
    let r = &env.request;
    format!(
        "{} {} {}",
        uid_text(r.principal()),
        uid_text(r.action()),
        uid_text(r.resource())
    )
}

fn uid_text(uid: Option<&cedar_policy::EntityUid>) -> String {
    uid.map(ToString::to_string).unwrap_or_default()
}
