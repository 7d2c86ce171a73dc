//! Which hosts are in the fleet and which policy set each runs: every
//! sidecar keeps its `fleet_hosts` row current (at start, then on a
//! heartbeat), so a fleet-wide status is one query, not a poll of every
//! host. And which name is whose: a running sidecar holds its name
//! ([`claim`]), so a second one started under it is refused instead of
//! writing a second chain under one name.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::{Fleet, FleetError};
use crate::store::{ClockReading, ClockSample};

/// The advisory-lock namespace of host names (two-key form, a key space
/// apart from the store's and the migrations' one-key locks): "etax".
const NAME_LOCKS: i32 = 0x6574_6178;

/// How long a start waits for its name: a sidecar killed a moment ago
/// holds it until the server notices its connection closed.
const CLAIM_PATIENCE: Duration = Duration::from_secs(3);

/// This sidecar's hold on its name: a session advisory lock on a
/// connection of its own, released when the process ends however it ends
/// (the server closes the session with the connection).
#[derive(Clone)]
pub struct NameClaim {
    held: Arc<Mutex<Option<tokio_postgres::Client>>>,
}

/// Takes the lock on `fleet`'s host name on a new connection, retrying
/// for [`CLAIM_PATIENCE`]; answers the connection holding it.
async fn lock_name(fleet: &Fleet) -> Result<tokio_postgres::Client, FleetError> {
    let (client, connection) = fleet.config().connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let deadline = tokio::time::Instant::now() + CLAIM_PATIENCE;
    loop {
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&NAME_LOCKS, &fleet.host()],
            )
            .await?;
        if row.get::<_, bool>(0) {
            return Ok(client);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(FleetError::HostTaken(fleet.host().to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Claims this sidecar's name for as long as the returned claim (or a
/// clone) lives.
pub async fn claim(fleet: &Fleet) -> Result<NameClaim, FleetError> {
    let client = lock_name(fleet).await?;
    Ok(NameClaim {
        held: Arc::new(Mutex::new(Some(client))),
    })
}

impl NameClaim {
    /// Takes the name again when the connection holding it ended (a
    /// database restart drops every session lock); logged when another
    /// sidecar took it meanwhile, which the shipper will also report.
    async fn keep(&self, fleet: &Fleet) {
        let mut held = self.held.lock().await;
        if held.as_ref().is_some_and(|c| !c.is_closed()) {
            return;
        }
        *held = match lock_name(fleet).await {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::error!(%error, host = fleet.host(), "fleet host name not held");
                None
            }
        };
    }
}

/// How often a sidecar refreshes its row. A row older than a few beats
/// belongs to a host that is down or cut off.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// Upserts this host's row: its binary version, its active policy version,
/// when it started, and now.
pub async fn report(
    fleet: &Fleet,
    policy_version: &str,
    started_at_ms: u64,
) -> Result<(), FleetError> {
    let mut client = fleet.background_client().await?;
    // A row held by another session must fail this beat on the server,
    // within its bound: a statement the client gave up on would stay queued
    // on the pooled connection, and the applier and the clock comparison
    // would queue behind it (red team: one held row took a healthy host
    // out of service).
    let txn = client.transaction().await?;
    txn.batch_execute("SET LOCAL lock_timeout = '500ms'")
        .await?;
    txn.execute(
        "INSERT INTO fleet_hosts (host, version, policy_version, started_at, last_seen)
             VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), now())
             ON CONFLICT (host) DO UPDATE SET
               version = EXCLUDED.version,
               policy_version = EXCLUDED.policy_version,
               started_at = EXCLUDED.started_at,
               last_seen = now()",
        &[
            &fleet.host(),
            &env!("CARGO_PKG_VERSION"),
            &policy_version,
            &(started_at_ms as f64),
        ],
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Compares this host's clock with the database's, by a statement that
/// waits on nothing (a row lock before the database reads its clock
/// would put that reading late in the round trip, and a slow trip would
/// hide skew); the store judges the sample (`store::ClockSample`).
pub async fn compare_clocks(fleet: &Fleet) -> Result<ClockSample, FleetError> {
    let client = fleet.background_client().await?;
    let sent = ClockReading::now();
    let row = client
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            &[],
        )
        .await?;
    let answered = ClockReading::now();
    Ok(ClockSample {
        sent,
        answered,
        database_ms: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
    })
}

/// Reports on every beat until aborted, keeping the name's claim. A
/// failed beat is logged and the next one tries again: the row's age is
/// what tells the fleet.
pub async fn heartbeat(
    fleet: Fleet,
    policy_version: impl Fn() -> String + Send + 'static,
    started_at_ms: u64,
    clock: impl Fn(&ClockSample) + Send + 'static,
) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        if let Some(claim) = fleet.claim() {
            claim.keep(&fleet).await;
        }
        // Each part bounded, so a beat stuck on a held row neither holds
        // the next nor keeps the clocks from being compared.
        let bound = HEARTBEAT / 2;
        // No measure: the last one ages, and past its life the replica
        // stops deciding (`store::ClockStanding`).
        match tokio::time::timeout(bound, compare_clocks(&fleet)).await {
            Ok(Ok(sample)) => clock(&sample),
            Ok(Err(error)) => {
                tracing::warn!(%error, host = fleet.host(), "fleet clock comparison failed")
            }
            Err(_) => tracing::warn!(host = fleet.host(), "fleet clock comparison timed out"),
        }
        let version = policy_version();
        match tokio::time::timeout(bound, report(&fleet, &version, started_at_ms)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, host = fleet.host(), "fleet heartbeat failed"),
            Err(_) => tracing::warn!(host = fleet.host(), "fleet heartbeat timed out"),
        }
    }
}
