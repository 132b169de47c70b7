-- Scheduled jobs (reservation expiry, forgetting idempotency keys, later reconciliation) run
-- once per schedule across every process that shares the database: a process runs a job only
-- if it moved the job's `last_run_at` forward, which one conditional statement lets exactly one
-- process do per interval. Never edit once applied.
CREATE TABLE scheduled_runs (
    job         TEXT PRIMARY KEY,
    last_run_at INTEGER NOT NULL
);
