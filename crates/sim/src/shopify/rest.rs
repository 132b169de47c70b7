//! The REST Admin endpoints a connector uses (API_FACTS §1.4, §1.5, §1.6):
//!
//! - `GET orders.json` with `status` (default `open`, so a backfill must pass `status=any`),
//!   `updated_at_min/max`, `created_at_min/max`, `since_id`, `ids`, `financial_status`,
//!   `fields`, `order` and `limit` (default 50, at most 250), paginated by `page_info` cursors
//!   in the `Link` header (`rel="next"`, `rel="previous"`); a request with `page_info` may only
//!   add `limit` and `fields`. Sorted by id ascending unless `order` says otherwise.
//! - `GET orders/{id}.json`, `GET orders/count.json`, `GET orders/{id}/refunds.json`.
//! - `GET inventory_levels.json?inventory_item_ids=&location_ids=` (at most 50 ids each),
//!   `POST inventory_levels/set.json` (absolute; connects the item to the location when it was
//!   not stocked there) and `POST inventory_levels/adjust.json` (delta).
//!
//! Every call goes through the store's call bucket (40, leaking 2 per second on the Standard
//! plan): the answer carries `X-Shopify-Shop-Api-Call-Limit: n/40`, and a full bucket answers
//! 429 with `Retry-After: 2.0`. Timestamps compare at whole seconds, as written.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::graphql_api::token_refusal;
use super::model::{Order, State as Store};
use super::rest_json::{level_json, order_json, refund_json};
use super::Inner;
use crate::clock;
use crate::display::Cause;
use crate::http_util::{encode_component, query_pairs, query_value};

const MAX_LIMIT: usize = 250;
const DEFAULT_LIMIT: usize = 50;
const MAX_IDS: usize = 50;

/// A REST error: a status and Shopify's `{"errors": ...}` body.
struct RestError {
    status: StatusCode,
    errors: Value,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "errors": self.errors }))).into_response()
    }
}

fn error(status: StatusCode, errors: Value) -> RestError {
    RestError { status, errors }
}

/// Runs one REST call: token, call bucket, then `handle`; adds the call-limit header.
fn rest_call(
    inner: &Inner,
    headers: &HeaderMap,
    version: &str,
    handle: impl FnOnce() -> Response,
) -> Response {
    if let Some(response) = token_refusal(inner, headers) {
        return response;
    }
    let (filled, used, capacity) = {
        let mut bucket = inner.rest_bucket.lock().unwrap_or_else(|e| e.into_inner());
        let filled = bucket.try_fill(1.0).is_ok();
        (
            filled,
            bucket.level().ceil() as u64,
            bucket.config().capacity as u64,
        )
    };
    let mut response = if filled {
        handle()
    } else {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            json!("Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2.0"));
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("{used}/{capacity}")) {
        headers.insert("x-shopify-shop-api-call-limit", value);
    }
    if let Ok(value) = HeaderValue::from_str(version) {
        headers.insert("x-shopify-api-version", value);
    }
    response
}

pub(crate) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, json!("Not Found")).into_response()
}

/// The state of a cursor: where the last page ended (or began) and the filters it continues.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cursor {
    last_id: u64,
    last_value: i64,
    direction: String,
    filters: Vec<(String, String)>,
}

fn encode(cursor: &Cursor) -> String {
    let text = serde_json::to_string(cursor).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode(text: &str) -> Option<Cursor> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The filters of a request: its own, or those its `page_info` carries.
/// Query pairs.
type Pairs = Vec<(String, String)>;

fn filters(pairs: &[(String, String)]) -> Result<(Pairs, Option<Cursor>), RestError> {
    let Some(page_info) = query_value(pairs, "page_info") else {
        return Ok((pairs.to_vec(), None));
    };
    let cursor = decode(page_info).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            json!({"page_info": "Invalid value."}),
        )
    })?;
    let extra = pairs
        .iter()
        .find(|(k, _)| !matches!(k.as_str(), "page_info" | "limit" | "fields"));
    if let Some((key, _)) = extra {
        return Err(error(
            StatusCode::BAD_REQUEST,
            json!({"page_info": format!("cannot be combined with the {key} parameter")}),
        ));
    }
    let mut kept = cursor.filters.clone();
    kept.extend(
        pairs
            .iter()
            .filter(|(k, _)| k == "limit" || k == "fields")
            .cloned(),
    );
    Ok((kept, Some(cursor)))
}

fn limit(pairs: &[(String, String)]) -> Result<usize, RestError> {
    match query_value(pairs, "limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(MAX_LIMIT)),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                json!({"limit": "Invalid value."}),
            )),
        },
    }
}

/// One page of keyed, sorted items.
struct Paged<T> {
    items: Vec<((i64, u64), T)>,
    has_previous: bool,
    has_next: bool,
}

fn page<T>(
    sorted: Vec<((i64, u64), T)>,
    descending: bool,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Paged<T> {
    let after =
        |key: (i64, u64), mark: (i64, u64)| if descending { key < mark } else { key > mark };
    let (start, end) = match cursor {
        None => (0, sorted.len().min(limit)),
        Some(c) if c.direction == "prev" => {
            // Items before the mark form a prefix of the sorted list.
            let end = sorted
                .iter()
                .take_while(|(k, _)| after((c.last_value, c.last_id), *k))
                .count();
            (end.saturating_sub(limit), end)
        }
        Some(c) => {
            let start = sorted
                .iter()
                .position(|(k, _)| after(*k, (c.last_value, c.last_id)))
                .unwrap_or(sorted.len());
            (start, (start + limit).min(sorted.len()))
        }
    };
    let has_next = end < sorted.len();
    let items: Vec<_> = sorted.into_iter().skip(start).take(end - start).collect();
    Paged {
        items,
        has_previous: start > 0,
        has_next,
    }
}

fn link_header(
    inner: &Inner,
    version: &str,
    resource: &str,
    pairs: &[(String, String)],
    paged_keys: Option<((i64, u64), (i64, u64))>,
    flags: (bool, bool),
    filters: &[(String, String)],
) -> Option<String> {
    let (first, last) = paged_keys?;
    let limit = query_value(pairs, "limit")
        .map(|l| format!("limit={}&", encode_component(l)))
        .unwrap_or_default();
    let fields = query_value(pairs, "fields")
        .map(|f| format!("&fields={}", encode_component(f)))
        .unwrap_or_default();
    let link = |key: (i64, u64), direction: &str, rel: &str| {
        let cursor = Cursor {
            last_id: key.1,
            last_value: key.0,
            direction: direction.to_owned(),
            filters: filters.to_vec(),
        };
        format!(
            "<{}/admin/api/{version}/{resource}?{limit}page_info={}{fields}>; rel=\"{rel}\"",
            inner.base_url,
            encode(&cursor)
        )
    };
    let mut links = Vec::new();
    if flags.0 {
        links.push(link(first, "prev", "previous"));
    }
    if flags.1 {
        links.push(link(last, "next", "next"));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

fn with_link(mut response: Response, link: Option<String>) -> Response {
    if let Some(value) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

/// Keeps only the listed top-level fields of a resource.
fn trim_fields(mut value: Value, fields: Option<&str>) -> Value {
    let Some(fields) = fields else { return value };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    if let Value::Object(map) = &mut value {
        map.retain(|k, _| wanted.contains(&k.as_str()));
    }
    value
}

fn time_filter(
    pairs: &[(String, String)],
    key: &str,
    offset: i32,
) -> Result<Option<i64>, RestError> {
    match query_value(pairs, key) {
        None | Some("") => Ok(None),
        Some(text) => clock::parse_timestamp(text, offset)
            .map(Some)
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, json!({ key: "Invalid value." }))),
    }
}

/// Whether an order passes the list filters.
struct OrderFilter {
    status: String,
    financial_status: Option<String>,
    updated_min: Option<i64>,
    updated_max: Option<i64>,
    created_min: Option<i64>,
    created_max: Option<i64>,
    since_id: Option<u64>,
    ids: Option<Vec<u64>>,
}

impl OrderFilter {
    fn read(pairs: &[(String, String)], offset: i32) -> Result<Self, RestError> {
        let number_list = |key: &str| {
            query_value(pairs, key)
                .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        };
        Ok(Self {
            status: query_value(pairs, "status").unwrap_or("open").to_owned(),
            financial_status: query_value(pairs, "financial_status")
                .filter(|s| *s != "any")
                .map(str::to_owned),
            updated_min: time_filter(pairs, "updated_at_min", offset)?,
            updated_max: time_filter(pairs, "updated_at_max", offset)?,
            created_min: time_filter(pairs, "created_at_min", offset)?,
            created_max: time_filter(pairs, "created_at_max", offset)?,
            since_id: query_value(pairs, "since_id").and_then(|v| v.parse().ok()),
            ids: number_list("ids"),
        })
    }

    fn keeps(&self, order: &Order) -> bool {
        let seconds = |ms: i64| ms.div_euclid(1000) * 1000;
        let (updated, created) = (seconds(order.updated_ms), seconds(order.created_ms));
        let status = match self.status.as_str() {
            "any" => true,
            "cancelled" => order.cancelled_ms.is_some(),
            "closed" => order.closed_ms.is_some(),
            _ => order.closed_ms.is_none() && order.cancelled_ms.is_none(),
        };
        status
            && self
                .financial_status
                .as_ref()
                .is_none_or(|f| *f == order.financial_status)
            && self.updated_min.is_none_or(|m| updated >= m)
            && self.updated_max.is_none_or(|m| updated <= m)
            && self.created_min.is_none_or(|m| created >= m)
            && self.created_max.is_none_or(|m| created <= m)
            && self.since_id.is_none_or(|s| order.id > s)
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&order.id))
    }
}

/// Sort key and direction of `order=<field> <asc|desc>`.
fn order_key(pairs: &[(String, String)]) -> (impl Fn(&Order) -> (i64, u64), bool) {
    let spec = query_value(pairs, "order")
        .unwrap_or("id asc")
        .to_lowercase();
    let descending = spec.ends_with("desc");
    let field = spec.split_whitespace().next().unwrap_or("id").to_owned();
    let key = move |o: &Order| match field.as_str() {
        "updated_at" => (o.updated_ms.div_euclid(1000), o.id),
        "created_at" | "processed_at" => (o.created_ms.div_euclid(1000), o.id),
        _ => (0, o.id),
    };
    (key, descending)
}

fn list_orders(inner: &Inner, version: &str, raw: Option<&str>) -> Response {
    let pairs = query_pairs(raw);
    let (filters, cursor) = match filters(&pairs) {
        Ok(f) => f,
        Err(response) => return response.into_response(),
    };
    // The page is chosen under the store's lock and rendered after it, as a real store serves
    // its order list without holding up its inventory writes and sales meanwhile.
    let (paged, shop_domain, offset) = {
        let state = inner.lock();
        let offset = state.timezone_offset_minutes;
        let (filter, limit) = match (OrderFilter::read(&filters, offset), limit(&pairs)) {
            (Ok(f), Ok(l)) => (f, l),
            (Err(response), _) | (_, Err(response)) => return response.into_response(),
        };
        let (key, descending) = order_key(&filters);
        let mut sorted: Vec<((i64, u64), &Order)> = state
            .orders
            .values()
            .filter(|o| filter.keeps(o))
            .map(|o| (key(o), o))
            .collect();
        sorted.sort_by_key(|(k, _)| *k);
        if descending {
            sorted.reverse();
        }
        let paged = page(sorted, descending, cursor.as_ref(), limit);
        let paged = Paged {
            items: paged
                .items
                .into_iter()
                .map(|(k, o)| (k, o.clone()))
                .collect(),
            has_previous: paged.has_previous,
            has_next: paged.has_next,
        };
        (paged, state.shop_domain.clone(), offset)
    };
    let fields = query_value(&filters, "fields");
    let orders: Vec<Value> = paged
        .items
        .iter()
        .map(|(_, o)| trim_fields(order_json(o, &shop_domain, offset), fields))
        .collect();
    let keys = paged
        .items
        .first()
        .zip(paged.items.last())
        .map(|(f, l)| (f.0, l.0));
    let link = link_header(
        inner,
        version,
        "orders.json",
        &pairs,
        keys,
        (paged.has_previous, paged.has_next),
        &strip_paging(&filters),
    );
    with_link(
        axum::Json(json!({ "orders": orders })).into_response(),
        link,
    )
}

fn strip_paging(filters: &[(String, String)]) -> Vec<(String, String)> {
    filters
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "limit" | "fields" | "page_info"))
        .cloned()
        .collect()
}

pub(crate) async fn orders(
    State(inner): State<Arc<Inner>>,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    rest_call(&inner, &headers, &version, || {
        list_orders(&inner, &version, raw.as_deref())
    })
}

pub(crate) async fn order(
    State(inner): State<Arc<Inner>>,
    Path((version, file)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    rest_call(&inner, &headers, &version, || {
        let pairs = query_pairs(raw.as_deref());
        let state = inner.lock();
        if file == "count.json" {
            return match OrderFilter::read(&pairs, state.timezone_offset_minutes) {
                Ok(filter) => axum::Json(
                    json!({"count": state.orders.values().filter(|o| filter.keeps(o)).count()}),
                )
                .into_response(),
                Err(response) => response.into_response(),
            };
        }
        let id = file
            .strip_suffix(".json")
            .and_then(|id| id.parse::<u64>().ok());
        match id.and_then(|id| state.orders.get(&id)) {
            Some(order) => {
                let value = order_json(order, &state.shop_domain, state.timezone_offset_minutes);
                axum::Json(json!({"order": trim_fields(value, query_value(&pairs, "fields"))}))
                    .into_response()
            }
            None => error(StatusCode::NOT_FOUND, json!("Not Found")).into_response(),
        }
    })
}

pub(crate) async fn refunds(
    State(inner): State<Arc<Inner>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    rest_call(&inner, &headers, &version, || {
        let state = inner.lock();
        let Some(order) = id.parse::<u64>().ok().and_then(|id| state.orders.get(&id)) else {
            return error(StatusCode::NOT_FOUND, json!("Not Found")).into_response();
        };
        let refunds: Vec<Value> = order
            .refunds
            .iter()
            .map(|r| refund_json(order, r, state.timezone_offset_minutes))
            .collect();
        axum::Json(json!({ "refunds": refunds })).into_response()
    })
}

fn id_list(pairs: &[(String, String)], key: &str) -> Result<Option<Vec<u64>>, RestError> {
    let Some(text) = query_value(pairs, key) else {
        return Ok(None);
    };
    let ids: Option<Vec<u64>> = text.split(',').map(|n| n.trim().parse().ok()).collect();
    match ids {
        Some(ids) if ids.len() <= MAX_IDS => Ok(Some(ids)),
        Some(_) => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ key: format!("must have at most {MAX_IDS} ids") }),
        )),
        None => Err(error(
            StatusCode::BAD_REQUEST,
            json!({ key: "Invalid value." }),
        )),
    }
}

fn list_levels(inner: &Inner, version: &str, raw: Option<&str>) -> Response {
    let pairs = query_pairs(raw);
    let (filters, cursor) = match filters(&pairs) {
        Ok(f) => f,
        Err(response) => return response.into_response(),
    };
    let (items, locations, limit) = match (
        id_list(&filters, "inventory_item_ids"),
        id_list(&filters, "location_ids"),
        limit(&pairs),
    ) {
        (Ok(i), Ok(l), Ok(n)) => (i, l, n),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r.into_response(),
    };
    if items.is_none() && locations.is_none() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"base": ["Must specify at least one of inventory_item_ids or location_ids"]}),
        )
        .into_response();
    }
    let state = inner.lock();
    let offset = state.timezone_offset_minutes;
    let updated_min = match time_filter(&filters, "updated_at_min", offset) {
        Ok(t) => t,
        Err(response) => return response.into_response(),
    };
    let mut sorted: Vec<((i64, u64), Value)> = Vec::new();
    for variant in state.variants.values() {
        if items
            .as_ref()
            .is_some_and(|ids| !ids.contains(&variant.item_id))
        {
            continue;
        }
        for (location_id, level) in &variant.levels {
            let wanted = locations.as_ref().is_none_or(|l| l.contains(location_id))
                && updated_min.is_none_or(|m| level.updated_ms.div_euclid(1000) * 1000 >= m);
            if wanted {
                sorted.push((
                    (variant.item_id as i64, *location_id),
                    level_json(variant, *location_id, level, offset),
                ));
            }
        }
    }
    sorted.sort_by_key(|(k, _)| *k);
    let paged = page(sorted, false, cursor.as_ref(), limit);
    let keys = paged
        .items
        .first()
        .zip(paged.items.last())
        .map(|(f, l)| (f.0, l.0));
    let link = link_header(
        inner,
        version,
        "inventory_levels.json",
        &pairs,
        keys,
        (paged.has_previous, paged.has_next),
        &strip_paging(&filters),
    );
    let levels: Vec<Value> = paged.items.into_iter().map(|(_, v)| v).collect();
    with_link(
        axum::Json(json!({ "inventory_levels": levels })).into_response(),
        link,
    )
}

pub(crate) async fn levels(
    State(inner): State<Arc<Inner>>,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    rest_call(&inner, &headers, &version, || {
        list_levels(&inner, &version, raw.as_deref())
    })
}

/// The item and location of a level write, checked against the store.
fn level_target(state: &Store, body: &Value) -> Result<(u64, u64), RestError> {
    let number = |key: &str| {
        body.get(key).and_then(Value::as_u64).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                json!({ key: "Required parameter missing or invalid" }),
            )
        })
    };
    let (item_id, location_id) = (number("inventory_item_id")?, number("location_id")?);
    let variant = state
        .variant_by_item(item_id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, json!("Not Found")))?;
    if !state.locations.contains_key(&location_id) {
        return Err(error(StatusCode::NOT_FOUND, json!("Not Found")));
    }
    if !variant.tracked {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!(["Inventory item does not have inventory tracking enabled"]),
        ));
    }
    Ok((variant.id, location_id))
}

fn write_level(inner: &Arc<Inner>, body: &Bytes, adjust: bool) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, json!("Bad Request")).into_response();
    };
    let key = if adjust {
        "available_adjustment"
    } else {
        "available"
    };
    inner.act(|state| {
        let (variant_id, location_id) = match level_target(state, &body) {
            Ok(target) => target,
            Err(response) => return response.into_response(),
        };
        let Some(amount) = body.get(key).and_then(Value::as_i64) else {
            return error(StatusCode::BAD_REQUEST, json!({ key: "Required parameter missing or invalid" })).into_response();
        };
        let current = state.variants[&variant_id].levels.get(&location_id).map(|l| l.available);
        let available = match (adjust, current) {
            (true, None) => return error(StatusCode::UNPROCESSABLE_ENTITY, json!(["Inventory item is not stocked at the location"])).into_response(),
            (true, Some(current)) => current + amount,
            (false, _) => amount,
        };
        if !(0..=1_000_000_000).contains(&available) {
            return error(StatusCode::UNPROCESSABLE_ENTITY, json!({"available": ["must be between 0 and 1000000000"]})).into_response();
        }
        state.begin_action();
        state.change_level(variant_id, location_id, available, 0, Cause::Push);
        let variant = &state.variants[&variant_id];
        let level = variant.levels[&location_id];
        axum::Json(json!({"inventory_level": level_json(variant, location_id, &level, state.timezone_offset_minutes)})).into_response()
    })
}

pub(crate) async fn set_level(
    State(inner): State<Arc<Inner>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.faults.processing_delay().await;
    rest_call(&inner, &headers, &version, || {
        write_level(&inner, &body, false)
    })
}

pub(crate) async fn adjust_level(
    State(inner): State<Arc<Inner>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.faults.processing_delay().await;
    rest_call(&inner, &headers, &version, || {
        write_level(&inner, &body, true)
    })
}
