//! The identity store: identities and role grants in one redb file.
//!
//! Every record type lives in its own table, keyed by its natural key, its
//! value the record as JSON. JSON (not a positional binary codec) so that a
//! record type can gain a field with `#[serde(default)]` and old files still
//! open; the cost is a few microseconds per record, measured as small beside
//! Cedar's evaluation.
//!
//! Guarantees: a write is one redb transaction committed with
//! `Durability::Immediate` (one fsync): when a write returns `Ok`, it survives
//! a crash; when it returns `Err`, nothing of it was stored. Readers see a
//! consistent snapshot and never wait for a writer (MVCC).

mod import;
mod records;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use import::{import_document, ImportDocument, ImportError, ImportFailure, ImportSummary};
pub use records::*;

/// A table of records of type `Self`, keyed by string.
pub trait Record: Serialize + DeserializeOwned {
    const TABLE: TableDefinition<'static, &'static str, &'static [u8]>;
    /// Whether decisions read this record (identities and grants), so that
    /// writing it must invalidate what was built from the store. Login
    /// state (sessions, codes, lockouts) is not an input to any decision.
    const DECISION_INPUT: bool = true;
}

/// Secondary index: taxpayer identification number → credit code.
const TAXPAYER_IDS: TableDefinition<&str, &str> = TableDefinition::new("taxpayer_ids");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("identity store {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("identity store: {0}")]
    Redb(#[from] redb::Error),
    #[error("identity store holds a record that does not decode ({table}/{key}): {source}")]
    Corrupt {
        table: String,
        key: String,
        source: serde_json::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(e.into())
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

/// The identity store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// Bumped after every commit that wrote a decision input: what was
    /// built from an older generation may be stale.
    generation: Arc<AtomicU64>,
}

impl Store {
    /// Opens (or creates) the store at `path` and makes sure every table exists,
    /// so that readers never meet a missing table.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let store = Self {
            db: Arc::new(db),
            generation: Arc::default(),
        };
        store.write(|w| {
            for table in ALL_TABLES.into_iter().chain(AUTHN_TABLES) {
                w.txn.open_table(table)?;
            }
            w.txn.open_table(TAXPAYER_IDS)?;
            Ok::<_, StoreError>(())
        })?;
        Ok(store)
    }

    /// The current generation of decision inputs. Read it *before* taking
    /// the read snapshot that something is built from: then the thing built
    /// is at least as new as the generation it is filed under.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A consistent snapshot for reading.
    pub fn read(&self) -> Result<StoreReader, StoreError> {
        Ok(StoreReader {
            txn: self.db.begin_read()?,
        })
    }

    /// Runs `f` in one write transaction and commits it durably if `f`
    /// returns `Ok`; on `Err` nothing is written. redb admits one writer at a
    /// time, so concurrent writers are serialized here and a read-modify-write
    /// inside `f` never loses an update. Blocks: call from blocking threads.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut StoreWriter) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let mut writer = StoreWriter {
            txn,
            decision_input_written: false,
        };
        match f(&mut writer) {
            Ok(value) => {
                let bump = writer.decision_input_written;
                writer.txn.commit().map_err(StoreError::from)?;
                // After the commit: a reader that sees the new generation
                // began its snapshot after this commit.
                if bump {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                Ok(value)
            }
            Err(e) => {
                // Dropping an uncommitted transaction aborts it.
                Err(e)
            }
        }
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let r = self.read()?;
        for table in ALL_TABLES {
            if !r.txn.open_table(table)?.is_empty()? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A read snapshot of the store.
pub struct StoreReader {
    txn: ReadTransaction,
}

impl StoreReader {
    pub fn get<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        let table = self.txn.open_table(R::TABLE)?;
        let value = table.get(key)?;
        value.map(|v| decode::<R>(key, v.value())).transpose()
    }

    /// All records whose key starts with `prefix/`, in key order.
    pub fn children<R: Record>(&self, prefix: &str) -> Result<Vec<(String, R)>, StoreError> {
        children(&self.txn.open_table(R::TABLE)?, prefix)
    }

    /// Every record of a table, in key order.
    pub fn all<R: Record>(&self) -> Result<Vec<(String, R)>, StoreError> {
        let table = self.txn.open_table(R::TABLE)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            let key = k.value().to_owned();
            let record = decode::<R>(&key, v.value())?;
            out.push((key, record));
        }
        Ok(out)
    }

    /// The credit code registered under a taxpayer identification number.
    pub fn credit_code_for_taxpayer_id(&self, tin: &str) -> Result<Option<String>, StoreError> {
        let table = self.txn.open_table(TAXPAYER_IDS)?;
        Ok(table.get(tin)?.map(|v| v.value().to_owned()))
    }
}

/// An open write transaction; see [`Store::write`].
pub struct StoreWriter {
    txn: WriteTransaction,
    decision_input_written: bool,
}

impl StoreWriter {
    pub fn get<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        let table = self.txn.open_table(R::TABLE)?;
        let value = table.get(key)?;
        value.map(|v| decode::<R>(key, v.value())).transpose()
    }

    /// All records whose key starts with `prefix/`, in key order.
    pub fn children<R: Record>(&self, prefix: &str) -> Result<Vec<(String, R)>, StoreError> {
        children(&self.txn.open_table(R::TABLE)?, prefix)
    }

    pub fn put<R: Record>(&mut self, key: &str, record: &R) -> Result<(), StoreError> {
        self.decision_input_written |= R::DECISION_INPUT;
        let bytes = serde_json::to_vec(record).expect("records serialize to JSON");
        self.txn
            .open_table(R::TABLE)?
            .insert(key, bytes.as_slice())?;
        Ok(())
    }

    pub fn remove<R: Record>(&mut self, key: &str) -> Result<bool, StoreError> {
        self.decision_input_written |= R::DECISION_INPUT;
        Ok(self.txn.open_table(R::TABLE)?.remove(key)?.is_some())
    }

    pub fn put_taxpayer_id(&mut self, tin: &str, credit_code: &str) -> Result<(), StoreError> {
        self.txn
            .open_table(TAXPAYER_IDS)?
            .insert(tin, credit_code)?;
        Ok(())
    }

    pub fn credit_code_for_taxpayer_id(&self, tin: &str) -> Result<Option<String>, StoreError> {
        let table = self.txn.open_table(TAXPAYER_IDS)?;
        let code = table.get(tin)?.map(|v| v.value().to_owned());
        Ok(code)
    }

    /// Records that `enterprise` recognizes `agency`, in both directions.
    pub fn put_recognition(
        &mut self,
        enterprise: &str,
        agency: &str,
        r: &RecognitionRecord,
    ) -> Result<(), StoreError> {
        self.put(&owned_key(enterprise, agency), r)?;
        self.put(&owned_key(agency, enterprise), &ClientOfRecord {})
    }

    /// Ends a recognition; whether there was one.
    pub fn remove_recognition(
        &mut self,
        enterprise: &str,
        agency: &str,
    ) -> Result<bool, StoreError> {
        let existed = self.remove::<RecognitionRecord>(&owned_key(enterprise, agency))?;
        self.remove::<ClientOfRecord>(&owned_key(agency, enterprise))?;
        Ok(existed)
    }
}

fn children<R: Record>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<(String, R)>, StoreError> {
    let start = format!("{prefix}/");
    // '0' is the character after '/': the range covers exactly `prefix/…`.
    let end = format!("{prefix}0");
    let mut out = Vec::new();
    for item in table.range(start.as_str()..end.as_str())? {
        let (k, v) = item?;
        let key = k.value().to_owned();
        let record = decode::<R>(&key, v.value())?;
        out.push((key, record));
    }
    Ok(out)
}

fn decode<R: Record>(key: &str, bytes: &[u8]) -> Result<R, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        table: redb::TableHandle::name(&R::TABLE).to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// The opening of the identity store file inside a data directory.
pub fn identity_store_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("identities.redb")
}
