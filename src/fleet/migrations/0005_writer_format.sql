-- Which release of the store's records wrote a change. A release whose
-- records an older sidecar would misread raises the format every writer
-- must state, so an older sidecar still running (it states none) has its
-- writes refused and fails closed, rather than weakening the fleet. Rows
-- written before stay as they are (NOT VALID checks new rows only).
--
-- Format 2: the lockout record's attempts in flight (`in_flight`, each
-- by its deadline). An older sidecar dropped them when it rewrote a
-- record, so the other hosts saw no attempt in flight and verified 15-18
-- wrong guesses before a lock instead of 5 (red team, session 7).
ALTER TABLE fleet_changes ADD COLUMN writer_format integer NOT NULL DEFAULT 1;
ALTER TABLE fleet_changes ADD CONSTRAINT fleet_changes_writer_format
  CHECK (writer_format >= 2) NOT VALID;
