-- The fleet's API keys, shared by every sidecar started without
-- --api-keys: the same fields as the keys file, plus when a key was
-- revoked. Only the key's SHA-256 is stored; the key itself is printed
-- once by `keys create --fleet` and kept nowhere. Sidecars are woken by
-- NOTIFY fleet_api_keys when a key is created or revoked.
CREATE TABLE fleet_api_keys (
  id text PRIMARY KEY,
  key_sha256 text NOT NULL UNIQUE CHECK (key_sha256 ~ '^[0-9a-f]{64}$'),
  scopes text[] NOT NULL,
  created_ms bigint NOT NULL,
  -- Set by `keys revoke --fleet`; a revoked key is refused everywhere.
  revoked_ms bigint
);

-- Rows are never deleted: a revoked key stays a row, so its id is never
-- reused for another caller (decision records name callers by id), and a
-- table that once held keys can never look empty again, which would open
-- sidecars on loopback to every caller.
CREATE FUNCTION fleet_api_keys_keep_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'fleet_api_keys keeps its rows: % refused (revoke a key instead)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER fleet_api_keys_no_delete
  BEFORE DELETE ON fleet_api_keys
  FOR EACH ROW EXECUTE FUNCTION fleet_api_keys_keep_rows();

CREATE TRIGGER fleet_api_keys_no_truncate
  BEFORE TRUNCATE ON fleet_api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION fleet_api_keys_keep_rows();
