//! Quick login (R4): the enterprise password and a login identity, then an
//! SMS code to that staff member's real-name phone.

use super::credentials::Delivery;
use super::steps::{conclude, credentials_first, forbidden};
use super::{invalid, FlowError, IssuedCode, Login, PersonalFactor};
use crate::authn::lockout::LockKey;
use crate::authn::sessions::SessionGrant;
use crate::domain::{Action, EntityKind, Factor, StaffKey};
use crate::ids::{CreditCode, PersonKey};
use crate::store::{
    owned_key, ChallengePurpose, EnterpriseRecord, FlowKind, IdentityType, StaffRecord,
};

/// The subject the quick login's code is bound to: this flow and the named
/// staff member.
fn quick_subject(flow_key: &str, staff_key: &StaffKey) -> String {
    format!("flow:{flow_key}:0:{staff_key}")
}

impl Login {
    /// R4 step 1: enterprise password + login identity; sends the SMS code.
    pub async fn quick_code(
        &self,
        account: &str,
        password: String,
        identity_type: IdentityType,
        person: PersonKey,
    ) -> Result<(String, IssuedCode), FlowError> {
        let (code, _, factors, failure) = self
            .account_password(
                account,
                password,
                LockKey::Enterprise,
                Factor::EnterprisePassword,
                |r: &EnterpriseRecord| r.password_hash.clone(),
            )
            .await?;
        // An account that resolved to no enterprise keeps what was typed:
        // the staff member it names is asked about (and recorded) like a
        // real one, and is found in no enterprise.
        let staff_key = CreditCode::parse(&code).ok().map(|enterprise| StaffKey {
            enterprise,
            person: person.clone(),
        });
        let staff_id = staff_key
            .as_ref()
            .map_or_else(|| owned_key(&code, &person.key()), StaffKey::to_string);
        let staff = match &staff_key {
            Some(k) => self
                .read()?
                .get::<StaffRecord>(&k.to_string())?
                .filter(|s| s.identity_type == identity_type)
                .map(|s| (k.clone(), s)),
            None => None,
        };
        let verdict = self
            .pre_check(
                "quick_code",
                EntityKind::Staff.uid(&staff_id),
                Action::LoginQuick,
                EntityKind::Enterprise.uid(&code),
                &factors,
                failure.as_ref(),
            )
            .await?;
        credentials_first(failure)?;
        if let Some(e) = forbidden(&verdict) {
            return Err(e);
        }
        let Some((staff_key, staff)) = staff else {
            return Err(invalid(
                "id_number",
                "this enterprise has no staff member with that identity type and ID",
            ));
        };
        let phone = self.phone_of(&staff_key)?;
        let (flow, key) = self
            .new_flow(
                FlowKind::Quick,
                code,
                factors,
                Some((staff_key.clone(), staff.credential_epoch)),
            )
            .await?;
        let issued = self
            .issue_code(
                ChallengePurpose::Login,
                quick_subject(&key, &staff_key),
                Delivery::Sms(phone),
            )
            .await?;
        Ok((flow, issued))
    }

    /// R4 step 2: the SMS code.
    pub async fn quick_complete(
        &self,
        flow: &str,
        challenge: String,
        code: String,
    ) -> Result<SessionGrant, FlowError> {
        let (key, rec) = self.flow(flow, FlowKind::Quick)?;
        let staff_key = rec.staff.clone().ok_or(FlowError::FlowExpired)?;
        let staff_id = staff_key.to_string();
        // Read before the code is checked: the session is bound to the
        // credentials as they were when this login proved them.
        let staff = self.read()?.get::<StaffRecord>(&staff_id)?;
        let mut factors = rec.factors.clone();
        let failure = self
            .personal_factor(
                // Not consulted: the factor is a code, not a password.
                LockKey::Staff(staff_key.clone()),
                None,
                PersonalFactor::Sms { challenge, code },
                quick_subject(&key, &staff_key),
                &mut factors,
            )
            .await?;
        let verdict = self
            .decide(
                "quick",
                EntityKind::Staff.uid(&staff_id),
                Action::LoginQuick,
                EntityKind::Enterprise.uid(&rec.account),
                &factors,
                None,
                failure.as_ref(),
                None,
            )
            .await?;
        conclude(&verdict, failure)?;
        let staff = staff.ok_or(crate::authn::session::SessionError::PrincipalGone)?;
        // The code was sent to the staff member as they were then: removed
        // and added again, or with new credentials, they start again.
        if staff.credential_epoch != rec.staff_epoch {
            return Err(FlowError::FlowExpired);
        }
        self.take_flow(key, &rec).await?;
        self.open_staff_session(staff_key, &staff).await
    }
}
