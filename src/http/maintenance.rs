//! `/v1/maintenance/…`: staff maintenance (企业人员维护) and agency
//! recognition (代理机构认定管理) for the logged-in staff member whose
//! session the request carries.

use std::collections::BTreeSet;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde::Deserialize;

pub mod answers;

use super::admin::{credit_code, person_key};
use super::error::ApiError;
use super::routes::{Param, ParamKind};
use super::{ok, read_json, AppState};
use crate::domain::{EntityKind, StaffKey};
use crate::flows::maintenance::{Actor, Maintenance, PermissionIdentitySpec, StaffChange};
use crate::ids::{CreditCode, IdType, PermissionIdentityId, PersonKey};
use crate::store::{FunctionRecord, IdentityType};
use answers::*;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersonSearch {
    name: String,
    id_type: IdType,
    id_number: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddStaff {
    name: String,
    id_type: IdType,
    id_number: String,
    identity_type: IdentityType,
    #[serde(default)]
    permission_identities: BTreeSet<PermissionIdentityId>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditStaff {
    #[serde(default)]
    identity_type: Option<IdentityType>,
    #[serde(default)]
    add_permission_identities: BTreeSet<PermissionIdentityId>,
    #[serde(default)]
    remove_permission_identities: BTreeSet<PermissionIdentityId>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PermissionIdentityBody {
    #[serde(default)]
    id: Option<PermissionIdentityId>,
    #[schema(max_length = 100)]
    name: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: String,
    /// Business function codes (`GET /v1/functions`), each 1 to 64 characters.
    functions: BTreeSet<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recognize {
    agency: CreditCode,
    agreement_password: String,
}

/// `DELETE /v1/maintenance/permission-identities/{id}?detach=true`.
pub const DELETE_IDENTITY_PARAMS: &[Param] = &[Param::new(
    "detach",
    ParamKind::Boolean,
    "Also take the identity away from the staff who hold it",
    "true",
)];

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
    if EntityKind::of(&who.principal) != Some(EntityKind::Staff) {
        return Err(not_staff());
    }
    who.principal
        .id()
        .unescaped()
        .parse::<StaffKey>()
        .map_err(|_| not_staff())
}

/// One maintenance request: who asks, the operations, and the request.
struct Call<'a> {
    state: &'a AppState,
    ops: Maintenance<'a>,
    actor: Actor,
    req: Request<Incoming>,
    /// `/v1/maintenance` and the rest of the path, as routed.
    path: String,
}

impl Call<'_> {
    fn not_found(&self) -> ApiError {
        ApiError::not_found(&self.path)
    }
}

/// Routes `rest` (the path after `/v1/maintenance`) for the session's staff
/// member, to one function per area.
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
    let c = Call {
        state,
        ops,
        actor,
        req,
        path: format!("/v1/maintenance{rest}"),
    };
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["staff", tail @ ..] => staff(c, tail).await,
        ["permission-identities", tail @ ..] => permission_identities(c, tail).await,
        ["agencies", tail @ ..] => agencies(c, tail).await,
        _ => Err(c.not_found()),
    }
}

/// Staff (R12–R16): list, add, search, edit, remove, reset a password.
async fn staff(c: Call<'_>, tail: &[&str]) -> Result<Response<Full<Bytes>>, ApiError> {
    let method = c.req.method().clone();
    match (&method, tail) {
        (&Method::GET, []) => ok(&StaffList {
            staff: c.ops.list_staff(&c.actor).await?,
        }),
        (&Method::POST, []) => {
            let b: AddStaff = read_json(c.state, c.req).await?;
            let person = person_key("", b.id_type, &b.id_number)?;
            c.ops
                .add_staff(
                    &c.actor,
                    &b.name,
                    &person,
                    b.identity_type,
                    b.permission_identities,
                )
                .await?;
            ok(&StaffAdded {
                added: person.masked(),
            })
        }
        (&Method::POST, ["search"]) => {
            let b: PersonSearch = read_json(c.state, c.req).await?;
            let person = person_key("", b.id_type, &b.id_number)?;
            let name = c.ops.search_person(&c.actor, &b.name, &person).await?;
            ok(&PersonFound {
                found: FoundPerson {
                    name,
                    person: person.masked(),
                    real_name_verified: true,
                },
            })
        }
        (&Method::PATCH, [person]) => {
            let person = path_person(person)?;
            let b: EditStaff = read_json(c.state, c.req).await?;
            let change = StaffChange {
                identity_type: b.identity_type,
                add_permission_identities: b.add_permission_identities,
                remove_permission_identities: b.remove_permission_identities,
            };
            let s = c.ops.edit_staff(&c.actor, &person, change).await?;
            ok(&StaffRoles {
                identity_type: s.identity_type,
                permission_identities: s.permission_identities,
            })
        }
        (&Method::DELETE, [person]) => {
            let person = path_person(person)?;
            c.ops.remove_staff(&c.actor, &person).await?;
            ok(&StaffRemoved {
                removed: person.masked(),
            })
        }
        (&Method::POST, [person, "reset-password"]) => {
            let person = path_person(person)?;
            let otp = c.ops.reset_password(&c.actor, &person).await?;
            ok(&PasswordReset {
                one_time_password: otp,
                must_change_at_next_login: true,
            })
        }
        _ => Err(c.not_found()),
    }
}

/// Permission identities (R14): list, define, redefine, delete.
async fn permission_identities(
    c: Call<'_>,
    tail: &[&str],
) -> Result<Response<Full<Bytes>>, ApiError> {
    let query = c.req.uri().query().unwrap_or_default().to_owned();
    let method = c.req.method().clone();
    match (&method, tail) {
        (&Method::GET, []) => ok(&PermissionIdentityList {
            permission_identities: c.ops.list_permission_identities(&c.actor).await?,
        }),
        (&Method::POST, []) => {
            let b: PermissionIdentityBody = read_json(c.state, c.req).await?;
            let id =
                b.id.clone()
                    .ok_or_else(|| ApiError::invalid("id", "missing field `id`"))?;
            ok(&c
                .ops
                .put_permission_identity(&c.actor, spec(id, b), true)
                .await?)
        }
        (&Method::PUT, [id]) => {
            let id = permission_identity_id(id)?;
            let b: PermissionIdentityBody = read_json(c.state, c.req).await?;
            if b.id.as_ref().is_some_and(|body_id| *body_id != id) {
                return Err(ApiError::invalid("id", "differs from the id in the path"));
            }
            ok(&c
                .ops
                .put_permission_identity(&c.actor, spec(id, b), false)
                .await?)
        }
        (&Method::DELETE, [id]) => {
            let id = permission_identity_id(id)?;
            let detach = query.split('&').any(|kv| kv == "detach=true");
            let detached = c
                .ops
                .delete_permission_identity(&c.actor, &id, detach)
                .await?;
            ok(&PermissionIdentityDeleted {
                deleted: id.as_str().to_owned(),
                detached_from: detached,
            })
        }
        _ => Err(c.not_found()),
    }
}

/// Agency recognition (R17): recognize, cancel.
async fn agencies(c: Call<'_>, tail: &[&str]) -> Result<Response<Full<Bytes>>, ApiError> {
    let method = c.req.method().clone();
    match (&method, tail) {
        (&Method::POST, []) => {
            let b: Recognize = read_json(c.state, c.req).await?;
            c.ops
                .recognize_agency(&c.actor, &b.agency, &b.agreement_password)
                .await?;
            ok(&AgencyRecognized {
                recognized: b.agency.as_str().to_owned(),
            })
        }
        (&Method::DELETE, [agency]) => {
            let agency = credit_code("agency", agency)?;
            c.ops.cancel_agency(&c.actor, &agency).await?;
            ok(&AgencyCancelled {
                cancelled: agency.as_str().to_owned(),
            })
        }
        _ => Err(c.not_found()),
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

/// `GET /v1/functions`: the catalogue the permission identities draw on.
pub fn functions(state: &AppState) -> Result<FunctionList, ApiError> {
    let all = state.engine.store().read()?.all::<FunctionRecord>()?;
    let functions = all
        .into_iter()
        .map(|(code, f)| FunctionEntry {
            code,
            name: f.name,
            description: f.description,
        })
        .collect();
    Ok(FunctionList { functions })
}
