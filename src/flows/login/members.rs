//! The second step an enterprise login and an agency login share: the
//! account's members (staff, agent staff) offered for selection, an SMS code
//! to the picked member's real-name phone, and the member's login by
//! personal password or that code. The two logins differ only in the names
//! a [`Member`] holds.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use super::credentials::Delivery;
use super::steps::{conclude, forbidden, Failure};
use super::{FlowError, IssuedCode, Login, PersonalFactor, StaffChoice, StaffSelection};
use crate::authn::lockout::LockKey;
use crate::domain::{Action, EntityKind, Factor, StaffKey};
use crate::ids::mask_name;
use crate::store::{
    ChallengePurpose, IdentityType, LoginFlowRecord, PersonRecord, Record, StoreReader,
};

pub(super) const WRONG_PERSONAL: &str = "personal password is wrong, or none is set";

/// Who logs in at a flow's second step: a staff member of the enterprise
/// (办税人员, R2) or an agent staff member of the agency (代理办税人员, R8).
/// The two steps differ only in these names.
pub(super) struct Member {
    /// Entity type of the one logging in.
    entity: EntityKind,
    /// Entity type of the account the flow's first step logged in.
    account: EntityKind,
    /// The Cedar action both the SMS pre-check and the login ask about.
    action: Action,
    /// Decision-log step of the pre-check before an SMS code is sent.
    code_step: &'static str,
    /// Decision-log step of the login itself.
    step: &'static str,
    /// The lockout of the member's personal password.
    lock: fn(StaffKey) -> LockKey,
}

pub(super) const STAFF: Member = Member {
    entity: EntityKind::Staff,
    account: EntityKind::Enterprise,
    action: Action::LoginNormal,
    code_step: "normal_code",
    step: "normal",
    lock: LockKey::Staff,
};

pub(super) const AGENT_STAFF: Member = Member {
    entity: EntityKind::AgentStaff,
    account: EntityKind::Agency,
    action: Action::LoginAgentStaff,
    code_step: "agent_staff_code",
    step: "agent_staff",
    lock: LockKey::AgentStaff,
};

/// The member picked at a flow's second step, as stored now: key,
/// credential epoch and personal password hash.
pub(super) struct Picked<'a> {
    pub key: &'a StaffKey,
    pub epoch: u64,
    pub password_hash: Option<String>,
}

/// The subject an SMS login code is bound to: this flow, its generation
/// (a cancel starts a new one, R2), the member and the member's credential
/// epoch when it was sent — a member removed and added again (or whose
/// credentials changed) in between is a new member, whom the code does not
/// log in.
pub(super) fn code_subject(
    flow_key: &str,
    rec: &LoginFlowRecord,
    member_key: &StaffKey,
    epoch: u64,
) -> String {
    format!("flow:{flow_key}:{}:{member_key}:{epoch}", rec.generation)
}

pub(super) fn staff_ref(flow_key: &str, store_key: &str) -> String {
    hex::encode(&Sha256::digest(format!("{flow_key}|{store_key}").as_bytes())[..8])
}

pub(super) fn choices(
    reader: &StoreReader,
    flow_key: &str,
    members: Vec<(String, Option<IdentityType>, bool)>,
) -> Result<Vec<StaffChoice>, FlowError> {
    let mut out = Vec::new();
    for (key, identity_type, has_password) in members {
        // A key that names no person (a damaged record) is offered as an
        // unknown person, who cannot log in.
        let person = match key.parse::<StaffKey>() {
            Ok(k) => reader.get::<PersonRecord>(&k.person.key())?,
            Err(_) => None,
        };
        let (name, real, phone) = person
            .map(|p| (p.name, p.real_name_verified, p.phone.is_some()))
            .unwrap_or_default();
        let mut methods = Vec::new();
        if real && phone {
            methods.push("sms");
        }
        if real && has_password {
            methods.push("password");
        }
        out.push(StaffChoice {
            staff_id: staff_ref(flow_key, &key),
            name: mask_name(&name),
            identity_type: identity_type.map(IdentityType::code),
            real_name_verified: real,
            methods,
            notice: (!real).then_some(
                "real-name collection (实名采集) needed in the mobile tax app before this \
                 person can log in (R5)",
            ),
        });
    }
    Ok(out)
}

impl Login {
    /// The staff-selection answer of a live flow.
    pub(super) fn selection(
        &self,
        flow: String,
        account_name: String,
        staff: Vec<StaffChoice>,
        sync_required: bool,
    ) -> StaffSelection {
        StaffSelection {
            flow,
            expires_in_secs: self.authn.config.flow_ttl_secs,
            account_name,
            sync_required,
            staff,
            sync_problems: Vec::new(),
        }
    }

    /// Sends an SMS code to the member's real-name phone, unless a policy
    /// already forbids their login (R5).
    pub(super) async fn member_code(
        &self,
        member: &Member,
        key: &str,
        rec: &LoginFlowRecord,
        member_key: &StaffKey,
        epoch: u64,
    ) -> Result<IssuedCode, FlowError> {
        let verdict = self
            .pre_check(
                member.code_step,
                member.entity.uid(&member_key.to_string()),
                member.action,
                member.account.uid(&rec.account),
                &rec.factors,
                None,
            )
            .await?;
        if let Some(e) = forbidden(&verdict) {
            return Err(e);
        }
        let phone = self.phone_of(member_key)?;
        self.issue_code(
            ChallengePurpose::Login,
            code_subject(key, rec, member_key, epoch),
            Delivery::Sms(phone),
        )
        .await
    }

    /// The member proves who they are by personal password or SMS code;
    /// answers the flow's factors with theirs added once the login is
    /// allowed.
    pub(super) async fn member_login(
        &self,
        member: &Member,
        key: &str,
        rec: &LoginFlowRecord,
        picked: Picked<'_>,
        factor: PersonalFactor,
    ) -> Result<BTreeSet<Factor>, FlowError> {
        let member_key = picked.key;
        let mut factors = rec.factors.clone();
        let failure = self
            .personal_factor(
                (member.lock)(member_key.clone()),
                picked.password_hash,
                factor,
                code_subject(key, rec, member_key, picked.epoch),
                &mut factors,
            )
            .await?;
        let verdict = self
            .decide(
                member.step,
                member.entity.uid(&member_key.to_string()),
                member.action,
                member.account.uid(&rec.account),
                &factors,
                None,
                failure.as_ref(),
                None,
            )
            .await?;
        conclude(&verdict, failure)?;
        Ok(factors)
    }

    /// The real-name phone of a staff or agent staff member.
    pub(super) fn phone_of(&self, key: &StaffKey) -> Result<crate::ids::Phone, FlowError> {
        self.read()?
            .get::<PersonRecord>(&key.person.key())?
            .and_then(|p| p.phone)
            .ok_or_else(|| FlowError::Refused {
                code: "no_real_name_phone",
                message: "no real-name phone is on file; complete real-name collection \
                          (实名采集) or use another method"
                    .to_owned(),
            })
    }

    pub(super) async fn personal_factor(
        &self,
        lock: LockKey,
        phc: Option<String>,
        factor: PersonalFactor,
        subject: String,
        factors: &mut BTreeSet<Factor>,
    ) -> Result<Option<Failure>, FlowError> {
        let (verified, failure) = match factor {
            PersonalFactor::Password(p) => (
                Factor::PersonalPassword,
                self.guarded_verify(lock, p, phc, WRONG_PERSONAL).await?,
            ),
            PersonalFactor::Sms { challenge, code } => (
                Factor::SmsOtp,
                self.check_code(&challenge, &code, ChallengePurpose::Login, &subject)
                    .await?,
            ),
        };
        if failure.is_none() {
            factors.insert(verified);
        }
        Ok(failure)
    }

    /// The member of account `code` whose choice id in this flow is `id`.
    pub(super) fn member<R: Record>(
        &self,
        flow_key: &str,
        code: &str,
        id: &str,
    ) -> Result<Option<(StaffKey, R)>, FlowError> {
        Ok(self
            .read()?
            .children::<R>(code)?
            .into_iter()
            .find(|(k, _)| staff_ref(flow_key, k) == id.trim())
            // A key that does not parse names no one who can log in.
            .and_then(|(k, r)| Some((k.parse().ok()?, r))))
    }
}
