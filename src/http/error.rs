//! Every error the API returns, mapped to a status code and a JSON body in
//! this one place: `{"error":{"code":…,"message":…,"field":…}}`.

use std::borrow::Cow;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::audit::AuditError;
use crate::decision::DecisionError;
use crate::flows::feeds::FeedError;
use crate::flows::maintenance::MaintenanceError;
use crate::flows::{FlowError, Quota};
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Mostly fixed words; a policy refusal's comes from its `@code`.
    pub code: Cow<'static, str>,
    pub message: String,
    /// Where in the request the problem is (`requests[2].principal`).
    pub field: Option<String>,
    /// For a policy denial: the policies that refused.
    pub policies: Option<Vec<String>>,
    /// For a lock or a rate limit: when to try again, as `retry_after_secs`
    /// in the body and the `Retry-After` header.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
            policies: None,
            retry_after_secs: None,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request".into(),
            message: message.into(),
            field: Some(field.into()),
            policies: None,
            retry_after_secs: None,
        }
    }

    /// The path is named as the request log shows it (route words only):
    /// whatever else a caller put in a path is not repeated.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {}", super::uri::log_path(path)),
        )
    }

    pub fn method_not_allowed(method: &hyper::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {}", super::uri::log_path(path)),
        )
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// Prefixes the field with the enclosing element (`requests[2]`).
    pub fn within(mut self, outer: &str) -> Self {
        self.field = Some(match self.field {
            Some(f) => format!("{outer}.{f}"),
            None => outer.to_owned(),
        });
        self
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        // Messages can quote what the caller sent (Cedar's context errors
        // do), and a field can be named by it (a context attribute): ID
        // numbers and phones are masked here like everywhere else.
        let message = crate::ids::mask_text(&self.message);
        let field = self.field.map(|f| crate::ids::mask_text(&f));
        // A 503 that says when to retry (every export slot taken, the
        // fleet's request pool busy) is load, not a fault: no error alerts.
        if self.status.is_server_error() && self.retry_after_secs.is_some() {
            tracing::warn!(code = %self.code, %message, "busy");
        } else if self.status.is_server_error() {
            tracing::error!(code = %self.code, %message, "internal error");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into_owned(),
                message,
                retry_after_secs: self.retry_after_secs,
                field,
                policies: self.policies,
            },
        };
        let mut response = super::json_response(self.status, &body);
        if let Some(secs) = self.retry_after_secs {
            set_retry_after(&mut response, secs);
        }
        response
    }
}

/// Every error answer's body: what `into_response` writes and what
/// `/openapi.json` documents, one type for both.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// Field order is the wire order callers have seen since the first release.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A fixed word (`invalid_request`, `not_found`, …) or a refusing
    /// policy's `@code`.
    code: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_secs: Option<u64>,
    /// Where in the request the problem is (`requests[2].principal`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// The policies that refused, for a policy denial.
    #[serde(skip_serializing_if = "Option::is_none")]
    policies: Option<Vec<String>>,
}

impl From<tokio::task::JoinError> for ApiError {
    /// A request's task panicked: the connection still gets an answer. The
    /// panic's message is not repeated (it could quote request data).
    fn from(_: tokio::task::JoinError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed inside the service",
        )
    }
}

impl ApiError {
    /// A fleet route asked of a sidecar started without `--fleet`.
    pub fn fleet_off() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "fleet_mode_off",
            "fleet mode is off: this sidecar was started without --fleet",
        )
    }
}

impl From<crate::fleet::FleetError> for ApiError {
    /// The fleet's database is unreachable or refused the read: the local
    /// service is fine, so 503 (retry), never the database's URL. A pool
    /// whose connections all stayed busy says so (its message names no
    /// address).
    fn from(e: crate::fleet::FleetError) -> Self {
        tracing::warn!(error = %e, "fleet database read failed");
        let message = match e {
            crate::fleet::FleetError::PoolBusy { .. } => e.to_string(),
            _ => "the fleet's database cannot be read now; retry later".to_owned(),
        };
        ApiError {
            retry_after_secs: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "fleet_unavailable",
                message,
            )
        }
    }
}

/// Every export slot is streaming: retry once one has finished.
impl From<super::export::ExportsBusy> for ApiError {
    fn from(e: super::export::ExportsBusy) -> Self {
        ApiError {
            retry_after_secs: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "exports_busy",
                e.to_string(),
            )
        }
    }
}

impl From<AuditError> for ApiError {
    /// A decision that cannot be logged is not answered: the log must be complete.
    fn from(e: AuditError) -> Self {
        match e {
            // Damaged storage: the read stops at the damage rather than
            // answer part of the log as if it were all of it.
            AuditError::Unreadable { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "decision_log_unreadable",
                e.to_string(),
            ),
            e => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "decision_log_unavailable",
                e.to_string(),
            ),
        }
    }
}

impl From<crate::audit::query::QueryError> for ApiError {
    fn from(e: crate::audit::query::QueryError) -> Self {
        match e {
            crate::audit::query::QueryError::Audit(e) => e.into(),
            crate::audit::query::QueryError::Io(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("reading the decision log: {e}"),
            ),
        }
    }
}

impl From<crate::policy::archive::ArchiveError> for ApiError {
    /// An unknown version is the auditor's question having no answer (404);
    /// an archive whose texts no longer hash to their version has been
    /// altered, which the service must not paper over (500).
    fn from(e: crate::policy::archive::ArchiveError) -> Self {
        use crate::policy::archive::ArchiveError as E;
        match &e {
            E::BadVersion(_) | E::Ambiguous { .. } => ApiError::invalid("version", e.to_string()),
            E::Unknown(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_policy_version",
                e.to_string(),
            ),
            // A name with directories or a text with NUL is no archive
            // the service writes: crafted, so altered.
            E::Altered { .. } | E::NotPlain { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "policy_archive_altered",
                e.to_string(),
            ),
            E::Io { .. } | E::Format { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "policy_archive_unreadable",
                e.to_string(),
            ),
        }
    }
}

impl From<DecisionError> for ApiError {
    fn from(e: DecisionError) -> Self {
        match e {
            DecisionError::Invalid { field, message } => ApiError::invalid(field, message),
            DecisionError::Store(e) => e.into(),
        }
    }
}

impl From<FeedError> for ApiError {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::Invalid { field, message } => ApiError::invalid(field, message),
            FeedError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            FeedError::Store(e) => e.into(),
            FeedError::Audit(e) => e.into(),
        }
    }
}

impl From<MaintenanceError> for ApiError {
    fn from(e: MaintenanceError) -> Self {
        let message = e.to_string();
        match e {
            // A forbid's own code; a default deny (nothing permitted) has
            // no rule to speak and keeps the generic one.
            MaintenanceError::Denied {
                policies, refusal, ..
            } => ApiError {
                policies: Some(policies),
                ..ApiError::new(
                    StatusCode::FORBIDDEN,
                    refusal.map_or(Cow::Borrowed("denied"), |r| r.code.clone().into()),
                    message,
                )
            },
            MaintenanceError::RealNameRequired(m) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "real_name_collection_required",
                m,
            ),
            MaintenanceError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            MaintenanceError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            MaintenanceError::Invalid { field, message } => ApiError::invalid(field, message),
            MaintenanceError::Password { field, source } => refused_password(field, &source),
            MaintenanceError::Busy(e) => e.into(),
            MaintenanceError::Decision(e) => e.into(),
            MaintenanceError::Store(e) => e.into(),
            MaintenanceError::Audit(e) => e.into(),
        }
    }
}

/// The hashing threads are full: try again in a second. Nothing was done,
/// so a retry is safe.
impl From<crate::authn::HashBusy> for ApiError {
    fn from(e: crate::authn::HashBusy) -> Self {
        ApiError {
            retry_after_secs: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string())
        }
    }
}

/// The store failed. In fleet mode, a database that does not answer (a
/// write, or a replica past its staleness bound) is a 503 to retry: the
/// service fails closed until the database is back.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::FleetUnavailable(_)
            | StoreError::FleetStale { .. }
            | StoreError::FleetClockSkew { .. }
            | StoreError::FleetClockUnknown { .. } => ApiError {
                retry_after_secs: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "fleet_unavailable",
                    crate::ids::mask_text(&e.to_string()),
                )
            },
            e => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_unavailable",
                e.to_string(),
            ),
        }
    }
}

/// A login or password step that did not succeed.
impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        use crate::authn::challenge::ChallengeError as C;
        let msg = e.to_string();
        match e {
            FlowError::Invalid { field, message } => ApiError::invalid(field, message),
            FlowError::BadCredentials(_) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", msg)
            }
            FlowError::Locked { retry_after_secs } => ApiError {
                retry_after_secs: Some(retry_after_secs),
                ..ApiError::new(StatusCode::LOCKED, "account_locked", msg)
            },
            FlowError::AttemptsInProgress { retry_after_secs } => ApiError {
                retry_after_secs: Some(retry_after_secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "attempts_in_progress", msg)
            },
            FlowError::Code(c) => {
                let code = match c {
                    C::Unknown => "code_unknown",
                    C::Expired => "code_expired",
                    C::Used => "code_used",
                    C::Exhausted => "code_attempts_exhausted",
                    C::Wrong { .. } => "code_wrong",
                };
                ApiError {
                    field: Some("code".into()),
                    ..ApiError::new(StatusCode::UNAUTHORIZED, code, msg)
                }
            }
            FlowError::Forbidden(r) => ApiError {
                policies: Some(vec![r.policy.clone()]),
                ..ApiError::new(StatusCode::FORBIDDEN, r.code.clone(), msg)
            },
            FlowError::Refused { code, .. } => ApiError::new(StatusCode::FORBIDDEN, code, msg),
            FlowError::FlowExpired => {
                ApiError::new(StatusCode::UNAUTHORIZED, "login_flow_expired", msg)
            }
            FlowError::Session(_) => ApiError {
                field: Some("session".into()),
                ..ApiError::new(StatusCode::UNAUTHORIZED, "session_invalid", msg)
            },
            FlowError::PasswordChangeRequired => ApiError {
                field: Some("session".into()),
                ..ApiError::new(StatusCode::FORBIDDEN, "password_change_required", msg)
            },
            FlowError::RateLimited {
                quota,
                retry_after_secs,
            } => {
                let code = match quota {
                    Quota::SmsPerPhone => "too_many_codes",
                    Quota::CaptchasPerAccount => "too_many_captchas",
                };
                ApiError {
                    retry_after_secs: Some(retry_after_secs),
                    ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, msg)
                }
            }
            FlowError::NewPassword(e) => refused_password("new_password", &e),
            FlowError::RealNameMismatch(_) => {
                ApiError::new(StatusCode::CONFLICT, "real_name_mismatch", msg)
            }
            FlowError::Store(e) => e.into(),
            FlowError::Busy(b) => b.into(),
            FlowError::Audit(a) => a.into(),
            FlowError::Decision(d) => d.into(),
        }
    }
}

/// A password the acceptance function refused, in `field`: `password_rule`
/// (the message says which part) or `password_too_common` (the deny list).
fn refused_password(field: &str, e: &crate::authn::NewPasswordError) -> ApiError {
    use crate::authn::NewPasswordError as P;
    let code = match e {
        P::Rule(_) => "password_rule",
        P::Common => "password_too_common",
    };
    ApiError {
        code: code.into(),
        ..ApiError::invalid(field, e.to_string())
    }
}

/// `Retry-After` (RFC 9110 §10.2.3), in seconds.
fn set_retry_after(response: &mut Response<Full<Bytes>>, secs: u64) {
    response.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from(secs),
    );
}

/// A JSON body that did not parse into the expected request. The field is
/// the JSON path where it went wrong (`requests[2].principal`), never a value
/// from the body: serde's messages quote the offending value, which is no
/// field name (and may be anything the caller typed). `path` is where
/// serde_path_to_error stopped, `.` for the whole body.
pub fn from_json_error(path: &str, e: &serde_json::Error) -> ApiError {
    let field = if e.is_data() {
        json_path(path, &e.to_string())
    } else {
        "body".to_owned()
    };
    ApiError::invalid(
        field,
        format!("malformed request body: {}", without_values(&e.to_string())),
    )
}

/// Whether `name` looks like one of the API's field names (`id_number`,
/// `actingFor`) rather than something typed where a key goes.
fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// serde's message with the offending value left out ("invalid type:
/// integer `20260101`, expected a string" becomes "invalid type: integer,
/// expected a string"): a mistyped password or code must not come back in
/// the answer, nor in any log of it.
fn without_values(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some((name, tail)) = rest.split_once('`') {
            if !is_field_name(name) {
                return format!("unknown field{tail}");
            }
        }
    }
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let Some((unexpected, expected)) = rest.split_once(", expected ") else {
                break;
            };
            // The kind is what precedes the quoted value: `integer`, `string`.
            let kind = unexpected
                .split(['`', '"'])
                .next()
                .unwrap_or_default()
                .trim();
            let kind = if kind.is_empty() { "value" } else { kind };
            let prefix = prefix.trim_end();
            return if prefix == "unknown variant" {
                format!("{prefix}, expected {expected}")
            } else {
                format!("{prefix} {kind}, expected {expected}")
            };
        }
    }
    msg.to_owned()
}

/// `path` as serde_path_to_error prints it (`.` for the whole body), with
/// the field a "missing field `x`" or "unknown field `x`" message names
/// appended when the path stops at the enclosing object.
fn json_path(path: &str, msg: &str) -> String {
    let path = path.strip_prefix('.').unwrap_or(path);
    // serde_path_to_error names an unknown key in the path too.
    let path = path
        .split('.')
        .map(|segment| {
            let name = segment.split('[').next().unwrap_or_default();
            if name.is_empty() || is_field_name(name) {
                segment
            } else {
                "*"
            }
        })
        .collect::<Vec<_>>()
        .join(".");
    let path = path.as_str();
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| msg.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    // A key the caller made up is not repeated unless it looks like a field
    // name: it could be an ID number or a password typed in the wrong place.
    let named = named.map(|name| if is_field_name(name) { name } else { "*" });
    match named {
        Some(name) if !path.ends_with(name) && path.is_empty() => name.to_owned(),
        Some(name) if !path.ends_with(name) => format!("{path}.{name}"),
        _ if path.is_empty() => "body".to_owned(),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
