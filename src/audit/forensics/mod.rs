//! `audit verify`: walks every frame of every file of a snapshot, oldest
//! first, and names the first record whose content or chain is wrong, by
//! sequence number and time.
//!
//! A frame whose CRC fails is **corruption** (bytes changed, checksum not
//! rewritten): a block is still decompressed if it can be, and each record
//! checked against its hash, to name the exact record; if it cannot, the
//! block's first record is named (the one after the last good record) with
//! the last good record's time. A frame whose CRC holds but whose records do
//! not match their hashes or do not chain is **tampering**. After damage the
//! walk resynchronizes on the next frame and goes on, so it salvages what
//! can still be read and verified.

use super::chain::{Checkpoint, Problem, TamperKind, Verdict, VerifyReport};
use super::digest::ChainHash;
use super::frame::{self, Item, Kind};
use super::record::PrunedRange;
use super::scan::Snapshot;
use super::stored::{self, Stored};
use super::{time, AuditError, DecisionRecord};

mod bounds;

/// Findings kept beyond the first, so a badly damaged log still gives a
/// bounded report.
const MAX_PROBLEMS: usize = 100;

/// Clock skew tolerated between the writer and the verifier.
const SKEW_MS: u64 = 5 * 60 * 1000;

/// What anchors are held to.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// An anchor may only have pruned records at least this old, measured
    /// from the anchor's own time.
    pub min_retention_ms: u64,
    /// The verifier's clock: an anchor dated after it (beyond [`SKEW_MS`])
    /// is forged.
    pub now_ms: u64,
}

impl Rules {
    pub fn now(min_retention_days: u64) -> Self {
        Self {
            min_retention_ms: min_retention_days.saturating_mul(86_400_000),
            now_ms: crate::now_ms(),
        }
    }
}

/// The last record the walk passed.
#[derive(Clone, Copy)]
struct Prev {
    seq: u64,
    hash: [u8; 32],
    timestamp_ms: u64,
}

struct Walk<'a> {
    chain_hash: ChainHash,
    rules: Rules,
    checkpoint: Option<&'a Checkpoint>,
    report: VerifyReport,
    prev: Option<Prev>,
    /// The first record walked and the hash it links to.
    first: Option<(u64, [u8; 32])>,
    /// False right after damage: the next record's seq and link cannot be
    /// compared with a predecessor that was lost.
    linked: bool,
    anchor: Option<PrunedRange>,
    at_checkpoint: Option<String>,
}

/// Verifies the log as of `snap`; with `checkpoint`, also proves the log
/// still extends it.
pub fn verify(
    snap: &Snapshot,
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifyReport, AuditError> {
    verify_with(snap, checkpoint, &Rules::now(super::MIN_RETENTION_DAYS))
}

/// [`verify`] of the log this process holds open and is writing
/// (`AuditLog::verify`: `/v1/audit/verify`, the console's verify view). A
/// log being written has no `head.json` until it closes: that is no
/// warning, the report says it is live and how far it was verified.
pub fn verify_open(
    snap: &Snapshot,
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifyReport, AuditError> {
    let mut report = verify(snap, checkpoint)?;
    // The layout read at open says so of every log the server opened.
    report.warnings.retain(|w| w != super::segment::NO_HEAD);
    let through = match &report.last_verified {
        Some(last) => format!("record {}, the last one written", last.seq),
        None => "its start: no record is written yet".to_owned(),
    };
    report.live = Some(format!(
        "live log: open and being written by this server, so it has no head.json until it \
         closes; verified up to {through}"
    ));
    Ok(report)
}

/// [`verify`] with anchors held to `rules`.
pub fn verify_with(
    snap: &Snapshot,
    checkpoint: Option<&Checkpoint>,
    rules: &Rules,
) -> Result<VerifyReport, AuditError> {
    let mut walk = Walk::new(snap.chain_hash, snap.layout.head.clone(), checkpoint, rules);
    // Without a head (a crash, not reopened since), the end of the tail
    // segment and of the journal may hold the write the crash interrupted:
    // never acknowledged, so not damage. The next open cuts it.
    let crashed = snap.layout.head.is_none();
    let n = snap.layout.segments.len();
    for (i, seg) in snap.layout.segments.iter().enumerate() {
        let file = &snap.segments[&seg.id];
        let bytes = super::segment::read_upto(file, seg.len).map_err(|e| AuditError::Io {
            path: seg.path.display().to_string(),
            source: e,
        })?;
        let bytes = walk.without_crash_tail(&bytes, crashed && i + 1 == n);
        walk.file(bytes, &seg.path.display().to_string(), false);
    }
    let n = snap.journals.len();
    for (i, (j, file)) in snap.journals.iter().enumerate() {
        let bytes = super::segment::read_upto(file, j.len).map_err(|e| AuditError::Io {
            path: j.path.display().to_string(),
            source: e,
        })?;
        let bytes = walk.without_crash_tail(&bytes, crashed && i + 1 == n);
        walk.file(bytes, &j.path.display().to_string(), true);
    }
    walk.report
        .warnings
        .extend(snap.layout.warnings.iter().cloned());
    Ok(walk.conclude())
}

/// Verifies records read from somewhere other than the log's files (the
/// fleet's table of shipped records, `fleet::log`), oldest first, by the
/// same walk: each record against its hash and its predecessor, the prefix
/// against its anchor, and `checkpoint`. There are no frames, so a stored
/// position, time or previous hash that disagrees with the record's own is
/// a rewrite (`Altered`).
pub fn verify_stored(
    chain_hash: ChainHash,
    records: impl IntoIterator<Item = Stored>,
    checkpoint: Option<&Checkpoint>,
    rules: &Rules,
) -> VerifyReport {
    let mut walk = Walk::new(chain_hash, None, checkpoint, rules);
    for r in records {
        if let Some(d) = stored::record_disagreement(&r).or_else(|| prev_disagreement(&r)) {
            walk.found(TamperKind::Altered, r.seq, Some(r.timestamp_ms), d);
        }
        walk.record(&r, false);
    }
    walk.conclude()
}

/// The previous hash stored beside a record, against the one inside it.
fn prev_disagreement(r: &Stored) -> Option<String> {
    let own = serde_json::from_slice::<DecisionRecord>(&r.canonical).ok()?;
    (own.prev_hash != hex::encode(r.prev)).then(|| {
        format!(
            "record {} is stored as linking to {} but says it links to {}",
            own.seq,
            hex::encode(r.prev),
            own.prev_hash
        )
    })
}

impl<'a> Walk<'a> {
    fn new(
        chain_hash: ChainHash,
        head: Option<Checkpoint>,
        checkpoint: Option<&'a Checkpoint>,
        rules: &Rules,
    ) -> Self {
        Walk {
            chain_hash,
            rules: *rules,
            checkpoint,
            report: VerifyReport {
                ok: false,
                verdict: Verdict::Ok,
                chain_hash,
                records: 0,
                first_seq: None,
                head,
                problem: None,
                problems: Vec::new(),
                last_verified: None,
                checkpoint: None,
                warnings: Vec::new(),
                crash_tail: None,
                live: None,
            },
            prev: None,
            first: None,
            linked: true,
            anchor: None,
            at_checkpoint: None,
        }
    }

    /// What the records walked prove of the log as a whole, and the verdict.
    fn conclude(mut self) -> VerifyReport {
        self.prefix();
        self.head();
        self.checkpoint();
        self.finish()
    }
}

impl Walk<'_> {
    /// `bytes` without a final frame a crash cut off, if `tail` (noted in
    /// the report).
    fn without_crash_tail<'b>(&mut self, bytes: &'b [u8], tail: bool) -> &'b [u8] {
        if !tail {
            return bytes;
        }
        let cut = match frame::frames(bytes).last() {
            Some(Item::Torn { at }) => at,
            Some(Item::Garbage { at, end }) if end == bytes.len() => at,
            Some(Item::Damaged { at, .. }) => at,
            _ => return bytes,
        };
        self.report.crash_tail = Some(format!(
            "{} bytes at the end were being written when the process stopped (not acknowledged; cut at the next open)",
            bytes.len() - cut
        ));
        &bytes[..cut]
    }

    fn time_of(&self, ms: Option<u64>) -> Option<String> {
        ms.or(self.prev.map(|p| p.timestamp_ms))
            .map(time::format_utc)
    }

    fn found(&mut self, kind: TamperKind, seq: u64, ms: Option<u64>, detail: String) {
        let p = Problem {
            kind,
            seq,
            time: self.time_of(ms),
            detail,
        };
        if self.report.problem.is_none() {
            self.report.problem = Some(p.clone());
        }
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(p);
        }
    }

    /// The sequence number of the record after the last one passed.
    fn next_seq(&self) -> u64 {
        self.prev
            .map_or(self.report.first_seq.unwrap_or(1), |p| p.seq + 1)
    }

    /// Storage that cannot be decoded: the records in it are lost.
    fn lost(&mut self, what: String) {
        let seq = self.next_seq();
        let last = self
            .prev
            .map(|p| format!("; the last record verified before it is {}", p.seq))
            .unwrap_or_default();
        self.found(TamperKind::Unreadable, seq, None, format!("{what}{last}"));
        self.linked = false;
    }

    fn file(&mut self, bytes: &[u8], name: &str, journal: bool) {
        for item in frame::frames(bytes) {
            match item {
                Item::Frame { kind, payload, at } => {
                    self.frame(kind, payload, false, name, at, journal)
                }
                Item::Damaged { kind, payload, at } => {
                    self.frame(kind, payload, true, name, at, journal)
                }
                Item::Garbage { at, end } => self.lost(format!(
                    "{name}: bytes {at}..{end} are no frame (resynchronized after them)"
                )),
                Item::Torn { at } => self.lost(format!(
                    "{name}: the file ends inside a frame at byte {at} (a write cut off)"
                )),
            }
        }
    }

    fn frame(
        &mut self,
        kind: u8,
        payload: &[u8],
        damaged: bool,
        name: &str,
        at: usize,
        journal: bool,
    ) {
        let crc = if damaged {
            "checksum mismatch"
        } else {
            "checksum intact"
        };
        match Kind::from_byte(kind) {
            Some(Kind::Block) => match stored::decode_block(payload) {
                Ok((header, records)) => {
                    if !damaged {
                        self.header(&header, &records, name, at);
                    }
                    let before = self.report.problems.len();
                    for r in &records {
                        self.record(r, damaged);
                    }
                    if damaged && self.report.problems.len() == before {
                        self.found(
                            TamperKind::Corrupted,
                            header.first_seq,
                            Some(header.min_ms),
                            format!("{name}: the block at byte {at} fails its checksum, but each of its records matches its hash (its index fields changed)"),
                        );
                    }
                    if damaged {
                        self.linked = false;
                    }
                }
                Err(e) if damaged => self.lost(format!(
                    "{name}: the block at byte {at} is corrupted ({crc}) and cannot be decoded: {e}"
                )),
                Err(e) => {
                    let seq = self.next_seq();
                    self.found(TamperKind::Altered, seq, None, format!(
                        "{name}: the block at byte {at} was rewritten ({crc}) and cannot be decoded: {e}"
                    ));
                    self.linked = false;
                }
            },
            Some(Kind::Record) => match Stored::decode_raw(payload) {
                // A journal record already sealed into a block.
                Ok(r) if journal && self.prev.is_some_and(|p| r.seq <= p.seq) => {}
                Ok(r) => {
                    if let Some(d) = stored::record_disagreement(&r).filter(|_| !damaged) {
                        let seq = stored::own_seq_time(&r.canonical).map_or(r.seq, |o| o.0);
                        self.found(
                            TamperKind::Altered,
                            seq,
                            Some(r.timestamp_ms),
                            format!("{name}: the record at byte {at} was rewritten ({crc}): {d}"),
                        );
                    }
                    self.record(&r, damaged)
                }
                Err(e) => self.lost(format!(
                    "{name}: the record at byte {at} cannot be decoded ({crc}): {e}"
                )),
            },
            None => self.lost(format!(
                "{name}: the frame at byte {at} is of unknown kind {kind} ({crc})"
            )),
        }
    }

    /// A block's header and its records' stored positions and times must be
    /// what the records say: readers and retention go by them.
    fn header(&mut self, header: &stored::BlockHeader, records: &[Stored], name: &str, at: usize) {
        let Some(d) = stored::block_disagreement(header, records) else {
            return;
        };
        let (seq, ms) = records
            .first()
            .and_then(|r| stored::own_seq_time(&r.canonical).ok())
            .map_or((self.next_seq(), None), |(s, t)| (s, Some(t)));
        self.found(
            TamperKind::Altered,
            seq,
            ms,
            format!("{name}: the block at byte {at} was rewritten (checksum intact): {d}"),
        );
    }

    /// Checks one record against its predecessor and its hash. Its own
    /// `seq` (covered by the hash) is what counts, not its position.
    fn record(&mut self, r: &Stored, damaged: bool) {
        let content = if damaged {
            TamperKind::Corrupted
        } else {
            TamperKind::Altered
        };
        let how = if damaged {
            "its bytes changed (the frame fails its checksum)"
        } else {
            "rewritten with a valid checksum"
        };
        // Inside a frame failing its CRC every finding is corruption.
        let chain = |k| if damaged { TamperKind::Corrupted } else { k };
        let at = Some(r.timestamp_ms);
        let line = r.line();
        let rec = match serde_json::from_slice::<DecisionRecord>(&line) {
            Ok(rec) => rec,
            Err(e) => {
                self.found(
                    content,
                    r.seq,
                    at,
                    format!("record {} is not a decision record ({how}): {e}", r.seq),
                );
                return self.moved_past(r, r.seq);
            }
        };
        let seq = rec.seq;
        let chain_ok = match (self.prev, self.linked) {
            (Some(p), true) if seq <= p.seq => {
                self.found(
                    chain(TamperKind::Reordered),
                    seq,
                    at,
                    format!("record {seq} follows record {}", p.seq),
                );
                false
            }
            (Some(p), true) if seq > p.seq + 1 => {
                self.found(
                    chain(TamperKind::Removed),
                    p.seq + 1,
                    Some(p.timestamp_ms),
                    format!("records {}..={} are missing", p.seq + 1, seq - 1),
                );
                false
            }
            (Some(p), true) if !r.links || r.prev != p.hash => {
                self.found(chain(TamperKind::Altered), p.seq, Some(p.timestamp_ms), format!("record {seq} does not link to record {}: record {} was altered, replaced or removed", p.seq, p.seq));
                false
            }
            // After damage the predecessor is unknown: the record's own
            // link cannot be trusted either way.
            _ => r.links || !self.linked,
        };
        // A record cut from its predecessor cannot be checked against its
        // hash (the previous hash inside it is not known).
        if chain_ok {
            if self.chain_hash.digest(&r.canonical) != r.hash {
                let detail = match self.other_chain_hash(r) {
                    Some(other) => format!("the chain hash setting does not match the records: log.json says {} but record {seq} is hashed with {other} (log.json was changed or replaced)", self.chain_hash),
                    None => format!("record {seq} does not match its hash: {how}"),
                };
                self.found(content, seq, at, detail);
            } else if serde_json::to_vec(&rec).ok().as_deref() != Some(&line[..]) {
                self.found(
                    chain(TamperKind::Altered),
                    seq,
                    at,
                    format!("record {seq} was rewritten (bytes differ from its canonical form)"),
                );
            } else {
                self.passed(r, rec);
            }
        }
        self.moved_past(r, seq);
    }

    /// For the first record walked: the other chain hash, if that is the
    /// one its hash was made with (`log.json` switched, not the record).
    fn other_chain_hash(&self, r: &Stored) -> Option<ChainHash> {
        if self.first.is_some() {
            return None;
        }
        let other = match self.chain_hash {
            ChainHash::Sha256 => ChainHash::Sm3,
            ChainHash::Sm3 => ChainHash::Sha256,
        };
        (other.digest(&r.canonical) == r.hash).then_some(other)
    }

    fn moved_past(&mut self, r: &Stored, seq: u64) {
        if self.first.is_none() {
            self.first = Some((seq, r.prev));
        }
        self.prev = Some(Prev {
            seq,
            hash: r.hash,
            timestamp_ms: r.timestamp_ms,
        });
        self.linked = true;
    }

    fn passed(&mut self, r: &Stored, rec: DecisionRecord) {
        self.report.records += 1;
        self.report.first_seq.get_or_insert(rec.seq);
        if self.checkpoint.is_some_and(|c| c.seq == rec.seq) {
            self.at_checkpoint = Some(r.hash_hex());
        }
        if self.report.problem.is_none() {
            self.report.last_verified = Some(Checkpoint::of(&rec));
        }
        if let Some(p) = rec.pruned.clone() {
            self.check_anchor(&rec, &p);
            self.anchor = Some(p);
        }
    }

    fn damaged(&self) -> bool {
        self.report.problems.iter().any(|p| p.kind.is_damage())
    }

    fn finish(mut self) -> VerifyReport {
        let tampered = self.report.problems.iter().any(|p| !p.kind.is_damage())
            || self
                .report
                .checkpoint
                .as_ref()
                .is_some_and(|c| !c.extended && !c.unprovable);
        self.report.verdict = if tampered {
            Verdict::Tampered
        } else if self.report.problems.is_empty() {
            Verdict::Ok
        } else {
            Verdict::Unreadable
        };
        self.report.ok = self.report.verdict == Verdict::Ok;
        self.report
    }
}
