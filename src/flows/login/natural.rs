//! Natural-person login (R7): ID number, personal password and a captcha
//! issued for that account.

use std::collections::BTreeSet;

use super::credentials::Delivery;
use super::flow::WRONG_ACCOUNT;
use super::{FlowError, IssuedCode, Login};
use crate::authn::lockout::LockKey;
use crate::authn::sessions::{SessionGrant, SessionSubject};
use crate::domain::{Action, EntityKind, Factor, PrincipalKind};
use crate::ids::PersonKey;
use crate::store::{ChallengePurpose, PersonRecord};

/// The subject a captcha is bound to: the account it was requested for, so
/// one solved for one account is refused for another.
pub(super) fn captcha_subject(person: &PersonKey) -> String {
    format!("{}:{}", PrincipalKind::Person, person.key())
}

impl Login {
    /// R7: a captcha for the natural-person login of `person`, good for
    /// that account only and counted against its quota. Whether the person
    /// exists is not looked at: an unknown account gets the same answer.
    pub async fn captcha(&self, person: PersonKey) -> Result<IssuedCode, FlowError> {
        self.issue_code(
            ChallengePurpose::Captcha,
            captcha_subject(&person),
            Delivery::Captcha(person),
        )
        .await
    }

    /// R7: natural-person password + captcha.
    pub async fn natural_person(
        &self,
        person: PersonKey,
        password: String,
        challenge: &str,
        code: &str,
    ) -> Result<SessionGrant, FlowError> {
        let key = person.key();
        let mut factors = BTreeSet::new();
        let captcha = self
            .check_code(
                challenge,
                code,
                ChallengePurpose::Captcha,
                &captcha_subject(&person),
            )
            .await?;
        if captcha.is_none() {
            factors.insert(Factor::Captcha);
        }
        let rec = self.read()?.get::<PersonRecord>(&key)?;
        let failure = match captcha {
            Some(f) => Some(f),
            None => {
                self.guarded_verify(
                    LockKey::Person(person.clone()),
                    password,
                    rec.as_ref().and_then(|p| p.password_hash.clone()),
                    WRONG_ACCOUNT,
                )
                .await?
            }
        };
        if failure.is_none() {
            factors.insert(Factor::PersonalPassword);
        }
        self.own_login(
            "natural_person",
            Action::LoginNaturalPerson,
            EntityKind::Person,
            &key,
            &factors,
            failure,
        )
        .await?;
        let subject = SessionSubject {
            principal_type: PrincipalKind::Person,
            credential_epoch: rec.map_or(0, |p| p.credential_epoch),
            principal_id: key,
            acting_for: None,
        };
        self.open_session(subject, true, false, "home").await
    }
}
