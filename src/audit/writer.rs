//! The one writer of the decision log: a dedicated thread that owns the
//! write side of its files ([`super::append`]), fed by a bounded channel.
//!
//! Each cycle it takes everything waiting (up to [`MAX_RECORDS_PER_TXN`];
//! a cycle of only queued records lets more join for [`GROUP_WINDOW`]),
//! gives each record its sequence number and chain hash in arrival order,
//! appends them to the journal and makes them durable (one fsync), then
//! answers the `commit` callers whose records were in it. There is no timer:
//! while one commit is in flight the next batch accumulates, so under load
//! many records share an fsync and when idle a record is written at once.
//! A record enqueued for `/v1/authorize` is therefore on disk after at most
//! the commit in flight plus its own — the crash window documented in
//! docs/decision-log.md. The channel is bounded: when the disk falls behind,
//! senders wait (backpressure) rather than records being dropped.

use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use super::append::{self, Appender};
use super::backlog::Backlog;
use super::canonical::Unsealed;
use super::record::PrunedRange;
use super::rollup::Rollups;
use super::AuditError;

/// Messages the channel holds before senders wait. A batch message holds at
/// most [`crate::http::authorize::MAX_BATCH`] records.
pub const QUEUE_MESSAGES: usize = 1024;
/// Most records one transaction takes, so one cycle stays short.
pub const MAX_RECORDS_PER_TXN: usize = 4096;
/// How long a cycle holding only queued `/v1/authorize` records waits for
/// more before committing: bounds commits (and their CPU) to ~100/s under
/// light load. Cycles with a `commit` waiter, a flush or a prune don't wait.
pub const GROUP_WINDOW: Duration = Duration::from_millis(10);

pub(super) enum Msg {
    /// High-volume records: acknowledged when queued.
    Batch(Vec<Unsealed>),
    /// One record whose caller waits for its durable commit.
    Commit(Box<Unsealed>, oneshot::Sender<Result<u64, AuditError>>),
    /// Answered once everything sent before it is durable.
    Flush(oneshot::Sender<()>),
    /// Retention: remove records older than `before_ms`, leave an anchor.
    Prune {
        before_ms: u64,
        /// Records younger than this are never removed.
        min_retention_ms: u64,
        principal: String,
        ack: oneshot::Sender<Result<Option<PrunedRange>, AuditError>>,
    },
    /// Write everything, leave the clean-close head, stop.
    Close(oneshot::Sender<Result<(), AuditError>>),
}

/// What the writer shares with the log's readers.
pub(super) struct Shared {
    /// Records sent and not yet durable (`/readyz`).
    pub backlog: Arc<Backlog>,
    /// Each group commit (append and fsync), timed for `/metrics`.
    pub commits: Histogram,
    /// The per-minute counts, which the writer keeps level with the log.
    pub rollups: Rollups,
    /// The files, for the snapshot a prune recounts from.
    pub files: Arc<append::Shared>,
}

/// Starts the writer thread. It stops after a [`Msg::Close`], or when every
/// sender is dropped; either way it closes the log cleanly.
pub(super) fn spawn(appender: Appender, shared: Shared) -> Result<mpsc::Sender<Msg>, AuditError> {
    let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
    std::thread::Builder::new()
        .name("decision-log-writer".to_owned())
        .spawn(move || run(appender, rx, &shared))
        .map_err(|e| AuditError::Write(format!("cannot start the writer thread: {e}")))?;
    Ok(tx)
}

type CommitAck = oneshot::Sender<Result<u64, AuditError>>;
type PruneAck = oneshot::Sender<Result<Option<PrunedRange>, AuditError>>;

/// What one cycle gathered.
#[derive(Default)]
struct Cycle {
    records: Vec<Unsealed>,
    /// Index in `records` of a record whose sender waits for it.
    waiters: Vec<(usize, CommitAck)>,
    /// `(before_ms, min_retention_ms, principal, ack)`.
    prunes: Vec<(u64, u64, String, PruneAck)>,
    close: Option<oneshot::Sender<Result<(), AuditError>>>,
    /// Someone waits: commit without the group window.
    urgent: bool,
}

impl Cycle {
    /// Takes one message; false once the cycle must end (prune or close).
    fn take(&mut self, m: Msg, flushes: &mut Vec<oneshot::Sender<()>>) -> bool {
        match m {
            Msg::Batch(rs) => self.records.extend(rs),
            Msg::Commit(r, ack) => {
                self.waiters.push((self.records.len(), ack));
                self.records.push(*r);
                self.urgent = true;
            }
            Msg::Flush(ack) => {
                flushes.push(ack);
                self.urgent = true;
            }
            Msg::Prune {
                before_ms,
                min_retention_ms,
                principal,
                ack,
            } => {
                self.prunes
                    .push((before_ms, min_retention_ms, principal, ack));
                return false;
            }
            Msg::Close(ack) => {
                self.close = Some(ack);
                return false;
            }
        }
        true
    }
}

/// Gathers one cycle: blocks for the first message unless work is carried
/// over, then takes what is waiting (a cycle of only queued records waits
/// up to [`GROUP_WINDOW`] for more). `None` when every sender is gone.
fn gather(
    rx: &mut mpsc::Receiver<Msg>,
    mut cycle: Cycle,
    flushes: &mut Vec<oneshot::Sender<()>>,
) -> Option<Cycle> {
    let carried_over = !cycle.records.is_empty() || !flushes.is_empty();
    cycle.urgent = carried_over;
    let first = if carried_over {
        rx.try_recv().ok()
    } else {
        Some(rx.blocking_recv()?)
    };
    if let Some(m) = first {
        if !cycle.take(m, flushes) {
            return Some(cycle);
        }
    }
    let window = Instant::now() + GROUP_WINDOW;
    while cycle.records.len() < MAX_RECORDS_PER_TXN {
        match rx.try_recv() {
            Ok(m) => {
                if !cycle.take(m, flushes) {
                    break;
                }
            }
            Err(mpsc::error::TryRecvError::Empty) if !cycle.urgent && Instant::now() < window => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(_) => break,
        }
    }
    Some(cycle)
}

fn run(mut log: Appender, mut rx: mpsc::Receiver<Msg>, shared: &Shared) {
    let Shared {
        backlog, commits, ..
    } = shared;
    // Records of a commit that failed: written again, first, next cycle.
    let mut retry: Vec<Unsealed> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let carried = Cycle {
            records: std::mem::take(&mut retry),
            ..Cycle::default()
        };
        let Some(cycle) = gather(&mut rx, carried, &mut flushes) else {
            if let Err(e) = log.close() {
                tracing::error!(error = %e, "decision log: closing failed");
            }
            rollup(shared).save(true);
            return;
        };
        if !cycle.records.is_empty() {
            #[cfg(debug_assertions)]
            stall_for_tests();
            let started = Instant::now();
            let appended = log.append(&cycle.records);
            commits.observe(started.elapsed().as_secs_f64());
            let places = match appended {
                Ok(places) => places,
                Err(e) => {
                    let n = cycle.records.len();
                    retry = failed(cycle, &e);
                    // Refused back to their waiting callers: no longer pending.
                    backlog.done(n - retry.len());
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            backlog.done(cycle.records.len());
            // Counted once durable, so the counts are never ahead of the log.
            {
                let mut counts = rollup(shared);
                for ((seq, hash), r) in places.iter().zip(&cycle.records) {
                    counts.add(*seq, &super::digest::to_hex(hash), &r.counted());
                }
                counts.save(false);
            }
            for (i, ack) in cycle.waiters {
                let _ = ack.send(Ok(places[i].0));
            }
        }
        for (before_ms, min_retention_ms, principal, ack) in cycle.prunes {
            let pruned = log.prune(before_ms, min_retention_ms, &principal);
            if matches!(pruned, Ok(Some(_))) {
                recount_after_prune(shared);
            }
            let _ = ack.send(pruned);
        }
        for ack in flushes.drain(..) {
            let _ = ack.send(());
        }
        if let Some(ack) = cycle.close {
            let closed = log.close();
            rollup(shared).save(true);
            // The directory lock goes with the appender: released before the
            // closer hears back, so it may reopen at once.
            drop(log);
            let _ = ack.send(closed);
            return;
        }
    }
}

fn rollup(shared: &Shared) -> std::sync::RwLockWriteGuard<'_, super::rollup::Rollup> {
    shared.rollups.write().unwrap_or_else(|p| p.into_inner())
}

/// Retention removed a prefix and appended its anchor: the counts drop
/// what went and count the anchor. A failure leaves them as they were until
/// the next open counts again from the log.
fn recount_after_prune(shared: &Shared) {
    let snapshot = {
        let layout = shared.files.layout().clone();
        super::Snapshot::open(layout, shared.files.meta.chain_hash)
    };
    let synced = snapshot.and_then(|s| rollup(shared).sync(&Arc::new(s)));
    if let Err(e) = synced {
        tracing::error!(error = %e, "decision log rollup: recounting after retention failed");
    }
    rollup(shared).save(true);
}

/// Debug builds only: while the file named by `ETAX_TEST_STALL_LOG_WRITER`
/// exists the writer waits before each commit, as behind a hung disk, so a
/// test of `/readyz` can stall the real writer of a real server.
#[cfg(debug_assertions)]
fn stall_for_tests() {
    let Some(path) = std::env::var_os("ETAX_TEST_STALL_LOG_WRITER") else {
        return;
    };
    while std::path::Path::new(&path).exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A commit failed (disk full): callers waiting on it learn so and must not
/// proceed; queued records are kept to be written again (nothing is
/// dropped) while the channel fills and senders wait. Returns those.
fn failed(cycle: Cycle, e: &AuditError) -> Vec<Unsealed> {
    tracing::error!(error = %e, records = cycle.records.len(), "decision log commit failed; retrying");
    let msg = e.to_string();
    let mut waiting = vec![false; cycle.records.len()];
    for (i, ack) in cycle.waiters {
        waiting[i] = true;
        let _ = ack.send(Err(AuditError::Write(msg.clone())));
    }
    for (_, _, _, ack) in cycle.prunes {
        let _ = ack.send(Err(AuditError::Write(msg.clone())));
    }
    if let Some(ack) = cycle.close {
        let _ = ack.send(Err(AuditError::Write(msg.clone())));
    }
    cycle
        .records
        .into_iter()
        .zip(waiting)
        .filter(|(_, w)| !w)
        .map(|(r, _)| r)
        .collect()
}
