//! The store as a replica of a shared change log (fleet mode).
//!
//! In fleet mode the truth is an ordered log of changes kept elsewhere (the
//! fleet's PostgreSQL, reached through [`ChangeLog`], which `fleet`
//! implements: this module knows no database). Every write takes the
//! log's fleet-wide lock, catches this replica up inside its own redb
//! transaction (so the closure reads the fleet's latest truth), runs the
//! closure, appends what it changed as one entry, commits the log, then
//! redb with the entry's id as the applied id. A crash between the two
//! commits is repaired by applying the entry again: every change is an
//! absolute value, so applying twice is applying once.
//!
//! Freshness: a replica that has not heard from the log for longer than its
//! bound refuses reads ([`StoreError::FleetStale`]), so decisions fail
//! closed rather than answer from a replica of unknown age.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::*;

/// The replica's own bookkeeping, never replicated: the id of the last
/// change applied.
const REPLICA: TableDefinition<&str, u64> = TableDefinition::new("fleet_replica");
const APPLIED: &str = "applied";

/// The undo log's table name (its keys are sequence numbers).
const UNDO_TABLE: &str = "undo_log";

/// One mutation a write made, as the log carries it. Values are the exact
/// bytes redb holds (record JSON as text), so a replica's files equal the
/// writer's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// A record table (JSON text) or the taxpayer-id index (a credit code).
    Put {
        table: String,
        key: String,
        value: String,
    },
    Remove {
        table: String,
        key: String,
    },
    /// A store-wide counter set to `value` (the credential epoch).
    Count {
        name: String,
        value: u64,
    },
    /// An undo-log entry (hex, it is binary) or its removal.
    Undo {
        seq: u64,
        entry: Option<String>,
    },
    /// A table emptied.
    Clear {
        table: String,
    },
}

/// One committed write of the log: its id and what it changed.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub id: u64,
    pub changes: Vec<Change>,
}

/// The shared, ordered change log. Blocking: called from blocking threads
/// (or through `block_in_place`).
pub trait ChangeLog: Send + Sync + 'static {
    /// Opens a log transaction holding the fleet-wide write lock.
    fn begin(&self) -> Result<Box<dyn LogTxn>, StoreError>;
    /// Up to `limit` entries after `after`, in id order.
    fn since(&self, after: u64, limit: u32) -> Result<Vec<LogEntry>, StoreError>;
    /// The newest committed id (0: an empty log).
    fn head(&self) -> Result<u64, StoreError>;
}

/// A log transaction under the write lock. Dropped without
/// [`LogTxn::commit`], it is rolled back.
pub trait LogTxn {
    fn since(&mut self, after: u64) -> Result<Vec<LogEntry>, StoreError>;
    /// Appends one entry; answers its id.
    fn append(&mut self, changes: &[Change]) -> Result<u64, StoreError>;
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// What a store attached to a fleet keeps: the log and how fresh it is.
pub(super) struct Shared {
    log: Box<dyn ChangeLog>,
    /// When the log last answered (ms since the epoch).
    heard_ms: AtomicU64,
    /// Whether the last attempt to reach the log succeeded: while it did
    /// not, session checks skip asking for the head and lean on the bound.
    reachable: AtomicBool,
    max_stale_ms: u64,
}

impl Shared {
    fn heard(&self) {
        self.heard_ms.store(crate::now_ms(), Ordering::Release);
        self.reachable.store(true, Ordering::Release);
    }

    /// Notes the outcome of a call to the log.
    fn noted<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Ok(_) => self.heard(),
            Err(_) => self.reachable.store(false, Ordering::Release),
        }
        r
    }
}

/// How far behind the log a replica is, for `/readyz` and `/v1/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Milliseconds since the log last answered.
    pub silent_ms: u64,
    pub max_stale_ms: u64,
}

impl Freshness {
    pub fn is_stale(&self) -> bool {
        self.silent_ms > self.max_stale_ms
    }
}

impl Store {
    /// This store as a replica of `log`. Refuses a store that holds data
    /// written outside any log (an embedded store's data would never reach
    /// the other replicas) or that is ahead of the log (a different or
    /// restored database).
    pub fn attach(
        mut self,
        log: Box<dyn ChangeLog>,
        max_stale_ms: u64,
    ) -> Result<Self, StoreError> {
        let head = log.head()?;
        let applied = self.applied()?;
        if applied.is_none() && !self.is_blank()? {
            return Err(StoreError::NotAReplica(
                "it holds data written outside the fleet; start a sidecar on an empty data \
                 directory and import the data through it"
                    .into(),
            ));
        }
        let applied = applied.unwrap_or(0);
        if applied > head {
            return Err(StoreError::NotAReplica(format!(
                "it applied change {applied}, the fleet's log ends at {head}: a different database?"
            )));
        }
        let shared = Shared {
            log,
            heard_ms: AtomicU64::new(crate::now_ms()),
            reachable: AtomicBool::new(true),
            max_stale_ms,
        };
        self.shared = Some(Arc::new(shared));
        self.write_applied(applied)?;
        Ok(self)
    }

    /// Whether a fleet's log is attached.
    pub fn is_replica(&self) -> bool {
        self.shared.is_some()
    }

    /// How fresh the replica is; `None` in embedded mode.
    pub fn freshness(&self) -> Option<Freshness> {
        let s = self.shared.as_ref()?;
        Some(Freshness {
            silent_ms: crate::now_ms().saturating_sub(s.heard_ms.load(Ordering::Acquire)),
            max_stale_ms: s.max_stale_ms,
        })
    }

    /// Fails when the replica has not heard from the log within its bound.
    pub fn check_fresh(&self) -> Result<(), StoreError> {
        match self.freshness() {
            Some(f) if f.is_stale() => Err(StoreError::FleetStale {
                silent_ms: f.silent_ms,
                bound_ms: f.max_stale_ms,
            }),
            _ => Ok(()),
        }
    }

    /// The id of the last change this replica applied (`None`: it never
    /// joined a fleet).
    pub fn applied(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        match txn.open_table(REPLICA) {
            Ok(t) => Ok(t.get(APPLIED)?.map(|v| v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn write_applied(&self, id: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(REPLICA)?.insert(APPLIED, id)?;
        txn.commit()?;
        Ok(())
    }

    /// No identities, no login state, no epoch handed out.
    fn is_blank(&self) -> Result<bool, StoreError> {
        let r = self.read_unchecked()?;
        for table in AUTHN_TABLES.into_iter().chain([CalendarYearRecord::TABLE]) {
            if !redb::ReadableTableMetadata::is_empty(&r.txn.open_table(table)?)? {
                return Ok(false);
            }
        }
        let epochs = r.txn.open_table(COUNTERS)?.get(EPOCH_COUNTER)?.is_some();
        Ok(self.is_empty()? && !epochs)
    }

    /// Applies every change the log holds after this replica's applied id,
    /// in batches, each batch one redb transaction recording the new id.
    /// Answers the applied id. Blocks.
    pub fn catch_up(&self) -> Result<u64, StoreError> {
        let Some(shared) = &self.shared else {
            return Ok(0);
        };
        loop {
            let applied = self.applied()?.unwrap_or(0);
            let entries = shared.noted(shared.log.since(applied, 500))?;
            if entries.is_empty() {
                return Ok(applied);
            }
            let mut writer = StoreWriter::new(self.db.begin_write()?);
            // Re-read inside the transaction: a write may have applied
            // some of these meanwhile.
            let applied = applied_in(&writer)?;
            let last = writer.apply(&entries, applied)?;
            writer.txn.open_table(REPLICA)?.insert(APPLIED, last)?;
            self.commit(writer)?;
        }
    }

    /// Catches up when the log holds a change this replica has not applied:
    /// one cheap query, for checks that must see every host's last write
    /// (a logout elsewhere ends a session here by the next use). When the
    /// log cannot be reached, the replica answers within its bound.
    pub fn catch_up_if_behind(&self) -> Result<(), StoreError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        if shared.reachable.load(Ordering::Acquire) {
            if let Ok(head) = shared.noted(shared.log.head()) {
                if head > self.applied()?.unwrap_or(0) {
                    self.catch_up()?;
                }
                return Ok(());
            }
        }
        self.check_fresh()
    }

    /// [`Store::write`] in fleet mode; see the module's comment.
    pub(super) fn write_shared<T, E>(
        &self,
        shared: &Shared,
        f: impl FnOnce(&mut StoreWriter) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut writer = StoreWriter::new(self.db.begin_write().map_err(StoreError::from)?);
        let mut txn = shared.noted(shared.log.begin())?;
        let applied = applied_in(&writer)?;
        let missing = shared.noted(txn.since(applied))?;
        let mut last = writer.apply(&missing, applied)?;
        writer.changes = Some(Vec::new());
        let value = f(&mut writer)?;
        let changes = writer.changes.take().unwrap_or_default();
        if !changes.is_empty() {
            last = shared.noted(txn.append(&changes))?;
        }
        writer
            .txn
            .open_table(REPLICA)
            .map_err(StoreError::from)?
            .insert(APPLIED, last)
            .map_err(StoreError::from)?;
        shared.noted(txn.commit())?;
        self.commit(writer)?;
        Ok(value)
    }
}

fn applied_in(w: &StoreWriter) -> Result<u64, StoreError> {
    let t = w.txn.open_table(REPLICA)?;
    let id = t.get(APPLIED)?.map_or(0, |v| v.value());
    Ok(id)
}

/// Whether writing `table` changes what decisions read.
fn is_decision_input(table: &str) -> bool {
    let login_state = AUTHN_TABLES
        .iter()
        .any(|t| redb::TableHandle::name(t) == table);
    !login_state && table != UNDO_TABLE && table != redb::TableHandle::name(&TAXPAYER_IDS)
}

/// The record table named `table` (every table of JSON records), so a
/// change naming anything else is refused rather than invented.
fn record_table(table: &str) -> Option<TableDefinition<'static, &'static str, &'static [u8]>> {
    ALL_TABLES
        .into_iter()
        .chain(AUTHN_TABLES)
        .chain([CalendarYearRecord::TABLE])
        .find(|t| redb::TableHandle::name(t) == table)
}

fn unknown(what: &str, id: u64) -> StoreError {
    StoreError::Corrupt {
        table: "fleet_changes".into(),
        key: id.to_string(),
        source: serde::de::Error::custom(format!("{what} this binary does not know")),
    }
}

impl StoreWriter {
    /// Applies the entries after `applied`; answers the last id applied.
    fn apply(&mut self, entries: &[LogEntry], applied: u64) -> Result<u64, StoreError> {
        let mut last = applied;
        for entry in entries.iter().filter(|e| e.id > applied) {
            for change in &entry.changes {
                self.apply_change(change, entry.id)?;
            }
            last = entry.id;
        }
        Ok(last)
    }

    fn apply_change(&mut self, change: &Change, id: u64) -> Result<(), StoreError> {
        let taxpayer_ids = redb::TableHandle::name(&TAXPAYER_IDS);
        match change {
            Change::Put { table, key, value } if table == taxpayer_ids => {
                self.txn
                    .open_table(TAXPAYER_IDS)?
                    .insert(key.as_str(), value.as_str())?;
            }
            Change::Remove { table, key } if table == taxpayer_ids => {
                self.txn.open_table(TAXPAYER_IDS)?.remove(key.as_str())?;
            }
            Change::Put { table, key, value } => {
                let def = record_table(table).ok_or_else(|| unknown(table, id))?;
                self.txn
                    .open_table(def)?
                    .insert(key.as_str(), value.as_bytes())?;
            }
            Change::Remove { table, key } => {
                let def = record_table(table).ok_or_else(|| unknown(table, id))?;
                self.txn.open_table(def)?.remove(key.as_str())?;
            }
            Change::Count { name, value } => {
                self.txn
                    .open_table(COUNTERS)?
                    .insert(name.as_str(), *value)?;
            }
            Change::Undo { seq, entry } => self.apply_undo(*seq, entry.as_deref(), id)?,
            Change::Clear { table } => self.clear_table(table, id)?,
        }
        if let Change::Put { table, .. } | Change::Remove { table, .. } | Change::Clear { table } =
            change
        {
            self.decision_input_written |= is_decision_input(table);
        }
        Ok(())
    }

    fn apply_undo(&mut self, seq: u64, entry: Option<&str>, id: u64) -> Result<(), StoreError> {
        let mut t = self.txn.open_table(super::undo::UNDO_LOG)?;
        match entry {
            Some(hex_entry) => {
                let bytes = hex::decode(hex_entry).map_err(|_| unknown("an undo entry", id))?;
                t.insert(seq, bytes.as_slice())?;
            }
            None => {
                t.remove(seq)?;
            }
        }
        Ok(())
    }

    fn clear_table(&mut self, table: &str, id: u64) -> Result<(), StoreError> {
        if table == UNDO_TABLE {
            self.txn.delete_table(super::undo::UNDO_LOG)?;
        } else if table == redb::TableHandle::name(&TAXPAYER_IDS) {
            self.txn.delete_table(TAXPAYER_IDS)?;
            self.txn.open_table(TAXPAYER_IDS)?;
        } else {
            let def = record_table(table).ok_or_else(|| unknown(table, id))?;
            self.txn.delete_table(def)?;
            self.txn.open_table(def)?;
        }
        Ok(())
    }

    /// Notes a change for the log when this write goes to one (fleet mode);
    /// the embedded mode builds nothing.
    pub(super) fn capture(&mut self, change: impl FnOnce() -> Change) {
        push(&mut self.changes, change);
    }
}

/// [`StoreWriter::capture`] for code holding a table open (a borrow of the
/// transaction, not of the writer's change list).
pub(super) fn push(changes: &mut Option<Vec<Change>>, change: impl FnOnce() -> Change) {
    if let Some(changes) = changes {
        changes.push(change());
    }
}

/// A change's table name.
pub(super) fn name_of<K: redb::Key + 'static, V: redb::Value + 'static>(
    def: &TableDefinition<'_, K, V>,
) -> String {
    redb::TableHandle::name(def).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_serialize_as_tagged_json_the_log_can_show() {
        let c = Change::Put {
            table: "functions".into(),
            key: "F1".into(),
            value: r#"{"name":"x"}"#.into(),
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"op":"put","table":"functions","key":"F1","value":"{\"name\":\"x\"}"}"#
        );
        assert_eq!(serde_json::from_str::<Change>(&json).unwrap(), c);
    }

    #[test]
    fn only_identity_tables_are_decision_inputs() {
        assert!(is_decision_input("staff"));
        assert!(is_decision_input("calendar_years"));
        assert!(!is_decision_input("sessions"));
        assert!(!is_decision_input("lockouts"));
        assert!(!is_decision_input("taxpayer_ids"));
        assert!(!is_decision_input("undo_log"));
    }

    #[test]
    fn applying_a_change_twice_is_applying_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let entries = [LogEntry {
            id: 1,
            changes: vec![
                Change::Put {
                    table: "functions".into(),
                    key: "F1".into(),
                    value: r#"{"name":"one","description":""}"#.into(),
                },
                Change::Count {
                    name: EPOCH_COUNTER.into(),
                    value: 7,
                },
            ],
        }];
        for _ in 0..2 {
            let mut w = StoreWriter::new(store.db.begin_write().unwrap());
            assert_eq!(w.apply(&entries, 0).unwrap(), 1);
            w.txn.commit().unwrap();
        }
        let r = store.read().unwrap();
        assert_eq!(r.all::<FunctionRecord>().unwrap().len(), 1);
        assert_eq!(store.write(|w| w.next_epoch()).unwrap(), 8);
        // Already applied: nothing after id 1 is applied again.
        let mut w = StoreWriter::new(store.db.begin_write().unwrap());
        assert_eq!(w.apply(&entries, 1).unwrap(), 1);
        assert!(!w.decision_input_written);
    }

    /// A change log in memory: the contract the fleet's PostgreSQL log
    /// keeps, for checking what the store captures.
    #[derive(Clone, Default)]
    struct MemoryLog(Arc<std::sync::Mutex<Vec<LogEntry>>>);

    impl ChangeLog for MemoryLog {
        fn begin(&self) -> Result<Box<dyn LogTxn>, StoreError> {
            Ok(Box::new(self.clone()))
        }
        fn since(&self, after: u64, _limit: u32) -> Result<Vec<LogEntry>, StoreError> {
            let log = self.0.lock().unwrap();
            Ok(log.iter().filter(|e| e.id > after).cloned().collect())
        }
        fn head(&self) -> Result<u64, StoreError> {
            Ok(self.0.lock().unwrap().last().map_or(0, |e| e.id))
        }
    }

    impl LogTxn for MemoryLog {
        fn since(&mut self, after: u64) -> Result<Vec<LogEntry>, StoreError> {
            ChangeLog::since(self, after, u32::MAX)
        }
        fn append(&mut self, changes: &[Change]) -> Result<u64, StoreError> {
            let mut log = self.0.lock().unwrap();
            let id = log.len() as u64 + 1;
            log.push(LogEntry {
                id,
                changes: changes.to_vec(),
            });
            Ok(id)
        }
        fn commit(self: Box<Self>) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn function(name: &str) -> FunctionRecord {
        FunctionRecord {
            name: name.into(),
            description: String::new(),
        }
    }

    /// Every replicated table's entries, as bytes.
    fn contents(store: &Store) -> Vec<String> {
        let r = store.read().unwrap();
        let mut out = Vec::new();
        for def in ALL_TABLES.into_iter().chain(AUTHN_TABLES) {
            for item in r.txn.open_table(def).unwrap().iter().unwrap() {
                let (k, v) = item.unwrap();
                out.push(format!("{def}/{}={:?}", k.value(), v.value()));
            }
        }
        for item in r.txn.open_table(TAXPAYER_IDS).unwrap().iter().unwrap() {
            let (k, v) = item.unwrap();
            out.push(format!("tin/{}={}", k.value(), v.value()));
        }
        for item in r.txn.open_table(COUNTERS).unwrap().iter().unwrap() {
            let (k, v) = item.unwrap();
            out.push(format!("counter/{}={}", k.value(), v.value()));
        }
        if let Ok(t) = r.txn.open_table(super::super::undo::UNDO_LOG) {
            for item in t.iter().unwrap() {
                let (k, v) = item.unwrap();
                out.push(format!("undo/{}={:?}", k.value(), v.value()));
            }
        }
        out
    }

    #[test]
    fn a_replica_fed_by_the_log_equals_the_store_that_wrote_it() {
        let log = MemoryLog::default();
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let open = |i: usize| {
            let store = Store::open(&dirs[i].path().join("s.redb")).unwrap();
            store.attach(Box::new(log.clone()), u64::MAX).unwrap()
        };
        let writer = open(0);
        // Every kind of write: records, the index, epochs, removals, and
        // an import's undo log (kept, undone, forgotten).
        writer
            .write(|w| {
                w.put("F1", &function("one"))?;
                w.put_taxpayer_id("210102999999999", "X")?;
                w.next_epoch()?;
                let recognition = RecognitionRecord {
                    agreement_password_hash: "h".into(),
                    recognized_at_ms: 1,
                    epoch: 1,
                };
                w.put_recognition("E", "A", &recognition)
            })
            .unwrap();
        let mut job = writer.begin_undo().unwrap();
        writer
            .write(|w| {
                w.put_undoable(&mut job, "F1", &function("changed"))?;
                w.put_undoable(&mut job, "F2", &function("two"))?;
                w.put_taxpayer_id_undoable(&mut job, "210102888888888", "Y")?;
                w.reserve_epochs(3).map(|_| ())
            })
            .unwrap();
        let mid_job = contents(&writer);
        let replica = open(1);
        replica.catch_up().unwrap();
        assert_eq!(contents(&replica), mid_job);
        drop(replica);
        writer.undo(1).unwrap();
        let mut job = writer.begin_undo().unwrap();
        writer
            .write(|w| w.put_undoable(&mut job, "F3", &function("three")))
            .unwrap();
        writer.forget_undo().unwrap();
        writer
            .write(|w| w.remove_recognition("E", "A").map(|_| ()))
            .unwrap();
        let replica = open(1);
        assert_eq!(replica.catch_up().unwrap(), log.head().unwrap());
        assert_eq!(contents(&replica), contents(&writer));
        assert_ne!(contents(&writer), mid_job);
    }

    #[test]
    fn a_change_naming_an_unknown_table_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut w = StoreWriter::new(store.db.begin_write().unwrap());
        let entry = LogEntry {
            id: 3,
            changes: vec![Change::Remove {
                table: "no_such_table".into(),
                key: "k".into(),
            }],
        };
        assert!(matches!(
            w.apply(&[entry], 0),
            Err(StoreError::Corrupt { key, .. }) if key == "3"
        ));
    }
}
