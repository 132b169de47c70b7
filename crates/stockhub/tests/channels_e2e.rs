//! stockhub with simulated channels end to end: a Shopify store and a WooCommerce store are
//! discovered, brought to stockhub's quantities, and an order on one changes what the other shows.

use std::time::Duration;

use serde_json::{json, Value};
use stockhub_sim::seed::{CatalogSpec, ProductSeed};
use stockhub_sim::shopify::{NewOrder, OrderLine, ShopifyConfig, ShopifySim};
use stockhub_sim::woocommerce::{WooConfig, WooSim};
use stockhub_sim::{Faults, Hold};
use stockhub_testkit::{spawn_app, TestApp};

const SECRET: &str = "whsec-test";

fn catalog(products: usize) -> Vec<ProductSeed> {
    CatalogSpec {
        products,
        variants_per_product: 3,
        locations: 1,
        quantity: 0,
        sku_prefix: "E2E".into(),
    }
    .build()
}

async fn ok(reply: stockhub_testkit::Reply) -> Value {
    assert!((200..300).contains(&reply.status), "{reply:#?}");
    reply.body
}

/// Waits until the push queue is empty (bounded), returning what it last saw.
async fn quiesce(app: &TestApp) {
    for _ in 0..400 {
        let pushes = app.get("/v1/pushes").await.body;
        if pushes.as_array().is_some_and(Vec::is_empty) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the push queue did not drain: {}",
        app.get("/v1/pushes").await.body
    );
}

async fn available(app: &TestApp, sku: &str, channel: &str) -> i64 {
    let view = app.get(&format!("/v1/stock/{sku}")).await.body;
    view["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == channel)
        .unwrap()["available"]
        .as_i64()
        .unwrap()
}

/// The requests stockhub sent to one channel's API (`/metrics`).
async fn api_calls(app: &TestApp, channel: &str) -> u64 {
    app.services.metrics.api_calls(channel)
}

/// A simulated WooCommerce store selling `products`; it sends no webhooks.
async fn start_woo(products: &[ProductSeed]) -> WooSim {
    WooSim::start(WooConfig {
        products: products.to_vec(),
        ..WooConfig::default()
    })
    .await
    .unwrap()
}

/// Location `wh` and a variant for every SKU of `products`; returns the SKUs.
async fn add_catalog(app: &TestApp, products: &[ProductSeed]) -> Vec<String> {
    ok(app.put("/v1/locations/wh", &json!({})).await).await;
    let skus: Vec<String> = products
        .iter()
        .flat_map(|p| p.variants.iter().filter_map(|v| v.sku.clone()))
        .collect();
    for sku in &skus {
        ok(app.put(&format!("/v1/variants/{sku}"), &json!({})).await).await;
    }
    skus
}

/// Connects channel `woo` to the simulated store.
async fn connect_woo(app: &TestApp, woo: &WooSim) {
    ok(app
        .put(
            "/v1/channels/woo",
            &json!({ "kind": "woocommerce", "base_url": woo.base_url(), "consumer_key": "ck_simulated",
                     "consumer_secret": "cs_simulated", "webhook_secret": SECRET }),
        )
        .await)
    .await;
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_on_shopify_changes_what_woocommerce_shows() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
    let app = spawn_app().await;
    let products = catalog(4);
    let shopify = ShopifySim::start(ShopifyConfig {
        products: products.clone(),
        api_secret: SECRET.into(),
        ..ShopifyConfig::default()
    })
    .await
    .unwrap();
    let woo = start_woo(&products).await;
    let skus = add_catalog(&app, &products).await;
    let location = shopify.locations()[0].gid.clone();
    ok(app
        .put(
            "/v1/channels/shop",
            &json!({ "kind": "shopify", "base_url": shopify.base_url(), "access_token": ShopifyConfig::default().access_token,
                     "location_id": location, "webhook_secret": SECRET }),
        )
        .await)
    .await;
    connect_woo(&app, &woo).await;
    let movements: Vec<Value> = skus
        .iter()
        .map(|s| json!({ "kind": "receive", "sku": s, "location": "wh", "quantity": 5 }))
        .collect();
    ok(app
        .post("/v1/stock/movements", &json!({ "movements": movements }))
        .await)
    .await;
    for channel in ["shop", "woo"] {
        let report = ok(app
            .post(&format!("/v1/channels/{channel}/discover"), &json!({}))
            .await)
        .await;
        assert_eq!(report["matched"], skus.len(), "{report}");
    }
    quiesce(&app).await;
    let sku = &skus[0];
    let variant = shopify
        .variants()
        .into_iter()
        .find(|v| v.sku.as_deref() == Some(sku))
        .unwrap();
    let location_id = shopify.locations()[0].id;
    assert_eq!(variant.available_at(location_id), Some(5));
    let item = woo.item_by_sku(sku).unwrap();
    assert_eq!(woo.stock(item.id), Some(5));

    // A sale on Shopify reaches stockhub by webhook, and WooCommerce is brought down.
    let calls_before = api_calls(&app, "shop").await;
    shopify.set_webhook_address(Some(format!("{}/webhooks/shop", app.base_url)));
    shopify
        .place_order(&NewOrder::lines(vec![OrderLine::variant(
            variant.variant_id,
            2,
        )]))
        .unwrap();
    for _ in 0..400 {
        if woo.stock(item.id) == Some(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(woo.stock(item.id), Some(3));
    quiesce(&app).await;
    assert_eq!(available(&app, sku, "woo").await, 3);
    assert_eq!(available(&app, sku, "shop").await, 3);
    let v = shopify
        .variants()
        .into_iter()
        .find(|v| v.variant_id == variant.variant_id)
        .unwrap();
    assert_eq!(v.available_at(location_id), Some(3));
    // The store the order was placed on took the units off itself and shows what stockhub
    // expects it to: nothing is pushed back to it — least of all a stale compare-and-set
    // followed by a read and a second push.
    assert_eq!(api_calls(&app, "shop").await - calls_before, 0);
    let events = app.get("/v1/events?channel=shop").await.body;
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "applied"),
        "{events}"
    );
}
}

/// Places an order on the WooCommerce store (which sends no webhooks here) for 2 units of `sku`;
/// returns the order's id.
fn sell_on_woo(woo: &WooSim, sku: &str) -> u64 {
    let item = woo.item_by_sku(sku).unwrap();
    let order = woo
        .place_order(&stockhub_sim::woocommerce::NewOrder::lines(vec![
            stockhub_sim::woocommerce::OrderLine::variation(item.parent_id.unwrap(), item.id, 2),
        ]))
        .unwrap();
    order["id"].as_u64().unwrap()
}

/// Sells 2 units of `sku` on the WooCommerce store while the push caused by `movements` is
/// held at the store (its first call has left stockhub, the sale lands before the store answers
/// it); returns the order's id.
async fn sell_on_woo_during_push(app: &TestApp, woo: &WooSim, sku: &str, movements: Value) -> u64 {
    woo.set_faults(Faults {
        hold: Some(Hold::Before),
        ..Faults::default()
    });
    ok(app.post("/v1/stock/movements", &movements).await).await;
    for _ in 0..400 {
        if woo.held_requests() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(woo.held_requests() > 0, "no push reached the store");
    let order = sell_on_woo(woo, sku);
    woo.set_faults(Faults::default());
    order
}

/// Waits (bounded) until stockhub has booked the WooCommerce order `id`.
async fn booked(app: &TestApp, id: u64) -> bool {
    for _ in 0..200 {
        if app.get(&format!("/v1/orders/woo/{id}")).await.status == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woocommerce_sales_made_while_stockhub_pushes_are_booked_without_their_webhooks() {
    let app = spawn_app().await;
    let products = catalog(4);
    // No webhooks: the store's sales reach stockhub only by reading its orders.
    let woo = start_woo(&products).await;
    let skus = add_catalog(&app, &products).await;
    connect_woo(&app, &woo).await;
    let receive = |sku: &str, quantity: i64| {
        json!({ "movements": [{ "kind": "receive", "sku": sku, "location": "wh", "quantity": quantity }] })
    };
    for sku in &skus {
        ok(app.post("/v1/stock/movements", &receive(sku, 5)).await).await;
    }
    ok(app.post("/v1/channels/woo/discover", &json!({})).await).await;
    quiesce(&app).await;

    // A sale lands on the store while stockhub's push of another product there is on its way:
    // the orders read after that push book it.
    let first = sell_on_woo_during_push(&app, &woo, &skus[0], receive(&skus[3], 1)).await;
    assert!(booked(&app, first).await, "the first sale was not booked");
    // Another one right after, during a push again: that read is less than 500 ms after the
    // last, so its window waits for the next read, which the idle channel makes when it is due.
    let second = sell_on_woo_during_push(&app, &woo, &skus[6], receive(&skus[9], 1)).await;
    assert!(booked(&app, second).await, "the second sale was not booked");

    quiesce(&app).await;
    for (sku, shown) in [(&skus[0], 3), (&skus[3], 6), (&skus[6], 3), (&skus[9], 6)] {
        assert_eq!(available(&app, sku, "woo").await, shown, "{sku}");
        let item = woo.item_by_sku(sku).unwrap();
        assert_eq!(woo.stock(item.id), Some(shown), "{sku} on the store");
    }
}
}
