//! Unit tests of the store: records, transactions and the formats earlier versions wrote.

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    (dir, store)
}

fn challenge(expires_ms: u64) -> ChallengeRecord {
    ChallengeRecord {
        purpose: ChallengePurpose::Login,
        subject: "s".into(),
        code_hash: String::new(),
        expires_ms,
        failures: 0,
        used: false,
    }
}

#[test]
fn remove_where_removes_only_dead_records_in_bounded_batches() {
    let (_dir, store) = store();
    store
        .write(|w| {
            for i in 0..25u64 {
                // Even keys are dead.
                w.put(&format!("c{i:02}"), &challenge(i % 2))?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let before = store.commits();
    let mut heard = Vec::new();
    let removed = store
        .remove_where::<ChallengeRecord>(4, |_, c| c.expires_ms == 0, |k| heard.push(k.to_owned()))
        .unwrap();
    assert_eq!(removed, 13);
    assert_eq!(heard.len(), 13);
    assert!(heard
        .iter()
        .all(|k| k[1..].parse::<u64>().unwrap() % 2 == 0));
    // 13 removals in batches of at most 4: four write transactions.
    assert_eq!(store.commits() - before, 4);
    let left = store.read().unwrap().all::<ChallengeRecord>().unwrap();
    assert_eq!(left.len(), 12);
    assert!(left.iter().all(|(_, c)| c.expires_ms == 1));
}

#[test]
fn epochs_are_never_handed_out_twice_even_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::open(&path).unwrap();
    let a = store.write(|w| w.next_epoch()).unwrap();
    let b = store.write(|w| w.next_epoch()).unwrap();
    assert!(a > 0 && b > a, "{a} {b}");
    // An aborted transaction hands nothing out.
    let _ = store.write(|w| {
        w.next_epoch()?;
        Err::<(), _>(StoreError::Corrupt {
            table: String::new(),
            key: String::new(),
            source: serde_json::from_str::<u8>("x").unwrap_err(),
        })
    });
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.write(|w| w.next_epoch()).unwrap(), b + 1);
}

#[test]
fn remove_where_with_nothing_dead_does_not_write() {
    let (_dir, store) = store();
    store.write(|w| w.put("c", &challenge(1))).unwrap();
    let before = store.commits();
    let removed = store
        .remove_where::<ChallengeRecord>(10, |_, c| c.expires_ms == 0, |_| {})
        .unwrap();
    assert_eq!((removed, store.commits()), (0, before));
}

#[test]
fn remove_where_judges_the_current_value_again() {
    let (_dir, store) = store();
    store.write(|w| w.put("c", &challenge(0))).unwrap();
    let revived = std::cell::Cell::new(false);
    // The first look (the scan) sees it dead; by the second (inside the
    // write transaction) it has been renewed.
    let removed = store
        .remove_where::<ChallengeRecord>(10, |_, _| !revived.replace(true), |_| {})
        .unwrap();
    assert_eq!(removed, 0);
    assert!(store
        .read()
        .unwrap()
        .get::<ChallengeRecord>("c")
        .unwrap()
        .is_some());
}

#[test]
fn login_state_written_by_the_previous_version_reads_through_the_new_types() {
    use super::login_state::tests::{CHALLENGE_JSON, FLOW_JSON, SESSION_JSON};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::open(&path).unwrap();
    // The bytes the previous version stored, its string fields and all,
    // written below the typed API.
    store
        .write(|w| {
            w.txn
                .open_table(SessionRecord::TABLE)?
                .insert("s", SESSION_JSON.as_bytes())?;
            w.txn
                .open_table(LoginFlowRecord::TABLE)?
                .insert("f", FLOW_JSON.as_bytes())?;
            w.txn
                .open_table(ChallengeRecord::TABLE)?
                .insert("c", CHALLENGE_JSON.as_bytes())?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    let r = store.read().unwrap();
    let session = r.get::<SessionRecord>("s").unwrap().unwrap();
    assert_eq!(
        session.principal_type,
        crate::domain::PrincipalKind::AgentStaff
    );
    let flow = r.get::<LoginFlowRecord>("f").unwrap().unwrap();
    assert_eq!(flow.kind, FlowKind::Agency);
    assert_eq!(
        flow.factors.into_iter().collect::<Vec<_>>(),
        [
            crate::domain::Factor::AgencyPassword,
            crate::domain::Factor::PersonalPassword
        ]
    );
    let challenge = r.get::<ChallengeRecord>("c").unwrap().unwrap();
    assert_eq!(challenge.purpose, ChallengePurpose::Reset);
    drop(r);
    // Written back through the new types, the bytes are the old ones.
    store.write(|w| w.put("s", &session)).unwrap();
    let r = store.read().unwrap();
    let table = r.txn.open_table(SessionRecord::TABLE).unwrap();
    let bytes = table.get("s").unwrap().unwrap().value().to_vec();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), SESSION_JSON);
}
