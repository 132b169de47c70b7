//! The main flows of the `/v1` API over HTTP: the walkthrough (receive, order from two channels,
//! availability, ledger), bulk variant upserts and listing, cycle counts, transfers, shipments,
//! returns and restocks, reservations (release, confirm, expiry by the database clock, the
//! sweeper), ledger filters, an order's whole story, the OpenAPI document and the storage
//! settings.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};
use stockhub_http::HttpSettings;
use stockhub_store::ManualClock;
use stockhub_testkit::{spawn_app, spawn_app_with, Reply, TestApp};

const PROBLEM_PREFIX: &str = "urn:stockhub:problem:";

/// 2026-01-01T00:00:00Z: where the manual clock starts.
const T0_MS: i64 = 1_767_225_600_000;
const MINUTE_MS: i64 = 60_000;

#[track_caller]
fn assert_ok(reply: &Reply) {
    assert!(
        (200..300).contains(&reply.status),
        "expected success, got {reply:#?}"
    );
}

#[track_caller]
fn assert_problem(reply: &Reply, status: u16, kind: &str) {
    assert_eq!(reply.status, status, "{reply:#?}");
    assert_eq!(reply.content_type, "application/problem+json", "{reply:#?}");
    assert_eq!(
        reply.problem_type(),
        format!("{PROBLEM_PREFIX}{kind}"),
        "{reply:#?}"
    );
}

/// An RFC 3339 time `offset_ms` after T0 (within the same day).
fn at(offset_ms: i64) -> String {
    assert!((0..86_400_000).contains(&offset_ms));
    let (h, rest) = (offset_ms / 3_600_000, offset_ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("2026-01-01T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

async fn manual_app() -> (TestApp, ManualClock) {
    let clock = ManualClock::new(T0_MS);
    let app = spawn_app_with(HttpSettings::default(), Arc::new(clock.clone())).await;
    (app, clock)
}

async fn put(app: &TestApp, path: &str, body: Value) -> Reply {
    let reply = app.put(path, &body).await;
    assert_ok(&reply);
    reply
}

async fn post(app: &TestApp, path: &str, body: Value) -> Reply {
    let reply = app.post(path, &body).await;
    assert_ok(&reply);
    reply
}

async fn move_stock(app: &TestApp, movements: Vec<Value>) -> Reply {
    post(
        app,
        "/v1/stock/movements",
        json!({ "movements": movements }),
    )
    .await
}

fn receive(sku: &str, location: &str, quantity: i64) -> Value {
    json!({ "kind": "receive", "sku": sku, "location": location, "quantity": quantity })
}

fn order(channel: &str, id: &str, lines: &[(&str, &str, i64)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(line_id, sku, quantity)| json!({ "line_id": line_id, "sku": sku, "quantity": quantity }))
        .collect();
    json!({ "channel": channel, "external_id": id, "lines": lines })
}

/// `(on_hand, committed)` of a SKU at a location.
async fn level(app: &TestApp, sku: &str, location: &str) -> (i64, i64) {
    let stock = app.get(&format!("/v1/stock/{sku}")).await;
    assert_eq!(stock.status, 200, "{stock:#?}");
    stock.body["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .find(|l| l["location"] == location)
        .map_or((0, 0), |l| {
            (
                l["on_hand"].as_i64().unwrap(),
                l["committed"].as_i64().unwrap(),
            )
        })
}

/// `available` of a SKU on a channel.
async fn available(app: &TestApp, sku: &str, channel: &str) -> i64 {
    let stock = app.get(&format!("/v1/stock/{sku}")).await;
    stock.body["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["channel"] == channel)
        .and_then(|c| c["available"].as_i64())
        .unwrap_or_else(|| panic!("{channel} is listed for {sku}: {stock:#?}"))
}

/// Every ledger entry for `query`, following `next_cursor` with pages of `page` entries.
async fn ledger(app: &TestApp, query: &str, page: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let mut path = format!("/v1/ledger?limit={page}");
        if !query.is_empty() {
            path.push_str(&format!("&{query}"));
        }
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let reply = app.get(&path).await;
        assert_eq!(reply.status, 200, "{path}: {reply:#?}");
        let entries = reply.body["entries"].as_array().expect("entries");
        assert!(entries.len() <= page);
        out.extend(entries.iter().cloned());
        match reply.body["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn kinds(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

fn seqs(entries: &[Value]) -> Vec<i64> {
    entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect()
}

fn line<'a>(order: &'a Value, line_id: &str) -> &'a Value {
    order["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line_id"] == line_id)
        .unwrap_or_else(|| panic!("line {line_id} in {order:#}"))
}

async fn assert_verified(app: &TestApp) {
    let report = app
        .store
        .read(stockhub_store::engine::verify::verify)
        .await
        .expect("verify");
    assert!(report.differences.is_empty(), "{:#?}", report.differences);
}

/// Sends a body the way `curl -d` does: with curl's default form content type.
async fn curl(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base_url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
    }
    let res = req.send().await.expect("request sent");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body =
        serde_json::from_slice(&res.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

stockhub_testkit::on_both_backends! {
/// The README's curl walkthrough, command for command, with what the README says it shows.
#[tokio::test]
async fn the_readme_curl_walkthrough() {
    let app = spawn_app().await;
    for (method, path, body) in [
        ("PUT", "/v1/locations/wh1", r#"{"name": "Main warehouse"}"#),
        (
            "PUT",
            "/v1/variants/TEE-M",
            r#"{"product_id": "tee", "title": "Tee, M"}"#,
        ),
        ("PUT", "/v1/channels/shop", r#"{"kind": "manual"}"#),
        (
            "PUT",
            "/v1/channels/market",
            r#"{"kind": "manual", "rules": {"buffer": 2}}"#,
        ),
    ] {
        let reply = curl(&app, method, path, Some(body), &[]).await;
        assert_eq!(reply.status, 200, "{method} {path}: {reply:#?}");
    }
    let receipt = r#"{"movements": [{"kind": "receive", "sku": "TEE-M", "location": "wh1", "quantity": 10}]}"#;
    let reply = curl(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(receipt),
        &[("Idempotency-Key", "po-4711")],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let shop = r#"{"channel": "shop", "external_id": "1001", "version": 1,
       "lines": [{"line_id": "1", "sku": "TEE-M", "quantity": 3}]}"#;
    let market = r#"{"channel": "market", "external_id": "A-77", "version": 1,
       "lines": [{"line_id": "1", "sku": "TEE-M", "quantity": 2}]}"#;
    for body in [shop, market] {
        let reply = curl(&app, "POST", "/v1/orders", Some(body), &[]).await;
        assert_eq!(reply.status, 200, "{reply:#?}");
        assert_eq!(reply.body["outcome"], "created");
    }

    // "Availability: on_hand 10, committed 5; shop may sell 5, market 3."
    let stock = curl(&app, "GET", "/v1/stock/TEE-M", None, &[]).await;
    assert_eq!(
        stock.body["levels"],
        json!([{ "sku": "TEE-M", "location": "wh1", "on_hand": 10, "committed": 5 }])
    );
    assert_eq!(available(&app, "TEE-M", "shop").await, 5);
    assert_eq!(available(&app, "TEE-M", "market").await, 3);

    // "The ledger, newest first, and the whole story of one order."
    let entries = curl(&app, "GET", "/v1/ledger?sku=TEE-M&order=desc", None, &[]).await;
    assert_eq!(
        kinds(entries.body["entries"].as_array().unwrap()),
        vec!["order_committed", "order_committed", "received"]
    );
    assert_eq!(entries.body["entries"][0]["order"]["external_id"], "A-77");
    assert!(entries.body["entries"][2]["idempotency_key"]
        .as_str()
        .is_some_and(|k| k.contains("po-4711")));
    let story = curl(&app, "GET", "/v1/audit/orders/shop/1001", None, &[]).await;
    assert_eq!(story.status, 200);
    assert_eq!(story.body["order"]["lines"][0]["committed"], 3);
    assert_eq!(
        kinds(story.body["ledger"].as_array().unwrap()),
        vec!["order_committed"]
    );

    // The receipt repeated under its key is not received twice.
    let reply = curl(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(receipt),
        &[("Idempotency-Key", "po-4711")],
    )
    .await;
    assert_eq!(
        reply
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(level(&app, "TEE-M", "wh1").await, (10, 5));
}
}

stockhub_testkit::on_both_backends! {
/// The walkthrough: locations, a variant, two channels; receive stock; an order from each
/// channel; what each channel may sell; the ledger.
#[tokio::test]
async fn walkthrough_receive_order_from_two_channels_availability_ledger() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.body["status"], "ok");
    assert_eq!(app.get("/readyz").await.status, 200);

    put(
        &app,
        "/v1/locations/wh-east",
        json!({ "name": "East warehouse" }),
    )
    .await;
    put(
        &app,
        "/v1/locations/wh-west",
        json!({ "name": "West warehouse" }),
    )
    .await;
    let locations = app.get("/v1/locations").await;
    assert_eq!(
        locations.body,
        json!([
            { "code": "wh-east", "name": "East warehouse" },
            { "code": "wh-west", "name": "West warehouse" },
        ])
    );
    put(
        &app,
        "/v1/products/tee",
        json!({ "title": "Tee", "option_names": ["Color", "Size"] }),
    )
    .await;
    let variant = put(
        &app,
        "/v1/variants/TEE-BLK-M",
        json!({ "product_id": "tee", "option_values": { "Color": "Black", "Size": "M" }, "barcode": "0123" }),
    )
    .await;
    assert_eq!(variant.body["sku"], "TEE-BLK-M");
    assert_eq!(variant.body["option_values"]["Size"], "M");
    put(&app, "/v1/channels/shopify", json!({ "kind": "manual" })).await;
    let amazon = put(
        &app,
        "/v1/channels/amazon",
        json!({ "kind": "manual", "rules": { "buffer": 2 }, "feeding_locations": ["wh-east"] }),
    )
    .await;
    assert_eq!(amazon.body["rules"]["buffer"], 2);
    assert_eq!(amazon.body["feeding_locations"], json!(["wh-east"]));

    let received = move_stock(
        &app,
        vec![
            receive("TEE-BLK-M", "wh-east", 20),
            receive("TEE-BLK-M", "wh-west", 5),
        ],
    )
    .await;
    assert_eq!(received.body["results"][0]["status"], "applied");
    assert_eq!(received.body["results"][0]["levels"][0]["on_hand"], 20);
    assert_eq!(received.body["results"][1]["levels"][0]["on_hand"], 5);
    assert_eq!(available(&app, "TEE-BLK-M", "shopify").await, 25);
    assert_eq!(available(&app, "TEE-BLK-M", "amazon").await, 18);

    let from_shopify = post(
        &app,
        "/v1/orders",
        order("shopify", "SH-1001", &[("1", "TEE-BLK-M", 3)]),
    )
    .await;
    assert_eq!(from_shopify.body["outcome"], "created");
    assert_eq!(line(&from_shopify.body["order"], "1")["committed"], 3);
    let from_amazon = post(
        &app,
        "/v1/orders",
        order("amazon", "AMZ-77", &[("1", "TEE-BLK-M", 4)]),
    )
    .await;
    assert_eq!(line(&from_amazon.body["order"], "1")["committed"], 4);
    assert_eq!(
        line(&from_amazon.body["order"], "1")["allocations"][0]["location"],
        "wh-east"
    );

    let stock = app.get("/v1/stock/TEE-BLK-M").await;
    assert_eq!(stock.body["sku"], "TEE-BLK-M");
    assert_eq!(stock.body["is_kit"], false);
    assert_eq!(level(&app, "TEE-BLK-M", "wh-east").await, (20, 7));
    assert_eq!(level(&app, "TEE-BLK-M", "wh-west").await, (5, 0));
    assert_eq!(available(&app, "TEE-BLK-M", "shopify").await, 18);
    assert_eq!(available(&app, "TEE-BLK-M", "amazon").await, 11);

    let entries = ledger(&app, "sku=TEE-BLK-M", 100).await;
    assert_eq!(
        kinds(&entries),
        vec!["received", "received", "order_committed", "order_committed"]
    );
    assert!(entries.iter().all(|e| e["source"] == "api:anonymous"));
    assert_eq!(
        entries[2]["order"],
        json!({ "channel": "shopify", "external_id": "SH-1001" })
    );
    assert_eq!(entries[2]["delta_committed"], 3);
    assert_eq!(entries[2]["on_hand_after"], 20);
    assert_eq!(entries[2]["committed_after"], 3);
    assert_eq!(entries[3]["committed_after"], 7);
    assert_verified(&app).await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn availability_follows_the_channel_rules() {
    let app = spawn_app().await;
    put(&app, "/v1/locations/wh-1", json!({})).await;
    put(&app, "/v1/locations/wh-2", json!({})).await;
    put(&app, "/v1/variants/MUG", json!({ "buffer": 5 })).await;
    put(&app, "/v1/channels/all", json!({ "kind": "manual" })).await;
    put(
        &app,
        "/v1/channels/half",
        json!({ "kind": "manual", "rules": { "share": 0.5, "buffer": 1 } }),
    )
    .await;
    put(
        &app,
        "/v1/channels/capped",
        json!({ "kind": "manual", "rules": { "max_quantity": 30 } }),
    )
    .await;
    put(
        &app,
        "/v1/channels/picky",
        json!({ "kind": "manual", "rules": { "out_of_stock_threshold": 200 } }),
    )
    .await;
    put(
        &app,
        "/v1/channels/east",
        json!({ "kind": "manual", "feeding_locations": ["wh-2"] }),
    )
    .await;
    move_stock(
        &app,
        vec![receive("MUG", "wh-1", 100), receive("MUG", "wh-2", 10)],
    )
    .await;
    // raw = 110 − SKU buffer 5 = 105.
    assert_eq!(available(&app, "MUG", "all").await, 105);
    assert_eq!(available(&app, "MUG", "half").await, 52); // ⌊(105 − 1) × 0.5⌋
    assert_eq!(available(&app, "MUG", "capped").await, 30);
    assert_eq!(available(&app, "MUG", "picky").await, 0);
    assert_eq!(available(&app, "MUG", "east").await, 5); // 10 − 5
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn ten_thousand_variants_in_one_batch_all_or_nothing_and_listed_by_pages() {
    let app = spawn_app().await;
    let variants: Vec<Value> = (0..10_000)
        .map(|i| json!({ "sku": format!("BULK-{i:05}"), "product_id": format!("P-{}", i % 10), "title": format!("Bulk {i}") }))
        .collect();
    let reply = post(&app, "/v1/variants/batch", json!({ "variants": variants })).await;
    assert_eq!(reply.body["upserted"], 10_000);

    // Every page in SKU order, nothing twice, nothing missing.
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/variants?limit=1000&cursor={c}"),
            None => "/v1/variants?limit=1000".to_owned(),
        };
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{page:#?}");
        pages += 1;
        listed.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["sku"].as_str().unwrap().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(pages >= 10);
    let expected: Vec<String> = (0..10_000).map(|i| format!("BULK-{i:05}")).collect();
    assert_eq!(listed, expected);

    // By product, in pages of 300.
    let mut of_product = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/variants?product_id=P-3&limit=300".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path).await;
        for v in page.body["items"].as_array().unwrap() {
            assert_eq!(v["product_id"], "P-3");
            of_product.push(v["sku"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..10_000)
        .filter(|i| i % 10 == 3)
        .map(|i| format!("BULK-{i:05}"))
        .collect();
    assert_eq!(of_product, expected);

    // By SKU prefix, alone and with a product.
    let page = app.get("/v1/variants?sku_prefix=BULK-001&limit=1000").await;
    let skus: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus.len(), 100);
    assert!(skus.iter().all(|s| s.starts_with("BULK-001")));
    assert_eq!(page.body["next_cursor"], Value::Null);
    let page = app
        .get("/v1/variants?sku_prefix=BULK-001&product_id=P-7")
        .await;
    let skus: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sku"].as_str().unwrap())
        .collect();
    assert_eq!(
        skus,
        (0..10).map(|d| format!("BULK-001{d}7")).collect::<Vec<_>>()
    );
    let page = app.get("/v1/variants?sku_prefix=bulk").await;
    assert_eq!(
        page.body["items"],
        json!([]),
        "the prefix is case-sensitive"
    );
    assert_problem(
        &app.get("/v1/variants?limit=0").await,
        422,
        "invalid-request",
    );
    assert_problem(
        &app.get("/v1/variants?limit=1001").await,
        422,
        "invalid-request",
    );

    // A second batch of 10,000 with one bad item (an unknown kit component) stores nothing, and
    // its updates of existing variants are not applied either.
    let before = app.dump().await;
    let mut variants: Vec<Value> = (0..10_000)
        .map(|i| {
            if i < 5_000 {
                json!({ "sku": format!("BULK-{i:05}"), "title": "renamed" })
            } else {
                json!({ "sku": format!("NEXT-{i:05}") })
            }
        })
        .collect();
    variants[9_999] = json!({ "sku": "NEXT-KIT", "kit": [{ "sku": "NO-SUCH-PART", "units": 1 }] });
    let reply = app
        .post("/v1/variants/batch", &json!({ "variants": variants }))
        .await;
    assert_problem(&reply, 422, "invalid-batch");
    assert_eq!(reply.body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(reply.body["errors"][0]["index"], 9_999);
    assert_eq!(app.dump().await, before);
    assert_eq!(
        app.get("/v1/variants?sku_prefix=NEXT-").await.body["items"],
        json!([])
    );
    assert_eq!(
        app.get("/v1/variants/BULK-00000").await.body["title"],
        "Bulk 0"
    );
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn a_count_taken_in_the_past_reapplies_later_movements() {
    let (app, clock) = manual_app().await;
    put(&app, "/v1/locations/wh-1", json!({})).await;
    put(&app, "/v1/variants/MUG", json!({})).await;
    move_stock(&app, vec![receive("MUG", "wh-1", 10)]).await; // T0
    clock.advance_ms(MINUTE_MS);
    move_stock(&app, vec![receive("MUG", "wh-1", 5)]).await; // T0 + 1 min
    clock.advance_ms(MINUTE_MS);
    move_stock(
        &app,
        vec![json!({ "kind": "adjust", "sku": "MUG", "location": "wh-1", "delta": -2 })],
    )
    .await; // T0 + 2 min
    clock.advance_ms(MINUTE_MS);
    assert_eq!(level(&app, "MUG", "wh-1").await, (13, 0));

    // Counted 8 at T0 + 30 s: the +5 and −2 recorded since then are re-applied on top.
    let count = json!({ "kind": "count", "sku": "MUG", "location": "wh-1", "on_hand": 8, "counted_at": at(MINUTE_MS / 2) });
    let reply = move_stock(&app, vec![count]).await;
    assert_eq!(reply.body["results"][0]["levels"][0]["on_hand"], 11);
    assert_eq!(level(&app, "MUG", "wh-1").await, (11, 0));
    let counted = ledger(&app, "kind=counted", 100).await;
    assert_eq!(counted.len(), 1);
    assert_eq!(
        counted[0]["delta_on_hand"], -2,
        "the ledger records the difference"
    );
    assert_eq!(counted[0]["on_hand_after"], 11);
    assert_eq!(counted[0]["detail"]["counted"], 8);
    assert_eq!(counted[0]["detail"]["recorded_since_count"], 3);

    // A count taken now is absolute.
    clock.advance_ms(MINUTE_MS);
    move_stock(
        &app,
        vec![json!({ "kind": "count", "sku": "MUG", "location": "wh-1", "on_hand": 4 })],
    )
    .await;
    assert_eq!(level(&app, "MUG", "wh-1").await, (4, 0));
    // A count taken before the counts already recorded is superseded by them: the newest
    // physical count wins, and the late one is kept in the ledger without changing on_hand.
    clock.advance_ms(MINUTE_MS);
    let before_all = json!({ "kind": "count", "sku": "MUG", "location": "wh-1", "on_hand": 40, "counted_at": "2025-12-31T23:59:00Z" });
    move_stock(&app, vec![before_all]).await;
    assert_eq!(level(&app, "MUG", "wh-1").await, (4, 0));
    let counted = ledger(&app, "kind=counted", 100).await;
    let late = counted.last().unwrap();
    assert_eq!(late["delta_on_hand"], 0);
    assert_eq!(late["detail"]["counted"], 40);
    assert!(
        late["detail"]["superseded_by_count_at_ms"].is_i64(),
        "{late}"
    );

    // A count taken between two receipts re-applies only what came after it, not the
    // correction of an older count recorded later.
    clock.advance_ms(MINUTE_MS);
    let between = at(5 * MINUTE_MS + 30_000);
    move_stock(&app, vec![receive("MUG", "wh-1", 6)]).await;
    let mid = json!({ "kind": "count", "sku": "MUG", "location": "wh-1", "on_hand": 9, "counted_at": between });
    move_stock(&app, vec![mid]).await;
    assert_eq!(
        level(&app, "MUG", "wh-1").await,
        (15, 0),
        "9 counted, then +6 received"
    );

    // A count from the future is refused, and changes nothing.
    let before = app.dump().await;
    let future = json!({ "kind": "count", "sku": "MUG", "location": "wh-1", "on_hand": 3, "counted_at": at(3_600_000) });
    let reply = app
        .post("/v1/stock/movements", &json!({ "movements": [future] }))
        .await;
    assert_problem(&reply, 422, "invalid-batch");
    assert_eq!(app.dump().await, before);
    assert_verified(&app).await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn a_count_below_what_is_committed_is_refused() {
    let app = spawn_app().await;
    put(&app, "/v1/locations/wh-1", json!({})).await;
    put(&app, "/v1/variants/MUG", json!({})).await;
    put(&app, "/v1/channels/web", json!({ "kind": "manual" })).await;
    move_stock(&app, vec![receive("MUG", "wh-1", 10)]).await;
    post(&app, "/v1/orders", order("web", "W-1", &[("1", "MUG", 6)])).await;
    let before = app.dump().await;
    let reply = app
        .post("/v1/stock/movements", &json!({ "movements": [{ "kind": "count", "sku": "MUG", "location": "wh-1", "on_hand": 5 }] }))
        .await;
    assert_problem(&reply, 422, "invalid-batch");
    assert_eq!(reply.body["errors"][0]["kind"], "stock-conflict");
    assert_eq!(app.dump().await, before);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn transfer_moves_free_units_between_locations() {
    let app = spawn_app().await;
    for l in ["wh-1", "wh-2"] {
        put(&app, &format!("/v1/locations/{l}"), json!({})).await;
    }
    put(&app, "/v1/variants/MUG", json!({})).await;
    put(
        &app,
        "/v1/channels/web",
        json!({ "kind": "manual", "feeding_locations": ["wh-1"] }),
    )
    .await;
    move_stock(&app, vec![receive("MUG", "wh-1", 10)]).await;
    let reply = move_stock(
        &app,
        vec![json!({ "kind": "transfer", "sku": "MUG", "from": "wh-1", "to": "wh-2", "quantity": 4, "note": "rebalance" })],
    )
    .await;
    let levels = &reply.body["results"][0]["levels"];
    assert_eq!(
        levels[0],
        json!({ "sku": "MUG", "location": "wh-1", "on_hand": 6, "committed": 0 })
    );
    assert_eq!(
        levels[1],
        json!({ "sku": "MUG", "location": "wh-2", "on_hand": 4, "committed": 0 })
    );
    let transferred = ledger(&app, "kind=transferred", 100).await;
    let moves: Vec<(&str, i64)> = transferred
        .iter()
        .map(|e| {
            (
                e["location"].as_str().unwrap(),
                e["delta_on_hand"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(moves, vec![("wh-1", -4), ("wh-2", 4)]);
    assert_eq!(
        available(&app, "MUG", "web").await,
        6,
        "only wh-1 feeds web"
    );

    // Committed units stay put: 5 committed of 6 leaves 1 free to move.
    post(&app, "/v1/orders", order("web", "W-1", &[("1", "MUG", 5)])).await;
    let before = app.dump().await;
    let too_many =
        json!({ "kind": "transfer", "sku": "MUG", "from": "wh-1", "to": "wh-2", "quantity": 2 });
    let reply = app
        .post("/v1/stock/movements", &json!({ "movements": [too_many] }))
        .await;
    assert_problem(&reply, 422, "invalid-batch");
    assert_eq!(reply.body["errors"][0]["kind"], "stock-conflict");
    assert_eq!(app.dump().await, before);
    let same =
        json!({ "kind": "transfer", "sku": "MUG", "from": "wh-1", "to": "wh-1", "quantity": 1 });
    assert_problem(
        &app.post("/v1/stock/movements", &json!({ "movements": [same] }))
            .await,
        422,
        "invalid-batch",
    );
    move_stock(&app, vec![json!({ "kind": "transfer", "sku": "MUG", "from": "wh-1", "to": "wh-2", "quantity": 1 })]).await;
    assert_eq!(level(&app, "MUG", "wh-1").await, (5, 5));
    assert_eq!(level(&app, "MUG", "wh-2").await, (5, 0));
    assert_verified(&app).await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn ship_return_and_restock() {
    let app = spawn_app().await;
    for l in ["wh-1", "wh-2"] {
        put(&app, &format!("/v1/locations/{l}"), json!({})).await;
    }
    put(&app, "/v1/variants/MUG", json!({})).await;
    put(&app, "/v1/channels/web", json!({ "kind": "manual" })).await;
    move_stock(&app, vec![receive("MUG", "wh-1", 10)]).await;
    post(&app, "/v1/orders", order("web", "W-1", &[("1", "MUG", 5)])).await;

    let shipped = post(
        &app,
        "/v1/orders/web/W-1/ship",
        json!({ "lines": [{ "line_id": "1", "quantity": 3 }] }),
    )
    .await;
    let l = line(&shipped.body, "1");
    assert_eq!(
        (l["committed"].as_i64(), l["shipped"].as_i64()),
        (Some(2), Some(3))
    );
    assert_eq!(
        level(&app, "MUG", "wh-1").await,
        (7, 2),
        "shipping lowers on_hand and committed"
    );
    let before = app.dump().await;
    let reply = app
        .post(
            "/v1/orders/web/W-1/ship",
            &json!({ "lines": [{ "line_id": "1", "quantity": 3 }] }),
        )
        .await;
    assert_problem(&reply, 409, "stock-conflict");
    let reply = app
        .post(
            "/v1/orders/web/W-1/ship",
            &json!({ "lines": [{ "line_id": "9", "quantity": 1 }] }),
        )
        .await;
    assert_problem(&reply, 404, "unknown-order-line");
    assert_eq!(app.dump().await, before);

    // Two come back and go on the shelf at once; one more waits for a restock call.
    let returned = post(
        &app,
        "/v1/orders/web/W-1/returns",
        json!({ "lines": [{ "line_id": "1", "quantity": 2, "restock": true }] }),
    )
    .await;
    assert_eq!(line(&returned.body, "1")["returned"], 2);
    assert_eq!(line(&returned.body, "1")["restocked"], 2);
    assert_eq!(level(&app, "MUG", "wh-1").await, (9, 2));
    let returned = post(
        &app,
        "/v1/orders/web/W-1/returns",
        json!({ "lines": [{ "line_id": "1", "quantity": 1 }] }),
    )
    .await;
    assert_eq!(line(&returned.body, "1")["returned"], 3);
    assert_eq!(line(&returned.body, "1")["restocked"], 2);
    assert_eq!(
        level(&app, "MUG", "wh-1").await,
        (9, 2),
        "a pending return is not on the shelf"
    );
    let reply = app
        .post(
            "/v1/orders/web/W-1/returns",
            &json!({ "lines": [{ "line_id": "1", "quantity": 1 }] }),
        )
        .await;
    assert_problem(&reply, 409, "stock-conflict");
    // The waiting unit is restocked elsewhere.
    let restocked = post(
        &app,
        "/v1/orders/web/W-1/restock",
        json!({ "lines": [{ "line_id": "1", "quantity": 1, "location": "wh-2" }] }),
    )
    .await;
    assert_eq!(line(&restocked.body, "1")["restocked"], 3);
    assert_eq!(level(&app, "MUG", "wh-2").await, (1, 0));
    let reply = app
        .post(
            "/v1/orders/web/W-1/restock",
            &json!({ "lines": [{ "line_id": "1", "quantity": 1 }] }),
        )
        .await;
    assert_problem(&reply, 409, "stock-conflict");

    // Cancelling releases the rest; shipped units stay shipped.
    let cancelled = post(&app, "/v1/orders/web/W-1/cancel", json!({})).await;
    let l = line(&cancelled.body, "1");
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(
        (
            l["committed"].as_i64(),
            l["cancelled"].as_i64(),
            l["shipped"].as_i64()
        ),
        (Some(0), Some(2), Some(3))
    );
    assert_eq!(l["ordered"], 5);
    assert_eq!(level(&app, "MUG", "wh-1").await, (9, 0));

    let entries = ledger(&app, "order_channel=web&order_id=W-1", 100).await;
    assert_eq!(
        kinds(&entries),
        vec![
            "order_committed",
            "shipped",
            "returned",
            "restocked",
            "returned",
            "restocked",
            "order_cancelled"
        ]
    );
    assert_verified(&app).await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn snapshots_apply_only_the_difference_and_shortfalls_fill_on_receipt() {
    let app = spawn_app().await;
    put(&app, "/v1/locations/wh-1", json!({})).await;
    put(&app, "/v1/variants/MUG", json!({})).await;
    put(&app, "/v1/channels/web", json!({ "kind": "manual" })).await;
    move_stock(&app, vec![receive("MUG", "wh-1", 4)]).await;

    let mut v1 = order("web", "W-1", &[("1", "MUG", 6)]);
    v1["version"] = json!(1);
    let reply = post(&app, "/v1/orders", v1.clone()).await;
    let l = line(&reply.body["order"], "1");
    assert_eq!(
        (l["committed"].as_i64(), l["short"].as_i64()),
        (Some(4), Some(2))
    );
    let oversold = ledger(&app, "kind=oversold", 100).await;
    assert_eq!(oversold.len(), 1);
    assert_eq!(oversold[0]["line_delta"]["short"], 2);

    // v3 lowers the line to 5: the short unit goes first.
    let mut v3 = order("web", "W-1", &[("1", "MUG", 5)]);
    v3["version"] = json!(3);
    let reply = post(&app, "/v1/orders", v3).await;
    assert_eq!(reply.body["outcome"], "updated");
    let l = line(&reply.body["order"], "1");
    assert_eq!(
        (
            l["committed"].as_i64(),
            l["short"].as_i64(),
            l["cancelled"].as_i64()
        ),
        (Some(4), Some(1), Some(1))
    );
    // v2, late, changes nothing.
    let before = app.dump().await;
    let mut v2 = order("web", "W-1", &[("1", "MUG", 1)]);
    v2["version"] = json!(2);
    let reply = post(&app, "/v1/orders", v2).await;
    assert_eq!(reply.body["outcome"], "stale");
    assert_eq!(app.dump().await, before);

    // A receipt fills the open shortfall before anything becomes free.
    move_stock(&app, vec![receive("MUG", "wh-1", 3)]).await;
    let view = app.get("/v1/orders/web/W-1").await;
    let l = line(&view.body, "1");
    assert_eq!(
        (l["committed"].as_i64(), l["short"].as_i64()),
        (Some(5), Some(0))
    );
    assert_eq!(level(&app, "MUG", "wh-1").await, (7, 5));
    assert_eq!(available(&app, "MUG", "web").await, 2);
    assert_eq!(
        kinds(&ledger(&app, "kind=shortfall_filled", 100).await),
        vec!["shortfall_filled"]
    );
    assert_verified(&app).await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn unmapped_lines_are_resolved_and_then_applied() {
    let app = spawn_app().await;
    put(&app, "/v1/locations/wh-1", json!({})).await;
    put(&app, "/v1/variants/MUG", json!({})).await;
    put(&app, "/v1/channels/ebay", json!({ "kind": "manual" })).await;
    move_stock(&app, vec![receive("MUG", "wh-1", 10)]).await;
    post(
        &app,
        "/v1/orders",
        order(
            "ebay",
            "E-1",
            &[("1", "ebay-mug-listing", 2), ("2", "MUG", 1)],
        ),
    )
    .await;
    let unmapped = app.get("/v1/unmapped").await;
    let items = unmapped.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let id = items[0]["id"].as_i64().unwrap();
    assert_eq!(level(&app, "MUG", "wh-1").await, (10, 1));

    let resolved = post(
        &app,
        &format!("/v1/unmapped/{id}/resolve"),
        json!({ "sku": "MUG" }),
    )
    .await;
    assert_eq!(line(&resolved.body[0], "1")["committed"], 2);
    assert_eq!(line(&resolved.body[0], "1")["sku"], "MUG");
    assert_eq!(app.get("/v1/unmapped").await.body["items"], json!([]));
    assert_eq!(level(&app, "MUG", "wh-1").await, (10, 3));
    // The mapping is remembered for the channel.
    let reply = post(
        &app,
        "/v1/orders",
        order("ebay", "E-2", &[("1", "ebay-mug-listing", 1)]),
    )
    .await;
    assert_eq!(line(&reply.body["order"], "1")["sku"], "MUG");
    assert_eq!(level(&app, "MUG", "wh-1").await, (10, 4));
    assert_verified(&app).await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn reservations_are_released_or_confirmed_into_orders() {
    let app = spawn_app().await;
    put(&app, "/v1/locations/wh-1", json!({})).await;
    put(&app, "/v1/variants/MUG", json!({})).await;
    put(&app, "/v1/channels/pos", json!({ "kind": "manual" })).await;
    move_stock(&app, vec![receive("MUG", "wh-1", 10)]).await;

    let held = app
        .post(
            "/v1/reservations",
            &json!({ "channel": "pos", "sku": "MUG", "quantity": 3 }),
        )
        .await;
    assert_eq!(held.status, 201, "{held:#?}");
    assert_eq!(held.body["status"], "active");
    assert_eq!(held.body["allocations"][0]["location"], "wh-1");
    let id = held.body["id"].as_i64().unwrap();
    assert_eq!(level(&app, "MUG", "wh-1").await, (10, 3));
    assert_eq!(available(&app, "MUG", "pos").await, 7);

    let released = post(&app, &format!("/v1/reservations/{id}/release"), json!({})).await;
    assert_eq!(released.body["status"], "released");
    assert_eq!(level(&app, "MUG", "wh-1").await, (10, 0));
    assert_eq!(
        kinds(&ledger(&app, "kind=reservation_released", 100).await),
        vec!["reservation_released"]
    );
    assert_problem(
        &app.post(&format!("/v1/reservations/{id}/release"), &json!({}))
            .await,
        409,
        "reservation-not-active",
    );
    assert_problem(
        &app.post(&format!("/v1/reservations/{id}/confirm"), &json!({}))
            .await,
        409,
        "reservation-not-active",
    );

    let held = app
        .post(
            "/v1/reservations",
            &json!({ "channel": "pos", "sku": "MUG", "quantity": 2, "location": "wh-1" }),
        )
        .await;
    assert_eq!(held.status, 201);
    let id = held.body["id"].as_i64().unwrap();
    let confirmed = app
        .post(
            &format!("/v1/reservations/{id}/confirm"),
            &json!({ "external_id": "POS-55" }),
        )
        .await;
    assert_eq!(confirmed.status, 201, "{confirmed:#?}");
    assert_eq!(confirmed.body["external_id"], "POS-55");
    assert_eq!(confirmed.body["lines"][0]["committed"], 2);
    assert_eq!(
        level(&app, "MUG", "wh-1").await,
        (10, 2),
        "units move to the order without a release"
    );
    let reservation = app.get(&format!("/v1/reservations/{id}")).await;
    assert_eq!(reservation.body["status"], "confirmed");
    assert_eq!(
        reservation.body["order"],
        json!({ "channel": "pos", "external_id": "POS-55" })
    );
    assert_eq!(app.get("/v1/orders/pos/POS-55").await.status, 200);
    // The order ships like any other.
    post(
        &app,
        "/v1/orders/pos/POS-55/ship",
        json!({ "lines": [{ "line_id": "1", "quantity": 2 }] }),
    )
    .await;
    assert_eq!(level(&app, "MUG", "wh-1").await, (8, 0));

    // Confirming without an id makes `reservation-<id>`.
    let held = app
        .post(
            "/v1/reservations",
            &json!({ "channel": "pos", "sku": "MUG", "quantity": 1 }),
        )
        .await;
    let id = held.body["id"].as_i64().unwrap();
    let confirmed = app
        .post(&format!("/v1/reservations/{id}/confirm"), &json!({}))
        .await;
    assert_eq!(confirmed.status, 201);
    assert_eq!(confirmed.body["external_id"], format!("reservation-{id}"));
    assert_verified(&app).await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn an_expired_reservation_cannot_be_confirmed_even_before_the_sweeper_runs() {
    let (app, clock) = manual_app().await;
    put(&app, "/v1/locations/wh-1", json!({})).await;
    put(&app, "/v1/variants/MUG", json!({})).await;
    put(&app, "/v1/channels/pos", json!({ "kind": "manual" })).await;
    move_stock(&app, vec![receive("MUG", "wh-1", 10)]).await;
    let reserve = |quantity: i64| json!({ "channel": "pos", "sku": "MUG", "quantity": quantity, "expires_in_seconds": 60 });
    let late = app.post("/v1/reservations", &reserve(3)).await;
    let on_time = app.post("/v1/reservations", &reserve(2)).await;
    let (late, on_time) = (
        late.body["id"].as_i64().unwrap(),
        on_time.body["id"].as_i64().unwrap(),
    );
    assert_eq!(
        app.get(&format!("/v1/reservations/{late}")).await.body["expires_at_ms"],
        T0_MS + 60_000
    );

    clock.advance_ms(59_999);
    let confirmed = app
        .post(&format!("/v1/reservations/{on_time}/confirm"), &json!({}))
        .await;
    assert_eq!(confirmed.status, 201, "still in time: {confirmed:#?}");

    clock.advance_ms(1);
    let before = app.dump().await;
    let reply = app
        .post(
            &format!("/v1/reservations/{late}/confirm"),
            &json!({ "external_id": "TOO-LATE" }),
        )
        .await;
    assert_problem(&reply, 409, "reservation-expired");
    assert_eq!(
        app.dump().await,
        before,
        "a refused confirm changes nothing"
    );
    assert_eq!(app.get("/v1/orders/pos/TOO-LATE").await.status, 404);
    // The sweeper has not run: the units are still held until it does.
    assert_eq!(
        app.get(&format!("/v1/reservations/{late}")).await.body["status"],
        "active"
    );
    assert_eq!(level(&app, "MUG", "wh-1").await, (10, 5));

    let swept = stockhub_http::maintenance::sweep_reservations(&app.store)
        .await
        .expect("sweep");
    assert_eq!(swept, 1);
    assert_eq!(
        app.get(&format!("/v1/reservations/{late}")).await.body["status"],
        "expired"
    );
    assert_eq!(level(&app, "MUG", "wh-1").await, (10, 2));
    let expired = ledger(&app, "kind=reservation_expired", 100).await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["reservation_id"], late);
    assert_eq!(expired[0]["delta_committed"], -3);
    assert_eq!(expired[0]["source"], "system:reservation-sweeper");
    assert_eq!(expired[0]["at_ms"], T0_MS + 60_000);
    assert_eq!(
        ledger(&app, "source=system:reservation-sweeper", 100)
            .await
            .len(),
        1
    );
    // Sweeping again finds nothing; the expired reservation stays unconfirmable.
    assert_eq!(
        stockhub_http::maintenance::sweep_reservations(&app.store)
            .await
            .expect("sweep"),
        0
    );
    let reply = app
        .post(&format!("/v1/reservations/{late}/confirm"), &json!({}))
        .await;
    assert_eq!(reply.status, 409, "{reply:#?}");
    assert_verified(&app).await;
}
}

/// A small history at known times: receipts at T0, web orders at T0+1h, an ebay order at T0+2h
/// (oversold), a shipment at T0+3h.
async fn history(app: &TestApp, clock: &ManualClock) {
    put(app, "/v1/locations/wh-1", json!({})).await;
    put(app, "/v1/variants/MUG", json!({})).await;
    put(app, "/v1/variants/CAP", json!({})).await;
    put(app, "/v1/channels/web", json!({ "kind": "manual" })).await;
    put(app, "/v1/channels/ebay", json!({ "kind": "manual" })).await;
    let reply = app
        .request(
            "POST",
            "/v1/stock/movements",
            Some(&json!({ "movements": [receive("MUG", "wh-1", 5), receive("CAP", "wh-1", 5)] })),
            &[("x-request-id", "import-42")],
        )
        .await;
    assert_ok(&reply);
    clock.advance_ms(3_600_000);
    post(
        app,
        "/v1/orders",
        order("web", "W-1", &[("1", "MUG", 2), ("2", "CAP", 1)]),
    )
    .await;
    post(app, "/v1/orders", order("web", "W-2", &[("1", "CAP", 1)])).await;
    clock.advance_ms(3_600_000);
    post(app, "/v1/orders", order("ebay", "E-1", &[("1", "MUG", 4)])).await;
    clock.advance_ms(3_600_000);
    post(
        app,
        "/v1/orders/web/W-1/ship",
        json!({ "lines": [{ "line_id": "1", "quantity": 2 }] }),
    )
    .await;
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn ledger_filters_and_paging() {
    let (app, clock) = manual_app().await;
    history(&app, &clock).await;
    let all = ledger(&app, "", 1000).await;
    assert_eq!(
        kinds(&all),
        vec![
            "received",
            "received",
            "order_committed",
            "order_committed",
            "order_committed",
            "order_committed",
            "oversold",
            "shipped"
        ]
    );
    assert!(
        seqs(&all).windows(2).all(|w| w[0] < w[1]),
        "oldest first by default"
    );
    assert_eq!(all[0]["correlation_id"], "import-42");
    assert_eq!(all[1]["correlation_id"], "import-42");

    // Paging one at a time gives the same entries.
    assert_eq!(seqs(&ledger(&app, "", 1).await), seqs(&all));
    assert_eq!(seqs(&ledger(&app, "", 3).await), seqs(&all));

    let by_sku = ledger(&app, "sku=CAP", 2).await;
    assert!(by_sku.iter().all(|e| e["sku"] == "CAP"));
    assert_eq!(
        kinds(&by_sku),
        vec!["received", "order_committed", "order_committed"]
    );

    let by_channel = ledger(&app, "channel=ebay", 100).await;
    assert_eq!(kinds(&by_channel), vec!["order_committed", "oversold"]);
    assert!(by_channel.iter().all(|e| e["channel"] == "ebay"));

    let by_order = ledger(&app, "order_channel=web&order_id=W-1", 100).await;
    assert_eq!(
        kinds(&by_order),
        vec!["order_committed", "order_committed", "shipped"]
    );
    assert!(by_order
        .iter()
        .all(|e| e["order"] == json!({ "channel": "web", "external_id": "W-1" })));
    assert_problem(
        &app.get("/v1/ledger?order_id=W-1").await,
        422,
        "invalid-request",
    );

    let oversold = ledger(&app, "kind=oversold", 100).await;
    assert_eq!(oversold.len(), 1);
    assert_eq!(oversold[0]["line_delta"]["short"], 1);
    assert_eq!(
        oversold[0]["detail"],
        json!({ "requested": 4, "committed": 3, "short": 1 })
    );
    assert_problem(
        &app.get("/v1/ledger?kind=teleported").await,
        422,
        "invalid-request",
    );

    assert_eq!(
        ledger(&app, "source=api:anonymous", 100).await.len(),
        all.len()
    );
    assert_eq!(
        ledger(&app, "source=system:reservation-sweeper", 100)
            .await
            .len(),
        0
    );

    // [from, to): the web orders at T0+1h only.
    let window = ledger(
        &app,
        &format!("from={}&to={}", at(3_600_000), at(7_200_000)),
        100,
    )
    .await;
    assert_eq!(kinds(&window), vec!["order_committed"; 3]);
    assert!(window.iter().all(|e| e["at_ms"] == T0_MS + 3_600_000));
    let since = ledger(&app, &format!("from={}", at(7_200_000)), 100).await;
    assert_eq!(
        kinds(&since),
        vec!["order_committed", "oversold", "shipped"]
    );
    let until = ledger(&app, &format!("to={}", at(1)), 100).await;
    assert_eq!(kinds(&until), vec!["received", "received"]);
    assert_problem(
        &app.get("/v1/ledger?from=yesterday").await,
        422,
        "invalid-request",
    );

    // Newest first, paged.
    let desc = ledger(&app, "order=desc", 3).await;
    let mut expected = seqs(&all);
    expected.reverse();
    assert_eq!(seqs(&desc), expected);
    let first = app.get("/v1/ledger?order=desc&limit=1").await;
    assert_eq!(first.body["entries"][0]["kind"], "shipped");
    assert_problem(
        &app.get("/v1/ledger?order=sideways").await,
        422,
        "invalid-request",
    );

    // Filters combine.
    let combined = ledger(
        &app,
        &format!(
            "sku=MUG&kind=order_committed&from={}&order=desc",
            at(3_600_000)
        ),
        1,
    )
    .await;
    assert_eq!(combined.len(), 2);
    assert_eq!(combined[0]["channel"], "ebay");
    assert_eq!(combined[1]["channel"], "web");
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn the_story_of_one_order_in_one_call() {
    let (app, clock) = manual_app().await;
    history(&app, &clock).await;
    let mut v2 = order("web", "W-1", &[("1", "MUG", 2), ("2", "CAP", 0)]);
    v2["note"] = json!("customer dropped the cap");
    post(&app, "/v1/orders", v2.clone()).await;

    let story = app.get("/v1/audit/orders/web/W-1").await;
    assert_eq!(story.status, 200, "{story:#?}");
    assert_eq!(story.body["order"]["external_id"], "W-1");
    assert_eq!(story.body["snapshot"], v2, "the last snapshot, as received");
    assert_eq!(story.body["reservation"], Value::Null);
    let entries = story.body["ledger"].as_array().unwrap();
    assert_eq!(
        kinds(entries),
        vec![
            "order_committed",
            "order_committed",
            "shipped",
            "order_line_changed"
        ]
    );
    assert_eq!(
        seqs(entries),
        seqs(&ledger(&app, "order_channel=web&order_id=W-1", 100).await)
    );
    let cap = line(&story.body["order"], "2");
    assert_eq!(
        (cap["committed"].as_i64(), cap["cancelled"].as_i64()),
        (Some(0), Some(1))
    );
    assert_problem(
        &app.get("/v1/audit/orders/web/NOPE").await,
        404,
        "unknown-order",
    );

    // An order that came from a reservation tells that part too.
    let held = app
        .post(
            "/v1/reservations",
            &json!({ "channel": "web", "sku": "CAP", "quantity": 1 }),
        )
        .await;
    let id = held.body["id"].as_i64().unwrap();
    assert_eq!(
        app.post(
            &format!("/v1/reservations/{id}/confirm"),
            &json!({ "external_id": "W-3" })
        )
        .await
        .status,
        201
    );
    let story = app.get("/v1/audit/orders/web/W-3").await;
    assert_eq!(story.body["reservation"], id);
    assert_eq!(
        kinds(story.body["ledger"].as_array().unwrap()),
        vec!["reserved", "reservation_confirmed"]
    );
}
}

/// Every route the router serves, by method.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/v1/system/storage"),
    ("put", "/v1/products/{id}"),
    ("get", "/v1/products/{id}"),
    ("put", "/v1/variants/{sku}"),
    ("get", "/v1/variants/{sku}"),
    ("get", "/v1/variants"),
    ("post", "/v1/variants/batch"),
    ("put", "/v1/locations/{code}"),
    ("get", "/v1/locations"),
    ("put", "/v1/channels/{code}"),
    ("get", "/v1/channels/{code}"),
    ("get", "/v1/channels"),
    ("post", "/v1/stock/movements"),
    ("get", "/v1/stock/{sku}"),
    ("post", "/v1/reservations"),
    ("get", "/v1/reservations/{id}"),
    ("post", "/v1/reservations/{id}/release"),
    ("post", "/v1/reservations/{id}/confirm"),
    ("post", "/v1/orders"),
    ("get", "/v1/orders/{channel}/{external_id}"),
    ("post", "/v1/orders/{channel}/{external_id}/cancel"),
    ("post", "/v1/orders/{channel}/{external_id}/ship"),
    ("post", "/v1/orders/{channel}/{external_id}/returns"),
    ("post", "/v1/orders/{channel}/{external_id}/restock"),
    ("get", "/v1/unmapped"),
    ("post", "/v1/unmapped/{id}/resolve"),
    ("get", "/v1/ledger"),
    ("get", "/v1/audit/orders/{channel}/{external_id}"),
];

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn the_openapi_document_is_3_1_and_covers_every_route() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert!(
        doc.content_type.starts_with("application/json"),
        "{}",
        doc.content_type
    );
    let version = doc.body["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1.x, got {version}");
    let paths = doc.body["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    for (method, path) in ROUTES {
        assert!(
            documented.contains(&((*method).to_owned(), (*path).to_owned())),
            "{method} {path} is not documented"
        );
    }
    // And the other way: everything documented is served (no route problem for it). The
    // product exists, because an unknown product is also a bare `not-found`.
    put(&app, "/v1/products/12345", json!({ "title": "Probe" })).await;
    for (method, path) in &documented {
        let concrete = path
            .replace("{sku}", "NO-SKU")
            .replace("{code}", "no-code")
            .replace("{id}", "12345")
            .replace("{channel}", "no-channel")
            .replace("{external_id}", "NO-ORDER");
        let reply = app
            .request(&method.to_uppercase(), &concrete, None, &[])
            .await;
        let route_problem = [
            format!("{PROBLEM_PREFIX}not-found"),
            format!("{PROBLEM_PREFIX}method-not-allowed"),
        ];
        assert!(
            !route_problem.iter().any(|t| t == reply.problem_type()),
            "{method} {path} is documented but not served: {reply:#?}"
        );
    }
    assert!(documented.len() >= ROUTES.len());
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn storage_commits_durably() {
    let app = spawn_app().await;
    put(&app, "/v1/locations/wh-1", json!({})).await;
    let reply = app.get("/v1/system/storage").await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let durability = &reply.body["durability"];
    match stockhub_testkit::current_backend() {
        stockhub_testkit::TestBackend::Sqlite => {
            assert_eq!(durability["backend"], "sqlite");
            assert_eq!(durability["journal_mode"], "wal");
            assert_eq!(durability["synchronous"], "full");
        }
        stockhub_testkit::TestBackend::Postgres => {
            assert_eq!(durability["backend"], "postgres");
            assert_eq!(durability["synchronous_commit"], "on");
            assert_eq!(durability["fsync"], "on");
            assert_eq!(durability["transaction_isolation"], "read committed");
        }
    }
    let commits = reply.body["commits"]["commits"].as_u64().expect("commits");
    let operations = reply.body["commits"]["operations"]
        .as_u64()
        .expect("operations");
    assert!(commits >= 1 && operations >= commits, "{reply:#?}");
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn kits_sell_from_one_location_and_cancel_what_was_recorded() {
    let app = spawn_app().await;
    for l in ["wh-1", "wh-2"] {
        put(&app, &format!("/v1/locations/{l}"), json!({})).await;
    }
    for s in ["CUP", "LID"] {
        put(&app, &format!("/v1/variants/{s}"), json!({})).await;
    }
    put(
        &app,
        "/v1/variants/SET",
        json!({ "kit": [{ "sku": "CUP", "units": 2 }, { "sku": "LID", "units": 1 }] }),
    )
    .await;
    put(&app, "/v1/channels/web", json!({ "kind": "manual" })).await;
    // Cups at one place, lids at the other: no whole kit anywhere.
    move_stock(
        &app,
        vec![receive("CUP", "wh-1", 6), receive("LID", "wh-2", 5)],
    )
    .await;
    assert_eq!(available(&app, "SET", "web").await, 0);
    move_stock(
        &app,
        vec![receive("LID", "wh-1", 2), receive("CUP", "wh-2", 3)],
    )
    .await;
    // wh-1: ⌊6/2⌋ = 3 cups' worth, 2 lids → 2 kits; wh-2: ⌊3/2⌋ = 1 → 1 kit.
    assert_eq!(available(&app, "SET", "web").await, 3);
    let stock = app.get("/v1/stock/SET").await;
    assert_eq!(stock.body["is_kit"], true);

    let reply = post(&app, "/v1/orders", order("web", "K-1", &[("1", "SET", 3)])).await;
    let l = line(&reply.body["order"], "1");
    assert_eq!(l["committed"], 3);
    let mut at: Vec<(String, i64)> = l["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["location"].as_str().unwrap().to_owned(),
                a["committed"].as_i64().unwrap(),
            )
        })
        .collect();
    at.sort();
    assert_eq!(
        at,
        vec![("wh-1".to_owned(), 2), ("wh-2".to_owned(), 1)],
        "each kit from one place"
    );
    assert_eq!(level(&app, "CUP", "wh-1").await, (6, 4));
    assert_eq!(level(&app, "LID", "wh-1").await, (2, 2));
    assert_eq!(level(&app, "CUP", "wh-2").await, (3, 2));
    assert_eq!(level(&app, "LID", "wh-2").await, (5, 1));
    assert_eq!(available(&app, "SET", "web").await, 0);
    assert_eq!(available(&app, "LID", "web").await, 4);

    // The recipe changes while the order is open; cancelling releases what was committed.
    put(
        &app,
        "/v1/variants/SET",
        json!({ "kit": [{ "sku": "CUP", "units": 1 }] }),
    )
    .await;
    let cancelled = post(&app, "/v1/orders/web/K-1/cancel", json!({})).await;
    assert_eq!(line(&cancelled.body, "1")["cancelled"], 3);
    for (sku, location, on_hand) in [
        ("CUP", "wh-1", 6),
        ("LID", "wh-1", 2),
        ("CUP", "wh-2", 3),
        ("LID", "wh-2", 5),
    ] {
        assert_eq!(
            level(&app, sku, location).await,
            (on_hand, 0),
            "{sku} at {location}"
        );
    }
    // A kit holds no stock of its own.
    let reply = app
        .post(
            "/v1/stock/movements",
            &json!({ "movements": [receive("SET", "wh-1", 1)] }),
        )
        .await;
    assert_problem(&reply, 422, "invalid-batch");
    assert_verified(&app).await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn receipts_and_returns_fill_open_shortfalls_oldest_first() {
    let app = spawn_app().await;
    put(&app, "/v1/locations/wh-1", json!({})).await;
    put(&app, "/v1/variants/MUG", json!({})).await;
    put(&app, "/v1/channels/web", json!({ "kind": "manual" })).await;
    put(&app, "/v1/channels/ebay", json!({ "kind": "manual" })).await;
    move_stock(&app, vec![receive("MUG", "wh-1", 2)]).await;
    post(
        &app,
        "/v1/orders",
        order("web", "FIRST", &[("1", "MUG", 2)]),
    )
    .await;
    post(
        &app,
        "/v1/orders",
        order("ebay", "SECOND", &[("1", "MUG", 1)]),
    )
    .await;
    post(
        &app,
        "/v1/orders",
        order("web", "THIRD", &[("1", "MUG", 1)]),
    )
    .await;
    let short = |v: &Value| line(v, "1")["short"].as_i64().unwrap();
    assert_eq!(short(&app.get("/v1/orders/ebay/SECOND").await.body), 1);
    assert_eq!(short(&app.get("/v1/orders/web/THIRD").await.body), 1);

    // One unit arrives: it goes to the oldest short line, and none becomes free.
    move_stock(&app, vec![receive("MUG", "wh-1", 1)]).await;
    assert_eq!(short(&app.get("/v1/orders/ebay/SECOND").await.body), 0);
    assert_eq!(short(&app.get("/v1/orders/web/THIRD").await.body), 1);
    assert_eq!(available(&app, "MUG", "web").await, 0);

    // A shipped unit comes back to the shelf: it fills the next one.
    post(
        &app,
        "/v1/orders/web/FIRST/ship",
        json!({ "lines": [{ "line_id": "1", "quantity": 2 }] }),
    )
    .await;
    post(
        &app,
        "/v1/orders/web/FIRST/returns",
        json!({ "lines": [{ "line_id": "1", "quantity": 1, "restock": true }] }),
    )
    .await;
    assert_eq!(short(&app.get("/v1/orders/web/THIRD").await.body), 0);
    assert_eq!(level(&app, "MUG", "wh-1").await, (2, 2));
    let filled = ledger(&app, "kind=shortfall_filled", 100).await;
    let orders: Vec<&str> = filled
        .iter()
        .map(|e| e["order"]["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(orders, vec!["SECOND", "THIRD"]);
    assert_verified(&app).await;
}
}
