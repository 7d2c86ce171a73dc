//! An undo log for writes too large for one transaction (a bulk import).
//!
//! Each undoable write records, in the same transaction, the value it
//! replaced (or that there was none) in the `undo_log` table, numbered in
//! order. So at every commit the log and the data agree: [`Store::undo`]
//! restores every logged key, newest first, and empties the log; a finished
//! job [`Store::forget_undo`]s it. A job interrupted by a crash leaves its
//! log behind, and the next job that checks [`Store::has_undo`] can undo it.
//!
//! A job that begins on a store without identities logs only that: undoing
//! it empties the identity tables (a first bulk load writes half as much).
//!
//! Only identity tables and the taxpayer-id index are logged; the epoch
//! counter is not restored (an epoch handed out and never used is harmless,
//! one handed out twice is not).

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError};

use super::replica::{self, push};
use super::*;

/// Sequence number → encoded [`Entry`].
pub(super) const UNDO_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("undo_log");

/// Where an undoable write went. 0: a record table (JSON values), 1: the
/// taxpayer-id index (string values).
const KIND_RECORD: u8 = 0;
const KIND_TAXPAYER_ID: u8 = 1;
/// The job began on a store without identities: undoing it empties the
/// identity tables and the taxpayer-id index, and no write is logged one by
/// one (a first bulk load writes half as much).
const KIND_WAS_EMPTY: u8 = 2;

/// The next sequence number of the undo log; one per job.
pub struct UndoLog {
    next: u64,
    /// The store had no identities when the job began.
    was_empty: bool,
    /// The [`KIND_WAS_EMPTY`] entry is written (with the first write).
    marked: bool,
}

/// One logged write: the table, the key, and the value before it (`None`:
/// the key was absent).
struct Entry {
    kind: u8,
    table: String,
    key: String,
    old: Option<Vec<u8>>,
}

/// The bytes of one log entry: kind, table and key (each length-prefixed),
/// then 1 and the old value, or 0.
fn encode(kind: u8, table: &str, key: &str, old: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + table.len() + key.len() + old.map_or(0, <[u8]>::len));
    out.push(kind);
    for part in [table.as_bytes(), key.as_bytes()] {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part);
    }
    match old {
        Some(old) => {
            out.push(1);
            out.extend_from_slice(old);
        }
        None => out.push(0),
    }
    out
}

impl Entry {
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&kind, mut rest) = bytes.split_first()?;
        let mut part = || -> Option<String> {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let s = String::from_utf8(rest.get(4..4 + len)?.to_vec()).ok()?;
            rest = &rest[4 + len..];
            Some(s)
        };
        let (table, key) = (part()?, part()?);
        let (&present, old) = rest.split_first()?;
        Some(Self {
            kind,
            table,
            key,
            old: (present == 1).then(|| old.to_vec()),
        })
    }
}

impl StoreWriter {
    /// [`Self::put`], logging the value it replaces in `log`.
    pub fn put_undoable<R: Record>(
        &mut self,
        log: &mut UndoLog,
        key: &str,
        record: &R,
    ) -> Result<(), StoreError> {
        self.put_all_undoable(log, [(key, record)])
    }

    /// [`Self::put_undoable`] for many records of one table: the table and
    /// the log are opened once (opening a table per record costs as much
    /// as the insert in a bulk import).
    pub fn put_all_undoable<'r, R: Record + 'r>(
        &mut self,
        log: &mut UndoLog,
        records: impl IntoIterator<Item = (&'r str, &'r R)>,
    ) -> Result<(), StoreError> {
        self.decision_input_written |= R::DECISION_INPUT;
        let name = redb::TableHandle::name(&R::TABLE);
        if log.was_empty {
            self.mark_was_empty(log)?;
            let mut table = self.txn.open_table(R::TABLE)?;
            for (key, record) in records {
                let bytes = serde_json::to_vec(record).expect("records serialize to JSON");
                table.insert(key, bytes.as_slice())?;
                push(&mut self.changes, || put_change(name, key, &bytes));
            }
            return Ok(());
        }
        let mut table = self.txn.open_table(R::TABLE)?;
        let mut undo = self.txn.open_table(UNDO_LOG)?;
        let mut bytes = Vec::new();
        for (key, record) in records {
            bytes.clear();
            serde_json::to_writer(&mut bytes, record).expect("records serialize to JSON");
            let old = table.insert(key, bytes.as_slice())?;
            let entry = encode(KIND_RECORD, name, key, old.as_ref().map(|v| v.value()));
            drop(old);
            undo.insert(log.next, entry.as_slice())?;
            push(&mut self.changes, || put_change(name, key, &bytes));
            push(&mut self.changes, || undo_change(log.next, Some(&entry)));
            log.next += 1;
        }
        Ok(())
    }

    /// [`Self::put_taxpayer_id`], logging the value it replaces in `log`.
    pub fn put_taxpayer_id_undoable(
        &mut self,
        log: &mut UndoLog,
        tin: &str,
        credit_code: &str,
    ) -> Result<(), StoreError> {
        let old = self
            .txn
            .open_table(TAXPAYER_IDS)?
            .insert(tin, credit_code)?
            .map(|v| v.value().as_bytes().to_vec());
        self.capture_taxpayer_id(tin, credit_code);
        if log.was_empty {
            return self.mark_was_empty(log);
        }
        let entry = encode(KIND_TAXPAYER_ID, "", tin, old.as_deref());
        self.put_undo_entry(log, &entry)
    }

    /// `n` credential epochs never handed out before, as the first of `n`
    /// consecutive ones: [`Self::next_epoch`] for a batch, one counter
    /// update instead of `n`.
    pub fn reserve_epochs(&mut self, n: u64) -> Result<u64, StoreError> {
        let mut table = self.txn.open_table(COUNTERS)?;
        let last = table.get(EPOCH_COUNTER)?.map_or(0, |v| v.value());
        table.insert(EPOCH_COUNTER, last + n)?;
        drop(table);
        self.capture_epoch(last + n);
        Ok(last + 1)
    }

    /// Logs, once, in the job's first write transaction, that the store
    /// had no identities.
    fn mark_was_empty(&mut self, log: &mut UndoLog) -> Result<(), StoreError> {
        if !log.marked {
            let entry = encode(KIND_WAS_EMPTY, "", "", None);
            self.put_undo_entry(log, &entry)?;
            log.marked = true;
        }
        Ok(())
    }

    /// Appends one entry to the undo log.
    fn put_undo_entry(&mut self, log: &mut UndoLog, entry: &[u8]) -> Result<(), StoreError> {
        self.txn.open_table(UNDO_LOG)?.insert(log.next, entry)?;
        push(&mut self.changes, || undo_change(log.next, Some(entry)));
        log.next += 1;
        Ok(())
    }

    /// Empties a table (which stays, empty).
    fn clear<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        def: TableDefinition<'_, K, V>,
    ) -> Result<(), StoreError> {
        self.txn.delete_table(def)?;
        self.txn.open_table(def)?;
        push(&mut self.changes, || Change::Clear {
            table: replica::name_of(&def),
        });
        Ok(())
    }

    /// Restores one logged write.
    fn restore(&mut self, entry: &Entry) -> Result<(), StoreError> {
        if entry.kind == KIND_WAS_EMPTY {
            self.decision_input_written = true;
            for table in ALL_TABLES {
                self.clear(table)?;
            }
            return self.clear(TAXPAYER_IDS);
        }
        let key = entry.key.as_str();
        if entry.kind == KIND_TAXPAYER_ID {
            let mut t = self.txn.open_table(TAXPAYER_IDS)?;
            match &entry.old {
                Some(old) => t.insert(key, String::from_utf8_lossy(old).as_ref())?,
                None => t.remove(key)?,
            };
            let name = redb::TableHandle::name(&TAXPAYER_IDS);
            push(&mut self.changes, || {
                restored(name, key, entry.old.as_deref())
            });
            return Ok(());
        }
        self.decision_input_written = true;
        let def = TableDefinition::<&str, &[u8]>::new(&entry.table);
        let mut t = self.txn.open_table(def)?;
        match &entry.old {
            Some(old) => t.insert(key, old.as_slice())?,
            None => t.remove(key)?,
        };
        push(&mut self.changes, || {
            restored(&entry.table, key, entry.old.as_deref())
        });
        Ok(())
    }
}

impl Store {
    /// Whether an undo log is left (a job did not finish).
    pub fn has_undo(&self) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        match txn.open_table(UNDO_LOG) {
            Ok(t) => Ok(!t.is_empty()?),
            Err(TableError::TableDoesNotExist(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a job's undo log, after any entries left behind (a caller
    /// that finds [`Self::has_undo`] should [`Self::undo`] those first).
    pub fn begin_undo(&self) -> Result<UndoLog, StoreError> {
        let txn = self.db.begin_read()?;
        let next = match txn.open_table(UNDO_LOG) {
            Ok(t) => t.last()?.map_or(0, |(k, _)| k.value() + 1),
            Err(TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        let was_empty = self.is_empty()? && txn.open_table(TAXPAYER_IDS)?.is_empty()?;
        Ok(UndoLog {
            next,
            was_empty,
            marked: false,
        })
    }

    /// Undoes every logged write, newest first, `batch` per transaction, and
    /// empties the log; answers how many writes were undone. Each batch
    /// removes its entries with the restores, so an undo interrupted in turn
    /// resumes where it stopped.
    pub fn undo(&self, batch: usize) -> Result<u64, StoreError> {
        let mut undone = 0;
        loop {
            let n = self.write(|w| {
                let entries: Vec<(u64, Vec<u8>)> = {
                    let t = w.txn.open_table(UNDO_LOG)?;
                    let mut out = Vec::new();
                    for item in t.iter()?.rev().take(batch.max(1)) {
                        let (k, v) = item?;
                        out.push((k.value(), v.value().to_vec()));
                    }
                    out
                };
                for (seq, bytes) in &entries {
                    let entry = Entry::decode(bytes).ok_or_else(|| StoreError::Corrupt {
                        table: "undo_log".into(),
                        key: seq.to_string(),
                        source: serde::de::Error::custom("undo entry does not decode"),
                    })?;
                    w.restore(&entry)?;
                    w.txn.open_table(UNDO_LOG)?.remove(*seq)?;
                    push(&mut w.changes, || undo_change(*seq, None));
                }
                Ok::<_, StoreError>(entries.len() as u64)
            })?;
            undone += n;
            if n == 0 {
                return Ok(undone);
            }
        }
    }

    /// Drops the log of a finished job: its writes stay.
    pub fn forget_undo(&self) -> Result<(), StoreError> {
        self.write(|w| {
            w.txn.delete_table(UNDO_LOG)?;
            push(&mut w.changes, || Change::Clear {
                table: replica::name_of(&UNDO_LOG),
            });
            Ok::<_, StoreError>(())
        })
    }
}

/// The log's form of a record written (`bytes`: its JSON).
fn put_change(table: &str, key: &str, bytes: &[u8]) -> Change {
    Change::Put {
        table: table.to_owned(),
        key: key.to_owned(),
        value: String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The log's form of a key restored to `old` (`None`: removed).
fn restored(table: &str, key: &str, old: Option<&[u8]>) -> Change {
    match old {
        Some(old) => put_change(table, key, old),
        None => Change::Remove {
            table: table.to_owned(),
            key: key.to_owned(),
        },
    }
}

fn undo_change(seq: u64, entry: Option<&[u8]>) -> Change {
    Change::Undo {
        seq,
        entry: entry.map(hex::encode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str) -> FunctionRecord {
        FunctionRecord {
            name: name.into(),
            description: String::new(),
        }
    }

    #[test]
    fn undo_restores_replaced_values_and_removes_new_ones_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store.write(|w| w.put("old", &function("before"))).unwrap();
        let mut log = store.begin_undo().unwrap();
        for name in ["first", "second"] {
            store
                .write(|w| {
                    w.put_undoable(&mut log, "old", &function(name))?;
                    w.put_undoable(&mut log, "new", &function(name))?;
                    w.put_taxpayer_id_undoable(&mut log, "210102999999999", "X")
                })
                .unwrap();
        }
        assert!(store.has_undo().unwrap());
        // One batch per write: an undo resumes across transactions.
        assert_eq!(store.undo(1).unwrap(), 6);
        let r = store.read().unwrap();
        assert_eq!(
            r.get::<FunctionRecord>("old").unwrap().unwrap().name,
            "before"
        );
        assert!(r.get::<FunctionRecord>("new").unwrap().is_none());
        assert_eq!(
            r.credit_code_for_taxpayer_id("210102999999999").unwrap(),
            None
        );
        assert!(!store.has_undo().unwrap());
    }

    #[test]
    fn a_job_begun_on_an_empty_store_is_undone_by_emptying_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut log = store.begin_undo().unwrap();
        for key in ["a", "b"] {
            store
                .write(|w| {
                    w.put_undoable(&mut log, key, &function(key))?;
                    w.put_taxpayer_id_undoable(&mut log, "210102999999999", "X")
                })
                .unwrap();
        }
        assert!(!store.is_empty().unwrap());
        // One entry (the store was empty), not one per write.
        assert_eq!(store.undo(1).unwrap(), 1);
        assert!(store.is_empty().unwrap());
        let r = store.read().unwrap();
        assert_eq!(
            r.credit_code_for_taxpayer_id("210102999999999").unwrap(),
            None
        );
        assert!(!store.has_undo().unwrap());
    }
}
