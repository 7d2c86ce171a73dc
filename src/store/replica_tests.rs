//! Unit tests of the replica: attach, apply and the change stamps, on real redb files.

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
        stamp: 11,
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
        assert_eq!(w.apply(&entries, 0).unwrap(), Some((1, 11)));
        w.txn.commit().unwrap();
    }
    let r = store.read().unwrap();
    assert_eq!(r.all::<FunctionRecord>().unwrap().len(), 1);
    assert_eq!(store.write(|w| w.next_epoch()).unwrap(), 8);
    // Already applied: nothing after id 1 is applied again.
    let mut w = StoreWriter::new(store.db.begin_write().unwrap());
    assert_eq!(w.apply(&entries, 1).unwrap(), None);
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
    fn stamp(&self, id: u64) -> Result<Option<u64>, StoreError> {
        let log = self.0.lock().unwrap();
        Ok(log.iter().find(|e| e.id == id).map(|e| e.stamp))
    }
}

impl LogTxn for MemoryLog {
    fn since(&mut self, after: u64) -> Result<Vec<LogEntry>, StoreError> {
        ChangeLog::since(self, after, u32::MAX)
    }
    fn append(&mut self, changes: &[Change]) -> Result<(u64, u64), StoreError> {
        let mut log = self.0.lock().unwrap();
        let id = log.len() as u64 + 1;
        // Distinct per log and entry, as the database's stamps are.
        let stamp = (Arc::as_ptr(&self.0) as u64).rotate_left(17) ^ id;
        log.push(LogEntry {
            id,
            stamp,
            changes: changes.to_vec(),
        });
        Ok((id, stamp))
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
fn a_replica_of_another_log_is_refused_and_one_written_before_stamps_joins() {
    let (ours, theirs) = (MemoryLog::default(), MemoryLog::default());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let open = |dir: &tempfile::TempDir| Store::open(&dir.path().join("s.redb")).unwrap();
    let writer = open(&dirs[0])
        .attach(Box::new(ours.clone()), u64::MAX)
        .unwrap();
    writer.write(|w| w.put("F1", &function("one"))).unwrap();
    // Another fleet with a longer log: the id check alone passes.
    let other = open(&dirs[1])
        .attach(Box::new(theirs.clone()), u64::MAX)
        .unwrap();
    for name in ["a", "b", "c"] {
        other.write(|w| w.put(name, &function(name))).unwrap();
    }
    drop(other);
    drop(writer);
    let refused = open(&dirs[0]).attach(Box::new(theirs.clone()), u64::MAX);
    assert!(
        matches!(&refused, Err(StoreError::NotAReplica(m)) if m.contains("not the fleet's change 1")),
        "{:?}",
        refused.err()
    );
    // A replica of the previous version kept only the id: it joins its
    // own log and is stamped from then on.
    let store = open(&dirs[0]);
    let txn = store.db.begin_write().unwrap();
    txn.open_table(REPLICA)
        .unwrap()
        .remove(APPLIED_STAMP)
        .unwrap();
    txn.commit().unwrap();
    let store = store.attach(Box::new(ours.clone()), u64::MAX).unwrap();
    drop(store);
    assert!(open(&dirs[0]).attach(Box::new(theirs), u64::MAX).is_err());
    assert!(open(&dirs[0]).attach(Box::new(ours), u64::MAX).is_ok());
}

#[test]
fn a_check_catches_up_only_for_changes_it_needs() {
    let log = MemoryLog::default();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let open = |i: usize| {
        let store = Store::open(&dirs[i].path().join("s.redb")).unwrap();
        store.attach(Box::new(log.clone()), u64::MAX).unwrap()
    };
    let (writer, replica) = (open(0), open(1));
    writer.write(|w| w.put("F1", &function("one"))).unwrap();
    let needs_f2 = |_: &StoreReader, changes: &[&Change]| {
        Ok(changes.iter().any(|c| c.writes::<FunctionRecord>("F2")))
    };
    replica.catch_up_if_needed(needs_f2).unwrap();
    assert_eq!(replica.applied().unwrap(), Some(0), "F1 is not needed");
    writer.write(|w| w.put("F2", &function("two"))).unwrap();
    replica.catch_up_if_needed(needs_f2).unwrap();
    assert_eq!(replica.applied().unwrap(), Some(2));
    assert!(replica
        .read()
        .unwrap()
        .get::<FunctionRecord>("F2")
        .unwrap()
        .is_some());

    let clear = Change::Clear {
        table: "functions".into(),
    };
    assert!(clear.writes::<FunctionRecord>("anything"));
    assert!(!clear.writes::<StaffRecord>("anything"));
}

#[test]
fn a_change_naming_an_unknown_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let mut w = StoreWriter::new(store.db.begin_write().unwrap());
    let entry = LogEntry {
        id: 3,
        stamp: 0,
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
