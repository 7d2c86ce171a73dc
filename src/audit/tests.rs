//! The decision log against its promises: order, durability, every kind of
//! consistent tampering (records rewritten with valid checksums, as someone
//! who knows the format would), checkpoints, retention, filters, migration.
//! Byte-level damage to the files is in `tests/audit_forensics.rs`.

use super::*;
use std::path::Path;

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

/// Closes the log, then rewrites its records as an attacker who knows the
/// format would: `f` edits the stored records, and they are written back as
/// blocks with valid checksums (the clean-close head is left as it was).
async fn tamper(dir: &Path, log: AuditLog, f: impl FnOnce(&mut Vec<Stored>)) {
    log.close().await.unwrap();
    drop(log);
    let dir = decision_log_path(dir);
    let snap = snapshot_at(&dir).unwrap();
    let mut records: Vec<Stored> = scan::Scan::new(std::sync::Arc::new(snap), 0, None)
        .map(Result::unwrap)
        .collect();
    f(&mut records);
    rewrite_segments(&dir, &records);
}

fn rewrite_segments(dir: &Path, records: &[Stored]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("seg-")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let blocks = stored::block_frames(records);
    std::fs::write(segment::segment_path(dir, 1), blocks).unwrap();
}

/// `r` with its JSON edited by `edit` (hash left alone unless `rehash`).
fn edit(r: &mut Stored, rehash: bool, edit: impl FnOnce(&mut DecisionRecord)) {
    let mut rec: DecisionRecord = serde_json::from_slice(&r.line()).unwrap();
    edit(&mut rec);
    r.canonical = chain::canonical_bytes(&DecisionRecord {
        hash: String::new(),
        ..rec
    });
    if rehash {
        r.hash = ChainHash::Sha256.digest(&r.canonical);
    }
}

/// Re-seals records `from..` so each links to the one before: a consistent
/// rewrite of history.
fn relink(records: &mut [Stored], from: usize) {
    for i in from..records.len() {
        let prev = if i == 0 { [0; 32] } else { records[i - 1].hash };
        let seq = i as u64 + 1;
        edit(&mut records[i], false, |r| {
            r.seq = seq;
            r.prev_hash = hex::encode(prev);
        });
        records[i].seq = seq;
        records[i].prev = prev;
        records[i].hash = ChainHash::Sha256.digest(&records[i].canonical);
    }
}

fn verify_dir(dir: &Path, checkpoint: Option<&Checkpoint>) -> VerifyReport {
    let snap = snapshot_at(&decision_log_path(dir)).unwrap();
    forensics::verify(&snap, checkpoint).unwrap()
}

fn problem(dir: &Path) -> Problem {
    let report = verify_dir(dir, None);
    assert!(!report.ok, "tampering went unnoticed: {report:?}");
    assert_eq!(report.verdict, Verdict::Tampered, "{report:?}");
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
    let (dir, log) = log_with(10).await;
    tamper(dir.path(), log, |rs| {
        edit(&mut rs[3], false, |r| {
            r.decision = Outcome::Allow;
            r.principal = "Etax::Staff::\"someone-else\"".to_owned();
        })
    })
    .await;
    let p = problem(dir.path());
    assert_eq!((p.kind, p.seq), (TamperKind::Altered, 4), "{p:?}");
    assert!(p.time.unwrap().starts_with("1970-01-01T00:00:01.004"));
}

#[tokio::test]
async fn detects_an_altered_record_with_a_recomputed_hash() {
    let (dir, log) = log_with(10).await;
    tamper(dir.path(), log, |rs| {
        edit(&mut rs[6], true, |r| r.decision = Outcome::Deny);
    })
    .await;
    let p = problem(dir.path());
    assert_eq!((p.kind, p.seq), (TamperKind::Altered, 7), "{p:?}");
}

#[tokio::test]
async fn detects_a_byte_level_edit() {
    let (dir, log) = log_with(3).await;
    tamper(dir.path(), log, |rs| rs[1].canonical.insert(1, b' ')).await;
    let p = problem(dir.path());
    assert_eq!((p.kind, p.seq), (TamperKind::Altered, 2), "{p:?}");
}

#[tokio::test]
async fn detects_a_removed_record() {
    let (dir, log) = log_with(10).await;
    tamper(dir.path(), log, |rs| {
        rs.remove(4);
    })
    .await;
    let p = problem(dir.path());
    assert_eq!((p.kind, p.seq), (TamperKind::Removed, 5), "{p:?}");
}

#[tokio::test]
async fn detects_removed_first_and_last_records() {
    let (dir, log) = log_with(10).await;
    tamper(dir.path(), log, |rs| {
        rs.remove(0);
    })
    .await;
    let p = problem(dir.path());
    assert_eq!((p.kind, p.seq), (TamperKind::Removed, 1), "{p:?}");

    // The clean-close head says where the log ended.
    let (dir, log) = log_with(10).await;
    tamper(dir.path(), log, |rs| rs.truncate(8)).await;
    let p = problem(dir.path());
    assert_eq!((p.kind, p.seq), (TamperKind::Removed, 9), "{p:?}");
}

#[tokio::test]
async fn detects_reordered_records() {
    let (dir, log) = log_with(10).await;
    tamper(dir.path(), log, |rs| rs.swap(2, 5)).await;
    let p = problem(dir.path());
    assert_eq!(p.seq, 3, "{p:?}");
    assert!(
        matches!(p.kind, TamperKind::Reordered | TamperKind::Removed),
        "{p:?}"
    );
}

#[tokio::test]
async fn detects_reordering_with_renumbered_records() {
    let (dir, log) = log_with(10).await;
    tamper(dir.path(), log, |rs| {
        rs.swap(2, 3);
        let (a, b) = (rs[2].seq, rs[3].seq);
        edit(&mut rs[2], true, |r| r.seq = b);
        edit(&mut rs[3], true, |r| r.seq = a);
    })
    .await;
    let p = problem(dir.path());
    // The break is found where record 3 no longer links to record 2.
    assert!(matches!(p.seq, 2 | 3), "{p:?}");
}

#[tokio::test]
async fn checkpoint_is_extended_until_history_is_rewritten() {
    let (dir, log) = log_with(5).await;
    let cp = log.checkpoint().unwrap().unwrap();
    log.enqueue(vec![record(6, "p", true), record(7, "p", true)])
        .await
        .unwrap();
    log.flush().await.unwrap();
    let report = log.verify(Some(&cp)).unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.checkpoint.unwrap().extended);

    // Remove record 3 and re-link the rest, consistently, head included:
    // the chain alone cannot tell, the checkpoint can.
    tamper(dir.path(), log, |rs| {
        rs.remove(2);
        relink(rs, 2);
    })
    .await;
    let head = verify_dir(dir.path(), None).last_verified.unwrap();
    let json = serde_json::to_vec(&head).unwrap();
    std::fs::write(segment::head_path(&decision_log_path(dir.path())), json).unwrap();
    assert!(verify_dir(dir.path(), None).ok);
    let report = verify_dir(dir.path(), Some(&cp));
    assert_eq!(report.verdict, Verdict::Tampered, "{report:?}");
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
    // The JSON form holds its hash to the same rule as SEQ:HASH: a
    // malformed one is a malformed checkpoint, not a tampered log.
    let upper = format!(
        r#"{{"seq":3,"hash":"{}","timestamp_ms":5}}"#,
        h.to_uppercase()
    );
    assert_eq!(Checkpoint::parse(&upper).unwrap().hash, h);
    for bad in ["", "abc", &"zz".repeat(32)] {
        let json = format!(r#"{{"seq":3,"hash":"{bad}","timestamp_ms":5}}"#);
        let e = Checkpoint::parse(&json).unwrap_err();
        assert!(e.contains("not 64 hex digits"), "{e}");
    }
}

/// `--checkpoint` names a file or is the checkpoint itself. A name that
/// is no regular file (a FIFO, a directory) is refused as such, not read
/// (a FIFO would hold the command) and not taken for a malformed
/// checkpoint; a file far larger than any checkpoint is not read whole.
#[test]
fn a_checkpoint_argument_naming_no_regular_file_is_refused_by_name() {
    let h = "ab".repeat(32);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cp.json");
    std::fs::write(&file, format!("12:{h}\n")).unwrap();
    let read = |p: &Path| commands::read_checkpoint(p.to_str().unwrap());
    assert_eq!(read(&file).unwrap().seq, 12);
    let fifo = dir.path().join("cp.fifo");
    crate::files::make_fifo(&fifo);
    for odd in [fifo.as_path(), dir.path()] {
        let e = read(odd).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }
    let big = dir.path().join("big.json");
    std::fs::write(&big, " ".repeat(1 << 20)).unwrap();
    let e = read(&big).unwrap_err();
    assert!(e.contains("larger than"), "{e}");
}

/// Ten records in two segments: 1..=4 (times 1001..=1004), then 5..=10.
async fn log_in_two_segments() -> (tempfile::TempDir, AuditLog) {
    let (dir, log) = log_with(4).await;
    // Nothing is older than time 1; the prune still seals the segment.
    assert!(log.prune(1, 0, "retention").await.unwrap().is_none());
    log.enqueue((5..=10).map(|i| record(i, "p", true)).collect())
        .await
        .unwrap();
    log.flush().await.unwrap();
    (dir, log)
}

#[tokio::test]
async fn pruning_leaves_a_verifiable_chain_with_an_anchor() {
    let (dir, log) = log_in_two_segments().await;
    let cp = log.checkpoint().unwrap().unwrap();
    let pruned = log.prune(1_005, 0, "retention").await.unwrap().unwrap();
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

    // Nothing older in a whole segment: no-op.
    assert!(log.prune(1_005, 0, "retention").await.unwrap().is_none());

    // Removing one more old record is not retention.
    tamper(dir.path(), log, |rs| {
        rs.remove(0);
    })
    .await;
    let p = problem(dir.path());
    assert_eq!((p.kind, p.seq), (TamperKind::Removed, 5), "{p:?}");
}

#[tokio::test]
async fn pruning_twice_keeps_the_chain() {
    let (dir, log) = log_in_two_segments().await;
    log.prune(1_005, 0, "retention").await.unwrap().unwrap();
    // Segment 5..=11 (the anchor is newest, so it stays with its segment).
    assert!(log.prune(1_008, 0, "retention").await.unwrap().is_none());
    log.enqueue(vec![record(20, "p", true)]).await.unwrap();
    log.flush().await.unwrap();
    let report = log.verify(None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.first_seq, Some(5));
    // A restart keeps it: the clean-close head, then a reopen.
    log.close().await.unwrap();
    drop(log);
    let log = AuditLog::open(&decision_log_path(dir.path())).unwrap();
    assert!(log.verify(None).unwrap().ok);
    assert_eq!(log.checkpoint().unwrap().unwrap().seq, 12);
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
    let any = Filter::default;
    let cases = [
        (any(), 10),
        (
            Filter {
                decision: Some(Outcome::Deny),
                ..any()
            },
            4,
        ),
        (
            Filter {
                action: Some("loginNormal".into()),
                ..any()
            },
            1,
        ),
        (
            Filter {
                enterprise: Some("91210200MA0DAL003B".into()),
                ..any()
            },
            1,
        ),
        (
            Filter {
                policy: Some("login.realname-required".into()),
                ..any()
            },
            1,
        ),
        (
            Filter {
                kind: Some("login.".into()),
                ..any()
            },
            1,
        ),
        // An unmasked ID number finds its masked record.
        (
            Filter {
                principal: Some("210203198808086069".into()),
                ..any()
            },
            1,
        ),
        (
            Filter {
                since_ms: Some(1_003),
                until_ms: Some(1_006),
                ..any()
            },
            3,
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(count(filter.clone()), expected, "{filter:?}");
    }
}

#[tokio::test]
async fn queries_page_with_a_cursor() {
    let (_dir, log) = log_with(10).await;
    // 3 pages of 4, 4, 2 and a cursor between them.
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
    let n = query::export(&log, Some(1_003), &mut out).unwrap();
    assert_eq!(n, 2);
    let text = String::from_utf8(out).unwrap();
    for line in text.lines() {
        let r: DecisionRecord = serde_json::from_str(line).unwrap();
        assert_eq!(chain::compute_hash(&r, ChainHash::Sha256), r.hash);
    }
    let mut csv = Vec::new();
    query::write(&log, &Filter::default(), Format::Csv, &mut csv).unwrap();
    assert_eq!(String::from_utf8(csv).unwrap().lines().count(), 5);
}

#[tokio::test]
async fn records_survive_blocks_restarts_and_a_crash_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = decision_log_path(dir.path());
    let log = AuditLog::open(&path).unwrap();
    // More than a block, so records are in a block and in the journal.
    let n = append::BLOCK_RECORDS as u64 + 300;
    log.enqueue((1..=n).map(|i| record(i, "p", true)).collect())
        .await
        .unwrap();
    log.flush().await.unwrap();
    let before = log.all().unwrap();
    assert_eq!(before.len() as u64, n);
    // A crash: the writer never closes (its thread is left running) and
    // another process opens the files as they are.
    std::mem::forget(log);
    let shared_lock_gone = segment::head_path(&path);
    assert!(!shared_lock_gone.exists(), "no clean-close head while open");
    let report = verify_dir_unlocked(&path);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, n);
}

/// Verify without taking the lock (the forgotten writer still holds it).
fn verify_dir_unlocked(path: &Path) -> VerifyReport {
    let layout = segment::read_layout(path).unwrap();
    let snap = Snapshot::open(layout, ChainHash::Sha256).unwrap();
    forensics::verify(&snap, None).unwrap()
}

#[tokio::test]
async fn sm3_logs_stay_sm3_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = decision_log_path(dir.path());
    let log = AuditLog::open_with(&path, ChainHash::Sm3).unwrap();
    log.commit(record(1, "p", true)).await.unwrap();
    let r = log.all().unwrap().pop().unwrap().1;
    assert_eq!(r.hash, chain::compute_hash(&r, ChainHash::Sm3));
    log.close().await.unwrap();
    drop(log);
    // Asking for SHA-256 later does not change an existing log.
    let log = AuditLog::open_with(&path, ChainHash::Sha256).unwrap();
    assert_eq!(log.chain_hash(), ChainHash::Sm3);
    log.commit(record(2, "p", true)).await.unwrap();
    let report = log.verify(None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.records, report.chain_hash), (2, ChainHash::Sm3));
}

#[tokio::test]
async fn an_old_redb_log_is_migrated_with_its_seqs_and_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("decisions.redb");
    let mut records: Vec<DecisionRecord> = (1..=1500)
        .map(|i| {
            record(
                i,
                &format!("Etax::Staff::\"E/resident_id:2101021980031{i:05}\""),
                i % 2 == 0,
            )
        })
        .collect();
    migrate::write_legacy(&old, &mut records).unwrap();
    let log = AuditLog::open(&decision_log_path(dir.path())).unwrap();
    assert!(!old.exists());
    assert!(dir.path().join("decisions.redb.migrated").exists());
    let report = log.verify(None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.chain_hash, ChainHash::Sha256);
    let migrated: Vec<DecisionRecord> = log.all().unwrap().into_iter().map(|(_, r)| r).collect();
    assert_eq!(migrated, records);
    // The log goes on from the old head.
    assert_eq!(log.commit(record(1501, "p", true)).await.unwrap(), 1501);
    assert!(log.verify(None).unwrap().ok);
}

#[tokio::test]
async fn records_without_a_request_id_keep_their_form_and_verify_beside_records_with_one() {
    // Records as written before `request_id` existed: the field is absent
    // from their canonical form, so their stored hashes still hold.
    let (dir, log) = log_with(3).await;
    let old = record(1, "Etax::Staff::\"x\"", true);
    assert!(!String::from_utf8(chain::canonical_bytes(&old))
        .unwrap()
        .contains("request_id"));
    let mut new = record(4, "Etax::Staff::\"y\"", true);
    new.request_id = Some("ticket-1".to_owned());
    assert!(String::from_utf8(chain::canonical_bytes(&new))
        .unwrap()
        .contains("\"request_id\":\"ticket-1\""));
    log.commit(new).await.unwrap();
    log.close().await.unwrap();
    drop(log);
    let report = verify_dir(dir.path(), None);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 4);
}

/// `/readyz` reads this: a writer that ended (closed here; a panic ends it
/// the same way) no longer takes records.
#[tokio::test]
async fn the_writer_is_seen_stopped_once_it_has_ended() {
    let (_dir, log) = log_with(2).await;
    assert!(log.writer_running());
    log.close().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.writer_running() {
        assert!(std::time::Instant::now() < deadline, "still seen running");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
