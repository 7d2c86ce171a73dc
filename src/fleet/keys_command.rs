//! `etax-authz keys create|list|revoke --fleet URL`: the fleet's API keys
//! from the command line, each command one connection on a runtime of its
//! own. Connecting migrates the database like a sidecar does, so the first
//! key can be created before any sidecar ran.

use super::keys::{self, FleetKey, KeysError};
use super::{Fleet, FleetError};
use crate::http::callers::Scope;

/// The name the commands' connections carry in `pg_stat_activity`.
const CLIENT_NAME: &str = "keys";

/// Runs `f` with a connection to the fleet's database.
fn with_client<T>(
    url: &str,
    f: impl AsyncFnOnce(&mut tokio_postgres::Client) -> Result<T, KeysError>,
) -> Result<T, KeysError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FleetError::Pool(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(async {
        let fleet = Fleet::connect(url, CLIENT_NAME).await?;
        let mut client = fleet.client().await?;
        f(&mut client).await
    })
}

/// A new key `id` with `scopes`, returned once.
pub fn create(url: &str, id: &str, scopes: &[Scope]) -> Result<String, KeysError> {
    with_client(url, async |c| keys::create(c, id, scopes).await)
}

/// Every key, revoked ones included.
pub fn list(url: &str) -> Result<Vec<FleetKey>, KeysError> {
    with_client(url, async |c| Ok(keys::read(&*c).await?.rows))
}

pub fn revoke(url: &str, id: &str) -> Result<(), KeysError> {
    with_client(url, async |c| keys::revoke(c, id).await)
}
