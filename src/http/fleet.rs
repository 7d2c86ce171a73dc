//! The fleet over HTTP, answered by any sidecar in fleet mode from the
//! fleet's database (404 `fleet_mode_off` without `--fleet`):
//!
//! - `GET /v1/fleet/status` (scope `admin`, like `/v1/status`): every
//!   host's binary and policy version, last seen, stale flag and shipping
//!   position;
//! - `GET /v1/fleet/decisions?FILTERS&host=&after=&limit=` (scope `audit`):
//!   records of every host (or one), in the order they reached the table;
//!   `after` is the table's row id (`next_after` of the previous page);
//! - `GET /v1/fleet/verify?host=&checkpoint=` (scope `audit`): each host's
//!   chain verified from the table alone;
//! - `GET /v1/fleet/decisions/export?FILTERS&host=` (scope `audit`): every
//!   matching record of every host (or one), streamed as JSON lines
//!   `{"host", "record": <the stored line>}`, the lines `audit export
//!   --fleet` prints.
//!
//! Reads of the fleet's log are recorded in this host's own log (kind
//! `audit.read`), like every read of the local one.

use std::time::Instant;

use hyper::Response;

use super::audit::{exact_persons, record_read};
use super::error::ApiError;
use super::query_params::{
    filter_params, known_params, number, page_limit, unknown, DEFAULT_LIMIT, FILTERS,
};
use super::routes::{Param, ParamKind as K, JSON_LINES};
use super::{stream, AppState, Body};
use crate::audit::Checkpoint;
use crate::fleet::log::{self, FleetPage, FleetVerify};
use crate::fleet::log_commands::export_line;
use crate::fleet::status::{self, FleetStatus};
use crate::fleet::FleetError;

const HOST: Param = Param::new("host", K::String, "Only this host's records", "h1");

pub const DECISIONS_PARAMS: &[&[Param]] = &[
    FILTERS,
    &[
        HOST,
        Param::new(
            "after",
            K::Integer,
            "Records after this row of the fleet's table (next_after)",
            "0",
        ),
        Param::new(
            "limit",
            K::Integer,
            "Records per page: 1 to 1000 (100)",
            "10",
        ),
    ],
];

pub const EXPORT_PARAMS: &[&[Param]] = &[FILTERS, &[HOST]];

pub const VERIFY_PARAMS: &[&[Param]] = &[&[
    HOST,
    Param::new(
        "checkpoint",
        K::String,
        "SEQ:HASH the host's chain must still extend (with host)",
        "1:0000000000000000000000000000000000000000000000000000000000000000",
    ),
]];

/// The fleet's database, or 404 when fleet mode is off.
async fn client(state: &AppState) -> Result<deadpool_postgres::Client, ApiError> {
    let shipper = state.fleet.as_ref().ok_or_else(ApiError::fleet_off)?;
    Ok(shipper.fleet().client().await?)
}

pub async fn status(state: &AppState) -> Result<FleetStatus, ApiError> {
    let client = client(state).await?;
    let host = state.fleet.as_ref().map_or("", |s| s.fleet().host());
    Ok(status::read(&client, host).await?)
}

pub async fn decisions(
    state: &AppState,
    query: Option<&str>,
    caller: Option<&str>,
) -> Result<FleetPage, ApiError> {
    let started = Instant::now();
    let params = filter_params(state, query, DECISIONS_PARAMS)?;
    let (mut host, mut after, mut limit) = (None, 0, DEFAULT_LIMIT);
    for (k, v) in params.rest {
        match k.as_str() {
            "host" => host = Some(host_name(v)?),
            "after" => after = cursor(&v)?,
            "limit" => limit = page_limit(&v)?,
            _ => return Err(unknown(k, DECISIONS_PARAMS)),
        }
    }
    let (filter, searched) = exact_persons(state, params.filter, caller)?;
    // A read of the fleet's table holds a request-pool connection for as
    // long as PostgreSQL takes: capped with the exports, so audit callers
    // can never hold the connections logins and session checks need.
    let _slot = state.limits.exports.take()?;
    let client = client(state).await?;
    let page = log::page(&client, &filter, host.as_deref(), after, limit).await?;
    record_read(state, caller, "audit.fleet.query", query, searched, started).await?;
    Ok(page)
}

pub async fn verify(
    state: &AppState,
    query: Option<&str>,
    caller: Option<&str>,
) -> Result<FleetVerify, ApiError> {
    let started = Instant::now();
    let (mut host, mut checkpoint) = (None, None);
    for (k, v) in known_params(query, VERIFY_PARAMS)? {
        match k.as_str() {
            "host" => host = Some(host_name(v)?),
            "checkpoint" => {
                checkpoint =
                    Some(Checkpoint::parse(&v).map_err(|e| ApiError::invalid("checkpoint", e))?)
            }
            _ => return Err(unknown(k, VERIFY_PARAMS)),
        }
    }
    if checkpoint.is_some() && host.is_none() {
        return Err(ApiError::invalid(
            "checkpoint",
            "a checkpoint names one host's record: give host too",
        ));
    }
    let days = crate::audit::MIN_RETENTION_DAYS;
    // Walks every row it verifies: capped as `decisions` is.
    let _slot = state.limits.exports.take()?;
    let client = client(state).await?;
    let report = log::verify(&client, host.as_deref(), checkpoint.as_ref(), days).await?;
    record_read(state, caller, "audit.fleet.verify", query, None, started).await?;
    Ok(report)
}

/// The longest host name accepted (a DNS name's limit): `--fleet-host`
/// names are short, and the value goes into a query.
const HOST_MAX: usize = 253;

/// A `host` value: the database's text refuses NUL (which would be a 503,
/// not the caller's error), and control characters name no host.
fn host_name(v: String) -> Result<String, ApiError> {
    if v.is_empty() || v.len() > HOST_MAX || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "host",
            format!("a host name: 1 to {HOST_MAX} bytes, no control characters"),
        ));
    }
    Ok(v)
}

/// An `after` value: a row id of the table (a `bigint`), which a larger
/// number would wrap to a negative cursor, restarting from the first row.
fn cursor(v: &str) -> Result<u64, ApiError> {
    let after = number("after", v)?;
    if after > i64::MAX as u64 {
        return Err(ApiError::invalid(
            "after",
            format!("must be at most {}", i64::MAX),
        ));
    }
    Ok(after)
}

/// `GET /v1/fleet/decisions/export`: every matching record across hosts,
/// in the order they reached the table, streamed in constant memory,
/// holding an export slot until the last byte. Each page is read on a
/// pooled connection that goes back to the pool before the page is sent:
/// a client that reads slowly (or never) holds no connection. The read is
/// recorded before the first byte is sent; a database failure midway cuts
/// the body off rather than ending it as if complete.
pub async fn export(
    state: &AppState,
    query: Option<&str>,
    caller: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let started = Instant::now();
    let fleet = state.fleet.as_ref().ok_or_else(ApiError::fleet_off)?;
    let fleet = fleet.fleet().clone();
    let params = filter_params(state, query, EXPORT_PARAMS)?;
    let mut host = None;
    for (k, v) in params.rest {
        match k.as_str() {
            "host" => host = Some(host_name(v)?),
            _ => return Err(unknown(k, EXPORT_PARAMS)),
        }
    }
    let (filter, searched) = exact_persons(state, params.filter, caller)?;
    let slot = state.limits.exports.take()?;
    // The first page before the answer: a database that is away is a 503,
    // not a 200 cut off at its first byte.
    let mut export = log::Export::new(filter, host);
    let first = read_page(&fleet, &mut export).await?;
    record_read(
        state,
        caller,
        "audit.fleet.export",
        query,
        searched,
        started,
    )
    .await?;
    let (mut sender, body) = stream::async_channel();
    tokio::spawn(async move {
        let _slot = slot;
        match send_pages(&fleet, export, first, &mut sender).await {
            Ok(()) => {}
            Err(log::ExportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                tracing::error!(error = %e, "fleet decision log export failed");
                sender.abort(e.to_string()).await;
            }
        }
    });
    Ok(stream::attachment(
        JSON_LINES,
        "fleet-decisions.jsonl",
        body,
    ))
}

/// A page's lines, and whether more may follow. The rows are read on a
/// pooled connection, which goes back to the pool before they are turned
/// into lines (on a blocking thread: parsing a page of records would hold
/// an async worker, and with it other requests' database replies).
async fn read_page(
    fleet: &crate::fleet::Fleet,
    export: &mut log::Export,
) -> Result<(Vec<u8>, bool), FleetError> {
    let page = export.fetch(&*fleet.client().await?).await?;
    let filter = export.filter();
    tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        // Into memory: no write fails.
        let _ = page.write(&filter, |host, line| export_line(&mut lines, host, line));
        (lines, page.more)
    })
    .await
    .map_err(|e| FleetError::Pool(format!("the export's page task stopped: {e}")))
}

/// Sends a page, then reads the next; until the table has no more.
async fn send_pages(
    fleet: &crate::fleet::Fleet,
    mut export: log::Export,
    (mut page, mut more): (Vec<u8>, bool),
    sender: &mut stream::AsyncChunkSender,
) -> Result<(), log::ExportError> {
    loop {
        sender.send(page).await?;
        if !more {
            return Ok(());
        }
        (page, more) = read_page(fleet, &mut export).await?;
    }
}
