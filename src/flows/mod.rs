//! The bureau's multi-step operations: login and password steps (R1–R11),
//! staff maintenance and agency recognition (R12–R17), and the feeds from
//! other systems. Each step establishes the facts in Rust — which credentials
//! were verified, who the principal is — asks Cedar whether they are enough,
//! records the decision in the decision log, and only then answers. No rule
//! is decided here: the rules are in `policies/`.

pub mod decide;
pub mod feeds;
pub mod login;
pub mod maintenance;
pub mod metrics;
pub mod password;
mod persons;
pub mod sweep;

use std::collections::BTreeSet;
use std::sync::Arc;

use cedar_policy::EntityUid;
use serde::Serialize;
use serde_json::json;

use crate::audit::AuditError;
use crate::authn::challenge::{self, ChallengeError};
use crate::authn::session::{self, SessionError};
use crate::authn::touches::Touches;
use crate::authn::{lockout, rate, Authn, NewPasswordError};
use crate::decision::{uid, DecisionError, Engine, Query, Verdict};
use crate::policy::Refusal;
use crate::store::{
    owned_key, AgentStaffRecord, ChallengeRecord, CodeRateRecord, EnterpriseRecord, LockoutRecord,
    PersonRecord, RecognitionRecord, SessionRecord, StaffRecord, Store, StoreError, StoreReader,
    StoreWriter,
};
use decide::{Asked, Decider, Event};

/// Why a login or password step did not succeed. Mapped to HTTP in
/// `http::login`.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A wrong or unknown account, password or agreement password. The
    /// message never says which.
    #[error("{0}")]
    BadCredentials(&'static str),
    #[error("too many failed attempts; locked for another {retry_after_secs} s")]
    Locked { retry_after_secs: u64 },
    #[error(transparent)]
    Code(#[from] ChallengeError),
    /// A policy forbids the step; the policy says why, in the bureau's
    /// terms (its `@code` and `@message`).
    #[error("{}", .0.message)]
    Forbidden(Arc<Refusal>),
    /// The step cannot go on for a reason no policy decides (no real-name
    /// phone to send a code to): `code` and `message` say which.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("the login has expired or is unknown; start again")]
    FlowExpired,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("a one-time password must be changed before anything else (R12)")]
    PasswordChangeRequired,
    #[error("too many {quota}; try again in {retry_after_secs} s")]
    RateLimited { quota: Quota, retry_after_secs: u64 },
    #[error(transparent)]
    NewPassword(#[from] NewPasswordError),
    #[error("{0}")]
    RealNameMismatch(String),
    /// The hashing threads are full (`--hash-queue`): nothing was done.
    #[error(transparent)]
    Busy(#[from] crate::authn::HashBusy),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Decision(#[from] DecisionError),
}

/// The issuance quota a request for a code ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// `--codes-per-phone`: SMS codes to one phone per window.
    SmsPerPhone,
    /// `--captchas-per-account`: captchas for one natural-person account per
    /// window.
    CaptchasPerAccount,
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quota::SmsPerPhone => "codes sent to this phone",
            Quota::CaptchasPerAccount => "captchas requested for this account",
        })
    }
}

/// Where a code goes, which decides the quota it counts against.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// By SMS to a real-name phone; counted per phone.
    Sms(crate::ids::Phone),
    /// Rendered as a captcha for a natural-person login; counted per
    /// account as typed, whether or not the person exists, so the answer
    /// never tells which accounts exist.
    Captcha(crate::ids::PersonKey),
}

impl Delivery {
    /// The quota, its store key and its limit.
    fn quota(&self, cfg: &crate::authn::AuthnConfig) -> (Quota, String, u32) {
        match self {
            Delivery::Sms(p) => (
                Quota::SmsPerPhone,
                p.as_str().to_owned(),
                cfg.codes_per_phone,
            ),
            // Prefixed: a person key never collides with a phone number.
            Delivery::Captcha(person) => (
                Quota::CaptchasPerAccount,
                format!("captcha:{}", person.key()),
                cfg.captchas_per_account,
            ),
        }
    }
}

pub(crate) fn invalid(field: &str, message: impl ToString) -> FlowError {
    FlowError::Invalid {
        field: field.to_owned(),
        message: message.to_string(),
    }
}

/// What went wrong with a credential in a step, before Cedar is asked.
#[derive(Debug)]
pub(crate) enum Failure {
    Locked(u64),
    Wrong(&'static str),
    Code(ChallengeError),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Locked(s) => format!("locked for another {s} s"),
            Failure::Wrong(m) => (*m).to_owned(),
            Failure::Code(e) => e.to_string(),
        }
    }
}

/// A code issued for the calling system to deliver (SMS) or render (captcha).
#[derive(Debug, Serialize)]
pub struct IssuedCode {
    pub challenge: String,
    /// The code itself: for the calling system to deliver, never to log.
    pub code: String,
    pub expires_in_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
}

/// Where an SMS code goes.
#[derive(Debug, Serialize)]
pub struct Destination {
    /// For display: `138****0001`.
    pub phone_masked: String,
    /// For the delivering system only.
    pub phone: String,
}

/// A session handed out by a successful login (R9).
#[derive(Debug, Serialize)]
pub struct SessionGrant {
    pub session: String,
    pub expires_at_ms: u64,
    pub idle_timeout_secs: u64,
    /// Masked, for display.
    pub principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// `set_password` (no personal password yet, R10) or `change_password`
    /// (one-time password, R12: nothing else is allowed until changed).
    pub obligations: Vec<&'static str>,
    /// Where the caller sends the user: `home` (e-tax home page, R9) or
    /// `social_insurance_fee_system` (R6).
    pub route: &'static str,
}

/// Who a new session is for, and the credentials it is bound to.
pub(crate) struct SessionSubject {
    /// Cedar entity type: `Staff`, `AgentStaff`, `Person`, `Enterprise`.
    pub principal_type: &'static str,
    pub principal_id: String,
    /// The principal's credential epoch as read *before* its credentials
    /// were verified: a change that raced the login ends the new session too.
    pub credential_epoch: u64,
    /// For an agent: the client enterprise and the epoch of the recognition
    /// whose agreement password was verified.
    pub acting_for: Option<(String, u64)>,
}

/// The principal and acting-for enterprise behind a live session.
#[derive(Debug, Clone)]
pub struct SessionPrincipal {
    pub principal: EntityUid,
    pub acting_for: Option<EntityUid>,
}

/// The login service: the decision engine, the one decision path and the
/// credential machinery. Cheap to clone.
#[derive(Clone)]
pub struct Login {
    pub engine: Engine,
    /// Decides and records every decision (this service's and everyone
    /// else's: maintenance, feeds, `/v1/authorize` use it through here).
    pub decider: Decider,
    pub authn: Arc<Authn>,
    /// Sessions' last uses not yet written to the store.
    pub touches: Arc<Touches>,
    /// What the sweeper removed (`/metrics`).
    pub sweep_stats: Arc<sweep::SweepStats>,
}

impl Login {
    pub fn new(decider: Decider, authn: Arc<Authn>) -> Self {
        Self {
            engine: decider.engine.clone(),
            decider,
            authn,
            touches: Arc::default(),
            sweep_stats: Arc::default(),
        }
    }

    fn store(&self) -> &Store {
        self.engine.store()
    }

    fn read(&self) -> Result<StoreReader, FlowError> {
        Ok(self.store().read()?)
    }

    /// Runs a write transaction on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut StoreWriter) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, FlowError> {
        let store = self.store().clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .expect("store write task does not panic")
            .map_err(FlowError::from)
    }

    /// Asks Cedar whether `factors` are enough for `action`, and records the
    /// decision (kind `login.<step>`) through the one decision path: durably
    /// before returning it when allowed (writes follow), with the answer
    /// otherwise. `failure` is the credential problem found before asking,
    /// recorded as the reason.
    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        step: &str,
        principal: EntityUid,
        action: &str,
        resource: EntityUid,
        factors: &BTreeSet<String>,
        acting_for: Option<&str>,
        failure: Option<&Failure>,
        note: Option<&str>,
    ) -> Result<Verdict, FlowError> {
        let context = json!({ "factors": factors });
        self.decide_in(
            step, principal, action, resource, context, acting_for, failure, note,
        )
        .await
    }

    /// [`Self::decide`] with a whole Cedar context, for actions whose
    /// context says more than the verified factors. An allowed step is
    /// recorded before the writes that carry it out (a session, a code, a
    /// sync); a refused one with the answer.
    #[allow(clippy::too_many_arguments)]
    async fn decide_in(
        &self,
        step: &str,
        principal: EntityUid,
        action: &str,
        resource: EntityUid,
        context: serde_json::Value,
        acting_for: Option<&str>,
        failure: Option<&Failure>,
        note: Option<&str>,
    ) -> Result<Verdict, FlowError> {
        let asked = self.ask(principal, action, resource, context)?;
        let event = self.event(step, &asked, acting_for, failure, note);
        let event = if asked.verdict.allowed && failure.is_none() {
            event.before_write()
        } else {
            event
        };
        self.decider.record(event).await?;
        Ok(asked.verdict)
    }

    /// Asks whether the factors so far could still lead to `action`
    /// before a code is sent: the step is done (a code sent) unless a policy
    /// already forbids it, so its record is committed before the code is.
    async fn pre_check(
        &self,
        step: &str,
        principal: EntityUid,
        action: &str,
        resource: EntityUid,
        factors: &BTreeSet<String>,
        failure: Option<&Failure>,
    ) -> Result<Verdict, FlowError> {
        let context = json!({ "factors": factors });
        let asked = self.ask(principal, action, resource, context)?;
        let event = self.event(
            step,
            &asked,
            None,
            failure,
            Some("pre-check before sending an SMS code"),
        );
        let event = if failure.is_none() && forbidden(&asked.verdict).is_none() {
            event.before_write()
        } else {
            event
        };
        self.decider.record(event).await?;
        Ok(asked.verdict)
    }

    /// Asks Cedar, without recording: for a step whose record says what
    /// was done with the answer.
    fn ask(
        &self,
        principal: EntityUid,
        action: &str,
        resource: EntityUid,
        context: serde_json::Value,
    ) -> Result<Asked, FlowError> {
        Ok(self.decider.ask(Query {
            principal,
            action: uid("Action", action),
            resource,
            context,
        })?)
    }

    /// The record of an answer (kind `login.<step>`): a failed credential
    /// denies whatever Cedar said, and is the reason.
    fn event(
        &self,
        step: &str,
        asked: &Asked,
        acting_for: Option<&str>,
        failure: Option<&Failure>,
        note: Option<&str>,
    ) -> Event {
        let verdict = &asked.verdict;
        let mut event = Event::asked(&format!("login.{step}"), asked).with_step(step);
        if let Some(client) = acting_for {
            event = event.with_acting_for(client);
        }
        if failure.is_some() {
            event = event.denied();
        }
        let reason = match (failure, note) {
            (Some(f), Some(n)) => Some(format!("{}; {n}", f.describe())),
            (Some(f), None) => Some(f.describe()),
            (None, Some(n)) => Some(n.to_owned()),
            (None, None) if !verdict.allowed => Some(refusal_text(verdict)),
            _ => None,
        };
        match reason {
            Some(r) => event.with_reason(r),
            None => event,
        }
    }

    /// Verifies a password under lockout `lock_key`. The attempt is reserved
    /// (counted as a failure) in the transaction that checks the lock, before
    /// argon2 runs, so parallel guesses cannot all pass the check: a lock
    /// refuses without verifying, a failure stays counted, a success clears
    /// the record.
    async fn guarded_verify(
        &self,
        lock_key: String,
        password: String,
        phc: Option<String>,
        wrong: &'static str,
    ) -> Result<Option<Failure>, FlowError> {
        // A place on the hashing threads first: a step refused as busy has
        // not counted an attempt against the account.
        let slot = self.authn.hash_slot()?;
        let cfg = self.authn.config.clone();
        let key = lock_key.clone();
        let locked = self
            .write(move |w| {
                let rec = w.get::<LockoutRecord>(&key)?;
                match lockout::reserve(rec, &cfg, crate::now_ms()) {
                    Ok(reserved) => w.put(&key, &reserved).map(|()| None),
                    Err(secs) => Ok(Some(secs)),
                }
            })
            .await?;
        if let Some(secs) = locked {
            return Ok(Some(Failure::Locked(secs)));
        }
        if !self.authn.verify(slot, password, phc).await {
            return Ok(Some(Failure::Wrong(wrong)));
        }
        self.write(move |w| w.remove::<LockoutRecord>(&lock_key).map(|_| ()))
            .await?;
        Ok(None)
    }

    /// Issues a code bound to `purpose`/`subject`, counted against the
    /// quota of where it goes.
    async fn issue_code(
        &self,
        purpose: &str,
        subject: String,
        to: Delivery,
    ) -> Result<IssuedCode, FlowError> {
        self.issue_challenge(purpose, subject, to, false).await
    }

    /// [`Self::issue_code`], or with `decoy` a code that looks the same to
    /// the caller (and is rate-limited the same) but that no answer matches.
    async fn issue_challenge(
        &self,
        purpose: &str,
        subject: String,
        to: Delivery,
        decoy: bool,
    ) -> Result<IssuedCode, FlowError> {
        let cfg = self.authn.config.clone();
        let id = crate::random_id();
        let code = challenge::new_code();
        let now = crate::now_ms();
        let rec = if decoy {
            challenge::issue_decoy(purpose, &subject, now, cfg.code_ttl_secs)
        } else {
            challenge::issue(&id, &code, purpose, &subject, now, cfg.code_ttl_secs)
        };
        let (quota, quota_key, limit) = to.quota(&cfg);
        let key = id.clone();
        let limited = self
            .write(move |w| {
                let window = w.get::<CodeRateRecord>(&quota_key)?;
                match rate::admit(window, limit, cfg.code_rate_window_secs, now) {
                    Ok(window) => w.put(&quota_key, &window)?,
                    Err(retry_after_secs) => return Ok(Some(retry_after_secs)),
                }
                w.put(&key, &rec)?;
                Ok(None)
            })
            .await?;
        if let Some(retry_after_secs) = limited {
            return Err(FlowError::RateLimited {
                quota,
                retry_after_secs,
            });
        }
        Ok(IssuedCode {
            challenge: id,
            code,
            expires_in_secs: self.authn.config.code_ttl_secs,
            destination: match to {
                Delivery::Sms(p) => Some(Destination {
                    phone_masked: p.masked(),
                    phone: p.as_str().to_owned(),
                }),
                Delivery::Captcha(_) => None,
            },
        })
    }

    /// Checks a code against challenge `id`, which must have been issued for
    /// `purpose` and `subject`. Counts a wrong attempt; uses the code up.
    async fn check_code(
        &self,
        id: &str,
        code: &str,
        purpose: &str,
        subject: &str,
    ) -> Result<Option<Failure>, FlowError> {
        let max = self.authn.config.code_max_attempts;
        let (id, code, purpose, subject) = (
            id.trim().to_owned(),
            code.to_owned(),
            purpose.to_owned(),
            subject.to_owned(),
        );
        let result = self
            .write(move |w| {
                let Some(mut rec) = w.get::<ChallengeRecord>(&id)? else {
                    return Ok(Err(ChallengeError::Unknown));
                };
                if rec.purpose != purpose || rec.subject != subject {
                    return Ok(Err(ChallengeError::Unknown));
                }
                let r = challenge::attempt(&mut rec, &id, &code, crate::now_ms(), max);
                w.put(&id, &rec)?;
                Ok(r)
            })
            .await?;
        Ok(result.err().map(Failure::Code))
    }

    /// Creates a session for a principal that just logged in, bound to the
    /// credentials it logged in with.
    async fn open_session(
        &self,
        subject: SessionSubject,
        has_password: bool,
        password_change_required: bool,
        route: &'static str,
    ) -> Result<SessionGrant, FlowError> {
        let cfg = &self.authn.config;
        let now = crate::now_ms();
        let (token, key) = session::new_token();
        let SessionSubject {
            principal_type,
            principal_id,
            credential_epoch,
            acting_for,
        } = subject;
        let (acting_for, recognition_epoch) = acting_for.unzip();
        let rec = SessionRecord {
            principal_type: principal_type.to_owned(),
            principal_id: principal_id.clone(),
            acting_for: acting_for.clone(),
            created_ms: now,
            last_used_ms: now,
            expires_ms: now + cfg.session_max_secs * 1000,
            password_change_required,
            credential_epoch,
            recognition_epoch: recognition_epoch.unwrap_or_default(),
        };
        self.write(move |w| w.put(&key, &rec)).await?;
        let mut obligations = Vec::new();
        if password_change_required {
            obligations.push("change_password");
        } else if !has_password && principal_type != "Enterprise" {
            obligations.push("set_password");
        }
        Ok(SessionGrant {
            session: token,
            expires_at_ms: now + cfg.session_max_secs * 1000,
            idle_timeout_secs: cfg.session_idle_secs,
            principal: crate::ids::mask_text(&format!("{principal_type}::{principal_id:?}")),
            acting_for,
            obligations,
            route,
        })
    }

    /// The session behind `token`, re-checked now: not logged out, within its
    /// absolute and idle lifetime, its principal still in the store with the
    /// credentials the session was opened under (and an agent's client still
    /// recognizing the agency as it did then). Notes
    /// the use in memory (the idle clock; see [`crate::authn::touches`]), so
    /// this hot path writes nothing. `allow_pending_change` lets the
    /// password-change step through while a one-time password is still
    /// unchanged.
    pub async fn session(
        &self,
        token: &str,
        allow_pending_change: bool,
    ) -> Result<(String, SessionRecord), FlowError> {
        let key = session::token_key(token);
        let now = crate::now_ms();
        let reader = self.read()?;
        let rec = reader
            .get::<SessionRecord>(&key)?
            .ok_or(SessionError::Unknown)?;
        session::check(&rec, self.touches.last_used(&key), &self.authn.config, now)?;
        still_bound(&reader, &rec)?;
        drop(reader);
        if rec.password_change_required && !allow_pending_change {
            return Err(FlowError::PasswordChangeRequired);
        }
        self.touches.touch(&key, now);
        Ok((key, rec))
    }

    /// For `/v1/authorize`: the principal and acting-for enterprise of a
    /// live session.
    pub async fn session_principal(&self, token: &str) -> Result<SessionPrincipal, FlowError> {
        let (_, rec) = self.session(token, false).await?;
        Ok(SessionPrincipal {
            principal: uid(&rec.principal_type, &rec.principal_id),
            acting_for: rec.acting_for.map(|c| uid("Enterprise", &c)),
        })
    }

    /// Ends a session (logout). Unknown tokens are ignored.
    pub async fn logout(&self, token: &str) -> Result<(), FlowError> {
        let key = session::token_key(token);
        let k = key.clone();
        self.write(move |w| w.remove::<SessionRecord>(&k).map(|_| ()))
            .await?;
        self.touches.forget(&key);
        Ok(())
    }
}

/// Whether a session's principal still holds the credentials the session
/// was opened under, and an acting agent's client still the recognition.
/// Any change of either gave its record a new epoch, so one comparison each
/// covers password changes, resets, removal and re-adding, re-recognition.
fn still_bound(reader: &StoreReader, rec: &SessionRecord) -> Result<(), FlowError> {
    let id = rec.principal_id.as_str();
    let epoch = match rec.principal_type.as_str() {
        "Staff" => reader.get::<StaffRecord>(id)?.map(|r| r.credential_epoch),
        "AgentStaff" => reader
            .get::<AgentStaffRecord>(id)?
            .map(|r| r.credential_epoch),
        "Person" => reader.get::<PersonRecord>(id)?.map(|r| r.credential_epoch),
        "Enterprise" => reader
            .get::<EnterpriseRecord>(id)?
            .map(|r| r.credential_epoch),
        _ => None,
    }
    .ok_or(SessionError::PrincipalGone)?;
    if epoch != rec.credential_epoch {
        return Err(SessionError::CredentialsChanged.into());
    }
    if let Some(client) = &rec.acting_for {
        // An agent's key is `agency/person`; the recognition is
        // `client/agency`.
        let agency = id.split_once('/').map_or(id, |(a, _)| a);
        let recognition = reader.get::<RecognitionRecord>(&owned_key(client, agency))?;
        if recognition.is_none_or(|r| r.epoch != rec.recognition_epoch) {
            return Err(SessionError::CredentialsChanged.into());
        }
    }
    Ok(())
}

/// The refusal a deny verdict stands for, in the bureau's words: the forbid
/// that decided says its own code and message (`@code`, `@message` on the
/// policy); a deny no forbid decided means the credentials were not enough.
fn refusal(verdict: &Verdict) -> FlowError {
    match &verdict.refusal {
        Some(r) => FlowError::Forbidden(r.clone()),
        None => FlowError::BadCredentials("the credentials were not accepted"),
    }
}

/// Why a step was denied, for its decision record.
fn refusal_text(verdict: &Verdict) -> String {
    match &verdict.refusal {
        Some(r) => r.message.clone(),
        None if verdict.errors.is_empty() => {
            "the verified factors are not enough for this step".to_owned()
        }
        None => "unknown account or identity".to_owned(),
    }
}

/// The error a step ends with, in order: a lock, a failed credential, then
/// a policy that forbids or any other deny. Policies speak only once the
/// credentials verify: a refusal such as "real-name collection needed" or
/// "normal login first" would otherwise tell someone without the password
/// that the account exists and what state it is in.
fn conclude(verdict: &Verdict, failure: Option<Failure>) -> Result<(), FlowError> {
    credentials_first(failure)?;
    if verdict.allowed {
        Ok(())
    } else {
        Err(refusal(verdict))
    }
}

/// The failed credential of a step, as its error: a lock, then a wrong
/// password (always `invalid_credentials`, whoever the account is), then a
/// code problem.
fn credentials_first(failure: Option<Failure>) -> Result<(), FlowError> {
    match failure {
        Some(Failure::Locked(s)) => Err(FlowError::Locked {
            retry_after_secs: s,
        }),
        Some(Failure::Wrong(m)) => Err(FlowError::BadCredentials(m)),
        Some(Failure::Code(e)) => Err(FlowError::Code(e)),
        None => Ok(()),
    }
}

/// Whether a policy already forbids the step, whatever factors follow: such
/// a step is refused before a code is sent.
fn forbidden(verdict: &Verdict) -> Option<FlowError> {
    verdict.refusal.clone().map(FlowError::Forbidden)
}
