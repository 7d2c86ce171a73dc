//! Setting, changing and recovering personal passwords (R10–R12).
//!
//! Every new password passes the configured rule (R10 by default) and the
//! common-password list before it is hashed with argon2id. Recovery (R11)
//! proves the identity again with an SMS code to the real-name phone.

use serde::Serialize;

use super::{invalid, Delivery, FlowError, IssuedCode, Login};
use crate::audit::DecisionRecord;
use crate::ids::{CreditCode, PersonKey};
use crate::store::{
    AgentStaffRecord, ChallengeRecord, LockoutRecord, PersonRecord, SessionRecord, StaffRecord,
    StoreError, StoreWriter,
};

/// Whose password: a staff member of an enterprise, an agent staff member of
/// an agency, or a natural person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Staff,
    AgentStaff,
    Person,
}

impl Holder {
    pub fn parse(s: &str) -> Result<Self, FlowError> {
        Ok(match s {
            "staff" => Self::Staff,
            "agent_staff" => Self::AgentStaff,
            "natural_person" => Self::Person,
            other => {
                return Err(invalid(
                    "kind",
                    format!("unknown kind {other:?}: staff, agent_staff or natural_person"),
                ))
            }
        })
    }

    fn entity_type(self) -> &'static str {
        match self {
            Self::Staff => "Staff",
            Self::AgentStaff => "AgentStaff",
            Self::Person => "Person",
        }
    }

    fn from_entity_type(s: &str) -> Option<Self> {
        Some(match s {
            "Staff" => Self::Staff,
            "AgentStaff" => Self::AgentStaff,
            "Person" => Self::Person,
            _ => return None,
        })
    }

    fn lock_prefix(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::AgentStaff => "agent",
            Self::Person => "person",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PasswordSet {
    pub password_set: bool,
}

/// The stored password state of a holder: (exists, hash, change required).
fn load(
    w: &StoreWriter,
    holder: Holder,
    key: &str,
) -> Result<Option<(Option<String>, bool)>, StoreError> {
    Ok(match holder {
        Holder::Staff => w
            .get::<StaffRecord>(key)?
            .map(|s| (s.password_hash, s.password_change_required)),
        Holder::AgentStaff => w
            .get::<AgentStaffRecord>(key)?
            .map(|s| (s.password_hash, s.password_change_required)),
        Holder::Person => w
            .get::<PersonRecord>(key)?
            .map(|p| (p.password_hash, false)),
    })
}

/// Stores a new hash and clears the one-time-password flag.
fn store_hash(
    w: &mut StoreWriter,
    holder: Holder,
    key: &str,
    phc: String,
) -> Result<bool, StoreError> {
    match holder {
        Holder::Staff => {
            let Some(mut s) = w.get::<StaffRecord>(key)? else {
                return Ok(false);
            };
            s.password_hash = Some(phc);
            s.password_change_required = false;
            w.put(key, &s)?;
        }
        Holder::AgentStaff => {
            let Some(mut s) = w.get::<AgentStaffRecord>(key)? else {
                return Ok(false);
            };
            s.password_hash = Some(phc);
            s.password_change_required = false;
            w.put(key, &s)?;
        }
        Holder::Person => {
            let Some(mut p) = w.get::<PersonRecord>(key)? else {
                return Ok(false);
            };
            p.password_hash = Some(phc);
            w.put(key, &p)?;
        }
    }
    w.remove::<LockoutRecord>(&format!("{}:{key}", holder.lock_prefix()))?;
    Ok(true)
}

impl Login {
    async fn record_password_step(
        &self,
        step: &str,
        holder: Holder,
        key: &str,
        allowed: bool,
        reason: &str,
    ) -> Result<(), FlowError> {
        let principal = crate::decision::uid(holder.entity_type(), key).to_string();
        let record = DecisionRecord::new(
            &crate::random_id(),
            &format!("login.{step}"),
            &principal,
            step,
            &principal,
            None,
            allowed,
            &[],
            &[],
            self.engine.snapshot().version(),
            0,
        )
        .with_reason(reason);
        self.audit.commit(record).await?;
        Ok(())
    }

    /// R11 step 1: an SMS code to the real-name phone of the account whose
    /// password was forgotten. The same refusal for an unknown account as for
    /// one without a real-name phone.
    pub async fn forgot_code(
        &self,
        holder: Holder,
        owner: Option<&str>,
        person: PersonKey,
    ) -> Result<IssuedCode, FlowError> {
        let key = match holder {
            Holder::Person => person.key(),
            _ => {
                let owner = owner.ok_or_else(|| invalid("account", "required for staff"))?;
                let code = CreditCode::parse(owner).map_err(|e| invalid("account", e))?;
                format!("{code}/{}", person.key())
            }
        };
        let reader = self.read()?;
        let exists = match holder {
            Holder::Staff => reader.get::<StaffRecord>(&key)?.is_some(),
            Holder::AgentStaff => reader.get::<AgentStaffRecord>(&key)?.is_some(),
            Holder::Person => true,
        };
        let phone = reader
            .get::<PersonRecord>(&person.key())?
            .filter(|p| p.real_name_verified && exists)
            .and_then(|p| p.phone);
        drop(reader);
        let Some(phone) = phone else {
            self.record_password_step("forgot_code", holder, &key, false, "no real-name phone")
                .await?;
            return Err(FlowError::Refused {
                code: "recovery_unavailable",
                message: "password recovery needs a real-name phone on file for this identity; \
                          complete real-name collection (实名采集) in the mobile tax app"
                    .to_owned(),
                policy: None,
            });
        };
        let issued = self
            .issue_code(
                "reset",
                format!("{}:{key}", holder.entity_type()),
                Delivery::Sms(phone.clone()),
            )
            .await?;
        self.record_password_step(
            "forgot_code",
            holder,
            &key,
            true,
            &format!("recovery code sent to {}", phone.masked()),
        )
        .await?;
        Ok(issued)
    }

    /// R11 step 2: the SMS code, then a new password that passes R10. The
    /// password is checked first, so a weak one does not use the code up.
    pub async fn forgot_reset(
        &self,
        challenge: &str,
        code: &str,
        new_password: String,
    ) -> Result<PasswordSet, FlowError> {
        self.authn.check_new_password(&new_password)?;
        let subject = self
            .read()?
            .get::<ChallengeRecord>(challenge.trim())?
            .filter(|c| c.purpose == "reset")
            .map(|c| c.subject)
            .ok_or(crate::authn::challenge::ChallengeError::Unknown)?;
        let (ty, key) = subject.split_once(':').ok_or(FlowError::FlowExpired)?;
        let holder = Holder::from_entity_type(ty).ok_or(FlowError::FlowExpired)?;
        let key = key.to_owned();
        if let Some(f) = self.check_code(challenge, code, "reset", &subject).await? {
            self.record_password_step("forgot_reset", holder, &key, false, &f.describe())
                .await?;
            return match f {
                super::Failure::Code(e) => Err(e.into()),
                _ => Err(FlowError::BadCredentials("verification failed")),
            };
        }
        let phc = self.authn.hash(new_password).await;
        let k = key.clone();
        self.write(move |w| store_hash(w, holder, &k, phc)).await?;
        self.record_password_step("forgot_reset", holder, &key, true, "password reset")
            .await?;
        Ok(PasswordSet { password_set: true })
    }

    /// Sets (no personal password yet) or changes (current one required) the
    /// personal password of the session's user. Also the way out of a
    /// one-time password (R12).
    pub async fn set_password(
        &self,
        token: &str,
        current: Option<String>,
        new_password: String,
    ) -> Result<PasswordSet, FlowError> {
        let (session_key, rec) = self.session(token, true).await?;
        let holder = Holder::from_entity_type(&rec.principal_type).ok_or_else(|| {
            invalid(
                "session",
                "this account's password is not a personal password",
            )
        })?;
        let key = rec.principal_id.clone();
        self.authn.check_new_password(&new_password)?;
        let k = key.clone();
        let state = self
            .write(move |w| load(w, holder, &k))
            .await?
            .ok_or(crate::authn::session::SessionError::PrincipalGone)?;
        if let (Some(phc), _) = &state {
            let current = current
                .ok_or_else(|| invalid("current_password", "required to change a password"))?;
            if current == new_password {
                return Err(invalid(
                    "new_password",
                    "the new password must differ from the current one",
                ));
            }
            let failure = self
                .guarded_verify(
                    format!("{}:{key}", holder.lock_prefix()),
                    current,
                    Some(phc.clone()),
                    "current password is wrong",
                )
                .await?;
            if let Some(f) = failure {
                self.record_password_step("set_password", holder, &key, false, &f.describe())
                    .await?;
                return Err(match f {
                    super::Failure::Locked(s) => FlowError::Locked {
                        retry_after_secs: s,
                    },
                    _ => FlowError::BadCredentials("current password is wrong"),
                });
            }
        }
        let phc = self.authn.hash(new_password).await;
        let k = key.clone();
        self.write(move |w| {
            store_hash(w, holder, &k, phc)?;
            // Every session of this user may go on now.
            if let Some(mut s) = w.get::<SessionRecord>(&session_key)? {
                s.password_change_required = false;
                w.put(&session_key, &s)?;
            }
            Ok(())
        })
        .await?;
        self.record_password_step("set_password", holder, &key, true, "password set")
            .await?;
        Ok(PasswordSet { password_set: true })
    }
}
