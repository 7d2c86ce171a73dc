//! The hash chain that makes the decision log tamper-evident, and the walk
//! that checks it.
//!
//! Canonical form: a record's compact JSON as serde_json writes it, fields
//! in [`DecisionRecord`] declaration order, absent optional fields left out,
//! `hash` left out (written directly by [`super::canonical`], which its tests
//! hold to serde_json's bytes). `hash = hex(H(canonical form))`, H the log's chain hash
//! (SHA-256 or SM3, fixed when the log is created); since `seq` and
//! `prev_hash` are inside the canonical form, each hash covers the whole
//! history before it. An exported line is the canonical form with `hash`
//! appended as its last field, so it can be re-hashed by anyone with a JSON
//! parser that keeps key order (see docs/decision-log.md). The walk that
//! checks the chain is in [`super::forensics`].

use serde::{Deserialize, Serialize};

use super::canonical::Unsealed;
use super::digest::ChainHash;
use super::DecisionRecord;

/// `prev_hash` of the first record ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The head of the log at some moment: what auditors keep elsewhere, and
/// later prove the log still extends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Both forms hold the hash to one rule, so a malformed hash is a
    /// malformed checkpoint, never a log reported tampered.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(cp) = serde_json::from_str::<Checkpoint>(s) {
            return Ok(Self {
                hash: checked_hash(&cp.hash)?,
                ..cp
            });
        }
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not a checkpoint: expected SEQ:HASH or the JSON `audit checkpoint` prints"))?;
        let seq = seq
            .trim()
            .parse()
            .map_err(|_| format!("checkpoint sequence number {seq:?} is not a number"))?;
        Ok(Self {
            seq,
            hash: checked_hash(hash)?,
            timestamp_ms: 0,
            time: String::new(),
        })
    }
}

/// A checkpoint's hash as the log writes hashes: 64 lowercase hex digits.
fn checked_hash(hash: &str) -> Result<String, String> {
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "checkpoint hash {hash:?} is not 64 hex digits (SHA-256 or SM3)"
        ));
    }
    Ok(hash)
}

/// The canonical form of `record` (its JSON without `hash`).
pub fn canonical_bytes(record: &DecisionRecord) -> Vec<u8> {
    Unsealed::of(record).canonical(record.seq, &record.prev_hash)
}

/// hex(H(canonical form)).
pub fn compute_hash(record: &DecisionRecord, hash: ChainHash) -> String {
    hash.hex(&canonical_bytes(record))
}

/// The canonical form of `record` at `seq` after the record whose hash is
/// `prev_hash` (hex), and its hash: the record's place in the chain.
pub(super) fn seal(
    record: &Unsealed,
    seq: u64,
    prev_hash: &str,
    hash: ChainHash,
) -> (Vec<u8>, [u8; 32]) {
    let bytes = record.canonical(seq, prev_hash);
    let digest = hash.digest(&bytes);
    (bytes, digest)
}

/// [`seal`] for a whole record, which is given its place (`seq`,
/// `prev_hash`, `hash`): the legacy log's writer and tests.
pub(super) fn seal_record(
    record: &mut DecisionRecord,
    seq: u64,
    prev_hash: &str,
    hash: ChainHash,
) -> (Vec<u8>, [u8; 32]) {
    record.seq = seq;
    record.prev_hash = prev_hash.to_owned();
    let (bytes, digest) = seal(&Unsealed::of(record), seq, prev_hash, hash);
    record.hash = super::digest::to_hex(&digest);
    (bytes, digest)
}

/// How the log was found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TamperKind {
    /// A record's content no longer matches its hash or its successor's link.
    Altered,
    /// A record is missing: a gap, a cut head, a prefix gone without an anchor.
    Removed,
    /// A record sits at another record's position.
    Reordered,
    /// Stored bytes changed without their checksum being rewritten: storage
    /// damage (or a careless edit), not a consistent rewrite.
    Corrupted,
    /// Bytes that cannot be decoded at all: the records in them are lost.
    Unreadable,
}

impl TamperKind {
    /// Whether this finding is storage damage rather than a consistent
    /// rewrite of the log.
    pub fn is_damage(self) -> bool {
        matches!(self, TamperKind::Corrupted | TamperKind::Unreadable)
    }
}

/// The overall finding, and the exit code of `audit verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Exit 0.
    Ok,
    /// Exit 3: content or chain rewritten with valid checksums, records
    /// removed, or a checkpoint no longer extended.
    Tampered,
    /// Exit 4: storage damaged (checksum mismatch, undecodable or torn
    /// frames) and nothing worse found.
    Unreadable,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Tampered => 3,
            Verdict::Unreadable => 4,
        }
    }
}

/// The first thing wrong with the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    pub kind: TamperKind,
    /// The first sequence number affected.
    pub seq: u64,
    /// When that record was written, if its time could be read; else the
    /// time of the last record before it that could.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub detail: String,
}

/// Whether the log still extends a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckpointCheck {
    pub seq: u64,
    pub hash: String,
    pub extended: bool,
    /// The checkpoint's record was pruned by an anchor that verified, and
    /// the anchor names another record: the log can neither prove nor
    /// disprove it any more. Not tampering (the verdict stays ok).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unprovable: bool,
    pub detail: String,
}

/// The result of walking the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// True when the chain is intact (and extends the checkpoint, if given).
    pub ok: bool,
    pub verdict: Verdict,
    /// The log's chain hash, from its `log.json`.
    pub chain_hash: ChainHash,
    /// Records walked.
    pub records: u64,
    /// The first record kept (1 unless retention pruned before it).
    pub first_seq: Option<u64>,
    pub head: Option<Checkpoint>,
    /// The first problem found.
    pub problem: Option<Problem>,
    /// Every problem found (the walk goes on after damage, at most 100).
    #[serde(default)]
    pub problems: Vec<Problem>,
    /// The last record verified before the first problem.
    #[serde(default)]
    pub last_verified: Option<Checkpoint>,
    pub checkpoint: Option<CheckpointCheck>,
    /// What could not be checked, though nothing was found wrong (an anchor
    /// written before anchors carried the pruned record, a missing
    /// `head.json`): the verdict stays ok, the report says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// A log not closed cleanly: the unfinished write found at its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_tail: Option<String>,
    /// Set when the log is open and being written (verified by the server
    /// that writes it): what that means for the report. No finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_form_is_the_canonical_form_and_hashed_with_the_log_hash() {
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
        let (sealed, digest) = seal_record(&mut record, 7, "abc", ChainHash::Sm3);
        let mut canonical = record.clone();
        canonical.hash.clear();
        assert_eq!(sealed, serde_json::to_vec(&canonical).unwrap());
        assert_eq!(record.hash, hex::encode(digest));
        assert_eq!(record.hash, ChainHash::Sm3.hex(&sealed));
        assert_eq!(compute_hash(&record, ChainHash::Sm3), record.hash);
    }
}
