//! The write side of the log's files, used only by the writer thread.
//!
//! Each group commit appends its records, uncompressed, to the journal and
//! fsyncs it once: from then on they are durable. Once the journal holds
//! [`BLOCK_RECORDS`] records they are compressed into one block frame
//! appended to the current segment (fsync), and a fresh journal replaces the
//! old one. A segment past [`SEGMENT_BYTES`] is sealed and a new one begun.
//! Readers see a file only up to the length published in the shared
//! [`Layout`] after its fsync.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::canonical::Unsealed;
use super::chain::{self, Checkpoint};
use super::digest::ChainHash;
use super::frame::{self, Kind};
use super::record::PrunedRange;
use super::segment::{self, BlockRef, FileRef, Layout, Lock, LogMeta, Recovered};
use super::stored::{self, BlockHeader, Stored};
use super::{AuditError, DecisionRecord, Outcome};

pub use super::stored::BLOCK_RECORDS;
/// A journal frame's bytes beyond its record's canonical body, at most: the
/// frame's header, the stored fields, `{"seq":…` and `,"prev_hash":"…"}`
/// less the 64 digits cut out.
const JOURNAL_OVERHEAD: usize = 160;
/// A segment is sealed past this size: the unit retention removes.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// What the writer and the readers share: the log's files as last written.
pub struct Shared {
    pub dir: PathBuf,
    pub meta: LogMeta,
    pub layout: Mutex<Layout>,
}

impl Shared {
    pub fn layout(&self) -> MutexGuard<'_, Layout> {
        self.layout.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The last record written: where the next one links.
#[derive(Clone, Copy)]
struct Head {
    seq: u64,
    hash: [u8; 32],
    timestamp_ms: u64,
}

impl Head {
    fn checkpoint(&self) -> Option<Checkpoint> {
        (self.seq > 0).then(|| Checkpoint {
            seq: self.seq,
            hash: hex::encode(self.hash),
            timestamp_ms: self.timestamp_ms,
            time: super::time::format_utc(self.timestamp_ms),
        })
    }
}

pub struct Appender {
    shared: Arc<Shared>,
    /// Held while the writer runs: released when it stops, whoever still
    /// holds an `AuditLog`.
    _lock: Lock,
    seg: File,
    seg_id: u64,
    seg_len: u64,
    journal: File,
    journal_len: u64,
    pending: Vec<Stored>,
    head: Head,
}

fn io_err(path: &Path, e: std::io::Error) -> AuditError {
    AuditError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Opens `path` for appending, creating it (and making its name durable).
fn append_file(path: &Path, fresh: bool) -> Result<File, AuditError> {
    if fresh {
        File::create(path).map_err(|e| io_err(path, e))?;
        segment::sync_dir(path.parent().expect("in the log directory"))?;
    }
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))
}

impl Appender {
    /// Continues the log `recovered` describes. The clean-close head is
    /// removed first: from now on only another clean close may vouch that
    /// the files end where they should.
    pub fn open(shared: Arc<Shared>, lock: Lock, recovered: Recovered) -> Result<Self, AuditError> {
        let dir = shared.dir.clone();
        match fs::remove_file(segment::head_path(&dir)) {
            Ok(()) => segment::sync_dir(&dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&segment::head_path(&dir), e)),
        }
        let Recovered {
            mut layout,
            pending,
            last,
        } = recovered;
        let head = Head {
            seq: last.0,
            hash: last.1,
            timestamp_ms: last.2,
        };
        if layout.segments.is_empty() {
            let path = segment::segment_path(&dir, head.seq + 1);
            append_file(&path, true)?;
            layout.segments.push(FileRef {
                id: head.seq + 1,
                path,
                len: 0,
            });
        }
        let tail = layout.segments.last().expect("a segment").clone();
        let seg = append_file(&tail.path, false)?;
        let journal = match (pending.is_empty(), layout.journals.last()) {
            (false, Some(j)) => append_file(&j.path, false)?,
            _ => {
                let path = segment::journal_path(&dir, head.seq + 1);
                let f = append_file(&path, true)?;
                for old in std::mem::take(&mut layout.journals) {
                    if old.path != path {
                        let _ = fs::remove_file(&old.path);
                    }
                }
                layout.journals.push(FileRef {
                    id: head.seq + 1,
                    path,
                    len: 0,
                });
                f
            }
        };
        let journal_len = layout.journals.last().map_or(0, |j| j.len);
        layout.head = head.checkpoint();
        *shared.layout() = layout;
        Ok(Self {
            shared,
            _lock: lock,
            seg,
            seg_id: tail.id,
            seg_len: tail.len,
            journal,
            journal_len,
            pending,
            head,
        })
    }

    fn chain_hash(&self) -> ChainHash {
        self.shared.meta.chain_hash
    }

    /// Seals `records` into the chain and makes them durable with one fsync
    /// of the journal. Returns each one's sequence number and hash.
    pub fn append(&mut self, records: &[Unsealed]) -> Result<Vec<(u64, [u8; 32])>, AuditError> {
        let mut head = self.head;
        // Sized once: grown by doubling, the journal's bytes of a large
        // commit were copied about twice over.
        let framed = |r: &Unsealed| r.body_len() + JOURNAL_OVERHEAD;
        let mut bytes = Vec::with_capacity(records.iter().map(framed).sum());
        let mut payload = Vec::with_capacity(records.iter().map(framed).max().unwrap_or(0));
        let mut sealed = Vec::with_capacity(records.len());
        for r in records {
            let prev = super::digest::to_hex(&head.hash);
            let (canonical, hash) = chain::seal(r, head.seq + 1, &prev, self.chain_hash());
            let s = Stored {
                seq: head.seq + 1,
                timestamp_ms: r.timestamp_ms(),
                prev: head.hash,
                hash,
                canonical,
                links: true,
            };
            journal_frame(&s, &mut payload, &mut bytes);
            head = Head {
                seq: s.seq,
                hash,
                timestamp_ms: s.timestamp_ms,
            };
            sealed.push(s);
        }
        if let Err(e) = self
            .journal
            .write_all(&bytes)
            .and_then(|()| self.journal.sync_data())
        {
            // No partial frame may stay before the retry writes them again.
            let _ = self.journal.set_len(self.journal_len);
            return Err(io_err(Path::new("decision log journal"), e));
        }
        self.journal_len += bytes.len() as u64;
        self.head = head;
        let places = sealed.iter().map(|s| (s.seq, s.hash)).collect();
        self.pending.extend(sealed);
        {
            let mut layout = self.shared.layout();
            if let Some(j) = layout.journals.last_mut() {
                j.len = self.journal_len;
            }
            layout.head = head.checkpoint();
        }
        if self.pending.len() >= BLOCK_RECORDS {
            // The records are durable in the journal already; a block that
            // cannot be written now is tried again after the next commit.
            if let Err(e) = self.seal(BLOCK_RECORDS) {
                tracing::error!(error = %e, "decision log: writing a block failed; the journal keeps the records");
            }
        }
        Ok(places)
    }

    /// Compresses the journal's records into blocks of [`BLOCK_RECORDS`]
    /// (the last one smaller only when closing or pruning), then starts a
    /// fresh journal holding what is left.
    pub fn seal_block(&mut self) -> Result<(), AuditError> {
        self.seal(1)
    }

    /// Writes blocks while at least `min` records are pending.
    fn seal(&mut self, min: usize) -> Result<(), AuditError> {
        let mut sealed = 0;
        while self.pending.len() - sealed >= min.max(1) {
            let n = (self.pending.len() - sealed).min(BLOCK_RECORDS);
            self.write_block(sealed, n)?;
            sealed += n;
            if self.seg_len >= SEGMENT_BYTES {
                self.roll_segment()?;
            }
        }
        if sealed > 0 {
            self.pending.drain(..sealed);
            self.rotate_journal()?;
        }
        Ok(())
    }

    fn write_block(&mut self, from: usize, n: usize) -> Result<(), AuditError> {
        let payload = stored::encode_block(&self.pending[from..from + n]);
        let header = BlockHeader::parse(&payload).expect("blocks start with their header");
        let bytes = frame::encode(Kind::Block, &payload);
        let path = segment::segment_path(&self.shared.dir, self.seg_id);
        if let Err(e) = self
            .seg
            .write_all(&bytes)
            .and_then(|()| self.seg.sync_data())
        {
            let _ = self.seg.set_len(self.seg_len);
            return Err(io_err(&path, e));
        }
        let offset = self.seg_len;
        self.seg_len += bytes.len() as u64;
        let mut layout = self.shared.layout();
        if let Some(s) = layout.segments.last_mut() {
            s.len = self.seg_len;
        }
        layout.blocks.push(BlockRef {
            segment: self.seg_id,
            offset,
            header,
        });
        Ok(())
    }

    /// Replaces the journal by one holding only the records not yet in a
    /// block. Readers that opened the old one still read it; a crash before
    /// its removal leaves records that are also in a block, which opening
    /// skips.
    fn rotate_journal(&mut self) -> Result<(), AuditError> {
        let id = self.pending.first().map_or(self.head.seq + 1, |r| r.seq);
        let path = segment::journal_path(&self.shared.dir, id);
        // Frame by frame (a `flat_map` collected byte by byte was 1.3 % of
        // the server's CPU under the bureau-scale mix).
        let mut bytes = Vec::new();
        let mut payload = Vec::new();
        for r in &self.pending {
            journal_frame(r, &mut payload, &mut bytes);
        }
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_err(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        segment::sync_dir(&self.shared.dir)?;
        let file = append_file(&path, false)?;
        let old = std::mem::replace(
            &mut self.shared.layout().journals,
            vec![FileRef {
                id,
                path: path.clone(),
                len: bytes.len() as u64,
            }],
        );
        self.journal = file;
        self.journal_len = bytes.len() as u64;
        for j in old.into_iter().filter(|j| j.path != path) {
            let _ = fs::remove_file(&j.path);
        }
        Ok(())
    }

    fn roll_segment(&mut self) -> Result<(), AuditError> {
        let id = self.head.seq + 1;
        let path = segment::segment_path(&self.shared.dir, id);
        self.seg = append_file(&path, true)?;
        self.seg_id = id;
        self.seg_len = 0;
        self.shared
            .layout()
            .segments
            .push(FileRef { id, path, len: 0 });
        Ok(())
    }

    /// Everything into blocks, then the clean-close head written atomically:
    /// the next open trusts the files to end where the head says.
    pub fn close(&mut self) -> Result<(), AuditError> {
        self.seal_block()?;
        if let Some(head) = self.head.checkpoint() {
            let json = serde_json::to_vec(&head).expect("checkpoints serialize");
            segment::write_atomic(&segment::head_path(&self.shared.dir), &json)?;
        }
        Ok(())
    }

    /// Retention: removes whole sealed segments whose records were all
    /// written before `before_ms` (a prefix of the log), after appending an
    /// anchor record naming the last record removed, its hash and its whole
    /// stored line. Decided from the records' own times (decompressed), not
    /// block headers, and refused when the last record to go is younger than
    /// `min_retention_ms` (the same rule `audit verify` checks anchors by).
    pub fn prune(
        &mut self,
        before_ms: u64,
        min_retention_ms: u64,
        principal: &str,
    ) -> Result<Option<PrunedRange>, AuditError> {
        self.seal_block()?;
        let current_has_blocks = self
            .shared
            .layout()
            .blocks
            .iter()
            .any(|b| b.segment == self.seg_id);
        if current_has_blocks {
            self.roll_segment()?;
        }
        let layout = self.shared.layout().clone();
        let Some(cut) = prunable(&layout, self.seg_id, before_ms)? else {
            return Ok(None);
        };
        let (last_seq, last_ms) = stored::own_seq_time(&cut.last.canonical)
            .map_err(|e| AuditError::Format(e.to_string()))?;
        // The anchor is timed after this moment, so `audit verify`, measuring
        // from the anchor's time, finds the same rule kept.
        if last_ms.saturating_add(min_retention_ms) > crate::now_ms() {
            return Err(AuditError::TooRecent {
                seq: last_seq,
                written: super::time::format_utc(last_ms),
                min_days: min_retention_ms / DAY_MS,
            });
        }
        let pruned = PrunedRange {
            first_seq: cut.first_seq,
            last_seq,
            last_hash: cut.last.hash_hex(),
            last_record: Some(String::from_utf8_lossy(&cut.last.canonical).into_owned()),
        };
        // The anchor is durable before any record goes: a crash between the
        // two leaves an anchor and records it names, never the reverse.
        self.append(&[Unsealed::of(&anchor(&pruned, before_ms, principal))])?;
        {
            let mut l = self.shared.layout();
            l.segments.retain(|s| !cut.segments.contains(&s.id));
            l.blocks.retain(|b| !cut.segments.contains(&b.segment));
        }
        for id in &cut.segments {
            let path = segment::segment_path(&self.shared.dir, *id);
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        }
        segment::sync_dir(&self.shared.dir)?;
        Ok(Some(pruned))
    }
}

/// A day in milliseconds (minimum retention is given in days).
pub const DAY_MS: u64 = 86_400_000;

/// What retention may remove: whole sealed segments, the first record's
/// own seq and the last record.
struct Cut {
    segments: Vec<u64>,
    first_seq: u64,
    last: Stored,
}

/// The sealed segments at the start of the log whose records are all older
/// than `before_ms`, by the records' own times: every block is decoded and
/// checked against its header, so a rewritten header (times moved back) is
/// refused instead of deciding what goes.
fn prunable(layout: &Layout, current: u64, before_ms: u64) -> Result<Option<Cut>, AuditError> {
    let mut segments = Vec::new();
    let mut first_seq = None;
    let mut last = None;
    'segments: for s in layout.segments.iter().filter(|s| s.id != current) {
        let mut seg_last = None;
        for b in layout.blocks.iter().filter(|b| b.segment == s.id) {
            let records = segment::read_block(layout, b)?;
            if let Some(d) = stored::block_disagreement(&b.header, &records) {
                return Err(AuditError::Format(format!(
                    "segment {}: {d}; retention refused (run `audit verify`)",
                    s.id
                )));
            }
            if records.iter().any(|r| r.timestamp_ms >= before_ms) {
                break 'segments;
            }
            first_seq = first_seq.or(records.first().map(|r| r.seq));
            seg_last = records.into_iter().last().or(seg_last);
        }
        last = seg_last.or(last);
        segments.push(s.id);
    }
    Ok(match (first_seq, last) {
        (Some(first_seq), Some(last)) => Some(Cut {
            segments,
            first_seq,
            last,
        }),
        _ => None,
    })
}

fn anchor(pruned: &PrunedRange, before_ms: u64, principal: &str) -> DecisionRecord {
    let mut anchor = DecisionRecord::new(
        &crate::random_id(),
        "anchor",
        principal,
        "audit.prune",
        &format!(
            "DecisionLog::\"{}..={}\"",
            pruned.first_seq, pruned.last_seq
        ),
        None,
        true,
        &[],
        &[],
        "",
        0,
    )
    .with_reason(&format!(
        "retention removed records {}..={} written before {}",
        pruned.first_seq,
        pruned.last_seq,
        super::time::format_utc(before_ms)
    ));
    anchor.decision = Outcome::Allow;
    anchor.pruned = Some(pruned.clone());
    anchor
}

/// `record`'s journal frame appended to `out`; `payload` is scratch kept
/// from one record to the next, so neither is allocated per record.
fn journal_frame(record: &Stored, payload: &mut Vec<u8>, out: &mut Vec<u8>) {
    payload.clear();
    record.encode_raw_into(payload);
    frame::encode_into(Kind::Record, payload, out);
}
