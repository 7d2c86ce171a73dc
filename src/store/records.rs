//! The records of the identity store and the keys they are stored under.
//!
//! Keys are the natural keys of the tax domain. A record owned by an
//! enterprise or agency is keyed `owner/local`, so that all of one owner's
//! records are one range scan ([`super::StoreReader::children`]).

use std::collections::BTreeSet;

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::Record;
use crate::ids::{CreditCode, Phone, TaxpayerId};

pub(super) const ALL_TABLES: [TableDefinition<'static, &'static str, &'static [u8]>; 10] = [
    EnterpriseRecord::TABLE,
    CoreOfficersRecord::TABLE,
    PersonRecord::TABLE,
    StaffRecord::TABLE,
    PermissionIdentityRecord::TABLE,
    FunctionRecord::TABLE,
    AgencyRecord::TABLE,
    AgentStaffRecord::TABLE,
    RecognitionRecord::TABLE,
    ClientOfRecord::TABLE,
];

/// The key of a record owned by an enterprise or agency: `owner/local`.
pub fn owned_key(owner: &str, local: &str) -> String {
    format!("{owner}/{local}")
}

/// The owner and local part of an [`owned_key`]. (Staff and agent staff
/// keys have a typed form, `domain::StaffKey`.)
pub fn split_owned_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
}

/// 纳税人类别.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayerCategory {
    Ordinary,
    /// 纯社保户: pays social insurance fees only (R6).
    SocialSecurityOnly,
}

impl PayerCategory {
    pub fn code(self) -> &'static str {
        match self {
            Self::Ordinary => "ordinary",
            Self::SocialSecurityOnly => "social_security_only",
        }
    }
}

/// 身份类型 of a staff member within an enterprise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityType {
    /// 法定代表人
    LegalRep,
    /// 财务负责人
    FinanceHead,
    /// 办税员
    TaxClerk,
    /// 购票员
    InvoiceBuyer,
    /// 涉税服务人员
    TaxAgentStaff,
    /// 其他人员
    Other,
}

impl IdentityType {
    pub fn code(self) -> &'static str {
        match self {
            Self::LegalRep => "legal_rep",
            Self::FinanceHead => "finance_head",
            Self::TaxClerk => "tax_clerk",
            Self::InvoiceBuyer => "invoice_buyer",
            Self::TaxAgentStaff => "tax_agent_staff",
            Self::Other => "other",
        }
    }
}

/// 企业 (taxpayer), keyed by credit code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnterpriseRecord {
    pub credit_code: CreditCode,
    #[serde(default)]
    pub taxpayer_id: Option<TaxpayerId>,
    pub name: String,
    pub category: PayerCategory,
    /// argon2id PHC string of the enterprise account password.
    pub password_hash: String,
    /// A normal login has synced the legal rep and finance head (R3).
    #[serde(default)]
    pub staff_synced: bool,
    /// Credential epoch: a session opened under another value has ended
    /// (see [`super::StoreWriter::next_epoch`]). 0 in records written before
    /// the field existed, and in the sessions opened under them.
    #[serde(default)]
    pub credential_epoch: u64,
}

impl Record for EnterpriseRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("enterprises");
}

/// The legal rep and finance head the core tax system (金税三期) has on file
/// for an enterprise, keyed by credit code. Sync staff (同步办税人) reads it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CoreOfficersRecord {
    #[serde(default)]
    pub legal_rep: Option<CoreOfficer>,
    #[serde(default)]
    pub finance_head: Option<CoreOfficer>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoreOfficer {
    pub name: String,
    /// Person key (`id_type:id_number`).
    pub person: String,
}

impl Record for CoreOfficersRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("core_officers");
}

/// A person, keyed by person key (`id_type:id_number`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonRecord {
    pub name: String,
    /// 实名采集 completed.
    #[serde(default)]
    pub real_name_verified: bool,
    /// The phone recorded at real-name collection (实名手机号).
    #[serde(default)]
    pub phone: Option<Phone>,
    /// Natural-person (自然人) login password, if the person registered one.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Credential epoch: a session opened under another value has ended
    /// (see [`super::StoreWriter::next_epoch`]). 0 in records written before
    /// the field existed, and in the sessions opened under them.
    #[serde(default)]
    pub credential_epoch: u64,
}

impl Record for PersonRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("persons");
}

/// 办税人员: a person within an enterprise, keyed `credit_code/person_key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffRecord {
    pub identity_type: IdentityType,
    /// Ids of the enterprise's permission identities this staff member holds.
    #[serde(default)]
    pub permission_identities: BTreeSet<String>,
    /// Personal login password (个人密码), if set.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// A one-time password was issued and must be changed (R12).
    #[serde(default)]
    pub password_change_required: bool,
    /// Credential epoch: a session opened under another value has ended
    /// (see [`super::StoreWriter::next_epoch`]). 0 in records written before
    /// the field existed, and in the sessions opened under them.
    #[serde(default)]
    pub credential_epoch: u64,
}

impl Record for StaffRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("staff");
}

/// 权限身份: a custom role of an enterprise, keyed `credit_code/id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PermissionIdentityRecord {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Codes of the business functions it grants.
    pub functions: BTreeSet<String>,
}

impl Record for PermissionIdentityRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("permission_identities");
}

/// 业务功能: an entry of the business-function catalogue, keyed by its code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

impl Record for FunctionRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("functions");
}

/// 代理机构, keyed by credit code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgencyRecord {
    pub credit_code: CreditCode,
    #[serde(default)]
    pub taxpayer_id: Option<TaxpayerId>,
    pub name: String,
    pub password_hash: String,
}

impl Record for AgencyRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("agencies");
}

/// An agency's staff member, keyed `agency_credit_code/person_key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStaffRecord {
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub password_change_required: bool,
    /// Credential epoch: a session opened under another value has ended
    /// (see [`super::StoreWriter::next_epoch`]). 0 in records written before
    /// the field existed, and in the sessions opened under them.
    #[serde(default)]
    pub credential_epoch: u64,
}

impl Record for AgentStaffRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("agent_staff");
}

/// An enterprise's recognition of an agency as its tax agent (代理机构认定),
/// keyed `enterprise_credit_code/agency_credit_code`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecognitionRecord {
    /// argon2id PHC string of the agreement password (协议密码).
    pub agreement_password_hash: String,
    /// When it was recognized, ms since the Unix epoch.
    pub recognized_at_ms: u64,
    /// Epoch of this recognition: an agent session acting for the
    /// enterprise under another value has ended (recognized again, or
    /// cancelled and recognized anew).
    #[serde(default)]
    pub epoch: u64,
}

impl Record for RecognitionRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("recognitions");
}

/// The reverse of [`RecognitionRecord`], keyed
/// `agency_credit_code/enterprise_credit_code`: an agency's clients.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientOfRecord {}

impl Record for ClientOfRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("clients_of_agency");
}

/// The workday calendar of one year (工作日历), keyed by the year
/// (`"2026"`): the days whose status differs from the Monday–Friday rule,
/// as the State Council's notice sets them each year and the bureau's feed
/// sends them. Not an identity (it does not count for "store is empty")
/// and not an entity input: decisions read it into the context, which the
/// built-entities cache does not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarYearRecord {
    /// 调休上班: weekend days that are workdays (`YYYY-MM-DD`).
    #[serde(default)]
    pub workdays: BTreeSet<String>,
    /// 法定节假日: weekdays that are not (`YYYY-MM-DD`).
    #[serde(default)]
    pub holidays: BTreeSet<String>,
}

impl Record for CalendarYearRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("calendar_years");
    const DECISION_INPUT: bool = false;
}
