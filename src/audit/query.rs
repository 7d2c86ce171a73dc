//! Questions auditors ask of the log: filters, pages for HTTP, and the
//! table / JSON lines / CSV output of the command line. Everything streams
//! from one snapshot of the log's files ([`AuditLog::scan`]), block by
//! block, so memory stays constant however long the log.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::pseudonym::Pseudonyms;
use super::time::{format_time, Offset};
use super::{AuditError, AuditLog, DecisionRecord, FinalOutcome, Outcome};

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
    /// Also return the auditors' own reads (`audit.read`), which otherwise
    /// drown the decisions they looked for. A `kind` filter that names
    /// them asks for them too.
    #[serde(default)]
    pub include_reads: bool,
    /// What the request acted on: part of the masked target (person,
    /// permission identity, agency, enterprise), or — given a full ID
    /// number — exactly that target person, by pseudonym.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A full ID number: every record naming that person in any role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// The principal's identity type (`legal_rep`, `finance_head`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<FinalOutcome>,
    /// The calling system: an API key id, exactly (empty: open mode's
    /// records, which name no caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// One decision's records (a correction shares its decision's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    /// Pseudonyms of the full ID numbers given as `principal`, `target` and
    /// `person`, set by [`Filter::resolve_persons`]; never serialized.
    #[serde(skip)]
    pub pseudonyms: PersonPseudonyms,
}

/// Pseudonyms of the filter's full ID numbers (see [`Filter::resolve_persons`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonPseudonyms {
    principal: Option<String>,
    target: Option<String>,
    person: Option<String>,
}

/// The ID number in a filter argument when it is a whole one, not a part
/// or a mask: only a whole number has a pseudonym to match exactly. A bare
/// argument counts only if it reads as a resident ID (17 digits and a digit
/// or `X`, or the old 15 digits), so a credit code such as
/// `91210102MA0TAX001F` still matches part of the principal; any other ID
/// type is given with its type, `passport:E12345678`.
pub fn full_id_number(arg: &str) -> Option<&str> {
    let arg = arg.trim();
    if let Some((_, n)) = arg.rsplit_once(':') {
        let whole = n.len() >= 6 && n.bytes().all(|b| b.is_ascii_alphanumeric());
        return whole.then_some(n);
    }
    let b = arg.as_bytes();
    let resident = match b.len() {
        18 => b[..17].iter().all(u8::is_ascii_digit) && matches!(b[17], b'0'..=b'9' | b'X' | b'x'),
        15 => b.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    resident.then_some(arg)
}

impl Filter {
    /// Turns the full ID numbers among `principal`, `target` and `person`
    /// into pseudonyms under the log's key, so they match exactly (masks
    /// alone would match everyone whose ID masks the same way).
    pub fn resolve_persons(mut self, keys: &Pseudonyms) -> Self {
        let of = |arg: &Option<String>| arg.as_deref().and_then(full_id_number).map(|n| keys.of(n));
        self.pseudonyms = PersonPseudonyms {
            principal: of(&self.principal),
            target: of(&self.target),
            person: of(&self.person),
        };
        self
    }

    /// Whether `r` names the person with `pseudonym` in one of `roles`
    /// (any role when empty).
    fn names(r: &DecisionRecord, pseudonym: &str, roles: &[&str]) -> bool {
        r.persons.iter().any(|p| {
            p.pseudonym == pseudonym && (roles.is_empty() || roles.contains(&p.role.as_str()))
        })
    }

    /// The filters of issue #11: target, person, identity type, outcome.
    fn matches_persons(&self, r: &DecisionRecord) -> bool {
        let mask = crate::ids::mask_text;
        let p = &self.pseudonyms;
        let target = match (&p.target, &self.target) {
            (Some(ps), _) => Self::names(r, ps, &["target"]),
            (None, Some(t)) => r.target.as_ref().is_some_and(|x| x.contains(&mask(t))),
            (None, None) => true,
        };
        target
            && self
                .person
                .as_ref()
                .is_none_or(|_| p.person.as_ref().is_some_and(|ps| Self::names(r, ps, &[])))
            && self.identity_type.as_ref().is_none_or(|t| {
                r.persons
                    .iter()
                    .any(|x| x.role == "principal" && x.identity_type.as_deref() == Some(t))
            })
            && self.outcome.is_none_or(|o| r.outcome == Some(o))
            && self
                .caller
                .as_ref()
                .is_none_or(|c| r.caller.as_deref().unwrap_or("") == c)
            && self
                .decision_id
                .as_ref()
                .is_none_or(|d| r.decision_id == *d)
    }
}

/// The kind of the record every read of the log leaves.
pub const READ_KIND: &str = "audit.read";

impl Filter {
    pub fn matches(&self, r: &DecisionRecord) -> bool {
        let mask = crate::ids::mask_text;
        self.since_ms.is_none_or(|t| r.timestamp_ms >= t)
            && self.until_ms.is_none_or(|t| r.timestamp_ms < t)
            && match (&self.pseudonyms.principal, &self.principal) {
                (Some(ps), _) => Self::names(r, ps, &["principal", "agent"]),
                (None, Some(p)) => r.principal.contains(&mask(p)),
                (None, None) => true,
            }
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
            && (self.include_reads || self.kind.is_some() || r.kind != READ_KIND)
            && self.kind.as_ref().is_none_or(|k| {
                r.kind == *k || (k.ends_with('.') && r.kind.starts_with(k.as_str()))
            })
            && self.matches_persons(r)
    }
}

impl Filter {
    /// The fields set, as `name=value&…` (times in UTC): what an `audit.read`
    /// record says was asked for.
    pub fn describe(&self) -> String {
        let time = |t: Option<u64>| t.map(super::time::format_utc);
        let fields = [
            ("since", time(self.since_ms)),
            ("until", time(self.until_ms)),
            ("principal", self.principal.clone()),
            ("enterprise", self.enterprise.clone()),
            ("action", self.action.clone()),
            ("decision", self.decision.map(|d| d.as_str().to_owned())),
            ("policy", self.policy.clone()),
            ("kind", self.kind.clone()),
            (
                "include_reads",
                self.include_reads.then(|| "true".to_owned()),
            ),
            ("target", self.target.clone()),
            ("person", self.person.clone()),
            ("identity_type", self.identity_type.clone()),
            ("outcome", self.outcome.map(|o| o.as_str().to_owned())),
            ("caller", self.caller.clone()),
            ("decision_id", self.decision_id.clone()),
        ];
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// One page of a query.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page {
    /// Decision records as `audit query` prints them.
    #[schema(value_type = Vec<Object>)]
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
    each: impl FnMut(&DecisionRecord, &[u8]) -> io::Result<()>,
) -> Result<u64, QueryError> {
    for_each_after(log, filter, 0, each)
}

/// As [`for_each`], over the records with sequence number above `after`.
fn for_each_after(
    log: &AuditLog,
    filter: &Filter,
    after: u64,
    mut each: impl FnMut(&DecisionRecord, &[u8]) -> io::Result<()>,
) -> Result<u64, QueryError> {
    let mut n = 0;
    for item in log.scan(after.saturating_add(1), filter.since_ms)? {
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

/// How records are written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub format: Format,
    /// The offset the `time` column of the table and CSV is shown at. JSON
    /// lines carry only the stored `timestamp_ms`: they must stay the exact
    /// hashed bytes.
    pub offset: Offset,
    /// Start CSV with a UTF-8 byte order mark: without it Excel reads the
    /// file in the machine's ANSI code page and garbles Chinese names.
    pub bom: bool,
}

impl Output {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            offset: Offset::default(),
            bom: false,
        }
    }
}

/// The CSV header, in column order (documented in docs/decision-log.md).
pub const CSV_COLUMNS: &[&str] = &[
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

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Writes matching records to `out` in `format`, times at Beijing time;
/// returns how many.
pub fn write(
    log: &AuditLog,
    filter: &Filter,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, QueryError> {
    write_with(log, filter, &Output::new(format), out)
}

/// Writes matching records to `out` as `output` says; returns how many.
pub fn write_with(
    log: &AuditLog,
    filter: &Filter,
    output: &Output,
    out: &mut impl Write,
) -> Result<u64, QueryError> {
    write_after(log, filter, 0, output, out)
}

/// As [`write_with`], from the records with sequence number above `after`
/// (an export resumed where a page or an earlier export ended).
pub fn write_after(
    log: &AuditLog,
    filter: &Filter,
    after: u64,
    output: &Output,
    out: &mut impl Write,
) -> Result<u64, QueryError> {
    match output.format {
        Format::Table => writeln!(
            out,
            "{:>8}  {:<29}  {:<5}  {:<40}  {:<28}  {:<36}  POLICIES",
            "SEQ",
            format!("TIME ({})", output.offset),
            "DEC",
            "PRINCIPAL",
            "ACTION",
            "RESOURCE"
        )?,
        Format::Csv => {
            if output.bom {
                out.write_all(UTF8_BOM)?;
            }
            write!(out, "{}\r\n", CSV_COLUMNS.join(","))?
        }
        Format::Jsonl => {}
    }
    for_each_after(log, filter, after, |r, bytes| match output.format {
        Format::Jsonl => {
            out.write_all(bytes)?;
            out.write_all(b"\n")
        }
        Format::Table => writeln!(
            out,
            "{:>8}  {:<29}  {:<5}  {:<40}  {:<28}  {:<36}  {}",
            r.seq,
            format_time(r.timestamp_ms, output.offset),
            r.decision.as_str(),
            r.principal,
            r.action,
            r.resource,
            r.policies.join(",")
        ),
        Format::Csv => write_csv_row(out, r, output.offset),
    })
}

/// One CSV record, CRLF-terminated as RFC 4180 has it.
fn write_csv_row(out: &mut impl Write, r: &DecisionRecord, offset: Offset) -> io::Result<()> {
    let fields = [
        r.seq.to_string(),
        format_time(r.timestamp_ms, offset),
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
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(csv_field(f).as_bytes())?;
    }
    out.write_all(b"\r\n")
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

/// RFC 4180: a field holding a comma, quote or line break is quoted, its
/// quotes doubled.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_per_rfc_4180() {
        assert_eq!(csv_field("plain 税务"), "plain 税务");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }
}

#[cfg(test)]
mod person_filter_tests {
    use super::full_id_number;

    #[test]
    fn only_whole_id_numbers_are_matched_by_pseudonym() {
        assert_eq!(
            full_id_number("210102198003124011"),
            Some("210102198003124011")
        );
        assert_eq!(
            full_id_number("21010219921111404X"),
            Some("21010219921111404X")
        );
        assert_eq!(
            full_id_number("resident_id:210102198003124011"),
            Some("210102198003124011")
        );
        assert_eq!(full_id_number("passport:E12345678"), Some("E12345678"));
        for part in [
            "91210102MA0TAX001F",
            "2101**********4011",
            "4011",
            "resident_id:2101**********4011",
        ] {
            assert_eq!(full_id_number(part), None, "{part}");
        }
    }
}
