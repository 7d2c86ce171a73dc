//! The login-state records: sessions, challenges, login flows, lockouts and
//! code rate windows. Short-lived state, not identities: their tables are
//! not in `ALL_TABLES`, so they do not count for `Store::is_empty`, and no
//! decision reads them (`DECISION_INPUT` is false). The logic over them is
//! in `authn` and `flows`; they live here because the store writes them.
//!
//! Every typed field (the enums, a `StaffKey`, a `CreditCode`) has as its
//! serde form the string the field held when it was a `String`, so files
//! written before read unchanged (see the tests).

use std::collections::BTreeSet;

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::Record;
use crate::domain::{Factor, PrincipalKind, StaffKey};
use crate::ids::CreditCode;

pub(super) const AUTHN_TABLES: [TableDefinition<'static, &'static str, &'static [u8]>; 5] = [
    SessionRecord::TABLE,
    ChallengeRecord::TABLE,
    LoginFlowRecord::TABLE,
    LockoutRecord::TABLE,
    CodeRateRecord::TABLE,
];

/// A login session, keyed by the SHA-256 (hex) of its token: the token itself
/// is never stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Cedar entity type of the principal.
    pub principal_type: PrincipalKind,
    /// Store key (and Cedar entity id) of the principal.
    pub principal_id: String,
    /// The client enterprise an agent acts for (R8).
    #[serde(default)]
    pub acting_for: Option<CreditCode>,
    pub created_ms: u64,
    pub last_used_ms: u64,
    /// Absolute expiry, ms since the Unix epoch.
    pub expires_ms: u64,
    /// A one-time password must be changed before anything else (R12).
    #[serde(default)]
    pub password_change_required: bool,
    /// The principal's credential epoch when the session was opened: the
    /// session works only while the principal's record still has it.
    #[serde(default)]
    pub credential_epoch: u64,
    /// For an agent acting for a client: the epoch of the recognition the
    /// session was opened under.
    #[serde(default)]
    pub recognition_epoch: u64,
}

impl Record for SessionRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("sessions");
    const DECISION_INPUT: bool = false;
}

/// What a challenge's code is for: a code issued for one purpose is
/// refused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengePurpose {
    /// An SMS code that logs a staff or agent staff member in.
    Login,
    /// A captcha for a natural-person login (R7).
    Captcha,
    /// An SMS code that recovers a forgotten password (R11).
    Reset,
}

impl ChallengePurpose {
    /// The stored (and `/metrics` label) form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Captcha => "captcha",
            Self::Reset => "reset",
        }
    }
}

/// An SMS code or captcha the service issued, keyed by challenge id. Only a
/// hash of the code is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeRecord {
    pub purpose: ChallengePurpose,
    /// What the code is bound to (a login flow and staff member, an account).
    pub subject: String,
    pub code_hash: String,
    pub expires_ms: u64,
    /// Wrong attempts so far.
    pub failures: u32,
    pub used: bool,
}

impl Record for ChallengeRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("challenges");
    const DECISION_INPUT: bool = false;
}

/// The login a flow carries: a step continues only a flow of its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// Enterprise normal login (R2): staff selection, then a staff member.
    Enterprise,
    /// Quick login (R4): the SMS code to the named staff member.
    Quick,
    /// Agency login (R8): an agent staff member, then a client.
    Agency,
}

/// A login in progress (normal, quick or agency login), keyed by the SHA-256
/// (hex) of its flow id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginFlowRecord {
    pub kind: FlowKind,
    /// Credit code of the enterprise or agency.
    pub account: String,
    /// Factors verified so far.
    pub factors: BTreeSet<Factor>,
    /// The staff member (quick login) or agent staff member (agency login,
    /// after step 2).
    #[serde(default)]
    pub staff: Option<StaffKey>,
    /// Bumped by cancel: codes issued before it no longer count.
    #[serde(default)]
    pub generation: u32,
    /// The credential epoch of `staff` when an earlier step verified their
    /// credentials (agency login step 2): the session is bound to it.
    #[serde(default)]
    pub staff_epoch: u64,
    pub expires_ms: u64,
}

impl Record for LoginFlowRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("login_flows");
    const DECISION_INPUT: bool = false;
}

/// Consecutive credential failures of one account or agreement password,
/// keyed `kind:id` as typed (so unknown accounts lock exactly like real
/// ones; `authn::lockout::LockKey` builds the key).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LockoutRecord {
    /// Failures since the last success or lock. Attempts still being
    /// verified are not failures (yet): they are `in_flight`. Records
    /// written before `in_flight` existed counted them here, which only
    /// errs towards a lock.
    pub consecutive_failures: u32,
    /// How many times it has been locked since the last success: the wait
    /// doubles each time.
    pub locks: u32,
    pub locked_until_ms: u64,
    /// The latest failure, ms since the Unix epoch: the sweeper keeps the
    /// record until it has been quiet for the longest lock. 0 in records
    /// written before the field existed.
    #[serde(default)]
    pub last_failure_ms: u64,
    /// Attempts reserved and still being verified, each by its deadline
    /// (ms since the Unix epoch), after which it is presumed dead (its
    /// server crashed mid-verify) and counts as a failure; see
    /// `authn::lockout::reserve`. Left out when empty, so a record with none
    /// is written byte for byte as before the field existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<u64>,
}

impl Record for LockoutRecord {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("lockouts");
    const DECISION_INPUT: bool = false;
}

/// Codes issued against one quota in the current window, keyed by the
/// quota: a phone number (SMS codes) or `captcha:<person key>` (captchas
/// for one natural-person account).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRateRecord {
    pub window_start_ms: u64,
    pub count: u32,
}

impl Record for CodeRateRecord {
    // Named when only SMS codes were counted; renaming would orphan the
    // windows in existing files.
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
        TableDefinition::new("sms_rate");
    const DECISION_INPUT: bool = false;
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Records as the previous version wrote them (its fields were strings).
    pub(crate) const SESSION_JSON: &str = r#"{"principal_type":"AgentStaff","principal_id":"91210100MA0AGT004B/resident_id:210105199303031080","acting_for":"91210102MA0TAX001F","created_ms":1,"last_used_ms":2,"expires_ms":3,"password_change_required":false,"credential_epoch":4,"recognition_epoch":5}"#;
    pub(crate) const FLOW_JSON: &str = r#"{"kind":"agency","account":"91210100MA0AGT004B","factors":["agency_password","personal_password"],"staff":"91210100MA0AGT004B/resident_id:210105199303031080","generation":1,"staff_epoch":4,"expires_ms":9}"#;
    pub(crate) const CHALLENGE_JSON: &str = r#"{"purpose":"reset","subject":"Person:resident_id:210106199102140105","code_hash":"ab","expires_ms":7,"failures":1,"used":false}"#;

    /// A lockout record as the previous version wrote it (no `in_flight`).
    pub(crate) const LOCKOUT_JSON: &str =
        r#"{"consecutive_failures":3,"locks":2,"locked_until_ms":120000,"last_failure_ms":60000}"#;

    fn round_trip<R: Record>(json: &str) -> R {
        let rec: R = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&rec).unwrap(), json);
        rec
    }

    #[test]
    fn a_stored_session_reads_and_writes_byte_identical() {
        let rec: SessionRecord = round_trip(SESSION_JSON);
        assert_eq!(rec.principal_type, PrincipalKind::AgentStaff);
        for kind in ["Staff", "Person", "Enterprise"] {
            let json = SESSION_JSON.replace("AgentStaff", kind);
            round_trip::<SessionRecord>(&json);
        }
    }

    #[test]
    fn a_stored_login_flow_reads_and_writes_byte_identical() {
        let rec: LoginFlowRecord = round_trip(FLOW_JSON);
        assert_eq!(rec.kind, FlowKind::Agency);
        assert!(rec.factors.contains(&Factor::PersonalPassword));
        for kind in ["enterprise", "quick"] {
            round_trip::<LoginFlowRecord>(&FLOW_JSON.replace("\"agency\"", &format!("\"{kind}\"")));
        }
        let unordered = FLOW_JSON.replace(
            r#"["agency_password","personal_password"]"#,
            r#"["sms_otp","enterprise_password"]"#,
        );
        let rec: LoginFlowRecord = serde_json::from_str(&unordered).unwrap();
        let again = serde_json::to_string(&rec).unwrap();
        assert!(
            again.contains(r#""factors":["enterprise_password","sms_otp"]"#),
            "{again}"
        );
    }

    #[test]
    fn a_stored_challenge_reads_and_writes_byte_identical() {
        let rec: ChallengeRecord = round_trip(CHALLENGE_JSON);
        assert_eq!(rec.purpose, ChallengePurpose::Reset);
        for purpose in ["login", "captcha"] {
            let json = CHALLENGE_JSON.replace("\"reset\"", &format!("\"{purpose}\""));
            round_trip::<ChallengeRecord>(&json);
        }
    }

    #[test]
    fn a_stored_lockout_reads_and_writes_byte_identical() {
        let rec: LockoutRecord = round_trip(LOCKOUT_JSON);
        assert_eq!((rec.consecutive_failures, rec.locks), (3, 2));
        assert!(rec.in_flight.is_empty());
        // Attempts in flight are written, each by its deadline, and read back.
        let busy = LockoutRecord {
            in_flight: vec![7, 9],
            ..rec
        };
        let json = serde_json::to_string(&busy).unwrap();
        assert!(json.ends_with(r#","in_flight":[7,9]}"#), "{json}");
        round_trip::<LockoutRecord>(&json);
    }
}
