//! The decision log for auditors (审计日志): every decision, the rule that
//! made it, in its own directory of append-only files (`DATA/decisions/`) so
//! audit writes never contend with identity writes.
//!
//! - [`record`]: what one entry holds (masked, never a secret);
//! - [`writer`]: the single writer thread that group-commits;
//! - [`append`]: the writer's side of the files (journal, blocks, segments);
//! - [`segment`]: the directory, opening and recovery, the block index;
//! - [`frame`], [`stored`]: the checksummed frames and the stored unit;
//! - [`scan`]: snapshots of the files and reading records from them;
//! - [`chain`]: the hash chain and checkpoints; [`forensics`]: `verify`;
//! - [`migrate`]: logs of the old single-redb-file format;
//! - [`query`]: filters, pages, table/JSONL/CSV output and export;
//! - [`summary`]: counts per principal, action, decision, policy, …;
//! - [`rollup`]: per-minute counts kept by the writer; [`overview`]: the
//!   console's overview added up from them;
//! - [`time`]: times at an offset (Beijing by default) for filters and output.
//!
//! Retention (removing whole old segments, leaving an anchor record) runs in
//! the writer, so it is ordered with appends. The format and guarantees are
//! documented in `docs/decision-log.md`.

mod append;
pub mod backlog;
mod canonical;
pub mod chain;
pub mod commands;
pub mod digest;
pub mod forensics;
pub mod frame;
pub mod keys;
pub mod migrate;
pub mod overview;
pub mod pseudonym;
pub mod query;
mod record;
pub mod rollup;
pub mod scan;
pub mod segment;
pub mod signing;
pub mod stored;
pub mod summary;
pub mod time;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

pub use chain::{Checkpoint, CheckpointCheck, Problem, TamperKind, Verdict, VerifyReport};
pub use digest::ChainHash;
pub use query::{Filter, Format, Page};
pub use record::{DecisionRecord, FinalOutcome, Outcome, PersonRef, PrunedRange, Target};
pub use scan::Snapshot;
pub use stored::Stored;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("decision log {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("decision log {0} is in use by another process")]
    Locked(String),
    #[error("decision log {0} does not exist")]
    Missing(String),
    #[error("decision log: {0}")]
    Format(String),
    /// The files end at another record than the clean-close head names:
    /// cut, rewritten or a forged head. Not opened for writing.
    #[error("decision log: head.json names record {head_seq} ({head_hash}) but the last record in the files is {last_seq} ({last_hash}); the log is not opened, so nothing is overwritten: run `etax-authz audit verify`, keep the files as evidence (docs/decision-log.md, \"A log that disagrees with its head\")")]
    HeadMismatch {
        head_seq: u64,
        head_hash: String,
        last_seq: u64,
        last_hash: String,
    },
    /// Retention asked to remove a record younger than the minimum.
    #[error("decision log: retention refused: record {seq} was written {written}, less than the minimum retention of {min_days} days ago (PRC Cybersecurity Law art. 21: at least six months)")]
    TooRecent {
        seq: u64,
        written: String,
        min_days: u64,
    },
    /// Records that cannot be read (damaged storage): a read that would go
    /// on past them answers this instead of a partial result.
    #[error("decision_log_unreadable: the decision log cannot be read from record {seq} ({detail}); run `audit verify`")]
    Unreadable { seq: u64, detail: String },
    #[error("decision log writer stopped")]
    Stopped,
    #[error("decision log write failed: {0}")]
    Write(String),
}

/// Records retention may never remove before they are this many days old:
/// the PRC Cybersecurity Law (art. 21) asks that network logs be kept at
/// least six months. `audit verify` holds anchors to the same minimum.
pub const MIN_RETENTION_DAYS: u64 = 180;

/// The decision log directory inside a data directory: the one place its
/// name is decided.
pub fn decision_log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("decisions")
}

/// Creates the directory and `log.json` of a new log (migrating an old
/// `decisions.redb` beside it first), or reads those of an existing one. A
/// log keeps the chain hash it was created with.
fn prepare(dir: &Path, chain_hash: ChainHash) -> Result<segment::LogMeta, AuditError> {
    let io = |e| AuditError::Io {
        path: dir.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    if let Some(meta) = segment::read_meta(dir)? {
        if meta.chain_hash != chain_hash {
            tracing::warn!(log = %meta.chain_hash, asked = %chain_hash, "decision log: keeping the chain hash it was created with");
        }
        return Ok(meta);
    }
    let legacy = migrate::legacy_path(dir);
    if legacy != dir && legacy.is_file() {
        migrate::migrate(&legacy, dir)?;
        return segment::read_meta(dir)?
            .ok_or_else(|| AuditError::Format("migration wrote no log.json".to_owned()));
    }
    let meta = segment::LogMeta {
        format: segment::FORMAT,
        chain_hash,
    };
    segment::write_atomic(
        &segment::meta_path(dir),
        &serde_json::to_vec(&meta).expect("meta serializes"),
    )?;
    Ok(meta)
}

/// Sets a log that disagrees with its head aside and says where the new
/// one continues: after the higher of the head's and the files' last seq.
/// The largest sequence number a head may name when a damaged log is
/// accepted: 2^48 records is ~9,000 years at a million a second.
const PLAUSIBLE_SEQ: u64 = 1 << 48;

fn damaged(
    path: &Path,
    e: &AuditError,
) -> Result<(segment::Recovered, Option<DecisionRecord>), AuditError> {
    let AuditError::HeadMismatch {
        head_seq,
        head_hash,
        last_seq,
        last_hash,
    } = e
    else {
        unreachable!("only a head mismatch is accepted");
    };
    // A forged head could name a sequence number the log can never reach
    // (the red team's u64::MAX overflowed the next one): refuse it before
    // anything is moved, rather than start a log that cannot go on.
    if *head_seq > PLAUSIBLE_SEQ {
        return Err(AuditError::Format(format!(
            "head.json names record {head_seq}, which no log reaches; it is not accepted as \
             a head (move it aside by hand after `audit verify`)"
        )));
    }
    let (seq, hash) = if head_seq >= last_seq {
        (*head_seq, head_hash.clone())
    } else {
        (*last_seq, last_hash.clone())
    };
    let prev = hex::decode(&hash)
        .ok()
        .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
        .unwrap_or([0; 32]);
    let aside = segment::set_aside(path)?;
    tracing::error!(found = %e, kept = %aside.display(), "decision log: damaged; its files were set aside and a new segment started");
    let mut record = DecisionRecord::new(
        &crate::random_id(),
        "log.damage",
        "Operator::\"serve\"",
        "audit.damage",
        &format!("DecisionLog::\"1..={seq}\""),
        None,
        false,
        &[],
        &[],
        "",
        0,
    );
    record.reason = Some(format!(
        "opened with --accept-damaged-log: {e}; the files were moved to {}",
        aside.display()
    ));
    record.pruned = Some(PrunedRange {
        first_seq: 1,
        last_seq: seq,
        last_hash: hex::encode(prev),
        last_record: None,
    });
    let recovered = segment::Recovered {
        // The directory holds no segment or journal now: the writer starts
        // a new segment at `seq + 1`.
        layout: segment::Layout::default(),
        pending: Vec::new(),
        last: (seq, prev, 0),
    };
    Ok((recovered, Some(record)))
}

/// Reads a log nobody writes (no repair, nothing changed): for `audit
/// verify` and `audit checkpoint` on a stopped server's data.
pub fn snapshot_at(dir: &Path) -> Result<Snapshot, AuditError> {
    if !dir.is_dir() && !migrate::legacy_path(dir).is_file() {
        return Err(AuditError::Missing(dir.display().to_string()));
    }
    std::fs::create_dir_all(dir).map_err(|e| AuditError::Io {
        path: dir.display().to_string(),
        source: e,
    })?;
    let _lock = segment::lock(dir)?;
    let mut missing_meta = false;
    let meta = match segment::read_meta(dir)? {
        Some(m) => m,
        // An old-format log: migrated (under the lock) before it is read.
        None if migrate::legacy_path(dir).is_file() => prepare(dir, ChainHash::Sha256)?,
        // Not recreated: reading changes nothing, and its absence is a
        // finding.
        None => {
            missing_meta = true;
            segment::LogMeta {
                format: segment::FORMAT,
                chain_hash: ChainHash::Sha256,
            }
        }
    };
    let mut layout = segment::read_layout(dir)?;
    if missing_meta {
        layout.warnings.push(
            "log.json is missing: its chain hash is unknown, SHA-256 assumed (a wrong guess shows as a chain hash mismatch on record 1)".to_owned(),
        );
    }
    Snapshot::open(layout, meta.chain_hash)
}

/// Appends decision records through the writer thread and reads them back.
/// Cheap to clone; the writer stops when the last clone is dropped.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<append::Shared>,
    tx: mpsc::Sender<writer::Msg>,
    backlog: Arc<backlog::Backlog>,
    /// The writer's group commits, timed (`/metrics`).
    commits: prometheus_client::metrics::histogram::Histogram,
    /// Per-minute counts the writer keeps (the console's overview).
    rollups: rollup::Rollups,
    /// The last verification and checkpoint asked of this log since it was
    /// opened (the console's chain status).
    seen: Arc<Mutex<Seen>>,
}

/// What auditors last asked of the chain.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// When, and the report.
    pub verify: Option<(u64, VerifyReport)>,
    /// When, and the head handed out.
    pub checkpoint: Option<(u64, Checkpoint)>,
}

impl AuditLog {
    /// Opens (creating if needed, with SHA-256) the log in directory `path`
    /// and starts its writer.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        Self::open_with(path, ChainHash::default())
    }

    /// Opens the log, creating it with `chain_hash` if it does not exist (an
    /// existing log keeps its own). The directory is locked to this process:
    /// a second one gets [`AuditError::Locked`]. After a clean close this
    /// reads only frame headers; after a crash it also checks the tail.
    pub fn open_with(path: &Path, chain_hash: ChainHash) -> Result<Self, AuditError> {
        Self::open_inner(path, chain_hash, false)
    }

    /// As [`AuditLog::open_with`], but a log whose files disagree with its
    /// `head.json` ([`AuditError::HeadMismatch`]) is not refused: its files
    /// are moved into `damaged-<time>/` (evidence, never deleted), and a new
    /// segment starts after the higher of the two sequence numbers, its
    /// first record a `log.damage` record naming what was found (an anchor
    /// for the records set aside, so the new log verifies). No sequence
    /// number is reused. Other damage is still refused.
    pub fn open_accepting_damage(path: &Path, chain_hash: ChainHash) -> Result<Self, AuditError> {
        Self::open_inner(path, chain_hash, true)
    }

    fn open_inner(
        path: &Path,
        chain_hash: ChainHash,
        accept_damage: bool,
    ) -> Result<Self, AuditError> {
        std::fs::create_dir_all(path).map_err(|e| AuditError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let lock = segment::lock(path)?;
        let meta = prepare(path, chain_hash)?;
        let (recovered, damage) = match segment::recover(path) {
            Err(e @ AuditError::HeadMismatch { .. }) if accept_damage => damaged(path, &e)?,
            other => (other?, None),
        };
        let shared = Arc::new(append::Shared {
            dir: path.to_owned(),
            meta,
            layout: Mutex::new(segment::Layout::default()),
        });
        let mut appender = append::Appender::open(shared.clone(), lock, recovered)?;
        if let Some(record) = damage {
            appender.append(&[canonical::Unsealed::of(&record)])?;
        }
        let backlog = Arc::new(backlog::Backlog::default());
        // 100 µs to ~1.6 s, doubling: an fsync is a few ms on a healthy disk.
        let commits = prometheus_client::metrics::histogram::Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.000_1, 2.0, 15),
        );
        let snapshot = Arc::new(Snapshot::open(
            shared.layout().clone(),
            shared.meta.chain_hash,
        )?);
        let rollups = Arc::new(std::sync::RwLock::new(rollup::Rollup::open(path, snapshot)));
        let tx = writer::spawn(
            appender,
            writer::Shared {
                backlog: backlog.clone(),
                commits: commits.clone(),
                rollups: rollups.clone(),
                files: shared.clone(),
            },
        )?;
        Ok(Self {
            shared,
            tx,
            backlog,
            commits,
            rollups,
            seen: Arc::default(),
        })
    }

    /// Opens an existing log (for the `audit` commands), never creating one.
    pub fn open_existing(path: &Path) -> Result<Self, AuditError> {
        if !path.is_dir() && !migrate::legacy_path(path).is_file() {
            return Err(AuditError::Missing(path.display().to_string()));
        }
        Self::open(path)
    }

    /// How long each group commit took (shared with the writer thread).
    pub fn commit_latency(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.commits.clone()
    }

    /// Messages waiting for the writer: how far it is behind.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The chain hash this log was created with.
    pub fn chain_hash(&self) -> ChainHash {
        self.shared.meta.chain_hash
    }

    /// Appends `record` and returns its sequence number once it is durably
    /// committed: for login and maintenance decisions, whose response must
    /// not outrun the log.
    pub async fn commit(&self, record: DecisionRecord) -> Result<u64, AuditError> {
        let (ack, done) = oneshot::channel();
        let record = Box::new(canonical::Unsealed::of(&record));
        self.send_counted(1, writer::Msg::Commit(record, ack))
            .await?;
        done.await.map_err(|_| AuditError::Stopped)?
    }

    /// Queues records of high-volume `/v1/authorize` decisions for the next
    /// group commit. Returns once queued; waits while the queue is full
    /// (backpressure), never drops.
    pub async fn enqueue<R: std::borrow::Borrow<DecisionRecord>>(
        &self,
        records: Vec<R>,
    ) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        // Written here, on the thread that made the records (see
        // `canonical::Unsealed`); the records are freed here too.
        let records: Vec<_> = records
            .iter()
            .map(|r| canonical::Unsealed::of(r.borrow()))
            .collect();
        self.send_counted(records.len(), writer::Msg::Batch(records))
            .await
    }

    /// Sends `n` records, counted as pending before they can be written (so
    /// the writer never counts out what was not yet counted in).
    async fn send_counted(&self, n: usize, msg: writer::Msg) -> Result<(), AuditError> {
        self.backlog.sent(n);
        self.tx.send(msg).await.map_err(|_| {
            self.backlog.done(n);
            AuditError::Stopped
        })
    }

    /// Whether the writer thread still takes records: once it has ended
    /// (a panic), every decision fails, which `/readyz` must say.
    pub fn writer_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Records sent to the writer and not yet durable, and how long they
    /// have waited (`/readyz`).
    pub fn backlog(&self) -> backlog::BacklogState {
        self.backlog.state()
    }

    /// Returns once everything queued before it is durable.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(writer::Msg::Flush(ack))
            .await
            .map_err(|_| AuditError::Stopped)?;
        done.await.map_err(|_| AuditError::Stopped)
    }

    /// Retention: removes the records written before `before_ms` (oldest
    /// first, stopping at the first newer one) and appends an anchor record
    /// naming the last one removed and its hash, so the rest still verifies.
    /// `principal` says who asked (`retention`, an operator, a key id).
    /// Refused ([`AuditError::TooRecent`]) when a record to remove is younger
    /// than `min_retention_days` (the law asks for 180; tests pass 0).
    pub async fn prune(
        &self,
        before_ms: u64,
        min_retention_days: u64,
        principal: &str,
    ) -> Result<Option<PrunedRange>, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(writer::Msg::Prune {
                before_ms,
                min_retention_ms: min_retention_days.saturating_mul(append::DAY_MS),
                principal: principal.to_owned(),
                ack,
            })
            .await
            .map_err(|_| AuditError::Stopped)?;
        done.await.map_err(|_| AuditError::Stopped)?
    }

    /// Writes everything queued, compresses it, leaves the clean-close head
    /// and stops the writer: the next open does no repair. Every later
    /// append gets [`AuditError::Stopped`].
    pub async fn close(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(writer::Msg::Close(ack))
            .await
            .map_err(|_| AuditError::Stopped)?;
        done.await.map_err(|_| AuditError::Stopped)?
    }

    /// The log's files as of now, for reading while the writer goes on.
    pub fn snapshot(&self) -> Result<Snapshot, AuditError> {
        let layout = self.shared.layout();
        Snapshot::open(layout.clone(), self.shared.meta.chain_hash)
    }

    /// Records from sequence number `from_seq` on (and, with `since_ms`,
    /// skipping blocks wholly older), oldest first, as of now. The snapshot
    /// is kept by the iterator.
    pub fn scan(&self, from_seq: u64, since_ms: Option<u64>) -> Result<scan::Scan, AuditError> {
        Ok(scan::Scan::new(
            Arc::new(self.snapshot()?),
            from_seq,
            since_ms,
        ))
    }

    /// Walks every frame and the chain (blocking: run it off the async
    /// workers).
    pub fn verify(&self, checkpoint: Option<&Checkpoint>) -> Result<VerifyReport, AuditError> {
        forensics::verify_open(&self.snapshot()?, checkpoint)
    }

    /// The overview of `q`'s range, from the writer's counts.
    pub fn overview(&self, q: &overview::OverviewQuery) -> overview::Overview {
        let view = self
            .rollups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .view();
        view.overview(q)
    }

    /// Remembers a verification's report, for the chain status.
    pub fn saw_verify(&self, report: &VerifyReport) {
        self.seen().verify = Some((crate::now_ms(), report.clone()));
    }

    /// Remembers a head handed out as a checkpoint.
    pub fn saw_checkpoint(&self, head: &Checkpoint) {
        self.seen().checkpoint = Some((crate::now_ms(), head.clone()));
    }

    /// The last verification and checkpoint since the log was opened.
    pub fn last_seen(&self) -> Seen {
        self.seen().clone()
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The head of the log, `None` while empty.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        Ok(self.shared.layout().head.clone())
    }

    /// One page of records matching `filter` after sequence number `after`.
    pub fn query(&self, filter: &Filter, after: u64, limit: usize) -> Result<Page, AuditError> {
        query::page(self, filter, after, limit)
    }

    /// Every record, oldest first.
    pub fn all(&self) -> Result<Vec<(u64, DecisionRecord)>, AuditError> {
        let mut out = Vec::new();
        for s in self.scan(1, None)? {
            let s = s?;
            if let Ok(r) = serde_json::from_slice(&s.line()) {
                out.push((s.seq, r));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
