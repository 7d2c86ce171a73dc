//! Issue #11 items 1, 2, 3, 10 and the request context of 12, against the
//! real binary: every endpoint is walked through its success and its
//! failures, and the last record of each decision is held to the HTTP
//! answer (outcome, status, code); records name their target and change,
//! say why a default deny denied, and carry keyed pseudonyms that make a
//! filter by full ID number exact.

use crate::common;

use common::*;
use serde_json::{json, Value};

const LEGAL_REP: &str = "**国";
const CLERK: &str = "*伟";
const DALIAN_PW: &str = "Haiyun@2026";

/// The decision records (no `audit.read`) written after `after`.
fn records_after(server: &Server, after: u64) -> Vec<Value> {
    let (s, page) = server.get(&format!("/v1/audit/decisions?after={after}&limit=1000"));
    assert_eq!(s, 200, "{page}");
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] != "audit.read")
        .cloned()
        .collect()
}

/// The sequence number of the last record so far.
fn head(server: &Server) -> u64 {
    let (s, cp) = server.get("/v1/audit/checkpoint");
    assert_eq!(s, 200, "{cp}");
    cp["seq"].as_u64().unwrap()
}

/// Runs `request`, then holds the last record of every decision it made to
/// its answer: `done` for a 2xx; otherwise the outcome the status stands
/// for, with that status and the answer's error code. Returns the answer
/// and those final records.
fn answered(server: &Server, request: impl FnOnce() -> (u16, Value)) -> (u16, Value, Vec<Value>) {
    let before = head(server);
    let (status, body) = request();
    // `/v1/authorize` records are group-committed after the answer: wait
    // for them (a bounded wait, not a timing assertion).
    let mut records = records_after(server, before);
    for _ in 0..100 {
        if !records.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        records = records_after(server, before);
    }
    assert!(
        !records.is_empty(),
        "no record for an answer {status}: {body}"
    );
    let mut finals: Vec<Value> = Vec::new();
    for r in &records {
        finals.retain(|f| f["decision_id"] != r["decision_id"]);
        finals.push(r.clone());
    }
    for r in &finals {
        if r["kind"].as_str().unwrap().starts_with("authorize") {
            // Answered 200 either way: the outcome is the decision's.
            let outcome = if r["decision"] == "allow" {
                "done"
            } else {
                "refused"
            };
            assert_eq!(r["outcome"], outcome, "{r}");
        } else if (200..300).contains(&status) {
            assert_eq!(r["outcome"], "done", "{status} {body}: {r}");
            assert!(r.get("status").is_none(), "{r}");
        } else {
            let outcome = match status {
                401 | 403 | 409 | 423 | 429 => "refused",
                _ => "failed",
            };
            assert_eq!(r["outcome"], outcome, "{status} {body}: {r}");
            assert_eq!(r["status"], status, "{r}");
            assert_eq!(r["code"], body["error"]["code"], "{body}: {r}");
        }
    }
    (status, body, finals)
}

#[test]
fn maintenance_records_say_what_happened_to_whom() {
    let server = Server::demo();
    let lr = login_by_sms(&server, LEGAL_REP).0;
    // Asks `session` to add a person as ordinary staff.
    let add = |session: &str, name: &str, number: &str| {
        let body = json!({ "name": name, "id_type": "resident_id", "id_number": number, "identity_type": "other" });
        with_session(
            &server,
            session,
            "POST",
            "/v1/maintenance/staff",
            Some(body),
        )
    };

    // Searched for (R15): decided as addStaff, recorded as the search it
    // was, which adds no one.
    let (status, _, recs) = answered(&server, || {
        let body =
            json!({"name": "赵丽", "id_type": "resident_id", "id_number": "210106199102140105"});
        with_session(
            &server,
            &lr,
            "POST",
            "/v1/maintenance/staff/search",
            Some(body),
        )
    });
    assert_eq!(status, 200);
    assert_eq!(recs[0]["kind"], "maintain.searchPerson", "{:?}", recs);
    assert_eq!(recs[0]["action"], "Etax::Action::\"addStaff\"");
    assert!(recs[0].get("change").is_none(), "{:?}", recs);

    // Added: done, naming the person and the change.
    let (_, _, recs) = answered(&server, || add(&lr, "赵丽", "210106199102140105"));
    let r = &recs[0];
    assert_eq!(r["kind"], "maintain.addStaff");
    assert_eq!(
        r["target"]["person"], "resident_id:2101**********0105",
        "{r}"
    );
    assert_eq!(r["target"]["name"], "*丽", "{r}");
    assert_eq!(r["change"]["identity_type"]["after"], "other", "{r}");
    let roles: Vec<&str> = r["persons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["principal", "target"], "{r}");
    assert_eq!(r["persons"][0]["identity_type"], "legal_rep", "{r}");

    // Added twice: Cedar allowed, the store refused (409) — the record
    // committed before the write is followed by the true outcome.
    let (status, _, recs) = answered(&server, || add(&lr, "赵丽", "210106199102140105"));
    assert_eq!(status, 409);
    assert_eq!(recs[0]["decision"], "allow", "{}", recs[0]);

    // Not real-name collected: 422, failed.
    let (status, _, recs) = answered(&server, || add(&lr, "郑强", "210112198709172093"));
    assert_eq!(status, 422);
    assert_eq!(
        recs[0]["target"]["person"],
        "resident_id:2101**********2093"
    );

    // Unknown permission identity: 404 (or 400), held to the answer too.
    let (status, _, _) = answered(&server, || {
        with_session(
            &server,
            &lr,
            "DELETE",
            "/v1/maintenance/permission-identities/nosuch",
            None,
        )
    });
    assert_eq!(status, 404);

    // Defining an identity names it and its functions before → after.
    let (status, _, recs) = answered(&server, || {
        with_session(
            &server,
            &lr,
            "POST",
            "/v1/maintenance/permission-identities",
            Some(
                json!({ "id": "payroll", "name": "工资", "description": "", "functions": ["iit_withholding"] }),
            ),
        )
    });
    assert_eq!(status, 200);
    assert_eq!(recs[0]["target"]["permission_identity"], "payroll");
    assert_eq!(
        recs[0]["change"]["functions"],
        json!({ "before": null, "after": ["iit_withholding"] })
    );

    // Filter by target: a full ID number exactly (not another person with
    // the same mask), anything else as part of the masked target.
    let (_, found) = server.get("/v1/audit/decisions?target=210106199102140105&kind=maintain.");
    let found = found["records"].as_array().unwrap().clone();
    assert_eq!(
        found.len(),
        4,
        "searched for, added, then added again (done, refused): {found:?}"
    );
    let (_, none) = server.get("/v1/audit/decisions?target=210106777777770105");
    assert_eq!(none["records"], json!([]), "{none}");
    let (_, pi) = server.get("/v1/audit/decisions?target=payroll");
    assert_eq!(pi["records"].as_array().unwrap().len(), 1, "{pi}");

    // A password reset names its target; the one-time password is nowhere.
    let (status, body, recs) = answered(&server, || {
        with_session(
            &server,
            &lr,
            "POST",
            &format!("/v1/maintenance/staff/{P_INVOICE_BUYER}/reset-password"),
            None,
        )
    });
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        recs[0]["target"]["person"],
        "resident_id:2101**********404X"
    );
    assert!(recs[0]["change"]["password"].is_string());
    let otp = body["one_time_password"]["password"].as_str().unwrap();
    assert!(!String::from_utf8_lossy(&server.decision_log_bytes()).contains(otp));

    // A clerk may not add staff: refused 403.
    let clerk = login_by_sms(&server, CLERK).0;
    let (status, _, recs) = answered(&server, || add(&clerk, "刘洋", "21010219921111404X"));
    assert_eq!(status, 403);
    let r = &recs[0];
    // Refused by a forbid, which the record names.
    assert_eq!(
        r["policies"],
        json!(["maintain.ordinary-staff-excluded"]),
        "{r}"
    );

    // Cancelling the agency: recognition true → false; then the agent's
    // refusal names the missing recognition.
    let (status, _, recs) = answered(&server, || {
        with_session(
            &server,
            &lr,
            "DELETE",
            &format!("/v1/maintenance/agencies/{AGENCY}"),
            None,
        )
    });
    assert_eq!(status, 200);
    assert_eq!(
        recs[0]["change"]["recognition"],
        json!({ "before": true, "after": false })
    );
    assert_eq!(recs[0]["target"]["agency"], AGENCY);
    let (status, _, _) = answered(&server, || {
        with_session(
            &server,
            &lr,
            "DELETE",
            &format!("/v1/maintenance/agencies/{AGENCY}"),
            None,
        )
    });
    assert_eq!(status, 404);
    let (_, v, recs) = answered(&server, || {
        server.post(
            "/v1/authorize",
            &json!({
                "principal": agent(P_AGENT),
                "action": action("useFunction"),
                "resource": "Function::\"vat_filing\"",
                "context": { "actingFor": { "__entity": { "type": "Etax::Enterprise", "id": E_SYNCED } } }
            }),
        )
    });
    assert_eq!(v["decision"], "deny", "{v}");
    let reason = recs[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("does not recognize agency"), "{}", recs[0]);
    assert_eq!(recs[0]["outcome"], "refused");
}

#[test]
fn login_feed_and_authorize_records_hold_to_the_answer() {
    let server = Server::demo();
    // A wrong password: 401, refused.
    let (status, _, _) = answered(&server, || {
        server.post(
            "/v1/login/enterprise",
            &json!({ "account": E_SYNCED, "password": "Wrong@2026x" }),
        )
    });
    assert_eq!(status, 401);

    // The SMS step that sent a code is done, whatever the pre-check said.
    let (_, first) = server.post(
        "/v1/login/enterprise",
        &json!({ "account": E_SYNCED, "password": "Etax@2026" }),
    );
    let flow = first["flow"].as_str().unwrap().to_owned();
    let staff = first["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == LEGAL_REP)
        .unwrap()["staff_id"]
        .clone();
    let (status, code, recs) = answered(&server, || {
        server.post(
            "/v1/login/enterprise/code",
            &json!({ "flow": flow, "staff": staff }),
        )
    });
    assert_eq!(status, 200);
    assert_eq!(recs[0]["outcome"], "done");
    // A wrong code: 401 code_wrong, refused.
    let (status, _, _) = answered(&server, || {
        server.post(
            "/v1/login/enterprise/complete",
            &json!({ "flow": flow, "staff": staff, "challenge": code["challenge"], "code": "000000" }),
        )
    });
    assert_eq!(status, 401);

    // A staff sync that matches no one: 409, refused (Cedar allowed it).
    let (status, _, recs) = answered(&server, || {
        server.request(
            "PUT",
            &format!("/v1/admin/enterprises/{E_UNSYNCED}/core-officers"),
            Some(json!({ "finance_head": { "name": "吴桂兰", "id_type": "resident_id", "id_number": "210104197506203078" } }).to_string().as_bytes()),
        )
    });
    assert_eq!(status, 200);
    // The officer the feed put on file is named: a filter by that person
    // finds the feed.
    assert_eq!(recs[0]["persons"][0]["role"], "target", "{:?}", recs);
    assert_eq!(recs[0]["persons"][0]["name"], "**兰", "{:?}", recs);
    let (_, found) = server.get("/v1/audit/decisions?person=210104197506203078&kind=admin.");
    assert_eq!(
        found["records"][0]["kind"], "admin.core_officers",
        "{found}"
    );
    let (_, v) = server.post(
        "/v1/login/enterprise",
        &json!({ "account": E_UNSYNCED, "password": DALIAN_PW }),
    );
    let (status, _, recs) = answered(&server, || {
        server.post("/v1/login/enterprise/sync", &json!({ "flow": v["flow"] }))
    });
    assert_eq!(status, 409);
    assert_eq!(recs[0]["decision"], "allow");

    // Feeds: a real-name result names the person and the change; an
    // unknown enterprise's officers fail with 404.
    let (status, _, recs) = answered(&server, || {
        server.post(
            "/v1/admin/real-name",
            &json!({ "id_type": "resident_id", "id_number": "210112198709172093", "name": "郑强", "verified": true, "phone": "13700000009" }),
        )
    });
    assert_eq!(status, 200);
    assert_eq!(
        recs[0]["change"]["real_name"],
        json!({ "before": false, "after": true })
    );
    let (status, _, _) = answered(&server, || {
        server.request(
            "PUT",
            "/v1/admin/enterprises/91210100MA0Y8K3L57/core-officers",
            Some(json!({ "legal_rep": { "name": "周海涛", "id_type": "resident_id", "id_number": "210203198808086069" } }).to_string().as_bytes()),
        )
    });
    assert_eq!(status, 404);

    // /v1/authorize: allowed is done; denied is refused with the permits
    // the index held and the (masked) context.
    let (_, _, recs) = answered(&server, || {
        server.post(
            "/v1/authorize",
            &json!({ "principal": staff_uid(P_CLERK), "action": action("useFunction"), "resource": "Function::\"vat_filing\"" }),
        )
    });
    assert_eq!(recs[0]["outcome"], "done");
    assert!(
        recs[0].get("context").is_none(),
        "an empty context is left out"
    );
    let (_, v, recs) = answered(&server, || {
        server.post(
            "/v1/authorize",
            &json!({
                "principal": staff_uid(P_UNVERIFIED_CLERK),
                "action": action("loginNormal"),
                "resource": enterprise(E_SYNCED),
                "context": { "factors": ["enterprise_password"] }
            }),
        )
    });
    assert_eq!(v["decision"], "deny");
    assert_eq!(recs[0]["outcome"], "refused");
    assert_eq!(
        recs[0]["context"],
        json!({ "factors": ["enterprise_password"] })
    );
    // A default deny: no permit matched, and the record names the permits
    // the action's index held.
    let (_, v, recs) = answered(&server, || {
        server.post(
            "/v1/authorize",
            &json!({ "principal": staff_uid(P_CLERK), "action": action("useFunction"), "resource": "Function::\"invoice_issue\"" }),
        )
    });
    assert_eq!(v["reasons"], json!([]), "{v}");
    assert_eq!(recs[0]["reason"], "no permit matched", "{}", recs[0]);
    let permits = recs[0]["unmatched_permits"].to_string();
    assert!(
        permits.contains("function.via-permission-identity"),
        "{permits}"
    );

    // Metrics count by kind, action and outcome, from the same place.
    assert!(
        server.metric(
            "etax_decisions_total{kind=\"authorize\",action=\"useFunction\",decision=\"allow\",outcome=\"done\"}"
        ) >= 1
    );
    assert!(
        server.metric("etax_decisions_total{kind=\"login.sync_staff\",action=\"enterpriseAccountLogin\",decision=\"allow\",outcome=\"refused\"}") >= 1
    );
    assert!(server.metric("etax_decision_latency_seconds_count{kind=\"authorize\"}") >= 2);
}

fn staff_uid(person: &str) -> String {
    staff(E_SYNCED, person)
}

#[test]
fn a_full_id_number_filters_exactly_without_unmasking() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::demo_in(&data, &[]);
    for person in [P_LEGAL_REP, P_CLERK] {
        server.authorize(
            &staff_uid(person),
            &action("useFunction"),
            "Function::\"vat_filing\"",
            json!({}),
        );
    }
    // Group-committed after the answers: wait until both are in.
    for _ in 0..100 {
        if records_after(&server, 0)
            .iter()
            .filter(|r| r["kind"] == "authorize")
            .count()
            == 2
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Same mask as the legal rep's number, another person.
    let (_, all) = server.get("/v1/audit/decisions?principal=210177777777774011&kind=authorize");
    assert_eq!(all["records"], json!([]), "{all}");
    let (_, mine) = server.get("/v1/audit/decisions?principal=210102198003124011&kind=authorize");
    assert_eq!(mine["records"].as_array().unwrap().len(), 1, "{mine}");
    let (_, legal) = server.get("/v1/audit/decisions?identity_type=legal_rep&kind=authorize");
    assert_eq!(legal["records"].as_array().unwrap().len(), 1, "{legal}");
    let bytes = String::from_utf8_lossy(&server.decision_log_bytes()).into_owned();
    assert!(!bytes.contains("210102198003124011"));
    server.stop();

    let key = std::fs::read_to_string(data.join("pseudonym.key")).unwrap();
    assert!(!bytes.contains(key.trim()), "the key is never recorded");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("pseudonym.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let d = data.to_str().unwrap();
    let query = |args: &[&str]| {
        let mut all = vec![
            "audit",
            "query",
            "--data",
            d,
            "--kind",
            "authorize",
            "--format",
            "jsonl",
        ];
        all.extend_from_slice(args);
        let (code, out, err) = cli(&all);
        assert_eq!(code, 0, "{err}");
        out.lines().filter(|l| !l.is_empty()).count()
    };
    assert_eq!(query(&["--principal", "210102198003124011"]), 1);
    assert_eq!(query(&["--principal", "210177777777774011"]), 0);
    assert_eq!(query(&["--person", "210102199001015035"]), 1);
    assert_eq!(query(&["--identity-type", "legal_rep"]), 1);
    assert_eq!(query(&["--outcome", "done"]), 2);
    // A full ID number without the key cannot be matched: an error.
    std::fs::remove_file(data.join("pseudonym.key")).unwrap();
    let (code, _, err) = cli(&[
        "audit",
        "query",
        "--data",
        d,
        "--principal",
        "210102198003124011",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("pseudonym key"), "{err}");
}

/// `staff_id` of the member listed as `name` in a login step's answer.
fn member(answer: &Value, name: &str) -> Value {
    answer["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {answer}"))["staff_id"]
        .clone()
}

#[test]
fn every_login_mode_and_the_remaining_maintenance_steps_hold_to_the_answer() {
    let server = Server::demo();
    let post = |path: &str, body: Value| server.post(path, &body);

    // Enterprise login: a code for a member without real-name collection is
    // refused (403); a personal password completes the login.
    let (_, first) = post(
        "/v1/login/enterprise",
        json!({ "account": E_SYNCED, "password": "Etax@2026" }),
    );
    let (status, _, _) = answered(&server, || {
        post(
            "/v1/login/enterprise/code",
            json!({ "flow": first["flow"], "staff": member(&first, "*静") }),
        )
    });
    assert_eq!(status, 403);
    let (status, done, _) = answered(&server, || {
        post(
            "/v1/login/enterprise/complete",
            json!({ "flow": first["flow"], "staff": member(&first, LEGAL_REP), "password": "Wang@2026jg" }),
        )
    });
    assert_eq!(status, 200, "{done}");
    let lr = done["session"].as_str().unwrap().to_owned();

    // Quick login: refused before the first normal login, done after it.
    let (status, _, _) = answered(&server, || {
        post(
            "/v1/login/quick/code",
            json!({ "account": E_UNSYNCED, "password": DALIAN_PW, "identity_type": "legal_rep", "id_number": "210203198808086069" }),
        )
    });
    assert_eq!(status, 403);
    let (status, q, _) = answered(&server, || {
        post(
            "/v1/login/quick/code",
            json!({ "account": E_SYNCED, "password": "Etax@2026", "identity_type": "legal_rep", "id_number": "210102198003124011" }),
        )
    });
    assert_eq!(status, 200, "{q}");
    let (status, _, _) = answered(&server, || {
        post(
            "/v1/login/quick",
            json!({ "flow": q["flow"], "challenge": q["challenge"], "code": q["code"] }),
        )
    });
    assert_eq!(status, 200);

    // Natural person: a wrong password is refused, the right one done.
    for (password, expected) in [("Wrong@2026zl", 401), ("Zhaoli@2026", 200)] {
        let (_, c) = post(
            "/v1/login/captcha",
            json!({ "id_number": "210106199102140105" }),
        );
        let (status, _, _) = answered(&server, || {
            post(
                "/v1/login/natural-person",
                json!({ "id_type": "resident_id", "id_number": "210106199102140105", "password": password, "challenge": c["challenge"], "code": c["code"] }),
            )
        });
        assert_eq!(status, expected);
    }

    // Agency: a wrong agreement password is refused, the right one done.
    let (status, a, _) = answered(&server, || {
        post(
            "/v1/login/agency",
            json!({ "account": AGENCY, "password": "Agent@2026" }),
        )
    });
    assert_eq!(status, 200);
    let (status, _, _) = answered(&server, || {
        post(
            "/v1/login/agency/agent",
            json!({ "flow": a["flow"], "agent": member(&a, "*明"), "password": "Sunming@2026" }),
        )
    });
    assert_eq!(status, 200);
    for (agreement, expected) in [("Xieyi@2025", 401), ("Xieyi@2026", 200)] {
        let (status, _, recs) = answered(&server, || {
            post(
                "/v1/login/agency/client",
                json!({ "flow": a["flow"], "client": E_SYNCED, "agreement_password": agreement }),
            )
        });
        assert_eq!(status, expected);
        assert_eq!(recs[0]["acting_for"], E_SYNCED, "{}", recs[0]);
    }

    // Forgotten password: the code step is done (a code or a decoy sent),
    // the reset done.
    let (status, f, recs) = answered(&server, || {
        post(
            "/v1/password/forgot/code",
            json!({ "kind": "staff", "account": E_SYNCED, "id_number": "210102199001015035", "phone": "13800000003" }),
        )
    });
    assert_eq!(status, 200);
    assert!(!recs[0].to_string().contains("13800000003"), "{}", recs[0]);
    let (status, _, _) = answered(&server, || {
        post(
            "/v1/password/forgot/reset",
            json!({ "challenge": f["challenge"], "code": f["code"], "new_password": "Zw#Shui2026" }),
        )
    });
    assert_eq!(status, 200);

    // The remaining maintenance steps, each success and failure.
    let m = |method: &str, path: &str, body: Option<Value>| {
        with_session(
            &server,
            &lr,
            method,
            &format!("/v1/maintenance/{path}"),
            body,
        )
    };
    let (status, _, recs) = answered(&server, || {
        m(
            "PATCH",
            &format!("staff/{P_CLERK}"),
            Some(json!({ "identity_type": "other" })),
        )
    });
    assert_eq!(status, 200);
    assert_eq!(
        recs[0]["change"]["identity_type"],
        json!({ "before": "tax_clerk", "after": "other" }),
        "{}",
        recs[0]
    );
    let (status, _, _) = answered(&server, || {
        m("DELETE", &format!("staff/{P_INVOICE_BUYER}"), None)
    });
    assert_eq!(status, 200);
    let (status, _, _) = answered(&server, || {
        m("DELETE", &format!("staff/{P_INVOICE_BUYER}"), None)
    });
    assert!(status == 404 || status == 403, "{status}");
    let (status, _, _) = answered(&server, || {
        m(
            "PUT",
            "permission-identities/nosuch",
            Some(json!({ "name": "x", "description": "", "functions": ["vat_filing"] })),
        )
    });
    assert_eq!(status, 404);
    let (status, _, _) = answered(&server, || {
        m(
            "POST",
            "staff/search",
            Some(
                json!({ "name": "郑强", "id_type": "resident_id", "id_number": "210112198709172093" }),
            ),
        )
    });
    assert_eq!(status, 422);
    let (status, _, _) = answered(&server, || {
        m(
            "POST",
            "agencies",
            Some(json!({ "agency": "91210100MA0Y8K3L57", "agreement_password": "Xieyi@2027" })),
        )
    });
    assert_eq!(status, 404);
    let (status, _, recs) = answered(&server, || {
        m(
            "POST",
            "agencies",
            Some(json!({ "agency": AGENCY, "agreement_password": "Xieyi@2027" })),
        )
    });
    assert_eq!(status, 200);
    assert_eq!(
        recs[0]["change"]["recognition"],
        json!({ "before": true, "after": true })
    );
    let (status, _, recs) = answered(&server, || m("GET", "staff", None));
    assert_eq!(status, 200);
    assert_eq!(recs[0]["kind"], "maintain.viewStaff");

    // An auditor's read is recorded as done too.
    let before = head(&server);
    let (status, _) = server.get("/v1/audit/checkpoint");
    assert_eq!(status, 200);
    let (_, page) = server.get(&format!(
        "/v1/audit/decisions?after={before}&kind=audit.read"
    ));
    assert_eq!(page["records"][0]["outcome"], "done", "{page}");
}

/// A request refused before any decision (bad input, a session that does
/// not hold) still leaves one record saying who asked what and why it was
/// refused; a path that names no route leaves none.
#[test]
fn refusals_before_any_decision_are_recorded_too() {
    let s = Server::demo();
    let (status, body, records) = answered(&s, || {
        s.post(
            "/v1/password",
            &json!({"session": "not-a-session", "new_password": "Li#Caiwu2026"}),
        )
    });
    assert_eq!(status, 401, "{body}");
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["kind"], "rejected", "{r}");
    assert_eq!(r["action"], "POST /v1/password", "{r}");
    assert_eq!(r["decision"], "deny", "{r}");
    assert_eq!(r["code"], body["error"]["code"], "{r}");
    assert!(!r.to_string().contains("Li#Caiwu2026"), "{r}");
    assert!(!r.to_string().contains("not-a-session"), "{r}");

    let (status, body, records) =
        answered(&s, || s.post("/v1/authorize", &json!({"principal": 1})));
    assert_eq!(status, 400, "{body}");
    assert_eq!(records[0]["kind"], "rejected", "{records:?}");
    assert_eq!(records[0]["outcome"], "failed");

    let before = head(&s);
    let (status, _) = s.post("/v1/no-such-route", &json!({}));
    assert_eq!(status, 404);
    assert!(records_after(&s, before).is_empty());
}
