//! The decision log over HTTP, for the `audit` scope (the server locks the
//! log's directory to its process, so while it runs this is how auditors
//! reach it):
//!
//! - `GET /v1/audit/decisions?FILTERS&after=&limit=`
//!   → `{"records": [...], "next_after": SEQ|null}` (`limit` 1 to 1000,
//!   100 by default; outside that, 400);
//! - `GET /v1/audit/summary?by=principal,decision&FILTERS` → counts per group;
//! - `GET /v1/audit/export?format=jsonl|csv&bom=true&after=SEQ&FILTERS` →
//!   every matching record (above `after`), streamed (chunked) in constant
//!   memory;
//! - `GET /v1/audit/policy/{version}` → the archived rules of a version;
//! - `GET /v1/audit/verify[?checkpoint=SEQ:HASH]` → the verify report;
//! - `GET /v1/audit/checkpoint` → the head `{seq, hash, timestamp_ms, time}`;
//! - `GET /v1/audit/overview?since=&until=&bucket=minute|hour|day` → the
//!   auditor console's overview (decisions over time, by policy, kind,
//!   caller and outcome) from the writer's per-minute counts, and the
//!   chain's status.
//!
//! FILTERS: `since`, `until`, `principal`, `enterprise`, `action`,
//! `decision`, `policy`, `kind`, `target`, `person`, `identity_type`,
//! `outcome`, `caller`, `decision_id`, `include_reads=true`, and `tz` (or
//! `offset`, e.g. `+08:00`): the offset times without one are read at and
//! CSV shows, by default the server's `--time-offset`.
//!
//! The query strings are read by `query_params` (shared with the fleet's
//! reads), the export is `export`'s.
//!
//! Reading the log is itself recorded (kind `audit.read`), durably before
//! the answer: auditors' access is audited too.
//!
//! A full ID number in `person`, `principal` or `target` is an exact lookup
//! (by the person's keyed pseudonym). Masks hide only region and birth
//! date, so such lookups could enumerate a person's number: they need the
//! `audit_person` scope as well as `audit`, are limited per caller and
//! minute (429 with `Retry-After`), take one person per read, and the read's
//! record names the person searched by pseudonym (`persons[]`, role
//! `target`) so that who looked up whom can be found.

use std::time::Instant;

use hyper::StatusCode;
use serde::Serialize;

use super::error::ApiError;
use super::query_params::{
    decode, filter_params, known_params, number, page_limit, unknown, Params, DEFAULT_LIMIT,
    FILTERS, INCLUDE_READS, OFFSET, SINCE, TZ, UNTIL,
};
use super::routes::{Param, ParamKind as K};
use super::AppState;
use crate::audit::overview::{self, Bucket, Overview, OverviewQuery};
use crate::audit::query;
use crate::audit::rollup::MAX_POINTS;
use crate::audit::summary::{self, GroupBy, Summary};
use crate::audit::time::{self, Offset};
use crate::audit::{Checkpoint, Filter, Page, Problem, Verdict, VerifyReport};
use crate::flows::decide::Event;
use crate::policy::archive::ArchivedSet;

/// The overview's range is read from the writer's per-minute counts, which
/// know time, kind, caller, decision, outcome and policy only: no other
/// filter.
pub const OVERVIEW_PARAMS: &[&[Param]] = &[&[
    SINCE,
    UNTIL,
    Param::new(
        "bucket",
        K::OneOf(&["minute", "hour", "day"]),
        "Width of one point of the series (the finest the range fits)",
        "hour",
    ),
    INCLUDE_READS,
    TZ,
    OFFSET,
]];

const AFTER: Param = Param::new(
    "after",
    K::Integer,
    "Records after this sequence number",
    "0",
);

pub const DECISIONS_PARAMS: &[&[Param]] = &[
    FILTERS,
    &[
        AFTER,
        Param::new(
            "limit",
            K::Integer,
            "Records per page: 1 to 1000 (100)",
            "10",
        ),
    ],
];

pub const SUMMARY_PARAMS: &[&[Param]] = &[
    FILTERS,
    &[Param::new(
        "by",
        K::String,
        "Comma-separated fields to group by, each once",
        "principal,decision",
    )
    .required()],
];

pub const EXPORT_PARAMS: &[&[Param]] = &[
    FILTERS,
    &[
        Param::new(
            "format",
            K::OneOf(&["jsonl", "csv"]),
            "jsonl (default) or csv",
            "csv",
        ),
        Param::new(
            "bom",
            K::Boolean,
            "Start a CSV with a UTF-8 byte-order mark",
            "true",
        ),
        AFTER,
    ],
];

pub const VERIFY_PARAMS: &[&[Param]] = &[&[Param::new(
    "checkpoint",
    K::String,
    "SEQ:HASH the log must still extend",
    "1:0000000000000000000000000000000000000000000000000000000000000000",
)]];

pub async fn decisions(
    state: &AppState,
    query: Option<&str>,
    caller: Option<&str>,
) -> Result<Page, ApiError> {
    let started = Instant::now();
    let Params { filter, rest, .. } = filter_params(state, query, DECISIONS_PARAMS)?;
    let mut after = 0;
    let mut limit = DEFAULT_LIMIT;
    for (k, v) in rest {
        match k.as_str() {
            "after" => after = number("after", &v)?,
            "limit" => limit = page_limit(&v)?,
            _ => return Err(unknown(k, DECISIONS_PARAMS)),
        }
    }
    let (filter, searched) = exact_persons(state, filter, caller)?;
    let log = state.audit.clone();
    let page = tokio::task::spawn_blocking(move || log.query(&filter, after, limit))
        .await
        .map_err(|_| internal("query task failed"))??;
    record_read(state, caller, "audit.query", query, searched, started).await?;
    Ok(page)
}

/// `GET /v1/audit/summary?by=…`: counts per group, largest first.
pub async fn summary(
    state: &AppState,
    query: Option<&str>,
    caller: Option<&str>,
) -> Result<Summary, ApiError> {
    let started = Instant::now();
    let Params { filter, rest, .. } = filter_params(state, query, SUMMARY_PARAMS)?;
    let mut by = None;
    for (k, v) in rest {
        match k.as_str() {
            "by" => by = Some(GroupBy::parse_list(&v).map_err(|e| ApiError::invalid("by", e))?),
            _ => return Err(unknown(k, SUMMARY_PARAMS)),
        }
    }
    let by = by.ok_or_else(|| {
        ApiError::invalid(
            "by",
            "required: fields to group by, e.g. by=principal,decision",
        )
    })?;
    let (filter, searched) = exact_persons(state, filter, caller)?;
    let log = state.audit.clone();
    let summary = tokio::task::spawn_blocking(move || summary::summarize(&log, &filter, &by))
        .await
        .map_err(|_| internal("summary task failed"))??;
    record_read(state, caller, "audit.summary", query, searched, started).await?;
    Ok(summary)
}

/// `GET /v1/audit/policy/{version}`: the archived texts of a policy set,
/// checked against their version.
pub async fn policy(
    state: &AppState,
    version: &str,
    caller: Option<&str>,
) -> Result<ArchivedSet, ApiError> {
    let started = Instant::now();
    let archive = state.policy_archive.clone();
    let wanted = version.to_owned();
    let set = tokio::task::spawn_blocking(move || archive.read(&wanted))
        .await
        .map_err(|_| internal("policy archive task failed"))??;
    let detail = format!("version={version}");
    record_read(state, caller, "audit.policy", Some(&detail), None, started).await?;
    Ok(set)
}

pub async fn verify(
    state: &AppState,
    query: Option<&str>,
    caller: Option<&str>,
) -> Result<VerifyReport, ApiError> {
    let started = Instant::now();
    let mut checkpoint = None;
    for (k, v) in known_params(query, VERIFY_PARAMS)? {
        match k.as_str() {
            "checkpoint" => {
                checkpoint =
                    Some(Checkpoint::parse(&v).map_err(|e| ApiError::invalid("checkpoint", e))?)
            }
            _ => return Err(unknown(k, VERIFY_PARAMS)),
        }
    }
    let log = state.audit.clone();
    let report = tokio::task::spawn_blocking(move || log.verify(checkpoint.as_ref()))
        .await
        .map_err(|_| internal("verify task failed"))??;
    record_read(state, caller, "audit.verify", query, None, started).await?;
    state.audit.saw_verify(&report);
    Ok(report)
}

pub async fn checkpoint(state: &AppState, caller: Option<&str>) -> Result<Checkpoint, ApiError> {
    let started = Instant::now();
    let log = state.audit.clone();
    let head = tokio::task::spawn_blocking(move || log.checkpoint())
        .await
        .map_err(|_| internal("checkpoint task failed"))??;
    record_read(state, caller, "audit.checkpoint", None, None, started).await?;
    if let Some(head) = &head {
        state.audit.saw_checkpoint(head);
    }
    // An empty log's head is the genesis hash at sequence 0.
    Ok(head.unwrap_or_else(|| Checkpoint {
        seq: 0,
        hash: crate::audit::chain::GENESIS.to_owned(),
        timestamp_ms: 0,
        time: String::new(),
    }))
}

/// `GET /v1/audit/overview`: the console's overview, from the counts the
/// writer keeps (never a scan of the records), and the chain's status.
pub async fn overview(
    state: &AppState,
    query: Option<&str>,
    caller: Option<&str>,
) -> Result<AuditOverview, ApiError> {
    let started = Instant::now();
    let Params {
        filter,
        offset,
        rest,
    } = filter_params(state, query, OVERVIEW_PARAMS)?;
    let mut asked = None;
    for (k, v) in rest {
        match k.as_str() {
            "bucket" => {
                asked = Some(
                    v.parse()
                        .map_err(|e: String| ApiError::invalid("bucket", e))?,
                )
            }
            _ => return Err(unknown(k, OVERVIEW_PARAMS)),
        }
    }
    let until_ms = filter.until_ms.unwrap_or_else(crate::now_ms);
    let mut q = OverviewQuery {
        since_ms: filter.since_ms.unwrap_or(until_ms.saturating_sub(DAY_MS)),
        until_ms,
        bucket: asked.unwrap_or(Bucket::Minute),
        offset,
        include_reads: filter.include_reads,
    };
    for (name, ms) in [("since", q.since_ms), ("until", q.until_ms)] {
        if ms > overview::LATEST_MS {
            return Err(ApiError::invalid(name, "must be before the year 10000"));
        }
    }
    if q.since_ms >= q.until_ms {
        return Err(ApiError::invalid("until", "must be later than since"));
    }
    // Without a bucket, the finest one the range fits in.
    for wider in [Bucket::Hour, Bucket::Day] {
        if asked.is_none() && overview::points(&q) > MAX_POINTS {
            q.bucket = wider;
        }
    }
    if overview::points(&q) > MAX_POINTS {
        return Err(ApiError::invalid(
            if asked.is_some() { "bucket" } else { "since" },
            format!("more than {MAX_POINTS} points: pick a wider bucket or a shorter range"),
        ));
    }
    let counts = state.audit.overview(&q);
    let chain = chain_status(state, offset)?;
    record_read(state, caller, "audit.overview", query, None, started).await?;
    Ok(AuditOverview { counts, chain })
}

const DAY_MS: u64 = 24 * 3_600_000;

/// `GET /v1/audit/overview`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditOverview {
    pub counts: Overview,
    pub chain: ChainStatus,
}

/// The chain as of now, and what auditors last asked of it since the
/// server started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChainStatus {
    /// The last record written; `null` while the log is empty.
    pub head: Option<Checkpoint>,
    pub last_verify: Option<LastVerify>,
    /// The last head `GET /v1/audit/checkpoint` handed out.
    pub last_checkpoint: Option<LastCheckpoint>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LastVerify {
    /// When it ran, at the request's offset.
    pub time: String,
    pub ok: bool,
    pub verdict: Verdict,
    /// Records walked.
    pub records: u64,
    /// The first bad record, when there is one.
    pub problem: Option<Problem>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LastCheckpoint {
    /// When it was handed out, at the request's offset.
    pub time: String,
    pub checkpoint: Checkpoint,
}

fn chain_status(state: &AppState, offset: Offset) -> Result<ChainStatus, ApiError> {
    let seen = state.audit.last_seen();
    Ok(ChainStatus {
        head: state.audit.checkpoint()?,
        last_verify: seen.verify.map(|(at, r)| LastVerify {
            time: time::format_time(at, offset),
            ok: r.ok,
            verdict: r.verdict,
            records: r.records,
            problem: r.problem,
        }),
        last_checkpoint: seen.checkpoint.map(|(at, c)| LastCheckpoint {
            time: time::format_time(at, offset),
            checkpoint: c,
        }),
    })
}

/// The full ID number the filter looks up exactly, if any, once the caller
/// may (scope and rate, [`super::callers::Callers::person_lookup`]); and
/// the filter with it resolved to its pseudonym. One person per read: with
/// two, the read's record could name only one of them, and a guess could
/// hide behind a known number.
pub(super) fn exact_persons(
    state: &AppState,
    filter: Filter,
    caller: Option<&str>,
) -> Result<(Filter, Option<String>), ApiError> {
    let mut searched: Option<String> = None;
    for (name, arg) in [
        ("person", &filter.person),
        ("principal", &filter.principal),
        ("target", &filter.target),
    ] {
        let Some(number) = arg.as_deref().and_then(query::full_id_number) else {
            continue;
        };
        let number = number.to_ascii_uppercase();
        match &searched {
            Some(first) if *first != number => {
                return Err(ApiError::invalid(
                    name,
                    "one full ID number per read: filter by one person at a time",
                ))
            }
            _ => searched = Some(number),
        }
    }
    if searched.is_some() {
        state.callers.person_lookup(caller)?;
    }
    // Full ID numbers match exactly, by the log's pseudonyms.
    let filter = filter.resolve_persons(state.decider.pseudonyms());
    Ok((filter, searched))
}

/// Records this read (kind `audit.read`); committed with the answer,
/// before it is sent. An exact lookup's record names the person searched
/// as its target: by pseudonym and mask, never the number.
pub(super) async fn record_read(
    state: &AppState,
    caller: Option<&str>,
    action: &str,
    query: Option<&str>,
    searched: Option<String>,
    started: Instant,
) -> Result<(), ApiError> {
    let principal = format!("Caller::{:?}", caller.unwrap_or("anonymous"));
    let resource = match query {
        Some(q) if !q.is_empty() => format!("DecisionLog?{}", decode(q)),
        _ => "DecisionLog".to_owned(),
    };
    let event = Event::unasked(
        query::READ_KIND,
        &principal,
        action,
        &resource,
        state.engine.snapshot().version(),
    )
    .with_latency(started.elapsed().as_micros() as u64);
    let event = match searched {
        Some(number) => event.with_target_person(&number, None),
        None => event,
    };
    state.decider.record(event).await?;
    Ok(())
}

fn internal(message: &str) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}
