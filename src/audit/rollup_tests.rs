//! Unit tests of the per-minute rollups: counting, saving, and recounting when a chunk is missing, torn, behind or ahead.

use super::super::overview::Bucket;
use super::super::time::Offset;
use super::*;

fn counted(ts: u64, kind: &str, caller: Option<&str>, deny: bool, policies: &[&str]) -> Fields {
    Fields {
        timestamp_ms: ts,
        caller: caller.map(str::to_owned),
        kind: kind.to_owned(),
        decision: if deny { Outcome::Deny } else { Outcome::Allow },
        policies: policies.iter().map(|p| (*p).to_owned()).collect(),
        outcome: Some(if deny {
            FinalOutcome::Refused
        } else {
            FinalOutcome::Done
        }),
    }
}

fn empty(dir: &Path) -> Rollup {
    Rollup {
        dir: dir.to_owned(),
        names: Names::default(),
        chunks: BTreeMap::new(),
        saved_at: Instant::now(),
    }
}

// 2026-11-27T00:00:00+08:00, a Beijing midnight.
const MIDNIGHT: u64 = 1_795_708_800_000;
const HOUR: u64 = 3_600_000;

#[test]
fn adds_up_beijing_days_and_leaves_reads_out_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = empty(tmp.path());
    let records = [
        counted(
            MIDNIGHT - 1,
            "authorize",
            Some("portal"),
            false,
            &["p.allow"],
        ),
        counted(MIDNIGHT, "authorize", Some("portal"), true, &["p.forbid"]),
        counted(MIDNIGHT + 5 * HOUR, "login.password", None, true, &[]),
        counted(
            MIDNIGHT + 23 * HOUR,
            "audit.read",
            Some("auditor"),
            false,
            &[],
        ),
        counted(
            MIDNIGHT + 24 * HOUR,
            "authorize",
            Some("portal"),
            false,
            &["p.allow"],
        ),
    ];
    for (i, c) in records.iter().enumerate() {
        r.add(i as u64 + 1, "00", &c.counted());
    }
    let q = OverviewQuery {
        since_ms: MIDNIGHT - HOUR,
        until_ms: MIDNIGHT + 24 * HOUR + 1,
        bucket: Bucket::Day,
        offset: Offset::BEIJING,
        include_reads: false,
    };
    let o = r.overview(&q);
    let days: Vec<(u64, u64, u64)> = o
        .series
        .iter()
        .map(|p| (p.start_ms, p.allow, p.deny))
        .collect();
    assert_eq!(
        days,
        [
            (MIDNIGHT - 24 * HOUR, 1, 0),
            (MIDNIGHT, 0, 2),
            (MIDNIGHT + 24 * HOUR, 1, 0)
        ]
    );
    assert_eq!(o.series[1].time, "2026-11-27T00:00:00.000+08:00");
    assert_eq!((o.total.allow, o.total.deny), (2, 2));
    assert_eq!(o.by_policy[0].key, "p.forbid");
    assert_eq!(
        o.by_caller
            .iter()
            .map(|k| k.key.as_str())
            .collect::<Vec<_>>(),
        ["portal", ""]
    );
    assert_eq!(o.through_seq, 5);
    let with_reads = r.overview(&OverviewQuery {
        include_reads: true,
        ..q
    });
    assert_eq!(with_reads.total.allow, 3);
    assert!(with_reads.by_kind.iter().any(|k| k.key == "audit.read"));
}

#[test]
fn chunks_split_by_sequence_number_and_a_full_one_is_saved_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = empty(tmp.path());
    for seq in 1..=CHUNK_RECORDS + 3 {
        r.add(
            seq,
            "ab",
            &counted(MIDNIGHT + seq, "authorize", None, false, &[]).counted(),
        );
    }
    assert_eq!(r.chunks.len(), 2);
    assert_eq!(r.chunks[&1].first_seq, CHUNK_RECORDS + 1);
    r.save(false);
    assert!(chunk_path(tmp.path(), 0).exists(), "a full chunk is saved");
    assert!(!chunk_path(tmp.path(), 1).exists(), "the open one waits");
    r.save(true);
    assert!(chunk_path(tmp.path(), 1).exists());
    let q = OverviewQuery {
        since_ms: MIDNIGHT,
        until_ms: MIDNIGHT + HOUR,
        bucket: Bucket::Hour,
        offset: Offset::BEIJING,
        include_reads: false,
    };
    assert_eq!(r.overview(&q).total.allow, CHUNK_RECORDS + 3);
}
