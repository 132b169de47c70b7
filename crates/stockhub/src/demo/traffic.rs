//! The demo's stream of business: orders placed on the three stores at a steady rate (random
//! SKUs, mostly one unit), and now and then a cancellation or a refund of a recent order on its
//! own store, and a stock receipt in stockhub. A store refuses an order it shows as sold out, as
//! a real store does; stockhub only hears of what the stores sell, through their webhooks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use stockhub_sim::shopify::{self, RestockType, ShopifySim};
use stockhub_sim::woocommerce::{self, WooSim};
use stockhub_sim::SimError;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::setup::{Demo, LOCATIONS};
use crate::client::Api;

/// Chance, per order, of also cancelling a recent order.
const CANCEL_CHANCE: f64 = 0.04;
/// Chance, per order, of also refunding one unit of a recent order.
const REFUND_CHANCE: f64 = 0.04;
/// Chance, per order, of also receiving stock in stockhub: of a SKU a store just refused as sold
/// out when there is one (the merchant restocks what sells), else of a random SKU. With about
/// 1.6 units sold per order this keeps the shelves from emptying over a long run.
const RECEIPT_CHANCE: f64 = 0.08;
/// SKUs refused as sold out, remembered for the next receipts.
const SOLD_OUT_KEPT: usize = 100;
/// Recent orders kept as candidates for a cancellation or a refund: at most this many, and
/// none older than [`RECENT_FOR`].
const RECENT_MAX: usize = 20_000;
const RECENT_FOR: Duration = Duration::from_secs(60);
/// The youngest order that may be cancelled or refunded. A shopper changes their mind after
/// the store has announced the order, not within the quarter second a WooCommerce store waits
/// before it sends its first webhook.
const CHANGE_OF_MIND_AFTER: Duration = Duration::from_secs(2);

/// What the stream did so far.
#[derive(Default)]
pub struct Counters {
    /// Orders placed, per store (in the order of `Demo::stores`).
    pub orders: Vec<AtomicU64>,
    /// Orders a store refused because it showed the SKU as sold out.
    pub sold_out: AtomicU64,
    pub cancels: AtomicU64,
    pub refunds: AtomicU64,
    pub receipts: AtomicU64,
    /// Actions that failed for another reason (shown, never expected).
    pub failures: AtomicU64,
}

impl Counters {
    pub fn orders_total(&self) -> u64 {
        self.orders.iter().map(|o| o.load(Ordering::Relaxed)).sum()
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A store of the demo, as the stream drives it.
#[derive(Clone)]
enum Shop {
    Shopify(ShopifySim),
    Woo(WooSim),
}

/// A placed order that may still be cancelled or refunded: its store, id and line ids.
struct Placed {
    at: Instant,
    store: usize,
    order_id: u64,
    line_ids: Vec<u64>,
}

/// The running stream; [`Traffic::stop`] ends it.
pub struct Traffic {
    pub counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Traffic {
    /// Stops placing orders and returns the final counts.
    pub async fn stop(self) -> Arc<Counters> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.counters
    }
}

struct Stream {
    shops: Vec<Shop>,
    skus: Vec<String>,
    api: Api,
    rng: StdRng,
    recent: VecDeque<Placed>,
    sold_out: Vec<String>,
    /// Stock receipts on their way to stockhub.
    receipts: JoinSet<()>,
    counters: Arc<Counters>,
}

/// Starts placing `per_second` orders a second.
pub fn start(demo: &Demo, api: Api, per_second: f64, rng: StdRng) -> Traffic {
    let shops: Vec<Shop> = demo
        .fleet
        .shopify
        .iter()
        .cloned()
        .map(Shop::Shopify)
        .chain(demo.fleet.woocommerce.iter().cloned().map(Shop::Woo))
        .collect();
    let counters = Arc::new(Counters {
        orders: shops.iter().map(|_| AtomicU64::new(0)).collect(),
        ..Counters::default()
    });
    let (stop, stopped) = watch::channel(false);
    let stream = Stream {
        shops,
        skus: demo.skus.clone(),
        api,
        rng,
        recent: VecDeque::new(),
        sold_out: Vec::new(),
        receipts: JoinSet::new(),
        counters: counters.clone(),
    };
    let task = tokio::spawn(stream.run(per_second, stopped));
    Traffic {
        counters,
        stop,
        task,
    }
}

impl Stream {
    async fn run(mut self, per_second: f64, mut stopped: watch::Receiver<bool>) {
        if per_second <= 0.0 || self.skus.is_empty() {
            let _ = stopped.changed().await;
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tick.tick() => {}
            }
            while self.receipts.try_join_next().is_some() {}
            self.place_order();
            if self.rng.random_bool(CANCEL_CHANCE) {
                self.cancel_recent();
            }
            if self.rng.random_bool(REFUND_CHANCE) {
                self.refund_recent();
            }
            if self.rng.random_bool(RECEIPT_CHANCE) {
                self.receive();
            }
        }
        while self.receipts.join_next().await.is_some() {}
    }

    /// One or two lines of random SKUs, mostly one unit each, on a random store.
    fn place_order(&mut self) {
        let store = self.rng.random_range(0..self.shops.len());
        let line_count = if self.rng.random_bool(0.2) { 2 } else { 1 };
        let mut lines: Vec<(String, i64)> = Vec::new();
        for _ in 0..line_count {
            let sku = self.skus[self.rng.random_range(0..self.skus.len())].clone();
            let quantity = match self.rng.random_range(0..100) {
                0..75 => 1,
                75..95 => 2,
                _ => 3,
            };
            if !lines.iter().any(|(s, _)| *s == sku) {
                lines.push((sku, quantity));
            }
        }
        let placed = match &self.shops[store] {
            Shop::Shopify(s) => s.place_order(&shopify::NewOrder::lines(
                lines
                    .iter()
                    .map(|(sku, q)| shopify::OrderLine::sku(sku, *q))
                    .collect(),
            )),
            Shop::Woo(w) => w.place_order(&woocommerce::NewOrder::lines(
                lines
                    .iter()
                    .map(|(sku, q)| woocommerce::OrderLine::sku(sku, *q))
                    .collect(),
            )),
        };
        match placed {
            Ok(order) => {
                bump(&self.counters.orders[store]);
                self.remember(store, &order);
            }
            Err(SimError::OutOfStock { .. }) => {
                bump(&self.counters.sold_out);
                if self.sold_out.len() < SOLD_OUT_KEPT {
                    self.sold_out.extend(lines.into_iter().map(|(sku, _)| sku));
                }
            }
            Err(e) => self.failed("placing an order", &e),
        }
    }

    fn remember(&mut self, store: usize, order: &Value) {
        let Some(order_id) = order["id"].as_u64() else {
            return;
        };
        let line_ids = order["line_items"]
            .as_array()
            .map(|lines| lines.iter().filter_map(|l| l["id"].as_u64()).collect())
            .unwrap_or_default();
        while self.recent.len() >= RECENT_MAX
            || self
                .recent
                .front()
                .is_some_and(|p| p.at.elapsed() > RECENT_FOR)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(Placed {
            at: Instant::now(),
            store,
            order_id,
            line_ids,
        });
    }

    /// Takes a random recent order old enough to change out of the candidates (each is acted
    /// on at most once).
    fn take_recent(&mut self) -> Option<Placed> {
        let old_enough = self
            .recent
            .iter()
            .take_while(|p| p.at.elapsed() >= CHANGE_OF_MIND_AFTER)
            .count();
        if old_enough == 0 {
            return None;
        }
        let index = self.rng.random_range(0..old_enough);
        self.recent.remove(index)
    }

    /// Cancels a recent order with restock (WooCommerce: status `cancelled`).
    fn cancel_recent(&mut self) {
        let Some(order) = self.take_recent() else {
            return;
        };
        let done = match &self.shops[order.store] {
            Shop::Shopify(s) => s
                .cancel_order(order.order_id, &shopify::CancelOrder::default())
                .map(drop),
            Shop::Woo(w) => w.set_order_status(order.order_id, "cancelled").map(drop),
        };
        match done {
            Ok(()) => bump(&self.counters.cancels),
            Err(e) => self.failed("cancelling an order", &e),
        }
    }

    /// Refunds one unit of one line of a recent order, restocked or not at random.
    fn refund_recent(&mut self) {
        let Some(order) = self.take_recent() else {
            return;
        };
        let Some(&line_item_id) = order.line_ids.first() else {
            return;
        };
        let restock = self.rng.random_bool(0.5);
        let done = match &self.shops[order.store] {
            Shop::Shopify(s) => s
                .refund(
                    order.order_id,
                    &shopify::NewRefund {
                        refund_line_items: vec![shopify::RefundLineRequest {
                            line_item_id,
                            quantity: 1,
                            // The units are not shipped yet: `cancel` puts them back on the
                            // shelf, `no_restock` does not (stockhub releases them either way).
                            restock_type: if restock {
                                RestockType::Cancel
                            } else {
                                RestockType::NoRestock
                            },
                            location_id: None,
                        }],
                        note: Some("demo refund".to_owned()),
                    },
                )
                .map(drop),
            Shop::Woo(w) => w
                .refund(
                    order.order_id,
                    &woocommerce::NewRefund {
                        line_items: vec![woocommerce::RefundLineRequest {
                            line_item_id,
                            quantity: 1,
                        }],
                        api_restock: restock,
                        reason: "demo refund".to_owned(),
                    },
                )
                .map(drop),
        };
        match done {
            Ok(()) => bump(&self.counters.refunds),
            Err(e) => self.failed("refunding an order", &e),
        }
    }

    /// Receives 5 to 20 units at a random location, through stockhub's API.
    fn receive(&mut self) {
        let sku = match self.sold_out.pop() {
            Some(sku) => sku,
            None => self.skus[self.rng.random_range(0..self.skus.len())].clone(),
        };
        let location = LOCATIONS[self.rng.random_range(0..LOCATIONS.len())].0;
        let body = json!({ "movements": [{
            "kind": "receive", "sku": sku, "location": location,
            "quantity": self.rng.random_range(5..=20), "note": "demo: stock receipt",
        }]});
        let (api, counters) = (self.api.clone(), self.counters.clone());
        // Off the order stream's clock: a receipt waits for a durable commit.
        self.receipts.spawn(async move {
            match api.post("/v1/stock/movements", &body).await {
                Ok(_) => bump(&counters.receipts),
                Err(e) => {
                    bump(&counters.failures);
                    tracing::warn!(error = %e, "demo: a stock receipt failed");
                }
            }
        });
    }

    fn failed(&self, what: &str, e: &SimError) {
        bump(&self.counters.failures);
        tracing::warn!(error = %e, "demo: {what} failed");
    }
}
