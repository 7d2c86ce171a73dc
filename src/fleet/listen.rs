//! `LISTEN channel` on a connection of its own (notifications arrive only
//! on the connection that listens, so not a pooled one), reconnecting
//! whenever it ends; each notification, and each (re)start of listening,
//! wakes a task. What committed while no one listened is found by the
//! task's own look after the wake-up at (re)start.
//! Used by the applier (`fleet_changes`) and the keys watcher
//! (`fleet_api_keys`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use super::{Fleet, FleetError};

/// How long the listener waits before connecting again.
const RECONNECT: Duration = Duration::from_millis(500);

/// The listener, stopped when this is dropped (with the task it serves).
pub struct Listener(tokio::task::JoinHandle<()>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts listening on `channel`, waking `wake`.
pub fn spawn(fleet: Fleet, channel: &'static str, wake: Arc<Notify>) -> Listener {
    Listener(tokio::spawn(run(fleet, channel, wake)))
}

/// Listens on `channel` until aborted, waking `wake`.
async fn run(fleet: Fleet, channel: &'static str, wake: Arc<Notify>) {
    loop {
        if let Err(error) = once(&fleet, channel, &wake).await {
            tracing::debug!(%error, channel, "fleet listener ended");
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

async fn once(fleet: &Fleet, channel: &str, wake: &Notify) -> Result<(), FleetError> {
    let (client, mut connection) = fleet.config().connect(tokio_postgres::NoTls).await?;
    let sql = format!("LISTEN {channel}");
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
