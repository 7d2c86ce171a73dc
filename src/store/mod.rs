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

mod clock;
mod login_state;
mod records;
mod replica;
mod undo;

use std::cell::RefCell;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use clock::{ClockReading, ClockSample, ClockStanding, MAX_CLOCK_SKEW_MS};
pub use login_state::*;
pub use records::*;
pub use replica::{Change, ChangeLog, Freshness, LogEntry, LogTxn};
pub use undo::UndoLog;

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

/// Store-wide counters, by name.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// The last credential epoch handed out ([`StoreWriter::next_epoch`]).
const EPOCH_COUNTER: &str = "credential_epoch";

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
    /// Fleet mode: the fleet's database did not take the write (or the
    /// catch-up before it); nothing was written.
    #[error("fleet database unavailable: {0}")]
    FleetUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Fleet mode: the replica has not heard from the fleet's database
    /// within its bound, so it no longer answers.
    #[error(
        "fleet replica is stale: nothing heard from the fleet database for {silent_ms} ms \
         (bound {bound_ms} ms)"
    )]
    FleetStale { silent_ms: u64, bound_ms: u64 },
    #[error(
        "this host's clock is {skew_ms} ms off the fleet database's (bound {bound_ms} ms): \
         lockouts and sessions are timed by every host's clock, so this one does not decide \
         until its clock is set right"
    )]
    FleetClockSkew { skew_ms: u64, bound_ms: u64 },
    #[error(
        "this host's clock was last compared with the fleet database's {age_ms} ms ago (at most \
         {life_ms} ms): lockouts and sessions are timed by every host's clock, so this one does \
         not decide until a heartbeat compares it again"
    )]
    FleetClockUnknown { age_ms: u64, life_ms: u64 },
    #[error("this data directory cannot be a fleet replica: {0}")]
    NotAReplica(String),
}

from_redb_errors!(StoreError);

/// The identity store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// Bumped after every commit that wrote a decision input: what was
    /// built from an older generation may be stale.
    generation: Arc<AtomicU64>,
    /// Write transactions committed since open: every one is an fsync, so
    /// `/metrics` shows it and tests use it to prove a path does not write.
    commits: Arc<AtomicU64>,
    /// Fleet mode: the shared change log this store replicates
    /// ([`Store::attach`]); `None` in the embedded mode.
    shared: Option<Arc<replica::Shared>>,
}

impl Store {
    /// Opens (or creates) the store at `path` and makes sure every table exists,
    /// so that readers never meet a missing table.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // redb's default page cache.
        Self::open_with_cache(path, 1 << 30)
    }

    /// [`Self::open`] with a page cache of at most `cache_bytes` (resident
    /// memory grows with the pages cached: a bulk import bounds it).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        let store = Self {
            db: Arc::new(db),
            generation: Arc::default(),
            commits: Arc::default(),
            shared: None,
        };
        store.write(|w| {
            for table in ALL_TABLES.into_iter().chain(AUTHN_TABLES) {
                w.txn.open_table(table)?;
            }
            w.txn.open_table(TAXPAYER_IDS)?;
            w.txn.open_table(COUNTERS)?;
            w.txn.open_table(CalendarYearRecord::TABLE)?;
            Ok::<_, StoreError>(())
        })?;
        Ok(store)
    }

    /// The current generation of decision inputs. Read it *before* taking
    /// the read snapshot that something is built from: then the thing built
    /// is at least as new as the generation it is filed under. It is odd
    /// while a write of decision inputs commits (see [`Self::read_exact`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A snapshot, and whether it holds exactly the state of `generation`
    /// (read before calling): true when `generation` is even (no commit of
    /// decision inputs was under way) and unchanged once the snapshot is
    /// open (none began since). Things built from exact snapshots of one
    /// generation may be combined; things built from other snapshots may
    /// only be combined with what was built from the same snapshot.
    pub fn read_exact(&self, generation: u64) -> Result<(StoreReader, bool), StoreError> {
        let reader = self.read()?;
        let exact = generation.is_multiple_of(2) && self.generation() == generation;
        Ok((reader, exact))
    }

    /// A consistent snapshot for reading. A fleet replica past its
    /// staleness bound refuses (fail closed).
    pub fn read(&self) -> Result<StoreReader, StoreError> {
        if self.shared.is_some() {
            self.check_fresh()?;
        }
        self.read_unchecked()
    }

    fn read_unchecked(&self) -> Result<StoreReader, StoreError> {
        Ok(StoreReader {
            tables: RefCell::default(),
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
        if let Some(shared) = &self.shared {
            return self.write_shared(shared, f);
        }
        let mut writer = StoreWriter::new(self.db.begin_write().map_err(StoreError::from)?);
        // Dropping an uncommitted transaction (on `Err`) aborts it.
        let value = f(&mut writer)?;
        self.commit(writer)?;
        Ok(value)
    }

    /// Commits a write transaction and counts it.
    fn commit(&self, writer: StoreWriter) -> Result<(), StoreError> {
        if writer.decision_input_written {
            // Odd while the commit is under way, even again after it (a
            // sequence lock): a snapshot opened between two equal, even
            // readings holds exactly that generation's state, so entities
            // built from such snapshots can be combined (`read_exact`). The
            // second bump comes after the commit: a reader that sees the new
            // even generation began its snapshot after this commit.
            self.generation.fetch_add(1, Ordering::AcqRel);
            let committed = writer.txn.commit();
            self.generation.fetch_add(1, Ordering::AcqRel);
            committed?;
        } else {
            writer.txn.commit()?;
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Write transactions committed since the store was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Removes every record of type `R` for which `dead(key, record)` holds,
    /// at most `batch` removals per write transaction, so that a large
    /// backlog never holds redb's single writer for long. Candidates are
    /// found in a read snapshot (which waits for no one) and judged again
    /// inside the write transaction, so a record changed since the scan is
    /// removed only if its current value is still dead. `on_removed` hears
    /// each removed key once its transaction has committed. Answers how many
    /// were removed. Blocks: call from blocking threads.
    pub fn remove_where<R: Record>(
        &self,
        batch: usize,
        dead: impl Fn(&str, &R) -> bool,
        mut on_removed: impl FnMut(&str),
    ) -> Result<u64, StoreError> {
        let batch = batch.max(1);
        let mut removed = 0;
        // The scan resumes after the last key it judged dead, so each record
        // is looked at once per call however many batches it takes.
        let mut after: Option<String> = None;
        loop {
            let (candidates, exhausted) = self.scan_dead::<R>(after.as_deref(), batch, &dead)?;
            if let Some(last) = candidates.last() {
                after = Some(last.clone());
                let gone = self.write(|w| {
                    let mut gone = Vec::new();
                    for key in &candidates {
                        if w.get::<R>(key)?.is_some_and(|r| dead(key, &r)) {
                            w.remove::<R>(key)?;
                            gone.push(key.as_str());
                        }
                    }
                    Ok::<_, StoreError>(gone)
                })?;
                removed += gone.len() as u64;
                gone.into_iter().for_each(&mut on_removed);
            }
            if exhausted {
                return Ok(removed);
            }
        }
    }

    /// Up to `limit` keys after `after` whose records are dead, and whether
    /// the scan reached the end of the table.
    fn scan_dead<R: Record>(
        &self,
        after: Option<&str>,
        limit: usize,
        dead: &impl Fn(&str, &R) -> bool,
    ) -> Result<(Vec<String>, bool), StoreError> {
        let r = self.read()?;
        let table = r.txn.open_table(R::TABLE)?;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        for item in table.range::<&str>((lower, Bound::Unbounded))? {
            let (k, v) = item?;
            let key = k.value();
            if dead(key, &decode::<R>(key, v.value())?) {
                out.push(key.to_owned());
                if out.len() == limit {
                    return Ok((out, false));
                }
            }
        }
        Ok((out, true))
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
    /// Tables this snapshot opened, by name: an uncached decision reads
    /// a dozen records from four tables, and opening a table (a lookup in
    /// redb's table of tables) cost as much as reading the record from it.
    /// Declared first, so they are dropped before the transaction.
    tables: RefCell<Vec<(&'static str, Arc<RecordTable>)>>,
    txn: ReadTransaction,
}

type RecordTable = ReadOnlyTable<&'static str, &'static [u8]>;

impl StoreReader {
    pub fn get<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        let table = self.table::<R>()?;
        let value = table.get(key)?;
        value.map(|v| decode::<R>(key, v.value())).transpose()
    }

    /// All records whose key starts with `prefix/`, in key order.
    pub fn children<R: Record>(&self, prefix: &str) -> Result<Vec<(String, R)>, StoreError> {
        children(&*self.table::<R>()?, prefix)
    }

    /// `R`'s table, opened once per snapshot.
    fn table<R: Record>(&self) -> Result<Arc<RecordTable>, StoreError> {
        let name = redb::TableHandle::name(&R::TABLE);
        if let Some((_, t)) = self.tables.borrow().iter().find(|(n, _)| *n == name) {
            return Ok(t.clone());
        }
        let table = Arc::new(self.txn.open_table(R::TABLE)?);
        self.tables.borrow_mut().push((name, table.clone()));
        Ok(table)
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
    /// Fleet mode: what this write changed, for the shared log.
    changes: Option<Vec<Change>>,
}

impl StoreWriter {
    fn new(txn: WriteTransaction) -> Self {
        Self {
            txn,
            decision_input_written: false,
            changes: None,
        }
    }

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
        self.capture(|| Change::Put {
            table: replica::name_of(&R::TABLE),
            key: key.to_owned(),
            value: String::from_utf8(bytes).expect("JSON is UTF-8"),
        });
        Ok(())
    }

    pub fn remove<R: Record>(&mut self, key: &str) -> Result<bool, StoreError> {
        self.decision_input_written |= R::DECISION_INPUT;
        let existed = self.txn.open_table(R::TABLE)?.remove(key)?.is_some();
        if existed {
            self.capture(|| Change::Remove {
                table: replica::name_of(&R::TABLE),
                key: key.to_owned(),
            });
        }
        Ok(existed)
    }

    /// A credential epoch never handed out before in this store, for a
    /// record whose credentials just changed or that was just created. Store-
    /// wide rather than per record so that a record removed and created
    /// again never repeats an epoch an old session still carries.
    pub fn next_epoch(&mut self) -> Result<u64, StoreError> {
        let mut table = self.txn.open_table(COUNTERS)?;
        let next = table.get(EPOCH_COUNTER)?.map_or(0, |v| v.value()) + 1;
        table.insert(EPOCH_COUNTER, next)?;
        drop(table);
        self.capture_epoch(next);
        Ok(next)
    }

    /// Notes the epoch counter's new value for the log.
    fn capture_epoch(&mut self, value: u64) {
        self.capture(|| Change::Count {
            name: EPOCH_COUNTER.to_owned(),
            value,
        });
    }

    pub fn put_taxpayer_id(&mut self, tin: &str, credit_code: &str) -> Result<(), StoreError> {
        self.txn
            .open_table(TAXPAYER_IDS)?
            .insert(tin, credit_code)?;
        self.capture_taxpayer_id(tin, credit_code);
        Ok(())
    }

    fn capture_taxpayer_id(&mut self, tin: &str, credit_code: &str) {
        self.capture(|| Change::Put {
            table: replica::name_of(&TAXPAYER_IDS),
            key: tin.to_owned(),
            value: credit_code.to_owned(),
        });
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

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
