//! The hash chain that makes the decision log tamper-evident, and the walk
//! that checks it.
//!
//! Canonical form: a record's compact JSON as serde_json writes it, fields
//! in [`DecisionRecord`] declaration order, absent optional fields left out,
//! `hash` left out. `hash = hex(SHA-256(canonical form))`; since `seq` and
//! `prev_hash` are inside the canonical form, each hash covers the whole
//! history before it. The stored value is the canonical form with `hash`
//! appended as its last field, so an exported JSON line can be re-hashed by
//! anyone with a JSON parser that keeps key order (see docs/decision-log.md).

use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuditError, DecisionRecord, DECISIONS, META};

/// `prev_hash` of the first record ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Meta key of the head: the last record written (a [`Checkpoint`]).
pub(super) const HEAD_KEY: &str = "head";
/// Meta key of the sequence number of the latest anchor record.
pub(super) const ANCHOR_KEY: &str = "anchor";

/// The head of the log at some moment: what auditors keep elsewhere, and
/// later prove the log still extends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub timestamp_ms: u64,
    /// `timestamp_ms` in RFC 3339, for people.
    #[serde(default)]
    pub time: String,
}

impl Checkpoint {
    pub fn of(record: &DecisionRecord) -> Self {
        Self {
            seq: record.seq,
            hash: record.hash.clone(),
            timestamp_ms: record.timestamp_ms,
            time: super::time::format_utc(record.timestamp_ms),
        }
    }

    /// Reads `SEQ:HASH` or the JSON that `audit checkpoint` prints.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(cp) = serde_json::from_str::<Checkpoint>(s) {
            return Ok(cp);
        }
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not a checkpoint: expected SEQ:HASH or the JSON `audit checkpoint` prints"))?;
        let seq = seq
            .trim()
            .parse()
            .map_err(|_| format!("checkpoint sequence number {seq:?} is not a number"))?;
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "checkpoint hash {hash:?} is not 64 hex digits of SHA-256"
            ));
        }
        Ok(Self {
            seq,
            hash,
            timestamp_ms: 0,
            time: String::new(),
        })
    }
}

/// The canonical form of `record` (its JSON without `hash`).
pub fn canonical_bytes(record: &DecisionRecord) -> Vec<u8> {
    if record.hash.is_empty() {
        serde_json::to_vec(record).expect("records serialize")
    } else {
        let mut r = record.clone();
        r.hash.clear();
        serde_json::to_vec(&r).expect("records serialize")
    }
}

/// hex(SHA-256(canonical form)).
pub fn compute_hash(record: &DecisionRecord) -> String {
    hex::encode(Sha256::digest(canonical_bytes(record)))
}

/// Gives `record` its place in the chain and returns its stored form.
pub(super) fn seal(record: &mut DecisionRecord, seq: u64, prev_hash: &str) -> Vec<u8> {
    record.seq = seq;
    record.prev_hash = prev_hash.to_owned();
    record.hash.clear();
    let mut bytes = serde_json::to_vec(&*record).expect("records serialize");
    record.hash = hex::encode(Sha256::digest(&bytes));
    // `hash` is the last field and left out while empty, so the stored form
    // is the canonical one with `"hash":…` added at its end: one
    // serialization per record instead of two, on the writer that keeps up
    // with every decision.
    debug_assert_eq!(bytes.last(), Some(&b'}'));
    bytes.pop();
    bytes.extend_from_slice(b",\"hash\":\"");
    bytes.extend_from_slice(record.hash.as_bytes());
    bytes.extend_from_slice(b"\"}");
    bytes
}

/// How the log was found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TamperKind {
    /// A record's content no longer matches its hash or its successor's link.
    Altered,
    /// A record is missing: a gap, a cut head, a prefix gone without an anchor.
    Removed,
    /// A record sits at another record's position.
    Reordered,
}

/// The first thing wrong with the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: TamperKind,
    /// The first sequence number affected.
    pub seq: u64,
    pub detail: String,
}

/// Whether the log still extends a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCheck {
    pub seq: u64,
    pub hash: String,
    pub extended: bool,
    pub detail: String,
}

/// The result of walking the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// True when the chain is intact (and extends the checkpoint, if given).
    pub ok: bool,
    /// Records walked.
    pub records: u64,
    /// The first record kept (1 unless retention pruned before it).
    pub first_seq: Option<u64>,
    pub head: Option<Checkpoint>,
    pub problem: Option<Problem>,
    pub checkpoint: Option<CheckpointCheck>,
}

fn problem(kind: TamperKind, seq: u64, detail: String) -> Option<Problem> {
    Some(Problem { kind, seq, detail })
}

/// Walks the whole log, oldest first, in one read snapshot (the writer
/// keeps appending meanwhile), and reports the first record that was
/// altered, removed or reordered. With `checkpoint`, also proves the log
/// still extends it.
pub fn verify(db: &Database, checkpoint: Option<&Checkpoint>) -> Result<VerifyReport, AuditError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(DECISIONS)?;
    let meta = txn.open_table(META)?;
    let head: Option<Checkpoint> = match meta.get(HEAD_KEY)? {
        Some(v) => serde_json::from_slice(v.value()).ok(),
        None => None,
    };
    let anchor_seq: Option<u64> = match meta.get(ANCHOR_KEY)? {
        Some(v) => serde_json::from_slice(v.value()).ok(),
        None => None,
    };

    let mut report = VerifyReport {
        ok: false,
        records: 0,
        first_seq: None,
        head: head.clone(),
        problem: None,
        checkpoint: None,
    };
    let mut prev: Option<(u64, String)> = None;
    let mut at_checkpoint: Option<String> = None;
    for item in table.iter()? {
        let (k, v) = item?;
        let key = k.value();
        let found = walk_one(&table, key, v.value(), prev.as_ref(), anchor_seq)?;
        let record = match found {
            Ok(r) => r,
            Err(p) => {
                report.problem = Some(p);
                return Ok(report);
            }
        };
        if report.first_seq.is_none() {
            report.first_seq = Some(key);
        }
        if checkpoint.is_some_and(|c| c.seq == key) {
            at_checkpoint = Some(record.hash.clone());
        }
        report.records += 1;
        prev = Some((key, record.hash));
    }

    // The head in the meta table is written in the same transaction as the
    // records, so a cut-off tail shows as a head past the last record.
    let last = prev.as_ref().map(|(s, _)| *s).unwrap_or(0);
    report.problem = match (&head, &prev) {
        (None, None) => None,
        (Some(h), None) => problem(
            TamperKind::Removed,
            report.first_seq.unwrap_or(1),
            format!("the log is empty but its head is record {}", h.seq),
        ),
        (None, Some((s, _))) => problem(
            TamperKind::Removed,
            *s,
            "the log's head marker is missing".to_owned(),
        ),
        (Some(h), Some((s, _))) if h.seq > *s => problem(
            TamperKind::Removed,
            s + 1,
            format!(
                "records {}..={} are missing: the head is record {}",
                s + 1,
                h.seq,
                h.seq
            ),
        ),
        (Some(h), Some((s, _))) if h.seq < *s => problem(
            TamperKind::Altered,
            h.seq + 1,
            format!(
                "records {}..={s} were added outside the writer (head is {})",
                h.seq + 1,
                h.seq
            ),
        ),
        (Some(h), Some((s, hash))) if &h.hash != hash => problem(
            TamperKind::Altered,
            *s,
            format!("record {s} is not the record the head names"),
        ),
        _ => None,
    };
    if report.problem.is_some() {
        return Ok(report);
    }
    if let Some(cp) = checkpoint {
        report.checkpoint = Some(check_checkpoint(
            &table,
            cp,
            at_checkpoint,
            report.first_seq,
            last,
            anchor_seq,
        )?);
    }
    report.ok = report.checkpoint.as_ref().is_none_or(|c| c.extended);
    Ok(report)
}

type Table = redb::ReadOnlyTable<u64, &'static [u8]>;

/// Checks one record against its position and predecessor.
fn walk_one(
    table: &Table,
    key: u64,
    bytes: &[u8],
    prev: Option<&(u64, String)>,
    anchor_seq: Option<u64>,
) -> Result<Result<DecisionRecord, Problem>, AuditError> {
    let fail = |kind, seq, detail: String| Ok(Err(Problem { kind, seq, detail }));
    let record: DecisionRecord = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                TamperKind::Altered,
                key,
                format!("record {key} is not a decision record: {e}"),
            )
        }
    };
    if let Some((p, _)) = prev {
        if key != p + 1 {
            return fail(
                TamperKind::Removed,
                p + 1,
                format!("records {}..={} are missing", p + 1, key - 1),
            );
        }
    }
    if record.seq != key {
        return fail(
            TamperKind::Reordered,
            key,
            format!("position {key} holds record {}", record.seq),
        );
    }
    if compute_hash(&record) != record.hash {
        return fail(
            TamperKind::Altered,
            key,
            format!("record {key} does not match its hash"),
        );
    }
    if serde_json::to_vec(&record).ok().as_deref() != Some(bytes) {
        return fail(
            TamperKind::Altered,
            key,
            format!("record {key} was rewritten (bytes differ from its canonical form)"),
        );
    }
    match prev {
        Some((p, prev_hash)) if &record.prev_hash != prev_hash => fail(
            TamperKind::Altered,
            *p,
            format!("record {key} does not link to record {p}: record {p} was altered, replaced or reordered"),
        ),
        Some(_) => Ok(Ok(record)),
        None if key == 1 => {
            if record.prev_hash == GENESIS {
                Ok(Ok(record))
            } else {
                fail(
                    TamperKind::Altered,
                    1,
                    "record 1 does not start the chain".to_owned(),
                )
            }
        }
        // A pruned prefix: the latest anchor must account for exactly the
        // records before this one.
        None => {
            let anchor = match anchor_seq {
                Some(a) => match table.get(a)? {
                    Some(v) => serde_json::from_slice::<DecisionRecord>(v.value()).ok(),
                    None => None,
                },
                None => None,
            };
            let Some(range) = anchor.and_then(|a| a.pruned) else {
                return fail(
                    TamperKind::Removed,
                    1,
                    format!(
                        "records 1..={} are missing and no anchor accounts for them",
                        key - 1
                    ),
                );
            };
            if range.last_seq + 1 != key {
                return fail(
                    TamperKind::Removed,
                    range.last_seq + 1,
                    format!(
                        "retention pruned through record {}, but records {}..={} are missing too",
                        range.last_seq,
                        range.last_seq + 1,
                        key - 1
                    ),
                );
            }
            if range.last_hash != record.prev_hash {
                return fail(
                    TamperKind::Altered,
                    key,
                    format!("record {key} does not link to the pruned record the anchor names"),
                );
            }
            Ok(Ok(record))
        }
    }
}

fn check_checkpoint(
    table: &Table,
    cp: &Checkpoint,
    at_checkpoint: Option<String>,
    first: Option<u64>,
    last: u64,
    anchor_seq: Option<u64>,
) -> Result<CheckpointCheck, AuditError> {
    let result = |extended, detail: String| CheckpointCheck {
        seq: cp.seq,
        hash: cp.hash.clone(),
        extended,
        detail,
    };
    if cp.seq > last {
        return Ok(result(
            false,
            format!("the log ends at record {last}, before the checkpoint's record {}: records were removed", cp.seq),
        ));
    }
    if let Some(hash) = at_checkpoint {
        return Ok(if hash == cp.hash {
            result(
                true,
                format!(
                    "record {} still has the checkpoint's hash and the chain to the head is intact",
                    cp.seq
                ),
            )
        } else {
            result(
                false,
                format!(
                    "record {} no longer has the checkpoint's hash: the log was rewritten",
                    cp.seq
                ),
            )
        });
    }
    // Pruned: only the anchor's last pruned record can still be compared.
    let anchor = match anchor_seq {
        Some(a) => table
            .get(a)?
            .and_then(|v| serde_json::from_slice::<DecisionRecord>(v.value()).ok())
            .and_then(|r| r.pruned),
        None => None,
    };
    Ok(match anchor {
        Some(r) if r.last_seq == cp.seq => {
            if r.last_hash == cp.hash {
                result(true, format!("record {} was pruned; the anchor carries its hash", cp.seq))
            } else {
                result(false, format!("the anchor's hash for pruned record {} differs from the checkpoint", cp.seq))
            }
        }
        _ => result(
            false,
            format!(
                "record {} was pruned (the log starts at {}); this checkpoint can no longer be proven",
                cp.seq,
                first.unwrap_or(0)
            ),
        ),
    })
}

/// The head of the log, or `None` while it is empty.
pub fn checkpoint(db: &Database) -> Result<Option<Checkpoint>, AuditError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let head = match meta.get(HEAD_KEY)? {
        Some(v) => serde_json::from_slice(v.value()).ok(),
        None => None,
    };
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_form_is_the_record_serialized() {
        let mut record = DecisionRecord::new(
            "d1",
            "authorize",
            "Etax::Staff::\"E/resident_id:210102199001015035\"",
            "Etax::Action::\"useFunction\"",
            "Etax::Function::\"vat_filing\"",
            None,
            true,
            &["function.via-permission-identity".to_owned()],
            &[],
            "v1",
            12,
        )
        .with_reason("a \"quoted\" reason");
        let sealed = seal(&mut record, 7, "abc");
        assert_eq!(sealed, serde_json::to_vec(&record).unwrap());
        let mut canonical = record.clone();
        canonical.hash.clear();
        assert_eq!(
            record.hash,
            hex::encode(Sha256::digest(serde_json::to_vec(&canonical).unwrap()))
        );
    }
}
