//! Forensics on the decision log's files: the real server writes the log,
//! the test edits the real files' bytes (a flipped byte, a cut, garbage, a
//! record removed and the chain re-linked), and the real `etax-authz audit
//! verify` must name the first record affected, tell corruption from
//! tampering by its exit code, and salvage what it can.

use crate::common;

use std::path::{Path, PathBuf};

use common::{cli, copy_data, rewrite_log, try_serve, ServeAttempt, Server};
use etax_authz::audit::frame::{self, Item, Kind, HEADER};
use etax_authz::audit::stored::BlockHeader;
use etax_authz::audit::{decision_log_path, stored, ChainHash, DecisionRecord, Stored};
use serde_json::{json, Value};

const CLERK: &str = "Staff::\"91210102MA0TAX001F/resident_id:210102199001015035\"";
const OK: i32 = 0;
const TAMPERED: i32 = 3;
const UNREADABLE: i32 = 4;

/// A stopped server's data with `n` authorize decisions after the start's
/// `policy.load` record (record 1): `n + 1` records.
fn log_of(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::demo_in(dir.path(), &[]);
    let functions = ["vat_filing", "cit_filing", "invoice_issue", "tax_payment"];
    let mut left = n;
    while left > 0 {
        let k = left.min(100);
        let requests: Vec<Value> = (0..k)
            .map(|i| {
                json!({
                    "principal": CLERK,
                    "action": "Action::\"useFunction\"",
                    "resource": format!("Function::\"{}\"", functions[i % 4]),
                })
            })
            .collect();
        let (status, body) = s.post("/v1/authorize/batch", &json!({ "requests": requests }));
        assert_eq!(status, 200, "{body}");
        left -= k;
    }
    s.stop();
    dir
}

fn verify(data: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "audit",
        "verify",
        "--json",
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = cli(&args);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, report)
}

fn only_segment(data: &Path) -> PathBuf {
    let dir = decision_log_path(data);
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg-"))
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs.pop().unwrap()
}

/// The block frames of a segment: (offset, total length, header). Blocks
/// hold at least 1,024 records (more when one group commit crosses it).
fn blocks(bytes: &[u8]) -> Vec<(usize, usize, BlockHeader)> {
    let mut out = Vec::new();
    for item in frame::frames(bytes) {
        match item {
            Item::Frame { at, kind, payload } if kind == Kind::Block as u8 => out.push((
                at,
                HEADER + payload.len(),
                BlockHeader::parse(payload).unwrap(),
            )),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

#[test]
fn a_clean_log_verifies_and_stays_closed_cleanly() {
    let dir = log_of(30);
    let log = decision_log_path(dir.path());
    assert!(
        log.join("head.json").is_file(),
        "SIGTERM leaves the clean-close head"
    );
    let (code, report) = verify(dir.path(), &[]);
    assert_eq!((code, &report["verdict"]), (OK, &json!("ok")), "{report}");
    assert_eq!(report["records"], 31);
    // A command that opens the writer closes the log cleanly again.
    let (code, _, err) = cli(&["audit", "export", "--data", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(log.join("head.json").is_file(), "the CLI closes cleanly");
}

#[test]
fn a_flipped_byte_in_a_block_is_corruption_named_by_record() {
    let dir = log_of(2100);
    let seg = only_segment(dir.path());
    let bytes = std::fs::read(&seg).unwrap();
    let frames = blocks(&bytes);
    assert!(frames.len() >= 2, "{frames:?}");

    // A byte of a record in the middle of the second block changes; the
    // block's checksum is not rewritten (as a disk or a careless hand
    // would leave it).
    let (at, len, header) = frames[1];
    let target = header.first_seq + u64::from(header.count) / 2;
    let old_crc = bytes[at + 9..at + 13].to_vec();
    let (_, mut records) = stored::decode_block(&bytes[at + HEADER..at + len]).unwrap();
    let r = &mut records[(target - header.first_seq) as usize];
    let pos = find(&r.canonical, b"\"decision\":\"allow\"").unwrap() + 13;
    r.canonical[pos] = b'x';
    let mut block = frame::encode(Kind::Block, &stored::encode_block(&records));
    block[9..13].copy_from_slice(&old_crc);
    let damaged = [&bytes[..at], &block, &bytes[at + len..]].concat();
    std::fs::write(&seg, damaged).unwrap();

    let (code, report) = verify(dir.path(), &[]);
    assert_eq!(code, UNREADABLE, "{report}");
    let p = &report["problem"];
    assert_eq!(
        (&p["kind"], &p["seq"]),
        (&json!("corrupted"), &json!(target)),
        "{report}"
    );
    assert!(p["time"].as_str().unwrap().starts_with("20"), "{report}");
    assert_eq!(report["last_verified"]["seq"], target - 1);
    // Every other record still verifies: the damage is one record.
    assert_eq!(report["records"], 2100, "{report}");

    // A read does not serve the damaged block as if it were whole (the
    // second red-team round exported a block that failed its checksum but
    // still decompressed, with records altered and missing).
    let (code, out, err) = cli(&["audit", "export", "--data", dir.path().to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("decision_log_unreadable"), "{err}");
    assert!(
        !out.contains(&format!("\"seq\":{},", target + 1)),
        "served past the damage"
    );

    // The text report says the same.
    let (code, out, _) = cli(&["audit", "verify", "--data", dir.path().to_str().unwrap()]);
    assert_eq!(code, UNREADABLE);
    assert!(
        out.contains(&format!(
            "UNREADABLE: record {target} CORRUPTED (written 20"
        )),
        "{out}"
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn an_undecodable_block_names_its_first_record_and_the_rest_is_salvaged() {
    let dir = log_of(3000);
    let seg = only_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let frames = blocks(&bytes);
    assert!(frames.len() >= 3, "{frames:?}");
    // Zero the middle block's compressed body: no record in it can be read.
    let (at, len, lost) = frames[1];
    for b in &mut bytes[at + HEADER + stored::BLOCK_HEADER..at + len] {
        *b = 0;
    }
    std::fs::write(&seg, &bytes).unwrap();
    let (code, report) = verify(dir.path(), &[]);
    assert_eq!(code, UNREADABLE, "{report}");
    let p = &report["problem"];
    assert_eq!(
        (&p["kind"], &p["seq"]),
        (&json!("unreadable"), &json!(lost.first_seq)),
        "{report}"
    );
    // The time is the last good record's.
    assert_eq!(p["time"], report["last_verified"]["time"], "{report}");
    assert_eq!(report["last_verified"]["seq"], lost.first_seq - 1);
    let salvaged = 3001 - u64::from(lost.count);
    assert_eq!(
        report["records"], salvaged,
        "the blocks after it are salvaged"
    );

    // Garbage over a frame's start: the walk resynchronizes on the next one.
    let dir = log_of(3000);
    let seg = only_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let (at, _, lost) = blocks(&bytes)[1];
    bytes[at..at + 8].copy_from_slice(b"garbage!");
    std::fs::write(&seg, &bytes).unwrap();
    let (code, report) = verify(dir.path(), &[]);
    assert_eq!(code, UNREADABLE, "{report}");
    assert_eq!(report["problem"]["seq"], lost.first_seq, "{report}");
    assert_eq!(report["records"], 3001 - u64::from(lost.count), "{report}");
}

#[test]
fn truncation_is_named_whether_mid_frame_or_at_a_frame_boundary() {
    let original = log_of(2100);
    let seg = only_segment(original.path());
    let bytes = std::fs::read(&seg).unwrap();
    let frames = blocks(&bytes);

    // Cut inside the last block: storage cut short, the head says 2100.
    let mid = copy_data(original.path());
    let (at, len, last) = *frames.last().unwrap();
    std::fs::write(only_segment(mid.path()), &bytes[..at + len / 2]).unwrap();
    let (code, report) = verify(mid.path(), &[]);
    assert_eq!(code, UNREADABLE, "{report}");
    assert_eq!(report["problem"]["seq"], last.first_seq, "{report}");
    assert_eq!(report["last_verified"]["seq"], last.first_seq - 1);

    // Cut exactly before the last block: only the clean-close head shows it.
    let cut = copy_data(original.path());
    std::fs::write(only_segment(cut.path()), &bytes[..at]).unwrap();
    let (code, report) = verify(cut.path(), &[]);
    assert_eq!(code, TAMPERED, "{report}");
    let p = &report["problem"];
    assert_eq!(
        (&p["kind"], &p["seq"]),
        (&json!("removed"), &json!(2049)),
        "{report}"
    );

    // Head removed as well: a checkpoint kept elsewhere still shows it.
    let (_, head) = verify(original.path(), &[]);
    let head = head["head"].to_string();
    std::fs::remove_file(decision_log_path(cut.path()).join("head.json")).unwrap();
    let (code, report) = verify(cut.path(), &["--checkpoint", &head]);
    assert_eq!(code, TAMPERED, "{report}");
    assert_eq!(report["checkpoint"]["extended"], false, "{report}");
}

/// Re-seals records `from..` so each links to the one before, renumbered.
fn relink(records: &mut [Stored], from: usize) {
    for i in from..records.len() {
        let prev = if i == 0 { [0; 32] } else { records[i - 1].hash };
        let seq = i as u64 + 1;
        let mut r: DecisionRecord = serde_json::from_slice(&records[i].line()).unwrap();
        r.seq = seq;
        r.prev_hash = hex::encode(prev);
        r.hash.clear();
        records[i].canonical = etax_authz::audit::chain::canonical_bytes(&r);
        records[i].seq = seq;
        records[i].prev = prev;
        records[i].hash = ChainHash::Sha256.digest(&records[i].canonical);
    }
}

#[test]
fn a_record_removed_and_the_chain_relinked_is_caught_by_a_kept_checkpoint() {
    let dir = log_of(10);
    let data = dir.path().to_str().unwrap();
    // The auditor keeps the head at this moment, elsewhere.
    let (code, kept, err) = cli(&["audit", "checkpoint", "--data", data]);
    assert_eq!(code, 0, "{err}");
    let kept_file = dir.path().join("kept-checkpoint.json");
    std::fs::write(&kept_file, &kept).unwrap();
    let kept: Value = serde_json::from_str(kept.trim()).unwrap();
    assert_eq!(kept["seq"], 11);
    // The log goes on.
    let s = Server::demo_in(dir.path(), &[]);
    s.get("/v1/audit/checkpoint");
    s.stop();

    // Record 4 goes; everything after is renumbered and re-hashed, the
    // head rewritten to match: the chain alone is consistent.
    rewrite_log(dir.path(), |rs| {
        rs.remove(3);
        relink(rs, 3);
    });
    let (_, relinked) = verify(dir.path(), &[]);
    let last = relinked["last_verified"].clone();
    std::fs::write(
        decision_log_path(dir.path()).join("head.json"),
        last.to_string(),
    )
    .unwrap();
    let (code, report) = verify(dir.path(), &[]);
    assert_eq!(code, OK, "the chain alone cannot see it: {report}");

    let (code, report) = verify(dir.path(), &["--checkpoint", kept_file.to_str().unwrap()]);
    assert_eq!(code, TAMPERED, "{report}");
    assert_eq!(report["verdict"], "tampered");
    assert_eq!(report["checkpoint"]["extended"], false);
    assert!(
        report["checkpoint"]["detail"]
            .as_str()
            .unwrap()
            .contains("removed"),
        "{report}"
    );
}

#[test]
fn after_a_crash_the_torn_end_is_cut_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::demo_in(dir.path(), &[]);
    // Audit reads are committed (durable) before their answers.
    for _ in 0..5 {
        s.get("/v1/audit/checkpoint");
    }
    s.kill();
    let log = decision_log_path(dir.path());
    assert!(
        !log.join("head.json").exists(),
        "a crash leaves no clean head"
    );
    // A write the crash cut: half a frame at the journal's end.
    let journal = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("journal-")
        })
        .unwrap();
    let mut torn = frame::encode(Kind::Record, &[7u8; 200]);
    torn.truncate(90);
    let mut bytes = std::fs::read(&journal).unwrap();
    let records_before = frame::frames(&bytes).count();
    assert!(records_before >= 5, "{records_before}");
    bytes.extend(&torn);
    std::fs::write(&journal, &bytes).unwrap();
    // Read-only verify: the unfinished write is noted, not reported.
    let (code, report) = verify(dir.path(), &[]);
    assert_eq!(code, OK, "{report}");
    assert!(report["crash_tail"].as_str().is_some(), "{report}");
    // The next open cuts it (keeping the bytes aside) and appends after.
    let s = Server::demo_in(dir.path(), &[]);
    let (status, _) = s.get("/v1/audit/checkpoint");
    assert_eq!(status, 200);
    s.stop();
    assert!(log.join("torn").is_dir());
    let (code, report) = verify(dir.path(), &[]);
    assert_eq!(code, OK, "{report}");
    assert_eq!(
        report["records"].as_u64().unwrap() as usize,
        records_before + 2,
        "the restart's policy.load and the read"
    );
}

/// The segment's bytes with block `index`'s header changed by `edit` and its
/// frame checksum recomputed: what someone who knows the format writes.
fn rewrite_header(data: &Path, index: usize, edit: impl FnOnce(&mut [u8])) {
    let seg = only_segment(data);
    let bytes = std::fs::read(&seg).unwrap();
    let (at, len, _) = blocks(&bytes)[index];
    let mut payload = bytes[at + HEADER..at + len].to_vec();
    edit(&mut payload[..stored::BLOCK_HEADER]);
    let block = frame::encode(Kind::Block, &payload);
    std::fs::write(&seg, [&bytes[..at], &block, &bytes[at + len..]].concat()).unwrap();
}

fn problems(report: &Value) -> String {
    report["problems"].to_string()
}

/// C1: an insider removes blocks 1–2 and appends a correctly chained anchor
/// claiming retention pruned them. Its `last_record` must prove what it
/// pruned, and the minimum retention (180 days) refuses recent records.
#[test]
fn a_forged_anchor_over_recent_records_is_tampering() {
    let original = log_of(2100);
    let (_, report) = verify(original.path(), &[]);
    let kept = report["head"].to_string();
    for with_line in [false, true] {
        let dir = copy_data(original.path());
        forge_anchor(dir.path(), with_line);
        let (code, report) = verify(dir.path(), &["--checkpoint", &kept]);
        if with_line {
            assert_eq!(code, TAMPERED, "{report}");
            assert!(problems(&report).contains("retention"), "{report}");
            // Only with no minimum is such a cut legitimate.
            let (code, report) = verify(
                dir.path(),
                &["--checkpoint", &kept, "--min-retention-days", "0"],
            );
            assert_eq!(code, OK, "{report}");
        } else {
            // An anchor without the pruned record cannot show the removal
            // was a retention prune: anyone can write one over a deleted
            // prefix, so it fails the log (second red-team round).
            assert_eq!(code, TAMPERED, "{report}");
            assert!(
                report["problem"]["detail"]
                    .to_string()
                    .contains("unverifiable anchor"),
                "{report}"
            );
        }
    }
}

/// Keeps only the third block, then appends an anchor (as the next record,
/// in the journal) naming the last record of the second block.
fn forge_anchor(data: &Path, with_line: bool) {
    let log = decision_log_path(data);
    let seg = only_segment(data);
    let bytes = std::fs::read(&seg).unwrap();
    let frames = blocks(&bytes);
    assert_eq!(frames.len(), 3, "{frames:?}");
    let decode = |i: usize| {
        let (at, len, _) = frames[i];
        stored::decode_block(&bytes[at + HEADER..at + len])
            .unwrap()
            .1
    };
    let pruned = decode(1).pop().unwrap();
    let last = decode(2).pop().unwrap();
    let (at, len, _) = frames[2];
    std::fs::write(&seg, &bytes[at..at + len]).unwrap();
    let mut range = json!({
        "first_seq": 1,
        "last_seq": pruned.seq,
        "last_hash": pruned.hash_hex(),
    });
    if with_line {
        range["last_record"] = json!(String::from_utf8(pruned.canonical.clone()).unwrap());
    }
    let mut a: DecisionRecord = serde_json::from_slice(&last.line()).unwrap();
    a.kind = "anchor".to_owned();
    a.action = "audit.prune".to_owned();
    a.seq = last.seq + 1;
    a.timestamp_ms = last.timestamp_ms + 1;
    a.prev_hash = last.hash_hex();
    a.pruned = Some(serde_json::from_value(range).unwrap());
    a.hash.clear();
    let canonical = etax_authz::audit::chain::canonical_bytes(&a);
    let s = Stored {
        seq: a.seq,
        timestamp_ms: a.timestamp_ms,
        prev: last.hash,
        hash: ChainHash::Sha256.digest(&canonical),
        canonical,
        links: true,
    };
    for entry in std::fs::read_dir(&log).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("journal-")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    std::fs::write(
        etax_authz::audit::segment::journal_path(&log, s.seq),
        frame::encode(Kind::Record, &s.encode_raw()),
    )
    .unwrap();
    let head = json!({"seq": s.seq, "hash": s.hash_hex(), "timestamp_ms": s.timestamp_ms});
    std::fs::write(log.join("head.json"), head.to_string()).unwrap();
}

/// C2: a block header's times rewritten (checksum fixed) are tampering, and
/// retention decides from the records' own times.
#[test]
fn rewritten_block_header_times_are_tampering_and_do_not_drive_retention() {
    let dir = log_of(2100);
    rewrite_header(dir.path(), 0, |h| {
        h[12..20].copy_from_slice(&0u64.to_le_bytes());
        h[20..28].copy_from_slice(&1u64.to_le_bytes());
    });
    let (code, report) = verify(dir.path(), &[]);
    assert_eq!(code, TAMPERED, "{report}");
    assert_eq!(report["problem"]["seq"], 1, "{report}");
    let data = dir.path().to_str().unwrap();
    let (_, out, err) = cli(&[
        "audit",
        "prune",
        "--data",
        data,
        "--before",
        "2001-01-01",
        "--min-retention-days",
        "0",
    ]);
    assert!(!out.contains("pruned records"), "{out}{err}");
}

/// H3: a block header's first sequence number rewritten is tampering, and
/// the writer continues from the records' own numbers.
#[test]
fn a_rewritten_block_first_seq_is_tampering_and_not_followed_by_the_writer() {
    let dir = log_of(2100);
    rewrite_header(dir.path(), 2, |h| {
        h[0..8].copy_from_slice(&5000u64.to_le_bytes());
    });
    let (code, report) = verify(dir.path(), &[]);
    assert_eq!(code, TAMPERED, "{report}");
    assert_eq!(report["problem"]["seq"], 2049, "{report}");
    let data = dir.path().to_str().unwrap();
    // The read is recorded first; the export then stops at the rewritten
    // block rather than follow its header.
    let (code, _, err) = cli(&["audit", "export", "--data", data]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("decision_log_unreadable"), "{err}");
    let (_, report) = verify(dir.path(), &[]);
    assert_eq!(
        report["head"]["seq"], 2102,
        "the read is record 2102: {report}"
    );
}

/// H1/H2: a log whose files end before (or differ from) the clean-close
/// head is not opened for writing: no sequence number reused, the head kept.
#[test]
fn opening_a_log_that_disagrees_with_its_head_is_refused() {
    let original = log_of(2100);
    let seg = only_segment(original.path());
    let bytes = std::fs::read(&seg).unwrap();
    let (at, _, _) = *blocks(&bytes).last().unwrap();
    // Cut at a block boundary: records 2049.. gone, head.json says 2101.
    let cut = copy_data(original.path());
    std::fs::write(only_segment(cut.path()), &bytes[..at]).unwrap();
    let head = decision_log_path(cut.path()).join("head.json");
    let before = std::fs::read(&head).unwrap();
    let (code, _, err) = cli(&["audit", "export", "--data", cut.path().to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("2101") && err.contains("2048"), "{err}");
    assert_eq!(std::fs::read(&head).unwrap(), before, "head.json kept");
    // A forged head hash: the same seq, another hash.
    let forged = copy_data(original.path());
    let head = decision_log_path(forged.path()).join("head.json");
    let mut h: Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    h["hash"] = json!("ab".repeat(32));
    std::fs::write(&head, h.to_string()).unwrap();
    let (code, _, err) = cli(&["audit", "export", "--data", forged.path().to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains(&"ab".repeat(32)), "{err}");
}

/// M3: a block damaged under a running server: reads fail rather than
/// answer part of the log as if it were all of it; verify answers its
/// verdict.
#[test]
fn reads_of_a_log_damaged_under_a_running_server_fail_instead_of_answering_partially() {
    use std::os::unix::fs::FileExt;
    let dir = log_of(2100);
    let s = Server::demo_in(dir.path(), &[]);
    let seg = only_segment(dir.path());
    let bytes = std::fs::read(&seg).unwrap();
    let (at, len, lost) = blocks(&bytes)[1];
    let zeros = vec![0u8; len - HEADER - stored::BLOCK_HEADER];
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&zeros, (at + HEADER + stored::BLOCK_HEADER) as u64)
        .unwrap();
    drop(f);
    let exported = common::try_http_with(s.addr, "GET", "/v1/audit/export", &[], None);
    if let Ok((status, body)) = &exported {
        let after = format!("\"seq\":{},", lost.first_seq + u64::from(lost.count) + 1);
        assert!(
            *status != 200 || !body.contains(&after),
            "a complete-looking export: {status}"
        );
    }
    let (status, body) = s.get("/v1/audit/summary?by=decision");
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "decision_log_unreadable", "{body}");
    // A page that reaches the damage answers so, instead of skipping it.
    let (status, body) = s.get(&format!(
        "/v1/audit/decisions?after={}&limit=10",
        lost.first_seq - 1
    ));
    assert_eq!(
        (status, &body["error"]["code"]),
        (500, &json!("decision_log_unreadable"))
    );
    let (status, report) = s.get("/v1/audit/verify");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["verdict"], "unreadable", "{report}");
    s.stop();
}

/// Low: what verify cannot check is said (a garbage or missing head.json,
/// a deleted log.json), a switched chain hash setting is named as such, and
/// a checkpoint older than a legitimate prune is "no longer provable".
#[test]
fn verify_says_what_it_cannot_check_and_names_a_switched_chain_hash() {
    let original = log_of(10);
    let warnings = |dir: &Path| {
        let (code, report) = verify(dir, &[]);
        (code, report["warnings"].to_string())
    };
    let d = copy_data(original.path());
    let log = decision_log_path(d.path());
    std::fs::write(log.join("head.json"), "garbage").unwrap();
    let (code, w) = warnings(d.path());
    assert!(code == OK && w.contains("head.json is not a head"), "{w}");
    std::fs::remove_file(log.join("head.json")).unwrap();
    let (code, w) = warnings(d.path());
    assert!(code == OK && w.contains("no head.json"), "{w}");
    std::fs::remove_file(log.join("log.json")).unwrap();
    let (_, w) = warnings(d.path());
    assert!(w.contains("log.json is missing"), "{w}");
    assert!(!log.join("log.json").exists(), "verify changes nothing");

    let d = copy_data(original.path());
    let meta = decision_log_path(d.path()).join("log.json");
    std::fs::write(&meta, r#"{"format":1,"chain_hash":"sm3"}"#).unwrap();
    let (code, report) = verify(d.path(), &[]);
    assert_eq!(code, TAMPERED, "{report}");
    assert!(
        report["problem"]["detail"]
            .as_str()
            .unwrap()
            .contains("chain hash setting does not match the records"),
        "{report}"
    );

    // A checkpoint whose record retention pruned (legitimately) can no
    // longer be proven: said, not called tampering.
    let d = copy_data(original.path());
    let data = d.path().to_str().unwrap();
    let (_, report) = verify(d.path(), &[]);
    let old = format!("5:{}", "0".repeat(64));
    let (code, out, err) = common::prune_everything(data);
    assert_eq!(code, 0, "{out}{err}");
    let (code, report2) = verify(
        d.path(),
        &["--checkpoint", &old, "--min-retention-days", "0"],
    );
    assert_eq!(code, OK, "{report2} (before: {report})");
    assert!(
        report2["checkpoint"]["detail"]
            .as_str()
            .unwrap()
            .contains("can no longer be proven"),
        "{report2}"
    );
}

/// H1/H2, going on: `serve --accept-damaged-log` keeps the evidence (the
/// files moved aside), starts a new segment whose first record names what
/// was found, and never reuses a sequence number.
#[test]
fn accepting_a_damaged_log_keeps_the_evidence_and_reuses_no_seq() {
    let dir = log_of(2100);
    let seg = only_segment(dir.path());
    let bytes = std::fs::read(&seg).unwrap();
    let (at, _, _) = *blocks(&bytes).last().unwrap();
    std::fs::write(&seg, &bytes[..at]).unwrap();
    let s = Server::demo_in(dir.path(), &["--accept-damaged-log"]);
    s.stop();
    let log = decision_log_path(dir.path());
    let aside: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("damaged-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].join("head.json").is_file());
    // The accepted damage stays visible: the new log starts with an anchor
    // that cannot show its prefix was pruned, so verify keeps failing it.
    let (code, report) = verify(dir.path(), &[]);
    assert_eq!(code, TAMPERED, "{report}");
    assert_eq!(
        report["first_seq"], 2102,
        "after head.json's 2101: {report}"
    );
    let (code, out, err) = cli(&["audit", "export", "--data", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "log.damage", "{first}");
}

/// M3: a segment cut under a running server: `GET /v1/audit/verify`
/// answers its verdict instead of failing to read the file.
#[test]
fn verify_over_http_of_a_segment_cut_under_the_server_answers_a_verdict() {
    let dir = log_of(2100);
    let s = Server::demo_in(dir.path(), &[]);
    let seg = only_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let (status, report) = s.get("/v1/audit/verify");
    assert_eq!(status, 200, "{report}");
    assert_ne!(report["verdict"], "ok", "{report}");
    s.stop();
}

/// A log restarted after record N (here by `--accept-damaged-log`; retention
/// does the same) that crashes before its first block still opens: its
/// journal starts it.
#[test]
fn a_restarted_log_that_crashes_before_its_first_block_opens_again() {
    let dir = log_of(10);
    let head = decision_log_path(dir.path()).join("head.json");
    let mut h: Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    h["hash"] = json!("ab".repeat(32));
    std::fs::write(&head, h.to_string()).unwrap();
    let mut s = Server::demo_in(dir.path(), &["--accept-damaged-log"]);
    s.kill();
    let (code, _, err) = cli(&["audit", "export", "--data", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, report) = verify(dir.path(), &[]);
    assert_eq!(
        code, TAMPERED,
        "the accepted damage stays visible: {report}"
    );
    assert_eq!(report["first_seq"], 12, "{report}");
    assert_eq!(report["records"], 3, "{report}");
}

/// A head.json forged to name a sequence number no log reaches (the second
/// red-team round overflowed the next one with u64::MAX) is refused before
/// anything is moved aside, even with --accept-damaged-log.
#[test]
fn an_implausible_head_is_refused_before_anything_moves() {
    let dir = log_of(10);
    let head = decision_log_path(dir.path()).join("head.json");
    let mut h: Value = serde_json::from_str(&std::fs::read_to_string(&head).unwrap()).unwrap();
    h["seq"] = json!(u64::MAX);
    std::fs::write(&head, h.to_string()).unwrap();
    let data = dir.path().to_str().unwrap();
    match try_serve(&[
        "--demo",
        "--data",
        data,
        "--listen",
        "127.0.0.1:0",
        "--accept-damaged-log",
    ]) {
        ServeAttempt::Exited(code, err) => {
            assert_ne!(code, 0, "{err}");
            assert!(err.contains("no log reaches"), "{err}");
        }
        ServeAttempt::Listening(s) => {
            s.stop();
            panic!("a forged head was accepted");
        }
    }
    let moved = std::fs::read_dir(decision_log_path(dir.path()))
        .unwrap()
        .any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("damaged-")
        });
    assert!(!moved, "evidence moved for a refused head");
}
