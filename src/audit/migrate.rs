//! Logs written before the segment files: one redb file, `decisions.redb`,
//! whose `decisions` table held each record's JSON (canonical form plus
//! `hash`) by sequence number. On first open such a log is copied into
//! segments, every record keeping its sequence number and hash (so it stays
//! SHA-256-verifiable), and the old file is renamed
//! `decisions.redb.migrated`. The old format's writer stays here
//! ([`write_legacy`]) so tests can build a log as the old code did.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::chain::Checkpoint;
use super::digest::ChainHash;
use super::segment::{self, LogMeta, FORMAT};
use super::stored::{self, Stored, BLOCK_RECORDS};
use super::{AuditError, DecisionRecord};

/// sequence number → record JSON (canonical form + `hash`).
const DECISIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("decisions");
/// `head` → checkpoint JSON; `anchor` → seq of the latest anchor record.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("decisions_meta");

/// The old log file beside the segment directory `dir`.
pub fn legacy_path(dir: &Path) -> PathBuf {
    dir.with_file_name("decisions.redb")
}

fn format_err(e: impl std::fmt::Display) -> AuditError {
    AuditError::Format(format!("migrating decisions.redb: {e}"))
}

/// The stored unit of an old record: its JSON without `hash` is its
/// canonical form, since `hash` was always its last field.
fn stored_of(seq: u64, bytes: &[u8]) -> Result<Stored, AuditError> {
    let r: DecisionRecord = serde_json::from_slice(bytes).map_err(format_err)?;
    let hash: [u8; 32] = hex::decode(&r.hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| format_err(format!("record {seq} has no hash")))?;
    let prev: [u8; 32] = hex::decode(&r.prev_hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| format_err(format!("record {seq} has no prev_hash")))?;
    let suffix = format!(",\"hash\":\"{}\"}}", r.hash);
    let canonical = match bytes.strip_suffix(suffix.as_bytes()) {
        Some(head) => [head, b"}"].concat(),
        // Not byte-for-byte the old writer's form: keep what verify hashed.
        None => super::chain::canonical_bytes(&r),
    };
    Ok(Stored {
        seq,
        timestamp_ms: r.timestamp_ms,
        prev,
        hash,
        canonical,
        links: true,
    })
}

/// Copies `legacy` into segments in `dir` (which holds no log yet), writes
/// the clean-close head, and renames the old file.
pub fn migrate(legacy: &Path, dir: &Path) -> Result<(), AuditError> {
    let db = Database::open(legacy).map_err(|e| format_err(e.to_string()))?;
    let txn = db.begin_read().map_err(|e| format_err(e.to_string()))?;
    let table = txn
        .open_table(DECISIONS)
        .map_err(|e| format_err(e.to_string()))?;
    let mut block: Vec<Stored> = Vec::with_capacity(BLOCK_RECORDS);
    let mut out: Vec<u8> = Vec::new();
    let mut first_seq = None;
    let mut last: Option<Checkpoint> = None;
    for item in table.iter().map_err(|e| format_err(e.to_string()))? {
        let (k, v) = item.map_err(|e| format_err(e.to_string()))?;
        let s = stored_of(k.value(), v.value())?;
        first_seq.get_or_insert(s.seq);
        last = Some(Checkpoint {
            seq: s.seq,
            hash: s.hash_hex(),
            timestamp_ms: s.timestamp_ms,
            time: super::time::format_utc(s.timestamp_ms),
        });
        block.push(s);
        if block.len() == BLOCK_RECORDS {
            out.extend(stored::block_frames(&block));
            block.clear();
        }
    }
    out.extend(stored::block_frames(&block));
    drop(table);
    drop(txn);
    drop(db);
    if let Some(first) = first_seq {
        segment::write_atomic(&segment::segment_path(dir, first), &out)?;
    }
    let meta = LogMeta {
        format: FORMAT,
        chain_hash: ChainHash::Sha256,
    };
    segment::write_atomic(
        &segment::meta_path(dir),
        &serde_json::to_vec(&meta).expect("meta serializes"),
    )?;
    if let Some(head) = last {
        let json = serde_json::to_vec(&head).expect("checkpoints serialize");
        segment::write_atomic(&segment::head_path(dir), &json)?;
    }
    let done = legacy.with_extension("redb.migrated");
    std::fs::rename(legacy, &done).map_err(|e| AuditError::Io {
        path: legacy.display().to_string(),
        source: e,
    })?;
    tracing::info!(from = %legacy.display(), to = %dir.display(), "decision log migrated to segment files");
    Ok(())
}

/// Writes `records` as the old code did (seq, prev_hash and SHA-256 hash
/// assigned in order, one redb transaction, the head in the meta table), for
/// tests of the migration.
pub fn write_legacy(path: &Path, records: &mut [DecisionRecord]) -> Result<(), AuditError> {
    let db = Database::create(path).map_err(|e| format_err(e.to_string()))?;
    let txn = db.begin_write().map_err(|e| format_err(e.to_string()))?;
    {
        let mut table = txn
            .open_table(DECISIONS)
            .map_err(|e| format_err(e.to_string()))?;
        let mut meta = txn
            .open_table(META)
            .map_err(|e| format_err(e.to_string()))?;
        let mut prev = super::chain::GENESIS.to_owned();
        for (i, r) in records.iter_mut().enumerate() {
            super::chain::seal_record(r, i as u64 + 1, &prev, ChainHash::Sha256);
            let bytes = serde_json::to_vec(&*r).expect("records serialize");
            table
                .insert(r.seq, bytes.as_slice())
                .map_err(|e| format_err(e.to_string()))?;
            prev.clone_from(&r.hash);
        }
        if let Some(last) = records.last() {
            let cp = serde_json::to_vec(&Checkpoint::of(last)).expect("checkpoints serialize");
            meta.insert("head", cp.as_slice())
                .map_err(|e| format_err(e.to_string()))?;
        }
    }
    txn.commit().map_err(|e| format_err(e.to_string()))?;
    Ok(())
}
