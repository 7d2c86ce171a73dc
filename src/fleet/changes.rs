//! The store's change log in PostgreSQL (`fleet_changes`): the
//! [`ChangeLog`] a fleet sidecar's store replicates. The store is
//! synchronous and writes on blocking threads, so every call here runs its
//! query to completion on the runtime from the calling thread, bounded by
//! [`OP_TIMEOUT`] so that a database that stops answering fails a write
//! instead of hanging it.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_postgres::types::Json;

use super::{Fleet, FleetError};
use crate::store::{Change, ChangeLog, LogEntry, LogTxn, StoreError};

/// The advisory lock every store write holds (fleet-wide writer). Any
/// constant distinct from the migrations' lock.
const WRITE_LOCK: i64 = 0x6574_6178_7772_6974;

/// The NOTIFY channel a committed change wakes replicas on.
pub const CHANNEL: &str = "fleet_changes";

/// The format of the store's records this binary writes, stated on every
/// change (migration 0005): the database refuses a change stated below
/// the fleet's current format, so a sidecar of an older release, which
/// would drop what it does not know when it rewrites a record, fails
/// closed instead. Raised, with a migration raising the check, whenever a
/// stored record gains what an older release must not drop.
pub const WRITER_FORMAT: i32 = 2;

/// An entry's stamp ([`LogEntry::stamp`]), computed by the database so that
/// every sidecar reads the same one: 64 bits of an MD5 over the id, the
/// writing host, the commit time in microseconds (not its text, which
/// depends on the session's time zone) and the changes as jsonb prints
/// them. Not a defence against whoever can write the table (they are
/// trusted), a name for "this entry of this database".
const STAMP: &str = "('x' || left(md5(id::text || '/' || host || '/' || \
     (extract(epoch FROM at) * 1000000)::int8::text || '/' || changes::text), 16))::bit(64)::int8";

/// How long one exchange with the database may take.
const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// The fleet's change log, for [`crate::store::Store::attach`].
pub struct PgChangeLog {
    fleet: Fleet,
    runtime: Handle,
}

impl PgChangeLog {
    /// Must be called inside the runtime the queries will run on.
    pub fn new(fleet: Fleet) -> Self {
        Self {
            fleet,
            runtime: Handle::current(),
        }
    }
}

thread_local! {
    /// Set while the applier catches the replica up on this thread: its
    /// reads of the log then use the background pool, which requests
    /// cannot drain, so the replica stays fresh however busy they are.
    /// A thread-local because the store calls this log through the same
    /// methods for requests and for the applier.
    static BACKGROUND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (a synchronous store call on this thread) with the change
/// log's reads on the background pool.
pub(crate) fn in_background<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            BACKGROUND.with(|b| b.set(false));
        }
    }
    BACKGROUND.with(|b| b.set(true));
    let _reset = Reset;
    f()
}

impl PgChangeLog {
    /// A connection for a read of the log, from the pool of whoever asks.
    async fn reader(&self) -> Result<deadpool_postgres::Client, FleetError> {
        if BACKGROUND.with(|b| b.get()) {
            self.fleet.background_client().await
        } else {
            self.fleet.client().await
        }
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::FleetUnavailable(Box::new(e))
}

/// Runs `f` to completion from a synchronous caller: a blocking thread, or
/// an async worker (moved off the runtime for the duration).
fn block<T>(
    runtime: &Handle,
    f: impl Future<Output = Result<T, FleetError>>,
) -> Result<T, StoreError> {
    let timed = tokio::time::timeout(OP_TIMEOUT, f);
    match tokio::task::block_in_place(|| runtime.block_on(timed)) {
        Ok(r) => r.map_err(unavailable),
        Err(elapsed) => Err(unavailable(elapsed)),
    }
}

async fn since(
    client: &tokio_postgres::Client,
    after: u64,
    limit: u32,
) -> Result<Vec<LogEntry>, FleetError> {
    let sql = format!(
        "SELECT id, changes, {STAMP}, writer_format FROM fleet_changes \
         WHERE id > $1 ORDER BY id LIMIT $2"
    );
    let rows = client
        .query(&sql, &[&(after as i64), &i64::from(limit)])
        .await?;
    rows.iter()
        .map(|row| {
            // Before the changes are even read: a newer release's record
            // may parse (unknown fields are ignored) and then be rewritten
            // without them by this host's next write.
            let format: i32 = row.try_get(3)?;
            if format > WRITER_FORMAT {
                return Err(FleetError::ChangeTooNew {
                    id: row.get(0),
                    format,
                    known: WRITER_FORMAT,
                });
            }
            let Json(changes): Json<Vec<Change>> = row.try_get(1)?;
            Ok(LogEntry {
                id: row.get::<_, i64>(0) as u64,
                stamp: row.get::<_, i64>(2) as u64,
                changes,
            })
        })
        .collect()
}

impl ChangeLog for PgChangeLog {
    fn begin(&self) -> Result<Box<dyn LogTxn>, StoreError> {
        let client = block(&self.runtime, self.fleet.client())?;
        // Built before the lock is asked for: if that fails or times out,
        // dropping the transaction closes the connection (see Drop).
        let txn = PgTxn {
            client: Some(client),
            runtime: self.runtime.clone(),
            host: self.fleet.host().to_owned(),
        };
        block(&self.runtime, async {
            let client = txn.client();
            client.batch_execute("BEGIN").await?;
            client
                .execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .await?;
            Ok(())
        })?;
        Ok(Box::new(txn))
    }

    fn since(&self, after: u64, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
        block(&self.runtime, async {
            let client = self.reader().await?;
            since(&client, after, limit).await
        })
    }

    fn head(&self) -> Result<u64, StoreError> {
        block(&self.runtime, async {
            let row = self
                .reader()
                .await?
                .query_one("SELECT coalesce(max(id), 0) FROM fleet_changes", &[])
                .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn stamp(&self, id: u64) -> Result<Option<u64>, StoreError> {
        block(&self.runtime, async {
            let sql = format!("SELECT {STAMP} FROM fleet_changes WHERE id = $1");
            let row = self
                .reader()
                .await?
                .query_opt(&sql, &[&(id as i64)])
                .await?;
            Ok(row.map(|r| r.get::<_, i64>(0) as u64))
        })
    }
}

/// A transaction on one pooled connection holding [`WRITE_LOCK`].
struct PgTxn {
    /// `None` once committed.
    client: Option<deadpool_postgres::Client>,
    runtime: Handle,
    host: String,
}

impl PgTxn {
    fn client(&self) -> &deadpool_postgres::Client {
        self.client.as_ref().expect("used before commit")
    }
}

impl LogTxn for PgTxn {
    fn since(&mut self, after: u64) -> Result<Vec<LogEntry>, StoreError> {
        // The whole backlog: this write must see every change before it.
        block(&self.runtime, since(self.client(), after, u32::MAX >> 1))
    }

    fn append(&mut self, changes: &[Change]) -> Result<(u64, u64), StoreError> {
        block(&self.runtime, async {
            let client = self.client();
            let sql = format!(
                "INSERT INTO fleet_changes (host, changes, writer_format) VALUES ($1, $2, $3) \
                 RETURNING id, {STAMP}"
            );
            let row = client
                .query_one(&sql, &[&self.host, &Json(changes), &WRITER_FORMAT])
                .await?;
            let id: i64 = row.get(0);
            let stamp: i64 = row.get(1);
            // Delivered at commit, to every listening replica.
            client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &id.to_string()])
                .await?;
            Ok((id as u64, stamp as u64))
        })
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        block(&self.runtime, async {
            Ok(self.client().batch_execute("COMMIT").await?)
        })?;
        // Committed: the connection goes back to the pool.
        self.client = None;
        Ok(())
    }
}

impl Drop for PgTxn {
    /// An unfinished transaction's connection is closed rather than
    /// returned to the pool: the server rolls it back and frees the lock,
    /// and no later user meets a connection inside a transaction.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// The advisory lock of jobs made of many writes (seeding the demo, an
/// import), so that two sidecars starting together do not both seed.
const JOB_LOCK: i64 = 0x6574_6178_6a6f_6273;

/// Runs `job` while holding the fleet's job lock on a connection of its
/// own. The connection is closed afterwards rather than pooled: that
/// releases the lock however the job ended.
pub async fn exclusively<T>(fleet: &Fleet, job: impl Future<Output = T>) -> Result<T, FleetError> {
    let client = fleet.client().await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&JOB_LOCK])
        .await?;
    let out = job.await;
    drop(deadpool_postgres::Object::take(client));
    Ok(out)
}

/// Makes `store` a replica of the fleet's change log and brings it up to
/// date (from id 0 for a new sidecar: the log is the whole history).
pub async fn join(
    store: crate::store::Store,
    fleet: &Fleet,
    max_stale_ms: u64,
) -> Result<crate::store::Store, StoreError> {
    let log = Box::new(PgChangeLog::new(fleet.clone()));
    tokio::task::spawn_blocking(move || {
        let replica = store.attach(log, max_stale_ms)?;
        replica.catch_up()?;
        Ok(replica)
    })
    .await
    .expect("joining does not panic")
}
