//! Enterprise normal login (R2, R3, R6): the enterprise account and
//! password, then a staff member by personal password or SMS code; a
//! social-security-only payer is logged in at the account step.

use super::members::{choices, Picked, STAFF};
use super::{
    invalid, EnterpriseLoginOutcome, FlowError, IssuedCode, Login, PersonalFactor, StaffSelection,
};
use crate::authn::lockout::LockKey;
use crate::authn::sessions::{SessionGrant, SessionSubject};
use crate::domain::{Action, EntityKind, Factor, PrincipalKind, StaffKey};
use crate::store::{EnterpriseRecord, FlowKind, LoginFlowRecord, PayerCategory, StaffRecord};

impl Login {
    pub(super) fn enterprise_staff(
        &self,
        flow_key: &str,
        code: &str,
        name: String,
        flow: String,
    ) -> Result<StaffSelection, FlowError> {
        let reader = self.read()?;
        let members = reader
            .children::<StaffRecord>(code)?
            .into_iter()
            .map(|(k, s)| (k, Some(s.identity_type), s.password_hash.is_some()))
            .collect();
        let staff = choices(&reader, flow_key, members)?;
        let sync_required = staff.is_empty();
        Ok(self.selection(flow, name, staff, sync_required))
    }

    /// R2 step 1 / R6: credit code or taxpayer ID + enterprise password.
    pub async fn enterprise_login(
        &self,
        account: &str,
        password: String,
    ) -> Result<EnterpriseLoginOutcome, FlowError> {
        let (code, rec, factors, failure) = self
            .account_password(
                account,
                password,
                LockKey::Enterprise,
                Factor::EnterprisePassword,
                |r: &EnterpriseRecord| r.password_hash.clone(),
            )
            .await?;
        let social = rec
            .as_ref()
            .is_some_and(|r| r.category == PayerCategory::SocialSecurityOnly);
        let (step, action) = if social {
            ("social_security_only", Action::LoginSocialSecurityOnly)
        } else {
            ("enterprise_account", Action::EnterpriseAccountLogin)
        };
        self.own_login(
            step,
            action,
            EntityKind::Enterprise,
            &code,
            &factors,
            failure,
        )
        .await?;
        let rec = rec.expect("an allowed login has a stored enterprise");
        if social {
            let subject = SessionSubject {
                principal_type: PrincipalKind::Enterprise,
                principal_id: code,
                credential_epoch: rec.credential_epoch,
                acting_for: None,
            };
            let grant = self
                .open_session(subject, true, false, "social_insurance_fee_system")
                .await?;
            return Ok(EnterpriseLoginOutcome::LoggedIn(grant));
        }
        let (flow, key) = self
            .new_flow(FlowKind::Enterprise, code.clone(), factors, None)
            .await?;
        Ok(EnterpriseLoginOutcome::SelectStaff(
            self.enterprise_staff(&key, &code, rec.name, flow)?,
        ))
    }

    /// Cancel returns to staff selection: codes issued so far in this flow
    /// stop counting.
    pub async fn enterprise_cancel(&self, flow: &str) -> Result<StaffSelection, FlowError> {
        let (key, mut rec) = self.flow(flow, FlowKind::Enterprise)?;
        let read = rec.generation;
        rec.generation += 1;
        let code = rec.account.clone();
        let k = key.clone();
        // Only the flow as read: one that a last step took (or another
        // cancel renewed) meanwhile is not brought back.
        let renewed = self
            .write(move |w| match w.get::<LoginFlowRecord>(&k)? {
                Some(current) if current.generation == read => w.put(&k, &rec).map(|()| true),
                _ => Ok(false),
            })
            .await?;
        if !renewed {
            return Err(FlowError::FlowExpired);
        }
        let name = self
            .read()?
            .get::<EnterpriseRecord>(&code)?
            .map(|e| e.name)
            .unwrap_or_default();
        self.enterprise_staff(&key, &code, name, flow.trim().to_owned())
    }

    /// Sends an SMS code to the picked staff member's real-name phone, unless
    /// a policy already forbids their login (R5).
    pub async fn enterprise_code(
        &self,
        flow: &str,
        staff_id: &str,
    ) -> Result<IssuedCode, FlowError> {
        let (key, rec) = self.flow(flow, FlowKind::Enterprise)?;
        let (staff_key, staff) = self.resolve(&key, &rec.account, staff_id)?;
        self.member_code(&STAFF, &key, &rec, &staff_key, staff.credential_epoch)
            .await
    }

    pub(super) fn resolve(
        &self,
        flow_key: &str,
        code: &str,
        staff_id: &str,
    ) -> Result<(StaffKey, StaffRecord), FlowError> {
        self.member(flow_key, code, staff_id)?
            .ok_or_else(|| invalid("staff", "no such staff member in this login"))
    }

    /// R2 last step: the picked staff member logs in by SMS code or personal
    /// password. Success marks the enterprise synced (R3).
    pub async fn enterprise_complete(
        &self,
        flow: &str,
        staff_id: &str,
        factor: PersonalFactor,
    ) -> Result<SessionGrant, FlowError> {
        let (key, rec) = self.flow(flow, FlowKind::Enterprise)?;
        let (staff_key, staff) = self.resolve(&key, &rec.account, staff_id)?;
        self.member_login(
            &STAFF,
            &key,
            &rec,
            Picked {
                key: &staff_key,
                epoch: staff.credential_epoch,
                password_hash: staff.password_hash.clone(),
            },
            factor,
        )
        .await?;
        let code = rec.account.clone();
        self.take_flow_and(key, &rec, move |w| {
            if let Some(mut e) = w.get::<EnterpriseRecord>(&code)? {
                if !e.staff_synced {
                    e.staff_synced = true;
                    w.put(&code, &e)?;
                }
            }
            Ok(())
        })
        .await?;
        self.open_staff_session(staff_key, &staff).await
    }
}
