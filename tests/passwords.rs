//! End-to-end tests of personal passwords over HTTP against the real binary
//! serving the demo bureau: setting and changing one (R10), recovering a
//! forgotten one by SMS (R11), and a one-time password that must be changed
//! before anything else (R12).

use crate::common;
use crate::login_support;

use common::{demo_with, Server, AGENCY};
use login_support::*;
use serde_json::{json, Value};

#[test]
fn setting_a_password_enforces_r10_and_the_common_list() {
    let s = Server::demo();
    let token = li_session(&s)["session"].as_str().unwrap().to_owned();
    let set = |pw: &str| {
        s.post(
            "/v1/password",
            &json!({"session": token, "new_password": pw}),
        )
    };
    let (status, v) = set("Ab1!");
    assert_eq!((status, error_code(&v)), (400, "password_rule"));
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("8 to 15 characters"));
    assert_eq!(v["error"]["field"], "new_password");
    let (_, v) = set("Abcdefgh12345678");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("8 to 15 characters"));
    let (_, v) = set("abcdefgh1");
    assert_eq!(error_code(&v), "password_rule");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("character classes"));
    let (_, v) = set("P@ssw0rd1");
    assert_eq!(error_code(&v), "password_too_common");
    let (status, v) = set("Li#Caiwu2026");
    assert_eq!(status, 200, "{v}");
    // Now a change needs the current password.
    let (status, v) = set("Li#Caiwu2027");
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("current_password"))
    );
    let (status, v) = s.post(
        "/v1/password",
        &json!({"session": token, "current_password": "Wrong#2026x", "new_password": "Li#Caiwu2027"}),
    );
    assert_eq!((status, error_code(&v)), (401, "invalid_credentials"));
    // And the new password logs in.
    let (flow, li) = picked(&s, LI);
    let v = s.post_ok(
        "/v1/login/enterprise/complete",
        &json!({"flow": flow, "staff": li, "password": "Li#Caiwu2026"}),
    );
    assert_eq!(v["obligations"], json!([]));
}

fn forgot_code(
    s: &Server,
    kind: &str,
    account: Option<&str>,
    id_number: &str,
    phone: &str,
) -> Value {
    let mut body = json!({"kind": kind, "id_number": id_number, "phone": phone});
    if let Some(a) = account {
        body["account"] = json!(a);
    }
    s.post_ok("/v1/password/forgot/code", &body)
}

fn forgot_reset(s: &Server, c: &Value, code: &str, new_password: &str) -> (u16, Value) {
    s.post(
        "/v1/password/forgot/reset",
        &json!({"challenge": c["challenge"], "code": code, "new_password": new_password}),
    )
}

#[test]
fn forgot_password_by_sms_to_the_real_name_phone() {
    let s = Server::demo();
    let c = forgot_code(&s, "staff", Some(ENT), "210102199001015035", "13800000003");
    assert_eq!(c["destination"]["phone_masked"], "138****0003");
    let code = c["code"].as_str().unwrap();
    // A weak password is refused without using the code up.
    let (status, v) = forgot_reset(&s, &c, code, "zhangwei");
    assert_eq!((status, error_code(&v)), (400, "password_rule"));
    let (status, v) = forgot_reset(&s, &c, &wrong(&c["code"]), "Zw#Shui2026");
    assert_eq!((status, error_code(&v)), (401, "code_wrong"));
    let (status, v) = forgot_reset(&s, &c, code, "Zw#Shui2026");
    assert_eq!(status, 200, "{v}");
    let (status, v) = forgot_reset(&s, &c, code, "Zw#Shui2027");
    assert_eq!((status, error_code(&v)), (401, "code_used"));
    let (flow, zhang) = picked(&s, ZHANG);
    let (status, _) = s.post(
        "/v1/login/enterprise/complete",
        &json!({"flow": flow, "staff": zhang, "password": "Zhang@2026w"}),
    );
    assert_eq!(status, 401);
    s.post_ok(
        "/v1/login/enterprise/complete",
        &json!({"flow": flow, "staff": zhang, "password": "Zw#Shui2026"}),
    );
    // R11: someone who only ever logged in by SMS (李秀英, no personal
    // password) gets one the same way.
    let c = forgot_code(&s, "staff", Some(ENT), "210102198507263023", "13800000002");
    let (status, v) = forgot_reset(&s, &c, c["code"].as_str().unwrap(), "Lx#Caiwu2026");
    assert_eq!(status, 200, "{v}");
    let (flow, li) = picked(&s, LI);
    let v = s.post_ok(
        "/v1/login/enterprise/complete",
        &json!({"flow": flow, "staff": li, "password": "Lx#Caiwu2026"}),
    );
    assert_eq!(v["obligations"], json!([]));
    // A natural person recovers the same way.
    let c = forgot_code(
        &s,
        "natural_person",
        None,
        "210106199102140105",
        "13600000010",
    );
    let (status, v) = forgot_reset(&s, &c, c["code"].as_str().unwrap(), "Zl#Geren2026");
    assert_eq!(status, 200, "{v}");
    let k = s.post_ok(
        "/v1/login/captcha",
        &json!({"id_number": "210106199102140105"}),
    );
    s.post_ok(
        "/v1/login/natural-person",
        &json!({"id_number": "210106199102140105", "password": "Zl#Geren2026",
                "challenge": k["challenge"], "code": k["code"]}),
    );
}

#[test]
fn forgot_password_never_tells_which_accounts_exist() {
    let s = Server::demo();
    let real = forgot_code(&s, "staff", Some(ENT), "210102199001015035", "13800000003");
    let shape = |v: &Value| {
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        (
            keys,
            v["expires_in_secs"].clone(),
            v["code"].as_str().unwrap().len(),
        )
    };
    // Unknown identity, the wrong phone, no real-name collection (陈静), an
    // unknown enterprise: each gets a code to the phone given, like a real
    // one, and that code fails like a wrong one until it is used up.
    let decoys = [
        ("staff", Some(ENT), "210102199001015051", "13912345678"),
        ("staff", Some(ENT), "210102199001015035", "13912345678"),
        ("staff", Some(ENT), "210102199505052059", "13912345679"),
        (
            "staff",
            Some("91210102MA0TAX002J"),
            "210102199001015035",
            "13800000003",
        ),
        (
            "agent_staff",
            Some(AGENCY),
            "210112198709172093",
            "13912345670",
        ),
        ("natural_person", None, "210106199102140201", "13912345671"),
    ];
    for (kind, account, id_number, phone) in decoys {
        let c = forgot_code(&s, kind, account, id_number, phone);
        assert_eq!(shape(&c), shape(&real), "{id_number}: {c}");
        assert_eq!(c["destination"]["phone"], phone);
        for left in (1..5).rev() {
            let (status, v) = forgot_reset(&s, &c, c["code"].as_str().unwrap(), "Zw#Shui2026");
            assert_eq!(
                (status, error_code(&v)),
                (401, "code_wrong"),
                "{id_number}: {v}"
            );
            assert!(v["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{left} attempt")));
        }
        let (status, v) = forgot_reset(&s, &c, c["code"].as_str().unwrap(), "Zw#Shui2026");
        assert_eq!(
            (status, error_code(&v)),
            (401, "code_attempts_exhausted"),
            "{v}"
        );
    }
    // The auditor sees why each decoy was sent; the phone is masked.
    let (_, page) = s.get("/v1/audit/decisions?kind=login.forgot_code&limit=50");
    let reasons: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    for why in ["no such identity", "not the real-name phone"] {
        assert!(
            reasons.iter().any(|r| r.contains(why)),
            "{why}: {reasons:?}"
        );
    }
    assert!(reasons
        .iter()
        .any(|r| r.contains("recovery code sent to 138****0003")));
    assert!(!reasons.iter().any(|r| r.contains("13912345678")));
}

#[test]
fn forgot_password_refused_by_policy_answers_like_a_wrong_code() {
    // 张伟 with a phone on file but real-name collection not complete: the
    // policy password.recover-needs-real-name-phone refuses, and the user
    // still gets the uniform answer.
    let doc = demo_with(|d| {
        for p in d["persons"].as_array_mut().unwrap() {
            if p["id_number"] == "210102199001015035" {
                p["real_name_verified"] = json!(false);
            }
        }
    });
    let s = Server::start_with_document(&doc);
    let c = forgot_code(&s, "staff", Some(ENT), "210102199001015035", "13800000003");
    let (status, v) = forgot_reset(&s, &c, c["code"].as_str().unwrap(), "Zw#Shui2026");
    assert_eq!((status, error_code(&v)), (401, "code_wrong"), "{v}");
    let (_, page) = s.get("/v1/audit/decisions?kind=login.forgot_code");
    let record = &page["records"][0];
    assert_eq!(record["decision"], "deny", "{record}");
    assert!(record["reason"]
        .as_str()
        .unwrap()
        .starts_with("refused by policy; pre-check: decoy code sent to 138****0003"));
    assert_eq!(
        record["policies"],
        json!(["password.recover-needs-real-name-phone"])
    );
}

#[test]
fn one_time_password_must_be_changed_before_anything_else() {
    // The demo bureau, with 张伟's password a one-time password (R12).
    let doc = demo_with(|d| {
        for staff in d["staff"].as_array_mut().unwrap() {
            if staff["person"]["id_number"] == "210102199001015035" {
                staff["password_change_required"] = json!(true);
            }
        }
    });
    let s = Server::start_with_document(&doc);
    let (flow, zhang) = picked(&s, ZHANG);
    let v = s.post_ok(
        "/v1/login/enterprise/complete",
        &json!({"flow": flow, "staff": zhang, "password": "Zhang@2026w"}),
    );
    assert_eq!(v["obligations"], json!(["change_password"]));
    let token = v["session"].as_str().unwrap().to_owned();
    let (status, e) = use_function(&s, &token, "vat_filing");
    assert_eq!(
        (status, error_code(&e)),
        (403, "password_change_required"),
        "{e}"
    );
    let (status, e) = s.post(
        "/v1/password",
        &json!({"session": token, "current_password": "Zhang@2026w", "new_password": "Zhang@2026w"}),
    );
    assert_eq!(status, 400, "{e}");
    s.post_ok(
        "/v1/password",
        &json!({"session": token, "current_password": "Zhang@2026w", "new_password": "Zw#Shui2026"}),
    );
    let (status, d) = use_function(&s, &token, "vat_filing");
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["decision"], "allow");
}
