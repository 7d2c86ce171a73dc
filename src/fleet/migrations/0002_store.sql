-- The store's replication: filled in by the fleet store work.
SELECT 1;
