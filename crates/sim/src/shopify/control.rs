//! The JSON control API of a fake Shopify store, under `/_sim` (never faulted, no auth), for the
//! CLI and for tests written in other languages. Every route calls the same handle method a
//! Rust test would:
//!
//! | route | does |
//! | --- | --- |
//! | `GET /_sim/catalog` | locations and variants with inventory items and levels |
//! | `GET /_sim/orders`, `GET /_sim/orders/{id}` | REST orders |
//! | `POST /_sim/orders` | place an order ([`NewOrder`]) |
//! | `POST /_sim/orders/{id}/cancel` | cancel ([`CancelOrder`]) |
//! | `POST /_sim/orders/{id}/refunds` | refund ([`NewRefund`]) |
//! | `POST /_sim/orders/{id}/fulfill`, `…/paid` | fulfil, mark paid |
//! | `POST /_sim/orders/{id}/edit` | `{"line_item_id", "quantity"}`: order edit |
//! | `POST /_sim/admin/inventory` | `{"inventory_item_id", "location_id", "available"}`: drift |
//! | `GET`/`PUT /_sim/faults` | [`Faults`] in force |
//! | `GET /_sim/display-log?since=N` | `{"entries": [...], "dropped": n}` |
//! | `GET`/`PUT /_sim/webhook` | [`WebhookTarget`] |
//! | `GET /_sim/deliveries` | every delivery attempt |
//!
//! Errors are `{"error": "..."}` with 404 (unknown id), 409 (out of stock) or 422 (bad request).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{CancelOrder, Inner, NewOrder, NewRefund, ShopifySim, WebhookTarget};
use crate::{Faults, SimError};

type Shared = State<Arc<Inner>>;

pub(crate) fn router() -> Router<Arc<Inner>> {
    Router::new()
        .route("/_sim/catalog", get(catalog))
        .route("/_sim/orders", get(orders).post(place_order))
        .route("/_sim/orders/{id}", get(order))
        .route("/_sim/orders/{id}/cancel", post(cancel))
        .route("/_sim/orders/{id}/refunds", post(refund))
        .route("/_sim/orders/{id}/fulfill", post(fulfill))
        .route("/_sim/orders/{id}/paid", post(paid))
        .route("/_sim/orders/{id}/edit", post(edit))
        .route("/_sim/admin/inventory", post(admin_inventory))
        .route("/_sim/faults", get(faults).put(set_faults))
        .route("/_sim/display-log", get(display_log))
        .route("/_sim/webhook", get(webhook).put(set_webhook))
        .route("/_sim/deliveries", get(deliveries))
}

pub(crate) fn control_error(error: &SimError) -> Response {
    let status = match error {
        SimError::NotFound { .. } => StatusCode::NOT_FOUND,
        SimError::OutOfStock { .. } => StatusCode::CONFLICT,
        SimError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        SimError::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(json!({ "error": error.to_string() }))).into_response()
}

fn reply(result: Result<Value, SimError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => control_error(&error),
    }
}

fn sim(inner: Arc<Inner>) -> ShopifySim {
    ShopifySim { inner }
}

async fn catalog(State(inner): Shared) -> Response {
    let sim = sim(inner);
    Json(json!({ "locations": sim.locations(), "variants": sim.variants() })).into_response()
}

async fn orders(State(inner): Shared) -> Response {
    Json(json!({ "orders": sim(inner).orders() })).into_response()
}

async fn order(State(inner): Shared, Path(id): Path<u64>) -> Response {
    match sim(inner).order(id) {
        Some(order) => Json(json!({ "order": order })).into_response(),
        None => control_error(&SimError::not_found("order", id)),
    }
}

async fn place_order(State(inner): Shared, Json(order): Json<NewOrder>) -> Response {
    match sim(inner).place_order(&order) {
        Ok(order) => (StatusCode::CREATED, Json(json!({ "order": order }))).into_response(),
        Err(error) => control_error(&error),
    }
}

async fn cancel(
    State(inner): Shared,
    Path(id): Path<u64>,
    body: Option<Json<CancelOrder>>,
) -> Response {
    let cancel = body.map(|Json(c)| c).unwrap_or_default();
    reply(
        sim(inner)
            .cancel_order(id, &cancel)
            .map(|o| json!({ "order": o })),
    )
}

async fn refund(
    State(inner): Shared,
    Path(id): Path<u64>,
    Json(refund): Json<NewRefund>,
) -> Response {
    let result = sim(inner).refund(id, &refund);
    let refund = result.map(|order| json!({ "refund": order["refunds"].as_array().and_then(|r| r.last()).cloned(), "order": order }));
    match refund {
        Ok(value) => (StatusCode::CREATED, Json(value)).into_response(),
        Err(error) => control_error(&error),
    }
}

async fn fulfill(State(inner): Shared, Path(id): Path<u64>) -> Response {
    reply(sim(inner).fulfill(id).map(|o| json!({ "order": o })))
}

async fn paid(State(inner): Shared, Path(id): Path<u64>) -> Response {
    reply(sim(inner).mark_paid(id).map(|o| json!({ "order": o })))
}

#[derive(Deserialize)]
struct Edit {
    line_item_id: u64,
    quantity: i64,
}

async fn edit(State(inner): Shared, Path(id): Path<u64>, Json(edit): Json<Edit>) -> Response {
    reply(
        sim(inner)
            .edit_line_quantity(id, edit.line_item_id, edit.quantity)
            .map(|o| json!({ "order": o })),
    )
}

#[derive(Deserialize)]
struct AdminInventory {
    inventory_item_id: u64,
    location_id: u64,
    available: i64,
}

async fn admin_inventory(State(inner): Shared, Json(edit): Json<AdminInventory>) -> Response {
    reply(
        sim(inner)
            .admin_set_available(edit.inventory_item_id, edit.location_id, edit.available)
            .map(|l| json!({ "inventory_level": l })),
    )
}

async fn faults(State(inner): Shared) -> Response {
    Json(sim(inner).faults()).into_response()
}

async fn set_faults(State(inner): Shared, Json(faults): Json<Faults>) -> Response {
    let sim = sim(inner);
    sim.set_faults(faults);
    Json(sim.faults()).into_response()
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn display_log(State(inner): Shared, Query(since): Query<Since>) -> Response {
    let dropped = inner.lock().display.dropped();
    Json(json!({ "entries": sim(inner).display_log_since(since.since), "dropped": dropped }))
        .into_response()
}

async fn webhook(State(inner): Shared) -> Response {
    Json(sim(inner).webhook_target()).into_response()
}

async fn set_webhook(State(inner): Shared, Json(target): Json<WebhookTarget>) -> Response {
    let sim = sim(inner);
    sim.set_webhook_target(target);
    Json(sim.webhook_target()).into_response()
}

async fn deliveries(State(inner): Shared) -> Response {
    let sim = sim(inner);
    Json(json!({ "deliveries": sim.deliveries(), "in_flight": sim.deliveries_in_flight() }))
        .into_response()
}
