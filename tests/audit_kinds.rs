//! The decision log holds one record per decision of every kind — login
//! steps, maintenance requests, /v1/authorize — with the fields auditors
//! need, masked, and never a secret.

use crate::common;

use common::*;
use serde_json::{json, Value};

fn records(data: &std::path::Path) -> Vec<Value> {
    let (code, out, err) = cli(&["audit", "export", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_kind_of_decision_is_logged_with_its_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_in(&data, &["--demo"]);

    // A refused login step (wrong password), then a normal login by SMS code.
    let (s, _) = server.post(
        "/v1/login/enterprise",
        &json!({ "account": E_SYNCED, "password": "Wrong@2026x" }),
    );
    assert_eq!(s, 401);
    let (session, sms_code) = login_by_sms(&server, "**国");
    // A maintenance request, and an authorization check with the session.
    let (s, otp) = server.request_with(
        "POST",
        &format!("/v1/maintenance/staff/{P_CLERK}/reset-password"),
        &[("X-Etax-Session", &session)],
        None,
    );
    assert_eq!(s, 200, "{otp}");
    let one_time = otp["one_time_password"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, a) = server.post(
        "/v1/authorize",
        &json!({ "session": session, "action": action("useFunction"), "resource": "Function::\"cit_filing\"" }),
    );
    assert_eq!(s, 200, "{a}");
    server.stop();

    let log = records(&data);
    let kind = |k: &str| {
        log.iter()
            .filter(move |r| r["kind"] == k)
            .cloned()
            .collect::<Vec<_>>()
    };
    let refused = kind("login.enterprise_account");
    assert_eq!(refused.len(), 2, "{log:#?}");
    assert_eq!(refused[0]["decision"], "deny");
    assert!(
        refused[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{}",
        refused[0]
    );
    assert_eq!(refused[1]["decision"], "allow");
    assert_eq!(refused[1]["policies"], json!(["login.enterprise-account"]));

    let normal = kind("login.normal");
    assert_eq!(normal.len(), 1, "{log:#?}");
    assert_eq!(normal[0]["policies"], json!(["login.normal"]));
    assert_eq!(
        normal[0]["resource"],
        format!("Etax::Enterprise::\"{E_SYNCED}\"")
    );

    let reset = kind("maintain.resetStaffPassword");
    assert_eq!(reset.len(), 1, "{log:#?}");
    assert_eq!(reset[0]["decision"], "allow");
    assert_eq!(
        reset[0]["policies"],
        json!(["maintain.reset-password-by-officers"])
    );

    let authz = kind("authorize");
    assert_eq!(authz.len(), 1);
    assert_eq!(authz[0]["decision_id"], a["decision_id"]);
    assert_eq!(
        authz[0]["policies"],
        json!(["function.via-permission-identity"])
    );
    assert_eq!(authz[0]["policy_version"], a["policy_version"]);

    for r in &log {
        assert!(
            r["timestamp_ms"].as_u64().unwrap() > 1_700_000_000_000,
            "{r}"
        );
        assert!(
            r["seq"].as_u64().is_some() && r["hash"].as_str().is_some_and(|h| h.len() == 64),
            "{r}"
        );
    }
    // Masked, and no secret anywhere: ID numbers, phones, passwords, codes.
    // (Hashes, ids and times are left out: a 6-digit code could occur in
    // them by chance.)
    let text = serde_json::to_string(
        &log.iter()
            .map(|r| {
                let mut r = r.clone();
                for f in [
                    "hash",
                    "prev_hash",
                    "decision_id",
                    "timestamp_ms",
                    "latency_us",
                    "seq",
                    "policy_version",
                ] {
                    r.as_object_mut().unwrap().remove(f);
                }
                r
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for secret in [
        "210102198003124011",
        "210102199001015035",
        "13800000001",
        "Etax@2026",
        "Wrong@2026x",
        &sms_code,
        &one_time,
        &session,
    ] {
        assert!(!text.contains(secret), "{secret} in the decision log");
    }
    assert!(
        text.contains("resident_id:2101**********4011"),
        "masked principal expected"
    );
}
