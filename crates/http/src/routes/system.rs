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
