//! Channels: their rules and, for connected kinds, where they are and how to authenticate
//! (secrets are accepted, stored, and never returned); catalog discovery, listings, the push
//! queue, the inbound event archive, replay, resync and order backfill.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json_};
use stockhub_core::{ChannelRules, Code, SHARE_WHOLE_PPM};
use stockhub_store::engine::inbound::EventView;
use stockhub_store::engine::listings::ListingView;
use stockhub_store::engine::pushes::PushView;
use stockhub_store::engine::{catalog, inbound, listings, pushes};
use stockhub_store::model::{Channel, ChannelInput};
use stockhub_store::StoreError;

use crate::extract::{ApiPath, ApiQuery, JsonBody, RawBody};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::catalog::page_limit;
use crate::write::{self, Caller};
use crate::{parse_code, AppState};

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesBody {
    /// Units held back from this channel for every SKU (default 0).
    #[serde(default)]
    pub buffer: i64,
    /// The share of the pool this channel may show, 0 to 1 (default 1).
    #[serde(default = "share_whole")]
    pub share: f64,
    /// The most this channel is shown for one SKU.
    pub max_quantity: Option<i64>,
    /// At or below this many units the channel is shown 0 (default 0).
    #[serde(default)]
    pub out_of_stock_threshold: i64,
}

fn share_whole() -> f64 {
    1.0
}

/// A channel. `manual` channels take orders through the API and are never pushed to;
/// `shopify` and `woocommerce` channels are connected: give where the store is, its credentials
/// and the webhook secret. Secrets may be left out when updating a channel that has them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelBody {
    /// `manual`, `shopify` or `woocommerce`.
    pub kind: String,
    pub rules: Option<RulesBody>,
    /// Location codes in priority order; every location (in code order) when absent.
    pub feeding_locations: Option<Vec<String>>,
    /// Connected channels: the store's address (any base URL, e.g. a simulator's).
    pub base_url: Option<String>,
    /// Shopify: the Admin API access token (secret).
    pub access_token: Option<String>,
    /// Shopify: the Admin API version (default `2026-01`).
    pub api_version: Option<String>,
    /// Shopify: the location stockhub stocks, e.g. `gid://shopify/Location/1`.
    pub location_id: Option<String>,
    /// Shopify, instead of `location_id`: each Shopify location → the stockhub locations that feed it.
    pub locations: Option<BTreeMap<String, Vec<String>>>,
    /// WooCommerce: the REST API consumer key (secret).
    pub consumer_key: Option<String>,
    /// WooCommerce: the REST API consumer secret (secret).
    pub consumer_secret: Option<String>,
    /// Connected channels: the secret webhooks are signed with (secret).
    pub webhook_secret: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    pub code: String,
    pub kind: String,
    pub rules: RulesBody,
    pub feeding_locations: Option<Vec<String>>,
    /// Where a connected channel is (never its secrets).
    #[schema(value_type = Option<Object>)]
    pub connection: Option<Json_>,
    /// Which secrets are set.
    pub secrets_set: Vec<String>,
}

fn channel_view(c: Channel, connection: Option<(Json_, Json_)>) -> ChannelView {
    let (connection, secrets_set) = match connection {
        Some((settings, secrets)) => {
            let set = secrets
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(_, v)| v.as_str().is_some_and(|s| !s.is_empty()))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            (Some(settings), set)
        }
        None => (None, Vec::new()),
    };
    ChannelView {
        rules: RulesBody {
            buffer: c.rules.buffer,
            share: c.rules.share_ppm as f64 / SHARE_WHOLE_PPM as f64,
            max_quantity: c.rules.max_quantity,
            out_of_stock_threshold: c.rules.out_of_stock_threshold,
        },
        code: c.code,
        kind: c.kind,
        feeding_locations: c.feeding_locations,
        connection,
        secrets_set,
    }
}

fn channel_input(code: Code, b: &ChannelBody) -> ApiResult<ChannelInput> {
    let r = b.rules.as_ref();
    let share = r.map_or(1.0, |r| r.share);
    if !(0.0..=1.0).contains(&share) || share.is_nan() {
        return Err(ApiError::invalid(
            "invalid-request",
            format!("rules.share must be between 0 and 1, got {share}"),
        ));
    }
    let feeding_locations = match &b.feeding_locations {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|l| parse_code("location", l))
                .collect::<ApiResult<Vec<Code>>>()?,
        ),
    };
    Ok(ChannelInput {
        code,
        kind: b.kind.clone(),
        rules: ChannelRules {
            buffer: r.map_or(0, |r| r.buffer),
            share_ppm: (share * SHARE_WHOLE_PPM as f64).round() as i64,
            max_quantity: r.and_then(|r| r.max_quantity),
            out_of_stock_threshold: r.map_or(0, |r| r.out_of_stock_threshold),
        },
        feeding_locations,
    })
}

/// Connection settings (shown) and secrets by name (`None`: keep the stored one).
type Connection = (Json_, BTreeMap<&'static str, Option<String>>);

/// The connection settings and secrets of a connected channel's body; `None` for manual ones.
/// Secrets left out are `None` (kept from what is stored).
fn connection_of(b: &ChannelBody) -> ApiResult<Option<Connection>> {
    let given = |v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    match b.kind.as_str() {
        "manual" => {
            let any = b.base_url.is_some()
                || b.access_token.is_some()
                || b.consumer_key.is_some()
                || b.webhook_secret.is_some()
                || b.location_id.is_some()
                || b.locations.is_some();
            if any {
                return Err(ApiError::invalid("invalid-request", "a manual channel has no connection: leave out base_url, credentials and locations"));
            }
            Ok(None)
        }
        kind @ ("shopify" | "woocommerce") => {
            let base_url = given(&b.base_url).ok_or_else(|| {
                ApiError::invalid(
                    "invalid-request",
                    format!("a {kind} channel needs base_url"),
                )
            })?;
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(ApiError::invalid(
                    "invalid-request",
                    "base_url must start with http:// or https://",
                ));
            }
            let mut settings = json!({ "base_url": base_url.trim_end_matches('/') });
            let mut secrets = BTreeMap::new();
            secrets.insert("webhook_secret", given(&b.webhook_secret));
            if kind == "shopify" {
                let locations = match (&b.location_id, &b.locations) {
                    (Some(id), None) => BTreeMap::from([(id.clone(), Vec::new())]),
                    (None, Some(map)) if !map.is_empty() => map.clone(),
                    _ => return Err(ApiError::invalid("invalid-request", "a shopify channel needs location_id, or locations (each Shopify location → our locations)")),
                };
                for ours in locations.values().flatten() {
                    parse_code("location", ours)?;
                }
                settings["api_version"] =
                    json!(b.api_version.clone().unwrap_or_else(|| "2026-01".into()));
                settings["locations"] = json!(locations);
                secrets.insert("access_token", given(&b.access_token));
            } else {
                secrets.insert("consumer_key", given(&b.consumer_key));
                secrets.insert("consumer_secret", given(&b.consumer_secret));
            }
            Ok(Some((settings, secrets)))
        }
        other => Err(ApiError::invalid(
            "invalid-request",
            format!("channel kind {other:?} is not supported; use manual, shopify or woocommerce"),
        )),
    }
}

/// Creates or replaces a channel with its rules (and, for connected kinds, its connection).
/// Units owed to short lines of this channel are filled at once if the new feeding locations
/// have them; every listing of the channel is marked for a push.
#[utoipa::path(put, path = "/v1/channels/{code}", tag = "channels",
    params(("code" = String, Path, description = "letters, digits, '-', '_', '.'")),
    request_body = ChannelBody,
    responses((status = 200, body = ChannelView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn put_channel(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    caller: Caller,
    body: JsonBody<ChannelBody>,
) -> ApiResult<Response> {
    let code = parse_code("channel", &code)?;
    let forget = code.as_str().to_owned();
    let input = channel_input(code, &body.value)?;
    let connection = connection_of(&body.value)?;
    // Secrets never enter the stored idempotency answer or the request hash.
    let mut canonical = body.canonical.clone();
    for secret in [
        "access_token",
        "consumer_key",
        "consumer_secret",
        "webhook_secret",
    ] {
        if let Some(v) = canonical.get_mut(secret) {
            *v = Json_::String(format!("sha256:{}", crate::write::request_hash(v)));
        }
    }
    let answer = write::run(&state, caller, &canonical, move |sql, ctx| {
        let channel = catalog::put_channel(sql, ctx, &input)?;
        if let Some((settings, given)) = &connection {
            let stored = catalog::connection(sql, &channel.code)?
                .map(|(_, s)| s)
                .unwrap_or(Json_::Null);
            let mut secrets = serde_json::Map::new();
            for (name, value) in given {
                let value = value
                    .clone()
                    .or_else(|| stored.get(*name).and_then(Json_::as_str).map(str::to_owned));
                match value {
                    Some(v) => {
                        secrets.insert((*name).to_owned(), Json_::String(v));
                    }
                    None => {
                        return Err(StoreError::Invalid(format!(
                            "{name} is required for a {} channel",
                            channel.kind
                        )))
                    }
                }
            }
            catalog::set_connection(sql, &channel.code, settings, &Json_::Object(secrets))?;
        }
        let connection = catalog::connection(sql, &channel.code)?;
        Ok((StatusCode::OK, channel_view(channel, connection)))
    })
    .await;
    // Webhooks and pushes pick the new connection up at once.
    state.services.connectors.forget(&forget);
    answer
}

#[utoipa::path(get, path = "/v1/channels", tag = "channels", responses((status = 200, body = Vec<ChannelView>)))]
pub async fn list_channels(State(state): State<AppState>) -> ApiResult<Json<Vec<ChannelView>>> {
    let views = state
        .store
        .read(|sql| {
            let mut out = Vec::new();
            for channel in catalog::list_channels(sql)? {
                let connection = catalog::connection(sql, &channel.code)?;
                out.push(channel_view(channel, connection));
            }
            Ok(out)
        })
        .await?;
    Ok(Json(views))
}

#[utoipa::path(get, path = "/v1/channels/{code}", tag = "channels",
    params(("code" = String, Path, description = "the channel's code")),
    responses((status = 200, body = ChannelView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_channel(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<ChannelView>> {
    let view = state
        .store
        .read(move |sql| {
            let channel = catalog::require_channel(sql, &code)?;
            let connection = catalog::connection(sql, &code)?;
            Ok(channel_view(channel, connection))
        })
        .await?;
    Ok(Json(view))
}

fn app_error(e: stockhub_app::AppError) -> ApiError {
    match e {
        stockhub_app::AppError::Store(e) => e.into(),
        stockhub_app::AppError::NotConnected(code) => ApiError::new(
            StatusCode::CONFLICT,
            "channel-not-connected",
            format!(
                "channel {code} is not a connected channel (kind manual or no connection settings)"
            ),
        ),
        stockhub_app::AppError::Channel(e) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "channel-failed",
            format!("the channel's API failed: {e}"),
        ),
        stockhub_app::AppError::Invalid(m) => ApiError::invalid("invalid-request", m),
    }
}

/// Pages through the channel's catalog, links listings to our variants by SKU, and reports what
/// did not match; the report is kept (`GET` returns the latest).
#[utoipa::path(post, path = "/v1/channels/{code}/discover", tag = "channels",
    params(("code" = String, Path, description = "the channel's code")),
    responses((status = 200, body = stockhub_store::engine::listings::DiscoveryReport), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 502, body = Problem, content_type = "application/problem+json")))]
pub async fn discover(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Response> {
    let report = stockhub_app::discovery::discover(&state.store, &state.services.connectors, &code)
        .await
        .map_err(app_error)?;
    Ok(Json(report).into_response())
}

#[utoipa::path(get, path = "/v1/channels/{code}/discover", tag = "channels",
    params(("code" = String, Path, description = "the channel's code")),
    responses((status = 200, description = "the latest discovery report", body = Object), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn discovery_report(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<Json_>> {
    let key = code.clone();
    let report = state
        .store
        .read(move |sql| listings::last_report(sql, &code))
        .await?;
    report.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no-discovery-report",
            format!("channel {key} has not been discovered yet; POST to this URL first"),
        )
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListingParams {
    pub sku: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListingPage {
    pub items: Vec<ListingView>,
    pub next_cursor: Option<String>,
}

/// A channel's listings with the quantity last pushed and confirmed, and the propagation latency.
#[utoipa::path(get, path = "/v1/channels/{code}/listings", tag = "channels",
    params(("code" = String, Path, description = "the channel's code"), ListingParams),
    responses((status = 200, body = ListingPage)))]
pub async fn list_listings(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(p): ApiQuery<ListingParams>,
) -> ApiResult<Json<ListingPage>> {
    let limit = page_limit(p.limit)?;
    let mut items = state
        .store
        .read(move |sql| {
            listings::list(sql, &code, p.sku.as_deref(), p.cursor.as_deref(), limit + 1)
        })
        .await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|l| l.listing_key.clone())
    } else {
        None
    };
    Ok(Json(ListingPage { items, next_cursor }))
}

/// Marks every listing of the channel for a push from the canonical state (a full re-push).
#[utoipa::path(post, path = "/v1/channels/{code}/resync", tag = "channels",
    params(("code" = String, Path, description = "the channel's code")),
    responses((status = 200, body = Object)))]
pub async fn resync(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<Json_>> {
    let marked = state
        .store
        .write(move |sql| {
            catalog::require_channel(sql, &code)?;
            pushes::mark_channel(sql, &code)
        })
        .await?;
    Ok(Json(json!({ "marked": marked })))
}

/// Reads the channel's orders updated since its cursor (with overlap) and applies what webhooks missed.
#[utoipa::path(post, path = "/v1/channels/{code}/backfill", tag = "channels",
    params(("code" = String, Path, description = "the channel's code")),
    responses((status = 200, body = Object), (status = 502, body = Problem, content_type = "application/problem+json")))]
pub async fn backfill(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<Json_>> {
    let day_ago = {
        use stockhub_store::Clock;
        stockhub_store::SystemClock.now_ms() - 24 * 3600 * 1000
    };
    let read =
        stockhub_app::backfill::backfill(&state.store, &state.services.connectors, &code, day_ago)
            .await
            .map_err(app_error)?;
    Ok(Json(json!({ "orders_read": read })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PushParams {
    /// `pending`, `in_flight` or `dead`.
    pub state: Option<String>,
    pub channel: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
}

/// The push queue: marks waiting, in flight or dead (with their last error).
#[utoipa::path(get, path = "/v1/pushes", tag = "pushes", params(PushParams), responses((status = 200, body = Vec<PushView>)))]
pub async fn list_pushes(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<PushParams>,
) -> ApiResult<Json<Vec<PushView>>> {
    if let Some(s) = p.state.as_deref() {
        if !["pending", "in_flight", "dead"].contains(&s) {
            return Err(ApiError::invalid(
                "invalid-request",
                format!("state must be pending, in_flight or dead, got {s:?}"),
            ));
        }
    }
    let limit = page_limit(p.limit)?;
    Ok(Json(
        state
            .store
            .read(move |sql| pushes::list(sql, p.state.as_deref(), p.channel.as_deref(), limit))
            .await?,
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// Only this channel's dead pushes.
    pub channel: Option<String>,
    /// Only this SKU's.
    pub sku: Option<String>,
}

/// Puts dead pushes back in the queue: all, one channel's, or one (channel, SKU).
#[utoipa::path(post, path = "/v1/pushes/retry", tag = "pushes", request_body = RetryBody, responses((status = 200, body = Object)))]
pub async fn retry_pushes(
    State(state): State<AppState>,
    body: JsonBody<RetryBody>,
) -> ApiResult<Json<Json_>> {
    let RetryBody { channel, sku } = body.value;
    let retried = state
        .store
        .write(move |sql| pushes::retry_dead(sql, channel.as_deref(), sku.as_deref()))
        .await?;
    Ok(Json(json!({ "retried": retried })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    pub channel: Option<String>,
    /// `received`, `applied`, `duplicate`, `rejected`, `ping`, `ignored`, `pending` or `failed`.
    pub outcome: Option<String>,
    /// The `next_cursor` of the previous page (newest first).
    pub cursor: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    pub next_cursor: Option<i64>,
}

/// The inbound event archive, newest first.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventParams), responses((status = 200, body = EventPage)))]
pub async fn list_events(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<EventParams>,
) -> ApiResult<Json<EventPage>> {
    let limit = page_limit(p.limit)?;
    let mut items = state
        .store
        .read(move |sql| {
            inbound::list(
                sql,
                p.channel.as_deref(),
                p.outcome.as_deref(),
                p.cursor,
                limit + 1,
            )
        })
        .await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(EventPage { items, next_cursor }))
}

#[utoipa::path(get, path = "/v1/events/{id}", tag = "events",
    params(("id" = i64, Path, description = "the event's id")),
    responses((status = 200, body = EventView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_event(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<EventView>> {
    Ok(Json(
        state
            .store
            .read(move |sql| inbound::get(sql, id).map(|(e, _)| e))
            .await?,
    ))
}

/// Re-applies an archived delivery; its permanent identity makes this safe.
#[utoipa::path(post, path = "/v1/events/{id}/replay", tag = "events",
    params(("id" = i64, Path, description = "the event's id")),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn replay_event(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Json_>> {
    Ok(Json(
        stockhub_app::webhooks::replay(&state.store, &state.services.connectors, id)
            .await
            .map_err(app_error)?,
    ))
}

/// A channel's webhook endpoint: the signature is verified over the raw bytes, the delivery is
/// archived and applied in one transaction, and only then acknowledged. Bad or missing
/// signatures get 401 (archived as rejected); duplicates 200 (archived, nothing applied).
#[utoipa::path(post, path = "/webhooks/{channel}", tag = "webhooks",
    params(("channel" = String, Path, description = "the channel's code")),
    request_body(content = Object, description = "the channel's payload, exactly as it sends it"),
    responses((status = 200, body = Object), (status = 401, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn webhook(
    State(state): State<AppState>,
    ApiPath(channel): ApiPath<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let answer = stockhub_app::webhooks::receive(
        &state.store,
        &state.services.connectors,
        &state.services.metrics,
        &channel,
        &headers,
        &body,
    )
    .await
    .map_err(app_error)?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    Ok((status, Json(answer.body)).into_response())
}
