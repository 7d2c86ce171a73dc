//! `/v1/maintenance/…`: staff maintenance (企业人员维护) and agency
//! recognition (代理机构认定管理) for the logged-in staff member whose
//! session the request carries.

use std::collections::BTreeSet;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde::Deserialize;
use serde_json::json;

use super::admin::{credit_code, person_key};
use super::error::ApiError;
use super::{ok, read_json, AppState};
use crate::flows::maintenance::{Actor, Maintenance, PermissionIdentitySpec, StaffChange};
use crate::ids::{CreditCode, PermissionIdentityId, PersonKey};
use crate::store::IdentityType;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonSearch {
    name: String,
    id_type: String,
    id_number: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddStaff {
    name: String,
    id_type: String,
    id_number: String,
    identity_type: IdentityType,
    #[serde(default)]
    permission_identities: BTreeSet<PermissionIdentityId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditStaff {
    #[serde(default)]
    identity_type: Option<IdentityType>,
    #[serde(default)]
    add_permission_identities: BTreeSet<PermissionIdentityId>,
    #[serde(default)]
    remove_permission_identities: BTreeSet<PermissionIdentityId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionIdentityBody {
    #[serde(default)]
    id: Option<PermissionIdentityId>,
    name: String,
    #[serde(default)]
    description: String,
    functions: BTreeSet<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recognize {
    agency: String,
    agreement_password: String,
}

/// The header that carries the logged-in user's session token.
pub const SESSION_HEADER: &str = "x-etax-session";

/// The staff member behind the request's session, re-checked now (expiry,
/// logout, still staff, no one-time password pending).
async fn actor(state: &AppState, req: &Request<Incoming>) -> Result<Actor, ApiError> {
    let token = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                hyper::StatusCode::UNAUTHORIZED,
                "session_required",
                "send the session token in the X-Etax-Session header",
            )
        })?;
    let who = super::session_principal(state, token)?;
    let not_staff = || {
        ApiError::new(
            hyper::StatusCode::FORBIDDEN,
            "not_enterprise_staff",
            "staff maintenance is for staff of an enterprise (R13)",
        )
    };
    if who.principal.type_name().basename() != "Staff" {
        return Err(not_staff());
    }
    let (enterprise, person) = who
        .principal
        .id()
        .unescaped()
        .split_once('/')
        .ok_or_else(not_staff)?;
    Ok(Actor {
        enterprise: CreditCode::parse(enterprise).map_err(|_| not_staff())?,
        person: PersonKey::parse_key(person).map_err(|_| not_staff())?,
    })
}

/// Routes `rest` (the path after `/v1/maintenance`) for the session's staff member.
pub async fn route(
    state: &AppState,
    req: Request<Incoming>,
    rest: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let actor = actor(state, &req).await?;
    let ops = Maintenance {
        engine: &state.engine,
        decider: &state.decider,
        authn: &state.authn,
    };
    let query = req.uri().query().unwrap_or_default().to_owned();
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["staff"]) => ok(&json!({ "staff": ops.list_staff(&actor).await? })),
        (&Method::POST, ["staff"]) => {
            let b: AddStaff = read_json(state, req).await?;
            let person = person_key("", &b.id_type, &b.id_number)?;
            ops.add_staff(
                &actor,
                &b.name,
                &person,
                b.identity_type,
                b.permission_identities,
            )
            .await?;
            ok(&json!({ "added": person.masked() }))
        }
        (&Method::POST, ["staff", "search"]) => {
            let b: PersonSearch = read_json(state, req).await?;
            let person = person_key("", &b.id_type, &b.id_number)?;
            let name = ops.search_person(&actor, &b.name, &person).await?;
            ok(
                &json!({ "found": { "name": name, "person": person.masked(), "real_name_verified": true } }),
            )
        }
        (&Method::PATCH, ["staff", person]) => {
            let person = path_person(person)?;
            let b: EditStaff = read_json(state, req).await?;
            let change = StaffChange {
                identity_type: b.identity_type,
                add_permission_identities: b.add_permission_identities,
                remove_permission_identities: b.remove_permission_identities,
            };
            let s = ops.edit_staff(&actor, &person, change).await?;
            ok(
                &json!({ "identity_type": s.identity_type, "permission_identities": s.permission_identities }),
            )
        }
        (&Method::DELETE, ["staff", person]) => {
            let person = path_person(person)?;
            ops.remove_staff(&actor, &person).await?;
            ok(&json!({ "removed": person.masked() }))
        }
        (&Method::POST, ["staff", person, "reset-password"]) => {
            let person = path_person(person)?;
            let otp = ops.reset_password(&actor, &person).await?;
            // For the calling system to deliver by SMS; the resetter's page
            // must show only `deliver_to_masked`.
            ok(&json!({ "one_time_password": otp, "must_change_at_next_login": true }))
        }
        (&Method::GET, ["permission-identities"]) => {
            ok(&json!({ "permission_identities": ops.list_permission_identities(&actor).await? }))
        }
        (&Method::POST, ["permission-identities"]) => {
            let b: PermissionIdentityBody = read_json(state, req).await?;
            let id =
                b.id.clone()
                    .ok_or_else(|| ApiError::invalid("id", "missing field `id`"))?;
            ok(&ops
                .put_permission_identity(&actor, spec(id, b), true)
                .await?)
        }
        (&Method::PUT, ["permission-identities", id]) => {
            let id = permission_identity_id(id)?;
            let b: PermissionIdentityBody = read_json(state, req).await?;
            if b.id.as_ref().is_some_and(|body_id| *body_id != id) {
                return Err(ApiError::invalid("id", "differs from the id in the path"));
            }
            ok(&ops
                .put_permission_identity(&actor, spec(id, b), false)
                .await?)
        }
        (&Method::DELETE, ["permission-identities", id]) => {
            let id = permission_identity_id(id)?;
            let detach = query.split('&').any(|kv| kv == "detach=true");
            let detached = ops.delete_permission_identity(&actor, &id, detach).await?;
            ok(&json!({ "deleted": id.as_str(), "detached_from": detached }))
        }
        (&Method::POST, ["agencies"]) => {
            let b: Recognize = read_json(state, req).await?;
            let agency = credit_code("agency", &b.agency)?;
            ops.recognize_agency(&actor, &agency, &b.agreement_password)
                .await?;
            ok(&json!({ "recognized": agency.as_str() }))
        }
        (&Method::DELETE, ["agencies", agency]) => {
            let agency = credit_code("agency", agency)?;
            ops.cancel_agency(&actor, &agency).await?;
            ok(&json!({ "cancelled": agency.as_str() }))
        }
        _ => Err(ApiError::not_found(&format!("/v1/maintenance{rest}"))),
    }
}

/// A permission identity id in a path: `/permission-identities/filing`.
fn permission_identity_id(s: &str) -> Result<PermissionIdentityId, ApiError> {
    PermissionIdentityId::parse(s).map_err(|e| ApiError::invalid("id", e.to_string()))
}

fn spec(id: PermissionIdentityId, b: PermissionIdentityBody) -> PermissionIdentitySpec {
    PermissionIdentitySpec {
        id,
        name: b.name,
        description: b.description,
        functions: b.functions,
    }
}

/// A person key in a path: `resident_id:210102199001015035`.
fn path_person(s: &str) -> Result<PersonKey, ApiError> {
    PersonKey::parse_key(s).map_err(|e| {
        ApiError::invalid(
            "path",
            format!("not a person key like resident_id:<ID number>: {e}"),
        )
    })
}
