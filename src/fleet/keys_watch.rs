//! A sidecar's side of the fleet's API keys: the table read at start and
//! again whenever `NOTIFY fleet_api_keys` says it changed (and on a poll,
//! in case a notification was lost), each read offered to the served
//! [`LiveKeys`], which swaps the set in only when it changed.
//!
//! Like a keys file that does not read or check, a table that cannot be
//! reached or holds a row this binary cannot serve keeps the last good
//! keys serving: logged once when the failure begins and once when it ends.
//! This holds past `--fleet-max-stale-ms` too. A key revoked during an
//! outage therefore still opens this host's routes until the database is
//! back; every decision and store read fails closed past that bound anyway,
//! so what such a key still reaches are reads of this host's own status
//! and decision log, and refusing every key instead would lock the
//! operators out of exactly the routes that diagnose the outage.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::keys::{self, KeysError, CHANNEL};
use super::Fleet;
use crate::http::callers::LiveKeys;

/// The poll when `--reload-poll-ms` is 0: notifications alone would do,
/// the poll only covers one lost while the listener reconnected.
const FALLBACK_POLL: Duration = Duration::from_secs(5);

/// What a read of the table did.
pub struct Refreshed {
    /// The served keys changed.
    pub changed: bool,
    /// Rows in the table, revoked ones included.
    pub rows: usize,
}

/// Reads the table and offers it to `live`.
pub async fn refresh(fleet: &Fleet, live: &LiveKeys) -> Result<Refreshed, KeysError> {
    let client = fleet.background_client().await?;
    let table = keys::read(&**client).await?;
    // Skipped rows count as rows: a table holding only rows this binary
    // cannot serve is not empty, so it never opens open mode.
    let rows = table.rows.len() + table.skipped.len();
    let changed = live.offer(table.stamp.clone(), table.live(), rows)?;
    if changed {
        for e in &table.skipped {
            tracing::error!(error = %e, "a fleet API key row is skipped: it grants nothing");
        }
    }
    Ok(Refreshed { changed, rows })
}

/// Keeps `live` current until aborted.
pub async fn watch(fleet: Fleet, live: Arc<LiveKeys>, poll: Option<Duration>) {
    let wake = Arc::new(Notify::new());
    let _listener = super::listen::spawn(fleet.clone(), CHANNEL, wake.clone());
    let poll = poll.unwrap_or(FALLBACK_POLL);
    let mut failing = false;
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
        match refresh(&fleet, &live).await {
            Ok(Refreshed { changed, .. }) => {
                if failing {
                    failing = false;
                    tracing::info!("the fleet's API keys are read again");
                }
                if changed {
                    tracing::info!(open = live.is_open(), "API keys reloaded from the fleet");
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::error!(
                    error = %e,
                    "the fleet's API keys not reloaded; the previous keys still serve"
                );
            }
            Err(_) => {}
        }
    }
}
