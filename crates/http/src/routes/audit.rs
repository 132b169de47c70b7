//! The audit trail: the ledger, filtered and paged, and the whole story of one order.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use stockhub_core::EntryKind;
use stockhub_store::engine::{ledger, orders};
use stockhub_store::model::{LedgerEntry, LedgerQuery, OrderKey, OrderStory};

use crate::extract::{ApiPath, ApiQuery};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::{parse_time_ms, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LedgerParams {
    pub sku: Option<String>,
    /// Entries about orders of this channel, reservations on it, and its pushes.
    pub channel: Option<String>,
    /// With `order_channel`: entries of one order.
    pub order_id: Option<String>,
    /// The channel of `order_id`.
    pub order_channel: Option<String>,
    /// `api:<token>`, `channel:<code>`, `system:<job>`, `cli:<user>`.
    pub source: Option<String>,
    /// An entry kind, e.g. `oversold`.
    pub kind: Option<String>,
    /// RFC 3339; entries at or after.
    pub from: Option<String>,
    /// RFC 3339; entries before.
    pub to: Option<String>,
    /// `asc` (oldest first, default) or `desc`.
    pub order: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LedgerPage {
    pub entries: Vec<LedgerEntry>,
    pub next_cursor: Option<i64>,
}

/// Ledger entries matching every filter given, a page at a time.
#[utoipa::path(get, path = "/v1/ledger", tag = "audit", params(LedgerParams),
    responses((status = 200, body = LedgerPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn get_ledger(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<LedgerParams>,
) -> ApiResult<Json<LedgerPage>> {
    let limit = crate::routes::catalog::page_limit(p.limit)?;
    let order = match (p.order_channel, p.order_id) {
        (Some(channel), Some(external_id)) => Some(OrderKey {
            channel,
            external_id,
        }),
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid(
                "invalid-request",
                "give order_channel and order_id together",
            ))
        }
    };
    let kind = match p.kind.as_deref() {
        None => None,
        Some(k) => Some(EntryKind::parse(k).ok_or_else(|| {
            let known: Vec<&str> = EntryKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::invalid(
                "invalid-request",
                format!("unknown kind {k:?}; use one of {known:?}"),
            )
        })?),
    };
    let newest_first = match p.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return Err(ApiError::invalid(
                "invalid-request",
                format!("order must be asc or desc, got {o:?}"),
            ))
        }
    };
    let map_time = |t: Option<String>, name: &str| {
        t.map(|t| parse_time_ms(&t, name))
            .transpose()
            .map_err(|m| ApiError::invalid("invalid-request", m))
    };
    let query = LedgerQuery {
        sku: p.sku,
        order,
        channel: p.channel,
        source: p.source,
        kind,
        from_ms: map_time(p.from, "from")?,
        to_ms: map_time(p.to, "to")?,
        cursor: p.cursor,
        newest_first,
        limit: limit + 1,
    };
    let mut entries = state
        .store
        .read_latest(move |sql| ledger::query(sql, &query))
        .await?;
    let next_cursor = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(LedgerPage {
        entries,
        next_cursor,
    }))
}

/// What exactly happened to one order: its lines, the last snapshot, the reservation it came
/// from and every ledger entry, in one answer.
#[utoipa::path(get, path = "/v1/audit/orders/{channel}/{external_id}", tag = "audit",
    params(("channel" = String, Path, description = "channel code"), ("external_id" = String, Path, description = "the channel's order id")),
    responses((status = 200, body = OrderStory), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn order_story(
    State(state): State<AppState>,
    ApiPath((channel, external_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<OrderStory>> {
    Ok(Json(
        state
            .store
            .read(move |sql| orders::story(sql, &channel, &external_id))
            .await?,
    ))
}
