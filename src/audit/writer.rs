//! The one writer of the decision log: a dedicated thread that owns the
//! write side of `decisions.redb`, fed by a bounded channel.
//!
//! Each cycle it takes everything waiting (up to [`MAX_RECORDS_PER_TXN`];
//! a cycle of only queued records lets more join for [`GROUP_WINDOW`]),
//! gives each record its sequence number and chain hash in arrival order,
//! writes them in one transaction and commits it durably (one fsync), then
//! answers the `commit` callers whose records were in it. There is no timer:
//! while one commit is in flight the next batch accumulates, so under load
//! many records share an fsync and when idle a record is written at once.
//! A record enqueued for `/v1/authorize` is therefore on disk after at most
//! the commit in flight plus its own — the crash window documented in
//! docs/decision-log.md. The channel is bounded: when the disk falls behind,
//! senders wait (backpressure) rather than records being dropped.

use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use super::chain::{self, Checkpoint, ANCHOR_KEY, GENESIS, HEAD_KEY};
use super::record::PrunedRange;
use super::{AuditError, DecisionRecord, Outcome, DECISIONS, META};

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
    Batch(Vec<DecisionRecord>),
    /// One record whose caller waits for its durable commit.
    Commit(
        Box<DecisionRecord>,
        oneshot::Sender<Result<u64, AuditError>>,
    ),
    /// Answered once everything sent before it is durable.
    Flush(oneshot::Sender<()>),
    /// Retention: remove records older than `before_ms`, leave an anchor.
    Prune {
        before_ms: u64,
        principal: String,
        ack: oneshot::Sender<Result<Option<PrunedRange>, AuditError>>,
    },
}

/// The last record written: where the next one links.
#[derive(Clone)]
struct Head {
    seq: u64,
    hash: String,
}

/// Starts the writer thread. It stops when every sender is dropped, after
/// writing what is queued.
pub(super) fn spawn(db: Arc<Database>) -> Result<mpsc::Sender<Msg>, AuditError> {
    let head = match chain::checkpoint(&db)? {
        Some(cp) => Head {
            seq: cp.seq,
            hash: cp.hash,
        },
        None => legacy_head(&db)?,
    };
    let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
    std::thread::Builder::new()
        .name("decision-log-writer".to_owned())
        .spawn(move || Writer { db, head }.run(rx))
        .map_err(|e| AuditError::Write(format!("cannot start the writer thread: {e}")))?;
    Ok(tx)
}

/// The head of a log written before the chain existed (no head marker):
/// append after its last record rather than over it.
fn legacy_head(db: &Database) -> Result<Head, AuditError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read()?;
    let table = txn.open_table(DECISIONS)?;
    let last = table.last()?.map(|(k, v)| {
        let hash = serde_json::from_slice::<DecisionRecord>(v.value())
            .ok()
            .map(|r| r.hash)
            .filter(|h| !h.is_empty());
        (k.value(), hash)
    });
    Ok(match last {
        Some((seq, hash)) => Head {
            seq,
            hash: hash.unwrap_or_else(|| GENESIS.to_owned()),
        },
        None => Head {
            seq: 0,
            hash: GENESIS.to_owned(),
        },
    })
}

struct Writer {
    db: Arc<Database>,
    head: Head,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        // Records of a transaction that failed: written again, first, next cycle.
        let mut retry: Vec<DecisionRecord> = Vec::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            let mut records = std::mem::take(&mut retry);
            let mut waiters: Vec<(usize, oneshot::Sender<Result<u64, AuditError>>)> = Vec::new();
            let mut prunes = Vec::new();
            // Retried records or flushes carried over: no waiting this cycle.
            let carried_over = !records.is_empty() || !flushes.is_empty();
            let first = if !carried_over {
                match rx.blocking_recv() {
                    Some(m) => Some(m),
                    None => return,
                }
            } else {
                rx.try_recv().ok()
            };
            // What a message asks of this cycle.
            #[derive(PartialEq)]
            enum Ask {
                /// Queued records: may wait for company.
                Batch,
                /// Someone waits: commit now.
                Now,
                /// A prune: commit now and end the cycle.
                Prune,
            }
            let mut take = |m: Msg, records: &mut Vec<DecisionRecord>| match m {
                Msg::Batch(rs) => {
                    records.extend(rs);
                    Ask::Batch
                }
                Msg::Commit(r, ack) => {
                    waiters.push((records.len(), ack));
                    records.push(*r);
                    Ask::Now
                }
                Msg::Flush(ack) => {
                    flushes.push(ack);
                    Ask::Now
                }
                Msg::Prune {
                    before_ms,
                    principal,
                    ack,
                } => {
                    prunes.push((before_ms, principal, ack));
                    Ask::Prune
                }
            };
            let mut urgent = carried_over;
            let mut pruning = false;
            if let Some(m) = first {
                match take(m, &mut records) {
                    Ask::Batch => {}
                    Ask::Now => urgent = true,
                    Ask::Prune => pruning = true,
                }
            }
            let window = std::time::Instant::now() + GROUP_WINDOW;
            while records.len() < MAX_RECORDS_PER_TXN && !pruning {
                match rx.try_recv() {
                    Ok(m) => match take(m, &mut records) {
                        Ask::Batch => {}
                        Ask::Now => urgent = true,
                        Ask::Prune => pruning = true,
                    },
                    // Only queued records so far: let more join this commit.
                    Err(mpsc::error::TryRecvError::Empty)
                        if !urgent && std::time::Instant::now() < window =>
                    {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(_) => break,
                }
            }

            if !records.is_empty() {
                match self.append(&mut records) {
                    Ok(()) => {
                        for (i, ack) in waiters {
                            let _ = ack.send(Ok(records[i].seq));
                        }
                    }
                    Err(e) => {
                        // Nothing is dropped: queued records are written again
                        // while the channel fills and senders wait; callers
                        // waiting on a commit learn it failed.
                        tracing::error!(error = %e, records = records.len(), "decision log commit failed; retrying");
                        let msg = e.to_string();
                        let mut waiting = vec![false; records.len()];
                        for (i, ack) in waiters {
                            waiting[i] = true;
                            let _ = ack.send(Err(AuditError::Write(msg.clone())));
                        }
                        retry = records
                            .into_iter()
                            .zip(waiting)
                            .filter(|(_, w)| !w)
                            .map(|(r, _)| r)
                            .collect();
                        for (_, _, ack) in prunes {
                            let _ = ack.send(Err(AuditError::Write(msg.clone())));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
            }
            for (before_ms, principal, ack) in prunes {
                let _ = ack.send(self.prune(before_ms, &principal));
            }
            if retry.is_empty() {
                for ack in flushes.drain(..) {
                    let _ = ack.send(());
                }
            }
        }
    }

    /// Seals and writes `records` in one durable transaction.
    fn append(&mut self, records: &mut [DecisionRecord]) -> Result<(), AuditError> {
        let txn = self.db.begin_write()?;
        let mut head = self.head.clone();
        {
            let mut table = txn.open_table(DECISIONS)?;
            let mut meta = txn.open_table(META)?;
            for r in records.iter_mut() {
                head.seq += 1;
                let bytes = chain::seal(r, head.seq, &head.hash);
                table.insert(head.seq, bytes.as_slice())?;
                head.hash.clone_from(&r.hash);
            }
            let last = records.last().expect("append is given records");
            let cp = serde_json::to_vec(&Checkpoint::of(last)).expect("checkpoints serialize");
            meta.insert(HEAD_KEY, cp.as_slice())?;
        }
        txn.commit()?;
        self.head = head;
        Ok(())
    }

    /// Removes the oldest records written before `before_ms` (a prefix of the
    /// log: it stops at the first newer record) and, in the same transaction,
    /// appends an anchor record carrying the hash of the last one removed.
    fn prune(
        &mut self,
        before_ms: u64,
        principal: &str,
    ) -> Result<Option<PrunedRange>, AuditError> {
        let txn = self.db.begin_write()?;
        let mut head = self.head.clone();
        let range;
        {
            let mut table = txn.open_table(DECISIONS)?;
            let mut meta = txn.open_table(META)?;
            let mut found: Option<PrunedRange> = None;
            for item in table.iter()? {
                let (k, v) = item?;
                let Ok(r) = serde_json::from_slice::<DecisionRecord>(v.value()) else {
                    break;
                };
                if r.timestamp_ms >= before_ms {
                    break;
                }
                match &mut found {
                    Some(f) => {
                        f.last_seq = k.value();
                        f.last_hash = r.hash;
                    }
                    None => {
                        found = Some(PrunedRange {
                            first_seq: k.value(),
                            last_seq: k.value(),
                            last_hash: r.hash,
                        })
                    }
                }
            }
            let Some(pruned) = found else {
                return Ok(None);
            };
            table.retain_in(pruned.first_seq..=pruned.last_seq, |_, _| false)?;
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
            head.seq += 1;
            let bytes = chain::seal(&mut anchor, head.seq, &head.hash);
            table.insert(head.seq, bytes.as_slice())?;
            head.hash.clone_from(&anchor.hash);
            let cp = serde_json::to_vec(&Checkpoint::of(&anchor)).expect("checkpoints serialize");
            meta.insert(HEAD_KEY, cp.as_slice())?;
            let a = serde_json::to_vec(&head.seq).expect("numbers serialize");
            meta.insert(ANCHOR_KEY, a.as_slice())?;
            range = pruned;
        }
        txn.commit()?;
        self.head = head;
        tracing::info!(
            first = range.first_seq,
            last = range.last_seq,
            "decision log pruned"
        );
        Ok(Some(range))
    }
}
