//! Every bundled suite names `policies/tests/suite.schema.json` and
//! conforms to it, so editors that check it agree with `etax-authz test`.
//! A small validator over serde_json: the schema uses only `type`,
//! `required`, `properties`, `additionalProperties: false`, `items`,
//! `anyOf` and `enum`, and the test refuses a keyword it does not know, so
//! the schema cannot grow past what is checked here unnoticed.

use std::path::Path;

use serde_json::Value;

const KNOWN: &[&str] = &[
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "anyOf",
    "enum",
];

fn validate(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let s = schema.as_object().expect("a schema is an object");
    for k in s.keys() {
        assert!(
            KNOWN.contains(&k.as_str()),
            "the validator does not know {k:?}"
        );
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            other => panic!("type {other} not supported"),
        };
        if !ok {
            return errors.push(format!("{at}: not a {t}"));
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            errors.push(format!("{at}: {v} not one of {options:?}"));
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let fits = any.iter().any(|alt| {
            let mut e = Vec::new();
            validate(alt, v, at, &mut e);
            e.is_empty()
        });
        if !fits {
            errors.push(format!("{at}: matches none of the alternatives"));
        }
    }
    if let (Some(items), Some(list)) = (s.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            validate(items, item, &format!("{at}[{i}]"), errors);
        }
    }
    let Some(obj) = v.as_object() else { return };
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !obj.contains_key(r.as_str().unwrap()) {
            errors.push(format!("{at}: missing {r}"));
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (k, val) in obj {
        match props.and_then(|p| p.get(k)) {
            Some(sub) => validate(sub, val, &format!("{at}.{k}"), errors),
            None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                errors.push(format!("{at}: unknown member {k:?}"))
            }
            None => {}
        }
    }
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn every_bundled_suite_conforms_to_the_suite_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/tests");
    let schema = read(&dir.join("suite.schema.json"));
    let suites = etax_authz::policy::testing::suite_files(&dir).unwrap();
    assert!(suites.len() >= 5, "{suites:?}");
    for suite in suites {
        let v = read(&suite);
        assert_eq!(v["$schema"], "suite.schema.json", "{}", suite.display());
        let mut errors = Vec::new();
        validate(&schema, &v, "$", &mut errors);
        assert!(errors.is_empty(), "{}: {errors:?}", suite.display());
    }
}

#[test]
fn the_validator_catches_what_the_runner_refuses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/tests");
    let schema = read(&dir.join("suite.schema.json"));
    let bad = serde_json::json!({
        "entities": [1],
        "cases": [{ "name": "x", "principal": "P", "action": "A", "resource": "R",
                    "decision": "maybe", "extra": true }]
    });
    let mut errors = Vec::new();
    validate(&schema, &bad, "$", &mut errors);
    for needle in ["$.entities", "decision", "unknown member \"extra\""] {
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{needle}: {errors:?}"
        );
    }
}
