//! The fake WooCommerce store over HTTP, as a connector sees it.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use stockhub_sim::woocommerce::{
    NewOrder, NewRefund, OrderLine, RefundLineRequest, WebhookSpec, WebhookStatus, WooConfig,
    WooSim,
};
use stockhub_sim::{BucketConfig, Cause, ProductSeed, VariantSeed};

use common::{expected_signature, Receiver};

fn catalog() -> Vec<ProductSeed> {
    let mut products = vec![
        ProductSeed::new(
            "Hoodie",
            vec![
                VariantSeed::new("HOOD-S").titled("S").stock(&[5]),
                VariantSeed::new("HOOD-M").titled("M").stock(&[2]),
            ],
        ),
        ProductSeed::new("Poster", vec![VariantSeed::new("POSTER/A2").stock(&[10])]),
        ProductSeed::new("Sticker", vec![VariantSeed::new("STICKER").untracked()]),
        ProductSeed::new(
            "Preorder",
            vec![VariantSeed::new("PRE").stock(&[0]).oversell()],
        ),
    ];
    for n in 0..8 {
        products.push(ProductSeed::new(
            &format!("Filler {n}"),
            vec![VariantSeed::new(&format!("FILL-{n}")).stock(&[1])],
        ));
    }
    products
}

async fn store(configure: impl FnOnce(&mut WooConfig)) -> WooSim {
    let mut config = WooConfig {
        products: catalog(),
        webhook_delivery_delay_ms: 100,
        ..WooConfig::default()
    };
    configure(&mut config);
    WooSim::start(config).await.expect("store starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(sim: &WooSim, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}/{path}", sim.rest_url()))
        .basic_auth("ck_simulated", Some("cs_simulated"))
        .send()
        .await
        .unwrap()
}

async fn send(sim: &WooSim, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let response = client()
        .request(method, format!("{}/{path}", sim.rest_url()))
        .basic_auth("ck_simulated", Some("cs_simulated"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Lets `parent` manage `stock` units and `variation` sell from them (`manage_stock: false` on
/// the variation); returns the variation as saved.
async fn stock_by_parent(sim: &WooSim, parent: u64, variation: u64, stock: i64) -> Value {
    send(
        sim,
        reqwest::Method::PUT,
        &format!("products/{parent}"),
        json!({"manage_stock": true, "stock_quantity": stock}),
    )
    .await;
    send(
        sim,
        reqwest::Method::PUT,
        &format!("products/{parent}/variations/{variation}"),
        json!({"manage_stock": false}),
    )
    .await
    .1
}

#[tokio::test]
async fn basic_auth_is_required_and_errors_have_wordpress_shapes() {
    let sim = store(|_| {}).await;
    let anonymous = client()
        .get(format!("{}/products", sim.rest_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.", "data": {"status": 401}})
    );
    let wrong = client()
        .get(format!("{}/products", sim.rest_url()))
        .basic_auth("ck_other", Some("cs_simulated"))
        .send()
        .await
        .unwrap();
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["code"], "woocommerce_rest_authentication_error");
    let by_query = client()
        .get(format!(
            "{}/products?consumer_key=ck_simulated&consumer_secret=cs_simulated",
            sim.rest_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);
    let put = client()
        .put(format!("{}/products/10", sim.rest_url()))
        .json(&json!({"stock_quantity": 1}))
        .send()
        .await
        .unwrap();
    let body: Value = put.json().await.unwrap();
    assert_eq!(body["code"], "woocommerce_rest_cannot_edit");
    let no_route = get(&sim, "nope").await;
    assert_eq!(no_route.status(), 404);
    assert_eq!(
        no_route.json::<Value>().await.unwrap()["code"],
        "rest_no_route"
    );

    let read_only = store(|c| c.key_permissions = "read".into()).await;
    let (status, body) = send(
        &read_only,
        reqwest::Method::PUT,
        "products/10",
        json!({"stock_quantity": 1}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("woocommerce_rest_authentication_error"))
    );
}

#[tokio::test]
async fn products_page_with_wordpress_headers_and_php_json() {
    let sim = store(|_| {}).await;
    let first = get(&sim, "products?per_page=5").await;
    assert_eq!(first.headers()["x-wp-total"], "12");
    assert_eq!(first.headers()["x-wp-totalpages"], "3");
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("page=2>; rel=\"next\""), "{link}");
    assert!(link.contains("rel=\"last\""));
    assert!(first.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let text = first.text().await.unwrap();
    assert!(
        text.contains("http:\\/\\/127.0.0.1"),
        "slashes escaped as PHP does"
    );
    let mut ids = Vec::new();
    for page in 1..=3 {
        let body: Value = get(&sim, &format!("products?per_page=5&page={page}"))
            .await
            .json()
            .await
            .unwrap();
        ids.extend(
            body.as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_u64().unwrap()),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12);
    let past: Value = get(&sim, "products?per_page=5&page=4")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(past, json!([]));
    let too_big = get(&sim, "products?per_page=101").await;
    assert_eq!(too_big.status(), 400);
    let body: Value = too_big.json().await.unwrap();
    assert_eq!(body["code"], "rest_invalid_param");
    assert_eq!(
        body["data"]["params"]["per_page"],
        "per_page must be between 1 (inclusive) and 100 (inclusive)"
    );

    let hoodie = sim
        .items()
        .into_iter()
        .find(|i| i.kind == "variable")
        .unwrap();
    let variations: Value = get(
        &sim,
        &format!("products/{}/variations?per_page=100", hoodie.id),
    )
    .await
    .json()
    .await
    .unwrap();
    let skus: Vec<&str> = variations
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus.len(), 2);
    assert!(skus.contains(&"HOOD-S"));
    let by_sku: Value = get(&sim, "products?sku=POSTER/A2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_sku[0]["stock_quantity"], 10);
    assert_eq!(by_sku[0]["manage_stock"], true);
    assert_eq!(by_sku[0]["stock_status"], "instock");
}

/// WordPress's `_fields` global parameter: each item of a collection carries only the fields
/// named (comma-separated or `_fields[]`, dotted names for nested ones); the headers stay.
#[tokio::test]
async fn fields_trims_the_items_of_a_collection() {
    let sim = store(|_| {}).await;
    let hoodie = sim
        .items()
        .into_iter()
        .find(|i| i.kind == "variable")
        .unwrap();
    let trimmed = get(
        &sim,
        &format!(
            "products/{}/variations?_fields=id,manage_stock,stock_quantity,no_such_field",
            hoodie.id
        ),
    )
    .await;
    assert_eq!(trimmed.headers()["x-wp-total"], "2");
    let trimmed: Value = trimmed.json().await.unwrap();
    for variation in trimmed.as_array().unwrap() {
        let mut keys: Vec<&str> = variation
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["id", "manage_stock", "stock_quantity"],
            "{variation}"
        );
    }
    let nested: Value = get(
        &sim,
        "products?sku=POSTER/A2&_fields[]=id&_fields[]=_links.self",
    )
    .await
    .json()
    .await
    .unwrap();
    let full: Value = get(&sim, "products?sku=POSTER/A2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        nested,
        json!([{ "id": full[0]["id"], "_links": { "self": full[0]["_links"]["self"] } }])
    );
}

/// WooCommerce's products controller queries variations too when `sku` is given (post types
/// `product` and `product_variation`), and renders them itself: `manage_stock` is
/// `managing_stock()`, so a variation selling its parent's stock shows `true` and that stock.
#[tokio::test]
async fn products_by_sku_list_variations_too() {
    let sim = store(|_| {}).await;
    let small = sim.item_by_sku("HOOD-S").unwrap();
    let medium = sim.item_by_sku("HOOD-M").unwrap();
    let parent = medium.parent_id.unwrap();
    stock_by_parent(&sim, parent, medium.id, 20).await;
    let listed = get(
        &sim,
        "products?sku=HOOD-S,HOOD-M,POSTER/A2,NO-SUCH-SKU&per_page=100",
    )
    .await;
    assert_eq!(listed.headers()["x-wp-total"], "3");
    let listed: Value = listed.json().await.unwrap();
    let mut seen: Vec<(String, Value, Value, Value, Value)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["sku"].as_str().unwrap().to_owned(),
                p["type"].clone(),
                p["parent_id"].clone(),
                p["manage_stock"].clone(),
                p["stock_quantity"].clone(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            (
                "HOOD-M".into(),
                json!("variation"),
                json!(parent),
                json!(true),
                json!(20)
            ),
            (
                "HOOD-S".into(),
                json!("variation"),
                json!(parent),
                json!(true),
                json!(small.stock_quantity.unwrap())
            ),
            (
                "POSTER/A2".into(),
                json!("simple"),
                json!(0),
                json!(true),
                json!(10)
            ),
        ]
    );
    // Without `sku` the collection holds products only.
    let all: Value = get(&sim, "products?per_page=100")
        .await
        .json()
        .await
        .unwrap();
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["type"] != "variation"));
    assert_eq!(
        all.as_array().unwrap().len(),
        sim.items().iter().filter(|i| i.kind != "variation").count()
    );
}

#[tokio::test]
async fn puts_set_stock_only_where_it_is_managed() {
    let sim = store(|_| {}).await;
    let poster = sim.item_by_sku("POSTER/A2").unwrap();
    let (status, body) = send(
        &sim,
        reqwest::Method::PUT,
        &format!("products/{}", poster.id),
        json!({"stock_quantity": 0}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["stock_quantity"].as_i64(),
            body["stock_status"].as_str()
        ),
        (Some(0), Some("outofstock"))
    );
    let medium = sim.item_by_sku("HOOD-M").unwrap();
    let parent = medium.parent_id.unwrap();
    let (_, body) = send(
        &sim,
        reqwest::Method::PUT,
        &format!("products/{parent}/variations/{}", medium.id),
        json!({"stock_quantity": "7"}),
    )
    .await;
    assert_eq!(body["stock_quantity"], 7);
    assert_eq!(sim.stock(medium.id), Some(7));
    let sticker = sim.item_by_sku("STICKER").unwrap();
    let (_, body) = send(
        &sim,
        reqwest::Method::PUT,
        &format!("products/{}", sticker.id),
        json!({"stock_quantity": 4}),
    )
    .await;
    assert_eq!(
        body["stock_quantity"],
        Value::Null,
        "ignored while stock is not managed"
    );
    let (_, body) = send(
        &sim,
        reqwest::Method::PUT,
        &format!("products/{}", sticker.id),
        json!({"manage_stock": true, "stock_quantity": 4}),
    )
    .await;
    assert_eq!(body["stock_quantity"], 4);
    let (status, body) = send(
        &sim,
        reqwest::Method::PUT,
        &format!("products/{}", medium.id),
        json!({"stock_quantity": 1}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("woocommerce_rest_product_invalid_id")),
        "variations are not products"
    );
    let (status, body) = send(
        &sim,
        reqwest::Method::PUT,
        &format!("products/{}", poster.id),
        json!({"stock_quantity": 1.5}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("rest_invalid_param"))
    );
    assert_eq!(get(&sim, "products/99999").await.status(), 404);
    let (status, body) = send(
        &sim,
        reqwest::Method::PUT,
        &format!("products/{}", poster.id),
        json!({"sku": "STICKER"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("product_invalid_sku"))
    );

    // Stock managed by the parent: the variation shows and sells the parent's stock.
    let body = stock_by_parent(&sim, parent, medium.id, 20).await;
    assert_eq!(
        (body["manage_stock"].clone(), body["stock_quantity"].clone()),
        (json!("parent"), json!(20))
    );
    sim.place_order(&NewOrder::lines(vec![OrderLine::variation(
        parent, medium.id, 3,
    )]))
    .unwrap();
    assert_eq!(sim.stock(parent), Some(17));
    let log = sim.display_log();
    assert_eq!(
        (log.last().unwrap().item_id, log.last().unwrap().after),
        (parent, 17)
    );
}

#[tokio::test]
async fn batches_cap_at_100_and_report_errors_per_item() {
    let sim = store(|_| {}).await;
    let updates: Vec<Value> = (0..101)
        .map(|_| json!({"id": 10, "stock_quantity": 1}))
        .collect();
    let (status, body) = send(
        &sim,
        reqwest::Method::POST,
        "products/batch",
        json!({"update": updates}),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(
        body,
        json!({"code": "woocommerce_rest_request_entity_too_large", "message": "Unable to accept more than 100 items for this request.", "data": {"status": 413}})
    );
    let split: Vec<Value> = (0..60)
        .map(|_| json!({"id": 10, "stock_quantity": 1}))
        .collect();
    let deletes: Vec<Value> = (0..41).map(|_| json!(99999)).collect();
    let (status, _) = send(
        &sim,
        reqwest::Method::POST,
        "products/batch",
        json!({"update": split, "delete": deletes}),
    )
    .await;
    assert_eq!(
        status, 413,
        "the cap counts create, update and delete together"
    );

    let poster = sim.item_by_sku("POSTER/A2").unwrap();
    let variation = sim.item_by_sku("HOOD-S").unwrap();
    let (status, body) = send(
        &sim,
        reqwest::Method::POST,
        "products/batch",
        json!({"update": [
            {"id": poster.id, "stock_quantity": 3},
            {"id": 99999, "stock_quantity": 3},
            {"id": variation.id, "stock_quantity": 3},
            {"id": poster.id, "stock_quantity": "many"}
        ]}),
    )
    .await;
    assert_eq!(status, 200);
    let results = body["update"].as_array().unwrap();
    assert_eq!(results[0]["stock_quantity"], 3);
    assert_eq!(
        results[1],
        json!({"id": 99999, "error": {"code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.", "data": {"status": 400}}})
    );
    assert_eq!(
        results[2]["error"]["code"],
        "woocommerce_rest_product_invalid_id"
    );
    assert_eq!(results[3]["error"]["code"], "rest_invalid_param");
    assert!(body.get("create").is_none());
    assert_eq!(sim.stock(poster.id), Some(3));

    let parent = variation.parent_id.unwrap();
    let (_, body) = send(
        &sim,
        reqwest::Method::POST,
        &format!("products/{parent}/variations/batch"),
        json!({"update": [
            {"id": variation.id, "stock_quantity": 9}, {"id": poster.id, "stock_quantity": 9}
        ]}),
    )
    .await;
    assert_eq!(body["update"][0]["stock_quantity"], 9);
    assert_eq!(
        body["update"][1]["error"]["code"],
        "woocommerce_rest_product_variation_invalid_id"
    );
    let (_, body) = send(&sim, reqwest::Method::POST, "products/batch", json!({"create": [{"name": "New", "sku": "NEW", "manage_stock": true, "stock_quantity": 6}], "delete": [poster.id]})).await;
    assert_eq!(body["create"][0]["stock_quantity"], 6);
    assert_eq!(body["delete"][0]["id"].as_u64(), Some(poster.id));
    assert!(sim.item_by_sku("POSTER/A2").is_none());
}

#[tokio::test]
async fn own_orders_follow_woocommerce_stock_rules() {
    let sim = store(|_| {}).await;
    let small = sim.item_by_sku("HOOD-S").unwrap();
    let order = sim
        .place_order(&NewOrder {
            status: "pending".into(),
            ..NewOrder::lines(vec![OrderLine::sku("HOOD-S", 2)])
        })
        .unwrap();
    let id = order["id"].as_u64().unwrap();
    assert_eq!(sim.stock(small.id), Some(5), "pending reduces nothing");
    sim.set_order_status(id, "processing").unwrap();
    assert_eq!(sim.stock(small.id), Some(3));
    sim.set_order_status(id, "completed").unwrap();
    assert_eq!(sim.stock(small.id), Some(3), "reduced once per order");
    sim.set_order_status(id, "cancelled").unwrap();
    assert_eq!(sim.stock(small.id), Some(5));
    sim.set_order_status(id, "on-hold").unwrap();
    assert_eq!(sim.stock(small.id), Some(3));
    sim.set_order_status(id, "failed").unwrap();
    assert_eq!(sim.stock(small.id), Some(3), "failed restores nothing");

    let order = sim
        .place_order(&NewOrder::lines(vec![OrderLine::sku("HOOD-S", 3)]))
        .unwrap();
    let (id, line) = (
        order["id"].as_u64().unwrap(),
        order["line_items"][0]["id"].as_u64().unwrap(),
    );
    assert_eq!(
        order["line_items"][0]["variation_id"].as_u64(),
        Some(small.id)
    );
    assert_eq!(
        order["line_items"][0]["product_id"].as_u64(),
        small.parent_id
    );
    assert_eq!(sim.stock(small.id), Some(0));
    let refund = |quantity, api_restock| NewRefund {
        line_items: vec![RefundLineRequest {
            line_item_id: line,
            quantity,
        }],
        api_restock,
        reason: String::new(),
    };
    sim.refund(id, &refund(1, false)).unwrap();
    assert_eq!(sim.stock(small.id), Some(0));
    let after = sim.refund(id, &refund(2, true)).unwrap();
    assert_eq!(sim.stock(small.id), Some(2));
    assert_eq!(
        after["status"], "refunded",
        "a full refund makes the order refunded"
    );
    assert_eq!(after["refunds"][0]["total"], "-39.98");
    let refunds: Value = get(&sim, &format!("orders/{id}/refunds"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refunds[0]["line_items"][0]["quantity"], -2);
    assert_eq!(
        refunds[0]["line_items"][0]["meta_data"][0]["key"],
        "_refunded_item_id"
    );

    let out = sim.place_order(&NewOrder::lines(vec![OrderLine::sku("HOOD-M", 3)]));
    assert!(matches!(
        out,
        Err(stockhub_sim::SimError::OutOfStock { available: 2, .. })
    ));
    sim.place_order(&NewOrder::lines(vec![OrderLine::sku("PRE", 2)]))
        .unwrap();
    assert_eq!(
        sim.stock(sim.item_by_sku("PRE").unwrap().id),
        Some(-2),
        "backorders allowed"
    );
    let hoodie = small.parent_id.unwrap();
    assert!(
        sim.place_order(&NewOrder::lines(vec![OrderLine::product(hoodie, 1)]))
            .is_err(),
        "a variable product needs a variation"
    );

    let order = sim
        .place_order(&NewOrder::lines(vec![OrderLine::sku("FILL-1", 1)]))
        .unwrap();
    let fill = sim.item_by_sku("FILL-1").unwrap();
    assert_eq!(sim.stock(fill.id), Some(0));
    let none_left = sim
        .edit_line_quantity(
            order["id"].as_u64().unwrap(),
            order["line_items"][0]["id"].as_u64().unwrap(),
            3,
        )
        .unwrap();
    assert_eq!(none_left["line_items"][0]["quantity"], 3);
    assert_eq!(
        sim.stock(fill.id),
        Some(-2),
        "an edit moves stock by the difference"
    );
}

#[tokio::test]
async fn orders_list_for_backfill() {
    let sim = store(|_| {}).await;
    let before = chrono_free_now_minus(5);
    for sku in ["FILL-0", "FILL-1", "FILL-2"] {
        sim.place_order(&NewOrder::lines(vec![OrderLine::sku(sku, 1)]))
            .unwrap();
    }
    let cancelled = sim
        .place_order(&NewOrder::lines(vec![OrderLine::sku("FILL-3", 1)]))
        .unwrap();
    sim.set_order_status(cancelled["id"].as_u64().unwrap(), "cancelled")
        .unwrap();
    let all: Value = get(
        &sim,
        &format!("orders?modified_after={before}&dates_are_gmt=true&per_page=100&status=any"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 4);
    let later: Value = get(
        &sim,
        "orders?modified_after=2999-01-01T00:00:00&dates_are_gmt=true",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(later, json!([]));
    let cancelled_only: Value = get(&sim, "orders?status=cancelled")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled_only.as_array().unwrap().len(), 1);
    let one: Value = get(&sim, &format!("orders/{}", cancelled["id"]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["status"], "cancelled");
    let gmt = one["date_modified_gmt"].as_str().unwrap();
    let local = one["date_modified"].as_str().unwrap();
    assert_ne!(gmt, local, "site time is not GMT");
    assert_eq!(
        get(&sim, "orders/1").await.json::<Value>().await.unwrap()["code"],
        "woocommerce_rest_shop_order_invalid_id"
    );
}

/// GMT five seconds ago, written as WooCommerce reads it.
fn chrono_free_now_minus(seconds: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - seconds;
    let days = now / 86_400;
    let (y, m, d) = civil(days as i64);
    let rem = now % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn hook(topic: &str, url: &str) -> WebhookSpec {
    WebhookSpec {
        name: None,
        topic: topic.into(),
        delivery_url: url.into(),
        secret: Some("woo-secret".into()),
        status: None,
    }
}

#[tokio::test]
async fn webhooks_ping_then_deliver_signed_payloads_built_at_send_time_and_coalesced() {
    let receiver = Receiver::start().await;
    let sim = store(|c| c.webhook_delivery_delay_ms = 200).await;
    let created = sim
        .add_webhook(hook("order.created", &receiver.url))
        .unwrap();
    let updated = sim
        .add_webhook(hook("order.updated", &receiver.url))
        .unwrap();
    let pings = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert!(pings.iter().all(
        |p| p.body.starts_with(b"webhook_id=") && p.header("x-wc-webhook-signature").is_empty()
    ));
    assert_eq!(
        pings
            .iter()
            .filter(|p| p.body == format!("webhook_id={}", created.id).into_bytes())
            .count(),
        1
    );

    let order = sim
        .place_order(&NewOrder::lines(vec![OrderLine::sku("HOOD-S", 1)]))
        .unwrap();
    let id = order["id"].as_u64().unwrap();
    sim.set_order_status(id, "completed").unwrap();
    sim.set_order_status(id, "cancelled").unwrap();
    assert!(sim.wait_for_deliveries(Duration::from_secs(5)).await);
    let received = receiver.received();
    let deliveries: Vec<_> = received.iter().skip(2).collect();
    assert_eq!(
        deliveries.len(),
        2,
        "one per webhook: the updates coalesced"
    );
    for delivery in &deliveries {
        assert_eq!(
            delivery.header("x-wc-webhook-signature"),
            expected_signature(&delivery.body, "woo-secret")
        );
        assert_eq!(delivery.header("x-wc-webhook-resource"), "order");
        assert_eq!(
            delivery.header("x-wc-webhook-source"),
            format!("{}/", sim.base_url())
        );
        assert!(delivery.header("user-agent").starts_with("WooCommerce/"));
        assert_eq!(
            delivery.json()["status"],
            "cancelled",
            "built when sent, not when queued"
        );
        assert!(
            String::from_utf8_lossy(&delivery.body).contains("\\/"),
            "PHP escapes slashes"
        );
    }
    let topics: Vec<&str> = deliveries
        .iter()
        .map(|d| d.header("x-wc-webhook-topic"))
        .collect();
    assert!(topics.contains(&"order.created") && topics.contains(&"order.updated"));
    let update = deliveries
        .iter()
        .find(|d| d.header("x-wc-webhook-topic") == "order.updated")
        .unwrap();
    assert_eq!(update.header("x-wc-webhook-event"), "updated");
    assert_eq!(update.header("x-wc-webhook-id"), updated.id.to_string());
    assert_eq!(update.header("x-wc-webhook-delivery-id").len(), 32);
}

#[tokio::test]
async fn delivery_ids_repeat_within_a_second() {
    let receiver = Receiver::start().await;
    let sim = store(|c| c.webhook_delivery_delay_ms = 0).await;
    sim.add_webhook(hook("order.created", &receiver.url))
        .unwrap();
    receiver.wait_for(1, Duration::from_secs(5)).await;
    for sku in ["FILL-0", "FILL-1", "FILL-2"] {
        sim.place_order(&NewOrder::lines(vec![OrderLine::sku(sku, 1)]))
            .unwrap();
    }
    assert!(sim.wait_for_deliveries(Duration::from_secs(5)).await);
    let deliveries: Vec<_> = sim.deliveries().into_iter().filter(|d| !d.ping).collect();
    assert_eq!(deliveries.len(), 3);
    for pair in deliveries.windows(2) {
        if pair[0].at_unix_ms / 1000 == pair[1].at_unix_ms / 1000 {
            assert_eq!(
                pair[0].delivery_id, pair[1].delivery_id,
                "same webhook, same second: same id"
            );
        }
    }
}

#[tokio::test]
async fn failures_are_never_retried_and_disable_the_webhook() {
    let receiver = Receiver::start().await;
    let sim = store(|c| c.webhook_delivery_delay_ms = 0).await;
    let updated = sim
        .add_webhook(hook("order.updated", &receiver.url))
        .unwrap();
    receiver.wait_for(1, Duration::from_secs(5)).await;
    receiver.respond_always(500);
    let mut orders = Vec::new();
    for n in 0..8 {
        let order = sim
            .place_order(&NewOrder::lines(vec![OrderLine::sku(
                &format!("FILL-{n}"),
                1,
            )]))
            .unwrap();
        orders.push(order["id"].as_u64().unwrap());
    }
    let mut counts = Vec::new();
    for id in &orders {
        sim.set_order_status(*id, "completed").unwrap();
        assert!(sim.wait_for_deliveries(Duration::from_secs(5)).await);
        let hook = sim
            .webhooks()
            .into_iter()
            .find(|w| w.id == updated.id)
            .unwrap();
        counts.push((hook.failure_count, hook.status));
    }
    let attempts = sim.deliveries().into_iter().filter(|d| !d.ping).count();
    assert_eq!(
        attempts, 7,
        "one attempt per change, none after the webhook was disabled"
    );
    assert_eq!(counts[5], (6, WebhookStatus::Active));
    assert_eq!(
        counts[6],
        (6, WebhookStatus::Disabled),
        "a failure with the count above 5 disables"
    );
    assert_eq!(counts[7], (6, WebhookStatus::Disabled));
    assert_eq!(receiver.received().len(), 1 + 7);

    receiver.respond_always(302);
    let reactivated = sim
        .update_webhook(
            updated.id,
            &stockhub_sim::woocommerce::WebhookUpdate {
                status: Some(WebhookStatus::Active),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(reactivated.failure_count, 0);
    sim.set_order_status(orders[0], "processing").unwrap();
    assert!(sim.wait_for_deliveries(Duration::from_secs(5)).await);
    assert!(
        sim.deliveries().last().unwrap().delivered,
        "302 counts as delivered"
    );
}

#[tokio::test]
async fn the_display_log_records_sales_pushes_restocks_and_drift() {
    let sim = store(|_| {}).await;
    let poster = sim.item_by_sku("POSTER/A2").unwrap();
    let order = sim
        .place_order(&NewOrder::lines(vec![OrderLine::sku("POSTER/A2", 4)]))
        .unwrap();
    send(
        &sim,
        reqwest::Method::PUT,
        &format!("products/{}", poster.id),
        json!({"stock_quantity": 3}),
    )
    .await;
    sim.set_order_status(order["id"].as_u64().unwrap(), "cancelled")
        .unwrap();
    sim.admin_set_stock(poster.id, 1).unwrap();
    let story: Vec<_> = sim
        .display_log()
        .into_iter()
        .filter(|e| e.item_id == poster.id)
        .map(|e| (e.cause, e.before, e.after))
        .collect();
    assert_eq!(
        story,
        vec![
            (Cause::Seed, None, 10),
            (Cause::OwnSale, Some(10), 6),
            (Cause::Push, Some(6), 3),
            (Cause::Cancel, Some(3), 7),
            (Cause::AdminEdit, Some(7), 1),
        ]
    );
}

#[tokio::test]
async fn an_optional_limiter_answers_429() {
    let sim = store(|c| {
        c.rate_limit = Some(BucketConfig {
            capacity: 2.0,
            per_second: 0.5,
        })
    })
    .await;
    assert_eq!(get(&sim, "products").await.status(), 200);
    assert_eq!(get(&sim, "products").await.status(), 200);
    let limited = get(&sim, "products").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("ratelimit-retry-after"));
    assert!(limited.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn the_control_api_drives_the_store() {
    let receiver = Receiver::start().await;
    let sim = store(|_| {}).await;
    let control = |path: &str| format!("{}/_sim/{path}", sim.base_url());
    let hook: Value = client()
        .post(control("webhooks"))
        .json(&json!({"topic": "order.created", "delivery_url": receiver.url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hook["status"], "active");
    assert_eq!(hook["secret"].as_str().unwrap().len(), 32);
    let placed = client()
        .post(control("orders"))
        .json(&json!({"line_items": [{"sku": "HOOD-M", "quantity": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    let order: Value = placed.json().await.unwrap();
    assert_eq!(sim.stock(sim.item_by_sku("HOOD-M").unwrap().id), Some(0));
    let status = client()
        .post(control(&format!("orders/{}/status", order["id"])))
        .json(&json!({"status": "cancelled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    assert_eq!(sim.stock(sim.item_by_sku("HOOD-M").unwrap().id), Some(2));
    let out = client()
        .post(control("orders"))
        .json(&json!({"line_items": [{"sku": "HOOD-M", "quantity": 3}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 409);
    client()
        .put(control("faults"))
        .json(&json!({"down": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&sim, "products").await.status(), 503);
    let catalog: Value = client()
        .get(control("catalog"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["items"].as_array().unwrap().len(), 14);
    assert!(sim.wait_for_deliveries(Duration::from_secs(5)).await);
    let deliveries: Value = client()
        .get(control("deliveries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(deliveries["deliveries"].as_array().unwrap().len() >= 2);
}
