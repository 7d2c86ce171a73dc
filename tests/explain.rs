//! `POST /v1/authorize?explain=true` and `etax-authz explain` against the
//! demo bureau: the trace names every policy of the action's index, says
//! which scope matched and which clause failed, and the decision beside it
//! is the ordinary, recorded one.

use crate::common;

use common::*;
use serde_json::{json, Value};

fn question(principal: &str, function: &str) -> Value {
    json!({
        "principal": principal,
        "action": action("useFunction"),
        "resource": format!("Function::\"{function}\""),
    })
}

fn policy<'a>(explain: &'a Value, id: &str) -> &'a Value {
    explain["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {explain}"))
}

#[test]
fn a_denied_question_says_which_clause_failed() {
    let server = Server::demo();
    let clerk = staff(E_SYNCED, P_CLERK);
    let (code, body) = server.post(
        "/v1/authorize?explain=true",
        &question(&clerk, "invoice_issue"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["decision"], "deny");
    let explain = &body["explain"];
    assert_eq!(explain["policy_version"], body["policy_version"]);
    let via = policy(explain, "function.via-permission-identity");
    assert_eq!(via["scope_matched"], true);
    assert_eq!(via["applies"], false);
    assert_eq!(via["clauses"][0]["kind"], "when");
    assert_eq!(via["clauses"][0]["text"], "principal in resource");
    assert_eq!(via["clauses"][0]["result"], "false");
    // An enterprise-only rule's scope does not match a staff member.
    let social = policy(explain, "function.social-security-only-payer");
    assert_eq!(social["scope_matched"], false);
    assert_eq!(social["clauses"], json!([]));
    // Every policy the index holds for useFunction, nothing else.
    let (code, list) = server.get("/v1/policies?action=useFunction");
    assert_eq!(code, 200, "{list}");
    let ids = |v: &Value| -> Vec<String> {
        v["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(explain), ids(&list));
    assert!(
        !ids(&list).iter().any(|id| id.starts_with("login.")),
        "{list}"
    );

    // The decision was recorded as any /v1/authorize decision.
    let allowed = server.post_ok(
        "/v1/authorize?explain=true",
        &question(&clerk, "vat_filing"),
    );
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(
        policy(&allowed["explain"], "function.via-permission-identity")["applies"],
        true
    );
    let id = allowed["decision_id"].as_str().unwrap().to_owned();
    wait_until("the decision record", || {
        let (_, page) = server.get("/v1/audit/decisions?kind=authorize&decision=allow");
        page["records"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["decision_id"] == id.as_str()))
    });
}

#[test]
fn explain_output_masks_id_numbers_and_bad_flags_are_400s() {
    let server = Server::demo();
    // A person the store does not hold: the error names the principal.
    let ghost = staff(E_SYNCED, "resident_id:110101199003074514");
    let body = server.post_ok(
        "/v1/authorize?explain=true",
        &question(&ghost, "vat_filing"),
    );
    assert_eq!(body["decision"], "deny");
    let text = body.to_string();
    assert!(!text.contains("110101199003074514"), "{text}");
    let (code, body) = server.post(
        "/v1/authorize?explain=maybe",
        &question(&ghost, "vat_filing"),
    );
    assert_eq!(
        (code, body["error"]["field"].as_str()),
        (400, Some("explain")),
        "{body}"
    );
    let (code, body) = server.get("/v1/policies?action=fly");
    assert_eq!(
        (code, body["error"]["field"].as_str()),
        (400, Some("action")),
        "{body}"
    );
    let (code, body) = server.get("/v1/policies");
    assert_eq!(code, 400, "{body}");
}

#[test]
fn the_cli_explains_against_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (code, out, err) = import_document(&demo_with(|_| {}), tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    let clerk = staff(E_SYNCED, P_CLERK);
    let args = |function: &str| {
        vec![
            "explain".to_owned(),
            "--principal".into(),
            clerk.clone(),
            "--action".into(),
            "useFunction".into(),
            "--resource".into(),
            format!("Function::\"{function}\""),
            "--data".into(),
            data.to_str().unwrap().into(),
        ]
    };
    let run = |a: Vec<String>| cli(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, out, err) = run(args("invoice_issue"));
    assert_eq!(code, 2, "deny exits 2: {out}{err}");
    assert!(out.starts_with("decision: deny"), "{out}");
    assert!(
        out.contains(
            "permit function.via-permission-identity (policies/functions.cedar): does not apply"
        ),
        "{out}"
    );
    assert!(
        out.contains("when { principal in resource } → false"),
        "{out}"
    );
    let mut json_args = args("vat_filing");
    json_args.push("--json".into());
    let (code, out, err) = run(json_args);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(
        policy(&v["explain"], "function.via-permission-identity")["applies"],
        true
    );
}

#[test]
fn explain_takes_exactly_one_true_or_false_and_batch_refuses_it() {
    let server = Server::demo();
    let ask = question(&staff(E_SYNCED, P_CLERK), "vat_filing");
    for query in [
        "explain=true&explain=false",
        "explain=1",
        "explain=0",
        "explain=TRUE",
        "explain=",
    ] {
        let (code, body) = server.post(&format!("/v1/authorize?{query}"), &ask);
        assert_eq!(
            (code, body["error"]["field"].as_str()),
            (400, Some("explain")),
            "{query}: {body}"
        );
    }
    let body = server.post_ok("/v1/authorize?explain=false", &ask);
    assert!(body.get("explain").is_none(), "{body}");
    let (code, body) = server.post(
        "/v1/authorize/batch?explain=true",
        &serde_json::json!({ "requests": [ask] }),
    );
    assert_eq!(
        (code, body["error"]["field"].as_str()),
        (400, Some("explain")),
        "{body}"
    );
}
