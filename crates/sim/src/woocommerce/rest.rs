//! The REST API v3 routes a connector uses (API_FACTS §2.1, §2.2, §2.4, §10):
//!
//! - Auth: HTTP Basic with consumer key and secret (or the `consumer_key`/`consumer_secret`
//!   query parameters). None given: 401 `woocommerce_rest_cannot_view` (or `_cannot_edit`,
//!   `_cannot_batch`); a wrong key or secret: 401 `woocommerce_rest_authentication_error`; a
//!   read-only key writing: 401 too.
//! - Collections: `per_page` (default 10, 1–100, else 400 `rest_invalid_param`) and `page`;
//!   `X-WP-Total`, `X-WP-TotalPages` and a `Link` header (`prev`, `next`, `first`, `last`).
//!   Products sort by `date` descending by default, as WooCommerce does. `GET products` with
//!   `sku` (a comma-separated list, matched exactly) lists variations too, as WooCommerce's
//!   products controller does for that parameter.
//! - `PUT` of a product or variation sets `stock_quantity` absolutely, and only where stock is
//!   managed (`manage_stock` true, possibly in the same request), as WooCommerce ignores it
//!   otherwise. SKUs must stay unique (`product_invalid_sku`).
//! - Batches: at most 100 items across `create`, `update` and `delete` (413
//!   `woocommerce_rest_request_entity_too_large`); a bad item gets an `error` object in its
//!   place while the call returns 200. A variation id sent to `products/batch`, or a variation
//!   of another product, is an invalid id (decision: the fake is strict here).
//! - Orders for backfill: `status` (default `any`), `modified_after`/`modified_before`,
//!   `after`/`before` (exclusive, whole seconds), `dates_are_gmt`, `include`, `orderby`, `order`.
//! - `_fields` (WordPress's global parameter, a comma-separated list or `_fields[]=…`, with
//!   dotted names for nested fields) trims each item of a collection to the fields named.
//! - Answers are PHP-encoded JSON; unknown routes answer 404 `rest_no_route`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Map, Value};

use super::json::{item_json, order_json, refund_json};
use super::model::{Item, Kind, Order, State as Store};
use super::Inner;
use crate::display::Cause;
use crate::http_util::{encode_component, query_pairs, query_value};
use crate::{clock, php_json};

const MAX_PER_PAGE: usize = 100;
const DEFAULT_PER_PAGE: usize = 10;

/// A WordPress REST error.
#[derive(Debug)]
pub(crate) struct WooError {
    status: u16,
    code: String,
    message: String,
    params: Option<Value>,
}

impl WooError {
    fn new(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            params: None,
        }
    }

    fn invalid_param(param: &str, reason: &str) -> Self {
        let mut error = Self::new(
            400,
            "rest_invalid_param",
            &format!("Invalid parameter(s): {param}"),
        );
        error.params = Some(json!({ param: reason }));
        error
    }

    fn to_json(&self) -> Value {
        let mut data = json!({ "status": self.status });
        if let Some(params) = &self.params {
            data["params"] = params.clone();
        }
        json!({ "code": self.code, "message": self.message, "data": data })
    }

    fn response(&self) -> Response {
        php_response(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            &self.to_json(),
        )
    }
}

fn php_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, php_json::encode(value)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

fn ok(value: &Value) -> Response {
    php_response(StatusCode::OK, value)
}

pub(crate) async fn no_route() -> Response {
    WooError::new(
        404,
        "rest_no_route",
        "No route was found matching the URL and request method.",
    )
    .response()
}

/// What a request does, for the wording of its 401.
#[derive(Debug, Clone, Copy)]
enum Access {
    List,
    View,
    Edit,
    Batch,
}

impl Access {
    fn writes(self) -> bool {
        matches!(self, Access::Edit | Access::Batch)
    }

    fn denied(self) -> WooError {
        let (code, message) = match self {
            Access::List => (
                "woocommerce_rest_cannot_view",
                "Sorry, you cannot list resources.",
            ),
            Access::View => (
                "woocommerce_rest_cannot_view",
                "Sorry, you cannot view this resource.",
            ),
            Access::Edit => (
                "woocommerce_rest_cannot_edit",
                "Sorry, you are not allowed to edit this resource.",
            ),
            Access::Batch => (
                "woocommerce_rest_cannot_batch",
                "Sorry, you are not allowed to batch manipulate this resource.",
            ),
        };
        WooError::new(401, code, message)
    }
}

fn credentials(headers: &HeaderMap, pairs: &[(String, String)]) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|text| {
            text.split_once(':')
                .map(|(k, s)| (k.to_owned(), s.to_owned()))
        });
    basic.or_else(|| {
        Some((
            query_value(pairs, "consumer_key")?.to_owned(),
            query_value(pairs, "consumer_secret")?.to_owned(),
        ))
    })
}

fn authenticate(
    inner: &Inner,
    headers: &HeaderMap,
    pairs: &[(String, String)],
    access: Access,
) -> Result<(), WooError> {
    let Some((key, secret)) = credentials(headers, pairs) else {
        return Err(access.denied());
    };
    let config = &inner.config;
    if key != config.consumer_key {
        return Err(WooError::new(
            401,
            "woocommerce_rest_authentication_error",
            "Consumer key is invalid.",
        ));
    }
    if secret != config.consumer_secret {
        return Err(WooError::new(
            401,
            "woocommerce_rest_authentication_error",
            "Consumer secret is invalid.",
        ));
    }
    let allowed = match config.key_permissions.as_str() {
        "read" => !access.writes(),
        "write" => access.writes(),
        _ => true,
    };
    if !allowed {
        let message = if access.writes() {
            "The API key provided does not have write permissions."
        } else {
            "The API key provided does not have read permissions."
        };
        return Err(WooError::new(
            401,
            "woocommerce_rest_authentication_error",
            message,
        ));
    }
    Ok(())
}

/// The optional limiter: 429 with `RateLimit-*` headers when full.
fn limit(inner: &Inner) -> Option<Response> {
    let limiter = inner.limiter.as_ref()?;
    let mut bucket = limiter.lock().unwrap_or_else(|e| e.into_inner());
    let wait = bucket.try_fill(1.0).err()?;
    let seconds = wait.ceil().max(1.0) as u64;
    let error = WooError::new(
        429,
        "rate_limit_exceeded",
        &format!("Too many requests. Please wait {seconds} seconds before trying again."),
    );
    let mut response = error.response();
    let headers = response.headers_mut();
    let capacity = bucket.config().capacity as u64;
    for (name, value) in [
        ("ratelimit-limit", capacity),
        ("ratelimit-remaining", 0),
        ("ratelimit-reset", seconds),
        ("ratelimit-retry-after", seconds),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    Some(response)
}

/// Runs one REST call: limiter, auth, then `handle`.
fn call(
    inner: &Inner,
    headers: &HeaderMap,
    raw: Option<&str>,
    access: Access,
    handle: impl FnOnce(&[(String, String)]) -> Result<Response, WooError>,
) -> Response {
    if let Some(response) = limit(inner) {
        return response;
    }
    let pairs = query_pairs(raw);
    if let Err(error) = authenticate(inner, headers, &pairs, access) {
        return error.response();
    }
    handle(&pairs).unwrap_or_else(|error| error.response())
}

/// A numeric path segment; anything else matches no route, as WordPress's `(?P<id>[\d]+)`.
fn path_id(text: &str) -> Result<u64, WooError> {
    text.parse().map_err(|_| {
        WooError::new(
            404,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        )
    })
}

fn bounded(
    pairs: &[(String, String)],
    key: &str,
    default: usize,
    max: Option<usize>,
) -> Result<usize, WooError> {
    let Some(text) = query_value(pairs, key) else {
        return Ok(default);
    };
    let reason = match max {
        Some(max) => format!("{key} must be between 1 (inclusive) and {max} (inclusive)"),
        None => format!("{key} must be greater than or equal to 1"),
    };
    match text.parse::<usize>() {
        Ok(n) if n >= 1 && max.is_none_or(|m| n <= m) => Ok(n),
        _ => Err(WooError::invalid_param(key, &reason)),
    }
}

/// The page a collection call asks for (`per_page`, `page`), checked as WordPress does.
struct Window {
    per_page: usize,
    page: usize,
}

impl Window {
    fn read(pairs: &[(String, String)]) -> Result<Self, WooError> {
        Ok(Self {
            per_page: bounded(pairs, "per_page", DEFAULT_PER_PAGE, Some(MAX_PER_PAGE))?,
            page: bounded(pairs, "page", 1, None)?,
        })
    }

    /// The items on the page.
    fn of<T>(&self, items: impl IntoIterator<Item = T>) -> impl Iterator<Item = T> {
        items
            .into_iter()
            .skip((self.page - 1).saturating_mul(self.per_page))
            .take(self.per_page)
    }
}

/// One page of a collection, with WordPress's headers. Only the items on the page are rendered
/// (`render`): a store with many orders answers each page of a backfill in time of the page,
/// not of the whole collection.
fn collection<T>(
    inner: &Inner,
    route: &str,
    pairs: &[(String, String)],
    items: Vec<T>,
    render: impl Fn(T) -> Value,
) -> Result<Response, WooError> {
    let window = Window::read(pairs)?;
    let total = items.len();
    let shown: Vec<Value> = window.of(items).map(render).collect();
    Ok(page_response(inner, route, pairs, &window, total, shown))
}

/// A page of `total` items showing `shown`, with WordPress's headers and links.
fn page_response(
    inner: &Inner,
    route: &str,
    pairs: &[(String, String)],
    window: &Window,
    total: usize,
    shown: Vec<Value>,
) -> Response {
    let Window { per_page, page } = *window;
    let pages = total.div_ceil(per_page);
    let fields = requested_fields(pairs);
    let shown = match &fields {
        Some(fields) => shown.iter().map(|item| only_fields(item, fields)).collect(),
        None => shown,
    };
    let mut response = ok(&Value::Array(shown));
    let headers = response.headers_mut();
    headers.insert("x-wp-total", HeaderValue::from(total));
    headers.insert("x-wp-totalpages", HeaderValue::from(pages));
    let link = |n: usize, rel: &str| {
        let mut query: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "page" | "consumer_key" | "consumer_secret"))
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        query.push(format!("page={n}"));
        format!(
            "<{}/wp-json/wc/v3/{route}?{}>; rel=\"{rel}\"",
            inner.base_url,
            query.join("&")
        )
    };
    let mut links = Vec::new();
    if page > 1 && pages > 0 {
        links.push(link((page - 1).min(pages), "prev"));
    }
    if page < pages {
        links.push(link(page + 1, "next"));
    }
    if pages > 1 {
        links.push(link(1, "first"));
        links.push(link(pages, "last"));
    }
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        if !links.is_empty() {
            headers.insert(header::LINK, value);
        }
    }
    response
}

/// The fields `_fields` asks for, each as its path of names (`meta.colour`): `None` when it is
/// not given.
fn requested_fields(pairs: &[(String, String)]) -> Option<Vec<Vec<String>>> {
    let lists: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "_fields" || k == "_fields[]")
        .map(|(_, v)| v.as_str())
        .collect();
    (!lists.is_empty()).then(|| {
        lists
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| name.split('.').map(str::to_owned).collect())
            .collect()
    })
}

/// `item` with only the fields named (a name that is not there is left out): a field named
/// whole is kept whole, one named only through nested names keeps those.
fn only_fields(item: &Value, fields: &[Vec<String>]) -> Value {
    let Value::Object(map) = item else {
        return item.clone();
    };
    let mut kept = Map::new();
    for (name, value) in map {
        let nested: Vec<Vec<String>> = fields
            .iter()
            .filter(|path| path.first() == Some(name))
            .map(|path| path[1..].to_vec())
            .collect();
        if nested.is_empty() {
            continue;
        }
        let whole = nested.iter().any(Vec::is_empty);
        let value = if whole {
            value.clone()
        } else {
            only_fields(value, &nested)
        };
        kept.insert(name.clone(), value);
    }
    Value::Object(kept)
}

fn time_param(pairs: &[(String, String)], key: &str, offset: i32) -> Result<Option<i64>, WooError> {
    let gmt = query_value(pairs, "dates_are_gmt").is_some_and(|v| matches!(v, "true" | "1"));
    match query_value(pairs, key) {
        None | Some("") => Ok(None),
        Some(text) => clock::parse_timestamp(text, if gmt { 0 } else { offset })
            .map(Some)
            .ok_or_else(|| WooError::invalid_param(key, "Invalid date.")),
    }
}

fn id_list(pairs: &[(String, String)], key: &str) -> Option<Vec<u64>> {
    let text = query_value(pairs, key)?;
    Some(
        text.split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect(),
    )
}

/// Sorts by `orderby` (`date` unless set) and `order` (`desc` unless set).
fn sort_by<T>(
    items: &mut [T],
    pairs: &[(String, String)],
    key: impl Fn(&T, &str) -> (i64, String, u64),
) {
    let orderby = query_value(pairs, "orderby").unwrap_or("date").to_owned();
    items.sort_by_key(|i| key(i, &orderby));
    if query_value(pairs, "order").unwrap_or("desc") != "asc" {
        items.reverse();
    }
}

fn item_sort_key(item: &&Item, orderby: &str) -> (i64, String, u64) {
    let seconds = |ms: i64| ms.div_euclid(1000);
    match orderby {
        "id" => (0, String::new(), item.id),
        "title" | "slug" => (0, item.name.to_lowercase(), item.id),
        "modified" => (seconds(item.modified_ms), String::new(), item.id),
        _ => (seconds(item.created_ms), String::new(), item.id),
    }
}

/// The filters of a products or variations listing, read from the query once for all items.
struct ItemFilter<'q> {
    skus: Option<HashSet<&'q str>>,
    include: Option<Vec<u64>>,
    kind: Option<&'q str>,
    stock_status: Option<&'q str>,
    /// `modified_after` / `modified_before`, in whole seconds (ms).
    after: Option<i64>,
    before: Option<i64>,
}

impl<'q> ItemFilter<'q> {
    fn read(state: &Store, pairs: &'q [(String, String)]) -> Result<Self, WooError> {
        let offset = state.timezone_offset_minutes;
        Ok(Self {
            skus: query_value(pairs, "sku").map(|s| s.split(',').map(str::trim).collect()),
            include: id_list(pairs, "include"),
            kind: query_value(pairs, "type"),
            stock_status: query_value(pairs, "stock_status"),
            after: time_param(pairs, "modified_after", offset)?,
            before: time_param(pairs, "modified_before", offset)?,
        })
    }

    fn keeps(&self, state: &Store, item: &Item) -> bool {
        let modified = item.modified_ms.div_euclid(1000) * 1000;
        self.skus
            .as_ref()
            .is_none_or(|s| s.contains(item.sku.as_str()))
            && self
                .include
                .as_ref()
                .is_none_or(|ids| ids.contains(&item.id))
            && self.kind.is_none_or(|t| t == item.kind.type_name())
            && self
                .stock_status
                .is_none_or(|s| s == super::json::stock_status(state, item))
            && self.after.is_none_or(|a| modified > a)
            && self.before.is_none_or(|b| modified < b)
    }
}

pub(crate) async fn list_products(
    State(inner): State<Arc<Inner>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    call(&inner, &headers, raw.as_deref(), Access::List, |pairs| {
        let state = inner.lock();
        // With `sku`, WooCommerce queries variations too (post types `product` and
        // `product_variation`), rendered by the products controller.
        let by_sku = query_value(pairs, "sku").is_some_and(|s| !s.is_empty());
        let filter = ItemFilter::read(&state, pairs)?;
        let mut items: Vec<&Item> = state
            .items
            .values()
            .filter(|i| by_sku || i.kind != Kind::Variation)
            .filter(|i| filter.keeps(&state, i))
            .collect();
        sort_by(&mut items, pairs, item_sort_key);
        let site = inner.site(&state);
        collection(&inner, "products", pairs, items, |i| {
            super::json::listed_product_json(&state, &site, i)
        })
    })
}

fn product_of(state: &Store, id: u64, status: u16) -> Result<&Item, WooError> {
    state
        .items
        .get(&id)
        .filter(|i| i.kind != Kind::Variation)
        .ok_or_else(|| WooError::new(status, "woocommerce_rest_product_invalid_id", "Invalid ID."))
}

fn variation_of(state: &Store, product_id: u64, id: u64, status: u16) -> Result<&Item, WooError> {
    state
        .items
        .get(&id)
        .filter(|i| i.kind == Kind::Variation && i.parent_id == Some(product_id))
        .ok_or_else(|| {
            WooError::new(
                status,
                "woocommerce_rest_product_variation_invalid_id",
                "Invalid ID.",
            )
        })
}

pub(crate) async fn get_product(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    call(&inner, &headers, raw.as_deref(), Access::View, |_| {
        let id = path_id(&id)?;
        let state = inner.lock();
        let item = product_of(&state, id, 404)?;
        Ok(ok(&item_json(&state, &inner.site(&state), item)))
    })
}

pub(crate) async fn list_variations(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    call(&inner, &headers, raw.as_deref(), Access::List, |pairs| {
        let id = path_id(&id)?;
        let state = inner.lock();
        let product = product_of(&state, id, 404)?;
        let filter = ItemFilter::read(&state, pairs)?;
        let mut kept: Vec<&Item> = product
            .variation_ids
            .iter()
            .filter_map(|v| state.items.get(v))
            .filter(|i| filter.keeps(&state, i))
            .collect();
        sort_by(&mut kept, pairs, item_sort_key);
        let site = inner.site(&state);
        collection(
            &inner,
            &format!("products/{id}/variations"),
            pairs,
            kept,
            |i| item_json(&state, &site, i),
        )
    })
}

pub(crate) async fn get_variation(
    State(inner): State<Arc<Inner>>,
    Path((id, vid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    call(&inner, &headers, raw.as_deref(), Access::View, |_| {
        let (id, vid) = (path_id(&id)?, path_id(&vid)?);
        let state = inner.lock();
        let item = variation_of(&state, id, vid, 404)?;
        Ok(ok(&item_json(&state, &inner.site(&state), item)))
    })
}

/// The writable fields of a product or variation in a request.
#[derive(Debug, Default)]
struct Patch {
    stock_quantity: Option<i64>,
    manage_stock: Option<bool>,
    backorders: Option<String>,
    stock_status: Option<String>,
    sku: Option<String>,
    name: Option<String>,
    regular_price: Option<String>,
}

fn read_patch(body: &Value) -> Result<Patch, WooError> {
    let object = body
        .as_object()
        .ok_or_else(|| WooError::new(400, "rest_invalid_json", "Invalid JSON body passed."))?;
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    let choice = |key: &str, allowed: &[&str]| -> Result<Option<String>, WooError> {
        match text(key) {
            Some(v) if !allowed.contains(&v.as_str()) => Err(WooError::invalid_param(
                key,
                &format!("{key} is not one of {}.", allowed.join(", ")),
            )),
            other => Ok(other),
        }
    };
    let stock_quantity = match object.get("stock_quantity") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(|| {
            WooError::invalid_param("stock_quantity", "stock_quantity is not of type integer.")
        })?),
        Some(Value::String(s)) => Some(s.trim().parse().map_err(|_| {
            WooError::invalid_param("stock_quantity", "stock_quantity is not of type integer.")
        })?),
        Some(_) => {
            return Err(WooError::invalid_param(
                "stock_quantity",
                "stock_quantity is not of type integer.",
            ))
        }
    };
    let manage_stock = match object.get("manage_stock") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if matches!(s.as_str(), "true" | "1") => Some(true),
        Some(Value::String(s)) if matches!(s.as_str(), "false" | "0") => Some(false),
        Some(_) => {
            return Err(WooError::invalid_param(
                "manage_stock",
                "manage_stock is not of type boolean.",
            ))
        }
    };
    Ok(Patch {
        stock_quantity,
        manage_stock,
        backorders: choice("backorders", &["no", "notify", "yes"])?,
        stock_status: choice("stock_status", &["instock", "outofstock", "onbackorder"])?,
        sku: text("sku"),
        name: text("name"),
        regular_price: text("regular_price"),
    })
}

/// Applies a patch: `stock_quantity` only counts where stock is managed.
fn apply_patch(state: &mut Store, id: u64, patch: &Patch) -> Result<(), WooError> {
    if let Some(sku) = patch.sku.as_deref().filter(|s| !s.is_empty()) {
        if state.items.values().any(|i| i.id != id && i.sku == sku) {
            return Err(WooError::new(
                400,
                "product_invalid_sku",
                "Invalid or duplicated SKU.",
            ));
        }
    }
    let Some(item) = state.items.get_mut(&id) else {
        return Err(WooError::new(
            400,
            "woocommerce_rest_product_invalid_id",
            "Invalid ID.",
        ));
    };
    if let Some(manage) = patch.manage_stock {
        item.manage_stock = manage;
        if !manage {
            item.stock_quantity = None;
        }
    }
    if let Some(sku) = &patch.sku {
        item.sku = sku.clone();
    }
    if let Some(name) = &patch.name {
        item.name = name.clone();
    }
    if let Some(price) = &patch.regular_price {
        item.price_cents = crate::money::parse_cents(price);
    }
    if let Some(backorders) = &patch.backorders {
        item.backorders = backorders.clone();
    }
    if let Some(status) = patch.stock_status.as_ref().filter(|_| !item.manage_stock) {
        item.manual_stock_status = status.clone();
    }
    item.modified_ms = clock::now_unix_ms();
    let managed = item.manage_stock;
    let fresh = managed && item.stock_quantity.is_none();
    match patch.stock_quantity {
        Some(quantity) if managed => state.set_stock(id, quantity, Cause::Push),
        _ if fresh => state.set_stock(id, 0, Cause::Push),
        _ => {}
    }
    Ok(())
}

fn parse_body(body: &[u8]) -> Result<Value, WooError> {
    serde_json::from_slice(body)
        .map_err(|_| WooError::new(400, "rest_invalid_json", "Invalid JSON body passed."))
}

fn update(
    inner: &Inner,
    body: &[u8],
    find: impl FnOnce(&Store) -> Result<u64, WooError>,
) -> Result<Response, WooError> {
    let patch = read_patch(&parse_body(body)?)?;
    let mut state = inner.lock();
    let id = find(&state)?;
    apply_patch(&mut state, id, &patch)?;
    let item = state
        .items
        .get(&id)
        .ok_or_else(|| WooError::new(400, "woocommerce_rest_product_invalid_id", "Invalid ID."))?;
    Ok(ok(&item_json(&state, &inner.site(&state), item)))
}

pub(crate) async fn update_product(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.faults.processing_delay().await;
    call(&inner, &headers, raw.as_deref(), Access::Edit, |_| {
        let id = path_id(&id)?;
        update(&inner, &body, |state| {
            product_of(state, id, 400).map(|i| i.id)
        })
    })
}

pub(crate) async fn update_variation(
    State(inner): State<Arc<Inner>>,
    Path((id, vid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.faults.processing_delay().await;
    call(&inner, &headers, raw.as_deref(), Access::Edit, |_| {
        let (id, vid) = (path_id(&id)?, path_id(&vid)?);
        update(&inner, &body, |state| {
            variation_of(state, id, vid, 400).map(|i| i.id)
        })
    })
}

/// Runs the items of a batch; `parent` is the variable product of a variations batch.
fn batch(inner: &Inner, parent: Option<u64>, body: &[u8]) -> Result<Response, WooError> {
    let body = parse_body(body)?;
    let list = |key: &str| body.get(key).and_then(Value::as_array).cloned();
    let (create, update, delete) = (list("create"), list("update"), list("delete"));
    let count: usize = [&create, &update, &delete]
        .iter()
        .map(|l| l.as_ref().map_or(0, Vec::len))
        .sum();
    let limit = inner.config.batch_limit;
    if count > limit {
        let message = format!("Unable to accept more than {limit} items for this request.");
        return Err(WooError::new(
            413,
            "woocommerce_rest_request_entity_too_large",
            &message,
        ));
    }
    let mut state = inner.lock();
    if let Some(parent) = parent {
        product_of(&state, parent, 404)?;
    }
    let mut out = Map::new();
    if let Some(items) = create {
        out.insert(
            "create".into(),
            Value::Array(
                items
                    .iter()
                    .map(|i| batch_create(inner, &mut state, parent, i))
                    .collect(),
            ),
        );
    }
    if let Some(items) = update {
        out.insert(
            "update".into(),
            Value::Array(
                items
                    .iter()
                    .map(|i| batch_update(inner, &mut state, parent, i))
                    .collect(),
            ),
        );
    }
    if let Some(items) = delete {
        out.insert(
            "delete".into(),
            Value::Array(
                items
                    .iter()
                    .map(|i| batch_delete(inner, &mut state, parent, i))
                    .collect(),
            ),
        );
    }
    Ok(ok(&Value::Object(out)))
}

fn item_error(id: u64, error: &WooError) -> Value {
    json!({ "id": id, "error": error.to_json() })
}

fn invalid_id(parent: Option<u64>) -> WooError {
    let code = if parent.is_some() {
        "woocommerce_rest_product_variation_invalid_id"
    } else {
        "woocommerce_rest_product_invalid_id"
    };
    WooError::new(400, code, "Invalid ID.")
}

fn batch_target(state: &Store, parent: Option<u64>, id: u64) -> Result<u64, WooError> {
    match parent {
        Some(parent) => variation_of(state, parent, id, 400).map(|i| i.id),
        None => product_of(state, id, 400).map(|i| i.id),
    }
    .map_err(|_| invalid_id(parent))
}

fn batch_update(inner: &Inner, state: &mut Store, parent: Option<u64>, item: &Value) -> Value {
    let id = item.get("id").and_then(Value::as_u64).unwrap_or(0);
    let result = batch_target(state, parent, id).and_then(|id| {
        let patch = read_patch(item)?;
        apply_patch(state, id, &patch)
    });
    match result {
        Ok(()) => state
            .items
            .get(&id)
            .map_or(Value::Null, |i| item_json(state, &inner.site(state), i)),
        Err(error) => item_error(id, &error),
    }
}

fn batch_create(inner: &Inner, state: &mut Store, parent: Option<u64>, item: &Value) -> Value {
    let patch = match read_patch(item) {
        Ok(patch) => patch,
        Err(error) => return item_error(0, &error),
    };
    let id = state.post_id();
    let now = clock::now_unix_ms();
    let variable = item.get("type").and_then(Value::as_str) == Some("variable");
    let (kind, name, option) = match parent {
        Some(p) => (
            Kind::Variation,
            state
                .items
                .get(&p)
                .map(|i| i.name.clone())
                .unwrap_or_default(),
            item.pointer("/attributes/0/option")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        None => (
            if variable {
                Kind::Variable
            } else {
                Kind::Simple
            },
            patch.name.clone().unwrap_or_else(|| "Product".to_owned()),
            None,
        ),
    };
    let new = Item {
        id,
        kind,
        parent_id: parent,
        name,
        option,
        sku: String::new(),
        price_cents: 0,
        manage_stock: false,
        stock_quantity: None,
        backorders: "no".to_owned(),
        manual_stock_status: "instock".to_owned(),
        variation_ids: Vec::new(),
        created_ms: now,
        modified_ms: now,
    };
    state.items.insert(id, new);
    if let Err(error) = apply_patch(state, id, &patch) {
        state.items.remove(&id);
        return item_error(0, &error);
    }
    if let Some(p) = parent.and_then(|p| state.items.get_mut(&p)) {
        p.variation_ids.push(id);
    }
    state
        .items
        .get(&id)
        .map_or(Value::Null, |i| item_json(state, &inner.site(state), i))
}

fn batch_delete(inner: &Inner, state: &mut Store, parent: Option<u64>, item: &Value) -> Value {
    let id = item
        .as_u64()
        .or_else(|| item.get("id").and_then(Value::as_u64))
        .unwrap_or(0);
    let id = match batch_target(state, parent, id) {
        Ok(id) => id,
        Err(error) => return item_error(id, &error),
    };
    let value = state
        .items
        .get(&id)
        .map_or(Value::Null, |i| item_json(state, &inner.site(state), i));
    if let Some(removed) = state.items.remove(&id) {
        for variation in removed.variation_ids {
            state.items.remove(&variation);
        }
        if let Some(p) = removed.parent_id.and_then(|p| state.items.get_mut(&p)) {
            p.variation_ids.retain(|v| *v != id);
        }
    }
    value
}

pub(crate) async fn batch_products(
    State(inner): State<Arc<Inner>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.faults.processing_delay().await;
    call(&inner, &headers, raw.as_deref(), Access::Batch, |_| {
        batch(&inner, None, &body)
    })
}

pub(crate) async fn batch_variations(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.faults.processing_delay().await;
    call(&inner, &headers, raw.as_deref(), Access::Batch, |_| {
        let id = path_id(&id)?;
        batch(&inner, Some(id), &body)
    })
}

fn keeps_order(
    order: &super::model::Order,
    pairs: &[(String, String)],
    offset: i32,
) -> Result<bool, WooError> {
    let seconds = |ms: i64| ms.div_euclid(1000) * 1000;
    let statuses: Option<Vec<&str>> = query_value(pairs, "status")
        .filter(|s| *s != "any")
        .map(|s| s.split(',').map(str::trim).collect());
    let (modified, created) = (seconds(order.modified_ms), seconds(order.created_ms));
    let checks = [
        ("modified_after", true, modified),
        ("modified_before", false, modified),
        ("after", true, created),
        ("before", false, created),
    ];
    for (key, after, value) in checks {
        if let Some(mark) = time_param(pairs, key, offset)? {
            if (after && value <= mark) || (!after && value >= mark) {
                return Ok(false);
            }
        }
    }
    Ok(statuses.is_none_or(|s| s.contains(&order.status.as_str()))
        && id_list(pairs, "include").is_none_or(|ids| ids.contains(&order.id)))
}

pub(crate) async fn list_orders(
    State(inner): State<Arc<Inner>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    call(&inner, &headers, raw.as_deref(), Access::List, |pairs| {
        let window = Window::read(pairs)?;
        // The page is chosen under the store's lock and rendered after it, as a real store
        // serves its order list without holding up its stock writes and sales meanwhile.
        let (total, page, site) = {
            let state = inner.lock();
            let mut orders = Vec::new();
            for order in state.orders.values() {
                if keeps_order(order, pairs, state.timezone_offset_minutes)? {
                    orders.push(order);
                }
            }
            sort_by(&mut orders, pairs, |o, orderby| match orderby {
                "id" => (0, String::new(), o.id),
                "modified" => (o.modified_ms.div_euclid(1000), String::new(), o.id),
                _ => (o.created_ms.div_euclid(1000), String::new(), o.id),
            });
            let total = orders.len();
            let page: Vec<Order> = window.of(orders).cloned().collect();
            (total, page, inner.site(&state))
        };
        let shown = page.iter().map(|o| order_json(&site, o)).collect();
        Ok(page_response(
            &inner, "orders", pairs, &window, total, shown,
        ))
    })
}

pub(crate) async fn get_order(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    call(&inner, &headers, raw.as_deref(), Access::View, |_| {
        let id = path_id(&id)?;
        let state = inner.lock();
        let order = state.orders.get(&id).ok_or_else(|| {
            WooError::new(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        })?;
        Ok(ok(&order_json(&inner.site(&state), order)))
    })
}

pub(crate) async fn list_refunds(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    call(&inner, &headers, raw.as_deref(), Access::List, |pairs| {
        let id = path_id(&id)?;
        let state = inner.lock();
        let order = state.orders.get(&id).ok_or_else(|| {
            WooError::new(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        })?;
        let site = inner.site(&state);
        let mut refunds: Vec<Value> = order
            .refunds
            .iter()
            .map(|r| refund_json(&site, order, r))
            .collect();
        refunds.reverse();
        collection(
            &inner,
            &format!("orders/{id}/refunds"),
            pairs,
            refunds,
            |r| r,
        )
    })
}
