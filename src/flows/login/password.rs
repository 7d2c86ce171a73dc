//! Setting, changing and recovering personal passwords (R10–R12).
//!
//! Every new password passes the configured rule (R10 by default) and the
//! common-password list before it is hashed with argon2id. Recovery (R11)
//! proves the identity again with an SMS code to the real-name phone.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::steps::{conclude, Failure};
use super::{invalid, Delivery, FlowError, IssuedCode, Login};
use crate::authn::challenge::{is_decoy, ChallengeError};
use crate::authn::lockout::LockKey;
use crate::domain::{Action, Factor, PrincipalKind, StaffKey};
use crate::ids::{CreditCode, PersonKey, Phone};
use crate::store::{
    AgentStaffRecord, ChallengePurpose, ChallengeRecord, LockoutRecord, PersonRecord,
    SessionRecord, StaffRecord, StoreError, StoreReader, StoreWriter,
};

/// Whose password: a staff member of an enterprise, an agent staff member of
/// an agency, or a natural person. Its serde form is the wire's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    Staff,
    AgentStaff,
    #[serde(rename = "natural_person")]
    Person,
}

impl Holder {
    fn principal_kind(self) -> PrincipalKind {
        match self {
            Self::Staff => PrincipalKind::Staff,
            Self::AgentStaff => PrincipalKind::AgentStaff,
            Self::Person => PrincipalKind::Person,
        }
    }

    /// The holder a principal is; an enterprise's account password is no
    /// personal password.
    fn of(kind: PrincipalKind) -> Option<Self> {
        match kind {
            PrincipalKind::Staff => Some(Self::Staff),
            PrincipalKind::AgentStaff => Some(Self::AgentStaff),
            PrincipalKind::Person => Some(Self::Person),
            PrincipalKind::Enterprise => None,
        }
    }

    /// The holder of the name `PrincipalKind` writes (a recovery code's
    /// subject).
    fn named(name: &str) -> Option<Self> {
        [Self::Staff, Self::AgentStaff, Self::Person]
            .into_iter()
            .find(|h| h.principal_kind().as_str() == name)
    }

    /// The lockout of the personal password stored under `key`; `None` if
    /// the key is not this holder's form (then no such holder exists).
    fn lock(self, key: &str) -> Option<LockKey> {
        Some(match self {
            Self::Staff => LockKey::Staff(key.parse::<StaffKey>().ok()?),
            Self::AgentStaff => LockKey::AgentStaff(key.parse::<StaffKey>().ok()?),
            Self::Person => LockKey::Person(PersonKey::parse_key(key).ok()?),
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PasswordSet {
    pub password_set: bool,
}

/// The stored personal-password hash of a holder, if the holder exists.
fn stored_hash(
    r: &StoreReader,
    holder: Holder,
    key: &str,
) -> Result<Option<Option<String>>, StoreError> {
    Ok(match holder {
        Holder::Staff => r.get::<StaffRecord>(key)?.map(|s| s.password_hash),
        Holder::AgentStaff => r.get::<AgentStaffRecord>(key)?.map(|s| s.password_hash),
        Holder::Person => r.get::<PersonRecord>(key)?.map(|p| p.password_hash),
    })
}

/// Stores a new hash, clears the one-time-password flag and gives the
/// holder a new credential epoch, which ends every session opened before.
/// Answers the old and new epochs, or `None` if there is no such holder.
fn store_hash(
    w: &mut StoreWriter,
    holder: Holder,
    key: &str,
    phc: String,
) -> Result<Option<(u64, u64)>, StoreError> {
    let epoch = w.next_epoch()?;
    let old = match holder {
        Holder::Staff => {
            let Some(mut s) = w.get::<StaffRecord>(key)? else {
                return Ok(None);
            };
            let old = std::mem::replace(&mut s.credential_epoch, epoch);
            s.password_hash = Some(phc);
            s.password_change_required = false;
            w.put(key, &s)?;
            old
        }
        Holder::AgentStaff => {
            let Some(mut s) = w.get::<AgentStaffRecord>(key)? else {
                return Ok(None);
            };
            let old = std::mem::replace(&mut s.credential_epoch, epoch);
            s.password_hash = Some(phc);
            s.password_change_required = false;
            w.put(key, &s)?;
            old
        }
        Holder::Person => {
            let Some(mut p) = w.get::<PersonRecord>(key)? else {
                return Ok(None);
            };
            let old = std::mem::replace(&mut p.credential_epoch, epoch);
            p.password_hash = Some(phc);
            w.put(key, &p)?;
            old
        }
    };
    if let Some(lock) = holder.lock(key) {
        w.remove::<LockoutRecord>(&lock.to_string())?;
    }
    Ok(Some((old, epoch)))
}

impl Login {
    /// R11 step 1: a recovery code for the account whose password was
    /// forgotten, to the phone the user gives. The answer is the same
    /// whether or not the identity exists, has a real-name phone, or that
    /// phone is the one given: when the details do not all match, the code
    /// is a decoy that fails like a wrong code, so this step never tells
    /// anyone which accounts exist or which phone they use. Both cases do
    /// the same work (a Cedar pre-check, one store write, one log record).
    pub async fn forgot_code(
        &self,
        holder: Holder,
        owner: Option<CreditCode>,
        person: PersonKey,
        phone: Phone,
    ) -> Result<IssuedCode, FlowError> {
        let key = match holder {
            Holder::Person => person.key(),
            _ => {
                let enterprise = owner.ok_or_else(|| invalid("account", "required for staff"))?;
                StaffKey {
                    enterprise,
                    person: person.clone(),
                }
                .to_string()
            }
        };
        let reader = self.read()?;
        let exists = stored_hash(&reader, holder, &key)?.is_some();
        let on_file = reader
            .get::<PersonRecord>(&person.key())?
            .and_then(|p| p.phone);
        drop(reader);
        let me = holder.principal_kind().uid(&key);
        // Would a code to the real-name phone be enough? Asked now so that a
        // policy refusal sends a decoy instead of a code.
        let asked = self.ask(
            me.clone(),
            Action::RecoverPassword,
            me,
            json!({ "factors": [Factor::SmsOtp] }),
        )?;
        let mismatch = if !exists {
            Some("no such identity")
        } else if on_file.as_ref() != Some(&phone) {
            Some("the phone given is not the real-name phone on file")
        } else if !asked.verdict.allowed {
            Some("refused by policy")
        } else {
            None
        };
        let issued = self
            .issue_challenge(
                ChallengePurpose::Reset,
                format!("{}:{key}", holder.principal_kind()),
                Delivery::Sms(phone.clone()),
                mismatch.is_some(),
            )
            .await;
        let masked = phone.masked();
        let note = match (&issued, mismatch) {
            (Err(e), _) => format!("pre-check: no code sent ({e})"),
            (Ok(_), Some(_)) => format!("pre-check: decoy code sent to {masked}"),
            (Ok(_), None) => format!("pre-check: recovery code sent to {masked}"),
        };
        let failure = mismatch.map(Failure::Wrong);
        // After the code's write: the record says which code (real or
        // decoy) was sent, which only the write's result tells.
        let event = self.event("forgot_code", &asked, None, failure.as_ref(), Some(&note));
        self.decider.record(event).await?;
        issued
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
        let issued = self
            .read()?
            .get::<ChallengeRecord>(challenge.trim())?
            .filter(|c| c.purpose == ChallengePurpose::Reset)
            .ok_or(ChallengeError::Unknown)?;
        let (ty, key) = issued
            .subject
            .split_once(':')
            .ok_or(FlowError::FlowExpired)?;
        let holder = Holder::named(ty).ok_or(FlowError::FlowExpired)?;
        let key = key.to_owned();
        let failure = self
            .check_code(challenge, code, ChallengePurpose::Reset, &issued.subject)
            .await?;
        let mut factors = BTreeSet::new();
        if failure.is_none() {
            factors.insert(Factor::SmsOtp);
        }
        let me = holder.principal_kind().uid(&key);
        let note = is_decoy(&issued).then_some("decoy code: the details given did not match");
        let verdict = self
            .decide(
                "forgot_reset",
                me.clone(),
                Action::RecoverPassword,
                me,
                &factors,
                None,
                failure.as_ref(),
                note,
            )
            .await?;
        // A wrong code answers as a wrong code whatever the policies say
        // (`conclude` puts credentials first), so that a decoy cannot be told
        // from a real recovery.
        conclude(&verdict, failure)?;
        let phc = self.authn.hash(new_password).await?;
        self.write(move |w| store_hash(w, holder, &key, phc).map(|_| ()))
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
        let (session_key, rec) = self.sessions.resolve(token, true)?;
        let holder = Holder::of(rec.principal_type).ok_or_else(|| {
            invalid(
                "session",
                "this account's password is not a personal password",
            )
        })?;
        let key = rec.principal_id.clone();
        self.authn.check_new_password(&new_password)?;
        let stored = stored_hash(&self.read()?, holder, &key)?
            .ok_or(crate::authn::session::SessionError::PrincipalGone)?;
        let mut factors = BTreeSet::from([Factor::Session]);
        let mut failure = None;
        if let Some(phc) = &stored {
            let current = current
                .ok_or_else(|| invalid("current_password", "required to change a password"))?;
            if current == new_password {
                return Err(invalid(
                    "new_password",
                    "the new password must differ from the current one",
                ));
            }
            let lock = holder
                .lock(&key)
                .ok_or(crate::authn::session::SessionError::PrincipalGone)?;
            failure = self
                .guarded_verify(
                    lock,
                    current,
                    Some(phc.clone()),
                    "current password is wrong",
                )
                .await?;
            if failure.is_none() {
                factors.insert(Factor::PersonalPassword);
            }
        }
        let me = holder.principal_kind().uid(&key);
        let context = json!({ "factors": factors, "hasPassword": stored.is_some() });
        let verdict = self
            .decide_in(
                "set_password",
                me.clone(),
                Action::SetOwnPassword,
                me,
                context,
                None,
                failure.as_ref(),
                None,
            )
            .await?;
        conclude(&verdict, failure)?;
        let phc = self.authn.hash(new_password).await?;
        self.write(move |w| {
            let Some((old, new)) = store_hash(w, holder, &key, phc)? else {
                return Ok(());
            };
            // The session that made the change goes on under the new
            // credentials; the user's other sessions end. Only if it was
            // still bound to the old ones: a reset that raced this change
            // has ended it too.
            if let Some(mut s) = w.get::<SessionRecord>(&session_key)? {
                if s.credential_epoch == old {
                    s.credential_epoch = new;
                    s.password_change_required = false;
                    w.put(&session_key, &s)?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(PasswordSet { password_set: true })
    }
}
