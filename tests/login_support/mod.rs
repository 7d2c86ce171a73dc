//! What the login, password and session tests share: the demo bureau's
//! accounts and the steps of a normal login by SMS, over HTTP.

#![allow(dead_code)]

use serde_json::{json, Value};

use crate::common::Server;

pub const ENT: &str = "91210102MA0TAX001F";
pub const ENT_TIN: &str = "210102123456789";
pub const ENT_PW: &str = "Etax@2026";
pub const DALIAN: &str = "91210200MA0DAL003B";
pub const DALIAN_PW: &str = "Haiyun@2026";
pub const SOCIAL: &str = "91210106MA0BXH0022";
pub const AGENCY_PW: &str = "Agent@2026";
pub const WANG: &str = "**国"; // legal rep, personal password Wang@2026jg
pub const LI: &str = "**英"; // finance head, no personal password
pub const ZHANG: &str = "*伟"; // tax clerk, personal password Zhang@2026w
pub const CHEN: &str = "*静"; // not real-named

pub fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// Step 1 of a normal login; the answer (status select_staff).
pub fn enterprise(s: &Server, account: &str, password: &str) -> Value {
    s.post_ok(
        "/v1/login/enterprise",
        &json!({"account": account, "password": password}),
    )
}

pub fn staff_id(selection: &Value, name: &str) -> String {
    selection["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {selection}"))["staff_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A flow at staff selection, and the picked staff member's id.
pub fn picked(s: &Server, name: &str) -> (String, String) {
    let v = enterprise(s, ENT, ENT_PW);
    (v["flow"].as_str().unwrap().to_owned(), staff_id(&v, name))
}

pub fn send_code(s: &Server, flow: &str, staff: &str) -> Value {
    s.post_ok(
        "/v1/login/enterprise/code",
        &json!({"flow": flow, "staff": staff}),
    )
}

pub fn complete_sms(
    s: &Server,
    flow: &str,
    staff: &str,
    challenge: &Value,
    code: &str,
) -> (u16, Value) {
    s.post(
        "/v1/login/enterprise/complete",
        &json!({"flow": flow, "staff": staff, "challenge": challenge, "code": code}),
    )
}

pub fn wrong(code: &Value) -> String {
    let c: u32 = code.as_str().unwrap().parse().unwrap();
    format!("{:06}", (c + 1) % 1_000_000)
}

/// Completes the login with the code `issued` by `send_code`.
pub fn answer_code(s: &Server, flow: &str, staff: &str, issued: &Value) -> (u16, Value) {
    let code = issued["code"].as_str().unwrap();
    complete_sms(s, flow, staff, &issued["challenge"], code)
}

/// Answers the challenge `issued` by `send_code` with a code one off the
/// right one.
pub fn answer_wrong_code(s: &Server, flow: &str, staff: &str, issued: &Value) -> (u16, Value) {
    complete_sms(
        s,
        flow,
        staff,
        &issued["challenge"],
        &wrong(&issued["code"]),
    )
}

pub fn use_function(s: &Server, session: &str, function: &str) -> (u16, Value) {
    s.post(
        "/v1/authorize",
        &json!({"session": session, "action": "Action::\"useFunction\"",
                "resource": format!("Function::\"{function}\"")}),
    )
}

/// The value of one `/metrics` sample, named with its labels:
/// `etax_swept_total{kind="session"}`.
pub fn metric(s: &Server, sample: &str) -> u64 {
    let (status, text) = crate::common::http(s.addr, "GET", "/metrics", None);
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{sample} not in {text}"))
}

/// Polls `done` every 100 ms; panics naming `what` after `secs`.
pub fn wait_for(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A session for 李秀英 (finance head, no personal password) by SMS.
pub fn li_session(s: &Server) -> Value {
    let (flow, li) = picked(s, LI);
    let issued = send_code(s, &flow, &li);
    let (status, v) = answer_code(s, &flow, &li, &issued);
    assert_eq!(status, 200, "{v}");
    v
}
