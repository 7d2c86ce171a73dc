//! The one decision path: ask Cedar, build the record, commit (or queue) it,
//! count it. Every path that decides — `/v1/authorize`, login and password
//! steps, maintenance, feeds, audit reads — goes through [`Decider`], so
//! every record carries its outcome, target, change, context and persons the
//! same way, and the decision metrics come from the same place.
//!
//! It lives in `flows` because it joins `decision` (Cedar) and `audit` (the
//! log), which know nothing of each other, and because `flows` may not see
//! HTTP: the HTTP layer only hands the final status and code to
//! [`Decider::finish`].
//!
//! **Final outcomes.** A request's records are kept in its [`RequestScope`]
//! until the answer is known, then committed with the outcome, status and
//! code of that answer — except a record that precedes a write (an allowed
//! step, a feed, a code about to be sent), which is committed *before* the
//! write with outcome `done`, so no write is ever without its record. If the
//! answer then is not a success, a second record with the same
//! `decision_id` says what happened; the last record of a `decision_id` is
//! its outcome.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use super::persons::Persons;
use crate::audit::pseudonym::Pseudonyms;
use crate::audit::{AuditError, AuditLog, DecisionRecord, FinalOutcome, Outcome, Target};
use crate::decision::{DecisionError, Engine, Query, Verdict, ACTING_FOR};
use crate::domain::{uid_text, EntityKind, StaffKey};
use crate::policy::explain::Explanation;
use crate::store::{owned_key, RecognitionRecord};

pub use super::metrics::DecisionMetrics;

/// The reason of a default deny: no permit applied (and no forbid, no error).
const NO_PERMIT: &str = "no permit matched";

/// A Cedar answer, before it is recorded.
pub struct Asked {
    pub query: Query,
    pub verdict: Verdict,
    pub micros: u64,
}

/// One decision to record: what was asked, what Cedar said, what it was
/// about. Built with [`Event::asked`] or [`Event::unasked`] and the `with_*`
/// methods; turned into a [`DecisionRecord`] only by the [`Decider`].
pub struct Event {
    /// Boxed: a record is hundreds of bytes, and an event is moved several
    /// times on its way to the log (a batch's hundred of them were 2 % of
    /// its CPU in `memmove`).
    record: Box<DecisionRecord>,
    /// The persons the request acted on: person key and name. The first is
    /// the target's `person`; others (the officers a feed puts on file)
    /// are named only in `persons`.
    target_persons: Vec<(String, Option<String>)>,
    when: Commit,
}

/// When an event's record is committed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// With the request's answer, which gives the outcome.
    WithAnswer,
    /// Now, as `done`, because a write follows; a later failure adds a
    /// second record.
    BeforeWrite,
    /// Now, as `done`, for good: it records something already done (an
    /// officer demoted by a sync that committed), whatever the answer.
    AlreadyDone,
}

impl Event {
    /// A Cedar decision of `kind` (`authorize`, `login.sms`, `maintain.addStaff`).
    pub fn asked(kind: &str, asked: &Asked) -> Self {
        let Asked {
            query,
            verdict,
            micros,
        } = asked;
        let acting_for = query.context.get(ACTING_FOR).map(entity_ref);
        let mut record = Box::new(DecisionRecord::unmasked(
            crate::random_id(),
            kind,
            uid_text(&query.principal),
            uid_text(&query.action),
            uid_text(&query.resource),
            acting_for.as_deref(),
            verdict.allowed,
            &verdict.reasons,
            &verdict.errors,
            &verdict.policy_version,
            *micros,
        ));
        record.unmatched_permits = verdict.unmatched_permits.clone();
        record.context = compact_context(&query.context);
        if !verdict.allowed && verdict.reasons.is_empty() && verdict.errors.is_empty() {
            record.reason = Some(NO_PERMIT.to_owned());
        }
        Self {
            record,
            target_persons: Vec::new(),
            when: Commit::WithAnswer,
        }
    }

    /// A recorded act that Cedar does not decide (a feed from a trusted
    /// system, an auditor's read): `by` did `action` on `resource`.
    pub fn unasked(
        kind: &str,
        by: &str,
        action: &str,
        resource: &str,
        policy_version: &str,
    ) -> Self {
        Self {
            record: Box::new(DecisionRecord::unmasked(
                crate::random_id(),
                kind,
                by,
                action,
                resource,
                None,
                true,
                &[],
                &[],
                policy_version,
                0,
            )),
            target_persons: Vec::new(),
            when: Commit::WithAnswer,
        }
    }

    /// The enterprise an agent acts for, when the flow knows it rather
    /// than the context.
    pub fn with_acting_for(mut self, client: &str) -> Self {
        self.record.acting_for = Some(client.to_owned());
        self
    }

    /// A credential failed before Cedar was asked: the step is denied
    /// whatever Cedar said.
    pub fn denied(mut self) -> Self {
        self.record.decision = Outcome::Deny;
        self
    }

    pub fn with_step(mut self, step: &str) -> Self {
        self.record.step = Some(step.to_owned());
        self
    }

    /// Why the step was refused, or a note on what it did; replaces the
    /// default reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        // A default deny keeps saying so: it is the answer to "why".
        self.record.reason = Some(match self.record.reason.take() {
            Some(default) if default == NO_PERMIT => format!("{NO_PERMIT}; {reason}"),
            _ => reason,
        });
        self
    }

    pub fn with_target(mut self, target: Target) -> Self {
        self.record.target = Some(target);
        self
    }

    /// The person acted on (a person key such as `resident_id:…`) and their
    /// name if known: the target's `person`/`name` and a `target` entry in
    /// `persons`.
    pub fn with_target_person(mut self, person_key: &str, name: Option<&str>) -> Self {
        let target = self.record.target.get_or_insert_with(Target::default);
        target.person = Some(person_key.to_owned());
        target.name = name.map(crate::ids::mask_name);
        self.target_persons = vec![(person_key.to_owned(), name.map(str::to_owned))];
        self
    }

    /// Another person the request acted on, named in `persons` (role
    /// `target`) so a filter by that person finds the record.
    pub fn with_other_person(mut self, person_key: &str, name: Option<&str>) -> Self {
        self.target_persons
            .push((person_key.to_owned(), name.map(str::to_owned)));
        self
    }

    /// What the request changed, as `{field: {"before": …, "after": …}}` or
    /// any other JSON object.
    pub fn with_change(mut self, change: Value) -> Self {
        self.record.change = Some(change);
        self
    }

    /// Names what the request did when that is not the action Cedar was
    /// asked about (a search for a person to add is decided as `addStaff`
    /// but adds no one).
    pub fn with_kind(mut self, kind: &str) -> Self {
        self.record.kind = kind.to_owned();
        self
    }

    /// A write follows this decision: the record is committed before it.
    pub fn before_write(mut self) -> Self {
        self.when = Commit::BeforeWrite;
        self
    }

    /// The record says what was already done, whatever the request's
    /// answer turns out to be.
    pub fn already_done(mut self) -> Self {
        self.when = Commit::AlreadyDone;
        self
    }

    /// How long the act took, for acts Cedar did not time.
    pub fn with_latency(mut self, micros: u64) -> Self {
        self.record.latency_us = micros;
        self
    }

    /// The id the caller is given for this decision.
    pub fn decision_id(&self) -> &str {
        &self.record.decision_id
    }
}

/// The kind of the record of a request refused before any decision.
pub const REJECTED_KIND: &str = "rejected";
/// The kinds of `/v1/authorize`'s records: one question, or one of a batch.
pub const AUTHORIZE_KIND: &str = "authorize";
pub const AUTHORIZE_BATCH_KIND: &str = "authorize_batch";

/// A request's records not yet final, and who asked: set once per request
/// by the HTTP layer, so no function passes the caller along.
#[derive(Default)]
pub struct RequestScope {
    caller: Option<String>,
    /// The request's id (`X-Request-Id`), written into each record.
    request_id: Option<String>,
    /// Each record made while answering, and whether it is already
    /// committed (before a write).
    records: Mutex<Vec<(DecisionRecord, bool)>>,
}

tokio::task_local! {
    static REQUEST: Arc<RequestScope>;
}

impl RequestScope {
    pub fn new(caller: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            caller,
            request_id: None,
            records: Mutex::default(),
        })
    }

    /// The scope of HTTP request `id` (`X-Request-Id`): its records name it.
    pub fn for_request(caller: Option<String>, id: &str) -> Arc<Self> {
        Arc::new(Self {
            caller,
            request_id: Some(id.to_owned()),
            records: Mutex::default(),
        })
    }

    /// Runs `f` as this request: every decision it records names this
    /// caller and waits for [`Decider::finish`] to learn its outcome.
    pub async fn run<F: std::future::Future>(self: &Arc<Self>, f: F) -> F::Output {
        REQUEST.scope(self.clone(), f).await
    }

    /// Whether anything was recorded while answering (asked before
    /// [`Decider::finish`] takes the records).
    pub fn has_records(&self) -> bool {
        !lock(&self.records).is_empty()
    }

    fn current() -> Option<Arc<Self>> {
        REQUEST.try_with(Arc::clone).ok()
    }
}

/// Decides and records. Cheap to clone.
#[derive(Clone)]
pub struct Decider {
    pub engine: Engine,
    pub audit: AuditLog,
    persons: Arc<Persons>,
    pub metrics: Arc<DecisionMetrics>,
}

impl Decider {
    pub fn new(engine: Engine, audit: AuditLog, pseudonyms: Pseudonyms) -> Self {
        Self {
            engine,
            audit,
            persons: Arc::new(Persons::new(pseudonyms)),
            metrics: Arc::default(),
        }
    }

    pub fn pseudonyms(&self) -> &Pseudonyms {
        self.persons.pseudonyms()
    }

    /// Asks Cedar, timing the answer.
    pub fn ask(&self, query: Query) -> Result<Asked, DecisionError> {
        self.ask_and(query, |engine, q| Ok((engine.decide(q)?, ())))
            .map(|(asked, ())| asked)
    }

    /// Asks Cedar as [`Decider::ask`] does, with the trace of the same
    /// decision ([`Engine::decide_explained`]).
    pub fn ask_explained(&self, query: Query) -> Result<(Asked, Explanation), DecisionError> {
        self.ask_and(query, Engine::decide_explained)
    }

    fn ask_and<T>(
        &self,
        query: Query,
        decide: impl FnOnce(&Engine, &Query) -> Result<(Verdict, T), DecisionError>,
    ) -> Result<(Asked, T), DecisionError> {
        let started = Instant::now();
        // A fleet replica past its staleness bound fails closed, cached
        // entities or not.
        self.engine.store().check_fresh()?;
        let (verdict, also) = decide(&self.engine, &query)?;
        let asked = Asked {
            query,
            verdict,
            micros: started.elapsed().as_micros() as u64,
        };
        Ok((asked, also))
    }

    /// Records `event`: held until the request's answer is known, or
    /// committed now when a write follows it (or no request is being
    /// answered, as in tests calling a flow directly).
    pub async fn record(&self, event: Event) -> Result<(), AuditError> {
        let scope = RequestScope::current();
        let when = event.when;
        let mut record = *self.complete(event, scope.as_deref());
        match (scope, when) {
            (Some(scope), Commit::WithAnswer) => {
                lock(&scope.records).push((record, false));
                Ok(())
            }
            (Some(scope), Commit::BeforeWrite) => {
                record.outcome = Some(FinalOutcome::Done);
                self.audit.commit(record.clone()).await?;
                lock(&scope.records).push((record, true));
                Ok(())
            }
            (_, when) => {
                record.outcome = Some(if when == Commit::WithAnswer {
                    answered_by_decision(&record)
                } else {
                    FinalOutcome::Done
                });
                self.metrics.observe(&record);
                self.audit.commit(record).await.map(|_| ())
            }
        }
    }

    /// Queues `/v1/authorize` records for the next group commit: their
    /// answer (200 with the decision) is known as they are made, so the
    /// outcome is the decision's — `done` if allowed, `refused` if not.
    pub async fn enqueue(&self, events: Vec<Event>) -> Result<(), AuditError> {
        let scope = RequestScope::current();
        let records: Vec<_> = events
            .into_iter()
            .map(|e| {
                let mut r = self.complete(e, scope.as_deref());
                r.outcome = Some(answered_by_decision(&r));
                r
            })
            .collect();
        self.metrics.observe_all(&records);
        self.audit.enqueue(records).await
    }

    /// The request's answer is `status` (with `code` when an error): its
    /// held records are committed with that outcome, and a record committed
    /// before a write that did not end `done` is followed by one that says
    /// what happened.
    pub async fn finish(
        &self,
        scope: &RequestScope,
        status: u16,
        code: Option<&str>,
    ) -> Result<(), AuditError> {
        let records = std::mem::take(&mut *lock(&scope.records));
        let outcome = FinalOutcome::of_status(status);
        // [`Self::reject`] covers a refusal that recorded nothing.
        for (mut record, committed) in records {
            if committed && outcome == FinalOutcome::Done {
                self.metrics.observe(&record);
                continue;
            }
            if committed {
                record.timestamp_ms = crate::now_ms();
                record.reason = Some(format!(
                    "the step did not complete: {}",
                    code.unwrap_or("error")
                ));
            }
            record.outcome = Some(outcome);
            if outcome != FinalOutcome::Done {
                record.status = Some(status);
                record.code = code.map(str::to_owned);
            }
            self.metrics.observe(&record);
            self.audit.commit(record).await?;
        }
        Ok(())
    }

    /// A request refused before it reached a decision (bad input, a key or
    /// session that does not hold, a password the rule refuses): when
    /// nothing was recorded while answering (see
    /// [`RequestScope::has_records`]), one record says who asked `asked`
    /// (`METHOD /route`, in the request log's form) and why it was refused,
    /// and every refusal is on file.
    pub async fn reject(
        &self,
        scope: &RequestScope,
        asked: &str,
        status: u16,
        code: &str,
        message: &str,
    ) -> Result<(), AuditError> {
        let by = format!(
            "Caller::{:?}",
            scope.caller.as_deref().unwrap_or("anonymous")
        );
        let version = self.engine.snapshot().version().to_owned();
        let event = Event::unasked(REJECTED_KIND, &by, asked, asked, &version)
            .denied()
            .with_reason(message);
        let mut record = *self.complete(event, Some(scope));
        record.outcome = Some(FinalOutcome::of_status(status));
        record.status = Some(status);
        record.code = Some(code.to_owned());
        self.metrics.observe(&record);
        self.audit.commit(record).await.map(|_| ())
    }

    /// The record of `event`: caller, persons, the missing recognition
    /// behind an agent's refusal, everything masked.
    fn complete(&self, event: Event, scope: Option<&RequestScope>) -> Box<DecisionRecord> {
        let Event {
            mut record,
            target_persons,
            ..
        } = event;
        record.caller = scope.and_then(|s| s.caller.clone());
        record.request_id = scope.and_then(|s| s.request_id.clone());
        if let Some(why) = self.missing_recognition(&record) {
            record.reason = Some(match record.reason.take() {
                Some(r) => format!("{r}; {why}"),
                None => why,
            });
        }
        record.persons = self
            .persons
            .of(self.engine.store(), &record.principal, &target_persons);
        record.mask();
        record
    }

    /// For an agent refused while acting for a client: the recognition the
    /// client no longer (or never) gave, named, since no rule says it.
    fn missing_recognition(&self, record: &DecisionRecord) -> Option<String> {
        if record.decision == Outcome::Allow {
            return None;
        }
        let (ty, id) = parse_uid(&record.principal)?;
        if ty != EntityKind::AgentStaff.as_str() {
            return None;
        }
        // A uid from the context, or the bare credit code a login step knows.
        let acting_for = record.acting_for.as_deref()?;
        let client = parse_uid(acting_for).map_or_else(|| acting_for.to_owned(), |(_, id)| id);
        let agency = id.parse::<StaffKey>().ok()?.enterprise;
        let agency = agency.as_str();
        let reader = self.engine.store().read().ok()?;
        let held = reader
            .get::<RecognitionRecord>(&owned_key(&client, agency))
            .ok()?
            .is_some();
        (!held).then(|| {
            format!(
                "enterprise {client} does not recognize agency {agency} as its tax agent \
                 (no 代理机构认定: never given or cancelled)"
            )
        })
    }
}

/// The outcome of a decision answered as decided (`/v1/authorize`, or a
/// flow called outside any request): done if allowed, refused if not.
fn answered_by_decision(r: &DecisionRecord) -> FinalOutcome {
    if r.decision == Outcome::Allow {
        FinalOutcome::Done
    } else {
        FinalOutcome::Refused
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding it leaves a plain list, still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `Etax::Staff::"a/b"` → (`Staff`, `a/b`).
pub(super) fn parse_uid(uid: &str) -> Option<(String, String)> {
    let (path, rest) = uid.split_once("::\"")?;
    let ty = path.rsplit("::").next()?;
    Some((ty.to_owned(), rest.strip_suffix('"')?.replace("\\\"", "\"")))
}

/// `Etax::Enterprise::"…"` for a context entity reference in either of
/// Cedar's JSON forms (`{"__entity": {type, id}}` or `{type, id}`).
pub fn entity_ref(v: &Value) -> String {
    let e = v.get("__entity").unwrap_or(v);
    match (
        e.get("type").and_then(|t| t.as_str()),
        e.get("id").and_then(|i| i.as_str()),
    ) {
        (Some(t), Some(id)) => format!("{t}::{id:?}"),
        _ => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
    }
}

/// The context worth recording: absent when empty; `actingFor` (already
/// its own field) and the sidecar's clock attributes (the record's own time
/// is that clock; the calendar's feed records say what the calendar held)
/// left out. Entity references are shortened to their uid string to keep
/// `/v1/authorize` records small.
fn compact_context(context: &Value) -> Option<Value> {
    let map = context.as_object()?;
    let kept: serde_json::Map<String, Value> = map
        .iter()
        .filter(|(k, _)| {
            k.as_str() != ACTING_FOR && !crate::decision::CLOCK_ATTRIBUTES.contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), shorten_entities(v)))
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

fn shorten_entities(v: &Value) -> Value {
    match v {
        Value::Object(o) if o.contains_key("__entity") => Value::String(entity_ref(v)),
        Value::Array(items) => Value::Array(items.iter().map(shorten_entities).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), shorten_entities(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_context_are_read_and_shortened() {
        assert_eq!(
            parse_uid("Etax::Staff::\"9121/resident_id:1\""),
            Some(("Staff".into(), "9121/resident_id:1".into()))
        );
        let ctx = serde_json::json!({
            "actingFor": {"__entity": {"type": "Etax::Enterprise", "id": "X"}},
            "otherHolders": [{"__entity": {"type": "Etax::IdentityType", "id": "staff"}}],
            "factors": ["password"]
        });
        assert_eq!(
            compact_context(&ctx).unwrap(),
            serde_json::json!({"otherHolders": ["Etax::IdentityType::\"staff\""], "factors": ["password"]})
        );
        assert_eq!(compact_context(&serde_json::json!({})), None);
    }
}
