//! A question's JSON context as a Cedar `Context`, and the entities it names.
//!
//! Cedar's JSON reader tries each form an extension value may take
//! (`{"__extn": …}` among them) through serde, building and formatting an
//! error for every form that does not match: the sidecar clock's `now` and
//! `localTime`, on every business question, were a seventh of the server's
//! CPU under the bureau-scale mix (BENCHMARKS.md). A top-level attribute in
//! the explicit `{"__extn": {"fn", "arg"}}` form is built directly instead
//! and the rest read by Cedar as before; `Request::new` then checks the
//! whole context against the schema either way.

use cedar_policy::{Context, EntityUid, EvalResult, RestrictedExpression, Schema};
use serde_json::{Map, Value};

use super::{invalid, DecisionError};

/// `json` (an object) as the context of `action`, checked against `schema`.
pub fn of_json(
    json: &Value,
    schema: &Schema,
    action: &EntityUid,
) -> Result<Context, DecisionError> {
    let whole = || {
        Context::from_json_value(json.clone(), Some((schema, action)))
            .map_err(|e| invalid("context", e))
    };
    let Some(map) = json.as_object() else {
        return whole();
    };
    let mut rest = Map::new();
    let mut built = Vec::new();
    for (name, value) in map {
        match extension(value) {
            Some(expr) => built.push((name.clone(), expr)),
            None => {
                rest.insert(name.clone(), value.clone());
            }
        }
    }
    if built.is_empty() {
        return whole();
    }
    // Anything unusual (a required attribute of the rest missing, say) is
    // read the usual way, so its error reads as it always did.
    let Ok(context) = Context::from_json_value(Value::Object(rest), Some((schema, action))) else {
        return whole();
    };
    context.merge(built).map_err(|e| invalid("context", e))
}

/// `{"__extn": {"fn": "datetime", "arg": "…"}}` (or `duration`, `decimal`,
/// `ip`) as the extension call it spells; `None` for any other value.
fn extension(value: &Value) -> Option<RestrictedExpression> {
    let outer = value.as_object().filter(|o| o.len() == 1)?;
    let call = outer.get("__extn")?.as_object().filter(|c| c.len() == 2)?;
    let arg = call.get("arg")?.as_str()?;
    Some(match call.get("fn")?.as_str()? {
        "datetime" => RestrictedExpression::new_datetime(arg),
        "duration" => RestrictedExpression::new_duration(arg),
        "decimal" => RestrictedExpression::new_decimal(arg),
        "ip" => RestrictedExpression::new_ip(arg),
        _ => return None,
    })
}

/// Entities named by the context's top-level attributes (`actingFor`), by
/// attribute name, in a stable order (they are part of the cache key).
/// Only attributes written as JSON objects can name one, and only those
/// are looked up: converting every value back out of the context (a
/// datetime to its text) cost more than the lookup.
pub fn entities(context: &Context, json: Option<&Map<String, Value>>) -> Vec<(String, EntityUid)> {
    let Some(json) = json else { return Vec::new() };
    let mut refs: Vec<(String, EntityUid)> = json
        .iter()
        .filter(|(_, v)| v.as_object().is_some_and(|o| !o.contains_key("__extn")))
        .filter_map(|(k, _)| match context.get(k) {
            Some(EvalResult::EntityUid(uid)) => Some((k.clone(), uid)),
            _ => None,
        })
        .collect();
    refs.sort_by(|a, b| a.0.cmp(&b.0));
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::fixture::bundled_policies;
    use crate::domain::Action;
    use serde_json::json;

    /// The direct path and Cedar's JSON reader make the same context, and
    /// refuse the same bad values.
    #[test]
    fn extension_values_read_as_cedar_reads_them() {
        let snap = bundled_policies();
        let action = Action::UseFunction.uid();
        let ctx = json!({
            "now": { "__extn": { "fn": "datetime", "arg": "2026-10-01T09:30:00.000+0800" } },
            "localTime": { "__extn": { "fn": "duration", "arg": "34200000ms" } },
            "workday": true,
            "actingFor": { "__entity": { "type": "Etax::Enterprise", "id": "X" } },
        });
        let direct = of_json(&ctx, snap.schema(), &action).unwrap();
        let cedar = Context::from_json_value(ctx.clone(), Some((snap.schema(), &action))).unwrap();
        for name in ["now", "localTime", "workday", "actingFor"] {
            assert_eq!(
                format!("{:?}", direct.get(name)),
                format!("{:?}", cedar.get(name)),
                "{name}"
            );
        }
        assert_eq!(
            entities(&direct, ctx.as_object()),
            vec![(
                "actingFor".to_owned(),
                crate::domain::EntityKind::Enterprise.uid("X")
            )]
        );
        let bad = json!({ "now": { "__extn": { "fn": "datetime", "arg": "not a time" } } });
        assert!(of_json(&bad, snap.schema(), &action).is_err());
    }
}
