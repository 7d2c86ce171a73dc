//! Bad input never crashes the service: generated requests — JSON of every
//! shape with the API's own field names and values both plausible and
//! wrong, and raw bytes — to every endpoint. Each answer is a 2xx or a 4xx
//! with a JSON error naming what was wrong; never a 5xx, never a dropped
//! connection; and the service still answers afterwards.

use crate::common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

/// Besides every login and password step (the `Login` rows of the route
/// table).
const OTHER_PATHS: &[&str] = &[
    "/v1/authorize",
    "/v1/authorize/batch",
    "/v1/admin/real-name",
    "/v1/admin/enterprises/91210102MA0TAX001F/officers",
    "/v1/maintenance/staff",
    "/v1/maintenance/permission-identities",
    "/v1/maintenance/agencies",
    "/v1/maintenance/staff/resident_id:210102199001015035",
    "/v1/maintenance/staff/resident_id:210102199001015035/reset-password",
    "/v1/maintenance/permission-identities/filing",
    "/v1/maintenance/agencies/91210100MA0AGT004B",
];

const FIELDS: &[&str] = &[
    "principal",
    "action",
    "resource",
    "context",
    "entities",
    "session",
    "requests",
    "account",
    "password",
    "flow",
    "staff",
    "agent",
    "challenge",
    "code",
    "id_type",
    "id_number",
    "identity_type",
    "client",
    "agreement_password",
    "new_password",
    "current_password",
    "kind",
    "phone",
    "factors",
    "actingFor",
    "__entity",
    "type",
    "id",
    "uid",
    "attrs",
    "parents",
    "results",
    "name",
    "functions",
    "real_name_verified",
    "legal_rep",
    "finance_head",
];

const STRINGS: &[&str] = &[
    "",
    "Staff::\"91210102MA0TAX001F/resident_id:210102199001015035\"",
    "Etax::Action::\"useFunction\"",
    "Action::\"nope\"",
    "Function::\"vat_filing\"",
    "Enterprise::\"91210102MA0TAX001F\"",
    "Staff::\"unterminated",
    "Nope::\"x\"",
    "91210102MA0TAX001F",
    "210102199001015035",
    "resident_id",
    "passport",
    "13800000003",
    "Etax@2026",
    "staff",
    "natural_person",
    "legal_rep",
    "000000",
    "\u{0000}",
    "张伟",
    "😀",
    "../../etc/passwd",
    "1e999",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        proptest::sample::select(STRINGS).prop_map(|s| json!(s)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(FIELDS), inner), 0..6).prop_map(
                |kv| Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>()
                )
            ),
        ]
    })
}

/// A body: an object of the API's fields, any JSON, or raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let object = proptest::collection::vec((proptest::sample::select(FIELDS), value()), 0..8)
        .prop_map(|kv| {
            Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).to_string()
        });
    prop_oneof![
        4 => object.prop_map(String::into_bytes),
        1 => value().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

fn check(status: u16, text: &str, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{what}: {status} {text}");
    let v: Value = serde_json::from_str(text)
        .map_err(|e| TestCaseError::fail(format!("{what}: not JSON ({e}): {text}")))?;
    if status >= 400 {
        prop_assert!(v["error"]["code"].is_string(), "{what}: {text}");
    }
    Ok(())
}

#[test]
fn generated_requests_get_2xx_or_a_4xx_json_error_and_the_service_lives_on() {
    let s = Server::demo();
    // Maintenance requests go deeper with a live legal rep's session.
    let (legal_rep, _) = login_by_sms(&s, "**国");
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    use etax_authz::http::routes::{Handler, ROUTES};
    let login_paths: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.handler == Handler::Login)
        .map(|r| r.path)
        .collect();
    let cases = (
        proptest::sample::select([login_paths.as_slice(), OTHER_PATHS].concat()),
        proptest::sample::select(&["POST", "POST", "PATCH", "DELETE", "GET", "PUT"][..]),
        body(),
        proptest::sample::select(vec![
            String::new(),
            "0123456789abcdef".to_owned(),
            legal_rep.clone(),
        ]),
    );
    runner
        .run(&cases, |(path, method, body, session)| {
            let headers: &[(&str, &str)] = if session.is_empty() {
                &[]
            } else {
                &[("X-Etax-Session", session.as_str())]
            };
            let (status, text) = try_http_with(s.addr, method, path, headers, Some(&body))
                .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
            check(status, &text, path)
        })
        .unwrap();
    let queries = proptest::collection::vec(
        (
            proptest::sample::select(
                &[
                    "since",
                    "until",
                    "principal",
                    "enterprise",
                    "action",
                    "decision",
                    "policy",
                    "kind",
                    "after",
                    "limit",
                    "x",
                ][..],
            ),
            "[-a-z0-9%:._*\"]{0,12}",
        ),
        0..4,
    );
    runner
        .run(&queries, |q| {
            let query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let path = format!("/v1/audit/decisions?{}", query.join("&"));
            let (status, text) = try_http_with(s.addr, "GET", &path, &[], None)
                .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
            check(status, &text, &path)
        })
        .unwrap();
    let (status, _) = s.get("/healthz");
    assert_eq!(status, 200);
    let (status, report) = s.get("/v1/audit/verify");
    assert_eq!(status, 200, "{report}");
}
