//! The decision log's directory (`DATA/decisions/`) and what is found in
//! it at open: the format and chain hash (`log.json`), the clean-close head
//! (`head.json`), the append-only segments of compressed blocks
//! (`seg-<first seq>.log`), the journal of records not yet in a block
//! (`journal-<first seq>.log`), and the sparse index of blocks built from
//! their headers alone.
//!
//! Opening after a clean close reads only frame headers and the last block
//! (no repair): the writer continues from the last record's own seq and
//! hash, and refuses a log whose `head.json` names another. Opening after a crash (no `head.json`) also checks every
//! frame of the tail segment and the journal, and cuts a torn final frame,
//! keeping its bytes in `torn/` for the record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chain::Checkpoint;
use super::digest::ChainHash;
use super::frame::{self, Item, Kind, HEADER};
use super::stored::{self, BlockHeader, Stored, BLOCK_HEADER};
use super::AuditError;

/// The stored format this code writes and reads.
pub const FORMAT: u32 = 1;

/// `log.json`: fixed when the log is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMeta {
    pub format: u32,
    pub chain_hash: ChainHash,
}

pub fn meta_path(dir: &Path) -> PathBuf {
    dir.join("log.json")
}
pub fn head_path(dir: &Path) -> PathBuf {
    dir.join("head.json")
}
pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("seg-{first_seq:020}.log"))
}
pub fn journal_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("journal-{first_seq:020}.log"))
}

fn io_err(path: &Path, e: io::Error) -> AuditError {
    AuditError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new file,
/// never a mix: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    sync_dir(path.parent().expect("files live in the log directory"))
}

pub fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

pub fn read_meta(dir: &Path) -> Result<Option<LogMeta>, AuditError> {
    let path = meta_path(dir);
    match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| AuditError::Format(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path, e)),
    }
}

/// The clean-close head, if the log was closed cleanly and not opened since.
pub fn read_marker(dir: &Path) -> Option<Checkpoint> {
    serde_json::from_slice(&fs::read(head_path(dir)).ok()?).ok()
}

/// The exclusive lock a process holds on the log while it uses it.
pub struct Lock(#[allow(dead_code)] File);

pub fn lock(dir: &Path) -> Result<Lock, AuditError> {
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(Lock(f)),
        Err(fs::TryLockError::WouldBlock) => Err(AuditError::Locked(dir.display().to_string())),
        Err(fs::TryLockError::Error(e)) => Err(io_err(&path, e)),
    }
}

/// A segment or journal file, named by the first sequence number it holds.
#[derive(Debug, Clone)]
pub struct FileRef {
    pub id: u64,
    pub path: PathBuf,
    /// Bytes written durably (what readers may read).
    pub len: u64,
}

/// Where one block lies, and what its header says.
#[derive(Debug, Clone, Copy)]
pub struct BlockRef {
    pub segment: u64,
    pub offset: u64,
    pub header: BlockHeader,
}

/// Every file of the log and the sparse index of its blocks.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub segments: Vec<FileRef>,
    pub blocks: Vec<BlockRef>,
    pub journals: Vec<FileRef>,
    /// The last record, as the writer (or a clean close) last recorded it.
    pub head: Option<Checkpoint>,
    /// What a reader of a stopped log could not check (no or a garbage
    /// `head.json`, no `log.json`): reported by `verify`, never repaired.
    pub warnings: Vec<String>,
}

impl Layout {
    /// The last sequence number in a block.
    pub fn blocked_seq(&self) -> u64 {
        self.blocks.last().map_or(0, |b| b.header.last_seq())
    }
}

fn list(dir: &Path, prefix: &str) -> Result<Vec<FileRef>, AuditError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let len = entry
            .metadata()
            .map_err(|e| io_err(&entry.path(), e))?
            .len();
        out.push(FileRef {
            id,
            path: entry.path(),
            len,
        });
    }
    out.sort_by_key(|f| f.id);
    Ok(out)
}

/// The blocks of a segment from their headers alone (one small read per
/// block); a segment whose headers do not chain up is read whole and its
/// frames found by resynchronizing.
pub fn index_segment(seg: &FileRef) -> Result<Vec<BlockRef>, AuditError> {
    let file = File::open(&seg.path).map_err(|e| io_err(&seg.path, e))?;
    let mut out = Vec::new();
    let mut offset = 0u64;
    let mut buf = [0u8; HEADER + BLOCK_HEADER];
    while offset < seg.len {
        let parsed = file
            .read_exact_at(&mut buf, offset)
            .ok()
            .and_then(|()| frame::header(&buf))
            .filter(|h| h.kind == Kind::Block as u8)
            .filter(|h| offset + (HEADER + h.len) as u64 <= seg.len)
            .and_then(|h| Some((h, BlockHeader::parse(&buf[HEADER..]).ok()?)));
        let Some((h, header)) = parsed else {
            return index_damaged(seg, &file);
        };
        out.push(BlockRef {
            segment: seg.id,
            offset,
            header,
        });
        offset += (HEADER + h.len) as u64;
    }
    Ok(out)
}

fn index_damaged(seg: &FileRef, file: &File) -> Result<Vec<BlockRef>, AuditError> {
    let bytes = read_file(file, seg.len).map_err(|e| io_err(&seg.path, e))?;
    let mut out = Vec::new();
    for item in frame::frames(&bytes) {
        if let Item::Frame { at, kind, payload } = item {
            if let (Some(Kind::Block), Ok(header)) =
                (Kind::from_byte(kind), BlockHeader::parse(payload))
            {
                out.push(BlockRef {
                    segment: seg.id,
                    offset: at as u64,
                    header,
                });
            }
        }
    }
    Ok(out)
}

/// Up to `len` bytes of `file`, fewer if it was cut since `len` was taken:
/// `verify` reports a cut file rather than failing to read it.
pub fn read_upto(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len as usize];
    let mut got = 0;
    while got < bytes.len() {
        match file.read_at(&mut bytes[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(got);
    Ok(bytes)
}

pub fn read_file(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// The warning of a log without `head.json`, which a log that is open and
/// being written has no reason to carry (`forensics::verify_open`).
pub const NO_HEAD: &str = "no head.json: the log was not closed cleanly (a crash) or the file was deleted; records cut from its end cannot be seen without a kept checkpoint";

/// The layout of a log on disk, for reading only: nothing is repaired.
pub fn read_layout(dir: &Path) -> Result<Layout, AuditError> {
    let segments = list(dir, "seg-")?;
    let mut blocks = Vec::new();
    for seg in &segments {
        blocks.extend(index_segment(seg)?);
    }
    let mut warnings = Vec::new();
    let head = match read_head_file(dir) {
        Ok(Some(h)) => Some(h),
        Ok(None) => {
            warnings.push(NO_HEAD.to_owned());
            None
        }
        Err(e) => {
            warnings.push(format!(
                "head.json is not a head ({e}): how far the log went cannot be checked"
            ));
            None
        }
    };
    Ok(Layout {
        segments,
        blocks,
        journals: list(dir, "journal-")?,
        head,
        warnings,
    })
}

/// What the writer continues from.
pub struct Recovered {
    pub layout: Layout,
    /// Journal records after the last block, oldest first.
    pub pending: Vec<Stored>,
    /// The last record: `(seq, hash, time)`; seq 0 while empty.
    pub last: (u64, [u8; 32], u64),
}

/// The clean-close head: `None` when absent (a crash, or never closed).
/// A file that is there but is no head is refused rather than taken for a
/// crash: it is evidence of something.
pub fn read_head_file(dir: &Path) -> Result<Option<Checkpoint>, AuditError> {
    let path = head_path(dir);
    match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            AuditError::Format(format!(
                "{}: not a head ({e}); the log is not opened (run `audit verify`)",
                path.display()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path, e)),
    }
}

/// Opens the log for writing: the layout, then (after a crash) the tail
/// checked and a torn end cut, then the journal's records after the last
/// block. The head is always the last record decoded (its own seq and
/// hash), never a header or `head.json`; a `head.json` that names another
/// record means the files were cut or rewritten since the clean close, and
/// the log is not opened (writing on would reuse sequence numbers or chain
/// onto a forged hash, and the next close would overwrite the evidence).
pub fn recover(dir: &Path) -> Result<Recovered, AuditError> {
    let marker = read_head_file(dir)?;
    if marker.is_none() {
        if let Some(mut tail) = list(dir, "seg-")?.pop() {
            cut_torn_end(dir, &mut tail)?;
        }
    }
    if let Some(mut j) = list(dir, "journal-")?.pop() {
        cut_torn_end(dir, &mut j)?;
    }
    let layout = read_layout(dir)?;
    let blocked = match layout.blocks.last() {
        Some(b) => Some(last_of_block(&layout, b)?),
        None => None,
    };
    let mut pending: Vec<Stored> = Vec::new();
    for j in &layout.journals {
        pending_from(j, blocked.map(|l| l.0), &mut pending)?;
    }
    let last = pending
        .last()
        .map(|p| (p.seq, p.hash, p.timestamp_ms))
        .or(blocked)
        .unwrap_or((0, [0; 32], 0));
    if let Some(m) = marker {
        check_head(&m, last)?;
    }
    Ok(Recovered {
        layout,
        pending,
        last,
    })
}

/// Moves every segment, journal, `head.json` and `torn/` of the log into a
/// new `damaged-<time>/` beside them, kept as evidence; returns it.
pub fn set_aside(dir: &Path) -> Result<PathBuf, AuditError> {
    let stamp = super::time::format_utc(crate::now_ms()).replace(':', "");
    let aside = dir.join(format!("damaged-{stamp}"));
    fs::create_dir(&aside).map_err(|e| io_err(&aside, e))?;
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let evidence = name.starts_with("seg-")
            || name.starts_with("journal-")
            || name == "head.json"
            || name == "torn";
        if evidence {
            fs::rename(&path, aside.join(name)).map_err(|e| io_err(&path, e))?;
        }
    }
    sync_dir(&aside)?;
    sync_dir(dir)?;
    Ok(aside)
}

/// The clean-close head must name the last record found, by seq and hash.
fn check_head(m: &Checkpoint, (seq, hash, _): (u64, [u8; 32], u64)) -> Result<(), AuditError> {
    if m.seq == seq && m.hash == hex::encode(hash) {
        return Ok(());
    }
    Err(AuditError::HeadMismatch {
        head_seq: m.seq,
        head_hash: m.hash.clone(),
        last_seq: seq,
        last_hash: hex::encode(hash),
    })
}

/// Adds the records of journal `j` that follow record `blocked` (or the
/// last pending record) to `pending`; with no block at all (a new log, or
/// one retention or `--accept-damaged-log` restarted after record N) the
/// journal's first record starts it, whatever its seq (`verify` checks the
/// anchor that must account for the records before). A journal damaged before its end would
/// leave acknowledged records out of the chain: opening stops there, for an
/// operator to run `audit verify` and move the journal aside, rather than
/// writing over their sequence numbers.
fn pending_from(
    j: &FileRef,
    blocked: Option<u64>,
    pending: &mut Vec<Stored>,
) -> Result<(), AuditError> {
    let damaged = |what: String| {
        AuditError::Format(format!(
            "{}: {what}; the log is not opened (run `audit verify`, keep the file, move it aside to go on without its records)",
            j.path.display()
        ))
    };
    let file = File::open(&j.path).map_err(|e| io_err(&j.path, e))?;
    let bytes = read_file(&file, j.len).map_err(|e| io_err(&j.path, e))?;
    for item in frame::frames(&bytes) {
        let (payload, at) = match item {
            Item::Frame { payload, at, .. } => (payload, at),
            Item::Damaged { at, .. } | Item::Garbage { at, .. } | Item::Torn { at } => {
                return Err(damaged(format!("damaged bytes at {at}")))
            }
        };
        let r = Stored::decode_raw(payload)
            .map_err(|e| damaged(format!("record at byte {at}: {e}")))?;
        if let Some(d) = stored::record_disagreement(&r) {
            return Err(damaged(format!("record at byte {at}: {d}")));
        }
        let Some(after) = pending.last().map(|p| p.seq).or(blocked) else {
            pending.push(r);
            continue;
        };
        if r.seq > after + 1 {
            return Err(damaged(format!(
                "records {}..{} are missing",
                after + 1,
                r.seq
            )));
        }
        if r.seq == after + 1 {
            pending.push(r);
        }
    }
    Ok(())
}

/// The last record of a block, decompressed: its own seq (from its JSON,
/// which its hash covers) rather than the header's, which can be rewritten
/// with a valid checksum.
fn last_of_block(layout: &Layout, b: &BlockRef) -> Result<(u64, [u8; 32], u64), AuditError> {
    let records = read_block(layout, b)?;
    let r = records
        .last()
        .ok_or_else(|| AuditError::Format("the last block is empty".to_owned()))?;
    let (seq, ms) = stored::own_seq_time(&r.canonical)
        .map_err(|e| AuditError::Format(format!("the last record of the log: {e}")))?;
    Ok((seq, r.hash, ms))
}

/// The records of one block (for the writer's head and for retention).
pub fn read_block(layout: &Layout, b: &BlockRef) -> Result<Vec<Stored>, AuditError> {
    let seg = layout
        .segments
        .iter()
        .find(|s| s.id == b.segment)
        .ok_or_else(|| AuditError::Format(format!("no segment {}", b.segment)))?;
    let file = File::open(&seg.path).map_err(|e| io_err(&seg.path, e))?;
    read_block_from(&file, b)
        .map_err(|e| AuditError::Format(format!("{}: {e}", seg.path.display())))
}

pub fn read_block_from(file: &File, b: &BlockRef) -> Result<Vec<Stored>, stored::DecodeError> {
    let mut head = [0u8; HEADER];
    file.read_exact_at(&mut head, b.offset)
        .map_err(|e| stored::DecodeError(e.to_string()))?;
    let h = frame::header(&head).ok_or_else(|| stored::DecodeError("no frame".to_owned()))?;
    let mut payload = vec![0u8; h.len];
    file.read_exact_at(&mut payload, b.offset + HEADER as u64)
        .map_err(|e| stored::DecodeError(e.to_string()))?;
    if !frame::checksum_holds(&head, &payload) {
        return Err(stored::DecodeError(
            "the block fails its checksum (run `audit verify`)".to_owned(),
        ));
    }
    stored::decode_block(&payload).map(|(_, records)| records)
}

/// Cuts a final frame a crash left incomplete (or half-written: damaged at
/// the very end). Damage before the last good frame is evidence and stays.
fn cut_torn_end(dir: &Path, f: &mut FileRef) -> Result<(), AuditError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f.path)
        .map_err(|e| io_err(&f.path, e))?;
    let bytes = read_file(&file, f.len).map_err(|e| io_err(&f.path, e))?;
    let cut = match frame::frames(&bytes).last() {
        Some(Item::Torn { at }) => at,
        Some(Item::Damaged { at, .. }) => at,
        Some(Item::Garbage { at, end }) if end == bytes.len() => at,
        _ => return Ok(()),
    };
    let torn = dir.join("torn");
    fs::create_dir_all(&torn).map_err(|e| io_err(&torn, e))?;
    let name = format!(
        "{}-at-{cut}.bin",
        f.path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("file")
    );
    fs::write(torn.join(&name), &bytes[cut..]).map_err(|e| io_err(&torn, e))?;
    file.set_len(cut as u64)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err(&f.path, e))?;
    tracing::warn!(file = %f.path.display(), at = cut, kept = %name, "decision log: cut a torn final frame");
    f.len = cut as u64;
    Ok(())
}
