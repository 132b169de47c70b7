//! Reservations: hold N units for a storefront or POS, or fail.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use stockhub_core::Quantity;
use stockhub_store::engine::reservations;
use stockhub_store::model::{OrderView, Reservation, ReserveInput};

use crate::extract::{ApiPath, JsonBody};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::write::{self, Caller};
use crate::{parse_code, parse_sku, AppState};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody {
    pub channel: String,
    pub sku: String,
    pub quantity: i64,
    /// Reserve at this location only (it must feed the channel).
    pub location: Option<String>,
    /// How long the hold lasts, 1 s to 7 days (default 900).
    #[serde(default = "default_expiry")]
    pub expires_in_seconds: i64,
}

fn default_expiry() -> i64 {
    900
}

/// Holds units for a channel if they are available to sell on it now; 409 `insufficient-stock`
/// says how many are.
#[utoipa::path(post, path = "/v1/reservations", tag = "reservations",
    request_body = ReserveBody,
    responses((status = 201, body = Reservation), (status = 409, body = Problem, content_type = "application/problem+json"), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn post_reservation(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<ReserveBody>,
) -> ApiResult<Response> {
    let b = &body.value;
    let input = ReserveInput {
        channel: parse_code("channel", &b.channel)?,
        sku: parse_sku(&b.sku)?,
        quantity: Quantity::parse(b.quantity)
            .map_err(|e| ApiError::invalid("invalid-quantity", e.to_string()))?,
        location: b
            .location
            .as_deref()
            .map(|l| parse_code("location", l))
            .transpose()?,
        expires_in_ms: b.expires_in_seconds.saturating_mul(1000),
    };
    write::run(&state, caller, &body.canonical, move |sql, ctx| {
        Ok((
            StatusCode::CREATED,
            reservations::reserve(sql, ctx, &input)?,
        ))
    })
    .await
}

#[utoipa::path(get, path = "/v1/reservations/{id}", tag = "reservations",
    params(("id" = i64, Path, description = "the reservation's id")),
    responses((status = 200, body = Reservation), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_reservation(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Reservation>> {
    Ok(Json(
        state
            .store
            .read(move |sql| reservations::get(sql, id))
            .await?,
    ))
}

/// Releases an active reservation's units.
#[utoipa::path(post, path = "/v1/reservations/{id}/release", tag = "reservations",
    params(("id" = i64, Path, description = "the reservation's id")),
    responses((status = 200, body = Reservation), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn release_reservation(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    caller: Caller,
) -> ApiResult<Response> {
    write::run(&state, caller, &serde_json::Value::Null, move |sql, ctx| {
        Ok((StatusCode::OK, reservations::release(sql, ctx, id)?))
    })
    .await
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The order id on the reservation's channel; `reservation-<id>` when absent.
    pub external_id: Option<String>,
}

/// Turns an unexpired reservation into an order; 409 `reservation-expired` once its time has
/// passed by the database clock, whether or not the sweeper has run.
#[utoipa::path(post, path = "/v1/reservations/{id}/confirm", tag = "reservations",
    params(("id" = i64, Path, description = "the reservation's id")),
    request_body = ConfirmBody,
    responses((status = 201, body = OrderView), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn confirm_reservation(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    caller: Caller,
    body: JsonBody<ConfirmBody>,
) -> ApiResult<Response> {
    let external_id = body.value.external_id.clone();
    if let Some(e) = &external_id {
        crate::routes::orders::check_external_id(e)?;
    }
    write::run(&state, caller, &body.canonical, move |sql, ctx| {
        Ok((
            StatusCode::CREATED,
            reservations::confirm(sql, ctx, id, external_id.as_deref())?,
        ))
    })
    .await
}
