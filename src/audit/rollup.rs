//! Per-minute counts of the decision log, kept by the writer as it commits,
//! so the auditor console's overview of millions of records adds up a few
//! thousand buckets instead of reading every record per page load.
//!
//! The counts are cut by sequence number into chunks of [`CHUNK_RECORDS`]:
//! retention removes a prefix of the log, and dropping the chunks wholly
//! before it (recounting only the one it cuts through, from the log) keeps
//! the counts equal to the log without a full rescan. Each chunk is saved
//! beside the segments (`decisions/rollup/chunk-N.json`) once full, and the
//! open one every [`SAVE_EVERY`] and at a clean close.
//!
//! The log is the truth and the rollup only a cache of it: at open every
//! saved chunk is checked against the log (where it starts, and the hash of
//! the last record it counted); a chunk missing, unreadable, ahead of the
//! log or naming a record the log does not hold is dropped with every chunk
//! after it, and the rest is counted again from the log. Records are
//! counted only after their commit is durable, so a saved chunk is never
//! ahead of a log that was not cut.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::overview::{Overview, OverviewQuery};
use super::scan::{Scan, Snapshot};
use super::{AuditError, DecisionRecord, FinalOutcome, Outcome};

/// Records per chunk: retention recounts at most this many.
pub const CHUNK_RECORDS: u64 = 65_536;
/// How often the writer saves the open chunk: after a crash, the records
/// of at most this long are counted again from the log.
pub const SAVE_EVERY: Duration = Duration::from_secs(30);
/// The most points one overview answers with.
pub const MAX_POINTS: u64 = 2_000;
const MINUTE_MS: u64 = 60_000;
/// The saved chunks' format.
const FORMAT: u32 = 1;

/// What a record is counted by, borrowed from its [`Fields`].
#[derive(Debug, Clone, Copy)]
pub struct Counted<'a> {
    pub timestamp_ms: u64,
    pub caller: Option<&'a str>,
    pub kind: &'a str,
    pub decision: Outcome,
    pub policies: &'a [String],
    pub outcome: Option<FinalOutcome>,
}

/// The fields of a record the rollup reads: from a stored record when
/// counting from the log (the rest is skipped, not parsed), or kept beside
/// a record on its way to the writer (`canonical::Unsealed`).
#[derive(Deserialize)]
pub(super) struct Fields {
    timestamp_ms: u64,
    #[serde(default)]
    caller: Option<String>,
    kind: String,
    decision: Outcome,
    policies: Vec<String>,
    #[serde(default)]
    outcome: Option<FinalOutcome>,
}

impl Fields {
    pub(super) fn of(r: &DecisionRecord) -> Self {
        Self {
            timestamp_ms: r.timestamp_ms,
            caller: r.caller.clone(),
            kind: r.kind.clone(),
            decision: r.decision,
            policies: r.policies.clone(),
            outcome: r.outcome,
        }
    }

    pub(super) fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    pub(super) fn counted(&self) -> Counted<'_> {
        Counted {
            timestamp_ms: self.timestamp_ms,
            caller: self.caller.as_deref(),
            kind: &self.kind,
            decision: self.decision,
            policies: &self.policies,
            outcome: self.outcome,
        }
    }
}

/// One cell of a minute: records of one kind, caller, decision and outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Cell {
    kind: u32,
    caller: u32,
    deny: bool,
    /// 0: no outcome (records older than the field), then done, refused,
    /// failed.
    outcome: u8,
}

/// Records of one kind and decision that a policy determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PolicyCell {
    policy: u32,
    kind: u32,
    deny: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Minute {
    cells: Vec<(Cell, u64)>,
    policies: Vec<(PolicyCell, u64)>,
}

fn bump<K: PartialEq>(cells: &mut Vec<(K, u64)>, key: K) {
    match cells.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n = n.saturating_add(1),
        None => cells.push((key, 1)),
    }
}

/// The strings cells name (kinds, callers, policy ids), each once. Empty
/// is the caller of open mode.
#[derive(Default)]
struct Names {
    list: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// The counts of records `first_seq..=through_seq`.
#[derive(Debug, Clone)]
struct Chunk {
    first_seq: u64,
    through_seq: u64,
    /// The chain hash of record `through_seq`: how a saved chunk is
    /// checked against the log.
    through_hash: String,
    minutes: BTreeMap<u64, Minute>,
    saved: bool,
}

/// A chunk as saved: the names its cells use by index.
#[derive(Serialize, Deserialize)]
struct ChunkFile {
    format: u32,
    first_seq: u64,
    through_seq: u64,
    through_hash: String,
    names: Vec<String>,
    minutes: Vec<(u64, Minute)>,
}

/// Whether a saved chunk's counts can be the log's: one cell count per
/// record, exactly as many as its records, no policy counted more often in
/// a minute than that minute has records, and every name it refers to in
/// its list. The file sits beside the log, and its first and last records'
/// agreement with the log says nothing of the counts between: without
/// this, a file with a count near 2^64 made additions overflow (a panic in
/// the writer, then at every start) and inflated counts were shown as the
/// overview. Counts moved between cells while keeping the totals are not
/// caught here: `audit verify` and the summary scan are the authority.
fn counts_add_up(file: &ChunkFile) -> bool {
    let names = file.names.len() as u64;
    let named = |i: u32| u64::from(i) < names;
    let mut total: u64 = 0;
    for (_, minute) in &file.minutes {
        let mut in_minute: u64 = 0;
        for (cell, n) in &minute.cells {
            if !named(cell.kind) || !named(cell.caller) || cell.outcome > 3 {
                return false;
            }
            match in_minute.checked_add(*n) {
                Some(sum) => in_minute = sum,
                None => return false,
            }
        }
        let policies_fit = minute
            .policies
            .iter()
            .all(|(p, n)| named(p.policy) && named(p.kind) && *n <= in_minute);
        if !policies_fit {
            return false;
        }
        match total.checked_add(in_minute) {
            Some(sum) => total = sum,
            None => return false,
        }
    }
    file.through_seq
        .checked_sub(file.first_seq)
        .is_some_and(|span| span.checked_add(1) == Some(total))
}

fn chunk_of(seq: u64) -> u64 {
    seq.saturating_sub(1) / CHUNK_RECORDS
}

fn chunk_end(index: u64) -> u64 {
    (index + 1) * CHUNK_RECORDS
}

/// The counts, shared by the writer (which adds) and readers.
pub type Rollups = Arc<RwLock<Rollup>>;

pub struct Rollup {
    dir: PathBuf,
    names: Names,
    /// Full chunks never change, so a [`View`] shares them; the open one is
    /// copied only when the writer adds to it while a view holds it.
    chunks: BTreeMap<u64, Arc<Chunk>>,
    saved_at: Instant,
}

/// The rollup directory inside a log directory.
pub fn rollup_dir(log_dir: &Path) -> PathBuf {
    log_dir.join("rollup")
}

/// A saved chunk, or `None` when there is none at `path` or it cannot be
/// used. A file that is there but does not read or parse (torn by a crash
/// mid-save, or damaged) is counted again from the log like a missing one,
/// and logged, naming it: damage on the disk is for an operator to know.
fn read_chunk(path: &Path) -> Option<ChunkFile> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "decision log rollup: a saved chunk cannot be read; counting it again from the log");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(file) => Some(file),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "decision log rollup: a saved chunk is torn; counting it again from the log");
            None
        }
    }
}

fn chunk_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("chunk-{index:08}.json"))
}

/// The first record a snapshot holds, and the chain hash of record `seq`.
fn first_seq(snap: &Arc<Snapshot>) -> Result<Option<u64>, AuditError> {
    Scan::new(snap.clone(), 0, None)
        .next()
        .transpose()
        .map(|s| s.map(|s| s.seq))
}

fn hash_at(snap: &Arc<Snapshot>, seq: u64) -> Option<String> {
    match Scan::new(snap.clone(), seq, None).next() {
        Some(Ok(s)) if s.seq == seq => Some(hex::encode(s.hash)),
        _ => None,
    }
}

impl Rollup {
    /// Loads the saved chunks of the log in `log_dir`, keeps those that
    /// agree with `snap`, and counts the rest of the log from it.
    ///
    /// Never fails: the counts must not keep the log from opening. Where
    /// the log cannot be read (damage `verify` reports), counting stops
    /// before it and the overview's `through_seq` says how far it got.
    pub fn open(log_dir: &Path, snap: Arc<Snapshot>) -> Self {
        let dir = rollup_dir(log_dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(error = %e, "decision log rollup: no directory to save counts in");
        }
        let mut rollup = Self {
            dir,
            names: Names::default(),
            chunks: BTreeMap::new(),
            saved_at: Instant::now(),
        };
        let first = match first_seq(&snap) {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(error = %e, "decision log rollup: the log's first record cannot be read; nothing counted");
                return rollup;
            }
        };
        let kept = first.map_or(0, |f| rollup.load_agreeing(chunk_of(f), f, &snap));
        let counted_before = rollup.through_seq();
        if let Err(e) = rollup.sync(&snap) {
            tracing::warn!(error = %e, through = rollup.through_seq(), "decision log rollup: counting stopped where the log cannot be read");
        }
        if kept == 0 || rollup.through_seq() != counted_before {
            tracing::info!(
                kept_chunks = kept,
                counted_from = counted_before + 1,
                through = rollup.through_seq(),
                "decision log rollup: counted from the log"
            );
        }
        rollup.save(true);
        rollup
    }

    /// Loads saved chunks from `index` on while each continues the last
    /// and agrees with the log; returns how many. Files of later chunks
    /// are removed: they are counted again.
    fn load_agreeing(&mut self, mut index: u64, first: u64, snap: &Arc<Snapshot>) -> usize {
        let mut expected_first = first;
        loop {
            let path = chunk_path(&self.dir, index);
            let Some(file) = read_chunk(&path) else {
                break;
            };
            let agrees = file.format == FORMAT
                && file.first_seq == expected_first
                && (file.first_seq..=chunk_end(index)).contains(&file.through_seq)
                && hash_at(snap, file.through_seq).as_deref() == Some(file.through_hash.as_str())
                && counts_add_up(&file);
            if !agrees {
                tracing::warn!(file = %path.display(), "decision log rollup: a saved chunk disagrees with the log; counting again");
                break;
            }
            let full = file.through_seq == chunk_end(index);
            let chunk = self.chunk_from(file);
            self.chunks.insert(index, Arc::new(chunk));
            if !full {
                break;
            }
            index += 1;
            expected_first = chunk_end(index - 1) + 1;
        }
        self.remove_files_from(index + u64::from(self.chunks.contains_key(&index)));
        self.chunks.len()
    }

    fn chunk_from(&mut self, file: ChunkFile) -> Chunk {
        let ids: Vec<u32> = file.names.iter().map(|n| self.names.id(n)).collect();
        let at = |i: u32| ids.get(i as usize).copied().unwrap_or(0);
        let minutes = file
            .minutes
            .into_iter()
            .map(|(m, mut minute)| {
                for (c, _) in &mut minute.cells {
                    c.kind = at(c.kind);
                    c.caller = at(c.caller);
                }
                for (p, _) in &mut minute.policies {
                    p.policy = at(p.policy);
                    p.kind = at(p.kind);
                }
                (m, minute)
            })
            .collect();
        Chunk {
            first_seq: file.first_seq,
            through_seq: file.through_seq,
            through_hash: file.through_hash,
            minutes,
            saved: true,
        }
    }

    fn remove_files_from(&self, index: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let n = name
                .to_str()
                .and_then(|n| n.strip_prefix("chunk-"))
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok());
            if n.is_some_and(|n| n >= index) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The last record counted (0: none).
    pub fn through_seq(&self) -> u64 {
        self.chunks
            .values()
            .next_back()
            .map_or(0, |c| c.through_seq)
    }

    /// Brings the counts level with `snap`: chunks wholly before its first
    /// record dropped (retention), the one it starts inside counted again,
    /// and records past the last counted one added.
    pub fn sync(&mut self, snap: &Arc<Snapshot>) -> Result<(), AuditError> {
        let Some(first) = first_seq(snap)? else {
            self.chunks.clear();
            self.remove_files_from(0);
            return Ok(());
        };
        let first_chunk = chunk_of(first);
        self.chunks.retain(|&i, _| i >= first_chunk);
        self.remove_files_below(first_chunk);
        let cut = self
            .chunks
            .get(&first_chunk)
            .filter(|c| c.first_seq < first)
            .map(|c| c.through_seq);
        if let Some(through) = cut {
            self.chunks.remove(&first_chunk);
            let _ = std::fs::remove_file(chunk_path(&self.dir, first_chunk));
            self.count(snap, first, through)?;
        }
        let from = match self.through_seq() {
            0 => first,
            n => n + 1,
        };
        self.count(snap, from, u64::MAX)
    }

    /// Counts the log's records `from..=through`.
    fn count(&mut self, snap: &Arc<Snapshot>, from: u64, through: u64) -> Result<(), AuditError> {
        for stored in Scan::new(snap.clone(), from, None) {
            let stored = stored?;
            if stored.seq > through {
                break;
            }
            let fields: Fields = serde_json::from_slice(&stored.line())
                .map_err(|e| AuditError::Format(format!("record {}: {e}", stored.seq)))?;
            self.add(stored.seq, &hex::encode(stored.hash), &fields.counted());
        }
        Ok(())
    }

    fn remove_files_below(&self, index: u64) {
        for i in 0..index {
            let path = chunk_path(&self.dir, i);
            if path.exists() {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Counts record `seq` (with chain hash `hash`): the next after the
    /// last counted, as the writer commits them.
    pub fn add(&mut self, seq: u64, hash: &str, r: &Counted<'_>) {
        let kind = self.names.id(r.kind);
        let caller = self.names.id(r.caller.unwrap_or(""));
        let deny = r.decision == Outcome::Deny;
        let outcome = match r.outcome {
            None => 0,
            Some(FinalOutcome::Done) => 1,
            Some(FinalOutcome::Refused) => 2,
            Some(FinalOutcome::Failed) => 3,
        };
        let policies: Vec<u32> = r.policies.iter().map(|p| self.names.id(p)).collect();
        let chunk = Arc::make_mut(self.chunks.entry(chunk_of(seq)).or_insert_with(|| {
            Arc::new(Chunk {
                first_seq: seq,
                through_seq: seq,
                through_hash: String::new(),
                minutes: BTreeMap::new(),
                saved: false,
            })
        }));
        chunk.through_seq = seq;
        chunk.through_hash = hash.to_owned();
        chunk.saved = false;
        let minute = chunk.minutes.entry(r.timestamp_ms / MINUTE_MS).or_default();
        let cell = Cell {
            kind,
            caller,
            deny,
            outcome,
        };
        bump(&mut minute.cells, cell);
        for policy in policies {
            bump(&mut minute.policies, PolicyCell { policy, kind, deny });
        }
    }

    /// Saves full chunks not yet saved, and the open one when `all` or
    /// when it was last saved [`SAVE_EVERY`] ago. A failed save is logged
    /// and tried again later: the counts are rebuilt from the log anyway.
    pub fn save(&mut self, all: bool) {
        let due = all || self.saved_at.elapsed() >= SAVE_EVERY;
        let last = self.chunks.keys().next_back().copied();
        let mut wrote_open = false;
        for (&index, chunk) in &self.chunks {
            let full = chunk.through_seq == chunk_end(index);
            if chunk.saved || !(full || (due && Some(index) == last)) {
                continue;
            }
            let file = ChunkFile {
                format: FORMAT,
                first_seq: chunk.first_seq,
                through_seq: chunk.through_seq,
                through_hash: chunk.through_hash.clone(),
                names: self.names.list.clone(),
                minutes: chunk.minutes.iter().map(|(m, c)| (*m, c.clone())).collect(),
            };
            let bytes = serde_json::to_vec(&file).expect("rollup chunks serialize");
            match super::segment::write_atomic(&chunk_path(&self.dir, index), &bytes) {
                Ok(()) => wrote_open |= Some(index) == last,
                Err(e) => tracing::warn!(error = %e, "decision log rollup: saving a chunk failed"),
            }
        }
        for (&index, chunk) in self.chunks.iter_mut() {
            let full = chunk.through_seq == chunk_end(index);
            if !chunk.saved && (full || (wrote_open && Some(index) == last)) {
                Arc::make_mut(chunk).saved = true;
            }
        }
        if due {
            self.saved_at = Instant::now();
        }
    }

    /// The overview of the records written in `q`'s range.
    pub fn overview(&self, q: &OverviewQuery) -> Overview {
        self.view().overview(q)
    }

    /// The counts as of now, for an overview computed after the lock that
    /// guards them is released (the writer is not held up meanwhile).
    pub fn view(&self) -> View {
        View {
            names: self.names.list.clone(),
            chunks: self.chunks.values().cloned().collect(),
            through_seq: self.through_seq(),
        }
    }
}

/// The counts as of one moment.
pub struct View {
    names: Vec<String>,
    chunks: Vec<Arc<Chunk>>,
    through_seq: u64,
}

impl View {
    /// The overview of the records written in `q`'s range.
    pub fn overview(&self, q: &OverviewQuery) -> Overview {
        super::overview::compute(self, q)
    }

    /// The last record counted (0: none).
    pub fn through_seq(&self) -> u64 {
        self.through_seq
    }

    /// Every counted minute in `[from, to)` (minutes since the epoch).
    pub(super) fn minutes(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, &Minute)> + '_ {
        self.chunks
            .iter()
            .flat_map(move |c| c.minutes.range(from..to).map(|(m, c)| (*m, c)))
    }

    pub(super) fn names_len(&self) -> usize {
        self.names.len()
    }

    pub(super) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub(super) fn name_id(&self, name: &str) -> Option<u32> {
        self.names.iter().position(|n| n == name).map(|i| i as u32)
    }
}

/// For [`super::overview`]: a minute's cells.
impl Minute {
    pub(super) fn cells(&self) -> impl Iterator<Item = (u32, u32, bool, u8, u64)> + '_ {
        self.cells
            .iter()
            .map(|(c, n)| (c.kind, c.caller, c.deny, c.outcome, *n))
    }

    pub(super) fn policy_cells(&self) -> impl Iterator<Item = (u32, u32, bool, u64)> + '_ {
        self.policies
            .iter()
            .map(|(p, n)| (p.policy, p.kind, p.deny, *n))
    }
}

#[cfg(test)]
#[path = "rollup_tests.rs"]
mod tests;
