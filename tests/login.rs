//! End-to-end tests of every login mode (R1–R9) over HTTP against the real
//! binary serving the demo bureau (examples/demo.json). Passwords (R10–R12)
//! are in `passwords.rs`, sessions' lifetimes in `sessions.rs`.

use crate::common;
use crate::login_support;

use common::{demo_with, Server, AGENCY};
use login_support::*;
use serde_json::{json, Value};

#[test]
fn normal_login_by_personal_password_then_authorize_with_session() {
    let s = Server::demo();
    // By taxpayer ID as well as credit code (R2).
    let v = enterprise(&s, ENT_TIN, ENT_PW);
    assert_eq!(v["status"], "select_staff");
    assert_eq!(v["sync_required"], false);
    let wang = v["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == WANG)
        .unwrap();
    assert_eq!(wang["identity_type"], "legal_rep");
    assert_eq!(wang["methods"], json!(["sms", "password"]));
    let (status, login) = s.post(
        "/v1/login/enterprise/complete",
        &json!({"flow": v["flow"], "staff": wang["staff_id"], "password": "Wang@2026jg"}),
    );
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["route"], "home");
    assert_eq!(login["obligations"], json!([]));
    let token = login["session"].as_str().unwrap();
    assert!(token.len() >= 32);
    let (status, d) = use_function(&s, token, "vat_filing");
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["decision"], "allow");
    // The flow is used up.
    let (status, v2) = s.post(
        "/v1/login/enterprise/complete",
        &json!({"flow": v["flow"], "staff": wang["staff_id"], "password": "Wang@2026jg"}),
    );
    assert_eq!((status, error_code(&v2)), (401, "login_flow_expired"));
    // Every step is in the decision log, and no secret is.
    let log = s.decision_log_bytes();
    let contains = |needle: &str| log.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains("login.enterprise_account"));
    assert!(contains("login.normal"));
    for secret in [ENT_PW, "Wang@2026jg", token, "210102198003124011"] {
        assert!(!contains(secret), "decision log holds {secret}");
    }
}

#[test]
fn normal_login_by_sms_obliges_setting_a_password() {
    let s = Server::demo();
    let (flow, li) = picked(&s, LI);
    let issued = send_code(&s, &flow, &li);
    assert_eq!(issued["destination"]["phone_masked"], "138****0002");
    assert_eq!(issued["destination"]["phone"], "13800000002");
    assert_eq!(issued["code"].as_str().unwrap().len(), 6);
    // A personal password she does not have fails like a wrong one.
    let (status, v) = s.post(
        "/v1/login/enterprise/complete",
        &json!({"flow": flow, "staff": li, "password": "Whatever@1"}),
    );
    assert_eq!((status, error_code(&v)), (401, "invalid_credentials"));
    let (status, v) = answer_code(&s, &flow, &li, &issued);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["obligations"], json!(["set_password"]));
}

#[test]
fn wrong_password_and_unknown_account_get_the_same_answer() {
    let s = Server::demo();
    let (s1, wrong_pw) = s.post(
        "/v1/login/enterprise",
        &json!({"account": ENT, "password": "Wrong@2026"}),
    );
    let (s2, unknown) = s.post(
        "/v1/login/enterprise",
        &json!({"account": "91210102MA0TAX002J", "password": "Wrong@2026"}),
    );
    assert_eq!(s1, 401);
    assert_eq!(s2, 401, "{unknown}");
    assert_eq!(wrong_pw, unknown);
    assert_eq!(error_code(&wrong_pw), "invalid_credentials");
    // A malformed account is a request error, not a credential failure.
    let (s3, bad) = s.post(
        "/v1/login/enterprise",
        &json!({"account": "12345", "password": "x"}),
    );
    assert_eq!((s3, bad["error"]["field"].as_str()), (400, Some("account")));
}

#[test]
fn an_unknown_account_costs_one_password_verification_like_a_real_one() {
    // Similar timing: an unknown account is verified against a dummy hash,
    // so it costs the same one argon2id verification as a wrong password.
    let s = Server::demo();
    let verifications = || s.metric("etax_password_verifications_total");
    let attempts = [
        (
            "/v1/login/enterprise",
            json!({"account": ENT, "password": "Wrong@2026"}),
        ),
        (
            "/v1/login/enterprise",
            json!({"account": "91210102MA0TAX002J", "password": "Wrong@2026"}),
        ),
        (
            "/v1/login/agency",
            json!({"account": AGENCY, "password": "Wrong@2026"}),
        ),
        (
            "/v1/login/agency",
            json!({"account": "91210100MA0AGT995T", "password": "Wrong@2026"}),
        ),
    ];
    for (path, body) in attempts {
        let before = verifications();
        let (status, v) = s.post(path, &body);
        assert_eq!(status, 401, "{body}: {v}");
        assert_eq!(verifications(), before + 1, "{body}");
    }
    for id_number in ["210106199102140105", "210106199102140201"] {
        let c = s.post_ok("/v1/login/captcha", &json!({"id_number": id_number}));
        let before = verifications();
        let (status, v) = s.post(
            "/v1/login/natural-person",
            &json!({"id_number": id_number, "password": "Wrong@2026",
                    "challenge": c["challenge"], "code": c["code"]}),
        );
        assert_eq!(
            (status, error_code(&v)),
            (401, "invalid_credentials"),
            "{v}"
        );
        assert_eq!(verifications(), before + 1, "{id_number}");
    }
}

#[test]
fn sixth_attempt_after_five_failures_is_locked_even_with_the_right_password() {
    let s = Server::demo();
    for account in [ENT, "91210102MA0TAX002J"] {
        for i in 0..5 {
            let (status, v) = s.post(
                "/v1/login/enterprise",
                &json!({"account": account, "password": format!("Wrong@{i}x")}),
            );
            assert_eq!(status, 401, "attempt {i}: {v}");
        }
        let (status, v) = s.post(
            "/v1/login/enterprise",
            &json!({"account": account, "password": ENT_PW}),
        );
        assert_eq!((status, error_code(&v)), (423, "account_locked"), "{v}");
    }
}

#[test]
fn lock_expires_and_a_success_clears_the_count() {
    let s = Server::start_with(&["--lockout-base-secs", "1"]);
    for _ in 0..5 {
        s.post(
            "/v1/login/enterprise",
            &json!({"account": ENT, "password": "Wrong@2026x"}),
        );
    }
    let (status, _) = s.post(
        "/v1/login/enterprise",
        &json!({"account": ENT, "password": ENT_PW}),
    );
    assert_eq!(status, 423);
    std::thread::sleep(std::time::Duration::from_millis(1300));
    enterprise(&s, ENT, ENT_PW);
}

#[test]
fn staff_without_real_name_collection_is_refused() {
    let s = Server::demo();
    let (flow, chen) = picked(&s, CHEN);
    let (status, v) = s.post(
        "/v1/login/enterprise/code",
        &json!({"flow": flow, "staff": chen}),
    );
    assert_eq!((status, error_code(&v)), (403, "real_name_required"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("实名采集"));
    // A password that does not verify is a wrong credential first: the
    // policies speak only once the credentials verify (issue #10, item 7).
    let (status, v) = s.post(
        "/v1/login/enterprise/complete",
        &json!({"flow": flow, "staff": chen, "password": "Any@2026pw"}),
    );
    assert_eq!(
        (status, error_code(&v)),
        (401, "invalid_credentials"),
        "{v}"
    );
}

#[test]
fn unsynced_enterprise_must_sync_and_mismatch_names_the_person() {
    let s = Server::demo();
    let v = enterprise(&s, DALIAN, DALIAN_PW);
    assert_eq!(v["sync_required"], true);
    assert_eq!(v["staff"], json!([]));
    // The legal rep matches and is added; the finance head does not and is
    // named (issue #10: one mismatch no longer locks the other out).
    let (status, e) = s.post("/v1/login/enterprise/sync", &json!({"flow": v["flow"]}));
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["staff"].as_array().unwrap().len(), 1, "{e}");
    let msg = e["sync_problems"].to_string();
    assert!(msg.contains("财务负责人") && msg.contains("**兰"), "{msg}");
    assert!(!msg.contains("周海涛") && !msg.contains("**涛"), "{msg}");
    assert!(
        !msg.contains("210104197506203078"),
        "ID number unmasked: {msg}"
    );
    // The step's record names whom it made staff, masked.
    let (_, page) = s.get("/v1/audit/decisions?kind=login.sync_staff");
    let r = &page["records"][0];
    let synced = &r["change"]["staff_synced"];
    assert_eq!(synced.as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(synced[0]["identity_type"], "legal_rep", "{r}");
    assert!(
        synced[0]["staff"].as_str().unwrap().contains("**********"),
        "{r}"
    );
    assert_eq!(r["persons"][0]["role"], "target", "{r}");
    assert_eq!(r["persons"][0]["name"], "**涛", "{r}");
}

#[test]
fn quick_login_before_first_normal_login_is_refused() {
    let s = Server::demo();
    let (status, v) = s.post(
        "/v1/login/quick/code",
        &json!({"account": DALIAN, "password": DALIAN_PW, "identity_type": "legal_rep",
                "id_number": "210203198808086069"}),
    );
    assert_eq!(
        (status, error_code(&v)),
        (403, "normal_login_required"),
        "{v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("R3"));
    assert_eq!(
        v["error"]["policies"],
        json!(["login.quick-requires-sync"]),
        "{v}"
    );
}

#[test]
fn quick_login_with_sms_code() {
    let s = Server::demo();
    let v = s.post_ok(
        "/v1/login/quick/code",
        &json!({"account": ENT, "password": ENT_PW, "identity_type": "legal_rep",
                "id_type": "resident_id", "id_number": "210102198003124011"}),
    );
    assert_eq!(v["destination"]["phone_masked"], "138****0001");
    // Wrong identity type for that person.
    let (status, e) = s.post(
        "/v1/login/quick/code",
        &json!({"account": ENT, "password": ENT_PW, "identity_type": "tax_clerk",
                "id_number": "210102198003124011"}),
    );
    assert_eq!(status, 400, "{e}");
    let (status, e) = s.post(
        "/v1/login/quick",
        &json!({"flow": v["flow"], "challenge": v["challenge"], "code": wrong(&v["code"])}),
    );
    assert_eq!((status, error_code(&e)), (401, "code_wrong"), "{e}");
    let (status, login) = s.post(
        "/v1/login/quick",
        &json!({"flow": v["flow"], "challenge": v["challenge"], "code": v["code"]}),
    );
    assert_eq!(status, 200, "{login}");
    let (_, d) = use_function(&s, login["session"].as_str().unwrap(), "cit_filing");
    assert_eq!(d["decision"], "allow");
}

#[test]
fn codes_are_single_use_limited_in_attempts_and_voided_by_cancel() {
    let s = Server::demo();
    // Reused.
    let (flow, li) = picked(&s, LI);
    let issued = send_code(&s, &flow, &li);
    let code = issued["code"].as_str().unwrap();
    assert_eq!(
        complete_sms(&s, &flow, &li, &issued["challenge"], code).0,
        200
    );
    let (flow, li) = picked(&s, LI);
    let (status, v) = complete_sms(&s, &flow, &li, &issued["challenge"], code);
    assert_eq!(
        (status, error_code(&v)),
        (401, "code_unknown"),
        "bound to its flow: {v}"
    );

    // Five wrong attempts kill the code, even for the right one after.
    let issued = send_code(&s, &flow, &li);
    for i in 0..4 {
        let (status, v) = answer_wrong_code(&s, &flow, &li, &issued);
        assert_eq!((status, error_code(&v)), (401, "code_wrong"), "attempt {i}");
    }
    let (_, v) = answer_wrong_code(&s, &flow, &li, &issued);
    assert_eq!(error_code(&v), "code_attempts_exhausted");
    let (_, v) = answer_code(&s, &flow, &li, &issued);
    assert_eq!(error_code(&v), "code_attempts_exhausted");

    // Cancel returns to staff selection; earlier codes stop counting.
    let issued = send_code(&s, &flow, &li);
    let (status, sel) = s.post("/v1/login/enterprise/cancel", &json!({"flow": flow}));
    assert_eq!(status, 200, "{sel}");
    assert_eq!(staff_id(&sel, LI), li);
    let (_, v) = answer_code(&s, &flow, &li, &issued);
    assert_eq!(error_code(&v), "code_unknown");

    // Used code again in the same flow.
    let issued = send_code(&s, &flow, &li);
    let code = issued["code"].as_str().unwrap();
    assert_eq!(
        complete_sms(&s, &flow, &li, &issued["challenge"], code).0,
        200
    );
}

/// Red team, session 7: a cancel racing the last step both answered 200,
/// and a session opened on a code the cancel had voided. Whichever writes
/// first wins; the other finds the flow changed under it.
#[test]
fn a_cancel_racing_the_last_step_never_both_succeed() {
    let s = Server::demo();
    for round in 0..4 {
        let (flow, li) = picked(&s, LI);
        let issued = send_code(&s, &flow, &li);
        let code = issued["code"].as_str().unwrap().to_owned();
        let (cancel, complete) = std::thread::scope(|t| {
            let cancel = t.spawn(|| s.post("/v1/login/enterprise/cancel", &json!({"flow": flow})));
            let complete = t.spawn(|| complete_sms(&s, &flow, &li, &issued["challenge"], &code));
            (cancel.join().unwrap(), complete.join().unwrap())
        });
        assert!(
            !(cancel.0 == 200 && complete.0 == 200),
            "round {round}: cancel {cancel:?}, complete {complete:?}"
        );
    }
}

#[test]
fn used_code_is_refused_as_used() {
    let s = Server::demo();
    let v = s.post_ok(
        "/v1/login/quick/code",
        &json!({"account": ENT, "password": ENT_PW, "identity_type": "finance_head",
                "id_number": "210102198507263023"}),
    );
    let answer = json!({"flow": v["flow"], "challenge": v["challenge"], "code": v["code"]});
    assert_eq!(s.post("/v1/login/quick", &answer).0, 200);
    // The flow is gone, so take a fresh one whose challenge is the old one.
    let (flow, li) = picked(&s, LI);
    let issued = send_code(&s, &flow, &li);
    let code = issued["code"].as_str().unwrap();
    assert_eq!(
        complete_sms(&s, &flow, &li, &issued["challenge"], code).0,
        200
    );
    // Natural-person captcha reused.
    let c = s.post_ok("/v1/login/captcha", &json!({"id_number": ZHAO_ID}));
    let body = json!({"id_number": "210106199102140105", "password": "Zhaoli@2026",
                      "challenge": c["challenge"], "code": c["code"]});
    assert_eq!(s.post("/v1/login/natural-person", &body).0, 200);
    let (status, v) = s.post("/v1/login/natural-person", &body);
    assert_eq!((status, error_code(&v)), (401, "code_used"), "{v}");
}

#[test]
fn expired_code_is_refused() {
    let s = Server::start_with(&["--code-ttl-secs", "1"]);
    let (flow, li) = picked(&s, LI);
    let issued = send_code(&s, &flow, &li);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (status, v) = answer_code(&s, &flow, &li, &issued);
    assert_eq!((status, error_code(&v)), (401, "code_expired"), "{v}");
}

#[test]
fn sms_codes_are_rate_limited_per_phone() {
    let s = Server::start_with(&["--codes-per-phone", "2"]);
    let (flow, li) = picked(&s, LI);
    send_code(&s, &flow, &li);
    send_code(&s, &flow, &li);
    let (status, v) = s.post(
        "/v1/login/enterprise/code",
        &json!({"flow": flow, "staff": li}),
    );
    assert_eq!((status, error_code(&v)), (429, "too_many_codes"), "{v}");
    // Another phone is not affected.
    let (flow, wang) = picked(&s, WANG);
    send_code(&s, &flow, &wang);
}

#[test]
fn social_security_only_payer_logs_in_with_password_alone() {
    let s = Server::demo();
    let v = enterprise(&s, SOCIAL, "Shebao@2026");
    assert_eq!(v["status"], "logged_in");
    assert_eq!(v["route"], "social_insurance_fee_system");
    assert!(v["session"].as_str().unwrap().len() >= 32);
    let (status, _) = s.post(
        "/v1/login/enterprise",
        &json!({"account": SOCIAL, "password": "Shebao@2025"}),
    );
    assert_eq!(status, 401);
}

#[test]
fn natural_person_needs_password_and_captcha() {
    let s = Server::demo();
    let captcha = || {
        s.post_ok(
            "/v1/login/captcha",
            &json!({"id_type": "resident_id", "id_number": "210106199102140105"}),
        )
    };
    let c = captcha();
    assert!(c.get("destination").is_none());
    let (status, v) = s.post(
        "/v1/login/natural-person",
        &json!({"id_number": "210106199102140105", "password": "Zhaoli@2026",
                "challenge": c["challenge"], "code": wrong(&c["code"])}),
    );
    assert_eq!((status, error_code(&v)), (401, "code_wrong"));
    let c = captcha();
    let (status, v) = s.post(
        "/v1/login/natural-person",
        &json!({"id_number": "210106199102140105", "password": "Zhaoli@2025",
                "challenge": c["challenge"], "code": c["code"]}),
    );
    assert_eq!((status, error_code(&v)), (401, "invalid_credentials"));
    let c = captcha();
    let v = s.post_ok(
        "/v1/login/natural-person",
        &json!({"id_type": "resident_id", "id_number": "210106199102140105", "password": "Zhaoli@2026",
                "challenge": c["challenge"], "code": c["code"]}),
    );
    assert_eq!(v["route"], "home");
}

/// Agency steps 1 and 2 with 孙明's password: (flow, clients answer).
fn agency_agent(s: &Server) -> (String, Value) {
    let v = agency(s);
    let sun = staff_id(&v, "*明");
    let (status, c) = s.post(
        "/v1/login/agency/agent",
        &json!({"flow": v["flow"], "agent": sun, "password": "Sunming@2026"}),
    );
    assert_eq!(status, 200, "{c}");
    (v["flow"].as_str().unwrap().to_owned(), c)
}

/// Agency step 1 with the agency's password: the agent-staff selection.
fn agency(s: &Server) -> Value {
    s.post_ok(
        "/v1/login/agency",
        &json!({"account": AGENCY, "password": AGENCY_PW}),
    )
}

/// Agency step 3: act for `client` with the relationship's agreement password.
fn act_for(
    s: &Server,
    flow: impl serde::Serialize,
    client: &str,
    agreement_password: &str,
) -> (u16, Value) {
    s.post(
        "/v1/login/agency/client",
        &json!({"flow": flow, "client": client, "agreement_password": agreement_password}),
    )
}

#[test]
fn agency_three_step_login_acts_for_the_client() {
    let s = Server::demo();
    let (flow, c) = agency_agent(&s);
    assert_eq!(c["clients"][0]["credit_code"], ENT);
    let (status, v) = act_for(&s, &flow, ENT, "Xieyi@2025");
    assert_eq!(
        (status, error_code(&v)),
        (401, "invalid_credentials"),
        "{v}"
    );
    let (status, v) = act_for(&s, &flow, ENT, "Xieyi@2026");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["acting_for"], ENT);
    let token = v["session"].as_str().unwrap();
    let (status, d) = use_function(&s, token, "vat_filing");
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["decision"], "allow", "{d}");
    // actingFor comes from the session only.
    let (status, e) = s.post(
        "/v1/authorize",
        &json!({"session": token, "action": "Action::\"useFunction\"",
                "resource": "Function::\"vat_filing\"",
                "context": {"actingFor": {"__entity": {"type": "Etax::Enterprise", "id": DALIAN}}}}),
    );
    assert_eq!(status, 400, "{e}");
}

#[test]
fn agency_refusals_unrecognized_client_unreal_agent_and_locked_agreement() {
    let s = Server::demo();
    let (flow, _) = agency_agent(&s);
    // No recognition, so no agreement password verifies: a wrong credential,
    // told apart from nothing else (issue #10, item 7).
    let (status, v) = act_for(&s, &flow, DALIAN, "Xieyi@2026");
    assert_eq!(
        (status, error_code(&v)),
        (401, "invalid_credentials"),
        "{v}"
    );

    // 郑强 has not completed real-name collection (R5).
    let v = agency(&s);
    let zheng = staff_id(&v, "*强");
    let (status, e) = s.post(
        "/v1/login/agency/code",
        &json!({"flow": v["flow"], "agent": zheng}),
    );
    assert_eq!((status, error_code(&e)), (403, "real_name_required"), "{e}");

    // The agreement password locks separately from the accounts.
    for _ in 0..5 {
        let (status, _) = act_for(&s, &flow, ENT, "Xieyi@2025");
        assert_eq!(status, 401);
    }
    let (status, v) = act_for(&s, &flow, ENT, "Xieyi@2026");
    assert_eq!((status, error_code(&v)), (423, "account_locked"), "{v}");
    agency(&s); // The agency account itself still logs in.

    // Step 3 before step 2.
    let v = agency(&s);
    let (status, _) = act_for(&s, &v["flow"], ENT, "Xieyi@2026");
    assert_eq!(status, 400);
}

#[test]
fn agent_logs_in_by_sms_too() {
    let s = Server::demo();
    let v = agency(&s);
    let sun = staff_id(&v, "*明");
    let (status, c) = s.post(
        "/v1/login/agency/code",
        &json!({"flow": v["flow"], "agent": sun}),
    );
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["destination"]["phone_masked"], "137****0008");
    let (status, r) = s.post(
        "/v1/login/agency/agent",
        &json!({"flow": v["flow"], "agent": sun, "challenge": c["challenge"], "code": c["code"]}),
    );
    assert_eq!(status, 200, "{r}");
}

#[test]
fn sync_adds_the_officers_and_a_normal_login_opens_quick_login() {
    // 吴桂兰 has completed real-name collection in this bureau.
    let doc = demo_with(|d| {
        for p in d["persons"].as_array_mut().unwrap() {
            if p["name"] == "吴桂兰" {
                p["real_name_verified"] = json!(true);
                p["phone"] = json!("13900000007");
            }
        }
    });
    let s = Server::start_with_document(&doc);
    let quick = json!({"account": DALIAN, "password": DALIAN_PW, "identity_type": "legal_rep",
                       "id_number": "210203198808086069"});
    assert_eq!(s.post("/v1/login/quick/code", &quick).0, 403);
    let v = enterprise(&s, DALIAN, DALIAN_PW);
    assert_eq!(v["sync_required"], true);
    let (status, sel) = s.post("/v1/login/enterprise/sync", &json!({"flow": v["flow"]}));
    assert_eq!(status, 200, "{sel}");
    let types: Vec<&str> = sel["staff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["identity_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 2, "{sel}");
    assert!(types.contains(&"legal_rep") && types.contains(&"finance_head"));
    let zhou = staff_id(&sel, "**涛");
    let flow = v["flow"].as_str().unwrap();
    let issued = send_code(&s, flow, &zhou);
    assert_eq!(issued["destination"]["phone_masked"], "139****0006");
    let (status, login) = answer_code(&s, flow, &zhou, &issued);
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["obligations"], json!(["set_password"]));
    // The normal login synced the enterprise: quick login is open (R3).
    s.post_ok("/v1/login/quick/code", &quick);
}

/// 赵丽, the demo's natural person with a password.
const ZHAO_ID: &str = "210106199102140105";

#[test]
fn a_captcha_is_for_one_account_only() {
    let s = Server::demo();
    // A well-formed ID number of nobody in the store, with a password.
    let other = "11010519491231002X";
    let c = s.post_ok("/v1/login/captcha", &json!({"id_number": other}));
    let (status, v) = s.post(
        "/v1/login/natural-person",
        &json!({"id_number": ZHAO_ID, "password": "Zhaoli@2026",
                "challenge": c["challenge"], "code": c["code"]}),
    );
    assert_eq!((status, error_code(&v)), (401, "code_unknown"), "{v}");
    // The identity is required, and checked like the login's.
    let (status, v) = s.post("/v1/login/captcha", &json!({}));
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("id_number"))
    );
    let (status, v) = s.post("/v1/login/captcha", &json!({"id_number": "123"}));
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("id_number"))
    );
    // Its own account's captcha still works.
    let c = s.post_ok("/v1/login/captcha", &json!({"id_number": ZHAO_ID}));
    s.post_ok(
        "/v1/login/natural-person",
        &json!({"id_number": ZHAO_ID, "password": "Zhaoli@2026",
                "challenge": c["challenge"], "code": c["code"]}),
    );
}

#[test]
fn captchas_are_rate_limited_per_account_alike_for_known_and_unknown() {
    let s = Server::start_with(&["--captchas-per-account", "3"]);
    let unknown = "11010519491231002X";
    let mut refusals = Vec::new();
    for id in [ZHAO_ID, unknown] {
        for _ in 0..3 {
            s.post_ok("/v1/login/captcha", &json!({"id_number": id}));
        }
        let (status, v) = s.post("/v1/login/captcha", &json!({"id_number": id}));
        assert_eq!((status, error_code(&v)), (429, "too_many_captchas"), "{v}");
        let retry = v["error"]["retry_after_secs"].as_u64().unwrap();
        assert!((1..=600).contains(&retry), "{v}");
        refusals.push(v);
    }
    // Known or unknown, the same refusal (but for the seconds to wait).
    let shape = |v: &Value| {
        let mut v = v.clone();
        v["error"]["retry_after_secs"] = json!(0);
        v.to_string().replace(|c: char| c.is_ascii_digit(), "")
    };
    assert_eq!(shape(&refusals[0]), shape(&refusals[1]));
    // Another account is not affected.
    s.post_ok(
        "/v1/login/captcha",
        &json!({"id_type": "resident_id", "id_number": "210102198003124011"}),
    );
}
