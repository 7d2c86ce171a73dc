//! Time from the sidecar: a business question's context gets `now`,
//! `localTime` and `workday` from the server's clock and the workday
//! calendar the bureau's feed maintains; a caller cannot send them.

use crate::common;

use common::*;
use etax_authz::flows::clock::Day;
use serde_json::{json, Value};

/// A rule the bundled set does not have (R1–R17 have no office hours): no
/// business outside workdays. It also reads `now` and `localTime`, so a
/// question without them would deny.
const WORKDAYS_ONLY: &str = r#"@id("test.workdays-only")
@code("outside_office_hours")
@message("business is done on workdays only")
forbid (
  principal,
  action == Etax::Action::"useFunction",
  resource
)
unless
{
  context has workday &&
  context.workday &&
  context has now &&
  context.now > datetime("2020-01-01T00:00:00Z") &&
  context has localTime &&
  context.localTime < duration("24h")
};
"#;

fn vat_filing(context: Value) -> Value {
    json!({
        "principal": staff(E_SYNCED, P_CLERK),
        "action": action("useFunction"),
        "resource": "Function::\"vat_filing\"",
        "context": context,
    })
}

fn set_calendar(server: &Server, year: &str, body: Value) {
    let (code, out) = server.request(
        "PUT",
        &format!("/v1/admin/calendar/{year}"),
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(code, 200, "{out}");
}

#[test]
fn the_calendar_decides_whether_today_is_a_workday() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("policies")).unwrap();
    let server = demo_over_copied_policies(tmp.path(), &["--reload-poll-ms", "0"]);
    std::fs::write(
        tmp.path().join("policies/office-hours.cedar"),
        WORKDAYS_ONLY,
    )
    .unwrap();
    server.signal("HUP");
    wait_until("the reload", || {
        server
            .get("/v1/policies?action=useFunction")
            .1
            .to_string()
            .contains("test.workdays-only")
    });
    let today = Day::of(etax_authz::now_ms());
    let year = &today.date[..4];
    let weekend = today.weekday >= 5;
    // Today off: a holiday if it is a weekday, nothing if it is a weekend.
    let off = if weekend {
        json!({})
    } else {
        json!({ "holidays": [today.date] })
    };
    set_calendar(&server, year, off);
    let answer = server.post_ok("/v1/authorize", &vat_filing(json!({})));
    assert_eq!(
        (answer["decision"].as_str(), &answer["reasons"]),
        (Some("deny"), &json!(["test.workdays-only"])),
        "{answer}"
    );
    // Today a workday: 调休 if it is a weekend, the plain rule otherwise.
    let on = if weekend {
        json!({ "workdays": [today.date] })
    } else {
        json!({})
    };
    set_calendar(&server, year, on);
    let answer = server.post_ok("/v1/authorize?explain=true", &vat_filing(json!({})));
    assert_eq!(answer["decision"], "allow", "{answer}");
}

#[test]
fn a_caller_cannot_send_the_time() {
    let server = Server::demo();
    for (name, value) in [
        (
            "now",
            json!({ "__extn": { "fn": "datetime", "arg": "2026-10-08T09:00:00Z" } }),
        ),
        ("workday", json!(true)),
        (
            "localTime",
            json!({ "__extn": { "fn": "duration", "arg": "9h" } }),
        ),
    ] {
        let (code, body) = server.post("/v1/authorize", &vat_filing(json!({ name: value })));
        assert_eq!(code, 400, "{body}");
        assert_eq!(body["error"]["field"], format!("context.{name}"), "{body}");
    }
    // Without the office-hours rule, the bundled decisions are unchanged.
    assert_eq!(
        server.post_ok("/v1/authorize", &vat_filing(json!({})))["decision"],
        "allow"
    );
}

#[test]
fn the_calendar_feed_checks_its_dates() {
    let server = Server::demo();
    for (year, body, field) in [
        ("2026", json!({ "holidays": ["2026-02-30"] }), "holidays[0]"),
        ("2026", json!({ "workdays": ["2025-10-11"] }), "workdays[0]"),
        (
            "2026",
            json!({ "workdays": ["2026-10-11"], "holidays": ["2026-10-11"] }),
            "holidays",
        ),
        ("26", json!({}), "year"),
    ] {
        let (code, out) = server.request(
            "PUT",
            &format!("/v1/admin/calendar/{year}"),
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(
            (code, out["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {out}"
        );
    }
    set_calendar(
        &server,
        "2026",
        json!({ "workdays": ["2026-10-11"], "holidays": ["2026-10-01"] }),
    );
}

#[test]
fn under_a_schema_without_the_clock_attributes_questions_still_work() {
    let tmp = tempfile::tempdir().unwrap();
    let server = demo_over_copied_policies(tmp.path(), &["--reload-poll-ms", "0"]);
    let schema = tmp.path().join("etax.cedarschema");
    let text = std::fs::read_to_string(&schema).unwrap();
    let old: String = text
        .lines()
        .filter(|l| {
            !["now?:", "localTime?:", "workday?:"]
                .iter()
                .any(|a| l.trim_start().starts_with(a))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(old, text);
    std::fs::write(&schema, old).unwrap();
    server.signal("HUP");
    wait_until("the reload", || {
        server.get("/v1/status").1["reloads"]["succeeded"] == 1
    });
    let answer = server.post_ok("/v1/authorize", &vat_filing(json!({})));
    assert_eq!(answer["decision"], "allow", "{answer}");
}

#[test]
fn calendar_years_outside_2000_to_2100_are_refused() {
    let server = Server::demo();
    for year in ["1582", "1999", "2101", "9999"] {
        let (code, out) = server.request("PUT", &format!("/v1/admin/calendar/{year}"), Some(b"{}"));
        assert_eq!(
            (code, out["error"]["field"].as_str()),
            (400, Some("year")),
            "{year}: {out}"
        );
        let message = out["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("2000") && message.contains("2100"),
            "{out}"
        );
    }
    for year in ["2000", "2100"] {
        set_calendar(&server, year, json!({}));
    }
}
