//! The decision log against its promises: order, durability, every kind of
//! tampering (done through redb directly), checkpoints, retention, filters.

use super::*;

fn record(i: u64, principal: &str, allowed: bool) -> DecisionRecord {
    let mut r = DecisionRecord::new(
        &format!("d{i}"),
        "authorize",
        principal,
        "Etax::Action::\"useFunction\"",
        "Etax::Function::\"vat_filing\"",
        None,
        allowed,
        &["function.via-permission-identity".to_owned()],
        &[],
        "v1",
        10,
    );
    r.timestamp_ms = 1_000 + i;
    r
}

async fn log_with(n: u64) -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&decision_log_path(dir.path())).unwrap();
    let mut batch = Vec::new();
    for i in 1..=n {
        batch.push(record(
            i,
            &format!(
                "Etax::Staff::\"91210102MA0TAX001F/resident_id:21010219800312{:04}\"",
                i
            ),
            i % 3 != 0,
        ));
    }
    log.enqueue(batch).await.unwrap();
    log.flush().await.unwrap();
    (dir, log)
}

/// Runs `f` on the decisions table in its own write transaction, as an
/// attacker with the file would.
fn tamper(log: &AuditLog, f: impl FnOnce(&mut redb::Table<'_, u64, &'static [u8]>)) {
    let txn = log.database().begin_write().unwrap();
    {
        let mut t = txn.open_table(DECISIONS).unwrap();
        f(&mut t);
    }
    txn.commit().unwrap();
}

fn get(t: &redb::Table<'_, u64, &'static [u8]>, seq: u64) -> Vec<u8> {
    t.get(seq).unwrap().unwrap().value().to_vec()
}

fn problem(log: &AuditLog) -> Problem {
    let report = log.verify(None).unwrap();
    assert!(!report.ok, "tampering went unnoticed: {report:?}");
    report.problem.expect("a failed report names its problem")
}

#[tokio::test]
async fn commits_in_order_and_chains() {
    let (_dir, log) = log_with(5).await;
    let seq = log
        .commit(record(6, "p", false).with_reason("no"))
        .await
        .unwrap();
    assert_eq!(seq, 6);
    let all = log.all().unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].1.prev_hash, chain::GENESIS);
    for w in all.windows(2) {
        assert_eq!(w[1].1.prev_hash, w[0].1.hash);
        assert_eq!(w[1].1.seq, w[0].1.seq + 1);
    }
    let report = log.verify(None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 6);
    let head = log.checkpoint().unwrap().unwrap();
    assert_eq!((head.seq, head.hash.as_str()), (6, all[5].1.hash.as_str()));
}

#[tokio::test]
async fn many_concurrent_senders_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&decision_log_path(dir.path())).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200u64 {
                if i % 50 == 0 {
                    log.commit(record(t * 1000 + i, "p", true)).await.unwrap();
                } else {
                    log.enqueue(vec![record(t * 1000 + i, "p", true)])
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    log.flush().await.unwrap();
    assert_eq!(log.all().unwrap().len(), 1600);
    assert!(log.verify(None).unwrap().ok);
}

#[tokio::test]
async fn detects_an_altered_record() {
    let (_dir, log) = log_with(10).await;
    tamper(&log, |t| {
        let mut r: DecisionRecord = serde_json::from_slice(&get(t, 4)).unwrap();
        r.decision = Outcome::Allow;
        r.principal = "Etax::Staff::\"someone-else\"".to_owned();
        t.insert(4, serde_json::to_vec(&r).unwrap().as_slice())
            .unwrap();
    });
    let p = problem(&log);
    assert_eq!((p.kind, p.seq), (TamperKind::Altered, 4), "{p:?}");
}

#[tokio::test]
async fn detects_an_altered_record_with_a_recomputed_hash() {
    let (_dir, log) = log_with(10).await;
    tamper(&log, |t| {
        let mut r: DecisionRecord = serde_json::from_slice(&get(t, 7)).unwrap();
        r.decision = Outcome::Deny;
        r.hash = chain::compute_hash(&r);
        t.insert(7, serde_json::to_vec(&r).unwrap().as_slice())
            .unwrap();
    });
    let p = problem(&log);
    assert_eq!((p.kind, p.seq), (TamperKind::Altered, 7), "{p:?}");
}

#[tokio::test]
async fn detects_a_byte_level_edit() {
    let (_dir, log) = log_with(3).await;
    tamper(&log, |t| {
        let mut bytes = get(t, 2);
        bytes.insert(1, b' ');
        t.insert(2, bytes.as_slice()).unwrap();
    });
    let p = problem(&log);
    assert_eq!((p.kind, p.seq), (TamperKind::Altered, 2), "{p:?}");
}

#[tokio::test]
async fn detects_a_removed_record() {
    let (_dir, log) = log_with(10).await;
    tamper(&log, |t| {
        t.remove(5).unwrap();
    });
    let p = problem(&log);
    assert_eq!((p.kind, p.seq), (TamperKind::Removed, 5), "{p:?}");
}

#[tokio::test]
async fn detects_removed_first_and_last_records() {
    let (_dir, log) = log_with(10).await;
    tamper(&log, |t| {
        t.remove(1).unwrap();
    });
    let p = problem(&log);
    assert_eq!((p.kind, p.seq), (TamperKind::Removed, 1), "{p:?}");

    let (_dir, log) = log_with(10).await;
    tamper(&log, |t| {
        t.remove(10).unwrap();
        t.remove(9).unwrap();
    });
    let p = problem(&log);
    assert_eq!((p.kind, p.seq), (TamperKind::Removed, 9), "{p:?}");
}

#[tokio::test]
async fn detects_reordered_records() {
    let (_dir, log) = log_with(10).await;
    tamper(&log, |t| {
        let (a, b) = (get(t, 3), get(t, 6));
        t.insert(3, b.as_slice()).unwrap();
        t.insert(6, a.as_slice()).unwrap();
    });
    let p = problem(&log);
    assert_eq!((p.kind, p.seq), (TamperKind::Reordered, 3), "{p:?}");
}

#[tokio::test]
async fn detects_reordering_with_renumbered_records() {
    let (_dir, log) = log_with(10).await;
    tamper(&log, |t| {
        let mut a: DecisionRecord = serde_json::from_slice(&get(t, 3)).unwrap();
        let mut b: DecisionRecord = serde_json::from_slice(&get(t, 4)).unwrap();
        std::mem::swap(&mut a.seq, &mut b.seq);
        a.hash = chain::compute_hash(&a);
        b.hash = chain::compute_hash(&b);
        t.insert(4, serde_json::to_vec(&a).unwrap().as_slice())
            .unwrap();
        t.insert(3, serde_json::to_vec(&b).unwrap().as_slice())
            .unwrap();
    });
    let p = problem(&log);
    // The break is found where record 3 no longer links to record 2.
    assert!(matches!(p.seq, 2 | 3), "{p:?}");
}

#[tokio::test]
async fn checkpoint_is_extended_until_history_is_rewritten() {
    let (_dir, log) = log_with(5).await;
    let cp = log.checkpoint().unwrap().unwrap();
    log.enqueue(vec![record(6, "p", true), record(7, "p", true)])
        .await
        .unwrap();
    log.flush().await.unwrap();
    let report = log.verify(Some(&cp)).unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.checkpoint.unwrap().extended);

    // Rewrite the whole log from record 3 on, consistently: the chain alone
    // cannot tell, the checkpoint can.
    tamper(&log, |t| {
        let mut prev = serde_json::from_slice::<DecisionRecord>(&get(t, 2))
            .unwrap()
            .hash;
        for seq in 3..=7 {
            let mut r: DecisionRecord = serde_json::from_slice(&get(t, seq)).unwrap();
            r.decision = Outcome::Allow;
            let bytes = chain::seal(&mut r, seq, &prev);
            prev = r.hash.clone();
            t.insert(seq, bytes.as_slice()).unwrap();
        }
    });
    let txn = log.database().begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        let last: DecisionRecord = log.all().unwrap().pop().unwrap().1;
        let cp = serde_json::to_vec(&Checkpoint::of(&last)).unwrap();
        meta.insert(chain::HEAD_KEY, cp.as_slice()).unwrap();
    }
    txn.commit().unwrap();
    let report = log.verify(Some(&cp)).unwrap();
    assert!(!report.ok, "{report:?}");
    assert!(!report.checkpoint.unwrap().extended);
}

#[test]
fn parses_checkpoints() {
    let h = "ab".repeat(32);
    let cp = Checkpoint::parse(&format!("12:{h}")).unwrap();
    assert_eq!((cp.seq, cp.hash.as_str()), (12, h.as_str()));
    let json = format!(r#"{{"seq":3,"hash":"{h}","timestamp_ms":5}}"#);
    assert_eq!(Checkpoint::parse(&json).unwrap().seq, 3);
    assert!(Checkpoint::parse("12:abc").is_err());
    assert!(Checkpoint::parse("twelve").is_err());
}

#[tokio::test]
async fn pruning_leaves_a_verifiable_chain_with_an_anchor() {
    let (_dir, log) = log_with(10).await;
    let cp = log.checkpoint().unwrap().unwrap();
    // Records 1..=4 have timestamps 1001..=1004.
    let pruned = log.prune(1_005, "retention").await.unwrap().unwrap();
    assert_eq!((pruned.first_seq, pruned.last_seq), (1, 4));
    let all = log.all().unwrap();
    assert_eq!(all.first().unwrap().0, 5);
    let anchor = &all.last().unwrap().1;
    assert_eq!((anchor.seq, anchor.kind.as_str()), (11, "anchor"));
    assert_eq!(
        anchor.pruned.as_ref().unwrap().last_hash,
        all[0].1.prev_hash
    );
    let report = log.verify(Some(&cp)).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.first_seq, Some(5));

    // Nothing older: no-op.
    assert!(log.prune(1_005, "retention").await.unwrap().is_none());

    // Removing one more old record is not retention.
    tamper(&log, |t| {
        t.remove(5).unwrap();
    });
    let p = problem(&log);
    assert_eq!((p.kind, p.seq), (TamperKind::Removed, 5), "{p:?}");
}

#[tokio::test]
async fn pruning_twice_keeps_the_chain() {
    let (_dir, log) = log_with(10).await;
    log.prune(1_003, "retention").await.unwrap().unwrap();
    log.prune(1_008, "retention").await.unwrap().unwrap();
    let report = log.verify(None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.first_seq, Some(8));
    log.enqueue(vec![record(20, "p", true)]).await.unwrap();
    log.flush().await.unwrap();
    assert!(log.verify(None).unwrap().ok);
}

#[tokio::test]
async fn filters_select_records() {
    let (_dir, log) = log_with(9).await;
    log.commit(
        DecisionRecord::new(
            "login1",
            "login.sms",
            "Etax::Staff::\"91210200MA0DAL003B/resident_id:210203198808086069\"",
            "Etax::Action::\"loginNormal\"",
            "Etax::Enterprise::\"91210200MA0DAL003B\"",
            None,
            false,
            &["login.realname-required".to_owned()],
            &[],
            "v2",
            7,
        )
        .with_step("sms"),
    )
    .await
    .unwrap();
    let count = |f: Filter| log.query(&f, 0, 1000).unwrap().records.len();
    assert_eq!(count(Filter::default()), 10);
    assert_eq!(
        count(Filter {
            decision: Some(Outcome::Deny),
            ..Default::default()
        }),
        4
    );
    assert_eq!(
        count(Filter {
            action: Some("loginNormal".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(Filter {
            enterprise: Some("91210200MA0DAL003B".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(Filter {
            policy: Some("login.realname-required".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(Filter {
            kind: Some("login.".into()),
            ..Default::default()
        }),
        1
    );
    // An unmasked ID number finds its masked record.
    assert_eq!(
        count(Filter {
            principal: Some("210203198808086069".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(Filter {
            since_ms: Some(1_003),
            until_ms: Some(1_006),
            ..Default::default()
        }),
        3
    );

    // Pagination: 3 pages of 4, 4, 2 and a cursor between them.
    let mut after = 0;
    let mut sizes = Vec::new();
    loop {
        let page = log.query(&Filter::default(), after, 4).unwrap();
        sizes.push(page.records.len());
        match page.next_after {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(sizes, vec![4, 4, 2]);
}

#[tokio::test]
async fn exports_the_stored_lines() {
    let (_dir, log) = log_with(4).await;
    let mut out = Vec::new();
    let n = query::export(log.database(), Some(1_003), &mut out).unwrap();
    assert_eq!(n, 2);
    let text = String::from_utf8(out).unwrap();
    for line in text.lines() {
        let r: DecisionRecord = serde_json::from_str(line).unwrap();
        assert_eq!(chain::compute_hash(&r), r.hash);
    }
    let mut csv = Vec::new();
    query::write(log.database(), &Filter::default(), Format::Csv, &mut csv).unwrap();
    assert_eq!(String::from_utf8(csv).unwrap().lines().count(), 5);
}
