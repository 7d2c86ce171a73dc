//! Quick login (R4): the enterprise password and a login identity, then an
//! SMS code to that staff member's real-name phone.

use super::credentials::Delivery;
use super::steps::{conclude, credentials_first, forbidden};
use super::{invalid, FlowError, IssuedCode, Login, PersonalFactor};
use crate::authn::sessions::SessionGrant;
use crate::decision::uid;
use crate::ids::PersonKey;
use crate::store::{EnterpriseRecord, IdentityType, StaffRecord};

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
                "enterprise",
                "enterprise_password",
                |r: &EnterpriseRecord| r.password_hash.clone(),
            )
            .await?;
        let staff_key = format!("{code}/{}", person.key());
        let staff = self
            .read()?
            .get::<StaffRecord>(&staff_key)?
            .filter(|s| s.identity_type == identity_type);
        let verdict = self
            .pre_check(
                "quick_code",
                uid("Staff", &staff_key),
                "loginQuick",
                uid("Enterprise", &code),
                &factors,
                failure.as_ref(),
            )
            .await?;
        credentials_first(failure)?;
        if let Some(e) = forbidden(&verdict) {
            return Err(e);
        }
        let Some(staff) = staff else {
            return Err(invalid(
                "id_number",
                "this enterprise has no staff member with that identity type and ID",
            ));
        };
        let phone = self.phone_of(&staff_key)?;
        let (flow, key) = self
            .new_flow(
                "quick",
                code,
                factors,
                Some((staff_key.clone(), staff.credential_epoch)),
            )
            .await?;
        let issued = self
            .issue_code(
                "login",
                format!("flow:{key}:0:{staff_key}"),
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
        let (key, rec) = self.flow(flow, "quick")?;
        let staff_key = rec.staff.clone().ok_or(FlowError::FlowExpired)?;
        // Read before the code is checked: the session is bound to the
        // credentials as they were when this login proved them.
        let staff = self.read()?.get::<StaffRecord>(&staff_key)?;
        let mut factors = rec.factors.clone();
        let failure = self
            .personal_factor(
                String::new(),
                None,
                PersonalFactor::Sms { challenge, code },
                format!("flow:{key}:0:{staff_key}"),
                &mut factors,
            )
            .await?;
        let verdict = self
            .decide(
                "quick",
                uid("Staff", &staff_key),
                "loginQuick",
                uid("Enterprise", &rec.account),
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
        self.take_flow(key).await?;
        self.open_staff_session(staff_key, &staff).await
    }
}
