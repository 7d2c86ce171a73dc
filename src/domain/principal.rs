//! [`PrincipalKind`]: who a session belongs to, and [`Factor`]: what a step
//! verified before Cedar is asked (`context.factors`). Both are stored in
//! the login-state records, so their serde form is exactly the string those
//! records have always held.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::EntityKind;

/// The entity type of a session's principal: the four kinds of identity
/// that can log in. Stored as the Cedar type name (`"Staff"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PrincipalKind {
    Staff,
    AgentStaff,
    Person,
    /// A social-security-only payer, logged in at the account step (R6).
    Enterprise,
}

impl PrincipalKind {
    pub const fn entity_kind(self) -> EntityKind {
        match self {
            Self::Staff => EntityKind::Staff,
            Self::AgentStaff => EntityKind::AgentStaff,
            Self::Person => EntityKind::Person,
            Self::Enterprise => EntityKind::Enterprise,
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.entity_kind().as_str()
    }

    /// `Etax::<kind>::"<id>"`.
    pub fn uid(self, id: &str) -> cedar_policy::EntityUid {
        self.entity_kind().uid(id)
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential a step verified, as policies name it in `context.factors`.
///
/// Declared in the alphabetical order of the strings: a `BTreeSet<Factor>`
/// then serializes in the order a `BTreeSet<String>` did, so stored login
/// flows and the contexts in the decision log (whose hash covers them) read
/// byte for byte as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    /// The agency account's password (R8 step 1).
    AgencyPassword,
    /// The agreement password of a client's recognition of the agency (R8 step 3).
    AgreementPassword,
    /// A captcha issued for a natural-person account (R7).
    Captcha,
    /// The enterprise account's password (R2, R4, R6).
    EnterprisePassword,
    /// 个人密码 of a staff member, agent staff member or natural person.
    PersonalPassword,
    /// A live session (setting one's own password).
    Session,
    /// A code sent by SMS to the real-name phone.
    SmsOtp,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn stored_principal_kinds_read_and_write_as_before() {
        for text in [
            r#""Staff""#,
            r#""AgentStaff""#,
            r#""Person""#,
            r#""Enterprise""#,
        ] {
            let kind: PrincipalKind = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&kind).unwrap(), text);
            assert_eq!(format!("\"{kind}\""), text);
        }
        assert!(serde_json::from_str::<PrincipalKind>(r#""Function""#).is_err());
    }

    #[test]
    fn stored_factor_sets_read_and_write_byte_identical() {
        // Today's stored form: a BTreeSet<String>, so sorted as strings.
        let stored = r#"["agency_password","agreement_password","captcha","enterprise_password","personal_password","session","sms_otp"]"#;
        let factors: BTreeSet<Factor> = serde_json::from_str(stored).unwrap();
        assert_eq!(factors.len(), 7);
        assert_eq!(serde_json::to_string(&factors).unwrap(), stored);
        let as_strings: BTreeSet<String> = serde_json::from_str(stored).unwrap();
        let pair = r#"["sms_otp","enterprise_password"]"#;
        let typed: BTreeSet<Factor> = serde_json::from_str(pair).unwrap();
        let strings: BTreeSet<String> = serde_json::from_str(pair).unwrap();
        assert_eq!(
            serde_json::to_string(&typed).unwrap(),
            serde_json::to_string(&strings).unwrap()
        );
        assert_eq!(as_strings.len(), factors.len());
    }
}
