//! The 200 answers of `/v1/maintenance/…` and `/v1/functions`, as typed
//! wire structs so `/openapi.json` documents exactly what is sent. They
//! were once `json!` objects (serde_json with `preserve_order`: keys in the
//! order written), so each struct's fields keep that order and the bytes
//! stay as they were.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::flows::maintenance::{OneTimePassword, PermissionIdentityView, StaffView};
use crate::store::IdentityType;

#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffList {
    pub staff: Vec<StaffView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffAdded {
    /// The person key, masked.
    pub added: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PersonFound {
    pub found: FoundPerson,
}

/// Only real-name-verified people are found (R13), hence the constant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FoundPerson {
    pub name: String,
    /// The person key, masked.
    pub person: String,
    pub real_name_verified: bool,
}

/// A staff member's roles after an edit.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffRoles {
    pub identity_type: IdentityType,
    pub permission_identities: BTreeSet<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffRemoved {
    /// The person key, masked.
    pub removed: String,
}

/// For the calling system to deliver by SMS; the resetter's page must show
/// only `deliver_to_masked`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PasswordReset {
    pub one_time_password: OneTimePassword,
    pub must_change_at_next_login: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PermissionIdentityList {
    pub permission_identities: Vec<PermissionIdentityView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PermissionIdentityDeleted {
    pub deleted: String,
    /// How many staff members held it (`?detach=true` removed it from them).
    pub detached_from: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgencyRecognized {
    /// The agency's credit code.
    pub recognized: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgencyCancelled {
    /// The agency's credit code.
    pub cancelled: String,
}

/// `GET /v1/functions`: the business-function catalogue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FunctionList {
    pub functions: Vec<FunctionEntry>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FunctionEntry {
    pub code: String,
    pub name: String,
    pub description: String,
}
