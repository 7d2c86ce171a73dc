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
use tokio_postgres::AsyncMessage;

use super::{changes::CHANNEL, Fleet, FleetError};
use crate::store::Store;

/// The longest wait between two catch-ups.
pub const POLL: Duration = Duration::from_millis(200);

/// How long the listener waits before connecting again.
const RECONNECT: Duration = Duration::from_millis(500);

/// Applies changes until aborted. Failures are logged once when they
/// begin and once when they end (the tick would repeat them five times a
/// second); what they mean for answers is the replica's freshness bound.
pub async fn run(fleet: Fleet, store: Store) {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(fleet.clone(), wake.clone()));
    let _listener = AbortOnDrop(listener);
    let mut failing = false;
    loop {
        let replica = store.clone();
        let caught_up = tokio::task::spawn_blocking(move || replica.catch_up())
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

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Listens for committed changes, reconnecting whenever the connection
/// ends; each notification wakes the applier.
async fn listen(fleet: Fleet, wake: Arc<Notify>) {
    loop {
        if let Err(error) = listen_once(&fleet, &wake).await {
            tracing::debug!(%error, "fleet change listener ended");
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

async fn listen_once(fleet: &Fleet, wake: &Notify) -> Result<(), FleetError> {
    let (client, mut connection) = fleet.config().connect(tokio_postgres::NoTls).await?;
    let sql = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&sql);
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        // The connection must be driven for the LISTEN itself to complete.
        let message = std::future::poll_fn(|cx| connection.poll_message(cx));
        tokio::select! {
            done = &mut listen, if !listening => {
                done?;
                listening = true;
                // Whatever committed before the LISTEN took effect.
                wake.notify_one();
            }
            message = message => match message {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
}
