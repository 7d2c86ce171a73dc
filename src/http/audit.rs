//! The decision log over HTTP, for the `audit` scope (redb locks the log to
//! the server's process, so while it runs this is how auditors reach it):
//!
//! - `GET /v1/audit/decisions?since=&until=&principal=&enterprise=&action=&decision=&policy=&kind=&target=&person=&identity_type=&outcome=&after=&limit=`
//!   → `{"records": [...], "next_after": SEQ|null}`;
//! - `GET /v1/audit/verify[?checkpoint=SEQ:HASH]` → the verify report;
//! - `GET /v1/audit/checkpoint` → the head `{seq, hash, timestamp_ms, time}`.
//!
//! Reading the log is itself recorded (kind `audit.read`), durably before
//! the answer: auditors' access is audited too.

use std::time::Instant;

use hyper::StatusCode;
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::audit::{time, Checkpoint, Filter, Outcome, Page, VerifyReport};
use crate::flows::decide::Event;

/// Records one page returns unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;

pub async fn decisions(
    state: &AppState,
    query: Option<&str>,
    caller: Option<&str>,
) -> Result<Page, ApiError> {
    let started = Instant::now();
    let mut filter = Filter::default();
    let mut after = 0;
    let mut limit = DEFAULT_LIMIT;
    let now = crate::now_ms();
    for (k, v) in params(query)? {
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| ApiError::invalid(k.clone(), format!("{v:?} is not a number")))
        };
        match k.as_str() {
            "since" => filter.since_ms = Some(time::parse_time(&v, now).map_err(|e| ApiError::invalid("since", e))?),
            "until" => filter.until_ms = Some(time::parse_time(&v, now).map_err(|e| ApiError::invalid("until", e))?),
            "principal" => filter.principal = Some(v),
            "enterprise" => filter.enterprise = Some(v),
            "action" => filter.action = Some(v),
            "policy" => filter.policy = Some(v),
            "kind" => filter.kind = Some(v),
            "target" => filter.target = Some(v),
            "person" => filter.person = Some(v),
            "identity_type" => filter.identity_type = Some(v),
            "outcome" => {
                filter.outcome = Some(v.parse().map_err(|e: String| ApiError::invalid("outcome", e))?)
            }
            "decision" => {
                filter.decision = Some(match v.as_str() {
                    "allow" => Outcome::Allow,
                    "deny" => Outcome::Deny,
                    _ => return Err(ApiError::invalid("decision", "must be allow or deny")),
                })
            }
            "after" => after = num(&v)?,
            "limit" => limit = num(&v)? as usize,
            _ => {
                return Err(ApiError::invalid(
                    k.clone(),
                    "unknown parameter: use since, until, principal, enterprise, action, decision, policy, kind, target, person, identity_type, outcome, after, limit",
                ))
            }
        }
    }
    // Full ID numbers match exactly, by the log's pseudonyms.
    let filter = filter.resolve_persons(state.login.decider.pseudonyms());
    let log = state.audit.clone();
    let page = tokio::task::spawn_blocking(move || log.query(&filter, after, limit))
        .await
        .map_err(|_| internal("query task failed"))??;
    record_read(state, caller, "audit.query", query, started).await?;
    Ok(page)
}

pub async fn verify(
    state: &AppState,
    query: Option<&str>,
    caller: Option<&str>,
) -> Result<VerifyReport, ApiError> {
    let started = Instant::now();
    let mut checkpoint = None;
    for (k, v) in params(query)? {
        match k.as_str() {
            "checkpoint" => {
                checkpoint =
                    Some(Checkpoint::parse(&v).map_err(|e| ApiError::invalid("checkpoint", e))?)
            }
            _ => {
                return Err(ApiError::invalid(
                    k.clone(),
                    "unknown parameter: use checkpoint=SEQ:HASH",
                ))
            }
        }
    }
    let log = state.audit.clone();
    let report = tokio::task::spawn_blocking(move || log.verify(checkpoint.as_ref()))
        .await
        .map_err(|_| internal("verify task failed"))??;
    record_read(state, caller, "audit.verify", query, started).await?;
    Ok(report)
}

pub async fn checkpoint(
    state: &AppState,
    caller: Option<&str>,
) -> Result<serde_json::Value, ApiError> {
    let started = Instant::now();
    let log = state.audit.clone();
    let head = tokio::task::spawn_blocking(move || log.checkpoint())
        .await
        .map_err(|_| internal("checkpoint task failed"))??;
    record_read(state, caller, "audit.checkpoint", None, started).await?;
    Ok(match head {
        Some(cp) => serde_json::to_value(cp).expect("checkpoints serialize"),
        None => {
            json!({ "seq": 0, "hash": crate::audit::chain::GENESIS, "timestamp_ms": 0, "time": "" })
        }
    })
}

/// Records this read (kind `audit.read`); committed with the answer,
/// before it is sent.
async fn record_read(
    state: &AppState,
    caller: Option<&str>,
    action: &str,
    query: Option<&str>,
    started: Instant,
) -> Result<(), ApiError> {
    let principal = format!("Caller::{:?}", caller.unwrap_or("anonymous"));
    let resource = match query {
        Some(q) if !q.is_empty() => format!("DecisionLog?{}", decode(q)),
        _ => "DecisionLog".to_owned(),
    };
    let event = Event::unasked(
        "audit.read",
        &principal,
        action,
        &resource,
        state.engine.snapshot().version(),
    )
    .with_latency(started.elapsed().as_micros() as u64);
    state.login.decider.record(event).await?;
    Ok(())
}

fn internal(message: &str) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

/// `a=1&b=x%20y` → pairs, percent- and `+`-decoded.
fn params(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(q) = query else {
        return Ok(Vec::new());
    };
    Ok(q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect())
}

/// Query-string decoding: `+` is a space (a literal `+` arrives as `%2B`).
fn decode(s: &str) -> String {
    super::uri::percent_decode(&s.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_strings() {
        assert_eq!(decode("Etax%3A%3AStaff+x"), "Etax::Staff x");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        let p = params(Some("a=1&&b=%E7%A8%8E")).unwrap();
        assert_eq!(p, vec![("a".into(), "1".into()), ("b".into(), "税".into())]);
    }
}
