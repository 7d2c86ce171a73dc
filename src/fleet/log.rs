//! Reading the fleet's decision log (`fleet_decisions`): every host's chain
//! verified from the table alone, and records across hosts for auditors.
//!
//! Verification is the local log's own walk (`audit::forensics::
//! verify_stored`), fed the table's rows of one host in sequence order: no
//! second hash or chain implementation. Reads use only SELECT, so an
//! auditor's read-only role suffices and nothing is migrated.

use serde::Serialize;

use super::FleetError;
use crate::audit::forensics::{self, Rules};
use crate::audit::{
    ChainHash, Checkpoint, DecisionRecord, Filter, Problem, Stored, TamperKind, Verdict,
    VerifyReport,
};

/// Rows one round trip reads.
const PAGE_ROWS: i64 = 2000;
/// Rows one page of an export reads: smaller, so that many exports at
/// once each hold a connection (and a page in memory) only briefly.
const EXPORT_ROWS: i64 = 500;
/// Rows a page of a query looks at before it answers with what it found
/// (the next page goes on from there), as the local query does.
const MAX_SCAN: usize = 100_000;

/// One host's chain, as the fleet's table holds it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HostVerify {
    pub host: String,
    pub report: VerifyReport,
}

/// Every host's chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FleetVerify {
    /// True when every host's chain is intact.
    pub ok: bool,
    /// The worst verdict of any host.
    pub verdict: Verdict,
    pub hosts: Vec<HostVerify>,
}

/// A record of the fleet's table, with the host that wrote it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FleetRecord {
    pub host: String,
    /// The record as `audit query` shows it.
    #[schema(value_type = Object)]
    pub record: DecisionRecord,
}

/// One page of records across hosts, in the order they reached the table.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FleetPage {
    pub records: Vec<FleetRecord>,
    /// Pass as `after` for the next page; `null` when the table is
    /// exhausted.
    pub next_after: Option<u64>,
}

/// How long after its start a host may have shipped nothing without that
/// being a finding: it ships its first record within milliseconds of
/// starting, so three heartbeats are generous.
const START_GRACE_SECS: f64 = 6.0;

/// The hosts of the fleet, by name: those that shipped records and those
/// that reported to `fleet_hosts` (a host whose every record was removed,
/// or that never ships, is known there and must be named, not skipped).
pub async fn hosts(client: &tokio_postgres::Client) -> Result<Vec<String>, FleetError> {
    let rows = client
        .query(
            "SELECT DISTINCT host FROM fleet_decisions
             UNION SELECT host FROM fleet_hosts ORDER BY host",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Verifies each host's chain (`only`: just that host). With `checkpoint`
/// (which names one host's record), `only` must name the host.
pub async fn verify(
    client: &tokio_postgres::Client,
    only: Option<&str>,
    checkpoint: Option<&Checkpoint>,
    min_retention_days: u64,
) -> Result<FleetVerify, FleetError> {
    let names = match only {
        Some(h) => vec![h.to_owned()],
        None => hosts(client).await?,
    };
    let rules = Rules::now(min_retention_days);
    let mut out = Vec::new();
    for host in names {
        let mut report = verify_host(client, &host, checkpoint, rules).await?;
        if report.records == 0 {
            nothing_shipped(client, &host, &mut report).await?;
        }
        out.push(HostVerify { host, report });
    }
    let verdict = out
        .iter()
        .map(|h| h.report.verdict)
        .max_by_key(|v| v.exit_code())
        .unwrap_or(Verdict::Ok);
    Ok(FleetVerify {
        ok: verdict == Verdict::Ok,
        verdict,
        hosts: out,
    })
}

/// A host with no record in the table is never "ok": its records were
/// removed, it never shipped, or no such host exists — unless it started
/// moments ago, which the report says.
async fn nothing_shipped(
    client: &tokio_postgres::Client,
    host: &str,
    report: &mut VerifyReport,
) -> Result<(), FleetError> {
    let row = client
        .query_opt(
            "SELECT abs(extract(epoch FROM now() - started_at))::float8,
                    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM fleet_hosts WHERE host = $1",
            &[&host],
        )
        .await?;
    let detail = match row {
        Some(r) if r.get::<_, f64>(0) < START_GRACE_SECS => {
            report.warnings.push(format!(
                "host {host} started moments ago and has shipped no record yet"
            ));
            return Ok(());
        }
        Some(r) => format!(
            "host {host} has no record in fleet_decisions, though fleet_hosts lists it \
             (started {}): its records were removed, or it never shipped",
            r.get::<_, String>(1)
        ),
        None => format!(
            "no record of host {host} in fleet_decisions and no row in fleet_hosts: \
             no such host, or everything it wrote was removed"
        ),
    };
    let problem = Problem {
        kind: TamperKind::Removed,
        seq: 1,
        time: None,
        detail,
    };
    report.ok = false;
    report.verdict = Verdict::Tampered;
    report.problem = Some(problem.clone());
    report.problems.push(problem);
    Ok(())
}

/// One host's rows, streamed in pages to the walk on a blocking thread
/// (bounded channel: memory stays flat whatever the host's log size).
async fn verify_host(
    client: &tokio_postgres::Client,
    host: &str,
    checkpoint: Option<&Checkpoint>,
    rules: Rules,
) -> Result<VerifyReport, FleetError> {
    let chain_hash = host_chain_hash(client, host).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Stored>(PAGE_ROWS as usize);
    let checkpoint = checkpoint.cloned();
    let walk = tokio::task::spawn_blocking(move || {
        let records = std::iter::from_fn(|| rx.blocking_recv());
        forensics::verify_stored(chain_hash, records, checkpoint.as_ref(), &rules)
    });
    let mut after = 0i64;
    let fed: Result<(), FleetError> = async {
        loop {
            let sql = format!(
                "SELECT {COLUMNS} FROM fleet_decisions
                 WHERE host = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            );
            let rows = client.query(&sql, &[&host, &after, &PAGE_ROWS]).await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = last.get(0);
            for row in &rows {
                if tx.send(stored_of(row)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    .await;
    drop(tx);
    let report = walk
        .await
        .map_err(|e| FleetError::Pool(format!("the verify task stopped: {e}")))?;
    fed.map(|()| report)
}

/// The chain hash the host's log was created with (every row says it).
async fn host_chain_hash(
    client: &tokio_postgres::Client,
    host: &str,
) -> Result<ChainHash, FleetError> {
    let row = client
        .query_opt(
            "SELECT chain_hash FROM fleet_decisions WHERE host = $1 ORDER BY seq LIMIT 1",
            &[&host],
        )
        .await?;
    Ok(row
        .and_then(|r| r.get::<_, String>(0).parse().ok())
        .unwrap_or_default())
}

/// The columns [`stored_of`] reads, then the row's id and host.
const COLUMNS: &str = "seq, timestamp_ms, prev_hash, hash, canonical, id, host";

/// A row as the stored unit the walk reads. Hex that does not decode
/// becomes zeros, which the walk then reports as a broken link or hash.
fn stored_of(row: &tokio_postgres::Row) -> Stored {
    let hash32 = |s: String| {
        hex::decode(s)
            .ok()
            .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
            .unwrap_or([0; 32])
    };
    Stored {
        seq: row.get::<_, i64>(0) as u64,
        timestamp_ms: row.get::<_, i64>(1) as u64,
        prev: hash32(row.get(2)),
        hash: hash32(row.get(3)),
        canonical: row.get::<_, String>(4).into_bytes(),
        links: true,
    }
}

/// Records matching `filter` (and `host`, if given) that reached the table
/// after row `after`, at most `limit`.
pub async fn page(
    client: &tokio_postgres::Client,
    filter: &Filter,
    host: Option<&str>,
    after: u64,
    limit: usize,
) -> Result<FleetPage, FleetError> {
    let mut records = Vec::new();
    let mut cursor = after as i64;
    let mut scanned = 0;
    loop {
        let rows = rows_after(client, filter, host, cursor, PAGE_ROWS).await?;
        let exhausted = rows.len() < PAGE_ROWS as usize;
        for (i, row) in rows.iter().enumerate() {
            cursor = row.get(5);
            scanned += 1;
            if let Some(r) = matching(row, filter) {
                records.push(r);
            }
            if records.len() == limit || scanned >= MAX_SCAN {
                let more = i + 1 < rows.len() || !exhausted;
                return Ok(FleetPage {
                    records,
                    next_after: more.then_some(cursor as u64),
                });
            }
        }
        if exhausted {
            return Ok(FleetPage {
                records,
                next_after: None,
            });
        }
    }
}

/// Why an export stopped: the database, or the output.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("writing the records: {0}")]
    Io(#[from] std::io::Error),
}

impl From<tokio_postgres::Error> for ExportError {
    fn from(e: tokio_postgres::Error) -> Self {
        ExportError::Fleet(e.into())
    }
}

/// Calls `each` with every matching record, as the table orders them:
/// the host and the stored line (canonical JSON with its hash).
pub async fn for_each(
    client: &tokio_postgres::Client,
    filter: &Filter,
    host: Option<&str>,
    mut each: impl FnMut(&str, &[u8]) -> std::io::Result<()>,
) -> Result<(), ExportError> {
    let mut export = Export::new(filter.clone(), host.map(str::to_owned));
    loop {
        let page = export.fetch(client).await?;
        page.write(filter, &mut each)?;
        if !page.more {
            return Ok(());
        }
    }
}

/// An export's place in the table, so that it can go on a page at a time
/// over any connection: the HTTP export gives its connection back while it
/// turns a page into lines and waits for the client to take them.
pub struct Export {
    filter: std::sync::Arc<Filter>,
    host: Option<String>,
    cursor: i64,
}

/// The rows of one page of an export, read.
pub struct ExportPage {
    rows: Vec<tokio_postgres::Row>,
    /// Whether rows may follow.
    pub more: bool,
}

impl Export {
    pub fn new(filter: Filter, host: Option<String>) -> Self {
        Self {
            filter: std::sync::Arc::new(filter),
            host,
            cursor: 0,
        }
    }

    /// The filter the export's pages are written with.
    pub fn filter(&self) -> std::sync::Arc<Filter> {
        self.filter.clone()
    }

    /// The next rows (at most [`EXPORT_ROWS`]); the export moves past them.
    pub async fn fetch(
        &mut self,
        client: &tokio_postgres::Client,
    ) -> Result<ExportPage, FleetError> {
        let host = self.host.as_deref();
        let rows = rows_after(client, &self.filter, host, self.cursor, EXPORT_ROWS).await?;
        if let Some(last) = rows.last() {
            self.cursor = last.get(5);
        }
        let more = rows.len() == EXPORT_ROWS as usize;
        Ok(ExportPage { rows, more })
    }
}

impl ExportPage {
    /// Calls `each` with the page's records matching `filter` (the
    /// export's): the host and the stored line (canonical JSON with its
    /// hash). Parses every row: CPU work, off the async workers for a
    /// server.
    pub fn write(
        &self,
        filter: &Filter,
        mut each: impl FnMut(&str, &[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        for row in &self.rows {
            if matching(row, filter).is_some() {
                each(row.get(6), &stored_of(row).line())?;
            }
        }
        Ok(())
    }
}

/// The next rows after `cursor` ([`COLUMNS`]), at most `limit`. Time
/// bounds are applied here (indexed); the rest of the filter in Rust, as
/// locally.
async fn rows_after(
    client: &tokio_postgres::Client,
    filter: &Filter,
    host: Option<&str>,
    cursor: i64,
    limit: i64,
) -> Result<Vec<tokio_postgres::Row>, FleetError> {
    let since = filter.since_ms.map_or(i64::MIN, |t| t as i64);
    let until = filter.until_ms.map_or(i64::MAX, |t| t as i64);
    let sql = format!(
        "SELECT {COLUMNS} FROM fleet_decisions
         WHERE id > $1 AND ($2::text IS NULL OR host = $2)
           AND timestamp_ms >= $3 AND timestamp_ms <= $4
         ORDER BY id LIMIT $5"
    );
    Ok(client
        .query(&sql, &[&cursor, &host, &since, &until, &limit])
        .await?)
}

fn matching(row: &tokio_postgres::Row, filter: &Filter) -> Option<FleetRecord> {
    let record: DecisionRecord = serde_json::from_slice(&stored_of(row).line()).ok()?;
    filter.matches(&record).then(|| FleetRecord {
        host: row.get(6),
        record,
    })
}
