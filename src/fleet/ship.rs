//! Shipping this sidecar's decision log to the fleet's table
//! (`fleet_decisions`, migration 0003). The local log stays the source of
//! truth and keeps its own hash chain exactly as in the embedded mode; a
//! background task copies its durable records, in order, into PostgreSQL.
//!
//! Why tail the local files rather than write to PostgreSQL from the
//! writer: a decision must never wait on the database, and a host cut off
//! for an hour must lose nothing. The local log is already durable and
//! ordered, so the shipper only needs a position — the fleet's highest
//! sequence number for this host, asked again after every failure — and
//! every insert is idempotent (`ON CONFLICT DO NOTHING`). A row already
//! there with another hash is not skipped: shipping stops and says so (two
//! sidecars sharing a host name, or a local log replaced), since going on
//! would interleave two chains under one name.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Fleet, FleetError};
use crate::audit::{AuditError, AuditLog, Stored};

/// Records one insert carries: a few hundred KiB of JSON at most.
pub const BATCH: usize = 1000;
/// How often an idle shipper looks at the local head (a mutex read).
const POLL: Duration = Duration::from_millis(100);
/// Waits after a failure, doubling between these bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The fleet already holds another record at this host's position.
    #[error(
        "fleet_decisions already holds record {seq} of host {host} with hash {theirs}, but \
         the local record {seq} has hash {ours}: shipping stopped (two sidecars share the \
         host name, or this host's log was replaced)"
    )]
    Conflict {
        host: String,
        seq: u64,
        ours: String,
        theirs: String,
    },
}

impl From<tokio_postgres::Error> for ShipError {
    fn from(e: tokio_postgres::Error) -> Self {
        ShipError::Fleet(e.into())
    }
}

/// How far shipping has got, shared with `/v1/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct Progress {
    /// The highest sequence number known to be in the fleet's table.
    shipped: AtomicU64,
    /// When the oldest record not yet shipped was written (0: none seen).
    oldest_unshipped_ms: AtomicU64,
    failures: AtomicU64,
    /// A conflicting record was found: shipping is stopped.
    conflict: AtomicBool,
    /// Whether the last attempt reached the database.
    connected: AtomicBool,
}

/// What is not yet in the fleet's table.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Lag {
    /// The local log's last durable record.
    pub head_seq: u64,
    /// The highest record of this host in the fleet's table.
    pub shipped_seq: u64,
    /// Records written locally and not yet shipped.
    pub records: u64,
    /// How long the oldest of them has waited, ms (absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_age_ms: Option<u64>,
    /// Whether the last attempt reached the fleet's database.
    pub connected: bool,
    /// Failed attempts since start.
    pub failures: u64,
    /// Another record already holds one of this host's positions in the
    /// fleet's table: shipping stopped until an operator looks.
    pub conflict: bool,
}

/// The shipper of this host's records, and the fleet it ships to. Cheap to
/// clone.
#[derive(Clone)]
pub struct Shipper {
    fleet: Fleet,
    log: AuditLog,
    progress: Arc<Progress>,
}

impl Shipper {
    pub fn new(fleet: Fleet, log: AuditLog) -> Self {
        Self {
            fleet,
            log,
            progress: Arc::default(),
        }
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The shipping lag as of now.
    pub fn lag(&self) -> Lag {
        let p = &self.progress;
        let head = self.log.checkpoint().ok().flatten();
        let head_seq = head.as_ref().map_or(0, |h| h.seq);
        let shipped_seq = p.shipped.load(Ordering::Relaxed);
        let records = head_seq.saturating_sub(shipped_seq);
        // Until the shipper has read the first unshipped record, the head's
        // time is the best bound there is (it is no older).
        let oldest = match p.oldest_unshipped_ms.load(Ordering::Relaxed) {
            0 => head.map_or(0, |h| h.timestamp_ms),
            ms => ms,
        };
        Lag {
            head_seq,
            shipped_seq,
            records,
            oldest_age_ms: (records > 0).then(|| crate::now_ms().saturating_sub(oldest)),
            connected: p.connected.load(Ordering::Relaxed),
            failures: p.failures.load(Ordering::Relaxed),
            conflict: p.conflict.load(Ordering::Relaxed),
        }
    }

    /// Ships until aborted: catches up from the fleet's position, then
    /// follows the local head; backs off while the database is away.
    pub async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        // The fleet's position, asked again after every failure (a batch
        // whose commit was not acknowledged may or may not be in).
        let mut position: Option<u64> = None;
        loop {
            match self.step(&mut position).await {
                Ok(true) => backoff = BACKOFF_MIN,
                Ok(false) => {
                    backoff = BACKOFF_MIN;
                    tokio::time::sleep(POLL).await;
                }
                Err(error) => {
                    self.failed(&error);
                    position = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn failed(&self, error: &ShipError) {
        let p = &self.progress;
        p.failures.fetch_add(1, Ordering::Relaxed);
        match error {
            ShipError::Conflict { .. } => {
                p.conflict.store(true, Ordering::Relaxed);
                tracing::error!(%error, "fleet decision log: conflicting record");
            }
            ShipError::Fleet(_) => {
                p.connected.store(false, Ordering::Relaxed);
                tracing::warn!(%error, host = self.fleet.host(), "fleet decision log: shipping failed; retrying");
            }
            ShipError::Audit(_) => {
                tracing::error!(%error, "fleet decision log: reading the local log failed; retrying")
            }
        }
    }

    /// One round: ships the next batch if the local head is ahead. True
    /// when something was shipped (more may wait).
    async fn step(&self, position: &mut Option<u64>) -> Result<bool, ShipError> {
        let shipped = match *position {
            Some(s) => s,
            None => {
                let s = self.fleet_position().await?;
                self.same_history(s).await?;
                self.progress.shipped.store(s, Ordering::Relaxed);
                self.progress.connected.store(true, Ordering::Relaxed);
                *position = Some(s);
                s
            }
        };
        let head = self.log.checkpoint()?.map_or(0, |h| h.seq);
        if head <= shipped {
            self.progress
                .oldest_unshipped_ms
                .store(0, Ordering::Relaxed);
            return Ok(false);
        }
        let batch = self.read_after(shipped).await?;
        let Some(first) = batch.first() else {
            return Ok(false);
        };
        self.progress
            .oldest_unshipped_ms
            .store(first.timestamp_ms, Ordering::Relaxed);
        let last = batch.last().map_or(shipped, |r| r.seq);
        self.insert(&batch).await?;
        self.progress.shipped.store(last, Ordering::Relaxed);
        self.progress.connected.store(true, Ordering::Relaxed);
        *position = Some(last);
        Ok(true)
    }

    /// The highest sequence number of this host in the fleet's table.
    async fn fleet_position(&self) -> Result<u64, ShipError> {
        let client = self.fleet.background_client().await?;
        let row = client
            .query_one(
                "SELECT coalesce(max(seq), 0) FROM fleet_decisions WHERE host = $1",
                &[&self.fleet.host()],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Whether the fleet's record at `position` is this log's: a local log
    /// that is behind the fleet, or holds another record there, is not
    /// this host's history (replaced, restored from an old backup, or a
    /// second sidecar under the same name), and shipping on from
    /// `position` would splice two chains.
    async fn same_history(&self, position: u64) -> Result<(), ShipError> {
        if position == 0 {
            return Ok(());
        }
        let head = self.log.checkpoint()?.map_or(0, |h| h.seq);
        let ours = match self.read_after(position - 1).await?.first() {
            Some(r) if r.seq == position => r.hash_hex(),
            // Pruned locally since it was shipped: nothing to compare.
            Some(_) => return Ok(()),
            None => format!("none (the local log ends at record {head})"),
        };
        let client = self.fleet.background_client().await?;
        let theirs: String = client
            .query_one(
                "SELECT hash FROM fleet_decisions WHERE host = $1 AND seq = $2",
                &[&self.fleet.host(), &(position as i64)],
            )
            .await?
            .get(0);
        if ours == theirs {
            return Ok(());
        }
        Err(ShipError::Conflict {
            host: self.fleet.host().to_owned(),
            seq: position,
            ours,
            theirs,
        })
    }

    /// Up to [`BATCH`] local records after `seq`, read off the async
    /// workers.
    async fn read_after(&self, seq: u64) -> Result<Vec<Stored>, ShipError> {
        let log = self.log.clone();
        let read = tokio::task::spawn_blocking(move || {
            log.scan(seq + 1, None)?
                .take(BATCH)
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| AuditError::Write(format!("the shipper's reader stopped: {e}")))?;
        Ok(read?)
    }

    /// Inserts `batch` in one statement. Rows already there (a retry after
    /// an unacknowledged commit) are skipped if they are the same record,
    /// and are a [`ShipError::Conflict`] if not.
    async fn insert(&self, batch: &[Stored]) -> Result<(), ShipError> {
        let rows = Rows::of(batch);
        let host = self.fleet.host();
        let chain_hash = self.log.chain_hash().to_string();
        let client = self.fleet.background_client().await?;
        let inserted = client
            .query(
                "INSERT INTO fleet_decisions
                   (host, seq, timestamp_ms, chain_hash, prev_hash, hash, canonical)
                 SELECT $1, s, t, $2, p, h, c
                 FROM unnest($3::int8[], $4::int8[], $5::text[], $6::text[], $7::text[])
                   AS u(s, t, p, h, c)
                 ON CONFLICT (host, seq) DO NOTHING
                 RETURNING seq",
                &[
                    &host,
                    &chain_hash,
                    &rows.seq,
                    &rows.time,
                    &rows.prev,
                    &rows.hash,
                    &rows.canonical,
                ],
            )
            .await?;
        if inserted.len() == batch.len() {
            return Ok(());
        }
        let existing = client
            .query(
                "SELECT seq, hash FROM fleet_decisions WHERE host = $1 AND seq = ANY($2)",
                &[&host, &rows.seq],
            )
            .await?;
        for row in existing {
            let (seq, theirs) = (row.get::<_, i64>(0), row.get::<_, String>(1));
            let ours = batch
                .iter()
                .find(|r| r.seq as i64 == seq)
                .map(Stored::hash_hex)
                .unwrap_or_default();
            if ours != theirs {
                return Err(ShipError::Conflict {
                    host: host.to_owned(),
                    seq: seq as u64,
                    ours,
                    theirs,
                });
            }
        }
        Ok(())
    }
}

/// A batch as the insert's column arrays.
struct Rows {
    seq: Vec<i64>,
    time: Vec<i64>,
    prev: Vec<String>,
    hash: Vec<String>,
    canonical: Vec<String>,
}

impl Rows {
    fn of(batch: &[Stored]) -> Self {
        Self {
            seq: batch.iter().map(|r| r.seq as i64).collect(),
            time: batch.iter().map(|r| r.timestamp_ms as i64).collect(),
            prev: batch.iter().map(|r| hex::encode(r.prev)).collect(),
            hash: batch.iter().map(Stored::hash_hex).collect(),
            // Canonical JSON is UTF-8 (serde_json wrote it); a lossy
            // conversion could only ever change a record the local verify
            // already fails.
            canonical: batch
                .iter()
                .map(|r| String::from_utf8_lossy(&r.canonical).into_owned())
                .collect(),
        }
    }
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shipper")
    }
}

/// `/metrics`: the lag, read when scraped.
impl prometheus_client::collector::Collector for Shipper {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::MetricType;
        let lag = self.lag();
        let samples = [
            (
                "etax_fleet_log_unshipped_records",
                "Decision-log records written locally and not yet in the fleet's table",
                lag.records,
            ),
            (
                "etax_fleet_log_oldest_unshipped_age_ms",
                "How long the oldest record not yet in the fleet's table has waited, ms (0: none)",
                lag.oldest_age_ms.unwrap_or(0),
            ),
            (
                "etax_fleet_log_shipped_seq",
                "This host's highest record in the fleet's table",
                lag.shipped_seq,
            ),
            (
                "etax_fleet_log_conflict",
                "1 when the fleet's table holds another record at one of this host's positions (shipping stopped)",
                u64::from(lag.conflict),
            ),
        ];
        for (name, help, value) in samples {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value as i64).encode(metric)?;
        }
        Ok(())
    }
}
