//! The decision log for auditors: every decision, the rule that made it,
//! in its own redb file so audit writes never contend with identity writes.

mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

pub use record::{DecisionRecord, Outcome};

/// sequence number → record as JSON.
const DECISIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("decisions");

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("decision log {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("decision log: {0}")]
    Redb(#[from] redb::Error),
    #[error("decision log writer stopped")]
    Stopped,
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for AuditError {
            fn from(e: $t) -> Self {
                AuditError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The decision log file inside a data directory.
pub fn decision_log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("decisions.redb")
}

/// Appends decision records. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    db: Arc<Database>,
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let db = Database::create(path).map_err(|source| AuditError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let txn = db.begin_write()?;
        txn.open_table(DECISIONS)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Appends `record` and returns once it is durably committed: for login
    /// and maintenance decisions, whose response must not outrun the log.
    pub async fn commit(&self, record: DecisionRecord) -> Result<u64, AuditError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || append(&db, &[record]))
            .await
            .map_err(|_| AuditError::Stopped)?
            .map(|seqs| seqs[0])
    }

    /// Appends records of high-volume `/v1/authorize` decisions.
    pub async fn enqueue(&self, records: Vec<DecisionRecord>) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || append(&db, &records))
            .await
            .map_err(|_| AuditError::Stopped)?
            .map(|_| ())
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

fn append(db: &Database, records: &[DecisionRecord]) -> Result<Vec<u64>, AuditError> {
    let txn = db.begin_write()?;
    let mut seqs = Vec::with_capacity(records.len());
    {
        let mut table = txn.open_table(DECISIONS)?;
        let mut next = table.last()?.map_or(1, |(k, _)| k.value() + 1);
        for r in records {
            let bytes = serde_json::to_vec(r).expect("records serialize");
            table.insert(next, bytes.as_slice())?;
            seqs.push(next);
            next += 1;
        }
    }
    txn.commit()?;
    Ok(seqs)
}
