//! The decision log for auditors (审计日志): every decision, the rule that
//! made it, in its own redb file so audit writes never contend with identity
//! writes.
//!
//! - [`record`]: what one entry holds (masked, never a secret);
//! - [`writer`]: the single writer thread that group-commits;
//! - [`chain`]: the SHA-256 hash chain, `verify` and checkpoints;
//! - [`query`]: filters, pages, table/JSONL/CSV output and export;
//! - [`summary`]: counts per principal, action, decision, policy, …;
//! - [`time`]: times at an offset (Beijing by default) for filters and output.
//!
//! Retention (pruning with an anchor record) runs in the writer, so it is
//! ordered with appends. The format and guarantees are documented in
//! `docs/decision-log.md`.

pub mod chain;
pub mod commands;
pub mod digest;
pub mod keys;
pub mod pseudonym;
pub mod query;
mod record;
pub mod signing;
pub mod summary;
pub mod time;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

pub use chain::{Checkpoint, CheckpointCheck, Problem, TamperKind, VerifyReport};
pub use query::{Filter, Format, Page};
pub use record::{DecisionRecord, FinalOutcome, Outcome, PersonRef, PrunedRange, Target};

/// sequence number → record as JSON (its canonical form plus `hash`).
pub const DECISIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("decisions");
/// `head` → the last record's [`Checkpoint`]; `anchor` → seq of the latest
/// anchor record. Written in the same transactions as the records.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("decisions_meta");

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("decision log {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("decision log {0} does not exist")]
    Missing(String),
    #[error("decision log: {0}")]
    Redb(#[from] redb::Error),
    #[error("decision log writer stopped")]
    Stopped,
    #[error("decision log write failed: {0}")]
    Write(String),
}

from_redb_errors!(AuditError);

/// The decision log file inside a data directory.
pub fn decision_log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("decisions.redb")
}

/// Opens (creating if needed) the decision log file and its tables.
fn open_database(path: &Path) -> Result<Database, AuditError> {
    let db = Database::create(path).map_err(|source| AuditError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let txn = db.begin_write()?;
    txn.open_table(DECISIONS)?;
    txn.open_table(META)?;
    txn.commit()?;
    Ok(db)
}

/// Appends decision records through the writer thread and reads them back.
/// Cheap to clone; the writer stops when the last clone is dropped.
#[derive(Clone)]
pub struct AuditLog {
    db: Arc<Database>,
    tx: mpsc::Sender<writer::Msg>,
}

impl AuditLog {
    /// Opens the log and starts its writer. redb locks the file to this
    /// process: a second process gets [`AuditError::Open`].
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let db = Arc::new(open_database(path)?);
        let tx = writer::spawn(db.clone())?;
        Ok(Self { db, tx })
    }

    /// Opens an existing log (for the `audit` commands), never creating one.
    pub fn open_existing(path: &Path) -> Result<Self, AuditError> {
        if !path.exists() {
            return Err(AuditError::Missing(path.display().to_string()));
        }
        Self::open(path)
    }

    /// Appends `record` and returns its sequence number once it is durably
    /// committed: for login and maintenance decisions, whose response must
    /// not outrun the log.
    pub async fn commit(&self, record: DecisionRecord) -> Result<u64, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(writer::Msg::Commit(Box::new(record), ack))
            .await
            .map_err(|_| AuditError::Stopped)?;
        done.await.map_err(|_| AuditError::Stopped)?
    }

    /// Queues records of high-volume `/v1/authorize` decisions for the next
    /// group commit. Returns once queued; waits while the queue is full
    /// (backpressure), never drops.
    pub async fn enqueue(&self, records: Vec<DecisionRecord>) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        self.tx
            .send(writer::Msg::Batch(records))
            .await
            .map_err(|_| AuditError::Stopped)
    }

    /// Returns once everything queued before it is durable.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(writer::Msg::Flush(ack))
            .await
            .map_err(|_| AuditError::Stopped)?;
        done.await.map_err(|_| AuditError::Stopped)
    }

    /// Retention: removes the records written before `before_ms` (oldest
    /// first, stopping at the first newer one) and appends an anchor record
    /// naming the last one removed and its hash, so the rest still verifies.
    /// `principal` says who asked (`retention`, an operator, a key id).
    pub async fn prune(
        &self,
        before_ms: u64,
        principal: &str,
    ) -> Result<Option<PrunedRange>, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(writer::Msg::Prune {
                before_ms,
                principal: principal.to_owned(),
                ack,
            })
            .await
            .map_err(|_| AuditError::Stopped)?;
        done.await.map_err(|_| AuditError::Stopped)?
    }

    /// Walks the chain (blocking: run it off the async workers).
    pub fn verify(&self, checkpoint: Option<&Checkpoint>) -> Result<VerifyReport, AuditError> {
        chain::verify(&self.db, checkpoint)
    }

    /// The head of the log, `None` while empty.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        chain::checkpoint(&self.db)
    }

    /// One page of records matching `filter` after sequence number `after`.
    pub fn query(&self, filter: &Filter, after: u64, limit: usize) -> Result<Page, AuditError> {
        query::page(&self.db, filter, after, limit)
    }

    /// The underlying database, for streaming reads.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Every record, oldest first.
    pub fn all(&self) -> Result<Vec<(u64, DecisionRecord)>, AuditError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DECISIONS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            if let Ok(r) = serde_json::from_slice(v.value()) {
                out.push((k.value(), r));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
