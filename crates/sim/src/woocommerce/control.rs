//! The JSON control API of a fake WooCommerce store, under `/_sim` (never faulted, no auth).
//! Every route calls the same handle method a Rust test would:
//!
//! | route | does |
//! | --- | --- |
//! | `GET /_sim/catalog` | products and variations with their effective stock |
//! | `GET /_sim/orders`, `GET /_sim/orders/{id}` | REST orders |
//! | `POST /_sim/orders` | place an order ([`NewOrder`]) |
//! | `POST /_sim/orders/{id}/status` | `{"status": "cancelled"}`: move an order |
//! | `POST /_sim/orders/{id}/refunds` | refund ([`NewRefund`]) |
//! | `POST /_sim/orders/{id}/edit` | `{"line_item_id", "quantity"}`: order edit |
//! | `POST /_sim/admin/stock` | `{"id", "stock_quantity"}`: drift |
//! | `GET`/`PUT /_sim/faults` | [`Faults`] in force |
//! | `GET /_sim/display-log?since=N` | `{"entries": [...], "dropped": n}` |
//! | `GET`/`POST /_sim/webhooks`, `PUT /_sim/webhooks/{id}` | webhooks ([`WebhookSpec`], [`WebhookUpdate`]) |
//! | `GET /_sim/deliveries` | every delivery and ping |
//!
//! Errors are `{"error": "..."}` with 404, 409 (out of stock) or 422.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Inner, NewOrder, NewRefund, WebhookSpec, WebhookUpdate, WooSim};
use crate::shopify::control_error;
use crate::{Faults, SimError};

type Shared = State<Arc<Inner>>;

pub(crate) fn router() -> Router<Arc<Inner>> {
    Router::new()
        .route("/_sim/catalog", get(catalog))
        .route("/_sim/orders", get(orders).post(place_order))
        .route("/_sim/orders/{id}", get(order))
        .route("/_sim/orders/{id}/status", post(status))
        .route("/_sim/orders/{id}/refunds", post(refund))
        .route("/_sim/orders/{id}/edit", post(edit))
        .route("/_sim/admin/stock", post(admin_stock))
        .route("/_sim/faults", get(faults).put(set_faults))
        .route("/_sim/display-log", get(display_log))
        .route("/_sim/webhooks", get(webhooks).post(add_webhook))
        .route("/_sim/webhooks/{id}", put(update_webhook))
        .route("/_sim/deliveries", get(deliveries))
}

fn sim(inner: Arc<Inner>) -> WooSim {
    WooSim { inner }
}

fn reply(result: Result<Value, SimError>, status: StatusCode) -> Response {
    match result {
        Ok(value) => (status, Json(value)).into_response(),
        Err(error) => control_error(&error),
    }
}

async fn catalog(State(inner): Shared) -> Response {
    Json(json!({ "items": sim(inner).items() })).into_response()
}

async fn orders(State(inner): Shared) -> Response {
    Json(json!({ "orders": sim(inner).orders() })).into_response()
}

async fn order(State(inner): Shared, Path(id): Path<u64>) -> Response {
    reply(
        sim(inner)
            .order(id)
            .ok_or_else(|| SimError::not_found("order", id)),
        StatusCode::OK,
    )
}

async fn place_order(State(inner): Shared, Json(order): Json<NewOrder>) -> Response {
    reply(sim(inner).place_order(&order), StatusCode::CREATED)
}

#[derive(Deserialize)]
struct Status {
    status: String,
}

async fn status(State(inner): Shared, Path(id): Path<u64>, Json(body): Json<Status>) -> Response {
    reply(
        sim(inner).set_order_status(id, &body.status),
        StatusCode::OK,
    )
}

async fn refund(
    State(inner): Shared,
    Path(id): Path<u64>,
    Json(refund): Json<NewRefund>,
) -> Response {
    reply(sim(inner).refund(id, &refund), StatusCode::CREATED)
}

#[derive(Deserialize)]
struct Edit {
    line_item_id: u64,
    quantity: i64,
}

async fn edit(State(inner): Shared, Path(id): Path<u64>, Json(edit): Json<Edit>) -> Response {
    reply(
        sim(inner).edit_line_quantity(id, edit.line_item_id, edit.quantity),
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct AdminStock {
    id: u64,
    stock_quantity: i64,
}

async fn admin_stock(State(inner): Shared, Json(body): Json<AdminStock>) -> Response {
    reply(
        sim(inner).admin_set_stock(body.id, body.stock_quantity),
        StatusCode::OK,
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

async fn webhooks(State(inner): Shared) -> Response {
    Json(json!({ "webhooks": sim(inner).webhooks() })).into_response()
}

async fn add_webhook(State(inner): Shared, Json(spec): Json<WebhookSpec>) -> Response {
    reply(
        sim(inner).add_webhook(spec).map(|w| json!(w)),
        StatusCode::CREATED,
    )
}

async fn update_webhook(
    State(inner): Shared,
    Path(id): Path<u64>,
    Json(update): Json<WebhookUpdate>,
) -> Response {
    reply(
        sim(inner).update_webhook(id, &update).map(|w| json!(w)),
        StatusCode::OK,
    )
}

async fn deliveries(State(inner): Shared) -> Response {
    Json(json!({ "deliveries": sim(inner).deliveries() })).into_response()
}
