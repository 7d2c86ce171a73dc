//! Reading the log: a snapshot of its files (opened at one moment, read up
//! to the lengths written durably by then, so the writer appending,
//! rotating the journal or retention deleting a segment meanwhile changes
//! nothing a reader sees), and the records of a snapshot from a sequence
//! number or a time, using the sparse block index to skip what cannot match.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::Arc;

use super::digest::ChainHash;
use super::frame::{self, Item, Kind};
use super::segment::{self, BlockRef, FileRef, Layout};
use super::stored::{self, Stored};
use super::AuditError;

/// The log's files as of one moment.
pub struct Snapshot {
    pub chain_hash: ChainHash,
    pub layout: Layout,
    /// Segment files by id, opened when the snapshot was taken.
    pub segments: HashMap<u64, File>,
    pub journals: Vec<(FileRef, File)>,
}

fn open(f: &FileRef) -> Result<File, AuditError> {
    File::open(&f.path).map_err(|e| AuditError::Io {
        path: f.path.display().to_string(),
        source: e,
    })
}

impl Snapshot {
    /// Opens every file `layout` names. Called under the writer's layout
    /// lock, so no file is deleted between listing and opening.
    pub fn open(layout: Layout, chain_hash: ChainHash) -> Result<Self, AuditError> {
        let mut segments = HashMap::new();
        for s in &layout.segments {
            segments.insert(s.id, open(s)?);
        }
        let mut journals = Vec::new();
        for j in &layout.journals {
            journals.push((j.clone(), open(j)?));
        }
        Ok(Self {
            chain_hash,
            layout,
            segments,
            journals,
        })
    }

    /// A segment's bytes as of the snapshot.
    pub fn segment_bytes(&self, seg: &FileRef) -> io::Result<Vec<u8>> {
        segment::read_file(&self.segments[&seg.id], seg.len)
    }

    /// The journal records after the last block, oldest first. A frame
    /// that is damaged or does not decode is an error naming the record
    /// after the last one read (a write a crash cut off at the very end,
    /// never acknowledged, is not).
    pub fn journal_records(&self) -> Result<Vec<Stored>, AuditError> {
        let mut out: Vec<Stored> = Vec::new();
        for (f, file) in &self.journals {
            let bytes = segment::read_file(file, f.len).map_err(|e| AuditError::Io {
                path: f.path.display().to_string(),
                source: e,
            })?;
            for item in frame::frames(&bytes) {
                let after = out
                    .last()
                    .map_or(self.layout.blocked_seq(), |p: &Stored| p.seq);
                let unreadable = |at: usize, what: &str| AuditError::Unreadable {
                    seq: after + 1,
                    detail: format!("{} at byte {at}: {what}", f.path.display()),
                };
                let r = match item {
                    Item::Frame { kind, payload, at } if kind == Kind::Record as u8 => {
                        Stored::decode_raw(payload).map_err(|e| unreadable(at, &e.to_string()))?
                    }
                    Item::Torn { .. } => continue,
                    Item::Frame { at, .. } => return Err(unreadable(at, "not a record frame")),
                    Item::Damaged { at, .. } | Item::Garbage { at, .. } => {
                        return Err(unreadable(at, "damaged bytes"))
                    }
                };
                if r.seq > after {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// A block's records. One that cannot be read is an error, not an
    /// empty block: an export, summary or page that went on past it would
    /// look complete while records are missing (`audit verify` says more).
    /// A block whose header disagrees with its records (first seq, times:
    /// cheap checks, one record parsed) is refused the same way: cursors
    /// and `since` would otherwise follow a rewritten header.
    fn block(&self, b: &BlockRef) -> Result<Vec<Stored>, AuditError> {
        let unreadable = |e: &dyn std::fmt::Display| {
            tracing::error!(segment = b.segment, offset = b.offset, error = %e, "decision log: an unreadable block");
            AuditError::Unreadable {
                seq: b.header.first_seq,
                detail: format!("segment {} at byte {}: {e}", b.segment, b.offset),
            }
        };
        let records =
            segment::read_block_from(&self.segments[&b.segment], b).map_err(|e| unreadable(&e))?;
        if let Some(d) = stored::header_mismatch(&b.header, &records) {
            return Err(unreadable(&d));
        }
        Ok(records)
    }
}

/// Records with `seq >= from_seq`, oldest first, skipping blocks whose
/// records are all older than `since_ms`; the sparse index finds the first
/// block to read.
pub struct Scan {
    snap: Arc<Snapshot>,
    from_seq: u64,
    since_ms: Option<u64>,
    next_block: usize,
    current: std::vec::IntoIter<Stored>,
    journal_done: bool,
}

impl Scan {
    pub fn new(snap: Arc<Snapshot>, from_seq: u64, since_ms: Option<u64>) -> Self {
        let next_block = snap
            .layout
            .blocks
            .partition_point(|b| b.header.last_seq() < from_seq);
        Self {
            snap,
            from_seq,
            since_ms,
            next_block,
            current: Vec::new().into_iter(),
            journal_done: false,
        }
    }
}

impl Iterator for Scan {
    type Item = Result<Stored, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.current.find(|r| r.seq >= self.from_seq) {
                return Some(Ok(r));
            }
            if let Some(b) = self.snap.layout.blocks.get(self.next_block) {
                self.next_block += 1;
                if self.since_ms.is_some_and(|t| b.header.max_ms < t) {
                    continue;
                }
                match self.snap.block(b) {
                    Ok(records) => self.current = records.into_iter(),
                    Err(e) => {
                        // Nothing after it is given either: a reader resuming
                        // past the damage would skip records silently.
                        self.next_block = self.snap.layout.blocks.len();
                        self.journal_done = true;
                        return Some(Err(e));
                    }
                }
                continue;
            }
            if self.journal_done {
                return None;
            }
            self.journal_done = true;
            match self.snap.journal_records() {
                Ok(records) => self.current = records.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
