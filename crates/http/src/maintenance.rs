//! The loops a server runs beside its requests: expiring reservations (their releases are in
//! the ledger, attributed to `system:reservation-sweeper`) and forgetting idempotency keys past
//! their retention. Each works in bounded batches and stops when shutdown is signalled. Several
//! processes on one database run each job once per schedule between them (`schedule::claim_run`).

use std::time::Duration;

use stockhub_store::engine::{idempotency, reservations, schedule};
use stockhub_store::model::Ctx;
use stockhub_store::Store;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct MaintenanceSettings {
    pub reservation_sweep_interval: Duration,
    pub idempotency_retention: Duration,
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        Self {
            reservation_sweep_interval: Duration::from_secs(1),
            idempotency_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

const BATCH: i64 = 500;

/// Expires due reservations until none is left; returns how many.
pub async fn sweep_reservations(store: &Store) -> stockhub_store::Result<usize> {
    let mut total = 0;
    loop {
        let ctx = Ctx::system(
            "reservation-sweeper",
            format!("sweep-{}", std::process::id()),
        );
        let n = store
            .write(move |sql| reservations::expire_due(sql, &ctx, BATCH))
            .await?;
        total += n;
        if (n as i64) < BATCH {
            return Ok(total);
        }
    }
}

pub async fn run(store: Store, settings: MaintenanceSettings, mut shutdown: watch::Receiver<bool>) {
    let mut sweep = tokio::time::interval(settings.reservation_sweep_interval);
    let mut forget = tokio::time::interval(Duration::from_secs(3600));
    let retention_ms =
        i64::try_from(settings.idempotency_retention.as_millis()).unwrap_or(i64::MAX);
    let sweep_ms =
        i64::try_from(settings.reservation_sweep_interval.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = sweep.tick() => {
                if !claimed(&store, "reservation-sweep", sweep_ms).await {
                    continue;
                }
                if let Err(e) = sweep_reservations(&store).await {
                    tracing::warn!(error = %e, "reservation sweep failed; retrying next tick");
                }
            }
            _ = forget.tick() => {
                if !claimed(&store, "idempotency-expiry", 3_600_000).await {
                    continue;
                }
                let result = store.write(move |sql| idempotency::expire(sql, retention_ms, 10_000)).await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "expiring idempotency keys failed; retrying next hour");
                }
            }
        }
    }
}

/// Whether this process runs `job` this period (another process may have run it already).
async fn claimed(store: &Store, job: &'static str, interval_ms: i64) -> bool {
    // A little slack, so that the process whose timer fires first each period keeps the job
    // instead of missing a period by a millisecond of timer jitter.
    let interval_ms = interval_ms - interval_ms / 10;
    match store
        .write(move |sql| schedule::claim_run(sql, job, interval_ms))
        .await
    {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, job, "claiming a scheduled run failed; retrying next tick");
            false
        }
    }
}
