//! The second pass's writes: built records in batches, one transaction per
//! batch, each write logged in the store's undo log so that a failure after
//! some batches committed can be undone ([`crate::store::UndoLog`]).
//!
//! Nothing is hashed here: records arrive built, passwords hashed, so the
//! single redb writer is held only for the writes themselves.

use super::check::Built;
use super::ImportSummary;
use crate::store::*;

/// Records per transaction: large enough that the commit (an fsync) is
/// cheap beside the writes, small enough that a batch stays a few MB.
pub(super) const BATCH: usize = 20_000;

pub(super) struct BatchWriter<'a> {
    store: &'a Store,
    log: UndoLog,
    batch: Vec<Built>,
    limit: usize,
    pub summary: ImportSummary,
}

impl<'a> BatchWriter<'a> {
    /// `limit`: records per transaction ([`BATCH`]).
    pub fn new(store: &'a Store, limit: usize) -> Result<Self, StoreError> {
        Ok(Self {
            store,
            log: store.begin_undo()?,
            batch: Vec::with_capacity(limit),
            limit: limit.max(1),
            summary: ImportSummary::default(),
        })
    }

    /// Queues a record; writes the batch once it is full. Answers how many
    /// records were written (0 or a batch).
    pub fn push(&mut self, built: Built) -> Result<usize, StoreError> {
        self.summary.count(&built);
        self.batch.push(built);
        if self.batch.len() >= self.limit {
            return self.flush();
        }
        Ok(0)
    }

    /// Writes what is queued in one transaction.
    pub fn flush(&mut self) -> Result<usize, StoreError> {
        if self.batch.is_empty() {
            return Ok(0);
        }
        let (log, batch) = (&mut self.log, &mut self.batch);
        let n = batch.len();
        self.store.write(|w| {
            let needed = batch.iter().filter(|b| b.takes_epoch()).count() as u64;
            let mut epoch = w.reserve_epochs(needed)?;
            for built in batch.drain(..) {
                write_one(w, log, built, &mut epoch)?;
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(n)
    }
}

impl Built {
    /// Whether the record carries a credential (or recognition) epoch: a
    /// record written with credentials gets a fresh one, so importing over
    /// an existing record (a new password, say) ends the sessions opened
    /// under the old one.
    fn takes_epoch(&self) -> bool {
        matches!(
            self,
            Built::Person(..)
                | Built::Enterprise(..)
                | Built::Staff(..)
                | Built::AgentStaff(..)
                | Built::Recognition(..)
        )
    }
}

fn write_one(
    w: &mut StoreWriter,
    log: &mut UndoLog,
    built: Built,
    epoch: &mut u64,
) -> Result<(), StoreError> {
    let mut fresh = || {
        *epoch += 1;
        *epoch - 1
    };
    match built {
        Built::Function(k, r) => w.put_undoable(log, &k, &r),
        Built::Person(k, mut r) => {
            r.credential_epoch = fresh();
            w.put_undoable(log, &k, &r)
        }
        Built::Enterprise(k, mut r, officers) => {
            r.credential_epoch = fresh();
            w.put_undoable(log, &k, &r)?;
            w.put_undoable(log, &k, &officers)?;
            match &r.taxpayer_id {
                Some(tin) => w.put_taxpayer_id_undoable(log, tin.as_str(), &k),
                None => Ok(()),
            }
        }
        Built::PermissionIdentity(k, r) => w.put_undoable(log, &k, &r),
        Built::Staff(k, mut r) => {
            r.credential_epoch = fresh();
            w.put_undoable(log, &k, &r)
        }
        Built::Agency(k, r) => {
            w.put_undoable(log, &k, &r)?;
            match &r.taxpayer_id {
                Some(tin) => w.put_taxpayer_id_undoable(log, tin.as_str(), &k),
                None => Ok(()),
            }
        }
        Built::AgentStaff(k, mut r) => {
            r.credential_epoch = fresh();
            w.put_undoable(log, &k, &r)
        }
        Built::Recognition(enterprise, agency, mut r) => {
            r.epoch = fresh();
            w.put_undoable(log, &owned_key(&enterprise, &agency), &r)?;
            w.put_undoable(log, &owned_key(&agency, &enterprise), &ClientOfRecord {})
        }
    }
}

impl ImportSummary {
    fn count(&mut self, built: &Built) {
        let n = match built {
            Built::Function(..) => &mut self.functions,
            Built::Person(..) => &mut self.persons,
            Built::Enterprise(..) => &mut self.enterprises,
            Built::PermissionIdentity(..) => &mut self.permission_identities,
            Built::Staff(..) => &mut self.staff,
            Built::Agency(..) => &mut self.agencies,
            Built::AgentStaff(..) => &mut self.agent_staff,
            Built::Recognition(..) => &mut self.recognitions,
        };
        *n += 1;
    }
}
