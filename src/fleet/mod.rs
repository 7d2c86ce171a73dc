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

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

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
    #[error(
        "another running sidecar already uses the fleet host name {0:?} (--fleet-host): give \
         each sidecar its own name, or stop the other first"
    )]
    HostTaken(String),
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

/// A connection pool to the fleet's database, its schema migrated.
#[derive(Clone)]
pub struct Fleet {
    pool: Pool,
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
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|e| FleetError::Pool(e.to_string()))?;
        let fleet = Self {
            pool,
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

    pub async fn client(&self) -> Result<deadpool_postgres::Client, FleetError> {
        Ok(self.pool.get().await?)
    }

    /// The connection settings, for a connection of its own.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// This sidecar's name in the fleet (`--fleet-host`, default the
    /// machine's hostname).
    pub fn host(&self) -> &str {
        &self.host
    }
}
