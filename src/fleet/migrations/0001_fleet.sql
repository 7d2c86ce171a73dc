-- Which hosts are in the fleet and what they run: each sidecar upserts
-- its row at start and on every heartbeat.
CREATE TABLE fleet_hosts (
  host text PRIMARY KEY,
  version text NOT NULL,
  policy_version text NOT NULL,
  started_at timestamptz NOT NULL,
  last_seen timestamptz NOT NULL
);
