//! Liveness, readiness and the storage settings in force.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use stockhub_store::CommitStats;

use crate::problem::{ApiResult, Problem};
use crate::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can read its database.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.store.read(|sql| sql.query("SELECT 1", &[])).await?;
    Ok(Json(Health { status: "ready" }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StorageReport {
    /// Durability settings read back from the live write connection.
    #[schema(value_type = Object)]
    pub durability: serde_json::Value,
    /// Transactions committed and the units of work they carried (group commit).
    pub commits: CommitStats,
}

#[utoipa::path(get, path = "/v1/system/storage", tag = "system", responses((status = 200, body = StorageReport)))]
pub async fn storage(State(state): State<AppState>) -> ApiResult<Json<StorageReport>> {
    let durability = state.store.durability_settings().await?;
    Ok(Json(StorageReport {
        durability,
        commits: state.store.stats(),
    }))
}

/// Prometheus metrics: propagation latency per channel, push queue depth, failures, oversells,
/// webhook outcomes.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let (depth, oversold) = state
        .store
        .read(|sql| {
            let depth = stockhub_store::engine::pushes::depth(sql)?;
            let oversold = sql.query("SELECT COALESCE(channel, ''), COUNT(*) FROM ledger WHERE kind = 'oversold' GROUP BY channel", &[])?;
            Ok((depth, oversold.iter().map(|r| (r.text(0), r.int(1))).collect::<Vec<_>>()))
        })
        .await?;
    let queue: Vec<(String, f64)> = depth
        .iter()
        .map(|(c, s, n)| (format!("channel=\"{c}\",state=\"{s}\""), *n as f64))
        .collect();
    let oversells: Vec<(String, f64)> = oversold
        .iter()
        .map(|(c, n)| (format!("channel=\"{c}\""), *n as f64))
        .collect();
    let commits = state.store.stats();
    let text = state.services.metrics.render(&[
        (
            "stockhub_push_queue",
            "Push marks by channel and state (dead ones need the operator).",
            queue,
        ),
        (
            "stockhub_oversold_entries",
            "Oversold ledger entries by channel.",
            oversells,
        ),
        (
            "stockhub_store_commits",
            "Write transactions committed.",
            vec![(String::new(), commits.commits as f64)],
        ),
        (
            "stockhub_store_operations",
            "Units of work those transactions carried.",
            vec![(String::new(), commits.operations as f64)],
        ),
    ]);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response())
}
