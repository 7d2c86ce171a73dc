//! A question's JSON context as a Cedar `Context`, and the entities it names.
//!
//! The sidecar's own attributes (its clock's `now`, `localTime` and
//! `workday`, on every business question) are not read from JSON at all:
//! [`Stamped`] evaluates them once an instant and they are added to each
//! question's context as Cedar values. Read by Cedar's JSON reader they
//! were a seventh of the server's CPU under the bureau-scale mix (the
//! reader formats an error for every form it tries); built with
//! `RestrictedExpression::new_datetime` a fifth of a request (Cedar parses
//! the constructor's name with its grammar on every call); and Cedar's
//! `Context::merge` evaluates every value of both contexts again, so
//! joining them to an agent's `actingFor` parsed the datetime anew
//! (BENCHMARKS.md, sessions 7, 9 and 13). Contexts are joined here at the
//! level of Cedar's values instead (`joined`), which needs
//! `cedar-policy-core`'s `Context`: nothing is evaluated twice.
//! `Request::new` still checks the whole context against the schema.
//!
//! An entity reference in the explicit `{"__entity": {"type", "id"}}` form
//! (an agent's `actingFor`) is built directly too: read by Cedar's reader,
//! this one attribute of 15 % of the mix's questions cost 3 % of the
//! server's instructions for single questions and 6 % for batches
//! (BENCHMARKS.md, session 9). Its type is checked against the schema by
//! `Request::new`.

use std::sync::{Arc, LazyLock};

use cedar_policy::{Context, EntityUid, EvalResult, Schema};
use cedar_policy_core::ast;
use cedar_policy_core::extensions::Extensions;
use serde_json::{Map, Value};

use super::{invalid, DecisionError};
use crate::domain::{EntityKind, MAX_CONTEXT_SET, MAX_ID_BYTES, NAMESPACE};

/// The context attributes the sidecar sets (`flows::clock`), and no
/// caller may.
pub const CLOCK_ATTRIBUTES: [&str; 3] = ["now", "localTime", "workday"];

/// Context attributes the sidecar sets itself, evaluated once and shared
/// by every question they are added to (cloning is two reference counts).
/// A caller's JSON never holds them.
#[derive(Debug, Clone)]
pub struct Stamped {
    /// As JSON: the question's shape (`request_check`) is read from it.
    json: Arc<[(String, Value)]>,
    /// As Cedar's values.
    context: Context,
}

impl Stamped {
    /// `attributes`, each a boolean or an extension value in the explicit
    /// `{"__extn": {"fn", "arg"}}` form, evaluated.
    pub fn of_json(attributes: Vec<(String, Value)>) -> Result<Self, DecisionError> {
        let pairs = attributes
            .iter()
            .map(|(name, value)| {
                let expr = match value {
                    Value::Bool(b) => Some(ast::RestrictedExpr::val(*b)),
                    _ => extension(value),
                };
                expr.map(|e| (name.as_str().into(), e)).ok_or_else(|| {
                    invalid(
                        format!("context.{name}"),
                        "is neither a boolean nor an extension value",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let context = ast::Context::from_pairs(pairs, Extensions::all_available())
            .map_err(|e| invalid("context", e))?;
        Ok(Self {
            json: attributes.into(),
            context: Context::from(context),
        })
    }

    /// `attributes` made by the caller: each as JSON (in the explicit
    /// `{"__extn": {"fn", "arg"}}` form for an extension value) and as the
    /// Cedar value that JSON spells, which the caller vouches for
    /// (`flows::clock`'s tests hold its values to [`Stamped::of_json`]'s).
    pub fn of_values(attributes: Vec<(String, Value, CedarValue)>) -> Self {
        let mut json = Vec::with_capacity(attributes.len());
        let mut values = std::collections::BTreeMap::new();
        for (name, as_json, value) in attributes {
            values.insert(name.as_str().into(), value.0);
            json.push((name, as_json));
        }
        Self {
            json: json.into(),
            context: Context::from(ast::Context::Value(Arc::new(values))),
        }
    }

    /// Cedar's context of these attributes.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The attributes as JSON, in the order given.
    pub fn json(&self) -> &[(String, Value)] {
        &self.json
    }

    /// Only the attributes `keep` accepts, evaluated again (a schema that
    /// declares some of them only: rare, so not shared).
    pub fn only(&self, keep: impl Fn(&str) -> bool) -> Result<Self, DecisionError> {
        Self::of_json(
            self.json
                .iter()
                .filter(|(name, _)| keep(name))
                .cloned()
                .collect(),
        )
    }
}

/// A Cedar value made without Cedar's parser where it can be: what the
/// sidecar's clock makes at every new instant (`flows::clock`), by Cedar's
/// own arithmetic on values parsed once a day or once a second, instead of
/// a `datetime` parsed whole at every millisecond (three patterns and a
/// calendar conversion: BENCHMARKS.md, session 14) or a `duration` (a
/// pattern of nine groups: session 17).
#[derive(Debug, Clone)]
pub struct CedarValue(ast::Value);

impl CedarValue {
    /// Cedar's `datetime(text)`.
    pub fn datetime(text: &str) -> Result<Self, DecisionError> {
        call(constructor("datetime"), &[ast::Value::from(text)])
    }

    /// Cedar's `duration("<ms>ms")`.
    pub fn duration_ms(ms: i64) -> Result<Self, DecisionError> {
        call(
            constructor("duration"),
            &[ast::Value::from(format!("{ms}ms"))],
        )
    }

    /// Cedar's `datetime.offset(duration)`.
    pub fn offset(&self, duration: &Self) -> Result<Self, DecisionError> {
        static OFFSET: LazyLock<ast::Name> =
            LazyLock::new(|| ast::Name::parse_unqualified_name("offset").expect("Cedar's offset"));
        call(&OFFSET, &[self.0.clone(), duration.0.clone()])
    }

    /// Cedar's `datetime.durationSince(earlier)`.
    pub fn duration_since(&self, earlier: &Self) -> Result<Self, DecisionError> {
        static SINCE: LazyLock<ast::Name> = LazyLock::new(|| {
            ast::Name::parse_unqualified_name("durationSince").expect("Cedar's durationSince")
        });
        call(&SINCE, &[self.0.clone(), earlier.0.clone()])
    }
}

impl From<bool> for CedarValue {
    fn from(b: bool) -> Self {
        Self(ast::Value::from(b))
    }
}

/// Calls the extension function `name`; a value that is not known (never
/// for these functions) is refused like a failed call.
fn call(name: &ast::Name, args: &[ast::Value]) -> Result<CedarValue, DecisionError> {
    let made = Extensions::all_available()
        .func(name)
        .map_err(|e| invalid("context", e))?
        .call(args)
        .map_err(|e| invalid("context", e))?;
    match made {
        cedar_policy_core::ast::PartialValue::Value(v) => Ok(CedarValue(v)),
        cedar_policy_core::ast::PartialValue::Residual(_) => {
            Err(invalid("context", format!("{name} made no value")))
        }
    }
}

/// The extension constructors an explicit `__extn` may call.
pub(super) const CONSTRUCTORS: [&str; 4] = ["datetime", "duration", "decimal", "ip"];

/// The name of `function`, one of [`CONSTRUCTORS`], parsed once.
fn constructor(function: &str) -> &'static ast::Name {
    static NAMES: LazyLock<[ast::Name; 4]> = LazyLock::new(|| {
        CONSTRUCTORS.map(|n| ast::Name::parse_unqualified_name(n).expect("Cedar's extension names"))
    });
    let i = CONSTRUCTORS
        .iter()
        .position(|c| *c == function)
        .expect("one of the constructors");
    &NAMES[i]
}

/// `json` (an object) as the context of `action`, checked against `schema`,
/// with every entity it names checked by [`named_entities_hold`].
pub fn of_json(
    json: &Value,
    stamped: Option<&Stamped>,
    schema: &Schema,
    action: &EntityUid,
) -> Result<Context, DecisionError> {
    let read_all = || match (read(json, schema, action), stamped) {
        (Ok(context), Some(stamped)) => joined(context, &stamped.context),
        (Ok(context), None) => Ok(context),
        // The caller's attributes alone are not a context the schema takes
        // when it requires one of the sidecar's: read all as one object.
        (Err(_), Some(stamped)) => read(&as_one_json(json, Some(stamped))?, schema, action),
        (Err(e), None) => Err(e),
    };
    if let Some(Err(too_large)) = json.as_object().map(sizes_hold) {
        // An attribute the schema does not declare is refused as that,
        // not as too large: shortening it would not help.
        read_all()?;
        return Err(too_large);
    }
    let context = read_all()?;
    if let Some(map) = json.as_object() {
        named_entities_hold(&context, map)?;
    }
    Ok(context)
}

/// The caller's `json` with the sidecar's attributes, as one JSON object:
/// what Cedar's reader is given when the two cannot be read apart, and
/// what its errors are worded from.
pub fn as_one_json(json: &Value, stamped: Option<&Stamped>) -> Result<Value, DecisionError> {
    let (Some(map), Some(stamped)) = (json.as_object(), stamped) else {
        return Ok(json.clone());
    };
    let mut map = map.clone();
    for (name, value) in stamped.json() {
        if map.insert(name.clone(), value.clone()).is_some() {
            return Err(set_by_sidecar(name));
        }
    }
    Ok(Value::Object(map))
}

/// An attribute given both by the caller and by the sidecar.
fn set_by_sidecar(name: &str) -> DecisionError {
    invalid(
        format!("context.{name}"),
        "is set by the sidecar; do not send it",
    )
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
    // Entities come only from JSON objects and arrays; extension values
    // (exactly `{"__extn": {"fn", "arg"}}`) are neither looked at nor
    // converted back. Any other object is: Cedar reads an entity with an
    // `__extn` key beside its type and id too.
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

/// The caller's `json` as a context, before the entities it names are
/// checked.
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
    // The entities named, and the rest for Cedar's reader.
    let (mut entities, mut rest) = (Vec::new(), Vec::new());
    for (name, value) in map {
        match entity_ref(value) {
            Some(uid) => entities.push((name, uid)),
            None => rest.push((name, value)),
        }
    }
    if entities.is_empty() {
        return whole();
    }
    let named = entities
        .into_iter()
        .map(|(name, uid)| {
            let value = ast::Value::from(ast::EntityUID::from(uid));
            (name.as_str().into(), value)
        })
        .collect();
    let named = Context::from(ast::Context::Value(Arc::new(named)));
    if rest.is_empty() {
        return Ok(named);
    }
    let rest: Map<String, Value> = rest
        .into_iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    // Anything unusual (a required attribute of the rest missing, say) is
    // read the usual way, so its error reads as it always did.
    let Ok(context) = Context::from_json_value(Value::Object(rest), Some((schema, action))) else {
        return whole();
    };
    joined(context, &named)
}

/// `a` and `b` as one context, without evaluating any value again (Cedar's
/// `Context::merge` evaluates both anew: a datetime is parsed again). An
/// attribute in both is refused.
fn joined(a: Context, b: &Context) -> Result<Context, DecisionError> {
    let (ast::Context::Value(x), ast::Context::Value(y)) = (a.as_ref(), b.as_ref()) else {
        // Residuals (unknown values) are never built here; merged as Cedar does.
        return a.merge(b.clone()).map_err(|e| invalid("context", e));
    };
    if y.is_empty() {
        return Ok(a);
    }
    if x.is_empty() {
        return Ok(b.clone());
    }
    let mut map = (**x).clone();
    for (name, value) in y.iter() {
        if map.insert(name.clone(), value.clone()).is_some() {
            return Err(set_by_sidecar(name));
        }
    }
    Ok(Context::from(ast::Context::Value(Arc::new(map))))
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
    CONSTRUCTORS.contains(&function).then_some((function, arg))
}

/// `{"__extn": {"fn": "datetime", "arg": "…"}}` (or `duration`, `decimal`,
/// `ip`) as the extension call it spells; `None` for any other value. The
/// constructors' names are parsed once: `RestrictedExpression::new_datetime`
/// parses its name with Cedar's grammar on every call, which was half of
/// the clock's work at each new instant (BENCHMARKS.md, session 14).
fn extension(value: &Value) -> Option<ast::RestrictedExpr> {
    let (function, arg) = extension_call(value)?;
    Some(ast::RestrictedExpr::call_extension_fn(
        constructor(function).clone(),
        [ast::RestrictedExpr::val(arg)],
    ))
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

    fn clock_at(t: &str) -> Vec<(String, Value)> {
        vec![
            (
                "now".into(),
                json!({ "__extn": { "fn": "datetime", "arg": t } }),
            ),
            (
                "localTime".into(),
                json!({ "__extn": { "fn": "duration", "arg": "34200000ms" } }),
            ),
            ("workday".into(), json!(true)),
        ]
    }

    /// The sidecar's attributes, evaluated once and joined to a caller's
    /// context, make the context Cedar's JSON reader makes of the two
    /// written as one.
    #[test]
    fn stamped_attributes_join_as_cedar_reads_them() {
        let snap = bundled_policies();
        let action = Action::UseFunction.uid();
        let stamped = Stamped::of_json(clock_at("2026-10-01T09:30:00.000+0800")).unwrap();
        let agent = json!({
            "actingFor": { "__entity": { "type": "Etax::Enterprise", "id": "X" } },
        });
        for callers in [json!({}), agent] {
            let joined = of_json(&callers, Some(&stamped), snap.schema(), &action).unwrap();
            let mut whole = callers.clone();
            for (name, value) in stamped.json() {
                whole[name] = value.clone();
            }
            let cedar = Context::from_json_value(whole, Some((snap.schema(), &action))).unwrap();
            assert_eq!(
                format!(
                    "{:?}",
                    joined
                        .clone()
                        .into_iter()
                        .collect::<std::collections::BTreeMap<_, _>>()
                ),
                format!(
                    "{:?}",
                    cedar
                        .into_iter()
                        .collect::<std::collections::BTreeMap<_, _>>()
                ),
                "{callers}"
            );
            let named = entities(&joined, callers.as_object());
            assert_eq!(named.len(), usize::from(callers.get("actingFor").is_some()));
        }
        assert!(Stamped::of_json(clock_at("not a time")).is_err());
        let only = stamped.only(|name| name == "workday").unwrap();
        let joined = of_json(&json!({}), Some(&only), snap.schema(), &action).unwrap();
        assert!(joined.get("workday").is_some() && joined.get("now").is_none());
    }

    /// A schema may require one of the sidecar's attributes: the caller's
    /// attributes alone then do not make a context it takes, and are read
    /// with the sidecar's as one (red team, session 13: a clerk's
    /// `{"channel": "web"}` was refused as lacking `now`).
    #[test]
    fn a_schema_requiring_a_stamped_attribute_still_takes_the_callers_others() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let schema = std::fs::read_to_string(root.join("schemas/etax.cedarschema")).unwrap();
        let schema = schema
            .replace("    now?: datetime,", "    now: datetime,")
            .replace(
                "    workday?: Bool,",
                "    workday?: Bool,\n    channel?: String,",
            );
        let policies = std::fs::read_dir(root.join("policies"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect::<Vec<_>>();
        let snap =
            crate::policy::PolicySnapshot::from_sources("etax.cedarschema", &schema, &policies)
                .unwrap();
        let action = Action::UseFunction.uid();
        let stamped = Stamped::of_json(clock_at("2026-10-01T09:30:00.000+0800")).unwrap();
        let acting_for = json!({ "__entity": { "type": "Etax::Enterprise", "id": "X" } });
        for callers in [
            json!({}),
            json!({ "channel": "web" }),
            json!({ "channel": "web", "actingFor": acting_for }),
        ] {
            let context = of_json(&callers, Some(&stamped), snap.schema(), &action)
                .unwrap_or_else(|e| panic!("{callers}: {e:?}"));
            assert!(context.get("now").is_some(), "{callers}");
        }
        let e = of_json(
            &json!({ "bogus": 1 }),
            Some(&stamped),
            snap.schema(),
            &action,
        )
        .unwrap_err();
        assert!(format!("{e:?}").contains("bogus"), "{e:?}");
    }

    /// An attribute the sidecar sets is never taken from the caller as
    /// well: the two would not be one context.
    #[test]
    fn a_callers_attribute_the_sidecar_sets_is_refused() {
        let snap = bundled_policies();
        let action = Action::UseFunction.uid();
        let stamped = Stamped::of_json(clock_at("2026-10-01T09:30:00.000+0800")).unwrap();
        let callers = json!({ "workday": false });
        let e = of_json(&callers, Some(&stamped), snap.schema(), &action).unwrap_err();
        assert!(format!("{e:?}").contains("context.workday"), "{e:?}");
    }
}
