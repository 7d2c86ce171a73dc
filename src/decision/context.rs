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
//!
//! Building them directly still cost a fifth of a request (BENCHMARKS.md,
//! session 7): Cedar parses the constructor's name (`datetime`) with its
//! grammar on every `RestrictedExpression::new_datetime`, then evaluates
//! the call. Every business question of one millisecond carries the same
//! clock values, so each thread keeps the last such attributes it built
//! (with the clock's boolean `workday`), and the next context with exactly
//! those values reuses them.
//!
//! An entity reference in the explicit `{"__entity": {"type", "id"}}` form
//! (an agent's `actingFor`) is built directly too, and merged into the
//! clock's values: read by Cedar's reader, this one attribute of 15 % of
//! the mix's questions cost 3 % of the server's instructions for single
//! questions and 6 % for batches (BENCHMARKS.md, session 9). Its type is
//! checked against the schema by `Request::new`, like the extension
//! values' types.

use std::cell::RefCell;

use cedar_policy::{Context, EntityUid, EvalResult, RestrictedExpression, Schema};
use serde_json::{Map, Value};

use super::{invalid, DecisionError};
use crate::domain::{EntityKind, MAX_CONTEXT_SET, MAX_ID_BYTES, NAMESPACE};

/// `json` (an object) as the context of `action`, checked against `schema`,
/// with every entity it names checked by [`named_entities_hold`].
pub fn of_json(
    json: &Value,
    schema: &Schema,
    action: &EntityUid,
) -> Result<Context, DecisionError> {
    if let Some(Err(too_large)) = json.as_object().map(sizes_hold) {
        // An attribute the schema does not declare is refused as that,
        // not as too large: shortening it would not help.
        read(json, schema, action)?;
        return Err(too_large);
    }
    let context = read(json, schema, action)?;
    if let Some(map) = json.as_object() {
        named_entities_hold(&context, map)?;
    }
    Ok(context)
}

/// Every string of the context, at any depth, is at most
/// [`crate::domain::MAX_ID_BYTES`] (no factor, type or id of the
/// vocabulary is longer) and every array has at most
/// [`crate::domain::MAX_CONTEXT_SET`] members. Checked on the JSON, so
/// no spelling Cedar reads goes around it (Cedar reads a context past it
/// only to tell whether the schema declares the attribute): a 59 kB
/// "factor" was decided and recorded, a 61 kB record per question (red
/// team, session 11).
fn sizes_hold(json: &Map<String, Value>) -> Result<(), DecisionError> {
    fn why(v: &Value) -> Option<String> {
        match v {
            Value::String(s) if s.len() > MAX_ID_BYTES => Some(format!(
                "holds a string of {} bytes; none the vocabulary uses is over {MAX_ID_BYTES} \
                 (the value is not repeated)",
                s.len()
            )),
            Value::Array(a) if a.len() > MAX_CONTEXT_SET => Some(format!(
                "holds {} members; none of the vocabulary's sets has over {MAX_CONTEXT_SET}",
                a.len()
            )),
            Value::Array(a) => a.iter().find_map(why),
            Value::Object(o) => o.values().find_map(why),
            _ => None,
        }
    }
    for (name, value) in json {
        if let Some(why) = why(value) {
            return Err(invalid(format!("context.{name}"), why));
        }
    }
    Ok(())
}

/// An attribute that is one entity, or a set of them, is written with
/// objects (`{"__entity": {"type", "id"}}` or `{"type", "id"}`), the form
/// the person-key check, the cache key and the decision record read.
/// Cedar also reads `["Etax::Enterprise", "…"]` and `{"__entity": [type,
/// id]}`: through them an `actingFor` was recorded as raw JSON. (Every id
/// Cedar reads from a context is one of its JSON strings, so
/// [`sizes_hold`] has bounded it by [`crate::domain::MAX_ID_BYTES`]
/// already, whatever the form.)
fn named_entities_hold(context: &Context, json: &Map<String, Value>) -> Result<(), DecisionError> {
    // Entities come only from JSON objects and arrays; the clock's
    // extension values (exactly `{"__extn": {"fn", "arg"}}`) are neither
    // looked at nor converted back. Any other object is: Cedar reads an
    // entity with an `__extn` key beside its type and id too.
    let could_name = |v: &Value| match v {
        Value::Object(_) => extension_call(v).is_none(),
        Value::Array(_) => true,
        _ => false,
    };
    // Exactly a type and an id, both strings.
    let type_and_id = |m: &Map<String, Value>| {
        m.len() == 2
            && m.get("type").is_some_and(Value::is_string)
            && m.get("id").is_some_and(Value::is_string)
    };
    for (name, value) in json.iter().filter(|(_, v)| could_name(v)) {
        let Some(read) = context.get(name) else {
            continue;
        };
        let object_form = |v: &Value| {
            v.as_object().is_some_and(|o| match o.get("__entity") {
                Some(Value::Object(inner)) => o.len() == 1 && type_and_id(inner),
                Some(_) => false,
                None => type_and_id(o),
            })
        };
        // One entity, or a set of them (a schema's sets hold one type, so
        // a set is of entities when its first member is one).
        let written_as_objects = match &read {
            EvalResult::EntityUid(_) => object_form(value),
            EvalResult::Set(set)
                if set
                    .iter()
                    .next()
                    .is_some_and(|m| matches!(m, EvalResult::EntityUid(_))) =>
            {
                value.as_array().is_some_and(|a| a.iter().all(object_form))
            }
            _ => true,
        };
        if !written_as_objects {
            return Err(invalid(
                format!("context.{name}"),
                "write an entity as {\"__entity\": {\"type\": …, \"id\": …}}",
            ));
        }
    }
    Ok(())
}

/// [`of_json`] before the entities it names are checked.
fn read(json: &Value, schema: &Schema, action: &EntityUid) -> Result<Context, DecisionError> {
    let whole = || {
        Context::from_json_value(json.clone(), Some((schema, action)))
            .map_err(|e| invalid("context", e))
    };
    let Some(map) = json.as_object() else {
        return whole();
    };
    if map.is_empty() {
        // A fifth of an uncached decision went to reading `{}` through
        // Cedar's JSON reader; `Request::new` still checks it is allowed.
        return Ok(Context::empty());
    }
    // The clock's values, the entities named, and the rest for Cedar's reader.
    let (mut clock, mut entities, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for (name, value) in map {
        if let Some(uid) = entity_ref(value) {
            entities.push((name, uid));
        } else if is_direct(value) {
            clock.push((name, value));
        } else {
            rest.push((name, value));
        }
    }
    // Booleans alone (a login step's `hasPassword` beside its `factors`)
    // gain nothing from being split off: read the usual way.
    if !clock.iter().any(|(_, v)| extension_call(v).is_some()) {
        return whole();
    }
    let mut built = direct_context(&clock)?;
    if !entities.is_empty() {
        // Merged into this thread's last clock values rather than built
        // with them: `new_datetime` parses its constructor's name, and
        // merging evaluated values does not.
        let named = entities
            .into_iter()
            .map(|(n, uid)| (n.clone(), RestrictedExpression::new_entity_uid(uid)));
        let named = Context::from_pairs(named).map_err(|e| invalid("context", e))?;
        built = built.merge(named).map_err(|e| invalid("context", e))?;
    }
    if rest.is_empty() {
        return Ok(built);
    }
    let rest: Map<String, Value> = rest
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Anything unusual (a required attribute of the rest missing, say) is
    // read the usual way, so its error reads as it always did.
    let Ok(context) = Context::from_json_value(Value::Object(rest), Some((schema, action))) else {
        return whole();
    };
    context.merge(built).map_err(|e| invalid("context", e))
}

/// Attributes built directly, by name, as JSON, and the context they
/// evaluate to.
type Evaluated = (Vec<(String, Value)>, Context);

thread_local! {
    /// The last attributes this thread built directly.
    static LAST: RefCell<Option<Evaluated>> = const { RefCell::new(None) };
}

/// The context of `direct` alone (each a value [`is_direct`] accepts):
/// this thread's last one when the values are the same, else evaluated.
fn direct_context(direct: &[(&String, &Value)]) -> Result<Context, DecisionError> {
    let same = |(cached, _): &Evaluated| {
        cached.len() == direct.len()
            && cached
                .iter()
                .zip(direct)
                .all(|((cn, cv), (n, v))| cn == *n && cv == *v)
    };
    if let Some(hit) =
        LAST.with_borrow(|last| last.as_ref().filter(|l| same(l)).map(|l| l.1.clone()))
    {
        return Ok(hit);
    }
    let pairs = direct.iter().map(|(n, v)| {
        let expr = match v {
            Value::Bool(b) => RestrictedExpression::new_bool(*b),
            _ => extension(v).expect("sorted by is_direct"),
        };
        ((*n).clone(), expr)
    });
    let context = Context::from_pairs(pairs).map_err(|e| invalid("context", e))?;
    let key = direct
        .iter()
        .map(|(n, v)| ((*n).clone(), (*v).clone()))
        .collect();
    LAST.set(Some((key, context.clone())));
    Ok(context)
}

/// A value whose Cedar form needs no schema: an extension call, or a
/// boolean (the clock's `workday`: left to Cedar's JSON reader, it sent
/// every business question's context through that reader again). Its type
/// is still checked against the schema, by `Request::new`. (An entity
/// reference, [`entity_ref`], is built directly too, apart from these.)
fn is_direct(value: &Value) -> bool {
    value.is_boolean() || extension_call(value).is_some()
}

/// The entity `{"__entity": {"type": "Etax::…", "id": …}}` names, when
/// the type is one of the bureau's kinds, spelled in full (any other
/// spelling is left to Cedar's reader, so its error reads as it always
/// did; parsing a type name with Cedar's grammar would cost what reading
/// the value does).
fn entity_ref(value: &Value) -> Option<EntityUid> {
    let outer = value.as_object().filter(|o| o.len() == 1)?;
    let inner = outer
        .get("__entity")?
        .as_object()
        .filter(|e| e.len() == 2)?;
    let kind = inner
        .get("type")?
        .as_str()?
        .strip_prefix(NAMESPACE)?
        .strip_prefix("::")?
        .parse::<EntityKind>()
        .ok()?;
    Some(kind.uid(inner.get("id")?.as_str()?))
}

/// The `(fn, arg)` of `{"__extn": {"fn": …, "arg": "…"}}` for a constructor
/// [`extension`] builds.
fn extension_call(value: &Value) -> Option<(&str, &str)> {
    let outer = value.as_object().filter(|o| o.len() == 1)?;
    let call = outer.get("__extn")?.as_object().filter(|c| c.len() == 2)?;
    let arg = call.get("arg")?.as_str()?;
    let function = call.get("fn")?.as_str()?;
    matches!(function, "datetime" | "duration" | "decimal" | "ip").then_some((function, arg))
}

/// `{"__extn": {"fn": "datetime", "arg": "…"}}` (or `duration`, `decimal`,
/// `ip`) as the extension call it spells; `None` for any other value.
fn extension(value: &Value) -> Option<RestrictedExpression> {
    let (function, arg) = extension_call(value)?;
    Some(match function {
        "datetime" => RestrictedExpression::new_datetime(arg),
        "duration" => RestrictedExpression::new_duration(arg),
        "decimal" => RestrictedExpression::new_decimal(arg),
        _ => RestrictedExpression::new_ip(arg),
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

    /// A context whose extension values this thread evaluated last reuses
    /// them; any other value, or other attributes beside them, is read
    /// afresh, so a reused context never answers for different values.
    #[test]
    fn the_last_extension_values_are_reused_only_for_the_same_values() {
        let snap = bundled_policies();
        let action = Action::UseFunction.uid();
        let at = |t: &str| {
            json!({
                "now": { "__extn": { "fn": "datetime", "arg": t } },
                "localTime": { "__extn": { "fn": "duration", "arg": "34200000ms" } },
                "workday": true,
            })
        };
        let read = |ctx: &Value| {
            let direct = of_json(ctx, snap.schema(), &action).unwrap();
            let cedar =
                Context::from_json_value(ctx.clone(), Some((snap.schema(), &action))).unwrap();
            for name in ["now", "localTime", "workday", "actingFor"] {
                assert_eq!(
                    format!("{:?}", direct.get(name)),
                    format!("{:?}", cedar.get(name)),
                    "{name} of {ctx}"
                );
            }
        };
        let first = at("2026-10-01T09:30:00.000+0800");
        read(&first);
        read(&first);
        read(&at("2026-10-01T09:30:00.001+0800"));
        let mut agent = at("2026-10-01T09:30:00.001+0800");
        agent["actingFor"] = json!({ "__entity": { "type": "Etax::Enterprise", "id": "X" } });
        read(&agent);
        read(&first);
        let bad = at("not a time");
        assert!(of_json(&bad, snap.schema(), &action).is_err());
        assert!(of_json(&bad, snap.schema(), &action).is_err());
    }
}
