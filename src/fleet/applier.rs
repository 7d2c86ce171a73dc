//! Keeps this sidecar's replica current: applies the fleet's changes as
//! they commit. Woken by `LISTEN fleet_changes` on a connection of its own
//! (outside the pool: notifications arrive on the connection that
//! listens), and on a short tick anyway, so that a lost notification or a
//! dropped listener delays a change by at most [`POLL`], and so that the
//! replica's freshness (the time the log last answered) is renewed while
//! nothing changes. After a reconnect it catches up from the last applied
//! id, which the replica keeps in redb.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{changes::CHANNEL, listen, Fleet};
use crate::store::Store;

/// The longest wait between two catch-ups.
pub const POLL: Duration = Duration::from_millis(200);

/// Applies changes until aborted. Failures are logged once when they
/// begin and once when they end (the tick would repeat them five times a
/// second); what they mean for answers is the replica's freshness bound.
pub async fn run(fleet: Fleet, store: Store) {
    let wake = Arc::new(Notify::new());
    let _listener = listen::spawn(fleet.clone(), CHANNEL, wake.clone());
    let mut failing = false;
    loop {
        let replica = store.clone();
        let caught_up = tokio::task::spawn_blocking(move || {
            super::changes::in_background(|| replica.catch_up())
        })
        .await
        .expect("catch-up does not panic");
        match caught_up {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(host = fleet.host(), "fleet database reached again");
            }
            Err(e) if !failing => {
                failing = true;
                let error = crate::ids::mask_text(&e.to_string());
                tracing::warn!(%error, host = fleet.host(), "fleet catch-up failed");
            }
            _ => {}
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
