//! Scheduled jobs that must run once per schedule across every process sharing the database
//! (reservation expiry, forgetting idempotency keys), not once per process.

use crate::args;
use crate::error::Result;
use crate::sql::Sql;

/// Claims this period's run of `job`: true for exactly one caller per `interval_ms` across all
/// processes (the conditional upsert moves `last_run_at` forward only when the interval has
/// passed, and concurrent callers wait on the row, then see it moved).
pub fn claim_run(sql: &mut dyn Sql, job: &str, interval_ms: i64) -> Result<bool> {
    let now = sql.now_ms();
    let claimed = sql.query_opt(
        "INSERT INTO scheduled_runs (job, last_run_at) VALUES (?1, ?2)
         ON CONFLICT (job) DO UPDATE SET last_run_at = excluded.last_run_at
         WHERE scheduled_runs.last_run_at <= ?3
         RETURNING job",
        args![job, now, now - interval_ms],
    )?;
    Ok(claimed.is_some())
}
