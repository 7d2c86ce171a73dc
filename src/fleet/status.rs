//! The fleet's status from its database: every host's row in `fleet_hosts`
//! (what it runs, when it was last seen) and how far its decision log has
//! been shipped, so one question shows which hosts run which policy set and
//! which have gone quiet.

use serde::Serialize;

use super::hosts::HEARTBEAT;
use super::FleetError;

/// A host whose row is older than this many heartbeats is flagged stale:
/// down, cut off from the database, or hung.
const STALE_BEATS: u32 = 3;

/// One host of the fleet.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HostStatus {
    pub host: String,
    /// The binary's version.
    pub version: String,
    pub policy_version: String,
    pub started_at_ms: u64,
    pub last_seen_ms: u64,
    /// Its row has not been refreshed for more than `stale_after_ms`.
    pub stale: bool,
    /// Its highest record in the fleet's decision log (0: none yet).
    pub shipped_seq: u64,
    /// When that record was written (absent: none yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipped_timestamp_ms: Option<u64>,
}

/// The hosts running one policy set.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyHosts {
    pub policy_version: String,
    pub hosts: Vec<String>,
}

/// `GET /v1/fleet/status`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FleetStatus {
    /// The host answering.
    pub this_host: String,
    /// The database's clock, which `last_seen_ms` is measured by.
    pub now_ms: u64,
    pub stale_after_ms: u64,
    pub hosts: Vec<HostStatus>,
    /// Hosts grouped by the policy version they report, most hosts first:
    /// more than one entry means the fleet is mid-rollout (or split).
    pub policy_versions: Vec<PolicyHosts>,
}

/// Reads every host's row and shipping position in one query.
pub async fn read(
    client: &tokio_postgres::Client,
    this_host: &str,
) -> Result<FleetStatus, FleetError> {
    let stale_after_ms = (HEARTBEAT * STALE_BEATS).as_millis() as i64;
    // The shipping position per host through the primary key (a lateral
    // max), not an aggregate over the whole table.
    let rows = client
        .query(
            "SELECT h.host, h.version, h.policy_version,
                    (extract(epoch FROM h.started_at) * 1000)::int8,
                    (extract(epoch FROM h.last_seen) * 1000)::int8,
                    (extract(epoch FROM now()) * 1000)::int8,
                    d.seq, d.timestamp_ms
             FROM fleet_hosts h
             LEFT JOIN LATERAL (
               SELECT seq, timestamp_ms FROM fleet_decisions
               WHERE host = h.host ORDER BY seq DESC LIMIT 1) d ON true
             ORDER BY h.host",
            &[],
        )
        .await?;
    let mut now_ms = 0;
    let hosts: Vec<HostStatus> = rows
        .iter()
        .map(|r| {
            let last_seen: i64 = r.get(4);
            now_ms = r.get::<_, i64>(5);
            HostStatus {
                host: r.get(0),
                version: r.get(1),
                policy_version: r.get(2),
                started_at_ms: r.get::<_, i64>(3) as u64,
                last_seen_ms: last_seen as u64,
                stale: now_ms - last_seen > stale_after_ms,
                shipped_seq: r.get::<_, Option<i64>>(6).unwrap_or(0) as u64,
                shipped_timestamp_ms: r.get::<_, Option<i64>>(7).map(|t| t as u64),
            }
        })
        .collect();
    Ok(FleetStatus {
        this_host: this_host.to_owned(),
        now_ms: now_ms.max(0) as u64,
        stale_after_ms: stale_after_ms as u64,
        policy_versions: by_policy(&hosts),
        hosts,
    })
}

fn by_policy(hosts: &[HostStatus]) -> Vec<PolicyHosts> {
    let mut out: Vec<PolicyHosts> = Vec::new();
    for h in hosts {
        match out
            .iter_mut()
            .find(|p| p.policy_version == h.policy_version)
        {
            Some(p) => p.hosts.push(h.host.clone()),
            None => out.push(PolicyHosts {
                policy_version: h.policy_version.clone(),
                hosts: vec![h.host.clone()],
            }),
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.hosts.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, version: &str) -> HostStatus {
        HostStatus {
            host: name.into(),
            version: "1".into(),
            policy_version: version.into(),
            started_at_ms: 0,
            last_seen_ms: 0,
            stale: false,
            shipped_seq: 0,
            shipped_timestamp_ms: None,
        }
    }

    #[test]
    fn hosts_are_grouped_by_policy_version_largest_group_first() {
        let groups = by_policy(&[host("a", "v1"), host("b", "v2"), host("c", "v2")]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].policy_version, "v2");
        assert_eq!(groups[0].hosts, vec!["b", "c"]);
        assert_eq!(groups[1].hosts, vec!["a"]);
    }
}
