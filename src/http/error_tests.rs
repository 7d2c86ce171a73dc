//! Unit tests of the one mapping from errors to HTTP answers.

use super::*;
use serde_json::json;

fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    let response = e.into_response();
    let status = response.status();
    let bytes = ready(response.into_body().collect()).unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// The body of a `Full` is ready at once: one poll collects it.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("a full body is ready"),
    }
}

#[test]
fn a_refusal_speaks_with_the_deciding_forbids_code_and_message() {
    let refusal = std::sync::Arc::new(crate::policy::Refusal {
        policy: "any.renamed-rule".into(),
        code: "real_name_required".into(),
        message: "complete real-name collection (R5)".into(),
    });
    let (status, b) = body(FlowError::Forbidden(refusal.clone()).into());
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        b["error"],
        json!({ "code": "real_name_required", "message": "complete real-name collection (R5)",
                "policies": ["any.renamed-rule"] })
    );
    let denied = |refusal| MaintenanceError::Denied {
        action: "viewStaff".into(),
        policies: vec!["any.renamed-rule".into()],
        errors: vec![],
        refusal,
    };
    let (_, b) = body(denied(Some(refusal)).into());
    assert_eq!(b["error"]["code"], "real_name_required");
    // A default deny has no rule to speak: the generic code stays.
    let (status, b) = body(denied(None).into());
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(b["error"]["code"], "denied");
    assert_eq!(
        b["error"]["message"],
        "viewStaff denied (no policy permits it)"
    );
}

/// A field can be named by what the caller sent (a context attribute,
/// a batch element's path): it is masked like a message.
#[test]
fn fields_are_masked_like_messages() {
    let (_, b) = body(ApiError::invalid(
        "requests[0].context.210102199001015035",
        "phone 13800000001",
    ));
    assert_eq!(
        b["error"]["field"],
        "requests[0].context.2101**********5035"
    );
    assert_eq!(b["error"]["message"], "phone 138****0001");
    let (_, b) = body(ApiError::invalid("requests[12].context.actingFor", "x"));
    assert_eq!(b["error"]["field"], "requests[12].context.actingFor");
}

#[test]
fn messages_name_people_with_the_one_mask() {
    let person = crate::ids::PersonKey::parse_key("resident_id:210104197506203078").unwrap();
    let e = MaintenanceError::RealNameRequired(format!(
        "no person with ID {} or phone 13800000001",
        person.masked()
    ));
    let (_, b) = body(e.into());
    assert_eq!(
        b["error"]["message"],
        "no person with ID resident_id:2101**********3078 or phone 138****0001"
    );
}

#[test]
fn a_json_error_message_leaves_the_value_out() {
    assert_eq!(
        without_values("invalid type: integer `20260101`, expected a string at line 1 column 9"),
        "invalid type: integer, expected a string at line 1 column 9"
    );
    assert_eq!(
        without_values("invalid value: string \"Secret@1\", expected a session token"),
        "invalid value: string, expected a session token"
    );
    assert_eq!(
        without_values("unknown variant `Abc@1234`, expected `staff` or `agent_staff`"),
        "unknown variant, expected `staff` or `agent_staff`"
    );
    assert_eq!(
        without_values("missing field `action`"),
        "missing field `action`"
    );
    assert_eq!(
        without_values("unknown field `210102199001015035`, expected `account` or `password`"),
        "unknown field, expected `account` or `password`"
    );
    assert_eq!(
        json_path(".", "unknown field `Etax@2026`, expected `account`"),
        "*"
    );
    assert_eq!(
        json_path(".", "unknown field `acount`, expected `account`"),
        "acount"
    );
}

#[test]
fn a_json_error_names_the_path_not_the_value() {
    assert_eq!(
        json_path("principal", "invalid type: integer `5`"),
        "principal"
    );
    assert_eq!(
        json_path("requests[1].action", "invalid type: integer `7`"),
        "requests[1].action"
    );
    assert_eq!(json_path(".", "missing field `action`"), "action");
    assert_eq!(
        json_path("requests[0]", "missing field `action`"),
        "requests[0].action"
    );
    assert_eq!(
        json_path("principle", "unknown field `principle`, expected one of"),
        "principle"
    );
    assert_eq!(
        json_path(".", "invalid type: sequence, expected struct"),
        "body"
    );
}

#[test]
fn a_rate_limit_says_when_to_try_again() {
    let e = FlowError::RateLimited {
        quota: Quota::CaptchasPerAccount,
        retry_after_secs: 42,
    };
    let response = ApiError::from(e).into_response();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[hyper::header::RETRY_AFTER], "42");
}
