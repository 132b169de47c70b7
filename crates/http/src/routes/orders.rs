//! Orders from any channel (the generic intake every connector calls), their shipments,
//! returns and cancellation, and the unmapped queue.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use stockhub_core::quantity::parse_count;
use stockhub_core::{OrderStatus, Quantity};
use stockhub_store::engine::orders;
use stockhub_store::model::{
    LineQuantity, OrderOutcome, OrderSnapshot, OrderView, SnapshotLine, UnmappedLine,
};
use stockhub_store::ItemError;

use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::write::{self, Caller};
use crate::{parse_code, parse_sku, AppState};

/// The most lines one order may have.
pub const ORDER_LINES_MAX: usize = 10_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct OrderLineBody {
    /// The channel's id of this line; lines are matched across snapshots by it.
    pub line_id: String,
    /// The SKU as the channel knows it; an unknown one sends the line to the unmapped queue.
    pub sku: String,
    /// Units the customer still wants on this line (0 cancels the line).
    pub quantity: i64,
}

/// The order as the channel shows it now. Extra fields are kept with the snapshot.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct OrderBody {
    pub channel: String,
    pub external_id: String,
    /// Snapshots apply in version order; an older or equal version changes nothing.
    pub version: Option<i64>,
    /// `open` (default) or `cancelled`.
    pub status: Option<String>,
    pub lines: Vec<OrderLineBody>,
}

pub fn check_external_id(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.chars().count() > 255 || id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "invalid-request",
            "external_id must be 1 to 255 printable characters",
        ));
    }
    Ok(())
}

fn snapshot(b: OrderBody, raw: serde_json::Value) -> ApiResult<OrderSnapshot> {
    check_external_id(&b.external_id)?;
    let status = match b.status.as_deref() {
        None => OrderStatus::Open,
        Some(s) => OrderStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "invalid-request",
                format!("status {s:?} is not open or cancelled"),
            )
        })?,
    };
    if b.lines.len() > ORDER_LINES_MAX {
        return Err(ApiError::invalid(
            "invalid-request",
            format!("an order may have at most {ORDER_LINES_MAX} lines"),
        ));
    }
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(b.lines.len());
    for (index, l) in b.lines.into_iter().enumerate() {
        let fault = if l.line_id.is_empty() || l.line_id.chars().count() > 255 {
            Some((
                "invalid-request",
                "line_id must be 1 to 255 characters".to_owned(),
            ))
        } else {
            parse_count(l.quantity)
                .err()
                .map(|e| ("invalid-quantity", e.to_string()))
        };
        match fault {
            Some((kind, detail)) => errors.push(ItemError {
                index,
                kind,
                detail,
            }),
            None => lines.push(SnapshotLine {
                line_id: l.line_id,
                channel_sku: l.sku,
                quantity: l.quantity,
                fulfilment: None,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::batch(errors));
    }
    Ok(OrderSnapshot {
        channel: parse_code("channel", &b.channel)?,
        external_id: b.external_id,
        version: b.version,
        status,
        lines,
        raw: raw.to_string(),
    })
}

/// Takes a channel order's current snapshot: commits what is free, records any shortfall as an
/// oversell (never refuses the order), and applies only the difference from the last snapshot.
#[utoipa::path(post, path = "/v1/orders", tag = "orders",
    request_body = OrderBody,
    responses((status = 200, body = OrderOutcome), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn post_order(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<OrderBody>,
) -> ApiResult<Response> {
    let snap = snapshot(body.value, body.canonical.clone())?;
    if caller.key.is_none() {
        // Without an idempotency key the order is its unit's only work, and a new one may be
        // applied together with the other new orders of its group commit.
        let outcome = state.store.apply_order(caller.ctx, snap).await?;
        return Ok((StatusCode::OK, Json(outcome)).into_response());
    }
    write::run(&state, caller, &body.canonical, move |sql, ctx| {
        Ok((StatusCode::OK, orders::apply_snapshot(sql, ctx, &snap)?))
    })
    .await
}

#[utoipa::path(get, path = "/v1/orders/{channel}/{external_id}", tag = "orders",
    params(("channel" = String, Path, description = "channel code"), ("external_id" = String, Path, description = "the channel's order id")),
    responses((status = 200, body = OrderView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_order(
    State(state): State<AppState>,
    ApiPath((channel, external_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(
        state
            .store
            .read(move |sql| orders::get_order(sql, &channel, &external_id))
            .await?,
    ))
}

/// Cancels every unshipped unit of the order.
#[utoipa::path(post, path = "/v1/orders/{channel}/{external_id}/cancel", tag = "orders",
    params(("channel" = String, Path, description = "channel code"), ("external_id" = String, Path, description = "the channel's order id")),
    responses((status = 200, body = OrderView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_order(
    State(state): State<AppState>,
    ApiPath((channel, external_id)): ApiPath<(String, String)>,
    caller: Caller,
) -> ApiResult<Response> {
    write::run(&state, caller, &serde_json::Value::Null, move |sql, ctx| {
        Ok((
            StatusCode::OK,
            orders::cancel(sql, ctx, &channel, &external_id)?,
        ))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineQuantityBody {
    pub line_id: String,
    pub quantity: i64,
    /// Returns only: put the units back on the shelf now (else they wait for a restock call).
    #[serde(default)]
    pub restock: bool,
    /// Returns and restocks: restock here instead of where the units shipped from.
    pub location: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinesBody {
    pub lines: Vec<LineQuantityBody>,
}

fn line_quantities(b: &LinesBody) -> ApiResult<Vec<LineQuantity>> {
    if b.lines.is_empty() {
        return Err(ApiError::invalid(
            "invalid-request",
            "name at least one line",
        ));
    }
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (index, l) in b.lines.iter().enumerate() {
        let location = match l
            .location
            .as_deref()
            .map(|c| parse_code("location", c))
            .transpose()
        {
            Ok(location) => location,
            Err(e) => {
                errors.push(ItemError {
                    index,
                    kind: e.kind(),
                    detail: "location: letters, digits, '-', '_', '.' only".into(),
                });
                continue;
            }
        };
        match Quantity::parse(l.quantity) {
            Ok(quantity) => out.push(LineQuantity {
                line_id: l.line_id.clone(),
                quantity,
                restock: l.restock,
                location,
            }),
            Err(e) => errors.push(ItemError {
                index,
                kind: "invalid-quantity",
                detail: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::batch(errors))
    }
}

/// The shape of the engine's line operations (ship, return, restock).
type LineOperation = fn(
    &mut dyn stockhub_store::Sql,
    &stockhub_store::model::Ctx,
    &str,
    &str,
    &[LineQuantity],
) -> stockhub_store::Result<OrderView>;

/// Runs one line operation on an order as a unit of work.
async fn update_lines(
    state: &AppState,
    channel: String,
    external_id: String,
    caller: Caller,
    body: JsonBody<LinesBody>,
    operation: LineOperation,
) -> ApiResult<Response> {
    let lines = line_quantities(&body.value)?;
    write::run(state, caller, &body.canonical, move |sql, ctx| {
        Ok((
            StatusCode::OK,
            operation(sql, ctx, &channel, &external_id, &lines)?,
        ))
    })
    .await
}

/// Ships committed units: committed and on_hand both fall.
#[utoipa::path(post, path = "/v1/orders/{channel}/{external_id}/ship", tag = "orders",
    params(("channel" = String, Path, description = "channel code"), ("external_id" = String, Path, description = "the channel's order id")),
    request_body = LinesBody,
    responses((status = 200, body = OrderView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn ship_order(
    State(state): State<AppState>,
    ApiPath((channel, external_id)): ApiPath<(String, String)>,
    caller: Caller,
    body: JsonBody<LinesBody>,
) -> ApiResult<Response> {
    update_lines(&state, channel, external_id, caller, body, orders::ship).await
}

/// Records returned units; `restock: true` puts them back on the shelf now.
#[utoipa::path(post, path = "/v1/orders/{channel}/{external_id}/returns", tag = "orders",
    params(("channel" = String, Path, description = "channel code"), ("external_id" = String, Path, description = "the channel's order id")),
    request_body = LinesBody,
    responses((status = 200, body = OrderView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn return_order(
    State(state): State<AppState>,
    ApiPath((channel, external_id)): ApiPath<(String, String)>,
    caller: Caller,
    body: JsonBody<LinesBody>,
) -> ApiResult<Response> {
    update_lines(
        &state,
        channel,
        external_id,
        caller,
        body,
        orders::return_lines,
    )
    .await
}

/// Restocks returned units that were waiting.
#[utoipa::path(post, path = "/v1/orders/{channel}/{external_id}/restock", tag = "orders",
    params(("channel" = String, Path, description = "channel code"), ("external_id" = String, Path, description = "the channel's order id")),
    request_body = LinesBody,
    responses((status = 200, body = OrderView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn restock_order(
    State(state): State<AppState>,
    ApiPath((channel, external_id)): ApiPath<(String, String)>,
    caller: Caller,
    body: JsonBody<LinesBody>,
) -> ApiResult<Response> {
    update_lines(&state, channel, external_id, caller, body, orders::restock).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UnmappedQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnmappedPage {
    pub items: Vec<UnmappedLine>,
    pub next_cursor: Option<i64>,
}

/// Order lines whose SKU is not known yet, oldest first.
#[utoipa::path(get, path = "/v1/unmapped", tag = "orders", params(UnmappedQuery),
    responses((status = 200, body = UnmappedPage)))]
pub async fn list_unmapped(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UnmappedQuery>,
) -> ApiResult<Json<UnmappedPage>> {
    let limit = crate::routes::catalog::page_limit(q.limit)?;
    let mut items = state
        .store
        .read(move |sql| orders::unmapped(sql, q.cursor, limit + 1))
        .await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|l| l.id)
    } else {
        None
    };
    Ok(Json(UnmappedPage { items, next_cursor }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// Our SKU that the channel's SKU stands for (remembered for that channel).
    pub sku: String,
}

/// Maps an unmapped line's channel SKU to one of ours and applies every line waiting on it.
#[utoipa::path(post, path = "/v1/unmapped/{id}/resolve", tag = "orders",
    params(("id" = i64, Path, description = "the unmapped line's id")),
    request_body = ResolveBody,
    responses((status = 200, body = Vec<OrderView>), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn resolve_unmapped(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    caller: Caller,
    body: JsonBody<ResolveBody>,
) -> ApiResult<Response> {
    let sku = parse_sku(&body.value.sku)?;
    write::run(&state, caller, &body.canonical, move |sql, ctx| {
        Ok((
            StatusCode::OK,
            orders::resolve_unmapped(sql, ctx, id, sku.as_str())?,
        ))
    })
    .await
}
