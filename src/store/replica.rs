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

use super::clock::{mono_ms, Clock, ClockSample, ClockStanding, MAX_CLOCK_SKEW_MS};
use super::*;

/// The replica's own bookkeeping, never replicated: the id of the last
/// change applied.
const REPLICA: TableDefinition<&str, u64> = TableDefinition::new("fleet_replica");
const APPLIED: &str = "applied";
/// The [`LogEntry::stamp`] of that change: which log the replica follows.
/// Absent in a replica written before stamps (it gets one at its next
/// start).
const APPLIED_STAMP: &str = "applied_stamp";

/// Changes one catch-up transaction applies at most.
const CATCH_UP_BATCH: u32 = 500;

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

impl Change {
    /// Whether applying this change writes record `key` of `R`'s table
    /// (puts or removes it, or empties the table).
    pub fn writes<R: Record>(&self, key: &str) -> bool {
        let name = redb::TableHandle::name(&R::TABLE);
        match self {
            Change::Put { table, key: k, .. } | Change::Remove { table, key: k } => {
                table == name && k == key
            }
            Change::Clear { table } => table == name,
            Change::Count { .. } | Change::Undo { .. } => false,
        }
    }
}

/// One committed write of the log: its id and what it changed.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub id: u64,
    /// A fingerprint of the entry as the log holds it (id, writer, commit
    /// time, changes): the same id in another database, or in one restored
    /// from an older backup and written to since, has another stamp.
    pub stamp: u64,
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
    /// The stamp of entry `id`, if the log holds it.
    fn stamp(&self, id: u64) -> Result<Option<u64>, StoreError>;
}

/// A log transaction under the write lock. Dropped without
/// [`LogTxn::commit`], it is rolled back.
pub trait LogTxn {
    fn since(&mut self, after: u64) -> Result<Vec<LogEntry>, StoreError>;
    /// Appends one entry; answers its id and stamp.
    fn append(&mut self, changes: &[Change]) -> Result<(u64, u64), StoreError>;
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// What a store attached to a fleet keeps: the log and how fresh it is.
pub(super) struct Shared {
    log: Box<dyn ChangeLog>,
    /// When the replica was last known to hold every committed change
    /// (ms since the epoch).
    heard_ms: AtomicU64,
    /// Whether the last attempt to reach the log succeeded: while it did
    /// not, session checks skip asking for the head and lean on the bound.
    reachable: AtomicBool,
    max_stale_ms: u64,
    /// This host's clock against the fleet database's.
    clock: Clock,
}

impl Shared {
    /// The replica held every change the log had committed at `at_ms`.
    /// Only that renews freshness: a log that answers while the replica
    /// cannot apply what it says (a change this binary does not know) is
    /// no news, and the replica must go stale rather than answer from an
    /// old state for ever.
    fn caught_up(&self, at_ms: u64) {
        self.heard_ms.fetch_max(at_ms, Ordering::AcqRel);
        self.reachable.store(true, Ordering::Release);
    }

    /// Notes a failed call to the log (a successful one says nothing about
    /// freshness by itself: see [`Self::caught_up`]).
    fn tried<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if r.is_err() {
            self.reachable.store(false, Ordering::Release);
        }
        r
    }
}

/// How far behind the log a replica is, for `/readyz` and `/v1/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Milliseconds since the replica was last known to hold every change
    /// the log had committed.
    pub silent_ms: u64,
    pub max_stale_ms: u64,
    /// This host's clock against the database's.
    pub clock: ClockStanding,
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
        let stamp = self.same_log(log.as_ref(), applied)?;
        let shared = Shared {
            log,
            heard_ms: AtomicU64::new(mono_ms()),
            reachable: AtomicBool::new(true),
            max_stale_ms,
            clock: Clock::new(max_stale_ms),
        };
        self.shared = Some(Arc::new(shared));
        self.write_applied(applied, stamp)?;
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
            silent_ms: mono_ms().saturating_sub(s.heard_ms.load(Ordering::Acquire)),
            max_stale_ms: s.max_stale_ms,
            clock: s.clock.standing(),
        })
    }

    /// Takes the heartbeat's comparison of this host's clock with the fleet
    /// database's; nothing in embedded mode.
    pub fn note_clock(&self, sample: &ClockSample) {
        if let Some(s) = &self.shared {
            let Some((before, skew_ms)) = s.clock.measured(sample) else {
                return;
            };
            if skew_ms > MAX_CLOCK_SKEW_MS && before <= MAX_CLOCK_SKEW_MS {
                tracing::error!(
                    skew_ms,
                    bound_ms = MAX_CLOCK_SKEW_MS,
                    "this host's clock is off from the fleet database's: decisions and logins \
                     fail closed until it is set right (NTP)"
                );
            }
        }
    }

    /// Fails when the replica has not heard from the log within its bound.
    pub fn check_fresh(&self) -> Result<(), StoreError> {
        match self.freshness() {
            Some(f) if f.is_stale() => Err(StoreError::FleetStale {
                silent_ms: f.silent_ms,
                bound_ms: f.max_stale_ms,
            }),
            Some(f) if f.clock.is_skewed() => Err(StoreError::FleetClockSkew {
                skew_ms: f.clock.skew_ms,
                bound_ms: MAX_CLOCK_SKEW_MS,
            }),
            Some(f) if f.clock.is_unknown() => Err(StoreError::FleetClockUnknown {
                age_ms: f.clock.measure_age_ms,
                life_ms: f.clock.measure_life_ms,
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

    fn write_applied(&self, id: u64, stamp: Option<u64>) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        let mut t = txn.open_table(REPLICA)?;
        t.insert(APPLIED, id)?;
        if let Some(stamp) = stamp {
            t.insert(APPLIED_STAMP, stamp)?;
        }
        drop(t);
        txn.commit()?;
        Ok(())
    }

    /// Checks that the change this replica applied last is the log's
    /// change of that id, so that a data directory of another fleet (or of
    /// this one before its database was restored from an older backup)
    /// cannot join with records the log never held. Answers the stamp to
    /// keep (none while nothing was applied).
    fn same_log(&self, log: &dyn ChangeLog, applied: u64) -> Result<Option<u64>, StoreError> {
        if applied == 0 {
            return Ok(None);
        }
        let kept = {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(REPLICA)?;
            let stamp = t.get(APPLIED_STAMP)?.map(|v| v.value());
            stamp
        };
        let logged = log.stamp(applied)?;
        match (kept, logged) {
            (Some(kept), Some(logged)) if kept == logged => Ok(Some(logged)),
            // Written before stamps: the id alone was checked then.
            (None, Some(logged)) => Ok(Some(logged)),
            _ => Err(StoreError::NotAReplica(format!(
                "the change {applied} it applied last is not the fleet's change {applied}: \
                 another fleet's database, or this one restored from an older backup; start \
                 the sidecar on an empty data directory"
            ))),
        }
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
            let asked_ms = mono_ms();
            let applied = self.applied()?.unwrap_or(0);
            let entries = shared.tried(shared.log.since(applied, CATCH_UP_BATCH))?;
            if entries.is_empty() {
                shared.caught_up(asked_ms);
                return Ok(applied);
            }
            let mut writer = StoreWriter::new(self.db.begin_write()?);
            // Re-read inside the transaction: a write may have applied
            // some of these meanwhile.
            let applied = applied_in(&writer)?;
            let last = writer.apply(&entries, applied)?;
            record_applied(&writer, last)?;
            self.commit(writer)?;
            if entries.len() < CATCH_UP_BATCH as usize {
                // A short batch was the log's end when asked.
                shared.caught_up(asked_ms);
                return Ok(last.map_or(applied, |(id, _)| id));
            }
        }
    }

    /// For checks that must see every host's last write to a few records
    /// (a logout elsewhere ends a session here by the next use): asks the
    /// log for the changes this replica lacks (one query, no rows when
    /// none), and catches up only when `needs` — given the replica as it is
    /// and those changes — says one of them matters. Catching up takes
    /// redb's writer, which local writes hold while they queue for the
    /// fleet's lock: a check that does not need it must not wait behind
    /// every login of the fleet. When the log cannot be reached, the
    /// replica answers within its bound.
    pub fn catch_up_if_needed(
        &self,
        needs: impl FnOnce(&StoreReader, &[&Change]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        if shared.reachable.load(Ordering::Acquire) {
            let asked_ms = mono_ms();
            let applied = self.applied()?.unwrap_or(0);
            if let Ok(missing) = shared.tried(shared.log.since(applied, CATCH_UP_BATCH)) {
                if missing.is_empty() {
                    shared.caught_up(asked_ms);
                    return Ok(());
                }
                let changes: Vec<&Change> = missing.iter().flat_map(|e| &e.changes).collect();
                // A full batch may not be the end: the rest is unknown.
                let all_seen = missing.len() < CATCH_UP_BATCH as usize;
                if !all_seen || needs(&self.read_unchecked()?, &changes)? {
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
        let mut txn = shared.tried(shared.log.begin())?;
        // Under the fleet's lock: nothing commits to the log after this.
        let locked_ms = mono_ms();
        let applied = applied_in(&writer)?;
        let missing = shared.tried(txn.since(applied))?;
        let mut last = writer.apply(&missing, applied)?;
        writer.changes = Some(Vec::new());
        let value = f(&mut writer)?;
        let changes = writer.changes.take().unwrap_or_default();
        if !changes.is_empty() {
            last = Some(shared.tried(txn.append(&changes))?);
        }
        record_applied(&writer, last)?;
        shared.tried(txn.commit())?;
        self.commit(writer)?;
        shared.caught_up(locked_ms);
        Ok(value)
    }
}

/// Records the last entry applied (`None`: nothing new), in the
/// transaction that applied it.
fn record_applied(w: &StoreWriter, last: Option<(u64, u64)>) -> Result<(), StoreError> {
    if let Some((id, stamp)) = last {
        let mut t = w.txn.open_table(REPLICA)?;
        t.insert(APPLIED, id)?;
        t.insert(APPLIED_STAMP, stamp)?;
    }
    Ok(())
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
    /// Applies the entries after `applied`; answers the id and stamp of the
    /// last one applied (`None`: none was new).
    fn apply(
        &mut self,
        entries: &[LogEntry],
        applied: u64,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let mut last = None;
        for entry in entries.iter().filter(|e| e.id > applied) {
            for change in &entry.changes {
                self.apply_change(change, entry.id)?;
            }
            last = Some((entry.id, entry.stamp));
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
#[path = "replica_tests.rs"]
mod tests;
