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
use crate::decision::uid;
use crate::ids::mask_name;
use crate::store::{IdentityType, LoginFlowRecord, PersonRecord, Record, StoreReader};

pub(super) const WRONG_PERSONAL: &str = "personal password is wrong, or none is set";

/// Who logs in at a flow's second step: a staff member of the enterprise
/// (办税人员, R2) or an agent staff member of the agency (代理办税人员, R8).
/// The two steps differ only in these names.
pub(super) struct Member {
    /// Entity type of the one logging in.
    entity: &'static str,
    /// Entity type of the account the flow's first step logged in.
    account: &'static str,
    /// The Cedar action both the SMS pre-check and the login ask about.
    action: &'static str,
    /// Decision-log step of the pre-check before an SMS code is sent.
    code_step: &'static str,
    /// Decision-log step of the login itself.
    step: &'static str,
    /// Prefix of the personal password's lockout key.
    lock: &'static str,
}

pub(super) const STAFF: Member = Member {
    entity: "Staff",
    account: "Enterprise",
    action: "loginNormal",
    code_step: "normal_code",
    step: "normal",
    lock: "staff",
};

pub(super) const AGENT_STAFF: Member = Member {
    entity: "AgentStaff",
    account: "Agency",
    action: "loginAgentStaff",
    code_step: "agent_staff_code",
    step: "agent_staff",
    lock: "agent",
};

/// The member picked at a flow's second step, as stored now: store key,
/// credential epoch and personal password hash.
pub(super) struct Picked<'a> {
    pub key: &'a str,
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
    member_key: &str,
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
        let person_id = key.split_once('/').map(|(_, p)| p).unwrap_or_default();
        let person = reader.get::<PersonRecord>(person_id)?;
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
        member_key: &str,
        epoch: u64,
    ) -> Result<IssuedCode, FlowError> {
        let verdict = self
            .pre_check(
                member.code_step,
                uid(member.entity, member_key),
                member.action,
                uid(member.account, &rec.account),
                &rec.factors,
                None,
            )
            .await?;
        if let Some(e) = forbidden(&verdict) {
            return Err(e);
        }
        let phone = self.phone_of(member_key)?;
        self.issue_code(
            "login",
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
    ) -> Result<BTreeSet<String>, FlowError> {
        let member_key = picked.key;
        let mut factors = rec.factors.clone();
        let failure = self
            .personal_factor(
                format!("{}:{member_key}", member.lock),
                picked.password_hash,
                factor,
                code_subject(key, rec, member_key, picked.epoch),
                &mut factors,
            )
            .await?;
        let verdict = self
            .decide(
                member.step,
                uid(member.entity, member_key),
                member.action,
                uid(member.account, &rec.account),
                &factors,
                None,
                failure.as_ref(),
                None,
            )
            .await?;
        conclude(&verdict, failure)?;
        Ok(factors)
    }

    /// The real-name phone of the person in store key `owner/person`.
    pub(super) fn phone_of(&self, key: &str) -> Result<crate::ids::Phone, FlowError> {
        let person = key.split_once('/').map(|(_, p)| p).unwrap_or(key);
        self.read()?
            .get::<PersonRecord>(person)?
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
        lock_key: String,
        phc: Option<String>,
        factor: PersonalFactor,
        subject: String,
        factors: &mut BTreeSet<String>,
    ) -> Result<Option<Failure>, FlowError> {
        let (name, failure) = match factor {
            PersonalFactor::Password(p) => (
                "personal_password",
                self.guarded_verify(lock_key, p, phc, WRONG_PERSONAL)
                    .await?,
            ),
            PersonalFactor::Sms { challenge, code } => (
                "sms_otp",
                self.check_code(&challenge, &code, "login", &subject)
                    .await?,
            ),
        };
        if failure.is_none() {
            factors.insert(name.to_owned());
        }
        Ok(failure)
    }

    /// The member of account `code` whose choice id in this flow is `id`.
    pub(super) fn member<R: Record>(
        &self,
        flow_key: &str,
        code: &str,
        id: &str,
    ) -> Result<Option<(String, R)>, FlowError> {
        Ok(self
            .read()?
            .children::<R>(code)?
            .into_iter()
            .find(|(k, _)| staff_ref(flow_key, k) == id.trim()))
    }
}
