-- The fleet's decision log: every sidecar's records, shipped from its own
-- local hash chain. One row per (host, seq); each row carries the record's
-- canonical JSON (the exact bytes its hash covers, kept as text so no byte
-- changes: jsonb would reorder keys), its hash and the hash it links to, so
-- each host's chain can be verified from this table alone.
CREATE TABLE fleet_decisions (
  -- The order rows arrived in, across hosts: the cursor of reads over the
  -- whole fleet (a host's own order is its seq).
  id bigserial UNIQUE,
  host text NOT NULL,
  seq bigint NOT NULL CHECK (seq > 0),
  timestamp_ms bigint NOT NULL,
  chain_hash text NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL,
  canonical text NOT NULL,
  shipped_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (host, seq)
);

-- Queries across hosts go by time.
CREATE INDEX fleet_decisions_time ON fleet_decisions (timestamp_ms);

-- Append-only. The sidecars connect as the table's owner, and an owner
-- cannot be refused UPDATE or DELETE by a REVOKE: a trigger refuses them
-- (and TRUNCATE). Only a superuser who disables the trigger can rewrite a
-- row, and the per-host chain then shows it.
CREATE FUNCTION fleet_decisions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'fleet_decisions is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER fleet_decisions_no_update_or_delete
  BEFORE UPDATE OR DELETE ON fleet_decisions
  FOR EACH ROW EXECUTE FUNCTION fleet_decisions_append_only();

CREATE TRIGGER fleet_decisions_no_truncate
  BEFORE TRUNCATE ON fleet_decisions
  FOR EACH STATEMENT EXECUTE FUNCTION fleet_decisions_append_only();
