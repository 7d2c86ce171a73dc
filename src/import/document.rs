//! The import document's wire types: one JSON object whose sections are
//! arrays of records. The importer never holds a whole document: it reads
//! one section at a time, one record at a time ([`super::scan`]); the
//! generator ([`crate::gen`]) writes the same types one record at a time.

use serde::{Deserialize, Serialize};

use crate::store::{IdentityType, PayerCategory};

/// The sections of an import document, in the order they are checked and
/// written (a record may refer to records of earlier sections, wherever
/// they stand in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Functions,
    Persons,
    Enterprises,
    PermissionIdentities,
    Staff,
    Agencies,
    AgentStaff,
    Recognitions,
}

impl Section {
    pub const ALL: [Section; 8] = [
        Self::Functions,
        Self::Persons,
        Self::Enterprises,
        Self::PermissionIdentities,
        Self::Staff,
        Self::Agencies,
        Self::AgentStaff,
        Self::Recognitions,
    ];

    /// The section's key in the document, and the record name in failures
    /// (`staff[3]`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Functions => "functions",
            Self::Persons => "persons",
            Self::Enterprises => "enterprises",
            Self::PermissionIdentities => "permission_identities",
            Self::Staff => "staff",
            Self::Agencies => "agencies",
            Self::AgentStaff => "agent_staff",
            Self::Recognitions => "recognitions",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionIn {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PersonRef {
    pub id_type: String,
    pub id_number: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PersonIn {
    pub id_type: String,
    pub id_number: String,
    pub name: String,
    #[serde(default)]
    pub real_name_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OfficerIn {
    pub name: String,
    pub id_type: String,
    pub id_number: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseIn {
    pub credit_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxpayer_id: Option<String>,
    pub name: String,
    pub category: PayerCategory,
    #[serde(default)]
    pub staff_synced: bool,
    /// What the core tax system (金税三期) has on file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_legal_rep: Option<OfficerIn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_finance_head: Option<OfficerIn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionIdentityIn {
    pub enterprise: String,
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub functions: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaffIn {
    pub enterprise: String,
    pub person: PersonRef,
    pub identity_type: IdentityType,
    #[serde(default)]
    pub permission_identities: Vec<String>,
    #[serde(default)]
    pub password_change_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyIn {
    pub credit_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxpayer_id: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentStaffIn {
    pub agency: String,
    pub person: PersonRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// The agreement password in clear (hashed by the import) or, from another
/// system or the generator, as an argon2id PHC string; exactly one.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecognitionIn {
    pub enterprise: String,
    pub agency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_password_hash: Option<String>,
}
