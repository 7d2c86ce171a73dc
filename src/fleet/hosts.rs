//! Which hosts are in the fleet and which policy set each runs: every
//! sidecar keeps its `fleet_hosts` row current (at start, then on a
//! heartbeat), so a fleet-wide status is one query, not a poll of every
//! host.

use std::time::Duration;

use super::{Fleet, FleetError};

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
    let client = fleet.client().await?;
    client
        .execute(
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
    Ok(())
}

/// Reports on every beat until aborted. A failed beat is logged and the
/// next one tries again: the row's age is what tells the fleet.
pub async fn heartbeat(
    fleet: Fleet,
    policy_version: impl Fn() -> String + Send + 'static,
    started_at_ms: u64,
) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        if let Err(error) = report(&fleet, &policy_version(), started_at_ms).await {
            tracing::warn!(%error, host = fleet.host(), "fleet heartbeat failed");
        }
    }
}
