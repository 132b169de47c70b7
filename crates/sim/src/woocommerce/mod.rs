//! A fake WooCommerce store (API_FACTS §2 and §10), several of which can run at once, each on
//! its own port with its own catalog and stock:
//!
//! - REST API v3 under `/wp-json/wc/v3/` with Basic auth by consumer key and secret ([`rest`]):
//!   products and variations (read, `PUT` of `stock_quantity`, batches capped at 100 items),
//!   orders and refunds for backfill, WordPress pagination headers, WordPress error shapes, and
//!   PHP-style JSON (`\/`).
//! - The store's own orders with WooCommerce's stock rules ([`sales`]).
//! - Webhooks `order.created` / `order.updated` delivered the way WooCommerce delivers them
//!   ([`webhooks`]): in the background, built at send time, coalesced, never retried,
//!   disabled after repeated failures, pinged on creation.
//! - A display log, faults on command, an optional rate limiter (core WooCommerce has none,
//!   §2.4), and a JSON control API under `/_sim` ([`control`]).

mod control;
mod json;
mod model;
mod rest;
mod sales;
mod webhooks;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

pub use model::{WebhookInfo, WebhookStatus};
pub use sales::{NewOrder, NewRefund, OrderLine, RefundLineRequest, STATUSES};
pub use webhooks::{Delivery, WebhookSpec, TOPICS};

use crate::bucket::{BucketConfig, LeakyBucket};
use crate::display::DisplayEntry;
use crate::faults::{FaultStyle, FaultSwitch, Faults};
use crate::http_util::{self, Lifecycle};
use crate::seed::ProductSeed;
use crate::SimError;
use json::Site;
use model::State;

/// How a fake WooCommerce store starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WooConfig {
    pub host: String,
    /// 0 for any free port.
    pub port: u16,
    pub consumer_key: String,
    pub consumer_secret: String,
    /// `read`, `write` or `read_write`: what the key may do.
    pub key_permissions: String,
    /// The site's home URL (`X-WC-Webhook-Source`); the server's own URL with `/` by default.
    pub site_url: Option<String>,
    pub products: Vec<ProductSeed>,
    /// The site's UTC offset: `date_*` fields are in site time, `date_*_gmt` in GMT.
    pub timezone_offset_minutes: i32,
    /// An optional limiter (hosts and WAFs add them; core WooCommerce has none).
    pub rate_limit: Option<BucketConfig>,
    /// Most items in one batch call (filter `woocommerce_rest_batch_items_limit`: 100).
    pub batch_limit: usize,
    /// Webhooks created at start (and pinged).
    pub webhooks: Vec<WebhookSpec>,
    /// Time a queued delivery waits before it runs (Action Scheduler's async runner).
    pub webhook_delivery_delay_ms: u64,
    /// Deliveries sent at once (Action Scheduler runs one queue runner by default: 1).
    pub webhook_concurrency: usize,
    /// A delivery not answered within this time failed (WooCommerce: 60 s).
    pub webhook_timeout_ms: u64,
    /// `woocommerce_max_webhook_delivery_failures` (5).
    pub max_delivery_failures: u32,
    pub wc_version: String,
    pub wp_version: String,
    pub display_log_capacity: usize,
    pub seed: u64,
}

impl Default for WooConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 0,
            consumer_key: "ck_simulated".to_owned(),
            consumer_secret: "cs_simulated".to_owned(),
            key_permissions: "read_write".to_owned(),
            site_url: None,
            products: Vec::new(),
            timezone_offset_minutes: -180,
            rate_limit: None,
            batch_limit: 100,
            webhooks: Vec::new(),
            webhook_delivery_delay_ms: 250,
            webhook_concurrency: 1,
            webhook_timeout_ms: 60_000,
            max_delivery_failures: 5,
            wc_version: "9.4.0".to_owned(),
            wp_version: "6.7.1".to_owned(),
            display_log_capacity: 1_000_000,
            seed: 1,
        }
    }
}

/// A product or variation and its effective stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemInfo {
    pub id: u64,
    pub parent_id: Option<u64>,
    /// `simple`, `variable` or `variation`.
    pub kind: String,
    pub name: String,
    pub sku: String,
    pub manage_stock: bool,
    /// The stock it sells from (its own, or its parent's for `manage_stock: "parent"`).
    pub stock_quantity: Option<i64>,
    pub stock_status: String,
}

/// Changes to a webhook.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookUpdate {
    pub status: Option<WebhookStatus>,
    pub delivery_url: Option<String>,
    pub secret: Option<String>,
}

pub(crate) struct Inner {
    pub config: WooConfig,
    pub base_url: String,
    pub site_url: String,
    pub address: SocketAddr,
    state: Mutex<State>,
    pub faults: FaultSwitch,
    pub limiter: Option<Mutex<LeakyBucket>>,
    pub deliveries: Mutex<Vec<Delivery>>,
    /// The last `REQUESTS_KEPT` REST calls, as `METHOD /path?query`.
    pub requests: Mutex<VecDeque<String>>,
    pub client: reqwest::Client,
    pub lifecycle: Lifecycle,
    /// Deliveries and pings being sent.
    pub busy: AtomicUsize,
    pub settled: Notify,
    pub queue_changed: Notify,
    /// The runtime the store started on: webhooks are sent there, whoever triggers them.
    pub runtime: tokio::runtime::Handle,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn site<'a>(&'a self, state: &State) -> Site<'a> {
        Site {
            base_url: &self.base_url,
            offset: state.timezone_offset_minutes,
        }
    }

    /// Runs a change of an order and queues its `topic` webhooks.
    fn change_order(
        &self,
        topic: &str,
        change: impl FnOnce(&mut State) -> Result<u64, SimError>,
    ) -> Result<Value, SimError> {
        let delay = Duration::from_millis(self.config.webhook_delivery_delay_ms);
        let (order, queued) = {
            let mut state = self.lock();
            let id = change(&mut state)?;
            let queued = state.enqueue(topic, id, delay);
            let order = json::order_json(&self.site(&state), state.order(id)?);
            (order, queued)
        };
        if queued {
            self.queue_changed.notify_one();
        }
        Ok(order)
    }
}

/// A running fake WooCommerce store. Cheap to clone; stop it with [`WooSim::shutdown`].
#[derive(Clone)]
pub struct WooSim {
    inner: Arc<Inner>,
}

impl WooSim {
    /// Starts a store on `config.host:config.port` with `config.products` and
    /// `config.webhooks`.
    pub async fn start(config: WooConfig) -> Result<Self, SimError> {
        let (listener, address) = http_util::bind(&config.host, config.port).await?;
        let mut state = State::new(config.timezone_offset_minutes, config.display_log_capacity);
        state.seed(&config.products);
        let base_url = format!("http://{address}");
        let inner = Arc::new(Inner {
            site_url: config
                .site_url
                .clone()
                .unwrap_or_else(|| format!("{base_url}/")),
            base_url,
            address,
            state: Mutex::new(state),
            faults: FaultSwitch::new(config.seed.wrapping_add(1)),
            limiter: config.rate_limit.map(|c| Mutex::new(LeakyBucket::new(c))),
            deliveries: Mutex::new(Vec::new()),
            requests: Mutex::new(VecDeque::new()),
            client: http_util::webhook_client(),
            lifecycle: Lifecycle::new(),
            runtime: tokio::runtime::Handle::current(),
            busy: AtomicUsize::new(0),
            settled: Notify::new(),
            queue_changed: Notify::new(),
            config,
        });
        inner.lifecycle.serve(listener, router(inner.clone()));
        for _ in 0..inner.config.webhook_concurrency.max(1) {
            tokio::spawn(webhooks::worker(inner.clone()));
        }
        let sim = Self { inner };
        for spec in sim.inner.config.webhooks.clone() {
            sim.add_webhook(spec)?;
        }
        Ok(sim)
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// `<base>/wp-json/wc/v3`: the REST API root a connector is pointed at.
    pub fn rest_url(&self) -> String {
        format!("{}/wp-json/wc/v3", self.inner.base_url)
    }

    pub fn address(&self) -> SocketAddr {
        self.inner.address
    }

    pub fn config(&self) -> &WooConfig {
        &self.inner.config
    }

    pub fn site_url(&self) -> &str {
        &self.inner.site_url
    }

    /// Every product and variation, by id.
    pub fn items(&self) -> Vec<ItemInfo> {
        let state = self.inner.lock();
        state
            .items
            .values()
            .map(|item| item_info(&state, item))
            .collect()
    }

    /// The first product or variation with this SKU.
    pub fn item_by_sku(&self, sku: &str) -> Option<ItemInfo> {
        let state = self.inner.lock();
        let item = state.items.values().find(|i| i.sku == sku)?;
        Some(item_info(&state, item))
    }

    /// The stock a product or variation sells from, if managed.
    pub fn stock(&self, id: u64) -> Option<i64> {
        let state = self.inner.lock();
        let holder = state.stock_holder(id)?;
        state.items.get(&holder)?.stock_quantity
    }

    /// The REST JSON of a product or variation.
    pub fn item_json(&self, id: u64) -> Option<Value> {
        let state = self.inner.lock();
        let item = state.items.get(&id)?;
        Some(json::item_json(&state, &self.inner.site(&state), item))
    }

    /// Places an order (webhook `order.created`); returns the REST order.
    pub fn place_order(&self, order: &NewOrder) -> Result<Value, SimError> {
        self.inner
            .change_order("order.created", |state| state.place_order(order))
    }

    /// Moves an order to a status, with its stock effects (webhook `order.updated`).
    pub fn set_order_status(&self, order_id: u64, status: &str) -> Result<Value, SimError> {
        self.inner.change_order("order.updated", |state| {
            state.set_status(order_id, status).map(|()| order_id)
        })
    }

    /// Refunds units (webhook `order.updated`); returns the REST order after the refund.
    pub fn refund(&self, order_id: u64, refund: &NewRefund) -> Result<Value, SimError> {
        self.inner.change_order("order.updated", |state| {
            state.refund(order_id, refund).map(|_| order_id)
        })
    }

    /// The REST refunds of an order (line quantities negative).
    pub fn refunds(&self, order_id: u64) -> Result<Vec<Value>, SimError> {
        let state = self.inner.lock();
        let order = state.order(order_id)?;
        let site = self.inner.site(&state);
        Ok(order
            .refunds
            .iter()
            .map(|r| json::refund_json(&site, order, r))
            .collect())
    }

    /// Sets a line's quantity, as an admin edit of the order does (webhook `order.updated`).
    pub fn edit_line_quantity(
        &self,
        order_id: u64,
        line_item_id: u64,
        quantity: i64,
    ) -> Result<Value, SimError> {
        self.inner.change_order("order.updated", |state| {
            state
                .edit_line_quantity(order_id, line_item_id, quantity)
                .map(|()| order_id)
        })
    }

    /// Sets a product's or variation's stock by hand (drift); returns its REST JSON.
    pub fn admin_set_stock(&self, id: u64, quantity: i64) -> Result<Value, SimError> {
        let mut state = self.inner.lock();
        state.admin_set_stock(id, quantity)?;
        let item = state
            .items
            .get(&id)
            .ok_or_else(|| SimError::not_found("product", id))?;
        Ok(json::item_json(&state, &self.inner.site(&state), item))
    }

    pub fn order(&self, order_id: u64) -> Option<Value> {
        let state = self.inner.lock();
        let order = state.orders.get(&order_id)?;
        Some(json::order_json(&self.inner.site(&state), order))
    }

    pub fn orders(&self) -> Vec<Value> {
        let state = self.inner.lock();
        let site = self.inner.site(&state);
        state
            .orders
            .values()
            .map(|o| json::order_json(&site, o))
            .collect()
    }

    /// Creates a webhook and pings it if active.
    pub fn add_webhook(&self, spec: WebhookSpec) -> Result<WebhookInfo, SimError> {
        webhooks::create(&self.inner, spec)
    }

    pub fn webhooks(&self) -> Vec<WebhookInfo> {
        self.inner.lock().webhooks.values().cloned().collect()
    }

    pub fn update_webhook(&self, id: u64, update: &WebhookUpdate) -> Result<WebhookInfo, SimError> {
        let mut state = self.inner.lock();
        let hook = state
            .webhooks
            .get_mut(&id)
            .ok_or_else(|| SimError::not_found("webhook", id))?;
        if let Some(status) = update.status {
            hook.status = status;
            if status == WebhookStatus::Active {
                hook.failure_count = 0;
            }
        }
        if let Some(url) = &update.delivery_url {
            hook.delivery_url = url.clone();
        }
        if let Some(secret) = &update.secret {
            hook.secret = secret.clone();
        }
        Ok(hook.clone())
    }

    /// Every delivery and ping so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until no delivery is queued or being sent; false if `timeout` passed first.
    pub async fn wait_for_deliveries(&self, timeout: Duration) -> bool {
        webhooks::settle(&self.inner, timeout).await
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

    /// The REST calls the store received (the last 10,000, oldest first), each as
    /// `METHOD /path?query`, so that tests can count and inspect what a connector sent.
    pub fn api_requests(&self) -> Vec<String> {
        let requests = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        requests.iter().cloned().collect()
    }

    pub fn display_log(&self) -> Vec<DisplayEntry> {
        self.display_log_since(0)
    }

    pub fn display_log_since(&self, seq: u64) -> Vec<DisplayEntry> {
        self.inner.lock().display.since(seq)
    }

    /// Stops serving and delivering.
    pub async fn shutdown(&self) {
        self.inner.lifecycle.stop().await;
    }
}

fn item_info(state: &State, item: &model::Item) -> ItemInfo {
    let kind = item.kind.type_name();
    let stock_quantity = state
        .stock_holder(item.id)
        .and_then(|h| state.items.get(&h))
        .and_then(|h| h.stock_quantity);
    ItemInfo {
        id: item.id,
        parent_id: item.parent_id,
        kind: kind.to_owned(),
        name: item.name.clone(),
        sku: item.sku.clone(),
        manage_stock: item.manage_stock,
        stock_quantity,
        stock_status: json::stock_status(state, item),
    }
}

async fn apply_faults(
    axum::extract::State(inner): axum::extract::State<Arc<Inner>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    {
        let mut requests = inner.requests.lock().unwrap_or_else(|e| e.into_inner());
        if requests.len() == REQUESTS_KEPT {
            requests.pop_front();
        }
        requests.push_back(format!("{} {}", request.method(), request.uri()));
    }
    inner
        .faults
        .apply(FaultStyle::WooCommerce, request, next)
        .await
}

/// REST calls the store remembers for [`WooSim::api_requests`].
const REQUESTS_KEPT: usize = 10_000;

fn router(inner: Arc<Inner>) -> Router {
    const ROOT: &str = "/wp-json/wc/v3";
    let api = Router::new()
        .route(&format!("{ROOT}/products"), get(rest::list_products))
        .route(
            &format!("{ROOT}/products/batch"),
            post(rest::batch_products),
        )
        .route(
            &format!("{ROOT}/products/{{id}}"),
            get(rest::get_product)
                .put(rest::update_product)
                .post(rest::update_product)
                .patch(rest::update_product),
        )
        .route(
            &format!("{ROOT}/products/{{id}}/variations"),
            get(rest::list_variations),
        )
        .route(
            &format!("{ROOT}/products/{{id}}/variations/batch"),
            post(rest::batch_variations),
        )
        .route(
            &format!("{ROOT}/products/{{id}}/variations/{{vid}}"),
            get(rest::get_variation)
                .put(rest::update_variation)
                .post(rest::update_variation)
                .patch(rest::update_variation),
        )
        .route(&format!("{ROOT}/orders"), get(rest::list_orders))
        .route(&format!("{ROOT}/orders/{{id}}"), get(rest::get_order))
        .route(
            &format!("{ROOT}/orders/{{id}}/refunds"),
            get(rest::list_refunds),
        )
        .fallback(rest::no_route)
        .layer(axum::middleware::from_fn_with_state(
            inner.clone(),
            apply_faults,
        ));
    api.merge(control::router()).with_state(inner)
}
