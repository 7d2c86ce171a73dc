//! `POST /v1/authorize` and `POST /v1/authorize/batch`: the wire format of
//! an authorization question and its answer.

use std::str::FromStr;

use cedar_policy::EntityUid;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::AppState;
use crate::decision::{Query, ACTING_FOR};
use crate::domain::{EntityKind, StaffKey, StaffKeyError, NAMESPACE};
use crate::flows::clock::Clock;
use crate::flows::decide::{Asked, Event, AUTHORIZE_BATCH_KIND, AUTHORIZE_KIND};
use crate::ids::{IdError, PersonKey};

/// Most questions one batch may carry.
pub const MAX_BATCH: usize = 100;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// An entity reference; or leave it out and give `session`.
    #[serde(default)]
    pub principal: Option<String>,
    /// A login session token: the principal and `context.actingFor` come
    /// from the session, re-checked on every use.
    #[serde(default)]
    pub session: Option<String>,
    pub action: String,
    pub resource: String,
    /// The action's context as Cedar's JSON: every string in it at most
    /// 256 bytes and every array at most 64 members. The clock's `now`,
    /// `localTime` and `workday` are the sidecar's to set (for
    /// `useFunction`): a question that sends one is refused.
    #[serde(default = "empty_object")]
    pub context: serde_json::Value,
    // No `entities`: every entity comes from the identity store, so a
    // caller's made-up identity is refused as an unknown field.
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub requests: Vec<AuthorizeRequest>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthorizeResponse {
    pub decision: &'static str,
    pub reasons: Vec<String>,
    pub errors: Vec<String>,
    pub decision_id: String,
    pub policy_version: String,
}

impl AuthorizeResponse {
    /// The answer, and the event the decision log records of it.
    fn answer(kind: &str, asked: Asked) -> (Self, Event) {
        let event = Event::asked(kind, &asked);
        let v = asked.verdict;
        let response = Self {
            decision: if v.allowed { "allow" } else { "deny" },
            reasons: v.reasons,
            // Errors name the entities asked about, as sent: masked like
            // the decision record.
            errors: v.errors.iter().map(|e| crate::ids::mask_text(e)).collect(),
            decision_id: event.decision_id().to_owned(),
            policy_version: v.policy_version,
        };
        (response, event)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    pub results: Vec<AuthorizeResponse>,
}

/// Parses an entity reference such as `Staff::"…"` or `Etax::Staff::"…"`;
/// the bureau's namespace may be left out.
pub fn parse_uid(field: &str, s: &str) -> Result<EntityUid, ApiError> {
    let uid = parse_any_uid(field, s)?;
    match crate::domain::id_too_long(uid.id().unescaped().len()) {
        Some(why) => Err(ApiError::invalid(field, why)),
        None => Ok(uid),
    }
}

fn parse_any_uid(field: &str, s: &str) -> Result<EntityUid, ApiError> {
    if let Some(uid) = plain_uid(s) {
        return Ok(uid);
    }
    let full = if s.starts_with(&format!("{NAMESPACE}::")) {
        s.to_owned()
    } else {
        format!("{NAMESPACE}::{s}")
    };
    // Neither the value nor more than a bounded part of Cedar's message
    // (which quotes it): a refusal is answered and recorded, and an id of
    // kilobytes must not be carried into either.
    EntityUid::from_str(&full).map_err(|e| {
        ApiError::invalid(
            field,
            format!(
                "not an entity reference like {}::\"id\"; Cedar's reading of it, cut short if long: {}",
                EntityKind::Staff,
                crate::decision::bounded(&e.to_string())
            ),
        )
    })
}

/// `[Etax::]<Kind>::"<id>"` of one of the bureau's types with an id that
/// has no escapes — what every caller sends — built without Cedar's
/// parser, which was the larger part of reading a question. The id is then
/// exactly the characters between the quotes, as the parser would read
/// them; anything else (escapes, spaces, other types) is left to it.
fn plain_uid(s: &str) -> Option<EntityUid> {
    let s = s
        .strip_prefix(NAMESPACE)
        .and_then(|rest| rest.strip_prefix("::"))
        .unwrap_or(s);
    let (ty, quoted) = s.split_once("::\"")?;
    let id = quoted.strip_suffix('"')?;
    if id.contains(['"', '\\']) || id.chars().any(char::is_control) {
        return None;
    }
    Some(ty.parse::<EntityKind>().ok()?.uid(id))
}

/// Parses an entity reference whose id, for an entity keyed by a person
/// (`Person`, `Staff`, `AgentStaff`), must be the typed key: an ID number
/// that is not one — full-width digits, letters glued on, `210102-1980…` —
/// would reach Cedar, the errors and the decision log in a form masking
/// does not know. The refusal never quotes the value.
pub fn parse_person_keyed_uid(field: &str, s: &str) -> Result<EntityUid, ApiError> {
    let uid = parse_uid(field, s)?;
    check_person_key(field, &uid)?;
    Ok(uid)
}

fn check_person_key(field: &str, uid: &EntityUid) -> Result<(), ApiError> {
    let Some(kind) = EntityKind::of(uid) else {
        return Ok(());
    };
    let id = uid.id().unescaped();
    let why = match kind {
        EntityKind::Person => PersonKey::parse_key(id).err().map(|e| id_problem(&e)),
        EntityKind::Staff | EntityKind::AgentStaff => {
            id.parse::<StaffKey>().err().map(|e| match e {
                StaffKeyError::NoSeparator(_) => {
                    "no '/' between the credit code and the person".to_owned()
                }
                StaffKeyError::Enterprise(e) => format!("the credit code: {}", id_problem(&e)),
                StaffKeyError::Person(e) => id_problem(&e),
            })
        }
        _ => None,
    };
    match why {
        Some(why) => Err(ApiError::invalid(
            field,
            format!(
                "a {kind} id must be {} with an ASCII ID number: {why} (the value is not repeated)",
                match kind {
                    EntityKind::Person => "`<id_type>:<id_number>`",
                    _ => "`<credit code>/<id_type>:<id_number>`",
                }
            ),
        )),
        None => Ok(()),
    }
}

/// What is wrong with an identifier, without the characters it holds.
fn id_problem(e: &IdError) -> String {
    match e {
        IdError::Length { expected, got } => {
            format!("must be {expected} characters long, got {got}")
        }
        IdError::Character { position, .. } => {
            format!("character {position} is not allowed here")
        }
        IdError::CheckCharacter { .. } => "the check character does not match".to_owned(),
        IdError::UnknownIdType(_) => format!(
            "unknown ID type (expected one of: {})",
            crate::ids::IdType::ALL_CODES.join(", ")
        ),
        IdError::Separator => "no ':' between the ID type and the number".to_owned(),
    }
}

/// `context.actingFor`, when it names an entity keyed by a person.
fn check_acting_for(context: &serde_json::Value) -> Result<(), ApiError> {
    let Some(entity) = context.get(ACTING_FOR).and_then(|a| a.get("__entity")) else {
        return Ok(());
    };
    let (Some(ty), Some(id)) = (
        entity.get("type").and_then(|t| t.as_str()),
        entity.get("id").and_then(|i| i.as_str()),
    ) else {
        return Ok(());
    };
    let ty = ty
        .strip_prefix(NAMESPACE)
        .and_then(|t| t.strip_prefix("::"))
        .unwrap_or(ty);
    let Ok(kind) = ty.parse::<EntityKind>() else {
        return Ok(());
    };
    check_person_key(&format!("context.{ACTING_FOR}"), &kind.uid(id))
}

fn to_query(r: AuthorizeRequest) -> Result<Query, ApiError> {
    if !r.context.is_object() {
        return Err(ApiError::invalid("context", "must be a JSON object"));
    }
    let principal = r
        .principal
        .as_deref()
        .ok_or_else(|| ApiError::invalid("principal", "give principal or session"))?;
    check_acting_for(&r.context)?;
    Ok(Query {
        principal: parse_person_keyed_uid("principal", principal)?,
        action: parse_uid("action", &r.action)?,
        resource: parse_person_keyed_uid("resource", &r.resource)?,
        context: r.context,
        stamped: None,
    })
}

/// A question asked with a session: the session supplies the principal and
/// the acting-for enterprise; the caller may not supply either.
async fn session_query(
    state: &AppState,
    mut body: AuthorizeRequest,
    token: &str,
) -> Result<Query, ApiError> {
    if body.principal.is_some() {
        return Err(ApiError::invalid(
            "principal",
            "give principal or session, not both",
        ));
    }
    if !body.context.is_object() {
        return Err(ApiError::invalid("context", "must be a JSON object"));
    }
    if body.context.get(ACTING_FOR).is_some() {
        return Err(ApiError::invalid(
            "context.actingFor",
            "comes from the session; do not send it",
        ));
    }
    // A session proves who logged in, not what a caller says was verified
    // since: verified factors exist only inside the login and password
    // steps, so a session's question cannot claim any.
    for claimed in VERIFIED_FACTS {
        if body.context.get(claimed).is_some() {
            return Err(ApiError::invalid(
                format!("context.{claimed}"),
                "a question asked with a session cannot claim verified factors; \
                 the login and password steps establish them",
            ));
        }
    }
    let s = super::session_principal(state, token)?;
    if let Some(client) = &s.acting_for {
        body.context[ACTING_FOR] = serde_json::json!({ "__entity": {
            "type": client.type_name().to_string(),
            "id": client.id().unescaped(),
        }});
    }
    body.principal = Some(s.principal.to_string());
    to_query(body)
}

/// Context attributes that state what the service verified (the login and
/// password actions' contexts).
const VERIFIED_FACTS: [&str; 2] = ["factors", "hasPassword"];

/// The question a request asks: with its own principal, or with the
/// session's principal and acting-for enterprise.
pub(crate) async fn query_of(state: &AppState, body: AuthorizeRequest) -> Result<Query, ApiError> {
    query_at(state, body, &Clock::at(crate::now_ms())).await
}

/// [`query_of`], asked at the instant `clock` holds.
async fn query_at(
    state: &AppState,
    mut body: AuthorizeRequest,
    clock: &Clock,
) -> Result<Query, ApiError> {
    let mut query = match body.session.take() {
        Some(token) => session_query(state, body, &token).await,
        None => to_query(body),
    }?;
    // The time comes from the sidecar's clock (`flows::clock`), never the caller's.
    let snap = state.engine.snapshot();
    crate::flows::clock::stamp(&state.engine, &snap, &mut query, clock)?;
    Ok(query)
}

pub async fn authorize(
    state: &AppState,
    body: AuthorizeRequest,
) -> Result<AuthorizeResponse, ApiError> {
    decide_one(state, query_of(state, body).await?).await
}

/// One question through the decision path, its record enqueued.
async fn decide_one(state: &AppState, query: Query) -> Result<AuthorizeResponse, ApiError> {
    answered(state, state.decider.ask(query)?).await
}

/// The answer to a question asked, its record enqueued.
pub(crate) async fn answered(
    state: &AppState,
    asked: Asked,
) -> Result<AuthorizeResponse, ApiError> {
    let (response, event) = AuthorizeResponse::answer(AUTHORIZE_KIND, asked);
    state.decider.enqueue(vec![event]).await?;
    Ok(response)
}

/// Checks every question first, so a bad one rejects the batch before any
/// decision is made.
pub async fn authorize_batch(
    state: &AppState,
    body: BatchRequest,
) -> Result<BatchResponse, ApiError> {
    if body.requests.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "requests",
            format!(
                "{} requests; a batch holds at most {MAX_BATCH}",
                body.requests.len()
            ),
        ));
    }
    // One instant for the whole batch, as for one question: its questions
    // are asked together, and share the clock's values (the calendar
    // included) and the context Cedar makes of them (`decision::context`).
    let clock = Clock::at(crate::now_ms());
    let mut queries = Vec::with_capacity(body.requests.len());
    for (i, r) in body.requests.into_iter().enumerate() {
        queries.push(
            query_at(state, r, &clock)
                .await
                .map_err(|e| e.within(&format!("requests[{i}]")))?,
        );
    }
    // A hundred decisions are about a millisecond of CPU: decided here, a
    // few at a time, yielding between them so the worker serves other
    // connections meanwhile. On the blocking pool instead, each batch woke
    // another thread and its records were freed on a core that had not made
    // them: about 7 % more CPU a question (BENCHMARKS.md, session 23).
    let mut results = Vec::with_capacity(queries.len());
    let mut events = Vec::with_capacity(queries.len());
    for (i, q) in queries.into_iter().enumerate() {
        if i > 0 && i % DECIDED_BETWEEN_YIELDS == 0 {
            tokio::task::yield_now().await;
        }
        let asked = state
            .decider
            .ask(q)
            .map_err(|e| ApiError::from(e).within(&format!("requests[{i}]")))?;
        let (response, event) = AuthorizeResponse::answer(AUTHORIZE_BATCH_KIND, asked);
        results.push(response);
        events.push(event);
    }
    state.decider.enqueue(events).await?;
    Ok(BatchResponse { results })
}

/// Questions of a batch decided before its task yields the worker: tens of
/// microseconds each, so another connection waits at most a few hundred.
const DECIDED_BETWEEN_YIELDS: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain form is read exactly as Cedar's parser reads it, and
    /// whatever it does not cover still reaches the parser.
    #[test]
    fn plain_references_read_as_cedars_parser_reads_them() {
        for s in [
            r#"Staff::"91210102MA0TAX001F/resident_id:210102199001015035""#,
            r#"Etax::Function::"vat_filing""#,
            r#"Action::"useFunction""#,
            r#"Person::"passport:E1234 5""#,
            r#"Enterprise::"""#,
        ] {
            let cedar =
                EntityUid::from_str(&format!("{NAMESPACE}::{}", s.trim_start_matches("Etax::")))
                    .unwrap();
            assert_eq!(plain_uid(s), Some(cedar), "{s}");
        }
        for s in [
            r#"Staff::"a\"b""#,
            r#"Staff::"a\u{41}""#,
            r#"Staff :: "x""#,
            r#"Nobody::"x""#,
            r#"Etax::Etax::Staff::"x""#,
            r#"Staff::"x"#,
        ] {
            assert_eq!(plain_uid(s), None, "{s}");
        }
        assert_eq!(
            parse_uid("principal", r#"Staff::"a\"b""#).unwrap(),
            EntityKind::Staff.uid("a\"b")
        );
    }
}
