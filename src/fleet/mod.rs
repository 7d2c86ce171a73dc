//! Fleet mode (`serve --fleet postgres://…`): many sidecars over one
//! PostgreSQL, which holds the shared truth (identities, grants, login state,
//! the fleet's decision log, which host runs which policies). Each sidecar
//! keeps its redb store as a local replica so that a decision never waits
//! on the database. The embedded mode (no `--fleet`) does not touch this
//! module.
//!
//! [`migrate`] brings the database's schema up to this binary's version at
//! start, so hosts of one release never disagree on tables.

pub mod applier;
pub mod changes;
pub mod config;
pub mod hosts;
pub mod import;
pub mod keys;
pub mod keys_command;
pub mod keys_watch;
pub mod listen;
pub mod log;
pub mod log_commands;
pub mod migrate;
pub mod ship;
pub mod status;

pub use config::FleetArgs;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("fleet database URL: {0}")]
    Url(String),
    #[error("fleet database: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("fleet database connection pool: {0}")]
    Pool(String),
    #[error(
        "fleet database schema is at version {found}, newer than this binary knows ({known}): \
         upgrade this host before it joins"
    )]
    SchemaTooNew { found: i32, known: i32 },
    /// Every connection of one of the sidecar's pools stayed in use for
    /// as long as a caller may wait: the database is slow or the pool is
    /// under attack. The service answers 503 rather than queue without end.
    #[error(
        "fleet database: all {size} connections of the {pool} pool stayed in use for \
         {waited_ms} ms; retry later"
    )]
    PoolBusy {
        pool: &'static str,
        size: usize,
        waited_ms: u64,
    },
    #[error(
        "another running sidecar already uses the fleet host name {0:?} (--fleet-host): give \
         each sidecar its own name, or stop the other first"
    )]
    HostTaken(String),
    /// A change written by a newer release: this one would misread it, or
    /// drop what it does not know when it rewrites the record.
    #[error(
        "the fleet's change {id} was written by a newer release (record format {format}, this \
         binary knows {known}): upgrade this host; it answers nothing from a replica it cannot \
         keep current"
    )]
    ChangeTooNew { id: i64, format: i32, known: i32 },
}

/// The driver's error with the server's own message and SQLSTATE when
/// there is one (its `Display` alone says only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl From<deadpool_postgres::PoolError> for FleetError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => FleetError::Postgres(e),
            other => FleetError::Pool(other.to_string()),
        }
    }
}

/// Connections requests may hold at once (fleet reads, store writes,
/// session catch-ups).
const REQUEST_POOL: usize = 16;
/// How long a request waits for one of them before it is answered 503.
const REQUEST_WAIT: Duration = Duration::from_secs(2);
/// Connections of the background tasks: the applier, the heartbeat, the
/// keys watcher and the shipper, one each at most.
const BACKGROUND_POOL: usize = 4;
/// How long a background task waits for one (it retries on its next beat).
const BACKGROUND_WAIT: Duration = Duration::from_secs(5);

/// Connection pools to the fleet's database, its schema migrated.
///
/// Two pools, because what keeps this sidecar answering (the applier
/// renewing the replica's freshness, the heartbeat, the keys watcher, the
/// shipper) must never wait behind requests: requests that held every
/// connection of one shared pool once made the replica stale and every
/// decision fail closed (issue 15, red team).
#[derive(Clone)]
pub struct Fleet {
    pool: Pool,
    background: Pool,
    host: String,
    /// For connections outside the pool (the change listener).
    config: tokio_postgres::Config,
    /// A serving sidecar's hold on its name (none for a one-off command).
    claim: Option<hosts::NameClaim>,
}

impl Fleet {
    /// Connects, then applies the migrations this binary carries. `host`
    /// names this sidecar in the fleet's tables (its chain, its status row).
    pub async fn connect(url: &str, host: &str) -> Result<Self, FleetError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| {
                // The URL can carry a password: name the problem, not the URL.
                FleetError::Url(e.to_string())
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name(format!("etax-authz {host}"));
        let fleet = Self {
            pool: pool(&config, REQUEST_POOL, REQUEST_WAIT)?,
            background: pool(&config, BACKGROUND_POOL, BACKGROUND_WAIT)?,
            host: host.to_string(),
            config,
            claim: None,
        };
        migrate::apply(&mut *fleet.client().await?).await?;
        Ok(fleet)
    }

    /// This fleet, holding its host name until the last clone is dropped:
    /// a second sidecar under the same name is refused (`serve`; an import
    /// names no chain and claims nothing).
    pub async fn claimed(mut self) -> Result<Self, FleetError> {
        self.claim = Some(hosts::claim(&self).await?);
        Ok(self)
    }

    pub(crate) fn claim(&self) -> Option<&hosts::NameClaim> {
        self.claim.as_ref()
    }

    /// A connection of the request path's pool, within [`REQUEST_WAIT`].
    pub async fn client(&self) -> Result<deadpool_postgres::Client, FleetError> {
        checkout(&self.pool, "request", REQUEST_WAIT).await
    }

    /// A connection of the background tasks' pool, which requests never
    /// draw from.
    pub async fn background_client(&self) -> Result<deadpool_postgres::Client, FleetError> {
        checkout(&self.background, "background", BACKGROUND_WAIT).await
    }

    /// The connection settings, for a connection of its own.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// This sidecar's name in the fleet (`--fleet-host`, default the
    /// machine's hostname).
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// A pool of at most `size` connections whose callers wait at most `wait`
/// for one (opening a connection is bounded by the connect timeout).
fn pool(config: &tokio_postgres::Config, size: usize, wait: Duration) -> Result<Pool, FleetError> {
    let manager = Manager::from_config(
        config.clone(),
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(wait))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| FleetError::Pool(e.to_string()))
}

async fn checkout(
    pool: &Pool,
    name: &'static str,
    wait: Duration,
) -> Result<deadpool_postgres::Client, FleetError> {
    match pool.get().await {
        Ok(client) => Ok(client),
        Err(PoolError::Timeout(deadpool_postgres::TimeoutType::Wait)) => {
            Err(FleetError::PoolBusy {
                pool: name,
                size: pool.status().max_size,
                waited_ms: wait.as_millis() as u64,
            })
        }
        Err(e) => Err(e.into()),
    }
}
