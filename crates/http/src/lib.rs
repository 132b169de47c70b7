//! stockhub's HTTP layer: the `/v1` API (axum), its OpenAPI 3.1 document generated from the
//! handlers themselves, problem+json errors, and the maintenance loops a server runs (reservation
//! expiry, idempotency-key expiry).
#![forbid(unsafe_code)]

pub mod extract;
pub mod maintenance;
pub mod problem;
pub mod routes;
pub mod write;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use stockhub_core::{Code, Sku};
use stockhub_store::Store;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::{ApiError, ApiResult};
use crate::routes::{audit, catalog, channels, orders, reservations, stock, system};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The channel-facing services the HTTP layer shares with the worker loops.
#[derive(Clone)]
pub struct Services {
    pub connectors: stockhub_app::Connectors,
    pub metrics: Arc<stockhub_app::Metrics>,
}

impl Services {
    /// Services whose channel calls each give up after `request_timeout`.
    pub fn new(store: &Store, request_timeout: std::time::Duration) -> Self {
        let metrics = Arc::<stockhub_app::Metrics>::default();
        Self {
            connectors: stockhub_app::Connectors::new(
                store.clone(),
                request_timeout,
                metrics.clone(),
            ),
            metrics,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<HttpSettings>,
    pub inflight: write::InFlight,
    pub services: Services,
}

impl AppState {
    pub fn with_services(store: Store, settings: HttpSettings, services: Services) -> Self {
        Self {
            store,
            settings: Arc::new(settings),
            inflight: write::InFlight::default(),
            services,
        }
    }
}

#[derive(OpenApi)]
#[openapi(info(
    title = "stockhub",
    description = "The canonical stock ledger for brands that sell the same units on many channels. \
                   Errors are application/problem+json (RFC 9457) with a stable `type`."
))]
struct ApiDoc;

/// The router and the OpenAPI document describing exactly its routes.
pub fn router(state: AppState) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::storage))
        .routes(routes!(catalog::put_product, catalog::get_product))
        .routes(routes!(catalog::put_variant, catalog::get_variant))
        .routes(routes!(catalog::list_variants))
        .routes(routes!(catalog::batch_variants))
        .routes(routes!(catalog::put_location))
        .routes(routes!(catalog::list_locations))
        .routes(routes!(channels::put_channel, channels::get_channel))
        .routes(routes!(channels::list_channels))
        .routes(routes!(channels::discover, channels::discovery_report))
        .routes(routes!(channels::list_listings))
        .routes(routes!(channels::resync))
        .routes(routes!(channels::backfill))
        .routes(routes!(channels::list_pushes))
        .routes(routes!(channels::retry_pushes))
        .routes(routes!(channels::list_events))
        .routes(routes!(channels::get_event))
        .routes(routes!(channels::replay_event))
        .routes(routes!(channels::webhook))
        .routes(routes!(system::metrics))
        .routes(routes!(stock::post_movements))
        .routes(routes!(stock::get_stock))
        .routes(routes!(reservations::post_reservation))
        .routes(routes!(reservations::get_reservation))
        .routes(routes!(reservations::release_reservation))
        .routes(routes!(reservations::confirm_reservation))
        .routes(routes!(orders::post_order))
        .routes(routes!(orders::get_order))
        .routes(routes!(orders::cancel_order))
        .routes(routes!(orders::ship_order))
        .routes(routes!(orders::return_order))
        .routes(routes!(orders::restock_order))
        .routes(routes!(orders::list_unmapped))
        .routes(routes!(orders::resolve_unmapped))
        .routes(routes!(audit::get_ledger))
        .routes(routes!(audit::order_story))
        .split_for_parts();
    let api = Arc::new(api);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { Json(api.as_ref().clone()) }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The OpenAPI document on its own (for tests and tooling).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi()).split_for_parts();
    api
}

async fn not_found() -> impl IntoResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such route; see /openapi.json",
    )
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not take that method; see /openapi.json",
    )
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

pub(crate) fn parse_sku(raw: &str) -> ApiResult<Sku> {
    Sku::parse(raw).map_err(|e| ApiError::invalid("invalid-sku", e.to_string()))
}

pub(crate) fn parse_code(what: &'static str, raw: &str) -> ApiResult<Code> {
    Code::parse(what, raw).map_err(|e| {
        ApiError::invalid(
            if what == "location" {
                "invalid-location"
            } else {
                "invalid-channel"
            },
            e.to_string(),
        )
    })
}

/// An RFC 3339 time as milliseconds since the epoch.
pub(crate) fn parse_time_ms(raw: &str, name: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339_weak(raw)
        .map_err(|e| format!("{name} must be an RFC 3339 time like 2026-11-28T09:30:00Z: {e}"))?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{name} is before 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| format!("{name} is too far in the future"))
}
