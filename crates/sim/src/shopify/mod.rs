//! A fake Shopify store (API_FACTS §1 and §9), several of which can run at once, each on its own
//! port with its own catalog and quantities:
//!
//! - Admin GraphQL at `POST /admin/api/{version}/graphql.json` ([`graphql_api`]):
//!   `inventorySetQuantities` with compare-and-set and `@idempotent`, catalog and inventory
//!   queries, calculated query cost and a leaky bucket per store.
//! - REST Admin ([`rest`]): orders with `page_info` cursor pagination, inventory levels, the
//!   call-limit bucket with `X-Shopify-Shop-Api-Call-Limit` and 429 + `Retry-After`.
//! - The store's own sales ([`sales`]), which lower `available` at once, and webhooks sent the
//!   way Shopify sends them ([`webhooks`]): signed, retried 8 times over 4 hours, sometimes
//!   duplicated.
//! - A display log, the span of every `inventorySetQuantities` call, faults on command, and a
//!   JSON control API under `/_sim` ([`control`]).
//!
//! Start one with [`ShopifySim::start`]; everything a test or the CLI does to it goes through
//! the returned handle (or the control API, which calls the same methods).

mod control;
mod graphql_api;
mod inventory;
mod model;
mod resolve;
mod rest;
mod rest_json;
mod sales;
mod schema;
mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

pub(crate) use control::control_error;
pub use model::RestockType;
pub use sales::{CancelOrder, NewOrder, NewRefund, OrderLine, RefundLineRequest};
pub use webhooks::Delivery;

use crate::bucket::{BucketConfig, LeakyBucket};
use crate::display::DisplayEntry;
use crate::faults::{FaultStyle, FaultSwitch, Faults};
use crate::http_util::{self, Lifecycle};
use crate::seed::ProductSeed;
use crate::writes::{WriteLog, WriteSpan};
use crate::SimError;
use model::State;

/// The topics a store sends by default: those stockhub subscribes to (issue 3, point 3).
pub const DEFAULT_TOPICS: &[&str] = &[
    "orders/create",
    "orders/updated",
    "orders/cancelled",
    "refunds/create",
];
/// Every topic the fake can send.
pub const TOPICS: &[&str] = &[
    "orders/create",
    "orders/updated",
    "orders/cancelled",
    "orders/paid",
    "orders/fulfilled",
    "refunds/create",
    "inventory_levels/update",
];

/// How a fake Shopify store starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShopifyConfig {
    pub host: String,
    /// 0 for any free port.
    pub port: u16,
    pub shop_domain: String,
    /// The `X-Shopify-Access-Token` the Admin API accepts.
    pub access_token: String,
    /// The app's client secret: the key of `X-Shopify-Hmac-Sha256`.
    pub api_secret: String,
    /// The version webhooks are sent with (`X-Shopify-API-Version`).
    pub api_version: String,
    /// Names of the store's locations; a variant's `stock[i]` is its quantity at location `i`.
    pub locations: Vec<String>,
    pub products: Vec<ProductSeed>,
    /// GraphQL cost bucket: `maximumAvailable` and `restoreRate` (default: 2000 and 100/s,
    /// the Standard plan, API_FACTS §1.7).
    pub graphql_bucket: BucketConfig,
    /// Largest cost of a single query (Shopify: 1000).
    pub max_query_cost: u64,
    /// HTTP status of a throttled GraphQL answer (200 unless set; some report 429).
    pub throttled_status: u16,
    /// REST call bucket (default: 40 calls, 2 per second).
    pub rest_bucket: BucketConfig,
    /// Where webhooks go; none until set.
    pub webhook_address: Option<String>,
    pub webhook_topics: Vec<String>,
    /// A delivery not answered within this time failed (Shopify: 5 s).
    pub webhook_timeout_ms: u64,
    /// Retries after a failed first attempt (Shopify: 8).
    pub webhook_retries: u32,
    /// Time the retries spread over (Shopify: 4 hours).
    pub webhook_retry_window_seconds: f64,
    /// Multiplies every retry delay: 0.0001 makes 4 hours 1.44 s.
    pub webhook_time_scale: f64,
    /// The shop's UTC offset, used in REST timestamps.
    pub timezone_offset_minutes: i32,
    /// The most display-log entries kept, and the most write spans.
    pub display_log_capacity: usize,
    /// Seed of the store's randomness (ids of webhooks, fault draws).
    pub seed: u64,
}

impl Default for ShopifyConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 0,
            shop_domain: "sim-shop.myshopify.com".to_owned(),
            access_token: "shpat_simulated".to_owned(),
            api_secret: "shpss_simulated".to_owned(),
            api_version: "2026-01".to_owned(),
            locations: vec!["Main warehouse".to_owned()],
            products: Vec::new(),
            graphql_bucket: BucketConfig {
                capacity: 2000.0,
                per_second: 100.0,
            },
            max_query_cost: 1000,
            throttled_status: 200,
            rest_bucket: BucketConfig {
                capacity: 40.0,
                per_second: 2.0,
            },
            webhook_address: None,
            webhook_topics: DEFAULT_TOPICS.iter().map(|t| (*t).to_owned()).collect(),
            webhook_timeout_ms: 5000,
            webhook_retries: 8,
            webhook_retry_window_seconds: 4.0 * 3600.0,
            webhook_time_scale: 1.0,
            timezone_offset_minutes: -300,
            display_log_capacity: 1_000_000,
            seed: 1,
        }
    }
}

/// Where webhooks go, and which topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookTarget {
    pub address: Option<String>,
    pub topics: Vec<String>,
}

/// A location of the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationInfo {
    pub id: u64,
    pub gid: String,
    pub name: String,
}

/// Quantities of an inventory item at a location.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LevelInfo {
    pub location_id: u64,
    pub available: i64,
    pub committed: i64,
    pub on_hand: i64,
}

/// A variant, its inventory item and its levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantInfo {
    pub product_id: u64,
    pub product_title: String,
    pub variant_id: u64,
    pub inventory_item_id: u64,
    pub sku: Option<String>,
    pub title: String,
    pub tracked: bool,
    pub levels: Vec<LevelInfo>,
}

impl VariantInfo {
    pub fn inventory_item_gid(&self) -> String {
        format!("gid://shopify/InventoryItem/{}", self.inventory_item_id)
    }

    pub fn variant_gid(&self) -> String {
        format!("gid://shopify/ProductVariant/{}", self.variant_id)
    }

    pub fn available_at(&self, location_id: u64) -> Option<i64> {
        self.levels
            .iter()
            .find(|l| l.location_id == location_id)
            .map(|l| l.available)
    }
}

pub(crate) struct Inner {
    pub config: ShopifyConfig,
    pub base_url: String,
    pub address: SocketAddr,
    state: Mutex<State>,
    pub faults: FaultSwitch,
    pub graphql_bucket: Mutex<LeakyBucket>,
    pub rest_bucket: Mutex<LeakyBucket>,
    pub webhook_target: Mutex<WebhookTarget>,
    pub deliveries: Mutex<Vec<Delivery>>,
    pub writes: Mutex<WriteLog>,
    pub client: reqwest::Client,
    pub lifecycle: Lifecycle,
    pub in_flight: AtomicUsize,
    pub settled: Notify,
    pub send_permits: Semaphore,
    /// The runtime the store started on: webhooks are sent there, whoever triggers them.
    pub runtime: tokio::runtime::Handle,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a change of the store, then sends the webhooks it triggered.
    pub(crate) fn act<R>(self: &Arc<Self>, change: impl FnOnce(&mut State) -> R) -> R {
        let (result, triggers) = {
            let mut state = self.lock();
            let result = change(&mut state);
            (result, state.take_outbox())
        };
        webhooks::dispatch(self, triggers);
        result
    }
}

/// A running fake Shopify store. Cheap to clone; stop it with [`ShopifySim::shutdown`].
#[derive(Clone)]
pub struct ShopifySim {
    inner: Arc<Inner>,
}

impl ShopifySim {
    /// Starts a store on `config.host:config.port` with `config.products`.
    pub async fn start(config: ShopifyConfig) -> Result<Self, SimError> {
        let (listener, address) = http_util::bind(&config.host, config.port).await?;
        let mut state = State::new(
            &config.shop_domain,
            config.timezone_offset_minutes,
            config.display_log_capacity,
            config.seed,
        );
        state.seed(&config.locations, &config.products);
        let target = WebhookTarget {
            address: config.webhook_address.clone(),
            topics: config.webhook_topics.clone(),
        };
        let inner = Arc::new(Inner {
            base_url: format!("http://{address}"),
            address,
            state: Mutex::new(state),
            faults: FaultSwitch::new(config.seed.wrapping_add(1)),
            graphql_bucket: Mutex::new(LeakyBucket::new(config.graphql_bucket)),
            rest_bucket: Mutex::new(LeakyBucket::new(config.rest_bucket)),
            webhook_target: Mutex::new(target),
            deliveries: Mutex::new(Vec::new()),
            writes: Mutex::new(WriteLog::new(config.display_log_capacity)),
            client: http_util::webhook_client(),
            lifecycle: Lifecycle::new(),
            runtime: tokio::runtime::Handle::current(),
            in_flight: AtomicUsize::new(0),
            settled: Notify::new(),
            send_permits: Semaphore::new(256),
            config,
        });
        inner.lifecycle.serve(listener, router(inner.clone()));
        Ok(Self { inner })
    }

    /// `http://127.0.0.1:<port>`: the base URL a connector is pointed at.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    pub fn address(&self) -> SocketAddr {
        self.inner.address
    }

    pub fn config(&self) -> &ShopifyConfig {
        &self.inner.config
    }

    /// `POST` here for Admin GraphQL in the configured version.
    pub fn graphql_url(&self) -> String {
        format!(
            "{}/admin/api/{}/graphql.json",
            self.inner.base_url, self.inner.config.api_version
        )
    }

    pub fn locations(&self) -> Vec<LocationInfo> {
        let state = self.inner.lock();
        state
            .locations
            .values()
            .map(|l| LocationInfo {
                id: l.id,
                gid: format!("gid://shopify/Location/{}", l.id),
                name: l.name.clone(),
            })
            .collect()
    }

    /// Every variant with its inventory item and levels, by variant id.
    pub fn variants(&self) -> Vec<VariantInfo> {
        let state = self.inner.lock();
        state
            .variants
            .values()
            .map(|v| variant_info(&state, v))
            .collect()
    }

    /// The first variant with this SKU.
    pub fn variant_by_sku(&self, sku: &str) -> Option<VariantInfo> {
        let state = self.inner.lock();
        let variant = state
            .variants
            .values()
            .find(|v| v.sku.as_deref() == Some(sku))?;
        Some(variant_info(&state, variant))
    }

    /// `available` of an inventory item at a location, if stocked there.
    pub fn available(&self, inventory_item_id: u64, location_id: u64) -> Option<i64> {
        self.level(inventory_item_id, location_id)
            .map(|l| l.available)
    }

    pub fn level(&self, inventory_item_id: u64, location_id: u64) -> Option<LevelInfo> {
        let state = self.inner.lock();
        let level = state
            .variant_by_item(inventory_item_id)?
            .levels
            .get(&location_id)?;
        Some(LevelInfo {
            location_id,
            available: level.available,
            committed: level.committed,
            on_hand: level.on_hand(),
        })
    }

    /// Places an order on the store; returns the REST Order.
    pub fn place_order(&self, order: &NewOrder) -> Result<Value, SimError> {
        self.inner
            .act(|state| state.place_order(order).and_then(|id| state.order_json(id)))
    }

    pub fn cancel_order(&self, order_id: u64, cancel: &CancelOrder) -> Result<Value, SimError> {
        self.inner.act(|state| {
            state
                .cancel_order(order_id, cancel)
                .and_then(|()| state.order_json(order_id))
        })
    }

    /// Refunds units; returns the REST Order after the refund (its last `refunds` entry is new).
    pub fn refund(&self, order_id: u64, refund: &NewRefund) -> Result<Value, SimError> {
        self.inner.act(|state| {
            state
                .refund(order_id, refund)
                .and_then(|_| state.order_json(order_id))
        })
    }

    pub fn fulfill(&self, order_id: u64) -> Result<Value, SimError> {
        self.inner.act(|state| {
            state
                .fulfill(order_id)
                .and_then(|()| state.order_json(order_id))
        })
    }

    /// Sets a line's current quantity, as an order edit does.
    pub fn edit_line_quantity(
        &self,
        order_id: u64,
        line_item_id: u64,
        quantity: i64,
    ) -> Result<Value, SimError> {
        self.inner.act(|state| {
            state
                .edit_line_quantity(order_id, line_item_id, quantity)
                .and_then(|()| state.order_json(order_id))
        })
    }

    pub fn mark_paid(&self, order_id: u64) -> Result<Value, SimError> {
        self.inner.act(|state| {
            state
                .mark_paid(order_id)
                .and_then(|()| state.order_json(order_id))
        })
    }

    /// Sets `available` by hand in the admin (drift); returns the REST InventoryLevel.
    pub fn admin_set_available(
        &self,
        inventory_item_id: u64,
        location_id: u64,
        available: i64,
    ) -> Result<Value, SimError> {
        self.inner
            .act(|state| state.admin_set_available(inventory_item_id, location_id, available))
    }

    pub fn order(&self, order_id: u64) -> Option<Value> {
        self.inner.lock().order_json(order_id).ok()
    }

    pub fn orders(&self) -> Vec<Value> {
        let state = self.inner.lock();
        state
            .orders
            .keys()
            .filter_map(|id| state.order_json(*id).ok())
            .collect()
    }

    pub fn faults(&self) -> Faults {
        self.inner.faults.get()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.inner.faults.set(faults);
    }

    /// How many API requests the `hold` fault holds right now.
    pub fn held_requests(&self) -> usize {
        self.inner.faults.held()
    }

    /// Every displayed-quantity change so far.
    pub fn display_log(&self) -> Vec<DisplayEntry> {
        self.display_log_since(0)
    }

    pub fn display_log_since(&self, seq: u64) -> Vec<DisplayEntry> {
        self.inner.lock().display.since(seq)
    }

    /// Every `inventorySetQuantities` call the store took up, oldest first (at most
    /// `display_log_capacity` of them).
    pub fn write_spans(&self) -> Vec<WriteSpan> {
        self.inner
            .writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spans()
    }

    pub fn webhook_target(&self) -> WebhookTarget {
        self.inner
            .webhook_target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends future webhooks to `address` (none: stop sending).
    pub fn set_webhook_address(&self, address: Option<String>) {
        self.inner
            .webhook_target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .address = address;
    }

    pub fn set_webhook_target(&self, target: WebhookTarget) {
        *self
            .inner
            .webhook_target
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = target;
    }

    /// Every delivery attempt so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Webhooks still being delivered or waiting for a retry.
    pub fn deliveries_in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until no webhook is in flight; false if `timeout` passed first.
    pub async fn wait_for_deliveries(&self, timeout: Duration) -> bool {
        webhooks::settle(&self.inner, timeout).await
    }

    /// Stops serving and abandons pending retries.
    pub async fn shutdown(&self) {
        self.inner.lifecycle.stop().await;
    }
}

fn variant_info(state: &State, variant: &model::Variant) -> VariantInfo {
    let product_title = state
        .products
        .get(&variant.product_id)
        .map(|p| p.title.clone())
        .unwrap_or_default();
    let levels = variant
        .levels
        .iter()
        .map(|(location_id, l)| LevelInfo {
            location_id: *location_id,
            available: l.available,
            committed: l.committed,
            on_hand: l.on_hand(),
        })
        .collect();
    VariantInfo {
        product_id: variant.product_id,
        product_title,
        variant_id: variant.id,
        inventory_item_id: variant.item_id,
        sku: variant.sku.clone(),
        title: variant.title.clone(),
        tracked: variant.tracked,
        levels,
    }
}

async fn apply_faults(
    axum::extract::State(inner): axum::extract::State<Arc<Inner>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    inner.faults.apply(FaultStyle::Shopify, request, next).await
}

fn router(inner: Arc<Inner>) -> Router {
    let api = Router::new()
        .route(
            "/admin/api/{version}/graphql.json",
            post(graphql_api::handle),
        )
        .route("/admin/api/{version}/orders.json", get(rest::orders))
        .route("/admin/api/{version}/orders/{file}", get(rest::order))
        .route(
            "/admin/api/{version}/orders/{id}/refunds.json",
            get(rest::refunds),
        )
        .route(
            "/admin/api/{version}/inventory_levels.json",
            get(rest::levels),
        )
        .route(
            "/admin/api/{version}/inventory_levels/set.json",
            post(rest::set_level),
        )
        .route(
            "/admin/api/{version}/inventory_levels/adjust.json",
            post(rest::adjust_level),
        )
        .fallback(rest::not_found)
        .layer(axum::middleware::from_fn_with_state(
            inner.clone(),
            apply_faults,
        ));
    api.merge(control::router()).with_state(inner)
}
