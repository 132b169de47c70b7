//! The six audit tests of DESIGN §8, each beyond the field's own sizes, run against stockhub with
//! simulated stores (two Shopify, one WooCommerce) whose webhooks point at stockhub:
//!
//! 1. concurrent sales of one SKU from three channels at the same instant — counts exact;
//! 2. a burst of 500 orders in a few seconds (the field quotes 50 in 60 s) — all applied, exact;
//! 3. selling out one variant changes that variant's listings everywhere and no sibling's;
//! 4. webhook and push failures are retried, and persistent failures reach the operator;
//! 5. a bulk update of 10,000 SKUs over 500 products in one request drops nothing, and every
//!    channel converges;
//! 6. the audit trail answers "what exactly happened to order X / SKU Y" in one query, and the
//!    answer explains every unit.
//!
//! No assertion is timed except bounded waits for convergence; sizes and rates are printed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stockhub_app::push::PushSettings;
use stockhub_sim::seed::{CatalogSpec, ProductSeed};
use stockhub_sim::shopify::{
    NewOrder, NewRefund, OrderLine, RefundLineRequest, RestockType, ShopifyConfig, ShopifySim,
};
use stockhub_sim::woocommerce::{
    NewOrder as WooOrder, OrderLine as WooLine, WebhookSpec, WooConfig, WooSim,
};
use stockhub_sim::{BucketConfig, Cause, Faults};
use stockhub_testkit::{spawn_app, spawn_app_full, TestApp};

const SECRET: &str = "whsec-audit";

// ---------------------------------------------------------------------------------------------
// Stores and stockhub

#[derive(Clone)]
enum Store {
    Shopify(ShopifySim),
    Woo(WooSim),
}

impl Store {
    fn shown(&self) -> HashMap<String, i64> {
        match self {
            Store::Shopify(s) => {
                let location = s.locations()[0].id;
                s.variants()
                    .into_iter()
                    .filter_map(|v| Some((v.sku.clone()?, v.available_at(location)?)))
                    .collect()
            }
            Store::Woo(w) => w
                .items()
                .into_iter()
                .filter(|i| !i.sku.is_empty())
                .filter_map(|i| Some((i.sku.clone(), i.stock_quantity?)))
                .collect(),
        }
    }

    fn display_seq(&self) -> u64 {
        let log = match self {
            Store::Shopify(s) => s.display_log(),
            Store::Woo(w) => w.display_log(),
        };
        log.last().map_or(0, |e| e.seq)
    }

    fn display_since(&self, seq: u64) -> Vec<stockhub_sim::DisplayEntry> {
        match self {
            Store::Shopify(s) => s.display_log_since(seq),
            Store::Woo(w) => w.display_log_since(seq),
        }
    }

    async fn settled(&self, wait: Duration) -> bool {
        match self {
            Store::Shopify(s) => s.wait_for_deliveries(wait).await,
            Store::Woo(w) => w.wait_for_deliveries(wait).await,
        }
    }

    fn set_faults(&self, faults: Faults) {
        match self {
            Store::Shopify(s) => s.set_faults(faults),
            Store::Woo(w) => w.set_faults(faults),
        }
    }
}

/// Three channels on one stockhub: `shop_a`, `shop_b` (Shopify) and `woo` (WooCommerce), plain
/// rules, all fed by `wh1`.
struct Fleet {
    app: TestApp,
    shop_a: ShopifySim,
    shop_b: ShopifySim,
    woo: WooSim,
    skus: Vec<String>,
}

impl Fleet {
    fn stores(&self) -> Vec<(&'static str, Store)> {
        vec![
            ("shop_a", Store::Shopify(self.shop_a.clone())),
            ("shop_b", Store::Shopify(self.shop_b.clone())),
            ("woo", Store::Woo(self.woo.clone())),
        ]
    }
}

struct FleetSpec {
    products: Vec<ProductSeed>,
    /// Units of every SKU received at `wh1` before discovery.
    quantity: i64,
    push: Option<PushSettings>,
    /// Shopify GraphQL bucket: (capacity, restore per second).
    shopify_bucket: (f64, f64),
    woo_delivery_delay_ms: u64,
    woo_delivery_concurrency: usize,
}

impl FleetSpec {
    fn new(products: Vec<ProductSeed>, quantity: i64) -> Self {
        Self {
            products,
            quantity,
            push: None,
            // Shopify Plus (API_FACTS §1.7: restore 1,000 points/s).
            shopify_bucket: (10_000.0, 1_000.0),
            woo_delivery_delay_ms: 250,
            woo_delivery_concurrency: 1,
        }
    }
}

fn catalog(prefix: &str, products: usize, variants: usize) -> Vec<ProductSeed> {
    CatalogSpec {
        products,
        variants_per_product: variants,
        locations: 1,
        quantity: 0,
        sku_prefix: prefix.into(),
    }
    .build()
}

async fn ok(reply: stockhub_testkit::Reply) -> Value {
    assert!((200..300).contains(&reply.status), "{reply:#?}");
    reply.body
}

async fn shopify(spec: &FleetSpec, seed: u64) -> ShopifySim {
    ShopifySim::start(ShopifyConfig {
        products: spec.products.clone(),
        api_secret: SECRET.into(),
        shop_domain: format!("audit-{seed}.myshopify.com"),
        seed,
        graphql_bucket: BucketConfig {
            capacity: spec.shopify_bucket.0,
            per_second: spec.shopify_bucket.1,
        },
        // Shopify's 8 retries over 4 hours, compressed to 14 s.
        webhook_time_scale: 0.001,
        ..ShopifyConfig::default()
    })
    .await
    .expect("Shopify store")
}

async fn fleet(spec: FleetSpec) -> Fleet {
    let app = match &spec.push {
        Some(push) => {
            spawn_app_full(
                Default::default(),
                Arc::new(stockhub_store::SystemClock),
                push.clone(),
            )
            .await
        }
        None => spawn_app().await,
    };
    let skus: Vec<String> = spec
        .products
        .iter()
        .flat_map(|p| p.variants.iter().filter_map(|v| v.sku.clone()))
        .collect();
    ok(app.put("/v1/locations/wh1", &json!({})).await).await;
    let variants: Vec<Value> = skus.iter().map(|s| json!({ "sku": s })).collect();
    ok(app
        .post("/v1/variants/batch", &json!({ "variants": variants }))
        .await)
    .await;
    if spec.quantity > 0 {
        let movements: Vec<Value> = skus
            .iter()
            .map(|s| json!({ "kind": "receive", "sku": s, "location": "wh1", "quantity": spec.quantity }))
            .collect();
        ok(app
            .post("/v1/stock/movements", &json!({ "movements": movements }))
            .await)
        .await;
    }
    let shop_a = shopify(&spec, 101).await;
    let shop_b = shopify(&spec, 202).await;
    let woo = WooSim::start(WooConfig {
        products: spec.products.clone(),
        seed: 303,
        webhook_delivery_delay_ms: spec.woo_delivery_delay_ms,
        webhook_concurrency: spec.woo_delivery_concurrency,
        ..WooConfig::default()
    })
    .await
    .expect("WooCommerce store");
    for (code, store) in [("shop_a", &shop_a), ("shop_b", &shop_b)] {
        ok(app
            .put(
                &format!("/v1/channels/{code}"),
                &json!({ "kind": "shopify", "base_url": store.base_url(),
                         "access_token": store.config().access_token,
                         "location_id": store.locations()[0].gid, "webhook_secret": SECRET }),
            )
            .await)
        .await;
        store.set_webhook_address(Some(format!("{}/webhooks/{code}", app.base_url)));
    }
    ok(app
        .put(
            "/v1/channels/woo",
            &json!({ "kind": "woocommerce", "base_url": woo.base_url(),
                     "consumer_key": woo.config().consumer_key,
                     "consumer_secret": woo.config().consumer_secret, "webhook_secret": SECRET }),
        )
        .await)
    .await;
    for topic in ["order.created", "order.updated"] {
        woo.add_webhook(WebhookSpec {
            name: None,
            topic: topic.into(),
            delivery_url: format!("{}/webhooks/woo", app.base_url),
            secret: Some(SECRET.into()),
            status: None,
        })
        .expect("WooCommerce webhook");
    }
    for code in ["shop_a", "shop_b", "woo"] {
        let report = ok(app
            .post(&format!("/v1/channels/{code}/discover"), &json!({}))
            .await)
        .await;
        assert_eq!(report["matched"], skus.len(), "{code}: {report}");
    }
    let fleet = Fleet {
        app,
        shop_a,
        shop_b,
        woo,
        skus,
    };
    quiesce(&fleet, Duration::from_secs(40)).await;
    fleet
}

/// Waits (bounded) until every store delivered its webhooks, nothing waits to be re-applied and
/// the push queue is empty — twice in a row.
async fn quiesce(fleet: &Fleet, within: Duration) {
    let deadline = Instant::now() + within;
    let mut calm = 0;
    while calm < 2 {
        let mut settled = true;
        for (_, store) in fleet.stores() {
            settled &= store.settled(Duration::from_secs(2)).await;
        }
        let pushes = ok(fleet.app.get("/v1/pushes?limit=1000").await).await;
        let pending = ok(fleet.app.get("/v1/events?outcome=pending&limit=10").await).await;
        let quiet = settled
            && pushes.as_array().is_some_and(Vec::is_empty)
            && pending["items"].as_array().is_some_and(Vec::is_empty);
        calm = if quiet { calm + 1 } else { 0 };
        assert!(
            Instant::now() < deadline,
            "no quiescence within {within:?}: stores settled {settled}, pushes {pushes}, pending {pending}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stock(app: &TestApp, sku: &str) -> Value {
    ok(app.get(&format!("/v1/stock/{sku}")).await).await
}

fn level(view: &Value) -> (i64, i64) {
    let l = &view["levels"][0];
    (
        l["on_hand"].as_i64().unwrap_or(0),
        l["committed"].as_i64().unwrap_or(0),
    )
}

fn available(view: &Value, channel: &str) -> i64 {
    view["channels"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["channel"] == channel))
        .and_then(|c| c["available"].as_i64())
        .unwrap_or_else(|| panic!("{channel} in {view}"))
}

/// Every ledger entry matching `query`, oldest first.
async fn ledger(app: &TestApp, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<i64> = None;
    for _ in 0..1_000 {
        let page = ok(app
            .get(&match cursor {
                Some(c) => format!("/v1/ledger?{query}&limit=1000&cursor={c}"),
                None => format!("/v1/ledger?{query}&limit=1000"),
            })
            .await)
        .await;
        out.extend(page["entries"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("the ledger did not end");
}

async fn assert_verified(app: &TestApp) {
    let report = app
        .store
        .read(stockhub_store::engine::verify::verify)
        .await
        .expect("verify");
    assert!(
        report.differences.is_empty(),
        "the ledger does not explain the projections: {:#?}",
        report.differences
    );
}

/// Every channel shows `expected(sku)` for every SKU.
fn assert_every_channel_shows(fleet: &Fleet, expected: &dyn Fn(&str) -> i64) {
    let mut wrong = Vec::new();
    for (code, store) in fleet.stores() {
        let shown = store.shown();
        for sku in &fleet.skus {
            let want = expected(sku);
            if shown.get(sku) != Some(&want) {
                wrong.push(format!(
                    "{code}: {sku} shows {:?}, expected {want}",
                    shown.get(sku)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} listings wrong:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(50)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------------------------
// 1. Concurrent sales of one SKU from several channels at the same instant

/// Each store sells `per_store` single units of `sku` at once (the three stores on three threads,
/// released together); returns the orders each store accepted.
fn sell_at_once(fleet: &Fleet, sku: &str, per_store: usize) -> Vec<(&'static str, Vec<u64>)> {
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let mut threads = Vec::new();
    for (code, store) in fleet.stores() {
        let (barrier, sku) = (barrier.clone(), sku.to_owned());
        threads.push(std::thread::spawn(move || {
            barrier.wait();
            let mut accepted = Vec::new();
            for _ in 0..per_store {
                let placed = match &store {
                    Store::Shopify(s) => {
                        s.place_order(&NewOrder::lines(vec![OrderLine::sku(&sku, 1)]))
                    }
                    Store::Woo(w) => w.place_order(&WooOrder::lines(vec![WooLine::sku(&sku, 1)])),
                };
                if let Ok(order) = placed {
                    accepted.push(order["id"].as_u64().expect("order id"));
                }
            }
            (code, accepted)
        }));
    }
    threads
        .into_iter()
        .map(|t| t.join().expect("selling thread"))
        .collect()
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_1_concurrent_sales_of_one_sku_from_three_channels_are_counted_exactly() {
    trace();
    let mut spec = FleetSpec::new(catalog("A1", 1, 2), 60);
    // Deliveries as soon as they happen, several at once.
    spec.woo_delivery_delay_ms = 0;
    spec.woo_delivery_concurrency = 8;
    let fleet = fleet(spec).await;
    let app = &fleet.app;
    let hot = fleet.skus[0].clone();

    // Round 1: 3 × 15 units sold at the same instant, within the 60 on hand.
    let round1 = sell_at_once(&fleet, &hot, 15);
    let sold1: usize = round1.iter().map(|(_, o)| o.len()).sum();
    assert_eq!(sold1, 45, "every store had 60 to sell: {round1:?}");
    quiesce(&fleet, Duration::from_secs(30)).await;
    let view = stock(app, &hot).await;
    assert_eq!(level(&view), (60, 45), "{view}");
    assert_every_channel_shows(&fleet, &|s| if s == hot { 15 } else { 60 });

    // Round 2: every store shows 15 and sells 15 at the same instant: 45 units for 15.
    let round2 = sell_at_once(&fleet, &hot, 15);
    let sold2: usize = round2.iter().map(|(_, o)| o.len()).sum();
    assert_eq!(sold2, 45, "{round2:?}");
    quiesce(&fleet, Duration::from_secs(30)).await;
    let view = stock(app, &hot).await;
    assert_eq!(
        level(&view),
        (60, 60),
        "never more committed than on hand: {view}"
    );
    assert_every_channel_shows(&fleet, &|s| if s == hot { 0 } else { 60 });

    // Every order booked once; committed + short per order = its one unit; 30 units short.
    let mut short = 0;
    for (code, orders) in round1.iter().chain(&round2) {
        for id in orders {
            let order = ok(app.get(&format!("/v1/orders/{code}/{id}")).await).await;
            let line = &order["lines"][0];
            assert_eq!(
                line["committed"].as_i64().unwrap_or(0) + line["short"].as_i64().unwrap_or(0),
                1,
                "{code} order {id}: {order}"
            );
            short += line["short"].as_i64().unwrap_or(0);
        }
    }
    assert_eq!(short, 30, "90 sold for 60 on hand");
    let entries = ledger(app, &format!("sku={hot}")).await;
    let committed: i64 = entries
        .iter()
        .filter(|e| e["kind"] == "order_committed")
        .map(|e| e["delta_committed"].as_i64().unwrap_or(0))
        .sum();
    let oversold: i64 = entries
        .iter()
        .filter(|e| e["kind"] == "oversold")
        .map(|e| e["line_delta"]["short"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!((committed, oversold), (60, 30), "{entries:#?}");
    let events = ok(app.get("/v1/events?outcome=applied&limit=1000").await).await;
    let mut booked = BTreeMap::<String, usize>::new();
    for e in events["items"].as_array().expect("events") {
        *booked
            .entry(e["channel"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    eprintln!(
        "audit 1: 90 single-unit sales from 3 channels at once; applied deliveries {booked:?}"
    );
    assert_verified(app).await;
}
}

// ---------------------------------------------------------------------------------------------
// 2. Burst load

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_2_a_burst_of_500_orders_in_seconds_is_applied_exactly() {
    trace();
    let fleet = fleet(FleetSpec::new(catalog("A2", 50, 10), 1_000)).await;
    let app = &fleet.app;
    let stores = fleet.stores();
    let mut expected: HashMap<String, i64> = HashMap::new();
    let mut orders: Vec<(&'static str, u64)> = Vec::new();
    let started = Instant::now();
    for i in 0..500usize {
        let (code, store) = &stores[i % 3];
        let lines: Vec<(String, i64)> = (0..1 + i % 3)
            .map(|k| {
                (
                    fleet.skus[(i * 7 + k * 131) % fleet.skus.len()].clone(),
                    1 + (i % 2) as i64,
                )
            })
            .collect();
        let placed = match store {
            Store::Shopify(s) => s.place_order(&NewOrder::lines(
                lines.iter().map(|(s, q)| OrderLine::sku(s, *q)).collect(),
            )),
            Store::Woo(w) => w.place_order(&WooOrder::lines(
                lines.iter().map(|(s, q)| WooLine::sku(s, *q)).collect(),
            )),
        }
        .expect("order");
        for (sku, q) in lines {
            *expected.entry(sku).or_default() += q;
        }
        orders.push((code, placed["id"].as_u64().expect("id")));
    }
    let placed_in = started.elapsed();
    quiesce(&fleet, Duration::from_secs(40)).await;
    let converged_in = started.elapsed();
    eprintln!(
        "audit 2: 500 orders placed in {placed_in:?} ({:.0}/s), every channel converged {converged_in:?} after the first",
        500.0 / placed_in.as_secs_f64()
    );
    // Every order booked, once, with every unit.
    let entries = ledger(app, "kind=order_committed").await;
    let mut committed: HashMap<String, i64> = HashMap::new();
    let mut booked_orders = std::collections::HashSet::new();
    for e in &entries {
        *committed
            .entry(e["sku"].as_str().expect("sku").to_owned())
            .or_default() += e["delta_committed"].as_i64().unwrap_or(0);
        booked_orders.insert((
            e["order"]["channel"].as_str().unwrap_or("").to_owned(),
            e["order"]["external_id"].as_str().unwrap_or("").to_owned(),
        ));
    }
    assert_eq!(booked_orders.len(), 500, "every order booked");
    for (code, id) in &orders {
        assert!(
            booked_orders.contains(&(code.to_string(), id.to_string())),
            "{code} order {id} was dropped"
        );
    }
    assert_eq!(committed, expected, "committed units per SKU");
    assert_every_channel_shows(&fleet, &|s| 1_000 - expected.get(s).copied().unwrap_or(0));
    let applied = ok(app.get("/v1/events?outcome=applied&limit=1000").await).await;
    let duplicates = ok(app.get("/v1/events?outcome=duplicate&limit=1000").await).await;
    eprintln!(
        "audit 2: {} deliveries applied (the last 1000), {} duplicates",
        applied["items"].as_array().map_or(0, Vec::len),
        duplicates["items"].as_array().map_or(0, Vec::len)
    );
    assert_verified(app).await;
}
}

// ---------------------------------------------------------------------------------------------
// 3. Selling out one variant

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_3_selling_out_one_variant_changes_its_listings_everywhere_and_no_siblings() {
    trace();
    let fleet = fleet(FleetSpec::new(catalog("A3", 2, 10), 3)).await;
    let app = &fleet.app;
    let target = fleet.skus[4].clone();
    let marks: Vec<u64> = fleet
        .stores()
        .iter()
        .map(|(_, s)| s.display_seq())
        .collect();
    fleet
        .shop_a
        .place_order(&NewOrder::lines(vec![OrderLine::sku(&target, 3)]))
        .expect("sell out");
    quiesce(&fleet, Duration::from_secs(20)).await;
    let view = stock(app, &target).await;
    assert_eq!(level(&view), (3, 3));
    for code in ["shop_a", "shop_b", "woo"] {
        assert_eq!(available(&view, code), 0);
    }
    assert_every_channel_shows(&fleet, &|s| if s == target { 0 } else { 3 });
    for ((code, store), mark) in fleet.stores().iter().zip(marks) {
        let changes = store.display_since(mark);
        let siblings: Vec<_> = changes
            .iter()
            .filter(|e| e.sku.as_deref() != Some(target.as_str()))
            .collect();
        assert!(
            siblings.is_empty(),
            "{code}: a sibling's listing changed: {siblings:#?}"
        );
        let own: Vec<(i64, Cause)> = changes.iter().map(|e| (e.after, e.cause)).collect();
        let expected = if *code == "shop_a" {
            vec![(0, Cause::OwnSale)]
        } else {
            vec![(0, Cause::Push)]
        };
        assert_eq!(own, expected, "{code}: the sold-out variant's listing");
    }
    // stockhub did not even mark a sibling for a push.
    let listings = ok(app.get("/v1/channels/woo/listings?limit=1000").await).await;
    for l in listings["items"].as_array().expect("listings") {
        let pushes = l["pushes"].as_i64().unwrap_or(0);
        let expected = if l["sku"] == target.as_str() { 2 } else { 1 };
        assert_eq!(pushes, expected, "pushes to {l}");
    }
    assert_verified(app).await;
}
}

// ---------------------------------------------------------------------------------------------
// 4. Failures are retried; persistent ones reach the operator

stockhub_testkit::on_both_backends! {
/// Webhooks: Shopify retries a delivery stockhub refused (here: a wrong webhook secret on
/// stockhub's side, fixed a moment later) until it lands; WooCommerce never retries, and the
/// order it failed to deliver is found by the order backfill. Every refused attempt is in the
/// event archive for the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_4a_webhook_failures_are_retried_or_backfilled_and_visible() {
    trace();
    let fleet = fleet(FleetSpec::new(catalog("A4W", 1, 4), 10)).await;
    let app = &fleet.app;
    let sku = fleet.skus[0].clone();
    let channel = |code: &str, store: &Store, secret: &str| {
        let body = match store {
            Store::Shopify(s) => json!({ "kind": "shopify", "base_url": s.base_url(),
                    "access_token": s.config().access_token, "location_id": s.locations()[0].gid,
                    "webhook_secret": secret }),
            Store::Woo(w) => json!({ "kind": "woocommerce", "base_url": w.base_url(),
                    "consumer_key": w.config().consumer_key,
                    "consumer_secret": w.config().consumer_secret, "webhook_secret": secret }),
        };
        (format!("/v1/channels/{code}"), body)
    };
    let stores = fleet.stores();
    for (code, store) in [&stores[0], &stores[2]] {
        let (path, body) = channel(code, store, "rotated-by-mistake");
        ok(app.put(&path, &body).await).await;
    }
    let shop_order = fleet
        .shop_a
        .place_order(&NewOrder::lines(vec![OrderLine::sku(&sku, 2)]))
        .expect("order");
    let woo_order = fleet
        .woo
        .place_order(&WooOrder::lines(vec![WooLine::sku(&sku, 1)]))
        .expect("order");
    // Refused while the secret is wrong (by both channels' webhooks)…
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rejected = ok(app.get("/v1/events?outcome=rejected&limit=100").await).await;
        let by = |code: &str| {
            rejected["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|e| e["channel"] == code))
        };
        if by("shop_a") && by("woo") {
            break;
        }
        assert!(Instant::now() < deadline, "not refused: {rejected}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (code, store) in [&stores[0], &stores[2]] {
        let (path, body) = channel(code, store, SECRET);
        ok(app.put(&path, &body).await).await;
    }
    // …Shopify's next retry lands without anyone re-sending it. (The order itself may be found
    // first by the backfill a push starts when the store shows a sale stockhub has not booked;
    // the retry is then answered as a duplicate, still 200.)
    let shop_id = shop_order["id"].as_u64().expect("id");
    let deadline = Instant::now() + Duration::from_secs(15);
    let retry_landed = || {
        fleet
            .shop_a
            .deliveries()
            .iter()
            .any(|d| d.topic == "orders/create" && d.status == Some(200))
    };
    while !retry_landed()
        || app
            .get(&format!("/v1/orders/shop_a/{shop_id}"))
            .await
            .status
            != 200
    {
        assert!(
            Instant::now() < deadline,
            "Shopify's retries did not land: {:#?}",
            fleet.shop_a.deliveries()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let attempts: Vec<(u32, Option<u16>)> = fleet
        .shop_a
        .deliveries()
        .iter()
        .filter(|d| d.topic == "orders/create")
        .map(|d| (d.attempt, d.status))
        .collect();
    assert!(
        attempts.first().is_some_and(|a| a.1 == Some(401))
            && attempts.last().is_some_and(|a| a.1 == Some(200)),
        "refused, retried, accepted: {attempts:?}"
    );
    // WooCommerce did not retry; reading the store's orders back finds the order: the backfill
    // (reconciliation's order pass, run now rather than at its schedule), unless the look at
    // orders made around a push to the store (WooCommerce has no compare-and-set) found it first.
    let woo_id = woo_order["id"].as_u64().expect("id");
    let failed_deliveries = fleet
        .woo
        .deliveries()
        .iter()
        .filter(|d| !d.ping && d.status == Some(401))
        .count();
    assert!(failed_deliveries >= 1, "{:#?}", fleet.woo.deliveries());
    let read = ok(app.post("/v1/channels/woo/backfill", &json!({})).await).await;
    assert!(read["orders_read"].as_u64().unwrap_or(0) >= 1, "{read}");
    ok(app.get(&format!("/v1/orders/woo/{woo_id}")).await).await;
    quiesce(&fleet, Duration::from_secs(20)).await;
    assert_eq!(level(&stock(app, &sku).await), (10, 3));
    assert_every_channel_shows(&fleet, &|s| if s == sku { 7 } else { 10 });
    // The operator sees every refused attempt.
    let rejected = ok(app.get("/v1/events?outcome=rejected&limit=100").await).await;
    let rejected = rejected["items"].as_array().expect("events");
    assert!(
        rejected.iter().any(|e| e["channel"] == "shop_a"),
        "{rejected:#?}"
    );
    assert!(
        rejected.iter().any(|e| e["channel"] == "woo"),
        "{rejected:#?}"
    );
    assert_verified(app).await;
}
}

/// Push settings with quick retries: exponential from 100 ms, at most 800 ms apart, dead after
/// `give_up_after`; a channel failing 3 calls in a row rests 300 ms.
fn fast_retries(give_up_after: Duration) -> PushSettings {
    let mut settings = PushSettings {
        breaker_failures: 3,
        breaker_pause: Duration::from_millis(300),
        ..PushSettings::default()
    };
    settings.retry.base = Duration::from_millis(100);
    settings.retry.max_delay = Duration::from_millis(800);
    settings.retry.give_up_after = give_up_after;
    settings
}

/// Sells `units` of each SKU, one order per SKU, on `store`.
fn sell(store: &Store, skus: &[String], units: i64) {
    for sku in skus {
        match store {
            Store::Shopify(s) => s
                .place_order(&NewOrder::lines(vec![OrderLine::sku(sku, units)]))
                .map(drop),
            Store::Woo(w) => w
                .place_order(&WooOrder::lines(vec![WooLine::sku(sku, units)]))
                .map(drop),
        }
        .expect("sale");
    }
}

/// The latest propagation latency stockhub recorded for each listing of a channel.
async fn latencies(app: &TestApp, channel: &str) -> Vec<i64> {
    let page = ok(app
        .get(&format!("/v1/channels/{channel}/listings?limit=1000"))
        .await)
    .await;
    page["items"]
        .as_array()
        .expect("listings")
        .iter()
        .filter_map(|l| l["last_latency_ms"].as_i64())
        .collect()
}

stockhub_testkit::on_both_backends! {
/// A Shopify store answering 503 to everything for 30 seconds (the field's figure): the pushes to it fail, are
/// retried with backoff, and once it answers again it converges with no operator action; the
/// other channels keep converging meanwhile, with small propagation latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_4b_a_store_answering_503_for_a_while_converges_without_the_operator() {
    trace();
    // stockhub's default retry policy and circuit breaker.
    let fleet = fleet(FleetSpec::new(catalog("A4T", 4, 5), 20)).await;
    let app = &fleet.app;
    let stores = fleet.stores();
    let outage = Duration::from_secs(30);
    stores[1].1.set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Faults::default()
    });
    let started = Instant::now();
    // Sales keep coming on the healthy stores during the outage.
    let mut sold: HashMap<String, i64> = HashMap::new();
    let mut round = 0;
    while started.elapsed() < outage {
        let skus: Vec<String> = fleet
            .skus
            .iter()
            .skip(round % 5)
            .step_by(5)
            .cloned()
            .collect();
        let store = &stores[if round % 2 == 0 { 0 } else { 2 }].1;
        sell(store, &skus, 1);
        for sku in skus {
            *sold.entry(sku).or_default() += 1;
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(700)).await;
        // The healthy channels keep up.
        let pending = ok(app.get("/v1/pushes?state=pending&limit=1000").await).await;
        for p in pending.as_array().expect("pushes") {
            if p["channel"] != "shop_b" {
                continue;
            }
            assert!(
                p["last_error"].is_null()
                    || p["last_error"].as_str().is_some_and(
                        |e| e.contains("503") || e.to_lowercase().contains("unavailable")
                    ),
                "{p}"
            );
        }
    }
    let during = ok(app.get("/v1/pushes?channel=shop_b&limit=1000").await).await;
    let retried = during
        .as_array()
        .expect("pushes")
        .iter()
        .filter(|p| p["attempts"].as_i64().unwrap_or(0) > 0)
        .count();
    assert!(retried > 0, "shop_b's pushes are being retried: {during}");
    let dead = ok(app.get("/v1/pushes?state=dead").await).await;
    assert!(dead.as_array().is_some_and(Vec::is_empty), "{dead}");
    // Healthy channels: converged, quickly.
    for (i, code) in [(0, "shop_a"), (2, "woo")] {
        let shown = stores[i].1.shown();
        for sku in &fleet.skus {
            let want = 20 - sold.get(sku).copied().unwrap_or(0);
            let deadline = Instant::now() + Duration::from_secs(5);
            while stores[i].1.shown().get(sku) != Some(&want) {
                assert!(
                    Instant::now() < deadline,
                    "{code} did not converge during the outage: {sku} shows {:?}, expected {want}",
                    shown.get(sku)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let worst = latencies(app, code).await.into_iter().max().unwrap_or(0);
        assert!(
            worst < 2_000,
            "{code}'s propagation latency stayed small during shop_b's outage: {worst} ms"
        );
    }
    // The store recovers: no operator action, it converges.
    stores[1].1.set_faults(Faults::default());
    let recovered = Instant::now();
    quiesce(&fleet, Duration::from_secs(20)).await;
    eprintln!(
        "audit 4b: shop_b answered 503 for {outage:?} ({retried} pushes retried); converged {:?} after it recovered",
        recovered.elapsed()
    );
    assert_every_channel_shows(&fleet, &|s| 20 - sold.get(s).copied().unwrap_or(0));
    assert_verified(app).await;
}
}

stockhub_testkit::on_both_backends! {
/// A store down for good: its pushes become dead after the give-up time and are listed for the
/// operator (and counted in the metrics); the other channels keep pushing with small latency;
/// once the store is back, the operator's bulk retry brings it up to date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_4c_a_store_down_for_good_ends_with_dead_pushes_the_operator_can_retry() {
    trace();
    let mut spec = FleetSpec::new(catalog("A4D", 3, 4), 9);
    spec.push = Some(fast_retries(Duration::from_secs(3)));
    let fleet = fleet(spec).await;
    let app = &fleet.app;
    let stores = fleet.stores();
    stores[1].1.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let sold_on_a: Vec<String> = fleet.skus.iter().step_by(2).cloned().collect();
    let sold_on_woo: Vec<String> = fleet.skus.iter().skip(1).step_by(3).cloned().collect();
    sell(&stores[0].1, &sold_on_a, 2);
    sell(&stores[2].1, &sold_on_woo, 1);
    let mut sold: HashMap<String, i64> = HashMap::new();
    for s in &sold_on_a {
        *sold.entry(s.clone()).or_default() += 2;
    }
    for s in &sold_on_woo {
        *sold.entry(s.clone()).or_default() += 1;
    }
    let expected = |s: &str| 9 - sold.get(s).copied().unwrap_or(0);
    let changed: Vec<String> = fleet
        .skus
        .iter()
        .filter(|s| sold.contains_key(*s))
        .cloned()
        .collect();
    // Every changed SKU's push to shop_b ends dead, listed with its error.
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let dead = ok(app.get("/v1/pushes?state=dead&limit=1000").await).await;
        let dead = dead.as_array().cloned().unwrap_or_default();
        if dead.len() >= changed.len() {
            break dead;
        }
        assert!(
            Instant::now() < deadline,
            "the pushes to the dead store did not become dead: {:?}",
            ok(app.get("/v1/pushes?limit=1000").await).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(dead.iter().all(|p| p["channel"] == "shop_b"), "{dead:#?}");
    let mut dead_skus: Vec<String> = dead
        .iter()
        .map(|p| p["sku"].as_str().unwrap_or("").to_owned())
        .collect();
    dead_skus.sort();
    let mut want = changed.clone();
    want.sort();
    assert_eq!(dead_skus, want);
    assert!(
        dead.iter()
            .all(|p| p["last_error"].as_str().is_some_and(|e| !e.is_empty())
                && p["attempts"].as_i64().unwrap_or(0) >= 1),
        "{dead:#?}"
    );
    let metrics = app.get("/metrics").await;
    let text = String::from_utf8_lossy(
        &app.client
            .get(format!("{}/metrics", app.base_url))
            .send()
            .await
            .expect("metrics")
            .bytes()
            .await
            .expect("metrics body"),
    )
    .into_owned();
    assert_eq!(metrics.status, 200);
    let dead_metric = format!(
        "stockhub_push_queue{{channel=\"shop_b\",state=\"dead\"}} {}",
        changed.len()
    );
    assert!(text.contains(&dead_metric), "{dead_metric} in:\n{text}");
    // The other channels kept pushing, with small latency.
    for (i, code) in [(0, "shop_a"), (2, "woo")] {
        let shown = stores[i].1.shown();
        for sku in &fleet.skus {
            assert_eq!(shown.get(sku), Some(&expected(sku)), "{code}: {sku}");
        }
        let worst = latencies(app, code).await.into_iter().max().unwrap_or(0);
        assert!(worst < 2_000, "{code}: propagation latency {worst} ms");
    }
    // Back up; the operator retries the dead pushes in bulk and the store converges.
    stores[1].1.set_faults(Faults::default());
    let retried = ok(app
        .post("/v1/pushes/retry", &json!({ "channel": "shop_b" }))
        .await)
    .await;
    assert_eq!(retried["retried"], changed.len(), "{retried}");
    quiesce(&fleet, Duration::from_secs(20)).await;
    assert_every_channel_shows(&fleet, &expected);
    let dead = ok(app.get("/v1/pushes?state=dead").await).await;
    assert!(dead.as_array().is_some_and(Vec::is_empty), "{dead}");
    assert_verified(app).await;
}
}

// ---------------------------------------------------------------------------------------------
// 5. Bulk update

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_5_a_bulk_update_of_10000_skus_over_500_products_drops_nothing() {
    trace();
    let products = catalog("A5", 500, 20);
    let mut spec = FleetSpec::new(products, 0);
    // A catalog this size is read and written on Shopify's largest plans; the bucket here is
    // generous so that the test measures stockhub, not a throttle.
    spec.shopify_bucket = (1_000_000.0, 100_000.0);
    let started = Instant::now();
    let fleet = fleet(spec).await;
    let app = &fleet.app;
    assert_eq!(fleet.skus.len(), 10_000);
    eprintln!(
        "audit 5: 3 channels × 10,000 listings discovered in {:?}",
        started.elapsed()
    );

    // One batch of 10,000 variant upserts (a barcode and a title each) …
    let variants: Vec<Value> = fleet
        .skus
        .iter()
        .enumerate()
        .map(|(i, s)| json!({ "sku": s, "title": format!("Variant {i}"), "barcode": format!("{:013}", i) }))
        .collect();
    let upserted = ok(app
        .post("/v1/variants/batch", &json!({ "variants": variants }))
        .await)
    .await;
    assert_eq!(upserted["upserted"], 10_000);
    // … and one batch of 10,000 receipts.
    let quantity = |i: usize| (i % 17) as i64 + 1;
    let movements: Vec<Value> = fleet
        .skus
        .iter()
        .enumerate()
        .map(|(i, s)| json!({ "kind": "receive", "sku": s, "location": "wh1", "quantity": quantity(i) }))
        .collect();
    let batch_started = Instant::now();
    let applied = ok(app
        .post("/v1/stock/movements", &json!({ "movements": movements }))
        .await)
    .await;
    let results = applied["results"].as_array().expect("results");
    assert_eq!(results.len(), 10_000);
    assert!(results.iter().all(|r| r["status"] == "applied"));
    let want: HashMap<String, i64> = fleet
        .skus
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), quantity(i)))
        .collect();
    // A bound on the wait, not a speed claim (the time is printed): 10,000 WooCommerce
    // variations take 500 batch calls, which on a loaded 2-core machine can take minutes.
    quiesce(&fleet, Duration::from_secs(120)).await;
    eprintln!(
        "audit 5: 10,000 receipts in one request, on 3 channels × 10,000 listings in {:?}",
        batch_started.elapsed()
    );
    // Nothing dropped: one receipt per SKU in the ledger, every level right, every listing right.
    let received = ledger(app, "kind=received").await;
    assert_eq!(received.len(), 10_000);
    for e in &received {
        let sku = e["sku"].as_str().expect("sku");
        assert_eq!(e["on_hand_after"].as_i64(), Some(want[sku]), "{e}");
    }
    assert_every_channel_shows(&fleet, &|s| want[s]);
    for code in ["shop_a", "shop_b", "woo"] {
        let mut count = 0;
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let page = ok(app
                .get(&match &cursor {
                    Some(c) => format!(
                        "/v1/channels/{code}/listings?limit=1000&cursor={}",
                        c.replace('/', "%2F")
                            .replace(':', "%3A")
                            .replace('@', "%40")
                    ),
                    None => format!("/v1/channels/{code}/listings?limit=1000"),
                })
                .await)
            .await;
            let items = page["items"].as_array().expect("listings");
            count += items.len();
            for l in items {
                assert_eq!(
                    l["last_pushed"].as_i64(),
                    Some(want[l["sku"].as_str().expect("sku")]),
                    "{l}"
                );
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(count, 10_000, "{code} listings");
    }
    let variant = ok(app
        .get(&format!("/v1/variants/{}", fleet.skus[9_999]))
        .await)
    .await;
    assert_eq!(variant["barcode"], "0000000009999", "{variant}");
    assert_verified(app).await;
    eprintln!("audit 5: total {:?}", started.elapsed());
}
}

// ---------------------------------------------------------------------------------------------
// 6. The audit trail

/// Sums the `line_delta` of a line's entries: what the ledger says happened to it.
fn line_sums(entries: &[Value], line_id: &str) -> BTreeMap<&'static str, i64> {
    let mut sums = BTreeMap::new();
    for e in entries.iter().filter(|e| e["line_id"] == line_id) {
        for k in [
            "committed",
            "short",
            "shipped",
            "cancelled",
            "returned",
            "restocked",
        ] {
            *sums.entry(k).or_default() += e["line_delta"][k].as_i64().unwrap_or(0);
        }
    }
    sums
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_6_one_query_answers_what_happened_to_an_order_and_to_a_sku() {
    trace();
    let fleet = fleet(FleetSpec::new(catalog("A6", 1, 3), 8)).await;
    let app = &fleet.app;
    let (x, y) = (fleet.skus[0].clone(), fleet.skus[1].clone());
    // Order X on shop_a: X × 3 and Y × 2; one X refunded before shipping (no restock); shipped;
    // a unit of Y returned and restocked.
    let order = fleet
        .shop_a
        .place_order(&NewOrder::lines(vec![
            OrderLine::sku(&x, 3),
            OrderLine::sku(&y, 2),
        ]))
        .expect("order");
    let id = order["id"].as_u64().expect("id");
    let line_of = |sku: &str| {
        order["line_items"]
            .as_array()
            .expect("lines")
            .iter()
            .find(|l| l["sku"] == sku)
            .and_then(|l| l["id"].as_u64())
            .expect("line")
    };
    let (lx, ly) = (line_of(&x), line_of(&y));
    let settle = Duration::from_millis(1_100);
    tokio::time::sleep(settle).await;
    fleet
        .shop_a
        .refund(
            id,
            &NewRefund {
                refund_line_items: vec![RefundLineRequest {
                    line_item_id: lx,
                    quantity: 1,
                    restock_type: RestockType::NoRestock,
                    location_id: None,
                }],
                note: None,
            },
        )
        .expect("refund");
    tokio::time::sleep(settle).await;
    fleet.shop_a.fulfill(id).expect("fulfil");
    tokio::time::sleep(settle).await;
    fleet
        .shop_a
        .refund(
            id,
            &NewRefund {
                refund_line_items: vec![RefundLineRequest {
                    line_item_id: ly,
                    quantity: 1,
                    restock_type: RestockType::Return,
                    location_id: None,
                }],
                note: None,
            },
        )
        .expect("return");
    // Other things happen to X meanwhile: a sale on WooCommerce and a receipt.
    fleet
        .woo
        .place_order(&WooOrder::lines(vec![WooLine::sku(&x, 1)]))
        .expect("sale");
    ok(app
        .post(
            "/v1/stock/movements",
            &json!({ "movements": [{ "kind": "receive", "sku": x, "location": "wh1", "quantity": 4 }] }),
        )
        .await)
    .await;
    quiesce(&fleet, Duration::from_secs(20)).await;

    // "What exactly happened to order X?" — one request.
    let story = ok(app.get(&format!("/v1/audit/orders/shop_a/{id}")).await).await;
    let entries = story["ledger"].as_array().expect("ledger").clone();
    assert!(!entries.is_empty(), "{story}");
    for line in story["order"]["lines"].as_array().expect("lines") {
        let line_id = line["line_id"].as_str().expect("line id");
        let sums = line_sums(&entries, line_id);
        for k in [
            "committed",
            "short",
            "shipped",
            "cancelled",
            "returned",
            "restocked",
        ] {
            assert_eq!(
                sums.get(k).copied().unwrap_or(0),
                line[k].as_i64().unwrap_or(0),
                "line {line_id}: the ledger's {k} does not add up to the line's: {story:#}"
            );
        }
        assert_eq!(
            line["ordered"].as_i64().unwrap_or(0),
            ["committed", "short", "shipped", "cancelled"]
                .iter()
                .map(|k| line[*k].as_i64().unwrap_or(0))
                .sum::<i64>(),
            "{line}"
        );
    }
    let lx_state = story["order"]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line_id"].as_str() == Some(lx.to_string().as_str()))
        .cloned()
        .expect("line X");
    assert_eq!(
        (lx_state["shipped"].as_i64(), lx_state["cancelled"].as_i64()),
        (Some(2), Some(1)),
        "{lx_state}"
    );
    let ly_state = story["order"]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line_id"].as_str() == Some(ly.to_string().as_str()))
        .cloned()
        .expect("line Y");
    assert_eq!(
        (
            ly_state["shipped"].as_i64(),
            ly_state["returned"].as_i64(),
            ly_state["restocked"].as_i64()
        ),
        (Some(2), Some(1), Some(1)),
        "{ly_state}"
    );
    for e in &entries {
        assert_eq!(e["order"]["external_id"], id.to_string(), "{e}");
        assert!(
            e["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("channel:shop_a") || s.starts_with("system:")),
            "{e}"
        );
        assert!(
            e["correlation_id"].as_str().is_some_and(|c| !c.is_empty()),
            "{e}"
        );
    }
    assert!(
        story["snapshot"].is_object(),
        "the channel's last snapshot is kept: {story}"
    );

    // "What exactly happened to SKU X?" — one request; every unit explained, entry by entry.
    let page = ok(app.get(&format!("/v1/ledger?sku={x}&limit=1000")).await).await;
    assert!(page["next_cursor"].is_null(), "one page holds it all");
    let entries = page["entries"].as_array().expect("entries");
    let (mut on_hand, mut committed) = (0, 0);
    for e in entries.iter().filter(|e| !e["location"].is_null()) {
        on_hand += e["delta_on_hand"].as_i64().unwrap_or(0);
        committed += e["delta_committed"].as_i64().unwrap_or(0);
        assert_eq!(
            e["on_hand_after"].as_i64(),
            Some(on_hand),
            "running on_hand: {e}"
        );
        assert_eq!(
            e["committed_after"].as_i64(),
            Some(committed),
            "running committed: {e}"
        );
        assert!(e["source"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
    }
    assert_eq!(level(&stock(app, &x).await), (on_hand, committed));
    // 8 received + 4 received − 2 shipped (X: 3 ordered, 1 refunded) = 10 on hand; the
    // WooCommerce order's unit committed.
    assert_eq!((on_hand, committed), (10, 1));
    let kinds: Vec<&str> = entries.iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in [
        "received",
        "order_committed",
        "order_line_changed",
        "shipped",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let channels: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e["order"]["channel"].as_str())
        .collect();
    assert_eq!(channels, ["shop_a", "woo"].into_iter().collect());
    assert_verified(app).await;
}
}
