-- The fleet's decision log: filled in by the fleet decision-log work.
SELECT 1;
