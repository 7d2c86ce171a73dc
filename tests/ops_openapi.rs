//! `/openapi.json` against what the real binary serves: every answer
//! validates against its operation's documented 200 schema, and every
//! documented query parameter is one its handler accepts (the handlers
//! refuse any other, naming it).

use crate::common;

use common::*;
use serde_json::{json, Value};

/// The schema `r` points at, following `$ref`s into the document.
fn resolve<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        s = &doc["components"]["schemas"][name];
        assert!(!s.is_null(), "{r} is not defined");
    }
    s
}

fn type_fits(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => panic!("unknown type {ty}"),
    }
}

/// The first way `v` breaks `schema` (the JSON Schema subset utoipa
/// writes: type, enum, required, properties, items, allOf/anyOf/oneOf),
/// with its location.
fn violation(doc: &Value, schema: &Value, v: &Value, at: &str) -> Option<String> {
    let s = resolve(doc, schema);
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_fits(t, v)) {
        return Some(format!("{at}: {v} is not {types:?}"));
    }
    if let Some(names) = s["enum"].as_array() {
        if !names.contains(v) {
            return Some(format!("{at}: {v} is not one of {names:?}"));
        }
    }
    if let Some(all) = s["allOf"].as_array() {
        if let Some(e) = all.iter().find_map(|p| violation(doc, p, v, at)) {
            return Some(e);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(any) = s[key].as_array() {
            let errors: Vec<String> = any
                .iter()
                .filter_map(|p| violation(doc, p, v, at))
                .collect();
            if errors.len() == any.len() {
                return Some(format!("{at}: matches no {key}: {errors:?}"));
            }
        }
    }
    if let (Some(obj), Some(props)) = (v.as_object(), s["properties"].as_object()) {
        for name in s["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(name.as_str().unwrap()) {
                return Some(format!("{at}: {name} is required, in {v}"));
            }
        }
        for (k, field) in obj {
            if let Some(p) = props.get(k) {
                if let Some(e) = violation(doc, p, field, &format!("{at}.{k}")) {
                    return Some(e);
                }
            }
        }
    }
    if let (Some(items), Some(list)) = (s.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            if let Some(e) = violation(doc, items, item, &format!("{at}[{i}]")) {
                return Some(e);
            }
        }
    }
    None
}

/// Asserts a 200 answer validates against `method path`'s documented one.
fn conforms(doc: &Value, method: &str, pattern: &str, (status, body): (u16, Value)) -> Value {
    assert_eq!(status, 200, "{method} {pattern}: {body}");
    let schema =
        &doc["paths"][pattern][method]["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {pattern} documents no JSON answer"
    );
    if let Some(e) = violation(doc, schema, &body, "$") {
        panic!("{method} {pattern}: {e}");
    }
    body
}

#[test]
fn the_validator_notices_a_missing_field_a_wrong_type_and_a_bad_enum() {
    let doc = json!({ "components": { "schemas": {
        "T": { "type": "object", "required": ["a"], "properties": {
            "a": { "type": "integer" }, "b": { "type": "string", "enum": ["x"] } } } } } });
    let t = json!({ "$ref": "#/components/schemas/T" });
    assert!(violation(&doc, &t, &json!({ "a": 1, "b": "x" }), "$").is_none());
    assert!(violation(&doc, &t, &json!({ "b": "x" }), "$").is_some());
    assert!(violation(&doc, &t, &json!({ "a": "1" }), "$").is_some());
    assert!(violation(&doc, &t, &json!({ "a": 1, "b": "y" }), "$").is_some());
}

#[test]
fn open_status_policy_and_audit_answers_match_their_schemas() {
    let server = Server::demo();
    let (_, doc) = server.get("/openapi.json");
    let get = |p: &str| server.get(p);
    conforms(&doc, "get", "/healthz", get("/healthz"));
    conforms(&doc, "get", "/readyz", get("/readyz"));
    conforms(&doc, "get", "/openapi.json", get("/openapi.json"));
    conforms(&doc, "get", "/v1/status", get("/v1/status"));
    conforms(&doc, "get", "/v1/functions", get("/v1/functions"));
    conforms(
        &doc,
        "get",
        "/v1/policies",
        get("/v1/policies?action=useFunction"),
    );
    let ask = json!({
        "principal": staff(E_SYNCED, P_CLERK),
        "action": action("useFunction"),
        "resource": "Function::\"vat_filing\"",
    });
    conforms(
        &doc,
        "post",
        "/v1/authorize",
        server.post("/v1/authorize", &ask),
    );
    let explained = conforms(
        &doc,
        "post",
        "/v1/authorize",
        server.post("/v1/authorize?explain=true", &ask),
    );
    assert!(explained["explain"]["policies"].is_array(), "{explained}");
    let page = conforms(
        &doc,
        "get",
        "/v1/audit/decisions",
        get("/v1/audit/decisions?limit=5"),
    );
    assert!(!page["records"].as_array().unwrap().is_empty(), "{page}");
    conforms(&doc, "get", "/v1/audit/verify", get("/v1/audit/verify"));
    conforms(
        &doc,
        "get",
        "/v1/audit/checkpoint",
        get("/v1/audit/checkpoint"),
    );
    conforms(
        &doc,
        "get",
        "/v1/audit/summary",
        get("/v1/audit/summary?by=kind,decision"),
    );
    let (_, status) = get("/v1/status");
    let version = status["policy_version"].as_str().unwrap();
    conforms(
        &doc,
        "get",
        "/v1/audit/policy/{version}",
        get(&format!("/v1/audit/policy/{version}")),
    );
}

#[test]
fn login_and_maintenance_answers_match_their_schemas() {
    let server = Server::demo();
    let (_, doc) = server.get("/openapi.json");
    let first = server.post(
        "/v1/login/enterprise",
        &json!({ "account": E_SYNCED, "password": "Etax@2026" }),
    );
    let flow = conforms(&doc, "post", "/v1/login/enterprise", first)["flow"].clone();
    conforms(
        &doc,
        "post",
        "/v1/login/enterprise/cancel",
        server.post("/v1/login/enterprise/cancel", &json!({ "flow": flow })),
    );
    let quick = server.post(
        "/v1/login/quick/code",
        &json!({ "account": E_SYNCED, "password": "Etax@2026", "identity_type": "legal_rep",
                 "id_type": "resident_id", "id_number": P_LEGAL_REP.trim_start_matches("resident_id:") }),
    );
    let issued = conforms(&doc, "post", "/v1/login/quick/code", quick);
    assert!(
        issued["flow"].is_string() && issued["destination"].is_object(),
        "{issued}"
    );
    let feed = json!({ "id_type": "resident_id", "id_number": "210112198709172093", "name": "郑强",
                       "verified": true, "phone": "13700000009" });
    conforms(
        &doc,
        "post",
        "/v1/admin/real-name",
        server.post("/v1/admin/real-name", &feed),
    );
    let (session, _) = login_by_sms(&server, "**国");
    let m = |method: &str, path: &str, body: Option<Value>| {
        with_session(&server, &session, method, path, body)
    };
    let list = conforms(
        &doc,
        "get",
        "/v1/maintenance/staff",
        m("GET", "/v1/maintenance/staff", None),
    );
    let identities = "/v1/maintenance/permission-identities";
    conforms(&doc, "get", identities, m("GET", identities, None));
    let created = json!({ "id": "openapi_probe", "name": "探针", "functions": ["vat_filing"] });
    conforms(
        &doc,
        "post",
        identities,
        m("POST", identities, Some(created)),
    );
    let one = "/v1/maintenance/permission-identities/{id}";
    conforms(
        &doc,
        "delete",
        one,
        m(
            "DELETE",
            &format!("{identities}/openapi_probe?detach=true"),
            None,
        ),
    );
    let member = list["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["identity_type"] == "tax_clerk")
        .unwrap_or_else(|| panic!("no tax clerk: {list}"));
    let path = format!(
        "/v1/maintenance/staff/{}",
        member["person_key"].as_str().unwrap()
    );
    conforms(
        &doc,
        "patch",
        "/v1/maintenance/staff/{person}",
        m("PATCH", &path, Some(json!({}))),
    );
    conforms(
        &doc,
        "post",
        "/v1/maintenance/staff/{person}/reset-password",
        m("POST", &format!("{path}/reset-password"), None),
    );
    conforms(
        &doc,
        "post",
        "/v1/logout",
        server.post("/v1/logout", &json!({ "session": session })),
    );
}

/// Every query parameter `/openapi.json` documents, sent with its
/// example: the handler does not refuse it as unknown. An undocumented one
/// is refused, naming it.
#[test]
fn every_documented_query_parameter_is_accepted_and_no_other() {
    let server = Server::demo();
    let (_, doc) = server.get("/openapi.json");
    let (_, status) = server.get("/v1/status");
    let version = status["policy_version"].as_str().unwrap().to_owned();
    let mut checked = 0;
    for (pattern, ops) in doc["paths"].as_object().unwrap() {
        let Some(op) = ops.get("get") else { continue };
        // Answered only in fleet mode: tests/fleet_log.rs checks them there.
        if pattern.starts_with("/v1/fleet/") {
            continue;
        }
        let path = pattern.replace("{version}", &version);
        let params = op["parameters"].as_array().unwrap();
        for p in params.iter().filter(|p| p["in"] == "query") {
            let name = p["name"].as_str().unwrap();
            let example = match &p["example"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let required: Vec<String> = params
                .iter()
                .filter(|q| q["in"] == "query" && q["required"] == true && q["name"] != name)
                .map(|q| {
                    format!(
                        "&{}={}",
                        q["name"].as_str().unwrap(),
                        q["example"].as_str().unwrap()
                    )
                })
                .collect();
            let url = format!(
                "{path}?{name}={}{}",
                example.replace('+', "%2B"),
                required.concat()
            );
            // Raw: the export answers lines, not one JSON value.
            let (s, text) = http(server.addr, "GET", &url, None);
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let unknown = body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown parameter"));
            assert!(s == 200 && !unknown, "GET {url}: {s} {text}");
            checked += 1;
        }
        let documented = params.iter().any(|p| p["in"] == "query");
        if documented {
            let (s, body) = server.request("GET", &format!("{path}?undocumented=1"), None);
            if pattern != "/v1/policies" {
                assert_eq!(s, 400, "{pattern}?undocumented=1: {body}");
                assert_eq!(body["error"]["field"], "undocumented", "{body}");
            }
        }
    }
    assert!(checked >= 20, "only {checked} parameters documented");
}

/// The answers that were once `json!` objects keep their keys in the order
/// they were written then, so clients that compared bytes see no change.
#[test]
fn typed_answers_keep_the_key_order_of_the_objects_they_replaced() {
    let server = Server::demo();
    let (_, status) = http(server.addr, "GET", "/v1/status", None);
    assert!(
        status.starts_with(r#"{"service":"etax-authz","version":""#),
        "{status}"
    );
    let reloads = status.find(r#""reloads":{"succeeded":"#);
    assert!(reloads.is_some(), "{status}");
    let (_, functions) = http(server.addr, "GET", "/v1/functions", None);
    assert!(
        functions.starts_with(r#"{"functions":[{"code":"#),
        "{functions}"
    );
    let first: Value = serde_json::from_str::<Value>(&functions).unwrap()["functions"][0].clone();
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["code", "name", "description"], "{functions}");
    let (_, health) = http(server.addr, "GET", "/healthz", None);
    assert_eq!(health, r#"{"status":"ok"}"#);
}
