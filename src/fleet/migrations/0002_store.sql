-- The store's replication: one row per committed store write, in commit
-- order (writers hold a fleet-wide advisory lock from before the row's id
-- is drawn until after its commit, so ids commit in increasing order and a
-- replica that applied id N has seen every change up to N). `changes` is a
-- JSON array of {op: put|remove|count|undo|clear, table, key, value}.
-- Sidecars are woken by NOTIFY fleet_changes with the id as payload.
CREATE TABLE fleet_changes (
  id bigserial PRIMARY KEY,
  host text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  changes jsonb NOT NULL
);
