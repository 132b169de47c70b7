//! Stock movements and a SKU's availability.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use stockhub_core::quantity::{parse_count, parse_delta};
use stockhub_core::{Code, Quantity, Sku};
use stockhub_store::engine::{movements, stock};
use stockhub_store::model::{Movement, MovementItem, MovementResult, StockView};
use stockhub_store::{ItemError, StoreError};

use crate::extract::{ApiPath, JsonBody};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::write::{self, check_key, request_hash, Caller};
use crate::{parse_sku, parse_time_ms, AppState};

/// The most movements one request may carry.
pub const MOVEMENTS_MAX: usize = 100_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MovementsBody {
    /// Applied in order, all or none.
    #[schema(value_type = Vec<MovementBody>)]
    pub movements: Vec<Json_>,
}

/// One movement. `kind` decides which fields apply:
/// `receive` {sku, location, quantity}; `adjust` {sku, location, delta};
/// `count` {sku, location, on_hand, counted_at?}; `transfer` {sku, from, to, quantity}.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MovementBody {
    pub kind: String,
    pub sku: String,
    pub location: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub quantity: Option<i64>,
    pub delta: Option<i64>,
    pub on_hand: Option<i64>,
    /// RFC 3339 time the count was taken; movements recorded after it are re-applied on top.
    pub counted_at: Option<String>,
    pub note: Option<String>,
    /// This item's own idempotency key: a repeat comes back `replayed`.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MovementsResponse {
    pub results: Vec<MovementResult>,
}

type ItemFault = (&'static str, String);

fn field<T: Copy>(v: Option<T>, name: &str, kind: &str) -> Result<T, ItemFault> {
    v.ok_or_else(|| {
        (
            "invalid-request",
            format!("a {kind} movement needs `{name}`"),
        )
    })
}

fn location(v: &Option<String>, name: &str, kind: &str) -> Result<Code, ItemFault> {
    let raw = v.as_deref().ok_or_else(|| {
        (
            "invalid-request",
            format!("a {kind} movement needs `{name}`"),
        )
    })?;
    Code::parse("location", raw).map_err(|e| ("invalid-location", e.to_string()))
}

fn quantity(v: Option<i64>, kind: &str) -> Result<Quantity, ItemFault> {
    Quantity::parse(field(v, "quantity", kind)?).map_err(|e| ("invalid-quantity", e.to_string()))
}

fn movement(b: &MovementBody) -> Result<Movement, ItemFault> {
    let sku = Sku::parse(&b.sku).map_err(|e| ("invalid-sku", e.to_string()))?;
    let kind = b.kind.as_str();
    match kind {
        "receive" => Ok(Movement::Receive {
            sku,
            location: location(&b.location, "location", kind)?,
            quantity: quantity(b.quantity, kind)?,
        }),
        "adjust" => Ok(Movement::Adjust {
            sku,
            location: location(&b.location, "location", kind)?,
            delta: parse_delta(field(b.delta, "delta", kind)?)
                .map_err(|e| ("invalid-quantity", e.to_string()))?,
        }),
        "count" => Ok(Movement::Count {
            sku,
            location: location(&b.location, "location", kind)?,
            on_hand: parse_count(field(b.on_hand, "on_hand", kind)?)
                .map_err(|e| ("invalid-quantity", e.to_string()))?,
            counted_at_ms: b
                .counted_at
                .as_deref()
                .map(|t| parse_time_ms(t, "counted_at"))
                .transpose()
                .map_err(|m| ("invalid-request", m))?,
        }),
        "transfer" => Ok(Movement::Transfer {
            sku,
            from: location(&b.from, "from", kind)?,
            to: location(&b.to, "to", kind)?,
            quantity: quantity(b.quantity, kind)?,
        }),
        other => Err((
            "invalid-request",
            format!("unknown movement kind {other:?}; use receive, adjust, count or transfer"),
        )),
    }
}

fn movement_item(raw: Json_, caller: &Caller) -> Result<MovementItem, ItemFault> {
    let hash = request_hash(&raw);
    let b: MovementBody =
        serde_json::from_value(raw).map_err(|e| ("invalid-request", e.to_string()))?;
    let idempotency = match &b.idempotency_key {
        None => None,
        Some(key) => {
            let key =
                check_key(key, "idempotency_key").map_err(|m| ("invalid-idempotency-key", m))?;
            Some((caller.scope(&format!("item:{key}")), hash))
        }
    };
    Ok(MovementItem {
        movement: movement(&b)?,
        note: b.note,
        idempotency,
    })
}

/// Receives, adjusts, counts and transfers stock: every movement or none.
#[utoipa::path(post, path = "/v1/stock/movements", tag = "stock",
    request_body = MovementsBody,
    responses((status = 200, body = MovementsResponse), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn post_movements(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<MovementsBody>,
) -> ApiResult<Response> {
    let raw_items = body.value.movements;
    if raw_items.is_empty() || raw_items.len() > MOVEMENTS_MAX {
        return Err(ApiError::invalid(
            "invalid-request",
            format!(
                "send 1 to {MOVEMENTS_MAX} movements, got {}",
                raw_items.len()
            ),
        ));
    }
    let mut items = Vec::with_capacity(raw_items.len());
    let mut positions = Vec::with_capacity(raw_items.len());
    let mut errors = Vec::new();
    for (index, raw) in raw_items.into_iter().enumerate() {
        match movement_item(raw, &caller) {
            Ok(item) => {
                items.push(item);
                positions.push(index);
            }
            Err((kind, detail)) => errors.push(ItemError {
                index,
                kind,
                detail,
            }),
        }
    }
    if !errors.is_empty() {
        // Check the well-formed items against the store too, so that the answer names every bad
        // item at once; the check is rolled back whatever it finds.
        let ctx = caller.ctx.clone();
        let checked = state
            .store
            .write(move |sql| {
                movements::apply_batch(sql, &ctx, &items)
                    .and(Err::<(), _>(StoreError::Batch(Vec::new())))
            })
            .await;
        return Err(write::merge_item_errors(errors, checked.err(), &positions));
    }
    write::run(&state, caller, &body.canonical, move |sql, ctx| {
        let results = movements::apply_batch(sql, ctx, &items)?;
        Ok((StatusCode::OK, MovementsResponse { results }))
    })
    .await
}

/// A SKU's on_hand and committed per location, and what each channel may sell of it.
#[utoipa::path(get, path = "/v1/stock/{sku}", tag = "stock",
    params(("sku" = String, Path, description = "the SKU (URL-encoded)")),
    responses((status = 200, body = StockView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_stock(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
) -> ApiResult<Json<StockView>> {
    let sku = parse_sku(&sku)?;
    Ok(Json(
        state
            .store
            .read(move |sql| stock::stock_view(sql, sku.as_str()))
            .await?,
    ))
}
