//! Feeds from the bureau's other systems over HTTP: a real-name result
//! changes the very next decision; bad input names its field.

use crate::common;

use common::*;
use serde_json::json;

#[test]
fn real_name_result_takes_effect_on_the_next_decision() {
    let server = Server::demo();
    let agency = format!("Agency::\"{AGENCY}\"");
    let login = || {
        server.authorize(
            &agent(P_UNVERIFIED_AGENT),
            &action("loginAgentStaff"),
            &agency,
            json!({ "factors": ["agency_password", "sms_otp"] }),
        )
    };
    assert_eq!(login()["reasons"], json!(["login.realname-required"]));

    let (s, b) = server.post(
        "/v1/admin/real-name",
        &json!({ "id_type": "resident_id", "id_number": "210112198709172093", "name": "郑强", "verified": true, "phone": "13700000009" }),
    );
    assert_eq!((s, &b), (200, &json!({ "created": false })));
    assert_eq!(login()["decision"], "allow");

    // A verified result needs the real-name phone; bad numbers name their field.
    let (s, b) = server.post(
        "/v1/admin/real-name",
        &json!({ "id_type": "resident_id", "id_number": "210112198709172093", "name": "郑强", "verified": true }),
    );
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("phone")));
    let (s, b) = server.post(
        "/v1/admin/real-name",
        &json!({ "id_type": "resident_id", "id_number": "210112198709172094", "name": "郑强", "verified": false }),
    );
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("id_number")));
}

#[test]
fn core_officers_feed() {
    let server = Server::demo();
    let body = json!({
        "legal_rep": { "name": "周海涛", "id_type": "resident_id", "id_number": "210203198808086069" },
        "finance_head": { "name": "孙明", "id_type": "resident_id", "id_number": "210105199303031080" }
    });
    let (s, b) = server.request(
        "PUT",
        &format!("/v1/admin/enterprises/{E_UNSYNCED}/core-officers"),
        Some(body.to_string().as_bytes()),
    );
    assert_eq!((s, &b), (200, &json!({ "created": false })));
    let (s, _) = server.request(
        "PUT",
        "/v1/admin/enterprises/91210100MA0Y8K3L57/core-officers",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(s, 404);
    let (s, b) = server.request(
        "PUT",
        &format!("/v1/admin/enterprises/{E_UNSYNCED}/core-officers"),
        Some(
            json!({ "legal_rep": { "name": "x", "id_type": "resident_id", "id_number": "123" } })
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("legal_rep.id_number"))
    );
}
