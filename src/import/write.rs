//! The second pass's writes: built records in batches, one transaction per
//! batch, each write logged in the store's undo log so that a failure after
//! some batches committed can be undone ([`crate::store::UndoLog`]).
//!
//! Nothing is hashed here: records arrive built, passwords hashed, so the
//! single redb writer is held only for the writes themselves.

use super::check::Built;
use super::ImportSummary;
use crate::store::*;

/// Records per transaction: large enough that the commit (an fsync, and a
/// copy of every b-tree page the batch touched) is cheap beside the writes,
/// small enough that a batch stays some tens of MB. 20,000 wrote a million
/// staff at 51,000 records/s, the file 1.1 GB (BENCHMARKS.md).
pub(super) const BATCH: usize = 50_000;

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
            let first = w.reserve_epochs(needed)?;
            let staged = Staged::from(batch.drain(..), first);
            staged.write(w, log)
        })?;
        Ok(n)
    }
}

/// A batch sorted by table, epochs assigned: each table is opened once.
#[derive(Default)]
struct Staged {
    functions: Vec<(String, FunctionRecord)>,
    persons: Vec<(String, PersonRecord)>,
    enterprises: Vec<(String, EnterpriseRecord)>,
    officers: Vec<(String, CoreOfficersRecord)>,
    /// Taxpayer id, credit code.
    tins: Vec<(String, String)>,
    roles: Vec<(String, PermissionIdentityRecord)>,
    staff: Vec<(String, StaffRecord)>,
    agencies: Vec<(String, AgencyRecord)>,
    agent_staff: Vec<(String, AgentStaffRecord)>,
    recognitions: Vec<(String, RecognitionRecord)>,
    clients: Vec<(String, ClientOfRecord)>,
}

impl Staged {
    /// Sorts `batch` by table, giving each record that takes an epoch the
    /// next one from `epoch` on.
    fn from(batch: impl Iterator<Item = Built>, mut epoch: u64) -> Self {
        let mut fresh = || {
            epoch += 1;
            epoch - 1
        };
        let mut s = Staged::default();
        for built in batch {
            match built {
                Built::Function(k, r) => s.functions.push((k, r)),
                Built::Person(k, mut r) => {
                    r.credential_epoch = fresh();
                    s.persons.push((k, r));
                }
                Built::Enterprise(k, mut r, officers) => {
                    r.credential_epoch = fresh();
                    if let Some(tin) = &r.taxpayer_id {
                        s.tins.push((tin.to_string(), k.clone()));
                    }
                    s.officers.push((k.clone(), officers));
                    s.enterprises.push((k, r));
                }
                Built::PermissionIdentity(k, r) => s.roles.push((k, r)),
                Built::Staff(k, mut r) => {
                    r.credential_epoch = fresh();
                    s.staff.push((k, r));
                }
                Built::Agency(k, r) => {
                    if let Some(tin) = &r.taxpayer_id {
                        s.tins.push((tin.to_string(), k.clone()));
                    }
                    s.agencies.push((k, r));
                }
                Built::AgentStaff(k, mut r) => {
                    r.credential_epoch = fresh();
                    s.agent_staff.push((k, r));
                }
                Built::Recognition(enterprise, agency, mut r) => {
                    r.epoch = fresh();
                    s.clients
                        .push((owned_key(&agency, &enterprise), ClientOfRecord {}));
                    s.recognitions.push((owned_key(&enterprise, &agency), r));
                }
            }
        }
        s
    }

    fn write(&self, w: &mut StoreWriter, log: &mut UndoLog) -> Result<(), StoreError> {
        fn all<R: Record>(
            w: &mut StoreWriter,
            log: &mut UndoLog,
            records: &[(String, R)],
        ) -> Result<(), StoreError> {
            if records.is_empty() {
                return Ok(());
            }
            // In key order: consecutive inserts land on the same b-tree
            // pages, which a random order (ID numbers, credit codes) would
            // touch all over the tree.
            let mut sorted: Vec<&(String, R)> = records.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            w.put_all_undoable(log, sorted.into_iter().map(|(k, r)| (k.as_str(), r)))
        }
        all(w, log, &self.functions)?;
        all(w, log, &self.persons)?;
        all(w, log, &self.enterprises)?;
        all(w, log, &self.officers)?;
        all(w, log, &self.roles)?;
        all(w, log, &self.staff)?;
        all(w, log, &self.agencies)?;
        all(w, log, &self.agent_staff)?;
        all(w, log, &self.recognitions)?;
        all(w, log, &self.clients)?;
        for (tin, code) in &self.tins {
            w.put_taxpayer_id_undoable(log, tin, code)?;
        }
        Ok(())
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
