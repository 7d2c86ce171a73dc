//! Lints beyond Cedar's validator, and strict mode (`check --strict`,
//! `serve --strict-reload`): warnings count as errors.
//!
//! The validator knows types, not data: `Function::"invoice_purchse"` is a
//! well-typed `Function` literal that names no function, so a policy
//! guarding it never applies and nobody notices. The entity ids that exist
//! are data (the demo document, or the store); the caller gathers them
//! ([`KnownIds`]) — this layer knows nothing of the store.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Diagnostic, PolicySnapshot, Severity, Sources};

/// Entity ids that exist, by entity type name without its namespace
/// (`Function` → {`vat_filing`, …}). A type not named is not linted.
pub type KnownIds = BTreeMap<String, BTreeSet<String>>;

/// Every entity literal of a policy whose type `known` lists but whose id
/// it does not hold, as a warning placed at the literal.
pub fn unknown_entity_ids(
    snap: &PolicySnapshot,
    sources: &Sources,
    known: &KnownIds,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for policy in snap.policies().policies() {
        let id = policy.id().to_string();
        let Ok(est) = policy.to_json() else { continue };
        let mut literals = Vec::new();
        entity_literals(&est, &mut literals);
        for (ty, eid) in literals {
            let base = ty.rsplit("::").next().unwrap_or(&ty).to_owned();
            let Some(ids) = known.get(&base) else {
                continue;
            };
            if ids.contains(&eid) {
                continue;
            }
            let file = snap.origins().get(&id).cloned().unwrap_or_default();
            let text = sources
                .policy_files
                .iter()
                .find(|(f, _)| *f == file)
                .map(|(_, t)| t.as_str())
                .unwrap_or_default();
            let quoted = format!("{base}::{:?}", eid);
            let offset = text.find(&quoted).unwrap_or(0);
            out.push(Diagnostic::at_offset(
                &file,
                text,
                offset,
                Severity::Warning,
                Some(id.clone()),
                format!("{quoted} names no known {base} ({} known, e.g. {}); a typo makes the rule never apply",
                    ids.len(),
                    nearest(&eid, ids).unwrap_or("none")),
            ));
        }
    }
    out
}

/// Cedar's warnings and the lints, all as errors: what strict mode refuses.
pub fn strict_problems(
    snap: &PolicySnapshot,
    sources: &Sources,
    known: &KnownIds,
) -> Vec<Diagnostic> {
    snap.warnings()
        .iter()
        .cloned()
        .chain(unknown_entity_ids(snap, sources, known))
        .map(|mut d| {
            d.severity = Severity::Error;
            d
        })
        .collect()
}

/// `(type, id)` of every entity literal in a policy's JSON form: scope
/// constraints (`{"entity": {type, id}}`, `{"entities": [...]}`) and
/// values (`{"__entity": {type, id}}`) alike.
fn entity_literals(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            if let (Some(Value::String(t)), Some(Value::String(i)), 2) =
                (map.get("type"), map.get("id"), map.len())
            {
                out.push((t.clone(), i.clone()));
            }
            map.values().for_each(|v| entity_literals(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| entity_literals(v, out)),
        _ => {}
    }
}

/// The known id sharing the longest prefix with `id`: a hint at the typo.
fn nearest<'a>(id: &str, known: &'a BTreeSet<String>) -> Option<&'a str> {
    known
        .iter()
        .max_by_key(|k| {
            k.chars()
                .zip(id.chars())
                .take_while(|(a, b)| a == b)
                .count()
        })
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"
        entity Function;
        entity User in [Function];
        action use appliesTo { principal: User, resource: Function };
    "#;

    #[test]
    fn an_unknown_function_literal_is_found_and_placed() {
        let text = "@id(\"ok\")\npermit(principal, action, resource == Function::\"vat_filing\");\n\
                    @id(\"typo\")\npermit(principal, action, resource)\n  when { resource == Function::\"invoice_purchse\" };\n";
        let sources = Sources {
            schema_file: "s".into(),
            schema: SCHEMA.into(),
            policy_files: vec![("p.cedar".into(), text.into())],
        };
        let snap = PolicySnapshot::from_sources("s", SCHEMA, &sources.policy_files).expect("valid");
        let known: KnownIds = [(
            "Function".to_owned(),
            ["vat_filing", "invoice_purchase"].map(String::from).into(),
        )]
        .into();
        let d = unknown_entity_ids(&snap, &sources, &known);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].policy_id.as_deref()), (5, Some("typo")));
        assert!(d[0].message.contains("invoice_purchase"), "{}", d[0]);
        let strict = strict_problems(&snap, &sources, &known);
        assert!(strict.iter().all(|d| d.severity == Severity::Error));
        assert!(unknown_entity_ids(&snap, &sources, &KnownIds::new()).is_empty());
    }
}
