//! The step machinery every login and password step shares: ask Cedar
//! whether the verified factors are enough, record the answer through the one
//! decision path (kind `login.<step>`), and turn a verdict and a failed
//! credential into the step's error — credentials first, so a policy's
//! refusal never tells someone without the password what state an account
//! is in.

use std::collections::BTreeSet;

use cedar_policy::EntityUid;
use serde_json::json;

use super::{FlowError, Login};
use crate::authn::challenge::ChallengeError;
use crate::decision::{Query, Verdict};
use crate::domain::{Action, Factor};
use crate::flows::decide::{Asked, Event};

/// What went wrong with a credential in a step, before Cedar is asked.
#[derive(Debug)]
pub(crate) enum Failure {
    Locked(u64),
    /// Refused unverified while other attempts at the same password are
    /// being verified and would reach the lockout threshold: retry in this
    /// many seconds. No lock, nothing counted.
    InProgress(u64),
    Wrong(&'static str),
    Code(ChallengeError),
}

impl Failure {
    pub(super) fn describe(&self) -> String {
        match self {
            Failure::Locked(s) => format!("locked for another {s} s"),
            Failure::InProgress(s) => FlowError::AttemptsInProgress {
                retry_after_secs: *s,
            }
            .to_string(),
            Failure::Wrong(m) => (*m).to_owned(),
            Failure::Code(e) => e.to_string(),
        }
    }
}

impl Login {
    /// Asks Cedar whether `factors` are enough for `action`, and records the
    /// decision (kind `login.<step>`) through the one decision path: durably
    /// before returning it when allowed (writes follow), with the answer
    /// otherwise. `failure` is the credential problem found before asking,
    /// recorded as the reason.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn decide(
        &self,
        step: &str,
        principal: EntityUid,
        action: Action,
        resource: EntityUid,
        factors: &BTreeSet<Factor>,
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
    pub(super) async fn decide_in(
        &self,
        step: &str,
        principal: EntityUid,
        action: Action,
        resource: EntityUid,
        context: serde_json::Value,
        acting_for: Option<&str>,
        failure: Option<&Failure>,
        note: Option<&str>,
    ) -> Result<Verdict, FlowError> {
        self.decide_about(
            step,
            principal,
            action,
            resource,
            context,
            (acting_for, failure, note),
            |e| e,
        )
        .await
    }

    /// [`Self::decide_in`] whose record `about` completes (what the step
    /// is about to change).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn decide_about(
        &self,
        step: &str,
        principal: EntityUid,
        action: Action,
        resource: EntityUid,
        context: serde_json::Value,
        (acting_for, failure, note): (Option<&str>, Option<&Failure>, Option<&str>),
        about: impl FnOnce(Event) -> Event,
    ) -> Result<Verdict, FlowError> {
        let asked = self.ask(principal, action, resource, context)?;
        let event = about(self.event(step, &asked, acting_for, failure, note));
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
    pub(super) async fn pre_check(
        &self,
        step: &str,
        principal: EntityUid,
        action: Action,
        resource: EntityUid,
        factors: &BTreeSet<Factor>,
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
    pub(super) fn ask(
        &self,
        principal: EntityUid,
        action: Action,
        resource: EntityUid,
        context: serde_json::Value,
    ) -> Result<Asked, FlowError> {
        Ok(self.decider.ask(Query {
            principal,
            action: action.uid(),
            resource,
            context,
            stamped: None,
        })?)
    }

    /// The record of an answer (kind `login.<step>`): a failed credential
    /// denies whatever Cedar said, and is the reason.
    pub(super) fn event(
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
}

/// The refusal a deny verdict stands for, in the bureau's words: the forbid
/// that decided says its own code and message (`@code`, `@message` on the
/// policy); a deny no forbid decided means the credentials were not enough.
pub(super) fn refusal(verdict: &Verdict) -> FlowError {
    match &verdict.refusal {
        Some(r) => FlowError::Forbidden(r.clone()),
        None => FlowError::BadCredentials("the credentials were not accepted"),
    }
}

/// Why a step was denied, for its decision record.
pub(super) fn refusal_text(verdict: &Verdict) -> String {
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
pub(super) fn conclude(verdict: &Verdict, failure: Option<Failure>) -> Result<(), FlowError> {
    credentials_first(failure)?;
    if verdict.allowed {
        Ok(())
    } else {
        Err(refusal(verdict))
    }
}

/// The failed credential of a step, as its error: a lock (or attempts in
/// flight holding this one back), then a wrong
/// password (always `invalid_credentials`, whoever the account is), then a
/// code problem.
pub(super) fn credentials_first(failure: Option<Failure>) -> Result<(), FlowError> {
    match failure {
        Some(Failure::Locked(s)) => Err(FlowError::Locked {
            retry_after_secs: s,
        }),
        Some(Failure::InProgress(s)) => Err(FlowError::AttemptsInProgress {
            retry_after_secs: s,
        }),
        Some(Failure::Wrong(m)) => Err(FlowError::BadCredentials(m)),
        Some(Failure::Code(e)) => Err(FlowError::Code(e)),
        None => Ok(()),
    }
}

/// Whether a policy already forbids the step, whatever factors follow: such
/// a step is refused before a code is sent.
pub(super) fn forbidden(verdict: &Verdict) -> Option<FlowError> {
    verdict.refusal.clone().map(FlowError::Forbidden)
}
