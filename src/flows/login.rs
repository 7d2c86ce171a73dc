//! The login flows of the bureau (R1–R9): enterprise normal login with staff
//! sync, quick login, social-security-only payers, natural persons, and the
//! three steps of agency login.

use std::collections::BTreeSet;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    conclude, credentials_first, forbidden, invalid, Delivery, Failure, FlowError, IssuedCode,
    Login, SessionGrant, SessionSubject,
};
use crate::authn::session;
use crate::decision::uid;
use crate::flows::feeds::{demote_replaced_officers, log_demotions};
use crate::ids::{mask_name, IdType, PersonKey, TaxpayerRef};
use crate::store::{
    AgencyRecord, AgentStaffRecord, ClientOfRecord, CoreOfficersRecord, EnterpriseRecord,
    IdentityType, LoginFlowRecord, PayerCategory, PersonRecord, RecognitionRecord, Record,
    StaffRecord, StoreError, StoreReader, StoreWriter,
};

const WRONG_ACCOUNT: &str = "account or password is wrong";
const WRONG_PERSONAL: &str = "personal password is wrong, or none is set";
const WRONG_AGREEMENT: &str = "agreement password (协议密码) is wrong";

/// How a staff or agent staff member proves who they are.
#[derive(Debug)]
pub enum PersonalFactor {
    /// 个人密码
    Password(String),
    /// An SMS code to the real-name phone.
    Sms { challenge: String, code: String },
}

/// One staff member (or agent staff member) the user may pick.
#[derive(Debug, Serialize)]
pub struct StaffChoice {
    /// Opaque within this login flow.
    pub staff_id: String,
    /// As the bureau shows it: `*建国`.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<&'static str>,
    pub real_name_verified: bool,
    /// `sms` (a real-name phone is on file), `password` (a personal password is set).
    pub methods: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<&'static str>,
}

/// After the enterprise or agency account step.
#[derive(Debug, Serialize)]
pub struct StaffSelection {
    pub flow: String,
    pub expires_in_secs: u64,
    pub account_name: String,
    pub staff: Vec<StaffChoice>,
    /// No staff yet: ask to sync staff (同步办税人).
    pub sync_required: bool,
    /// After sync staff: each officer on file who could not be added, and
    /// why (masked name and ID number): they must redo real-name collection.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sync_problems: Vec<String>,
}

/// Step 1 of an enterprise login.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EnterpriseLoginOutcome {
    /// Pick a staff member (R2).
    SelectStaff(StaffSelection),
    /// A social-security-only payer is logged in (R6).
    LoggedIn(SessionGrant),
}

/// A client enterprise an agent may act for.
#[derive(Debug, Serialize)]
pub struct ClientChoice {
    pub credit_code: String,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct ClientSelection {
    pub flow: String,
    pub clients: Vec<ClientChoice>,
}

/// Who logs in at a flow's second step: a staff member of the enterprise
/// (办税人员, R2) or an agent staff member of the agency (代理办税人员, R8).
/// The two steps differ only in these names.
struct Member {
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

const STAFF: Member = Member {
    entity: "Staff",
    account: "Enterprise",
    action: "loginNormal",
    code_step: "normal_code",
    step: "normal",
    lock: "staff",
};

const AGENT_STAFF: Member = Member {
    entity: "AgentStaff",
    account: "Agency",
    action: "loginAgentStaff",
    code_step: "agent_staff_code",
    step: "agent_staff",
    lock: "agent",
};

/// The member picked at a flow's second step, as stored now: store key,
/// credential epoch and personal password hash.
struct Picked<'a> {
    key: &'a str,
    epoch: u64,
    password_hash: Option<String>,
}

/// The subject an SMS login code is bound to: this flow, its generation
/// (a cancel starts a new one, R2), the member and the member's credential
/// epoch when it was sent — a member removed and added again (or whose
/// credentials changed) in between is a new member, whom the code does not
/// log in.
fn code_subject(flow_key: &str, rec: &LoginFlowRecord, member_key: &str, epoch: u64) -> String {
    format!("flow:{flow_key}:{}:{member_key}:{epoch}", rec.generation)
}

/// Whether a login flow's lifetime is over: no step continues it.
pub(super) fn flow_expired(rec: &LoginFlowRecord, now_ms: u64) -> bool {
    now_ms >= rec.expires_ms
}

/// The subject a captcha is bound to: the account it was requested for, so
/// one solved for one account is refused for another.
fn captcha_subject(person: &PersonKey) -> String {
    format!("Person:{}", person.key())
}

fn staff_ref(flow_key: &str, store_key: &str) -> String {
    hex::encode(&Sha256::digest(format!("{flow_key}|{store_key}").as_bytes())[..8])
}

/// Resolves what a user typed at an account login to a credit code; unknown
/// accounts keep what was typed, so they fail (and lock) like real ones.
fn account_code(reader: &StoreReader, account: &str) -> Result<String, FlowError> {
    let parsed = TaxpayerRef::parse(account).map_err(|e| invalid("account", e))?;
    Ok(match parsed {
        TaxpayerRef::CreditCode(c) => c.to_string(),
        TaxpayerRef::TaxpayerId(t) => reader
            .credit_code_for_taxpayer_id(t.as_str())?
            .unwrap_or_else(|| t.to_string()),
    })
}

pub(crate) fn person_key(id_type: Option<&str>, id_number: &str) -> Result<PersonKey, FlowError> {
    let t = IdType::parse(id_type.unwrap_or("resident_id")).map_err(|e| invalid("id_type", e))?;
    PersonKey::new(t, id_number).map_err(|e| invalid("id_number", e))
}

fn choices(
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

/// What sync staff (同步办税人) does for an enterprise, from the officers the
/// core tax system has on file and the real-name records: each officer who
/// matches becomes staff with their identity type; each who does not is
/// named (masked) and must redo real-name collection.
struct SyncPlan {
    problems: Vec<String>,
    /// Staff key and the identity type the core tax system gives them.
    to_add: Vec<(String, IdentityType)>,
}

impl SyncPlan {
    fn of(
        code: &str,
        on_file: Option<&CoreOfficersRecord>,
        person: impl Fn(&str) -> Result<Option<PersonRecord>, StoreError>,
    ) -> Result<Self, StoreError> {
        let mut plan = SyncPlan {
            problems: Vec::new(),
            to_add: Vec::new(),
        };
        let none = CoreOfficersRecord::default();
        let officers = on_file.unwrap_or(&none);
        for (role, label, officer) in [
            (
                IdentityType::LegalRep,
                "法定代表人 (legal representative)",
                &officers.legal_rep,
            ),
            (
                IdentityType::FinanceHead,
                "财务负责人 (finance head)",
                &officers.finance_head,
            ),
        ] {
            let Some(o) = officer else { continue };
            let why = match person(&o.person)? {
                None => Some("no real-name record matches the ID number the core tax system holds"),
                Some(p) if p.name != o.name => {
                    Some("the real-name record's name differs from the core tax system's")
                }
                Some(p) if !p.real_name_verified => Some("real-name collection is not completed"),
                Some(p) if p.phone.is_none() => Some("no real-name phone is on file"),
                Some(_) => None,
            };
            match why {
                Some(why) => plan.problems.push(format!(
                    "{label} {} ({}): {why}; this person must redo real-name collection \
                     (实名采集) in the mobile tax app",
                    mask_name(&o.name),
                    crate::ids::mask_text(&o.person),
                )),
                None => plan.to_add.push((format!("{code}/{}", o.person), role)),
            }
        }
        if officers.legal_rep.is_none() && officers.finance_head.is_none() {
            plan.problems.push(
                "the core tax system (金税三期) has no legal representative or finance head on \
                 file for this enterprise"
                    .to_owned(),
            );
        }
        Ok(plan)
    }
}

impl Login {
    /// Stores a new login flow of `kind` for `account`; answers the flow
    /// token the client holds and the store key.
    async fn new_flow(
        &self,
        kind: &str,
        account: String,
        factors: BTreeSet<String>,
        staff: Option<(String, u64)>,
    ) -> Result<(String, String), FlowError> {
        let (staff, staff_epoch) = staff.unzip();
        let rec = LoginFlowRecord {
            kind: kind.into(),
            account,
            factors,
            staff,
            generation: 0,
            staff_epoch: staff_epoch.unwrap_or_default(),
            expires_ms: crate::now_ms() + self.authn.config.flow_ttl_secs * 1000,
        };
        let (flow, key) = session::new_token();
        let k = key.clone();
        self.write(move |w| w.put(&k, &rec)).await?;
        Ok((flow, key))
    }

    /// Step 1 of an account login (the enterprise's or the agency's): the
    /// account resolved from a credit code or taxpayer ID, its record, and
    /// its password checked under its lockout (`lock` prefix) — the factors
    /// it proves and the failure, if any. An unknown account is verified
    /// against the dummy hash like a real one.
    async fn account_password<R: Record>(
        &self,
        account: &str,
        password: String,
        lock: &str,
        factor: &str,
        hash_of: fn(&R) -> String,
    ) -> Result<(String, Option<R>, BTreeSet<String>, Option<Failure>), FlowError> {
        let reader = self.read()?;
        let code = account_code(&reader, account)?;
        let rec = reader.get::<R>(&code)?;
        drop(reader);
        let failure = self
            .guarded_verify(
                format!("{lock}:{code}"),
                password,
                rec.as_ref().map(hash_of),
                WRONG_ACCOUNT,
            )
            .await?;
        let mut factors = BTreeSet::new();
        if failure.is_none() {
            factors.insert(factor.to_owned());
        }
        Ok((code, rec, factors, failure))
    }

    /// Decides a login in which an account logs in to itself (principal and
    /// resource are the same entity) and concludes it: a refusal or a
    /// failed factor is the error.
    async fn own_login(
        &self,
        step: &str,
        action: &str,
        entity: &str,
        id: &str,
        factors: &BTreeSet<String>,
        failure: Option<Failure>,
    ) -> Result<(), FlowError> {
        let me = uid(entity, id);
        let verdict = self
            .decide(
                step,
                me.clone(),
                action,
                me,
                factors,
                None,
                failure.as_ref(),
                None,
            )
            .await?;
        conclude(&verdict, failure)
    }

    /// Ends a flow at its last step. Only one of several requests finishing
    /// the same flow at once takes it: the others find it gone, so one flow
    /// never opens two sessions.
    async fn take_flow(&self, key: String) -> Result<(), FlowError> {
        self.take_flow_and(key, |_| Ok(())).await
    }

    /// [`Self::take_flow`], with `then` written in the same transaction by
    /// the one request that takes the flow.
    async fn take_flow_and(
        &self,
        key: String,
        then: impl FnOnce(&mut StoreWriter) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), FlowError> {
        let taken = self
            .write(move |w| {
                let taken = w.remove::<LoginFlowRecord>(&key)?;
                if taken {
                    then(w)?;
                }
                Ok(taken)
            })
            .await?;
        if taken {
            Ok(())
        } else {
            Err(FlowError::FlowExpired)
        }
    }

    /// A live flow of `kind`.
    fn flow(&self, flow: &str, kind: &str) -> Result<(String, LoginFlowRecord), FlowError> {
        let key = session::token_key(flow);
        match self.read()?.get::<LoginFlowRecord>(&key)? {
            Some(rec) if rec.kind == kind && !flow_expired(&rec, crate::now_ms()) => Ok((key, rec)),
            _ => Err(FlowError::FlowExpired),
        }
    }

    fn enterprise_staff(
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

    /// The staff-selection answer of a live flow.
    fn selection(
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
                "enterprise",
                "enterprise_password",
                |r: &EnterpriseRecord| r.password_hash.clone(),
            )
            .await?;
        let social = rec
            .as_ref()
            .is_some_and(|r| r.category == PayerCategory::SocialSecurityOnly);
        let (step, action) = if social {
            ("social_security_only", "loginSocialSecurityOnly")
        } else {
            ("enterprise_account", "enterpriseAccountLogin")
        };
        self.own_login(step, action, "Enterprise", &code, &factors, failure)
            .await?;
        let rec = rec.expect("an allowed login has a stored enterprise");
        if social {
            let subject = SessionSubject {
                principal_type: "Enterprise",
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
            .new_flow("enterprise", code.clone(), factors, None)
            .await?;
        Ok(EnterpriseLoginOutcome::SelectStaff(
            self.enterprise_staff(&key, &code, rec.name, flow)?,
        ))
    }

    /// Cancel returns to staff selection: codes issued so far in this flow
    /// stop counting.
    pub async fn enterprise_cancel(&self, flow: &str) -> Result<StaffSelection, FlowError> {
        let (key, mut rec) = self.flow(flow, "enterprise")?;
        rec.generation += 1;
        let code = rec.account.clone();
        let k = key.clone();
        self.write(move |w| w.put(&k, &rec)).await?;
        let name = self
            .read()?
            .get::<EnterpriseRecord>(&code)?
            .map(|e| e.name)
            .unwrap_or_default();
        self.enterprise_staff(&key, &code, name, flow.trim().to_owned())
    }

    /// 同步办税人 (R2/R3): adds the legal rep and finance head the core tax
    /// system has on file, matched by ID number to real-name records.
    pub async fn sync_staff(&self, flow: &str) -> Result<StaffSelection, FlowError> {
        let (key, rec) = self.flow(flow, "enterprise")?;
        let code = rec.account.clone();
        let reader = self.read()?;
        let on_file = reader.get::<CoreOfficersRecord>(&code)?;
        // The plan as read decides what the log says was asked; the write
        // plans again in its own transaction.
        let problems =
            SyncPlan::of(&code, on_file.as_ref(), |k| reader.get::<PersonRecord>(k))?.problems;
        let name = reader
            .get::<EnterpriseRecord>(&code)?
            .map(|e| e.name)
            .unwrap_or_default();
        drop(reader);
        let me = uid("Enterprise", &code);
        let me_for_log = me.to_string();
        let note = (!problems.is_empty()).then(|| problems.join("; "));
        let verdict = self
            .decide(
                "sync_staff",
                me.clone(),
                "enterpriseAccountLogin",
                me,
                &rec.factors,
                None,
                None,
                note.as_deref()
                    .or(Some("staff synced from the core tax system")),
            )
            .await?;
        conclude(&verdict, None)?;
        let c = code.clone();
        let (demoted, plan) = self
            .write(move |w| {
                // Planned again from what this transaction reads: a
                // core-officers update committed since the read above must
                // not be undone by a plan made before it.
                let on_file = w.get::<CoreOfficersRecord>(&c)?;
                let plan = SyncPlan::of(&c, on_file.as_ref(), |k| w.get::<PersonRecord>(k))?;
                // Whoever the core tax system no longer names loses the
                // officer identity first, so that an enterprise never has
                // two legal representatives.
                let demoted = match &on_file {
                    Some(officers) => demote_replaced_officers(w, &c, officers)?,
                    // Without a record from the core tax system there is
                    // nothing to reconcile the officers with.
                    None => Vec::new(),
                };
                for (k, role) in &plan.to_add {
                    let role = *role;
                    match w.get::<StaffRecord>(k)? {
                        Some(s) if s.identity_type == role => {}
                        // Already staff under another identity type: the
                        // core tax system's record decides.
                        Some(mut s) => {
                            s.identity_type = role;
                            w.put(k, &s)?;
                        }
                        None => {
                            let credential_epoch = w.next_epoch()?;
                            w.put(
                                k,
                                &StaffRecord {
                                    identity_type: role,
                                    permission_identities: Default::default(),
                                    password_hash: None,
                                    password_change_required: false,
                                    credential_epoch,
                                },
                            )?;
                        }
                    }
                }
                Ok((demoted, plan))
            })
            .await?;
        log_demotions(
            &self.decider,
            &me_for_log,
            &demoted,
            "sync staff (同步办税人)",
        )
        .await?;
        // Each officer who matched is staff now; one who did not is named
        // and must redo real-name collection, without locking the other out.
        // Only when no one matched is the sync a failure.
        if plan.to_add.is_empty() {
            return Err(FlowError::RealNameMismatch(plan.problems.join("; ")));
        }
        let mut selection = self.enterprise_staff(&key, &code, name, flow.trim().to_owned())?;
        selection.sync_problems = plan.problems;
        Ok(selection)
    }

    /// Sends an SMS code to the picked staff member's real-name phone, unless
    /// a policy already forbids their login (R5).
    pub async fn enterprise_code(
        &self,
        flow: &str,
        staff_id: &str,
    ) -> Result<IssuedCode, FlowError> {
        let (key, rec) = self.flow(flow, "enterprise")?;
        let (staff_key, staff) = self.resolve(&key, &rec.account, staff_id)?;
        self.member_code(&STAFF, &key, &rec, &staff_key, staff.credential_epoch)
            .await
    }

    /// Sends an SMS code to the member's real-name phone, unless a policy
    /// already forbids their login (R5).
    async fn member_code(
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
    async fn member_login(
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

    fn resolve(
        &self,
        flow_key: &str,
        code: &str,
        staff_id: &str,
    ) -> Result<(String, StaffRecord), FlowError> {
        self.member(flow_key, code, staff_id)?
            .ok_or_else(|| invalid("staff", "no such staff member in this login"))
    }

    /// The real-name phone of the person in store key `owner/person`.
    fn phone_of(&self, key: &str) -> Result<crate::ids::Phone, FlowError> {
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

    async fn personal_factor(
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

    /// R2 last step: the picked staff member logs in by SMS code or personal
    /// password. Success marks the enterprise synced (R3).
    pub async fn enterprise_complete(
        &self,
        flow: &str,
        staff_id: &str,
        factor: PersonalFactor,
    ) -> Result<SessionGrant, FlowError> {
        let (key, rec) = self.flow(flow, "enterprise")?;
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
        self.take_flow_and(key, move |w| {
            if let Some(mut e) = w.get::<EnterpriseRecord>(&code)? {
                if !e.staff_synced {
                    e.staff_synced = true;
                    w.put(&code, &e)?;
                }
            }
            Ok(())
        })
        .await?;
        let subject = SessionSubject {
            principal_type: "Staff",
            principal_id: staff_key,
            credential_epoch: staff.credential_epoch,
            acting_for: None,
        };
        self.open_session(
            subject,
            staff.password_hash.is_some(),
            staff.password_change_required,
            "home",
        )
        .await
    }

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
        let subject = SessionSubject {
            principal_type: "Staff",
            principal_id: staff_key,
            credential_epoch: staff.credential_epoch,
            acting_for: None,
        };
        self.open_session(
            subject,
            staff.password_hash.is_some(),
            staff.password_change_required,
            "home",
        )
        .await
    }

    /// R7: a captcha for the natural-person login of `person`, good for
    /// that account only and counted against its quota. Whether the person
    /// exists is not looked at: an unknown account gets the same answer.
    pub async fn captcha(&self, person: PersonKey) -> Result<IssuedCode, FlowError> {
        self.issue_code(
            "captcha",
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
            .check_code(challenge, code, "captcha", &captcha_subject(&person))
            .await?;
        if captcha.is_none() {
            factors.insert("captcha".to_owned());
        }
        let rec = self.read()?.get::<PersonRecord>(&key)?;
        let failure = match captcha {
            Some(f) => Some(f),
            None => {
                self.guarded_verify(
                    format!("person:{key}"),
                    password,
                    rec.as_ref().and_then(|p| p.password_hash.clone()),
                    WRONG_ACCOUNT,
                )
                .await?
            }
        };
        if failure.is_none() {
            factors.insert("personal_password".to_owned());
        }
        self.own_login(
            "natural_person",
            "loginNaturalPerson",
            "Person",
            &key,
            &factors,
            failure,
        )
        .await?;
        let subject = SessionSubject {
            principal_type: "Person",
            credential_epoch: rec.map_or(0, |p| p.credential_epoch),
            principal_id: key,
            acting_for: None,
        };
        self.open_session(subject, true, false, "home").await
    }

    /// R8 step 1: the agency's credit code or taxpayer ID + agency password.
    pub async fn agency_login(
        &self,
        account: &str,
        password: String,
    ) -> Result<StaffSelection, FlowError> {
        let (code, rec, factors, failure) = self
            .account_password(
                account,
                password,
                "agency",
                "agency_password",
                |r: &AgencyRecord| r.password_hash.clone(),
            )
            .await?;
        self.own_login(
            "agency_account",
            "agencyAccountLogin",
            "Agency",
            &code,
            &factors,
            failure,
        )
        .await?;
        let rec = rec.expect("an allowed login has a stored agency");
        let (flow, key) = self.new_flow("agency", code.clone(), factors, None).await?;
        let reader = self.read()?;
        let members = reader
            .children::<AgentStaffRecord>(&code)?
            .into_iter()
            .map(|(k, s)| (k, None, s.password_hash.is_some()))
            .collect();
        let staff = choices(&reader, &key, members)?;
        Ok(self.selection(flow, rec.name, staff, false))
    }

    fn resolve_agent(
        &self,
        flow_key: &str,
        code: &str,
        agent_id: &str,
    ) -> Result<(String, AgentStaffRecord), FlowError> {
        self.member(flow_key, code, agent_id)?
            .ok_or_else(|| invalid("agent", "no such agent staff member in this login"))
    }

    /// The member of account `code` whose choice id in this flow is `id`.
    fn member<R: Record>(
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

    /// R8 step 2, SMS variant: sends the code to the agent's real-name phone.
    pub async fn agency_code(&self, flow: &str, agent_id: &str) -> Result<IssuedCode, FlowError> {
        let (key, rec) = self.flow(flow, "agency")?;
        let (agent_key, agent) = self.resolve_agent(&key, &rec.account, agent_id)?;
        self.member_code(&AGENT_STAFF, &key, &rec, &agent_key, agent.credential_epoch)
            .await
    }

    /// R8 step 2: the agent staff member logs in by password or SMS code;
    /// answers with the clients that recognize the agency.
    pub async fn agency_agent(
        &self,
        flow: &str,
        agent_id: &str,
        factor: PersonalFactor,
    ) -> Result<ClientSelection, FlowError> {
        let (key, mut rec) = self.flow(flow, "agency")?;
        let (agent_key, agent) = self.resolve_agent(&key, &rec.account, agent_id)?;
        let factors = self
            .member_login(
                &AGENT_STAFF,
                &key,
                &rec,
                Picked {
                    key: &agent_key,
                    epoch: agent.credential_epoch,
                    password_hash: agent.password_hash.clone(),
                },
                factor,
            )
            .await?;
        let agency = rec.account.clone();
        rec.factors = factors;
        rec.staff = Some(agent_key);
        rec.staff_epoch = agent.credential_epoch;
        let k = key.clone();
        self.write(move |w| w.put(&k, &rec)).await?;
        let reader = self.read()?;
        let mut clients = Vec::new();
        for (k, _) in reader.children::<ClientOfRecord>(&agency)? {
            let client = k.rsplit('/').next().unwrap_or_default().to_owned();
            let name = reader
                .get::<EnterpriseRecord>(&client)?
                .map(|e| e.name)
                .unwrap_or_default();
            clients.push(ClientChoice {
                credit_code: client,
                name,
            });
        }
        Ok(ClientSelection {
            flow: flow.trim().to_owned(),
            clients,
        })
    }

    /// R8 step 3: the client enterprise + the relationship's agreement
    /// password; the session acts for that client.
    pub async fn agency_client(
        &self,
        flow: &str,
        client: &str,
        agreement_password: String,
    ) -> Result<SessionGrant, FlowError> {
        let (key, rec) = self.flow(flow, "agency")?;
        let agent_key = rec.staff.clone().ok_or_else(|| {
            invalid(
                "flow",
                "pick and log in an agent staff member first (step 2)",
            )
        })?;
        let client = crate::ids::CreditCode::parse(client)
            .map_err(|e| invalid("client", e))?
            .to_string();
        let recognition = self
            .read()?
            .get::<RecognitionRecord>(&format!("{client}/{}", rec.account))?;
        let recognition_epoch = recognition.as_ref().map_or(0, |r| r.epoch);
        let mut factors = rec.factors.clone();
        let failure = self
            .guarded_verify(
                format!("agreement:{}/{client}", rec.account),
                agreement_password,
                recognition.map(|r| r.agreement_password_hash),
                WRONG_AGREEMENT,
            )
            .await?;
        if failure.is_none() {
            factors.insert("agreement_password".to_owned());
        }
        let verdict = self
            .decide(
                "act_for_client",
                uid("AgentStaff", &agent_key),
                "actForClient",
                uid("Enterprise", &client),
                &factors,
                Some(&client),
                failure.as_ref(),
                None,
            )
            .await?;
        conclude(&verdict, failure)?;
        let agent = self.read()?.get::<AgentStaffRecord>(&agent_key)?;
        self.take_flow(key).await?;
        let subject = SessionSubject {
            principal_type: "AgentStaff",
            principal_id: agent_key,
            credential_epoch: rec.staff_epoch,
            acting_for: Some((client, recognition_epoch)),
        };
        self.open_session(
            subject,
            agent.as_ref().is_some_and(|a| a.password_hash.is_some()),
            agent.is_some_and(|a| a.password_change_required),
            "home",
        )
        .await
    }
}
