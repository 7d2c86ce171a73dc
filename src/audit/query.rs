//! Questions auditors ask of the log: filters, pages for HTTP, and the
//! table / JSON lines / CSV output of the command line. Everything streams
//! from one snapshot of the log's files ([`AuditLog::scan`]), block by
//! block, so memory stays constant however long the log.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::{AuditError, AuditLog, DecisionRecord, Outcome};

/// Most records one page returns.
pub const MAX_PAGE: usize = 1000;
/// Most records one page examines, so a selective filter over a long log
/// still answers quickly: the page then ends early with a cursor.
pub const MAX_SCAN: usize = 200_000;

/// Which records to return. Every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// `timestamp_ms >= since_ms`.
    pub since_ms: Option<u64>,
    /// `timestamp_ms < until_ms`.
    pub until_ms: Option<u64>,
    /// Part of the principal. Masked like the log before comparing, so a
    /// full ID number finds its masked form.
    pub principal: Option<String>,
    /// An enterprise (credit code) the decision was about: in the principal,
    /// the resource or `acting_for`.
    pub enterprise: Option<String>,
    /// `useFunction` or the full `Etax::Action::"useFunction"`.
    pub action: Option<String>,
    pub decision: Option<Outcome>,
    /// A determining policy id.
    pub policy: Option<String>,
    /// Record kind (`authorize`, `login.sms`, …); a prefix ending in `.`
    /// (`login.`) matches every kind under it.
    pub kind: Option<String>,
}

impl Filter {
    pub fn matches(&self, r: &DecisionRecord) -> bool {
        let mask = crate::ids::mask_text;
        self.since_ms.is_none_or(|t| r.timestamp_ms >= t)
            && self.until_ms.is_none_or(|t| r.timestamp_ms < t)
            && self
                .principal
                .as_ref()
                .is_none_or(|p| r.principal.contains(&mask(p)))
            && self.enterprise.as_ref().is_none_or(|e| {
                r.principal.contains(e.as_str())
                    || r.resource.contains(e.as_str())
                    || r.acting_for
                        .as_ref()
                        .is_some_and(|a| a.contains(e.as_str()))
            })
            && self.action.as_ref().is_none_or(|a| {
                r.action == *a
                    || r.action.ends_with(&format!("::\"{a}\""))
                    || r.action == format!("Action::\"{a}\"")
            })
            && self.decision.is_none_or(|d| r.decision == d)
            && self
                .policy
                .as_ref()
                .is_none_or(|p| r.policies.iter().any(|x| x == p))
            && self.kind.as_ref().is_none_or(|k| {
                r.kind == *k || (k.ends_with('.') && r.kind.starts_with(k.as_str()))
            })
    }
}

/// One page of a query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    pub records: Vec<DecisionRecord>,
    /// Pass as `after` for the next page; `null` when the log is exhausted.
    pub next_after: Option<u64>,
}

/// Records matching `filter` with sequence number above `after`, at most
/// `limit` (capped at [`MAX_PAGE`]).
pub fn page(log: &AuditLog, filter: &Filter, after: u64, limit: usize) -> Result<Page, AuditError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut records = Vec::new();
    let mut scanned = 0;
    let mut last = None;
    let mut scan = log.scan(after.saturating_add(1), filter.since_ms)?;
    for item in scan.by_ref() {
        let stored = item?;
        last = Some(stored.seq);
        scanned += 1;
        if let Ok(r) = serde_json::from_slice::<DecisionRecord>(&stored.line()) {
            if filter.matches(&r) {
                records.push(r);
                if records.len() == limit {
                    break;
                }
            }
        }
        if scanned >= MAX_SCAN {
            break;
        }
    }
    // A full page or a scan cut short may have more after it.
    let more = records.len() == limit || scanned >= MAX_SCAN;
    let next_after = match last {
        Some(l) if more => scan.next().transpose()?.map(|_| l),
        _ => None,
    };
    Ok(Page {
        records,
        next_after,
    })
}

/// Calls `each` with every matching record and its stored JSON, oldest
/// first, from one snapshot.
pub fn for_each(
    log: &AuditLog,
    filter: &Filter,
    mut each: impl FnMut(&DecisionRecord, &[u8]) -> io::Result<()>,
) -> Result<u64, QueryError> {
    let mut n = 0;
    for item in log.scan(1, filter.since_ms)? {
        let bytes = item?.line();
        if let Ok(r) = serde_json::from_slice::<DecisionRecord>(&bytes) {
            if filter.matches(&r) {
                each(&r, &bytes)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("writing output: {0}")]
    Io(#[from] io::Error),
}

/// Output formats of `audit query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One stored record per line, exactly as hashed (plus `hash`).
    Jsonl,
    /// RFC 4180 with a header row; lists joined by `;`.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            _ => Err(format!("unknown format {s:?}: use table, jsonl or csv")),
        }
    }
}

const CSV_COLUMNS: &[&str] = &[
    "seq",
    "time",
    "decision_id",
    "caller",
    "kind",
    "step",
    "principal",
    "action",
    "resource",
    "acting_for",
    "decision",
    "policies",
    "errors",
    "policy_version",
    "latency_us",
    "reason",
    "prev_hash",
    "hash",
];

/// Writes matching records to `out` in `format`; returns how many.
pub fn write(
    log: &AuditLog,
    filter: &Filter,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, QueryError> {
    match format {
        Format::Table => writeln!(
            out,
            "{:>8}  {:<24}  {:<5}  {:<40}  {:<28}  {:<36}  POLICIES",
            "SEQ", "TIME (UTC)", "DEC", "PRINCIPAL", "ACTION", "RESOURCE"
        )?,
        Format::Csv => writeln!(out, "{}", CSV_COLUMNS.join(","))?,
        Format::Jsonl => {}
    }
    for_each(log, filter, |r, bytes| match format {
        Format::Jsonl => {
            out.write_all(bytes)?;
            out.write_all(b"\n")
        }
        Format::Table => writeln!(
            out,
            "{:>8}  {:<24}  {:<5}  {:<40}  {:<28}  {:<36}  {}",
            r.seq,
            super::time::format_utc(r.timestamp_ms),
            r.decision.as_str(),
            r.principal,
            r.action,
            r.resource,
            r.policies.join(",")
        ),
        Format::Csv => {
            let fields = [
                r.seq.to_string(),
                super::time::format_utc(r.timestamp_ms),
                r.decision_id.clone(),
                r.caller.clone().unwrap_or_default(),
                r.kind.clone(),
                r.step.clone().unwrap_or_default(),
                r.principal.clone(),
                r.action.clone(),
                r.resource.clone(),
                r.acting_for.clone().unwrap_or_default(),
                r.decision.as_str().to_owned(),
                r.policies.join(";"),
                r.errors.join(";"),
                r.policy_version.clone(),
                r.latency_us.to_string(),
                r.reason.clone().unwrap_or_default(),
                r.prev_hash.clone(),
                r.hash.clone(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", line.join(","))
        }
    })
}

/// Streams every record written at or after `since_ms` as JSON lines, in
/// constant memory.
pub fn export(
    log: &AuditLog,
    since_ms: Option<u64>,
    out: &mut impl Write,
) -> Result<u64, QueryError> {
    let filter = Filter {
        since_ms,
        ..Filter::default()
    };
    write(log, &filter, Format::Jsonl, out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
