//! End to end: `serve --demo`, then /v1/authorize over HTTP for every
//! bundled policy, batches, fail-closed evaluation and bad input.

use crate::common;

use std::collections::BTreeSet;

use common::*;
use etax_authz::store::{PersonRecord, Store};
use serde_json::{json, Value};

struct Case {
    name: &'static str,
    principal: String,
    action: &'static str,
    resource: String,
    context: Value,
    allow: bool,
    /// The determining policies the answer must name, exactly.
    reasons: &'static [&'static str],
}

fn case(
    name: &'static str,
    principal: String,
    action: &'static str,
    resource: String,
    context: Value,
    allow: bool,
    reasons: &'static [&'static str],
) -> Case {
    Case {
        name,
        principal,
        action,
        resource,
        context,
        allow,
        reasons,
    }
}

fn factors(f: &[&str]) -> Value {
    json!({ "factors": f })
}

fn function(code: &str) -> String {
    format!("Function::\"{code}\"")
}

fn acting_for(code: &str) -> Value {
    json!({ "actingFor": { "__entity": { "type": "Etax::Enterprise", "id": code } } })
}

fn cases() -> Vec<Case> {
    let clerk = staff(E_SYNCED, P_CLERK);
    let legal_rep = staff(E_SYNCED, P_LEGAL_REP);
    let finance_head = staff(E_SYNCED, P_FINANCE_HEAD);
    let invoice_buyer = staff(E_SYNCED, P_INVOICE_BUYER);
    let synced = enterprise(E_SYNCED);
    let agency = format!("Agency::\"{AGENCY}\"");
    let natural = format!("Person::\"{P_NATURAL}\"");
    let agent_ok = agent(P_AGENT);
    let all_agent_factors =
        factors(&["agency_password", "personal_password", "agreement_password"]);
    let mut v = vec![
        // R2 step 1
        case(
            "enterprise account password",
            synced.clone(),
            "enterpriseAccountLogin",
            synced.clone(),
            factors(&["enterprise_password"]),
            true,
            &["login.enterprise-account"],
        ),
        case(
            "enterprise account without password",
            synced.clone(),
            "enterpriseAccountLogin",
            synced.clone(),
            factors(&[]),
            false,
            &[],
        ),
        // R6
        case(
            "social-security-only payer, password alone",
            enterprise(E_SOCIAL),
            "loginSocialSecurityOnly",
            enterprise(E_SOCIAL),
            factors(&["enterprise_password"]),
            true,
            &["login.social-security-only"],
        ),
        case(
            "ordinary taxpayer cannot skip the second factor",
            synced.clone(),
            "loginSocialSecurityOnly",
            synced.clone(),
            factors(&["enterprise_password"]),
            false,
            &[],
        ),
        case(
            "social-security-only payer never takes the normal account step",
            enterprise(E_SOCIAL),
            "enterpriseAccountLogin",
            enterprise(E_SOCIAL),
            factors(&["enterprise_password"]),
            false,
            &["login.social-security-only-no-normal-route"],
        ),
        // R2
        case(
            "normal login by SMS",
            clerk.clone(),
            "loginNormal",
            synced.clone(),
            factors(&["enterprise_password", "sms_otp"]),
            true,
            &["login.normal"],
        ),
        case(
            "normal login by personal password",
            clerk.clone(),
            "loginNormal",
            synced.clone(),
            factors(&["enterprise_password", "personal_password"]),
            true,
            &["login.normal"],
        ),
        case(
            "normal login without second factor",
            clerk.clone(),
            "loginNormal",
            synced.clone(),
            factors(&["enterprise_password"]),
            false,
            &[],
        ),
        // R5
        case(
            "normal login of a person without real-name collection",
            staff(E_SYNCED, P_UNVERIFIED_CLERK),
            "loginNormal",
            synced.clone(),
            factors(&["enterprise_password", "sms_otp"]),
            false,
            &["login.realname-required"],
        ),
        // R4
        case(
            "quick login after sync",
            clerk.clone(),
            "loginQuick",
            synced.clone(),
            factors(&["enterprise_password", "sms_otp"]),
            true,
            &["login.quick"],
        ),
        case(
            "quick login needs the SMS code",
            clerk.clone(),
            "loginQuick",
            synced.clone(),
            factors(&["enterprise_password", "personal_password"]),
            false,
            &[],
        ),
        // R7
        case(
            "natural person with captcha",
            natural.clone(),
            "loginNaturalPerson",
            natural.clone(),
            factors(&["personal_password", "captcha"]),
            true,
            &["login.natural-person"],
        ),
        case(
            "natural person without captcha",
            natural.clone(),
            "loginNaturalPerson",
            natural.clone(),
            factors(&["personal_password"]),
            false,
            &[],
        ),
        // R8
        case(
            "agency account",
            agency.clone(),
            "agencyAccountLogin",
            agency.clone(),
            factors(&["agency_password"]),
            true,
            &["login.agency-account"],
        ),
        case(
            "agency account without password",
            agency.clone(),
            "agencyAccountLogin",
            agency.clone(),
            factors(&["personal_password"]),
            false,
            &[],
        ),
        case(
            "agent staff by password",
            agent_ok.clone(),
            "loginAgentStaff",
            agency.clone(),
            factors(&["agency_password", "personal_password"]),
            true,
            &["login.agent-staff"],
        ),
        case(
            "agent staff without agency step",
            agent_ok.clone(),
            "loginAgentStaff",
            agency.clone(),
            factors(&["personal_password"]),
            false,
            &[],
        ),
        case(
            "agent without real-name collection",
            agent(P_UNVERIFIED_AGENT),
            "loginAgentStaff",
            agency.clone(),
            factors(&["agency_password", "sms_otp"]),
            false,
            &["login.realname-required"],
        ),
        case(
            "agent acts for a recognizing client",
            agent_ok.clone(),
            "actForClient",
            synced.clone(),
            all_agent_factors.clone(),
            true,
            &["agency.act-for-recognized-client"],
        ),
        case(
            "agent for a client that never recognized the agency",
            agent_ok.clone(),
            "actForClient",
            enterprise(E_UNSYNCED),
            all_agent_factors,
            false,
            &["agency.client-must-recognize"],
        ),
        case(
            "agent without the agreement password",
            agent_ok.clone(),
            "actForClient",
            synced.clone(),
            factors(&["agency_password", "personal_password"]),
            false,
            &[],
        ),
        case(
            "agent business for a recognizing client",
            agent_ok.clone(),
            "useFunction",
            function("vat_filing"),
            acting_for(E_SYNCED),
            true,
            &["agency.client-business"],
        ),
        case(
            "agent business for another enterprise",
            agent_ok.clone(),
            "useFunction",
            function("vat_filing"),
            acting_for(E_UNSYNCED),
            false,
            &["agency.client-business-needs-recognition"],
        ),
        case(
            "agent without real-name collection does no client business",
            agent(P_UNVERIFIED_AGENT),
            "useFunction",
            function("vat_filing"),
            acting_for(E_SYNCED),
            false,
            &["agency.agent-real-name-required"],
        ),
        // R6/R9: a social-security-only payer asks as the enterprise.
        case(
            "social-security-only payer pays social insurance fees",
            enterprise(E_SOCIAL),
            "useFunction",
            function("social_insurance_fee"),
            json!({}),
            true,
            &["function.social-security-only-payer"],
        ),
        case(
            "social-security-only payer files no VAT",
            enterprise(E_SOCIAL),
            "useFunction",
            function("vat_filing"),
            json!({}),
            false,
            &["function.enterprise-only-social-insurance"],
        ),
        // R17
        case(
            "legal rep recognizes an agency",
            legal_rep.clone(),
            "recognizeAgency",
            synced.clone(),
            json!({}),
            true,
            &["agency.recognition-by-officers"],
        ),
        case(
            "clerk cannot cancel an agency",
            clerk.clone(),
            "cancelAgency",
            synced.clone(),
            json!({}),
            false,
            &["maintain.ordinary-staff-excluded"],
        ),
        // R13
        case(
            "finance head adds staff",
            finance_head.clone(),
            "addStaff",
            synced.clone(),
            json!({}),
            true,
            &["maintain.officers-only"],
        ),
        case(
            "clerk cannot maintain staff",
            clerk.clone(),
            "addStaff",
            synced.clone(),
            json!({}),
            false,
            &["maintain.ordinary-staff-excluded"],
        ),
        case(
            "legal rep of another enterprise",
            legal_rep.clone(),
            "removeStaff",
            enterprise(E_UNSYNCED),
            json!({}),
            false,
            &[],
        ),
        // R16
        case(
            "legal rep edits a clerk",
            legal_rep.clone(),
            "editStaff",
            clerk.clone(),
            json!({}),
            true,
            &["maintain.edit-staff-by-officers"],
        ),
        case(
            "finance head may not edit the legal rep",
            finance_head.clone(),
            "editStaff",
            legal_rep.clone(),
            json!({}),
            false,
            &["maintain.no-cross-officer-edit"],
        ),
        case(
            "finance head may not redefine a permission identity the legal rep holds",
            finance_head.clone(),
            "definePermissionIdentity",
            enterprise(E_SYNCED),
            json!({ "otherHolders": [{ "__entity": { "type": "Etax::IdentityType", "id": "legal_rep" } }] }),
            false,
            &["maintain.no-cross-officer-permission-identity"],
        ),
        case(
            "legal rep defines a permission identity clerks hold",
            legal_rep.clone(),
            "definePermissionIdentity",
            enterprise(E_SYNCED),
            json!({ "otherHolders": [{ "__entity": { "type": "Etax::IdentityType", "id": "tax_clerk" } }] }),
            true,
            &["maintain.officers-only"],
        ),
        // R12
        case(
            "legal rep resets a clerk",
            legal_rep.clone(),
            "resetStaffPassword",
            clerk.clone(),
            json!({}),
            true,
            &["maintain.reset-password-by-officers"],
        ),
        case(
            "legal rep resets own password",
            legal_rep.clone(),
            "resetStaffPassword",
            legal_rep.clone(),
            json!({}),
            true,
            &["maintain.reset-password-by-officers"],
        ),
        case(
            "clerk cannot reset",
            clerk.clone(),
            "resetStaffPassword",
            invoice_buyer.clone(),
            json!({}),
            false,
            &["maintain.ordinary-staff-excluded"],
        ),
        case(
            "finance head cannot reset the legal rep",
            finance_head.clone(),
            "resetStaffPassword",
            legal_rep.clone(),
            json!({}),
            false,
            &["maintain.no-cross-officer-reset"],
        ),
        case(
            "legal rep cannot reset the finance head",
            legal_rep.clone(),
            "resetStaffPassword",
            finance_head.clone(),
            json!({}),
            false,
            &["maintain.no-cross-officer-reset"],
        ),
        // R14/R16
        case(
            "clerk files VAT through the filing role",
            clerk.clone(),
            "useFunction",
            function("vat_filing"),
            json!({}),
            true,
            &["function.via-permission-identity"],
        ),
        case(
            "clerk has no invoicing role",
            clerk.clone(),
            "useFunction",
            function("invoice_issue"),
            json!({}),
            false,
            &[],
        ),
        case(
            "invoice buyer issues invoices",
            invoice_buyer,
            "useFunction",
            function("invoice_issue"),
            json!({}),
            true,
            &["function.via-permission-identity"],
        ),
        // R10-R12: personal passwords.
        case(
            "clerk sets a first password in a live session",
            clerk.clone(),
            "setOwnPassword",
            clerk.clone(),
            json!({"factors": ["session"], "hasPassword": false}),
            true,
            &["password.set-own"],
        ),
        case(
            "changing a password needs the current one",
            clerk.clone(),
            "setOwnPassword",
            clerk.clone(),
            json!({"factors": ["session"], "hasPassword": true}),
            false,
            &[],
        ),
        case(
            "clerk recovers a password by SMS",
            clerk.clone(),
            "recoverPassword",
            clerk.clone(),
            factors(&["sms_otp"]),
            true,
            &["password.recover-by-sms"],
        ),
        case(
            "no real-name collection, no recovery",
            staff(E_SYNCED, P_UNVERIFIED_CLERK),
            "recoverPassword",
            staff(E_SYNCED, P_UNVERIFIED_CLERK),
            factors(&["sms_otp"]),
            false,
            &["password.recover-needs-real-name-phone"],
        ),
    ];

    // R3: an enterprise whose staff were never synced (its legal rep is
    // stored for these tests, see `bureau`).
    v.push(case(
        "quick login before the first normal login",
        staff(E_UNSYNCED, P_UNSYNCED_LEGAL_REP),
        "loginQuick",
        enterprise(E_UNSYNCED),
        factors(&["enterprise_password", "sms_otp"]),
        false,
        &["login.quick-requires-sync"],
    ));
    // R10/R12: a one-time password pending blocks business (赵丽 is stored
    // as such a clerk, see `bureau`).
    v.push(case(
        "one-time password not yet changed",
        staff(E_SYNCED, P_NATURAL),
        "useFunction",
        function("vat_filing"),
        json!({}),
        false,
        &["function.password-change-pending"],
    ));
    v
}

/// The demo bureau plus the two identities some cases need: the unsynced
/// enterprise's legal rep as staff (R3) and a clerk with a one-time password
/// not yet changed (R12). Every entity comes from the store.
fn bureau() -> Server {
    Server::start_with_document(&demo_with(|d| {
        let staff = d["staff"].as_array_mut().unwrap();
        let person = |p: &str| {
            let (t, n) = p.split_once(':').unwrap();
            json!({ "id_type": t, "id_number": n })
        };
        staff.push(
            json!({ "enterprise": E_UNSYNCED, "person": person(P_UNSYNCED_LEGAL_REP),
                           "identity_type": "legal_rep" }),
        );
        staff.push(json!({ "enterprise": E_SYNCED, "person": person(P_NATURAL),
                           "identity_type": "tax_clerk", "permission_identities": ["filing"],
                           "password_change_required": true }));
    }))
}

fn bundled_policy_ids() -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(format!("{CRATE_ROOT}/policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            let text = std::fs::read_to_string(&path).unwrap();
            for part in text.split("@id(\"").skip(1) {
                ids.insert(part.split('"').next().unwrap().to_owned());
            }
        }
    }
    ids
}

#[test]
fn every_bundled_policy_allows_and_denies_as_written() {
    let server = bureau();
    let cases = cases();
    let mut failures = Vec::new();
    for c in &cases {
        let (status, body) = server.post(
            "/v1/authorize",
            &json!({ "principal": c.principal, "action": action(c.action), "resource": c.resource,
                     "context": c.context }),
        );
        let expected = if c.allow { "allow" } else { "deny" };
        let reasons: Vec<&str> = body["reasons"]
            .as_array()
            .map_or(vec![], |r| r.iter().filter_map(Value::as_str).collect());
        if status != 200
            || body["decision"] != expected
            || reasons != c.reasons
            || body["errors"] != json!([])
        {
            failures.push(format!(
                "{}: expected {expected} by {:?}, got {status} {body}",
                c.name, c.reasons
            ));
        }
        assert_eq!(
            body["decision_id"].as_str().map(str::len),
            Some(32),
            "{body}"
        );
        assert_eq!(
            body["policy_version"].as_str().map(str::len),
            Some(64),
            "{body}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every bundled policy decides at least one case.
    let decided: BTreeSet<String> = cases
        .iter()
        .flat_map(|c| c.reasons.iter().map(|r| r.to_string()))
        .collect();
    let missing: Vec<_> = bundled_policy_ids().difference(&decided).cloned().collect();
    assert!(
        missing.is_empty(),
        "policies without a deciding case: {missing:?}"
    );
}

#[test]
fn fail_closed_when_an_entity_is_missing() {
    // A stored staff member whose person record is gone: the real-name
    // `forbid` cannot evaluate. Cedar alone would skip it and allow through
    // `login.normal`; the service must deny and say why.
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = import_document(&demo_with(|_| {}), tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    let data = tmp.path().join("data");
    let store = Store::open(&data.join("identities.redb")).unwrap();
    store.write(|w| w.remove::<PersonRecord>(P_CLERK)).unwrap();
    drop(store);
    let server = Server::demo_in(&data, &[]);
    let body = server.post(
        "/v1/authorize",
        &json!({
            "principal": staff(E_SYNCED, P_CLERK),
            "action": action("loginNormal"),
            "resource": enterprise(E_SYNCED),
            "context": factors(&["enterprise_password", "sms_otp"]),
        }),
    );
    assert_eq!(body.0, 200, "{}", body.1);
    assert_eq!(body.1["decision"], "deny", "{}", body.1);
    let errors = body.1["errors"].to_string();
    assert!(errors.contains("login.realname-required"), "{errors}");

    // An unknown principal is denied with an error naming it.
    let body = server.authorize(
        &staff(E_SYNCED, P_NATURAL),
        &action("useFunction"),
        "Function::\"vat_filing\"",
        json!({}),
    );
    assert_eq!(body["decision"], "deny");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("not in the identity store"),
        "{body}"
    );
}

#[test]
fn batch_answers_each_request_in_order() {
    let server = Server::demo();
    let clerk = staff(E_SYNCED, P_CLERK);
    let req = |f: &str| json!({ "principal": clerk, "action": action("useFunction"), "resource": format!("Function::\"{f}\"") });
    let (status, body) = server.post(
        "/v1/authorize/batch",
        &json!({ "requests": [req("vat_filing"), req("invoice_issue"), req("cit_filing")] }),
    );
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    let decisions: Vec<&str> = results
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allow", "deny", "allow"]);
    let ids: BTreeSet<&str> = results
        .iter()
        .map(|r| r["decision_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "each result has its own decision id");

    // A bad element rejects the batch and names it.
    let (status, body) = server.post(
        "/v1/authorize/batch",
        &json!({ "requests": [req("vat_filing"), { "principal": "Staff::oops", "action": action("useFunction"), "resource": "Function::\"x\"" }] }),
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "requests[1].principal", "{body}");

    // Questions may carry a session instead of a principal.
    let (session, _) = login_by_sms(&server, "*伟");
    let with_session = |f: &str| json!({ "session": session, "action": action("useFunction"), "resource": format!("Function::\"{f}\"") });
    let (status, body) = server.post(
        "/v1/authorize/batch",
        &json!({ "requests": [with_session("vat_filing"), with_session("invoice_issue"), req("invoice_issue")] }),
    );
    assert_eq!(status, 200, "{body}");
    let decisions: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allow", "deny", "deny"]);
    let unknown = json!({ "session": "expired-or-unknown", "action": action("useFunction"), "resource": "Function::\"vat_filing\"" });
    let (status, body) = server.post(
        "/v1/authorize/batch",
        &json!({ "requests": [req("vat_filing"), unknown] }),
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["field"], "requests[1].session", "{body}");

    let too_many: Vec<Value> = (0..101).map(|_| req("vat_filing")).collect();
    let (status, body) = server.post("/v1/authorize/batch", &json!({ "requests": too_many }));
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "requests", "{body}");
}

#[test]
fn bad_input_gets_a_4xx_json_error_naming_the_field() {
    let server = Server::demo();
    let clerk = staff(E_SYNCED, P_CLERK);
    let expect = |status: u16, body: Value, want_status: u16, field: Option<&str>| {
        assert_eq!(status, want_status, "{body}");
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{body}"
        );
        if let Some(f) = field {
            assert_eq!(body["error"]["field"], f, "{body}");
        }
    };
    let ok = |p: &str, a: &str, r: &str| json!({ "principal": p, "action": a, "resource": r });

    let (s, b) = server.request("POST", "/v1/authorize", Some(b"{not json"));
    expect(s, b, 400, Some("body"));
    let (s, b) = server.post(
        "/v1/authorize",
        &json!({ "action": action("useFunction"), "resource": "Function::\"vat_filing\"" }),
    );
    expect(s, b, 400, Some("principal"));
    let (s, b) = server.post(
        "/v1/authorize",
        &ok(
            "Nope::\"x\"",
            &action("useFunction"),
            "Function::\"vat_filing\"",
        ),
    );
    expect(s, b, 400, Some("principal"));
    let (s, b) = server.post(
        "/v1/authorize",
        &ok(&clerk, &action("useFunction"), "Function:\"vat_filing\""),
    );
    expect(s, b, 400, Some("resource"));
    let (s, b) = server.post(
        "/v1/authorize",
        &ok(&clerk, &action("fly"), "Function::\"vat_filing\""),
    );
    expect(s, b, 400, Some("action"));
    // A principal type the action does not apply to.
    let (s, b) = server.post(
        "/v1/authorize",
        &ok(
            &format!("Person::\"{P_NATURAL}\""),
            &action("useFunction"),
            "Function::\"vat_filing\"",
        ),
    );
    expect(s, b, 400, Some("principal"));
    // Context of the wrong shape.
    let (s, b) = server.post(
        "/v1/authorize",
        &json!({ "principal": clerk, "action": action("loginNormal"), "resource": enterprise(E_SYNCED), "context": { "factors": "sms_otp" } }),
    );
    expect(s, b, 400, Some("context"));
    let (s, b) = server.post(
        "/v1/authorize",
        &json!({ "principal": clerk, "action": action("useFunction"), "resource": "Function::\"vat_filing\"", "context": [1] }),
    );
    expect(s, b, 400, Some("context"));
    // Unknown fields are refused rather than ignored.
    let (s, b) = server.post(
        "/v1/authorize",
        &json!({ "principal": clerk, "action": action("useFunction"), "resource": "Function::\"vat_filing\"", "principle": "x" }),
    );
    expect(s, b, 400, Some("principle"));
    // Entities come from the store only: a caller may not send any.
    let (s, b) = server.post(
        "/v1/authorize",
        &json!({ "principal": staff(E_SYNCED, P_UNVERIFIED_CLERK), "action": action("loginNormal"),
                 "resource": enterprise(E_SYNCED), "context": factors(&["enterprise_password", "sms_otp"]),
                 "entities": [{ "uid": { "type": "Etax::Person", "id": P_UNVERIFIED_CLERK },
                                "attrs": { "realNameVerified": true, "hasRealNamePhone": true }, "parents": [] }] }),
    );
    expect(s, b, 400, Some("entities"));
    // Body over the 64 KiB limit.
    let big = format!("{{\"principal\":\"{}\"}}", "x".repeat(70 * 1024));
    let (s, b) = server.request("POST", "/v1/authorize", Some(big.as_bytes()));
    expect(s, b, 413, None);
    let (s, b) = server.get("/v1/nowhere");
    expect(s, b, 404, None);
    let (s, b) = server.get("/v1/authorize");
    expect(s, b, 405, None);

    // The service is still healthy after all of that.
    let (s, b) = server.get("/healthz");
    assert_eq!((s, b["status"].as_str()), (200, Some("ok")));
}

#[test]
fn status_reports_the_active_policy_version() {
    let server = Server::demo();
    let (s, b) = server.get("/v1/status");
    assert_eq!(s, 200);
    assert_eq!(b["policy_version"].as_str().unwrap().len(), 64);
    assert_eq!(
        b["policy_count"].as_u64(),
        Some(bundled_policy_ids().len() as u64)
    );
}

#[test]
fn connections_past_the_limit_wait_until_one_closes() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    let s = Server::start_with(&["--max-connections", "2"]);
    // Two idle connections hold both places (hyper waits for their headers).
    let mut idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // A third connects (the kernel's accept queue) but is not served yet.
    let mut third = TcpStream::connect(s.addr).unwrap();
    third
        .write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1];
    let waited = third.read(&mut buf);
    assert!(waited.is_err(), "served past the limit: {waited:?}");
    // One idle connection closes: the third is served.
    drop(idle.pop());
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    third.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(idle);
}
